//! Several engines (nodes) on one shared store (`MemoryStore::new_shared`,
//! the in-process stand-in for one PostgreSQL): every run fires once, on
//! some node, on time; runs of a node that stopped are fired by the
//! others; a cancel on any node stops every run; a node holds only the runs
//! due within its horizon; a node starting on a shared store leaves other
//! nodes' live claims alone.
//!
//! Each node has its own in-process transport (as each server has its own
//! subscribers), with one subscriber per node on the channel: the runs a
//! node fired reach its subscriber, so the subscribers together see each
//! run once.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use herald::{
    Clock, Engine, ManualClock, MemoryStore, MessageId, PublishStatus, Start, Store, Subscription,
};
use herald_core::Tick;
use serde_json::json;

const HORIZON_MS: u64 = 2_000;

struct Node {
    engine: Engine,
    sub: Subscription,
    up: bool,
}

struct Cluster {
    clock: ManualClock,
    _store: MemoryStore,
    nodes: Vec<Node>,
}

impl Cluster {
    async fn new(n: usize) -> Self {
        let clock = clock();
        let store = MemoryStore::new_shared();
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(Self::node(&clock, &store).await);
        }
        Self {
            clock,
            _store: store,
            nodes,
        }
    }

    async fn node(clock: &ManualClock, store: &MemoryStore) -> Node {
        let engine = builder(clock)
            .store(store.clone())
            .horizon(Duration::from_millis(HORIZON_MS))
            .build();
        let sub = engine.subscribe("news", None).expect("subscribe");
        engine.settle().await;
        Node {
            engine,
            sub,
            up: true,
        }
    }

    async fn settle(&self) {
        for n in self.nodes.iter().filter(|n| n.up) {
            n.engine.settle().await;
        }
    }

    /// Moves the clock to `to` in steps of `by` ms, settling every live
    /// node at each step; returns each received run's message and the
    /// clock when it was seen, with the node that fired it.
    async fn run_to(&mut self, to: u64, by: u64) -> Vec<(serde_json::Value, u64, usize)> {
        let mut seen = Vec::new();
        loop {
            self.settle().await;
            // Twice: a node woken by a hint during the first pass reserves
            // and fires in the second.
            self.settle().await;
            let now = self.clock.now().as_millis();
            for (i, n) in self.nodes.iter_mut().enumerate() {
                for m in drain_messages(&mut n.sub) {
                    seen.push((m, now, i));
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
}

/// A one-off published on A, due beyond every node's horizon, fires once
/// on B or C after A stopped, at its due time.
#[tokio::test]
async fn a_run_published_on_a_node_that_stopped_fires_on_another() {
    let mut c = Cluster::new(3).await;
    let due = T0 + 10_000;
    let st = publish_with(&c.nodes[0].engine, "news", json!("later"), at(due))
        .await
        .expect("publish");
    assert_eq!(st.status, PublishStatus::Scheduled);
    assert_eq!(
        c.nodes[0].engine.scheduled_len(),
        0,
        "beyond the horizon: left to the store"
    );
    c.stop(0).await;
    let seen = c.run_to(due + 3_000, 100).await;
    assert_eq!(seen.len(), 1, "fired exactly once: {seen:?}");
    let (body, when, node) = &seen[0];
    assert_eq!(body, &json!("later"));
    assert_eq!(*when, due, "on time");
    assert_ne!(*node, 0, "by a node that is up");
    assert_status(
        &c.nodes[2].engine,
        &st.message_id,
        PublishStatus::Published,
        1,
    )
    .await;
}

/// Sixty messages published on three nodes (one-offs and repeats, due
/// before and beyond the horizon): every run fires exactly once, on time,
/// and the nodes' claims add up to the runs.
#[tokio::test]
async fn every_run_fires_once_across_three_nodes() {
    let mut c = Cluster::new(3).await;
    let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..60u64 {
        let node = &c.nodes[(i % 3) as usize].engine;
        let body = format!("m{i}");
        let first = T0 + 300 + i * 97;
        if i % 4 == 0 {
            // Three runs, a second apart.
            let st = publish_with(
                node,
                "news",
                json!(body),
                every(1, Some(first), Some(first + 2_500)),
            )
            .await
            .expect("publish repeat");
            assert_eq!(st.status, PublishStatus::Scheduled);
            expected.insert(body, vec![first, first + 1_000, first + 2_000]);
        } else {
            publish_with(node, "news", json!(body), at(first))
                .await
                .expect("publish");
            expected.insert(body, vec![first]);
        }
    }
    let seen = c.run_to(T0 + 12_000, 100).await;
    let mut got: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (body, when, _) in &seen {
        got.entry(body.as_str().expect("a string").to_owned())
            .or_default()
            .push(*when);
    }
    // Seen at the first 100 ms step at or after the due time.
    let step = |due: u64| T0 + (due - T0).div_ceil(100) * 100;
    let expected: BTreeMap<String, Vec<u64>> = expected
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().map(step).collect()))
        .collect();
    assert_eq!(got, expected, "each run once, on time");
    let runs: u64 = expected.values().map(|v| v.len() as u64).sum();
    let won: u64 = c.nodes.iter().map(|n| n.engine.stats().claims_won).sum();
    assert_eq!(won, runs, "one claim won per run");
    let firing_nodes = seen
        .iter()
        .map(|(_, _, n)| *n)
        .collect::<std::collections::BTreeSet<_>>();
    assert!(
        firing_nodes.len() > 1,
        "the runs are spread over the nodes: {firing_nodes:?}"
    );
}

/// A cancel on C of a repeating message published on A: cancelled at
/// once, and no later run fires on any node.
#[tokio::test]
async fn a_cancel_on_another_node_stops_every_run() {
    let mut c = Cluster::new(3).await;
    let st = publish_with(
        &c.nodes[0].engine,
        "news",
        json!("tick"),
        every(1, Some(T0 + 1_000), None),
    )
    .await
    .expect("publish");
    let seen = c.run_to(T0 + 2_500, 100).await;
    assert_eq!(seen.len(), 2, "runs at +1 s and +2 s: {seen:?}");
    let cancelled = c.nodes[2]
        .engine
        .cancel(&st.message_id)
        .await
        .expect("cancel on another node");
    assert_eq!(cancelled.status, PublishStatus::Cancelled);
    assert_status(
        &c.nodes[1].engine,
        &st.message_id,
        PublishStatus::Cancelled,
        2,
    )
    .await;
    let seen = c.run_to(T0 + 10_000, 100).await;
    assert_eq!(seen, vec![], "no run after the cancel, on any node");
    let lost: u64 = c.nodes.iter().map(|n| n.engine.stats().claims_lost).sum();
    assert!(lost >= 1, "the wheel that held the next run lost its claim");
}

/// A repeat keeps running when the node that published it (and fired its
/// first runs) stops: the other nodes take it over, each run late by at
/// most a reservation's hold (a horizon / 8 = 250 ms) plus one look (every
/// 125-375 ms, jittered), plus the test's 100 ms step.
#[tokio::test]
async fn repeats_continue_when_the_publishing_node_stops() {
    let mut c = Cluster::new(3).await;
    let st = publish_with(
        &c.nodes[0].engine,
        "news",
        json!("beat"),
        every(1, Some(T0 + 1_000), Some(T0 + 10_500)),
    )
    .await
    .expect("publish");
    let before = c.run_to(T0 + 3_000, 100).await;
    assert_eq!(before.len(), 3, "{before:?}");
    c.stop(0).await;
    let after = c.run_to(T0 + 15_000, 100).await;
    let whens: Vec<u64> = after.iter().map(|(_, w, _)| *w).collect();
    assert_eq!(whens.len(), 7, "the other seven runs, once each: {after:?}");
    for (k, w) in whens.iter().enumerate() {
        let due = T0 + 4_000 + 1_000 * k as u64;
        assert!(
            *w >= due && *w <= due + HORIZON_MS / 8 + 3 * (HORIZON_MS / 8) / 2 + 100,
            "run due at {due} fired at {w}: late by at most a hold and a look"
        );
    }
    assert!(after.iter().all(|(_, _, n)| *n != 0));
    assert_status(
        &c.nodes[1].engine,
        &st.message_id,
        PublishStatus::Published,
        10,
    )
    .await;
}

/// A node's wheel holds only runs due within its horizon: a thousand
/// messages an hour ahead cost it nothing until they come close.
#[tokio::test]
async fn a_node_holds_only_runs_within_its_horizon() {
    let mut c = Cluster::new(1).await;
    let due = T0 + 3_600_000;
    for i in 0..1_000 {
        publish_with(&c.nodes[0].engine, "news", json!(i), at(due))
            .await
            .expect("publish");
    }
    assert_eq!(c.nodes[0].engine.scheduled_len(), 0);
    c.clock.set(Tick::from_millis(due - HORIZON_MS - 1));
    c.settle().await;
    assert_eq!(c.nodes[0].engine.scheduled_len(), 0, "not yet within");
    let seen = c.run_to(due, 500).await;
    assert_eq!(seen.len(), 1_000);
    assert!(seen.iter().all(|(_, w, _)| *w == due));
    assert_eq!(c.nodes[0].engine.stats().reserved, 1_000);
}

/// A node starting on a shared store does not take back a claim another
/// node holds (an exclusive store's engine would): the run is handed out
/// again only when its lease ends.
#[tokio::test]
async fn a_node_starting_leaves_live_claims_of_other_nodes_alone() {
    let clock = clock();
    let store = MemoryStore::new_shared();
    let envelope = herald_testkit::store_conformance::small_envelope(7);
    let lease_until = T0 + 30_000;
    store
        .insert(
            envelope.clone(),
            Start::Claimed {
                due: Tick::from_millis(T0),
                lease_until: Tick::from_millis(lease_until),
            },
        )
        .await
        .expect("another node's claim");
    let engine = builder(&clock)
        .store(store.clone())
        .lease(Duration::from_secs(10))
        .build();
    let mut sub = engine.subscribe("default", None).expect("subscribe");
    engine.settle().await;
    let id = envelope.id.to_string();
    assert!(
        matches!(
            store.get(envelope.id).await.unwrap().unwrap().state,
            herald::RunState::Firing { .. }
        ),
        "still the other node's claim"
    );
    step_to(&engine, &clock, lease_until - 1).await;
    assert_eq!(drain(&mut sub).len(), 0, "the lease holds");
    // Released at the first half-lease look after it ended, then fired.
    step_to(&engine, &clock, lease_until + 5_001).await;
    engine.settle().await;
    assert_eq!(drain(&mut sub).len(), 1, "delivered again after the lease");
    assert_status(&engine, &id, PublishStatus::Published, 1).await;
    assert_eq!(engine.stats().recovered_runs, 1);
    engine.shutdown().await;
}

/// An engine on `store` with the tests' horizon and a settled subscriber
/// on the default channel.
async fn watched_engine(clock: &ManualClock, store: &GatedStore) -> (Engine, Subscription) {
    let engine = builder(clock)
        .store(store.clone())
        .horizon(Duration::from_millis(HORIZON_MS))
        .build();
    let sub = engine.subscribe("default", None).expect("subscribe");
    engine.settle().await;
    (engine, sub)
}

/// A node that fell behind (its claims took longer than a reservation's
/// hold) claims its own late runs before it looks for more: taking over
/// other nodes' late runs then would make every late node race every other
/// for the same runs when the store is short of time. Once caught up it
/// takes over the run whose reservation ended, as before.
#[tokio::test]
async fn a_node_behind_claims_its_own_late_runs_before_taking_over() {
    let clock = clock();
    let store = GatedStore::shared();
    // Another node's run, reserved by that node until T0 + 1,250 (it then
    // stops answering).
    let other = herald_testkit::store_conformance::small_envelope(7);
    store
        .inner
        .insert(other.clone(), Start::At(Tick::from_millis(T0 + 1_000)))
        .await
        .expect("insert");
    let held = store
        .inner
        .reserve_due(clock.now(), Tick::from_millis(T0 + 2_000), 250, 10)
        .await
        .expect("reserve");
    assert_eq!(held.len(), 1);
    let (engine, mut sub) = watched_engine(&clock, &store).await;
    let mut own = Vec::new();
    for due in [T0 + 1_000, T0 + 1_100] {
        let st = publish_with(&engine, "default", json!(due), at(due))
            .await
            .expect("publish");
        own.push(st.message_id.parse::<MessageId>().unwrap());
    }
    // The claim of the first run takes 505 ms: the second is then 400 ms
    // late (the hold is 250 ms) and the other node's reservation ended.
    store.claim.arm();
    clock.set(Tick::from_millis(T0 + 995));
    store.claim.wait_entered().await;
    clock.set(Tick::from_millis(T0 + 1_500));
    store.log().clear();
    store.claim.open();
    engine.settle().await;
    engine.settle().await;
    assert_eq!(
        *store.log(),
        vec![
            Asked::Claim(vec![own[1]]),
            Asked::Reserved(vec![other.id]),
            Asked::Claim(vec![other.id]),
        ],
        "its own late run first, then the look that takes over"
    );
    assert_eq!(engine.stats().looks_deferred, 1);
    let mut got: Vec<MessageId> = drain(&mut sub).iter().map(|m| m.message_id()).collect();
    got.sort_unstable();
    let mut want = vec![own[0], own[1], other.id];
    want.sort_unstable();
    assert_eq!(got, want, "each run delivered once");
    engine.shutdown().await;
}

/// A run claimed ahead of its due time is delivered at its due time even
/// while the driver waits for the store (here a release of expired leases
/// that does not answer): the store's round trips are not on the path
/// from a held run's due time to its subscribers.
#[tokio::test(start_paused = true)]
async fn a_held_run_is_delivered_on_time_while_the_store_is_slow() {
    let clock = clock();
    let store = GatedStore::shared();
    let (engine, mut sub) = watched_engine(&clock, &store).await;
    // Due 3 ms after the first release of expired leases (a second after
    // the start, on a shared store).
    let due = T0 + 1_003;
    publish_with(&engine, "default", json!(due), at(due))
        .await
        .expect("publish");
    // Claimed ahead of its due time, held.
    clock.set(Tick::from_millis(T0 + 998));
    engine.settle().await;
    assert_eq!(engine.stats().claims_won, 1);
    assert!(drain(&mut sub).is_empty(), "held until its due time");
    // The release starts and does not answer.
    store.release.arm();
    clock.set(Tick::from_millis(T0 + 1_000));
    store.release.wait_entered().await;
    clock.set(Tick::from_millis(due));
    let got = tokio::time::timeout(Duration::from_secs(60), sub.recv())
        .await
        .expect("delivered at its due time while the release is under way")
        .expect("the subscription is live")
        .expect("not lagged");
    assert_eq!(got.message().to_value().expect("a JSON body"), json!(due));
    assert_eq!(got.timestamp_millis(), due, "at its due time");
    store.release.open();
    engine.settle().await;
    assert_eq!(engine.stats().claims_won, 1);
    engine.shutdown().await;
}

/// Publishes a run due at `due`, then lets the clock reach T0 + 1,500,
/// where a look starts (one is due every quarter second at most) and
/// does not answer until `store.reserve` opens.
async fn publish_then_pause_a_look(
    engine: &Engine,
    clock: &ManualClock,
    store: &GatedStore,
    due: u64,
) {
    publish_with(engine, "default", json!(due), at(due))
        .await
        .expect("publish");
    store.reserve.arm();
    clock.set(Tick::from_millis(T0 + 1_500));
    store.reserve.wait_entered().await;
}

/// A look (a reservation round trip) that takes long does not hold up the
/// claims meanwhile: a run comes due for its claim during the look and is
/// claimed and delivered at its due time. Claims used to wait for the look
/// to end (cluster-bench, 3 nodes at 10k runs/s: 1-2.5 % of the runs
/// claimed after their due time).
#[tokio::test]
async fn a_run_is_claimed_and_delivered_on_time_while_a_look_is_under_way() {
    let clock = clock();
    let store = GatedStore::shared();
    let (engine, mut sub) = watched_engine(&clock, &store).await;
    let due = T0 + 1_520;
    publish_then_pause_a_look(&engine, &clock, &store, due).await;
    let claims = engine.stats().claims_won;
    clock.set(Tick::from_millis(due));
    let got = tokio::time::timeout(Duration::from_secs(60), sub.recv())
        .await
        .expect("delivered at its due time while the look is under way")
        .expect("the subscription is live")
        .expect("not lagged");
    assert_eq!(got.timestamp_millis(), due, "at its due time");
    assert_eq!(engine.stats().claims_won, claims + 1);
    store.reserve.open();
    engine.settle().await;
    assert_eq!(engine.stats().claims_won, claims + 1);
    assert!(drain(&mut sub).is_empty(), "delivered once");
    engine.shutdown().await;
}

/// A look that reserved a run answers after this node claimed that run
/// (the look was under way at its claim time): the run is held and
/// delivered at its due time once, not put in the wheel again (a second
/// claim would have taken the held run's place and lost to the first).
#[tokio::test]
async fn a_look_that_answers_after_the_claim_leaves_the_held_run_alone() {
    let clock = clock();
    let store = GatedStore::shared();
    let (engine, mut sub) = watched_engine(&clock, &store).await;
    let due = T0 + 2_000;
    // The look at T0 + 1,500 reserves the run (its window reaches
    // T0 + 2,500) and does not answer yet.
    publish_then_pause_a_look(&engine, &clock, &store, due).await;
    assert!(
        store
            .log()
            .iter()
            .any(|a| matches!(a, Asked::Reserved(ids) if ids.len() == 1)),
        "the look reserved the run: {:?}",
        store.log()
    );
    // Claimed (a lead ahead) while the look is under way; then it answers.
    let claims = engine.stats().claims_won;
    clock.set(Tick::from_millis(due - 1));
    tokio::time::timeout(Duration::from_secs(60), async {
        while engine.stats().claims_won == claims {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("claimed during the look");
    store.reserve.open();
    engine.settle().await;
    clock.set(Tick::from_millis(due));
    let got = tokio::time::timeout(Duration::from_secs(60), sub.recv())
        .await
        .expect("delivered at its due time")
        .expect("the subscription is live")
        .expect("not lagged");
    assert_eq!(got.timestamp_millis(), due, "at its due time");
    engine.settle().await;
    let stats = engine.stats();
    assert_eq!(stats.claims_won, claims + 1);
    assert_eq!(stats.claims_lost, 0, "claimed once");
    assert!(drain(&mut sub).is_empty(), "delivered once");
    engine.shutdown().await;
}

/// The claim lead follows the store's round trips: after a claim that took
/// 40 ms, runs are claimed at least that far ahead of their due time (and
/// still delivered at it), so a slow shared store's claims are over before
/// the runs are due.
#[tokio::test]
async fn runs_are_claimed_as_far_ahead_as_the_store_takes_to_answer() {
    let clock = clock();
    let store = GatedStore::shared();
    let (engine, mut sub) = watched_engine(&clock, &store).await;
    assert_eq!(engine.stats().claim_lead_ms, 5, "before any claim");
    for due in [T0 + 1_000, T0 + 2_000] {
        publish_with(&engine, "default", json!(due), at(due))
            .await
            .expect("publish");
    }
    // The first claim, 5 ms ahead, takes 40 ms: its run is late.
    store.claim.arm();
    clock.set(Tick::from_millis(T0 + 995));
    store.claim.wait_entered().await;
    clock.set(Tick::from_millis(T0 + 1_035));
    store.claim.open();
    engine.settle().await;
    let late = drain(&mut sub);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].timestamp_millis(), T0 + 1_035);
    let lead = engine.stats().claim_lead_ms;
    assert!((40..=100).contains(&lead), "lead {lead} ms");
    // The next run is claimed `lead` ahead, and delivered at its due time.
    step_to(&engine, &clock, T0 + 2_000 - lead - 1).await;
    assert_eq!(engine.stats().claims_won, 1, "not yet");
    clock.set(Tick::from_millis(T0 + 2_000 - lead));
    engine.settle().await;
    assert_eq!(engine.stats().claims_won, 2, "claimed {lead} ms ahead");
    assert!(drain(&mut sub).is_empty(), "held until its due time");
    clock.set(Tick::from_millis(T0 + 2_000));
    engine.settle().await;
    let on_time = drain(&mut sub);
    assert_eq!(on_time.len(), 1);
    assert_eq!(on_time[0].timestamp_millis(), T0 + 2_000);
    engine.shutdown().await;
}

/// A backlog of late runs (here 2,500 left by nodes that are gone) is
/// reserved a page (one claim's worth) at a time, each page claimed before
/// the next look, so a node never holds more late runs than it claims in
/// one round trip; runs not yet due are reserved to the end in one look.
#[tokio::test]
async fn late_runs_are_reserved_a_page_at_a_time() {
    let clock = clock();
    let store = GatedStore::shared();
    for n in 0..2_500u64 {
        store
            .inner
            .insert(
                herald_testkit::store_conformance::small_envelope(u128::from(n) + 1),
                Start::At(Tick::from_millis(T0 - 10_000 + n)),
            )
            .await
            .expect("insert");
    }
    for n in 0..1_500u64 {
        store
            .inner
            .insert(
                herald_testkit::store_conformance::small_envelope(u128::from(n) + 10_001),
                Start::At(Tick::from_millis(T0 + 600)),
            )
            .await
            .expect("insert");
    }
    let engine = builder(&clock)
        .store(store.clone())
        .horizon(Duration::from_millis(HORIZON_MS))
        .build();
    for _ in 0..4 {
        engine.settle().await;
    }
    let sizes = |log: &[Asked]| -> Vec<String> {
        log.iter()
            .map(|a| match a {
                Asked::Claim(ids) => format!("claim {}", ids.len()),
                Asked::Reserved(ids) => format!("reserve {}", ids.len()),
            })
            .collect()
    };
    assert_eq!(
        sizes(&store.log()),
        [
            "reserve 1024",
            "claim 1024",
            "reserve 1024",
            "claim 1024",
            "reserve 1024",
            "reserve 928",
            "claim 452"
        ],
        "the late runs a page at a time, each claimed before the next look; \
         the third page ends with runs not yet due, so the look goes on to \
         the end"
    );
    assert_eq!(engine.stats().claims_won, 2_500);
    step_to(&engine, &clock, T0 + 600).await;
    assert_eq!(
        engine.stats().claims_won,
        4_000,
        "the runs not yet due, on time"
    );
    assert_eq!(engine.stats().reserved, 4_000);
    engine.shutdown().await;
}

/// Three nodes on one shared store and one cluster bus, one subscriber
/// each.
async fn bus_cluster(
    bus: &herald::bus::InProcessBus,
) -> (ManualClock, Vec<(Engine, Subscription)>) {
    let clock = clock();
    let nodes = bus_nodes(&clock, &MemoryStore::new_shared(), bus, 3).await;
    (clock, nodes)
}

/// `n` nodes on `store` and `bus`, one subscriber each on "news".
async fn bus_nodes<S: Store + Clone + 'static>(
    clock: &ManualClock,
    store: &S,
    bus: &herald::bus::InProcessBus,
    n: usize,
) -> Vec<(Engine, Subscription)> {
    let mut nodes = Vec::new();
    for i in 0..n {
        let engine = builder(clock)
            .store(store.clone())
            .bus(bus.clone())
            .node_id(&format!("node-{i}"))
            .build();
        let sub = engine.subscribe("news", None).expect("subscribe");
        engine.settle().await;
        nodes.push((engine, sub));
    }
    nodes
}

/// The next run `sub` receives (waiting for the bus, bounded).
async fn next_run(sub: &mut Subscription) -> Result<herald::DeliveredMessage, herald::Lagged> {
    tokio::time::timeout(Duration::from_secs(20), sub.recv())
        .await
        .expect("a run within 20 s")
        .expect("the subscription is live")
}

/// Waits (yielding, bounded) until `id`'s record counts `pubsub`
/// deliveries: the other nodes add theirs after their subscribers have
/// the run.
async fn await_pubsub(engine: &Engine, id: &str, pubsub: u64) {
    for _ in 0..10_000 {
        if status_of(engine, id).await.deliveries.pubsub == pubsub {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!(
        "pubsub of {id} stayed {:?}, expected {pubsub}",
        status_of(engine, id).await.deliveries
    );
}

/// A publish on A and a scheduled run fired on whichever node: every
/// node's subscriber gets each run once, and the record counts the
/// deliveries of every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_any_node_reaches_the_subscribers_of_every_node_once() {
    let bus = herald::bus::InProcessBus::default();
    let (clock, mut nodes) = bus_cluster(&bus).await;
    let now = publish_now(&nodes[0].0, "news", json!("now")).await;
    assert_eq!(now.deliveries.pubsub, 1, "A's own subscriber, at once");
    for (i, (_, sub)) in nodes.iter_mut().enumerate() {
        let m = next_run(sub).await.expect("no lag");
        assert_eq!(m.message().to_value().unwrap(), json!("now"), "node {i}");
    }
    await_pubsub(&nodes[1].0, &now.message_id, 3).await;

    let later = publish_with(&nodes[2].0, "news", json!("later"), at(T0 + 500))
        .await
        .expect("publish");
    clock.set(Tick::from_millis(T0 + 500));
    for (e, _) in &nodes {
        e.settle().await;
    }
    for (i, (_, sub)) in nodes.iter_mut().enumerate() {
        let m = next_run(sub).await.expect("no lag");
        assert_eq!(m.message().to_value().unwrap(), json!("later"), "node {i}");
    }
    await_pubsub(&nodes[0].0, &later.message_id, 3).await;
    for (i, (e, sub)) in nodes.iter_mut().enumerate() {
        e.settle().await;
        assert!(sub.try_recv().is_none(), "node {i}: each run once");
    }
    let sent: u64 = nodes.iter().map(|(e, _)| e.stats().bus_sent).sum();
    let received: u64 = nodes.iter().map(|(e, _)| e.stats().bus_received).sum();
    assert_eq!(sent, 2, "one frame per run");
    assert_eq!(received, 4, "each run received by the two other nodes");
}

/// A node's write of its pub/sub counts for other nodes' runs that fails
/// is retried with the next one (every 100 ms): the counts are not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_counts_from_the_bus_survive_failed_writes() {
    let bus = herald::bus::InProcessBus::default();
    let clock = clock();
    let store = GatedStore::shared();
    let mut nodes = bus_nodes(&clock, &store, &bus, 2).await;
    store
        .fail_amends
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let now = publish_now(&nodes[0].0, "news", json!("now")).await;
    for (_, sub) in &mut nodes {
        next_run(sub).await.expect("no lag");
    }
    let mut pubsub = 0;
    'steps: for _ in 0..20 {
        for _ in 0..1_000 {
            pubsub = status_of(&nodes[0].0, &now.message_id)
                .await
                .deliveries
                .pubsub;
            if pubsub == 2 {
                break 'steps;
            }
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_millis(100));
    }
    assert_eq!(pubsub, 2, "node 1's count, after two failed writes");
    assert_eq!(
        store.fail_amends.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "both writes failed first"
    );
    assert_eq!(nodes[1].0.stats().bus_counts_dropped, 0);
    for (e, _) in &nodes {
        e.shutdown().await;
    }
}

/// A node whose bus subscription lost frames (its connection dropped and
/// was made again) tells its subscribers they may have missed runs,
/// before the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_are_told_when_the_bus_lost_frames() {
    let bus = herald::bus::InProcessBus::default();
    let (_clock, mut nodes) = bus_cluster(&bus).await;
    bus.interrupt();
    publish_now(&nodes[0].0, "news", json!("after")).await;
    // A delivered the run itself; B and C got it over the bus, after the
    // notice. (A's own bus subscription was interrupted too: its notice
    // comes with the next frame it receives, its own included.)
    for (i, (e, sub)) in nodes.iter_mut().enumerate().skip(1) {
        assert!(
            matches!(next_run(sub).await, Err(herald::Lagged(_))),
            "node {i}: told first"
        );
        let m = next_run(sub).await.expect("then the run");
        assert_eq!(m.message().to_value().unwrap(), json!("after"));
        assert_eq!(e.stats().bus_lags, 1);
    }
    let (_, sub_a) = &mut nodes[0];
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(
            next_run(sub_a)
                .await
                .map(|m| m.message().to_value().unwrap()),
        );
    }
    assert!(
        got.contains(&Ok(json!("after"))),
        "A delivered its own run: {got:?}"
    );
    assert!(got.iter().any(Result::is_err), "A was told too: {got:?}");
}

/// A bus whose sends wait for a permit: the frames of a run can be held
/// back, as a node killed before its sender ran would hold them.
#[derive(Clone, Debug)]
struct GatedBus {
    inner: herald::bus::InProcessBus,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
}

impl herald::bus::ClusterBus for GatedBus {
    fn send(&self, frames: Vec<std::sync::Arc<[u8]>>) -> herald::bus::BusFuture<'_, ()> {
        Box::pin(async move {
            self.gate.acquire().await.expect("gate open").forget();
            self.inner.send(frames).await
        })
    }

    fn subscribe(
        &self,
    ) -> herald::bus::BusFuture<'_, tokio::sync::mpsc::Receiver<herald::bus::BusEvent>> {
        self.inner.subscribe()
    }
}

/// A delivered run is recorded (and so never fired again) only once the
/// bus has its frame: a node that dies in between leaves the run claimed,
/// and it fires again after the lease, rather than reaching only the dead
/// node's subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_recorded_as_delivered_only_after_the_bus_took_its_frame() {
    let clock = clock();
    let store = MemoryStore::new_shared();
    let bus = GatedBus {
        inner: herald::bus::InProcessBus::default(),
        gate: std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
    };
    let engine = builder(&clock)
        .store(store.clone())
        .bus(bus.clone())
        .node_id("a")
        .build();
    let mut sub = engine.subscribe("news", None).expect("subscribe");
    engine.settle().await;
    let st = publish_now(&engine, "news", json!("now")).await;
    assert_eq!(st.deliveries.pubsub, 1, "delivered on this node at once");
    assert!(sub.try_recv().is_some());
    let id: herald::MessageId = st.message_id.parse().expect("id");
    // The completer has had every chance to record it.
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
    let rec = store.get(id).await.expect("get").expect("record");
    assert!(
        matches!(rec.state, herald::RunState::Firing { .. }),
        "still claimed while its frame waits: {:?}",
        rec.state
    );
    bus.gate.add_permits(1_000);
    engine.settle().await;
    let rec = store.get(id).await.expect("get").expect("record");
    assert!(
        !matches!(rec.state, herald::RunState::Firing { .. }),
        "recorded once the bus took the frame: {:?}",
        rec.state
    );
    engine.shutdown().await;
}
