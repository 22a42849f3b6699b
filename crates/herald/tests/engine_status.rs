//! `message_status`: every state a message goes through, unknown ids, and
//! the JSON shape of the status.

mod common;

use common::*;
use herald::{MemoryStore, MessageStatus, PublishStatus};
use serde_json::json;

#[tokio::test]
async fn unknown_ids_report_unknown() {
    let (engine, _clock) = engine();
    publish_now(&engine, "ch", json!(1)).await; // the store is not empty
    for id in [UNKNOWN_ID, "garbage", "", "0190B2E4-5A1C-7D3E-8F00"] {
        let s = engine.message_status(id).await.unwrap();
        assert_eq!(s, MessageStatus::unknown(id));
        assert_eq!(s.status, PublishStatus::Unknown);
        assert_eq!(s.message_id, id, "the asked-for id is echoed");
        assert_eq!(s.deliveries.runs, 0);
    }
}

#[tokio::test]
async fn status_follows_a_delayed_message_through_its_life() {
    let (engine, clock) = engine();
    let _sub = engine.subscribe("ch", None).unwrap();
    let s = publish_with(&engine, "ch", json!(1), at(T0 + 2_000))
        .await
        .unwrap();
    assert_eq!(s.status, PublishStatus::Scheduled);
    assert_eq!(
        status_of(&engine, &s.message_id).await.status,
        PublishStatus::Scheduled
    );
    step(&engine, &clock, 1_999).await;
    assert_eq!(
        status_of(&engine, &s.message_id).await.status,
        PublishStatus::Scheduled
    );
    step(&engine, &clock, 1).await;
    let after = status_of(&engine, &s.message_id).await;
    assert_eq!(after.status, PublishStatus::Published);
    assert_eq!(after.deliveries.runs, 1);
    assert_eq!(after.deliveries.pubsub, 1);
    assert_eq!(after.deliveries.push_sent, 0);
    assert!(after.error_message.is_none());
}

#[tokio::test]
async fn ids_are_accepted_in_any_case() {
    let (engine, _clock) = engine();
    let s = publish_with(&engine, "ch", json!(1), at(T0 + 2_000))
        .await
        .unwrap();
    let lower = s.message_id.to_lowercase();
    assert_ne!(lower, s.message_id);
    let st = engine.message_status(&lower).await.unwrap();
    assert_eq!(st.status, PublishStatus::Scheduled);
    assert_eq!(st.message_id, s.message_id, "the canonical id is reported");
    assert_eq!(
        engine.cancel(&lower).await.unwrap().status,
        PublishStatus::Cancelled
    );
}

#[tokio::test]
async fn ids_are_unique_per_publish() {
    let (engine, _clock) = engine();
    let mut ids = std::collections::HashSet::new();
    for i in 0..1_000 {
        let s = publish_now(&engine, "ch", json!(i)).await;
        assert!(ids.insert(s.message_id), "duplicate id");
    }
}

#[tokio::test]
async fn status_json_shape() {
    let (engine, _clock) = engine();
    let _a = engine.subscribe("ch", None).unwrap();
    let _b = engine.subscribe("ch", None).unwrap();
    let s = publish_now(&engine, "ch", json!(1)).await;
    let wire = serde_json::to_value(status_of(&engine, &s.message_id).await).unwrap();
    assert_eq!(
        wire,
        json!({
            "messageId": s.message_id,
            "status": "published",
            "errorMessage": null,
            "deliveries": {
                "runs": 1, "pubsub": 2, "pushSent": 0, "pushFailed": 0, "pushInvalidTokens": 0,
                "pushExpired": 0, "pushPending": 0,
            },
        })
    );
    let sched = publish_with(&engine, "ch", json!(1), every(1, None, None))
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(&sched).unwrap()["status"], "scheduled");
    let cancelled = engine.cancel(&sched.message_id).await.unwrap();
    assert_eq!(
        serde_json::to_value(&cancelled).unwrap()["status"],
        "cancelled"
    );
}

#[tokio::test]
async fn purged_finished_messages_become_unknown_but_pending_ones_never_do() {
    let clock = clock();
    let engine = builder(&clock)
        .store(MemoryStore::with_retention(16))
        .build();
    let pending = publish_with(&engine, "ch", json!("later"), at(T0 + 60_000))
        .await
        .unwrap();
    let first = publish_now(&engine, "ch", json!(0)).await;
    for i in 1..1_000 {
        publish_now(&engine, "ch", json!(i)).await;
    }
    // Completions are recorded off the publish path; wait for them.
    engine.settle().await;
    assert_eq!(
        status_of(&engine, &first.message_id).await.status,
        PublishStatus::Unknown
    );
    assert_eq!(
        status_of(&engine, &pending.message_id).await.status,
        PublishStatus::Scheduled
    );
    step(&engine, &clock, 60_000).await;
    assert_eq!(
        status_of(&engine, &pending.message_id).await.status,
        PublishStatus::Published
    );
}

/// `Engine::stats` counts publishes, runs, deliveries and cancels.
#[tokio::test]
async fn engine_stats_count_what_happened() {
    let clock = herald::ManualClock::new(herald_core::Tick::from_millis(1_800_000_000_000));
    let engine = herald::Engine::builder().clock(clock.clone()).build();
    let _a = engine.subscribe("s", None).unwrap();
    let _b = engine.subscribe("s", None).unwrap();
    let now = || herald::DeliveryOptions::default();
    let later = |ms: i64| herald::DeliveryOptions {
        publish_at: chrono::DateTime::from_timestamp_millis(1_800_000_000_000 + ms),
        ..Default::default()
    };
    let p = herald::PublishOptions::default;
    engine
        .publish("s", serde_json::json!(1).into(), p(), now())
        .await
        .unwrap();
    engine
        .publish("s", serde_json::json!(2).into(), p(), later(10))
        .await
        .unwrap();
    let c = engine
        .publish("s", serde_json::json!(3).into(), p(), later(20))
        .await
        .unwrap();
    engine.cancel(&c.message_id).await.unwrap();
    assert_eq!(engine.stats().pending, 1);
    clock.advance(std::time::Duration::from_millis(30));
    engine.settle().await;
    let s = engine.stats();
    assert_eq!(
        (
            s.published,
            s.scheduled,
            s.runs,
            s.pubsub_deliveries,
            s.cancelled,
            s.pending
        ),
        (3, 2, 2, 4, 1, 0)
    );
    engine.shutdown().await;
}
