//! `EngineBuilder`.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::completer::Completer;
use super::gateway::Gateway;
use super::pipeline::Pipeline;
use super::shared::{Shared, WheelState};
use super::{Engine, StopOnDrop, driver};
use crate::bus::ClusterBus;
use crate::id::IdGenerator;
use crate::store::Store;
use crate::transport::{InboxLimits, PubSubTransport};
use crate::{
    Clock, DeviceRegistry, InProcessTransport, MemoryRegistry, MemoryStore, PushBroadcast,
    PushTransport, RetryPolicy, SystemClock, TemplateStore,
};

/// Configures and starts an [`Engine`].
///
/// # Examples
///
/// ```
/// use herald::{Engine, InProcessTransport, InboxLimits, ManualClock, MemoryStore};
/// use herald_core::Tick;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let engine = Engine::builder()
///     .clock(ManualClock::new(Tick::from_millis(0)))
///     .store(MemoryStore::new())
///     .transport(InProcessTransport::new())
///     .subscription_limits(InboxLimits { max_messages: 64, ..InboxLimits::default() })
///     .build();
/// # engine.shutdown().await;
/// # }
/// ```
#[derive(Debug)]
pub struct EngineBuilder {
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    transport: Arc<dyn PubSubTransport>,
    registry: Arc<dyn DeviceRegistry>,
    templates: Arc<dyn TemplateStore>,
    gateways: Vec<(PushBroadcast, Arc<dyn PushTransport>)>,
    push_in_flight: usize,
    retry_policy: RetryPolicy,
    lease: Duration,
    horizon: Duration,
    bus: Option<Arc<dyn ClusterBus>>,
    node_name: Option<String>,
    inbox_limits: InboxLimits,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        let memory = Arc::new(MemoryRegistry::new());
        Self {
            clock: Arc::new(SystemClock),
            store: Arc::new(MemoryStore::new()),
            transport: Arc::new(InProcessTransport::new()),
            registry: memory.clone(),
            templates: memory,
            gateways: Vec::new(),
            push_in_flight: 4,
            retry_policy: RetryPolicy::default(),
            lease: Duration::from_secs(10),
            horizon: Duration::from_secs(2),
            bus: None,
            node_name: None,
            inbox_limits: InboxLimits {
                max_subscriptions: 1,
                ..InboxLimits::default()
            },
        }
    }
}

impl EngineBuilder {
    /// The time source (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Where messages live (default a fresh [`MemoryStore`]).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// How runs reach subscribers (default a fresh [`InProcessTransport`]).
    pub fn transport(mut self, transport: impl PubSubTransport) -> Self {
        self.transport = Arc::new(transport);
        self
    }

    /// Where device registrations live (default a fresh
    /// [`MemoryRegistry`]).
    pub fn registry(mut self, registry: impl DeviceRegistry) -> Self {
        self.registry = Arc::new(registry);
        self
    }

    /// Where push templates live (default a fresh [`MemoryRegistry`]).
    pub fn templates(mut self, templates: impl TemplateStore) -> Self {
        self.templates = Arc::new(templates);
        self
    }

    /// Adds a push gateway for devices of the OSes in `os` (APNs for
    /// [`PushBroadcast::IOS`] and [`PushBroadcast::OSX`], FCM for
    /// [`PushBroadcast::ANDROID`]). Without any, a publish with
    /// `publishPolicy` `PUSH` or `BOTH` is refused with 5014.
    pub fn push_gateway(mut self, os: PushBroadcast, transport: impl PushTransport) -> Self {
        self.gateways.push((os, Arc::new(transport)));
        self
    }

    /// How many batches of notifications each gateway has in flight at
    /// most, across push jobs (default 4; at least 1).
    pub fn push_in_flight(mut self, batches: usize) -> Self {
        self.push_in_flight = batches.max(1);
        self
    }

    /// How notifications a gateway asked to retry are retried (default:
    /// full jitter, base 1 s, cap 5 min).
    pub fn push_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = policy;
        self
    }

    /// How long a claimed run stays claimed before it is handed out again
    /// (by another node, or by this one: expired leases are taken back
    /// every half lease, and on a shared store at least every second).
    /// Default 10 s: a pub/sub run is delivered and recorded in
    /// milliseconds and a push job renews its lease every half lease, so
    /// the lease only matters when a node dies holding claims, and then
    /// it is the failover time (a run the dead node had claimed fires
    /// again within a lease and a second of its due time). A longer lease
    /// only delays that; a shorter one risks delivering a run twice when
    /// the store stalls for longer than the lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// On a shared store ([`Store::is_shared`]): how far ahead the engine
    /// reserves other nodes' runs (default 2 s, at least 10 ms). Its wheel
    /// holds only runs due within the horizon (its own publishes beyond it
    /// stay in the store until they come within it), it looks for
    /// unreserved runs about every eighth of a horizon (at most every
    /// 250 ms on average, jittered) and at every hint, reserving the runs
    /// due within four such periods, and a reservation ends an eighth of
    /// a horizon after its run's due time, so a node that dies delays the
    /// runs it reserved by at most 2.5 such periods (0.625 s by default). On
    /// an exclusive store (the default) the wheel holds every scheduled
    /// run and this setting is unused.
    pub fn horizon(mut self, horizon: Duration) -> Self {
        self.horizon = horizon.max(Duration::from_millis(10));
        self
    }

    /// The cluster bus that carries this node's pub/sub runs to the other
    /// nodes' subscribers and theirs to this node's (default: none, one
    /// node). Every node of a cluster needs the same bus (and a shared
    /// store); see [`ClusterBus`].
    pub fn bus(mut self, bus: impl ClusterBus) -> Self {
        self.bus = Some(Arc::new(bus));
        self
    }

    /// This node's name in a cluster (default: random per start). Two
    /// engines on one bus must not share a name: each skips the frames
    /// sent under its own.
    pub fn node_id(mut self, name: &str) -> Self {
        self.node_name = Some(name.to_owned());
        self
    }

    /// What the inbox of each [`Engine::subscribe`] may hold (default 1024
    /// messages and 8 MiB; its `max_subscriptions` is always 1).
    pub fn subscription_limits(mut self, limits: InboxLimits) -> Self {
        self.inbox_limits = InboxLimits {
            max_subscriptions: 1,
            ..limits
        };
        self
    }

    /// Starts the engine: spawns its driver on the current tokio runtime,
    /// which first reloads every scheduled message from the store (runs
    /// missed while down collapse into one run now; a run that was being
    /// delivered at a crash is delivered again). `publish` and `cancel`
    /// wait for that reload to finish; status, subscribe and the rest do
    /// not.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    #[track_caller]
    pub fn build(self) -> Engine {
        let (tx, rx) = mpsc::unbounded_channel();
        let now = self.clock.now();
        let shared_store = self.store.is_shared();
        let shared = Arc::new(Shared {
            clock: self.clock,
            store: self.store,
            transport: self.transport,
            registry: self.registry,
            templates: self.templates,
            pipeline: Pipeline::new(
                self.gateways
                    .into_iter()
                    .map(|(os, t)| Gateway::new(os, t, self.push_in_flight))
                    .collect(),
                self.push_in_flight,
                self.retry_policy,
            ),
            shared_store,
            horizon_ms: u64::try_from(self.horizon.as_millis()).unwrap_or(u64::MAX),
            stop: tokio::sync::watch::Sender::new(false),
            ids: IdGenerator::new(),
            state: Mutex::new(WheelState::new(now)),
            wake: Notify::new(),
            delivered: Notify::new(),
            commands: tx.clone(),
            completer: Completer::new(),
            shut: AtomicBool::new(false),
            ready: tokio::sync::watch::Sender::new(false),
            counters: Default::default(),
            store_failures: Default::default(),
            lease_ms: u64::try_from(self.lease.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            inbox_limits: self.inbox_limits,
            bus: self.bus.map(|b| {
                super::bus::BusLink::new(b, super::bus::node_id(self.node_name.as_deref()))
            }),
        });
        Completer::start(&shared);
        Pipeline::start(&shared);
        super::bus::start(&shared);
        tokio::spawn(driver::run(shared.clone(), rx));
        Engine {
            shared,
            _last_clone: Arc::new(StopOnDrop(tx)),
        }
    }
}
