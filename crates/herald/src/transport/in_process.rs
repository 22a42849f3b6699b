//! The in-process [`PubSubTransport`]: per-subscription bounded buffers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use herald_core::selector::Selector;

use super::subscription::Queue;
use super::{PubSubTransport, Subscription, TransportError};
use crate::DeliveredMessage;

/// Delivers runs to subscriptions in the same process.
///
/// Each subscription has its own bounded buffer (default
/// [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) runs). Publishing evaluates
/// each subscription's selector and appends the run to the buffers of those
/// that match; when a buffer is full its oldest run is dropped and the
/// subscription later reads `Err(Lagged(n))`. So a slow subscriber never
/// slows the publisher or anyone else, and the counters know exactly how
/// many subscriptions each run reached.
///
/// # Implementation
///
/// A read-mostly map of channels; each channel holds its subscriptions'
/// queues behind a read-write lock (publishers share it; subscribe and the
/// lazy clean-up of dropped subscriptions take it exclusively). A run is one
/// reference-counted [`DeliveredMessage`], so fan-out copies no bodies.
#[derive(Clone, Debug)]
pub struct InProcessTransport {
    channels: Arc<RwLock<HashMap<String, Arc<Channel>>>>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Channel {
    subs: RwLock<Vec<Arc<Queue>>>,
    /// How many queues in `subs` have closed since the last clean-up.
    dead: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Default for InProcessTransport {
    fn default() -> Self {
        Self::new()
    }
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl InProcessTransport {
    /// Runs buffered per subscription before it lags: 1024.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A transport with the default buffer size.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A transport buffering up to `capacity` runs per subscription (at
    /// least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            channels: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    fn channel(&self, name: &str) -> Arc<Channel> {
        if let Some(c) = read(&self.channels).get(name) {
            return c.clone();
        }
        write(&self.channels)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// How many live subscriptions `channel` has.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        read(&self.channels).get(channel).map_or(0, |c| {
            read(&c.subs).iter().filter(|q| !q.is_closed()).count()
        })
    }
}

impl Channel {
    fn prune(&self) {
        if self.dead.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut subs = write(&self.subs);
        let before = subs.len();
        subs.retain(|q| !q.is_closed());
        self.dead.fetch_sub(before - subs.len(), Ordering::Relaxed);
    }
}

impl PubSubTransport for InProcessTransport {
    fn publish(&self, message: &DeliveredMessage) -> Result<u64, TransportError> {
        let channel = self.channel(message.channel());
        channel.prune();
        let mut delivered = 0;
        for q in read(&channel.subs).iter() {
            if q.wants(message) && q.push(message.clone()) {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    fn subscribe(
        &self,
        channel: &str,
        selector: Option<Selector>,
    ) -> Result<Subscription, TransportError> {
        let ch = self.channel(channel);
        let q = Arc::new(Queue::new(selector, self.capacity, ch.dead.clone()));
        write(&ch.subs).push(q.clone());
        Ok(Subscription::local(channel.to_owned(), q))
    }

    fn delete_channel(&self, channel: &str) -> bool {
        let Some(ch) = write(&self.channels).remove(channel) else {
            return false;
        };
        for q in write(&ch.subs).drain(..) {
            q.close();
        }
        true
    }

    fn channels(&self) -> Vec<String> {
        let mut names: Vec<String> = read(&self.channels).keys().cloned().collect();
        names.sort_unstable();
        names
    }
}
