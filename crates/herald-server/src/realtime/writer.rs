//! The writers of the direct WebSocket path: a few tasks (one per runtime
//! worker), each writing for many connections.
//!
//! A session is put on its writer's queue when something is to be sent:
//! its inbox took a run (the inbox wakes the session's waker), the reader
//! queued a reply or a heartbeat, or its socket, full before, can take
//! bytes again. The writer then *pumps* it: writes what is pending with
//! non-blocking writes and, once all is written, takes the inbox's runs
//! (up to half the connection's budget) and turns them into frames: `SUB_RES`
//! with the run's JSON (serialized once per run, for every subscriber)
//! copied in. A socket that takes nothing more registers the session's
//! waker for writability; its pending frames stay counted in the budget.
//!
//! # The byte budget
//!
//! A connection holds at most `connection_buffer` bytes for its client:
//! the runs in its inbox plus the frames not yet written (at most half
//! the budget, or one run if larger), which are reserved out of the
//! inbox's share.
//! Past it the inbox drops its oldest runs and counts the listener as
//! lagging, as on socketioxide's path ([`super::drain`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use herald::{DeliveredMessage, InboxItem, SubscriptionId};
use tokio::sync::Notify;
use tracing::debug;

use super::conn::{self, Conn};
use super::session::Session;
use super::wire::Wire;
use super::{eio, ws};
use crate::State;

/// Runs taken from an inbox per round.
const BATCH: usize = 64;

/// A written-out frame buffer larger than this is freed rather than kept.
const KEEP: usize = 16 * 1024;

/// One writer task's queue of sessions to pump.
pub(crate) struct Writer {
    queue: Mutex<Vec<Arc<Session>>>,
    work: Notify,
    stopped: AtomicBool,
}

impl Writer {
    /// Starts a writer task on the current runtime.
    pub(crate) fn start() -> Arc<Self> {
        let w = Arc::new(Self {
            queue: Mutex::new(Vec::new()),
            work: Notify::new(),
            stopped: AtomicBool::new(false),
        });
        tokio::spawn(w.clone().run());
        w
    }

    /// Ends the task (its app's sessions are all gone).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.work.notify_one();
    }

    /// Queues `session` to be pumped.
    pub(crate) fn push(&self, session: Arc<Session>) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(session);
        self.work.notify_one();
    }

    async fn run(self: Arc<Self>) {
        let mut batch = Vec::new();
        let mut scratch = Scratch::default();
        loop {
            std::mem::swap(
                &mut batch,
                &mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()),
            );
            if batch.is_empty() {
                if self.stopped.load(Ordering::Acquire) {
                    return;
                }
                self.work.notified().await;
                continue;
            }
            for session in batch.drain(..) {
                // Cleared first: a wake-up during the pump queues it again.
                session.queued.store(false, Ordering::Release);
                pump(&session, &mut scratch);
                // Other tasks of this worker get their turn.
                tokio::task::consume_budget().await;
            }
        }
    }
}

/// A writer's working buffers, shared by every session it pumps.
#[derive(Default)]
struct Scratch {
    items: Vec<InboxItem>,
    runs: Vec<(SubscriptionId, DeliveredMessage)>,
    planned: Vec<conn::Out>,
    id_json: Vec<u8>,
    packet: Vec<u8>,
}

/// A session's packets not yet written (as WebSocket frames) or not yet
/// polled (Engine.IO packets separated by `\x1e`).
#[derive(Debug, Default)]
pub(crate) struct Out {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    at: usize,
    /// The session long-polls: `buf` holds packets for the next `GET`.
    polling: bool,
    /// A long poll is waiting.
    pub(crate) poll_waiting: bool,
    /// An upgrade's probe was answered: polls return at once.
    pub(crate) upgrading: bool,
    /// The session is ending: nothing more is taken from its inbox, and
    /// its control task writes the rest.
    pub(crate) closing: bool,
    /// Done: nothing more is written or counted.
    released: bool,
    /// What this session adds to `herald_realtime_buffered_bytes`.
    accounted: i64,
}

/// Engine.IO's packet separator in long-polling payloads.
const SEPARATOR: u8 = 0x1e;

impl Out {
    /// The buffer of a WebSocket session, or of a long-polling one.
    pub(crate) fn new(polling: bool) -> Self {
        Self {
            polling,
            ..Self::default()
        }
    }

    /// Whether the session is gone.
    pub(crate) fn released(&self) -> bool {
        self.released
    }

    /// Whether the session long-polls.
    pub(crate) fn polling(&self) -> bool {
        self.polling
    }

    /// Bytes queued and not yet written (or polled).
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() - self.at
    }

    /// Starts a text packet of `len` bytes: a frame header, or the
    /// separator from the previous packet.
    fn begin_text(&mut self, len: usize) {
        if self.polling {
            if !self.buf.is_empty() {
                self.buf.push(SEPARATOR);
            }
        } else {
            ws::header(&mut self.buf, ws::TEXT, len);
        }
    }

    /// Queues one frame (long polling: a text frame's packet; the
    /// WebSocket's own frames have no place there).
    pub(crate) fn frame(&mut self, opcode: u8, payload: &[u8]) {
        if self.released {
            return;
        }
        if self.polling {
            if opcode == ws::TEXT {
                self.begin_text(payload.len());
                self.buf.extend_from_slice(payload);
            }
        } else {
            ws::frame(&mut self.buf, opcode, payload);
        }
    }

    /// Queues a close frame (long polling: Engine.IO's close packet).
    pub(crate) fn close_frame(&mut self, code: u16) {
        if self.released {
            return;
        }
        if self.polling {
            self.frame(ws::TEXT, b"1");
        } else {
            ws::close_frame(&mut self.buf, code);
        }
    }

    /// What a long poll answers now, if anything: the packets waiting;
    /// else Engine.IO's close once the session ends, or a noop while an
    /// upgrade waits for polling to pause.
    pub(crate) fn take_poll(&mut self) -> Option<Vec<u8>> {
        if !self.polling {
            // Upgraded meanwhile: the poll ends with a noop.
            return Some(b"6".to_vec());
        }
        if self.pending() > 0 {
            self.at = 0;
            return Some(std::mem::take(&mut self.buf));
        }
        if self.closing || self.released {
            Some(b"1".to_vec())
        } else if self.upgrading {
            Some(b"6".to_vec())
        } else {
            None
        }
    }

    /// The session was upgraded: the packets not yet polled become
    /// frames, and frames are written from now on.
    pub(crate) fn switch_to_websocket(&mut self) {
        if !self.polling {
            return;
        }
        let packets = std::mem::take(&mut self.buf);
        self.at = 0;
        self.polling = false;
        self.upgrading = false;
        if !packets.is_empty() {
            for packet in packets.split(|&b| b == SEPARATOR) {
                self.frame(ws::TEXT, packet);
            }
        }
    }

    /// Writes what it can to `wire` without waiting: `Ok(true)` once
    /// nothing is pending, `Ok(false)` when the socket takes no more.
    fn write(&mut self, wire: &Wire) -> std::io::Result<bool> {
        if !wire.write(&self.buf, &mut self.at)? {
            return Ok(false);
        }
        self.at = 0;
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Ok(true)
    }

    /// A closing session's last writes: true once done (all written, or
    /// the socket broken).
    pub(crate) fn write_closing(&mut self, wire: &Wire) -> bool {
        self.write(wire).unwrap_or(true)
    }

    /// The session is gone: its bytes are freed and no longer counted.
    pub(crate) fn release(&mut self, state: &State) {
        self.released = true;
        self.buf = Vec::new();
        self.at = 0;
        state
            .metrics
            .realtime_buffered_bytes
            .fetch_sub(self.accounted, Ordering::Relaxed);
        self.accounted = 0;
    }
}

/// Pumps `session` now, on the caller's task (a long poll about to answer
/// takes what is there, not what the writer had queued so far).
pub(crate) fn pump_now(session: &Arc<Session>) {
    pump(session, &mut Scratch::default());
}

/// Writes `session`'s pending frames and turns its inbox's runs into more
/// while the socket takes them and the budget allows. A long-polling
/// session's packets wait for its next poll (up to half the budget, and a
/// batch).
fn pump(session: &Arc<Session>, scratch: &mut Scratch) {
    let mut cx = Context::from_waker(&session.waker);
    let state = &session.direct.state;
    let budget = state.limits.connection_buffer;
    let conn = session.conn.get();
    let mut out = session.lock_out();
    if out.released || out.closing {
        return;
    }
    loop {
        if out.polling {
            if let Some(conn) = conn {
                // Until the inbox is empty (its waker registered) or half
                // the budget waits.
                while out.pending() < budget / 2
                    && fill(session, conn, &mut out, &mut cx, scratch, budget / 2)
                {}
            }
            if out.pending() > 0 {
                session.wake_poll();
            }
            break;
        }
        // Upgraded, its WebSocket not yet attached: written once it is.
        let Some(wire) = session.wire.get() else {
            break;
        };
        match out.write(wire) {
            Ok(true) => {}
            Ok(false) => match wire.poll_write_ready(&mut cx) {
                // Writable again already: write on.
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(_)) => {
                    session.fail();
                    return;
                }
                // The waker queues the session when it is.
                Poll::Pending => break,
            },
            Err(e) => {
                debug!(error = %e, "real-time socket write failed");
                session.fail();
                return;
            }
        }
        // Everything is written: take more (at most half the budget).
        let Some(conn) = conn else { break };
        if !fill(session, conn, &mut out, &mut cx, scratch, budget / 2) {
            break;
        }
    }
    if let Some(conn) = conn {
        let pending = out.pending();
        conn.inbox.set_reserved(pending.min(budget / 2));
        let held = conn.inbox.bytes() + pending + conn.reply_bytes();
        let now = i64::try_from(held).unwrap_or(i64::MAX);
        state
            .metrics
            .realtime_buffered_bytes
            .fetch_add(now - out.accounted, Ordering::Relaxed);
        out.accounted = now;
    }
}

/// Takes `conn`'s replies and up to a batch of runs, within `max_bytes`,
/// and queues their frames. False only once the inbox had nothing (the
/// session's waker is then registered with it) and there were no replies:
/// a batch of nothing but lag notices, or of runs for listeners stopped
/// meanwhile, is true, so that the caller polls again (stopping there
/// would leave no waker registered, and the session asleep until its next
/// heartbeat).
fn fill(
    session: &Session,
    conn: &Conn,
    out: &mut Out,
    cx: &mut Context<'_>,
    s: &mut Scratch,
    max_bytes: usize,
) -> bool {
    let taken = conn
        .inbox
        .poll_recv_bytes(cx, &mut s.items, max_bytes, BATCH);
    if taken == Poll::Ready(0) {
        // Closed: the connection is ending.
        return false;
    }
    let took = taken.is_ready();
    let mut lagged = 0;
    for item in s.items.drain(..) {
        match item {
            InboxItem::Message {
                subscription,
                message,
            } => s.runs.push((subscription, message)),
            InboxItem::Lagged { missed, .. } => lagged += missed,
            InboxItem::Ended { subscription } => conn.ended(subscription),
        }
    }
    if lagged > 0 {
        conn.state.metrics.count_lagged(lagged);
        debug!(app = %conn.app, missed = lagged, "real-time connection lagged");
    }
    conn.plan(&mut s.runs, &mut s.planned);
    if s.planned.is_empty() {
        return took;
    }
    // A reader waiting for the replies to go reads again.
    session.drained.notify_one();
    let run_packet = &session.direct.run_packet;
    for o in s.planned.drain(..) {
        match o {
            conn::Out::Reply(event, payload) => {
                s.packet.clear();
                eio::event(&mut s.packet, &session.direct.nsp, event, &*payload);
                out.frame(ws::TEXT, &s.packet);
            }
            conn::Out::Run(id, message) => {
                s.id_json.clear();
                // A string into a Vec: cannot fail.
                let _ = serde_json::to_writer(&mut s.id_json, &*id);
                let data = message.frame().as_bytes();
                out.begin_text(run_packet.len(&s.id_json, data));
                run_packet.write(&mut out.buf, &s.id_json, data);
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text packets a WebSocket frame buffer holds, read back with the
    /// codec's own decoder (server frames are unmasked: the decoder wants
    /// masked ones, so they are masked here with a zero key).
    fn frames(buf: &[u8]) -> Vec<String> {
        let mut masked = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            let len7 = usize::from(buf[at + 1] & 0x7f);
            let (len, header) = match len7 {
                126 => (
                    usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]])),
                    4,
                ),
                127 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&buf[at + 2..at + 10]);
                    (usize::try_from(u64::from_be_bytes(n)).unwrap(), 10)
                }
                n => (n, 2),
            };
            masked.push(buf[at]);
            masked.push(buf[at + 1] | 0x80);
            masked.extend_from_slice(&buf[at + 2..at + header]);
            masked.extend_from_slice(&[0; 4]);
            masked.extend_from_slice(&buf[at + header..at + header + len]);
            at += header + len;
        }
        let mut decoder = ws::Decoder::new(1 << 20);
        let mut out = Vec::new();
        let mut rest = &masked[..];
        while let Ok((n, Some(ws::Incoming::Text(t)))) = decoder.decode(rest) {
            out.push(t);
            rest = &rest[n..];
        }
        assert!(rest.is_empty(), "{} bytes left", rest.len());
        out
    }

    #[test]
    fn polling_packets_are_separated_and_taken_whole() {
        let mut out = Out::new(true);
        assert_eq!(out.take_poll(), None, "nothing yet: the poll waits");
        out.frame(ws::TEXT, b"40/A,{}");
        out.frame(ws::PONG, b"not for polling");
        out.frame(ws::TEXT, b"2");
        assert_eq!(out.take_poll().unwrap(), b"40/A,{}\x1e2");
        assert_eq!(out.pending(), 0);
        out.upgrading = true;
        assert_eq!(out.take_poll().unwrap(), b"6", "a noop for the probe");
        out.closing = true;
        out.close_frame(1000);
        assert_eq!(out.take_poll().unwrap(), b"1", "Engine.IO's close");
        assert_eq!(out.take_poll().unwrap(), b"1", "and again");
    }

    #[test]
    fn an_upgrade_turns_the_unpolled_packets_into_frames_in_order() {
        let mut out = Out::new(true);
        let big = "x".repeat(70_000);
        for p in ["first", big.as_str(), "", "last"] {
            out.frame(ws::TEXT, p.as_bytes());
        }
        out.switch_to_websocket();
        assert!(!out.polling());
        out.frame(ws::TEXT, b"after");
        assert_eq!(
            frames(&out.buf),
            ["first", big.as_str(), "", "last", "after"],
            "every packet, in order, then the new ones"
        );
        assert_eq!(out.take_poll().unwrap(), b"6", "a poll still waiting ends");
    }
}
