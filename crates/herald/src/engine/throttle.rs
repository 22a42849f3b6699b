//! Logging a failure that repeats (the store cannot write for a while)
//! at a bounded rate: the first failure, then at most one line per
//! [`Throttle::WINDOW`] saying how many were left out, and one line when
//! it ends. Time is the engine's clock.

use std::sync::Mutex;

use herald_core::Tick;

/// The state of one repeating failure (one per call site).
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the last line was logged (`None`: no failure going on).
    last_line: Option<Tick>,
    /// Failures since that line.
    since_line: u64,
    /// Failures since the first.
    total: u64,
}

/// What to log for a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The first of a run of failures: log it.
    First,
    /// A window has passed: log it, with the failures not logged since
    /// the last line.
    Again { left_out: u64 },
    /// Not now.
    Quiet,
}

impl Throttle {
    /// At most one line per this, while a failure goes on.
    pub(crate) const WINDOW_MS: u64 = 30_000;

    /// A failure at `now`: whether to log it.
    pub(crate) fn failure(&self, now: Tick) -> Failure {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.total += 1;
        match s.last_line {
            None => {
                s.last_line = Some(now);
                s.since_line = 0;
                Failure::First
            }
            Some(last) if now.as_millis() >= last.as_millis().saturating_add(Self::WINDOW_MS) => {
                let left_out = s.since_line;
                s.last_line = Some(now);
                s.since_line = 0;
                Failure::Again { left_out }
            }
            Some(_) => {
                s.since_line += 1;
                Failure::Quiet
            }
        }
    }

    /// A success: if failures were going on, how many there were (log
    /// that it works again).
    pub(crate) fn success(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.last_line?;
        let total = s.total;
        *s = State::default();
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Tick {
        Tick::from_millis(ms)
    }

    #[test]
    fn one_line_then_one_per_window_then_one_when_it_ends() {
        let th = Throttle::default();
        assert_eq!(th.success(), None, "nothing was failing");
        assert_eq!(th.failure(t(0)), Failure::First);
        // Five a second for 30 s: quiet.
        for i in 1..150 {
            assert_eq!(th.failure(t(i * 200)), Failure::Quiet, "{i}");
        }
        assert_eq!(th.failure(t(30_000)), Failure::Again { left_out: 149 });
        assert_eq!(th.failure(t(30_200)), Failure::Quiet);
        assert_eq!(th.success(), Some(152));
        assert_eq!(th.success(), None);
        assert_eq!(th.failure(t(40_000)), Failure::First, "a new outage");
    }
}
