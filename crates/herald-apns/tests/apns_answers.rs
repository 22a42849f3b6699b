//! Every APNs answer the gateway maps, from the mock's scripts and from its
//! own checks; the batch rules; what a request carries.

mod support;

use std::time::Duration;

use herald::{Outcome, PushContent, PushTransport, Refusal};
use herald_core::Tick;
use herald_testkit::mock_apns::{Script, TestApnsKey};
use support::{MIN, START, Setup, TOPIC, note, notes, token};

fn retry(after: Option<u64>) -> Outcome {
    Outcome::Retry {
        after: after.map(Duration::from_secs),
    }
}

fn failed(reason: &str) -> Outcome {
    Outcome::Failed {
        reason: reason.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scripted_answer_maps_to_its_outcome() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    let ms = |t: u64| Some(Tick::from_millis(t));
    let mut cases: Vec<(Option<Script>, Outcome, Option<Refusal>)> = vec![
        (None, Outcome::Sent, None),
        (
            Some(Script::Unregistered {
                since: Tick::from_millis(START - 5),
            }),
            Outcome::InvalidToken { at: ms(START - 5) },
            None,
        ),
        (
            Some(Script::Unregistered {
                since: Tick::from_millis(START + MIN),
            }),
            Outcome::Sent,
            None,
        ),
        (
            Some(Script::reject(410, "ExpiredToken")),
            Outcome::InvalidToken { at: ms(START) },
            None,
        ),
        (
            Some(Script::bad_device_token()),
            Outcome::InvalidToken { at: None },
            None,
        ),
        (
            Some(Script::reject(429, "TooManyRequests")),
            retry(None),
            None,
        ),
        (
            Some(Script::reject(429, "TooManyRequests").with_retry_after("30")),
            retry(Some(30)),
            None,
        ),
        (
            // START is Tue, 14 Nov 2023 22:13:20 GMT: 100 s later.
            Some(
                Script::reject(503, "ServiceUnavailable")
                    .with_retry_after("Tue, 14 Nov 2023 22:15:00 GMT"),
            ),
            retry(Some(100)),
            None,
        ),
        (
            Some(Script::reject(500, "InternalServerError")),
            retry(None),
            None,
        ),
        (
            Some(Script::reject(503, "ServiceUnavailable")),
            retry(None),
            None,
        ),
        (
            Some(Script::reject(503, "Shutdown").with_retry_after("7")),
            retry(Some(7)),
            None,
        ),
        (
            Some(Script::reject(429, "TooManyProviderTokenUpdates")),
            retry(None),
            None,
        ),
    ];
    for reason in [
        "InvalidProviderToken",
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
        "MissingProviderToken",
    ] {
        cases.push((
            Some(Script::reject(403, reason)),
            retry(None),
            Some(Refusal::Credentials {
                reason: format!("APNs 403 {reason}"),
            }),
        ));
    }
    for reason in [
        "BadCollapseId",
        "BadExpirationDate",
        "BadMessageId",
        "BadPriority",
        "BadTopic",
        "DeviceTokenNotForTopic",
        "DuplicateHeaders",
        "IdleTimeout",
        "InvalidPushType",
        "MissingDeviceToken",
        "MissingTopic",
        "PayloadEmpty",
        "TopicDisallowed",
    ] {
        cases.push((
            Some(Script::reject(400, reason)),
            failed(&format!("APNs 400 {reason}")),
            None,
        ));
    }
    for (status, reason) in [
        (404, "BadPath"),
        (405, "MethodNotAllowed"),
        (413, "PayloadTooLarge"),
    ] {
        cases.push((
            Some(Script::reject(status, reason)),
            failed(&format!("APNs {status} {reason}")),
            None,
        ));
    }
    for (n, (script, outcome, refusal)) in cases.into_iter().enumerate() {
        if let Some(script) = script {
            s.mock.script(&token(n), script.clone());
        }
        let d = gateway.send(&[note(n)]).await;
        assert_eq!(
            (d.outcomes, d.refused),
            (vec![outcome], refusal),
            "case {n}"
        );
    }
    assert_eq!(s.mock.provider_tokens(), 1);
    assert_eq!(s.mock.refusals()["400 BadDeviceToken"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_mock_itself_refuses_maps_too() {
    let s = Setup::start().await;
    // Another bundle id.
    let wrong_topic = s.gateway_with(herald_apns::ApnsConfig {
        topic: "com.example.other".into(),
        ..s.config()
    });
    let d = wrong_topic.send(&notes(0..2)).await;
    assert_eq!(
        d.outcomes,
        vec![failed("APNs 400 DeviceTokenNotForTopic"); 2]
    );
    assert_eq!(d.refused, None);

    // A key Apple does not know, or another team: the credentials are refused.
    let other = TestApnsKey::generate();
    for config in [
        herald_apns::ApnsConfig {
            key_pem: other.private_pem.clone(),
            ..s.config()
        },
        herald_apns::ApnsConfig {
            team_id: "OTHERTEAM1".into(),
            ..s.config()
        },
        herald_apns::ApnsConfig {
            key_id: "OTHERKEY01".into(),
            ..s.config()
        },
    ] {
        let d = s.gateway_with(config).send(&notes(0..30)).await;
        assert_eq!(
            d.refused,
            Some(Refusal::Credentials {
                reason: "APNs 403 InvalidProviderToken".into()
            })
        );
        assert_eq!(d.outcomes, vec![retry(None); 30], "nothing else is decided");
    }
    assert_eq!(s.mock.accepted_count(), 0);
    assert_eq!(
        s.mock.provider_tokens(),
        1,
        "only the wrong-topic gateway's token was valid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mostly_bad_device_tokens_is_an_environment_mismatch() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    // 11 of 20 answered BadDeviceToken: the other environment's tokens.
    for n in 0..11 {
        s.mock.script(&token(n), Script::bad_device_token());
    }
    let d = gateway.send(&notes(0..20)).await;
    let Some(Refusal::Misconfigured { reason }) = &d.refused else {
        panic!("a mismatch: {:?}", d.refused);
    };
    assert!(
        reason.contains("11 of 20") && reason.contains("sandbox"),
        "{reason}"
    );
    assert_eq!(
        d.outcomes[..11],
        vec![retry(None); 11][..],
        "no token is removed"
    );
    assert_eq!(d.outcomes[11..], vec![Outcome::Sent; 9][..]);

    // 10 of 20 is not most: invalid tokens.
    s.mock.clear_script(&token(10));
    let d = gateway.send(&notes(0..20)).await;
    assert_eq!(d.refused, None);
    assert_eq!(
        d.outcomes[..10],
        vec![Outcome::InvalidToken { at: None }; 10][..]
    );
    // A small batch of bad tokens: invalid tokens too.
    let d = gateway.send(&notes(0..10)).await;
    assert_eq!(
        (d.outcomes, d.refused),
        (vec![Outcome::InvalidToken { at: None }; 10], None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_carries_every_header_and_the_payload() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    let mut alert = note(1);
    alert.collapse_key = Some("score-update".into());
    alert.content = std::sync::Arc::new(PushContent {
        title: Some("Goal".into()),
        subtitle: Some("87'".into()),
        body: Some("2:1".into()),
        badge: Some(3),
        sound: Some("goal.caf".into()),
        custom: [("match".to_string(), "m7".to_string())].into(),
        ..PushContent::default()
    });
    let mut background = note(2);
    background.content = std::sync::Arc::new(PushContent {
        body: Some("not shown".into()),
        background: true,
        custom: [("sync".to_string(), "1".to_string())].into(),
        ..PushContent::default()
    });
    let d = gateway.send(&[alert.clone(), background.clone()]).await;
    assert_eq!(d.outcomes, vec![Outcome::Sent; 2]);
    let mut got = s.mock.accepted();
    got.sort_by(|a, b| a.device_token.cmp(&b.device_token));
    let (a, b) = (&got[0], &got[1]);
    assert_eq!(a.device_token, token(1));
    assert_eq!(a.header("apns-topic"), Some(TOPIC));
    assert_eq!(a.header("apns-push-type"), Some("alert"));
    assert_eq!(a.header("apns-priority"), Some("10"));
    let expiration = (START + 24 * 60 * MIN) / 1000;
    assert_eq!(
        a.header("apns-expiration"),
        Some(expiration.to_string().as_str())
    );
    assert_eq!(a.header("apns-collapse-id"), Some("score-update"));
    assert_eq!(a.apns_id, alert.id.to_string());
    assert_eq!(a.header("apns-id"), Some(alert.id.to_string().as_str()));
    assert_eq!(a.header("authorization"), None, "the mock keeps no token");
    assert_eq!(
        a.payload,
        serde_json::json!({
            "aps": {"alert": {"title": "Goal", "subtitle": "87'", "body": "2:1"}, "badge": 3, "sound": "goal.caf"},
            "match": "m7"
        })
    );
    assert_eq!(b.header("apns-push-type"), Some("background"));
    assert_eq!(b.header("apns-priority"), Some("5"));
    assert_eq!(b.header("apns-collapse-id"), None);
    assert_eq!(
        b.payload,
        serde_json::json!({"aps": {"content-available": 1}, "sync": "1"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_for_expired_notifications_or_impossible_tokens() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    let mut expired = note(0);
    expired.expires_at = Tick::from_millis(START);
    let mut not_hex = note(1);
    not_hex.device_token = "not-a-token".into();
    let mut long_collapse = note(2);
    long_collapse.collapse_key = Some("c".repeat(65));
    let d = gateway
        .send(&[expired, not_hex, long_collapse, note(3)])
        .await;
    assert_eq!(d.refused, None);
    assert!(
        matches!(&d.outcomes[0], Outcome::Failed { reason } if reason.contains("expired")),
        "{:?}",
        d.outcomes[0]
    );
    assert_eq!(d.outcomes[1], Outcome::InvalidToken { at: None });
    assert!(
        matches!(&d.outcomes[2], Outcome::Failed { reason } if reason.contains("65 bytes")),
        "{:?}",
        d.outcomes[2]
    );
    assert_eq!(d.outcomes[3], Outcome::Sent);
    assert_eq!(s.mock.streams(), 1, "only the last one made a request");
    assert_eq!(gateway.stats().not_sent, 3);
}
