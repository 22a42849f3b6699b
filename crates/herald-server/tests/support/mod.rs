//! Test support: a real server on an ephemeral port, an HTTP client, and
//! two socket.io clients:
//!
//! * [`Rt`]: `rust_socketio` 0.6 (async) over Engine.IO v4 long-polling.
//!   Its WebSocket transports do not work against socketioxide (they fail
//!   with `SendAfterClosing`/`AlreadyClosed` right after connecting, while a
//!   plain WebSocket client works), so it runs polling-only, reconnection
//!   off.
//! * [`RawWs`]: a minimal Engine.IO v4 / socket.io v5 client over a
//!   hand-framed WebSocket (text frames, client masking, no extensions), to
//!   cover the WebSocket transport the JS SDK upgrades to.
//!
//! [`node`]: node and the npm packages for the JavaScript tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod node;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use herald_server::{AppConfig, Config, Server};
use reqwest::StatusCode;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub const APP: &str = "TEST-APP";
pub const KEY: &str = "test-key";
/// Generous: e2e over the network on a shared 2-core machine.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub server: Option<Server>,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: PathBuf,
}

pub fn temp_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "herald-server-test-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The tests' HTTP client. No pooled connections: the server closes a
/// connection idle for `header_read_timeout` on its clock, and tests jump
/// a manual clock by minutes, which would close a pooled one under the
/// client's feet.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client")
}

/// A server with app `TEST-APP` / key `test-key` (full permissions), plus
/// whatever `toml` adds.
pub async fn start(toml: &str) -> TestServer {
    start_on(toml, std::sync::Arc::new(herald::SystemClock)).await
}

/// As [`start`], with the engines and the server's timeouts on `clock`.
pub async fn start_on(toml: &str, clock: std::sync::Arc<dyn herald::Clock>) -> TestServer {
    start_with(toml, clock, Vec::new(), temp_dir()).await
}

/// As [`start_on`], with push gateways (`(app, OSes, transport)`) and the
/// data directory `dir` (a restart reuses it).
pub async fn start_with(
    toml: &str,
    clock: std::sync::Arc<dyn herald::Clock>,
    gateways: Vec<(
        String,
        herald::PushBroadcast,
        std::sync::Arc<dyn herald::PushTransport>,
    )>,
    dir: PathBuf,
) -> TestServer {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.clone(),
        apps: vec![AppConfig::new(APP, KEY)],
        ..Config::default()
    };
    config.apply_toml(toml).expect("test TOML");
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .expect("bind");
    let server =
        Server::with_push_gateways(config, listener, clock, gateways).expect("server starts");
    TestServer {
        base: server.base_url(),
        server: Some(server),
        http: http_client(),
        dir,
    }
}

impl TestServer {
    /// `BASE/TEST-APP/test-key/{path}`.
    pub fn url(&self, path: &str) -> String {
        self.url_as(APP, KEY, path)
    }

    pub fn url_as(&self, app: &str, key: &str, path: &str) -> String {
        format!("{}/{app}/{key}/{path}", self.base)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("non-JSON body ({e}) with status {status}: {text:?}"));
        (status, body)
    }

    pub async fn get(&self, url: &str) -> (StatusCode, Value) {
        self.send(self.http.get(url)).await
    }

    pub async fn delete(&self, url: &str) -> (StatusCode, Value) {
        self.send(self.http.delete(url)).await
    }

    pub async fn post(&self, url: &str, body: &Value) -> (StatusCode, Value) {
        self.send(self.http.post(url).json(body)).await
    }

    /// Publishes `body` to `channel` (already percent-encoded as needed);
    /// asserts 200 and returns the `MessageStatus`.
    pub async fn publish(&self, channel: &str, body: Value) -> Value {
        let (status, res) = self
            .post(&self.url(&format!("messaging/{channel}")), &body)
            .await;
        assert_eq!(status, StatusCode::OK, "{res}");
        res
    }

    pub async fn metrics(&self) -> String {
        let res = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics");
        assert_eq!(res.status(), StatusCode::OK);
        res.text().await.expect("metrics text")
    }

    /// The value of one sample line (`name{labels}`) in `/metrics`.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    /// Waits (bounded) until `metric(sample) == value`.
    pub async fn wait_metric(&self, sample: &str, value: f64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now = self.metric(sample).await;
            if now == Some(value) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{sample} stayed {now:?}, wanted {value}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Stops the server and keeps its data directory (for a restart).
    pub async fn stop_keeping_data(mut self) -> PathBuf {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        self.dir.clone()
    }
}

/// Epoch milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------
// rust_socketio (long-polling)

/// A socket.io client connected to `/{app}` with `apiKey`, collecting every
/// event as `(name, first argument)`.
pub struct Rt {
    client: SioClient,
    events: mpsc::UnboundedReceiver<(String, Value)>,
}

impl Rt {
    pub async fn connect(base: &str, app: &str, key: &str) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let url = format!("{base}/{app}/?apiKey={key}&clientId=test&userToken=null");
        let client = ClientBuilder::new(url)
            .namespace(format!("/{app}"))
            .transport_type(TransportType::Polling)
            .reconnect(false)
            .on_any(move |event: Event, payload: Payload, _| {
                let tx = tx.clone();
                Box::pin(async move {
                    let name = match event {
                        Event::Custom(name) => name,
                        other => other.as_str().to_owned(),
                    };
                    let arg = match payload {
                        Payload::Text(mut values) if !values.is_empty() => values.swap_remove(0),
                        Payload::Text(_) => Value::Null,
                        other => json!(format!("{other:?}")),
                    };
                    let _ = tx.send((name, arg));
                })
            })
            .connect()
            .await
            .expect("socket.io connect");
        Self { client, events }
    }

    pub async fn emit(&self, event: &str, payload: Value) {
        self.client.emit(event, payload).await.expect("emit");
    }

    pub async fn sub_on(&self, id: &str, name: &str, options: Value) {
        self.emit(
            "SUB_ON",
            json!({"id": id, "name": name, "options": options}),
        )
        .await;
    }

    /// The next event, or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<(String, Value)> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the next event named `name`, returning every event seen
    /// before it too. Panics after [`WAIT`].
    pub async fn expect(&mut self, name: &str) -> (Value, Vec<(String, Value)>) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some((n, v)) if n == name => return (v, before),
                Some(other) => before.push(other),
                None => panic!("no {name} within {WAIT:?}; saw {before:?}"),
            }
        }
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
    }
}

// ---------------------------------------------------------------------------
// A minimal socket.io client over a raw WebSocket

/// One WebSocket frame: `fin`, `opcode`, masked (as clients must) or not.
fn frame_bytes(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    let bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(bit | n as u8),
        n if n < 65_536 => {
            frame.push(bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

/// A byte stream a [`RawWs`] runs on: TCP, or TLS over it.
pub trait WsStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> WsStream for T {}

pub struct RawWs {
    stream: Box<dyn WsStream>,
    buf: Vec<u8>,
    pub nsp: String,
}

impl RawWs {
    /// Opens `ws://addr/{app}/?EIO=4&transport=websocket&apiKey=KEY` and
    /// reads the Engine.IO open packet.
    pub async fn open(addr: std::net::SocketAddr, app: &str, key: &str) -> (Self, Value) {
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        // Small frames one after another: no Nagle (with the server's
        // delayed ACKs it would cost 40 ms a round trip).
        stream.set_nodelay(true).expect("nodelay");
        Self::open_on(Box::new(stream), &addr.to_string(), app, key).await
    }

    /// Upgrades long-polling session `sid` to a WebSocket (the client
    /// then sends `2probe` and `5`, see the direct path's tests).
    pub async fn upgrade(addr: std::net::SocketAddr, app: &str, sid: &str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        stream.set_nodelay(true).expect("nodelay");
        Self::upgrade_on(Box::new(stream), &addr.to_string(), app, sid).await
    }

    /// As [`upgrade`](Self::upgrade), on `stream` (TLS, say) to host `addr`.
    pub async fn upgrade_on(stream: Box<dyn WsStream>, addr: &str, app: &str, sid: &str) -> Self {
        let query = format!("EIO=4&transport=websocket&sid={sid}");
        Self::handshake(stream, addr, app, &query).await
    }

    /// As [`open`](Self::open), on `stream` (TLS, say) to host `addr`.
    pub async fn open_on(
        stream: Box<dyn WsStream>,
        addr: &str,
        app: &str,
        key: &str,
    ) -> (Self, Value) {
        let query = format!("EIO=4&transport=websocket&apiKey={key}");
        let mut ws = Self::handshake(stream, addr, app, &query).await;
        let open = ws.recv_text().await.expect("open packet");
        let open = open.strip_prefix('0').expect("EIO open packet");
        (ws, serde_json::from_str(open).expect("open JSON"))
    }

    /// The WebSocket handshake to `/{app}/?{query}`: `101` or a panic.
    async fn handshake(mut stream: Box<dyn WsStream>, addr: &str, app: &str, query: &str) -> Self {
        let req = format!(
            "GET /{app}/?{query} HTTP/1.1\r\n\
             Host: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.expect("handshake");
        let mut buf = Vec::new();
        let header_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        buf.drain(..header_end);
        Self {
            stream,
            buf,
            nsp: format!("/{app}"),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send_frame(true, 0x1, text.as_bytes(), true).await;
    }

    /// Sends one frame as given: `fin`, `opcode`, masked (as clients must)
    /// or not.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8], masked: bool) {
        let frame = frame_bytes(fin, opcode, payload, masked);
        self.stream.write_all(&frame).await.expect("ws write");
    }

    /// Reads up to the server's close frame: its status code (`None`: the
    /// socket closed without one), and the text frames before it.
    pub async fn until_close(&mut self) -> (Option<u16>, Vec<String>) {
        let mut texts = Vec::new();
        loop {
            match self.recv_frame().await {
                Some((0x8, p)) => {
                    let code = p.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    return (code, texts);
                }
                Some((0x1, text)) => texts.push(String::from_utf8_lossy(&text).into_owned()),
                Some(_) => {}
                None => return (None, texts),
            }
        }
    }

    /// The next frame of any kind `(opcode, payload)`, or `None` once the
    /// socket is closed.
    pub async fn recv_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some(frame) = self.take_frame() {
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next text frame (answering Engine.IO pings), or `None` on close.
    pub async fn recv_text(&mut self) -> Option<String> {
        loop {
            if let Some((opcode, payload)) = self.take_frame() {
                match opcode {
                    0x1 => {
                        let text = String::from_utf8(payload).expect("UTF-8 text frame");
                        if text == "2" {
                            self.send_text("3").await;
                            continue;
                        }
                        return Some(text);
                    }
                    0x8 => return None,
                    _ => continue,
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn take_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let (len, off) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => return None,
            n => (usize::from(n), 2),
        };
        if b.len() < off + len {
            return None;
        }
        let opcode = b[0] & 0x0f;
        let payload = b[off..off + len].to_vec();
        self.buf.drain(..off + len);
        Some((opcode, payload))
    }

    /// Connects to the namespace; returns the server's answer packet.
    pub async fn connect_nsp(&mut self) -> String {
        let pkt = format!("40{},", self.nsp);
        self.send_text(&pkt).await;
        self.recv_text().await.expect("namespace answer")
    }

    pub async fn emit(&mut self, event: &str, payload: &Value) {
        let pkt = format!("42{},{}", self.nsp, json!([event, payload]));
        self.send_text(&pkt).await;
    }

    /// As [`emit`](Self::emit); false once the server has closed the
    /// connection (the write fails).
    pub async fn try_emit(&mut self, event: &str, payload: &Value) -> bool {
        let text = format!("42{},{}", self.nsp, json!([event, payload]));
        let frame = frame_bytes(true, 0x1, text.as_bytes(), true);
        self.stream.write_all(&frame).await.is_ok()
    }

    /// The next socket.io event `(name, first argument)`, within [`WAIT`].
    pub async fn next_event(&mut self) -> (String, Value) {
        let prefix = format!("42{},", self.nsp);
        tokio::time::timeout(WAIT, async {
            loop {
                let text = self.recv_text().await.expect("socket open");
                if let Some(json) = text.strip_prefix(&prefix) {
                    let v: Value = serde_json::from_str(json).expect("event JSON");
                    return (
                        v[0].as_str().unwrap_or_default().to_owned(),
                        v.get(1).cloned().unwrap_or(Value::Null),
                    );
                }
            }
        })
        .await
        .expect("an event in time")
    }
}
