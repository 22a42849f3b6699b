//! `RetryPolicy`: when a notification that a gateway asked to retry is
//! tried again.

use std::time::Duration;

use herald_core::Tick;

/// Exponential backoff with full jitter, honouring `Retry-After`, bounded
/// by the notification's time to live. Sans-IO: it takes `now` and a
/// random number, so tests pin both.
///
/// After the `n`-th failed attempt (`n >= 1`) the next one waits a uniform
/// random time in `[0, min(cap, base * 2^(n-1))]` (AWS's "full jitter"),
/// but never less than the gateway's `Retry-After`. A next attempt that
/// would start after the notification expires means it expires now.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use herald::RetryPolicy;
/// use herald_core::Tick;
///
/// let policy = RetryPolicy::default(); // base 1 s, cap 5 min
/// let now = Tick::from_millis(10_000);
/// let ttl_end = Tick::from_millis(100_000);
/// // Third attempt failed: wait up to 4 s; with the random unit 0.5, 2 s.
/// assert_eq!(policy.next_attempt(now, 3, None, ttl_end, 0.5), Some(Tick::from_millis(12_000)));
/// // Retry-After wins when it is longer.
/// assert_eq!(policy.next_attempt(now, 3, Some(Duration::from_secs(30)), ttl_end, 0.5),
///            Some(Tick::from_millis(40_000)));
/// // ...unless it ends after the time to live: expired at once.
/// assert_eq!(policy.next_attempt(now, 3, Some(Duration::from_secs(91)), ttl_end, 0.5), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first attempt's backoff ceiling (default 1 s).
    pub base: Duration,
    /// The largest backoff ceiling (default 5 min).
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The backoff ceiling after `attempts` failed attempts.
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.base
            .checked_mul(1_u32 << doublings)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// When to try again after `attempts` failed attempts at `now`, given
    /// the gateway's `retry_after` and a uniform random `unit` in `[0, 1)`;
    /// `None` when that is at or after `expires_at` (the notification
    /// expires instead).
    pub fn next_attempt(
        &self,
        now: Tick,
        attempts: u32,
        retry_after: Option<Duration>,
        expires_at: Tick,
        unit: f64,
    ) -> Option<Tick> {
        let ceiling = self.ceiling(attempts).as_millis() as f64;
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        // In range: the product is at most the cap in ms.
        let jittered = (ceiling * unit) as u64;
        let floor = retry_after.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let at = now.saturating_add_millis(jittered.max(floor));
        (at < expires_at).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=11).map(|n| p.ceiling(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(p.ceiling(0).as_secs(), 1);
        assert_eq!(p.ceiling(u32::MAX).as_secs(), 300);
    }

    proptest! {
        /// Full jitter stays within [Retry-After, max(Retry-After, ceiling)],
        /// and nothing is scheduled at or after the expiry.
        #[test]
        fn jitter_bounds(
            now in 0u64..1 << 40,
            attempts in 1u32..40,
            after in proptest::option::of(0u64..600_000),
            ttl in 0u64..1_000_000,
            unit in 0.0f64..1.0,
        ) {
            let p = RetryPolicy::default();
            let expires = Tick::from_millis(now + ttl);
            let after = after.map(Duration::from_millis);
            match p.next_attempt(Tick::from_millis(now), attempts, after, expires, unit) {
                Some(at) => {
                    let wait = at.as_millis() - now;
                    let floor = after.map_or(0, |d| d.as_millis() as u64);
                    let ceiling = p.ceiling(attempts).as_millis() as u64;
                    prop_assert!(wait >= floor);
                    prop_assert!(wait <= floor.max(ceiling));
                    prop_assert!(at < expires);
                }
                None => {
                    // Expired: even the shortest allowed wait reaches the expiry.
                    let floor = after.map_or(0, |d| d.as_millis() as u64);
                    let ceiling = p.ceiling(attempts).as_millis() as f64;
                    prop_assert!(now + floor.max((ceiling * unit) as u64) >= now + ttl);
                }
            }
        }
    }
}
