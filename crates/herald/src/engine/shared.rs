//! What every part of the engine shares: the boundaries, the wheel and the
//! runs in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use herald_core::Tick;
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::completer::Completer;
use super::inflight::Inflight;
use super::pending::Pending;
use super::pipeline::Pipeline;
use super::stats::Counters;
use super::throttle::Throttle;
use crate::id::IdGenerator;
use crate::store::Store;
use crate::transport::{InboxLimits, PubSubTransport};
use crate::{Clock, DeviceRegistry, Error, MessageId, TemplateStore};

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) transport: Arc<dyn PubSubTransport>,
    pub(crate) registry: Arc<dyn DeviceRegistry>,
    pub(crate) templates: Arc<dyn TemplateStore>,
    /// The push gateways and the jobs' pipeline.
    pub(crate) pipeline: Pipeline,
    /// Whether other engines (nodes) use the store too
    /// ([`Store::is_shared`]): then the wheel holds only the runs due
    /// within the horizon.
    pub(crate) shared_store: bool,
    /// On a shared store: how far ahead runs are reserved, in ms.
    pub(crate) horizon_ms: u64,
    /// The cluster bus, if this engine is one node of several.
    pub(crate) bus: Option<super::bus::BusLink>,
    /// Becomes true at shutdown (what the pipeline's tasks wait on).
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) ids: IdGenerator,
    pub(crate) state: Mutex<WheelState>,
    /// Wakes the driver (an earlier run was scheduled).
    pub(crate) wake: Notify,
    /// Notified after each batch of runs has been delivered (a cancel
    /// waiting for a run that is `Delivering`).
    pub(crate) delivered: Notify,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) completer: Completer,
    pub(crate) shut: AtomicBool,
    /// Becomes true once the driver has reloaded the store at start-up;
    /// `publish` and `cancel` wait for it (a reload racing them could
    /// release a claim in progress, undo a cancel, or reorder runs).
    pub(crate) ready: watch::Sender<bool>,
    pub(crate) counters: Counters,
    /// Store failures that repeat (it cannot write for a while), logged at
    /// a bounded rate, one per kind of write.
    pub(crate) store_failures: StoreFailures,
    pub(crate) lease_ms: u64,
    /// The limits of the inbox of each [`Engine::subscribe`](crate::Engine::subscribe).
    pub(crate) inbox_limits: InboxLimits,
}

/// The engine's writes that fail again and again while the store cannot
/// write, each logged at a bounded rate.
#[derive(Debug, Default)]
pub(crate) struct StoreFailures {
    /// Adding this node's deliveries of other nodes' runs (cluster bus).
    pub(crate) amend: Throttle,
    pub(crate) claim: Throttle,
    pub(crate) complete: Throttle,
    pub(crate) release: Throttle,
    pub(crate) reload: Throttle,
    pub(crate) reserve: Throttle,
}

/// A run waiting in the wheel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    pub(crate) id: MessageId,
    pub(crate) due: Tick,
}

#[derive(Debug)]
pub(crate) struct WheelState {
    /// The runs waiting, at most one per message, found by id.
    pub(crate) wheel: Pending,
    /// Runs out of the wheel and not yet completed in the store.
    pub(crate) inflight: HashMap<MessageId, Inflight>,
    /// What the driver sleeps until (`None`: nothing scheduled).
    pub(crate) planned_wake: Option<Tick>,
    /// Runs the driver claimed ahead of their due time and holds until
    /// then (`claim_lead`).
    pub(crate) held: usize,
}

impl WheelState {
    pub(crate) fn new(now: Tick) -> Self {
        Self {
            wheel: Pending::new(now),
            inflight: HashMap::new(),
            planned_wake: None,
            held: 0,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Command {
    /// Run a pass at the current time, then answer.
    Settle(oneshot::Sender<()>),
    /// Stop, then answer.
    Shutdown(oneshot::Sender<()>),
}

impl Shared {
    /// Waits for the start-up reload, then refuses if shut down.
    pub(crate) async fn admit(&self) -> Result<(), Error> {
        self.reloaded().await;
        self.admit_ready()
    }

    /// [`admit`](Self::admit) once the start-up reload is done: refuses if
    /// shut down.
    pub(crate) fn admit_ready(&self) -> Result<(), Error> {
        if self.is_shut() {
            return Err(Error::ShutDown);
        }
        Ok(())
    }

    /// Whether the start-up reload is done (see [`reloaded`](Self::reloaded)).
    pub(crate) fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits for the start-up reload (claims left by a crash are released
    /// and back in the wheel by then).
    pub(crate) async fn reloaded(&self) {
        if !self.is_ready() {
            let mut rx = self.ready.subscribe();
            // The sender lives in `self`, so this only ends when ready.
            let _ = rx.wait_for(|ready| *ready).await;
        }
    }

    /// Completes once the engine is shutting down.
    pub(crate) async fn stopping(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Whether the engine is shutting down (what [`Self::stopping`] waits
    /// for).
    pub(crate) fn is_stopping(&self) -> bool {
        *self.stop.borrow()
    }

    pub(crate) fn is_shut(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, WheelState> {
        // Every update under the lock is complete before it is released.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a run in the wheel (replacing the message's earlier entry) and
    /// wakes the driver if it is now the first.
    pub(crate) fn schedule(&self, st: &mut WheelState, id: MessageId, due: Tick) {
        self.schedule_at(st, id, due, due);
    }

    /// Puts the run due at `due` in the wheel to fire at `at` (a retry
    /// after the store failed to claim it: the claim must still name the
    /// stored `due`, and missed runs are counted from it).
    ///
    /// On a shared store a run beyond the horizon is left to the store
    /// (the message's earlier entry still goes): a reservation brings it
    /// back in time, on this node or another.
    pub(crate) fn schedule_at(&self, st: &mut WheelState, id: MessageId, due: Tick, at: Tick) {
        if self.shared_store && at > self.clock.now().saturating_add_millis(self.horizon_ms) {
            st.wheel.remove(id);
            return;
        }
        st.wheel.insert(id, due, at);
        if st.planned_wake.is_none_or(|w| at < w) {
            st.planned_wake = Some(at);
            self.wake.notify_one();
        }
    }
}
