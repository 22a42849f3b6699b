//! The `ClusterBus` boundary: how a run fired on one node reaches the
//! subscribers of every other node.
//!
//! Each node keeps its own [`PubSubTransport`](crate::PubSubTransport)
//! (synchronous, in process: it fans a run out to this node's
//! subscriptions). When several nodes serve the same apps, the engine also
//! hands every pub/sub run it delivers to a cluster bus, as a *frame*
//! ([`frame`]), and feeds the frames other nodes sent to its own transport.
//! So a subscriber on any node receives each run once, whichever node fired
//! it. Implementations: [`InProcessBus`] (several engines in one process:
//! tests, simulations), PostgreSQL `LISTEN/NOTIFY` (`herald-postgres`),
//! Redis pub/sub (`herald-redis`).

pub mod frame;
mod in_process;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;

pub use in_process::InProcessBus;

/// The future a [`ClusterBus`] method returns.
pub type BusFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BusError>> + Send + 'a>>;

/// What a bus subscription yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusEvent {
    /// A frame a node sent (this node's own frames may come back too:
    /// the engine skips them).
    Frame(Arc<[u8]>),
    /// Frames may have been lost before the next one: the subscription
    /// fell behind, or its connection was lost and made again. `missed` is
    /// how many if the bus knows, else 0.
    Lagged {
        /// Frames lost, or 0 if unknown.
        missed: u64,
    },
}

/// Why a bus call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cluster bus: {what}")]
pub struct BusError {
    what: String,
}

impl BusError {
    /// An error saying `what` went wrong.
    pub fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }

    /// What went wrong.
    pub fn what(&self) -> &str {
        &self.what
    }
}

/// Carries frames between the nodes of a cluster.
///
/// # Contract
///
/// * [`send`](Self::send) hands the frames, in order, to every live
///   subscription of every node (the sender's own included or not). It
///   resolves once the bus has taken them (not once every node has them);
///   it does not wait for slow subscribers. An `Err` means the frames may
///   not have been sent (the engine counts them as lost and tells the
///   other nodes with a later frame).
/// * [`subscribe`](Self::subscribe) returns a receiver of every frame sent
///   after it returns, by any node, each at most once, in the order each
///   sender sent them. A subscription that may have missed frames (it fell
///   behind and the bus dropped some, or its connection was lost and made
///   again) gets [`BusEvent::Lagged`] before the frames that follow the
///   gap; the bus reconnects by itself. The receiver ends (`None`) only
///   when the bus is closed.
/// * [`max_frame`](Self::max_frame) is the largest frame the bus carries;
///   the engine sends nothing larger (a larger run is delivered on its own
///   node only and counted). PostgreSQL's `NOTIFY` payload limit (8000
///   bytes) is the implementation's business: it may send large frames
///   through a table.
/// * [`is_connected`](Self::is_connected) says, without I/O, whether the
///   bus can send now (for `/health`).
///
/// `herald-testkit`'s `bus_conformance` suite checks this; every
/// implementation must pass it.
pub trait ClusterBus: Send + Sync + fmt::Debug + 'static {
    /// Sends frames to every node.
    fn send(&self, frames: Vec<Arc<[u8]>>) -> BusFuture<'_, ()>;

    /// A new subscription to every frame sent from now on.
    fn subscribe(&self) -> BusFuture<'_, mpsc::Receiver<BusEvent>>;

    /// The largest frame this bus carries, in bytes.
    fn max_frame(&self) -> usize {
        usize::MAX
    }

    /// Whether the bus can send now.
    fn is_connected(&self) -> bool {
        true
    }
}

impl<B: ClusterBus + ?Sized> ClusterBus for Arc<B> {
    fn send(&self, frames: Vec<Arc<[u8]>>) -> BusFuture<'_, ()> {
        (**self).send(frames)
    }
    fn subscribe(&self) -> BusFuture<'_, mpsc::Receiver<BusEvent>> {
        (**self).subscribe()
    }
    fn max_frame(&self) -> usize {
        (**self).max_frame()
    }
    fn is_connected(&self) -> bool {
        (**self).is_connected()
    }
}
