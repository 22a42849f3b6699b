//! An engine on a `RedbStore` that cannot write for a while (as on a full
//! disk: every write answers `StoreError::Unavailable`, reads work), on a
//! manual clock: publishes fail with 5093 and store nothing, the repeating
//! message's runs that came due meanwhile collapse into one run when the
//! store is back (as after a restart), and then it goes on by itself.
//! (Before, the driver retried a failed claim under the retry's time as
//! the run's due, which the store never matched: the message stopped for
//! good.)
//!
//! The real full disk (a file-size limit on the `herald-server` binary) is
//! `herald-server/tests/full_disk.rs`; this is the engine's side of it,
//! with time under the test's control.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use herald::{
    Amendment, CancelOutcome, Claim, Claimed, Completion, DeliveryOptions, DueRun, Engine,
    Envelope, FencingToken, Lease, ManualClock, MessageId, PublishOptions, PublishStatus, Record,
    Start, Store, StoreError, StoreFuture, StoreStats,
};
use herald_core::Tick;
use herald_redb::{RedbOptions, RedbStore};
use herald_testkit::TempDir;

const T0: u64 = 1_800_000_000_000;

/// A `RedbStore` whose writes fail while `down` (nothing reaches the
/// file), counting the attempts.
#[derive(Clone, Debug)]
struct Outage {
    inner: RedbStore,
    down: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
}

impl Outage {
    fn refuse<T: Send + 'static>(&self) -> Option<StoreFuture<'static, T>> {
        if !self.down.load(Ordering::SeqCst) {
            return None;
        }
        self.refused.fetch_add(1, Ordering::SeqCst);
        let e = StoreError::unavailable("herald-redb: No space left on device (os error 28)");
        Some(Box::pin(std::future::ready(Err(e))))
    }
}

impl Store for Outage {
    fn insert(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
    ) -> StoreFuture<'_, Option<FencingToken>> {
        self.refuse()
            .unwrap_or_else(|| self.inner.insert(envelope, start))
    }
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        self.inner.get(id)
    }
    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Claimed>>> {
        self.refuse()
            .unwrap_or_else(|| self.inner.claim(claims, lease_until))
    }
    fn renew(&self, leases: Vec<Lease>, lease_until: Tick) -> StoreFuture<'_, Vec<bool>> {
        self.refuse()
            .unwrap_or_else(|| self.inner.renew(leases, lease_until))
    }
    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, Vec<bool>> {
        self.refuse()
            .unwrap_or_else(|| self.inner.complete(completions))
    }
    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome> {
        self.refuse().unwrap_or_else(|| self.inner.cancel(id))
    }
    fn amend(&self, amendments: Vec<Amendment>) -> StoreFuture<'_, ()> {
        self.refuse()
            .unwrap_or_else(|| self.inner.amend(amendments))
    }
    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<DueRun>> {
        self.inner.pending(after, limit)
    }
    fn release_expired(&self, before: Tick) -> StoreFuture<'_, Vec<DueRun>> {
        self.refuse()
            .unwrap_or_else(|| self.inner.release_expired(before))
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        self.inner.close()
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

async fn step(engine: &Engine, clock: &ManualClock, ms: u64) {
    clock.advance(Duration::from_millis(ms));
    engine.settle().await;
}

fn every_second_from(ms: u64) -> DeliveryOptions {
    DeliveryOptions {
        publish_at: chrono::DateTime::from_timestamp_millis(ms as i64),
        repeat_every: Some(chrono::TimeDelta::seconds(1)),
        ..DeliveryOptions::default()
    }
}

#[tokio::test]
async fn runs_due_during_an_outage_collapse_into_one_and_the_rule_goes_on() {
    let dir = TempDir::new("outage");
    let clock = ManualClock::new(Tick::from_millis(T0));
    let store = Outage {
        inner: RedbStore::open_with(
            &dir.0,
            RedbOptions {
                clock: Arc::new(clock.clone()),
                ..RedbOptions::default()
            },
        )
        .expect("open"),
        down: Arc::default(),
        refused: Arc::default(),
    };
    let engine = Engine::builder()
        .clock(clock.clone())
        .store(store.clone())
        .build();
    let mut sub = engine.subscribe("tick", None).expect("subscribe");
    let repeating = engine
        .publish(
            "tick",
            "tock".into(),
            PublishOptions::default(),
            every_second_from(T0 + 1_000),
        )
        .await
        .expect("publish");
    step(&engine, &clock, 1_000).await;
    assert_eq!(
        sub.try_recv()
            .expect("run 1")
            .expect("no lag")
            .timestamp_millis(),
        T0 + 1_000
    );

    // The store cannot write: publishes fail (and store nothing), the due
    // runs are not delivered, again and again for 10 s.
    store.down.store(true, Ordering::SeqCst);
    let refused = engine
        .publish(
            "tick",
            "lost".into(),
            PublishOptions::default(),
            DeliveryOptions::default(),
        )
        .await
        .expect_err("cannot store");
    assert_eq!(refused.code(), 5093, "{refused}");
    assert!(!refused.is_client_error());
    assert!(
        refused
            .to_string()
            .starts_with("The message store cannot write: herald-redb: No space left"),
        "{refused}"
    );
    for _ in 0..50 {
        step(&engine, &clock, 200).await;
    }
    assert!(sub.try_recv().is_none(), "nothing delivered while down");
    let tries = store.refused.load(Ordering::SeqCst);
    assert!(tries >= 40, "the driver kept trying: {tries}");

    // Back: the runs due meanwhile collapse into one, now; then every
    // second as before.
    store.down.store(false, Ordering::SeqCst);
    let back = T0 + 11_000 + 200;
    step(&engine, &clock, 200).await;
    let got: Vec<u64> = std::iter::from_fn(|| sub.try_recv())
        .map(|r| r.expect("no lag").timestamp_millis())
        .collect();
    assert_eq!(got, vec![back], "one run for the 10 missed");
    // As after a restart: `repeatEvery` goes on a period after the
    // collapsed run.
    step(&engine, &clock, 999).await;
    assert!(sub.try_recv().is_none(), "not early");
    step(&engine, &clock, 1).await;
    assert_eq!(
        sub.try_recv()
            .expect("the next")
            .expect("no lag")
            .timestamp_millis(),
        back + 1_000
    );
    let st = engine
        .message_status(&repeating.message_id)
        .await
        .expect("status");
    assert_eq!(
        (st.status, st.deliveries.runs),
        (PublishStatus::Scheduled, 3)
    );
    engine.shutdown().await;
}
