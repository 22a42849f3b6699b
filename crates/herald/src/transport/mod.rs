//! The `PubSubTransport` boundary: how published runs reach subscribers.

mod in_process;
mod inbox;
mod subscription;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use herald_core::selector::Selector;

use crate::DeliveredMessage;

pub use in_process::InProcessTransport;
pub use inbox::{
    FanOut, Inbox, InboxBatchItem, InboxItem, InboxLimits, Subscriber, SubscriptionId,
};
pub use subscription::{Lagged, Subscription};

/// Carries published runs to the subscriptions of a channel on this node.
///
/// # Contract
///
/// * [`publish`](Self::publish) hands the run to every current subscription
///   of `message.channel()` whose selector matches its headers, and returns
///   how many that was. It never blocks and never waits for a subscriber:
///   each subscription delivers into its [`Inbox`], which drops its oldest
///   runs when over its budget and says so ([`InboxItem::Lagged`]).
/// * Each subscription receives each matching run exactly once, in the order
///   `publish` was called for that channel (publish order per publisher when
///   publishers call concurrently).
/// * [`subscribe`](Self::subscribe) sees every run published after it
///   returns, and none from before. Dropping the returned [`Membership`]
///   unsubscribes at once: the subscription's queued runs are freed and no
///   run reaches it afterwards.
/// * A channel exists while it has subscriptions: publishing to a channel
///   nobody subscribes to keeps nothing, and [`channels`](Self::channels)
///   lists the channels with subscriptions;
///   [`subscriptions`](Self::subscriptions) counts the live ones.
/// * [`delete_channel`](Self::delete_channel) ends every subscription of the
///   channel (each inbox yields [`InboxItem::Ended`] after what it had
///   queued) and returns whether the channel had any.
/// * [`lag_all`](Self::lag_all) tells every live subscription (each
///   inbox yields [`InboxItem::Lagged`] before its next run) that it may
///   have missed `missed` runs (0: unknown) that never reached this node:
///   the engine calls it when its cluster bus lost frames, so subscribers
///   are told rather than silently missing runs. It returns how many
///   subscriptions were told.
/// * The engine calls `publish` from its driver and from `Engine::publish`,
///   concurrently; implementations are internally synchronized. No lock is
///   held for more than a bounded number of selector evaluations.
pub trait PubSubTransport: Send + Sync + fmt::Debug + 'static {
    /// Delivers one run to the matching subscriptions of its channel.
    fn publish(&self, message: &DeliveredMessage) -> Result<u64, TransportError>;

    /// Subscribes `subscriber` (one slot of an inbox) to `channel`,
    /// filtered by `selector` if given.
    fn subscribe(
        &self,
        channel: &str,
        selector: Option<Selector>,
        subscriber: Subscriber,
    ) -> Result<Membership, TransportError>;

    /// Ends every subscription of `channel`.
    fn delete_channel(&self, channel: &str) -> bool;

    /// The channels with subscriptions, sorted.
    fn channels(&self) -> Vec<String>;

    /// How many subscriptions are live (for metrics).
    fn subscriptions(&self) -> usize;

    /// Tells every subscription it may have missed `missed` runs.
    fn lag_all(&self, missed: u64) -> u64;
}

impl<T: PubSubTransport + ?Sized> PubSubTransport for Arc<T> {
    fn publish(&self, message: &DeliveredMessage) -> Result<u64, TransportError> {
        (**self).publish(message)
    }
    fn subscribe(
        &self,
        channel: &str,
        selector: Option<Selector>,
        subscriber: Subscriber,
    ) -> Result<Membership, TransportError> {
        (**self).subscribe(channel, selector, subscriber)
    }
    fn delete_channel(&self, channel: &str) -> bool {
        (**self).delete_channel(channel)
    }
    fn channels(&self) -> Vec<String> {
        (**self).channels()
    }
    fn subscriptions(&self) -> usize {
        (**self).subscriptions()
    }
    fn lag_all(&self, missed: u64) -> u64 {
        (**self).lag_all(missed)
    }
}

/// One live subscription of an [`Inbox`] to a channel; dropping it
/// unsubscribes (at once: its queued runs are freed).
#[must_use = "dropping a Membership unsubscribes"]
pub struct Membership {
    id: SubscriptionId,
    channel: Arc<str>,
    _guard: Box<dyn Send + Sync>,
}

impl Membership {
    /// A membership whose `guard` unsubscribes when dropped (for
    /// transports).
    pub fn new(id: SubscriptionId, channel: &str, guard: impl Send + Sync + 'static) -> Self {
        Self {
            id,
            channel: channel.into(),
            _guard: Box::new(guard),
        }
    }

    /// The subscription's id within its inbox (what its
    /// [`InboxItem`]s carry).
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// The channel subscribed to.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// A transport failure (a remote bus being unreachable, say). The in-process
/// transport never fails.
#[derive(Debug, thiserror::Error)]
#[error("pub/sub transport failure: {0}")]
pub struct TransportError(pub Box<dyn StdError + Send + Sync>);
