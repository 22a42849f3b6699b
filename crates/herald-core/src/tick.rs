//! [`Tick`]: the one unit of time in the core.

use std::fmt;

/// A point in time, in whole milliseconds since a fixed epoch.
///
/// The core never reads a clock: callers convert their clock to a `Tick`
/// (Herald's engine uses milliseconds since the Unix epoch, which is also
/// what [`Recurrence`](crate::Recurrence) assumes for calendar rules) and
/// pass it in. Every `u64` is a valid tick; arithmetic helpers saturate
/// instead of overflowing.
///
/// # Examples
///
/// ```
/// use herald_core::Tick;
///
/// let t = Tick::from_millis(1_000);
/// assert_eq!(t.saturating_add_millis(500).as_millis(), 1_500);
/// assert_eq!(Tick::MAX.saturating_add_millis(1), Tick::MAX);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tick(u64);

impl Tick {
    /// The epoch itself.
    pub const ZERO: Self = Self(0);
    /// The latest representable tick.
    pub const MAX: Self = Self(u64::MAX);

    /// A tick `ms` milliseconds after the epoch.
    #[inline]
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    #[inline]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + ms`, clamped to [`Tick::MAX`].
    #[inline]
    #[must_use]
    pub const fn saturating_add_millis(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// `self - ms`, clamped to [`Tick::ZERO`].
    #[inline]
    #[must_use]
    pub const fn saturating_sub_millis(self, ms: u64) -> Self {
        Self(self.0.saturating_sub(ms))
    }

    /// Milliseconds from `earlier` to `self`, or 0 if `earlier` is later.
    #[inline]
    pub const fn millis_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl From<u64> for Tick {
    #[inline]
    fn from(ms: u64) -> Self {
        Self(ms)
    }
}

impl From<Tick> for u64 {
    #[inline]
    fn from(t: Tick) -> Self {
        t.0
    }
}

impl fmt::Debug for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tick({}ms)", self.0)
    }
}

impl fmt::Display for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}
