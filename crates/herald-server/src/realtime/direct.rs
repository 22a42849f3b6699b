//! The direct path: Engine.IO 4 sessions served without socketioxide,
//! over a WebSocket from their first request (`transport=websocket`), or
//! long polling (`transport=polling`, the JS SDK's way) and then, most
//! often, upgraded to a WebSocket; over TCP or TLS ([`wire`](super::wire)).
//!
//! Each session has one small control task ([`session`](super::session):
//! frames in, the heartbeat); what goes out (replies and runs) is written
//! by a few shared [`writer`](super::writer) tasks, one per runtime worker,
//! each serving many sessions: a session's inbox wakes it onto its
//! writer's queue, and the writer turns the runs into frames (each run's
//! JSON serialized once, shared by every subscriber) and writes them with
//! non-blocking writes straight to the socket, or leaves them for the next
//! poll. Idle, a WebSocket session holds no buffer at all: about 4 KB per
//! connection where socketioxide's path needs about 21 KB
//! (`docs/benchmarks.md`).
//!
//! Everything else is as on socketioxide's path (`realtime_direct =
//! false`): the key checked before a session opens (401) and again at the
//! namespace connection (`CONNECT_ERROR`), the events and their codes
//! ([`super`]), the per-connection byte budget (`connection_buffer`: the
//! inbox plus what is not yet written or polled), Engine.IO's heartbeat
//! (`ping_interval`, `ping_timeout`: a client that does not answer is
//! closed, whatever it holds freed), and the shutdown (a socket.io
//! `DISCONNECT` and a close).
//!
//! # Long polling and the upgrade
//!
//! A `GET` without `sid` opens a session and answers its open packet
//! (`upgrades: ["websocket"]`). `GET`s with its `sid` are long polls: one
//! at a time, answered with the packets waiting (`\x1e`-separated) or held
//! until there are some (the heartbeat's ping comes within
//! `ping_interval`); `POST`s bring the client's packets. A WebSocket
//! request with the `sid` upgrades it: the client sends `2probe`, the
//! server answers `3probe` and makes polls return at once (a noop when
//! there is nothing) so that the client can pause polling; the client's
//! `5` completes the upgrade, and what was not yet polled goes out as
//! frames. Engine.IO's errors are its own: `400 {"code":1,"message":"Session
//! ID unknown"}` and the like.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio_rustls::server::TlsStream;
use tracing::debug;

use super::eio::RunPacket;
use super::session::Session;
use super::wire::{Peer, Wire};
use super::writer::Writer;
use super::ws::{self, Incoming};
use crate::State;
use crate::percent::query_param;
use crate::request::ConnPermit;

/// The largest message a client may send, in bytes (Engine.IO's
/// `maxPayload`, as socketioxide's default).
pub(crate) const MAX_PAYLOAD: usize = 100_000;

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
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) live: AtomicUsize,
    pub(crate) gone: Notify,
    /// Long-polling sessions (and upgraded ones) by `sid`.
    sessions: Mutex<HashMap<Box<str>, Weak<Session>>>,
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
            sessions: Mutex::default(),
        })
    }

    /// Whether this path serves the app's Engine.IO requests
    /// (`realtime_direct`).
    pub(crate) fn enabled(&self) -> bool {
        self.state.limits.realtime_direct
    }

    /// Serves one Engine.IO request (a request that opens a session has
    /// had its key checked).
    pub(crate) async fn serve(self: &Arc<Self>, req: Request) -> Response {
        let query = req.uri().query();
        if query_param(query, "EIO").as_deref() != Some("4") {
            return bad_request(5, "Unsupported protocol version");
        }
        let transport = query_param(query, "transport");
        let Some(sid) = query_param(query, "sid") else {
            return match transport.as_deref() {
                Some("websocket") => self.open_websocket(req),
                Some("polling") if req.method() == Method::GET => self.open_polling(&req),
                Some("polling") => bad_request(2, "Bad handshake method"),
                _ => bad_request(0, "Transport unknown"),
            };
        };
        let Some(session) = self.find(&sid) else {
            return bad_request(1, "Session ID unknown");
        };
        match (transport.as_deref(), req.method()) {
            (Some("polling"), &Method::GET) => session.poll().await,
            (Some("polling"), &Method::POST) => session.post(req.into_body()).await,
            (Some("websocket"), _) => self.upgrade(session, req),
            (Some("polling"), _) => bad_request(3, "Bad request"),
            _ => bad_request(0, "Transport unknown"),
        }
    }

    fn find(&self, sid: &str) -> Option<Arc<Session>> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.get(sid).and_then(Weak::upgrade)
    }

    /// The session `sid` has ended.
    pub(crate) fn forget(&self, sid: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.remove(sid);
    }

    /// Opens a long-polling session: its open packet is the answer. The
    /// session takes a `max_connections` slot of its own for as long as it
    /// lasts (its requests come on connections that hold theirs; an
    /// upgrade trades it for the WebSocket connection's): with every slot
    /// taken the handshake is answered `503`.
    fn open_polling(self: &Arc<Self>, req: &Request) -> Response {
        let slot = match req.extensions().get::<ConnPermit>() {
            Some(conn) => match conn.another() {
                Some(slot) => Some(slot),
                None => return no_slot(),
            },
            // A request not from the accept loop (none in the server).
            None => None,
        };
        let session = Session::new(self, api_key(req), None);
        session.keep_slot(slot);
        {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions.insert(session.sid.clone(), Arc::downgrade(&session));
        }
        let open = session.open_packet();
        tokio::spawn(session.run(Vec::new()));
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
            open,
        )
            .into_response()
    }

    /// Opens a session on a WebSocket: `101`, then the session runs on
    /// the connection hyper hands over.
    fn open_websocket(self: &Arc<Self>, mut req: Request) -> Response {
        let api_key = api_key(&req);
        let Some((res, on_upgrade, permit)) = accept(&mut req) else {
            return bad_request(3, "Bad request");
        };
        let direct = self.clone();
        tokio::spawn(async move {
            // The connection's `max_connections` slot stays taken while
            // the session lasts.
            let _permit = permit;
            let Some((wire, read)) = take_wire(on_upgrade).await else {
                return;
            };
            Session::new(&direct, api_key, Some(wire)).run(read).await;
        });
        res
    }

    /// Upgrades a long-polling session to a WebSocket: `101`, then the
    /// probe (`2probe` → `3probe`) and the client's `5`.
    fn upgrade(&self, session: Arc<Session>, mut req: Request) -> Response {
        if session.wire.get().is_some() {
            return bad_request(3, "Bad request");
        }
        let Some((res, on_upgrade, permit)) = accept(&mut req) else {
            return bad_request(3, "Bad request");
        };
        tokio::spawn(async move {
            let Some((wire, read)) = take_wire(on_upgrade).await else {
                return;
            };
            probe(session, wire, read, permit).await;
        });
        res
    }

    /// Ends every session (a socket.io `DISCONNECT` and a close each,
    /// written or polled within a second), waits until they are gone, and
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
    pub(crate) fn writer(&self) -> Arc<Writer> {
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

/// The request's `apiKey`.
fn api_key(req: &Request) -> Box<str> {
    query_param(req.uri().query(), "apiKey")
        .unwrap_or_default()
        .into()
}

/// Engine.IO's error answer: `400 {"code": code, "message": message}`.
pub(crate) fn bad_request(code: u8, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "code": code, "message": message }).to_string(),
    )
        .into_response()
}

/// The answer to a long-polling handshake with every `max_connections`
/// slot taken: `503` with `Retry-After` (socket.io clients back off and
/// try again).
fn no_slot() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::RETRY_AFTER, "1"),
        ],
        serde_json::json!({ "message": "Too many connections; try again later." }).to_string(),
    )
        .into_response()
}

/// A WebSocket handshake's `101` answer, the upgrade to wait for, and the
/// connection's `max_connections` slot (the session keeps it); `None` for
/// a request that is not a valid handshake.
fn accept(req: &mut Request) -> Option<(Response, OnUpgrade, Option<OwnedSemaphorePermit>)> {
    let accept = handshake_accept(req.method(), req.headers())?;
    let on_upgrade = hyper::upgrade::on(&mut *req);
    let permit = req
        .extensions()
        .get::<ConnPermit>()
        .and_then(ConnPermit::take);
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Some((res, on_upgrade, permit))
}

/// The connection hyper hands over after a `101`: a TCP socket, or one
/// under TLS, and the bytes it had read past the request (copied out: its
/// `Bytes` would keep its whole read buffer, 8 KiB or more, for the
/// session's life).
async fn take_wire(on_upgrade: OnUpgrade) -> Option<(Wire, Vec<u8>)> {
    let upgraded = match on_upgrade.await {
        Ok(u) => u,
        Err(e) => {
            debug!(error = %e, "WebSocket upgrade failed");
            return None;
        }
    };
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => Some((Wire::plain(parts.io.into_inner()), parts.read_buf.to_vec())),
        Err(upgraded) => match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
            Ok(parts) => {
                let (stream, tls) = parts.io.into_inner().into_inner();
                Some((Wire::tls(stream, tls), parts.read_buf.to_vec()))
            }
            Err(_) => {
                debug!("WebSocket upgrade on a connection that is neither TCP nor TLS");
                None
            }
        },
    }
}

/// The upgrade of a long-polling session on `wire`: answers `2probe` with
/// `3probe` (then polls return at once, so that the client pauses
/// polling), and hands the WebSocket to the session at the client's `5`.
/// Anything else, or nothing within `ping_timeout`, and the upgrade is
/// dropped: the session polls on.
async fn probe(
    session: Arc<Session>,
    wire: Wire,
    mut buf: Vec<u8>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let state = session.direct.state.clone();
    let deadline = state.sleep(state.limits.ping_timeout);
    tokio::pin!(deadline);
    let mut stop = session.direct.stop.subscribe();
    let mut decoder = ws::Decoder::new(MAX_PAYLOAD);
    let mut probed = false;
    let mut open = matches!(wire.read(&mut buf), Ok(Peer::Open));
    while open {
        let mut at = 0;
        loop {
            let message = match decoder.decode(&buf[at..]) {
                Ok((0, None)) => break,
                Ok((n, message)) => {
                    at += n;
                    message
                }
                Err(_) => {
                    open = false;
                    break;
                }
            };
            match message {
                None => {}
                Some(Incoming::Text(t)) if t == "2probe" => {
                    let mut frame = Vec::new();
                    ws::frame(&mut frame, ws::TEXT, b"3probe");
                    if !write_all(&wire, &frame).await {
                        open = false;
                        break;
                    }
                    probed = true;
                    session.probed(true);
                }
                Some(Incoming::Text(t)) if t == "5" && probed => {
                    buf.drain(..at);
                    session.attach(wire, buf, permit);
                    return;
                }
                Some(Incoming::Ping(payload)) => {
                    let mut frame = Vec::new();
                    ws::frame(&mut frame, ws::PONG, &payload);
                    if !write_all(&wire, &frame).await {
                        open = false;
                        break;
                    }
                }
                Some(_) => {
                    open = false;
                    break;
                }
            }
        }
        if !open {
            break;
        }
        buf.drain(..at);
        tokio::select! {
            r = wire.readable() => {
                open = r.is_ok() && matches!(wire.read(&mut buf), Ok(Peer::Open));
            }
            () = &mut deadline => open = false,
            _ = stop.wait_for(|s| *s) => open = false,
        }
    }
    debug!(app = %session.direct.app, "a real-time upgrade did not complete: the session polls on");
    if probed {
        session.probed(false);
    }
}

/// Writes `bytes` to `wire`, waiting while the socket is full; false if it
/// fails.
async fn write_all(wire: &Wire, bytes: &[u8]) -> bool {
    let mut at = 0;
    loop {
        match wire.write(bytes, &mut at) {
            Ok(true) => return true,
            Ok(false) => {
                if wire.writable().await.is_err() {
                    return false;
                }
            }
            Err(_) => return false,
        }
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
