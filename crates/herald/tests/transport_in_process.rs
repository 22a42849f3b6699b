//! The in-process transport passes the PubSubTransport conformance suite.

herald_testkit::transport_conformance_tests!(async { herald::InProcessTransport::new() });

/// An engine subscription's inbox holds what `subscription_limits` says:
/// 4 buffered runs, then lag; dropping it unsubscribes and the channel goes.
#[tokio::test]
async fn subscription_limits_bound_the_buffer() {
    use herald::{DeliveryOptions, Engine, InboxLimits, Lagged, PublishOptions};
    let engine = Engine::builder()
        .subscription_limits(InboxLimits {
            max_messages: 4,
            ..InboxLimits::default()
        })
        .build();
    let mut sub = engine.subscribe("c", None).unwrap();
    for n in 0..10 {
        engine
            .publish(
                "c",
                serde_json::json!(n).into(),
                PublishOptions::default(),
                DeliveryOptions::default(),
            )
            .await
            .unwrap();
    }
    assert_eq!(sub.try_recv().unwrap().unwrap_err(), Lagged(6));
    let rest: Vec<u64> = std::iter::from_fn(|| sub.try_recv())
        .map(|r| r.unwrap().message().deserialize().unwrap())
        .collect();
    assert_eq!(rest, vec![6, 7, 8, 9]);
    assert_eq!(engine.channels(), vec!["c".to_owned()]);
    drop(sub);
    assert!(
        engine.channels().is_empty(),
        "the channel goes with its last subscriber"
    );
    engine.shutdown().await;
}
