//! One session of the direct path: from its handshake (a WebSocket, or an
//! Engine.IO long-polling handshake) to its end.
//!
//! Its *control task* runs the session: the heartbeat, socket.io's connect
//! timeout, the shutdown, and, once the session has a WebSocket (from its
//! start, or after an upgrade from long polling), reading the client's
//! frames. While it polls, the client's packets come in `POST`s
//! ([`Session::post`]) and its packets go out in answers to its `GET`s
//! ([`Session::poll`]); the writers fill the same buffer either way
//! ([`Out`]), as WebSocket frames or as Engine.IO's `\x1e`-separated
//! packets.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Wake, Waker};

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tracing::debug;

use super::conn::Conn;
use super::direct::{Direct, MAX_PAYLOAD, bad_request};
use super::eio::{self, ClientPacket};
use super::wire::{Peer, Wire};
use super::writer::{Out, Writer};
use super::ws::{self, Incoming};

/// How long a session may take to connect to the app's namespace
/// (socket.io's `connectTimeout`, as socketioxide's default).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(45);

/// How long a closing session waits for its last frames to be written (or
/// its last packets polled).
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The close code for a client that breaks a rule of this server (RFC 6455
/// §7.4.1: policy violation).
const POLICY_VIOLATION: u16 = 1008;

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The client closed it (a close frame, Engine.IO close, socket.io
    /// disconnect).
    Client,
    /// The socket is gone (reset, end of stream, a failed write).
    Gone,
    /// The client broke a protocol rule: closed with this code.
    Protocol(u16),
    /// No pong within `ping_timeout`.
    Heartbeat,
    /// No namespace connection within [`CONNECT_TIMEOUT`].
    NoConnect,
    /// The server is shutting down.
    Shutdown,
}

/// A random session id (16 URL-safe characters).
pub(crate) fn new_sid() -> Box<str> {
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

/// One direct session.
pub(crate) struct Session {
    pub(crate) direct: Arc<Direct>,
    /// Engine.IO's session id.
    pub(crate) sid: Box<str>,
    /// The handshake's `apiKey`, checked again at the namespace connection.
    api_key: Box<str>,
    /// Its WebSocket: from the start, or once upgraded from long polling.
    pub(crate) wire: OnceLock<Wire>,
    /// Wakes this session onto its writer's queue (holds it weakly: the
    /// session's inbox and socket keep it).
    pub(crate) waker: Waker,
    /// Already on its writer's queue.
    pub(crate) queued: AtomicBool,
    writer: Arc<Writer>,
    /// Set once the namespace connection is accepted.
    pub(crate) conn: OnceLock<Arc<Conn>>,
    out: Mutex<Out>,
    control: Mutex<Control>,
    /// Wakes the control task: something is in [`Control`].
    signal: Notify,
    /// The writer took the connection's replies.
    pub(crate) drained: Notify,
    /// Wakes a waiting long poll: packets, an upgrade probe, the end.
    polled: Notify,
    /// The session's `max_connections` slot: a long-polling session's own,
    /// then (after an upgrade) its WebSocket connection's. Freed when the
    /// session has ended.
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

/// What the session's requests and writer tell its control task.
#[derive(Debug, Default)]
struct Control {
    /// A pong came in a `POST`.
    pong: bool,
    /// The session is to end.
    end: Option<End>,
    /// The session was upgraded to a WebSocket: the bytes read past the
    /// upgrade packet (the control task reads on from them).
    attached: Option<Vec<u8>>,
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

/// What a message asks of the control task.
enum Step {
    Go,
    /// The heartbeat was answered.
    Pong,
    End(End),
}

impl Session {
    /// A session of `direct`: on `wire` (a WebSocket from its start), or
    /// long polling (`None`).
    pub(crate) fn new(direct: &Arc<Direct>, api_key: Box<str>, wire: Option<Wire>) -> Arc<Self> {
        let writer = direct.writer();
        let polling = wire.is_none();
        Arc::new_cyclic(|weak| Self {
            direct: direct.clone(),
            sid: new_sid(),
            api_key,
            wire: wire.map(OnceLock::from).unwrap_or_default(),
            waker: Waker::from(Arc::new(SessionWaker(weak.clone()))),
            queued: AtomicBool::new(false),
            writer,
            conn: OnceLock::new(),
            out: Mutex::new(Out::new(polling)),
            control: Mutex::default(),
            signal: Notify::new(),
            drained: Notify::new(),
            polled: Notify::new(),
            permit: Mutex::new(None),
        })
    }

    /// The Engine.IO open packet (`upgrades`: what a polling session may
    /// upgrade to).
    pub(crate) fn open_packet(&self) -> String {
        let limits = &self.direct.state.limits;
        eio::open(
            &self.sid,
            self.wire.get().is_none(),
            limits.ping_interval.as_millis(),
            limits.ping_timeout.as_millis(),
            MAX_PAYLOAD,
        )
    }

    /// Runs the session to its end (its control task); `read` holds bytes
    /// the client sent right after a WebSocket handshake. A WebSocket
    /// session sends its open packet first; a polling one has answered it
    /// to its handshake.
    pub(crate) async fn run(self: Arc<Self>, read: Vec<u8>) {
        let direct = self.direct.clone();
        direct.live.fetch_add(1, Ordering::AcqRel);
        let sessions = &direct.state.metrics.realtime_direct_sessions;
        sessions.fetch_add(1, Ordering::Relaxed);
        if self.wire.get().is_some() {
            self.send_text(&self.open_packet());
        }
        let end = self.control_loop(read).await;
        self.finish(end).await;
        direct.forget(&self.sid);
        // Its `max_connections` slot is free before it stops counting.
        self.keep_slot(None);
        sessions.fetch_sub(1, Ordering::Relaxed);
        if direct.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            direct.gone.notify_waiters();
        }
    }

    pub(crate) fn lock_out(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts the session on its writer's queue (once until it is pumped).
    pub(crate) fn schedule(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.writer.push(self.clone());
        }
    }

    /// Queues one text packet and schedules the session.
    fn send_text(self: &Arc<Self>, text: &str) {
        self.lock_out().frame(ws::TEXT, text.as_bytes());
        self.schedule();
    }

    /// Ends the session (its control task returns `end`).
    pub(crate) fn end_with(&self, end: End) {
        self.lock_control().end.get_or_insert(end);
        self.signal.notify_one();
    }

    /// The writer found the socket broken.
    pub(crate) fn fail(&self) {
        self.end_with(End::Gone);
    }

    /// A long poll may have something to take.
    pub(crate) fn wake_poll(&self) {
        self.polled.notify_one();
    }

    /// Waits until the socket may have bytes (never without a WebSocket).
    async fn readable(&self) -> std::io::Result<()> {
        match self.wire.get() {
            Some(wire) => wire.readable().await,
            None => std::future::pending().await,
        }
    }

    /// The session's control task: reads and handles the client's frames
    /// (once it has a WebSocket), keeps the heartbeat and the connect
    /// timeout, until the session ends.
    async fn control_loop(self: &Arc<Self>, mut buf: Vec<u8>) -> End {
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
        if self.wire.get().is_some() && !self.read_some(&mut buf) {
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
                        match self.on_message(message) {
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
            // An idle connection keeps no read buffer.
            if at == buf.len() {
                buf = Vec::new();
            } else {
                buf.drain(..at);
            }
            {
                let mut control = self.lock_control();
                if let Some(end) = control.end.take() {
                    return end;
                }
                if std::mem::take(&mut control.pong) && awaiting_pong {
                    awaiting_pong = false;
                    heartbeat = state.sleep(limits.ping_interval);
                }
                if let Some(bytes) = control.attached.take() {
                    // Upgraded: read on from what the upgrade read.
                    buf.extend_from_slice(&bytes);
                    drop(control);
                    if !self.read_some(&mut buf) {
                        return End::Gone;
                    }
                    continue;
                }
            }
            if !connected && self.conn.get().is_some() {
                // Its timer goes (a sleep not yet polled holds nothing).
                connect_by = state.sleep(CONNECT_TIMEOUT);
                connected = true;
            }
            // A client that asks faster than it reads its answers is not
            // read until they are written (its heartbeat still runs: one
            // that reads nothing is closed by it).
            let backlog = self.conn.get().is_some_and(|c| c.flooded());
            tokio::select! {
                () = self.drained.notified(), if backlog => {}
                r = self.readable(), if !backlog => {
                    if r.is_err() || !self.read_some(&mut buf) {
                        return End::Gone;
                    }
                }
                () = self.signal.notified() => {}
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
            }
        }
    }

    /// Reads what the WebSocket has into `buf`; false once the client has
    /// closed its side or the connection failed. TLS records of its own to
    /// answer get the writer going.
    fn read_some(self: &Arc<Self>, buf: &mut Vec<u8>) -> bool {
        let Some(wire) = self.wire.get() else {
            return true;
        };
        let open = matches!(wire.read(buf), Ok(Peer::Open));
        if open && wire.wants_write() {
            self.schedule();
        }
        open
    }

    /// Handles one WebSocket message from the client.
    fn on_message(self: &Arc<Self>, message: Incoming) -> Step {
        match message {
            Incoming::Text(text) => self.on_packet(&text),
            Incoming::Ping(payload) => {
                self.lock_out().frame(ws::PONG, &payload);
                self.schedule();
                Step::Go
            }
            Incoming::Pong(_) => Step::Go,
            Incoming::Close(..) => Step::End(End::Client),
            // Engine.IO sends binary data only as socket.io attachments,
            // which no event of this API has.
            Incoming::Binary(_) => Step::End(End::Protocol(1003)),
        }
    }

    /// Handles one Engine.IO packet from the client.
    fn on_packet(self: &Arc<Self>, text: &str) -> Step {
        let packet = match eio::parse(text) {
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
            ClientPacket::Connect { .. } => self.connect(),
            ClientPacket::Disconnect { nsp: asked } if asked == nsp => {
                return Step::End(End::Client);
            }
            ClientPacket::Disconnect { .. } => {}
            ClientPacket::Event {
                nsp: asked,
                name,
                arg,
            } if asked == nsp => self.event(&name, &arg),
            ClientPacket::Event { .. } => {}
        }
        Step::Go
    }

    /// socket.io `CONNECT` to the app's namespace: the key again (it may
    /// have been removed since the handshake), then the connection's
    /// state.
    fn connect(self: &Arc<Self>) {
        let direct = &self.direct;
        if self.conn.get().is_some() {
            return;
        }
        match direct.state.authenticate(&direct.app, &self.api_key) {
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
    fn event(self: &Arc<Self>, name: &str, arg: &Value) {
        let Some(conn) = self.conn.get() else {
            return;
        };
        match name {
            "SUB_ON" => super::sub_on(conn, arg),
            "SUB_OFF" => {
                if let Some(id) = super::request_id(arg) {
                    conn.unlisten(&id);
                }
            }
            "MET_REQ" => super::met_req(conn, arg),
            _ => return,
        }
        // Replies were queued: the writer sends them.
        self.schedule();
    }

    /// A long poll (`GET`): the packets waiting, or, once there are some,
    /// or the session ends, or an upgrade's probe asks the poll to return
    /// (a noop). One at a time: a second concurrent poll ends the session.
    pub(crate) async fn poll(self: &Arc<Self>) -> Response {
        {
            let mut out = self.lock_out();
            if !out.polling() {
                // Upgraded: polls are over.
                return bad_request(3, "Bad request");
            }
            if out.poll_waiting {
                drop(out);
                self.end_with(End::Protocol(POLICY_VIOLATION));
                return bad_request(3, "Bad request");
            }
            out.poll_waiting = true;
        }
        // A poll the client gives up (its connection closes) is no longer
        // waiting.
        struct Waiting<'a>(&'a Session);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.lock_out().poll_waiting = false;
            }
        }
        let _waiting = Waiting(self);
        loop {
            let polled = self.polled.notified();
            tokio::pin!(polled);
            polled.as_mut().enable();
            // What the inbox and the replies hold now goes in this answer.
            super::writer::pump_now(self);
            let taken = self.lock_out().take_poll();
            if let Some(body) = taken {
                // The writer fills the next one (and recounts the bytes);
                // a closing session sees its goodbye taken.
                self.schedule();
                self.polled.notify_waiters();
                return text_response(StatusCode::OK, body);
            }
            polled.await;
        }
    }

    /// A `POST` of the client's packets (`\x1e`-separated, at most
    /// `maxPayload` bytes), answered `ok`.
    pub(crate) async fn post(self: &Arc<Self>, body: Body) -> Response {
        if !self.lock_out().polling() {
            return bad_request(3, "Bad request");
        }
        let bytes = match Limited::new(body, MAX_PAYLOAD).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                self.end_with(End::Protocol(1009));
                return text_response(StatusCode::PAYLOAD_TOO_LARGE, b"payload too large".to_vec());
            }
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            self.end_with(End::Protocol(1007));
            return bad_request(3, "Bad request");
        };
        for packet in text.split('\x1e') {
            match self.on_packet(packet) {
                Step::Go => {}
                Step::Pong => {
                    self.lock_control().pong = true;
                    self.signal.notify_one();
                }
                Step::End(end) => {
                    self.end_with(end);
                    break;
                }
            }
        }
        // Polling cannot stop reading a client that asks faster than it
        // polls its answers: it is closed.
        if self.conn.get().is_some_and(|c| c.flooded()) {
            debug!(app = %self.direct.app, "real-time client does not poll its answers");
            self.end_with(End::Protocol(POLICY_VIOLATION));
        }
        text_response(StatusCode::OK, b"ok".to_vec())
    }

    /// An upgrade's probe was answered: polls return at once (a noop when
    /// there is nothing) so that the client can pause polling.
    pub(crate) fn probed(&self, probed: bool) {
        self.lock_out().upgrading = probed;
        self.wake_poll();
    }

    /// Keeps `slot` (a long-polling session's `max_connections` slot) for
    /// as long as the session lasts, or until an upgrade trades it.
    pub(crate) fn keep_slot(&self, slot: Option<OwnedSemaphorePermit>) {
        *self.permit.lock().unwrap_or_else(|e| e.into_inner()) = slot;
    }

    /// The upgrade is done: the session goes on over `wire`; `read` holds
    /// what was read past the upgrade packet.
    pub(crate) fn attach(
        self: &Arc<Self>,
        wire: Wire,
        read: Vec<u8>,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        // A session that ended meanwhile drops the WebSocket (it closes).
        if self.lock_out().released() || self.wire.set(wire).is_err() {
            return;
        }
        // The WebSocket's connection slot replaces the polling one.
        self.keep_slot(permit);
        self.direct
            .state
            .metrics
            .realtime_upgrades
            .fetch_add(1, Ordering::Relaxed);
        // The packets not yet polled go out as frames.
        self.lock_out().switch_to_websocket();
        self.lock_control().attached = Some(read);
        self.signal.notify_one();
        self.wake_poll();
        self.schedule();
    }

    /// Ends the session: its listeners go at once; a goodbye (for a
    /// shutdown, a socket.io `DISCONNECT`; a close frame or packet unless
    /// the socket is gone) is written, or polled, within [`CLOSE_GRACE`];
    /// its bytes are no longer counted.
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
        let grace = direct.state.sleep(CLOSE_GRACE);
        tokio::pin!(grace);
        match self.wire.get() {
            Some(wire) if code.is_some() => {
                let mut notified = false;
                loop {
                    if self.lock_out().write_closing(wire) {
                        if notified {
                            break;
                        }
                        // Then TLS's own close (nothing without TLS).
                        wire.close_notify();
                        notified = true;
                        continue;
                    }
                    tokio::select! {
                        r = wire.writable() => if r.is_err() { break },
                        () = &mut grace => break,
                    }
                }
            }
            Some(_) => {}
            None => {
                // A poll waiting now, or coming within the grace, takes
                // the goodbye.
                self.wake_poll();
                loop {
                    let polled = self.polled.notified();
                    tokio::pin!(polled);
                    polled.as_mut().enable();
                    if self.lock_out().pending() == 0 {
                        break;
                    }
                    tokio::select! {
                        () = polled => {}
                        () = &mut grace => break,
                    }
                }
            }
        }
        self.lock_out().release(direct.state.as_ref());
        self.wake_poll();
    }
}

/// A `text/plain` answer, as Engine.IO's polling answers are.
fn text_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        body,
    )
        .into_response()
}
