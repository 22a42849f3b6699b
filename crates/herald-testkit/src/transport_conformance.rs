//! The [`PubSubTransport`] conformance suite: each `pub async fn` takes a
//! fresh transport whose subscriptions buffer at least
//! [`MIN_CAPACITY`] and at most [`MAX_CAPACITY`] runs, and panics if the
//! transport breaks its contract.
//! [`transport_conformance_tests!`](crate::transport_conformance_tests)
//! runs each as its own test.

use std::collections::BTreeMap;
use std::sync::Arc;

use herald::{
    DeliveredMessage, DeliveryOptions, Envelope, Lagged, PubSubTransport, PublishOptions,
    Subscription,
};
use herald_core::Tick;
use herald_core::selector::Selector;
use serde_json::json;

use crate::store_conformance::id;

/// The smallest per-subscription buffer the suite assumes.
pub const MIN_CAPACITY: usize = 1024;
/// The largest per-subscription buffer the lag check tolerates.
pub const MAX_CAPACITY: usize = 4096;

/// Generates one `#[tokio::test]` per transport check, each on a fresh
/// transport made by the given expression (an `async` block).
#[macro_export]
macro_rules! transport_conformance_tests {
    ($make:expr) => {
        $crate::transport_conformance_tests!(@each $make;
            publish_without_subscribers_reaches_nobody,
            each_subscription_gets_each_run_once_in_order,
            selectors_filter_per_subscription,
            subscription_sees_only_runs_after_it,
            slow_subscription_lags_without_blocking_others,
            dropped_subscription_stops_counting,
            delete_channel_ends_subscriptions,
            channels_are_listed_sorted,
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
    let mut headers = BTreeMap::new();
    headers.insert("n".to_owned(), n.to_string());
    headers.insert("publisher".to_owned(), publisher.to_owned());
    let envelope = Envelope {
        id: id(u128::from(n)),
        channel: channel.to_owned(),
        message: json!(n),
        publish: PublishOptions {
            publisher_id: Some(publisher.to_owned()),
            headers,
            subtopic: None,
        },
        delivery: DeliveryOptions::default(),
        accepted_at: Tick::from_millis(1_000),
    };
    DeliveredMessage::new(Arc::new(envelope), Tick::from_millis(1_000 + n))
}

fn body(m: &DeliveredMessage) -> u64 {
    m.message().as_u64().expect("numeric body")
}

/// Everything buffered right now, as bodies (`u64::MAX` for a lag marker).
fn drain(sub: &mut Subscription) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(item) = sub.try_recv() {
        out.push(item.map_or(u64::MAX, |m| body(&m)));
    }
    out
}

/// Publishing to a channel nobody subscribes to reaches 0 subscriptions.
pub async fn publish_without_subscribers_reaches_nobody<T: PubSubTransport>(t: T) {
    assert_eq!(t.publish(&run_on("empty", 1, "p")).expect("publish"), 0);
}

/// Three subscriptions each receive every run once, in publish order, and
/// `publish` counts them.
pub async fn each_subscription_gets_each_run_once_in_order<T: PubSubTransport>(t: T) {
    let mut subs: Vec<Subscription> = (0..3)
        .map(|_| t.subscribe("c", None).expect("subscribe"))
        .collect();
    let mut other = t.subscribe("other", None).expect("subscribe");
    for n in 0..MIN_CAPACITY as u64 {
        assert_eq!(t.publish(&run_on("c", n, "p")).expect("publish"), 3);
    }
    let want: Vec<u64> = (0..MIN_CAPACITY as u64).collect();
    for s in &mut subs {
        let mut got = Vec::new();
        for _ in 0..want.len() {
            let m = s.recv().await.expect("open").expect("no lag");
            assert_eq!(m.channel(), "c");
            got.push(body(&m));
        }
        assert_eq!(got, want);
        assert!(s.try_recv().is_none(), "nothing more than was published");
    }
    assert!(
        other.try_recv().is_none(),
        "another channel receives nothing"
    );
}

/// A selector is applied per subscription (the `foo > 10` observation).
pub async fn selectors_filter_per_subscription<T: PubSubTransport>(t: T) {
    let mut big = t
        .subscribe("s", Some(Selector::parse("n > 3").expect("selector")))
        .expect("subscribe");
    let mut all = t.subscribe("s", None).expect("subscribe");
    let mut counts = Vec::new();
    for n in 0..6 {
        counts.push(t.publish(&run_on("s", n, "p")).expect("publish"));
    }
    assert_eq!(
        counts,
        vec![1, 1, 1, 1, 2, 2],
        "publish counts only matching subscriptions"
    );
    assert_eq!(drain(&mut big), vec![4, 5]);
    assert_eq!(drain(&mut all), vec![0, 1, 2, 3, 4, 5]);
}

/// A subscription does not see runs published before it existed.
pub async fn subscription_sees_only_runs_after_it<T: PubSubTransport>(t: T) {
    t.publish(&run_on("late", 1, "p")).expect("publish");
    let mut sub = t.subscribe("late", None).expect("subscribe");
    t.publish(&run_on("late", 2, "p")).expect("publish");
    let m = sub.recv().await.expect("open").expect("no lag");
    assert_eq!(body(&m), 2);
}

/// Publishing far more than a buffer holds never blocks; the slow
/// subscription reads `Lagged(n)` then the newest runs; a subscription
/// that keeps up misses nothing.
pub async fn slow_subscription_lags_without_blocking_others<T: PubSubTransport>(t: T) {
    let total = (MAX_CAPACITY * 2) as u64;
    let mut slow = t.subscribe("lag", None).expect("subscribe");
    let mut fast = t.subscribe("lag", None).expect("subscribe");
    let mut fast_got = Vec::new();
    for n in 0..total {
        t.publish(&run_on("lag", n, "p")).expect("publish");
        fast_got.extend(drain(&mut fast));
    }
    assert_eq!(
        fast_got,
        (0..total).collect::<Vec<_>>(),
        "the fast subscriber misses nothing"
    );
    let first = slow.try_recv().expect("something buffered");
    let Err(Lagged(missed)) = first else {
        panic!("a slow subscription must first read Lagged, got {first:?}");
    };
    let rest = drain(&mut slow);
    assert_eq!(
        missed + rest.len() as u64,
        total,
        "missed + kept = published"
    );
    assert!(!rest.is_empty() && rest.len() <= MAX_CAPACITY);
    let want: Vec<u64> = (missed..total).collect();
    assert_eq!(rest, want, "the newest runs are kept, in order");
}

/// A dropped subscription is no longer delivered to.
pub async fn dropped_subscription_stops_counting<T: PubSubTransport>(t: T) {
    let a = t.subscribe("d", None).expect("subscribe");
    let _b = t.subscribe("d", None).expect("subscribe");
    assert_eq!(t.publish(&run_on("d", 1, "p")).expect("publish"), 2);
    drop(a);
    assert_eq!(t.publish(&run_on("d", 2, "p")).expect("publish"), 1);
}

/// `delete_channel` ends its subscriptions after their buffered runs.
pub async fn delete_channel_ends_subscriptions<T: PubSubTransport>(t: T) {
    let mut sub = t.subscribe("gone", None).expect("subscribe");
    t.publish(&run_on("gone", 7, "p")).expect("publish");
    assert!(t.delete_channel("gone"));
    assert!(
        !t.delete_channel("gone"),
        "a deleted channel no longer exists"
    );
    let m = sub
        .recv()
        .await
        .expect("buffered run still readable")
        .expect("no lag");
    assert_eq!(body(&m), 7);
    assert!(sub.recv().await.is_none(), "then the subscription ends");
    assert!(!t.channels().contains(&"gone".to_owned()));
}

/// Channels published or subscribed to are listed, sorted.
pub async fn channels_are_listed_sorted<T: PubSubTransport>(t: T) {
    let _s = t.subscribe("zeta", None).expect("subscribe");
    t.publish(&run_on("alpha", 1, "p")).expect("publish");
    let names = t.channels();
    assert!(
        names.contains(&"zeta".to_owned()) && names.contains(&"alpha".to_owned()),
        "{names:?}"
    );
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

/// Four publishers on separate tasks: every subscription sees each
/// publisher's runs exactly once and in that publisher's order.
pub async fn concurrent_publishers_keep_their_order<T: PubSubTransport>(t: T) {
    let t = Arc::new(t);
    // 4 × per fits in one buffer, so the reader can never lag.
    let per = (MIN_CAPACITY / 4) as u64;
    let mut sub = t.subscribe("conc", None).expect("subscribe");
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
        let m = sub
            .recv()
            .await
            .expect("open")
            .unwrap_or_else(|lag| panic!("reader fell behind: {lag}"));
        let n = body(&m);
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
