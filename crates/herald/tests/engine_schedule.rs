//! Delayed publish (`publishAt`) and calendar repetition (`repeatCron` with
//! `timeZone`), including daylight-saving changes.

mod common;

use chrono::{TimeZone, Utc};
use common::*;
use herald::{ManualClock, PublishStatus};
use serde_json::json;

#[tokio::test]
async fn delayed_publish_fires_at_its_exact_millisecond_and_not_before() {
    let (engine, clock) = engine();
    let mut subs: Vec<_> = (0..3)
        .map(|_| engine.subscribe("later", None).unwrap())
        .collect();
    let publish_at = T0 + 5_000;

    let status = publish_with(&engine, "later", json!("hello"), at(publish_at))
        .await
        .unwrap();
    assert_eq!(status.status, PublishStatus::Scheduled);
    assert_eq!(status.deliveries.runs, 0);
    assert_eq!(engine.scheduled_len(), 1);
    let id = status.message_id.clone();

    step_to(&engine, &clock, publish_at - 1).await;
    for sub in &mut subs {
        assert!(sub.try_recv().is_none(), "fired before publishAt");
    }
    assert_status(&engine, &id, PublishStatus::Scheduled, 0).await;

    step(&engine, &clock, 1).await;
    for sub in &mut subs {
        let got = drain(sub);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message_id().to_string(), id);
        assert_eq!(got[0].timestamp_millis(), publish_at);
        assert_eq!(got[0].message(), &json!("hello"));
        assert_eq!(
            got[0].publish_at().unwrap().timestamp_millis(),
            publish_at as i64
        );
    }
    let s = status_of(&engine, &id).await;
    assert_eq!(s.status, PublishStatus::Published);
    assert_eq!(s.deliveries.runs, 1);
    assert_eq!(s.deliveries.pubsub, 3);
    assert_eq!(engine.scheduled_len(), 0);

    // Nothing more, ever.
    step(&engine, &clock, 86_400_000).await;
    for sub in &mut subs {
        assert!(sub.try_recv().is_none());
    }
}

#[tokio::test]
async fn a_late_driver_delivers_a_delayed_message_once_at_the_late_time() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("later", None).unwrap();
    let status = publish_with(&engine, "later", json!(1), at(T0 + 1_000))
        .await
        .unwrap();
    step_to(&engine, &clock, T0 + 60_000).await;
    assert_eq!(drain_timestamps(&mut sub), [T0 + 60_000]);
    assert_status(&engine, &status.message_id, PublishStatus::Published, 1).await;
}

#[tokio::test]
async fn delayed_messages_fire_in_due_order_on_one_big_jump() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("q", None).unwrap();
    for (n, due) in [(3, 3_000), (1, 1_000), (2, 2_000), (4, 4_000)] {
        publish_with(&engine, "q", json!(n), at(T0 + due))
            .await
            .unwrap();
    }
    assert_eq!(engine.scheduled_len(), 4);
    step(&engine, &clock, 10_000).await;
    assert_eq!(
        drain_messages(&mut sub),
        [json!(1), json!(2), json!(3), json!(4)]
    );
    assert_eq!(engine.scheduled_len(), 0);
}

#[tokio::test]
async fn publish_at_exactly_now_publishes_immediately() {
    let (engine, _clock) = engine();
    let mut sub = engine.subscribe("now", None).unwrap();
    let status = publish_with(&engine, "now", json!(1), at(T0))
        .await
        .unwrap();
    assert_eq!(status.status, PublishStatus::Published);
    assert_eq!(drain_timestamps(&mut sub), [T0]);
}

#[tokio::test]
async fn publish_at_one_ms_ahead_is_scheduled() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("soon", None).unwrap();
    let status = publish_with(&engine, "soon", json!(1), at(T0 + 1))
        .await
        .unwrap();
    assert_eq!(status.status, PublishStatus::Scheduled);
    engine.settle().await;
    assert!(sub.try_recv().is_none());
    step(&engine, &clock, 1).await;
    assert_eq!(drain_timestamps(&mut sub), [T0 + 1]);
}

/// Steps `clock` in `step_ms` increments until `until` (inclusive), settling
/// after each, and returns the timestamps of every run `sub` received.
async fn run_until(
    engine: &herald::Engine,
    clock: &ManualClock,
    sub: &mut herald::Subscription,
    step_ms: u64,
    until: u64,
) -> Vec<u64> {
    let mut got = Vec::new();
    while now_ms(engine) + step_ms <= until {
        step(engine, clock, step_ms).await;
        let ts = drain_timestamps(sub);
        for &t in &ts {
            assert_eq!(
                t,
                now_ms(engine),
                "runs are delivered at the step they are due"
            );
        }
        got.extend(ts);
    }
    got
}

fn utc_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis() as u64
}

#[tokio::test]
async fn cron_in_berlin_skips_the_time_that_does_not_exist_on_spring_forward() {
    // 2026-03-29: Berlin clocks jump from 02:00 CET to 03:00 CEST.
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 3, 27, 12, 0, 0).unwrap());
    let engine = builder(&clock).build();
    let mut sub = engine.subscribe("cron", None).unwrap();
    let expires = utc_ms(2026, 3, 31, 12, 0);
    let status = publish_with(
        &engine,
        "cron",
        json!("nightly"),
        cron("0 30 2 * * *", Some("Europe/Berlin"), Some(expires)),
    )
    .await
    .unwrap();
    assert_eq!(status.status, PublishStatus::Scheduled);

    // Step 30 minutes at a time: every expected run lies on that grid.
    let runs = run_until(&engine, &clock, &mut sub, 30 * 60_000, expires).await;
    assert_eq!(
        runs,
        [
            utc_ms(2026, 3, 28, 1, 30), // 02:30 CET
            // 2026-03-29 02:30 does not exist in Berlin: skipped.
            utc_ms(2026, 3, 30, 0, 30), // 02:30 CEST
            utc_ms(2026, 3, 31, 0, 30), // 02:30 CEST
        ]
    );
    // The 2026-03-31 run was the last before the expiry.
    assert_status(&engine, &status.message_id, PublishStatus::Published, 3).await;
}

#[tokio::test]
async fn cron_in_berlin_keeps_nine_oclock_local_across_spring_forward() {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 3, 27, 12, 0, 0).unwrap());
    let engine = builder(&clock).build();
    let mut sub = engine.subscribe("cron", None).unwrap();
    let status = publish_with(
        &engine,
        "cron",
        json!("standup"),
        cron("0 0 9 * * *", Some("Europe/Berlin"), None),
    )
    .await
    .unwrap();

    let runs = run_until(
        &engine,
        &clock,
        &mut sub,
        30 * 60_000,
        utc_ms(2026, 3, 31, 12, 0),
    )
    .await;
    assert_eq!(
        runs,
        [
            utc_ms(2026, 3, 28, 8, 0), // 09:00 CET = 08:00 UTC
            utc_ms(2026, 3, 29, 7, 0), // 09:00 CEST = 07:00 UTC, the day of the change
            utc_ms(2026, 3, 30, 7, 0),
            utc_ms(2026, 3, 31, 7, 0),
        ]
    );
    // No expiry: it stays scheduled.
    assert_status(&engine, &status.message_id, PublishStatus::Scheduled, 4).await;
    assert_eq!(engine.scheduled_len(), 1);
}

#[tokio::test]
async fn cron_in_berlin_runs_a_repeated_wall_clock_time_once_on_fall_back() {
    // 2026-10-25: Berlin clocks go back from 03:00 CEST to 02:00 CET, so
    // 02:30 happens twice (00:30 and 01:30 UTC).
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap());
    let engine = builder(&clock).build();
    let mut sub = engine.subscribe("cron", None).unwrap();
    publish_with(
        &engine,
        "cron",
        json!("nightly"),
        cron("0 30 2 * * *", Some("Europe/Berlin"), None),
    )
    .await
    .unwrap();
    let runs = run_until(
        &engine,
        &clock,
        &mut sub,
        30 * 60_000,
        utc_ms(2026, 10, 26, 12, 0),
    )
    .await;
    assert_eq!(
        runs,
        [
            utc_ms(2026, 10, 25, 0, 30), // 02:30 CEST, the first pass only
            utc_ms(2026, 10, 26, 1, 30), // 02:30 CET
        ]
    );
}

#[tokio::test]
async fn cron_without_time_zone_is_utc() {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 3, 27, 12, 0, 0).unwrap());
    let engine = builder(&clock).build();
    let mut sub = engine.subscribe("cron", None).unwrap();
    publish_with(&engine, "cron", json!(1), cron("0 0 9 * * *", None, None))
        .await
        .unwrap();
    let runs = run_until(
        &engine,
        &clock,
        &mut sub,
        30 * 60_000,
        utc_ms(2026, 3, 30, 0, 0),
    )
    .await;
    assert_eq!(runs, [utc_ms(2026, 3, 28, 9, 0), utc_ms(2026, 3, 29, 9, 0)]);
}

#[tokio::test]
async fn cron_with_publish_at_starts_at_the_first_occurrence_at_or_after_it() {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap());
    let engine = builder(&clock).build();
    let mut sub = engine.subscribe("cron", None).unwrap();
    // Every full minute; publishAt exactly on one (00:10:00) is its first run.
    let mut delivery = cron("0 * * * * *", None, Some(utc_ms(2026, 6, 1, 0, 12)));
    delivery.publish_at = Some(utc(utc_ms(2026, 6, 1, 0, 10)));
    let status = publish_with(&engine, "cron", json!(1), delivery)
        .await
        .unwrap();
    let runs = run_until(&engine, &clock, &mut sub, 60_000, utc_ms(2026, 6, 1, 1, 0)).await;
    assert_eq!(
        runs,
        [
            utc_ms(2026, 6, 1, 0, 10),
            utc_ms(2026, 6, 1, 0, 11),
            utc_ms(2026, 6, 1, 0, 12), // at the expiry: still runs
        ]
    );
    assert_status(&engine, &status.message_id, PublishStatus::Published, 3).await;
}

#[tokio::test]
async fn every_cron_run_has_the_same_id_and_its_own_timestamp() {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap());
    let engine = builder(&clock).build();
    let mut sub = engine.subscribe("cron", None).unwrap();
    let status = publish_with(
        &engine,
        "cron",
        json!(1),
        cron("*/10 * * * * *", None, None),
    )
    .await
    .unwrap();
    // The first occurrence at or after now is now itself.
    engine.settle().await;
    let mut got = drain(&mut sub);
    for _ in 0..6 {
        step(&engine, &clock, 5_000).await;
        got.extend(drain(&mut sub));
    }
    let ts: Vec<u64> = got.iter().map(|m| m.timestamp_millis()).collect();
    let start = utc_ms(2026, 6, 1, 0, 0);
    assert_eq!(ts, [start, start + 10_000, start + 20_000, start + 30_000]);
    assert!(
        got.iter()
            .all(|m| m.message_id().to_string() == status.message_id)
    );
}

#[tokio::test]
async fn delayed_messages_due_in_the_same_millisecond_fire_in_publish_order() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("q", None).unwrap();
    engine.settle().await; // the driver is up and has loaded the (empty) store
    for n in 0..20 {
        publish_with(&engine, "q", json!(n), at(T0 + 1_000))
            .await
            .unwrap();
    }
    step(&engine, &clock, 1_000).await;
    assert_eq!(
        drain_messages(&mut sub),
        (0..20).map(|n| json!(n)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn delayed_messages_published_right_after_build_keep_publish_order() {
    // Published before the driver's first poll, i.e. while it is still to
    // reload the store at start-up.
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("q", None).unwrap();
    for n in 0..20 {
        publish_with(&engine, "q", json!(n), at(T0 + 1_000))
            .await
            .unwrap();
    }
    step(&engine, &clock, 1_000).await;
    assert_eq!(
        drain_messages(&mut sub),
        (0..20).map(|n| json!(n)).collect::<Vec<_>>()
    );
}
