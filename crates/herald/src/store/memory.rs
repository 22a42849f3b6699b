//! The in-memory [`Store`]: the default for embedding, lost on exit.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use herald_core::Tick;

use super::{
    CancelOutcome, Claim, Completion, Next, Record, RunState, Store, StoreError, StoreFuture,
};
use crate::{Envelope, MessageId};

const SHARDS: usize = 16;

/// A [`Store`] in memory: fast, shared by clones, gone when the process
/// exits.
///
/// Finished records (published, failed, cancelled) are kept for status
/// queries until more than [`retain_finished`](Self::with_retention)
/// finished records exist; then the oldest are forgotten (their status
/// becomes `unknown`). Unfinished records are never dropped.
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
    shards: Arc<[Mutex<Shard>; SHARDS]>,
    retain_per_shard: usize,
}

#[derive(Debug, Default)]
struct Shard {
    records: HashMap<MessageId, Record, BuildHasherDefault<IdHasher>>,
    /// Finished ids, oldest first (may hold ids already gone).
    finished: VecDeque<MessageId>,
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
        Self {
            shards: Arc::new(std::array::from_fn(|_| Mutex::new(Shard::default()))),
            retain_per_shard: retain_finished.div_ceil(SHARDS).max(1),
        }
    }

    /// How many records are held (finished ones included).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).records.len()).sum()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, id: MessageId) -> MutexGuard<'_, Shard> {
        // The low bits of an id are random (see `MessageId`).
        lock(&self.shards[(id.as_u128() as usize) % SHARDS])
    }
}

/// Hashes a [`MessageId`] by folding its bits: ids already end in 62
/// random bits (see `MessageId`), so SipHash's work buys nothing here. The
/// shard index uses the lowest bits; the fold mixes in the high half so the
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
    fn finish(&mut self, id: MessageId, retain: usize) {
        self.finished.push_back(id);
        while self.finished.len() > retain {
            let Some(old) = self.finished.pop_front() else {
                break;
            };
            if self
                .records
                .get(&old)
                .is_some_and(|r| r.state.is_finished())
            {
                self.records.remove(&old);
            }
        }
    }
}

fn ready<T: Send + 'static>(v: Result<T, StoreError>) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(v))
}

impl Store for MemoryStore {
    fn insert(&self, record: Record) -> StoreFuture<'_, ()> {
        let id = record.envelope.id;
        let mut shard = self.shard(id);
        let finished = record.state.is_finished();
        match shard.records.entry(id) {
            Entry::Occupied(_) => return ready(Err(StoreError::Duplicate(id))),
            Entry::Vacant(slot) => {
                slot.insert(record);
            }
        }
        if finished {
            shard.finish(id, self.retain_per_shard);
        }
        ready(Ok(()))
    }

    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        ready(Ok(self.shard(id).records.get(&id).cloned()))
    }

    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Arc<Envelope>>>> {
        let out = claims
            .into_iter()
            .map(|c| {
                let mut shard = self.shard(c.id);
                let r = shard.records.get_mut(&c.id)?;
                match r.state {
                    RunState::Scheduled { due } if due == c.due => {
                        r.state = RunState::Firing { due, lease_until };
                        Some(r.envelope.clone())
                    }
                    _ => None,
                }
            })
            .collect();
        ready(Ok(out))
    }

    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, ()> {
        for c in completions {
            let mut shard = self.shard(c.id);
            let Some(r) = shard.records.get_mut(&c.id) else {
                continue;
            };
            r.counts.add(&c.counts);
            match &r.state {
                RunState::Firing { due, .. } if *due == c.due => {}
                // Cancelled while firing, or a stale completion (the lease
                // expired and the run went to someone else): counters only.
                _ => continue,
            }
            r.state = match c.next {
                Next::At(due) => RunState::Scheduled { due },
                Next::Done => RunState::Published,
                Next::Failed(error) => RunState::Failed { error },
            };
            if r.state.is_finished() {
                shard.finish(c.id, self.retain_per_shard);
            }
        }
        ready(Ok(()))
    }

    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome> {
        let mut shard = self.shard(id);
        let out = match shard.records.get_mut(&id) {
            None => CancelOutcome::NotFound,
            Some(r) if r.state.is_finished() => CancelOutcome::Finished(r.clone()),
            Some(r) => {
                r.state = RunState::Cancelled;
                let after = r.clone();
                shard.finish(id, self.retain_per_shard);
                CancelOutcome::Cancelled(after)
            }
        };
        ready(Ok(out))
    }

    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<Record>> {
        let mut out: Vec<Record> = Vec::new();
        for s in self.shards.iter() {
            let shard = lock(s);
            out.extend(
                shard
                    .records
                    .values()
                    .filter(|r| !r.state.is_finished() && after.is_none_or(|a| r.envelope.id > a))
                    .cloned(),
            );
        }
        out.sort_unstable_by_key(|r| r.envelope.id);
        out.truncate(limit);
        ready(Ok(out))
    }

    fn release_expired(&self, before: Tick) -> StoreFuture<'_, u64> {
        let mut n = 0;
        for s in self.shards.iter() {
            let mut shard = lock(s);
            for r in shard.records.values_mut() {
                if let RunState::Firing { due, lease_until } = r.state
                    && lease_until < before
                {
                    r.state = RunState::Scheduled { due };
                    n += 1;
                }
            }
        }
        ready(Ok(n))
    }
}
