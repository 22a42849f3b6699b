//! Herald's embedded durable [`Store`]: messages, schedules and statuses in
//! a [redb](https://docs.rs/redb) file, so a restart (or a crash) loses
//! nothing that was acknowledged.
//!
//! * **Durable acknowledgements.** Every write (`insert`, `claim`,
//!   `complete`, `cancel`, `release_expired`) resolves only after its redb
//!   transaction has committed with `Durability::Immediate` (one `fsync`).
//! * **Group commit.** One writer thread drains a queue of write requests
//!   and applies up to 4096 of them in one transaction with one commit, so
//!   concurrent publishes share an `fsync`.
//! * **Reads** (`get`, `pending`) use read transactions and see every
//!   acknowledged write.
//! * **Restart.** [`Engine::builder`](herald::Engine::builder) with a
//!   reopened store reloads every unfinished message: scheduled runs fire
//!   at their time, repeating messages resume (missed runs collapse into
//!   one), and a run that was being delivered at a crash is delivered again
//!   (at-least-once).
//!
//! The file format is described in Herald's `docs/design.md` ("Store
//! format: herald-redb").
//!
//! # Example
//!
//! ```
//! use herald::{DeliveryOptions, Engine, ManualClock, PublishOptions, PublishStatus};
//! use herald_core::Tick;
//! use herald_redb::RedbStore;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("herald-redb-doc-{}", std::process::id()));
//! let clock = ManualClock::new(Tick::from_millis(1_800_000_000_000));
//!
//! // Schedule a message 5 s ahead, then stop.
//! let engine = Engine::builder()
//!     .clock(clock.clone())
//!     .store(RedbStore::open(&dir)?)
//!     .build();
//! let delivery = DeliveryOptions {
//!     publish_at: chrono::DateTime::from_timestamp_millis(1_800_000_005_000),
//!     ..DeliveryOptions::default()
//! };
//! let status = engine
//!     .publish("news", "hello".into(), PublishOptions::default(), delivery)
//!     .await?;
//! engine.shutdown().await;
//!
//! // A new engine on the same directory still has it, and fires it.
//! let engine = Engine::builder()
//!     .clock(clock.clone())
//!     .store(RedbStore::open(&dir)?)
//!     .build();
//! let mut sub = engine.subscribe("news", None)?;
//! assert_eq!(engine.message_status(&status.message_id).await?.status, PublishStatus::Scheduled);
//! clock.advance(Duration::from_secs(5));
//! assert_eq!(sub.recv().await.unwrap()?.message(), "hello");
//! engine.settle().await;
//! assert_eq!(engine.message_status(&status.message_id).await?.status, PublishStatus::Published);
//! engine.shutdown().await;
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod format;
mod writer;

use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use herald::{
    CancelOutcome, Claim, Completion, Envelope, MessageId, Record, Store, StoreError, StoreFuture,
};
use herald_core::Tick;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::oneshot;

use crate::writer::Op;

/// The file inside the data directory.
pub const FILE_NAME: &str = "herald.redb";

/// The format version this build writes, kept in the `meta` table.
pub const FORMAT_VERSION: u64 = 1;

/// `messages`: id → record (see [`format`]).
pub(crate) const MESSAGES: TableDefinition<'static, u128, &'static [u8]> =
    TableDefinition::new("messages");
/// `unfinished`: the ids of scheduled and firing records, and of finished
/// ones `pending` has not yet met (`complete` leaves them; `pending` skips
/// them and has them removed).
pub(crate) const UNFINISHED: TableDefinition<'static, u128, ()> =
    TableDefinition::new("unfinished");
/// `firing`: id → `(due, lease_until)` of claimed runs: a `Scheduled { due }`
/// record with an entry here for the same due is `Firing`
/// (`release_expired` scans it).
pub(crate) const FIRING: TableDefinition<'static, u128, (u64, u64)> =
    TableDefinition::new("firing");
/// `outcomes`: `(due, id)` → the final header of a one-off completed at
/// that due (its record stays `Scheduled { due }`; see `format`).
pub(crate) const OUTCOMES: TableDefinition<'static, (u64, u128), &'static [u8]> =
    TableDefinition::new("outcomes");
/// `meta`: `format_version` → [`FORMAT_VERSION`].
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
const META_VERSION_KEY: &str = "format_version";

/// Pages of `pending` longer than this are read on tokio's blocking pool.
const INLINE_PENDING: usize = 256;

/// Why [`RedbStore::open`] (or [`RedbStore::check_records`]) failed.
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
    /// redb failed (I/O, a damaged file, the file open in another process).
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    /// The file was written by a Herald with another store format.
    #[error(
        "{path} has herald-redb format version {found}; this build reads version {FORMAT_VERSION}"
    )]
    Version {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: u64,
    },
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
    /// The store is closed.
    #[error("the store is closed")]
    Closed,
}

impl From<redb::DatabaseError> for RedbStoreError {
    fn from(e: redb::DatabaseError) -> Self {
        Self::Redb(e.into())
    }
}

/// An error of the store that is not one of [`StoreError`]'s own kinds: a
/// redb failure, a damaged record, the writer gone.
#[derive(Debug)]
struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

pub(crate) fn failure(msg: impl Into<String>) -> StoreError {
    StoreError::Other(Box::new(Failure(msg.into())))
}

fn redb_failure(e: impl Into<redb::Error>) -> StoreError {
    failure(format!("herald-redb: {}", e.into()))
}

/// A durable [`Store`] in a redb file: see the [crate docs](crate).
///
/// Cheap to clone; clones share the database and its writer thread. The
/// database stays open until [`Store::close`] (which
/// [`Engine::shutdown`](herald::Engine::shutdown) calls) or until the last
/// clone is dropped; after `close`, every method fails with
/// [`StoreError::Closed`].
///
/// Finished records (published, failed, cancelled) are kept: statuses stay
/// queryable for as long as the file lives.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `None` once closed.
    db: RwLock<Option<Arc<Database>>>,
    tx: Sender<Op>,
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<writer::Counters>,
}

/// What [`RedbStore::check_records`] found (all of it consistent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordCheck {
    /// Records (messages), finished ones included.
    pub records: u64,
    /// Of those, scheduled or firing.
    pub unfinished: u64,
    /// Ids in the `unfinished` index: the unfinished records plus finished
    /// ones the next `pending` scan will tidy away.
    pub indexed: u64,
    /// Claimed runs (firing records).
    pub firing: u64,
    /// One-off messages finished by a completion (their outcome is kept
    /// apart from the record).
    pub outcomes: u64,
}

/// What the writer thread has done since the store was opened (see
/// [`RedbStore::writer_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Write transactions run (each one durable commit, unless it failed).
    pub transactions: u64,
    /// Write requests applied (`insert`, `claim`, `complete`, `cancel`,
    /// `release_expired` calls): `requests / transactions` is the mean
    /// group-commit batch.
    pub requests: u64,
    /// Transactions that failed (every request in them got the error).
    pub failed: u64,
    /// Time spent applying and committing transactions.
    pub busy: std::time::Duration,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for Inner {
    /// The last clone is gone without a `close`: stop the writer (it
    /// finishes what is queued; nothing queued is unacknowledged since every
    /// caller is gone) and wait for it, so the file is released when this
    /// returns.
    fn drop(&mut self) {
        drop(self.db.write().unwrap_or_else(|e| e.into_inner()).take());
        // The writer ends when it sees every sender gone; ours is the last
        // one, dropped with `self` after this function, so ask it to stop.
        let (reply, _) = oneshot::channel();
        let _ = self.tx.send(Op::Close { reply });
        if let Some(h) = self
            .writer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
    }
}

impl RedbStore {
    /// Opens (or creates) the store in the data directory `dir`: the
    /// directory and its parents are created if missing, the database is
    /// the file [`FILE_NAME`] inside it. After a crash, redb repairs the
    /// file while opening it (this reads the whole file).
    ///
    /// # Errors
    ///
    /// [`RedbStoreError::Dir`] if the directory cannot be created;
    /// [`RedbStoreError::Redb`] if the file cannot be opened (another
    /// process has it open, or it is not a redb file);
    /// [`RedbStoreError::Version`] if it holds another store format.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, RedbStoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| RedbStoreError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path)?;
        Self::init(&db, &path)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let writer_db = db.clone();
        let counters = Arc::new(writer::Counters::default());
        let writer_counters = counters.clone();
        let writer = std::thread::Builder::new()
            .name("herald-redb-writer".into())
            .spawn(move || writer::run(writer_db, rx, writer_counters))
            .map_err(RedbStoreError::Thread)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                db: RwLock::new(Some(db)),
                tx,
                closed: AtomicBool::new(false),
                writer: Mutex::new(Some(writer)),
                counters,
            }),
        })
    }

    /// Creates the tables and checks (or writes) the format version.
    fn init(db: &Database, path: &Path) -> Result<(), RedbStoreError> {
        let txn = db.begin_write().map_err(redb::Error::from)?;
        {
            let mut meta = txn.open_table(META).map_err(redb::Error::from)?;
            let found = meta
                .get(META_VERSION_KEY)
                .map_err(redb::Error::from)?
                .map(|g| g.value());
            match found {
                Some(FORMAT_VERSION) => {}
                Some(found) => {
                    return Err(RedbStoreError::Version {
                        path: path.to_owned(),
                        found,
                    });
                }
                None => {
                    meta.insert(META_VERSION_KEY, FORMAT_VERSION)
                        .map_err(redb::Error::from)?;
                }
            }
            txn.open_table(MESSAGES).map_err(redb::Error::from)?;
            txn.open_table(UNFINISHED).map_err(redb::Error::from)?;
            txn.open_table(FIRING).map_err(redb::Error::from)?;
            txn.open_table(OUTCOMES).map_err(redb::Error::from)?;
        }
        txn.commit().map_err(redb::Error::from)?;
        Ok(())
    }

    /// The writer thread's counters: transactions, requests, time busy.
    pub fn writer_stats(&self) -> WriterStats {
        let c = &self.inner.counters;
        WriterStats {
            transactions: c.transactions.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            busy: std::time::Duration::from_nanos(c.commit_nanos.load(Ordering::Relaxed)),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Decodes every record and checks the other tables against them.
    ///
    /// # Errors
    ///
    /// [`RedbStoreError::Redb`] if redb fails; [`RedbStoreError::Closed`]
    /// after `close`; a damaged record or index entry is
    /// [`RedbStoreError::Redb`] with a [`redb::StorageError::Corrupted`]
    /// naming it.
    pub fn check_records(&self) -> Result<RecordCheck, RedbStoreError> {
        let db = self.db().map_err(|_| RedbStoreError::Closed)?;
        let corrupt = |msg: String| RedbStoreError::Redb(redb::StorageError::Corrupted(msg).into());
        let txn = db.begin_read().map_err(redb::Error::from)?;
        let messages = txn.open_table(MESSAGES).map_err(redb::Error::from)?;
        let unfinished = txn.open_table(UNFINISHED).map_err(redb::Error::from)?;
        let firing = txn.open_table(FIRING).map_err(redb::Error::from)?;
        let outcomes = txn.open_table(OUTCOMES).map_err(redb::Error::from)?;
        let mut n = 0;
        let mut open = 0;
        let mut unfinished_n = 0;
        let mut firing_n = 0;
        let mut outcomes_n = 0;
        for entry in messages.iter().map_err(redb::Error::from)? {
            let (k, v) = entry.map_err(redb::Error::from)?;
            let id = k.value();
            let lease = firing
                .get(id)
                .map_err(redb::Error::from)?
                .map(|g| g.value());
            let outcome =
                outcome_of(&outcomes, id, v.value()).map_err(|e| corrupt(e.to_string()))?;
            let record = format::decode_record(id, v.value(), lease, outcome.as_deref())
                .map_err(|e| corrupt(e.to_string()))?;
            outcomes_n += u64::from(outcome.is_some());
            // Finished records may still be indexed (`complete` leaves
            // them; `pending` has them removed), unfinished ones must be.
            let indexed = unfinished.get(id).map_err(redb::Error::from)?.is_some();
            if !indexed && !record.state.is_finished() {
                return Err(corrupt(format!(
                    "record {} is {:?} but not in the unfinished index",
                    MessageId::from_u128(id),
                    record.state
                )));
            }
            if lease.is_some() && !matches!(record.state, herald::RunState::Firing { .. }) {
                return Err(corrupt(format!(
                    "record {} is {:?} but the firing table has {lease:?}",
                    MessageId::from_u128(id),
                    record.state
                )));
            }
            unfinished_n += u64::from(indexed);
            firing_n += u64::from(lease.is_some());
            open += u64::from(!record.state.is_finished());
            n += 1;
        }
        let (u, f, o) = (
            unfinished.len().map_err(redb::Error::from)?,
            firing.len().map_err(redb::Error::from)?,
            outcomes.len().map_err(redb::Error::from)?,
        );
        if u != unfinished_n || f != firing_n || o != outcomes_n {
            return Err(corrupt(format!(
                "the tables hold {u} unfinished ids, {f} claims and {o} outcomes for \
                 {unfinished_n}, {firing_n} and {outcomes_n} records"
            )));
        }
        Ok(RecordCheck {
            records: n,
            unfinished: open,
            indexed: u,
            firing: f,
            outcomes: o,
        })
    }

    fn db(&self) -> Result<Arc<Database>, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.inner
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::Closed)
    }

    /// Queues a write and waits for its answer (after the commit).
    fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(writer::Reply<T>) -> Op,
    ) -> StoreFuture<'static, T> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Box::pin(std::future::ready(Err(StoreError::Closed)));
        }
        let (reply, rx) = oneshot::channel();
        let sent = self.inner.tx.send(op(reply)).is_ok();
        let inner = self.inner.clone();
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            match rx.await {
                Ok(r) => r,
                // Refused during a close, or the request that failed a
                // transaction.
                Err(_) if inner.closed.load(Ordering::Acquire) => Err(StoreError::Closed),
                Err(_) => Err(failure(
                    "herald-redb: the write failed (see the error logged by the writer)",
                )),
            }
        })
    }
}

fn read_record(db: &Database, id: u128) -> Result<Option<Record>, StoreError> {
    let txn = db.begin_read().map_err(redb_failure)?;
    let messages = txn.open_table(MESSAGES).map_err(redb_failure)?;
    let firing = txn.open_table(FIRING).map_err(redb_failure)?;
    let Some(bytes) = messages.get(id).map_err(redb_failure)? else {
        return Ok(None);
    };
    let lease = firing.get(id).map_err(redb_failure)?.map(|g| g.value());
    let outcomes = txn.open_table(OUTCOMES).map_err(redb_failure)?;
    let outcome = outcome_of(&outcomes, id, bytes.value())?;
    format::decode_record(id, bytes.value(), lease, outcome.as_deref())
        .map(Some)
        .map_err(|e| StoreError::Other(Box::new(e)))
}

/// The `outcomes` value of a record stored as scheduled, if it finished.
fn outcome_of(
    outcomes: &redb::ReadOnlyTable<(u64, u128), &'static [u8]>,
    id: u128,
    record: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let p = format::parse(id, record).map_err(|e| StoreError::Other(Box::new(e)))?;
    match p.header.state {
        format::HeaderState::Scheduled { due } => Ok(outcomes
            .get((due, id))
            .map_err(redb_failure)?
            .map(|g| g.value().to_vec())),
        _ => Ok(None),
    }
}

/// Reads a page of unfinished records; also returns the ids of finished
/// records met in the `unfinished` index (which `complete` leaves there).
fn read_pending(
    db: &Database,
    after: Option<MessageId>,
    limit: usize,
) -> Result<(Vec<Record>, Vec<u128>), StoreError> {
    let txn = db.begin_read().map_err(redb_failure)?;
    let unfinished = txn.open_table(UNFINISHED).map_err(redb_failure)?;
    let messages = txn.open_table(MESSAGES).map_err(redb_failure)?;
    let firing = txn.open_table(FIRING).map_err(redb_failure)?;
    let outcomes = txn.open_table(OUTCOMES).map_err(redb_failure)?;
    let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.as_u128()));
    let range = unfinished
        .range::<u128>((lower, Bound::Unbounded))
        .map_err(redb_failure)?;
    let mut out = Vec::with_capacity(limit.min(16_384));
    let mut finished = Vec::new();
    for entry in range {
        if out.len() >= limit {
            break;
        }
        let (k, _) = entry.map_err(redb_failure)?;
        let id = k.value();
        let Some(bytes) = messages.get(id).map_err(redb_failure)? else {
            finished.push(id);
            continue;
        };
        let p = format::parse(id, bytes.value()).map_err(|e| StoreError::Other(Box::new(e)))?;
        let done = match p.header.state {
            format::HeaderState::Scheduled { due } => {
                outcomes.get((due, id)).map_err(redb_failure)?.is_some()
            }
            _ => true,
        };
        if done {
            finished.push(id);
            continue;
        }
        let lease = firing.get(id).map_err(redb_failure)?.map(|g| g.value());
        out.push(
            format::decode_record(id, bytes.value(), lease, None)
                .map_err(|e| StoreError::Other(Box::new(e)))?,
        );
    }
    Ok((out, finished))
}

impl Store for RedbStore {
    fn insert(&self, record: Record) -> StoreFuture<'_, ()> {
        let id = record.envelope.id.as_u128();
        let (state, _, _) = format::header_state_of(&record.state);
        match format::encode_record(&record) {
            Ok((bytes, lease)) => self.write(|reply| Op::Insert {
                id,
                bytes,
                state,
                lease,
                reply,
            }),
            Err(e) => Box::pin(std::future::ready(Err(failure(format!(
                "herald-redb: cannot store message {}: {e}",
                record.envelope.id
            ))))),
        }
    }

    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        let out = self.db().and_then(|db| read_record(&db, id.as_u128()));
        Box::pin(std::future::ready(out))
    }

    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Arc<Envelope>>>> {
        if claims.is_empty() {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        self.write(|reply| Op::Claim {
            claims,
            lease_until: lease_until.as_millis(),
            reply,
        })
    }

    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, ()> {
        if completions.is_empty() {
            return Box::pin(std::future::ready(Ok(())));
        }
        self.write(|reply| Op::Complete { completions, reply })
    }

    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome> {
        self.write(|reply| Op::Cancel {
            id: id.as_u128(),
            reply,
        })
    }

    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<Record>> {
        let db = match self.db() {
            Ok(db) => db,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let store = self.clone();
        let page = move |(records, finished): (Vec<Record>, Vec<u128>)| {
            if !finished.is_empty() && !store.inner.closed.load(Ordering::Acquire) {
                // Tidy the index behind us; nobody waits for it.
                let _ = store.inner.tx.send(Op::Forget { ids: finished });
            }
            records
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if limit > INLINE_PENDING => Box::pin(async move {
                rt.spawn_blocking(move || read_pending(&db, after, limit))
                    .await
                    .unwrap_or_else(|e| Err(failure(format!("herald-redb: pending page: {e}"))))
                    .map(page)
            }),
            _ => Box::pin(std::future::ready(
                read_pending(&db, after, limit).map(page),
            )),
        }
    }

    fn release_expired(&self, before: Tick) -> StoreFuture<'_, u64> {
        self.write(|reply| Op::Release {
            before: before.as_millis(),
            reply,
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        let inner = self.inner.clone();
        Box::pin(async move {
            if inner.closed.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            // Reads now fail with `Closed`; the writer releases its handle
            // after applying everything queued before this.
            drop(inner.db.write().unwrap_or_else(|e| e.into_inner()).take());
            let (reply, rx) = oneshot::channel();
            if inner.tx.send(Op::Close { reply }).is_ok() {
                let _ = rx.await;
            }
            let handle = inner
                .writer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(h) = handle {
                // It has answered, so it is about to return.
                let joined = match tokio::runtime::Handle::try_current() {
                    Ok(rt) => rt
                        .spawn_blocking(move || h.join().is_ok())
                        .await
                        .unwrap_or(false),
                    Err(_) => h.join().is_ok(),
                };
                if !joined {
                    return Err(failure("herald-redb: the writer thread panicked"));
                }
            }
            Ok(())
        })
    }
}
