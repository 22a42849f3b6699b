//! The direct WebSocket path: Engine.IO sessions that are a WebSocket
//! from their first request (`transport=websocket`, no `sid`), over TCP or
//! TLS ([`wire`](super::wire)), served without socketioxide.
//!
//! Each connection has one small reader task (frames in, the heartbeat);
//! what goes out (replies and runs) is written by a few shared
//! [`writer`](super::writer) tasks, one per runtime worker, each serving
//! many connections: a connection's inbox wakes its session onto its
//! writer's queue, and the writer turns the runs into frames (each run's
//! JSON serialized once, shared by every subscriber) and writes them with
//! non-blocking writes straight to the socket. Idle, a connection holds no
//! buffer at all: about 4 KB per connection where socketioxide's path
//! needs about 21 KB (`docs/benchmarks.md`).
//!
//! Everything else is the same as on socketioxide's path: the key checked
//! before the upgrade (401) and again at the namespace connection
//! (`CONNECT_ERROR`), the events and their codes ([`super`]), the
//! per-connection byte budget (`connection_buffer`: the inbox plus the
//! frames not yet written), Engine.IO's heartbeat (`ping_interval`,
//! `ping_timeout`: a client that does not answer is closed, whatever it
//! holds freed), and the shutdown (a socket.io `DISCONNECT` and a close
//! frame). Long polling and its upgrade to a WebSocket (the JS SDK's way)
//! stay on socketioxide.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Wake, Waker};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio_rustls::server::TlsStream;
use tracing::debug;

use super::conn::Conn;
use super::eio::{self, ClientPacket, RunPacket};
use super::wire::{Peer, Wire};
use super::writer::{Out, Writer};
use super::ws::{self, Incoming};
use crate::State;
use crate::percent::query_param;
use crate::request::ConnPermit;

/// The largest message a client may send, in bytes (Engine.IO's
/// `maxPayload`, as socketioxide's default).
pub(crate) const MAX_PAYLOAD: usize = 100_000;

/// How long a session may take to connect to the app's namespace
/// (socket.io's `connectTimeout`, as socketioxide's default).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(45);

/// How long a closing session waits for its last frames to be written.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// One app's direct path: its sessions, its writers, its shutdown.
pub(crate) struct Direct {
    pub(crate) state: Arc<State>,
    pub(crate) app: Arc<str>,
    /// The socket.io namespace: `/{app}`.
    pub(crate) nsp: Arc<str>,
    /// The fixed parts of a `SUB_RES` packet on `nsp`.
    pub(crate) run_packet: RunPacket,
    writers: OnceLock<Vec<Arc<Writer>>>,
    next_writer: AtomicUsize,
    stop: watch::Sender<bool>,
    live: AtomicUsize,
    gone: Notify,
}

impl Direct {
    /// App `app`'s direct path.
    pub(crate) fn new(state: Arc<State>, app: Arc<str>) -> Arc<Self> {
        let nsp: Arc<str> = format!("/{app}").into();
        Arc::new(Self {
            run_packet: RunPacket::new(&nsp),
            nsp,
            state,
            app,
            writers: OnceLock::new(),
            next_writer: AtomicUsize::new(0),
            stop: watch::Sender::new(false),
            live: AtomicUsize::new(0),
            gone: Notify::new(),
        })
    }

    /// Whether a request with `query` is this path's: it opens a session
    /// (no `sid`) straight on a WebSocket, and `realtime_direct` is on.
    pub(crate) fn takes(&self, query: Option<&str>) -> bool {
        self.state.limits.realtime_direct
            && query_param(query, "sid").is_none()
            && query_param(query, "transport").as_deref() == Some("websocket")
    }

    /// Answers a WebSocket handshake (its key already checked) with `101`
    /// and starts the session once hyper hands the connection over; `400`
    /// for a request that is not a valid handshake.
    pub(crate) fn upgrade(self: &Arc<Self>, mut req: Request) -> Response {
        let Some(accept) = handshake_accept(req.method(), req.headers()) else {
            // As Engine.IO answers a request it cannot serve.
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"code":3,"message":"Bad request"}"#,
            )
                .into_response();
        };
        let api_key: Box<str> = query_param(req.uri().query(), "apiKey")
            .unwrap_or_default()
            .into();
        let on_upgrade = hyper::upgrade::on(&mut req);
        // The connection's `max_connections` slot stays taken while the
        // session lasts (hyper's connection ends at the upgrade).
        let permit = req
            .extensions()
            .get::<ConnPermit>()
            .and_then(ConnPermit::take);
        let direct = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
            };
            // The bytes hyper read past the request are copied out: its
            // `Bytes` would keep its whole read buffer (8 KiB or more) for
            // the session's life.
            let (wire, read) = match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => (Wire::plain(parts.io.into_inner()), parts.read_buf.to_vec()),
                Err(upgraded) => match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
                    Ok(parts) => {
                        let (stream, tls) = parts.io.into_inner().into_inner();
                        (Wire::tls(stream, tls), parts.read_buf.to_vec())
                    }
                    Err(_) => {
                        debug!("WebSocket upgrade on a connection that is neither TCP nor TLS");
                        return;
                    }
                },
            };
            Session::run(direct, wire, read, api_key).await;
        });
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = res.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        res
    }

    /// Ends every session (a socket.io `DISCONNECT` and a close frame
    /// each, flushed within a second), waits until they are gone, and
    /// ends the writers.
    pub(crate) async fn close(&self) {
        self.stop.send_replace(true);
        loop {
            let gone = self.gone.notified();
            tokio::pin!(gone);
            gone.as_mut().enable();
            if self.live.load(Ordering::Acquire) == 0 {
                break;
            }
            gone.await;
        }
        for writer in self.writers.get().into_iter().flatten() {
            writer.stop();
        }
    }

    /// A writer for a new session (round robin; started on first use).
    fn writer(&self) -> Arc<Writer> {
        let writers = self.writers.get_or_init(|| {
            let n = tokio::runtime::Handle::current()
                .metrics()
                .num_workers()
                .max(1);
            (0..n).map(|_| Writer::start()).collect()
        });
        let i = self.next_writer.fetch_add(1, Ordering::Relaxed) % writers.len();
        writers[i].clone()
    }
}

/// The `Sec-WebSocket-Accept` value for a valid handshake (RFC 6455
/// §4.2.1: a GET asking to upgrade to `websocket`, version 13, with a key
/// of 16 bytes in base64), or `None`.
fn handshake_accept(method: &Method, headers: &HeaderMap) -> Option<String> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if method != Method::GET
        || !has_token(header::UPGRADE, "websocket")
        || !has_token(header::CONNECTION, "upgrade")
        || headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
    {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?.as_bytes();
    let key = key.trim_ascii();
    (key.len() == 24 && key.ends_with(b"==")).then(|| ws::accept_key(key))
}

/// A random session id (16 URL-safe characters).
fn new_sid() -> Box<str> {
    use base64::Engine as _;
    let mut bytes = [0u8; 12];
    // No entropy is not a reason to refuse a connection: the id only has
    // to be unique on this server, which the counter makes it.
    if getrandom::fill(&mut bytes).is_err() {
        static N: AtomicUsize = AtomicUsize::new(0);
        bytes[..8].copy_from_slice(&(N.fetch_add(1, Ordering::Relaxed) as u64).to_le_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(bytes)
        .into()
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed it (a close frame, Engine.IO close, socket.io
    /// disconnect).
    Client,
    /// The socket is gone (reset, end of stream, a failed write).
    Gone,
    /// The client broke the WebSocket protocol: closed with this code.
    Protocol(u16),
    /// No pong within `ping_timeout`.
    Heartbeat,
    /// No namespace connection within [`CONNECT_TIMEOUT`].
    NoConnect,
    /// The server is shutting down.
    Shutdown,
}

/// One direct connection.
pub(crate) struct Session {
    pub(crate) direct: Arc<Direct>,
    pub(crate) wire: Wire,
    /// Wakes this session onto its writer's queue (holds it weakly: the
    /// session's inbox and socket keep it).
    pub(crate) waker: Waker,
    /// Already on its writer's queue.
    pub(crate) queued: AtomicBool,
    writer: Arc<Writer>,
    /// Set once the namespace connection is accepted.
    pub(crate) conn: OnceLock<Arc<Conn>>,
    out: Mutex<Out>,
    /// The writer found the socket broken.
    failed: Notify,
    /// The writer took the connection's replies.
    pub(crate) drained: Notify,
}

/// The waker of a session: schedules it on its writer.
struct SessionWaker(Weak<Session>);

impl Wake for SessionWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(s) = self.0.upgrade() {
            s.schedule();
        }
    }
}

impl Session {
    /// Serves a connection from its upgrade to its end; `read` holds bytes
    /// the client sent right after its handshake.
    async fn run(direct: Arc<Direct>, wire: Wire, read: Vec<u8>, api_key: Box<str>) {
        let writer = direct.writer();
        let session = Arc::new_cyclic(|weak| Self {
            direct: direct.clone(),
            wire,
            waker: Waker::from(Arc::new(SessionWaker(weak.clone()))),
            queued: AtomicBool::new(false),
            writer,
            conn: OnceLock::new(),
            out: Mutex::new(Out::default()),
            failed: Notify::new(),
            drained: Notify::new(),
        });
        direct.live.fetch_add(1, Ordering::AcqRel);
        let sessions = &direct.state.metrics.realtime_direct_sessions;
        sessions.fetch_add(1, Ordering::Relaxed);
        let sid = new_sid();
        let limits = &direct.state.limits;
        session.send_text(&eio::open(
            &sid,
            limits.ping_interval.as_millis(),
            limits.ping_timeout.as_millis(),
            MAX_PAYLOAD,
        ));
        let end = session.read_loop(read, &api_key).await;
        session.finish(end).await;
        sessions.fetch_sub(1, Ordering::Relaxed);
        if direct.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            direct.gone.notify_waiters();
        }
    }

    pub(crate) fn lock_out(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the session on its writer's queue (once until it is pumped).
    pub(crate) fn schedule(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.writer.push(self.clone());
        }
    }

    /// Queues one text frame and schedules the session.
    fn send_text(self: &Arc<Self>, text: &str) {
        self.lock_out().frame(ws::TEXT, text.as_bytes());
        self.schedule();
    }

    /// The writer found the socket broken: the reader ends the session.
    pub(crate) fn fail(&self) {
        self.failed.notify_one();
    }

    /// Reads and handles the client's frames until the session ends.
    async fn read_loop(self: &Arc<Self>, mut buf: Vec<u8>, api_key: &str) -> End {
        let state = self.direct.state.clone();
        let limits = &state.limits;
        let mut decoder = ws::Decoder::new(MAX_PAYLOAD);
        let mut stop = self.direct.stop.subscribe();
        // Engine.IO's heartbeat: a ping every `ping_interval`, answered
        // within `ping_timeout`.
        let mut awaiting_pong = false;
        let mut heartbeat = state.sleep(limits.ping_interval);
        let mut connect_by = state.sleep(CONNECT_TIMEOUT);
        let mut connected = false;
        // What TLS decrypted already, with the upgrade request.
        if !self.read_some(&mut buf) {
            return End::Gone;
        }
        loop {
            // Handle every complete message read so far.
            let mut at = 0;
            loop {
                match decoder.decode(&buf[at..]) {
                    Ok((0, None)) => break,
                    Ok((n, message)) => {
                        at += n;
                        let Some(message) = message else { continue };
                        match self.on_message(message, api_key) {
                            Step::Go => {}
                            Step::Pong => {
                                if awaiting_pong {
                                    awaiting_pong = false;
                                    heartbeat = state.sleep(limits.ping_interval);
                                }
                            }
                            Step::End(end) => return end,
                        }
                    }
                    Err(e) => {
                        debug!(app = %self.direct.app, error = %e, "real-time client broke the WebSocket protocol");
                        return End::Protocol(e.close_code());
                    }
                }
            }
            if !connected && self.conn.get().is_some() {
                // Its timer goes (a sleep not yet polled holds nothing).
                connect_by = state.sleep(CONNECT_TIMEOUT);
                connected = true;
            }
            // An idle connection keeps no read buffer.
            if at == buf.len() {
                buf = Vec::new();
            } else {
                buf.drain(..at);
            }
            // A client that asks faster than it reads its answers is not
            // read until they are written (its heartbeat still runs: one
            // that reads nothing is closed by it).
            let backlog = self.conn.get().is_some_and(|c| c.flooded());
            tokio::select! {
                () = self.drained.notified(), if backlog => {}
                r = self.wire.readable(), if !backlog => {
                    if r.is_err() || !self.read_some(&mut buf) {
                        return End::Gone;
                    }
                }
                () = &mut heartbeat => {
                    if awaiting_pong {
                        debug!(app = %self.direct.app, "real-time client missed its heartbeat");
                        return End::Heartbeat;
                    }
                    self.send_text(eio::PING);
                    awaiting_pong = true;
                    heartbeat = state.sleep(limits.ping_timeout);
                }
                () = &mut connect_by, if !connected => {
                    debug!(app = %self.direct.app, "real-time session never connected to its namespace");
                    return End::NoConnect;
                }
                _ = stop.wait_for(|s| *s) => return End::Shutdown,
                () = self.failed.notified() => return End::Gone,
            }
        }
    }

    /// Reads what the connection has into `buf`; false once the client
    /// has closed its side or the connection failed. TLS records of its
    /// own to answer get the writer going.
    fn read_some(self: &Arc<Self>, buf: &mut Vec<u8>) -> bool {
        let open = matches!(self.wire.read(buf), Ok(Peer::Open));
        if open && self.wire.wants_write() {
            self.schedule();
        }
        open
    }

    /// Handles one message from the client.
    fn on_message(self: &Arc<Self>, message: Incoming, api_key: &str) -> Step {
        let text = match message {
            Incoming::Text(text) => text,
            Incoming::Ping(payload) => {
                self.lock_out().frame(ws::PONG, &payload);
                self.schedule();
                return Step::Go;
            }
            Incoming::Pong(_) => return Step::Go,
            Incoming::Close(..) => return Step::End(End::Client),
            // Engine.IO sends binary data only as socket.io attachments,
            // which no event of this API has.
            Incoming::Binary(_) => return Step::End(End::Protocol(1003)),
        };
        let packet = match eio::parse(&text) {
            Ok(p) => p,
            Err(e) => {
                debug!(app = %self.direct.app, error = %e, "real-time client sent a bad packet");
                return Step::End(End::Protocol(1003));
            }
        };
        let nsp = &*self.direct.nsp;
        match packet {
            ClientPacket::Close => return Step::End(End::Client),
            ClientPacket::Pong => return Step::Pong,
            ClientPacket::Ignored | ClientPacket::Unsupported { .. } => {}
            ClientPacket::Connect { nsp: asked } if asked != nsp => {
                self.send_text(&eio::connect_error(asked, "Invalid namespace"));
            }
            ClientPacket::Connect { .. } => self.connect(api_key),
            ClientPacket::Disconnect { nsp: asked } if asked == nsp => {
                return Step::End(End::Client);
            }
            ClientPacket::Disconnect { .. } => {}
            ClientPacket::Event {
                nsp: asked,
                name,
                arg,
            } if asked == nsp => {
                if let Some(end) = self.event(&name, &arg) {
                    return Step::End(end);
                }
            }
            ClientPacket::Event { .. } => {}
        }
        Step::Go
    }

    /// socket.io `CONNECT` to the app's namespace: the key again (it may
    /// have been removed since the handshake), then the connection's
    /// state.
    fn connect(self: &Arc<Self>, api_key: &str) {
        let direct = &self.direct;
        if self.conn.get().is_some() {
            return;
        }
        match direct.state.authenticate(&direct.app, api_key) {
            Ok((_, key)) => {
                let conn = Arc::new(Conn::new(direct.state.clone(), direct.app.clone(), key));
                // Set before the answer goes out: events after it find it.
                let _ = self.conn.set(conn);
                direct
                    .state
                    .metrics
                    .realtime_connections
                    .fetch_add(1, Ordering::Relaxed);
                debug!(app = %direct.app, "real-time client connected (direct)");
                self.send_text(&eio::connected(&direct.nsp, &new_sid()));
            }
            Err(e) => {
                direct.state.metrics.count_error(e.code);
                self.send_text(&eio::connect_error(&direct.nsp, &e.message));
            }
        }
    }

    /// A socket.io event on the app's namespace (before `CONNECT`
    /// answered, ignored as socket.io does).
    fn event(self: &Arc<Self>, name: &str, arg: &Value) -> Option<End> {
        let conn = self.conn.get()?;
        match name {
            "SUB_ON" => super::sub_on(conn, arg),
            "SUB_OFF" => {
                if let Some(id) = super::request_id(arg) {
                    conn.unlisten(&id);
                }
            }
            "MET_REQ" => super::met_req(conn, arg),
            _ => return None,
        }
        // Replies were queued: the writer sends them.
        self.schedule();
        None
    }

    /// Ends the session: its listeners go at once; a goodbye (for a
    /// shutdown, a socket.io `DISCONNECT`; a close frame unless the socket
    /// is gone) is written within [`CLOSE_GRACE`]; its bytes are no
    /// longer counted.
    async fn finish(self: &Arc<Self>, end: End) {
        let direct = &self.direct;
        if let Some(conn) = self.conn.get() {
            conn.close();
            direct
                .state
                .metrics
                .realtime_connections
                .fetch_sub(1, Ordering::Relaxed);
            debug!(app = %direct.app, ?end, "real-time client disconnected (direct)");
        }
        let code = match end {
            End::Gone => None,
            End::Client | End::Heartbeat | End::NoConnect => Some(1000),
            End::Protocol(code) => Some(code),
            End::Shutdown => Some(1001),
        };
        {
            let mut out = self.lock_out();
            out.closing = true;
            if end == End::Shutdown && self.conn.get().is_some() {
                out.frame(ws::TEXT, eio::disconnect(&direct.nsp).as_bytes());
            }
            if let Some(code) = code {
                out.close_frame(code);
            }
        }
        if code.is_some() {
            let grace = direct.state.sleep(CLOSE_GRACE);
            tokio::pin!(grace);
            let mut notified = false;
            loop {
                if self.lock_out().write_closing(&self.wire) {
                    if notified {
                        break;
                    }
                    // Then TLS's own close (nothing without TLS).
                    self.wire.close_notify();
                    notified = true;
                    continue;
                }
                tokio::select! {
                    r = self.wire.writable() => if r.is_err() { break },
                    () = &mut grace => break,
                }
            }
        }
        self.lock_out().release(direct.state.as_ref());
    }
}

/// What a message asks of the reader.
enum Step {
    Go,
    /// The heartbeat was answered.
    Pong,
    End(End),
}
