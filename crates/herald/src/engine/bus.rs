//! The engine's side of a [`ClusterBus`]: every pub/sub run this node
//! delivers goes out as a frame (a sender task encodes and sends them in
//! batches), and the frames other nodes send are delivered to this node's
//! subscribers (a receiver task), their counts added to the messages'
//! records.
//!
//! Nothing is lost silently: a run that cannot be sent (the bus is down,
//! the queue overflowed, the frame is too large) is counted and announced
//! with a `lost` frame, whose receivers tell their subscribers
//! ([`PubSubTransport::lag_all`](crate::PubSubTransport::lag_all)); a
//! receiver that lost frames (its subscription lagged, or was made again)
//! tells its subscribers likewise.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use herald_core::Tick;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, info, warn};

use super::driver::RETRY;
use super::shared::Shared;
use super::stats::Counters;
use super::throttle::{Failure, Throttle};
use crate::bus::frame::{self, Frame};
use crate::bus::{BusEvent, ClusterBus};
use crate::codec::PlanCache;
use crate::store::Amendment;
use crate::{DeliveredMessage, DeliveryCounts, Envelope, MessageId};

/// Runs queued for sending at most; past it the oldest are dropped (and
/// announced as lost).
const MAX_QUEUED: usize = 65_536;
/// Frames per `send`, and events handled per batch on the receiving side.
const BATCH: usize = 1024;

/// This engine's link to its cluster bus.
#[derive(Debug)]
pub(crate) struct BusLink {
    pub(crate) bus: Arc<dyn ClusterBus>,
    /// This node's id in its frames.
    pub(crate) node: u64,
    out: Mutex<Outbox>,
    ready: Notify,
    pub(crate) counters: BusCounters,
    failures: Throttle,
    /// Becomes true once the receiver has subscribed to the bus (what
    /// `Engine::settle` waits for).
    pub(crate) subscribed: tokio::sync::watch::Sender<bool>,
    /// How many of the runs ever queued the sender is through with (sent,
    /// or counted lost and announced): the completer waits for it before
    /// recording runs as delivered (see [`BusLink::handed_over`]).
    through: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Outbox {
    runs: VecDeque<(Arc<Envelope>, Tick)>,
    /// Runs not sent since the last `lost` frame went out.
    lost: u64,
    /// Runs ever queued.
    queued: u64,
}

/// The bus counters (see [`EngineStats`](crate::EngineStats)).
#[derive(Debug, Default)]
pub(crate) struct BusCounters {
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) lags: AtomicU64,
}

impl BusLink {
    pub(crate) fn new(bus: Arc<dyn ClusterBus>, node: u64) -> Self {
        Self {
            bus,
            node,
            out: Mutex::new(Outbox::default()),
            ready: Notify::new(),
            counters: BusCounters::default(),
            failures: Throttle::default(),
            subscribed: tokio::sync::watch::Sender::new(false),
            through: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Waits until the sender is through with every run queued so far
    /// (sent to the bus, or counted lost, which the other nodes hear of as
    /// `Lagged`), at most `bound`, or until the engine stops.
    ///
    /// The completer calls it before it records delivered runs: a run
    /// recorded as delivered is never fired again, so a node that died
    /// after recording a run but before its frame left would leave the
    /// other nodes' subscribers without it, and nobody would know. In this
    /// order a node that dies in between fires the run again after its
    /// lease (a duplicate, which at-least-once allows) rather than losing
    /// it. The SIGKILL test in `herald-server/tests/cluster.rs` caught an
    /// immediate publish acknowledged 13 ms before the kill that only the
    /// killed node's subscribers got.
    pub(crate) async fn handed_over(&self, sh: &Shared, bound: std::time::Duration) {
        let target = self.out().queued;
        let mut through = self.through.subscribe();
        if *through.borrow() >= target {
            return;
        }
        let until = sh
            .clock
            .now()
            .saturating_add_millis(u64::try_from(bound.as_millis()).unwrap_or(u64::MAX));
        tokio::select! {
            _ = through.wait_for(|&n| n >= target) => {}
            () = sh.clock.sleep_until(until) => {
                warn!(?bound, "cluster bus sender is behind; recording delivered runs without waiting for it");
            }
            () = sh.stopping() => {}
        }
    }

    fn out(&self) -> MutexGuard<'_, Outbox> {
        // Every update under the lock is complete before it is released.
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a delivered run for the other nodes (never blocks).
    pub(crate) fn enqueue(&self, envelope: &Arc<Envelope>, run: Tick) {
        {
            let mut out = self.out();
            if out.runs.len() >= MAX_QUEUED {
                out.runs.pop_front();
                out.lost += 1;
                Counters::bump(&self.counters.lost, 1);
            }
            out.runs.push_back((envelope.clone(), run));
            out.queued += 1;
        }
        self.ready.notify_one();
    }
}

/// Starts the sender and the receiver tasks of the engine's bus, if it
/// has one.
pub(crate) fn start(sh: &Arc<Shared>) {
    if sh.bus.is_some() {
        tokio::spawn(send_loop(sh.clone()));
        tokio::spawn(receive_loop(sh.clone()));
    }
}

async fn send_loop(sh: Arc<Shared>) {
    let Some(link) = sh.bus.as_ref() else { return };
    let max = link.bus.max_frame();
    loop {
        let (runs, mut lost, upto) = {
            let mut out = link.out();
            let n = out.runs.len().min(BATCH);
            let runs = out.runs.drain(..n).collect::<Vec<_>>();
            // Every run queued before those still waiting: these, and
            // those dropped from the front of a full queue.
            let upto = out.queued - out.runs.len() as u64;
            (runs, std::mem::take(&mut out.lost), upto)
        };
        if runs.is_empty() && lost == 0 {
            link.through
                .send_if_modified(|n| std::mem::replace(n, upto) != upto);
            tokio::select! {
                () = link.ready.notified() => continue,
                () = sh.stopping() => return,
            }
        }
        let mut frames = Vec::with_capacity(runs.len() + 1);
        for (envelope, run) in &runs {
            match frame::encode_run(link.node, *run, envelope) {
                Ok(f) if f.len() <= max => frames.push(f),
                Ok(f) => {
                    debug!(message_id = %envelope.id, bytes = f.len(), max, "run too large for the cluster bus: delivered on this node only");
                    lost += 1;
                    Counters::bump(&link.counters.lost, 1);
                }
                Err(e) => {
                    warn!(message_id = %envelope.id, error = %e, "run cannot be encoded for the cluster bus");
                    lost += 1;
                    Counters::bump(&link.counters.lost, 1);
                }
            }
        }
        if lost > 0 {
            frames.push(frame::encode_lost(link.node, lost));
        }
        let n = frames.len() as u64;
        let sent = link.bus.send(frames).await;
        // Sent, or counted lost below (and announced with the next frame).
        link.through.send_replace(upto);
        match sent {
            Ok(()) => {
                if let Some(failures) = link.failures.success() {
                    info!(failures, "cluster bus sends again");
                }
                Counters::bump(&link.counters.sent, n);
            }
            Err(e) => {
                let now = sh.clock.now();
                let missed = runs.len() as u64 + lost;
                link.out().lost += missed;
                Counters::bump(&link.counters.lost, runs.len() as u64);
                match link.failures.failure(now) {
                    Failure::First => {
                        warn!(error = %e, runs = missed, "cluster bus failed to send; other nodes' subscribers will be told they missed runs")
                    }
                    Failure::Again { left_out } => {
                        warn!(error = %e, left_out, "cluster bus still fails to send")
                    }
                    Failure::Quiet => {}
                }
                let at = now.saturating_add_millis(RETRY.as_millis() as u64);
                tokio::select! {
                    () = sh.clock.sleep_until(at) => {}
                    () = sh.stopping() => return,
                }
            }
        }
    }
}

async fn receive_loop(sh: Arc<Shared>) {
    let Some(link) = sh.bus.as_ref() else { return };
    // The counts go to the store from a task of their own, so a slow
    // write (row locks shared with the firing node's completion) never
    // holds up the next frames' delivery.
    let (counts_tx, counts_rx) = mpsc::unbounded_channel();
    tokio::spawn(amend_loop(sh.clone(), counts_rx));
    let plans = PlanCache::new(4096);
    let mut first = true;
    let failures = Throttle::default();
    loop {
        let rx = tokio::select! {
            rx = link.bus.subscribe() => rx,
            () = sh.stopping() => return,
        };
        let mut rx = match rx {
            Ok(rx) => rx,
            Err(e) => {
                let now = sh.clock.now();
                if let Failure::First = failures.failure(now) {
                    warn!(error = %e, "cannot subscribe to the cluster bus; retrying every {RETRY:?}");
                }
                let at = now.saturating_add_millis(RETRY.as_millis() as u64);
                tokio::select! {
                    () = sh.clock.sleep_until(at) => {}
                    () = sh.stopping() => return,
                }
                continue;
            }
        };
        link.subscribed.send_replace(true);
        if !std::mem::replace(&mut first, false) {
            // Whatever was sent while this node was not subscribed is gone.
            lag(&sh, link, 0);
        }
        let mut events = Vec::with_capacity(BATCH);
        loop {
            events.clear();
            let got = tokio::select! {
                n = rx.recv_many(&mut events, BATCH) => n,
                () = sh.stopping() => return,
            };
            if got == 0 {
                break; // The bus closed this subscription: subscribe again.
            }
            receive(&sh, link, &plans, &mut events, &counts_tx);
        }
    }
}

/// Delivers a batch of bus events to this node's subscribers and hands
/// their counts to the amending task.
fn receive(
    sh: &Shared,
    link: &BusLink,
    plans: &PlanCache,
    events: &mut Vec<BusEvent>,
    counts_tx: &mpsc::UnboundedSender<HashMap<MessageId, u64>>,
) {
    let mut counts: HashMap<MessageId, u64> = HashMap::new();
    for event in events.drain(..) {
        match event {
            BusEvent::Frame(bytes) => {
                if frame::origin_of(&bytes) == Some(link.node) {
                    continue;
                }
                Counters::bump(&link.counters.received, 1);
                match frame::decode(&bytes, plans) {
                    Ok(Frame::Run { run, envelope, .. }) => {
                        let id = envelope.id;
                        match sh.transport.publish(&DeliveredMessage::new(envelope, run)) {
                            Ok(n) => {
                                Counters::bump(&sh.counters.pubsub_deliveries, n);
                                if n > 0 {
                                    *counts.entry(id).or_default() += n;
                                }
                            }
                            Err(e) => {
                                warn!(message_id = %id, error = %e, "pub/sub delivery of a run from the bus failed")
                            }
                        }
                    }
                    Ok(Frame::Lost { missed, .. }) => lag(sh, link, missed),
                    Err(e) => warn!(error = %e, "undecodable frame on the cluster bus"),
                }
            }
            BusEvent::Lagged { missed } => lag(sh, link, missed),
        }
    }
    if !counts.is_empty() {
        let _ = counts_tx.send(counts);
    }
}

/// Adds this node's deliveries of other nodes' runs to the records: what
/// came in while the previous write was under way goes in one write. A
/// write that fails is carried into the next one (every
/// [`AMEND_EVERY_MS`], whether or not more runs come), up to
/// [`AMEND_CARRY`] messages; beyond that, or when the engine stops, its
/// counts are dropped and counted (`EngineStats::bus_counts_dropped`).
async fn amend_loop(sh: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<HashMap<MessageId, u64>>) {
    let mut batches = Vec::new();
    // Counts whose write failed, for the next write.
    let mut merged: HashMap<MessageId, u64> = HashMap::new();
    loop {
        batches.clear();
        let stopping = if merged.is_empty() {
            tokio::select! {
                n = rx.recv_many(&mut batches, 256) => {
                    if n == 0 {
                        return;
                    }
                    false
                }
                () = sh.stopping() => {
                    // What was delivered still counts.
                    while let Ok(b) = rx.try_recv() {
                        batches.push(b);
                    }
                    true
                }
            }
        } else {
            // A retry: with whatever came meanwhile.
            while let Ok(b) = rx.try_recv() {
                batches.push(b);
            }
            sh.is_stopping()
        };
        for batch in batches.drain(..) {
            for (id, n) in batch {
                *merged.entry(id).or_default() += n;
            }
        }
        if merged.is_empty() {
            return; // stopping, with nothing left to count
        }
        let amendments = merged
            .iter()
            .map(|(&id, &pubsub)| Amendment {
                id,
                counts: DeliveryCounts {
                    pubsub,
                    ..DeliveryCounts::default()
                },
                error: None,
                fail: false,
            })
            .collect();
        match sh.store.amend(amendments).await {
            Ok(()) => {
                merged.clear();
                super::driver::recovered(
                    &sh.store_failures.amend,
                    "adding deliveries of runs from the bus",
                );
            }
            // Said at a bounded rate, as the other writes' failures.
            Err(e) => {
                match sh.store_failures.amend.failure(sh.clock.now()) {
                    Failure::First => {
                        warn!(error = %e, "store failed to add this node's deliveries of runs from the bus; retrying")
                    }
                    Failure::Again { left_out } => {
                        warn!(error = %e, left_out, "store still fails to add this node's deliveries of runs from the bus")
                    }
                    Failure::Quiet => {}
                }
                if stopping || merged.len() > AMEND_CARRY {
                    // Those counts are lost: `deliveries.pubsub` undercounts.
                    warn!(
                        messages = merged.len(),
                        "dropping this node's deliveries of runs from the bus"
                    );
                    Counters::bump(&sh.counters.bus_counts_dropped, merged.len() as u64);
                    merged.clear();
                }
            }
        }
        if stopping {
            return;
        }
        // At most one write per AMEND_EVERY: what arrives meanwhile goes
        // in the next one (an idle node writes at once).
        let at = sh.clock.now().saturating_add_millis(AMEND_EVERY_MS);
        tokio::select! {
            () = sh.clock.sleep_until(at) => {}
            () = sh.stopping() => {}
        }
    }
}

/// Messages whose counts a failed write carries into the next one, at
/// most (a few MB); beyond, they are dropped and counted.
const AMEND_CARRY: usize = 65_536;

/// How often, at most, a node adds its deliveries of other nodes' runs to
/// the records. Each write is a PostgreSQL `UPDATE` of every message in
/// it; written as the frames came (every few runs at 10k runs/s), they
/// were a large part of PostgreSQL's ~110 µs of CPU per run in
/// cluster-bench. The counts are eventually consistent anyway (see
/// `docs/design.md`, "Counts across nodes"): this delays them by at most
/// this much more.
const AMEND_EVERY_MS: u64 = 100;

fn lag(sh: &Shared, link: &BusLink, missed: u64) {
    Counters::bump(&link.counters.lags, 1);
    let told = sh.transport.lag_all(missed);
    warn!(
        missed,
        subscriptions = told,
        "runs from other nodes may have been missed; subscribers told"
    );
}

/// A node id from a name (FNV-1a), or a random one.
pub(crate) fn node_id(name: Option<&str>) -> u64 {
    match name {
        Some(name) => name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }),
        None => getrandom::u64().unwrap_or_else(|_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id())
        }),
    }
}
