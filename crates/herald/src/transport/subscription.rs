//! `Subscription`: the receiving end of a channel.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use herald_core::selector::Selector;

use crate::DeliveredMessage;

/// A subscription fell behind: this many runs were dropped (the oldest
/// ones) before it read them. The runs after the gap follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("subscription lagged behind and missed {0} messages")]
pub struct Lagged(pub u64);

/// A boxed stream of runs, for transports other than the in-process one.
pub type SubscriptionStream =
    Pin<Box<dyn Stream<Item = Result<DeliveredMessage, Lagged>> + Send + 'static>>;

/// The receiving end of a channel: a [`Stream`] of the runs published to it
/// that match its selector, each exactly once and in publish order, with
/// `Err(Lagged(n))` in place of runs it was too slow to take.
///
/// The stream ends when the channel is deleted (after the buffered runs) or
/// the engine shuts down. Dropping the subscription unsubscribes.
///
/// # Cancellation safety
///
/// [`recv`](Self::recv) is cancellation safe: if it is dropped before it
/// completes, no run is lost.
pub struct Subscription {
    channel: String,
    inner: Inner,
}

enum Inner {
    Local(Arc<Queue>),
    Stream(SubscriptionStream),
}

impl Subscription {
    /// Wraps a stream of runs (for transports that bring their own).
    pub fn from_stream(channel: impl Into<String>, stream: SubscriptionStream) -> Self {
        Self {
            channel: channel.into(),
            inner: Inner::Stream(stream),
        }
    }

    pub(crate) fn local(channel: String, queue: Arc<Queue>) -> Self {
        Self {
            channel,
            inner: Inner::Local(queue),
        }
    }

    /// The channel subscribed to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The next run; `None` once the subscription has ended.
    pub async fn recv(&mut self) -> Option<Result<DeliveredMessage, Lagged>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next run if one is buffered, without waiting. `None` means
    /// nothing is buffered right now (or the subscription ended).
    pub fn try_recv(&mut self) -> Option<Result<DeliveredMessage, Lagged>> {
        match &self.inner {
            Inner::Local(q) => q.try_pop(),
            Inner::Stream(_) => {
                let mut cx = Context::from_waker(Waker::noop());
                match self.poll_recv(&mut cx) {
                    Poll::Ready(item) => item,
                    Poll::Pending => None,
                }
            }
        }
    }

    /// Polls for the next run.
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<DeliveredMessage, Lagged>>> {
        match &mut self.inner {
            Inner::Local(q) => q.poll_pop(cx),
            Inner::Stream(s) => s.as_mut().poll_next(cx),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<DeliveredMessage, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Subscription");
        d.field("channel", &self.channel);
        if let Inner::Local(q) = &self.inner {
            d.field("selector", &q.selector.as_ref().map(Selector::source));
            d.field("buffered", &q.lock().buf.len());
        }
        d.finish_non_exhaustive()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Inner::Local(q) = &self.inner {
            q.close();
        }
    }
}

/// One subscription's bounded buffer, shared with the in-process transport.
pub(crate) struct Queue {
    pub(crate) selector: Option<Selector>,
    capacity: usize,
    state: Mutex<QueueState>,
    /// The channel's count of closed queues, bumped once when this closes.
    dead: Arc<AtomicUsize>,
}

struct QueueState {
    buf: VecDeque<DeliveredMessage>,
    missed: u64,
    waker: Option<Waker>,
    closed: bool,
}

impl Queue {
    pub(crate) fn new(selector: Option<Selector>, capacity: usize, dead: Arc<AtomicUsize>) -> Self {
        Self {
            selector,
            capacity: capacity.max(1),
            state: Mutex::new(QueueState {
                buf: VecDeque::new(),
                missed: 0,
                waker: None,
                closed: false,
            }),
            dead,
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this run is for this subscription.
    pub(crate) fn wants(&self, msg: &DeliveredMessage) -> bool {
        self.selector
            .as_ref()
            .is_none_or(|s| s.matches(msg.headers()))
    }

    /// Appends a run, dropping the oldest if full. Returns false if the
    /// subscription is closed (nothing was delivered).
    pub(crate) fn push(&self, msg: DeliveredMessage) -> bool {
        let waker = {
            let mut st = self.lock();
            if st.closed {
                return false;
            }
            if st.buf.len() >= self.capacity {
                st.buf.pop_front();
                st.missed += 1;
            }
            st.buf.push_back(msg);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Ends the subscription: buffered runs can still be read, then the
    /// stream ends.
    pub(crate) fn close(&self) {
        let waker = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            st.waker.take()
        };
        self.dead.fetch_add(1, Ordering::Relaxed);
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn take(st: &mut QueueState) -> Option<Result<DeliveredMessage, Lagged>> {
        if st.missed > 0 {
            let n = std::mem::take(&mut st.missed);
            return Some(Err(Lagged(n)));
        }
        st.buf.pop_front().map(Ok)
    }

    fn try_pop(&self) -> Option<Result<DeliveredMessage, Lagged>> {
        Self::take(&mut self.lock())
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Result<DeliveredMessage, Lagged>>> {
        let mut st = self.lock();
        if let Some(item) = Self::take(&mut st) {
            return Poll::Ready(Some(item));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        match &mut st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
