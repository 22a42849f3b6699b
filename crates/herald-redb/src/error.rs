//! `RedbStoreError` (opening, checking), and how redb's errors and damaged
//! records become [`StoreError`]s.

use std::fmt;
use std::path::PathBuf;

use herald::{MessageId, StoreError};

use crate::FORMAT_VERSION;

/// Why [`RedbStore::open`](crate::RedbStore::open) (or
/// [`RedbStore::check_records`](crate::RedbStore::check_records)) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedbStoreError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The database file is open already: in another process (another
    /// Herald on the same data directory), or elsewhere in this one. redb
    /// locks the file while it is open.
    #[error(
        "{path} is in use: it is open already (in another process, or by another store in this one)"
    )]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// redb failed (I/O, a damaged file). The text includes redb's, so it
    /// is not also the error's `source` (a chain printed with `{:#}` would
    /// say it twice).
    #[error("redb: {0}")]
    Redb(redb::Error),
    /// The file was written by a Herald with a store format this build
    /// neither reads nor migrates.
    #[error(
        "{path} has herald-redb format version {found}; this build reads version \
         {FORMAT_VERSION} and migrates version 1"
    )]
    Version {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: u64,
    },
    /// [`check_records`](crate::RedbStore::check_records) found a record
    /// that does not decode, or tables that disagree.
    #[error("herald-redb check: {0}")]
    Check(String),
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
    /// The store is closed.
    #[error("the store is closed")]
    Closed,
}

impl From<redb::Error> for RedbStoreError {
    fn from(e: redb::Error) -> Self {
        Self::Redb(e)
    }
}

impl From<redb::DatabaseError> for RedbStoreError {
    fn from(e: redb::DatabaseError) -> Self {
        Self::Redb(e.into())
    }
}

impl From<redb::TransactionError> for RedbStoreError {
    fn from(e: redb::TransactionError) -> Self {
        Self::Redb(e.into())
    }
}

impl From<redb::TableError> for RedbStoreError {
    fn from(e: redb::TableError) -> Self {
        Self::Redb(e.into())
    }
}

impl From<redb::StorageError> for RedbStoreError {
    fn from(e: redb::StorageError) -> Self {
        Self::Redb(e.into())
    }
}

impl From<redb::CommitError> for RedbStoreError {
    fn from(e: redb::CommitError) -> Self {
        Self::Redb(e.into())
    }
}

/// A failure of the store that is not one of [`StoreError`]'s own kinds.
#[derive(Debug)]
struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// A [`StoreError::Other`] with this text.
pub(crate) fn other(msg: impl Into<String>) -> StoreError {
    StoreError::Other(Box::new(Failure(msg.into())))
}

/// How a redb error is reported to the engine: whether the call may
/// succeed later, and what to say. Every request of a failed transaction
/// gets its own [`StoreError`] from one of these.
#[derive(Clone, Debug)]
pub(crate) struct Classified {
    retryable: bool,
    reopen: bool,
    closed: bool,
    text: String,
}

impl Classified {
    /// Classifies `e`: I/O (a full or failing disk, an earlier I/O error
    /// that keeps the file from being written until it is reopened) and a
    /// busy database are [`StoreError::Unavailable`]: the transaction did
    /// not happen and may succeed later. Corruption, a value too large, a
    /// poisoned transaction (a bug) are [`StoreError::Other`].
    pub(crate) fn new(e: &redb::Error) -> Self {
        use redb::Error as E;
        let retryable = matches!(
            e,
            E::Io(_)
                | E::PreviousIo
                | E::TransactionInProgress
                | E::WouldBlock
                | E::ReadTransactionStillInUse(_)
        );
        Self {
            retryable,
            reopen: matches!(e, E::Io(_) | E::PreviousIo),
            closed: matches!(e, E::DatabaseClosed),
            text: format!("herald-redb: {e}"),
        }
    }

    /// Whether a retry may help.
    pub(crate) fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Whether redb refuses everything until the database is reopened (an
    /// I/O error).
    pub(crate) fn needs_reopen(&self) -> bool {
        self.reopen
    }

    /// What to tell: `herald-redb: ` and redb's text.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The error for one request.
    pub(crate) fn error(&self) -> StoreError {
        if self.closed {
            StoreError::Closed
        } else if self.retryable {
            StoreError::Unavailable(Box::new(Failure(self.text.clone())))
        } else {
            StoreError::Other(Box::new(Failure(self.text.clone())))
        }
    }
}

/// A redb error as a [`StoreError`] (see [`Classified::new`]).
pub(crate) fn redb_error(e: impl Into<redb::Error>) -> StoreError {
    Classified::new(&e.into()).error()
}

/// A record that does not decode (and is not quarantined yet).
#[derive(Debug)]
pub(crate) struct Damaged {
    pub(crate) id: u128,
    pub(crate) what: String,
}

impl fmt::Display for Damaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "herald-redb: message {} is damaged: {}",
            MessageId::from_u128(self.id),
            self.what
        )
    }
}

impl std::error::Error for Damaged {}

/// A [`StoreError::Other`] for damaged message `id`.
pub(crate) fn damaged(id: u128, what: impl fmt::Display) -> StoreError {
    StoreError::Other(Box::new(Damaged {
        id,
        what: what.to_string(),
    }))
}

/// A message moved to the `quarantine` table.
#[derive(Debug)]
pub(crate) struct Quarantined {
    pub(crate) id: u128,
    pub(crate) reason: String,
}

impl fmt::Display for Quarantined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "herald-redb: message {} is in quarantine (damaged): {}",
            MessageId::from_u128(self.id),
            self.reason
        )
    }
}

impl std::error::Error for Quarantined {}

/// A [`StoreError::Other`] for quarantined message `id`.
pub(crate) fn quarantined(id: u128, reason: impl Into<String>) -> StoreError {
    StoreError::Other(Box::new(Quarantined {
        id,
        reason: reason.into(),
    }))
}

/// A registry or push-job record that does not decode, or such tables
/// that disagree with each other: which table, which key, what is wrong.
#[derive(Debug)]
pub(crate) struct BadRow {
    /// The table the row is in.
    pub(crate) table: &'static str,
    /// The row's key as shown (a device id, a template name, a channel
    /// entry, a push job).
    pub(crate) key: String,
    pub(crate) what: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "herald-redb: {} in table `{}` is damaged: {}",
            self.key, self.table, self.what
        )
    }
}

impl std::error::Error for BadRow {}

/// A [`StoreError::Other`] for a damaged row of a registry or push-job
/// table, e.g. `bad_row("devices", format!("device {id:?}"), e)`.
pub(crate) fn bad_row(table: &'static str, key: String, what: impl fmt::Display) -> StoreError {
    StoreError::Other(Box::new(BadRow {
        table,
        key,
        what: what.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_is_retryable_corruption_is_not() {
        let io = redb::Error::Io(std::io::Error::other("no space left on device"));
        let e = Classified::new(&io).error();
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("no space left"), "{e}");
        assert!(redb_error(redb::StorageError::PreviousIo).is_retryable());
        let corrupt = redb_error(redb::StorageError::Corrupted("page 7".into()));
        assert!(!corrupt.is_retryable());
        assert!(matches!(corrupt, StoreError::Other(_)));
        assert!(matches!(
            redb_error(redb::StorageError::DatabaseClosed),
            StoreError::Closed
        ));
        let q = quarantined(1, "header: unknown state tag 9");
        assert!(q.to_string().contains("quarantine"), "{q}");
        assert!(q.to_string().contains(&MessageId::from_u128(1).to_string()));
    }
}
