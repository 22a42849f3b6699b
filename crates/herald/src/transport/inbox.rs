//! `Inbox`: a bounded queue that one consumer drains, fed by any number of
//! subscriptions, with a budget in messages and in bytes.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::DeliveredMessage;

/// Names one subscription within its [`Inbox`] (unique per inbox).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(u64);

impl SubscriptionId {
    /// Its number. An inbox numbers its subscriptions 0, 1, 2, … in the
    /// order they [joined](Inbox::join), so a consumer may index a vector
    /// by it.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// What an [`Inbox`] may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboxLimits {
    /// Messages held at most; past it the oldest are dropped (`Lagged`).
    /// A run delivered to k subscriptions of the inbox counts k times.
    pub max_messages: usize,
    /// Bytes held at most (each message counted by its
    /// [`weight`](DeliveredMessage::weight), once per subscription it was
    /// delivered to), less what the consumer
    /// [reserves](Inbox::set_reserved); past it the oldest are dropped.
    pub max_bytes: usize,
    /// Subscriptions feeding the inbox at most; more are refused
    /// ([`Error::TooManySubscriptions`](crate::Error::TooManySubscriptions)).
    pub max_subscriptions: usize,
}

impl InboxLimits {
    /// At most `n` messages, with no bound on their bytes (for tests and
    /// benchmarks that count messages; servers want a byte bound).
    pub fn messages(n: usize) -> Self {
        Self {
            max_messages: n,
            max_bytes: usize::MAX,
            ..Self::default()
        }
    }
}

impl Default for InboxLimits {
    /// 1024 messages, 8 MiB, 1000 subscriptions.
    fn default() -> Self {
        Self {
            max_messages: 1024,
            max_bytes: 8 << 20,
            max_subscriptions: 1000,
        }
    }
}

/// What an [`Inbox`] yields, one delivery at a time
/// ([`recv`](Inbox::recv), [`recv_many`](Inbox::recv_many)).
#[derive(Clone, Debug)]
pub enum InboxItem {
    /// A run for this subscription.
    Message {
        /// The subscription it matched.
        subscription: SubscriptionId,
        /// The run.
        message: DeliveredMessage,
    },
    /// This subscription lost its `missed` oldest runs (the inbox was over
    /// its budget); the newer ones follow.
    Lagged {
        /// The subscription.
        subscription: SubscriptionId,
        /// How many runs were dropped.
        missed: u64,
    },
    /// This subscription ended (its channel was deleted, or the engine shut
    /// down) after the runs before this item.
    Ended {
        /// The subscription.
        subscription: SubscriptionId,
    },
}

/// What an [`Inbox`] yields a batch at a time
/// ([`recv_batch`](Inbox::recv_batch)): as [`InboxItem`], but one run comes
/// once, with every subscription of the inbox it was delivered to (in
/// delivery order), instead of once per subscription.
#[derive(Clone, Debug)]
pub enum InboxBatchItem {
    /// A run for these subscriptions (at least one), in the order it was
    /// delivered to them.
    Message {
        /// The subscriptions it matched.
        subscriptions: Vec<SubscriptionId>,
        /// The run.
        message: DeliveredMessage,
    },
    /// As [`InboxItem::Lagged`].
    Lagged {
        /// The subscription.
        subscription: SubscriptionId,
        /// How many runs were dropped.
        missed: u64,
    },
    /// As [`InboxItem::Ended`].
    Ended {
        /// The subscription.
        subscription: SubscriptionId,
    },
}

impl InboxBatchItem {
    /// Deliveries this item stands for: one per subscription of a
    /// message, one for a lag notice or an end.
    pub fn deliveries(&self) -> usize {
        match self {
            Self::Message { subscriptions, .. } => subscriptions.len(),
            Self::Lagged { .. } | Self::Ended { .. } => 1,
        }
    }
}

/// A bounded queue of delivered runs that one consumer drains: the
/// receiving end of one or many subscriptions.
///
/// A real-time connection keeps one inbox for all its listeners (one task
/// drains it, one byte budget covers them all); [`Subscription`](crate::Subscription)
/// is an inbox with a single subscription. Publishing never waits for an
/// inbox: when it is over its budget (in messages or in bytes) the oldest
/// runs are dropped and their subscriptions get [`InboxItem::Lagged`]
/// before their newer runs, as with tokio's `broadcast`.
///
/// # Receiving at scale: subscription groups
///
/// A task per subscription costs a task wake-up per delivery; one inbox
/// fed by many subscriptions (a *subscription group*, joined with
/// [`Engine::subscribe_to`](crate::Engine::subscribe_to)) costs one
/// wake-up per batch. [`recv_batch`](Self::recv_batch) then takes a run
/// once with all the group's subscriptions it reached, so the consumer
/// touches the shared run once, not once per subscription. This is the
/// way to receive one channel's runs for many subscribers (100k
/// subscriptions over a few inboxes, each drained by one task: over 10M
/// deliveries/s end to end on two cores, see `docs/benchmarks.md`).
///
/// ```
/// use herald::{DeliveryOptions, Engine, Inbox, InboxBatchItem, InboxLimits, PublishOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald::Error> {
/// let engine = Engine::builder().build();
/// let limits = InboxLimits { max_subscriptions: 10_000, ..InboxLimits::messages(100_000) };
/// let group = Inbox::new(limits);
/// let members: Vec<_> = (0..1000)
///     .map(|_| engine.subscribe_to(&group, "scores", None))
///     .collect::<Result<_, _>>()?;
/// engine.publish("scores", "1-0".into(), PublishOptions::default(), DeliveryOptions::default()).await?;
/// let mut batch = Vec::new();
/// assert_eq!(group.recv_batch(&mut batch, usize::MAX).await, 1000);
/// match &batch[..] {
///     [InboxBatchItem::Message { subscriptions, message }] => {
///         assert_eq!(subscriptions.len(), 1000);
///         assert_eq!(subscriptions[0], members[0].id());
///         assert_eq!(message.message().get(), r#""1-0""#);
///     }
///     other => panic!("{other:?}"),
/// }
/// # engine.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// # Examples
///
/// ```
/// use herald::{DeliveryOptions, Engine, Inbox, InboxItem, InboxLimits, PublishOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald::Error> {
/// let engine = Engine::builder().build();
/// let inbox = Inbox::new(InboxLimits::default());
/// let news = engine.subscribe_to(&inbox, "news", None)?;
/// let _sport = engine.subscribe_to(&inbox, "sport", None)?;
/// engine.publish("news", "hello".into(), PublishOptions::default(), DeliveryOptions::default()).await?;
/// match inbox.recv().await {
///     Some(InboxItem::Message { subscription, message }) => {
///         assert_eq!(subscription, news.id());
///         assert_eq!(message.channel(), "news");
///     }
///     other => panic!("{other:?}"),
/// }
/// drop(news); // unsubscribes at once
/// # engine.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// # Implementation
///
/// One mutex over a `VecDeque` of runs, each with the inbox's
/// subscriptions it still has to reach, in order: delivering a run to
/// the next subscription of the same inbox appends an 8-byte id to the
/// run at the back instead of queueing another reference to it, so a
/// group's share of a fan-out is one queue entry and no reference-count
/// traffic. [`FanOut`] delivers one run to many subscribers taking each
/// inbox's lock once per stretch of consecutive subscribers of that inbox
/// (and waking its consumer once).
///
/// # Cancellation safety
///
/// [`recv`](Self::recv), [`recv_many`](Self::recv_many) and
/// [`recv_batch`](Self::recv_batch) are cancellation safe: if dropped
/// before completing, nothing is lost.
#[derive(Clone)]
pub struct Inbox {
    shared: Arc<Shared>,
}

struct Shared {
    limits: InboxLimits,
    state: Mutex<State>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    /// Messages in `queue` (one per subscription still to reach; end
    /// markers not counted).
    messages: usize,
    bytes: usize,
    reserved: usize,
    /// Lag notices not yet read.
    lagged: Lags,
    subscriptions: usize,
    waker: Option<Waker>,
    closed: bool,
}

enum Queued {
    /// One run for one or more subscriptions (front first).
    Message {
        message: DeliveredMessage,
        weight: usize,
        subs: Subs,
    },
    Ended(SubscriptionId),
}

/// The subscriptions a queued run has still to reach: one without an
/// allocation (the common case of a connection's inbox), or many.
enum Subs {
    One(SubscriptionId),
    /// Never empty.
    Many(VecDeque<SubscriptionId>),
}

impl Subs {
    fn front(&self) -> SubscriptionId {
        match self {
            Self::One(s) => *s,
            Self::Many(v) => v[0],
        }
    }

    fn push(&mut self, sub: SubscriptionId) {
        match self {
            Self::One(first) => *self = Self::Many(VecDeque::from([*first, sub])),
            Self::Many(v) => v.push_back(sub),
        }
    }

    /// Removes the first; whether more are left.
    fn pop_front(&mut self) -> bool {
        match self {
            Self::One(_) => false,
            Self::Many(v) => {
                v.pop_front();
                !v.is_empty()
            }
        }
    }

    /// Removes every `sub`: how many, and whether any subscription is
    /// left.
    fn remove(&mut self, sub: SubscriptionId) -> (usize, bool) {
        match self {
            Self::One(s) => (usize::from(*s == sub), *s != sub),
            Self::Many(v) => {
                let before = v.len();
                v.retain(|s| *s != sub);
                (before - v.len(), !v.is_empty())
            }
        }
    }

    /// The first `n` (at most all), leaving the rest; whether any are left.
    fn split_front(&mut self, n: usize) -> (Vec<SubscriptionId>, bool) {
        match self {
            Self::One(s) => (vec![*s], false),
            Self::Many(v) if n >= v.len() => (Vec::from(std::mem::take(v)), false),
            Self::Many(v) => (v.drain(..n).collect(), true),
        }
    }
}

/// Lag notices not yet read, one per subscription, in the order the lags
/// began: O(1) to add to, so a group whose thousands of subscriptions all
/// fall behind at once costs no more per lost run than one subscription.
#[derive(Default)]
struct Lags {
    order: VecDeque<SubscriptionId>,
    missed: HashMap<SubscriptionId, u64>,
}

impl Lags {
    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn add(&mut self, sub: SubscriptionId, missed: u64) {
        match self.missed.entry(sub) {
            Entry::Occupied(mut e) => *e.get_mut() = e.get().saturating_add(missed),
            Entry::Vacant(e) => {
                e.insert(missed);
                self.order.push_back(sub);
            }
        }
    }

    /// The oldest notice.
    fn pop(&mut self) -> Option<(SubscriptionId, u64)> {
        let sub = self.order.pop_front()?;
        Some((sub, self.missed.remove(&sub).unwrap_or(0)))
    }

    fn remove(&mut self, sub: SubscriptionId) {
        if self.missed.remove(&sub).is_some() {
            self.order.retain(|s| *s != sub);
        }
    }
}

impl Inbox {
    /// An empty inbox with these limits (each at least 1).
    pub fn new(limits: InboxLimits) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits: InboxLimits {
                    max_messages: limits.max_messages.max(1),
                    max_bytes: limits.max_bytes.max(1),
                    max_subscriptions: limits.max_subscriptions.max(1),
                },
                state: Mutex::new(State::default()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// Its limits.
    pub fn limits(&self) -> InboxLimits {
        self.shared.limits
    }

    /// The next item, waiting for one; `None` once the inbox is closed and
    /// empty.
    pub async fn recv(&self) -> Option<InboxItem> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next item if there is one, without waiting.
    pub fn try_recv(&self) -> Option<InboxItem> {
        self.shared.lock().take()
    }

    /// Polls for the next item.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<InboxItem>> {
        let mut st = self.shared.lock();
        if let Some(item) = st.take() {
            return Poll::Ready(Some(item));
        }
        if st.closed {
            return Poll::Ready(None);
        }
        st.register(cx);
        Poll::Pending
    }

    /// Waits for at least one item, then moves up to `max` into `out`;
    /// returns how many (0 once the inbox is closed and empty). One lock
    /// and one wake-up for a whole batch.
    pub async fn recv_many(&self, out: &mut Vec<InboxItem>, max: usize) -> usize {
        poll_fn(|cx| self.poll_recv_bytes(cx, out, usize::MAX, max)).await
    }

    /// Waits for at least one delivery, then moves up to `max` deliveries
    /// into `out`, each run once with the subscriptions it reached
    /// ([`InboxBatchItem`]); returns how many deliveries (the sum of the
    /// items' [`deliveries`](InboxBatchItem::deliveries): 0 once the inbox
    /// is closed and empty). One lock and one wake-up for a whole batch,
    /// and no per-delivery copy of the run: the way to drain a
    /// subscription group.
    ///
    /// The items come in the order [`recv`](Self::recv) would yield their
    /// deliveries: per subscription, in delivery order, a lag notice
    /// before the newer runs.
    pub async fn recv_batch(&self, out: &mut Vec<InboxBatchItem>, max: usize) -> usize {
        poll_fn(|cx| self.poll_recv_batch(cx, out, max)).await
    }

    /// Polls for a batch, as [`recv_batch`](Self::recv_batch).
    pub fn poll_recv_batch(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<InboxBatchItem>,
        max: usize,
    ) -> Poll<usize> {
        let mut st = self.shared.lock();
        let n = st.take_batch(out, max);
        if n > 0 || st.closed || max == 0 {
            return Poll::Ready(n);
        }
        st.register(cx);
        Poll::Pending
    }

    /// Moves up to `max` deliveries into `out` without waiting, as
    /// [`recv_batch`](Self::recv_batch); returns how many (0: nothing
    /// waiting).
    pub fn try_recv_batch(&self, out: &mut Vec<InboxBatchItem>, max: usize) -> usize {
        self.shared.lock().take_batch(out, max)
    }

    /// Takes items without waiting while their total weight stays within
    /// `max_bytes` (at least one item if any is there): a poll's answer.
    pub fn drain_bytes(&self, max_bytes: usize) -> Vec<InboxItem> {
        let mut out = Vec::new();
        self.shared
            .lock()
            .take_bytes(&mut out, max_bytes, usize::MAX);
        out
    }

    /// Polls for items, moving them into `out` while their total weight
    /// stays within `max_bytes` (at least one run if any is there, and at
    /// most `max_items` items); returns how many (`Ready(0)` once the
    /// inbox is closed and empty). For a task that serves many inboxes,
    /// each polled with a waker of its own, and writes what it takes into
    /// a buffer of bounded size.
    ///
    /// Like every `poll_*` here, only `Pending` registers `cx`'s waker: a
    /// consumer that stops after a `Ready` answer (say, a batch holding
    /// nothing it sends: an end marker, a lag notice) must poll again
    /// until `Pending`, or no later item wakes it.
    pub fn poll_recv_bytes(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<InboxItem>,
        max_bytes: usize,
        max_items: usize,
    ) -> Poll<usize> {
        let mut st = self.shared.lock();
        let before = out.len();
        st.take_bytes(out, max_bytes, max_items);
        let n = out.len() - before;
        if n > 0 || st.closed || max_items == 0 {
            return Poll::Ready(n);
        }
        st.register(cx);
        Poll::Pending
    }

    /// Counts `bytes` held for this inbox's consumer elsewhere (runs handed
    /// to a socket layer that may still buffer them) against its byte
    /// budget, replacing the previous reservation.
    pub fn set_reserved(&self, bytes: usize) {
        self.shared.lock().reserved = bytes;
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.shared.lock().messages
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes waiting (the messages' weights).
    pub fn bytes(&self) -> usize {
        self.shared.lock().bytes
    }

    /// Live subscriptions feeding this inbox.
    pub fn subscriptions(&self) -> usize {
        self.shared.lock().subscriptions
    }

    /// Closes the inbox: nothing more is accepted, what is queued can still
    /// be read, then [`recv`](Self::recv) returns `None`.
    pub fn close(&self) {
        let waker = {
            let mut st = self.shared.lock();
            st.closed = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// A slot for one more subscription, if the inbox takes one more (it is
    /// open and below its `max_subscriptions`): the [`Subscriber`] a
    /// transport delivers through. [`Engine::subscribe_to`](crate::Engine::subscribe_to)
    /// calls this; transport tests may too.
    pub fn join(&self) -> Option<Subscriber> {
        let mut st = self.shared.lock();
        if st.closed || st.subscriptions >= self.shared.limits.max_subscriptions {
            return None;
        }
        st.subscriptions += 1;
        // Under the lock, so ids follow the order of joining.
        let id = SubscriptionId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        drop(st);
        Some(Subscriber {
            id,
            inbox: self.shared.clone(),
            left: false,
        })
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("Inbox")
            .field("limits", &self.shared.limits)
            .field("messages", &st.messages)
            .field("bytes", &st.bytes)
            .field("subscriptions", &st.subscriptions)
            .field("closed", &st.closed)
            .finish()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is complete before the lock is released.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn register(&mut self, cx: &Context<'_>) {
        match &mut self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
    }

    /// Moves at most `max_items` items into `out` while their total
    /// weight stays within `max_bytes` (at least one run if any is there).
    fn take_bytes(&mut self, out: &mut Vec<InboxItem>, max_bytes: usize, max_items: usize) {
        let mut used = 0usize;
        let mut took_message = false;
        let mut n = 0;
        // Lag notices and end markers weigh nothing.
        while n < max_items {
            let Some(weight) = self.next_weight() else {
                break;
            };
            if weight > 0 && took_message && used.saturating_add(weight) > max_bytes {
                break;
            }
            used = used.saturating_add(weight);
            took_message |= weight > 0;
            match self.take() {
                Some(item) => out.push(item),
                None => break,
            }
            n += 1;
        }
    }

    fn take(&mut self) -> Option<InboxItem> {
        if let Some((subscription, missed)) = self.lagged.pop() {
            return Some(InboxItem::Lagged {
                subscription,
                missed,
            });
        }
        let front = self.queue.front_mut()?;
        let item = match front {
            Queued::Message {
                message,
                weight,
                subs,
            } => {
                let (subscription, weight) = (subs.front(), *weight);
                self.messages -= 1;
                self.bytes -= weight;
                if subs.pop_front() {
                    return Some(InboxItem::Message {
                        subscription,
                        message: message.clone(),
                    });
                }
                let Some(Queued::Message { message, .. }) = self.queue.pop_front() else {
                    unreachable!("the front is this message");
                };
                InboxItem::Message {
                    subscription,
                    message,
                }
            }
            Queued::Ended(sub) => {
                let subscription = *sub;
                self.queue.pop_front();
                InboxItem::Ended { subscription }
            }
        };
        Some(item)
    }

    /// Moves up to `max` deliveries into `out`; how many.
    fn take_batch(&mut self, out: &mut Vec<InboxBatchItem>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            if let Some((subscription, missed)) = self.lagged.pop() {
                out.push(InboxBatchItem::Lagged {
                    subscription,
                    missed,
                });
                n += 1;
                continue;
            }
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            match front {
                Queued::Message {
                    message,
                    weight,
                    subs,
                } => {
                    let (subscriptions, more) = subs.split_front(max - n);
                    let k = subscriptions.len();
                    self.messages -= k;
                    self.bytes -= *weight * k;
                    n += k;
                    let message = if more {
                        message.clone()
                    } else {
                        let Some(Queued::Message { message, .. }) = self.queue.pop_front() else {
                            unreachable!("the front is this message");
                        };
                        message
                    };
                    out.push(InboxBatchItem::Message {
                        subscriptions,
                        message,
                    });
                }
                Queued::Ended(sub) => {
                    let subscription = *sub;
                    self.queue.pop_front();
                    out.push(InboxBatchItem::Ended { subscription });
                    n += 1;
                }
            }
        }
        n
    }

    /// The weight of the next item (0 for a lag notice or an end marker),
    /// or `None` if there is none.
    fn next_weight(&self) -> Option<usize> {
        if !self.lagged.is_empty() {
            return Some(0);
        }
        match self.queue.front()? {
            Queued::Message { weight, .. } => Some((*weight).max(1)),
            Queued::Ended(_) => Some(0),
        }
    }

    fn lag(&mut self, sub: SubscriptionId, missed: u64) {
        self.lagged.add(sub, missed);
    }

    /// Drops the oldest message (for one subscription); false if there is
    /// none.
    fn drop_oldest(&mut self) -> bool {
        let Some(at) = self
            .queue
            .iter()
            .position(|q| matches!(q, Queued::Message { .. }))
        else {
            return false;
        };
        let Some(Queued::Message { weight, subs, .. }) = self.queue.get_mut(at) else {
            unreachable!("found above");
        };
        let (sub, weight) = (subs.front(), *weight);
        if !subs.pop_front() {
            self.queue.remove(at);
        }
        self.messages -= 1;
        self.bytes -= weight;
        self.lag(sub, 1);
        true
    }

    /// Queues `message` for `sub`, dropping the oldest over the budget
    /// (the caller checked that the inbox is open).
    fn push(
        &mut self,
        limits: &InboxLimits,
        sub: SubscriptionId,
        message: &DeliveredMessage,
        weight: usize,
    ) {
        let budget = limits.max_bytes.saturating_sub(self.reserved);
        while self.messages >= limits.max_messages || self.bytes.saturating_add(weight) > budget {
            if !self.drop_oldest() {
                break;
            }
        }
        if weight > budget {
            // Larger than the whole budget: never held.
            self.lag(sub, 1);
            return;
        }
        match self.queue.back_mut() {
            Some(Queued::Message {
                message: last,
                subs,
                ..
            }) if last.same_run(message) => subs.push(sub),
            _ => self.queue.push_back(Queued::Message {
                message: message.clone(),
                weight,
                subs: Subs::One(sub),
            }),
        }
        self.messages += 1;
        self.bytes += weight;
    }
}

/// The transport's end of one subscription: it delivers runs into its
/// [`Inbox`]. A transport keeps it while the subscription lives; dropping
/// it frees the inbox's subscription slot.
pub struct Subscriber {
    id: SubscriptionId,
    inbox: Arc<Shared>,
    left: bool,
}

impl Subscriber {
    /// The subscription's id within its inbox.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// Whether `self` and `other` deliver into the same inbox.
    pub fn same_inbox(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inbox, &other.inbox)
    }

    /// Queues a run, dropping the oldest over the budget. False if the
    /// inbox is closed (nothing delivered). To hand one run to many
    /// subscribers, [`FanOut`] takes each inbox's lock once per stretch of
    /// subscribers.
    pub fn deliver(&self, message: &DeliveredMessage) -> bool {
        let weight = message.weight();
        let waker = {
            let mut st = self.inbox.lock();
            if st.closed {
                return false;
            }
            st.push(&self.inbox.limits, self.id, message, weight);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Tells the subscription it may have missed `missed` runs that never
    /// reached this node (a cluster bus lost them): it gets
    /// [`InboxItem::Lagged`] before its next run. False if the inbox is
    /// closed.
    pub fn lagged(&self, missed: u64) -> bool {
        let waker = {
            let mut st = self.inbox.lock();
            if st.closed {
                return false;
            }
            st.lag(self.id, missed);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// The subscription ended (channel deleted, engine shut down): what is
    /// queued stays readable, then the consumer sees [`InboxItem::Ended`].
    pub fn end(mut self) {
        let waker = {
            let mut st = self.inbox.lock();
            st.queue.push_back(Queued::Ended(self.id));
            st.subscriptions -= 1;
            st.waker.take()
        };
        self.left = true;
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The consumer unsubscribed: its queued runs are dropped at once.
    pub fn unsubscribe(mut self) {
        let mut st = self.inbox.lock();
        let id = self.id;
        let mut freed = 0;
        let mut dropped = 0;
        st.queue.retain_mut(|q| match q {
            Queued::Message { weight, subs, .. } => {
                let (n, left) = subs.remove(id);
                freed += *weight * n;
                dropped += n;
                left
            }
            Queued::Ended(sub) => *sub != id,
        });
        st.bytes -= freed;
        st.messages -= dropped;
        st.lagged.remove(id);
        st.subscriptions -= 1;
        self.left = true;
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if !self.left {
            self.inbox.lock().subscriptions -= 1;
        }
    }
}

/// Hands one run to many [`Subscriber`]s: consecutive subscribers of the
/// same inbox share one lock of it and one wake-up of its consumer
/// (a transport's publish loop, for subscription groups).
///
/// Equivalent to calling [`Subscriber::deliver`] for each, in order, except
/// that an inbox's consumer sees a stretch's deliveries at once, when the
/// stretch ends: at a subscriber of another inbox, after
/// [`STRETCH`](Self::STRETCH) deliveries, or when the `FanOut` is dropped.
/// Drop it before anything that could wait for the inbox's consumer.
///
/// # Examples
///
/// ```
/// use herald::{DeliveryOptions, Engine, FanOut, Inbox, InboxBatchItem, InboxLimits, PublishOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald::Error> {
/// # let engine = Engine::builder().build();
/// # let mut sub = engine.subscribe("c", None)?;
/// # engine.publish("c", "1".into(), PublishOptions::default(), DeliveryOptions::default()).await?;
/// # let message = sub.recv().await.unwrap().unwrap();
/// // A transport holding three subscribers of one inbox hands them `message`:
/// let inbox = Inbox::new(InboxLimits::default());
/// let subscribers: Vec<_> = (0..3).map(|_| inbox.join().unwrap()).collect();
/// let mut fan = FanOut::new(&message);
/// for s in &subscribers {
///     assert!(fan.deliver(s));
/// }
/// drop(fan); // unlocks the inbox and wakes its consumer
/// let mut batch = Vec::new();
/// assert_eq!(inbox.try_recv_batch(&mut batch, usize::MAX), 3);
/// assert!(matches!(&batch[..], [InboxBatchItem::Message { subscriptions, .. }] if subscriptions.len() == 3));
/// # engine.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct FanOut<'a> {
    message: &'a DeliveredMessage,
    weight: usize,
    held: Option<Held<'a>>,
}

/// The inbox a [`FanOut`] has locked.
struct Held<'a> {
    inbox: &'a Arc<Shared>,
    state: MutexGuard<'a, State>,
    /// Deliveries in this stretch.
    delivered: usize,
}

impl<'a> FanOut<'a> {
    /// Deliveries into one inbox under one lock at most, so its consumer
    /// (and subscribing) wait for at most that many.
    pub const STRETCH: usize = 1024;

    /// Starts handing `message` out.
    pub fn new(message: &'a DeliveredMessage) -> Self {
        Self {
            weight: message.weight(),
            message,
            held: None,
        }
    }

    /// Delivers the run to `to` (as [`Subscriber::deliver`]); false if its
    /// inbox is closed.
    pub fn deliver(&mut self, to: &'a Subscriber) -> bool {
        let same = self
            .held
            .as_ref()
            .is_some_and(|h| Arc::ptr_eq(h.inbox, &to.inbox) && h.delivered < Self::STRETCH);
        if !same {
            self.release();
            self.held = Some(Held {
                inbox: &to.inbox,
                state: to.inbox.lock(),
                delivered: 0,
            });
        }
        let Some(held) = self.held.as_mut() else {
            unreachable!("held above");
        };
        if held.state.closed {
            return false;
        }
        held.state
            .push(&held.inbox.limits, to.id, self.message, self.weight);
        held.delivered += 1;
        true
    }

    /// Ends the stretch: unlocks its inbox and wakes its consumer.
    fn release(&mut self) {
        if let Some(mut held) = self.held.take() {
            let waker = held.state.waker.take();
            drop(held);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl Drop for FanOut<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

impl fmt::Debug for FanOut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOut")
            .field("message", &self.message.message_id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, DeliveryPlan, Envelope, MessageId, PublishOptions};
    use herald_core::Tick;

    fn run(n: u64, body_len: usize) -> DeliveredMessage {
        DeliveredMessage::new(
            Arc::new(Envelope {
                template: None,
                id: MessageId::from_u128(n.into()),
                channel: "c".into(),
                accepted_at: Tick::from_millis(0),
                publish: PublishOptions::default(),
                plan: Arc::new(DeliveryPlan::default()),
                body: Body::from("x".repeat(body_len)),
            }),
            Tick::from_millis(n),
        )
    }

    fn ids(items: &[InboxItem]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                InboxItem::Message { message, .. } => message.timestamp_millis().to_string(),
                InboxItem::Lagged { missed, .. } => format!("lag{missed}"),
                InboxItem::Ended { .. } => "end".into(),
            })
            .collect()
    }

    fn drain(inbox: &Inbox) -> Vec<InboxItem> {
        std::iter::from_fn(|| inbox.try_recv()).collect()
    }

    #[test]
    fn over_the_message_budget_the_oldest_go() {
        let inbox = Inbox::new(InboxLimits {
            max_messages: 3,
            ..InboxLimits::default()
        });
        let s = inbox.join().unwrap();
        for n in 1..=5 {
            assert!(s.deliver(&run(n, 1)));
        }
        assert_eq!(ids(&drain(&inbox)), ["lag2", "3", "4", "5"]);
    }

    #[test]
    fn over_the_byte_budget_the_oldest_go_and_the_reservation_counts() {
        let one = run(0, 1000).weight();
        let inbox = Inbox::new(InboxLimits {
            max_bytes: 3 * one,
            ..InboxLimits::default()
        });
        let s = inbox.join().unwrap();
        for n in 1..=4 {
            s.deliver(&run(n, 1000));
        }
        assert_eq!(inbox.bytes(), 3 * one);
        assert_eq!(ids(&drain(&inbox)), ["lag1", "2", "3", "4"]);
        inbox.set_reserved(2 * one);
        for n in 5..=7 {
            s.deliver(&run(n, 1000));
        }
        assert_eq!(
            ids(&drain(&inbox)),
            ["lag2", "7"],
            "one fits beside the reservation"
        );
        s.deliver(&run(8, 100_000));
        assert_eq!(
            ids(&drain(&inbox)),
            ["lag1"],
            "larger than the budget: never held"
        );
        assert_eq!(inbox.bytes(), 0);
    }

    #[test]
    fn lags_are_told_to_the_right_subscription() {
        let inbox = Inbox::new(InboxLimits {
            max_messages: 2,
            ..InboxLimits::default()
        });
        let a = inbox.join().unwrap();
        let b = inbox.join().unwrap();
        a.deliver(&run(1, 1));
        b.deliver(&run(2, 1));
        a.deliver(&run(3, 1));
        let items = drain(&inbox);
        assert!(
            matches!(items[0], InboxItem::Lagged { subscription, missed: 1 } if subscription == a.id())
        );
        assert_eq!(ids(&items), ["lag1", "2", "3"]);
    }

    #[test]
    fn unsubscribing_frees_its_queue_and_its_slot() {
        let inbox = Inbox::new(InboxLimits {
            max_subscriptions: 2,
            ..InboxLimits::default()
        });
        let a = inbox.join().unwrap();
        let b = inbox.join().unwrap();
        assert!(inbox.join().is_none(), "at most two");
        a.deliver(&run(1, 10));
        b.deliver(&run(2, 10));
        a.deliver(&run(3, 10));
        a.unsubscribe();
        assert_eq!(inbox.subscriptions(), 1);
        assert_eq!(inbox.len(), 1);
        assert_eq!(inbox.bytes(), run(2, 10).weight());
        let c = inbox.join().expect("a slot is free again");
        drop(c);
        drop(b);
        assert_eq!(inbox.subscriptions(), 0);
        assert_eq!(ids(&drain(&inbox)), ["2"]);
    }

    #[test]
    fn an_ended_subscription_keeps_what_it_had() {
        let inbox = Inbox::new(InboxLimits::default());
        let a = inbox.join().unwrap();
        a.deliver(&run(1, 1));
        a.end();
        assert_eq!(inbox.subscriptions(), 0);
        assert_eq!(ids(&drain(&inbox)), ["1", "end"]);
    }

    #[test]
    fn a_closed_inbox_takes_nothing_and_ends() {
        let inbox = Inbox::new(InboxLimits::default());
        let a = inbox.join().unwrap();
        a.deliver(&run(1, 1));
        inbox.close();
        assert!(!a.deliver(&run(2, 1)));
        assert!(inbox.join().is_none());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(inbox.recv().await.is_some());
            assert!(inbox.recv().await.is_none());
        });
    }

    #[test]
    fn polls_are_bounded_in_bytes() {
        let inbox = Inbox::new(InboxLimits::default());
        let a = inbox.join().unwrap();
        for n in 1..=10 {
            a.deliver(&run(n, 1000));
        }
        let w = run(0, 1000).weight();
        assert_eq!(ids(&inbox.drain_bytes(3 * w + 1)), ["1", "2", "3"]);
        assert_eq!(ids(&inbox.drain_bytes(1)), ["4"], "always at least one");
        assert_eq!(inbox.drain_bytes(usize::MAX).len(), 6);
    }

    #[test]
    fn recv_many_takes_a_batch() {
        let inbox = Inbox::new(InboxLimits::default());
        let a = inbox.join().unwrap();
        for n in 1..=5 {
            a.deliver(&run(n, 1));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut out = Vec::new();
        assert_eq!(rt.block_on(inbox.recv_many(&mut out, 3)), 3);
        assert_eq!(rt.block_on(inbox.recv_many(&mut out, 10)), 2);
        assert_eq!(ids(&out), ["1", "2", "3", "4", "5"]);
    }
}
