//! [`Queue`]: one subscription's bounded queue, which drops what does not
//! fit and says so before the next frame.

use tokio::sync::mpsc::{self, error::TrySendError};

use herald::bus::BusEvent;

/// The sending side of one subscription: a bounded mpsc queue of
/// [`BusEvent`]s, never waited on (a slow subscriber must not hold up the
/// connection's reader). A frame that does not fit is dropped and counted;
/// a [`BusEvent::Lagged`] with the count goes before the next frame that
/// fits.
#[derive(Debug)]
pub(crate) struct Queue {
    tx: mpsc::Sender<BusEvent>,
    /// Frames dropped since the last event queued; `Some(0)` when the
    /// count is unknown (the connection was lost).
    lost: Option<u64>,
}

/// The receiver is gone.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Closed;

impl Queue {
    pub(crate) fn new(tx: mpsc::Sender<BusEvent>) -> Self {
        Self { tx, lost: None }
    }

    /// The sender, to wait for the receiver to go away.
    pub(crate) fn sender(&self) -> &mpsc::Sender<BusEvent> {
        &self.tx
    }

    /// Offers a frame, after the pending lag notice.
    pub(crate) fn frame(&mut self, frame: std::sync::Arc<[u8]>) -> Result<(), Closed> {
        if !self.flush_lag()? {
            self.lost = self.lost.map(|n| n.saturating_add(1));
            return Ok(());
        }
        match self.tx.try_send(BusEvent::Frame(frame)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.lost = Some(1);
                Ok(())
            }
            Err(TrySendError::Closed(_)) => Err(Closed),
        }
    }

    /// Records that the connection was lost (frames may have been missed,
    /// how many is unknown) and tries to say so at once.
    pub(crate) fn interrupted(&mut self) -> Result<(), Closed> {
        self.lost = Some(0);
        self.flush_lag().map(|_| ())
    }

    /// Queues the pending lag notice, if any; false if it did not fit
    /// (it stays pending).
    fn flush_lag(&mut self) -> Result<bool, Closed> {
        let Some(missed) = self.lost else {
            return Ok(true);
        };
        match self.tx.try_send(BusEvent::Lagged { missed }) {
            Ok(()) => {
                self.lost = None;
                Ok(true)
            }
            Err(TrySendError::Full(_)) => Ok(false),
            Err(TrySendError::Closed(_)) => Err(Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn f(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    fn drain(rx: &mut mpsc::Receiver<BusEvent>) -> Vec<BusEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn overflow_is_counted_and_announced_before_the_next_frame() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut q = Queue::new(tx);
        for s in ["1", "2", "3", "4"] {
            q.frame(f(s)).unwrap();
        }
        assert_eq!(
            drain(&mut rx),
            [BusEvent::Frame(f("1")), BusEvent::Frame(f("2"))]
        );
        q.frame(f("5")).unwrap();
        q.frame(f("6")).unwrap();
        assert_eq!(
            drain(&mut rx),
            [BusEvent::Lagged { missed: 2 }, BusEvent::Frame(f("5"))],
            "3 and 4 dropped; 6 did not fit behind the notice"
        );
        q.frame(f("7")).unwrap();
        assert_eq!(
            drain(&mut rx),
            [BusEvent::Lagged { missed: 1 }, BusEvent::Frame(f("7"))]
        );
    }

    #[test]
    fn frames_dropped_while_the_notice_waits_all_count() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut q = Queue::new(tx);
        for s in ["1", "2", "3", "4", "5"] {
            q.frame(f(s)).unwrap();
        }
        assert_eq!(
            drain(&mut rx),
            [BusEvent::Frame(f("1")), BusEvent::Frame(f("2"))]
        );
        q.frame(f("6")).unwrap();
        assert_eq!(
            drain(&mut rx),
            [BusEvent::Lagged { missed: 3 }, BusEvent::Frame(f("6"))]
        );
    }

    #[test]
    fn an_interruption_is_announced_at_once_or_before_the_next_frame() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut q = Queue::new(tx);
        q.interrupted().unwrap();
        assert_eq!(drain(&mut rx), [BusEvent::Lagged { missed: 0 }], "at once");
        q.frame(f("1")).unwrap();
        q.interrupted().unwrap(); // full: pending
        assert_eq!(drain(&mut rx), [BusEvent::Frame(f("1"))]);
        q.frame(f("2")).unwrap();
        assert_eq!(drain(&mut rx), [BusEvent::Lagged { missed: 0 }]);
    }

    #[test]
    fn a_gone_receiver_is_reported() {
        let (tx, rx) = mpsc::channel(4);
        let mut q = Queue::new(tx);
        drop(rx);
        assert_eq!(q.frame(f("1")), Err(Closed));
        assert_eq!(q.interrupted(), Err(Closed));
    }
}
