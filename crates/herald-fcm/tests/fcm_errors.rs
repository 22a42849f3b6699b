//! Every FCM answer the gateway maps, scripted on the mock: classified by
//! `errorCode`, `Retry-After` honoured, a quota pausing the gateway,
//! payload rules applied before any request.

mod support;

use std::collections::BTreeMap;

use herald::{Outcome, PushContent, PushTransport, Refusal};
use herald_core::Tick;
use herald_testkit::mock_fcm::{FcmScript, Gate, ScriptedError};
use support::{START, batch, note, note_with, secs, start_default};

/// What one scripted answer must become.
struct Case {
    script: ScriptedError,
    outcome: Outcome,
    refused: Option<Refusal>,
}

fn case(script: ScriptedError, outcome: Outcome, refused: Option<Refusal>) -> Case {
    Case {
        script,
        outcome,
        refused,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mapped_error_code() {
    let f = start_default("fcm-codes").await;
    let retry = |s: Option<u64>| Outcome::Retry { after: s.map(secs) };
    let invalid = Outcome::InvalidToken { at: None };
    // 90 s after the clock's time, as an HTTP date.
    let date = chrono::DateTime::from_timestamp_millis((START + 90_000) as i64)
        .unwrap()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let cases = [
        case(ScriptedError::code("UNREGISTERED"), invalid.clone(), None),
        case(ScriptedError::code("SENDER_ID_MISMATCH"), invalid.clone(), None),
        case(
            ScriptedError::code("QUOTA_EXCEEDED").with_retry_after("30"),
            retry(Some(30)),
            Some(Refusal::Quota { after: Some(secs(30)) }),
        ),
        case(
            ScriptedError::code("QUOTA_EXCEEDED"),
            retry(None),
            Some(Refusal::Quota { after: None }),
        ),
        case(
            ScriptedError::code("UNAVAILABLE").with_retry_after("7"),
            retry(Some(7)),
            None,
        ),
        case(
            ScriptedError::code("UNAVAILABLE").with_retry_after(&date),
            retry(Some(90)),
            None,
        ),
        case(ScriptedError::code("UNAVAILABLE"), retry(None), None),
        case(ScriptedError::code("INTERNAL"), retry(None), None),
        case(ScriptedError::status(500), retry(None), None),
        case(ScriptedError::status(503).with_retry_after("12"), retry(Some(12)), None),
        case(
            ScriptedError::status(429),
            retry(None),
            Some(Refusal::Quota { after: None }),
        ),
        case(
            ScriptedError::code("THIRD_PARTY_AUTH_ERROR"),
            retry(None),
            Some(Refusal::Credentials {
                reason: "FCM 401 THIRD_PARTY_AUTH_ERROR: Auth error from APNS or Web Push Service"
                    .into(),
            }),
        ),
        case(
            ScriptedError::code("INVALID_ARGUMENT"),
            Outcome::Failed {
                reason: "FCM 400 INVALID_ARGUMENT: The registration token is not a valid FCM registration token".into(),
            },
            None,
        ),
        // The same status, another errorCode: the errorCode decides.
        case(ScriptedError::code("UNREGISTERED").with_status(503), invalid.clone(), None),
        case(ScriptedError::code("UNAVAILABLE").with_status(404), retry(None), None),
    ];
    for (i, c) in cases.iter().enumerate() {
        let token = format!("scripted-{i}");
        f.mock.script(&token, c.script.clone());
        let d = f.gateway.send(&[note(&token)]).await;
        assert_eq!(d.outcomes, vec![c.outcome.clone()], "{:?}", c.script);
        assert_eq!(d.refused, c.refused, "{:?}", c.script);
    }
    assert_eq!(f.mock.send_requests(), cases.len() as u64);
    assert_eq!(f.mock.accepted_count(), 0);
    assert_eq!(f.mock.tokens_issued(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_batch_keeps_its_order_and_a_quota_pauses_the_gateway() {
    let f = start_default("fcm-mixed").await;
    f.mock.script("gone", ScriptedError::code("UNREGISTERED"));
    f.mock.script(
        "quota",
        ScriptedError::code("QUOTA_EXCEEDED").with_retry_after("20"),
    );
    f.mock.script(
        "quota-longer",
        ScriptedError::code("QUOTA_EXCEEDED").with_retry_after("45"),
    );
    let b = ["a", "gone", "b", "quota", "c", "quota-longer"].map(note);
    let d = f.gateway.send(&b).await;
    assert_eq!(
        d.outcomes,
        [
            Outcome::Sent,
            Outcome::InvalidToken { at: None },
            Outcome::Sent,
            Outcome::Retry {
                after: Some(secs(20))
            },
            Outcome::Sent,
            Outcome::Retry {
                after: Some(secs(45))
            },
        ]
    );
    assert_eq!(
        d.refused,
        Some(Refusal::Quota {
            after: Some(secs(45))
        })
    );
    let mut accepted: Vec<String> = f.mock.accepted().into_iter().map(|m| m.token).collect();
    accepted.sort();
    assert_eq!(accepted, ["a", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_limit_and_expiry_fail_without_a_request() {
    let f = start_default("fcm-limit").await;
    let big = note_with(
        "big",
        PushContent {
            body: Some("x".repeat(3000)),
            ..PushContent::default()
        },
    );
    let mut expired = note("expired");
    expired.expires_at = Tick::from_millis(START);
    let d = f.gateway.send(&[big.clone(), expired.clone()]).await;
    let [
        Outcome::Failed { reason: too_big },
        Outcome::Failed { reason: late },
    ] = d.outcomes.as_slice()
    else {
        panic!("{:?}", d.outcomes)
    };
    assert!(too_big.contains("over FCM's limit of 4096"), "{too_big}");
    assert_eq!(late, "expired before it could be sent");
    assert_eq!(
        f.mock.streams(),
        0,
        "no request reached the mock, not even for a token"
    );
    assert_eq!(f.mock.connections(), 0);

    let d = f.gateway.send(&[big, note("fine")]).await;
    assert!(matches!(d.outcomes[0], Outcome::Failed { .. }));
    assert_eq!(d.outcomes[1], Outcome::Sent);
    assert_eq!(f.mock.send_requests(), 1, "only the one that fits was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_travels_as_strings_and_reserved_keys_fail_before_sending() {
    let f = start_default("fcm-data").await;
    let custom = BTreeMap::from([
        ("count".to_owned(), "3".to_owned()),
        ("flag".to_owned(), "true".to_owned()),
        ("message".to_owned(), "{\"a\":[1,2]}".to_owned()),
    ]);
    let n = note_with(
        "data",
        PushContent {
            custom: custom.clone(),
            ..PushContent::default()
        },
    );
    assert_eq!(f.gateway.send(&[n]).await.outcomes, [Outcome::Sent]);
    let accepted = f.mock.accepted();
    let data = accepted[0].message["data"].as_object().unwrap();
    assert_eq!(data.len(), 3);
    for (k, v) in &custom {
        assert_eq!(data[k].as_str(), Some(v.as_str()), "{k} is the same string");
    }
    assert!(accepted[0].message.get("notification").is_none());

    let reserved = note_with(
        "reserved",
        PushContent {
            custom: BTreeMap::from([("google.sent_time".to_owned(), "1".to_owned())]),
            ..PushContent::default()
        },
    );
    let d = f.gateway.send(&[reserved]).await;
    assert!(
        matches!(&d.outcomes[0], Outcome::Failed { reason } if reason.contains("reserved by FCM")),
        "{:?}",
        d.outcomes
    );
    assert_eq!(f.mock.send_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_on_the_wire_follows_the_contract() {
    let f = start_default("fcm-wire").await;
    let mut n = note_with(
        "wire",
        PushContent {
            title: Some("Sale".into()),
            body: Some("50% off".into()),
            ticker: Some("Sale!".into()),
            custom: BTreeMap::from([("campaign".to_owned(), "c7".to_owned())]),
            ..PushContent::default()
        },
    );
    n.collapse_key = Some("sale".into());
    f.clock.advance(secs(600));
    assert_eq!(f.gateway.send(&[n]).await.outcomes, [Outcome::Sent]);
    assert_eq!(
        f.mock.accepted()[0].message,
        serde_json::json!({
            "token": "wire",
            "notification": {"title": "Sale", "body": "50% off"},
            "data": {"campaign": "c7"},
            "android": {
                "ttl": "3000s",
                "collapse_key": "sale",
                "priority": "high",
                "notification": {"title": "Sale", "body": "50% off", "ticker": "Sale!"},
            },
        }),
        "ttl is the time left when sending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_send_with_slow_answers_leaves_the_gateway_usable() {
    let f = start_default("fcm-slow").await;
    let gate = Gate::new();
    f.mock.script("slow", FcmScript::Slow(gate.clone()));
    let mut b = batch(3);
    b.push(note("slow"));
    {
        let send = f.gateway.send(&b);
        tokio::pin!(send);
        tokio::select! {
            _ = &mut send => panic!("the slow answer is held"),
            () = gate.until_arrived(1) => {}
        }
    } // dropped here, the slow request in flight
    let d = f.gateway.send(&batch(2)).await;
    assert_eq!(d.outcomes, [Outcome::Sent, Outcome::Sent]);
    gate.open();
    assert_eq!(
        f.gateway.send(&[note("slow")]).await.outcomes,
        [Outcome::Sent]
    );
    assert_eq!(f.mock.tokens_issued(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_and_fcm_agree_on_the_4096_byte_boundary() {
    let f = start_default("fcm-boundary").await;
    // The message without its target, with an empty value.
    let empty = r#"{"data":{"k":""},"android":{"ttl":"3600s","priority":"high"}}"#.len();
    let with = |len: usize| {
        note_with(
            &format!("len-{len}"),
            PushContent {
                custom: BTreeMap::from([("k".to_owned(), "x".repeat(len))]),
                ..PushContent::default()
            },
        )
    };
    let fits = 4096 - empty;
    let d = f.gateway.send(&[with(fits), with(fits + 1)]).await;
    assert_eq!(
        d.outcomes[0],
        Outcome::Sent,
        "exactly 4096 bytes: FCM takes it"
    );
    assert!(
        matches!(d.outcomes[1], Outcome::Failed { .. }),
        "{:?}",
        d.outcomes
    );
    assert_eq!(f.mock.send_requests(), 1);
    assert_eq!(f.mock.accepted()[0].token, format!("len-{fits}"));
}
