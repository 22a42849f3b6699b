//! `PgBus`, the cluster bus on `LISTEN/NOTIFY`: the `ClusterBus`
//! conformance suite with two handles (two connections, as two nodes) on
//! one fresh schema's channel; a killed listener connection is announced
//! and the bus listens again; two engines with a `PgBus` each deliver each
//! other's runs.

mod support;

use std::sync::Arc;
use std::time::Duration;

use herald::bus::{BusEvent, ClusterBus};
use herald::{DeliveryOptions, Engine, MemoryStore, PublishOptions};
use herald_postgres::PgBus;
use herald_testkit::bus_conformance;
use support::{database_url, drop_schema, fresh_schema};

/// Two handles on one fresh schema's bus; the schema goes when dropped.
struct Pair {
    a: PgBus,
    b: PgBus,
    url: String,
    schema: String,
}

impl Pair {
    async fn new(name: &str, capacity: usize) -> Option<Self> {
        let url = database_url()?;
        let schema = fresh_schema(name);
        let a = PgBus::with_capacity(&url, &schema, capacity)
            .await
            .expect("bus a");
        let b = PgBus::with_capacity(&url, &schema, capacity)
            .await
            .expect("bus b");
        Some(Self { a, b, url, schema })
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.a.close();
        self.b.close();
        drop_schema(&self.url, &self.schema);
    }
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(pair) = Pair::new("busc", 256).await else {
                    return;
                };
                bus_conformance::$check(pair.a.clone(), pair.b.clone()).await;
            }
        )*
    };
}

conformance!(
    frames_reach_every_subscription_in_each_senders_order,
    a_subscription_sees_only_frames_sent_after_it,
    frames_up_to_max_frame_arrive_intact,
    a_dropped_subscription_does_not_stop_the_bus,
    a_subscription_that_fell_behind_is_told_before_the_gap,
);

async fn next(rx: &mut tokio::sync::mpsc::Receiver<BusEvent>) -> BusEvent {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("an event in time")
        .expect("subscription open")
}

/// The listener's connection is terminated by the server: the bus listens
/// again by itself and tells the subscription before the next frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_is_announced_and_replaced() {
    let Some(pair) = Pair::new("bus_killed", 256).await else {
        return;
    };
    let mut rx = pair.b.subscribe().await.expect("subscribe");
    pair.a.send(vec![Arc::from(&b"one"[..])]).await.unwrap();
    assert_eq!(next(&mut rx).await, BusEvent::Frame(Arc::from(&b"one"[..])));

    let (admin, _conn) = support::connect(&pair.url).await;
    let killed = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE query = $1",
            &[&format!("LISTEN \"{}\"", pair.b.channel())],
        )
        .await
        .expect("terminate the listener");
    let killed: i64 = killed.get(0);
    assert_eq!(killed, 1, "one listener connection for b");

    // Sent until one arrives: the first ones may go out while b is not
    // listening (and are lost, which the notice says).
    let mut sent = 0;
    let got = loop {
        sent += 1;
        pair.a
            .send(vec![Arc::from(format!("two-{sent}").as_bytes())])
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(event)) => break event,
            Ok(None) => panic!("the subscription ended"),
            Err(_) => assert!(sent < 150, "b never listened again"),
        }
    };
    assert_eq!(got, BusEvent::Lagged { missed: 0 }, "told first");
    match next(&mut rx).await {
        BusEvent::Frame(f) => assert!(f.starts_with(b"two-"), "{f:?}"),
        other => panic!("{other:?}"),
    }
    assert!(pair.b.is_connected());
}

/// Two engines on one shared store, each with its own `PgBus`: a run
/// published on one reaches the other's subscriber once, and its record
/// counts both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_deliver_each_others_runs() {
    let Some(pair) = Pair::new("bus_engines", 1024).await else {
        return;
    };
    let store = MemoryStore::new_shared();
    let one = Engine::builder()
        .store(store.clone())
        .bus(pair.a.clone())
        .node_id("one")
        .build();
    let two = Engine::builder()
        .store(store)
        .bus(pair.b.clone())
        .node_id("two")
        .build();
    let mut on_one = one.subscribe("news", None).unwrap();
    let mut on_two = two.subscribe("news", None).unwrap();
    one.settle().await;
    two.settle().await;
    // The bus subscriptions are made by the engines' receiver tasks: wait
    // until both listen (a frame from each arrives at the other).
    let st = one
        .publish(
            "news",
            serde_json::json!("hello").into(),
            PublishOptions::default(),
            DeliveryOptions::default(),
        )
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), on_one.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        first.message().to_value().unwrap(),
        serde_json::json!("hello")
    );
    let remote = tokio::time::timeout(Duration::from_secs(30), on_two.recv())
        .await
        .expect("the run reached the other engine")
        .unwrap();
    match remote {
        Ok(m) => assert_eq!(m.message().to_value().unwrap(), serde_json::json!("hello")),
        // The other engine subscribed to the bus a moment after the frame
        // went out: it is told, never silent.
        Err(lag) => panic!("lagged {lag:?} instead of the run"),
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = two.message_status(&st.message_id).await.unwrap();
        if s.deliveries.pubsub == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s:?}");
        tokio::task::yield_now().await;
    }
    assert!(
        on_one.try_recv().is_none() && on_two.try_recv().is_none(),
        "once each"
    );
    one.shutdown().await;
    two.shutdown().await;
}
