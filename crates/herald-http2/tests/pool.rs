//! The pool against a real HTTP/2-over-TLS server (herald-testkit's
//! `H2Server`): connection reuse, the server's stream limit, GOAWAY,
//! untrusted certificates, timeouts on the injected clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use herald::ManualClock;
use herald_core::Tick;
use herald_http2::{Pool, PoolOptions, SendError, client_tls, client_tls_only};
use herald_testkit::h2_server::{Conn, H2Server, H2ServerOptions, Handler};
use herald_testkit::tls::TestCa;
use tokio::sync::Notify;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Tick::from_millis(1_700_000_000_000)))
}

/// Echoes the path, the connection and the stream number.
fn echo() -> Handler {
    Arc::new(|req: http::Request<Bytes>, conn: Conn| {
        Box::pin(async move {
            let text = format!("{} {} {}", req.uri().path(), conn.id, conn.stream);
            http::Response::new(Bytes::from(text))
        })
    })
}

fn request(path: &str) -> http::Request<Bytes> {
    http::Request::post(path)
        .header("x-test", "1")
        .body(Bytes::from_static(b"{}"))
        .unwrap()
}

async fn server(ca: &TestCa, options: H2ServerOptions, handler: Handler) -> H2Server {
    H2Server::start(ca.server_config(), options, handler)
        .await
        .unwrap()
}

fn pool(ca: &TestCa, url: &str, options: PoolOptions, clock: Arc<ManualClock>) -> Arc<Pool> {
    let tls = client_tls_only(ca.ca_pem().as_bytes()).unwrap();
    Arc::new(Pool::new(url, tls, options, clock).unwrap())
}

async fn send_all(pool: &Arc<Pool>, n: usize) -> Vec<Result<herald_http2::Response, SendError>> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let pool = pool.clone();
        tasks.spawn(async move { (i, pool.send(request(&format!("/n/{i}"))).await) });
    }
    let mut out: Vec<_> = (0..n).map(|_| None).collect();
    // The pool's own timeouts run on a manual clock that never moves here:
    // a request stuck for good fails the test instead of hanging it.
    let all = async {
        while let Some(done) = tasks.join_next().await {
            let (i, r) = done.unwrap();
            out[i] = Some(r);
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("every request ends");
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_share_few_connections() {
    let ca = TestCa::new();
    let server = server(&ca, H2ServerOptions::default(), echo()).await;
    let options = PoolOptions {
        max_connections: 2,
        streams_before_next: 50,
        ..PoolOptions::default()
    };
    let pool = pool(&ca, &server.url(), options, clock());
    let answers = send_all(&pool, 500).await;
    for (i, a) in answers.iter().enumerate() {
        let a = a.as_ref().unwrap();
        assert_eq!(a.status, 200);
        assert!(
            a.body.starts_with(format!("/n/{i} ").as_bytes()),
            "{:?}",
            a.body
        );
    }
    assert_eq!(server.streams(), 500);
    assert!(
        server.connections() <= 2,
        "{} connections",
        server.connections()
    );
    assert_eq!(pool.stats().connections_opened, server.connections());
    // Idle connections stay open and are reused.
    let before = server.connections();
    pool.send(request("/again")).await.unwrap();
    assert_eq!(server.connections(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_allowing_one_stream_still_gets_every_request() {
    let ca = TestCa::new();
    let in_flight = Arc::new(AtomicU64::new(0));
    let most = Arc::new(AtomicU64::new(0));
    let handler: Handler = {
        let (in_flight, most) = (in_flight.clone(), most.clone());
        Arc::new(move |_req, _conn| {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            Box::pin(async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                http::Response::new(Bytes::new())
            })
        })
    };
    let options = H2ServerOptions {
        max_concurrent_streams: Some(1),
    };
    let server = server(&ca, options, handler).await;
    let pool_options = PoolOptions {
        max_connections: 1,
        ..PoolOptions::default()
    };
    let pool = pool(&ca, &server.url(), pool_options, clock());
    let answers = send_all(&pool, 100).await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|a| a.status == 200))
    );
    assert_eq!(server.streams(), 100);
    assert_eq!(most.load(Ordering::SeqCst), 1, "never two streams at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_by_a_goaway_go_out_again_on_a_new_connection() {
    let ca = TestCa::new();
    // The server allows 10 streams at once. On the first connection, the
    // first 9 answers wait until the 10th request arrives; that one starts
    // a GOAWAY, so the requests queued behind them are refused.
    let (open, gate) = tokio::sync::watch::channel(false);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler: Handler = {
        let seen = seen.clone();
        Arc::new(move |req: http::Request<Bytes>, conn: Conn| {
            let (open, mut gate) = (open.clone(), gate.clone());
            seen.lock().unwrap().push(req.uri().path().to_owned());
            Box::pin(async move {
                if conn.id == 0 && conn.stream == 10 {
                    conn.goaway();
                    open.send_replace(true);
                } else if conn.id == 0 && conn.stream < 10 {
                    let _ = gate.wait_for(|open| *open).await;
                }
                http::Response::new(Bytes::from(req.uri().path().to_owned()))
            })
        })
    };
    let server_options = H2ServerOptions {
        max_concurrent_streams: Some(10),
    };
    let server = server(&ca, server_options, handler).await;
    let options = PoolOptions {
        max_connections: 1,
        ..PoolOptions::default()
    };
    let pool = pool(&ca, &server.url(), options, clock());
    let answers = send_all(&pool, 200).await;
    let mut lost = 0;
    for (i, a) in answers.iter().enumerate() {
        match a {
            Ok(a) => assert_eq!(a.body, format!("/n/{i}").as_bytes()),
            // The connection may close under a request it had processed:
            // the caller hears "maybe processed", never a silent loss.
            Err(e) => {
                assert!(matches!(e, SendError::Lost(_)), "request {i}: {e}");
                lost += 1;
            }
        }
    }
    assert!(lost < 200, "most go through the new connection");
    assert!(
        server.connections() >= 2,
        "a new connection after the GOAWAY"
    );
    // No request reached the server twice: the refused ones never reached
    // the handler and went out again; every answered one was seen once. (A
    // request still queued in h2 when the closing connection ends is
    // reported as a broken pipe, "maybe processed": the caller retries it.)
    let seen = seen.lock().unwrap().clone();
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a request processed twice");
    assert!(
        seen.len() + lost >= 200,
        "a request neither seen nor reported"
    );
    for (i, a) in answers.iter().enumerate() {
        if a.is_ok() {
            assert!(seen.contains(&format!("/n/{i}")));
        }
    }
    assert_eq!(pool.stats().connections_opened, server.connections());
    assert!(pool.stats().requests_resent > 0, "{:?}", pool.stats());
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_before_anything_is_sent() {
    let ca = TestCa::new();
    let server = server(&ca, H2ServerOptions::default(), echo()).await;
    // Mozilla's roots only, and another test CA only.
    let other = TestCa::new();
    for tls in [
        client_tls(None).unwrap(),
        client_tls_only(other.ca_pem().as_bytes()).unwrap(),
    ] {
        let pool = Pool::new(&server.url(), tls, PoolOptions::default(), clock()).unwrap();
        let err = pool.send(request("/x")).await.unwrap_err();
        assert!(
            matches!(err, SendError::Connect(ref why) if why.contains("TLS")),
            "{err}"
        );
        assert!(!err.maybe_processed());
    }
    assert_eq!(server.connections(), 0);
    assert_eq!(server.streams(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_times_out_on_the_injected_clock() {
    let ca = TestCa::new();
    let arrived = Arc::new(Notify::new());
    let handler: Handler = {
        let arrived = arrived.clone();
        Arc::new(move |_req, _conn| {
            let arrived = arrived.clone();
            Box::pin(async move {
                arrived.notify_one();
                std::future::pending::<()>().await;
                unreachable!()
            })
        })
    };
    let server = server(&ca, H2ServerOptions::default(), handler).await;
    let clock = clock();
    let pool = pool(&ca, &server.url(), PoolOptions::default(), clock.clone());
    let send = tokio::spawn({
        let pool = pool.clone();
        async move { pool.send(request("/slow")).await }
    });
    arrived.notified().await;
    clock.advance(Duration::from_secs(9));
    tokio::task::yield_now().await;
    assert!(!send.is_finished(), "not before the 10 s timeout");
    clock.advance(Duration::from_secs(1));
    let err = send.await.unwrap().unwrap_err();
    assert_eq!(err, SendError::Timeout);
    assert!(err.maybe_processed());
}

#[test]
fn bad_urls_are_refused_with_a_reason() {
    let tls = client_tls(None).unwrap();
    for (url, why) in [
        ("http://example.com", "the scheme must be https"),
        ("https://example.com/v1", "a gateway URL has no path"),
        ("not a url", "not a URL"),
    ] {
        let err = Pool::new(url, tls.clone(), PoolOptions::default(), clock()).unwrap_err();
        assert_eq!(err.reason, why, "{url}");
    }
    assert!(
        Pool::new(
            "https://127.0.0.1:8443/",
            tls,
            PoolOptions::default(),
            clock()
        )
        .is_ok()
    );
}

#[test]
fn a_request_future_is_small() {
    // Every notification in flight holds one; connecting is boxed away.
    let pool = Pool::new(
        "https://localhost:1",
        client_tls(None).unwrap(),
        PoolOptions::default(),
        clock(),
    )
    .unwrap();
    let size = std::mem::size_of_val(&pool.send(request("/x")));
    assert!(size < 4096, "{size} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_waiting_for_a_failed_connect_share_its_failure() {
    let ca = TestCa::new();
    let server = server(&ca, H2ServerOptions::default(), echo()).await;
    // A client that does not trust the server: every handshake fails.
    let other = TestCa::new();
    let pool = pool(&other, &server.url(), PoolOptions::default(), clock());
    let answers = send_all(&pool, 50).await;
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(SendError::Connect(_))))
    );
    let failures = pool.stats().connect_failures;
    assert!(
        (1..10).contains(&failures),
        "{failures} attempts for 50 requests"
    );
    assert_eq!(server.streams(), 0);
}
