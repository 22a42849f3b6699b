//! The `PubSubTransport` boundary: how published runs reach subscribers.

mod in_process;
mod subscription;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use herald_core::selector::Selector;

use crate::DeliveredMessage;

pub use in_process::InProcessTransport;
pub use subscription::{Lagged, Subscription, SubscriptionStream};

/// Carries published runs to the subscriptions of a channel.
///
/// # Contract
///
/// * [`publish`](Self::publish) hands the run to every current subscription
///   of `message.channel()` whose selector matches its headers, and returns
///   how many that was. It never blocks and never waits for a subscriber: a
///   subscription that cannot keep up loses its oldest undelivered runs and
///   is told how many with [`Lagged`]. A channel is created on first use.
/// * Each subscription receives each matching run exactly once, in the order
///   `publish` was called for that channel (publish order per publisher when
///   publishers call concurrently).
/// * [`subscribe`](Self::subscribe) sees every run published after it
///   returns, and none from before.
/// * [`delete_channel`](Self::delete_channel) ends every subscription of the
///   channel (their streams end after what they had buffered) and forgets
///   the channel; it returns whether the channel existed.
/// * The engine calls `publish` from its driver and from `Engine::publish`,
///   concurrently; implementations are internally synchronized.
pub trait PubSubTransport: Send + Sync + fmt::Debug + 'static {
    /// Delivers one run to the matching subscriptions of its channel.
    fn publish(&self, message: &DeliveredMessage) -> Result<u64, TransportError>;

    /// Opens a subscription to `channel`, filtered by `selector` if given.
    fn subscribe(
        &self,
        channel: &str,
        selector: Option<Selector>,
    ) -> Result<Subscription, TransportError>;

    /// Ends every subscription of `channel` and forgets it.
    fn delete_channel(&self, channel: &str) -> bool;

    /// The channels in use (published to or subscribed to), sorted.
    fn channels(&self) -> Vec<String>;
}

impl<T: PubSubTransport + ?Sized> PubSubTransport for Arc<T> {
    fn publish(&self, message: &DeliveredMessage) -> Result<u64, TransportError> {
        (**self).publish(message)
    }
    fn subscribe(
        &self,
        channel: &str,
        selector: Option<Selector>,
    ) -> Result<Subscription, TransportError> {
        (**self).subscribe(channel, selector)
    }
    fn delete_channel(&self, channel: &str) -> bool {
        (**self).delete_channel(channel)
    }
    fn channels(&self) -> Vec<String> {
        (**self).channels()
    }
}

/// A transport failure (a remote bus being unreachable, say). The in-process
/// transport never fails.
#[derive(Debug, thiserror::Error)]
#[error("pub/sub transport failure: {0}")]
pub struct TransportError(pub Box<dyn StdError + Send + Sync>);
