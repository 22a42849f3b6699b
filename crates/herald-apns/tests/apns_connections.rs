//! Connections: reused, within the server's stream limit, GOAWAY mid-batch,
//! an untrusted certificate, a slow answer, a connection lost.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use herald::{Outcome, PushTransport};
use herald_http2::PoolOptions;
use herald_testkit::mock_apns::{Gate, Script};
use herald_testkit::tls::TestCa;
use support::{Setup, note, notes, token, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_500_goes_over_at_most_max_connections() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    let d = gateway.send(&notes(0..500)).await;
    assert_eq!(d.outcomes, vec![Outcome::Sent; 500]);
    let d = gateway.send(&notes(500..1000)).await;
    assert_eq!(d.outcomes, vec![Outcome::Sent; 500]);
    let max = PoolOptions::default().max_connections as u64;
    assert!(
        s.mock.connections() <= max,
        "{} connections",
        s.mock.connections()
    );
    assert_eq!(
        gateway.stats().pool.connections_opened,
        s.mock.connections()
    );
    assert_eq!(s.mock.accepted_count(), 1000);
    let ids: HashSet<String> = s.mock.accepted().into_iter().map(|a| a.apns_id).collect();
    assert_eq!(ids.len(), 1000, "one request per notification");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_allowing_one_stream_still_gets_every_notification() {
    let s = Setup::with(|o| o.max_concurrent_streams = Some(1)).await;
    let gateway = s.gateway();
    let d = gateway.send(&notes(0..200)).await;
    assert_eq!(d.outcomes, vec![Outcome::Sent; 200]);
    assert_eq!(s.mock.accepted_count(), 200);
    assert_eq!(s.mock.streams(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_mid_batch_sends_each_once_or_retries_it() {
    // A stream limit keeps requests queued at the client, so the GOAWAY
    // finds some not yet sent.
    let s = Setup::with(|o| {
        o.goaway_after_streams = Some(40);
        o.max_concurrent_streams = Some(8);
    })
    .await;
    let gateway = s.gateway();
    let batch = notes(0..300);
    let d = gateway.send(&batch).await;
    assert_eq!(d.refused, None);
    let accepted = s.mock.accepted();
    let ids: HashSet<&str> = accepted.iter().map(|a| a.apns_id.as_str()).collect();
    assert_eq!(ids.len(), accepted.len(), "no notification accepted twice");
    let mut sent = 0;
    for (n, outcome) in batch.iter().zip(&d.outcomes) {
        match outcome {
            Outcome::Sent => {
                sent += 1;
                assert!(
                    ids.contains(n.id.to_string().as_str()),
                    "a sent one reached the mock"
                );
            }
            // The server may have processed it: the pipeline decides.
            Outcome::Retry { after: None } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(sent > 0);
    // The GOAWAYs happened: no connection took more than its 40 streams
    // plus what was in flight (8), and queued requests went out again.
    let connections = s.mock.connections() as usize;
    assert!(
        connections * 48 >= accepted.len(),
        "{connections} connections for {} notifications",
        accepted.len()
    );
    assert!(gateway.stats().pool.requests_resent > 0);
    assert_eq!(
        gateway.stats().pool.connections_opened,
        s.mock.connections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused() {
    let s = Setup::start().await;
    let other_ca = TestCa::new();
    for tls in [
        herald_http2::client_tls_only(other_ca.ca_pem().as_bytes()).unwrap(),
        herald_http2::client_tls(None).unwrap(),
    ] {
        let gateway = s.gateway_with(herald_apns::ApnsConfig { tls, ..s.config() });
        let d = gateway.send(&notes(0..3)).await;
        assert_eq!(d.outcomes, vec![Outcome::Retry { after: None }; 3]);
        assert_eq!(d.refused, None);
    }
    assert_eq!(s.mock.connections(), 0, "no TLS session completed");
    assert_eq!(s.mock.streams(), 0, "no request reached the mock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_times_out_as_retry() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    let gate = Gate::new();
    s.mock.script(&token(0), Script::Hold(gate.clone()));
    let held = [note(0)];
    let slow = gateway.send(&held);
    let meanwhile = async {
        until("the held request", || s.mock.held() == 1).await;
        // Other notifications go on while one answer is held.
        let d = gateway.send(&notes(1..4)).await;
        assert_eq!(d.outcomes, vec![Outcome::Sent; 3]);
        // The default request timeout is 10 s, on the gateway's clock.
        s.gateway_clock.advance(Duration::from_secs(10));
    };
    let (d, ()) = tokio::join!(slow, meanwhile);
    assert_eq!(d.outcomes, vec![Outcome::Retry { after: None }]);
    gate.open();
    until("the held answer", || s.mock.held() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_retry() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    s.mock.script(&token(0), Script::Hold(Gate::new()));
    let batch = [note(0)];
    let send = gateway.send(&batch);
    let Setup { mock, .. } = s;
    let stop = async {
        until("the held request", || mock.held() == 1).await;
        mock.stop().await;
    };
    let (d, ()) = tokio::join!(send, stop);
    assert_eq!(d.outcomes, vec![Outcome::Retry { after: None }]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_send_lets_its_requests_finish_instead_of_resetting_them() {
    let s = Setup::start().await;
    let gateway = s.gateway();
    let gate = Gate::new();
    for n in 0..60 {
        s.mock.script(&token(n), Script::Hold(gate.clone()));
    }
    let batch = notes(0..60);
    {
        let send = gateway.send(&batch);
        tokio::pin!(send);
        tokio::select! {
            _ = &mut send => panic!("held answers cannot complete"),
            () = until("the held requests", || s.mock.held() == 60) => {}
        }
    } // dropped here, with 60 requests in flight
    // A request after the drop, on the same connection: it follows
    // whatever the drop did to the 60 (resets would reach the mock first).
    let d = gateway.send(&notes(60..61)).await;
    assert_eq!(d.outcomes, vec![Outcome::Sent]);
    gate.open();
    until("the dropped send's requests to finish", || {
        s.mock.accepted_count() == 61
    })
    .await;
    assert_eq!(s.mock.connections(), 1, "the connection survived");
}
