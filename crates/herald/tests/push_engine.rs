//! The engine's push API so far: device registrations, templates, and the
//! publish-time rules (5014 without a gateway, reserved channel names).

mod common;

use common::{T0, builder, clock, engine, step};
use herald::{
    DeliveryOptions, Os, PublishOptions, PublishPolicy, PublishStatus, PushBroadcast,
    RecordingTransport,
};
use herald_core::Tick;
use serde_json::json;

fn push(policy: PublishPolicy) -> DeliveryOptions {
    DeliveryOptions {
        publish_policy: policy,
        ..DeliveryOptions::default()
    }
}

#[tokio::test]
async fn a_push_publish_without_a_gateway_is_5014_and_stores_nothing() {
    let (engine, _clock) = engine();
    for policy in [PublishPolicy::Push, PublishPolicy::Both] {
        let e = engine
            .publish("news", "hi".into(), PublishOptions::default(), push(policy))
            .await
            .unwrap_err();
        assert_eq!(e.code(), 5014);
        assert_eq!(
            e.to_string(),
            "Push notifications are not configured for this application."
        );
    }
    assert_eq!(engine.stats().published, 0, "nothing was published");
    let ok = engine
        .publish(
            "news",
            "hi".into(),
            PublishOptions::default(),
            push(PublishPolicy::Pubsub),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, PublishStatus::Published);
    engine.shutdown().await;
}

#[tokio::test]
async fn with_a_gateway_a_push_publish_is_accepted() {
    let clock = clock();
    let engine = builder(&clock)
        .push_gateway(
            PushBroadcast::IOS | PushBroadcast::OSX,
            RecordingTransport::new("apns"),
        )
        .build();
    let status = engine
        .publish(
            "news",
            "hi".into(),
            PublishOptions::default(),
            push(PublishPolicy::Both),
        )
        .await
        .unwrap();
    assert_eq!(status.status, PublishStatus::Published);
    engine.shutdown().await;
}

#[tokio::test]
async fn reserved_first_segments_are_not_channels() {
    let (engine, _clock) = engine();
    for name in ["registrations", "push", "pushtemplates", "channels", "Push"] {
        let e = engine
            .publish(
                name,
                "x".into(),
                PublishOptions::default(),
                DeliveryOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), 5010, "{name}");
        assert!(e.to_string().contains("is reserved"), "{e}");
        assert_eq!(engine.subscribe(name, None).unwrap_err().code(), 5010);
    }
    assert!(
        engine
            .publish(
                "pushes",
                "x".into(),
                PublishOptions::default(),
                DeliveryOptions::default()
            )
            .await
            .is_ok()
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn registrations_record_their_time_and_expire() {
    let (engine, clock) = engine();
    let body = json!({
        "deviceId": "d1", "deviceToken": "tok", "os": "IOS",
        "channels": ["news"], "expiration": (T0 + 60_000), "properties": {"lang": "de"},
    });
    let first = engine.register_device(&body).await.unwrap();
    let reg = engine.device("d1").await.unwrap();
    assert_eq!(reg.registered_at, Tick::from_millis(T0));
    assert_eq!(reg.registration_id, first);
    assert_eq!(reg.os, Os::Ios);

    step(&engine, &clock, 1_000).await;
    let second = engine.register_device(&body).await.unwrap();
    assert_ne!(first, second, "each registration gets its own id");
    assert_eq!(
        engine.device("d1").await.unwrap().registered_at,
        Tick::from_millis(T0 + 1_000),
        "re-registering records the new time"
    );

    step(&engine, &clock, 59_000).await;
    assert_eq!(
        engine.device("d1").await.unwrap_err().code(),
        5000,
        "an expired registration is unknown"
    );
    let err = engine.register_device(&body).await.unwrap_err();
    assert_eq!(
        err.code(),
        5015,
        "an expiration not in the future is refused"
    );
    assert!(err.to_string().contains("not in the future"), "{err}");
    assert_eq!(
        engine.device("d1").await.unwrap_err().code(),
        5000,
        "the refused registration stored nothing"
    );
    assert_eq!(
        engine.unregister_device("nobody").await.unwrap_err().code(),
        5000
    );
    let bad = engine
        .register_device(&json!({"deviceId": "d2"}))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), 5015);
    assert_eq!(
        engine.device("d2").await.unwrap_err().code(),
        5000,
        "nothing stored"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn templates_are_created_replaced_listed_and_deleted() {
    let (engine, _clock) = engine();
    let t = engine
        .put_template(
            &json!({"name": "welcome", "message": "Hi {name|there}", "audience": {"os": ["IOS"]}}),
        )
        .await
        .unwrap();
    assert_eq!(t.message, "Hi {name|there}");
    engine
        .put_template(&json!({"name": "sale", "audience": {"os": ["ANDROID"]}}))
        .await
        .unwrap();
    let names = |v: Vec<std::sync::Arc<herald::PushTemplate>>| {
        v.iter().map(|t| t.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(engine.templates(None).await.unwrap()),
        ["sale", "welcome"]
    );
    assert_eq!(
        names(engine.templates(Some(Os::Osx)).await.unwrap()),
        ["welcome"]
    );
    engine
        .put_template(
            &json!({"name": "welcome", "message": "Hello", "audience": {"os": ["ANDROID"]}}),
        )
        .await
        .unwrap();
    assert_eq!(engine.template("welcome").await.unwrap().message, "Hello");
    assert!(engine.templates(Some(Os::Ios)).await.unwrap().is_empty());
    engine.delete_template("welcome").await.unwrap();
    assert_eq!(engine.template("welcome").await.unwrap_err().code(), 5050);
    assert_eq!(
        engine.delete_template("welcome").await.unwrap_err().code(),
        5050
    );
    let bad = engine
        .put_template(&json!({"name": "x", "title": "{"}))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), 5051);
    engine.shutdown().await;
}

mod audience {
    use std::collections::BTreeSet;

    use herald::{Audience, DeviceRegistration, DeviceRegistry, MemoryRegistry, PushBroadcast};
    use herald_core::Tick;
    use herald_core::selector::Selector;
    use serde_json::json;

    async fn registry() -> MemoryRegistry {
        let r = MemoryRegistry::new();
        for i in 0..500u32 {
            let os = ["IOS", "ANDROID", "OSX", "WP"][i as usize % 4];
            let lang = if i % 3 == 0 { "de" } else { "en" };
            let channels = if i % 5 == 0 {
                json!(["news", "other"])
            } else {
                json!(["news"])
            };
            let expiration = if i % 7 == 0 {
                json!(1_000)
            } else {
                json!(null)
            };
            let mut d = DeviceRegistration::from_json(&json!({
                "deviceId": format!("d{i:04}"), "deviceToken": format!("t{i}"), "os": os,
                "channels": channels, "expiration": expiration, "properties": {"lang": lang},
            }))
            .unwrap();
            d.registered_at = Tick::from_millis(1);
            r.register(d).await.unwrap();
        }
        r
    }

    async fn walk(a: &Audience, r: &MemoryRegistry, scan: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        // The registrations expiring at 1000 s are expired at this time.
        let now = Tick::from_millis(2_000_000);
        loop {
            let page = a.page(r, after.as_deref(), scan, now).await.unwrap();
            out.extend(page.devices.iter().map(|d| d.device_id.clone()));
            after = page.cursor.clone();
            if page.done {
                return out;
            }
        }
    }

    fn expected(filter: impl Fn(u32) -> bool) -> Vec<String> {
        (0..500u32)
            .filter(|i| i % 7 != 0 && filter(*i))
            .map(|i| format!("d{i:04}"))
            .collect()
    }

    #[tokio::test]
    async fn every_combination_of_filters_intersects() {
        let r = registry().await;
        let all = Audience::channel("news");
        assert_eq!(
            walk(&all, &r, 64).await,
            expected(|_| true),
            "expired ones excluded"
        );
        assert_eq!(walk(&all, &r, 1).await, expected(|_| true), "any page size");

        let ios = Audience {
            os: PushBroadcast::IOS | PushBroadcast::OSX,
            ..all.clone()
        };
        assert_eq!(
            walk(&ios, &r, 64).await,
            expected(|i| i % 4 == 0 || i % 4 == 2)
        );

        let other = Audience::channel("other");
        assert_eq!(walk(&other, &r, 64).await, expected(|i| i % 5 == 0));

        let segment = Audience {
            segment: Some(Selector::parse("lang = 'de' AND os <> 'WP'").unwrap()),
            ..all.clone()
        };
        assert_eq!(
            walk(&segment, &r, 64).await,
            expected(|i| i % 3 == 0 && i % 4 != 3)
        );

        let ids: BTreeSet<String> = ["d0001", "d0002", "d0007", "d0400", "nobody"]
            .into_iter()
            .map(String::from)
            .collect();
        let single = Audience {
            devices: Some(ids),
            os: PushBroadcast::ANDROID | PushBroadcast::IOS,
            ..all
        };
        assert_eq!(
            walk(&single, &r, 2).await,
            ["d0001", "d0400"],
            "list ∩ OS ∩ not expired"
        );
        let other_single = Audience {
            channel: "other".into(),
            ..single
        };
        assert_eq!(
            walk(&other_single, &r, 64).await,
            ["d0400"],
            "list ∩ channel"
        );
    }
}

#[tokio::test]
async fn expired_registrations_are_purged_by_the_engine() {
    let clock = clock();
    let registry = herald::MemoryRegistry::new();
    let engine = builder(&clock).registry(registry.clone()).build();
    // The driver has started (its purge timer runs from its start).
    engine.settle().await;
    engine
        .register_device(
            &json!({"deviceId": "a", "deviceToken": "t", "os": "IOS", "expiration": T0 + 1_000}),
        )
        .await
        .unwrap();
    engine
        .register_device(&json!({"deviceId": "b", "deviceToken": "t", "os": "IOS"}))
        .await
        .unwrap();
    assert_eq!(registry.len(), 2);
    // The engine purges every half lease (the default lease is 60 s).
    step(&engine, &clock, 30_000).await;
    assert_eq!(registry.len(), 1, "the expired one is gone");
    assert!(engine.device("b").await.is_ok());
    engine.shutdown().await;
}
