//! The engine's time source: [`SystemClock`] in production, [`ManualClock`]
//! in tests, so no test ever sleeps on the real clock.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_core::Tick;
use tokio::sync::watch;

/// A future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where the engine gets the time from.
///
/// Ticks are milliseconds since the Unix epoch (UTC).
///
/// # Contract
///
/// * `now` never goes backwards by more than the platform's clock does;
///   the engine tolerates a step back (nothing fires early: it re-checks).
/// * `sleep_until(t)` completes no earlier than the moment `now() >= t`
///   would first hold, and soon after it. It may complete early only if it
///   is a *bounded* sleep (the engine re-checks `now` after every wake-up
///   and sleeps again if it is early); [`SystemClock`] bounds its sleeps to
///   1 s so a wall-clock step is noticed within a second.
/// * The engine only calls these from inside a tokio runtime.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Tick;

    /// A future that completes when the time reaches `deadline`.
    fn sleep_until(&self, deadline: Tick) -> Sleep;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Tick {
        (**self).now()
    }
    fn sleep_until(&self, deadline: Tick) -> Sleep {
        (**self).sleep_until(deadline)
    }
}

/// The wall clock (`SystemTime`), sleeping on tokio's timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The longest single sleep; a wall-clock step shows up within this.
    pub const MAX_SLEEP: Duration = Duration::from_secs(1);
}

impl Clock for SystemClock {
    fn now(&self) -> Tick {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Tick::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    fn sleep_until(&self, deadline: Tick) -> Sleep {
        // From the sub-millisecond time, not from `now()`: `now()` truncates
        // to the ms, so `deadline - now()` overshoots by up to 1 ms, on top
        // of the up to 1 ms tokio's timer rounds every sleep up by.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let wait = Duration::from_millis(deadline.as_millis()).saturating_sub(now);
        Box::pin(tokio::time::sleep(wait.min(Self::MAX_SLEEP)))
    }
}

/// A clock that moves only when told to: for tests and simulations.
///
/// Clones share the same time. Advancing it wakes every sleeper whose
/// deadline has been reached.
///
/// # Examples
///
/// ```
/// use herald::{Clock, ManualClock};
/// use herald_core::Tick;
/// use std::time::Duration;
///
/// let clock = ManualClock::new(Tick::from_millis(1_000));
/// clock.advance(Duration::from_millis(500));
/// assert_eq!(clock.now(), Tick::from_millis(1_500));
/// clock.set(Tick::from_millis(10_000));
/// assert_eq!(clock.now().as_millis(), 10_000);
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<u64>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Tick) -> Self {
        Self {
            now: Arc::new(watch::Sender::new(start.as_millis())),
        }
    }

    /// A clock showing the given UTC time.
    pub fn at(start: chrono::DateTime<chrono::Utc>) -> Self {
        Self::new(Tick::from_millis(
            u64::try_from(start.timestamp_millis()).unwrap_or(0),
        ))
    }

    /// Moves the clock forward by `by` (whole ms).
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now.send_modify(|now| *now = now.saturating_add(ms));
    }

    /// Sets the clock to `t` (backwards too: the engine copes).
    pub fn set(&self, t: Tick) {
        self.now.send_replace(t.as_millis());
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &*self.now.borrow())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Tick {
        Tick::from_millis(*self.now.borrow())
    }

    fn sleep_until(&self, deadline: Tick) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as any clone of the clock; if it is
            // gone, time has stopped and the sleep never ends.
            if rx
                .wait_for(|&now| now >= deadline.as_millis())
                .await
                .is_err()
            {
                std::future::pending::<()>().await;
            }
        })
    }
}
