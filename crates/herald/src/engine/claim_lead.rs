//! How far ahead of their due time runs are claimed: far enough that the
//! claim's round trip is over before the runs are due, learnt from the
//! slowest round trips the store took lately (a windowed maximum, as BBR
//! keeps its bandwidth estimate).
//!
//! A claim is a store round trip: a durable commit on redb (about a
//! millisecond), a PostgreSQL transaction on a shared store (a few ms when
//! PostgreSQL is idle, now and then 40-80 ms when it is busy). A run whose
//! claim is still under way at its due time is late by the rest of the
//! round trip, and the claims are made one after another, so one slow
//! claim delays the next one too. The tail is what matters, not the mean:
//! in `cluster-bench` (1 node on PostgreSQL, 5k runs/s) a lead learnt as
//! TCP learns its retransmission timeout (smoothed round trip plus four
//! deviations) settled at 6-10 ms and left 12 % of the runs claimed after
//! their due time (lateness p99 38 ms); a fixed 40 ms left 4-5 % (p99 25-38
//! ms), 80 ms 0-1 % (p99 3-6 ms). So the lead is twice the slowest round
//! trip of the last [`WINDOW_MS`] to [`WINDOW_MS`] × 2, within
//! [`MIN_MS`, `MAX_MS`]. The bound matters twice: a run is in flight from
//! its claim, and a cancel on another node of a shared store may come too
//! late for it (as for a run being delivered), so the lead is also the
//! window in which such a cancel can miss a run. 100 ms covered the round
//! trips seen on a busy two-core machine (3 nodes at 5k runs/s: 1-2 % of
//! the runs claimed late, p99 12-14 ms); a fixed 200 ms did no worse (0-1
//! %), one run with a 250 ms bound did worse (5 %, the machine busier).

use herald_core::Tick;

/// The shortest lead, ms: what a local store needs (and the lead before
/// any round trip was seen).
pub(crate) const MIN_MS: u64 = 5;

/// The longest lead, ms: bounds how long before its due time a run can be
/// claimed (and so how early a cancel on another node can come too late).
pub(crate) const MAX_MS: u64 = 100;

/// How long a slow round trip is remembered: between one and two windows.
pub(crate) const WINDOW_MS: u64 = 5_000;

/// Learns the claim lead from the claims' round trips (ms, on the engine's
/// clock).
#[derive(Debug, Clone, Default)]
pub(crate) struct ClaimLead {
    /// When the current window began (`None` before the first round trip).
    since: Option<Tick>,
    /// The slowest round trip of the current window and of the one before.
    current: u64,
    previous: u64,
}

impl ClaimLead {
    /// Records one claim's round trip, answered at `now`.
    pub(crate) fn observe(&mut self, rtt_ms: u64, now: Tick) {
        let since = *self.since.get_or_insert(now);
        let age = now.millis_since(since);
        if age >= WINDOW_MS {
            // A window with no round trip between leaves nothing to keep.
            self.previous = if age < 2 * WINDOW_MS { self.current } else { 0 };
            self.current = 0;
            self.since = Some(now);
        }
        self.current = self.current.max(rtt_ms);
    }

    /// How far ahead of their due time runs are claimed now, ms.
    pub(crate) fn lead_ms(&self) -> u64 {
        self.current
            .max(self.previous)
            .saturating_mul(2)
            .clamp(MIN_MS, MAX_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Tick {
        Tick::from_millis(1_000_000 + ms)
    }

    #[test]
    fn a_local_store_keeps_the_shortest_lead() {
        let mut lead = ClaimLead::default();
        assert_eq!(lead.lead_ms(), MIN_MS);
        for (i, rtt) in [1, 0, 1, 2, 1, 1, 0, 1].into_iter().enumerate() {
            lead.observe(rtt, at(i as u64 * 10));
            assert_eq!(lead.lead_ms(), MIN_MS, "after a {rtt} ms round trip");
        }
    }

    #[test]
    fn the_lead_is_twice_the_slowest_recent_round_trip() {
        let mut lead = ClaimLead::default();
        for (i, rtt) in [3, 20, 7, 40, 5, 9].into_iter().enumerate() {
            lead.observe(rtt, at(i as u64 * 100));
        }
        assert_eq!(lead.lead_ms(), 80);
    }

    #[test]
    fn a_slow_round_trip_is_forgotten_after_one_to_two_windows() {
        let mut lead = ClaimLead::default();
        lead.observe(2, at(0));
        lead.observe(40, at(100));
        assert_eq!(lead.lead_ms(), 80, "at once");
        let mut t = 200;
        while t < WINDOW_MS {
            lead.observe(2, at(t));
            t += 100;
        }
        assert_eq!(lead.lead_ms(), 80, "within its window");
        lead.observe(2, at(WINDOW_MS));
        assert_eq!(lead.lead_ms(), 80, "the previous window still counts");
        lead.observe(2, at(2 * WINDOW_MS));
        assert_eq!(lead.lead_ms(), MIN_MS, "two windows on: forgotten");
    }

    #[test]
    fn a_long_quiet_spell_forgets_at_once() {
        let mut lead = ClaimLead::default();
        lead.observe(60, at(0));
        lead.observe(1, at(3 * WINDOW_MS));
        assert_eq!(lead.lead_ms(), MIN_MS);
    }

    #[test]
    fn the_lead_is_bounded() {
        let mut lead = ClaimLead::default();
        for (i, rtt) in [u64::MAX, 10_000, u64::MAX / 2].into_iter().enumerate() {
            lead.observe(rtt, at(i as u64));
            assert_eq!(lead.lead_ms(), MAX_MS);
        }
    }
}
