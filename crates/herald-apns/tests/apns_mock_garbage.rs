//! The mock APNs answers any request, however malformed, with a status and
//! a reason, and never panics (a panic would cut the connection: the pool
//! would report it lost).

mod support;

use std::sync::Arc;

use bytes::Bytes;
use herald::{Outcome, PushTransport};
use herald_http2::{Pool, PoolOptions};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use support::{Setup, notes};

/// Each header with a valid value.
fn valid_headers(auth: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", auth.to_owned()),
        ("apns-topic", "com.example.app".to_owned()),
        ("apns-push-type", "alert".to_owned()),
        ("apns-priority", "10".to_owned()),
        ("apns-expiration", "1700003600".to_owned()),
        ("apns-collapse-id", "c".to_owned()),
        ("apns-id", "123e4567-e89b-12d3-a456-426614174000".to_owned()),
    ]
}

/// What becomes of one header: mostly valid, sometimes absent, garbage,
/// another valid-looking value, or twice.
#[derive(Clone, Debug)]
enum Mutation {
    Keep,
    Drop,
    Garbage(Vec<u8>),
    Other(&'static str),
    Twice,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        12 => Just(Mutation::Keep),
        1 => Just(Mutation::Drop),
        1 => proptest::collection::vec(0x20u8..0xff, 0..100).prop_map(Mutation::Garbage),
        1 => proptest::sample::select(vec![
            "background", "voip", "5", "1", "7", "", "com.other.app", "-3", "bearer x.y.z", "basic",
            "123E4567-E89B-12D3-A456-426614174000", "99999999999999999999999",
            "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
        ]).prop_map(Mutation::Other),
        1 => Just(Mutation::Twice),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => Just(br#"{"aps":{"alert":{"body":"x"}},"k":"v"}"#.to_vec()),
        1 => Just(br#"{"aps":{"content-available":1}}"#.to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
        1 => "\\{\"aps\":[ -~]{0,50}\\}".prop_map(String::into_bytes),
        1 => Just(Vec::new()),
        1 => Just([&br#"{"aps":{},"k":""#[..], &[b'x'; 4100], b"\"}"].concat()),
    ]
}

fn request(auth: String) -> impl Strategy<Value = http::Request<Bytes>> {
    (
        prop_oneof![9 => Just("POST"), 1 => Just("GET"), 1 => Just("PUT")],
        prop_oneof![
            8 => "/3/device/[0-9a-f]{64}",
            1 => "/3/device/[a-zA-Z0-9/._~-]{0,40}",
            1 => "/[a-zA-Z0-9/._~-]{0,40}",
        ],
        proptest::collection::vec(mutation(), 7),
        body(),
    )
        .prop_map(move |(method, path, mutations, body)| {
            let mut r = http::Request::new(Bytes::from(body));
            *r.method_mut() = method.parse().unwrap();
            *r.uri_mut() = path.parse().unwrap();
            for ((name, valid), m) in valid_headers(&auth).into_iter().zip(mutations) {
                let values: Vec<Vec<u8>> = match m {
                    Mutation::Keep => vec![valid.into_bytes()],
                    Mutation::Drop => vec![],
                    Mutation::Garbage(g) => vec![g],
                    Mutation::Other(o) => vec![o.as_bytes().to_vec()],
                    Mutation::Twice => vec![valid.clone().into_bytes(), valid.into_bytes()],
                };
                for v in values {
                    if let Ok(v) = http::HeaderValue::from_bytes(&v) {
                        r.headers_mut().append(name, v);
                    }
                }
            }
            r
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_request_gets_an_apns_answer() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    // A valid provider token, the first the mock sees, so the checks after
    // it are reached too.
    let auth = {
        // The mock does not keep tokens; sign one like the gateway does.
        let key = jsonwebtoken::EncodingKey::from_ec_pem(s.key.private_pem.as_bytes()).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(s.key.key_id.clone());
        let claims = serde_json::json!({"iss": s.key.team_id, "iat": support::START / 1000});
        format!(
            "bearer {}",
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        )
    };
    let pool = Pool::new(
        &s.mock.url(),
        herald_http2::client_tls_only(s.mock.ca_pem().as_bytes()).unwrap(),
        PoolOptions::default(),
        Arc::new(s.gateway_clock.clone()),
    )
    .unwrap();
    let mut runner = TestRunner::deterministic();
    let requests = proptest::collection::vec(request(auth), 400)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let mut answered = std::collections::BTreeMap::<u16, u32>::new();
    for r in requests {
        let shown = format!("{} {}", r.method(), r.uri());
        let answer = pool
            .send(r)
            .await
            .unwrap_or_else(|e| panic!("{shown}: {e}"));
        *answered.entry(answer.status.as_u16()).or_default() += 1;
        assert!(answer.header("apns-id").is_some(), "{shown}");
        if answer.status != 200 {
            let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
            assert!(
                body["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{shown}: {body}"
            );
        }
    }
    assert!(answered.len() >= 6, "varied answers: {answered:?}");
    assert!(
        s.mock.refusals().len() >= 15,
        "many rules reached: {:?}",
        s.mock.refusals()
    );
    // Still serving (20 minutes on, the gateway's token is welcome).
    s.advance(20 * support::MIN);
    assert_eq!(
        gateway.send(&notes(1..3)).await.outcomes,
        vec![Outcome::Sent; 2]
    );
}
