//! Three `herald::Engine`s (nodes), each on its own `PgStore` on one
//! schema, on one `ManualClock`: a run published on a node that then
//! stops fires once, on time, on another; thirty messages published
//! across the nodes fire each run exactly once.
//!
//! Each node has its own subscriber on the channel (as each server has
//! its own): the runs a node fired reach its subscriber, so the
//! subscribers together see each run once.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::DateTime;
use herald::{
    Clock, DeliveryOptions, Engine, ManualClock, PublishOptions, PublishStatus, Subscription,
};
use herald_core::Tick;
use herald_postgres::PgStore;
use serde_json::json;
use support::{CloseNow, Scratch};

/// 2027-01-15T08:00:00Z.
const T0: u64 = 1_800_000_000_000;
const HORIZON_MS: u64 = 2_000;

struct Node {
    engine: Engine,
    store: PgStore,
    sub: Subscription,
    up: bool,
}

struct Cluster {
    clock: ManualClock,
    nodes: Vec<Node>,
    // Last: dropping it drops the schema.
    scratch: Scratch,
}

impl Cluster {
    async fn new(name: &str, n: usize) -> Option<Self> {
        let clock = ManualClock::new(Tick::from_millis(T0));
        let scratch = Scratch::at(name, clock.clone()).await?;
        let mut nodes = Vec::new();
        for _ in 0..n {
            let store = scratch.reconnect().await;
            let engine = Engine::builder()
                .clock(clock.clone())
                .store(store.clone())
                .registry(store.clone())
                .templates(store.clone())
                .horizon(Duration::from_millis(HORIZON_MS))
                .build();
            let sub = engine.subscribe("news", None).expect("subscribe");
            engine.settle().await;
            nodes.push(Node {
                engine,
                store,
                sub,
                up: true,
            });
        }
        Some(Self {
            clock,
            nodes,
            scratch,
        })
    }

    async fn settle(&self) {
        for n in self.nodes.iter().filter(|n| n.up) {
            n.engine.settle().await;
        }
    }

    /// Moves the clock to `to` in steps of `by` ms, settling every live
    /// node at each step; returns each received run's name and the clock
    /// when it was seen, with the node that fired it.
    async fn run_to(&mut self, to: u64, by: u64) -> Vec<(String, u64, usize)> {
        let mut seen = Vec::new();
        loop {
            self.settle().await;
            // Twice: a node woken by a hint during the first pass reserves
            // and fires in the second.
            self.settle().await;
            let now = self.clock.now().as_millis();
            for (i, n) in self.nodes.iter_mut().enumerate() {
                while let Some(m) = n.sub.try_recv() {
                    seen.push((m.expect("no lag").headers()["name"].clone(), now, i));
                }
            }
            if now >= to {
                return seen;
            }
            self.clock.set(Tick::from_millis((now + by).min(to)));
        }
    }

    async fn stop(&mut self, i: usize) {
        self.nodes[i].engine.shutdown().await;
        self.nodes[i].up = false;
    }

    async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].up {
                self.stop(i).await;
            }
            self.nodes[i].store.close_now();
        }
        self.scratch.store.close_now();
    }
}

async fn publish_at(engine: &Engine, name: &str, due: u64) -> (String, PublishStatus) {
    let mut publish = PublishOptions::default();
    publish.headers.insert("name".into(), name.into());
    let delivery = DeliveryOptions {
        publish_at: DateTime::from_timestamp_millis(due as i64),
        ..DeliveryOptions::default()
    };
    let st = engine
        .publish("news", json!({ "name": name }).into(), publish, delivery)
        .await
        .unwrap_or_else(|e| panic!("publish {name}: {e}"));
    (st.message_id, st.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_published_on_a_node_that_stopped_fires_on_another() {
    let Some(mut c) = Cluster::new("cluster_stop", 3).await else {
        return;
    };
    let due = T0 + 10_000;
    let (id, status) = publish_at(&c.nodes[0].engine, "later", due).await;
    assert_eq!(status, PublishStatus::Scheduled);
    assert_eq!(
        c.nodes[0].engine.scheduled_len(),
        0,
        "beyond the horizon: left to the store"
    );
    c.stop(0).await;
    let seen = c.run_to(due + 3_000, 100).await;
    assert_eq!(seen.len(), 1, "fired exactly once: {seen:?}");
    let (name, when, node) = &seen[0];
    assert_eq!(name, "later");
    assert_eq!(*when, due, "on time");
    assert_ne!(*node, 0, "by a node that is up");
    let st = c.nodes[2].engine.message_status(&id).await.expect("status");
    assert_eq!(st.status, PublishStatus::Published);
    assert_eq!(st.deliveries.runs, 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_messages_across_three_nodes_fire_once_each() {
    let Some(mut c) = Cluster::new("cluster_30", 3).await else {
        return;
    };
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..30u64 {
        let node = &c.nodes[(i % 3) as usize].engine;
        let name = format!("m{i:02}");
        // Within the horizon (in the publishing node's wheel) and beyond
        // it (left to the store, reserved by some node later).
        let due = T0 + 300 + i * 211;
        publish_at(node, &name, due).await;
        expected.insert(name, due);
    }
    let seen = c.run_to(T0 + 10_000, 100).await;
    let per_node: Vec<usize> = (0..3)
        .map(|i| seen.iter().filter(|s| s.2 == i).count())
        .collect();
    assert_eq!(
        per_node.iter().sum::<usize>(),
        30,
        "the nodes' subscribers together saw each run once: {per_node:?}"
    );
    let mut got: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (name, when, _) in &seen {
        got.entry(name.clone()).or_default().push(*when);
    }
    // Seen at the first 100 ms step at or after the due time.
    let step = |due: u64| T0 + (due - T0).div_ceil(100) * 100;
    let expected: BTreeMap<String, Vec<u64>> = expected
        .into_iter()
        .map(|(k, due)| (k, vec![step(due)]))
        .collect();
    assert_eq!(got, expected, "each run once, on time");
    let won: u64 = c.nodes.iter().map(|n| n.engine.stats().claims_won).sum();
    assert_eq!(won, 30, "one claim won per run");
    assert!(
        per_node.iter().filter(|&&n| n > 0).count() > 1,
        "the runs are spread over the nodes: {per_node:?}"
    );
    c.shutdown().await;
}
