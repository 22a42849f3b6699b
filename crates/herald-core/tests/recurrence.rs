//! Integration and property tests for `Recurrence`: intervals, cron rules in
//! time zones (DST gaps and overlaps), expiry, and `resume` after downtime.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, TimeZone};
use chrono_tz::America::New_York;
use chrono_tz::Europe::Berlin;
use chrono_tz::{Tz, UTC};
use herald_core::{Recurrence, RecurrenceError, Resume, Tick};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// helpers

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

/// The instant of an unambiguous wall-clock time in `tz`.
fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Tick {
    match tz.with_ymd_and_hms(y, mo, d, h, mi, s) {
        LocalResult::Single(dt) => tick_of(&dt),
        other => panic!("{y}-{mo}-{d} {h}:{mi}:{s} in {tz} is not unique: {other:?}"),
    }
}

/// The instant of an ambiguous wall-clock time in `tz`: (first, second).
fn at_twice(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> (Tick, Tick) {
    match tz.with_ymd_and_hms(y, mo, d, h, mi, s) {
        LocalResult::Ambiguous(a, b) => (tick_of(&a), tick_of(&b)),
        other => panic!("{y}-{mo}-{d} {h}:{mi}:{s} in {tz} is not ambiguous: {other:?}"),
    }
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Tick {
    at(UTC, y, mo, d, h, mi, s)
}

fn tick_of(dt: &DateTime<Tz>) -> Tick {
    t(u64::try_from(dt.timestamp_millis()).expect("after the epoch"))
}

fn cron(expr: &str, tz: Tz) -> Recurrence {
    Recurrence::cron(expr, tz, None).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

/// The first `n` runs strictly after `from`.
fn runs(r: &Recurrence, from: Tick, n: usize) -> Vec<Tick> {
    std::iter::successors(r.next_after(from), |&x| r.next_after(x))
        .take(n)
        .collect()
}

fn seconds(ticks: &[Tick]) -> Vec<u64> {
    ticks.iter().map(|x| x.as_millis() / 1000).collect()
}

// ---------------------------------------------------------------------------
// construction errors

#[test]
fn every_rejects_a_zero_interval() {
    assert_eq!(
        Recurrence::every(0, None),
        Err(RecurrenceError::ZeroInterval)
    );
    assert_eq!(
        Recurrence::every(0, Some(t(5))),
        Err(RecurrenceError::ZeroInterval)
    );
    let msg = RecurrenceError::ZeroInterval.to_string();
    assert!(
        !msg.ends_with('.') && msg.starts_with(char::is_lowercase),
        "{msg}"
    );
}

#[test]
fn cron_rejects_invalid_expressions_naming_them() {
    for expr in [
        "",
        "   ",
        "* * * * *",
        "every tuesday",
        "61 * * * * *",
        "0 0 25 * * *",
        "0 0 0 1 Foo *",
        "0 0 0 5-1 * *",
        "0 */0 * * * *",
        "0 0 0 1 1 * 2200",
        "0 0 0 1 1 * * *",
        "@reboot",
        "0 0 0 ? * ? \u{1F600}",
    ] {
        let err = Recurrence::cron(expr, UTC, None).expect_err(expr);
        let RecurrenceError::InvalidCron {
            expr: reported,
            reason,
        } = &err
        else {
            panic!("{expr:?}: unexpected error {err:?}");
        };
        assert_eq!(reported, expr);
        assert!(!reason.is_empty(), "{expr:?}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("`{expr}`")), "{msg}");
        assert!(msg.starts_with("invalid cron expression"), "{msg}");
        assert!(!msg.ends_with('.') && !msg.contains('\n'), "{msg:?}");
    }
}

#[test]
fn cron_names_a_wrong_field_count() {
    let err = Recurrence::cron("*/5 * * * *", UTC, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid cron expression `*/5 * * * *`: expected 6 or 7 fields, found 5"
    );
}

#[test]
fn cron_rejects_rules_that_never_fire() {
    let err = Recurrence::cron("0 0 0 30 2 *", UTC, None).unwrap_err();
    assert_eq!(
        err,
        RecurrenceError::NeverFires {
            expr: "0 0 0 30 2 *".into(),
            tz: UTC
        }
    );
    assert_eq!(
        err.to_string(),
        "cron expression `0 0 0 30 2 *` never fires in UTC"
    );
    // Its only wall-clock time falls into New York's 2026 spring-forward gap.
    let gap_only = "0 30 2 8 3 * 2026";
    assert!(matches!(
        Recurrence::cron(gap_only, New_York, None),
        Err(RecurrenceError::NeverFires { .. })
    ));
    assert!(Recurrence::cron(gap_only, UTC, None).is_ok());
}

#[test]
fn cron_accepts_shorthands_and_seven_fields() {
    for expr in [
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
        "0 0 0 1 1 ? 2030",
        "0 0 0 1 1 * 2020", // only in the past: accepted, see next_after
    ] {
        assert!(Recurrence::cron(expr, UTC, None).is_ok(), "{expr}");
    }
    let past = cron("0 0 0 1 1 * 2020", UTC);
    assert_eq!(past.next_after(utc(2026, 1, 1, 0, 0, 0)), None);
}

#[test]
fn expires_at_reports_the_expiry() {
    assert_eq!(Recurrence::every(5, None).unwrap().expires_at(), None);
    assert_eq!(
        Recurrence::every(5, Some(t(9))).unwrap().expires_at(),
        Some(t(9))
    );
    let r = Recurrence::cron("@daily", Berlin, Some(t(7))).unwrap();
    assert_eq!(r.expires_at(), Some(t(7)));
    let Recurrence::Cron { schedule, tz, .. } = &r else {
        panic!("not a cron rule")
    };
    assert_eq!((schedule.source(), *tz), ("@daily", Berlin));
}

// ---------------------------------------------------------------------------
// Every

#[test]
fn every_adds_the_interval_to_the_previous_scheduled_run() {
    let r = Recurrence::every(1_500, None).unwrap();
    assert_eq!(r.next_after(t(0)), Some(t(1_500)));
    assert_eq!(r.next_after(t(1_501)), Some(t(3_001)));
    assert_eq!(
        seconds(&runs(&r, t(0), 4)),
        [1, 3, 4, 6] // 1.5, 3.0, 4.5, 6.0 s
    );
}

#[test]
fn every_expiry_is_inclusive_to_the_millisecond() {
    let r = Recurrence::every(1_000, Some(t(5_000))).unwrap();
    assert_eq!(r.next_after(t(4_000)), Some(t(5_000)));
    let r = Recurrence::every(1_000, Some(t(4_999))).unwrap();
    assert_eq!(r.next_after(t(4_000)), None);
    assert_eq!(r.next_after(t(3_999)), Some(t(4_999)));
}

#[test]
fn every_with_expiry_before_start_never_runs() {
    let r = Recurrence::every(10, Some(t(100))).unwrap();
    assert_eq!(r.next_after(t(1_000)), None);
    assert_eq!(r.next_after(t(100)), None);
    assert_eq!(r.next_after(Tick::MAX), None);
}

#[test]
fn every_returns_none_on_overflow() {
    let r = Recurrence::every(u64::MAX, None).unwrap();
    assert_eq!(r.next_after(t(0)), Some(Tick::MAX));
    assert_eq!(r.next_after(t(1)), None);
    assert_eq!(r.next_after(Tick::MAX), None);
    let r = Recurrence::every(1, None).unwrap();
    assert_eq!(r.next_after(t(u64::MAX - 1)), Some(Tick::MAX));
    assert_eq!(r.next_after(Tick::MAX), None);
}

// ---------------------------------------------------------------------------
// Cron in UTC

#[test]
fn cron_is_strictly_after_to_the_millisecond() {
    let r = cron("0 0 12 * * *", UTC);
    let noon = utc(2026, 6, 1, 12, 0, 0);
    assert_eq!(r.next_after(noon.saturating_sub_millis(1)), Some(noon));
    assert_eq!(r.next_after(noon), Some(utc(2026, 6, 2, 12, 0, 0)));
    assert_eq!(
        r.next_after(noon.saturating_add_millis(1)),
        Some(utc(2026, 6, 2, 12, 0, 0))
    );

    let every_second = cron("* * * * * *", UTC);
    assert_eq!(every_second.next_after(t(1_000)), Some(t(2_000)));
    assert_eq!(every_second.next_after(t(1_999)), Some(t(2_000)));
    assert_eq!(every_second.next_after(t(1_001)), Some(t(2_000)));
    assert_eq!(every_second.next_after(t(0)), Some(t(1_000)));
}

#[test]
fn cron_crosses_the_year_boundary() {
    let r = cron("59 59 23 31 12 *", UTC);
    assert_eq!(
        r.next_after(utc(2026, 12, 31, 23, 59, 58)),
        Some(utc(2026, 12, 31, 23, 59, 59))
    );
    assert_eq!(
        r.next_after(utc(2026, 12, 31, 23, 59, 59)),
        Some(utc(2027, 12, 31, 23, 59, 59))
    );
    let r = cron("0 0 0 1 1 *", UTC);
    assert_eq!(
        r.next_after(utc(2026, 12, 31, 23, 59, 59)),
        Some(utc(2027, 1, 1, 0, 0, 0))
    );
    let r = cron("* * * * * *", UTC);
    assert_eq!(
        r.next_after(utc(2026, 12, 31, 23, 59, 59)),
        Some(utc(2027, 1, 1, 0, 0, 0))
    );
}

#[test]
fn cron_leap_day_runs_every_four_years() {
    let r = cron("0 0 12 29 2 *", UTC);
    assert_eq!(
        runs(&r, utc(2026, 1, 1, 0, 0, 0), 3),
        [
            utc(2028, 2, 29, 12, 0, 0),
            utc(2032, 2, 29, 12, 0, 0),
            utc(2036, 2, 29, 12, 0, 0),
        ]
    );
    // 2100 is not a leap year, and the cron crate stops at 2100.
    assert_eq!(r.next_after(utc(2096, 2, 29, 12, 0, 0)), None);
}

#[test]
fn cron_with_a_year_field_stops_firing() {
    let r = cron("0 0 0 1 1 * 2027-2028", UTC);
    assert_eq!(
        runs(&r, utc(2026, 6, 1, 0, 0, 0), 5),
        [utc(2027, 1, 1, 0, 0, 0), utc(2028, 1, 1, 0, 0, 0)]
    );
    assert_eq!(r.next_after(utc(2028, 1, 1, 0, 0, 0)), None);
}

#[test]
fn cron_stops_after_2100() {
    let r = cron("* * * * * *", UTC);
    assert_eq!(
        r.next_after(utc(2100, 12, 31, 23, 59, 58)),
        Some(utc(2100, 12, 31, 23, 59, 59))
    );
    assert_eq!(r.next_after(utc(2100, 12, 31, 23, 59, 59)), None);
    // 2100-12-31 in Honolulu ends at 2101-01-01 10:00 UTC.
    let honolulu = cron("* * * * * *", chrono_tz::Pacific::Honolulu);
    assert_eq!(
        honolulu.next_after(utc(2101, 1, 1, 9, 59, 58)),
        Some(utc(2101, 1, 1, 9, 59, 59))
    );
    assert_eq!(honolulu.next_after(utc(2101, 1, 1, 9, 59, 59)), None);
}

#[test]
fn cron_expiry_is_inclusive_to_the_millisecond() {
    let noon = utc(2026, 6, 1, 12, 0, 0);
    let day_before = utc(2026, 5, 31, 13, 0, 0);
    let r = Recurrence::cron("0 0 12 * * *", UTC, Some(noon)).unwrap();
    assert_eq!(r.next_after(day_before), Some(noon));
    assert_eq!(r.next_after(noon), None);
    let r = Recurrence::cron("0 0 12 * * *", UTC, Some(noon.saturating_sub_millis(1))).unwrap();
    assert_eq!(r.next_after(day_before), None);
    // An expiry before the first run: accepted, never runs.
    let r = Recurrence::cron("0 0 12 * * *", UTC, Some(t(5))).unwrap();
    assert_eq!(r.next_after(t(0)), None);
}

#[test]
fn nothing_panics_on_extreme_ticks() {
    let rules = [
        Recurrence::every(1, None).unwrap(),
        Recurrence::every(u64::MAX, Some(Tick::MAX)).unwrap(),
        Recurrence::every(7, Some(Tick::ZERO)).unwrap(),
        cron("* * * * * *", UTC),
        cron("* * * * * *", chrono_tz::Pacific::Kiritimati),
        cron("0 0 0 29 2 * 2096", New_York),
        Recurrence::cron("@yearly", Berlin, Some(Tick::MAX)).unwrap(),
    ];
    let ticks = [
        Tick::ZERO,
        t(1),
        t(4_134_067_199_999),
        t(4_134_067_200_000),
        t(i64::MAX as u64),
        t(i64::MAX as u64 + 1),
        t(u64::MAX - 1),
        Tick::MAX,
    ];
    for r in &rules {
        for &a in &ticks {
            if let Some(n) = r.next_after(a) {
                assert!(n > a);
            }
            for &b in &ticks {
                let res = r.resume(a, b);
                assert!(res.fire_now || res.missed == 0);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Cron across DST changes

#[test]
fn new_york_spring_gap_skips_the_missing_time() {
    // 2026-03-08: 02:00 EST -> 03:00 EDT; 02:30 does not exist.
    let r = cron("0 30 2 * * *", New_York);
    assert_eq!(
        runs(&r, at(New_York, 2026, 3, 6, 12, 0, 0), 3),
        [
            at(New_York, 2026, 3, 7, 2, 30, 0),
            at(New_York, 2026, 3, 9, 2, 30, 0),
            at(New_York, 2026, 3, 10, 2, 30, 0),
        ]
    );
    assert_eq!(
        at(New_York, 2026, 3, 9, 2, 30, 0),
        utc(2026, 3, 9, 6, 30, 0)
    );
}

#[test]
fn new_york_spring_gap_with_a_frequent_rule_jumps_over_the_hour() {
    let r = cron("0 */15 * * * *", New_York);
    assert_eq!(
        runs(&r, at(New_York, 2026, 3, 8, 1, 30, 0), 3),
        [
            at(New_York, 2026, 3, 8, 1, 45, 0),
            at(New_York, 2026, 3, 8, 3, 0, 0),
            at(New_York, 2026, 3, 8, 3, 15, 0),
        ]
    );
    // Real time between 01:45 EST and 03:00 EDT is 15 minutes.
    assert_eq!(utc(2026, 3, 8, 7, 0, 0), at(New_York, 2026, 3, 8, 3, 0, 0));
}

#[test]
fn berlin_spring_gap_skips_the_missing_time() {
    // 2026-03-29: 02:00 CET -> 03:00 CEST.
    let r = cron("0 30 2 * * *", Berlin);
    assert_eq!(
        runs(&r, at(Berlin, 2026, 3, 28, 12, 0, 0), 2),
        [
            at(Berlin, 2026, 3, 30, 2, 30, 0),
            at(Berlin, 2026, 3, 31, 2, 30, 0),
        ]
    );
    // A time just after the gap is unaffected.
    let r = cron("0 0 3 * * *", Berlin);
    assert_eq!(
        r.next_after(at(Berlin, 2026, 3, 29, 1, 59, 59)),
        Some(utc(2026, 3, 29, 1, 0, 0))
    );
}

#[test]
fn new_york_fall_overlap_runs_once_at_the_first_pass() {
    // 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens twice.
    let (first, second) = at_twice(New_York, 2026, 11, 1, 1, 30, 0);
    assert_eq!(first, utc(2026, 11, 1, 5, 30, 0));
    assert_eq!(second, utc(2026, 11, 1, 6, 30, 0));
    let r = cron("0 30 1 * * *", New_York);
    let next_day = at(New_York, 2026, 11, 2, 1, 30, 0);
    assert_eq!(
        runs(&r, at(New_York, 2026, 10, 31, 12, 0, 0), 2),
        [first, next_day]
    );
    // Asked from between the two passes, or from inside the second pass
    // before 01:30 comes round again: the repeat is skipped too.
    assert_eq!(r.next_after(first), Some(next_day));
    assert_eq!(r.next_after(utc(2026, 11, 1, 6, 10, 0)), Some(next_day)); // 01:10 EST
    assert_eq!(
        r.next_after(second.saturating_sub_millis(1)),
        Some(next_day)
    );
}

#[test]
fn new_york_fall_overlap_hourly_rule_does_not_repeat_the_hour() {
    let r = cron("0 0 * * * *", New_York);
    assert_eq!(
        runs(&r, utc(2026, 11, 1, 3, 30, 0), 4),
        [
            utc(2026, 11, 1, 4, 0, 0), // 00:00 EDT
            utc(2026, 11, 1, 5, 0, 0), // 01:00 EDT
            utc(2026, 11, 1, 7, 0, 0), // 02:00 EST (01:00 EST skipped)
            utc(2026, 11, 1, 8, 0, 0), // 03:00 EST
        ]
    );
}

#[test]
fn new_york_fall_overlap_frequent_rule_pauses_for_the_repeated_hour() {
    let r = cron("0 */10 * * * *", New_York);
    assert_eq!(
        runs(&r, utc(2026, 11, 1, 5, 45, 0), 3),
        [
            utc(2026, 11, 1, 5, 50, 0), // 01:50 EDT
            utc(2026, 11, 1, 7, 0, 0),  // 02:00 EST
            utc(2026, 11, 1, 7, 10, 0), // 02:10 EST
        ]
    );
}

#[test]
fn new_york_fall_overlap_per_second_rule_resumes_after_the_repeated_hour() {
    let r = cron("* * * * * *", New_York);
    let last_edt_second = utc(2026, 11, 1, 5, 59, 59); // 01:59:59 EDT
    let first_est_two = utc(2026, 11, 1, 7, 0, 0); // 02:00:00 EST
    assert_eq!(r.next_after(last_edt_second), Some(first_est_two));
    assert_eq!(
        r.next_after(last_edt_second.saturating_sub_millis(500)),
        Some(last_edt_second)
    );
    assert_eq!(
        r.next_after(utc(2026, 11, 1, 6, 30, 0)),
        Some(first_est_two)
    );
}

#[test]
fn berlin_fall_overlap_runs_once_at_the_first_pass() {
    // 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 happens twice.
    let (first, second) = at_twice(Berlin, 2026, 10, 25, 2, 30, 0);
    assert_eq!(first, utc(2026, 10, 25, 0, 30, 0));
    assert_eq!(second, utc(2026, 10, 25, 1, 30, 0));
    let r = cron("0 30 2 * * *", Berlin);
    let next_day = at(Berlin, 2026, 10, 26, 2, 30, 0);
    assert_eq!(next_day, utc(2026, 10, 26, 1, 30, 0));
    assert_eq!(
        runs(&r, at(Berlin, 2026, 10, 24, 12, 0, 0), 2),
        [first, next_day]
    );
    assert_eq!(r.next_after(utc(2026, 10, 25, 1, 0, 0)), Some(next_day));
}

#[test]
fn lord_howe_half_hour_dst_is_handled() {
    // Australia/Lord_Howe shifts by 30 minutes: on 2026-04-05 02:00 LHDT
    // (+11) becomes 01:30 LHST (+10:30), so 01:30-02:00 happens twice.
    let tz = chrono_tz::Australia::Lord_Howe;
    let (first, _second) = at_twice(tz, 2026, 4, 5, 1, 45, 0);
    let r = cron("0 45 1 * * *", tz);
    assert_eq!(
        runs(&r, at(tz, 2026, 4, 4, 12, 0, 0), 2),
        [first, at(tz, 2026, 4, 6, 1, 45, 0)]
    );
}

// ---------------------------------------------------------------------------
// resume

#[test]
fn resume_before_the_stored_run_changes_nothing() {
    let r = Recurrence::every(1_000, None).unwrap();
    assert_eq!(
        r.resume(t(5_000), t(4_999)),
        Resume {
            missed: 0,
            missed_is_exact: true,
            fire_now: false,
            next: Some(t(5_000))
        }
    );
}

#[test]
fn resume_exactly_at_the_stored_run_fires_it() {
    let r = Recurrence::every(1_000, None).unwrap();
    assert_eq!(
        r.resume(t(5_000), t(5_000)),
        Resume {
            missed: 0,
            missed_is_exact: true,
            fire_now: true,
            next: Some(t(6_000))
        }
    );
}

#[test]
fn resume_with_one_missed_run() {
    let r = Recurrence::every(1_000, None).unwrap();
    assert_eq!(
        r.resume(t(5_000), t(6_500)),
        Resume {
            missed: 1,
            missed_is_exact: true,
            fire_now: true,
            next: Some(t(7_500))
        }
    );
    let r = cron("0 0 * * * *", UTC);
    let s = utc(2026, 6, 1, 10, 0, 0);
    assert_eq!(
        r.resume(s, utc(2026, 6, 1, 11, 0, 0)),
        Resume {
            missed: 1,
            missed_is_exact: true,
            fire_now: true,
            next: Some(utc(2026, 6, 1, 12, 0, 0))
        }
    );
}

#[test]
fn resume_collapses_a_million_missed_runs_exactly() {
    let r = Recurrence::every(1_000, None).unwrap();
    let scheduled = t(1_000_000);
    let now = scheduled.saturating_add_millis(1_000_000 * 1_000 + 999);
    assert_eq!(
        r.resume(scheduled, now),
        Resume {
            missed: 1_000_000,
            missed_is_exact: true,
            fire_now: true,
            next: Some(now.saturating_add_millis(1_000))
        }
    );
    // O(1) even at the extremes.
    let r = Recurrence::every(1, None).unwrap();
    assert_eq!(r.resume(Tick::ZERO, Tick::MAX).missed, u64::MAX);
    assert_eq!(r.resume(Tick::ZERO, Tick::MAX).next, None);
}

#[test]
fn resume_after_the_rule_expired_while_down_fires_the_owed_run_last() {
    let r = Recurrence::every(1_000, Some(t(10_000))).unwrap();
    assert_eq!(
        r.resume(t(7_000), t(60_000)),
        Resume {
            missed: 3, // 8, 9 and 10 s; nothing after the expiry
            missed_is_exact: true,
            fire_now: true,
            next: None
        }
    );
    // Stored run exactly at the expiry: still owed.
    assert_eq!(
        r.resume(t(10_000), t(60_000)),
        Resume {
            missed: 0,
            missed_is_exact: true,
            fire_now: true,
            next: None
        }
    );
    let noon = utc(2026, 6, 1, 12, 0, 0);
    let r = Recurrence::cron("0 0 * * * *", UTC, Some(noon)).unwrap();
    assert_eq!(
        r.resume(utc(2026, 6, 1, 9, 0, 0), utc(2026, 6, 3, 0, 0, 0)),
        Resume {
            missed: 3, // 10:00, 11:00, 12:00
            missed_is_exact: true,
            fire_now: true,
            next: None
        }
    );
}

#[test]
fn resume_of_a_run_stored_past_the_expiry_owes_nothing() {
    let r = Recurrence::every(1_000, Some(t(10_000))).unwrap();
    let nothing = Resume {
        missed: 0,
        missed_is_exact: true,
        fire_now: false,
        next: None,
    };
    assert_eq!(r.resume(t(10_001), t(60_000)), nothing);
    assert_eq!(r.resume(t(10_001), t(5_000)), nothing);
}

#[test]
fn resume_counts_cron_runs_up_to_the_cap() {
    let r = cron("* * * * * *", UTC);
    let s = utc(2026, 6, 1, 0, 0, 0);
    let cap = Resume::CRON_MISSED_CAP;
    let res = r.resume(s, s.saturating_add_millis((cap - 1) * 1_000));
    assert_eq!((res.missed, res.missed_is_exact), (cap - 1, true));
    let res = r.resume(s, s.saturating_add_millis(cap * 1_000 + 999));
    assert_eq!((res.missed, res.missed_is_exact), (cap, true));
    let res = r.resume(s, s.saturating_add_millis((cap + 1) * 1_000));
    assert_eq!((res.missed, res.missed_is_exact), (cap, false));
    let res = r.resume(s, s.saturating_add_millis(86_400_000));
    assert_eq!((res.missed, res.missed_is_exact), (cap, false));
    assert!(res.fire_now);
    assert_eq!(res.next, Some(utc(2026, 6, 2, 0, 0, 1)));
}

#[test]
fn resume_of_a_per_second_cron_after_ten_years_is_immediate() {
    // 315 million missed runs, which no one could walk through: resume
    // reports a lower bound and finds the next run directly. (The work
    // bound is checked by counting lookups in the unit tests of
    // `recurrence.rs`.)
    let r = cron("* * * * * *", New_York);
    let s = utc(2026, 6, 1, 0, 0, 0);
    let now = utc(2036, 6, 1, 0, 0, 0).saturating_add_millis(250);
    let res = r.resume(s, now);
    assert_eq!(
        res,
        Resume {
            missed: Resume::CRON_MISSED_CAP,
            missed_is_exact: false,
            fire_now: true,
            next: Some(utc(2036, 6, 1, 0, 0, 1)),
        }
    );
}

#[test]
fn resume_counts_only_first_passes_across_an_overlap() {
    let r = cron("0 */30 * * * *", New_York);
    // 00:00 EDT .. 03:00 EST on 2026-11-01 is 4 hours of real time, but
    // 01:00 and 01:30 repeat, so only 00:30, 01:00, 01:30 (EDT), 02:00,
    // 02:30 and 03:00 (EST) count.
    let res = r.resume(utc(2026, 11, 1, 4, 0, 0), utc(2026, 11, 1, 8, 0, 0));
    assert_eq!(res.missed, 6);
    assert_eq!(res.next, Some(utc(2026, 11, 1, 8, 30, 0)));
}

// ---------------------------------------------------------------------------
// properties

const MAX_CRON_TICK: u64 = 4_134_067_200_000; // 2101-01-02T00:00:00Z

/// Cron rules under test, with the step (in seconds) at which a brute-force
/// scan of wall-clock times finds every occurrence.
const CRON_CASES: &[(&str, u64)] = &[
    ("* * * * * *", 1),
    ("*/15 * * * * *", 1),
    ("0 */7 * * * *", 60),
    ("0 0 * * * *", 60),
    ("0 30 2 * * *", 60),
    ("0 45 1 * * *", 60),
    ("0 0,30 1-3 * * Sun", 60),
    ("0 0 0 1 * *", 60),
    ("0 0 12 29 2 *", 60),
    ("30 45 23 31 12 * 2030-2040", 1),
    ("@weekly", 60),
];

const ZONES: &[Tz] = &[
    UTC,
    New_York,
    Berlin,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kathmandu,
    chrono_tz::America::St_Johns,
];

/// 2026 DST changes (UTC) and the zone that changes.
const TRANSITIONS: &[(u64, Tz)] = &[
    (1_772_953_200_000, New_York), // 2026-03-08T07:00Z spring forward
    (1_793_512_800_000, New_York), // 2026-11-01T06:00Z fall back
    (1_774_746_000_000, Berlin),   // 2026-03-29T01:00Z spring forward
    (1_792_890_000_000, Berlin),   // 2026-10-25T01:00Z fall back
    (1_775_314_800_000, chrono_tz::Australia::Lord_Howe), // 2026-04-04T15:00Z back 30 min
    (1_791_041_400_000, chrono_tz::Australia::Lord_Howe), // 2026-10-03T15:30Z forward 30 min
];

/// A time zone and a tick: anywhere in the cron crate's range (and a bit
/// beyond) in any zone, on whole seconds, or within two hours of one of the
/// zone's DST changes.
fn zone_and_tick() -> impl Strategy<Value = (Tz, Tick)> {
    let zone = (0..ZONES.len()).prop_map(|i| ZONES[i]);
    prop_oneof![
        (zone.clone(), 0..MAX_CRON_TICK + 86_400_000).prop_map(|(tz, ms)| (tz, t(ms))),
        (zone.clone(), 0..MAX_CRON_TICK / 1000).prop_map(|(tz, s)| (tz, t(s * 1000))),
        (zone, Just(Tick::MAX)).prop_map(|(tz, x)| (tz, x)),
        (0..TRANSITIONS.len(), -2 * 3_600_000i64..2 * 3_600_000i64).prop_map(|(i, d)| {
            let (ms, tz) = TRANSITIONS[i];
            (tz, t(ms.saturating_add_signed(d)))
        }),
        (0..TRANSITIONS.len(), -7_200i64..7_200i64).prop_map(|(i, d)| {
            let (ms, tz) = TRANSITIONS[i];
            (tz, t(ms.saturating_add_signed(d * 1000)))
        }),
    ]
}

/// Every instant whose wall-clock time in `tz` matches `schedule` and is
/// not the second pass of a repeated wall-clock time, by brute force: the
/// first such instant strictly after `after`, scanning at most `limit`
/// steps of `step_s` seconds. `Err(())` if the scan was inconclusive.
fn brute_force_next(
    schedule: &cron::Schedule,
    tz: Tz,
    after: Tick,
    step_s: u64,
    limit: u64,
) -> Result<Option<Tick>, ()> {
    if after.as_millis() >= MAX_CRON_TICK {
        return Ok(None);
    }
    let first = (after.as_millis() / 1000 / step_s + 1) * step_s;
    for i in 0..limit {
        let s = first + i * step_s;
        if s * 1000 >= MAX_CRON_TICK {
            return Ok(None);
        }
        let dt = tz
            .timestamp_opt(i64::try_from(s).unwrap(), 0)
            .single()
            .unwrap();
        let first_pass = tz.from_local_datetime(&dt.naive_local()).earliest() == Some(dt);
        if schedule.includes(dt) && first_pass {
            return Ok(Some(t(s * 1000)));
        }
    }
    Err(())
}

fn every_rule() -> impl Strategy<Value = Recurrence> {
    (
        prop_oneof![1..10u64, 1..100_000_000u64, Just(u64::MAX), any::<u64>()],
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(i, exp)| Recurrence::every(i, exp.map(t)).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_next_is_after_plus_interval_or_none(r in every_rule(), after in any::<u64>()) {
        let Recurrence::Every { interval_ms, expires_at, .. } = r else { unreachable!() };
        let expected = after
            .checked_add(interval_ms)
            .map(t)
            .filter(|&n| expires_at.is_none_or(|e| n <= e));
        prop_assert_eq!(r.next_after(t(after)), expected);
    }

    #[test]
    fn every_runs_increase_and_respect_the_expiry(r in every_rule(), start in any::<u64>()) {
        let mut prev = t(start);
        for next in runs(&r, prev, 50) {
            prop_assert!(next > prev);
            prop_assert!(r.expires_at().is_none_or(|e| next <= e));
            prev = next;
        }
    }

    #[test]
    fn every_resume_matches_step_by_step_counting(
        interval in 1..50u64,
        scheduled in 0..1_000u64,
        down in 0..2_000u64,
        expiry in proptest::option::of(0..3_000u64),
    ) {
        let r = Recurrence::every(interval, expiry.map(t)).unwrap();
        let now = scheduled + down;
        let res = r.resume(t(scheduled), t(now));
        let owed = expiry.is_none_or(|e| scheduled <= e);
        let mut missed = 0;
        let mut k = scheduled + interval;
        while k <= now && expiry.is_none_or(|e| k <= e) {
            missed += 1;
            k += interval;
        }
        let expected = if !owed {
            Resume { missed: 0, missed_is_exact: true, fire_now: false, next: None }
        } else {
            Resume {
                missed,
                missed_is_exact: true,
                fire_now: true,
                next: Some(t(now + interval)).filter(|&n| expiry.is_none_or(|e| n <= t(e))),
            }
        };
        prop_assert_eq!(res, expected);
        // Not yet due: untouched.
        let early = r.resume(t(now + 1), t(now));
        prop_assert_eq!(early.fire_now, false);
        prop_assert_eq!(early.missed, 0);
        prop_assert_eq!(early.next, Some(t(now + 1)).filter(|_| expiry.is_none_or(|e| now < e)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn cron_next_is_the_first_matching_first_pass_after(
        case in 0..CRON_CASES.len(),
        (tz, after) in zone_and_tick(),
    ) {
        let (expr, step) = CRON_CASES[case];
        let schedule = cron::Schedule::from_str(expr).unwrap();
        let r = cron(expr, tz);
        let next = r.next_after(after);
        if let Some(n) = next {
            prop_assert!(n > after, "{expr} in {tz}: {n:?} <= {after:?}");
            prop_assert_eq!(n.as_millis() % 1000, 0);
            let dt = tz.timestamp_millis_opt(i64::try_from(n.as_millis()).unwrap()).unwrap();
            prop_assert!(schedule.includes(dt), "{expr} in {tz}: {dt} does not match");
            prop_assert_eq!(tz.from_local_datetime(&dt.naive_local()).earliest(), Some(dt));
            // Nothing between `after` and `n`: asking from any point in
            // between, including the millisecond before, gives `n` again.
            prop_assert_eq!(r.next_after(n.saturating_sub_millis(1)), Some(n));
            let mid = t(after.as_millis() + (n.as_millis() - after.as_millis()) / 2);
            prop_assert_eq!(r.next_after(mid), Some(n));
        }
        match brute_force_next(&schedule, tz, after, step, 20_000) {
            Ok(expected) => prop_assert_eq!(next, expected, "{} in {}", expr, tz),
            Err(()) => prop_assert!(
                next.is_none_or(|n| n.as_millis() / 1000 > after.as_millis() / 1000 + 20_000 * step),
                "{expr} in {tz}: brute force found nothing up to {next:?}"
            ),
        }
    }

    #[test]
    fn cron_runs_increase_and_respect_the_expiry(
        case in 0..CRON_CASES.len(),
        (tz, after) in zone_and_tick(),
        horizon in 0..400 * 86_400_000u64,
    ) {
        let (expr, _) = CRON_CASES[case];
        let expires_at = after.saturating_add_millis(horizon);
        let bounded = Recurrence::cron(expr, tz, Some(expires_at)).unwrap();
        let unbounded = cron(expr, tz);
        let mut prev = after;
        for next in runs(&bounded, after, 30) {
            prop_assert!(next > prev);
            prop_assert!(next <= expires_at);
            prop_assert_eq!(unbounded.next_after(prev), Some(next));
            prev = next;
        }
        let after_last = unbounded.next_after(prev);
        prop_assert_eq!(
            bounded.next_after(prev),
            after_last.filter(|&n| n <= expires_at)
        );
    }

    #[test]
    fn cron_resume_agrees_with_next_after(
        case in 0..CRON_CASES.len(),
        (tz, scheduled) in zone_and_tick(),
        down in prop_oneof![0..3_600_000u64, 0..40 * 86_400_000u64],
    ) {
        let (expr, _) = CRON_CASES[case];
        let r = cron(expr, tz);
        let now = scheduled.saturating_add_millis(down);
        let res = r.resume(scheduled, now);
        prop_assert!(res.fire_now);
        prop_assert_eq!(res.next, r.next_after(now));
        let mut missed = 0;
        let mut cursor = scheduled;
        while missed <= Resume::CRON_MISSED_CAP {
            match r.next_after(cursor) {
                Some(n) if n <= now => { missed += 1; cursor = n; }
                _ => break,
            }
        }
        prop_assert_eq!(res.missed, missed.min(Resume::CRON_MISSED_CAP));
        prop_assert_eq!(res.missed_is_exact, missed <= Resume::CRON_MISSED_CAP);
    }
}
