//! `Inflight`: the state of a run between leaving the wheel (or being
//! published due now) and its completion in the store, and how a cancel
//! meets it.
//!
//! ```text
//!  Claiming ──claimed──► Claimed ──begin_delivery──► Delivering ──finish──► Delivered
//!     │                     │                            │                     │
//!     └──── try_cancel ─────┘                            │                     │
//!      Proceed (ProceedHeld, the first        try_cancel: Wait      try_cancel: one-off → AlreadyPublished
//!      from Claimed): marked cancelled,       (the fan-out is       repeating → Proceed (marked cancelled:
//!      begin_delivery then refuses             synchronous and       no next run)
//!                                              bounded)
//! ```
//!
//! The only phase a cancel waits for is `Delivering`: the synchronous
//! pub/sub fan-out ([`deliver`](super::deliver)). Anything slower that a run
//! starts (a push job, next) happens after `finish` and is never waited
//! for: its own cancellation is a flag it checks.

use crate::{DeliveryCounts, store::FencingToken};

/// A run in flight (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Inflight {
    phase: Phase,
    /// A cancel came in: do not deliver (if not yet), do not reschedule.
    cancelled: bool,
    repeating: bool,
    token: Option<FencingToken>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Taken from the wheel; the claim is in progress.
    Claiming,
    /// Claimed; not yet handed to the fan-out.
    Claimed,
    /// Being handed to subscribers, outside the engine's lock.
    Delivering,
    /// Handed over, with these counts; the completion is on its way to the
    /// store.
    Delivered(DeliveryCounts),
}

/// What a cancel does about a run in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CancelDecision {
    /// Go on and cancel in the store: this run will not be delivered (if it
    /// was not yet) and no run follows it.
    Proceed,
    /// As [`Self::Proceed`], for a run claimed ahead and held for its due
    /// time that this cancel is the first to stop: it is no longer
    /// scheduled (`scheduled_len`).
    ProceedHeld,
    /// The run is being handed to subscribers right now: wait until it has
    /// been, then ask again.
    Wait,
    /// The run of a one-off message has been delivered: nothing is left to
    /// cancel (5040).
    AlreadyPublished,
}

impl Inflight {
    /// A run just taken from the wheel.
    pub(crate) fn claiming() -> Self {
        Self {
            phase: Phase::Claiming,
            cancelled: false,
            repeating: false,
            token: None,
        }
    }

    /// A one-off published due now: claimed at insert, about to be
    /// delivered by its publisher.
    pub(crate) fn delivering(token: FencingToken) -> Self {
        Self {
            phase: Phase::Delivering,
            cancelled: false,
            repeating: false,
            token: Some(token),
        }
    }

    /// The store granted the claim.
    pub(crate) fn claimed(&mut self, token: FencingToken, repeating: bool) {
        debug_assert_eq!(self.phase, Phase::Claiming, "claimed twice");
        self.phase = Phase::Claimed;
        self.token = Some(token);
        self.repeating = repeating;
    }

    /// Whether to hand the run to subscribers now (false: cancelled first,
    /// so it is never delivered).
    pub(crate) fn begin_delivery(&mut self) -> bool {
        debug_assert_eq!(self.phase, Phase::Claimed, "delivery before the claim");
        if self.cancelled {
            return false;
        }
        self.phase = Phase::Delivering;
        true
    }

    /// The run has been handed to subscribers, reaching these counts.
    pub(crate) fn finish(&mut self, counts: DeliveryCounts) {
        debug_assert_eq!(self.phase, Phase::Delivering, "finished without delivering");
        self.phase = Phase::Delivered(counts);
    }

    /// A cancel meets this run.
    pub(crate) fn try_cancel(&mut self) -> CancelDecision {
        match self.phase {
            Phase::Delivering => CancelDecision::Wait,
            Phase::Delivered(_) if !self.repeating => CancelDecision::AlreadyPublished,
            Phase::Claimed if !self.cancelled => {
                self.cancelled = true;
                CancelDecision::ProceedHeld
            }
            Phase::Claiming | Phase::Claimed | Phase::Delivered(_) => {
                self.cancelled = true;
                CancelDecision::Proceed
            }
        }
    }

    /// Whether this is a claimed run held for its due time that a cancel
    /// stopped: it is no longer counted as scheduled (the cancel took it
    /// off `WheelState::held`), and is dropped at its due time.
    pub(crate) fn is_held_and_cancelled(&self) -> bool {
        self.phase == Phase::Claimed && self.cancelled
    }

    /// Whether the message's next run may be scheduled after this one.
    pub(crate) fn may_reschedule(&self) -> bool {
        !self.cancelled
    }

    /// The claim, once granted.
    pub(crate) fn token(&self) -> Option<FencingToken> {
        self.token
    }

    /// What the delivery counted, once delivered (not yet in the store).
    pub(crate) fn delivered(&self) -> Option<DeliveryCounts> {
        match self.phase {
            Phase::Delivered(c) => Some(c),
            _ => None,
        }
    }

    /// Whether the message repeats (known once claimed).
    pub(crate) fn is_repeating(&self) -> bool {
        self.repeating
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: FencingToken = FencingToken::new(7);

    fn counts() -> DeliveryCounts {
        DeliveryCounts {
            runs: 1,
            pubsub: 3,
            ..DeliveryCounts::default()
        }
    }

    /// A run of a message that repeats or not, advanced through `steps`
    /// phases of its life (0: claiming … 3: delivered).
    fn at_step(repeating: bool, steps: usize) -> Inflight {
        let mut f = Inflight::claiming();
        if steps >= 1 {
            f.claimed(T, repeating);
        }
        if steps >= 2 {
            assert!(f.begin_delivery());
        }
        if steps >= 3 {
            f.finish(counts());
        }
        f
    }

    /// Every place a cancel can meet a run, for one-offs and repeating
    /// messages: whether the cancel proceeds, waits or is refused, whether
    /// the run is then delivered, and whether a next run may follow.
    #[test]
    fn every_cancel_and_delivery_interleaving() {
        struct Case {
            repeating: bool,
            steps: usize,
            decision: CancelDecision,
            delivered_after: bool,
            reschedule: bool,
        }
        use CancelDecision::*;
        let cases = [
            // Claiming or claimed: the cancel wins, the run is not delivered.
            (false, 0, Proceed, false, false),
            (true, 0, Proceed, false, false),
            (false, 1, ProceedHeld, false, false),
            (true, 1, ProceedHeld, false, false),
            // Delivering: the cancel waits; once delivered a one-off is
            // published, a repeating message is cancelled for the rest.
            (false, 2, Wait, true, true),
            (true, 2, Wait, true, true),
            // Delivered.
            (false, 3, AlreadyPublished, true, true),
            (true, 3, Proceed, true, false),
        ]
        .map(
            |(repeating, steps, decision, delivered_after, reschedule)| Case {
                repeating,
                steps,
                decision,
                delivered_after,
                reschedule,
            },
        );
        for c in cases {
            let mut f = at_step(c.repeating, c.steps);
            let what = format!("repeating={} step={}", c.repeating, c.steps);
            assert_eq!(f.try_cancel(), c.decision, "{what}");
            // The driver goes on with the run.
            if c.steps == 0 {
                f.claimed(T, c.repeating);
            }
            let delivered = if c.steps <= 1 {
                let go = f.begin_delivery();
                if go {
                    f.finish(counts());
                }
                go
            } else {
                if c.steps == 2 {
                    f.finish(counts());
                }
                true
            };
            assert_eq!(delivered, c.delivered_after, "{what}");
            assert_eq!(f.delivered().is_some(), c.delivered_after, "{what}");
            assert_eq!(f.may_reschedule(), c.reschedule, "{what}");
            if c.decision == Wait {
                // Asked again after the delivery.
                let again = f.try_cancel();
                let want = if c.repeating {
                    Proceed
                } else {
                    AlreadyPublished
                };
                assert_eq!(again, want, "{what}, asked again");
                assert_eq!(f.may_reschedule(), !c.repeating, "{what}, asked again");
            }
        }
    }

    #[test]
    fn an_immediate_publish_is_delivering_from_the_start() {
        let mut f = Inflight::delivering(T);
        assert_eq!(f.token(), Some(T));
        assert_eq!(f.try_cancel(), CancelDecision::Wait);
        f.finish(counts());
        assert_eq!(f.delivered(), Some(counts()));
        assert_eq!(f.try_cancel(), CancelDecision::AlreadyPublished);
        assert!(!f.is_repeating());
    }

    #[test]
    fn only_the_first_cancel_of_a_held_run_stops_it() {
        let mut f = at_step(false, 1);
        assert_eq!(f.try_cancel(), CancelDecision::ProceedHeld);
        assert!(f.is_held_and_cancelled());
        assert_eq!(f.try_cancel(), CancelDecision::Proceed, "stopped already");
        assert!(!f.begin_delivery());
    }

    #[test]
    fn a_second_cancel_of_a_repeating_message_proceeds_to_the_store() {
        let mut f = at_step(true, 3);
        assert_eq!(f.try_cancel(), CancelDecision::Proceed);
        assert_eq!(
            f.try_cancel(),
            CancelDecision::Proceed,
            "the store says 5040"
        );
        assert!(!f.may_reschedule());
    }
}
