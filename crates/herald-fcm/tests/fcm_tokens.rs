//! The OAuth2 access token: fetched once and shared, refreshed before it
//! expires (by the injected clock), renewed once on a 401, and a key the
//! token endpoint refuses makes the gateway refuse.

mod support;

use std::sync::Arc;

use herald::{ManualClock, Outcome, PushTransport, Refusal};
use herald_core::Tick;
use herald_fcm::{FcmConfig, FcmGateway, ServiceAccount};
use herald_http2::PoolOptions;
use herald_testkit::mock_fcm::{Gate, OTHER_TEST_PRIVATE_KEY_PEM, TEST_PRIVATE_KEY_PEM};
use support::{START, batch, gateway, note, secs, start, start_default};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_access_token_serves_many_sends() {
    let f = start_default("fcm-reuse").await;
    for _ in 0..3 {
        let d = f.gateway.send(&batch(100)).await;
        assert!(d.outcomes.iter().all(|o| *o == Outcome::Sent));
    }
    assert_eq!(f.mock.accepted_count(), 300);
    assert_eq!(f.mock.tokens_issued(), 1);
    assert_eq!(f.mock.token_requests(), 1);
    let stats = f.gateway.stats();
    assert_eq!(stats.access_tokens_fetched, 1);
    assert_eq!(stats.requests, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_one_refresh() {
    let f = start_default("fcm-single-flight").await;
    let gate = Gate::new();
    f.mock.gate_token_endpoint(Some(gate.clone()));
    let (b1, b2, b3, b4) = (batch(5), batch(6), batch(7), batch(8));
    // `join!` polls every send before the opener: each has asked for a
    // token by the time the first request reaches the held endpoint.
    let opener = async {
        gate.until_arrived(1).await;
        gate.open();
    };
    let (d1, d2, d3, d4, ()) = tokio::join!(
        f.gateway.send(&b1),
        f.gateway.send(&b2),
        f.gateway.send(&b3),
        f.gateway.send(&b4),
        opener
    );
    for d in [d1, d2, d3, d4] {
        assert!(d.outcomes.iter().all(|o| *o == Outcome::Sent), "{d:?}");
    }
    assert_eq!(
        f.mock.token_requests(),
        1,
        "one fetch for four waiting sends"
    );
    assert_eq!(f.mock.tokens_issued(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_refreshed_a_minute_before_it_expires() {
    let f = start(
        "fcm-refresh",
        |o| o.access_token_ttl = secs(600),
        PoolOptions::default(),
    )
    .await;
    assert_eq!(
        f.gateway.send(&batch(3)).await.outcomes,
        vec![Outcome::Sent; 3]
    );
    f.clock.advance(secs(530));
    assert_eq!(
        f.gateway.send(&batch(3)).await.outcomes,
        vec![Outcome::Sent; 3]
    );
    assert_eq!(f.mock.tokens_issued(), 1, "9 min 50 s left: kept");
    f.clock.advance(secs(20));
    assert_eq!(
        f.gateway.send(&batch(3)).await.outcomes,
        vec![Outcome::Sent; 3]
    );
    assert_eq!(
        f.mock.tokens_issued(),
        2,
        "50 s left: replaced before it expires"
    );
    assert_eq!(f.mock.send_requests(), 9, "no send was refused on the way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_renews_the_token_once_for_the_whole_batch() {
    let f = start_default("fcm-401").await;
    assert_eq!(f.gateway.send(&batch(1)).await.outcomes, [Outcome::Sent]);
    f.mock.revoke_access_tokens();
    let d = f.gateway.send(&batch(20)).await;
    assert_eq!(d.outcomes, vec![Outcome::Sent; 20]);
    assert_eq!(d.refused, None);
    assert_eq!(f.mock.tokens_issued(), 2, "20 refusals, one renewal");
    assert_eq!(f.gateway.stats().requests, 1 + 20 + 20);
    assert_eq!(f.mock.accepted_count(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_401_is_a_credentials_refusal() {
    // Tokens that are expired when issued: FCM answers 401 to each.
    let f = start(
        "fcm-401-twice",
        |o| o.access_token_ttl = secs(0),
        PoolOptions::default(),
    )
    .await;
    let d = f.gateway.send(&[note("a")]).await;
    assert_eq!(d.outcomes, [Outcome::Retry { after: None }]);
    let Some(Refusal::Credentials { reason }) = d.refused else {
        panic!("{:?}", d.refused)
    };
    assert!(
        reason
            .starts_with("FCM 401 UNAUTHENTICATED: Request had invalid authentication credentials"),
        "{reason}"
    );
    assert_eq!(
        f.mock.send_requests(),
        2,
        "sent once more with a renewed token, not more"
    );
    assert_eq!(f.mock.accepted_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_refuses_the_gateway_until_it_works_again() {
    let f = start_default("fcm-refused").await;
    f.mock.refuse_keys(true);
    let d = f.gateway.send(&batch(3)).await;
    assert_eq!(d.outcomes, vec![Outcome::Retry { after: None }; 3]);
    assert_eq!(
        d.refused,
        Some(Refusal::Credentials {
            reason: format!(
                "the token endpoint {} refuses the service account key: invalid_grant: Invalid grant: account not found",
                f.mock.token_uri()
            )
        })
    );
    assert_eq!(f.mock.send_requests(), 0);
    // The pipeline's probe, once the account works again.
    f.mock.refuse_keys(false);
    let d = f.gateway.send(&batch(1)).await;
    assert_eq!((d.outcomes, d.refused), (vec![Outcome::Sent], None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_endpoint_does_not_know_is_refused() {
    let f = start_default("fcm-wrong-key").await;
    let wrong = gateway(
        &f.mock,
        &f.clock,
        &f.dir,
        OTHER_TEST_PRIVATE_KEY_PEM,
        PoolOptions::default(),
    );
    let d = wrong.send(&batch(2)).await;
    let Some(Refusal::Credentials { reason }) = d.refused else {
        panic!("{:?}", d.refused)
    };
    assert!(
        reason.ends_with("invalid_grant: Invalid JWT Signature."),
        "{reason}"
    );
    assert_eq!(f.mock.tokens_issued(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_from_a_clock_far_behind_is_refused() {
    let f = start_default("fcm-skew").await;
    let behind = ManualClock::new(Tick::from_millis(START - 2 * 3_600_000));
    let g = gateway(
        &f.mock,
        &behind,
        &f.dir,
        TEST_PRIVATE_KEY_PEM,
        PoolOptions::default(),
    );
    let d = g.send(&batch(1)).await;
    let Some(Refusal::Credentials { reason }) = d.refused else {
        panic!("{:?}", d.refused)
    };
    assert!(
        reason.contains("Token must be a short-lived token (60 minutes)"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_token_endpoint_is_a_retry_not_a_refusal() {
    let f = start_default("fcm-no-endpoint").await;
    let json = f
        .mock
        .service_account_json(TEST_PRIVATE_KEY_PEM)
        .replace(&f.mock.token_uri(), "https://127.0.0.1:1/token");
    let config = FcmConfig {
        service_account: ServiceAccount::from_json(&json, None).unwrap(),
        base_url: f.mock.url(),
        tls: herald_http2::client_tls_only(f.mock.ca_pem().as_bytes()).unwrap(),
        pool: PoolOptions::default(),
    };
    let g = FcmGateway::new(config, Arc::new(f.clock.clone())).unwrap();
    let d = g.send(&batch(2)).await;
    assert_eq!(d.outcomes, vec![Outcome::Retry { after: None }; 2]);
    assert_eq!(d.refused, None);
    assert_eq!(f.mock.streams(), 0);
}
