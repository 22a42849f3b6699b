//! The [`PubSubTransport`] conformance suite: each `pub async fn` takes a
//! fresh transport and panics if it breaks its contract.
//! [`transport_conformance_tests!`](crate::transport_conformance_tests)
//! runs each as its own test.
//!
//! Subscriptions deliver into [`Inbox`]es that the suite makes with the
//! limits each check needs, so the lag checks do not depend on the
//! transport.

use std::collections::BTreeMap;
use std::sync::Arc;

use herald::{
    Body, DeliveredMessage, DeliveryPlan, Envelope, Inbox, InboxItem, InboxLimits, Membership,
    PubSubTransport, PublishOptions, SubscriptionId,
};
use herald_core::Tick;
use herald_core::selector::Selector;

use crate::store_conformance::id;

/// Runs per inbox in the checks that must never lag.
pub const CAPACITY: usize = 1024;

/// Generates one `#[tokio::test]` per transport check, each on a fresh
/// transport made by the given expression (an `async` block).
#[macro_export]
macro_rules! transport_conformance_tests {
    ($make:expr) => {
        $crate::transport_conformance_tests!(@each $make;
            publish_without_subscribers_reaches_nobody_and_keeps_nothing,
            each_subscription_gets_each_run_once_in_order,
            selectors_filter_per_subscription,
            subscription_sees_only_runs_after_it,
            slow_subscription_lags_without_blocking_others,
            byte_budget_bounds_a_slow_subscription,
            unsubscribing_frees_at_once,
            churn_leaves_nothing_behind,
            one_inbox_serves_many_subscriptions,
            delete_channel_ends_subscriptions,
            channels_exist_while_subscribed,
            concurrent_publishers_keep_their_order,
        );
    };
    (@each $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let transport = $make.await;
                $crate::transport_conformance::$check(transport).await;
            }
        )*
    };
}

/// A run on `channel` with header `n`, body `n`, id `n`.
pub fn run_on(channel: &str, n: u64, publisher: &str) -> DeliveredMessage {
    run_with_body(
        channel,
        n,
        publisher,
        Body::from(serde_json::Value::from(n)),
    )
}

/// A run on `channel` with header `n`, id `n` and this body.
pub fn run_with_body(channel: &str, n: u64, publisher: &str, body: Body) -> DeliveredMessage {
    let mut headers = BTreeMap::new();
    headers.insert("n".to_owned(), n.to_string());
    headers.insert("publisher".to_owned(), publisher.to_owned());
    let envelope = Envelope {
        template: None,
        id: id(u128::from(n)),
        channel: channel.to_owned(),
        accepted_at: Tick::from_millis(1_000),
        publish: PublishOptions {
            publisher_id: Some(publisher.to_owned()),
            headers,
            subtopic: None,
        },
        plan: Arc::new(DeliveryPlan::default()),
        body,
    };
    DeliveredMessage::new(Arc::new(envelope), Tick::from_millis(1_000 + n))
}

/// An inbox holding up to `capacity` runs and 64 MiB.
pub fn inbox(capacity: usize) -> Inbox {
    Inbox::new(InboxLimits {
        max_messages: capacity,
        max_bytes: 64 << 20,
        max_subscriptions: 1_000,
    })
}

/// Subscribes `inbox` to `channel` through the transport.
///
/// # Panics
///
/// If the inbox is full of subscriptions or the transport refuses.
pub fn join<T: PubSubTransport>(
    t: &T,
    inbox: &Inbox,
    channel: &str,
    selector: Option<&str>,
) -> Membership {
    let selector = selector.map(|s| Selector::parse(s).expect("selector"));
    let subscriber = inbox.join().expect("a free subscription slot");
    t.subscribe(channel, selector, subscriber)
        .expect("subscribe")
}

/// A fresh inbox subscribed to `channel`.
pub fn subscribe<T: PubSubTransport>(
    t: &T,
    channel: &str,
    selector: Option<&str>,
) -> (Inbox, Membership) {
    let i = inbox(CAPACITY);
    let m = join(t, &i, channel, selector);
    (i, m)
}

/// The run's number (its `n` header; the body too, unless it was given
/// one).
fn body(m: &DeliveredMessage) -> u64 {
    m.headers()["n"].parse().expect("numeric n header")
}

/// Everything queued right now: bodies, `u64::MAX` for a lag notice,
/// `u64::MAX - 1` for an end.
fn drain(inbox: &Inbox) -> Vec<u64> {
    std::iter::from_fn(|| inbox.try_recv())
        .map(|item| match item {
            InboxItem::Message { message, .. } => body(&message),
            InboxItem::Lagged { .. } => u64::MAX,
            InboxItem::Ended { .. } => u64::MAX - 1,
        })
        .collect()
}

/// Publishing to a channel nobody subscribes to reaches 0 subscriptions and
/// creates nothing.
pub async fn publish_without_subscribers_reaches_nobody_and_keeps_nothing<T: PubSubTransport>(
    t: T,
) {
    for n in 0..100 {
        let ch = format!("empty-{n}");
        assert_eq!(t.publish(&run_on(&ch, n, "p")).expect("publish"), 0);
    }
    assert!(t.channels().is_empty(), "{:?}", t.channels());
}

/// Three subscriptions each receive every run once, in publish order, and
/// `publish` counts them.
pub async fn each_subscription_gets_each_run_once_in_order<T: PubSubTransport>(t: T) {
    let subs: Vec<(Inbox, Membership)> = (0..3).map(|_| subscribe(&t, "c", None)).collect();
    let (other, _m) = subscribe(&t, "other", None);
    for n in 0..CAPACITY as u64 {
        assert_eq!(t.publish(&run_on("c", n, "p")).expect("publish"), 3);
    }
    let want: Vec<u64> = (0..CAPACITY as u64).collect();
    for (inbox, m) in &subs {
        let mut got = Vec::new();
        for _ in 0..want.len() {
            match inbox.recv().await.expect("open") {
                InboxItem::Message {
                    subscription,
                    message,
                } => {
                    assert_eq!(subscription, m.id());
                    assert_eq!(message.channel(), "c");
                    got.push(body(&message));
                }
                other => panic!("expected a run, got {other:?}"),
            }
        }
        assert_eq!(got, want);
        assert!(
            inbox.try_recv().is_none(),
            "nothing more than was published"
        );
    }
    assert!(
        other.try_recv().is_none(),
        "another channel receives nothing"
    );
}

/// A selector is applied per subscription (the `foo > 10` observation).
pub async fn selectors_filter_per_subscription<T: PubSubTransport>(t: T) {
    let (big, _a) = subscribe(&t, "s", Some("n > 3"));
    let (all, _b) = subscribe(&t, "s", None);
    let mut counts = Vec::new();
    for n in 0..6 {
        counts.push(t.publish(&run_on("s", n, "p")).expect("publish"));
    }
    assert_eq!(
        counts,
        vec![1, 1, 1, 1, 2, 2],
        "publish counts only matching subscriptions"
    );
    assert_eq!(drain(&big), vec![4, 5]);
    assert_eq!(drain(&all), vec![0, 1, 2, 3, 4, 5]);
}

/// A subscription does not see runs published before it existed.
pub async fn subscription_sees_only_runs_after_it<T: PubSubTransport>(t: T) {
    t.publish(&run_on("late", 1, "p")).expect("publish");
    let (inbox, _m) = subscribe(&t, "late", None);
    t.publish(&run_on("late", 2, "p")).expect("publish");
    assert_eq!(drain(&inbox), vec![2]);
}

/// Publishing far more than an inbox holds never blocks; the slow
/// subscription reads a lag notice then the newest runs; a subscription
/// that keeps up misses nothing.
pub async fn slow_subscription_lags_without_blocking_others<T: PubSubTransport>(t: T) {
    let total = (CAPACITY * 4) as u64;
    let slow = inbox(CAPACITY);
    let _s = join(&t, &slow, "lag", None);
    let (fast, _f) = subscribe(&t, "lag", None);
    let mut fast_got = Vec::new();
    for n in 0..total {
        t.publish(&run_on("lag", n, "p")).expect("publish");
        fast_got.extend(drain(&fast));
    }
    assert_eq!(
        fast_got,
        (0..total).collect::<Vec<_>>(),
        "the fast subscriber misses nothing"
    );
    let Some(InboxItem::Lagged { missed, .. }) = slow.try_recv() else {
        panic!("a slow subscription must first read a lag notice");
    };
    let rest = drain(&slow);
    assert_eq!(
        missed + rest.len() as u64,
        total,
        "missed + kept = published"
    );
    assert_eq!(rest.len(), CAPACITY);
    let want: Vec<u64> = (missed..total).collect();
    assert_eq!(rest, want, "the newest runs are kept, in order");
}

/// An inbox over its byte budget drops its oldest runs: a stalled reader of
/// 200 KB runs holds at most its budget, whatever the message count.
pub async fn byte_budget_bounds_a_slow_subscription<T: PubSubTransport>(t: T) {
    let big = Body::from("x".repeat(200_000));
    let budget = 1 << 20;
    let slow = Inbox::new(InboxLimits {
        max_messages: CAPACITY,
        max_bytes: budget,
        max_subscriptions: 1,
    });
    let _m = join(&t, &slow, "big", None);
    for n in 0..100 {
        t.publish(&run_with_body("big", n, "p", big.clone()))
            .expect("publish");
        assert!(slow.bytes() <= budget, "over the budget: {}", slow.bytes());
    }
    let kept = slow.len();
    assert!(
        (1..=5).contains(&kept),
        "kept {kept} runs of 200 KB in 1 MiB"
    );
    let items = drain(&slow);
    assert_eq!(items[0], u64::MAX, "told about the dropped runs first");
    assert_eq!(items.len(), kept + 1);
    assert_eq!(*items.last().expect("runs"), 99, "the newest is kept");
}

/// Dropping a membership unsubscribes at once: no more deliveries, its
/// queued runs freed, its inbox slot free again.
pub async fn unsubscribing_frees_at_once<T: PubSubTransport>(t: T) {
    let shared = Inbox::new(InboxLimits {
        max_messages: CAPACITY,
        max_bytes: 64 << 20,
        max_subscriptions: 2,
    });
    let a = join(&t, &shared, "d", None);
    let b = join(&t, &shared, "d", None);
    let (_other, _o) = subscribe(&t, "d", None);
    assert_eq!(t.publish(&run_on("d", 1, "p")).expect("publish"), 3);
    assert_eq!(shared.len(), 2);
    drop(a);
    assert_eq!(shared.len(), 1, "a's queued run is freed with it");
    assert_eq!(shared.subscriptions(), 1);
    assert_eq!(t.publish(&run_on("d", 2, "p")).expect("publish"), 2);
    let c = join(&t, &shared, "d", None);
    assert_eq!(shared.subscriptions(), 2, "the slot was free again");
    drop((b, c));
    assert_eq!(shared.len(), 0);
    assert_eq!(shared.bytes(), 0);
}

/// Thousands of subscribe/unsubscribe cycles with large selectors on a
/// quiet channel leave no channel, no subscription and no queued bytes.
pub async fn churn_leaves_nothing_behind<T: PubSubTransport>(t: T) {
    let selector = format!(
        "n IN ({})",
        (0..500)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let shared = inbox(CAPACITY);
    for i in 0..2_000u64 {
        let m = join(&t, &shared, &format!("quiet-{}", i % 7), Some(&selector));
        drop(m);
    }
    assert!(t.channels().is_empty(), "{:?}", t.channels());
    assert_eq!(shared.subscriptions(), 0);
    assert_eq!(t.subscriptions(), 0);
    assert_eq!(t.publish(&run_on("quiet-0", 1, "p")).expect("publish"), 0);
    assert_eq!(shared.bytes(), 0);
}

/// One inbox fed by subscriptions to two channels gets each run tagged with
/// the subscription it matched, in publish order.
pub async fn one_inbox_serves_many_subscriptions<T: PubSubTransport>(t: T) {
    let shared = inbox(CAPACITY);
    let news = join(&t, &shared, "news", None);
    let sport = join(&t, &shared, "sport", Some("n > 1"));
    for (ch, n) in [("news", 1), ("sport", 1), ("sport", 2), ("news", 3)] {
        t.publish(&run_on(ch, n, "p")).expect("publish");
    }
    let got: Vec<(SubscriptionId, u64)> = std::iter::from_fn(|| shared.try_recv())
        .map(|item| match item {
            InboxItem::Message {
                subscription,
                message,
            } => (subscription, body(&message)),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, vec![(news.id(), 1), (sport.id(), 2), (news.id(), 3)]);
    assert_ne!(news.id(), sport.id());
}

/// `delete_channel` ends its subscriptions after their queued runs.
pub async fn delete_channel_ends_subscriptions<T: PubSubTransport>(t: T) {
    let (inbox, m) = subscribe(&t, "gone", None);
    t.publish(&run_on("gone", 7, "p")).expect("publish");
    assert!(t.delete_channel("gone"));
    assert!(
        !t.delete_channel("gone"),
        "a deleted channel no longer exists"
    );
    assert_eq!(
        drain(&inbox),
        vec![7, u64::MAX - 1],
        "the run, then the end"
    );
    assert_eq!(inbox.subscriptions(), 0);
    assert!(!t.channels().contains(&"gone".to_owned()));
    drop(m);
    assert_eq!(t.publish(&run_on("gone", 8, "p")).expect("publish"), 0);
}

/// Channels with subscriptions are listed, sorted; a channel goes with its
/// last subscription.
pub async fn channels_exist_while_subscribed<T: PubSubTransport>(t: T) {
    let (_z, zeta) = subscribe(&t, "zeta", None);
    let (_a, alpha) = subscribe(&t, "alpha", None);
    let (_a2, alpha2) = subscribe(&t, "alpha", None);
    t.publish(&run_on("beta", 1, "p")).expect("publish");
    assert_eq!(t.channels(), vec!["alpha".to_owned(), "zeta".to_owned()]);
    assert_eq!(t.subscriptions(), 3);
    drop(zeta);
    assert_eq!(t.channels(), vec!["alpha".to_owned()]);
    drop(alpha);
    assert_eq!(
        t.channels(),
        vec!["alpha".to_owned()],
        "one subscriber left"
    );
    drop(alpha2);
    assert!(t.channels().is_empty());
    assert_eq!(t.subscriptions(), 0);
    let (_d, _dm) = subscribe(&t, "deleted", None);
    assert!(t.delete_channel("deleted"));
    assert_eq!(
        t.subscriptions(),
        0,
        "a deleted channel's subscriptions end"
    );
}

/// Four publishers on separate tasks: every subscription sees each
/// publisher's runs exactly once and in that publisher's order.
pub async fn concurrent_publishers_keep_their_order<T: PubSubTransport>(t: T) {
    let t = Arc::new(t);
    // 4 × per fits in one inbox, so the reader can never lag.
    let per = (CAPACITY / 4) as u64;
    let (inbox, _m) = subscribe(&*t, "conc", None);
    let mut tasks = Vec::new();
    for p in 0..4u64 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                t.publish(&run_on("conc", p * 1_000_000 + i, &p.to_string()))
                    .expect("publish");
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    let mut seen: Vec<Vec<u64>> = vec![Vec::new(); 4];
    let mut received = 0;
    while received < 4 * per {
        let n = match inbox.recv().await.expect("open") {
            InboxItem::Message { message, .. } => body(&message),
            other => panic!("reader fell behind: {other:?}"),
        };
        seen[(n / 1_000_000) as usize].push(n % 1_000_000);
        received += 1;
    }
    for task in tasks {
        task.await.expect("publisher");
    }
    for (p, got) in seen.iter().enumerate() {
        assert_eq!(
            got,
            &(0..per).collect::<Vec<_>>(),
            "publisher {p}'s runs, once each, in order"
        );
    }
}
