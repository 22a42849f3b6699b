//! The `Store` conformance suite and the push-job conformance suite
//! (`herald-testkit`), every check on a `RedbStore` in a fresh directory
//! that is removed afterwards (after `check_records` found every table
//! consistent).

use std::sync::Arc;

use herald::{
    Amendment, CancelOutcome, Checkpoint, Claim, Claimed, Completion, DueRun, Envelope,
    FencingToken, IdempotencyKey, Inserted, JobKey, KeyRecord, Lease, MessageId, PushJob,
    PushRetry, Record, Start, Store, StoreFuture, StoreStats,
};
use herald_core::Tick;
use herald_redb::{RedbOptions, RedbStore};
use herald_testkit::TempDir;

/// A `RedbStore` in its own temporary directory; dropping it closes the
/// database (the store is dropped first) and removes the directory.
#[derive(Debug)]
struct Scratch {
    store: RedbStore,
    _dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = TempDir::new("conformance");
        // The suite's times are small numbers of ms: the store's clock
        // (finish times, key expiry) starts at 0 too.
        let clock = herald::ManualClock::new(Tick::from_millis(0));
        let store = RedbStore::open_with(
            &dir.0,
            RedbOptions {
                clock: Arc::new(clock),
                ..RedbOptions::default()
            },
        )
        .expect("open");
        assert!(store.path().starts_with(&dir.0));
        Self { store, _dir: dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Every record the check left must still decode, and the tables
        // agree with each other. (The directory goes with `_dir`.)
        if !std::thread::panicking() {
            let check = self
                .store
                .check_records()
                .expect("records and tables intact");
            assert_eq!(check.quarantined, 0, "{check:?}");
        }
    }
}

impl Store for Scratch {
    fn insert(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
    ) -> StoreFuture<'_, Option<FencingToken>> {
        self.store.insert(envelope, start)
    }
    fn insert_idempotent(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
        key: IdempotencyKey,
    ) -> StoreFuture<'_, Inserted> {
        self.store.insert_idempotent(envelope, start, key)
    }
    fn idempotency_key(&self, key: &str) -> StoreFuture<'_, Option<KeyRecord>> {
        self.store.idempotency_key(key)
    }
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        self.store.get(id)
    }
    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Claimed>>> {
        self.store.claim(claims, lease_until)
    }
    fn renew(&self, leases: Vec<Lease>, lease_until: Tick) -> StoreFuture<'_, Vec<bool>> {
        self.store.renew(leases, lease_until)
    }
    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, Vec<bool>> {
        self.store.complete(completions)
    }
    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome> {
        self.store.cancel(id)
    }
    fn amend(&self, amendments: Vec<Amendment>) -> StoreFuture<'_, ()> {
        self.store.amend(amendments)
    }
    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<DueRun>> {
        self.store.pending(after, limit)
    }
    fn release_expired(&self, before: Tick) -> StoreFuture<'_, Vec<DueRun>> {
        self.store.release_expired(before)
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        self.store.close()
    }
    fn stats(&self) -> StoreStats {
        self.store.stats()
    }
    fn add_push_jobs(&self, keys: Vec<JobKey>) -> StoreFuture<'_, ()> {
        self.store.add_push_jobs(keys)
    }
    fn claim_push_jobs(
        &self,
        expired_before: Tick,
        lease_until: Tick,
        limit: usize,
    ) -> StoreFuture<'_, Vec<PushJob>> {
        self.store
            .claim_push_jobs(expired_before, lease_until, limit)
    }
    fn push_retries(&self, key: JobKey, limit: usize) -> StoreFuture<'_, Vec<PushRetry>> {
        self.store.push_retries(key, limit)
    }
    fn checkpoint_push(&self, checkpoints: Vec<Checkpoint>) -> StoreFuture<'_, Vec<bool>> {
        self.store.checkpoint_push(checkpoints)
    }
}

herald_testkit::store_conformance_tests!(async { Scratch::new() });

mod push_jobs {
    use super::Scratch;

    herald_testkit::push_job_conformance_tests!(async { Scratch::new() });
}
