//! [`Recurrence`]: when a repeating message runs next, and what to do after
//! downtime ([`Resume`]). The semantics are documented on [`Recurrence`].

use std::str::FromStr;

use chrono::{DateTime, LocalResult, TimeZone};
use chrono_tz::Tz;

use crate::Tick;

/// 2101-01-02T00:00:00Z in milliseconds. The `cron` crate knows no year after
/// 2100, and 2101-01-01 00:00 local is earlier than this in every time zone,
/// so no cron rule fires at or after it. Cutting off here also keeps every
/// tick handed to chrono well inside its range.
const CRON_HORIZON_MS: u64 = 4_134_067_200_000;

/// A repetition rule with an optional expiry.
///
/// A repeating message has two kinds of rule, matching Backendless's
/// `repeatEvery` and Herald's `repeatCron` extension:
///
/// * [`Recurrence::Every`]: a fixed interval in milliseconds, measured from
///   the previous *scheduled* run (not from when it actually ran), so the
///   schedule does not drift.
/// * [`Recurrence::Cron`]: a cron expression evaluated in an IANA time zone.
///
/// Both may carry an expiry (`repeatExpiresAt`). Everything here is pure
/// computation over [`Tick`]s (milliseconds since the Unix epoch): nothing
/// reads a clock, and no input panics.
///
/// # Usage
///
/// Build one with [`Recurrence::every`] or [`Recurrence::cron`]; they reject
/// rules that could never run. The variants are `#[non_exhaustive]` so that
/// code outside this crate reads their fields but cannot skip that check.
///
/// # Expiry
///
/// A run exactly *at* `expires_at` still happens; the first occurrence after
/// it does not. [`Recurrence::next_after`] returns `None` once the next
/// occurrence would be later than `expires_at`.
///
/// # Cron rules and time zones
///
/// Expressions are parsed by the [`cron`] crate: 6 or 7 fields
/// (`sec min hour day-of-month month day-of-week [year]`) or one of the
/// shorthands `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`. The
/// `cron` crate only knows the years 1970 to 2100, so a rule never fires after
/// 2100. Fields are matched against the *wall clock* in the rule's time zone
/// ([`chrono_tz::UTC`] for plain UTC). Each wall-clock time that matches runs
/// at most once:
///
/// * **Gap** (spring forward): a wall-clock time that does not exist that day
///   is skipped. `0 30 2 * * *` in `America/New_York` does not run on
///   2026-03-08 (clocks jump from 02:00 to 03:00); its next run is
///   2026-03-09 02:30 EDT. This is what the `cron` crate does.
/// * **Overlap** (fall back): a wall-clock time that happens twice runs only
///   the first time. `0 30 1 * * *` in `America/New_York` runs at
///   2026-11-01 01:30 EDT and not again at 01:30 EST an hour later. The
///   `cron` crate's iterator would yield both; Herald drops the repeat. So
///   a rule that fires every few minutes pauses for the repeated hour:
///   `0 */10 * * * *` runs at 01:50 EDT and then at 02:00 EST.
///
/// Occurrences fall on whole seconds; "strictly after" is in milliseconds,
/// so the next run after `12:00:00.000` is never `12:00:00.000` itself.
///
/// # Restarting after downtime
///
/// After downtime, missed runs collapse into one run now. The engine stores
/// each repeating message's next run (`scheduled`); on restart it calls
/// [`Recurrence::resume`]`(scheduled, now)` and gets a [`Resume`]:
///
/// | situation | `fire_now` | `missed` | `missed_is_exact` | `next` |
/// |---|---|---|---|---|
/// | `scheduled > expires_at` (nothing owed) | `false` | 0 | `true` | `None` |
/// | `scheduled > now` (not due yet) | `false` | 0 | `true` | `Some(scheduled)` |
/// | `scheduled <= now`, `Every` | `true` | occurrences in (`scheduled`, min(`now`, `expires_at`)] | `true` | `now + interval_ms` if not past the expiry |
/// | `scheduled <= now`, `Cron`, at most [`CRON_MISSED_CAP`](Resume::CRON_MISSED_CAP) such occurrences | `true` | their number | `true` | [`next_after`](Recurrence::next_after)`(now)` |
/// | `scheduled <= now`, `Cron`, more | `true` | [`CRON_MISSED_CAP`](Resume::CRON_MISSED_CAP) (a lower bound) | `false` | [`next_after`](Recurrence::next_after)`(now)` |
///
/// * The run at `scheduled` was owed as long as `scheduled <= expires_at`, so
///   it fires now even if the rule has expired since.
/// * `missed` counts the occurrences that were due while the engine was
///   down, *besides* `scheduled` itself, and never counts occurrences past
///   the expiry: they are folded into the one run now. For `Every` the
///   occurrences are `scheduled + k * interval_ms` (`k >= 1`), counted
///   exactly with arithmetic, however many. For `Cron` counting takes a
///   `cron` lookup per occurrence, so `resume` looks at most
///   [`Resume::CRON_MISSED_CAP`] of them: beyond that, `missed` is the cap,
///   a lower bound, and `missed_is_exact` is `false`.
/// * `next` is computed from `now`, not from `scheduled`: for `Every` the
///   schedule is re-anchored at `now` (`now + interval_ms`), for `Cron` it is
///   the first occurrence after `now`, found directly without walking the
///   missed ones. `None` means the run now (if any) is the last one.
/// * So `resume` costs O(1) whatever the downtime: arithmetic for `Every`,
///   at most [`Resume::CRON_MISSED_CAP`]` + 2` `cron` lookups for `Cron`.
///
/// # Implementation
///
/// `Every` is plain arithmetic. `Cron` asks the `cron` crate for the first
/// matching wall-clock time after `after` (no allocation) and drops
/// candidates that are not later than `after` or are the second pass over a
/// repeated wall-clock time; only the repeated times of one overlap can be
/// dropped in a row, so this stays bounded.
///
/// # Examples
///
/// ```
/// use herald_core::{Recurrence, Tick};
///
/// // Every 60 s, until (and including) t = 180 s.
/// let every = Recurrence::every(60_000, Some(Tick::from_millis(180_000)))?;
/// let runs: Vec<u64> = std::iter::successors(Some(Tick::ZERO), |&t| every.next_after(t))
///     .map(Tick::as_millis)
///     .collect();
/// assert_eq!(runs, [0, 60_000, 120_000, 180_000]);
///
/// // 09:00 on weekdays, Berlin time.
/// let cron = Recurrence::cron("0 0 9 * * Mon-Fri", chrono_tz::Europe::Berlin, None)?;
/// let fri = Tick::from_millis(1_785_484_800_000); // Fri 2026-07-31 08:00 UTC (10:00 CEST)
/// let mon = Tick::from_millis(1_785_740_400_000); // Mon 2026-08-03 07:00 UTC (09:00 CEST)
/// assert_eq!(cron.next_after(fri), Some(mon));
/// # Ok::<(), herald_core::RecurrenceError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recurrence {
    /// Every `interval_ms` milliseconds after the previous scheduled run.
    #[non_exhaustive]
    Every {
        /// The period in milliseconds, at least 1.
        interval_ms: u64,
        /// The last instant a run may happen at, if any.
        expires_at: Option<Tick>,
    },
    /// A calendar rule: a cron expression evaluated in a time zone.
    #[non_exhaustive]
    Cron {
        /// The parsed expression; [`cron::Schedule::source`] gives back the text.
        schedule: Box<cron::Schedule>,
        /// The time zone whose wall clock the expression is matched against.
        tz: Tz,
        /// The last instant a run may happen at, if any.
        expires_at: Option<Tick>,
    },
}

impl Recurrence {
    /// A rule that runs every `interval_ms` milliseconds, until `expires_at`
    /// (inclusive) if given.
    ///
    /// An `expires_at` before the first run is accepted; the rule then simply
    /// never yields a next run.
    ///
    /// # Errors
    ///
    /// [`RecurrenceError::ZeroInterval`] if `interval_ms` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use herald_core::{Recurrence, RecurrenceError};
    ///
    /// assert!(Recurrence::every(1_000, None).is_ok());
    /// assert_eq!(Recurrence::every(0, None), Err(RecurrenceError::ZeroInterval));
    /// ```
    pub fn every(interval_ms: u64, expires_at: Option<Tick>) -> Result<Self, RecurrenceError> {
        if interval_ms == 0 {
            return Err(RecurrenceError::ZeroInterval);
        }
        Ok(Self::Every {
            interval_ms,
            expires_at,
        })
    }

    /// A rule that runs whenever the wall clock in `tz` matches the cron
    /// expression `expr`, until `expires_at` (inclusive) if given.
    ///
    /// See the [`Recurrence`'s docs](Recurrence) for the accepted syntax and for what
    /// happens around DST changes.
    ///
    /// # Errors
    ///
    /// * [`RecurrenceError::InvalidCron`] if `expr` does not parse.
    /// * [`RecurrenceError::NeverFires`] if the rule has no occurrence at all
    ///   in `tz` between the epoch and the end of 2100 (`0 0 0 30 2 *`).
    ///   A rule whose occurrences all lie in the past is accepted; check
    ///   `next_after(now)` for that.
    ///
    /// # Examples
    ///
    /// ```
    /// use herald_core::{Recurrence, RecurrenceError};
    /// use chrono_tz::UTC;
    ///
    /// assert!(Recurrence::cron("0 */5 * * * *", UTC, None).is_ok());
    /// let err = Recurrence::cron("every tuesday", UTC, None).unwrap_err();
    /// assert!(matches!(err, RecurrenceError::InvalidCron { .. }));
    /// assert!(err.to_string().contains("every tuesday"));
    /// assert!(matches!(
    ///     Recurrence::cron("0 0 0 30 2 *", UTC, None),
    ///     Err(RecurrenceError::NeverFires { .. })
    /// ));
    /// ```
    pub fn cron(expr: &str, tz: Tz, expires_at: Option<Tick>) -> Result<Self, RecurrenceError> {
        let schedule =
            cron::Schedule::from_str(expr).map_err(|e| RecurrenceError::InvalidCron {
                expr: expr.to_owned(),
                reason: parse_failure_reason(expr, &e.to_string()),
            })?;
        if cron_next(&schedule, tz, Tick::ZERO).is_none() {
            return Err(RecurrenceError::NeverFires {
                expr: expr.to_owned(),
                tz,
            });
        }
        Ok(Self::Cron {
            schedule: Box::new(schedule),
            tz,
            expires_at,
        })
    }

    /// The first occurrence strictly after `after`, or `None` if there is
    /// none at or before the expiry.
    ///
    /// * `Every`: `after + interval_ms`. The engine passes the previous
    ///   *scheduled* run, so late delivery does not shift the schedule.
    ///   `None` if that is past `expires_at` or does not fit in a `u64`.
    /// * `Cron`: the first matching wall-clock time in the rule's time zone
    ///   whose instant is later than `after` (DST rules in the
    ///   [`Recurrence`'s docs](Recurrence)). `None` if it is past `expires_at`, if the rule
    ///   never fires again (for example after 2100, or after the last year of
    ///   a 7-field expression), or if `after` is beyond 2100.
    ///
    /// Never panics, whatever the input.
    ///
    /// # Examples
    ///
    /// ```
    /// use herald_core::{Recurrence, Tick};
    /// use chrono_tz::UTC;
    ///
    /// let every = Recurrence::every(1_000, Some(Tick::from_millis(3_000)))?;
    /// assert_eq!(every.next_after(Tick::from_millis(2_000)), Some(Tick::from_millis(3_000)));
    /// assert_eq!(every.next_after(Tick::from_millis(2_001)), None); // 3_001 > expiry
    ///
    /// // At the top of every minute; strictly after, to the millisecond.
    /// let cron = Recurrence::cron("0 * * * * *", UTC, None)?;
    /// assert_eq!(cron.next_after(Tick::from_millis(59_999)), Some(Tick::from_millis(60_000)));
    /// assert_eq!(cron.next_after(Tick::from_millis(60_000)), Some(Tick::from_millis(120_000)));
    /// assert_eq!(cron.next_after(Tick::MAX), None);
    /// # Ok::<(), herald_core::RecurrenceError>(())
    /// ```
    pub fn next_after(&self, after: Tick) -> Option<Tick> {
        let expires_at = self.expires_at();
        if expires_at.is_some_and(|exp| after >= exp) {
            return None; // anything strictly after `after` is past the expiry
        }
        let next = self.next_unbounded(after)?;
        match expires_at {
            Some(exp) if next > exp => None,
            _ => Some(next),
        }
    }

    /// The expiry: the last instant a run may happen at, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use herald_core::{Recurrence, Tick};
    ///
    /// let r = Recurrence::every(1_000, Some(Tick::from_millis(5_000)))?;
    /// assert_eq!(r.expires_at(), Some(Tick::from_millis(5_000)));
    /// # Ok::<(), herald_core::RecurrenceError>(())
    /// ```
    pub fn expires_at(&self) -> Option<Tick> {
        match self {
            Self::Every { expires_at, .. } | Self::Cron { expires_at, .. } => *expires_at,
        }
    }

    /// What to do on restart with a run stored for `scheduled`, at `now`.
    ///
    /// Missed runs collapse into one run now; see the table in the
    /// [`Recurrence`'s docs](Recurrence#restarting-after-downtime) for the full contract.
    ///
    /// # Examples
    ///
    /// ```
    /// use herald_core::{Recurrence, Resume, Tick};
    ///
    /// let r = Recurrence::every(10, None)?;
    /// let t = Tick::from_millis;
    ///
    /// // Not due yet: keep the stored run.
    /// assert_eq!(
    ///     r.resume(t(100), t(50)),
    ///     Resume { missed: 0, missed_is_exact: true, fire_now: false, next: Some(t(100)) }
    /// );
    /// // Down from before 100 until 135: 100, 110, 120 and 130 were due.
    /// // Run once now (for 100), report 3 missed, and continue from now.
    /// assert_eq!(
    ///     r.resume(t(100), t(135)),
    ///     Resume { missed: 3, missed_is_exact: true, fire_now: true, next: Some(t(145)) }
    /// );
    ///
    /// // A cron rule every second, down for a day: 86,400 runs were due.
    /// // Counting them would take a lookup each; `resume` stops at the cap.
    /// let cron = Recurrence::cron("* * * * * *", chrono_tz::UTC, None)?;
    /// let day = 86_400_000;
    /// assert_eq!(
    ///     cron.resume(t(day), t(2 * day)),
    ///     Resume {
    ///         missed: Resume::CRON_MISSED_CAP,
    ///         missed_is_exact: false,
    ///         fire_now: true,
    ///         next: Some(t(2 * day + 1_000)),
    ///     }
    /// );
    /// # Ok::<(), herald_core::RecurrenceError>(())
    /// ```
    pub fn resume(&self, scheduled: Tick, now: Tick) -> Resume {
        let expires_at = self.expires_at();
        if expires_at.is_some_and(|exp| scheduled > exp) {
            return Resume {
                missed: 0,
                missed_is_exact: true,
                fire_now: false,
                next: None,
            };
        }
        if scheduled > now {
            return Resume {
                missed: 0,
                missed_is_exact: true,
                fire_now: false,
                next: Some(scheduled),
            };
        }
        let until = expires_at.map_or(now, |exp| exp.min(now));
        let (missed, missed_is_exact) = self.count_in(scheduled, until);
        Resume {
            missed,
            missed_is_exact,
            fire_now: true,
            next: self.next_after(now),
        }
    }

    /// The next occurrence strictly after `after`, ignoring the expiry.
    fn next_unbounded(&self, after: Tick) -> Option<Tick> {
        match self {
            Self::Every { interval_ms, .. } => {
                debug_assert!(*interval_ms > 0, "constructors reject a zero interval");
                if *interval_ms == 0 {
                    return None;
                }
                after
                    .as_millis()
                    .checked_add(*interval_ms)
                    .map(Tick::from_millis)
            }
            Self::Cron { schedule, tz, .. } => cron_next(schedule, *tz, after),
        }
    }

    /// The number of occurrences in `(from, to]`, ignoring the expiry (the
    /// caller clamps `to`), and whether it is exact. Exact for `Every`; for
    /// `Cron`, at most [`Resume::CRON_MISSED_CAP`] `+ 1` lookups: past the
    /// cap, the cap and `false`.
    fn count_in(&self, from: Tick, to: Tick) -> (u64, bool) {
        match self {
            Self::Every { interval_ms, .. } => (
                to.millis_since(from).checked_div(*interval_ms).unwrap_or(0),
                true,
            ),
            Self::Cron { schedule, tz, .. } => {
                let mut count = 0;
                let mut cursor = from;
                loop {
                    match cron_next(schedule, *tz, cursor) {
                        Some(t) if t <= to => {
                            if count == Resume::CRON_MISSED_CAP {
                                return (count, false);
                            }
                            count += 1;
                            cursor = t;
                        }
                        _ => return (count, true),
                    }
                }
            }
        }
    }
}

/// The first instant strictly after `after` whose wall-clock time in `tz`
/// matches `schedule`, skipping the second pass over a repeated wall-clock
/// time (DST fall-back).
///
/// Terminates: the `cron` iterator's wall-clock time never goes backwards
/// (an ambiguous time is yielded twice in a row, earlier instant first), it
/// ends after 2100, and only the repeated wall-clock times of one overlap
/// (at most a few hours) can be skipped in a row.
fn cron_next(schedule: &cron::Schedule, tz: Tz, after: Tick) -> Option<Tick> {
    #[cfg(test)]
    tests::CRON_LOOKUPS.with(|n| n.set(n.get() + 1));
    if after.as_millis() >= CRON_HORIZON_MS {
        return None;
    }
    let after_ms = i64::try_from(after.as_millis()).ok()?;
    let start = tz.timestamp_millis_opt(after_ms).single()?;
    schedule
        .after(&start)
        .find(|dt| dt.timestamp_millis() > after_ms && !is_repeated_wall_time(dt))
        .and_then(|dt| u64::try_from(dt.timestamp_millis()).ok())
        .map(Tick::from_millis)
}

/// Whether `dt` is the later of two instants that share its wall-clock time.
fn is_repeated_wall_time(dt: &DateTime<Tz>) -> bool {
    match dt.timezone().from_local_datetime(&dt.naive_local()) {
        LocalResult::Ambiguous(earlier, _) => earlier != *dt,
        LocalResult::Single(_) | LocalResult::None => false,
    }
}

/// Why `expr` failed to parse, on one line and without a trailing period.
///
/// The `cron` crate reports `expr`, a line with a caret under the failing
/// position, then (sometimes) a message. Keep the message, or else the
/// position; a wrong number of fields (say, a 5-field Unix crontab line) is
/// named as such.
fn parse_failure_reason(expr: &str, raw: &str) -> String {
    let fields = expr.split_whitespace().count();
    if !expr.trim_start().starts_with('@') && !(6..=7).contains(&fields) {
        return format!("expected 6 or 7 fields, found {fields}");
    }
    let lines: Vec<&str> = raw.lines().collect();
    let caret = lines.iter().rposition(|line| line.trim() == "^");
    let message = match caret {
        Some(i) => lines[i + 1..].join(" "),
        None => lines.join(" "),
    };
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = message.trim_end_matches('.');
    match caret {
        _ if !message.is_empty() => message.to_owned(),
        Some(i) => {
            let column = lines[i].find('^').unwrap_or(0) + 1;
            format!("syntax error at character {column}")
        }
        None => "syntax error".to_owned(),
    }
}

/// What the engine should do with a repeating message on restart; the
/// answer of [`Recurrence::resume`].
///
/// The [`Recurrence`'s docs](Recurrence#restarting-after-downtime) give the full contract.
///
/// # Examples
///
/// ```
/// use herald_core::{Recurrence, Resume, Tick};
///
/// // Every second until t = 5 s; stored run at 2 s; down until 9 s.
/// let r = Recurrence::every(1_000, Some(Tick::from_millis(5_000)))?;
/// let resume = r.resume(Tick::from_millis(2_000), Tick::from_millis(9_000));
/// // The run at 2 s was owed: fire it now, standing in for 3, 4 and 5 s.
/// // The rule has expired since, so that run is the last.
/// assert_eq!(
///     resume,
///     Resume { missed: 3, missed_is_exact: true, fire_now: true, next: None }
/// );
/// # Ok::<(), herald_core::RecurrenceError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resume {
    /// How many occurrences after `scheduled`, and at or before both `now`
    /// and the expiry, were folded into the one run now. Always 0 when
    /// `fire_now` is false. Exact when [`missed_is_exact`](Self::missed_is_exact)
    /// (always, for `Every` rules); otherwise a lower bound,
    /// [`Resume::CRON_MISSED_CAP`], and the cron rule missed more.
    pub missed: u64,
    /// Whether `missed` is the exact count. `false` only for a cron rule
    /// that missed more than [`Resume::CRON_MISSED_CAP`] runs.
    pub missed_is_exact: bool,
    /// Whether to deliver one run now, for `scheduled` and all missed runs.
    pub fire_now: bool,
    /// When to run next (after the run now, if any); `None` if there is no
    /// further run.
    pub next: Option<Tick>,
}

impl Resume {
    /// The most missed runs [`Recurrence::resume`] counts for a cron rule.
    ///
    /// Counting takes one `cron` lookup per run, so `resume` stops after
    /// this many and reports `missed: CRON_MISSED_CAP, missed_is_exact:
    /// false`: catching up costs at most `CRON_MISSED_CAP + 2` lookups per
    /// message however long the downtime (the next run after `now` is found
    /// directly). Enough to report an exact count for short outages of
    /// hourly or daily rules.
    pub const CRON_MISSED_CAP: u64 = 8;
}

/// Why a [`Recurrence`] could not be built.
///
/// # Examples
///
/// ```
/// use herald_core::{Recurrence, RecurrenceError};
///
/// let err = Recurrence::cron("0 0 25 * * *", chrono_tz::UTC, None).unwrap_err();
/// assert!(matches!(&err, RecurrenceError::InvalidCron { expr, .. } if expr == "0 0 25 * * *"));
/// assert_eq!(RecurrenceError::ZeroInterval.to_string(), "repeat interval must be at least 1 ms");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecurrenceError {
    /// An `Every` rule with an interval of 0.
    #[error("repeat interval must be at least 1 ms")]
    ZeroInterval,
    /// A cron expression that does not parse.
    #[error("invalid cron expression `{expr}`: {reason}")]
    InvalidCron {
        /// The expression as given.
        expr: String,
        /// What the parser objected to.
        reason: String,
    },
    /// A cron expression that parses but has no occurrence at all (between
    /// the epoch and the end of 2100) in its time zone.
    #[error("cron expression `{expr}` never fires in {tz}")]
    NeverFires {
        /// The expression as given.
        expr: String,
        /// The time zone it was evaluated in.
        tz: Tz,
    },
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use chrono::{TimeZone, Utc};

    thread_local! {
        /// Calls of `cron_next` on this thread: one `cron` crate lookup each.
        pub(super) static CRON_LOOKUPS: Cell<u64> = const { Cell::new(0) };
    }

    /// `f()` and the number of cron lookups it made.
    fn lookups_in<R>(f: impl FnOnce() -> R) -> (R, u64) {
        let before = CRON_LOOKUPS.with(Cell::get);
        let r = f();
        (r, CRON_LOOKUPS.with(Cell::get) - before)
    }

    /// A per-second cron rule resumed after 5.5 hours (19,800 missed runs),
    /// 10 years (315 million) and 70 years: the work is a few lookups
    /// whatever the downtime, and the next run is the second after `now`.
    #[test]
    fn resume_of_a_cron_rule_does_constant_work() {
        let r = Recurrence::cron("* * * * * *", chrono_tz::UTC, None).expect("valid");
        let scheduled = Tick::from_millis(1_780_272_000_000); // 2026-06-01T00:00:00Z
        for down_s in [19_800, 10 * 31_557_600, 70 * 31_557_600] {
            let now = scheduled.saturating_add_millis(down_s * 1_000 + 500);
            let (resume, lookups) = lookups_in(|| r.resume(scheduled, now));
            assert!(
                lookups <= Resume::CRON_MISSED_CAP + 2,
                "{lookups} cron lookups after {down_s} s down"
            );
            assert_eq!(
                resume,
                Resume {
                    missed: Resume::CRON_MISSED_CAP,
                    missed_is_exact: false,
                    fire_now: true,
                    next: Some(now.saturating_add_millis(500)),
                }
            );
        }
        // At the cap the count is still exact; one more and it is not.
        let cap = Resume::CRON_MISSED_CAP;
        for (down_s, exact) in [(cap, true), (cap + 1, false)] {
            let now = scheduled.saturating_add_millis(down_s * 1_000);
            let (resume, lookups) = lookups_in(|| r.resume(scheduled, now));
            assert_eq!((resume.missed, resume.missed_is_exact), (cap, exact));
            assert_eq!(lookups, cap + 2);
        }
    }

    #[test]
    fn horizon_is_2101_01_02_utc() {
        let horizon = Utc.with_ymd_and_hms(2101, 1, 2, 0, 0, 0).unwrap();
        assert_eq!(
            CRON_HORIZON_MS,
            u64::try_from(horizon.timestamp_millis()).unwrap()
        );
    }

    #[test]
    fn parse_failure_reason_keeps_the_message_or_the_position() {
        let raw = "0 0 25 * * *\n     ^\nHours must be less than 23.\n";
        assert_eq!(
            parse_failure_reason("0 0 25 * * *", raw),
            "Hours must be less than 23"
        );
        let raw = "0 0 0 1 1 * x\n            ^\n";
        assert_eq!(
            parse_failure_reason("0 0 0 1 1 * x", raw),
            "syntax error at character 13"
        );
        assert_eq!(
            parse_failure_reason("* * * * *", "whatever"),
            "expected 6 or 7 fields, found 5"
        );
        assert_eq!(parse_failure_reason("@reboot", "odd"), "odd");
        assert_eq!(parse_failure_reason("@reboot", ""), "syntax error");
    }
}
