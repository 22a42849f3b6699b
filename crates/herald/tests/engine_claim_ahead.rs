//! Runs are claimed a few milliseconds ahead of their due time (so the
//! claim's round trip is not on the path to the subscribers) and held
//! until then: never delivered early, one claim for many runs, a cancel on
//! this node still stops a held run, and a held run whose claim ran out is
//! delivered once, by a new claim.

mod common;

use std::time::Duration;

use common::*;
use herald::{MemoryStore, MessageId, PublishStatus, RunState, Store};
use serde_json::json;

async fn state(store: &MemoryStore, id: &str) -> RunState {
    let id: MessageId = id.parse().expect("id");
    store.get(id).await.expect("get").expect("stored").state
}

#[tokio::test]
async fn a_run_is_claimed_ahead_and_delivered_at_its_due_time_not_before() {
    let clock = clock();
    let store = MemoryStore::new();
    let engine = builder(&clock).store(store.clone()).build();
    let mut sub = engine.subscribe("c", None).unwrap();
    let due = T0 + 1_000;
    let id = publish_with(&engine, "c", json!(1), at(due))
        .await
        .unwrap()
        .message_id;

    // Further than the lead: not claimed yet.
    step_to(&engine, &clock, due - 10).await;
    assert!(matches!(
        state(&store, &id).await,
        RunState::Scheduled { .. }
    ));
    assert_eq!(engine.stats().claims_won, 0);

    // Within the lead: claimed, held, not delivered; still scheduled for
    // every reader and still counted as waiting.
    step_to(&engine, &clock, due - 4).await;
    assert!(matches!(state(&store, &id).await, RunState::Firing { .. }));
    assert_eq!(engine.stats().claims_won, 1);
    assert_eq!(engine.scheduled_len(), 1);
    assert_status(&engine, &id, PublishStatus::Scheduled, 0).await;
    step_to(&engine, &clock, due - 1).await;
    assert!(sub.try_recv().is_none(), "delivered before its due time");

    step_to(&engine, &clock, due).await;
    assert_eq!(drain_timestamps(&mut sub), [due]);
    assert_eq!(engine.scheduled_len(), 0);
    assert_status(&engine, &id, PublishStatus::Published, 1).await;
}

#[tokio::test]
async fn one_claim_takes_the_runs_due_within_the_span_and_each_fires_on_its_millisecond() {
    let clock = clock();
    let store = MemoryStore::new();
    let engine = builder(&clock).store(store.clone()).build();
    let mut sub = engine.subscribe("c", None).unwrap();
    let first = T0 + 1_000;
    let mut ids = Vec::new();
    for i in 0..30 {
        let s = publish_with(&engine, "c", json!(i), at(first + i))
            .await
            .unwrap();
        ids.push(s.message_id);
    }
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
    let clock = clock();
    let store = MemoryStore::new();
    let engine = builder(&clock).store(store.clone()).build();
    let mut sub = engine.subscribe("c", None).unwrap();
    let due = T0 + 1_000;
    let id = publish_with(&engine, "c", json!(1), at(due))
        .await
        .unwrap()
        .message_id;
    step_to(&engine, &clock, due - 3).await;
    assert!(matches!(state(&store, &id).await, RunState::Firing { .. }));

    let cancelled = engine.cancel(&id).await.expect("held, not delivered");
    assert_eq!(cancelled.status, PublishStatus::Cancelled);
    step_to(&engine, &clock, due + 60_000).await;
    assert!(
        sub.try_recv().is_none(),
        "a cancelled held run was delivered"
    );
    assert_status(&engine, &id, PublishStatus::Cancelled, 0).await;
    assert_eq!(engine.scheduled_len(), 0);
}

#[tokio::test]
async fn a_held_run_whose_claim_ran_out_is_delivered_once_by_a_new_claim() {
    let clock = clock();
    let store = MemoryStore::new();
    let engine = builder(&clock)
        .store(store.clone())
        .lease(Duration::from_secs(2))
        .build();
    let mut sub = engine.subscribe("c", None).unwrap();
    let due = T0 + 1_000;
    let id = publish_with(&engine, "c", json!(1), at(due))
        .await
        .unwrap()
        .message_id;
    step_to(&engine, &clock, due - 3).await;
    assert_eq!(engine.stats().claims_won, 1);

    // The engine "stalls" past the claim's lease before the run is due to
    // be delivered: the held claim is dropped, the store releases the run,
    // and a second claim delivers it, once.
    step_to(&engine, &clock, due - 3 + 2_000 + 1).await;
    step(&engine, &clock, 1).await;
    assert_eq!(drain_timestamps(&mut sub).len(), 1, "delivered once");
    assert_eq!(engine.stats().claims_won, 2);
    assert_status(&engine, &id, PublishStatus::Published, 1).await;
    step(&engine, &clock, 60_000).await;
    assert!(sub.try_recv().is_none());
}
