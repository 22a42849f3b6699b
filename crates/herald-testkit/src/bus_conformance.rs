//! The [`ClusterBus`] conformance suite: each `pub async fn` takes two
//! handles on one fresh bus (two nodes' connections) and panics, naming
//! the rule, if the bus breaks its contract.
//! [`bus_conformance_tests!`](crate::bus_conformance_tests) runs every
//! check as its own test.

use std::sync::Arc;
use std::time::Duration;

use herald::bus::{BusEvent, ClusterBus};
use tokio::sync::mpsc;

/// Generates one `#[tokio::test]` per bus check, each on a fresh bus made
/// by the given expression (an `async` block evaluating to a pair of
/// handles on one bus, as two nodes hold).
///
/// With `optional` first, the expression evaluates to an `Option` of such
/// a pair, and `None` ends each test early (for a bus whose server is not
/// configured; the test binary says once that it skipped):
///
/// ```ignore
/// herald_testkit::bus_conformance_tests!(optional async {
///     let url = redis_url()?; // prints "SKIPPED: ..." once when unset
///     Some((connect(&url).await, connect(&url).await))
/// });
/// ```
#[macro_export]
macro_rules! bus_conformance_tests {
    // Before the plain arm: `optional` would otherwise be parsed as the
    // start of an expression, and a failed fragment parse is final.
    (optional $make:expr) => {
        // The block runs in the test's own body, so its `return` ends the
        // test.
        $crate::bus_conformance_tests!({
            let ::std::option::Option::Some(pair) = $make.await else {
                return;
            };
            ::std::future::ready(pair)
        });
    };
    ($make:expr) => {
        $crate::bus_conformance_tests!(@each $make;
            frames_reach_every_subscription_in_each_senders_order,
            a_subscription_sees_only_frames_sent_after_it,
            frames_up_to_max_frame_arrive_intact,
            a_dropped_subscription_does_not_stop_the_bus,
            a_subscription_that_fell_behind_is_told_before_the_gap,
        );
    };
    (@each $make:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (a, b) = $make.await;
                $crate::bus_conformance::$check(a, b).await;
            }
        )*
    };
}

/// How long an event may take to arrive (a networked bus goes through its
/// server; this bounds a broken bus, it is not waited for).
const TIMEOUT: Duration = Duration::from_secs(20);

fn frame(tag: &str) -> Arc<[u8]> {
    Arc::from(tag.as_bytes())
}

async fn next(rx: &mut mpsc::Receiver<BusEvent>, what: &str) -> BusEvent {
    tokio::time::timeout(TIMEOUT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing within {TIMEOUT:?}: waiting for {what}"))
        .unwrap_or_else(|| panic!("the subscription ended: waiting for {what}"))
}

/// The next frame, skipping nothing: a lag notice here is a failure.
async fn next_frame(rx: &mut mpsc::Receiver<BusEvent>, what: &str) -> Vec<u8> {
    match next(rx, what).await {
        BusEvent::Frame(f) => f.to_vec(),
        other => panic!("{other:?} while waiting for {what}"),
    }
}

async fn subscribe<B: ClusterBus>(bus: &B) -> mpsc::Receiver<BusEvent> {
    tokio::time::timeout(TIMEOUT, bus.subscribe())
        .await
        .expect("subscribe in time")
        .expect("subscribe")
}

async fn send<B: ClusterBus>(bus: &B, frames: &[&str]) {
    bus.send(frames.iter().map(|f| frame(f)).collect())
        .await
        .expect("send");
}

/// Every subscription, on either handle, receives every frame once, and
/// each sender's frames in the order it sent them.
pub async fn frames_reach_every_subscription_in_each_senders_order<B: ClusterBus>(a: B, b: B) {
    let mut on_a = subscribe(&a).await;
    let mut on_b = subscribe(&b).await;
    send(&a, &["a1", "a2", "a3"]).await;
    send(&b, &["b1"]).await;
    send(&a, &["a4"]).await;
    send(&b, &["b2", "b3"]).await;
    for (name, rx) in [("a", &mut on_a), ("b", &mut on_b)] {
        let mut got = Vec::new();
        for _ in 0..7 {
            got.push(String::from_utf8(next_frame(rx, "seven frames").await).expect("utf-8"));
        }
        let from = |p: char| -> Vec<&str> {
            got.iter()
                .map(String::as_str)
                .filter(|f| f.starts_with(p))
                .collect()
        };
        assert_eq!(
            from('a'),
            ["a1", "a2", "a3", "a4"],
            "subscription on {name}: {got:?}"
        );
        assert_eq!(
            from('b'),
            ["b1", "b2", "b3"],
            "subscription on {name}: {got:?}"
        );
    }
    assert!(
        on_a.try_recv().is_err() && on_b.try_recv().is_err(),
        "each frame once"
    );
}

/// A subscription receives nothing sent before it was made.
pub async fn a_subscription_sees_only_frames_sent_after_it<B: ClusterBus>(a: B, b: B) {
    let mut early = subscribe(&a).await;
    send(&b, &["before"]).await;
    assert_eq!(next_frame(&mut early, "the first frame").await, b"before");
    let mut late = subscribe(&a).await;
    send(&b, &["after"]).await;
    assert_eq!(
        next_frame(&mut late, "the frame sent after subscribing").await,
        b"after",
        "the frame sent before subscribing must not arrive"
    );
}

/// A frame as large as [`ClusterBus::max_frame`] (up to 64 KiB here; a
/// PostgreSQL bus's `NOTIFY` carries at most 8000 bytes, so this checks
/// how it carries more), with every byte value, arrives unchanged.
pub async fn frames_up_to_max_frame_arrive_intact<B: ClusterBus>(a: B, b: B) {
    let size = a.max_frame().min(64 * 1024);
    assert!(size >= 4096, "a bus should carry frames of at least 4 KiB");
    let big: Vec<u8> = (0..size).map(|i| (i * 7 + i / 256) as u8).collect();
    let mut rx = subscribe(&b).await;
    a.send(vec![Arc::from(big.as_slice()), frame("small")])
        .await
        .expect("send a large frame");
    assert!(
        next_frame(&mut rx, "the large frame").await == big,
        "the large frame changed"
    );
    assert_eq!(next_frame(&mut rx, "the frame after it").await, b"small");
}

/// Dropping a subscription does not disturb the others or the senders.
pub async fn a_dropped_subscription_does_not_stop_the_bus<B: ClusterBus>(a: B, b: B) {
    let gone = subscribe(&b).await;
    let mut kept = subscribe(&b).await;
    drop(gone);
    send(&a, &["x"]).await;
    send(&a, &["y"]).await;
    assert_eq!(next_frame(&mut kept, "x").await, b"x");
    assert_eq!(next_frame(&mut kept, "y").await, b"y");
}

/// A subscription that does not read while many frames are sent may lose
/// some, but never silently: a [`BusEvent::Lagged`] comes before the first
/// frame after each gap, and the frames it does get are in order.
pub async fn a_subscription_that_fell_behind_is_told_before_the_gap<B: ClusterBus>(a: B, b: B) {
    const N: usize = 20_000;
    let mut rx = subscribe(&b).await;
    for chunk in 0..N / 1_000 {
        let frames = (chunk * 1_000..(chunk + 1) * 1_000)
            .map(|i| Arc::from(format!("{i:05}").as_bytes()))
            .collect();
        a.send(frames).await.expect("send");
    }
    // Read what arrived; whenever nothing is queued, send "end" (a bus
    // that dropped frames may have dropped an earlier "end" too; the first
    // one that arrives ends the check).
    let mut expected = 0usize;
    let mut lagged = false;
    let mut gaps = 0;
    loop {
        let event = match rx.try_recv() {
            Ok(event) => event,
            Err(mpsc::error::TryRecvError::Empty) => {
                send(&a, &["end"]).await;
                next(&mut rx, "the frames, then \"end\"").await
            }
            Err(mpsc::error::TryRecvError::Disconnected) => panic!("the subscription ended"),
        };
        match event {
            BusEvent::Lagged { .. } => lagged = true,
            BusEvent::Frame(f) if &*f == b"end" => {
                assert!(
                    expected == N || lagged,
                    "{} frames lost before \"end\" without a lag notice",
                    N - expected
                );
                if expected < N {
                    gaps += 1;
                }
                break;
            }
            BusEvent::Frame(f) => {
                let i: usize = std::str::from_utf8(&f)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("a frame not sent: {f:?}"));
                assert!(
                    i >= expected,
                    "frame {i} after {expected}: out of order or twice"
                );
                if i > expected {
                    assert!(lagged, "frames {expected}..{i} lost without a lag notice");
                    gaps += 1;
                }
                lagged = false;
                expected = i + 1;
            }
        }
    }
    // Either everything arrived or the losses were announced; both are
    // allowed. Print which, for whoever reads the test log.
    println!("fell-behind check: reached frame {expected} of {N} in order, {gaps} announced gaps");
}
