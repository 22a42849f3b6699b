//! Publish-time validation: each Backendless error code with its exact
//! message, and "nothing is stored when it fails".

mod common;

use chrono::TimeDelta;
use common::*;
use herald::{DeliveryOptions, Error, MemoryStore, PublishRequest, PublishStatus};
use serde_json::{Value, json};

/// Publishes `delivery` on a fresh engine and checks that it fails with
/// `code` / `message`, that nothing is stored or scheduled, and that no
/// subscriber ever receives anything.
async fn rejects(delivery: DeliveryOptions, code: u32, message: &str) {
    let clock = clock();
    let store = MemoryStore::new();
    let engine = builder(&clock).store(store.clone()).build();
    let mut sub = engine.subscribe("ch", None).unwrap();
    engine.settle().await;

    let err = publish_with(&engine, "ch", json!("x"), delivery.clone())
        .await
        .expect_err(&format!("{delivery:?} accepted"));
    assert_invalid(&err, code, message);
    assert!(err.is_client_error());
    assert_eq!(store.len(), 0, "nothing stored for {delivery:?}");
    assert_eq!(engine.scheduled_len(), 0);
    step(&engine, &clock, 2 * 86_400_000).await;
    assert!(
        sub.try_recv().is_none(),
        "something was delivered for {delivery:?}"
    );
}

/// Publishes `body` as a request (decode, then plan) and expects `code` /
/// `message` from whichever step refuses it, and nothing stored.
async fn rejects_json(mut body: Value, code: u32, message: &str) {
    body["message"] = json!("x");
    let err = match PublishRequest::from_json(&body) {
        Err(e) => e,
        Ok(req) => {
            let (engine, _clock) = engine();
            let err = engine
                .publish_request("ch", req)
                .await
                .expect_err(&format!("{body} accepted"));
            assert_eq!(engine.scheduled_len(), 0, "nothing scheduled for {body}");
            err
        }
    };
    assert_invalid(&err, code, message);
}

#[tokio::test]
async fn publish_at_one_second_in_the_past_publishes_now() {
    let (engine, _clock) = engine();
    let mut sub = engine.subscribe("ch", None).unwrap();
    let s = publish_with(&engine, "ch", json!(1), at(T0 - 1_000))
        .await
        .unwrap();
    assert_eq!(s.status, PublishStatus::Published);
    let got = drain(&mut sub);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].timestamp_millis(), T0, "delivered now");
    assert_status(&engine, &s.message_id, PublishStatus::Published, 1).await;
}

#[tokio::test]
async fn publish_at_too_far_in_the_past_is_5003() {
    rejects(at(T0 - 1_001), 5003, MSG_5003).await;
    rejects(at(T0 - 86_400_000), 5003, MSG_5003).await;
    // Repeating messages too.
    rejects(every(1, Some(T0 - 86_400_000), None), 5003, MSG_5003).await;
}

#[tokio::test]
async fn publish_at_not_a_non_negative_number_is_5003() {
    rejects_json(json!({"publishAt": -1}), 5003, MSG_5003).await;
    rejects_json(json!({"publishAt": "tomorrow"}), 5003, MSG_5003).await;
    rejects_json(json!({"publishAt": {"ms": 1}}), 5003, MSG_5003).await;
}

#[tokio::test]
async fn repeat_expires_at_before_publish_at_or_in_the_past_is_5007() {
    rejects(
        every(1, Some(T0 + 10_000), Some(T0 + 5_000)),
        5007,
        MSG_5007,
    )
    .await;
    rejects(every(1, None, Some(T0 - 1)), 5007, MSG_5007).await;
    rejects(every(1, None, Some(T0 - 86_400_000)), 5007, MSG_5007).await;
    rejects_json(
        json!({"repeatEvery": 1, "repeatExpiresAt": "never"}),
        5007,
        MSG_5007,
    )
    .await;
    rejects_json(
        json!({"repeatEvery": 1, "repeatExpiresAt": -5}),
        5007,
        MSG_5007,
    )
    .await;
}

#[tokio::test]
async fn bad_repeat_every_is_5008() {
    for secs in [0, -1] {
        rejects(every(secs, None, None), 5008, MSG_5008).await;
    }
    let fractional = DeliveryOptions {
        repeat_every: Some(TimeDelta::milliseconds(1_500)),
        ..DeliveryOptions::default()
    };
    rejects(fractional, 5008, MSG_5008).await;
    let both = DeliveryOptions {
        repeat_cron: Some("0 * * * * *".into()),
        ..every(1, None, None)
    };
    rejects(both, 5008, MSG_5008).await;

    rejects_json(json!({"repeatEvery": 0}), 5008, MSG_5008).await;
    rejects_json(json!({"repeatEvery": 1.5}), 5008, MSG_5008).await;
    rejects_json(json!({"repeatEvery": "often"}), 5008, MSG_5008).await;
    rejects_json(
        json!({"repeatEvery": 60, "repeatCron": "0 * * * * *"}),
        5008,
        MSG_5008,
    )
    .await;
}

#[tokio::test]
async fn bad_cron_is_5009() {
    rejects(cron("every tuesday", None, None), 5009, MSG_5009).await;
    rejects(
        cron("0 30 2 * * *", Some("Mars/Olympus_Mons"), None),
        5009,
        MSG_5009,
    )
    .await;
    // Never fires at all (30 February).
    rejects(cron("0 0 0 30 2 *", None, None), 5009, MSG_5009).await;
    // Fires, but not before it expires: 1 January, expiring within a week.
    rejects(
        cron("0 0 0 1 1 *", None, Some(T0 + 7 * 86_400_000)),
        5009,
        MSG_5009,
    )
    .await;
    // Every occurrence is in the past (the year field).
    rejects(cron("0 0 0 1 1 * 2020", None, None), 5009, MSG_5009).await;

    rejects_json(json!({"repeatCron": 5}), 5009, MSG_5009).await;
    rejects_json(
        json!({"repeatCron": "0 * * * * *", "timeZone": 1}),
        5009,
        MSG_5009,
    )
    .await;
}

#[tokio::test]
async fn cron_errors_keep_the_reason_for_humans() {
    let (engine, _clock) = engine();
    let err = publish_with(
        &engine,
        "ch",
        json!(1),
        cron("0 0 0 * * *", Some("Nowhere/Land"), None),
    )
    .await
    .unwrap_err();
    match err {
        Error::InvalidCron { reason } => assert!(reason.contains("Nowhere/Land"), "{reason}"),
        other => panic!("expected InvalidCron, got {other:?}"),
    }
}

#[tokio::test]
async fn channel_names() {
    let (engine, _clock) = engine();
    let long = "c".repeat(256);
    for bad in [
        "",
        "a/b",
        "/",
        long.as_str(),
        "a\nERROR forged",
        "a\r\n",
        "\u{1b}[31mred",
        "nul\0",
        "x\u{2028}y",
    ] {
        let err = publish_now_err(&engine, bad).await;
        assert_invalid(&err, 5010, MSG_5010);
        assert_invalid(&engine.subscribe(bad, None).unwrap_err(), 5010, MSG_5010);
        assert_invalid(&engine.delete_channel(bad).unwrap_err(), 5010, MSG_5010);
    }
    assert!(
        engine.channels().is_empty(),
        "a rejected name creates no channel"
    );

    let ok = "c".repeat(255);
    let mut sub = engine.subscribe(&ok, None).unwrap();
    assert_eq!(
        publish_now(&engine, &ok, json!(1)).await.status,
        PublishStatus::Published
    );
    assert_eq!(drain(&mut sub).len(), 1);
    // 255 bytes, not characters: 128 two-byte characters is 256 bytes.
    let wide = "é".repeat(128);
    assert_error(&publish_now_err(&engine, &wide).await, 5010, MSG_5010);
    let wide_ok = format!("{}x", "é".repeat(127));
    assert_eq!(
        publish_now(&engine, &wide_ok, json!(1)).await.status,
        PublishStatus::Published
    );
}

async fn publish_now_err(engine: &herald::Engine, channel: &str) -> Error {
    publish_with(engine, channel, json!(1), DeliveryOptions::default())
        .await
        .expect_err(channel)
}

#[tokio::test]
async fn bad_publish_policy_or_push_broadcast_is_5011() {
    for body in [
        json!({"publishPolicy": "SOMETIMES"}),
        json!({"publishPolicy": 7}),
        json!({"publishPolicy": -1}),
        json!({"publishPolicy": true}),
        json!({"pushBroadcast": "FOR_TOASTERS"}),
        json!({"pushBroadcast": "IOS|"}),
        json!({"pushBroadcast": 16}),
        json!({"pushBroadcast": true}),
    ] {
        rejects_json(body, 5011, MSG_5011).await;
    }
    // And the good forms decode.
    for body in [
        json!({"publishPolicy": "PUBSUB"}),
        json!({"publishPolicy": 2}),
        json!({"pushBroadcast": "FOR_IOS|FOR_ANDROID"}),
        json!({"pushBroadcast": "IOS | ANDROID"}),
        json!({"pushBroadcast": 15}),
        // Whole floats, as JavaScript may send them.
        json!({"pushBroadcast": 6.0}),
        json!({"publishPolicy": 2.0}),
    ] {
        let mut body = body;
        body["message"] = json!(1);
        PublishRequest::from_json(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
    }
}

#[tokio::test]
async fn bad_selector_at_subscribe_is_5012() {
    let (engine, _clock) = engine();
    let err = engine.subscribe("ch", Some("foo >")).unwrap_err();
    assert_eq!(err.code(), 5012);
    assert!(err.is_client_error());
    // "the parser's message with the position" (contract); the exact
    // wording is the selector's.
    let text = err.to_string();
    assert!(text.starts_with("Invalid selector"), "{text}");
    assert!(
        text.chars().any(|c| c.is_ascii_digit()),
        "no position in {text}"
    );
    // A blank selector means "everything".
    let mut sub = engine.subscribe("ch", Some("  ")).unwrap();
    publish_now(&engine, "ch", json!(1)).await;
    assert_eq!(drain(&mut sub).len(), 1);
}

#[tokio::test]
async fn bad_segment_query_is_5012() {
    let req = PublishRequest::from_json(&json!({"message": 1, "segmentQuery": "os >"})).unwrap();
    let err = herald::DeliveryPlan::new(req.delivery).unwrap_err();
    assert_eq!(err.code(), 5012);
    let (engine, _clock) = engine();
    let delivery = DeliveryOptions {
        segment_query: Some("os >".into()),
        ..DeliveryOptions::default()
    };
    let err = publish_with(&engine, "ch", json!(1), delivery)
        .await
        .unwrap_err();
    assert_eq!(err.code(), 5012);
}

/// Errors say why: Backendless's text unchanged, then what was wrong.
#[tokio::test]
async fn errors_say_why() {
    let cases = [
        (
            json!({"publishAt": 1_700_000_000}),
            "Invalid publishAt date in the delivery options. \
             1700000000 is in the past: publishAt is in epoch milliseconds.",
        ),
        (
            json!({"publishAt": T0 - 90_000}),
            &*format!(
                "Invalid publishAt date in the delivery options. \
                 {} is 90.000 s before the server's time, {T0}.",
                T0 - 90_000
            ),
        ),
        (
            json!({"publishAt": "tomorrow"}),
            "Invalid publishAt date in the delivery options. \
             publishAt is a number of epoch milliseconds from 0, not \"tomorrow\".",
        ),
        (
            json!({"repeatEvery": 0}),
            "Invalid repeatEvery value in delivery options. \
             repeatEvery is whole seconds from 1 to 1000000000, not 0.",
        ),
        (
            json!({"repeatEvery": 1, "publishAt": T0 + 10_000, "repeatExpiresAt": T0 + 5_000}),
            &*format!(
                "Invalid repeatExpiresAt date in delivery options. \
                 repeatExpiresAt {} is before publishAt {}.",
                T0 + 5_000,
                T0 + 10_000
            ),
        ),
        (
            json!({"repeatCron": "every tuesday"}),
            "Invalid cron expression in delivery options. \
             \"every tuesday\" does not parse: expected 6 or 7 fields, found 2.",
        ),
        (
            json!({"publishPolicy": "SOMETIMES"}),
            "Invalid publishPolicy / pushBroadcast value. \
             publishPolicy is PUSH, PUBSUB or BOTH (or 0, 1, 2), not \"SOMETIMES\".",
        ),
        (
            json!({"headers": [1]}),
            "Invalid headers value in publish options. \
             headers is an object of header names to values, not [1].",
        ),
    ];
    for (mut body, text) in cases {
        body["message"] = json!(1);
        let err = match PublishRequest::from_json(&body) {
            Err(e) => e,
            Ok(req) => {
                let (engine, _clock) = engine();
                engine.publish_request("ch", req).await.unwrap_err()
            }
        };
        assert_eq!(err.to_string(), text, "{body}");
    }
    // A user-supplied string is quoted, escaped and cut short.
    let body = json!({"message": 1, "publishAt": format!("\n{}", "x".repeat(500))});
    let text = PublishRequest::from_json(&body).unwrap_err().to_string();
    let shown = format!("not \"\\n{}….", "x".repeat(61));
    assert!(text.ends_with(&shown), "{text}");
    assert!(!text.contains('\n'));
}

#[tokio::test]
async fn unknown_keys_are_ignored() {
    let req = PublishRequest::from_json(&json!({
        "message": "m",
        "someFutureOption": {"x": 1},
        "publishPolicy": "PUBSUB",
    }))
    .unwrap();
    let (engine, _clock) = engine();
    let s = engine.publish_request("ch", req).await.unwrap();
    assert_eq!(s.status, PublishStatus::Published);
}

#[tokio::test]
async fn a_failed_publish_leaves_earlier_work_alone() {
    let clock = clock();
    let store = MemoryStore::new();
    let engine = builder(&clock).store(store.clone()).build();
    let mut sub = engine.subscribe("ch", None).unwrap();
    let ok = publish_with(&engine, "ch", json!("ok"), at(T0 + 1_000))
        .await
        .unwrap();
    assert_eq!((store.len(), engine.scheduled_len()), (1, 1));
    for bad in [
        at(T0 - 5_000),
        every(0, None, None),
        cron("nope", None, None),
    ] {
        publish_with(&engine, "ch", json!("bad"), bad)
            .await
            .unwrap_err();
    }
    assert_eq!((store.len(), engine.scheduled_len()), (1, 1));
    step(&engine, &clock, 1_000).await;
    assert_eq!(drain_messages(&mut sub), [json!("ok")]);
    assert_status(&engine, &ok.message_id, PublishStatus::Published, 1).await;
}
