//! Immediate publish: fan-out to the channel's subscribers, the delivered
//! message's fields and JSON wire shape, ordering, slow subscribers, and a
//! very wide fan-out.

mod common;

use common::*;
use herald::{
    DeliveryOptions, Engine, InboxLimits, Lagged, PublishOptions, PublishRequest, PublishStatus,
};
use serde_json::json;

#[tokio::test]
async fn immediate_publish_reaches_every_subscriber_of_the_channel_only() {
    let (engine, _clock) = engine();
    let mut subs: Vec<_> = (0..3)
        .map(|_| engine.subscribe("news", None).unwrap())
        .collect();
    let mut other = engine.subscribe("sports", None).unwrap();

    let status = publish_now(&engine, "news", json!({"headline": "hi"})).await;
    assert_eq!(status.status, PublishStatus::Published);
    assert_eq!(status.deliveries.runs, 1);
    assert_eq!(status.deliveries.pubsub, 3);
    assert!(status.error_message.is_none());

    for sub in &mut subs {
        let got = drain(sub);
        assert_eq!(
            got.len(),
            1,
            "each subscriber gets the message exactly once"
        );
        assert_eq!(got[0].message_id().to_string(), status.message_id);
        assert_eq!(got[0].message(), &json!({"headline": "hi"}));
        assert_eq!(got[0].channel(), "news");
    }
    assert!(
        other.try_recv().is_none(),
        "a subscriber of another channel gets nothing"
    );
    assert_status(&engine, &status.message_id, PublishStatus::Published, 1).await;
}

#[tokio::test]
async fn immediate_publish_with_no_subscribers_is_published_with_zero_deliveries() {
    let (engine, _clock) = engine();
    let status = publish_now(&engine, "empty", json!(1)).await;
    assert_eq!(status.status, PublishStatus::Published);
    assert_eq!(status.deliveries.pubsub, 0);
    let later = status_of(&engine, &status.message_id).await;
    assert_eq!(later.status, PublishStatus::Published);
    assert_eq!(later.deliveries.runs, 1);
    assert_eq!(later.deliveries.pubsub, 0);
}

/// Every publish carries this future and its caller moves it (into a
/// task, a `select!`): it holds what the publish awaits and little else.
/// Three `async fn` layers around a publish path that held its arguments
/// across every await made it 1,600 bytes, 12 % of a durable publisher's
/// instructions spent copying it.
#[tokio::test]
async fn the_publish_future_is_small() {
    let (engine, _clock) = engine();
    let publish = engine.publish(
        "small",
        json!(1).into(),
        PublishOptions::default(),
        DeliveryOptions::default(),
    );
    let bytes = std::mem::size_of_val(&publish);
    assert!(bytes <= 512, "Engine::publish's future is {bytes} bytes");
    assert_eq!(publish.await.unwrap().status, PublishStatus::Published);
}

#[tokio::test]
async fn a_subscription_sees_only_what_is_published_after_it() {
    let (engine, _clock) = engine();
    publish_now(&engine, "ch", json!("before")).await;
    let mut sub = engine.subscribe("ch", None).unwrap();
    publish_now(&engine, "ch", json!("after")).await;
    assert_eq!(drain_messages(&mut sub), [json!("after")]);
}

#[tokio::test]
async fn dropped_subscriptions_are_not_counted() {
    let (engine, _clock) = engine();
    let mut keep = engine.subscribe("ch", None).unwrap();
    let gone = engine.subscribe("ch", None).unwrap();
    drop(gone);
    let status = publish_now(&engine, "ch", json!("x")).await;
    assert_eq!(status.deliveries.pubsub, 1);
    assert_eq!(drain(&mut keep).len(), 1);
}

#[tokio::test]
async fn delivered_message_fields() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("orders", None).unwrap();
    clock.advance(std::time::Duration::from_millis(1_234));

    let request = PublishRequest::from_json(&json!({
        "message": {"order": 42},
        "publisherId": "svc-billing",
        "headers": {"total": 250, "region": "EU", "vip": true, "ratio": 0.5},
    }))
    .unwrap();
    let status = engine.publish_request("orders", request).await.unwrap();
    assert_eq!(status.status, PublishStatus::Published);

    let got = drain(&mut sub);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.message_id().to_string(), status.message_id);
    assert_eq!(
        m.timestamp_millis(),
        T0 + 1_234,
        "timestamp is the clock's now"
    );
    assert_eq!(m.timestamp().timestamp_millis(), (T0 + 1_234) as i64);
    assert_eq!(m.message(), &json!({"order": 42}));
    assert_eq!(m.publisher_id(), Some("svc-billing"));
    let h = m.headers();
    assert_eq!(h["total"], "250");
    assert_eq!(h["region"], "EU");
    assert_eq!(h["vip"], "true");
    assert_eq!(h["ratio"], "0.5");
    assert_eq!(h.len(), 4);
    assert!(m.publish_at().is_none());
    assert!(m.repeat_every().is_none());
    assert!(m.repeat_expires_at().is_none());
}

#[tokio::test]
async fn delivered_message_json_wire_shape_with_unset_timing() {
    let (engine, _clock) = engine();
    let mut sub = engine.subscribe("orders", None).unwrap();
    let mut publish = PublishOptions {
        publisher_id: Some("p1".into()),
        ..PublishOptions::default()
    };
    publish.headers.insert("city".into(), "Berlin".into());
    let status = engine
        .publish(
            "orders",
            json!({"n": 1}).into(),
            publish,
            DeliveryOptions::default(),
        )
        .await
        .unwrap();
    let m = drain(&mut sub).pop().unwrap();
    let wire = serde_json::to_value(&m).unwrap();
    assert_eq!(wire["messageId"], json!(status.message_id));
    assert_eq!(wire["timestamp"], json!(T0));
    assert_eq!(wire["message"], json!({"n": 1}));
    assert_eq!(wire["publisherId"], json!("p1"));
    assert_eq!(wire["headers"], json!({"city": "Berlin"}));
    assert_eq!(wire["publishAt"], json!(0));
    assert_eq!(wire["repeatEvery"], json!(0));
    assert_eq!(wire["repeatExpiresAt"], json!(0));
    // The id is the canonical upper-case UUID text.
    let id = wire["messageId"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(id, id.to_uppercase());
}

#[tokio::test]
async fn delivered_message_json_wire_shape_of_a_repeating_run() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("ch", None).unwrap();
    publish_with(
        &engine,
        "ch",
        json!("r"),
        every(5, Some(T0 + 1_000), Some(T0 + 60_000)),
    )
    .await
    .unwrap();
    step(&engine, &clock, 1_000).await;
    let m = drain(&mut sub).pop().expect("first run");
    let wire = serde_json::to_value(&m).unwrap();
    assert_eq!(wire["publishAt"], json!(T0 + 1_000));
    assert_eq!(wire["repeatEvery"], json!(5));
    assert_eq!(wire["repeatExpiresAt"], json!(T0 + 60_000));
    assert_eq!(wire["timestamp"], json!(T0 + 1_000));
    assert_eq!(wire["publisherId"], json!(null));
    assert_eq!(wire["headers"], json!({}));
}

#[tokio::test]
async fn many_publishes_from_one_task_arrive_in_publish_order() {
    let (engine, _clock) = engine();
    let mut a = engine.subscribe("seq", None).unwrap();
    let mut b = engine.subscribe("seq", None).unwrap();
    for i in 0..1_000 {
        publish_now(&engine, "seq", json!(i)).await;
        if i % 500 == 499 {
            // Read half-way so the default buffer (1024) is never exceeded.
            let got: Vec<_> = drain_messages(&mut a);
            assert_eq!(got, (i - 499..=i).map(|n| json!(n)).collect::<Vec<_>>());
        }
    }
    let got: Vec<_> = drain_messages(&mut b);
    assert_eq!(got, (0..1_000).map(|n| json!(n)).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_keep_each_publishers_order_exactly_once() {
    const PUBLISHERS: usize = 4;
    const EACH: u64 = 500;
    let clock = clock();
    let engine = builder(&clock)
        .subscription_limits(InboxLimits::messages(10_000))
        .build();
    let mut subs: Vec<_> = (0..3)
        .map(|_| engine.subscribe("mix", None).unwrap())
        .collect();

    let tasks: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let engine = engine.clone();
            tokio::spawn(async move {
                for seq in 0..EACH {
                    let publish = PublishOptions {
                        publisher_id: Some(format!("p{p}")),
                        ..PublishOptions::default()
                    };
                    let s = engine
                        .publish(
                            "mix",
                            json!(seq).into(),
                            publish,
                            DeliveryOptions::default(),
                        )
                        .await
                        .unwrap();
                    assert_eq!(s.deliveries.pubsub, 3);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }

    for sub in &mut subs {
        let got = drain(sub);
        assert_eq!(got.len(), PUBLISHERS * EACH as usize);
        let mut next = vec![0u64; PUBLISHERS];
        for m in &got {
            let p: usize = m.publisher_id().unwrap()[1..].parse().unwrap();
            assert_eq!(
                m.message(),
                &json!(next[p]),
                "publisher p{p} out of order or duplicated"
            );
            next[p] += 1;
        }
        assert_eq!(next, vec![EACH; PUBLISHERS]);
    }
}

#[tokio::test]
async fn a_lagging_subscriber_loses_the_oldest_and_is_told_how_many() {
    let clock = clock();
    let engine = builder(&clock)
        .subscription_limits(InboxLimits::messages(4))
        .build();
    let mut slow = engine.subscribe("firehose", None).unwrap();
    let mut fast = engine.subscribe("firehose", None).unwrap();

    let mut fast_got = Vec::new();
    for i in 0..10 {
        // Never blocks, although `slow` reads nothing.
        let s = publish_now(&engine, "firehose", json!(i)).await;
        assert_eq!(s.status, PublishStatus::Published);
        assert_eq!(
            s.deliveries.pubsub, 2,
            "a full buffer still counts as a delivery"
        );
        fast_got.extend(drain_messages(&mut fast));
    }
    assert_eq!(fast_got, (0..10).map(|n| json!(n)).collect::<Vec<_>>());

    assert_eq!(slow.recv().await.unwrap().unwrap_err(), Lagged(6));
    let rest: Vec<_> = drain_messages(&mut slow);
    assert_eq!(rest, [json!(6), json!(7), json!(8), json!(9)]);
    assert!(slow.try_recv().is_none());

    // After catching up it receives normally again.
    publish_now(&engine, "firehose", json!(10)).await;
    assert_eq!(slow.recv().await.unwrap().unwrap().message(), &json!(10));
}

#[tokio::test]
async fn one_publish_to_100k_subscribers() {
    const N: usize = 100_000;
    let (engine, _clock) = engine();
    let mut subs: Vec<_> = (0..N)
        .map(|_| engine.subscribe("wide", None).unwrap())
        .collect();

    let status = publish_now(&engine, "wide", json!("all")).await;
    assert_eq!(status.deliveries.pubsub, N as u64);
    assert_eq!(
        status_of(&engine, &status.message_id)
            .await
            .deliveries
            .pubsub,
        N as u64
    );

    let id = status.message_id.parse().unwrap();
    for sub in &mut subs {
        let m = sub.try_recv().expect("delivered").expect("no lag");
        assert_eq!(m.message_id(), id);
        assert!(sub.try_recv().is_none(), "exactly once");
    }
}

#[test]
fn engine_and_subscription_are_thread_safe_handles() {
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync_clone::<Engine>();
    send::<herald::Subscription>();
    send::<herald::DeliveredMessage>();
}

/// The engine's futures can be `tokio::spawn`ed (servers need that).
#[tokio::test]
async fn engine_futures_are_send() {
    fn send<F: std::future::Future + Send>(f: F) -> F {
        f
    }
    let (engine, _clock) = engine();
    let s = send(engine.publish(
        "ch",
        json!(1).into(),
        PublishOptions::default(),
        DeliveryOptions::default(),
    ))
    .await
    .unwrap();
    let req = PublishRequest::from_json(&json!({"message": 2})).unwrap();
    send(engine.publish_request("ch", req)).await.unwrap();
    send(engine.message_status(&s.message_id)).await.unwrap();
    send(engine.cancel(&s.message_id)).await.unwrap_err();
    send(engine.settle()).await;
    let mut sub = engine.subscribe("ch", None).unwrap();
    send(engine.shutdown()).await;
    assert!(send(sub.recv()).await.is_none());
}
