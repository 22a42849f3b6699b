//! Subscriptions and channels: `recv` and the `Stream` impl, the channel
//! list, deleting a channel, dropping a subscription.

mod common;

use std::future::poll_fn;
use std::pin::Pin;

use common::*;
use futures_core::Stream;
use herald::PublishStatus;
use serde_json::json;

#[tokio::test]
async fn recv_waits_for_a_scheduled_run() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("ch", None).unwrap();
    assert_eq!(sub.channel(), "ch");
    publish_with(&engine, "ch", json!("later"), at(T0 + 1_000))
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        let m = sub.recv().await.unwrap().unwrap();
        (m.message().to_value().unwrap(), m.timestamp_millis())
    });
    step(&engine, &clock, 1_000).await;
    assert_eq!(waiter.await.unwrap(), (json!("later"), T0 + 1_000));
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

#[tokio::test]
async fn a_subscription_is_a_stream() {
    let (engine, _clock) = engine();
    let mut sub = engine.subscribe("ch", None).unwrap();
    publish_now(&engine, "ch", json!(1)).await;
    publish_now(&engine, "ch", json!(2)).await;
    assert_eq!(next(&mut sub).await.unwrap().unwrap().message(), &json!(1));
    assert_eq!(next(&mut sub).await.unwrap().unwrap().message(), &json!(2));
    engine.delete_channel("ch").unwrap();
    assert!(
        next(&mut sub).await.is_none(),
        "the stream ends with the channel"
    );
}

#[tokio::test]
async fn channels_are_the_subscribed_ones_sorted() {
    let (engine, _clock) = engine();
    assert!(engine.channels().is_empty());
    let s = engine.subscribe("zeta", None).unwrap();
    publish_now(&engine, "alpha", json!(1)).await;
    let _t = engine.subscribe("mid", None).unwrap();
    publish_now(&engine, "zeta", json!(1)).await;
    assert_eq!(
        engine.channels(),
        ["mid", "zeta"],
        "publishing creates nothing"
    );
    drop(s);
    assert_eq!(
        engine.channels(),
        ["mid"],
        "a channel goes with its last subscriber"
    );
}

/// Publishing to many channel names nobody subscribes to keeps nothing
/// (it used to create each channel for good: unbounded memory for any key
/// allowed `*`).
#[tokio::test]
async fn publishing_to_random_channel_names_keeps_nothing() {
    let (engine, _clock) = engine();
    for i in 0..10_000 {
        publish_now(&engine, &format!("random-{i}"), json!(i)).await;
    }
    assert!(engine.channels().is_empty());
    // Subscribing to 10k channels and leaving leaves nothing either.
    let subs: Vec<_> = (0..10_000)
        .map(|i| engine.subscribe(&format!("random-{i}"), None).unwrap())
        .collect();
    assert_eq!(engine.channels().len(), 10_000);
    drop(subs);
    assert!(engine.channels().is_empty());
}

#[tokio::test]
async fn delete_channel_ends_its_subscriptions_after_their_buffered_runs() {
    let (engine, _clock) = engine();
    let mut a = engine.subscribe("doomed", None).unwrap();
    let mut b = engine.subscribe("doomed", None).unwrap();
    let mut other = engine.subscribe("other", None).unwrap();
    publish_now(&engine, "doomed", json!(1)).await;
    publish_now(&engine, "doomed", json!(2)).await;

    assert!(engine.delete_channel("doomed").unwrap());
    assert_eq!(engine.channels(), ["other"]);

    assert_eq!(a.recv().await.unwrap().unwrap().message(), &json!(1));
    assert_eq!(a.recv().await.unwrap().unwrap().message(), &json!(2));
    assert!(a.recv().await.is_none());
    assert!(a.recv().await.is_none(), "stays ended");
    assert_eq!(drain(&mut b).len(), 2);
    assert!(b.recv().await.is_none());

    // The other channel is untouched.
    publish_now(&engine, "other", json!(3)).await;
    assert_eq!(drain_messages(&mut other), [json!(3)]);

    // Deleting again: it no longer exists.
    assert!(!engine.delete_channel("doomed").unwrap());
    assert!(!engine.delete_channel("never-existed").unwrap());
}

#[tokio::test]
async fn a_waiting_recv_is_woken_by_delete_channel() {
    let (engine, _clock) = engine();
    let mut sub = engine.subscribe("doomed", None).unwrap();
    let waiter = tokio::spawn(async move { sub.recv().await.is_none() });
    tokio::task::yield_now().await; // let it park
    engine.delete_channel("doomed").unwrap();
    assert!(waiter.await.unwrap(), "recv ended with None");
}

#[tokio::test]
async fn a_deleted_channel_is_recreated_on_use_and_scheduled_runs_still_fire() {
    let (engine, clock) = engine();
    let mut old = engine.subscribe("ch", None).unwrap();
    let s = publish_with(&engine, "ch", json!("later"), at(T0 + 1_000))
        .await
        .unwrap();
    engine.delete_channel("ch").unwrap();
    let mut new = engine.subscribe("ch", None).unwrap();
    assert_eq!(engine.channels(), ["ch"]);

    step(&engine, &clock, 1_000).await;
    assert_eq!(drain_messages(&mut new), [json!("later")]);
    assert!(
        old.recv().await.is_none(),
        "the old subscription stays ended"
    );
    let st = status_of(&engine, &s.message_id).await;
    assert_eq!(
        (st.status, st.deliveries.pubsub),
        (PublishStatus::Published, 1)
    );
}

#[tokio::test]
async fn subscriptions_on_different_channels_are_independent() {
    let (engine, _clock) = engine();
    let mut a = engine.subscribe("a", None).unwrap();
    let mut b = engine.subscribe("b", None).unwrap();
    publish_now(&engine, "a", json!("for a")).await;
    publish_now(&engine, "b", json!("for b")).await;
    publish_now(&engine, "c", json!("for nobody")).await;
    assert_eq!(drain_messages(&mut a), [json!("for a")]);
    assert_eq!(drain_messages(&mut b), [json!("for b")]);
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    let (engine, _clock) = engine();
    let subs: Vec<_> = (0..10)
        .map(|_| engine.subscribe("ch", None).unwrap())
        .collect();
    assert_eq!(
        publish_now(&engine, "ch", json!(1)).await.deliveries.pubsub,
        10
    );
    drop(subs);
    assert_eq!(
        publish_now(&engine, "ch", json!(2)).await.deliveries.pubsub,
        0
    );
    let mut late = engine.subscribe("ch", None).unwrap();
    assert_eq!(
        publish_now(&engine, "ch", json!(3)).await.deliveries.pubsub,
        1
    );
    assert_eq!(drain_messages(&mut late), [json!(3)]);
}
