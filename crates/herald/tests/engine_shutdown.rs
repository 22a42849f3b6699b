//! Shutdown with pending work, and the restart path: a new engine on the
//! same store and clock reloads what is scheduled and fires it.

mod common;

use std::sync::Arc;

use common::*;
use herald::{
    Body, DeliveryOptions, DeliveryPlan, DueRun, Envelope, MemoryStore, MessageId, PublishOptions,
    PublishStatus, RunState, Start, Store,
};
use herald_core::Tick;
use serde_json::json;

const MSG_5091: &str = "The messaging engine is shut down.";

async fn pending(store: &MemoryStore) -> Vec<DueRun> {
    store.pending(None, 1_000).await.unwrap()
}

#[tokio::test]
async fn shutdown_with_pending_work_then_restart_on_the_same_store() {
    let clock = clock();
    let store = MemoryStore::new();
    let engine = builder(&clock).store(store.clone()).build();
    let mut sub = engine.subscribe("ch", None).unwrap();

    let delayed = publish_with(&engine, "ch", json!("delayed"), at(T0 + 10_000))
        .await
        .unwrap();
    let repeating = publish_with(
        &engine,
        "ch",
        json!("repeating"),
        every(5, Some(T0 + 5_000), None),
    )
    .await
    .unwrap();
    publish_now(&engine, "ch", json!("buffered")).await;
    assert_eq!(engine.scheduled_len(), 2);

    engine.shutdown().await;

    // Subscriptions end after what they had buffered.
    assert_eq!(
        sub.recv().await.unwrap().unwrap().message(),
        &json!("buffered")
    );
    assert!(sub.recv().await.is_none());

    // Later calls are refused.
    let err = publish_now_result(&engine).await.unwrap_err();
    assert_error(&err, 5091, MSG_5091);
    assert!(!err.is_client_error());
    assert_error(&engine.subscribe("ch", None).unwrap_err(), 5091, MSG_5091);
    let err = publish_with(&engine, "ch", json!(1), at(T0 + 1_000))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 5091);

    // The scheduled messages stay in the store, untouched.
    let mut left: Vec<(String, RunState)> = pending(&store)
        .await
        .into_iter()
        .map(|r| (r.id.to_string(), RunState::Scheduled { due: r.due }))
        .collect();
    left.sort_by_key(|(_, s)| format!("{s:?}"));
    let mut want = vec![
        (
            delayed.message_id.clone(),
            RunState::Scheduled {
                due: Tick::from_millis(T0 + 10_000),
            },
        ),
        (
            repeating.message_id.clone(),
            RunState::Scheduled {
                due: Tick::from_millis(T0 + 5_000),
            },
        ),
    ];
    want.sort_by_key(|(_, s)| format!("{s:?}"));
    assert_eq!(left, want);

    // Time passes while no engine runs; the stopped engine fires nothing.
    step_to(&engine, &clock, T0 + 12_000).await;
    assert_eq!(pending(&store).await.len(), 2, "both still scheduled");

    // Restart: a new engine on the same store and clock.
    let engine2 = builder(&clock).store(store.clone()).build();
    let mut sub2 = engine2.subscribe("ch", None).unwrap();
    engine2.settle().await;
    let mut got: Vec<(String, u64)> = drain(&mut sub2)
        .iter()
        .map(|m| {
            (
                m.message().deserialize::<String>().unwrap(),
                m.timestamp_millis(),
            )
        })
        .collect();
    got.sort();
    // Both were due while down: each fires once, now. The repeating one
    // missed its runs at 5 s and 10 s: they collapse into this one run.
    assert_eq!(
        got,
        [
            ("delayed".to_owned(), T0 + 12_000),
            ("repeating".to_owned(), T0 + 12_000)
        ]
    );
    assert_status(&engine2, &delayed.message_id, PublishStatus::Published, 1).await;
    assert_status(&engine2, &repeating.message_id, PublishStatus::Scheduled, 1).await;
    assert_eq!(engine2.scheduled_len(), 1);

    // The repeating message continues, re-anchored at the restart time.
    step(&engine2, &clock, 4_999).await;
    assert!(sub2.try_recv().is_none());
    step(&engine2, &clock, 1).await;
    assert_eq!(drain_timestamps(&mut sub2), [T0 + 17_000]);
    assert_status(&engine2, &repeating.message_id, PublishStatus::Scheduled, 2).await;
    engine2.shutdown().await;
}

async fn publish_now_result(
    engine: &herald::Engine,
) -> Result<herald::MessageStatus, herald::Error> {
    publish_with(engine, "ch", json!(1), DeliveryOptions::default()).await
}

#[tokio::test]
async fn a_restart_before_the_due_time_fires_at_the_original_time() {
    let clock = clock();
    let store = MemoryStore::new();
    let engine = builder(&clock).store(store.clone()).build();
    let s = publish_with(&engine, "ch", json!(1), at(T0 + 10_000))
        .await
        .unwrap();
    engine.shutdown().await;

    step_to(&engine, &clock, T0 + 3_000).await;
    let engine2 = builder(&clock).store(store.clone()).build();
    let mut sub = engine2.subscribe("ch", None).unwrap();
    engine2.settle().await;
    assert_eq!(engine2.scheduled_len(), 1, "reloaded into the new wheel");

    step_to(&engine2, &clock, T0 + 9_999).await;
    assert!(sub.try_recv().is_none());
    step(&engine2, &clock, 1).await;
    assert_eq!(drain_timestamps(&mut sub), [T0 + 10_000]);
    assert_status(&engine2, &s.message_id, PublishStatus::Published, 1).await;
}

#[tokio::test]
async fn a_restarted_engine_knows_finished_and_cancelled_messages() {
    let clock = clock();
    let store = MemoryStore::new();
    let engine = builder(&clock).store(store.clone()).build();
    let done = publish_now(&engine, "ch", json!(1)).await;
    let cancelled = publish_with(&engine, "ch", json!(2), at(T0 + 1_000))
        .await
        .unwrap();
    engine.cancel(&cancelled.message_id).await.unwrap();
    engine.shutdown().await;

    let engine2 = builder(&clock).store(store.clone()).build();
    let mut sub = engine2.subscribe("ch", None).unwrap();
    assert_status(&engine2, &done.message_id, PublishStatus::Published, 1).await;
    assert_status(&engine2, &cancelled.message_id, PublishStatus::Cancelled, 0).await;
    step(&engine2, &clock, 5_000).await;
    assert!(
        sub.try_recv().is_none(),
        "a cancelled message is not revived by a restart"
    );
    assert_eq!(engine2.scheduled_len(), 0);
    assert_eq!(
        engine2.cancel(&done.message_id).await.unwrap_err().code(),
        5040
    );
}

#[tokio::test]
async fn shutdown_twice_and_from_a_clone() {
    let (engine, _clock) = engine();
    let clone = engine.clone();
    engine.shutdown().await;
    clone.shutdown().await;
    engine.settle().await; // returns at once: no driver
    assert_eq!(publish_now_result(&clone).await.unwrap_err().code(), 5091);
    assert!(engine.channels().is_empty());
}

#[tokio::test]
async fn cancel_after_shutdown_is_refused() {
    // `Engine::shutdown`: "Later calls fail with `Error::ShutDown`".
    let clock = clock();
    let store = MemoryStore::new();
    let engine = builder(&clock).store(store.clone()).build();
    let s = publish_with(&engine, "ch", json!(1), at(T0 + 1_000))
        .await
        .unwrap();
    engine.shutdown().await;
    let err = engine.cancel(&s.message_id).await.unwrap_err();
    assert_eq!(err.code(), 5091);
    let rec = store
        .get(s.message_id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(rec.state, RunState::Scheduled { .. }),
        "left for the next start: {:?}",
        rec.state
    );
}

#[tokio::test]
async fn a_run_claimed_at_a_crash_is_delivered_again_on_restart() {
    // A record left `Firing` (claimed, never completed) by a crashed node.
    let clock = clock();
    let store = MemoryStore::new();
    let id = MessageId::from_u128(0x0190_B2E4_5A1C_7D3E_8F00_1234_5678_90AB);
    let envelope = Arc::new(Envelope {
        template: None,
        id,
        channel: "ch".into(),
        accepted_at: Tick::from_millis(T0 - 10_000),
        publish: PublishOptions::default(),
        plan: Arc::new(DeliveryPlan::new(at(T0 - 500)).unwrap()),
        body: Body::from("again"),
    });
    store
        .insert(
            envelope,
            Start::Claimed {
                due: Tick::from_millis(T0 - 500),
                lease_until: Tick::from_millis(T0 + 60_000),
            },
        )
        .await
        .unwrap()
        .expect("claimed");

    let engine = builder(&clock).store(store.clone()).build();
    let mut sub = engine.subscribe("ch", None).unwrap();
    engine.settle().await;
    let got = drain(&mut sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id(), id);
    assert_eq!(got[0].timestamp_millis(), T0);
    assert_status(&engine, &id.to_string(), PublishStatus::Published, 1).await;
    let stats = engine.stats();
    assert_eq!(
        (stats.recovered_runs, stats.reloaded),
        (1, 1),
        "the crash-time claim is counted as recovered"
    );
}

#[tokio::test]
async fn an_immediate_publish_during_start_up_is_delivered_once() {
    // An immediate publish is stored as claimed (`Firing`) until it is
    // completed, and a single-node engine releases every claim it finds at
    // start-up (as left by a crash). So a publish must not run while the
    // reload does: it waits for it, and is then delivered exactly once.
    let clock = clock();
    let store = GatedStore::default();
    store.release.arm();
    let engine = builder(&clock).store(store.clone()).build();
    let mut sub = engine.subscribe("ch", None).unwrap();
    store.release.wait_entered().await; // the driver is starting up

    let publisher = {
        let engine = engine.clone();
        tokio::spawn(async move { publish_now(&engine, "ch", json!("once")).await })
    };
    let_others_run().await;
    assert!(
        !publisher.is_finished(),
        "publish waits for the start-up reload"
    );
    assert!(sub.try_recv().is_none());
    store.release.open();
    let s = publisher.await.unwrap();
    assert_eq!(s.status, PublishStatus::Published);
    engine.settle().await;

    assert_eq!(
        drain_messages(&mut sub),
        [json!("once")],
        "delivered exactly once"
    );
    assert_status(&engine, &s.message_id, PublishStatus::Published, 1).await;
}

#[tokio::test]
async fn a_cancel_during_start_up_is_not_undone_by_the_reload() {
    // The reload reads the store, then puts what it read in the wheel. A
    // cancel in between would find nothing in the wheel to remove, so it
    // waits for the reload; then either it wins (cancelled, never
    // delivered) or the due run was delivered first (5040).
    let clock = clock();
    let store = GatedStore::default();
    let first = builder(&clock).store(store.inner.clone()).build();
    let s = publish_with(&first, "ch", json!("cancelled"), at(T0 + 1_000))
        .await
        .unwrap();
    first.shutdown().await;

    store.pending.arm();
    let engine = builder(&clock).store(store.clone()).build();
    let mut sub = engine.subscribe("ch", None).unwrap();
    store.pending.wait_entered().await; // the reload has read the store

    let canceller = {
        let (engine, id) = (engine.clone(), s.message_id.clone());
        tokio::spawn(async move { engine.cancel(&id).await })
    };
    let_others_run().await;
    assert!(
        !canceller.is_finished(),
        "cancel waits for the start-up reload"
    );
    clock.set(Tick::from_millis(T0 + 1_000));
    store.pending.open();
    let cancelled = canceller.await.unwrap();
    engine.settle().await;

    let delivered = drain_messages(&mut sub);
    let status = status_of(&engine, &s.message_id).await.status;
    match cancelled {
        Ok(c) => {
            assert_eq!(c.status, PublishStatus::Cancelled);
            assert!(
                delivered.is_empty(),
                "cancel answered cancelled, yet the run was delivered"
            );
            assert_eq!(status, PublishStatus::Cancelled);
        }
        Err(e) => {
            assert_eq!(e.code(), 5040);
            assert_eq!(delivered, [json!("cancelled")]);
            assert_eq!(status, PublishStatus::Published);
        }
    }
}

/// A status read between a run's delivery and its (slow, durable)
/// completion in the store already says `published`, with the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_after_delivery_is_published_before_the_store_completes() {
    let clock = clock();
    let store = GatedStore::default();
    let engine = builder(&clock).store(store.clone()).build();
    let mut sub = engine.subscribe("ch", None).unwrap();
    let s = publish_with(&engine, "ch", json!("m"), at(T0 + 10))
        .await
        .unwrap();
    engine.settle().await;
    store.complete.arm();
    clock.advance(std::time::Duration::from_millis(10));
    store.complete.wait_entered().await; // delivered, completion held
    assert_eq!(drain_messages(&mut sub), [json!("m")]);
    let mid = status_of(&engine, &s.message_id).await;
    assert_eq!(
        mid.status,
        PublishStatus::Published,
        "what the subscriber saw"
    );
    assert_eq!((mid.deliveries.runs, mid.deliveries.pubsub), (1, 1));
    store.complete.open();
    engine.settle().await;
    assert_status(&engine, &s.message_id, PublishStatus::Published, 1).await;
    engine.shutdown().await;
}
