//! The in-memory [`Store`]: the default for embedding, lost on exit.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use herald_core::Tick;

use super::memory_push::PushJobs;
use super::{
    Amendment, CancelOutcome, Checkpoint, Claim, Claimed, Completion, DueHints, DueRun,
    FencingToken, HintHub, IdempotencyKey, Inserted, JobKey, KeyRecord, Lease, Next, PushJob,
    PushRetry, Record, RunState, Start, Store, StoreError, StoreFuture, StoreStats,
};
use crate::{DeliveryCounts, Envelope, MessageId, PublishStatus};

const SHARDS: usize = 16;

/// A [`Store`] in memory: fast, shared by clones, gone when the process
/// exits.
///
/// # Retention
///
/// By count, not by time: finished records (published, failed, cancelled)
/// are kept for status queries until more than
/// [`retain_finished`](Self::with_retention) finished records exist; then
/// the oldest finished are forgotten (their status becomes `unknown`;
/// [`StoreStats::purged`] counts them). Unfinished records are never
/// dropped. Unlike `herald-redb`'s time-based retention this needs no
/// clock, and the bound is on memory, which is what an in-memory store
/// must bound; a record with push notifications pending is not treated
/// specially (the push pipeline is not wired to this store yet).
/// Idempotency keys are kept until they expire, and forgotten by the next
/// keyed insert after that (by its accept time).
///
/// # Examples
///
/// ```
/// use herald::{Engine, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let engine = Engine::builder().store(MemoryStore::with_retention(10_000)).build();
/// # engine.shutdown().await;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shards: [Mutex<Shard>; SHARDS],
    retain_per_shard: usize,
    /// The last fencing token issued.
    tokens: AtomicU64,
    /// Finished records forgotten.
    purged: AtomicU64,
    /// Idempotency keys.
    keys: Mutex<Keys>,
    /// Push jobs (locked alone, never while a shard is locked).
    jobs: Mutex<PushJobs>,
    /// Whether several engines use this store ([`MemoryStore::new_shared`]).
    shared: bool,
    /// Hints of scheduled runs, for the engines of a shared store.
    hints: HintHub,
}

/// The recorded idempotency keys, and their expiry times in the order
/// they were recorded (to forget expired ones).
#[derive(Debug, Default)]
struct Keys {
    records: HashMap<String, KeyRecord>,
    /// `(expires_at, key)`, oldest first; may name keys replaced since.
    expiry: VecDeque<(Tick, String)>,
}

impl Keys {
    /// Forgets the keys expired at `now` (at the front of `expiry`: the
    /// engine gives every key the same lifetime).
    fn forget_expired(&mut self, now: Tick) {
        while let Some((at, _)) = self.expiry.front()
            && *at <= now
        {
            let Some((at, key)) = self.expiry.pop_front() else {
                break;
            };
            if self.records.get(&key).is_some_and(|r| r.expires_at == at) {
                self.records.remove(&key);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Shard {
    records: HashMap<MessageId, Entry, BuildHasherDefault<IdHasher>>,
    /// Finished ids, oldest first (may hold ids already gone).
    finished: VecDeque<MessageId>,
    /// How many push jobs each message has open: a message with one is
    /// never forgotten (it is queued for retention again when its last
    /// job ends).
    open_jobs: HashMap<MessageId, u32, BuildHasherDefault<IdHasher>>,
}

/// A record and its current claim: the token of the `Firing` state, or of
/// the claim a cancel interrupted (its completion still adds counters).
#[derive(Debug)]
struct Entry {
    record: Record,
    token: Option<FencingToken>,
    /// A reservation of the scheduled run due at `.0`, until `.1` (see
    /// [`Store::reserve_due`]); stale once the due time changed.
    reserved: Option<(Tick, Tick)>,
}

impl Entry {
    /// The scheduled run's due time, if it is scheduled and nobody holds
    /// a live reservation of it at `now`.
    fn reservable(&self, now: Tick) -> Option<Tick> {
        match self.record.state {
            RunState::Scheduled { due }
                if self
                    .reserved
                    .is_none_or(|(at, until)| at != due || until <= now) =>
            {
                Some(due)
            }
            _ => None,
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// The default retention: one million finished records.
    pub const DEFAULT_RETENTION: usize = 1_000_000;

    /// An empty store with the default retention.
    pub fn new() -> Self {
        Self::with_retention(Self::DEFAULT_RETENTION)
    }

    /// An empty store that keeps at most about `retain_finished` finished
    /// records (at least one per internal shard).
    pub fn with_retention(retain_finished: usize) -> Self {
        Self::make(retain_finished, false)
    }

    /// An empty store (default retention) that several engines in this
    /// process share, as nodes share a PostgreSQL store: it says so
    /// ([`Store::is_shared`]), reserves runs by due time and gives hints.
    /// For tests and simulations of a cluster; [`reserve_due`](Store::reserve_due)
    /// scans every record, so it suits thousands of pending messages, not
    /// millions.
    ///
    /// ```
    /// use herald::{Engine, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = MemoryStore::new_shared();
    /// let a = Engine::builder().store(store.clone()).build();
    /// let b = Engine::builder().store(store).build();
    /// # a.shutdown().await;
    /// # b.shutdown().await;
    /// # }
    /// ```
    pub fn new_shared() -> Self {
        Self::make(Self::DEFAULT_RETENTION, true)
    }

    fn make(retain_finished: usize, shared: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
                retain_per_shard: retain_finished.div_ceil(SHARDS).max(1),
                tokens: AtomicU64::new(0),
                purged: AtomicU64::new(0),
                keys: Mutex::new(Keys::default()),
                jobs: Mutex::new(PushJobs::default()),
                shared,
                hints: HintHub::new(),
            }),
        }
    }

    /// How many records are held (finished ones included).
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| lock(s).records.len())
            .sum()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, id: MessageId) -> MutexGuard<'_, Shard> {
        // The low bits of an id are random (see `MessageId`).
        lock(&self.inner.shards[(id.as_u128() as usize) % SHARDS])
    }

    fn jobs(&self) -> MutexGuard<'_, PushJobs> {
        self.inner.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells the engines of a shared store about a run scheduled at `due`.
    fn hint(&self, due: Tick) {
        if self.inner.shared {
            self.inner.hints.hint(due);
        }
    }

    fn token(&self) -> FencingToken {
        FencingToken::new(self.inner.tokens.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// Hashes a [`MessageId`] by folding its bits: ids already end in random
/// bits (see `MessageId`), so SipHash's work buys nothing here. The shard
/// index uses the lowest bits; the fold mixes in the high half so the
/// table's own bucket bits differ from the shard's.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `MessageId` (it hashes one `u128`); FNV-1a keeps
        // any other use correct.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u128(&mut self, n: u128) {
        let folded = (n as u64) ^ ((n >> 64) as u64).rotate_left(29);
        self.0 = folded.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23);
    }
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave a record half-written
    // (every update is a single assignment), so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shard {
    /// Records that `id` finished; forgets the oldest finished records past
    /// `retain`, counting them in `purged`.
    fn finish(&mut self, id: MessageId, retain: usize, purged: &AtomicU64) {
        self.finished.push_back(id);
        while self.finished.len() > retain {
            let Some(old) = self.finished.pop_front() else {
                break;
            };
            if !self.open_jobs.contains_key(&old)
                && self
                    .records
                    .get(&old)
                    .is_some_and(|e| e.record.state.is_finished())
            {
                self.records.remove(&old);
                purged.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn ready<T: Send + 'static>(v: Result<T, StoreError>) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(v))
}

impl MemoryStore {
    fn insert_now(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
    ) -> Result<Option<FencingToken>, StoreError> {
        let id = envelope.id;
        let (state, token) = match start {
            Start::At(due) => (RunState::Scheduled { due }, None),
            Start::Claimed { due, lease_until } => {
                let token = self.token();
                (
                    RunState::Firing {
                        due,
                        lease_until,
                        token,
                    },
                    Some(token),
                )
            }
        };
        let mut shard = self.shard(id);
        match shard.records.entry(id) {
            MapEntry::Occupied(_) => Err(StoreError::Duplicate(id)),
            MapEntry::Vacant(slot) => {
                slot.insert(Entry {
                    record: Record {
                        envelope,
                        state,
                        counts: DeliveryCounts::default(),
                        error: None,
                    },
                    token,
                    reserved: None,
                });
                drop(shard);
                if let Start::At(due) = start {
                    self.hint(due);
                }
                Ok(token)
            }
        }
    }
}

impl Store for MemoryStore {
    fn insert(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
    ) -> StoreFuture<'_, Option<FencingToken>> {
        ready(self.insert_now(envelope, start))
    }

    fn insert_idempotent(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
        key: IdempotencyKey,
    ) -> StoreFuture<'_, Inserted> {
        // The key map's lock is held across the insert: the key and the
        // message are recorded together, and racing inserts with one key
        // are ordered by it.
        let mut keys = self.inner.keys.lock().unwrap_or_else(|e| e.into_inner());
        let now = envelope.accepted_at;
        keys.forget_expired(now);
        if let Some(found) = keys.records.get(&key.key)
            && found.expires_at > now
        {
            return ready(Ok(Inserted::Existing(found.clone())));
        }
        let id = envelope.id;
        let status = match start {
            Start::At(_) => PublishStatus::Scheduled,
            Start::Claimed { .. } => PublishStatus::Published,
        };
        let token = match self.insert_now(envelope, start) {
            Ok(token) => token,
            Err(e) => return ready(Err(e)),
        };
        keys.expiry.push_back((key.expires_at, key.key.clone()));
        keys.records.insert(
            key.key,
            KeyRecord {
                id,
                fingerprint: key.fingerprint,
                status,
                expires_at: key.expires_at,
            },
        );
        ready(Ok(Inserted::New(token)))
    }

    fn idempotency_key(&self, key: &str) -> StoreFuture<'_, Option<KeyRecord>> {
        let keys = self.inner.keys.lock().unwrap_or_else(|e| e.into_inner());
        ready(Ok(keys.records.get(key).cloned()))
    }

    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        ready(Ok(self
            .shard(id)
            .records
            .get(&id)
            .map(|e| e.record.clone())))
    }

    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Claimed>>> {
        let out = claims
            .into_iter()
            .map(|c| {
                let mut shard = self.shard(c.id);
                let e = shard.records.get_mut(&c.id)?;
                match e.record.state {
                    RunState::Scheduled { due } if due == c.due => {
                        let token = self.token();
                        e.record.state = RunState::Firing {
                            due,
                            lease_until,
                            token,
                        };
                        e.token = Some(token);
                        Some(Claimed {
                            token,
                            envelope: e.record.envelope.clone(),
                        })
                    }
                    _ => None,
                }
            })
            .collect();
        ready(Ok(out))
    }

    fn renew(&self, leases: Vec<Lease>, lease_until: Tick) -> StoreFuture<'_, Vec<bool>> {
        let out = leases
            .into_iter()
            .map(|l| {
                let mut shard = self.shard(l.id);
                let Some(e) = shard.records.get_mut(&l.id) else {
                    return false;
                };
                match &mut e.record.state {
                    RunState::Firing {
                        lease_until: lease,
                        token,
                        ..
                    } if *token == l.token => {
                        *lease = lease_until;
                        true
                    }
                    _ => false,
                }
            })
            .collect();
        ready(Ok(out))
    }

    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, Vec<bool>> {
        let retain = self.inner.retain_per_shard;
        let mut earliest: Option<Tick> = None;
        let out = completions
            .into_iter()
            .map(|c| {
                let mut shard = self.shard(c.id);
                let Some(e) = shard.records.get_mut(&c.id) else {
                    return false;
                };
                if e.token != Some(c.token) {
                    return false;
                }
                e.token = None;
                e.record.counts.add(&c.counts);
                if !matches!(e.record.state, RunState::Firing { .. }) {
                    // Cancelled while firing: counters only.
                    return true;
                }
                match c.next {
                    Next::At(due) => {
                        e.record.state = RunState::Scheduled { due };
                        earliest = Some(earliest.map_or(due, |t| t.min(due)));
                    }
                    Next::Done => e.record.state = RunState::Published,
                    Next::Failed(error) => {
                        e.record.state = RunState::Failed;
                        e.record.error = Some(error);
                    }
                }
                if e.record.state.is_finished() {
                    shard.finish(c.id, retain, &self.inner.purged);
                }
                true
            })
            .collect();
        if let Some(due) = earliest {
            self.hint(due);
        }
        ready(Ok(out))
    }

    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome> {
        let mut shard = self.shard(id);
        let out = match shard.records.get_mut(&id) {
            None => CancelOutcome::NotFound,
            Some(e) if e.record.state.is_finished() => CancelOutcome::Finished(e.record.clone()),
            Some(e) => {
                // A firing run's token stays current for its completion.
                e.record.state = RunState::Cancelled;
                let after = e.record.clone();
                shard.finish(id, self.inner.retain_per_shard, &self.inner.purged);
                CancelOutcome::Cancelled(after)
            }
        };
        ready(Ok(out))
    }

    fn amend(&self, amendments: Vec<Amendment>) -> StoreFuture<'_, ()> {
        for a in amendments {
            let mut shard = self.shard(a.id);
            let Some(e) = shard.records.get_mut(&a.id) else {
                continue;
            };
            e.record.counts.add(&a.counts);
            if let Some(error) = a.error {
                e.record.error = Some(error);
            }
            if a.fail && e.record.state == RunState::Published {
                e.record.state = RunState::Failed;
            }
        }
        ready(Ok(()))
    }

    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<DueRun>> {
        let mut out: Vec<DueRun> = Vec::new();
        for s in &self.inner.shards {
            let shard = lock(s);
            out.extend(
                shard
                    .records
                    .iter()
                    .filter_map(|(&id, e)| match e.record.state {
                        RunState::Scheduled { due } if after.is_none_or(|a| id > a) => {
                            Some(DueRun { id, due })
                        }
                        _ => None,
                    }),
            );
        }
        out.sort_unstable_by_key(|r| r.id);
        out.truncate(limit);
        ready(Ok(out))
    }

    fn release_expired(&self, before: Tick) -> StoreFuture<'_, Vec<DueRun>> {
        let mut out = Vec::new();
        for s in &self.inner.shards {
            let mut shard = lock(s);
            for (&id, e) in &mut shard.records {
                if let RunState::Firing {
                    due, lease_until, ..
                } = e.record.state
                    && lease_until < before
                {
                    e.record.state = RunState::Scheduled { due };
                    e.token = None;
                    out.push(DueRun { id, due });
                }
            }
        }
        if let Some(due) = out.iter().map(|r| r.due).min() {
            self.hint(due);
        }
        ready(Ok(out))
    }

    fn is_shared(&self) -> bool {
        self.inner.shared
    }

    fn reserve_due(
        &self,
        now: Tick,
        before: Tick,
        hold_ms: u64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<DueRun>> {
        if !self.inner.shared {
            return ready(Err(StoreError::other(
                "this store is not shared (MemoryStore::new_shared is): it does not reserve runs",
            )));
        }
        // The candidates, earliest first; then each is reserved under its
        // shard's lock if it still may be (so concurrent callers never
        // reserve the same run).
        let mut candidates: Vec<(Tick, MessageId)> = Vec::new();
        for s in &self.inner.shards {
            let shard = lock(s);
            candidates.extend(shard.records.iter().filter_map(|(&id, e)| {
                e.reservable(now)
                    .filter(|&due| due < before)
                    .map(|due| (due, id))
            }));
        }
        candidates.sort_unstable();
        let mut out = Vec::with_capacity(candidates.len().min(limit));
        for (due, id) in candidates {
            if out.len() == limit {
                break;
            }
            let mut shard = self.shard(id);
            let Some(e) = shard.records.get_mut(&id) else {
                continue;
            };
            if e.reservable(now) == Some(due) {
                e.reserved = Some((due, due.max(now).saturating_add_millis(hold_ms)));
                out.push(DueRun { id, due });
            }
        }
        ready(Ok(out))
    }

    fn due_hints(&self) -> Option<DueHints> {
        self.inner.shared.then(|| self.inner.hints.subscribe())
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            purged: self.inner.purged.load(Ordering::Relaxed),
            ..StoreStats::default()
        }
    }

    fn add_push_jobs(&self, keys: Vec<JobKey>) -> StoreFuture<'_, ()> {
        let added = self.jobs().add(keys);
        for key in added {
            *self
                .shard(key.message)
                .open_jobs
                .entry(key.message)
                .or_default() += 1;
        }
        ready(Ok(()))
    }

    fn claim_push_jobs(
        &self,
        expired_before: Tick,
        lease_until: Tick,
        limit: usize,
    ) -> StoreFuture<'_, Vec<PushJob>> {
        let claimed = self
            .jobs()
            .claim(expired_before, lease_until, limit, || self.token());
        ready(Ok(claimed))
    }

    fn push_retries(&self, key: JobKey, limit: usize) -> StoreFuture<'_, Vec<PushRetry>> {
        ready(Ok(self.jobs().retries(key, limit)))
    }

    fn checkpoint_push(&self, checkpoints: Vec<Checkpoint>) -> StoreFuture<'_, Vec<bool>> {
        let retain = self.inner.retain_per_shard;
        let out = checkpoints
            .into_iter()
            .map(|cp| {
                let Some(finished) = self.jobs().checkpoint(&cp) else {
                    return false;
                };
                let id = cp.key.message;
                let mut shard = self.shard(id);
                if let Some(e) = shard.records.get_mut(&id) {
                    e.record.counts.add(&cp.counts);
                    if let Some(error) = cp.error {
                        e.record.error = Some(error);
                    }
                    if cp.fail && e.record.state == RunState::Published {
                        e.record.state = RunState::Failed;
                    }
                }
                if finished {
                    let left = shard.open_jobs.get_mut(&id).map(|n| {
                        *n -= 1;
                        *n
                    });
                    if left == Some(0) {
                        shard.open_jobs.remove(&id);
                        if shard
                            .records
                            .get(&id)
                            .is_some_and(|e| e.record.state.is_finished())
                        {
                            shard.finish(id, retain, &self.inner.purged);
                        }
                    }
                }
                true
            })
            .collect();
        ready(Ok(out))
    }
}
