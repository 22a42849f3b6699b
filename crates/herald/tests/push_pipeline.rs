//! The push pipeline on a manual clock, against recording gateways: every
//! rule of the contract's "Delivery, retries, statuses".

mod common;

use std::time::Duration;

use common::{T0, clock, step};
use herald::{
    DeliveryOptions, Engine, ManualClock, MemoryRegistry, MemoryStore, Outcome, PublishOptions,
    PublishStatus, PushBroadcast, RecordingTransport, Refusal,
};
use herald_core::Tick;
use serde_json::{Value, json};

struct Rig {
    engine: Engine,
    clock: ManualClock,
    apns: RecordingTransport,
    fcm: RecordingTransport,
    store: MemoryStore,
    registry: MemoryRegistry,
}

fn rig() -> Rig {
    rig_on(clock(), MemoryStore::new(), MemoryRegistry::new(), true)
}

fn rig_on(clock: ManualClock, store: MemoryStore, registry: MemoryRegistry, fcm: bool) -> Rig {
    let apns = RecordingTransport::new("apns");
    let fcm_gw = RecordingTransport::new("fcm");
    let mut b = Engine::builder()
        .clock(clock.clone())
        .store(store.clone())
        .registry(registry.clone())
        .push_gateway(PushBroadcast::IOS | PushBroadcast::OSX, apns.clone());
    if fcm {
        b = b.push_gateway(PushBroadcast::ANDROID, fcm_gw.clone());
    }
    Rig {
        engine: b.build(),
        clock,
        apns,
        fcm: fcm_gw,
        store,
        registry,
    }
}

impl Rig {
    async fn register(&self, id: &str, os: &str, channels: Value, props: Value) {
        self.engine
            .register_device(&json!({
                "deviceId": id, "deviceToken": format!("tok-{id}"), "os": os,
                "channels": channels, "properties": props,
            }))
            .await
            .unwrap();
    }

    async fn push(&self, message: Value, headers: &[(&str, &str)], options: Value) -> String {
        let mut body = json!({"publishPolicy": "PUSH"});
        for (k, v) in options.as_object().unwrap() {
            body[k] = v.clone();
        }
        let delivery = DeliveryOptions::from_json(&body).unwrap();
        let mut publish = PublishOptions::default();
        for (k, v) in headers {
            publish.headers.insert((*k).into(), (*v).into());
        }
        let status = self
            .engine
            .publish("news", message.into(), publish, delivery)
            .await
            .unwrap();
        status.message_id
    }

    /// Publishes an hourly repeating push to `news` and waits until its
    /// first run has been handled; its id.
    async fn publish_repeating_push(&self) -> String {
        let delivery =
            DeliveryOptions::from_json(&json!({"publishPolicy": "PUSH", "repeatEvery": 3600}))
                .unwrap();
        let status = self
            .engine
            .publish("news", "x".into(), PublishOptions::default(), delivery)
            .await
            .unwrap();
        self.engine.settle().await;
        status.message_id
    }

    async fn counts(&self, id: &str) -> herald::MessageStatus {
        self.engine.message_status(id).await.unwrap()
    }

    async fn step(&self, ms: u64) {
        step(&self.engine, &self.clock, ms).await;
    }
}

fn tokens(gw: &RecordingTransport) -> Vec<String> {
    let mut t: Vec<String> = gw.sent().into_iter().map(|n| n.device_token).collect();
    t.sort();
    t
}

#[tokio::test]
async fn a_push_reaches_each_device_through_its_gateway_with_its_content() {
    let r = rig();
    r.register("a", "IOS", json!(["news"]), json!({})).await;
    r.register("b", "ANDROID", json!(["news"]), json!({})).await;
    r.register("c", "OSX", json!(["news"]), json!({})).await;
    r.register("d", "IOS", json!(["other"]), json!({})).await;
    let id = r
        .push(
            json!("Sale!"),
            &[
                ("ios-alert-title", "T"),
                ("android-content-title", "AT"),
                ("k", "v"),
            ],
            json!({"pushCollapseKey": "sale"}),
        )
        .await;
    r.engine.settle().await;
    assert_eq!(tokens(&r.apns), ["tok-a", "tok-c"]);
    assert_eq!(tokens(&r.fcm), ["tok-b"]);
    let ios = &r.apns.sent()[0];
    assert_eq!(ios.content.title.as_deref(), Some("T"));
    assert_eq!(ios.content.body.as_deref(), Some("Sale!"));
    assert_eq!(ios.collapse_key.as_deref(), Some("sale"));
    assert_eq!(
        ios.expires_at,
        Tick::from_millis(T0 + 259_200_000),
        "default TTL: 3 days"
    );
    let android = &r.fcm.sent()[0];
    assert_eq!(android.content.title.as_deref(), Some("AT"));
    assert_eq!(android.content.custom["k"], "v");
    let s = r.counts(&id).await;
    assert_eq!(s.status, PublishStatus::Published);
    assert_eq!(s.deliveries.push_sent, 3);
    assert_eq!(s.deliveries.push_queued, 3);
    assert_eq!(s.deliveries.push_pending(), 0);
    assert_eq!(s.deliveries.pubsub, 0);
    let stats = r.engine.push_stats();
    let by_name = |n: &str| stats.gateways.iter().find(|g| g.name == n).unwrap().clone();
    assert_eq!((by_name("apns").sent, by_name("fcm").sent), (2, 1));
    assert_eq!((by_name("apns").in_flight, stats.jobs_running), (0, 0));
    r.engine.shutdown().await;
}

#[tokio::test]
async fn push_only_skips_subscribers_and_both_reaches_both() {
    let r = rig();
    r.register("a", "IOS", json!(["news"]), json!({})).await;
    let mut sub = r.engine.subscribe("news", None).unwrap();
    r.push(json!("only push"), &[], json!({})).await;
    let both = DeliveryOptions::from_json(&json!({"publishPolicy": "BOTH"})).unwrap();
    r.engine
        .publish("news", "both".into(), PublishOptions::default(), both)
        .await
        .unwrap();
    r.engine.settle().await;
    let got = common::drain_messages(&mut sub);
    assert_eq!(
        got,
        [json!("both")],
        "PUSH reaches no subscriber; BOTH does"
    );
    assert_eq!(r.apns.sent().len(), 2);
    r.engine.shutdown().await;
}

#[tokio::test]
async fn publish_options_narrow_the_audience() {
    let r = rig();
    for (id, os, lang) in [
        ("a", "IOS", "de"),
        ("b", "ANDROID", "de"),
        ("c", "IOS", "en"),
        ("e", "ANDROID", "en"),
    ] {
        r.register(id, os, json!(["news"]), json!({ "lang": lang }))
            .await;
    }
    r.push(json!("x"), &[], json!({"pushBroadcast": "ANDROID"}))
        .await;
    r.engine.settle().await;
    assert_eq!(tokens(&r.fcm), ["tok-b", "tok-e"]);
    assert!(r.apns.sent().is_empty());
    r.push(json!("x"), &[], json!({"segmentQuery": "lang = 'de'"}))
        .await;
    r.engine.settle().await;
    assert_eq!(tokens(&r.apns), ["tok-a"]);
    assert_eq!(tokens(&r.fcm), ["tok-b", "tok-b", "tok-e"]);
    r.push(
        json!("x"),
        &[],
        json!({"pushSinglecast": ["c", "e", "ghost"], "pushBroadcast": "IOS"}),
    )
    .await;
    r.engine.settle().await;
    assert_eq!(tokens(&r.apns), ["tok-a", "tok-c"]);
    assert_eq!(r.fcm.sent().len(), 3, "e is not IOS");
    r.engine.shutdown().await;
}

#[tokio::test]
async fn a_delayed_push_reaches_the_devices_registered_at_its_time() {
    let r = rig();
    let delivery =
        DeliveryOptions::from_json(&json!({"publishPolicy": "PUSH", "publishAt": T0 + 60_000}))
            .unwrap();
    let status = r
        .engine
        .publish("news", "later".into(), PublishOptions::default(), delivery)
        .await
        .unwrap();
    assert_eq!(status.status, PublishStatus::Scheduled);
    r.register("late", "IOS", json!(["news"]), json!({})).await;
    r.step(59_999).await;
    assert!(r.apns.sent().is_empty());
    r.step(1).await;
    assert_eq!(tokens(&r.apns), ["tok-late"]);
    r.engine.shutdown().await;
}

#[tokio::test]
async fn devices_without_a_gateway_fail_and_say_why() {
    let r = rig_on(clock(), MemoryStore::new(), MemoryRegistry::new(), false);
    r.register("a", "IOS", json!(["news"]), json!({})).await;
    r.register("b", "ANDROID", json!(["news"]), json!({})).await;
    r.register("w", "WP", json!(["news"]), json!({})).await;
    let id = r.push(json!("x"), &[], json!({})).await;
    r.engine.settle().await;
    let s = r.counts(&id).await;
    assert_eq!(
        s.status,
        PublishStatus::Published,
        "part of the audience got it"
    );
    assert_eq!((s.deliveries.push_sent, s.deliveries.push_failed), (1, 2));
    let why = s.error_message.expect("names the configuration problem");
    assert!(
        why.contains("ANDROID") || why.contains("Windows Phone"),
        "{why}"
    );

    let only = r
        .push(json!("x"), &[], json!({"pushBroadcast": "ANDROID"}))
        .await;
    r.engine.settle().await;
    let s = r.counts(&only).await;
    assert_eq!(s.status, PublishStatus::Failed, "nothing could be sent");
    assert_eq!(
        s.error_message.as_deref(),
        Some("No push gateway is configured for ANDROID devices.")
    );
    r.engine.shutdown().await;
}

#[tokio::test]
async fn retries_back_off_with_jitter_and_honour_retry_after() {
    let r = rig();
    r.register("a", "IOS", json!(["news"]), json!({})).await;
    r.register("b", "IOS", json!(["news"]), json!({})).await;
    r.apns.script("tok-a", [Outcome::Retry { after: None }]);
    r.apns.script(
        "tok-b",
        [Outcome::Retry {
            after: Some(Duration::from_secs(30)),
        }],
    );
    let id = r.push(json!("x"), &[], json!({})).await;
    r.engine.settle().await;
    let s = r.counts(&id).await;
    assert_eq!(
        (s.deliveries.push_sent, s.deliveries.push_pending()),
        (0, 2)
    );
    // Full jitter after the first failure: within [0, 1 s].
    r.step(1_000).await;
    assert_eq!(r.apns.attempts("tok-a"), 2);
    assert_eq!(r.apns.attempts("tok-b"), 1, "Retry-After holds it back");
    r.step(28_999).await;
    assert_eq!(r.apns.attempts("tok-b"), 1);
    r.step(1_000).await;
    assert_eq!(r.apns.attempts("tok-b"), 2);
    let s = r.counts(&id).await;
    assert_eq!(
        (s.deliveries.push_sent, s.deliveries.push_pending()),
        (2, 0)
    );
    let ids: Vec<_> = r
        .apns
        .sent()
        .iter()
        .filter(|n| n.device_token == "tok-a")
        .map(|n| n.id)
        .collect();
    assert_eq!(ids[0], ids[1], "a retry keeps its notification id");
    r.engine.shutdown().await;
}

#[tokio::test]
async fn nothing_is_sent_after_the_time_to_live() {
    let r = rig();
    r.register("a", "IOS", json!(["news"]), json!({})).await;
    r.register("b", "IOS", json!(["news"]), json!({})).await;
    r.apns.script(
        "tok-a",
        [Outcome::Retry {
            after: Some(Duration::from_secs(20)),
        }],
    );
    r.apns.set_default(Outcome::Retry { after: None });
    let id = r.push(json!("x"), &[], json!({"pushTimeToLive": 10})).await;
    r.engine.settle().await;
    let s = r.counts(&id).await;
    assert_eq!(
        s.deliveries.push_expired, 1,
        "a Retry-After past the TTL expires at once"
    );
    for _ in 0..20 {
        r.step(1_000).await;
    }
    let s = r.counts(&id).await;
    assert_eq!(s.deliveries.push_expired, 2);
    assert_eq!(r.engine.push_stats().expired, 2);
    assert_eq!(s.deliveries.push_pending(), 0);
    assert!(
        r.apns
            .sent()
            .iter()
            .all(|n| n.expires_at == Tick::from_millis(T0 + 10_000)),
        "expiry is the run's time plus the TTL"
    );
    let last = r.apns.attempts("tok-b");
    r.step(60_000).await;
    assert_eq!(r.apns.attempts("tok-b"), last, "nothing after the TTL");
    r.engine.shutdown().await;
}

#[tokio::test]
async fn invalid_tokens_are_removed_unless_registered_again_since() {
    let r = rig();
    r.register("a", "IOS", json!(["news"]), json!({})).await;
    r.register("b", "IOS", json!(["news"]), json!({})).await;
    r.apns.script("tok-a", [Outcome::InvalidToken { at: None }]);
    // The gateway saw b's token invalid before b registered (at T0).
    r.apns.script(
        "tok-b",
        [Outcome::InvalidToken {
            at: Some(Tick::from_millis(T0 - 1)),
        }],
    );
    let id = r.push(json!("x"), &[], json!({})).await;
    r.engine.settle().await;
    let s = r.counts(&id).await;
    assert_eq!(s.deliveries.push_invalid_tokens, 1);
    assert_eq!(
        s.deliveries.push_failed, 1,
        "a 410 older than the registration counts failed"
    );
    assert_eq!(
        r.engine.device("a").await.unwrap_err().code(),
        5000,
        "removed"
    );
    let stats = r.engine.push_stats();
    assert_eq!(
        (stats.tokens_removed, stats.gateways[0].invalid_tokens),
        (1, 2)
    );
    assert!(r.engine.device("b").await.is_ok(), "kept");
    r.engine.shutdown().await;
}

#[tokio::test]
async fn the_throttle_spreads_a_run_and_status_shows_progress() {
    let r = rig();
    for i in 0..10 {
        r.register(&format!("d{i}"), "IOS", json!(["news"]), json!({}))
            .await;
    }
    let id = r
        .push(json!("x"), &[], json!({"pushThrottlePerMinute": 6}))
        .await;
    r.engine.settle().await;
    assert_eq!(r.apns.sent().len(), 1, "one now");
    let s = r.counts(&id).await;
    assert_eq!((s.deliveries.push_sent, s.deliveries.push_queued), (1, 1));
    r.step(9_999).await;
    assert_eq!(r.apns.sent().len(), 1);
    r.step(1).await;
    assert_eq!(r.apns.sent().len(), 2, "one per 10 s");
    r.step(50_000).await;
    assert_eq!(r.apns.sent().len(), 7);
    r.step(30_000).await;
    assert_eq!(r.apns.sent().len(), 10);
    let s = r.counts(&id).await;
    assert_eq!(
        (s.deliveries.push_sent, s.deliveries.push_pending()),
        (10, 0)
    );
    r.engine.shutdown().await;
}

#[tokio::test]
async fn refused_credentials_fail_the_message_pause_the_gateway_and_a_probe_resumes_it() {
    let r = rig();
    r.register("a", "IOS", json!(["news"]), json!({})).await;
    r.apns.refuse(Some(Refusal::Credentials {
        reason: "InvalidProviderToken".into(),
    }));
    let first = r.push(json!("x"), &[], json!({})).await;
    r.engine.settle().await;
    let s = r.counts(&first).await;
    assert_eq!(s.status, PublishStatus::Failed);
    let why = s.error_message.unwrap();
    assert!(
        why.contains("apns") && why.contains("InvalidProviderToken"),
        "{why}"
    );
    assert_eq!(r.apns.batches(), 1);

    let second = r.push(json!("x"), &[], json!({})).await;
    r.engine.settle().await;
    assert_eq!(r.apns.batches(), 1, "paused: later messages fail fast");
    let stats = r.engine.push_stats();
    assert!(stats.gateways[0].paused);
    assert_eq!((stats.gateways[0].refusals, stats.unroutable), (1, 2));
    assert_eq!(r.counts(&second).await.status, PublishStatus::Failed);

    r.apns.refuse(None);
    r.step(300_000).await;
    let third = r.push(json!("x"), &[], json!({})).await;
    r.engine.settle().await;
    assert_eq!(r.apns.batches(), 2, "the probe after 5 minutes");
    let s = r.counts(&third).await;
    assert_eq!(
        (s.status, s.deliveries.push_sent),
        (PublishStatus::Published, 1)
    );
    r.engine.shutdown().await;
}

#[tokio::test]
async fn an_exhausted_quota_waits_instead_of_failing() {
    let r = rig();
    r.register("a", "IOS", json!(["news"]), json!({})).await;
    r.apns.refuse(Some(Refusal::Quota {
        after: Some(Duration::from_secs(60)),
    }));
    let id = r.push(json!("x"), &[], json!({})).await;
    r.engine.settle().await;
    assert_eq!(r.counts(&id).await.deliveries.push_pending(), 1);
    r.apns.refuse(None);
    r.step(59_999).await;
    assert_eq!(r.apns.sent().len(), 0);
    r.step(1).await;
    assert_eq!(r.apns.sent().len(), 1);
    assert_eq!(r.counts(&id).await.deliveries.push_sent, 1);
    r.engine.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_repeating_message_stops_its_push_job() {
    let r = rig();
    r.register("a", "IOS", json!(["news"]), json!({})).await;
    r.apns.set_default(Outcome::Retry {
        after: Some(Duration::from_secs(10)),
    });
    let id = r.publish_repeating_push().await;
    assert_eq!(r.apns.attempts("tok-a"), 1);
    r.engine.cancel(&id).await.unwrap();
    r.step(10_000).await;
    assert_eq!(r.apns.attempts("tok-a"), 1, "no send after the cancel");
    let s = r.counts(&id).await;
    assert_eq!(s.status, PublishStatus::Cancelled);
    assert_eq!(s.deliveries.push_pending(), 0);
    assert_eq!(s.deliveries.push_failed, 1);
    r.engine.shutdown().await;
}

/// Found by the push model (a seed CI drew): a cancel left a notification
/// waiting for its retry (Retry-After 51 s) pending until that retry's
/// time. Now the cancel wakes the job: its waiting retries end at once,
/// as failed, with the clock where it was.
#[tokio::test]
async fn a_cancel_ends_the_waiting_retries_at_once() {
    let r = rig();
    r.register("a", "IOS", json!(["news"]), json!({})).await;
    r.register("b", "IOS", json!(["news"]), json!({})).await;
    r.apns.script(
        "tok-a",
        [Outcome::Retry {
            after: Some(Duration::from_secs(60)),
        }],
    );
    let id = r.publish_repeating_push().await;
    let s = r.counts(&id).await;
    assert_eq!(
        (s.deliveries.push_sent, s.deliveries.push_pending()),
        (1, 1)
    );
    r.engine.cancel(&id).await.unwrap();
    r.engine.settle().await;
    let s = r.counts(&id).await;
    assert_eq!(s.status, PublishStatus::Cancelled);
    assert_eq!(
        (
            s.deliveries.push_sent,
            s.deliveries.push_failed,
            s.deliveries.push_pending()
        ),
        (1, 1, 0),
        "the waiting retry ended with the cancel"
    );
    assert_eq!(r.apns.attempts("tok-a"), 1, "no send after the cancel");
    r.engine.shutdown().await;
}

#[tokio::test]
async fn a_restarted_engine_resumes_the_job_where_it_stopped() {
    let clock = clock();
    let (store, registry) = (MemoryStore::new(), MemoryRegistry::new());
    let first = rig_on(clock.clone(), store.clone(), registry.clone(), true);
    for i in 0..5 {
        first
            .register(&format!("d{i}"), "IOS", json!(["news"]), json!({}))
            .await;
    }
    let id = first
        .push(json!("x"), &[], json!({"pushThrottlePerMinute": 60}))
        .await;
    first.engine.settle().await;
    first.step(1_000).await;
    assert_eq!(first.apns.sent().len(), 2);
    first.engine.shutdown().await;

    let second = rig_on(clock, first.store.clone(), first.registry.clone(), true);
    second.engine.settle().await;
    second.step(10_000).await;
    let mut all = tokens(&first.apns);
    all.extend(tokens(&second.apns));
    all.sort();
    assert_eq!(
        all,
        ["tok-d0", "tok-d1", "tok-d2", "tok-d3", "tok-d4"],
        "each once"
    );
    let s = second.counts(&id).await;
    assert_eq!(
        (s.deliveries.push_sent, s.deliveries.push_pending()),
        (5, 0)
    );
    second.engine.shutdown().await;
}

#[tokio::test]
async fn a_template_send_renders_per_device_and_targets_the_templates_audience() {
    let r = rig();
    r.register(
        "a",
        "IOS",
        json!(["promo"]),
        json!({"firstName": "Ada", "lang": "de"}),
    )
    .await;
    r.register("b", "OSX", json!(["promo"]), json!({"lang": "de"}))
        .await;
    r.register(
        "c",
        "ANDROID",
        json!(["promo"]),
        json!({"firstName": "Cy", "lang": "de"}),
    )
    .await;
    r.register(
        "e",
        "IOS",
        json!(["promo"]),
        json!({"firstName": "Eve", "lang": "en"}),
    )
    .await;
    r.register("f", "IOS", json!(["news"]), json!({"lang": "de"}))
        .await;
    r.engine
        .put_template(&json!({
            "name": "sale",
            "message": "Hallo {firstName|Kunde}, {pct}% bei {shop|uns}",
            "title": "{shop|Sale}",
            "subtitle": "{{heute}}",
            "headers": {"ios-badge": "{badge|1}", "campaign": "{campaign}"},
            "audience": {"os": ["IOS"], "channel": "promo", "segmentQuery": "lang = {lang}"},
        }))
        .await
        .unwrap();
    let status = r
        .engine
        .push_template(
            "sale",
            &json!({"templateValues": {"pct": 20, "lang": "de", "firstName": "NotUsed?"}}),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(status.status, PublishStatus::Published);
    r.engine.settle().await;
    assert_eq!(
        tokens(&r.apns),
        ["tok-a", "tok-b"],
        "IOS covers OSX; segment and channel narrow"
    );
    assert!(r.fcm.sent().is_empty());
    let by = |t: &str| {
        r.apns
            .sent()
            .into_iter()
            .find(|n| n.device_token == t)
            .unwrap()
    };
    let a = by("tok-a");
    assert_eq!(
        a.content.body.as_deref(),
        Some("Hallo NotUsed?, 20% bei uns"),
        "send values first, then the registration, then the default"
    );
    assert_eq!(a.content.title.as_deref(), Some("Sale"));
    assert_eq!(a.content.subtitle.as_deref(), Some("{heute}"));
    assert_eq!(a.content.badge, Some(1));
    assert_eq!(
        a.content.custom["campaign"], "",
        "no value, no default: empty"
    );

    let plain = r
        .engine
        .push_template(
            "sale",
            &json!({"templateValues": {"pct": 5, "lang": "en"}}),
            Default::default(),
        )
        .await
        .unwrap();
    r.engine.settle().await;
    let e = by("tok-e");
    assert_eq!(
        e.content.body.as_deref(),
        Some("Hallo Eve, 5% bei uns"),
        "the device's property"
    );
    assert_eq!(r.counts(&plain.message_id).await.deliveries.push_sent, 1);

    let injected = r
        .engine
        .push_template(
            "sale",
            &json!({"templateValues": {"pct": 1, "lang": "x' OR '1'='1"}}),
            Default::default(),
        )
        .await
        .unwrap();
    r.engine.settle().await;
    assert_eq!(
        r.counts(&injected.message_id).await.deliveries.push_queued,
        0,
        "a value in the segment query is a literal, never syntax"
    );
    r.engine.shutdown().await;
}

#[tokio::test]
async fn template_sends_refuse_unknown_templates_and_bad_values() {
    let r = rig();
    let e = r
        .engine
        .push_template("nope", &json!({}), Default::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), 5050);
    r.engine
        .put_template(&json!({"name": "t", "message": "x"}))
        .await
        .unwrap();
    for bad in [
        json!({"templateValues": [1]}),
        json!({"templateValues": {"a": {"b": 1}}}),
        json!("x"),
    ] {
        let e = r
            .engine
            .push_template("t", &bad, Default::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), 5013, "{bad}");
    }
    let e = r
        .engine
        .push_template("t", &json!({"publishAt": 1}), Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        5003,
        "the timing options are checked as for a publish"
    );
    let (plain, _clock) = common::engine();
    plain.put_template(&json!({"name": "t"})).await.unwrap();
    let e = plain
        .push_template("t", &json!({}), Default::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), 5014, "no gateway");
    plain.shutdown().await;
    r.engine.shutdown().await;
}

#[tokio::test]
async fn a_delayed_template_send_renders_what_was_sent() {
    let r = rig();
    r.register("a", "IOS", json!(["default"]), json!({})).await;
    r.engine
        .put_template(&json!({"name": "t", "message": "v1 {x}"}))
        .await
        .unwrap();
    let s = r
        .engine
        .push_template(
            "t",
            &json!({"templateValues": {"x": "1"}, "publishAt": T0 + 1_000}),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(s.status, PublishStatus::Scheduled);
    r.engine
        .put_template(&json!({"name": "t", "message": "v2 {x}"}))
        .await
        .unwrap();
    r.step(1_000).await;
    assert_eq!(r.apns.sent()[0].content.body.as_deref(), Some("v1 1"));
    r.engine.shutdown().await;
}

#[tokio::test]
async fn a_job_keeps_at_most_k_batches_in_flight() {
    let clock = clock();
    let apns = RecordingTransport::new("apns");
    let engine = Engine::builder()
        .clock(clock.clone())
        .push_gateway(PushBroadcast::IOS, apns.clone())
        .push_in_flight(2)
        .build();
    for i in 0..4_500 {
        engine
            .register_device(&json!({"deviceId": format!("d{i:05}"), "deviceToken": format!("t{i:05}"), "os": "IOS"}))
            .await
            .unwrap();
    }
    apns.hold(true);
    let delivery = DeliveryOptions::from_json(&json!({"publishPolicy": "PUSH"})).unwrap();
    let id = engine
        .publish("default", "x".into(), PublishOptions::default(), delivery)
        .await
        .unwrap()
        .message_id;
    let mut spins = 0;
    while apns.in_flight() < 2 {
        tokio::task::yield_now().await;
        spins += 1;
        assert!(spins < 100_000, "two batches reach the gateway");
    }
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(apns.in_flight(), 2, "never more than K batches at once");
    let s = engine.message_status(&id).await.unwrap();
    assert_eq!(
        s.deliveries.push_queued, 0,
        "nothing is checkpointed before its batch answers"
    );
    apns.hold(false);
    engine.settle().await;
    assert_eq!(apns.max_in_flight(), 2);
    assert_eq!(apns.batches(), 5, "pages of 1000");
    let mut sent: Vec<String> = apns.sent().into_iter().map(|n| n.device_token).collect();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 4_500, "each device once");
    let s = engine.message_status(&id).await.unwrap();
    assert_eq!(
        (s.deliveries.push_sent, s.deliveries.push_pending()),
        (4_500, 0)
    );
    engine.shutdown().await;
}
