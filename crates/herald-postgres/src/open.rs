//! `PgStore`: connecting, the pool, health and shutdown.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use herald::codec::PlanCache;
use herald::{Clock, StoreError, SystemClock};
use tokio::sync::mpsc;
use tokio_postgres::NoTls;

use crate::error::{PgStoreError, is_conflict};
use crate::hints::Hints;
use crate::migrate;
use crate::writer::{self, InsertRequest};

/// Runs the read-only `$body` (an expression using the pooled connection
/// `$client`, evaluating to a `Result`) for `$inner: &Inner`; if that
/// connection turns out closed (the server restarted, failed over or
/// dropped it), runs it again on another, up to the pool's size: a read
/// changes nothing, so trying again is safe, and a restart of PostgreSQL
/// costs status reads nothing. (Writes are not retried: a write whose
/// connection died may have committed.)
macro_rules! read {
    ($inner:expr, |$client:ident| $body:block) => {{
        let inner: &$crate::open::Inner = $inner;
        let mut tries = inner.pool.status().max_size;
        loop {
            let $client = inner.client().await?;
            let r = async { $body }.await;
            let lost = match &r {
                Err(e) => $client.is_closed() || $crate::error::is_connection_lost(e),
                Ok(_) => false,
            };
            if lost && tries > 0 {
                tries -= 1;
                continue;
            }
            break inner.health.note(r);
        }
    }};
}

/// How long a final message is kept by default: 7 days (as `herald-redb`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How a [`PgStore`] is set up (see [`PgStore::connect`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PgOptions {
    /// How long a final message (finished, no push notification pending,
    /// no push job open) is kept after its last change before it is
    /// purged; `None` keeps everything. Default [`DEFAULT_RETENTION`].
    pub retention: Option<Duration>,
    /// The store's clock: finish times, key expiry, and when retention
    /// runs. Give the engine's clock. Default [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// How often (on `clock`) retention purges; `None`: only when
    /// [`PgStore::purge_final`] is called. Default 60 s.
    pub purge_every: Option<Duration>,
    /// The most connections this store opens. Default 16.
    pub pool_size: usize,
    /// How many insert batches may be in flight at once (each on its own
    /// connection). Default 4.
    pub writers: usize,
    /// The most inserts one batch (one statement, one commit) takes.
    /// Default 2048.
    pub max_batch: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            retention: Some(DEFAULT_RETENTION),
            clock: Arc::new(SystemClock),
            purge_every: Some(Duration::from_secs(60)),
            pool_size: 16,
            writers: 4,
            max_batch: 2048,
        }
    }
}

/// Herald's store on PostgreSQL: messages, idempotency keys, push jobs,
/// device registrations and push templates, in one schema (see the crate
/// docs). Cloning it is cheap and shares the pool.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.inner.schema)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What the store's operations share.
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) schema: String,
    pub(crate) plans: PlanCache,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) retention: Option<Duration>,
    pub(crate) inserts: mpsc::Sender<InsertRequest>,
    pub(crate) health: Arc<Health>,
    pub(crate) closed: AtomicBool,
    pub(crate) applied: Vec<i32>,
    /// Hints sent and received (see `hints.rs`).
    pub(crate) hints: Arc<Hints>,
    maintenance: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.hints.stop();
        if let Some(task) = self
            .maintenance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// Whether the store can reach PostgreSQL, as the last call found, and
/// the counters [`Store::stats`](herald::Store::stats) reports.
#[derive(Debug, Default)]
pub(crate) struct Health {
    down: AtomicBool,
    why: Mutex<Option<String>>,
    pub(crate) purged: AtomicU64,
    pub(crate) quarantined: AtomicU64,
    /// Statements tried again after a serialization failure or a deadlock.
    pub(crate) conflicts: AtomicU64,
}

impl Health {
    /// Records what a call found: a retryable error (other than a
    /// conflict between statements) marks the store unavailable, a success
    /// marks it available again.
    pub(crate) fn note<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match &r {
            Ok(_) => {
                if self.down.load(Ordering::Relaxed) {
                    *self.why.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    self.down.store(false, Ordering::Relaxed);
                }
            }
            Err(e) if e.is_retryable() && !is_conflict(e) => {
                *self.why.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                self.down.store(true, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        r
    }

    pub(crate) fn unavailable(&self) -> Option<String> {
        if !self.down.load(Ordering::Relaxed) {
            return None;
        }
        self.why.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Accepted schema names: 1 to 63 bytes of `[a-z0-9_]`, not starting with
/// a digit or `pg_` (reserved by PostgreSQL). They are quoted anyway.
pub fn check_schema(schema: &str) -> Result<(), PgStoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && !schema.starts_with("pg_")
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PgStoreError::Schema(schema.to_owned()))
    }
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL or a
    /// `key=value` string, without TLS), creates `schema` if needed and
    /// applies the migrations it lacks (see the crate docs), then opens a
    /// pool whose connections work in that schema only (`search_path`).
    /// Must be called inside a tokio runtime: the store's writer tasks and
    /// its retention task run on it.
    ///
    /// # Errors
    ///
    /// A URL that does not parse, a schema name that is not accepted
    /// ([`check_schema`]), a server that cannot be reached, a migration
    /// that fails, or a schema migrated by a newer build.
    pub async fn connect(
        url: &str,
        schema: &str,
        options: PgOptions,
    ) -> Result<Self, PgStoreError> {
        check_schema(schema)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(PgStoreError::Url)?;
        let path = format!("-c search_path={schema}");
        let startup = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {path}"),
            _ => path,
        };
        config.options(&startup);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("herald");
        }

        let (mut client, connection) =
            config.connect(NoTls).await.map_err(PgStoreError::Connect)?;
        let conn = tokio::spawn(connection);
        let applied = migrate::run(&mut client, schema).await;
        drop(client);
        let _ = conn.await;
        let applied = applied?;

        let hints = Arc::new(Hints::new(schema, config.clone(), options.clock.clone()));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(5)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| PgStoreError::Pool(e.to_string()))?;

        let health = Arc::new(Health::default());
        let (tx, rx) = mpsc::channel(options.max_batch.max(1) * 4);
        writer::spawn(
            pool.clone(),
            health.clone(),
            hints.clone(),
            rx,
            options.writers.max(1),
            options.max_batch.max(1),
        );
        let inner = Arc::new(Inner {
            pool,
            schema: schema.to_owned(),
            plans: PlanCache::new(PlanCache::DEFAULT_CAPACITY),
            clock: options.clock.clone(),
            retention: options.retention,
            inserts: tx,
            health,
            closed: AtomicBool::new(false),
            applied,
            hints,
            maintenance: Mutex::new(None),
        });
        if let (Some(every), Some(_)) = (options.purge_every, options.retention) {
            let task = tokio::spawn(crate::retention::maintain(
                Arc::downgrade(&inner),
                options.clock,
                every,
            ));
            *inner.maintenance.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
        Ok(Self { inner })
    }

    /// The schema this store works in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// How many statements this store tried again because PostgreSQL
    /// aborted them for a serialization failure or a deadlock (`40001`,
    /// `40P01`). Batch statements lock rows in id order, so nodes sharing
    /// a schema should not deadlock: each deadlock costs the server's
    /// `deadlock_timeout` (1 s by default) of delay before it is detected.
    pub fn conflicts_retried(&self) -> u64 {
        self.inner
            .health
            .conflicts
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The migration versions this store's `connect` applied (empty: the
    /// schema was up to date).
    pub fn migrations_applied(&self) -> &[i32] {
        &self.inner.applied
    }

    /// Waits until this store listens for other nodes' hints (see
    /// [`Store::due_hints`](herald::Store::due_hints); the listener starts
    /// with the first `due_hints` call) in a connection made after the
    /// `after`-th one (`0`: any), and answers that connection's number.
    /// Hints sent before the store listens are not received (the engines'
    /// periodic looks find those runs), so a test or a start-up that needs
    /// them awaits this first. Waits for ever if `due_hints` was not called.
    pub async fn listening(&self, after: u64) -> u64 {
        self.inner.hints.listening(after).await
    }
}

/// A pooled connection that is not known to be closed: one the server
/// closed (a restart, a failover, a terminated backend) is dropped from the
/// pool, so a call fails only if its connection dies under it.
pub(crate) async fn live_client(pool: &Pool) -> Result<Object, StoreError> {
    for _ in 0..pool.status().max_size {
        let client = pool.get().await.map_err(crate::error::pool)?;
        if !client.is_closed() {
            return Ok(client);
        }
        drop(Object::take(client));
    }
    pool.get().await.map_err(crate::error::pool)
}

impl Inner {
    /// A pooled connection (the pool replaces broken ones), or why not.
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Closed);
        }
        self.health.note(live_client(&self.pool).await)
    }

    /// Closes the store: later calls fail with `Closed`; the pool's idle
    /// connections are closed.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.hints.stop();
        if let Some(task) = self
            .maintenance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
        self.pool.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        for ok in ["app", "herald_app_1", "_x", "a".repeat(63).as_str()] {
            assert!(check_schema(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "App",
            "1app",
            "pg_x",
            "a-b",
            "a\"; DROP SCHEMA public; --",
            "a b",
            "ä",
            "a".repeat(64).as_str(),
        ] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }
}
