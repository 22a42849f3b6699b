//! The server's timeouts on its injected [`Clock`]: [`ClockSleep`] (a sleep
//! until a deadline, exact even on clocks whose sleeps wake early), and
//! [`ClockTimer`], hyper's [`Timer`] on the same clock, so the header-read
//! timeout moves with a test's [`ManualClock`](herald::ManualClock) like
//! every other timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use herald::Clock;
use herald_core::Tick;
use hyper::rt::{Sleep, Timer};

/// Completes once `clock` reads `deadline` or later.
///
/// [`Clock::sleep_until`] may wake early (the system clock bounds each
/// sleep to a second, to notice wall-clock steps); this sleeps again until
/// the deadline has really passed.
pub(crate) struct ClockSleep {
    clock: Arc<dyn Clock>,
    deadline: Tick,
    // A `Mutex` only to be `Sync`, as hyper's `Sleep` must be; it is
    // never contended (only `poll` takes it, through `&mut self`).
    inner: Mutex<Option<herald::Sleep>>,
}

impl ClockSleep {
    /// A sleep until `deadline` on `clock`.
    pub(crate) fn until(clock: Arc<dyn Clock>, deadline: Tick) -> Self {
        Self {
            clock,
            deadline,
            inner: Mutex::new(None),
        }
    }

    /// A sleep of `d` from now on `clock`.
    pub(crate) fn after(clock: Arc<dyn Clock>, d: Duration) -> Self {
        let deadline = clock.now().saturating_add_millis(millis(d));
        Self::until(clock, deadline)
    }
}

/// `d` in whole milliseconds, rounded up (a timeout never fires early).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

impl Future for ClockSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let inner = this
            .inner
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if this.clock.now() >= this.deadline {
                return Poll::Ready(());
            }
            let sleep = inner.get_or_insert_with(|| this.clock.sleep_until(this.deadline));
            match sleep.as_mut().poll(cx) {
                // Woken (perhaps early): look at the clock again.
                Poll::Ready(()) => *inner = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Sleep for ClockSleep {}

/// hyper's [`Timer`] on the server's clock. hyper speaks [`Instant`]s;
/// they map to the clock's ticks through the pair read when the timer was
/// made.
#[derive(Clone)]
pub(crate) struct ClockTimer {
    clock: Arc<dyn Clock>,
    base_instant: Instant,
    base_tick: Tick,
}

impl std::fmt::Debug for ClockTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClockTimer")
            .field("base_tick", &self.base_tick)
            .finish_non_exhaustive()
    }
}

impl ClockTimer {
    /// A timer on `clock`.
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            base_instant: Instant::now(),
            base_tick: clock.now(),
            clock,
        }
    }

    fn tick_of(&self, at: Instant) -> Tick {
        self.base_tick
            .saturating_add_millis(millis(at.saturating_duration_since(self.base_instant)))
    }
}

impl Timer for ClockTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(ClockSleep::after(self.clock.clone(), duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(ClockSleep::until(
            self.clock.clone(),
            self.tick_of(deadline),
        ))
    }

    fn now(&self) -> Instant {
        let elapsed = self
            .clock
            .now()
            .as_millis()
            .saturating_sub(self.base_tick.as_millis());
        self.base_instant + Duration::from_millis(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald::ManualClock;

    fn poll_once(f: &mut Pin<Box<dyn Sleep>>) -> bool {
        let waker = std::task::Waker::noop();
        f.as_mut().poll(&mut Context::from_waker(waker)).is_ready()
    }

    #[tokio::test]
    async fn sleeps_follow_the_clock_not_the_wall() {
        let clock = Arc::new(ManualClock::new(Tick::from_millis(1_000_000)));
        let timer = ClockTimer::new(clock.clone());
        let mut by_duration = timer.sleep(Duration::from_secs(10));
        let mut by_instant = timer.sleep_until(timer.now() + Duration::from_secs(10));
        assert!(!poll_once(&mut by_duration));
        assert!(!poll_once(&mut by_instant));
        clock.advance(Duration::from_millis(9_999));
        assert!(!poll_once(&mut by_duration));
        assert!(!poll_once(&mut by_instant));
        clock.advance(Duration::from_millis(1));
        assert!(poll_once(&mut by_duration));
        assert!(poll_once(&mut by_instant));
        assert_eq!(
            timer.now() - timer.base_instant,
            Duration::from_secs(10),
            "now moves with the clock"
        );
    }

    #[test]
    fn partial_milliseconds_round_up() {
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_millis(3)), 3);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
