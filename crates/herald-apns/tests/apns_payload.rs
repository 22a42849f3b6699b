//! The payload: the size limit end to end (nothing over it reaches APNs),
//! and the builder's properties.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use herald::{Outcome, PushContent, PushTransport};
use herald_apns::{MAX_PAYLOAD_BYTES, PayloadError, apns_payload};
use proptest::prelude::*;
use serde_json::Value;
use support::{Setup, note};

/// A notification whose payload is exactly `bytes` long.
fn sized(n: usize, bytes: usize) -> herald::Notification {
    // `{"aps":{"alert":{"body":""}}}` is 29 bytes around the body.
    let mut note = note(n);
    note.content = Arc::new(PushContent {
        body: Some("x".repeat(bytes - 29)),
        ..PushContent::default()
    });
    note
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_4096_bytes_is_failed_without_a_request() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    let d = gateway.send(&[sized(0, 4097)]).await;
    assert_eq!(
        d.outcomes,
        vec![Outcome::Failed {
            reason: "the APNs payload is 4097 bytes, over Apple's limit of 4096".into()
        }]
    );
    assert_eq!(s.mock.streams(), 0, "no request reached the mock");
    assert_eq!(s.mock.connections(), 0);
    // 4096 bytes fit, and the mock (Apple's limit too) takes them.
    let d = gateway.send(&[sized(1, 4096)]).await;
    assert_eq!(d.outcomes, vec![Outcome::Sent]);
    let accepted = s.mock.accepted();
    assert_eq!(
        serde_json::to_vec(&accepted[0].payload).unwrap().len(),
        4096
    );
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,40}",
        "\\PC{0,40}",
        "[\"\\\\\u{0}-\u{1f}✓]{0,20}",
        "x{1000,2500}",
    ]
}

fn content() -> impl Strategy<Value = PushContent> {
    (
        (
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
        ),
        proptest::option::of(any::<u32>()),
        proptest::option::of(text()),
        any::<bool>(),
        proptest::collection::btree_map("[a-z_]{1,8}", text(), 0..4),
    )
        .prop_map(
            |((title, subtitle, body), badge, sound, background, custom)| PushContent {
                title,
                subtitle,
                body,
                ticker: None,
                badge,
                sound,
                background,
                custom,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Never over the limit; `aps` as the content says, the badge a
    /// number; every custom key at the top level as a string, and nothing
    /// else there.
    #[test]
    fn the_payload_builder(c in content()) {
        match apns_payload(&c) {
            Err(PayloadError::TooLarge { bytes }) => prop_assert!(bytes > MAX_PAYLOAD_BYTES),
            Err(PayloadError::ApsKey) => prop_assert!(c.custom.contains_key("aps")),
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
            Ok(body) => {
                prop_assert!(body.len() <= MAX_PAYLOAD_BYTES);
                let v: Value = serde_json::from_slice(&body).unwrap();
                let top = v.as_object().unwrap();
                prop_assert_eq!(top.len(), c.custom.len() + 1);
                for (k, value) in &c.custom {
                    prop_assert_eq!(top.get(k), Some(&Value::String(value.clone())));
                }
                let aps = &v["aps"];
                if c.background {
                    prop_assert_eq!(aps, &serde_json::json!({"content-available": 1}));
                } else {
                    prop_assert_eq!(aps.get("badge").and_then(Value::as_u64), c.badge.map(u64::from));
                    prop_assert_eq!(aps.get("sound").and_then(Value::as_str), c.sound.as_deref());
                    let field = |f: &str| aps.get("alert").and_then(|a| a.get(f)).and_then(Value::as_str);
                    prop_assert_eq!(field("title"), c.title.as_deref());
                    prop_assert_eq!(field("subtitle"), c.subtitle.as_deref());
                    prop_assert_eq!(field("body"), c.body.as_deref());
                }
            }
        }
    }
}

#[test]
fn a_custom_aps_key_is_refused() {
    let c = PushContent {
        custom: BTreeMap::from([("aps".to_string(), "{}".to_string())]),
        ..PushContent::default()
    };
    assert_eq!(apns_payload(&c), Err(PayloadError::ApsKey));
}
