//! Runs are claimed a few milliseconds ahead of their due time (so the
//! claim's round trip is not on the path to the subscribers) and held
//! until then: never delivered early, one claim for many runs, a cancel on
//! this node still stops a held run, and a held run whose claim ran out is
//! delivered once, by a new claim.

mod common;

use std::time::Duration;

use common::*;
use herald::{
    Engine, ManualClock, MemoryStore, MessageId, PublishStatus, RunState, Store, Subscription,
};
use serde_json::json;

/// An engine on a `MemoryStore` (with this lease, or the default), a
/// subscriber on channel `c`, and one message published for each due time
/// (ms), in order.
struct Setup {
    clock: ManualClock,
    store: MemoryStore,
    engine: Engine,
    sub: Subscription,
    ids: Vec<String>,
}

async fn setup(dues: impl IntoIterator<Item = u64>, lease: Option<Duration>) -> Setup {
    let clock = clock();
    let store = MemoryStore::new();
    let mut b = builder(&clock).store(store.clone());
    if let Some(lease) = lease {
        b = b.lease(lease);
    }
    let engine = b.build();
    let sub = engine.subscribe("c", None).unwrap();
    let mut ids = Vec::new();
    for (i, due) in dues.into_iter().enumerate() {
        let s = publish_with(&engine, "c", json!(i), at(due)).await.unwrap();
        ids.push(s.message_id);
    }
    Setup {
        clock,
        store,
        engine,
        sub,
        ids,
    }
}

async fn state(store: &MemoryStore, id: &str) -> RunState {
    let id: MessageId = id.parse().expect("id");
    store.get(id).await.expect("get").expect("stored").state
}

#[tokio::test]
async fn a_run_is_claimed_ahead_and_delivered_at_its_due_time_not_before() {
    let due = T0 + 1_000;
    let Setup {
        clock,
        store,
        engine,
        mut sub,
        ids,
    } = setup([due], None).await;
    let id = &ids[0];

    // Further than the lead: not claimed yet.
    step_to(&engine, &clock, due - 10).await;
    assert!(matches!(
        state(&store, id).await,
        RunState::Scheduled { .. }
    ));
    assert_eq!(engine.stats().claims_won, 0);

    // Within the lead: claimed, held, not delivered; still scheduled for
    // every reader and still counted as waiting.
    step_to(&engine, &clock, due - 4).await;
    assert!(matches!(state(&store, id).await, RunState::Firing { .. }));
    assert_eq!(engine.stats().claims_won, 1);
    assert_eq!(engine.scheduled_len(), 1);
    assert_status(&engine, id, PublishStatus::Scheduled, 0).await;
    step_to(&engine, &clock, due - 1).await;
    assert!(sub.try_recv().is_none(), "delivered before its due time");

    step_to(&engine, &clock, due).await;
    assert_eq!(drain_timestamps(&mut sub), [due]);
    assert_eq!(engine.scheduled_len(), 0);
    assert_status(&engine, id, PublishStatus::Published, 1).await;
}

#[tokio::test]
async fn one_claim_takes_the_runs_due_within_the_span_and_each_fires_on_its_millisecond() {
    let first = T0 + 1_000;
    let Setup {
        clock,
        store,
        engine,
        mut sub,
        ids,
    } = setup((0..30).map(|i| first + i), None).await;
    // The first run within the lead (5 ms): everything due within the
    // span (15 ms) of now is claimed in one go, the rest is not.
    let now = first - 5;
    step_to(&engine, &clock, now).await;
    for (i, id) in ids.iter().enumerate() {
        let claimed = matches!(state(&store, id).await, RunState::Firing { .. });
        assert_eq!(
            claimed,
            first + i as u64 <= now + 15,
            "run {i} (due +{i} ms) claimed: {claimed}"
        );
    }
    assert_eq!(engine.stats().claims_won, 11);
    assert!(sub.try_recv().is_none());
    // Each on its own millisecond, none early.
    for i in 0..30 {
        step_to(&engine, &clock, first + i).await;
        assert_eq!(drain_timestamps(&mut sub), [first + i], "run {i}");
    }
    assert_eq!(engine.stats().claims_won, 30);
}

#[tokio::test]
async fn a_cancel_on_this_node_stops_a_held_run() {
    let due = T0 + 1_000;
    let Setup {
        clock,
        store,
        engine,
        mut sub,
        ids,
    } = setup([due], None).await;
    let id = &ids[0];
    step_to(&engine, &clock, due - 3).await;
    assert!(matches!(state(&store, id).await, RunState::Firing { .. }));
    assert_eq!(engine.scheduled_len(), 1, "held, still scheduled");

    let cancelled = engine.cancel(id).await.expect("held, not delivered");
    assert_eq!(cancelled.status, PublishStatus::Cancelled);
    assert_eq!(engine.scheduled_len(), 0, "no longer scheduled at once");
    let again = engine.cancel(id).await;
    assert!(again.is_err(), "cancelled already");
    assert_eq!(engine.scheduled_len(), 0, "a second cancel counts nothing");
    step_to(&engine, &clock, due + 60_000).await;
    assert!(
        sub.try_recv().is_none(),
        "a cancelled held run was delivered"
    );
    assert_status(&engine, id, PublishStatus::Cancelled, 0).await;
    assert_eq!(engine.scheduled_len(), 0);
}

#[tokio::test]
async fn a_held_run_whose_claim_ran_out_is_delivered_once_by_a_new_claim() {
    let due = T0 + 1_000;
    let Setup {
        clock,
        engine,
        mut sub,
        ids,
        ..
    } = setup([due], Some(Duration::from_secs(2))).await;
    let id = &ids[0];
    step_to(&engine, &clock, due - 3).await;
    assert_eq!(engine.stats().claims_won, 1);

    // The engine "stalls" past the claim's lease before the run is due to
    // be delivered: the held claim is dropped, the store releases the run,
    // and a second claim delivers it, once.
    step_to(&engine, &clock, due - 3 + 2_000 + 1).await;
    step(&engine, &clock, 1).await;
    assert_eq!(drain_timestamps(&mut sub).len(), 1, "delivered once");
    assert_eq!(engine.stats().claims_won, 2);
    assert_status(&engine, id, PublishStatus::Published, 1).await;
    step(&engine, &clock, 60_000).await;
    assert!(sub.try_recv().is_none());
}

/// A cancel that lands while the claim is under way: the claimed run is
/// never delivered nor held, and no longer counted as scheduled.
#[tokio::test]
async fn a_cancel_during_the_claim_stops_the_run() {
    let clock = clock();
    let store = GatedStore::default();
    let engine = builder(&clock).store(store.clone()).build();
    let mut sub = engine.subscribe("c", None).unwrap();
    let due = T0 + 1_000;
    let id = publish_with(&engine, "c", json!(0), at(due))
        .await
        .unwrap()
        .message_id;
    engine.settle().await;
    store.claim.arm();
    clock.set(herald_core::Tick::from_millis(due - 5));
    store.claim.wait_entered().await;
    let cancelled = engine.cancel(&id).await.expect("claiming, not delivered");
    assert_eq!(cancelled.status, PublishStatus::Cancelled);
    store.claim.open();
    engine.settle().await;
    assert_eq!(engine.scheduled_len(), 0);
    step_to(&engine, &clock, due + 60_000).await;
    assert!(sub.try_recv().is_none(), "a cancelled run was delivered");
    assert_status(&engine, &id, PublishStatus::Cancelled, 0).await;
    assert_eq!(engine.scheduled_len(), 0);
    engine.shutdown().await;
}
