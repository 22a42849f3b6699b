//! Connections: a batch rides a few long-lived HTTP/2 connections, a
//! GOAWAY mid-batch loses nothing and duplicates nothing, an untrusted
//! certificate sends nothing.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use herald::{Outcome, PushTransport};
use herald_fcm::{FcmConfig, FcmGateway, ServiceAccount};
use herald_http2::PoolOptions;
use herald_testkit::mock_fcm::TEST_PRIVATE_KEY_PEM;
use support::{batch, start, start_default};

/// How many times each token was accepted.
fn accepted_per_token(mock: &herald_testkit::mock_fcm::MockFcm) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for m in mock.accepted() {
        *seen.entry(m.token).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_500_reuses_at_most_max_connections() {
    let pool = PoolOptions {
        max_connections: 2,
        ..PoolOptions::default()
    };
    let f = start("fcm-reuse-conns", |_| {}, pool).await;
    for _ in 0..2 {
        let d = f.gateway.send(&batch(500)).await;
        assert_eq!(d.outcomes, vec![Outcome::Sent; 500]);
    }
    let per_token = accepted_per_token(&f.mock);
    assert_eq!(per_token.len(), 500);
    assert!(per_token.values().all(|&n| n == 2));
    let used = f.mock.send_connections();
    assert!((1..=2).contains(&used), "{used} connections carried sends");
    let stats = f.gateway.stats();
    assert!(stats.fcm_pool.connections_opened <= 2, "{stats:?}");
    // The token endpoint's own connection (one) and the sends': no more.
    assert!(f.mock.connections() <= 3, "{}", f.mock.connections());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_mid_batch_loses_nothing_and_sends_nothing_twice() {
    // Every connection is shut down after 60 streams; a stream limit (as
    // Google's front ends announce) keeps requests queued at the client,
    // so each GOAWAY finds some not yet sent: those go out again on a new
    // connection. A request in flight when a connection breaks may have
    // been processed: it is a Retry, the pipeline's to resend.
    let f = start(
        "fcm-goaway",
        |o| {
            o.goaway_after_streams = Some(60);
            o.max_concurrent_streams = Some(20);
        },
        PoolOptions::default(),
    )
    .await;
    let b = batch(500);
    let d = f.gateway.send(&b).await;
    assert_eq!(d.refused, None);
    let first = accepted_per_token(&f.mock);
    assert!(first.values().all(|&n| n == 1), "nothing processed twice");
    let mut again = Vec::new();
    for (n, outcome) in b.iter().zip(&d.outcomes) {
        match outcome {
            Outcome::Sent => assert!(first.contains_key(&n.device_token), "sent means received"),
            Outcome::Retry { after: None } => again.push(n.clone()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let stats = f.gateway.stats();
    assert!(stats.fcm_pool.requests_resent > 0, "{stats:?}");
    assert!(
        f.mock.send_connections() >= 2,
        "{}",
        f.mock.send_connections()
    );
    println!(
        "{} of 500 in flight at a GOAWAY, {stats:?}, {} connections",
        again.len(),
        f.mock.send_connections()
    );
    // The pipeline's resends of what was in flight (GOAWAYs go on, so a
    // resend may meet one too): every notification arrives, and only
    // those in flight at a GOAWAY can have arrived twice.
    let mut in_flight: Vec<String> = again.iter().map(|n| n.device_token.clone()).collect();
    for _ in 0..20 {
        if again.is_empty() {
            break;
        }
        let d = f.gateway.send(&again).await;
        assert_eq!(d.refused, None);
        again = again
            .into_iter()
            .zip(d.outcomes)
            .filter(|(_, o)| *o != Outcome::Sent)
            .map(|(n, _)| n)
            .collect();
        in_flight.extend(again.iter().map(|n| n.device_token.clone()));
    }
    assert!(again.is_empty(), "{} never sent", again.len());
    let all = accepted_per_token(&f.mock);
    assert_eq!(all.len(), 500, "nothing lost");
    println!("{} arrived twice", all.values().filter(|&&c| c > 1).count());
    for (token, count) in &all {
        let times_in_flight = in_flight.iter().filter(|t| *t == token).count();
        assert!(
            *count <= 1 + times_in_flight,
            "{token} arrived {count} times, in flight at a GOAWAY {times_in_flight} times"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_sends_nothing() {
    let f = start_default("fcm-untrusted").await;
    // Mozilla's roots only: the test CA is unknown.
    let config = FcmConfig {
        service_account: ServiceAccount::from_json(
            &f.mock.service_account_json(TEST_PRIVATE_KEY_PEM),
            None,
        )
        .unwrap(),
        base_url: f.mock.url(),
        tls: herald_http2::client_tls(None).unwrap(),
        pool: PoolOptions::default(),
    };
    let g = FcmGateway::new(config, Arc::new(f.clock.clone())).unwrap();
    let d = g.send(&batch(3)).await;
    assert_eq!(d.outcomes, vec![Outcome::Retry { after: None }; 3]);
    assert_eq!(d.refused, None);
    assert_eq!(f.mock.connections(), 0, "no TLS handshake completed");
    assert_eq!(f.mock.streams(), 0);

    // The FCM host alone untrusted (a token from a trusted endpoint).
    assert!(f.gateway.send(&batch(1)).await.outcomes == [Outcome::Sent]);
    let before = f.mock.send_requests();
    let fcm_elsewhere = herald_testkit::mock_fcm::MockFcm::start(
        herald_testkit::mock_fcm::MockFcmOptions::new(Arc::new(f.clock.clone())),
    )
    .await
    .unwrap();
    let config = FcmConfig {
        service_account: ServiceAccount::from_json(
            &f.mock.service_account_json(TEST_PRIVATE_KEY_PEM),
            None,
        )
        .unwrap(),
        base_url: fcm_elsewhere.url(),
        tls: herald_http2::client_tls_only(f.mock.ca_pem().as_bytes()).unwrap(),
        pool: PoolOptions::default(),
    };
    let g = FcmGateway::new(config, Arc::new(f.clock.clone())).unwrap();
    let d = g.send(&batch(2)).await;
    assert_eq!(d.outcomes, vec![Outcome::Retry { after: None }; 2]);
    assert_eq!(fcm_elsewhere.streams(), 0);
    assert_eq!(f.mock.send_requests(), before);
    assert_eq!(
        g.stats().access_tokens_fetched,
        1,
        "the token came from the trusted host"
    );
}

/// Polls `done` (yielding, never sleeping) for at most 20 s of real time.
async fn until(what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_send_lets_its_requests_finish_instead_of_resetting_them() {
    let f = start_default("fcm-dropped").await;
    let gate = herald_testkit::mock_fcm::Gate::new();
    let b = batch(60);
    for n in &b {
        f.mock.script(
            &n.device_token,
            herald_testkit::mock_fcm::FcmScript::Slow(gate.clone()),
        );
    }
    {
        let send = f.gateway.send(&b);
        tokio::pin!(send);
        tokio::select! {
            _ = &mut send => panic!("held answers cannot complete"),
            () = gate.until_arrived(60) => {}
        }
    } // dropped here, with 60 requests in flight
    // A request after the drop, on the same connection: it follows
    // whatever the drop did to the 60 (resets would reach the mock first).
    let d = f.gateway.send(&[support::note("after")]).await;
    assert_eq!(d.outcomes, vec![Outcome::Sent]);
    gate.open();
    until("the dropped send's requests to finish", || {
        f.mock.accepted_count() == 61
    })
    .await;
    assert_eq!(f.mock.send_connections(), 1, "the connection survived");
    assert_eq!(f.gateway.stats().requests, 61, "nothing sent twice");
}
