//! `Conn`: one real-time connection's state: its key, its listeners (all
//! feeding one inbox with one byte budget), and the replies waiting to be
//! sent.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use herald::{DeliveredMessage, Inbox, InboxLimits, Membership, SubscriptionId};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::Notify;

use crate::State;
use crate::auth::Key;

/// Replies a connection may have waiting: past this, a client that sends
/// requests faster than it reads their answers is no longer read (the
/// direct path) or is closed (socketioxide's, which cannot stop reading).
pub(crate) const MAX_REPLIES: usize = 4096;

/// One socket.io connection.
pub(crate) struct Conn {
    pub(crate) state: Arc<State>,
    pub(crate) app: Arc<str>,
    pub(crate) key: Arc<Key>,
    /// Every listener's runs, bounded by `connection_buffer` bytes (less
    /// what the socket layer may still hold, see `drain`).
    pub(crate) inbox: Inbox,
    inner: Mutex<Inner>,
    /// Replies were queued.
    pub(crate) wake: Notify,
    closed: AtomicBool,
}

#[derive(Default)]
struct Inner {
    by_request: HashMap<String, Membership>,
    by_sub: HashMap<SubscriptionId, Arc<str>>,
    /// Replies (`SUB_READY`, errors, `MET_RES`) in the order they were
    /// decided, sent before any run that follows them.
    replies: VecDeque<(&'static str, Box<RawValue>)>,
    /// The replies' payload bytes.
    reply_bytes: usize,
}

impl Inner {
    /// Queues a reply, its payload serialized now (its size is then
    /// counted in the connection's buffered bytes).
    fn push_reply(&mut self, event: &'static str, payload: &Value) {
        let raw = serde_json::value::to_raw_value(payload)
            .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"));
        self.reply_bytes += raw.get().len() + event.len();
        self.replies.push_back((event, raw));
    }
}

/// What the drain task sends next, decided under the connection's lock so
/// that a listener's `SUB_READY` always goes out before its first run.
pub(crate) enum Out {
    Reply(&'static str, Box<RawValue>),
    Run(Arc<str>, DeliveredMessage),
}

impl Conn {
    pub(crate) fn new(state: Arc<State>, app: Arc<str>, key: Arc<Key>) -> Self {
        let inbox = Inbox::new(InboxLimits {
            max_messages: usize::MAX,
            max_bytes: state.limits.connection_buffer,
            max_subscriptions: state.limits.max_subscriptions_per_connection,
        });
        Self {
            state,
            app,
            key,
            inbox,
            inner: Mutex::default(),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether more than [`MAX_REPLIES`] replies are waiting: the client
    /// asks faster than it reads (each refused `SUB_ON` is an answer the
    /// server must hold).
    pub(crate) fn flooded(&self) -> bool {
        self.lock().replies.len() > MAX_REPLIES
    }

    /// Bytes of the replies waiting to be sent.
    pub(crate) fn reply_bytes(&self) -> usize {
        self.lock().reply_bytes
    }

    /// Queues a reply.
    pub(crate) fn reply(&self, event: &'static str, payload: Value) {
        self.lock().push_reply(event, &payload);
        self.wake.notify_one();
    }

    /// Makes a listener for request `id` with `subscribe` (which subscribes
    /// this connection's inbox) and queues its `SUB_READY`, atomically with
    /// respect to the drain task; a listener already under `id` is replaced.
    /// Nothing is kept if the connection closed meanwhile.
    pub(crate) fn listen<E>(
        &self,
        id: &str,
        subscribe: impl FnOnce(&Inbox) -> Result<Membership, E>,
    ) -> Result<(), E> {
        let mut inner = self.lock();
        if let Some(old) = inner.by_request.remove(id) {
            inner.by_sub.remove(&old.id());
        }
        let membership = subscribe(&self.inbox)?;
        if self.is_closed() {
            // Disconnected while subscribing: the membership drops here.
            return Ok(());
        }
        inner.by_sub.insert(membership.id(), id.into());
        inner.by_request.insert(id.to_owned(), membership);
        inner.push_reply("SUB_READY", &serde_json::json!({ "id": id }));
        drop(inner);
        self.state
            .metrics
            .realtime_subscriptions
            .fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        Ok(())
    }

    /// Stops listener `id` (`SUB_OFF`): unsubscribed at once, its queued
    /// runs freed.
    pub(crate) fn unlisten(&self, id: &str) {
        let removed = {
            let mut inner = self.lock();
            let m = inner.by_request.remove(id);
            if let Some(m) = &m {
                inner.by_sub.remove(&m.id());
            }
            m
        };
        if removed.is_some() {
            self.state
                .metrics
                .realtime_subscriptions
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A listener's subscription ended (its channel was deleted).
    pub(crate) fn ended(&self, sub: SubscriptionId) {
        let mut inner = self.lock();
        if let Some(id) = inner.by_sub.remove(&sub) {
            inner.by_request.remove(&*id);
            drop(inner);
            self.state
                .metrics
                .realtime_subscriptions
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The connection is gone: every listener is unsubscribed at once and
    /// the inbox closed (the drain task then ends).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let listeners = {
            let mut inner = self.lock();
            inner.by_sub.clear();
            inner.replies.clear();
            inner.reply_bytes = 0;
            std::mem::take(&mut inner.by_request)
        };
        let n = listeners.len() as i64;
        drop(listeners);
        self.state
            .metrics
            .realtime_subscriptions
            .fetch_sub(n, Ordering::Relaxed);
        self.inbox.close();
        self.wake.notify_one();
    }

    /// Turns what the inbox yielded into what to send: the queued replies
    /// first, then each run addressed to its listener's request id (runs
    /// of listeners stopped meanwhile are dropped).
    pub(crate) fn plan(
        &self,
        runs: &mut Vec<(SubscriptionId, DeliveredMessage)>,
        out: &mut Vec<Out>,
    ) {
        let mut inner = self.lock();
        // Replies are rare (one `SUB_READY` per listener): their queue's
        // buffer goes with them instead of staying with an idle connection.
        if !inner.replies.is_empty() {
            let replies = std::mem::take(&mut inner.replies);
            inner.reply_bytes = 0;
            out.extend(replies.into_iter().map(|(e, v)| Out::Reply(e, v)));
        }
        for (sub, message) in runs.drain(..) {
            if let Some(id) = inner.by_sub.get(&sub) {
                out.push(Out::Run(id.clone(), message));
            }
        }
    }
}
