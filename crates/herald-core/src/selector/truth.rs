//! [`Truth`]: SQL's three truth values and their logic.

use std::ops::Not;

/// The result of evaluating a selector: SQL three-valued logic.
///
/// A comparison that involves a missing header, or a header whose value
/// cannot be compared the way the selector asks (`'abc' > 10`), is
/// [`Unknown`](Truth::Unknown) rather than false, and unknowns propagate the
/// way SQL says: `NOT UNKNOWN` is `UNKNOWN`, `UNKNOWN AND FALSE` is `FALSE`,
/// `UNKNOWN OR TRUE` is `TRUE`. A message is delivered only when the whole
/// selector is [`True`](Truth::True).
///
/// | `a` | `b` | `a.and(b)` | `a.or(b)` | `!a` |
/// |---|---|---|---|---|
/// | True | True | True | True | False |
/// | True | Unknown | Unknown | True | False |
/// | True | False | False | True | False |
/// | Unknown | Unknown | Unknown | Unknown | Unknown |
/// | Unknown | False | False | Unknown | Unknown |
/// | False | False | False | False | True |
///
/// # Example
///
/// ```
/// use herald_core::selector::{Selector, Truth};
///
/// let s = Selector::parse("foo > 10").unwrap();
/// assert_eq!(s.evaluate(&[("foo", "20")]), Truth::True);
/// assert_eq!(s.evaluate(&[("foo", "5")]), Truth::False);
/// assert_eq!(s.evaluate(&[("bar", "20")]), Truth::Unknown);
/// assert_eq!(Truth::Unknown.and(Truth::False), Truth::False);
/// assert_eq!(!Truth::Unknown, Truth::Unknown);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Truth {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The condition cannot be decided (a header is missing or not
    /// comparable).
    Unknown,
}

impl Truth {
    /// SQL `AND`: false if either is false, else unknown if either is
    /// unknown, else true.
    ///
    /// ```
    /// use herald_core::selector::Truth;
    ///
    /// assert_eq!(Truth::Unknown.and(Truth::True), Truth::Unknown);
    /// assert_eq!(Truth::Unknown.and(Truth::False), Truth::False);
    /// ```
    #[must_use]
    pub const fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::False, _) | (_, Self::False) => Self::False,
            (Self::Unknown, _) | (_, Self::Unknown) => Self::Unknown,
            (Self::True, Self::True) => Self::True,
        }
    }

    /// SQL `OR`: true if either is true, else unknown if either is unknown,
    /// else false.
    ///
    /// ```
    /// use herald_core::selector::Truth;
    ///
    /// assert_eq!(Truth::Unknown.or(Truth::True), Truth::True);
    /// assert_eq!(Truth::Unknown.or(Truth::False), Truth::Unknown);
    /// ```
    #[must_use]
    pub const fn or(self, other: Self) -> Self {
        match (self, other) {
            (Self::True, _) | (_, Self::True) => Self::True,
            (Self::Unknown, _) | (_, Self::Unknown) => Self::Unknown,
            (Self::False, Self::False) => Self::False,
        }
    }

    /// Whether this is [`Truth::True`], the only value that delivers a
    /// message.
    ///
    /// ```
    /// use herald_core::selector::Truth;
    ///
    /// assert!(Truth::True.is_true());
    /// assert!(!Truth::Unknown.is_true());
    /// ```
    #[must_use]
    pub const fn is_true(self) -> bool {
        matches!(self, Self::True)
    }
}

impl Not for Truth {
    type Output = Self;

    /// SQL `NOT`: swaps true and false, leaves unknown alone.
    ///
    /// ```
    /// use herald_core::selector::Truth;
    ///
    /// assert_eq!(!Truth::True, Truth::False);
    /// assert_eq!(!Truth::Unknown, Truth::Unknown);
    /// ```
    fn not(self) -> Self {
        match self {
            Self::True => Self::False,
            Self::False => Self::True,
            Self::Unknown => Self::Unknown,
        }
    }
}

impl From<bool> for Truth {
    /// `true` → [`Truth::True`], `false` → [`Truth::False`].
    ///
    /// ```
    /// use herald_core::selector::Truth;
    ///
    /// assert_eq!(Truth::from(false), Truth::False);
    /// ```
    fn from(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

impl From<Option<bool>> for Truth {
    /// `None` → [`Truth::Unknown`], `Some(b)` → `Truth::from(b)`.
    ///
    /// ```
    /// use herald_core::selector::Truth;
    ///
    /// assert_eq!(Truth::from(None::<bool>), Truth::Unknown);
    /// assert_eq!(Truth::from(Some(true)), Truth::True);
    /// ```
    fn from(b: Option<bool>) -> Self {
        b.map_or(Self::Unknown, Self::from)
    }
}
