//! [`InProcessBus`]: a cluster bus between engines of one process.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::{BusEvent, BusFuture, ClusterBus};

/// A [`ClusterBus`] between the engines of one process: tests and
/// simulations of a cluster (several engines on one
/// [`MemoryStore::new_shared`](crate::MemoryStore::new_shared)), and a
/// model of what a networked bus promises. Each subscription has a queue
/// of `capacity` events; a subscription that falls behind loses the
/// frames that do not fit and gets [`BusEvent::Lagged`] with their count
/// before the next frame it receives. [`interrupt`](Self::interrupt)
/// plays a lost connection.
///
/// ```
/// use std::sync::Arc;
/// use herald::bus::{BusEvent, ClusterBus, InProcessBus};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = InProcessBus::new(16);
/// let mut rx = bus.subscribe().await.unwrap();
/// bus.send(vec![Arc::from(&b"hello"[..])]).await.unwrap();
/// assert_eq!(rx.recv().await, Some(BusEvent::Frame(Arc::from(&b"hello"[..]))));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct InProcessBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    subscribers: Mutex<Vec<Sub>>,
}

#[derive(Debug)]
struct Sub {
    tx: mpsc::Sender<BusEvent>,
    /// Frames lost since the last event it received; `Some(0)` after an
    /// interruption (unknown count).
    lost: Option<u64>,
}

impl Sub {
    /// Offers `event`, after the pending lag notice; false once the
    /// receiver is gone.
    fn offer(&mut self, event: BusEvent) -> bool {
        if let Some(missed) = self.lost {
            match self.tx.try_send(BusEvent::Lagged { missed }) {
                Ok(()) => self.lost = None,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.lost = Some(missed.saturating_add(1));
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lost = Some(1);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

impl InProcessBus {
    /// A bus whose subscriptions each queue at most `capacity` events (at
    /// least 2).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                capacity: capacity.max(2),
                subscribers: Mutex::new(Vec::new()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Sub>> {
        // Every update under the lock is complete before it is released.
        self.inner
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Plays a lost and re-made connection: every subscription gets
    /// [`BusEvent::Lagged`] (count unknown: 0) before its next frame.
    pub fn interrupt(&self) {
        for s in self.lock().iter_mut() {
            s.lost = Some(s.lost.unwrap_or(0));
        }
    }

    /// How many subscriptions are live.
    pub fn subscriptions(&self) -> usize {
        let mut subs = self.lock();
        subs.retain(|s| !s.tx.is_closed());
        subs.len()
    }
}

impl Default for InProcessBus {
    /// A bus with queues of 4096 events.
    fn default() -> Self {
        Self::new(4096)
    }
}

impl ClusterBus for InProcessBus {
    fn send(&self, frames: Vec<Arc<[u8]>>) -> BusFuture<'_, ()> {
        let mut subs = self.lock();
        for frame in frames {
            subs.retain_mut(|s| s.offer(BusEvent::Frame(frame.clone())));
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn subscribe(&self) -> BusFuture<'_, mpsc::Receiver<BusEvent>> {
        let (tx, rx) = mpsc::channel(self.inner.capacity);
        self.lock().push(Sub { tx, lost: None });
        Box::pin(std::future::ready(Ok(rx)))
    }
}
