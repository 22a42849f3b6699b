//! A [`MemoryStore`] with pause points and a log, to hold the engine at the
//! exact interleavings a slow (networked) store opens and to see what it
//! asked, in order.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use herald::{
    Amendment, CancelOutcome, Claim, Claimed, Completion, DueHints, DueRun, Envelope, FencingToken,
    Lease, MemoryStore, MessageId, Record, Start, Store, StoreError, StoreFuture,
};
use herald_core::Tick;

use super::Gate;

/// What an engine asked of the store, in order: claims (as asked) and
/// reservations (the runs it got, when any).
#[derive(Debug, PartialEq)]
pub(crate) enum Asked {
    Claim(Vec<MessageId>),
    Reserved(Vec<MessageId>),
}

/// A [`MemoryStore`] (single-node by default, [`GatedStore::shared`] for
/// a shared one) with a pause point per call that a slow store makes
/// interesting. `pending`, `claim` and `reserve_due` take effect when
/// called and pause before answering; `insert`, `release_expired`, `cancel` and `complete`
/// pause before taking effect. Claims and reservations are logged. The
/// next `fail_completes` completions fail (worth a retry if `retryable`),
/// and so do the next `fail_amends` amendments (as PostgreSQL that went
/// away); `completes` counts the completions asked for.
#[derive(Clone, Debug, Default)]
pub(crate) struct GatedStore {
    pub(crate) inner: MemoryStore,
    pub(crate) insert: Arc<Gate>,
    pub(crate) pending: Arc<Gate>,
    pub(crate) claim: Arc<Gate>,
    pub(crate) reserve: Arc<Gate>,
    pub(crate) release: Arc<Gate>,
    pub(crate) cancel: Arc<Gate>,
    pub(crate) complete: Arc<Gate>,
    pub(crate) fail_completes: Arc<AtomicU32>,
    pub(crate) retryable: Arc<AtomicBool>,
    pub(crate) completes: Arc<AtomicU32>,
    pub(crate) fail_amends: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<Asked>>>,
}

impl GatedStore {
    /// On a shared [`MemoryStore`] (`MemoryStore::new_shared`).
    pub(crate) fn shared() -> Self {
        Self {
            inner: MemoryStore::new_shared(),
            ..Self::default()
        }
    }

    /// What was asked so far (clear it to start afresh).
    pub(crate) fn log(&self) -> MutexGuard<'_, Vec<Asked>> {
        self.log.lock().unwrap()
    }
}

impl Store for GatedStore {
    fn insert(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
    ) -> StoreFuture<'_, Option<FencingToken>> {
        Box::pin(async move {
            self.insert.pass().await;
            self.inner.insert(envelope, start).await
        })
    }
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        self.inner.get(id)
    }
    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Claimed>>> {
        self.log()
            .push(Asked::Claim(claims.iter().map(|c| c.id).collect()));
        let done = self.inner.claim(claims, lease_until);
        Box::pin(async move {
            self.claim.pass().await;
            done.await
        })
    }
    fn renew(&self, leases: Vec<Lease>, lease_until: Tick) -> StoreFuture<'_, Vec<bool>> {
        self.inner.renew(leases, lease_until)
    }
    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, Vec<bool>> {
        self.completes.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .fail_completes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            let e = if self.retryable.load(Ordering::SeqCst) {
                StoreError::unavailable("disk busy")
            } else {
                StoreError::other("disk on fire")
            };
            return Box::pin(std::future::ready(Err(e)));
        }
        Box::pin(async move {
            self.complete.pass().await;
            self.inner.complete(completions).await
        })
    }
    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome> {
        Box::pin(async move {
            self.cancel.pass().await;
            self.inner.cancel(id).await
        })
    }
    fn amend(&self, amendments: Vec<Amendment>) -> StoreFuture<'_, ()> {
        let failing = self
            .fail_amends
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            let e = StoreError::unavailable("connection to PostgreSQL lost");
            return Box::pin(std::future::ready(Err(e)));
        }
        self.inner.amend(amendments)
    }
    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<DueRun>> {
        let snapshot = self.inner.pending(after, limit);
        Box::pin(async move {
            self.pending.pass().await;
            snapshot.await
        })
    }
    fn release_expired(&self, before: Tick) -> StoreFuture<'_, Vec<DueRun>> {
        Box::pin(async move {
            self.release.pass().await;
            self.inner.release_expired(before).await
        })
    }
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
    fn reserve_due(
        &self,
        now: Tick,
        before: Tick,
        hold_ms: u64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<DueRun>> {
        let done = self.inner.reserve_due(now, before, hold_ms, limit);
        Box::pin(async move {
            let runs = done.await?;
            if !runs.is_empty() {
                self.log()
                    .push(Asked::Reserved(runs.iter().map(|r| r.id).collect()));
            }
            self.reserve.pass().await;
            Ok(runs)
        })
    }
    fn due_hints(&self) -> Option<DueHints> {
        self.inner.due_hints()
    }
}
