//! Claims, leases and completions: an immediate publish never turns into an
//! error after its delivery, a completion the store refuses is retried or
//! left to the lease, expired leases come back to the wheel without a
//! restart, and a publish or cancel whose caller leaves is carried out.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use herald::PublishStatus;
use serde_json::json;

const LEASE_MS: u64 = 10_000;

fn faulty_engine(store: &GatedStore) -> (herald::Engine, herald::ManualClock) {
    let clock = clock();
    let engine = builder(&clock)
        .store(store.clone())
        .lease(Duration::from_millis(LEASE_MS))
        .build();
    (engine, clock)
}

#[tokio::test]
async fn a_failed_completion_never_turns_a_delivered_publish_into_an_error() {
    let store = GatedStore::default();
    // The store answers the insert at once, so the publisher asks for the
    // completion at once too; then the completer tries once more (the
    // error is not worth a retry).
    store.fail_completes.store(2, Ordering::SeqCst);
    let (engine, clock) = faulty_engine(&store);
    let mut sub = engine.subscribe("ch", None).unwrap();

    let s = publish_now(&engine, "ch", json!("hello")).await;
    assert_eq!(
        s.status,
        PublishStatus::Published,
        "delivered, so published"
    );
    assert_eq!(s.deliveries.pubsub, 1);
    assert_eq!(drain(&mut sub).len(), 1);
    engine.settle().await;
    assert_eq!(
        store.completes.load(Ordering::SeqCst),
        2,
        "inline, then the completer"
    );
    assert_eq!(engine.stats().completion_failures, 1);

    // The claim stays until its lease ends; then the run is taken back and
    // delivered again, without a restart: at-least-once.
    step(&engine, &clock, LEASE_MS / 2).await;
    assert!(drain(&mut sub).is_empty(), "not before the lease ends");
    step(&engine, &clock, LEASE_MS).await;
    let again = drain(&mut sub);
    assert_eq!(again.len(), 1, "delivered again once the lease ended");
    assert_eq!(again[0].message_id().to_string(), s.message_id);
    assert_eq!(engine.stats().recovered_runs, 1);
    assert_status(&engine, &s.message_id, PublishStatus::Published, 1).await;
    engine.shutdown().await;
}

#[tokio::test]
async fn retryable_completion_failures_are_retried_on_the_engine_clock() {
    let store = GatedStore::default();
    // The publisher's own attempt and the completer's first two fail.
    store.fail_completes.store(3, Ordering::SeqCst);
    store.retryable.store(true, Ordering::SeqCst);
    let (engine, clock) = faulty_engine(&store);
    let _sub = engine.subscribe("ch", None).unwrap();
    let s = publish_now(&engine, "ch", json!(1)).await;
    assert_eq!(s.status, PublishStatus::Published);
    // Backoff: 50 ms, then 100 ms, on the manual clock.
    let_others_run().await;
    assert_eq!(store.completes.load(Ordering::SeqCst), 2);
    clock.advance(Duration::from_millis(50));
    let_others_run().await;
    assert_eq!(store.completes.load(Ordering::SeqCst), 3);
    clock.advance(Duration::from_millis(100));
    engine.settle().await;
    assert_eq!(store.completes.load(Ordering::SeqCst), 4);
    assert_eq!(engine.stats().completion_failures, 0);
    let st = status_of(&engine, &s.message_id).await;
    assert_eq!(
        (st.status, st.deliveries.pubsub),
        (PublishStatus::Published, 1)
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_repeating_run_whose_completion_failed_resumes_after_its_lease() {
    let store = GatedStore::default();
    let (engine, clock) = faulty_engine(&store);
    let mut sub = engine.subscribe("ch", None).unwrap();
    let s = publish_with(
        &engine,
        "ch",
        json!("tick"),
        every(60, Some(T0 + 1_000), None),
    )
    .await
    .unwrap();
    store.fail_completes.store(1, Ordering::SeqCst);
    step(&engine, &clock, 1_000).await;
    assert_eq!(drain_timestamps(&mut sub), [T0 + 1_000]);
    assert_eq!(
        engine.scheduled_len(),
        0,
        "no next run without a completion"
    );
    // The lease ends at T0 + 11 s; the half-lease release after it hands
    // the run back, and it fires again (the missed grid point collapses).
    step_to(&engine, &clock, T0 + 16_000).await;
    assert_eq!(drain_timestamps(&mut sub), [T0 + 16_000]);
    assert_eq!(engine.scheduled_len(), 1, "the rule goes on");
    step_to(&engine, &clock, T0 + 61_000).await;
    assert_eq!(drain_timestamps(&mut sub), [T0 + 61_000]);
    assert_status(&engine, &s.message_id, PublishStatus::Scheduled, 2).await;
    engine.shutdown().await;
}

#[tokio::test]
async fn a_publish_whose_caller_leaves_mid_store_is_still_scheduled() {
    let store = GatedStore::default();
    let (engine, clock) = faulty_engine(&store);
    let mut sub = engine.subscribe("ch", None).unwrap();
    engine.settle().await;
    store.insert.arm();
    {
        // The caller (an HTTP client that disconnects) stops waiting while
        // the insert is in the store.
        let publish = publish_with(&engine, "ch", json!("kept"), at(T0 + 1_000));
        tokio::select! {
            _ = publish => panic!("the insert is held"),
            () = store.insert.wait_entered() => {}
        }
    }
    store.insert.open();
    let_others_run().await;
    assert_eq!(
        engine.scheduled_len(),
        1,
        "stored and scheduled, not stored and forgotten"
    );
    step(&engine, &clock, 1_000).await;
    let got = drain(&mut sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message(), &json!("kept"));

    // An immediate publish whose caller leaves is delivered.
    store.insert.arm();
    {
        let publish = publish_now(&engine, "ch", json!("now"));
        tokio::select! {
            _ = publish => panic!("the insert is held"),
            () = store.insert.wait_entered() => {}
        }
    }
    store.insert.open();
    let_others_run().await;
    assert_eq!(drain(&mut sub).len(), 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_cancel_whose_caller_leaves_is_still_carried_out() {
    let store = GatedStore::default();
    let (engine, clock) = faulty_engine(&store);
    let mut sub = engine.subscribe("ch", None).unwrap();
    let s = publish_with(&engine, "ch", json!("doomed"), at(T0 + 1_000))
        .await
        .unwrap();
    store.cancel.arm();
    {
        let cancel = engine.cancel(&s.message_id);
        tokio::select! {
            _ = cancel => panic!("the cancel is held"),
            () = store.cancel.wait_entered() => {}
        }
    }
    store.cancel.open();
    let_others_run().await;
    assert_status(&engine, &s.message_id, PublishStatus::Cancelled, 0).await;
    step(&engine, &clock, 5_000).await;
    assert!(drain(&mut sub).is_empty());
    engine.shutdown().await;
}

/// The engine's API futures can be spawned on a multi-thread runtime.
#[tokio::test]
async fn api_futures_are_send() {
    fn send<T: Send>(t: T) -> T {
        t
    }
    let engine = herald::Engine::builder().build();
    let st = send(publish_now(&engine, "c", json!(null))).await;
    send(engine.message_status(&st.message_id)).await.unwrap();
    assert!(send(engine.cancel(&st.message_id)).await.is_err());
    send(engine.publish_request("c", herald::PublishRequest::default()))
        .await
        .unwrap();
    send(engine.settle()).await;
    send(engine.shutdown()).await;
}
