//! The seeded workload every structure runs, its PRNG, and the checker that
//! verifies what a structure fired.

use std::fmt;
use std::ops::Range;

/// One hour in milliseconds: the span of [`Workload::new`] deadlines.
pub const HOUR_MS: u64 = 3_600_000;

/// The seed the comparison binary and the benches use unless told otherwise.
pub const DEFAULT_SEED: u64 = 0x4845_5241_4C44_2026; // "HERALD" 2026

/// SplitMix64 (Steele, Lea & Flood, "Fast Splittable Pseudorandom Number
/// Generators", OOPSLA 2014): tiny, fast, and good enough to spread deadlines.
///
/// ```
/// use herald_benches::SplitMix64;
///
/// let mut a = SplitMix64::new(7);
/// let mut b = SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (Lemire's multiply-shift; the bias is below
    /// `bound / 2^64`, irrelevant here). Returns 0 if `bound` is 0.
    #[inline]
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// A reproducible timer workload: `n` timers with ids `0..n`, each with a
/// deadline in milliseconds, and a list of ids to cancel, in the order to
/// cancel them.
///
/// Structures insert the timers in id order (so id is also insertion order),
/// cancel [`cancels`](Self::cancels) in order, then drain the rest.
///
/// ```
/// use herald_benches::Workload;
///
/// let w = Workload::new(1_000, 42);
/// assert_eq!(w.len(), 1_000);
/// assert_eq!(w.cancels().len(), 500);
/// assert!(w.deadlines().iter().all(|&d| d < 3_600_000));
///
/// // Fire the survivors in deadline order: the checker accepts it.
/// let mut fired: Vec<(u64, u64)> = (0..1_000)
///     .filter(|&id| !w.is_cancelled(id))
///     .map(|id| (id, w.deadline(id)))
///     .collect();
/// fired.sort_by_key(|&(id, d)| (d, id));
/// assert!(w.check(fired.iter().copied()).is_ok());
/// fired.swap(0, 1);
/// # if fired[0].1 != fired[1].1 {
/// assert!(w.check(fired.iter().copied()).is_err());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Workload {
    deadlines: Vec<u64>,
    cancels: Vec<u64>,
    cancelled: Vec<bool>,
    seed: u64,
}

impl Workload {
    /// `n` deadlines uniform over one hour at millisecond resolution
    /// (`0..3_600_000`), and a random half of the ids, in random order, to
    /// cancel.
    pub fn new(n: usize, seed: u64) -> Self {
        Self::custom(n, seed, 0..HOUR_MS, n / 2)
    }

    /// `n` deadlines uniform over `deadlines`, and `cancels` distinct random
    /// ids, in random order, to cancel.
    ///
    /// # Panics
    ///
    /// If `deadlines` is empty or `cancels > n`.
    #[track_caller]
    pub fn custom(n: usize, seed: u64, deadlines: Range<u64>, cancels: usize) -> Self {
        assert!(!deadlines.is_empty(), "empty deadline range {deadlines:?}");
        assert!(cancels <= n, "cannot cancel {cancels} of {n} timers");
        let mut rng = SplitMix64::new(seed);
        let span = deadlines.end - deadlines.start;
        let times: Vec<u64> = (0..n).map(|_| deadlines.start + rng.below(span)).collect();
        // Partial Fisher-Yates: the first `cancels` slots end up a uniformly
        // random subset in uniformly random order.
        let mut ids: Vec<u64> = (0..n as u64).collect();
        for i in 0..cancels {
            let j = i + rng.below((n - i) as u64) as usize;
            ids.swap(i, j);
        }
        ids.truncate(cancels);
        ids.shrink_to_fit();
        let mut cancelled = vec![false; n];
        for &id in &ids {
            cancelled[id as usize] = true;
        }
        Self {
            deadlines: times,
            cancels: ids,
            cancelled,
            seed,
        }
    }

    /// Number of timers.
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }

    /// Whether there are no timers.
    pub fn is_empty(&self) -> bool {
        self.deadlines.is_empty()
    }

    /// The seed this workload was generated from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Deadline of every timer, indexed by id.
    pub fn deadlines(&self) -> &[u64] {
        &self.deadlines
    }

    /// The deadline of timer `id`.
    ///
    /// # Panics
    ///
    /// If `id` is out of range.
    pub fn deadline(&self, id: u64) -> u64 {
        self.deadlines[id as usize]
    }

    /// Ids to cancel, in the order to cancel them.
    pub fn cancels(&self) -> &[u64] {
        &self.cancels
    }

    /// Whether timer `id` is one of [`cancels`](Self::cancels).
    ///
    /// # Panics
    ///
    /// If `id` is out of range.
    pub fn is_cancelled(&self, id: u64) -> bool {
        self.cancelled[id as usize]
    }

    /// How many timers survive the cancels and must fire.
    pub fn expected_fires(&self) -> usize {
        self.len() - self.cancels.len()
    }

    /// A tick after every deadline: polling at this time fires everything.
    pub fn horizon(&self) -> u64 {
        self.deadlines.iter().max().map_or(0, |&d| d + 1)
    }

    /// Checks a fired sequence of `(id, deadline)` pairs, where `deadline` is
    /// what the structure reports (or when it fired): every deadline matches
    /// the workload's, deadlines never decrease, and the ids are exactly the
    /// non-cancelled ones, each once.
    ///
    /// # Errors
    ///
    /// The first violation found, as a [`CheckError`].
    pub fn check(&self, fired: impl IntoIterator<Item = (u64, u64)>) -> Result<(), CheckError> {
        let mut seen = vec![false; self.len()];
        let mut count = 0_usize;
        let mut prev = 0_u64;
        for (index, (id, deadline)) in fired.into_iter().enumerate() {
            let Some(&expected) = self.deadlines.get(id as usize) else {
                return Err(CheckError::UnknownId { index, id });
            };
            if self.cancelled[id as usize] {
                return Err(CheckError::Cancelled { index, id });
            }
            if std::mem::replace(&mut seen[id as usize], true) {
                return Err(CheckError::Duplicate { index, id });
            }
            if deadline != expected {
                return Err(CheckError::WrongDeadline {
                    index,
                    id,
                    expected,
                    reported: deadline,
                });
            }
            if deadline < prev {
                return Err(CheckError::OutOfOrder {
                    index,
                    id,
                    deadline,
                    previous: prev,
                });
            }
            prev = deadline;
            count += 1;
        }
        if count != self.expected_fires() {
            let first = (0..self.len())
                .find(|&i| !seen[i] && !self.cancelled[i])
                .map_or(0, |i| i as u64);
            return Err(CheckError::Missing {
                missing: self.expected_fires() - count,
                first,
            });
        }
        Ok(())
    }
}

/// Why [`Workload::check`] rejected a fired sequence. `index` is the position
/// in the fired sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckError {
    /// An id outside `0..n` fired.
    UnknownId {
        /// Position in the fired sequence.
        index: usize,
        /// The offending id.
        id: u64,
    },
    /// A cancelled timer fired.
    Cancelled {
        /// Position in the fired sequence.
        index: usize,
        /// The offending id.
        id: u64,
    },
    /// A timer fired twice.
    Duplicate {
        /// Position in the fired sequence.
        index: usize,
        /// The offending id.
        id: u64,
    },
    /// The structure reported a deadline other than the one inserted.
    WrongDeadline {
        /// Position in the fired sequence.
        index: usize,
        /// The offending id.
        id: u64,
        /// The workload's deadline for `id`.
        expected: u64,
        /// What the structure reported.
        reported: u64,
    },
    /// A deadline earlier than the one fired before it.
    OutOfOrder {
        /// Position in the fired sequence.
        index: usize,
        /// The offending id.
        id: u64,
        /// Its deadline.
        deadline: u64,
        /// The deadline fired just before.
        previous: u64,
    },
    /// Some surviving timers never fired.
    Missing {
        /// How many.
        missing: usize,
        /// The smallest missing id.
        first: u64,
    },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnknownId { index, id } => write!(f, "fired #{index}: unknown id {id}"),
            Self::Cancelled { index, id } => write!(f, "fired #{index}: id {id} was cancelled"),
            Self::Duplicate { index, id } => write!(f, "fired #{index}: id {id} fired twice"),
            Self::WrongDeadline {
                index,
                id,
                expected,
                reported,
            } => write!(
                f,
                "fired #{index}: id {id} reported deadline {reported}ms, inserted {expected}ms"
            ),
            Self::OutOfOrder {
                index,
                id,
                deadline,
                previous,
            } => write!(
                f,
                "fired #{index}: id {id} at {deadline}ms after one at {previous}ms"
            ),
            Self::Missing { missing, first } => {
                write!(f, "{missing} timers never fired (first: id {first})")
            }
        }
    }
}

impl std::error::Error for CheckError {}

/// Parses a count such as `1000000`, `1_000_000`, `100k`, `1M`, `10M` or
/// `2.5M` (suffixes `k`/`K` = 10³, `m`/`M` = 10⁶, `g`/`G` = 10⁹).
///
/// ```
/// use herald_benches::parse_count;
///
/// assert_eq!(parse_count("100k"), Some(100_000));
/// assert_eq!(parse_count("10M"), Some(10_000_000));
/// assert_eq!(parse_count("1_000_000"), Some(1_000_000));
/// assert_eq!(parse_count("2.5M"), Some(2_500_000));
/// assert_eq!(parse_count("lots"), None);
/// ```
pub fn parse_count(s: &str) -> Option<usize> {
    let s: String = s.trim().chars().filter(|&c| c != '_').collect();
    let scale = match s.chars().last()? {
        'k' | 'K' => 1e3,
        'm' | 'M' => 1e6,
        'g' | 'G' => 1e9,
        _ => return s.parse().ok(),
    };
    let x: f64 = s[..s.len() - 1].parse().ok()?;
    let n = (x * scale).round();
    (x.is_finite() && x >= 0.0 && n <= usize::MAX as f64).then_some(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_is_deterministic_and_well_formed() {
        let a = Workload::new(10_000, 1);
        let b = Workload::new(10_000, 1);
        assert_eq!(a.deadlines(), b.deadlines());
        assert_eq!(a.cancels(), b.cancels());
        assert_ne!(a.deadlines(), Workload::new(10_000, 2).deadlines());

        let mut c = a.cancels().to_vec();
        c.sort_unstable();
        c.dedup();
        assert_eq!(c.len(), 5_000, "cancels are distinct");
        assert!(c.iter().all(|&id| id < 10_000 && a.is_cancelled(id)));
        // Random order, not sorted.
        assert!(a.cancels().windows(2).any(|w| w[0] > w[1]));
        assert!(a.deadlines().iter().all(|&d| d < HOUR_MS));
        assert_eq!(a.expected_fires(), 5_000);
    }

    fn sorted_survivors(w: &Workload) -> Vec<(u64, u64)> {
        let mut v: Vec<_> = (0..w.len() as u64)
            .filter(|&id| !w.is_cancelled(id))
            .map(|id| (id, w.deadline(id)))
            .collect();
        v.sort_by_key(|&(id, d)| (d, id));
        v
    }

    #[test]
    fn checker_accepts_correct_and_rejects_each_kind_of_mistake() {
        let w = Workload::new(2_000, 9);
        let good = sorted_survivors(&w);
        assert_eq!(w.check(good.iter().copied()), Ok(()));

        let mut missing = good.clone();
        let (gone, _) = missing.remove(10);
        assert!(matches!(
            w.check(missing.iter().copied()),
            Err(CheckError::Missing { missing: 1, first }) if first == gone
        ));

        let mut dup = good.clone();
        dup.insert(1, dup[0]);
        assert!(matches!(
            w.check(dup.iter().copied()),
            Err(CheckError::Duplicate { .. })
        ));

        let cancelled = w.cancels()[0];
        let mut bad = good.clone();
        bad.push((cancelled, w.deadline(cancelled)));
        assert!(matches!(
            w.check(bad.iter().copied()),
            Err(CheckError::Cancelled { .. })
        ));

        let mut wrong = good.clone();
        wrong[5].1 += 1;
        assert!(matches!(
            w.check(wrong.iter().copied()),
            Err(CheckError::WrongDeadline { index: 5, .. })
        ));

        let mut rev = good.clone();
        rev.reverse();
        assert!(matches!(
            w.check(rev.iter().copied()),
            Err(CheckError::OutOfOrder { .. })
        ));

        assert!(matches!(
            w.check([(99_999, 0)]),
            Err(CheckError::UnknownId { .. })
        ));
    }

    #[test]
    fn parse_count_forms() {
        assert_eq!(parse_count("1M"), Some(1_000_000));
        assert_eq!(parse_count("1m"), Some(1_000_000));
        assert_eq!(parse_count("100K"), Some(100_000));
        assert_eq!(parse_count("1G"), Some(1_000_000_000));
        assert_eq!(parse_count(" 42 "), Some(42));
        assert_eq!(parse_count(""), None);
        assert_eq!(parse_count("M"), None);
        assert_eq!(parse_count("-1M"), None);
    }
}
