//! `impl Store for PgStore`: each method one of `Inner`'s operations.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use herald::{
    Amendment, CancelOutcome, Checkpoint, Claim, Claimed, Completion, DueHints, DueRun, Envelope,
    FencingToken, IdempotencyKey, Inserted, JobKey, KeyRecord, Lease, MessageId, PushJob,
    PushRetry, Record, Start, Store, StoreFuture, StoreStats,
};
use herald_core::Tick;

use crate::PgStore;

impl Store for PgStore {
    fn insert(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
    ) -> StoreFuture<'_, Option<FencingToken>> {
        Box::pin(self.inner.insert(envelope, start))
    }
    fn insert_idempotent(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
        key: IdempotencyKey,
    ) -> StoreFuture<'_, Inserted> {
        Box::pin(self.inner.insert_idempotent(envelope, start, key))
    }
    fn idempotency_key(&self, key: &str) -> StoreFuture<'_, Option<KeyRecord>> {
        let key = key.to_owned();
        Box::pin(async move { self.inner.idempotency_key(&key).await })
    }
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        Box::pin(self.inner.get(id))
    }
    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Claimed>>> {
        Box::pin(self.inner.claim(claims, lease_until))
    }
    fn renew(&self, leases: Vec<Lease>, lease_until: Tick) -> StoreFuture<'_, Vec<bool>> {
        Box::pin(self.inner.renew(leases, lease_until))
    }
    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, Vec<bool>> {
        Box::pin(self.inner.complete(completions))
    }
    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome> {
        Box::pin(self.inner.cancel(id))
    }
    fn amend(&self, amendments: Vec<Amendment>) -> StoreFuture<'_, ()> {
        Box::pin(self.inner.amend(amendments))
    }
    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<DueRun>> {
        Box::pin(self.inner.pending(after, limit))
    }
    fn release_expired(&self, before: Tick) -> StoreFuture<'_, Vec<DueRun>> {
        Box::pin(self.inner.release_expired(before))
    }
    fn is_shared(&self) -> bool {
        true
    }
    fn reserve_due(
        &self,
        now: Tick,
        before: Tick,
        hold_ms: u64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<DueRun>> {
        Box::pin(self.inner.reserve_due(now, before, hold_ms, limit))
    }
    fn due_hints(&self) -> Option<DueHints> {
        Some(self.inner.hints.subscribe())
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        self.inner.close();
        Box::pin(std::future::ready(Ok(())))
    }
    fn stats(&self) -> StoreStats {
        let mut stats = StoreStats::default();
        stats.unavailable = self.inner.health.unavailable();
        stats.purged = self.inner.health.purged.load(Ordering::Relaxed);
        stats.quarantined = self.inner.health.quarantined.load(Ordering::Relaxed);
        stats
    }
    fn add_push_jobs(&self, keys: Vec<JobKey>) -> StoreFuture<'_, ()> {
        Box::pin(self.inner.add_push_jobs(keys))
    }
    fn claim_push_jobs(
        &self,
        expired_before: Tick,
        lease_until: Tick,
        limit: usize,
    ) -> StoreFuture<'_, Vec<PushJob>> {
        Box::pin(
            self.inner
                .claim_push_jobs(expired_before, lease_until, limit),
        )
    }
    fn push_retries(&self, key: JobKey, limit: usize) -> StoreFuture<'_, Vec<PushRetry>> {
        Box::pin(self.inner.push_retries(key, limit))
    }
    fn checkpoint_push(&self, checkpoints: Vec<Checkpoint>) -> StoreFuture<'_, Vec<bool>> {
        Box::pin(self.inner.checkpoint_push(checkpoints))
    }
}
