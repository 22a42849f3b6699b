//! `DeliveryPlan`: delivery options checked and parsed once.

use std::fmt;
use std::sync::{Arc, LazyLock};

use herald_core::selector::Selector;
use herald_core::{Recurrence, Tick};

use crate::{DeliveryOptions, Error, PublishPolicy, limits};

/// A message's delivery options, validated and parsed once: the repetition
/// rule as a [`Recurrence`] (a cron expression parsed once), the segment
/// query as a [`Selector`], the times as [`Tick`]s.
///
/// Parse, don't validate: the engine builds the plan at publish (a
/// publish whose options do not make a plan is refused with the
/// Backendless code, and nothing is stored), and the driver, the stores
/// and later the push pipeline share it through the
/// [`Envelope`](crate::Envelope). A store rebuilds it from the stored
/// [`DeliveryOptions`] when a run is claimed (see [`codec`](crate::codec)).
///
/// # Examples
///
/// ```
/// use herald::{DeliveryOptions, DeliveryPlan};
/// use herald_core::Tick;
///
/// let now = Tick::from_millis(1_800_000_000_000);
/// let plan = DeliveryPlan::new(DeliveryOptions {
///     repeat_cron: Some("0 0 9 * * Mon-Fri".into()),
///     time_zone: Some("Europe/Berlin".into()),
///     ..DeliveryOptions::default()
/// })?;
/// let first = plan.first_run(now)?.expect("a repeating message goes to the wheel");
/// assert_eq!(first, now, "09:00 in Berlin is 08:00 UTC, that Friday in January");
///
/// let bad = DeliveryPlan::new(DeliveryOptions {
///     repeat_cron: Some("every tuesday".into()),
///     ..DeliveryOptions::default()
/// });
/// assert_eq!(bad.unwrap_err().code(), 5009);
/// # Ok::<(), herald::Error>(())
/// ```
#[derive(Clone)]
pub struct DeliveryPlan {
    options: DeliveryOptions,
    publish_at: Option<Tick>,
    expires_at: Option<Tick>,
    recurrence: Option<Recurrence>,
    segment: Option<Selector>,
}

/// What follows a delivered run (see [`DeliveryPlan::after_run`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterRun {
    /// The next run, or `None` when that was the last.
    pub next: Option<Tick>,
    /// Runs that were due before now and are collapsed into the run just
    /// delivered (the driver or the process was late by a period or more).
    pub missed: u64,
    /// Whether `missed` is exact; for cron rules late by many runs it is a
    /// lower bound (see [`Recurrence::resume`]).
    pub missed_is_exact: bool,
}

impl DeliveryPlan {
    /// Checks `options` (everything that does not need the clock) and
    /// parses the repetition rule and the segment query.
    ///
    /// # Errors
    ///
    /// 5003 `publishAt` outside 1970 ..= [`MAX_EPOCH_MS`](limits::MAX_EPOCH_MS);
    /// 5007 `repeatExpiresAt` likewise, or before `publishAt`; 5008
    /// `repeatEvery` not whole seconds in 1 ..= [`MAX_REPEAT_SECONDS`](limits::MAX_REPEAT_SECONDS),
    /// or given with `repeatCron`; 5009 `repeatCron` does not parse or never
    /// fires, or `timeZone` is not an IANA zone; 5012 `segmentQuery` does
    /// not parse.
    pub fn new(options: DeliveryOptions) -> Result<Self, Error> {
        let publish_at = options
            .publish_at
            .map(|t| limits::tick_of(t, |reason| Error::InvalidPublishAt { reason }))
            .transpose()?;
        let expires_at = options
            .repeat_expires_at
            .map(|t| limits::tick_of(t, |reason| Error::InvalidRepeatExpiresAt { reason }))
            .transpose()?;
        if let (Some(p), Some(e)) = (publish_at, expires_at)
            && e < p
        {
            return Err(Error::InvalidRepeatExpiresAt {
                reason: format!(
                    "repeatExpiresAt {} is before publishAt {}.",
                    e.as_millis(),
                    p.as_millis()
                ),
            });
        }
        let tz = options
            .time_zone
            .as_deref()
            .map(limits::time_zone)
            .transpose()?;
        let recurrence = match (&options.repeat_cron, options.repeat_every) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidRepeatEvery {
                    reason: "repeatEvery and repeatCron cannot both be given.".into(),
                });
            }
            (Some(cron), None) => Some(
                Recurrence::cron(cron, tz.unwrap_or(chrono_tz::UTC), expires_at).map_err(|e| {
                    Error::InvalidCron {
                        reason: cron_reason(cron, e),
                    }
                })?,
            ),
            (None, Some(every)) => {
                let secs = limits::repeat_every_secs(every)?;
                Some(Recurrence::every(secs * 1_000, expires_at).map_err(|e| {
                    Error::InvalidRepeatEvery {
                        reason: format!("{e}."),
                    }
                })?)
            }
            (None, None) => None,
        };
        let segment = options
            .segment_query
            .as_deref()
            .filter(|q| !q.trim().is_empty())
            .map(Selector::parse)
            .transpose()?;
        Ok(Self {
            options,
            publish_at,
            expires_at,
            recurrence,
            segment,
        })
    }

    /// As [`new`](Self::new), shared: the default options (once, now, to
    /// pub/sub: most publishes) share one plan instead of allocating one.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn shared(options: DeliveryOptions) -> Result<Arc<Self>, Error> {
        static DEFAULT: LazyLock<Arc<DeliveryPlan>> =
            LazyLock::new(|| Arc::new(DeliveryPlan::default()));
        if options == DeliveryOptions::default() {
            return Ok(DEFAULT.clone());
        }
        Self::new(options).map(Arc::new)
    }

    /// The options as given.
    pub fn options(&self) -> &DeliveryOptions {
        &self.options
    }

    /// Pub/sub, push or both.
    pub fn policy(&self) -> PublishPolicy {
        self.options.publish_policy
    }

    /// The repetition rule, if the message repeats.
    pub fn recurrence(&self) -> Option<&Recurrence> {
        self.recurrence.as_ref()
    }

    /// Whether the message repeats.
    pub fn is_repeating(&self) -> bool {
        self.recurrence.is_some()
    }

    /// The parsed segment query, if any.
    pub fn segment(&self) -> Option<&Selector> {
        self.segment.as_ref()
    }

    /// `publishAt`, if given.
    pub fn publish_at(&self) -> Option<Tick> {
        self.publish_at
    }

    /// The first run of a message published at `now`: `None` for a one-off
    /// due now (the publisher delivers it at once), else when the wheel
    /// should fire it.
    ///
    /// # Errors
    ///
    /// 5003 `publishAt` more than [`PAST_TOLERANCE_MS`](limits::PAST_TOLERANCE_MS)
    /// in the past; 5007 `repeatExpiresAt` in the past; 5009 a cron rule
    /// with no run between the start and its expiry.
    pub fn first_run(&self, now: Tick) -> Result<Option<Tick>, Error> {
        if let Some(p) = self.publish_at
            && p.saturating_add_millis(limits::PAST_TOLERANCE_MS) < now
        {
            return Err(Error::InvalidPublishAt {
                reason: in_the_past("publishAt", p, now),
            });
        }
        if let Some(e) = self.expires_at
            && e < now
        {
            return Err(Error::InvalidRepeatExpiresAt {
                reason: in_the_past("repeatExpiresAt", e, now),
            });
        }
        let start = self.publish_at.map_or(now, |p| p.max(now));
        match &self.recurrence {
            None if start <= now => Ok(None),
            None => Ok(Some(start)),
            Some(rule @ Recurrence::Cron { .. }) => rule
                .next_after(start.saturating_sub_millis(1))
                .map(Some)
                .ok_or_else(|| Error::InvalidCron {
                    reason: "The rule has no run after the publish time (before it expires)."
                        .into(),
                }),
            Some(_) => Ok(Some(start)),
        }
    }

    /// What follows the run due at `due`, delivered at `now`. On time, the
    /// next run keeps the rule's grid (no drift from the ms this run was
    /// late); late by a period or more, the missed runs collapse into this
    /// one and the rule continues after `now` ([`Recurrence::resume`]).
    pub fn after_run(&self, due: Tick, now: Tick) -> AfterRun {
        let Some(rule) = &self.recurrence else {
            return AfterRun {
                next: None,
                missed: 0,
                missed_is_exact: true,
            };
        };
        match rule.next_after(due) {
            Some(next) if next > now => AfterRun {
                next: Some(next),
                missed: 0,
                missed_is_exact: true,
            },
            None => AfterRun {
                next: None,
                missed: 0,
                missed_is_exact: true,
            },
            Some(_) => {
                let resume = rule.resume(due, now);
                AfterRun {
                    next: resume.next,
                    missed: resume.missed,
                    missed_is_exact: resume.missed_is_exact,
                }
            }
        }
    }
}

impl PartialEq for DeliveryPlan {
    /// Plans are equal when their options are (the rest is derived).
    fn eq(&self, other: &Self) -> bool {
        self.options == other.options
    }
}

impl fmt::Debug for DeliveryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryPlan")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Default for DeliveryPlan {
    /// Once, now, to pub/sub.
    fn default() -> Self {
        Self {
            options: DeliveryOptions::default(),
            publish_at: None,
            expires_at: None,
            recurrence: None,
            segment: None,
        }
    }
}

/// Why cron expression `expr` was refused, with the expression quoted
/// and escaped.
fn cron_reason(expr: &str, e: herald_core::RecurrenceError) -> String {
    use herald_core::RecurrenceError as E;
    match e {
        E::InvalidCron { reason, .. } => {
            format!("{} does not parse: {reason}.", crate::error::quoted(expr))
        }
        E::NeverFires { tz, .. } => {
            format!("{} never fires in {tz}.", crate::error::quoted(expr))
        }
        other => format!("{other}."),
    }
}

/// Why a time `field` at `t` is refused at `now`: how far in the past it
/// is, or, when it looks like epoch seconds, that it is read as epoch
/// milliseconds.
fn in_the_past(field: &str, t: Tick, now: Tick) -> String {
    // Epoch seconds of any date from 1973 to year 5138 are below this, and
    // as milliseconds they are in early 1973.
    const LOOKS_LIKE_SECONDS: u64 = 100_000_000_000;
    let ms = t.as_millis();
    if ms < LOOKS_LIKE_SECONDS {
        format!("{ms} is in the past: {field} is in epoch milliseconds.")
    } else {
        let ago = now.as_millis() - ms;
        format!(
            "{ms} is {}.{:03} s before the server's time, {}.",
            ago / 1000,
            ago % 1000,
            now.as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeDelta};
    use serde_json::json;

    const NOW: u64 = 1_800_000_000_000;

    fn t(ms: u64) -> Tick {
        Tick::from_millis(ms)
    }

    fn plan(body: serde_json::Value) -> Result<DeliveryPlan, Error> {
        DeliveryPlan::new(DeliveryOptions::from_json(&body)?)
    }

    #[test]
    fn rules_between_fields() {
        let cases = [
            (json!({"repeatEvery": 5, "repeatCron": "* * * * * *"}), 5008),
            (json!({"repeatCron": "nope"}), 5009),
            (
                json!({"repeatCron": "* * * * * *", "timeZone": "Mars/Base"}),
                5009,
            ),
            (json!({"timeZone": "Mars/Base"}), 5009),
            (json!({"segmentQuery": "a >"}), 5012),
            (
                json!({"publishAt": NOW + 10_000, "repeatExpiresAt": NOW + 5_000}),
                5007,
            ),
        ];
        for (body, code) in cases {
            assert_eq!(plan(body.clone()).unwrap_err().code(), code, "{body}");
        }
        let p = plan(json!({"segmentQuery": "os = 'IOS'", "repeatEvery": 60})).unwrap();
        assert!(p.segment().is_some());
        assert!(p.is_repeating());
    }

    #[test]
    fn the_rust_api_cannot_sneak_past_the_wire_rules() {
        let cases = [
            (
                DeliveryOptions {
                    repeat_every: Some(TimeDelta::milliseconds(1_500)),
                    ..DeliveryOptions::default()
                },
                5008,
            ),
            (
                DeliveryOptions {
                    repeat_every: Some(TimeDelta::zero()),
                    ..DeliveryOptions::default()
                },
                5008,
            ),
            (
                DeliveryOptions {
                    publish_at: DateTime::from_timestamp_millis(-1),
                    ..DeliveryOptions::default()
                },
                5003,
            ),
            (
                DeliveryOptions {
                    repeat_expires_at: DateTime::from_timestamp_millis(-1),
                    ..DeliveryOptions::default()
                },
                5007,
            ),
            (
                DeliveryOptions {
                    segment_query: Some("(".into()),
                    ..DeliveryOptions::default()
                },
                5012,
            ),
        ];
        for (options, code) in cases {
            let err = DeliveryPlan::new(options.clone()).unwrap_err();
            assert_eq!(err.code(), code, "{options:?}");
        }
    }

    #[test]
    fn first_runs() {
        let now = t(NOW);
        assert_eq!(plan(json!({})).unwrap().first_run(now).unwrap(), None);
        let at = plan(json!({"publishAt": NOW + 5})).unwrap();
        assert_eq!(at.first_run(now).unwrap(), Some(t(NOW + 5)));
        let skew = plan(json!({"publishAt": NOW - 1_000})).unwrap();
        assert_eq!(skew.first_run(now).unwrap(), None, "within the tolerance");
        let past = plan(json!({"publishAt": NOW - 1_001})).unwrap();
        assert_eq!(past.first_run(now).unwrap_err().code(), 5003);
        let expired = plan(json!({"repeatEvery": 1, "repeatExpiresAt": NOW - 1})).unwrap();
        assert_eq!(expired.first_run(now).unwrap_err().code(), 5007);
        let every = plan(json!({"repeatEvery": 60})).unwrap();
        assert_eq!(
            every.first_run(now).unwrap(),
            Some(now),
            "repeating: the wheel"
        );
        let cron = plan(json!({"repeatCron": "0 0 * * * *"})).unwrap();
        let first = cron.first_run(now).unwrap().unwrap();
        assert!(first >= now && first.as_millis().is_multiple_of(3_600_000));
        let never =
            plan(json!({"repeatCron": "0 0 0 1 1 * 2027", "repeatExpiresAt": NOW + 1})).unwrap();
        assert_eq!(never.first_run(now).unwrap_err().code(), 5009);
    }

    #[test]
    fn runs_after_a_delivery() {
        let every = plan(json!({"repeatEvery": 10, "repeatExpiresAt": NOW + 25_000})).unwrap();
        let on_time = every.after_run(t(NOW), t(NOW + 3));
        assert_eq!((on_time.next, on_time.missed), (Some(t(NOW + 10_000)), 0));
        let late = every.after_run(t(NOW), t(NOW + 21_000));
        assert_eq!(late.next, None, "the next after now is past the expiry");
        assert_eq!(late.missed, 2);
        let once = plan(json!({})).unwrap();
        assert_eq!(once.after_run(t(NOW), t(NOW)).next, None);
    }
}
