//! The [`PushTransport`] conformance suite: what can be checked of a gateway
//! from outside, against a backend that accepts every notification (a
//! fresh [`RecordingTransport`](herald::RecordingTransport), or a real
//! gateway pointed at a mock server that answers 200).
//! [`push_transport_conformance_tests!`](crate::push_transport_conformance_tests)
//! runs each check as its own test.

use std::sync::Arc;
use std::time::Duration;

use herald::{
    MAX_BATCH, MessageId, Notification, NotificationId, Os, Outcome, PushContent, PushTransport,
};
use herald_core::Tick;

/// Generates one `#[tokio::test]` per check, each on a fresh transport
/// made by the given expression (an `async` block evaluating to it), for
/// devices of the given [`Os`].
#[macro_export]
macro_rules! push_transport_conformance_tests {
    ($make:expr, $os:expr) => {
        $crate::push_transport_conformance_tests!(@each $make, $os;
            one_outcome_per_notification_in_order,
            an_empty_batch_is_an_empty_delivery,
            concurrent_batches_each_get_their_outcomes,
            a_dropped_send_leaves_the_transport_usable,
        );
    };
    (@each $make:expr, $os:expr; $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let transport = $make.await;
                $crate::push_transport_conformance::$check(transport, $os).await;
            }
        )*
    };
}

/// A notification to device `n` (token: 64 hex digits, as APNs's), due to
/// expire in an hour from a fixed time.
pub fn notification(os: Os, n: usize) -> Notification {
    let message_id = MessageId::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    let device_id = format!("device-{n}");
    Notification {
        id: NotificationId::of(message_id, Tick::from_millis(0), &device_id),
        message_id,
        device_token: format!("{n:064x}"),
        device_id,
        os,
        content: Arc::new(PushContent {
            title: Some("Title ✓".into()),
            body: Some(format!("body {n}")),
            ..PushContent::default()
        }),
        expires_at: Tick::from_millis(u64::MAX / 2),
        collapse_key: None,
    }
}

fn batch(os: Os, range: std::ops::Range<usize>) -> Vec<Notification> {
    range.map(|n| notification(os, n)).collect()
}

/// A full batch gets exactly one outcome per notification, all sent.
pub async fn one_outcome_per_notification_in_order<T: PushTransport>(t: T, os: Os) {
    for size in [1, 7, MAX_BATCH] {
        let b = batch(os, 0..size);
        let d = t.send(&b).await;
        assert_eq!(d.outcomes.len(), size, "one outcome per notification");
        assert!(d.refused.is_none());
        assert!(
            d.outcomes.iter().all(|o| *o == Outcome::Sent),
            "a backend that accepts everything: all sent"
        );
    }
}

/// An empty batch answers an empty delivery.
pub async fn an_empty_batch_is_an_empty_delivery<T: PushTransport>(t: T, _os: Os) {
    let d = t.send(&[]).await;
    assert!(d.outcomes.is_empty());
    assert!(d.refused.is_none());
}

/// Batches sent at once each get their own outcomes.
pub async fn concurrent_batches_each_get_their_outcomes<T: PushTransport>(t: T, os: Os) {
    let batches: Vec<Vec<Notification>> =
        (0..4).map(|i| batch(os, i * 50..i * 50 + 10 + i)).collect();
    let sends = batches.iter().map(|b| t.send(b));
    let deliveries = futures_join_all(sends).await;
    for (b, d) in batches.iter().zip(&deliveries) {
        assert_eq!(d.outcomes.len(), b.len());
    }
}

/// A send dropped before it finished leaves the next one working.
pub async fn a_dropped_send_leaves_the_transport_usable<T: PushTransport>(t: T, os: Os) {
    let b = batch(os, 0..100);
    let _ = tokio::time::timeout(Duration::from_millis(1), t.send(&b)).await;
    let d = t.send(&b[..3]).await;
    assert_eq!(d.outcomes, vec![Outcome::Sent; 3]);
}

/// Polls every future to completion, concurrently, on this task.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}
