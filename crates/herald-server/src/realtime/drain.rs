//! The drain task: one per connection, it sends the connection's replies
//! and runs in order, and keeps the connection's memory within its byte
//! budget.
//!
//! # The byte budget
//!
//! A connection may hold `connection_buffer` bytes for its client: the runs
//! queued in its inbox plus the packets handed to socket.io that may not be
//! written to the socket yet. socketioxide does not say when a packet has
//! been written, only that its queue (at most [`SOCKET_BUFFER`] packets) is
//! full when an emit fails. So the task keeps the sizes of the last
//! `SOCKET_BUFFER - 1` packets it handed over (a successful emit proves the
//! queue held at most that many older ones): their sum is an upper bound of
//! what socket.io may still hold for this client, and it is reserved out of
//! the inbox's budget (at most half of it, so the inbox always keeps room
//! for new runs). Past the budget, the inbox drops its oldest runs and the
//! listener is counted as lagging (the socket.io protocol has no way to
//! tell the client). A client that does not read at all fills socket.io's
//! queue; engine.io's next heartbeat then cannot be queued and the
//! connection is closed, which frees everything.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use herald::InboxItem;
use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};
use tracing::{debug, warn};

use super::conn::{Conn, Out};

/// socketioxide's queue per connection, in packets.
pub(crate) const SOCKET_BUFFER: usize = 32;

/// Runs taken from the inbox per round.
const BATCH: usize = 64;

/// How long to wait before trying again when socket.io's queue is full (its
/// writer is waiting on the client's socket).
const FULL_RETRY: Duration = Duration::from_millis(5);

#[derive(Serialize)]
struct SubRes<'a> {
    id: &'a str,
    data: &'a RawValue,
}

/// The sizes of the packets socket.io may still hold.
#[derive(Debug, Default)]
pub(crate) struct Window {
    sizes: VecDeque<usize>,
    sum: usize,
}

impl Window {
    /// A packet of `size` bytes was queued: at most `SOCKET_BUFFER - 1`
    /// older ones can still be there.
    pub(crate) fn sent(&mut self, size: usize) {
        while self.sizes.len() >= SOCKET_BUFFER - 1 {
            self.sum -= self.sizes.pop_front().unwrap_or(0);
        }
        self.sizes.push_back(size);
        self.sum += size;
    }

    /// Bytes socket.io may still hold.
    pub(crate) fn bytes(&self) -> usize {
        self.sum
    }
}

/// Sends `conn`'s replies and runs until the connection closes.
pub(crate) async fn run(conn: Arc<Conn>, socket: SocketRef) {
    let budget = conn.state.limits.connection_buffer;
    let mut window = Window::default();
    // Both grow to what a round needs (at most `BATCH` entries): an idle
    // connection holds no batch-sized buffers (they were 4.5 KB of its
    // ~33 KB).
    let mut items = Vec::new();
    let mut out = Vec::new();
    let mut accounted = 0i64;
    'conn: loop {
        // Wait for runs in the inbox, or for replies to send.
        let wake = conn.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        conn.plan(&mut Vec::new(), &mut out);
        if out.is_empty() {
            tokio::select! {
                n = conn.inbox.recv_many(&mut items, BATCH) => if n == 0 { break },
                () = &mut wake => continue,
            }
        } else {
            while items.len() < BATCH {
                match conn.inbox.try_recv() {
                    Some(item) => items.push(item),
                    None => break,
                }
            }
        }
        let mut runs = Vec::with_capacity(items.len());
        let mut lagged = 0;
        for item in items.drain(..) {
            match item {
                InboxItem::Message {
                    subscription,
                    message,
                } => runs.push((subscription, message)),
                InboxItem::Lagged { missed, .. } => lagged += missed,
                InboxItem::Ended { subscription } => conn.ended(subscription),
            }
        }
        if lagged > 0 {
            conn.state.metrics.count_lagged(lagged);
            debug!(app = %conn.app, sid = %socket.id, missed = lagged, "real-time connection lagged");
        }
        // Replies queued meanwhile go before these runs.
        conn.plan(&mut runs, &mut out);
        for o in out.drain(..) {
            let sent = match &o {
                Out::Reply(event, payload) => emit(&socket, &conn, event, payload).await,
                Out::Run(id, message) => {
                    let packet = SubRes {
                        id,
                        data: message.frame_raw(),
                    };
                    let r = emit(&socket, &conn, "SUB_RES", &packet).await;
                    if r.is_ok() {
                        window.sent(message.frame().len() + id.len() + 32);
                    }
                    r
                }
            };
            if sent.is_err() {
                conn.close();
                break 'conn;
            }
        }
        conn.inbox.set_reserved(window.bytes().min(budget / 2));
        let held = conn.inbox.bytes() + window.bytes() + conn.reply_bytes();
        let now = i64::try_from(held).unwrap_or(i64::MAX);
        conn.state
            .metrics
            .realtime_buffered_bytes
            .fetch_add(now - accounted, Ordering::Relaxed);
        accounted = now;
    }
    conn.state
        .metrics
        .realtime_buffered_bytes
        .fetch_sub(accounted, Ordering::Relaxed);
}

/// Emits one packet, waiting while socket.io's queue is full. `Err` when
/// the socket is gone.
async fn emit<T: Serialize + ?Sized>(
    socket: &SocketRef,
    conn: &Conn,
    event: &str,
    payload: &T,
) -> Result<(), ()> {
    loop {
        match socket.emit(event, payload) {
            Ok(()) => return Ok(()),
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                if conn.is_closed() {
                    return Err(());
                }
                // Socket back-pressure, not a product timeout: real time.
                tokio::time::sleep(FULL_RETRY).await;
            }
            Err(SendError::Socket(SocketError::Closed)) => return Err(()),
            Err(e) => {
                warn!(error = %e, "real-time packet not sent");
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_holds_what_socket_io_may_still_hold() {
        let mut w = Window::default();
        for _ in 0..SOCKET_BUFFER - 1 {
            w.sent(100);
        }
        assert_eq!(w.bytes(), 100 * (SOCKET_BUFFER - 1));
        w.sent(1_000);
        assert_eq!(
            w.bytes(),
            100 * (SOCKET_BUFFER - 2) + 1_000,
            "the oldest cannot be queued any more"
        );
        for _ in 0..SOCKET_BUFFER {
            w.sent(1);
        }
        assert_eq!(w.bytes(), SOCKET_BUFFER - 1);
    }
}
