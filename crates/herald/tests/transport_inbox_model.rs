//! `Inbox` against a model: random deliveries (one at a time and through
//! `FanOut`), lags, ends, unsubscriptions, reservations and reads
//! (`try_recv`, `try_recv_batch`, `drain_bytes`), compared after every step
//! with a plain queue holding one entry per delivery (the inbox's
//! semantics before runs were queued once per inbox).

use std::collections::VecDeque;
use std::sync::Arc;

use herald::{
    Body, DeliveredMessage, DeliveryPlan, Envelope, FanOut, Inbox, InboxBatchItem, InboxItem,
    InboxLimits, MessageId, PublishOptions, Subscriber, SubscriptionId,
};
use herald_core::Tick;
use proptest::prelude::*;

/// Runs of three sizes, numbered by their timestamp.
fn run(n: u64) -> DeliveredMessage {
    DeliveredMessage::new(
        Arc::new(Envelope {
            template: None,
            id: MessageId::from_u128(n.into()),
            channel: "c".into(),
            accepted_at: Tick::from_millis(0),
            publish: PublishOptions::default(),
            plan: Arc::new(DeliveryPlan::default()),
            body: Body::from("x".repeat([1, 300, 3000][(n % 3) as usize])),
        }),
        Tick::from_millis(n),
    )
}

/// One delivery, lag notice or end, as the model and the inbox both say it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Message(SubscriptionId, u64),
    Lagged(SubscriptionId, u64),
    Ended(SubscriptionId),
}

fn seen(item: InboxItem) -> Seen {
    match item {
        InboxItem::Message {
            subscription,
            message,
        } => Seen::Message(subscription, message.timestamp_millis()),
        InboxItem::Lagged {
            subscription,
            missed,
        } => Seen::Lagged(subscription, missed),
        InboxItem::Ended { subscription } => Seen::Ended(subscription),
    }
}

/// A batch, one entry per delivery; each message item has at least one
/// subscription.
fn flatten(items: Vec<InboxBatchItem>) -> Vec<Seen> {
    let mut out = Vec::new();
    for item in items {
        match item {
            InboxBatchItem::Message {
                subscriptions,
                message,
            } => {
                assert!(!subscriptions.is_empty(), "a run with no subscription");
                for s in subscriptions {
                    out.push(Seen::Message(s, message.timestamp_millis()));
                }
            }
            InboxBatchItem::Lagged {
                subscription,
                missed,
            } => out.push(Seen::Lagged(subscription, missed)),
            InboxBatchItem::Ended { subscription } => out.push(Seen::Ended(subscription)),
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Queued {
    Message {
        sub: SubscriptionId,
        run: u64,
        weight: usize,
    },
    Ended(SubscriptionId),
}

/// The reference: one queue entry per delivery.
#[derive(Default)]
struct Model {
    limits: Option<InboxLimits>,
    queue: VecDeque<Queued>,
    messages: usize,
    bytes: usize,
    reserved: usize,
    lagged: Vec<(SubscriptionId, u64)>,
    subscriptions: usize,
    closed: bool,
}

impl Model {
    fn limits(&self) -> InboxLimits {
        self.limits.expect("set")
    }

    fn lag(&mut self, sub: SubscriptionId, n: u64) {
        match self.lagged.iter_mut().find(|(s, _)| *s == sub) {
            Some((_, m)) => *m = m.saturating_add(n),
            None => self.lagged.push((sub, n)),
        }
    }

    fn deliver(&mut self, sub: SubscriptionId, run: u64, weight: usize) -> bool {
        if self.closed {
            return false;
        }
        let l = self.limits();
        let budget = l.max_bytes.saturating_sub(self.reserved);
        while self.messages >= l.max_messages || self.bytes.saturating_add(weight) > budget {
            let Some(at) = self
                .queue
                .iter()
                .position(|q| matches!(q, Queued::Message { .. }))
            else {
                break;
            };
            if let Some(Queued::Message { sub, weight, .. }) = self.queue.remove(at) {
                self.messages -= 1;
                self.bytes -= weight;
                self.lag(sub, 1);
            }
        }
        if weight > budget {
            self.lag(sub, 1);
        } else {
            self.queue.push_back(Queued::Message { sub, run, weight });
            self.messages += 1;
            self.bytes += weight;
        }
        true
    }

    fn take(&mut self) -> Option<Seen> {
        if !self.lagged.is_empty() {
            let (s, n) = self.lagged.remove(0);
            return Some(Seen::Lagged(s, n));
        }
        match self.queue.pop_front()? {
            Queued::Message { sub, run, weight } => {
                self.messages -= 1;
                self.bytes -= weight;
                Some(Seen::Message(sub, run))
            }
            Queued::Ended(s) => Some(Seen::Ended(s)),
        }
    }

    fn next_weight(&self) -> Option<usize> {
        if !self.lagged.is_empty() {
            return Some(0);
        }
        match self.queue.front()? {
            Queued::Message { weight, .. } => Some((*weight).max(1)),
            Queued::Ended(_) => Some(0),
        }
    }

    fn drain_bytes(&mut self, max: usize) -> Vec<Seen> {
        let (mut out, mut used, mut took) = (Vec::new(), 0usize, false);
        while let Some(w) = self.next_weight() {
            if w > 0 && took && used.saturating_add(w) > max {
                break;
            }
            used = used.saturating_add(w);
            took |= w > 0;
            out.extend(self.take());
        }
        out
    }

    fn unsubscribe(&mut self, id: SubscriptionId) {
        let (mut freed, mut dropped) = (0, 0);
        self.queue.retain(|q| match q {
            Queued::Message { sub, weight, .. } if *sub == id => {
                freed += weight;
                dropped += 1;
                false
            }
            Queued::Ended(sub) => *sub != id,
            Queued::Message { .. } => true,
        });
        self.bytes -= freed;
        self.messages -= dropped;
        self.lagged.retain(|(s, _)| *s != id);
        self.subscriptions -= 1;
    }
}

#[derive(Clone, Debug)]
enum Op {
    Join,
    /// `Subscriber::deliver` to the k-th live subscriber (mod their number).
    Deliver(usize),
    /// One run through a `FanOut` to these live subscribers (in this order,
    /// mod their number; repeats allowed: the inbox must not care).
    FanOut(Vec<usize>),
    Lagged(usize, u64),
    End(usize),
    Unsubscribe(usize),
    Drop(usize),
    Reserve(usize),
    TryRecv,
    TryRecvBatch(usize),
    DrainBytes(usize),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Join),
        4 => any::<usize>().prop_map(Op::Deliver),
        6 => prop::collection::vec(any::<usize>(), 1..40).prop_map(Op::FanOut),
        1 => (any::<usize>(), 0..5u64).prop_map(|(k, n)| Op::Lagged(k, n)),
        1 => any::<usize>().prop_map(Op::End),
        1 => any::<usize>().prop_map(Op::Unsubscribe),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => (0..8000usize).prop_map(Op::Reserve),
        3 => Just(Op::TryRecv),
        3 => (0..60usize).prop_map(Op::TryRecvBatch),
        2 => (0..8000usize).prop_map(Op::DrainBytes),
        1 => prop::bool::weighted(0.1).prop_map(|c| if c { Op::Close } else { Op::TryRecv }),
    ]
}

fn limits() -> impl Strategy<Value = InboxLimits> {
    (
        1..40usize,
        prop_oneof![Just(usize::MAX), 500..20_000usize],
        1..12usize,
    )
        .prop_map(|(max_messages, max_bytes, max_subscriptions)| InboxLimits {
            max_messages,
            max_bytes,
            max_subscriptions,
        })
}

fn check(ops: Vec<Op>, limits: InboxLimits) {
    let inbox = Inbox::new(limits);
    let mut model = Model {
        limits: Some(inbox.limits()),
        ..Model::default()
    };
    let mut subs: Vec<Subscriber> = Vec::new();
    let mut next_run = 0u64;
    let pick = |subs: &Vec<Subscriber>, k: usize| (!subs.is_empty()).then(|| k % subs.len());
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Join => {
                let s = inbox.join();
                let ok = !model.closed && model.subscriptions < model.limits().max_subscriptions;
                assert_eq!(s.is_some(), ok, "step {step}: join");
                if let Some(s) = s {
                    model.subscriptions += 1;
                    subs.push(s);
                }
            }
            Op::Deliver(k) => {
                if let Some(i) = pick(&subs, k) {
                    next_run += 1;
                    let r = run(next_run);
                    let want = model.deliver(subs[i].id(), next_run, r.weight());
                    assert_eq!(subs[i].deliver(&r), want, "step {step}: deliver");
                }
            }
            Op::FanOut(ks) => {
                if subs.is_empty() {
                    continue;
                }
                next_run += 1;
                let r = run(next_run);
                let mut fan = FanOut::new(&r);
                for k in ks {
                    let s = &subs[k % subs.len()];
                    let want = model.deliver(s.id(), next_run, r.weight());
                    assert_eq!(fan.deliver(s), want, "step {step}: fan-out");
                }
            }
            Op::Lagged(k, n) => {
                if let Some(i) = pick(&subs, k) {
                    let want = !model.closed;
                    if want {
                        model.lag(subs[i].id(), n);
                    }
                    assert_eq!(subs[i].lagged(n), want, "step {step}: lagged");
                }
            }
            Op::End(k) => {
                if let Some(i) = pick(&subs, k) {
                    let s = subs.swap_remove(i);
                    model.queue.push_back(Queued::Ended(s.id()));
                    model.subscriptions -= 1;
                    s.end();
                }
            }
            Op::Unsubscribe(k) => {
                if let Some(i) = pick(&subs, k) {
                    let s = subs.swap_remove(i);
                    model.unsubscribe(s.id());
                    s.unsubscribe();
                }
            }
            Op::Drop(k) => {
                if let Some(i) = pick(&subs, k) {
                    drop(subs.swap_remove(i));
                    model.subscriptions -= 1;
                }
            }
            Op::Reserve(b) => {
                model.reserved = b;
                inbox.set_reserved(b);
            }
            Op::TryRecv => {
                assert_eq!(
                    inbox.try_recv().map(seen),
                    model.take(),
                    "step {step}: try_recv"
                );
            }
            Op::TryRecvBatch(max) => {
                let mut out = Vec::new();
                let n = inbox.try_recv_batch(&mut out, max);
                let got = flatten(out);
                assert_eq!(n, got.len(), "step {step}: the count returned");
                let want: Vec<Seen> = std::iter::from_fn(|| model.take()).take(max).collect();
                assert_eq!(got, want, "step {step}: try_recv_batch({max})");
            }
            Op::DrainBytes(max) => {
                let got: Vec<Seen> = inbox.drain_bytes(max).into_iter().map(seen).collect();
                assert_eq!(got, model.drain_bytes(max), "step {step}: drain_bytes");
            }
            Op::Close => {
                model.closed = true;
                inbox.close();
            }
        }
        assert_eq!(inbox.len(), model.messages, "step {step}: len");
        assert_eq!(inbox.bytes(), model.bytes, "step {step}: bytes");
        assert_eq!(
            inbox.subscriptions(),
            model.subscriptions,
            "step {step}: subscriptions"
        );
    }
    // What is left comes out alike.
    let mut out = Vec::new();
    inbox.try_recv_batch(&mut out, usize::MAX);
    let want: Vec<Seen> = std::iter::from_fn(|| model.take()).collect();
    assert_eq!(flatten(out), want, "the rest");
    assert!(inbox.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_inbox_behaves_as_one_entry_per_delivery(
        ops in prop::collection::vec(op(), 1..120),
        limits in limits(),
    ) {
        check(ops, limits);
    }
}

/// A `FanOut` over subscribers of several inboxes, interleaved: each inbox
/// gets its subscribers' deliveries in order, and the run once while it is
/// the last thing queued (another run in between splits it).
#[test]
fn a_fan_out_over_interleaved_inboxes_batches_each_stretch() {
    let a = Inbox::new(InboxLimits::messages(10_000));
    let b = Inbox::new(InboxLimits::messages(10_000));
    let sa: Vec<Subscriber> = (0..3).map(|_| a.join().unwrap()).collect();
    let sb: Vec<Subscriber> = (0..3).map(|_| b.join().unwrap()).collect();
    let r = run(7);
    let mut fan = FanOut::new(&r);
    for s in [&sa[0], &sa[1], &sb[0], &sa[2], &sb[1], &sb[2]] {
        assert!(fan.deliver(s));
    }
    drop(fan);
    let mut out = Vec::new();
    assert_eq!(a.try_recv_batch(&mut out, usize::MAX), 3);
    let groups: Vec<Vec<u64>> = out
        .iter()
        .map(|i| match i {
            InboxBatchItem::Message { subscriptions, .. } => {
                subscriptions.iter().map(|s| s.get()).collect()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(groups, [vec![0, 1, 2]], "one item for a's two stretches");
    // Another run between two deliveries of one run splits it.
    out.clear();
    let r2 = run(8);
    assert!(sa[0].deliver(&r));
    assert!(sa[1].deliver(&r2));
    assert!(sa[2].deliver(&r));
    assert_eq!(a.try_recv_batch(&mut out, usize::MAX), 3);
    let groups: Vec<Vec<u64>> = out
        .iter()
        .map(|i| match i {
            InboxBatchItem::Message { subscriptions, .. } => {
                subscriptions.iter().map(|s| s.get()).collect()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(groups, [vec![0], vec![1], vec![2]]);
    out.clear();
    assert_eq!(b.try_recv_batch(&mut out, 2), 2, "at most 2");
    assert_eq!(b.try_recv_batch(&mut out, 2), 1);
    assert_eq!(flatten(out).len(), 3);
}

/// More than `FanOut::STRETCH` subscribers of one inbox: all delivered, one
/// run per stretch, and the consumer woken.
#[tokio::test]
async fn a_long_fan_out_wakes_the_consumer_and_delivers_everything() {
    let n = 3 * FanOut::STRETCH + 5;
    let inbox = Inbox::new(InboxLimits {
        max_messages: n,
        max_bytes: usize::MAX,
        max_subscriptions: n,
    });
    let subs: Vec<Subscriber> = (0..n).map(|_| inbox.join().unwrap()).collect();
    let consumer = {
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            let mut got = 0;
            while got < n {
                got += inbox.recv_batch(&mut out, usize::MAX).await;
            }
            flatten(out)
        })
    };
    tokio::task::yield_now().await;
    let r = run(1);
    let mut fan = FanOut::new(&r);
    for s in &subs {
        assert!(fan.deliver(s));
    }
    drop(fan);
    let got = consumer.await.unwrap();
    let want: Vec<Seen> = subs.iter().map(|s| Seen::Message(s.id(), 1)).collect();
    assert_eq!(got, want);
}
