//! TLS for the server itself (`tls_cert` / `tls_key`): API keys travel in
//! the URL, so without a reverse proxy that terminates TLS the server must.
//! A real rustls client (trusting the test certificate only) talks to it.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use herald_server::{AppConfig, Config, Server};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use support::{APP, KEY, WAIT, temp_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn config(cert: PathBuf, key: PathBuf) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: temp_dir(),
        apps: vec![AppConfig::new(APP, KEY)],
        tls_cert: Some(cert),
        tls_key: Some(key),
        ..Config::default()
    }
}

/// A client that trusts the test certificate and nothing else.
fn connector() -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(fixture("cert.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A socket.io client on a WebSocket over TLS to `addr`, and its open
/// packet.
async fn tls_ws(addr: std::net::SocketAddr) -> (support::RawWs, Value) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector().connect(name, tcp).await.expect("TLS handshake");
    let host = format!("localhost:{}", addr.port());
    support::RawWs::open_on(Box::new(tls), &host, APP, KEY).await
}

/// One HTTP/1.1 request over TLS to `addr`; the status line and JSON body.
async fn https(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (String, Value) {
    let (status, text) = https_text(addr, method, path, body).await;
    (status, serde_json::from_str(&text).unwrap())
}

/// One HTTP/1.1 request over TLS to `addr`; the status line and body.
async fn https_text(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (String, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector().connect(name, tcp).await.expect("TLS handshake");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        addr.port(),
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut raw))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// Shuts `server` down (bounded) and removes its data directory.
async fn stop(server: Server, data: PathBuf) {
    tokio::time::timeout(WAIT, server.shutdown())
        .await
        .expect("the server shuts down")
        .unwrap();
    let _ = std::fs::remove_dir_all(data);
}

#[tokio::test]
async fn the_api_over_tls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = config(fixture("cert.pem"), fixture("key.pem"));
    let data = config.data_dir.clone();
    let server = Server::with_listener(config, listener).unwrap();
    let addr = server.local_addr();
    assert_eq!(server.base_url(), format!("https://{addr}"));

    let (status, body) = https(addr, "GET", "/health", "").await;
    assert_eq!(
        (status.as_str(), body),
        ("HTTP/1.1 200 OK", json!({"status": "ok"}))
    );
    // rtURL tells the SDK to use TLS for real-time too.
    let (_, body) = https(addr, "GET", &format!("/{APP}/{KEY}/info"), "").await;
    assert_eq!(body["rtURL"], format!("https://localhost:{}", addr.port()));
    let (status, body) = https(
        addr,
        "POST",
        &format!("/{APP}/{KEY}/messaging/news"),
        r#"{"message": "over TLS"}"#,
    )
    .await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert_eq!(body["status"], "published");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut raw))
        .await
        .expect("closed");
    assert!(!raw.starts_with(b"HTTP/1.1 200"), "{raw:?}");

    stop(server, data).await;
}

#[tokio::test]
async fn bad_tls_files_fail_before_listening_and_name_the_file() {
    let dir = temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    // A key file that holds a certificate, not a key.
    let other_key = dir.join("other-key.pem");
    std::fs::copy(fixture("cert.pem"), &other_key).unwrap();
    for (cert, key, names) in [
        (dir.join("missing.pem"), fixture("key.pem"), "missing.pem"),
        (empty.clone(), fixture("key.pem"), "empty.pem"),
        (fixture("cert.pem"), other_key.clone(), "other-key.pem"),
        // A real key, of another certificate.
        (
            fixture("cert.pem"),
            fixture("other-key.pem"),
            "does not fit",
        ),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = Server::with_listener(config(cert, key), listener).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains(names), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A WebSocket session over TLS is served by the direct path too: rustls
/// driven without waiting by the session's reader and its writer.
/// Subscribed, a small and a 200 KB run arrive whole (many TLS records),
/// and the shutdown's close reaches the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_over_tls_takes_the_direct_path() {
    let config = Config {
        max_body: 300_000,
        ..config(fixture("cert.pem"), fixture("key.pem"))
    };
    let data = config.data_dir.clone();
    let server = Server::start(config).await.unwrap();
    let addr = server.local_addr();
    let (mut ws, open) = tls_ws(addr).await;
    assert!(open["sid"].is_string(), "{open}");
    let answer = ws.connect_nsp().await;
    assert!(answer.starts_with(&format!("40/{APP},")), "{answer}");
    ws.emit(
        "SUB_ON",
        &json!({"id": 1, "name": "PUB_SUB_MESSAGES", "options": {"channel": "secure"}}),
    )
    .await;
    assert_eq!(
        ws.next_event().await,
        ("SUB_READY".to_owned(), json!({"id": "1"}))
    );
    let (status, metrics) = https_text(addr, "GET", "/metrics", "").await;
    assert!(status.contains("200"), "{status}");
    assert!(
        metrics.contains("\nherald_realtime_direct_sessions 1\n"),
        "{metrics}"
    );
    let big = "x".repeat(200_000);
    for message in [json!("small"), json!(big)] {
        let (status, _) = https(
            addr,
            "POST",
            &format!("/{APP}/{KEY}/messaging/secure"),
            &json!({ "message": message }).to_string(),
        )
        .await;
        assert!(status.contains("200"), "{status}");
        let (name, res) = ws.next_event().await;
        assert_eq!(name, "SUB_RES");
        assert_eq!(res["data"]["message"], message);
    }
    let stopping = tokio::spawn(server.shutdown());
    assert_eq!(ws.until_close().await.0, Some(1001));
    tokio::time::timeout(WAIT, stopping)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(data);
}

/// A TLS client that stops reading: what its session holds stays within
/// its budget (the frames waiting, rustls' own records at most 64 KiB),
/// and once it reads again the frames arrive whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_reader_is_bounded_and_resumes_whole() {
    let budget = 1usize << 20;
    let config = Config {
        max_body: 300_000,
        connection_buffer: budget,
        ..config(fixture("cert.pem"), fixture("key.pem"))
    };
    let data = config.data_dir.clone();
    let server = Server::start(config).await.unwrap();
    let addr = server.local_addr();
    let (mut ws, _) = tls_ws(addr).await;
    ws.connect_nsp().await;
    ws.emit(
        "SUB_ON",
        &json!({"id": 1, "name": "PUB_SUB_MESSAGES", "options": {"channel": "slow"}}),
    )
    .await;
    assert_eq!(ws.next_event().await.0, "SUB_READY");
    // From now on the client reads nothing: 100 runs of 200 KB (20 MB).
    let body = "y".repeat(200_000);
    let mut peak = 0f64;
    for n in 0..100 {
        let (status, _) = https(
            addr,
            "POST",
            &format!("/{APP}/{KEY}/messaging/slow"),
            &json!({ "message": {"n": n, "body": body} }).to_string(),
        )
        .await;
        assert!(status.contains("200"), "{status}");
        let (_, metrics) = https_text(addr, "GET", "/metrics", "").await;
        let held = metrics
            .lines()
            .find_map(|l| l.strip_prefix("herald_realtime_buffered_bytes "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap();
        peak = peak.max(held);
    }
    let bound = (budget + 201_000) as f64;
    assert!(peak <= bound, "held {peak} bytes, bound {bound}");
    // Reading again: runs in order (the oldest dropped), each whole.
    let mut last = -1i64;
    while last < 99 {
        let (name, res) = ws.next_event().await;
        assert_eq!(name, "SUB_RES");
        let n = res["data"]["message"]["n"].as_i64().unwrap();
        assert!(n > last, "{n} after {last}");
        assert_eq!(res["data"]["message"]["body"], body.as_str());
        last = n;
    }
    drop(ws);
    stop(server, data).await;
}

/// Long polling over HTTPS, then the upgrade to a WebSocket over TLS (the
/// JS SDK's way on an HTTPS server): the probe, the `5`, and runs over
/// the upgraded session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polling_over_tls_upgrades_to_a_tls_websocket() {
    let config = config(fixture("cert.pem"), fixture("key.pem"));
    let data = config.data_dir.clone();
    let server = Server::start(config).await.unwrap();
    let addr = server.local_addr();
    let (status, open) = https_text(
        addr,
        "GET",
        &format!("/{APP}/?EIO=4&transport=polling&apiKey={KEY}"),
        "",
    )
    .await;
    assert!(status.contains("200"), "{status}");
    let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();
    let eio = format!("/{APP}/?EIO=4&transport=polling&sid={sid}");
    let sub_on =
        json!(["SUB_ON", {"id": 1, "name": "PUB_SUB_MESSAGES", "options": {"channel": "tls-up"}}]);
    let (status, ok) = https_text(
        addr,
        "POST",
        &eio,
        &format!("40/{APP},\u{1e}42/{APP},{sub_on}"),
    )
    .await;
    assert_eq!((status.contains("200"), ok.as_str()), (true, "ok"));
    let (_, polled) = https_text(addr, "GET", &eio, "").await;
    assert!(polled.contains("SUB_READY"), "{polled}");

    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector().connect(name, tcp).await.expect("TLS handshake");
    let host = format!("localhost:{}", addr.port());
    let mut ws = support::RawWs::upgrade_on(Box::new(tls), &host, APP, &sid).await;
    ws.send_text("2probe").await;
    assert_eq!(ws.recv_text().await.as_deref(), Some("3probe"));
    ws.send_text("5").await;
    let (status, _) = https(
        addr,
        "POST",
        &format!("/{APP}/{KEY}/messaging/tls-up"),
        &json!({"message": "over tls"}).to_string(),
    )
    .await;
    assert!(status.contains("200"), "{status}");
    let (name, res) = ws.next_event().await;
    assert_eq!(name, "SUB_RES");
    assert_eq!(res["data"]["message"], "over tls");
    let (_, metrics) = https_text(addr, "GET", "/metrics", "").await;
    assert!(
        metrics.contains("\nherald_realtime_upgrades_total 1\n"),
        "{metrics}"
    );
    drop(ws);
    stop(server, data).await;
}
