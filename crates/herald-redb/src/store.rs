//! `RedbStore`: the handle, and its [`Store`] implementation (writes go to
//! the writer thread, reads to read transactions).

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use herald::codec::{PlanCache, encode_envelope};
use herald::{
    Amendment, CancelOutcome, Checkpoint, Claim, Claimed, Completion, DueRun, Envelope,
    FencingToken, IdempotencyKey, Inserted, JobKey, KeyRecord, Lease, MessageId, Next, PushJob,
    PushRetry, Record, Start, Store, StoreError, StoreFuture, StoreStats,
};
use herald_core::Tick;
use redb::Database;
use tokio::sync::oneshot;

use crate::error::{damaged, other, quarantined};
use crate::header::Header;
use crate::migrate::Migration;
use crate::read;
use crate::writer::{self, CancelAnswer, Insert, KeyInsert, Op, PushOp};

/// Pages of `pending` longer than this are read on tokio's blocking pool.
const INLINE_PENDING: usize = 256;

/// Claimed batches larger than this have their envelopes read and decoded
/// on tokio's blocking pool.
const INLINE_CLAIMED: usize = 32;

/// A durable [`Store`] in a redb file: see the [crate docs](crate).
///
/// Cheap to clone; clones share the database, its writer thread and its
/// [`PlanCache`]. The database stays open until [`Store::close`] (which
/// [`Engine::shutdown`](herald::Engine::shutdown) calls) or until the last
/// clone is dropped; after `close`, every method fails with
/// [`StoreError::Closed`].
///
/// # Retention
///
/// A message is *final* once it is finished (published, failed or
/// cancelled), none of its push notifications is pending and none of its
/// push jobs is open. A final message is purged [`RedbOptions::retention`](crate::RedbOptions::retention) after it became final (on
/// the store's clock, [`RedbOptions::clock`](crate::RedbOptions::clock)): a one-off after its run, a
/// repeating message after its last run or its cancel. A status read of a
/// purged id then answers `unknown`. The writer thread purges in its idle
/// time, oldest first, at most 128 messages per (non-durable) transaction,
/// so writes never wait long for it; [`purge`](Self::purge) does it now.
///
/// A push job keeps its message: a message that finishes while one of its
/// jobs is open is not final yet, and one that gets a job after it
/// finished stops being final. When its last job ends (a checkpoint with
/// `finished`) and nothing is pending, it is final from then, and
/// retention counts from there.
///
/// # Push jobs
///
/// [`add_push_jobs`](Store::add_push_jobs),
/// [`claim_push_jobs`](Store::claim_push_jobs) and
/// [`checkpoint_push`](Store::checkpoint_push) are writer requests,
/// group-committed with every other write and answered after the durable
/// commit (`Unavailable` during an outage);
/// [`push_retries`](Store::push_retries) is a read transaction. Tokens
/// come from the store's one counter, so a job's token never repeats a
/// run's or another job's, across restarts too.
///
/// A claim walks an index of the jobs by lease from its start (new jobs
/// have lease 0), so it reads the jobs it takes and stops at the first
/// one still leased: its cost is the claim, not the number of jobs. When
/// more than `limit` jobs are claimable, it takes those whose lease ended
/// first (new ones first; equal leases in key order) and answers them in
/// key order. A checkpoint is one step: the job's record and lease entry,
/// its retries (a device's retry is found by an index, not a scan), and
/// the message's counters, error and `fail` (applied as
/// [`amend`](Store::amend) applies them) change together or not at all. A
/// job record that does not decode is `StoreError::Other` naming the job;
/// a request that meets one (a claim that reaches it, a checkpoint of it)
/// changes nothing, and until the record is repaired every claim that
/// reaches its lease entry fails.
///
/// # Device registry and templates
///
/// A `RedbStore` is also a [`DeviceRegistry`](herald::DeviceRegistry) and a
/// [`TemplateStore`](herald::TemplateStore) (give a clone to
/// [`EngineBuilder::registry`](herald::EngineBuilder::registry) and
/// [`EngineBuilder::templates`](herald::EngineBuilder::templates)): its
/// writes are durable and group-committed like the message writes, and a
/// channel page costs the page, not the channel. Nothing of the registry
/// is purged by retention; expired registrations go with
/// [`purge_expired`](herald::DeviceRegistry::purge_expired).
///
/// ```
/// use herald::{DeviceRegistration, DeviceRegistry, Store};
/// use herald_redb::RedbStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("herald-redb-registry-{}", std::process::id()));
/// let store = RedbStore::open(&dir)?;
/// let body = serde_json::json!({"deviceId": "d1", "deviceToken": "t", "os": "IOS", "channels": ["news"]});
/// store.register(DeviceRegistration::from_json(&body)?).await?;
/// store.close().await?;
///
/// let store = RedbStore::open(&dir)?;
/// let page = store.channel_devices("news", None, 100).await?;
/// assert_eq!(page[0].device_id, "d1");
/// store.close().await?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedbStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The file, the database and the counters, shared with the writer.
    pub(crate) shared: Arc<writer::Shared>,
    pub(crate) tx: Sender<Op>,
    pub(crate) closed: AtomicBool,
    pub(crate) writer: Mutex<Option<JoinHandle<()>>>,
    /// Parsed plans of repeating messages, by id.
    pub(crate) plans: PlanCache,
    /// What the open migrated, if anything.
    pub(crate) migration: Option<Migration>,
}

/// What the writer thread has done since the store was opened (see
/// [`RedbStore::writer_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Write transactions run (each one durable commit, unless it failed).
    pub transactions: u64,
    /// Write requests applied (`insert`, `claim`, `renew`, `complete`,
    /// `cancel`, `amend`, `release_expired` calls, the push-job and
    /// registry writes, and the store's own tidying and quarantining):
    /// `requests / transactions` is the mean group-commit batch.
    pub requests: u64,
    /// Transactions that failed (every request in them got the error).
    pub failed: u64,
    /// Time spent applying and committing transactions (from a
    /// transaction's first request to the end of its commit: this includes
    /// the time it waits for more requests, see `committing`).
    pub busy: std::time::Duration,
    /// Of `busy`, the time in redb's durable commits (writing the dirty
    /// pages and the fsync); `busy - committing` is gathering and applying
    /// the requests.
    pub committing: std::time::Duration,
    /// Time spent answering the callers of committed transactions (a
    /// wake-up each), after `busy`.
    pub answering: std::time::Duration,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.shared.path)
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
        self.shared.close_db();
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

/// A future already resolved to `v`.
pub(crate) fn ready<T: Send + 'static>(v: Result<T, StoreError>) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(v))
}

/// Runs `read` on tokio's blocking pool when `big` and a runtime is there,
/// else inline.
pub(crate) async fn off_thread<T: Send + 'static>(
    big: bool,
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) if big => rt
            .spawn_blocking(read)
            .await
            .unwrap_or_else(|e| Err(other(format!("herald-redb: read task: {e}")))),
        _ => read(),
    }
}

impl RedbStore {
    /// The bytes redb's page cache holds now (at most
    /// [`RedbOptions::cache_bytes`](crate::RedbOptions::cache_bytes)); 0
    /// while the database is closed or being reopened.
    pub fn cache_used_bytes(&self) -> usize {
        use redb::ReadableDatabase;
        self.inner
            .shared
            .read_db()
            .map_or(0, |db| db.cache_stats().used_bytes())
    }

    /// The writer thread's counters: transactions, requests, where its time
    /// went.
    pub fn writer_stats(&self) -> WriterStats {
        let c = &self.inner.shared.counters;
        WriterStats {
            transactions: c.transactions.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            busy: std::time::Duration::from_nanos(c.commit_nanos.load(Ordering::Relaxed)),
            committing: std::time::Duration::from_nanos(c.durable_nanos.load(Ordering::Relaxed)),
            answering: std::time::Duration::from_nanos(c.answer_nanos.load(Ordering::Relaxed)),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.shared.path
    }

    /// Purges now every final message whose retention has run out (the
    /// writer also does it by itself, in its idle time); returns how many
    /// it removed. Does nothing without a retention.
    ///
    /// # Errors
    ///
    /// [`StoreError::Closed`] after `close`; a redb failure.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        self.write(|reply| Op::Purge { reply }).await
    }

    /// The count of messages purged since the store was opened, as a
    /// watch (tests wait for the writer's own purges with it).
    #[doc(hidden)]
    pub fn watch_purged(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.shared.purged.subscribe()
    }

    /// What [`open`](Self::open) migrated from an older format, if it did.
    pub fn migration(&self) -> Option<&Migration> {
        self.inner.migration.as_ref()
    }

    pub(crate) fn db(&self) -> Result<Arc<Database>, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.inner.shared.read_db()
    }

    /// Queues a write and waits for its answer (after the commit).
    pub(crate) fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(writer::Reply<T>) -> Op,
    ) -> StoreFuture<'static, T> {
        Box::pin(self.queue(op))
    }

    /// [`write`](Self::write) unboxed, for a caller whose own future is
    /// boxed (one allocation per request, not one per layer).
    fn queue<T: Send + 'static>(
        &self,
        op: impl FnOnce(writer::Reply<T>) -> Op,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'static {
        let queued = if self.inner.closed.load(Ordering::Acquire) {
            None
        } else {
            let (reply, rx) = oneshot::channel();
            self.inner.tx.send(op(reply)).is_ok().then_some(rx)
        };
        let inner = self.inner.clone();
        async move {
            let Some(rx) = queued else {
                return Err(StoreError::Closed);
            };
            match rx.await {
                Ok(r) => r,
                // The writer answers everything it takes, even while
                // closing; a reply dropped unanswered means it is gone.
                Err(_) if inner.closed.load(Ordering::Acquire) => Err(StoreError::Closed),
                Err(_) => Err(other(
                    "herald-redb: the writer thread stopped (see the log)",
                )),
            }
        }
    }

    /// Reads and decodes the envelopes of the runs the writer claimed;
    /// quarantines those that do not decode (they answer `None`).
    async fn claimed(
        &self,
        taken: Vec<Option<(u128, FencingToken)>>,
    ) -> Result<Vec<Option<Claimed>>, StoreError> {
        let n = taken.iter().flatten().count();
        if n == 0 {
            return Ok(taken.into_iter().map(|_| None).collect());
        }
        let db = self.db()?;
        let store = self.clone();
        let page = off_thread(n > INLINE_CLAIMED, move || {
            read::claimed(&db, &store.inner.plans, &taken)
        })
        .await?;
        if !page.damaged.is_empty() {
            for (id, _) in &page.damaged {
                self.inner.plans.remove(MessageId::from_u128(*id));
            }
            let damaged = page.damaged;
            // The claims are committed: answer them even if moving the
            // damaged ones aside fails (their claims then expire, and the
            // next claim tries again).
            if let Err(e) = self.write(|reply| Op::Quarantine { damaged, reply }).await {
                tracing::error!(error = %e, "herald-redb: could not quarantine damaged messages");
            }
        }
        Ok(page.claimed)
    }

    /// The record of a message the writer cancelled (or found finished).
    async fn cancelled(&self, id: u128, header: Header) -> Result<Record, StoreError> {
        let db = self.db()?;
        // Finished either way: its plan is not worth caching.
        match read::cancelled(&db, &PlanCache::new(0), id)? {
            Ok(envelope) => Ok(read::record(envelope, header, None)),
            Err(e) => {
                let reason = format!("envelope: {e}");
                let damaged = vec![(id, reason.clone())];
                self.write(|reply| Op::Quarantine { damaged, reply })
                    .await?;
                Err(quarantined(id, reason))
            }
        }
    }
}

impl RedbStore {
    /// An insert, with or without an idempotency key (unboxed: see
    /// [`queue`](Self::queue)).
    fn insert_keyed(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
        key: Option<IdempotencyKey>,
    ) -> impl Future<Output = Result<Inserted, StoreError>> + Send + '_ {
        let id = envelope.id;
        let queued = match encode_envelope(&envelope) {
            Ok(bytes) => {
                let (due, lease_until) = match start {
                    Start::At(due) => (due, None),
                    Start::Claimed { due, lease_until } => (due, Some(lease_until.as_millis())),
                };
                let req = Insert {
                    id: id.as_u128(),
                    header: Header::scheduled(due.as_millis()).encode(),
                    envelope: bytes,
                    due: due.as_millis(),
                    lease_until,
                    accepted_at: envelope.accepted_at.as_millis(),
                    key: key.map(|k| {
                        Box::new(KeyInsert {
                            key: k.key,
                            fingerprint: k.fingerprint,
                            expires_at: k.expires_at.as_millis(),
                        })
                    }),
                };
                Ok(self.queue(|reply| Op::Insert(req, reply)))
            }
            Err(e) => Err(damaged(id.as_u128(), format!("cannot store it: {e}"))),
        };
        async move {
            // The request comes back (see `Op::Insert`): dropped here, on
            // a caller's thread.
            let (inserted, _request) = queued?.await?;
            if matches!(inserted, Inserted::New(_)) && envelope.plan.is_repeating() {
                // Stored (not a duplicate): its runs are claimed without
                // parsing the plan again.
                self.inner.plans.insert(id, envelope.plan.clone());
            }
            Ok(inserted)
        }
    }
}

impl Store for RedbStore {
    fn insert(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
    ) -> StoreFuture<'_, Option<FencingToken>> {
        let inserted = self.insert_keyed(envelope, start, None);
        // One allocation for the whole insert.
        Box::pin(async move {
            match inserted.await? {
                Inserted::New(token) => Ok(token),
                Inserted::Existing(_) => {
                    Err(other("herald-redb: an insert without a key found one"))
                }
            }
        })
    }

    fn insert_idempotent(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
        key: IdempotencyKey,
    ) -> StoreFuture<'_, Inserted> {
        Box::pin(self.insert_keyed(envelope, start, Some(key)))
    }

    fn idempotency_key(&self, key: &str) -> StoreFuture<'_, Option<KeyRecord>> {
        ready(self.db().and_then(|db| read::idempotency_key(&db, key)))
    }

    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        ready(
            self.db()
                .and_then(|db| read::get(&db, &self.inner.plans, id.as_u128())),
        )
    }

    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Claimed>>> {
        if claims.is_empty() {
            return ready(Ok(Vec::new()));
        }
        let taken = self.write(|reply| Op::Claim {
            claims,
            lease_until: lease_until.as_millis(),
            reply,
        });
        Box::pin(async move { self.claimed(taken.await?).await })
    }

    fn renew(&self, leases: Vec<Lease>, lease_until: Tick) -> StoreFuture<'_, Vec<bool>> {
        if leases.is_empty() {
            return ready(Ok(Vec::new()));
        }
        self.write(|reply| Op::Renew {
            leases,
            lease_until: lease_until.as_millis(),
            reply,
        })
    }

    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, Vec<bool>> {
        if completions.is_empty() {
            return ready(Ok(Vec::new()));
        }
        let finished: Vec<MessageId> = completions
            .iter()
            .filter(|c| !matches!(c.next, Next::At(_)))
            .map(|c| c.id)
            .collect();
        let applied = self.write(|reply| Op::Complete { completions, reply });
        Box::pin(async move {
            let applied = applied.await?;
            for id in finished {
                self.inner.plans.remove(id);
            }
            Ok(applied)
        })
    }

    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome> {
        let raw = id.as_u128();
        let answer = self.write(|reply| Op::Cancel { id: raw, reply });
        Box::pin(async move {
            let answer = answer.await?;
            self.inner.plans.remove(id);
            Ok(match answer {
                CancelAnswer::NotFound => CancelOutcome::NotFound,
                CancelAnswer::Cancelled(h) => {
                    CancelOutcome::Cancelled(self.cancelled(raw, h).await?)
                }
                CancelAnswer::Finished(h) => CancelOutcome::Finished(self.cancelled(raw, h).await?),
            })
        })
    }

    fn amend(&self, amendments: Vec<Amendment>) -> StoreFuture<'_, ()> {
        if amendments.is_empty() {
            return ready(Ok(()));
        }
        self.write(|reply| Op::Amend { amendments, reply })
    }

    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<DueRun>> {
        let db = match self.db() {
            Ok(db) => db,
            Err(e) => return ready(Err(e)),
        };
        Box::pin(async move {
            let page = off_thread(limit > INLINE_PENDING, move || {
                read::pending(&db, after, limit)
            })
            .await?;
            if !page.finished.is_empty() && !self.inner.closed.load(Ordering::Acquire) {
                // Tidy `schedule` behind us; nobody waits for it.
                let _ = self.inner.tx.send(Op::Forget {
                    runs: page.finished,
                });
            }
            Ok(page.runs)
        })
    }

    fn release_expired(&self, before: Tick) -> StoreFuture<'_, Vec<DueRun>> {
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
            inner.shared.close_db();
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
                    return Err(other("herald-redb: the writer thread panicked"));
                }
            }
            Ok(())
        })
    }

    fn add_push_jobs(&self, keys: Vec<JobKey>) -> StoreFuture<'_, ()> {
        if keys.is_empty() {
            return ready(self.db().map(|_| ()));
        }
        self.write(|reply| Op::Push(PushOp::Add { keys, reply }))
    }

    fn claim_push_jobs(
        &self,
        expired_before: Tick,
        lease_until: Tick,
        limit: usize,
    ) -> StoreFuture<'_, Vec<PushJob>> {
        if limit == 0 {
            return ready(self.db().map(|_| Vec::new()));
        }
        self.write(|reply| {
            Op::Push(PushOp::Claim {
                expired_before: expired_before.as_millis(),
                lease_until: lease_until.as_millis(),
                limit,
                reply,
            })
        })
    }

    fn push_retries(&self, key: JobKey, limit: usize) -> StoreFuture<'_, Vec<PushRetry>> {
        if limit == 0 {
            return ready(self.db().map(|_| Vec::new()));
        }
        let db = match self.db() {
            Ok(db) => db,
            Err(e) => return ready(Err(e)),
        };
        Box::pin(off_thread(limit > INLINE_PENDING, move || {
            crate::push::read::retries(&db, key, limit)
        }))
    }

    fn checkpoint_push(&self, checkpoints: Vec<Checkpoint>) -> StoreFuture<'_, Vec<bool>> {
        if checkpoints.is_empty() {
            return ready(self.db().map(|_| Vec::new()));
        }
        self.write(|reply| Op::Push(PushOp::Checkpoint { checkpoints, reply }))
    }

    fn stats(&self) -> StoreStats {
        let c = &self.inner.shared.counters;
        let mut s = StoreStats::default();
        s.quarantined = c.quarantined.load(Ordering::Relaxed);
        s.purged = c.purged.load(Ordering::Relaxed);
        s.unavailable = self.inner.shared.unavailable();
        s
    }
}
