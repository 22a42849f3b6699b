//! `repeatEvery`: run counts up to and including `repeatExpiresAt`, one id
//! for every run, statuses and counters along the way, and what happens
//! when the driver runs late (missed runs collapse into one run).

mod common;

use common::*;
use herald::PublishStatus;
use serde_json::json;

#[tokio::test]
async fn every_second_until_expiry_inclusive_gives_eleven_runs_under_one_id() {
    let (engine, clock) = engine();
    let mut a = engine.subscribe("tick", None).unwrap();
    let mut b = engine.subscribe("tick", None).unwrap();
    let t = T0 + 1_000;
    let status = publish_with(
        &engine,
        "tick",
        json!("beat"),
        every(1, Some(t), Some(t + 10_000)),
    )
    .await
    .unwrap();
    assert_eq!(status.status, PublishStatus::Scheduled);
    let id = status.message_id.clone();

    let mut timestamps = Vec::new();
    for run in 1..=11u64 {
        // Half a second before the run: nothing.
        step(&engine, &clock, 500).await;
        assert!(a.try_recv().is_none(), "run {run} fired early");
        step(&engine, &clock, 500).await;
        let got = drain(&mut a);
        assert_eq!(got.len(), 1, "run {run}");
        assert_eq!(
            got[0].message_id().to_string(),
            id,
            "every run has the same id"
        );
        assert_eq!(
            got[0].timestamp_millis(),
            now_ms(&engine),
            "a fresh timestamp per run"
        );
        assert_eq!(got[0].message(), &json!("beat"));
        timestamps.push(got[0].timestamp_millis());
        assert_eq!(drain(&mut b).len(), 1);

        let s = status_of(&engine, &id).await;
        assert_eq!(s.deliveries.runs, run);
        assert_eq!(s.deliveries.pubsub, 2 * run);
        let want = if run < 11 {
            PublishStatus::Scheduled
        } else {
            PublishStatus::Published
        };
        assert_eq!(s.status, want, "after run {run}");
    }
    assert_eq!(
        timestamps,
        (0..=10).map(|k| t + k * 1_000).collect::<Vec<_>>()
    );
    assert_eq!(engine.scheduled_len(), 0);

    step(&engine, &clock, 3_600_000).await;
    assert!(a.try_recv().is_none(), "no run after the expiry");
    assert_status(&engine, &id, PublishStatus::Published, 11).await;
}

#[tokio::test]
async fn a_late_wakeup_does_not_shift_the_schedule() {
    // The interval is measured from the previous *scheduled* run, so a
    // driver that wakes 1 ms late (as a real timer does) must not push the
    // following runs back (herald-core `Recurrence` docs: "so the schedule
    // does not drift").
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("tick", None).unwrap();
    let t = T0 + 1_000;
    let status = publish_with(
        &engine,
        "tick",
        json!(1),
        every(1, Some(t), Some(t + 3_000)),
    )
    .await
    .unwrap();

    step_to(&engine, &clock, t + 1).await; // 1 ms late
    assert_eq!(drain_timestamps(&mut sub), [t + 1]);
    step_to(&engine, &clock, t + 1_000).await;
    assert_eq!(
        drain_timestamps(&mut sub),
        [t + 1_000],
        "second run on the original grid"
    );
    step_to(&engine, &clock, t + 2_000).await;
    step_to(&engine, &clock, t + 3_000).await;
    assert_eq!(drain_timestamps(&mut sub), [t + 2_000, t + 3_000]);
    assert_status(&engine, &status.message_id, PublishStatus::Published, 4).await;
}

/// Observed behaviour (herald-core's `Recurrence::resume` contract): when
/// the clock jumps over several due runs, they collapse into ONE run at the
/// late time, and the schedule is re-anchored at that time (the next run is
/// one period after it, not on the original grid).
#[tokio::test]
async fn one_big_jump_collapses_missed_runs_into_one_and_re_anchors() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("tick", None).unwrap();
    let t = T0 + 1_000;
    let status = publish_with(
        &engine,
        "tick",
        json!(1),
        every(1, Some(t), Some(t + 10_000)),
    )
    .await
    .unwrap();
    let id = status.message_id;

    step_to(&engine, &clock, t).await;
    assert_eq!(drain_timestamps(&mut sub), [t]);

    // Runs due at t+1s ..= t+5s are all missed: one run now.
    step_to(&engine, &clock, t + 5_500).await;
    assert_eq!(drain_timestamps(&mut sub), [t + 5_500]);
    assert_status(&engine, &id, PublishStatus::Scheduled, 2).await;

    // Re-anchored: nothing at t+6s, the next run is at t+6.5s.
    step_to(&engine, &clock, t + 6_000).await;
    assert!(sub.try_recv().is_none());
    let mut late = Vec::new();
    for ms in (6_500..=10_000).step_by(500) {
        step_to(&engine, &clock, t + ms).await;
        late.extend(drain_timestamps(&mut sub));
    }
    // t+10.5s would be past the expiry: t+9.5s was the last run.
    assert_eq!(late, [t + 6_500, t + 7_500, t + 8_500, t + 9_500]);
    assert_status(&engine, &id, PublishStatus::Published, 6).await;
}

#[tokio::test]
async fn a_jump_past_the_expiry_delivers_exactly_one_last_run() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("tick", None).unwrap();
    let t = T0 + 1_000;
    let status = publish_with(
        &engine,
        "tick",
        json!(1),
        every(1, Some(t), Some(t + 10_000)),
    )
    .await
    .unwrap();
    // Nothing fired yet; the clock jumps a minute past the whole schedule.
    step_to(&engine, &clock, t + 70_000).await;
    assert_eq!(drain_timestamps(&mut sub), [t + 70_000]);
    assert_status(&engine, &status.message_id, PublishStatus::Published, 1).await;
    assert_eq!(engine.scheduled_len(), 0);
    step(&engine, &clock, 60_000).await;
    assert!(sub.try_recv().is_none());
}

#[tokio::test]
async fn repeat_every_without_publish_at_runs_at_the_next_pass_then_every_period() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("tick", None).unwrap();
    let status = publish_with(&engine, "tick", json!(1), every(2, None, None))
        .await
        .unwrap();
    assert_eq!(
        status.status,
        PublishStatus::Scheduled,
        "a repeating publish answers scheduled"
    );

    engine.settle().await;
    assert_eq!(
        drain_timestamps(&mut sub),
        [T0],
        "first run without advancing the clock"
    );

    let mut got = Vec::new();
    for _ in 0..8 {
        step(&engine, &clock, 1_000).await;
        got.extend(drain_timestamps(&mut sub));
    }
    assert_eq!(got, [T0 + 2_000, T0 + 4_000, T0 + 6_000, T0 + 8_000]);
    // No expiry: scheduled forever.
    assert_status(&engine, &status.message_id, PublishStatus::Scheduled, 5).await;
    assert_eq!(engine.scheduled_len(), 1);
}

#[tokio::test]
async fn expiry_equal_to_publish_at_runs_once() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("tick", None).unwrap();
    let t = T0 + 1_000;
    let status = publish_with(&engine, "tick", json!(1), every(1, Some(t), Some(t)))
        .await
        .unwrap();
    assert_eq!(status.status, PublishStatus::Scheduled);
    step_to(&engine, &clock, t).await;
    assert_eq!(drain_timestamps(&mut sub), [t]);
    assert_status(&engine, &status.message_id, PublishStatus::Published, 1).await;
    step(&engine, &clock, 10_000).await;
    assert!(sub.try_recv().is_none());
}

#[tokio::test]
async fn expiry_between_runs_stops_after_the_last_run_before_it() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("tick", None).unwrap();
    let t = T0 + 1_000;
    // Every 3 s until t+10s: t, t+3, t+6, t+9.
    let status = publish_with(
        &engine,
        "tick",
        json!(1),
        every(3, Some(t), Some(t + 10_000)),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..15 {
        step(&engine, &clock, 1_000).await;
        got.extend(drain_timestamps(&mut sub));
    }
    assert_eq!(got, [t, t + 3_000, t + 6_000, t + 9_000]);
    assert_status(&engine, &status.message_id, PublishStatus::Published, 4).await;
}

#[tokio::test]
async fn a_subscriber_joining_mid_schedule_gets_only_later_runs() {
    let (engine, clock) = engine();
    let mut early = engine.subscribe("tick", None).unwrap();
    let status = publish_with(&engine, "tick", json!(1), every(1, Some(T0 + 1_000), None))
        .await
        .unwrap();
    step(&engine, &clock, 1_000).await;
    step(&engine, &clock, 1_000).await;
    let mut late = engine.subscribe("tick", None).unwrap();
    step(&engine, &clock, 1_000).await;
    assert_eq!(
        drain_timestamps(&mut early),
        [T0 + 1_000, T0 + 2_000, T0 + 3_000]
    );
    let got = drain(&mut late);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].timestamp_millis(), T0 + 3_000);
    assert_eq!(got[0].message_id().to_string(), status.message_id);
    let s = status_of(&engine, &status.message_id).await;
    assert_eq!((s.deliveries.runs, s.deliveries.pubsub), (3, 4));
}
