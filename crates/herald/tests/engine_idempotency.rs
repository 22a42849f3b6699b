//! Idempotent publishes (`Engine::publish_with` + `PublishExtras`): a
//! retry with the same key within 24 h answers the first answer and
//! publishes nothing; another request with the key is 5095; a bad key is
//! 5096; the key expires after 24 h.

mod common;

use std::time::Duration;

use common::*;
use herald::{
    DeliveryOptions, Engine, Error, MessageStatus, PublishExtras, PublishOptions, PublishStatus,
};
use serde_json::json;

async fn keyed(
    engine: &Engine,
    channel: &str,
    message: serde_json::Value,
    delivery: DeliveryOptions,
    key: &str,
) -> Result<MessageStatus, Error> {
    engine
        .publish_with(
            channel,
            message.into(),
            PublishOptions::default(),
            delivery,
            PublishExtras::default().with_idempotency_key(key),
        )
        .await
}

#[tokio::test]
async fn a_retry_gets_the_first_answer_and_publishes_nothing() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("ch", None).unwrap();
    let first = keyed(
        &engine,
        "ch",
        json!({"n": 1}),
        DeliveryOptions::default(),
        "a",
    )
    .await
    .unwrap();
    assert_eq!(first.status, PublishStatus::Published);
    engine.settle().await;
    step(&engine, &clock, 1_000).await;
    let retry = keyed(
        &engine,
        "ch",
        json!({"n": 1}),
        DeliveryOptions::default(),
        "a",
    )
    .await
    .unwrap();
    assert_eq!(retry.message_id, first.message_id);
    assert_eq!(retry.status, PublishStatus::Published);
    assert_eq!(retry.deliveries.runs, 1, "the message's counters now");
    assert_eq!(drain(&mut sub).len(), 1, "delivered once");
    assert_eq!(engine.stats().published, 1);

    // A delayed one: its retry, after its publishAt has passed (the same
    // options would now be refused with 5003), still gets `scheduled` and
    // the first id.
    let later = at(now_ms(&engine) + 5_000);
    let delayed = keyed(&engine, "ch", json!("later"), later.clone(), "b")
        .await
        .unwrap();
    assert_eq!(delayed.status, PublishStatus::Scheduled);
    step(&engine, &clock, 10_000).await;
    assert_eq!(drain(&mut sub).len(), 1, "fired");
    let retry = keyed(&engine, "ch", json!("later"), later, "b")
        .await
        .unwrap();
    assert_eq!(
        (retry.message_id, retry.status),
        (delayed.message_id, PublishStatus::Scheduled)
    );
    assert_eq!(engine.stats().published, 2);
    engine.shutdown().await;
}

#[tokio::test]
async fn another_request_with_the_key_is_refused() {
    let (engine, _clock) = engine();
    keyed(&engine, "ch", json!(1), DeliveryOptions::default(), "k")
        .await
        .unwrap();
    let other_publish = engine
        .publish_with(
            "ch",
            json!(1).into(),
            headers(&[("h", "v")]),
            DeliveryOptions::default(),
            PublishExtras::default().with_idempotency_key("k"),
        )
        .await;
    for err in [
        keyed(&engine, "ch", json!(2), DeliveryOptions::default(), "k")
            .await
            .expect_err("another message"),
        keyed(&engine, "other", json!(1), DeliveryOptions::default(), "k")
            .await
            .expect_err("another channel"),
        keyed(&engine, "ch", json!(1), every(5, None, None), "k")
            .await
            .expect_err("other delivery options"),
        other_publish.expect_err("other publish options"),
    ] {
        assert_error(
            &err,
            5095,
            "The Idempotency-Key was used for a different request in the last 24 hours.",
        );
        assert!(err.is_client_error());
    }
    assert_eq!(engine.stats().published, 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn keys_must_be_1_to_255_printable_ascii_characters() {
    let (engine, _clock) = engine();
    let longest = "k".repeat(255);
    for bad in ["", "tab\there", "line\n", "é", "\u{7f}", &"k".repeat(256)] {
        let err = keyed(&engine, "ch", json!(1), DeliveryOptions::default(), bad)
            .await
            .expect_err(bad);
        assert_error(
            &err,
            5096,
            "Invalid Idempotency-Key: use 1 to 255 printable ASCII characters.",
        );
    }
    assert_eq!(engine.stats().published, 0, "nothing stored");
    for good in [" spaced out ~!", longest.as_str()] {
        keyed(&engine, "ch", json!(1), DeliveryOptions::default(), good)
            .await
            .unwrap();
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn a_key_holds_for_24_hours() {
    let (engine, clock) = engine();
    let first = keyed(&engine, "ch", json!(1), DeliveryOptions::default(), "k")
        .await
        .unwrap();
    clock.advance(Duration::from_millis(24 * 3_600_000 - 1));
    let retry = keyed(&engine, "ch", json!(1), DeliveryOptions::default(), "k")
        .await
        .unwrap();
    assert_eq!(retry.message_id, first.message_id, "still held");
    clock.advance(Duration::from_millis(1));
    let fresh = keyed(&engine, "ch", json!(2), DeliveryOptions::default(), "k")
        .await
        .unwrap();
    assert_ne!(fresh.message_id, first.message_id, "expired: a new publish");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_retries_publish_once() {
    let (engine, _clock) = engine();
    let mut sub = engine.subscribe("ch", None).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            keyed(
                &engine,
                "ch",
                json!("once"),
                DeliveryOptions::default(),
                "race",
            )
            .await
            .unwrap()
            .message_id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(drain(&mut sub).len(), 1);
    assert_eq!(engine.stats().published, 1);
    engine.shutdown().await;
}
