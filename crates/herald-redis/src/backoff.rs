//! [`Backoff`]: how long a lost subscription waits between attempts to
//! connect again.

use std::time::Duration;

/// The first wait after a failed attempt.
const FIRST: Duration = Duration::from_millis(100);
/// The longest wait.
const MAX: Duration = Duration::from_secs(5);

/// Exponential backoff without I/O: the first attempt after a loss is
/// immediate, then each failure doubles the wait from 100 ms up to 5 s.
/// A fresh `Backoff` for each loss.
///
/// No jitter: each node's subscriptions reconnect on their own schedule
/// already (they lose their connections at different moments), and a
/// Redis server comfortably takes a burst of a few hundred `SUBSCRIBE`s.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The wait before the next attempt, and counts the attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = match self.failures {
            0 => Duration::ZERO,
            n => FIRST.saturating_mul(1 << (n - 1).min(16)).min(MAX),
        };
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediate_then_doubling_up_to_the_cap() {
        let mut b = Backoff::default();
        let ms: Vec<u128> = (0..9).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        for _ in 0..100 {
            assert!(b.next_delay() <= MAX, "never past the cap");
        }
    }
}
