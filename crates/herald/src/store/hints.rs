//! Wake-up hints from a shared store: "a run due at `t` was scheduled",
//! so an engine whose wheel does not hold that run reserves it in time.
//!
//! A store shared by several nodes holds runs that no node's wheel has
//! (published by a node that stopped, or due beyond every node's
//! horizon). Each engine reserves such runs a little before they are due
//! ([`Store::reserve_due`](super::Store::reserve_due)) on a timer; a hint
//! makes it look at once when another node schedules a run sooner than
//! its next look. Hints only make firing timelier: a lost hint delays a
//! run until the next periodic look, it never loses one.
//!
//! The store keeps one [`HintHub`]; each engine takes its own
//! [`DueHints`] from it ([`Store::due_hints`](super::Store::due_hints)).
//! A subscriber holds at most one pending hint, the earliest, so a
//! subscriber that does not read costs no memory however many runs are
//! scheduled.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use herald_core::Tick;
use tokio::sync::Notify;

/// The sending side, kept by a store: [`hint`](Self::hint) tells every
/// live subscriber.
#[derive(Default)]
pub struct HintHub {
    subscribers: Mutex<Vec<Weak<Slot>>>,
}

impl fmt::Debug for HintHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HintHub")
            .field("subscribers", &self.lock().len())
            .finish()
    }
}

/// One subscriber's pending hint.
#[derive(Debug, Default)]
struct Slot {
    earliest: Mutex<Option<Tick>>,
    notify: Notify,
}

impl HintHub {
    /// A hub without subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Slot>>> {
        // Every update under the lock is a single push or retain.
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new subscriber; it sees the hints given from now on.
    pub fn subscribe(&self) -> DueHints {
        let slot = Arc::new(Slot::default());
        let mut subs = self.lock();
        subs.retain(|s| s.strong_count() > 0);
        subs.push(Arc::downgrade(&slot));
        DueHints { slot }
    }

    /// Tells every subscriber that a run due at `due` was scheduled
    /// (each keeps the earliest it has not read yet).
    pub fn hint(&self, due: Tick) {
        let mut subs = self.lock();
        subs.retain(|s| match s.upgrade() {
            Some(slot) => {
                {
                    let mut earliest = slot.earliest.lock().unwrap_or_else(|e| e.into_inner());
                    *earliest = Some(earliest.map_or(due, |t| t.min(due)));
                }
                slot.notify.notify_one();
                true
            }
            None => false,
        });
    }

    /// How many subscribers are alive.
    pub fn subscribers(&self) -> usize {
        self.lock().iter().filter(|s| s.strong_count() > 0).count()
    }
}

/// The receiving side, one per engine: [`recv`](Self::recv) waits for the
/// next hint and gives the earliest due time hinted since the last call.
#[derive(Debug)]
pub struct DueHints {
    slot: Arc<Slot>,
}

impl DueHints {
    /// Waits until a hint arrives; the earliest due time hinted since the
    /// last call (hints given before are not lost: they are returned at
    /// once).
    ///
    /// Cancellation safe: a hint is only taken when this returns.
    pub async fn recv(&mut self) -> Tick {
        let slot = self.slot.clone();
        loop {
            let notified = slot.notify.notified();
            if let Some(t) = self.try_recv() {
                return t;
            }
            notified.await;
        }
    }

    /// The earliest due time hinted since the last read, if any, without
    /// waiting.
    pub fn try_recv(&mut self) -> Option<Tick> {
        self.slot
            .earliest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn each_subscriber_gets_the_earliest_hint_once() {
        let hub = HintHub::new();
        let mut a = hub.subscribe();
        hub.hint(Tick::from_millis(50));
        let mut b = hub.subscribe();
        hub.hint(Tick::from_millis(70));
        hub.hint(Tick::from_millis(40));
        assert_eq!(a.recv().await, Tick::from_millis(40));
        assert_eq!(a.try_recv(), None, "taken once");
        // `b` subscribed after the first hint.
        assert_eq!(b.try_recv(), Some(Tick::from_millis(40)));
        hub.hint(Tick::from_millis(90));
        assert_eq!(b.recv().await, Tick::from_millis(90));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn recv_waits_for_a_hint_and_dropped_subscribers_are_forgotten() {
        let hub = Arc::new(HintHub::new());
        let mut a = hub.subscribe();
        let dropped = hub.subscribe();
        assert_eq!(hub.subscribers(), 2);
        drop(dropped);
        assert_eq!(hub.subscribers(), 1);
        let waiting = tokio::spawn(async move { a.recv().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no hint yet");
        hub.hint(Tick::from_millis(7));
        assert_eq!(waiting.await.unwrap(), Tick::from_millis(7));
        assert_eq!(hub.lock().len(), 1, "the dropped subscriber is gone");
    }
}
