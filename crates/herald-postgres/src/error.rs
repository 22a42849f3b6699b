//! Errors: what `connect` reports, and how PostgreSQL's errors become
//! [`StoreError`]s (retryable or not).

use std::error::Error as StdError;

use deadpool_postgres::PoolError;
use herald::StoreError;

/// Why [`PgStore::connect`](crate::PgStore::connect) (or
/// [`shared_dev_app`](crate::shared_dev_app)) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgStoreError {
    /// The connection URL does not parse.
    #[error("the PostgreSQL URL does not parse: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The schema name is not one this crate accepts.
    #[error(
        "schema name {0:?} is not accepted: 1 to 63 characters, lowercase ASCII letters, digits and `_`, not starting with a digit or `pg_`"
    )]
    Schema(String),
    /// The server could not be reached, or refused the connection.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] tokio_postgres::Error),
    /// A schema migration failed (nothing of that migration was applied).
    #[error("schema migration {version} failed: {source}")]
    Migration {
        /// The migration that failed.
        version: i32,
        /// What PostgreSQL said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The schema was migrated by a newer herald-postgres: this build does
    /// not know its layout.
    #[error(
        "schema {schema:?} is at version {found}, newer than this build's {known}: upgrade herald-postgres"
    )]
    TooNew {
        /// The schema.
        schema: String,
        /// The highest version applied to it.
        found: i32,
        /// The highest version this build knows.
        known: i32,
    },
    /// The connection pool could not be built.
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
    /// [`shared_dev_app`](crate::shared_dev_app) could not create, record
    /// or read the cluster's development app.
    #[error("cannot record or read the cluster's development app (herald_cluster.dev_app): {0}")]
    DevApp(#[source] tokio_postgres::Error),
}

/// SQLSTATE classes and codes after which the same call may succeed:
/// connection exceptions (08), insufficient resources (53), operator
/// intervention such as an admin shutdown (57P), system errors (58),
/// serialization failures and deadlocks (40001, 40P01).
fn retryable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || code.starts_with("58")
        || code == "40001"
        || code == "40P01"
}

/// Whether PostgreSQL aborted the statement because of a conflict with a
/// concurrent one (a deadlock or a serialization failure): worth retrying
/// at once.
pub(crate) fn is_conflict(e: &StoreError) -> bool {
    let StoreError::Unavailable(inner) = e else {
        return false;
    };
    inner
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.code())
        .is_some_and(|c| c.code() == "40001" || c.code() == "40P01")
}

/// Whether the error says the connection is gone (closed, an I/O error, a
/// connection exception, or the server ending the session: an admin
/// shutdown, a crash, a restart): the statement may be tried on another
/// connection.
pub(crate) fn is_connection_lost(e: &StoreError) -> bool {
    let StoreError::Unavailable(inner) = e else {
        return false;
    };
    let Some(e) = inner.downcast_ref::<tokio_postgres::Error>() else {
        return false;
    };
    e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("08") || c.starts_with("57P")
        })
        || e.as_db_error().is_some_and(|d| d.severity() == "FATAL")
}

/// A client error as a `StoreError`: a lost connection, an I/O error or a
/// retryable SQLSTATE is [`StoreError::Unavailable`]; anything else (a bad
/// statement, a constraint, a type mismatch: a bug) is
/// [`StoreError::Other`].
pub(crate) fn pg(e: tokio_postgres::Error) -> StoreError {
    let retry = if e.is_closed() {
        true
    } else if let Some(code) = e.code() {
        retryable_code(code.code())
    } else {
        // No database error: an I/O error (refused, reset) is worth a
        // retry; a conversion error is not.
        e.source().is_some_and(|s| s.is::<std::io::Error>())
    };
    if retry {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Other(Box::new(e))
    }
}

/// A pool error as a `StoreError`: no connection (refused, timed out) is
/// retryable; a closed pool is [`StoreError::Closed`].
pub(crate) fn pool(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => match pg(e) {
            // Connecting failed without a database error: retryable.
            StoreError::Other(e) => StoreError::Unavailable(e),
            other => other,
        },
        PoolError::Timeout(_) => {
            StoreError::unavailable("no PostgreSQL connection within the pool's timeout")
        }
        PoolError::Closed => StoreError::Closed,
        other => StoreError::Other(Box::new(other)),
    }
}

/// A stored value that does not decode: never retryable.
pub(crate) fn damaged(what: impl Into<String>) -> StoreError {
    StoreError::other(what)
}

/// The same error again, for each request of a batch that failed as a
/// whole (`StoreError` is not `Clone`): the same variant and text.
pub(crate) fn replicate(e: &StoreError) -> StoreError {
    match e {
        StoreError::Duplicate(id) => StoreError::Duplicate(*id),
        StoreError::Closed => StoreError::Closed,
        StoreError::Unavailable(inner) => StoreError::unavailable(inner.to_string()),
        other => StoreError::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_sqlstates() {
        for code in [
            "08006", "08001", "53300", "57P01", "58030", "40001", "40P01",
        ] {
            assert!(retryable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "40002"] {
            assert!(!retryable_code(code), "{code}");
        }
    }

    #[test]
    fn replicated_errors_keep_their_kind() {
        let e = replicate(&StoreError::unavailable("connection reset"));
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "store unavailable: connection reset");
        assert!(!replicate(&StoreError::other("bug")).is_retryable());
        assert!(matches!(replicate(&StoreError::Closed), StoreError::Closed));
    }
}
