//! `Subscription`: one channel's runs, on an inbox of its own.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{Inbox, InboxItem, Membership};
use crate::DeliveredMessage;

/// A subscription fell behind: this many runs were dropped (the oldest
/// ones) before it read them. The runs after the gap follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("subscription lagged behind and missed {0} messages")]
pub struct Lagged(pub u64);

/// The receiving end of one channel: a [`Stream`] of the runs published to
/// it that match its selector, each exactly once and in publish order, with
/// `Err(Lagged(n))` in place of runs it was too slow to take (its
/// [`Inbox`] is bounded in messages and bytes).
///
/// The stream ends when the channel is deleted (after the buffered runs) or
/// the engine shuts down. Dropping the subscription unsubscribes at once.
///
/// # Cancellation safety
///
/// [`recv`](Self::recv) is cancellation safe: if it is dropped before it
/// completes, no run is lost.
pub struct Subscription {
    inbox: Inbox,
    membership: Option<Membership>,
}

impl Subscription {
    pub(crate) fn new(inbox: Inbox, membership: Membership) -> Self {
        Self {
            inbox,
            membership: Some(membership),
        }
    }

    /// The channel subscribed to.
    pub fn channel(&self) -> &str {
        self.membership.as_ref().map_or("", Membership::channel)
    }

    /// The next run; `None` once the subscription has ended.
    pub async fn recv(&mut self) -> Option<Result<DeliveredMessage, Lagged>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next run if one is buffered, without waiting. `None` means
    /// nothing is buffered right now (or the subscription ended).
    pub fn try_recv(&mut self) -> Option<Result<DeliveredMessage, Lagged>> {
        let item = self.inbox.try_recv()?;
        self.map(item)
    }

    /// Polls for the next run.
    pub fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<DeliveredMessage, Lagged>>> {
        match self.inbox.poll_recv(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(self.map(item)),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Runs buffered and not yet read.
    pub fn buffered(&self) -> usize {
        self.inbox.len()
    }

    fn map(&mut self, item: InboxItem) -> Option<Result<DeliveredMessage, Lagged>> {
        match item {
            InboxItem::Message { message, .. } => Some(Ok(message)),
            InboxItem::Lagged { missed, .. } => Some(Err(Lagged(missed))),
            InboxItem::Ended { .. } => {
                // Its only subscription ended: nothing more can come.
                self.inbox.close();
                None
            }
        }
    }
}

impl Stream for Subscription {
    type Item = Result<DeliveredMessage, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel())
            .field("buffered", &self.buffered())
            .finish_non_exhaustive()
    }
}
