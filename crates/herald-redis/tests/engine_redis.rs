//! Two engines (nodes) on one shared store, each with its own `RedisBus`
//! on one channel (`REDIS_URL`): a run published on one node reaches the
//! subscribers of both, once each, and the record counts both
//! deliveries; a node whose bus subscription was killed tells its
//! subscribers, then receives later runs.
//!
//! The in-process version of these checks is
//! `crates/herald/tests/engine_cluster.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use herald::bus::{BusError, BusEvent, BusFuture, ClusterBus};
use herald::{
    DeliveryOptions, Engine, EngineStats, ManualClock, MemoryStore, MessageStatus, PublishOptions,
    Subscription,
};
use herald_core::Tick;
use herald_redis::RedisBus;
use serde_json::json;
use tokio::sync::mpsc;

/// A `RedisBus` that says when a subscription is made: the engine
/// subscribes in the background, and a test must not publish before every
/// node listens (Redis pub/sub keeps nothing for late subscribers).
#[derive(Debug)]
struct Announcing {
    bus: RedisBus,
    subscribed: mpsc::UnboundedSender<()>,
}

impl ClusterBus for Announcing {
    fn send(&self, frames: Vec<Arc<[u8]>>) -> BusFuture<'_, ()> {
        self.bus.send(frames)
    }
    fn subscribe(&self) -> BusFuture<'_, mpsc::Receiver<BusEvent>> {
        Box::pin(async move {
            let rx = self.bus.subscribe().await?;
            let _ = self.subscribed.send(());
            Ok::<_, BusError>(rx)
        })
    }
    fn max_frame(&self) -> usize {
        self.bus.max_frame()
    }
    fn is_connected(&self) -> bool {
        self.bus.is_connected()
    }
}

struct Node {
    engine: Engine,
    sub: Subscription,
}

/// Two nodes on one store, with buses connected as `urls` say, each
/// subscribed to the bus and with one subscriber on "news".
async fn cluster(urls: [&str; 2], channel: &str) -> [Node; 2] {
    let clock = ManualClock::new(Tick::from_millis(1_800_000_000_000));
    let store = MemoryStore::new_shared();
    let (subscribed, mut announced) = mpsc::unbounded_channel();
    let mut nodes = Vec::new();
    for (i, url) in urls.into_iter().enumerate() {
        let engine = Engine::builder()
            .clock(clock.clone())
            .store(store.clone())
            .bus(Announcing {
                bus: bus(url, channel).await,
                subscribed: subscribed.clone(),
            })
            .node_id(&format!("node-{i}"))
            .build();
        let sub = engine.subscribe("news", None).expect("subscribe");
        engine.settle().await;
        nodes.push(Node { engine, sub });
    }
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(20), announced.recv())
            .await
            .expect("both nodes subscribe to the bus within 20 s");
    }
    nodes.try_into().map_err(|_| ()).expect("two nodes")
}

async fn publish(engine: &Engine, body: &str) -> MessageStatus {
    engine
        .publish(
            "news",
            json!(body).into(),
            PublishOptions::default(),
            DeliveryOptions::default(),
        )
        .await
        .expect("publish")
}

/// The next run `sub` receives, or its lag notice (bounded wait).
async fn next_run(sub: &mut Subscription) -> Result<serde_json::Value, herald::Lagged> {
    tokio::time::timeout(Duration::from_secs(20), sub.recv())
        .await
        .expect("a run within 20 s")
        .expect("the subscription is live")
        .map(|m| m.message().to_value().expect("a JSON body"))
}

/// Waits (bounded) until `id`'s record counts `pubsub` deliveries: the
/// other node adds its own after its subscriber has the run.
async fn await_pubsub(engine: &Engine, id: &str, pubsub: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = engine.message_status(id).await.expect("status");
        if status.deliveries.pubsub == pubsub {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pubsub of {id} stayed {:?}, expected {pubsub}",
            status.deliveries
        );
        tokio::task::yield_now().await;
    }
}

/// The engine's stats once `done` says so (bounded wait), or the last
/// ones seen.
async fn await_stats(engine: &Engine, done: impl Fn(&EngineStats) -> bool) -> EngineStats {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stats = engine.stats();
        if done(&stats) || tokio::time::Instant::now() >= deadline {
            return stats;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_on_one_node_reaches_the_subscribers_of_both_once() {
    let Some(url) = redis_url() else { return };
    let channel = fresh_channel("engine");
    let [mut a, mut b] = cluster([&url, &url], &channel).await;

    let st = publish(&a.engine, "from a").await;
    assert_eq!(st.deliveries.pubsub, 1, "A's own subscriber, at once");
    assert_eq!(next_run(&mut a.sub).await, Ok(json!("from a")));
    assert_eq!(
        next_run(&mut b.sub).await,
        Ok(json!("from a")),
        "over Redis"
    );
    await_pubsub(&b.engine, &st.message_id, 2).await;

    let st = publish(&b.engine, "from b").await;
    assert_eq!(next_run(&mut b.sub).await, Ok(json!("from b")));
    assert_eq!(
        next_run(&mut a.sub).await,
        Ok(json!("from b")),
        "over Redis"
    );
    await_pubsub(&a.engine, &st.message_id, 2).await;

    for (name, n) in [("a", &mut a), ("b", &mut b)] {
        n.engine.settle().await;
        assert!(n.sub.try_recv().is_none(), "node {name}: each run once");
        // A node counts a frame sent when Redis acknowledged its PUBLISH,
        // which may come after the other node already has the frame.
        let stats = await_stats(&n.engine, |s| s.bus_sent == 1).await;
        assert_eq!(stats.bus_sent, 1, "node {name}: one frame per run it fired");
        assert_eq!(stats.bus_received, 1, "node {name}: the other node's run");
        assert_eq!(stats.bus_lags, 0, "node {name}");
        assert!(stats.bus_connected, "node {name}");
    }
    a.engine.shutdown().await;
    b.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_bus_connection_was_killed_tells_its_subscribers() {
    let Some(url) = redis_url() else { return };
    let mut admin = admin(&url).await;
    let user = User::create(&mut admin, &url, "engine-kill").await;
    let channel = fresh_channel("engine-kill");
    let [a, mut b] = cluster([&url, &user.url], &channel).await;

    assert_eq!(
        user.kill(&mut admin, "pubsub").await,
        1,
        "B's bus subscription"
    );
    assert!(
        next_run(&mut b.sub).await.is_err(),
        "B's subscriber is told it may have missed runs"
    );
    // B is subscribed again (the notice comes after the new SUBSCRIBE).
    publish(&a.engine, "later").await;
    assert_eq!(next_run(&mut b.sub).await, Ok(json!("later")));
    assert_eq!(b.engine.stats().bus_lags, 1);
    a.engine.shutdown().await;
    b.engine.shutdown().await;
    user.delete(&mut admin).await;
}
