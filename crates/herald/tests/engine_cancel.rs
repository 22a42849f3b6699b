//! Cancel: between runs, in the very millisecond of a run, of delayed
//! messages, twice, of unknown ids, of finished messages, and concurrently
//! with the driver.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use herald::{Engine, InboxLimits, PublishStatus};
use serde_json::json;

#[tokio::test]
async fn cancel_between_runs_stops_a_repeating_message() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("tick", None).unwrap();
    let status = publish_with(&engine, "tick", json!(1), every(1, Some(T0 + 1_000), None))
        .await
        .unwrap();
    let id = status.message_id;
    for _ in 0..3 {
        step(&engine, &clock, 1_000).await;
    }
    assert_eq!(drain(&mut sub).len(), 3);

    step(&engine, &clock, 500).await; // between runs
    let cancelled = engine.cancel(&id).await.unwrap();
    assert_eq!(cancelled.message_id, id);
    assert_eq!(cancelled.status, PublishStatus::Cancelled);
    assert_eq!(cancelled.deliveries.runs, 3);
    assert_eq!(engine.scheduled_len(), 0);

    for _ in 0..100 {
        step(&engine, &clock, 1_000).await;
    }
    step(&engine, &clock, 86_400_000).await;
    assert!(sub.try_recv().is_none(), "no run after cancel");
    assert_status(&engine, &id, PublishStatus::Cancelled, 3).await;
}

#[tokio::test]
async fn cancel_in_the_same_millisecond_as_the_run_wins() {
    // Current-thread runtime: after `set`, the driver cannot run before the
    // cancel (the in-memory store never yields), so the run is due but not
    // yet fired when the cancel arrives.
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("once", None).unwrap();
    let t = T0 + 1_000;
    let status = publish_with(&engine, "once", json!(1), at(t))
        .await
        .unwrap();
    engine.settle().await;

    clock.set(herald_core::Tick::from_millis(t));
    let cancelled = engine.cancel(&status.message_id).await.unwrap();
    assert_eq!(cancelled.status, PublishStatus::Cancelled);
    engine.settle().await;
    assert!(
        sub.try_recv().is_none(),
        "a cancelled run is never delivered"
    );
    assert_status(&engine, &status.message_id, PublishStatus::Cancelled, 0).await;
    step(&engine, &clock, 10_000).await;
    assert!(sub.try_recv().is_none());
}

#[tokio::test]
async fn cancel_in_the_same_millisecond_as_a_repetition_wins() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("tick", None).unwrap();
    let status = publish_with(&engine, "tick", json!(1), every(1, Some(T0 + 1_000), None))
        .await
        .unwrap();
    step(&engine, &clock, 1_000).await;
    assert_eq!(drain(&mut sub).len(), 1);

    clock.advance(Duration::from_millis(1_000)); // the second run is due now
    engine.cancel(&status.message_id).await.unwrap();
    engine.settle().await;
    assert!(sub.try_recv().is_none());
    assert_status(&engine, &status.message_id, PublishStatus::Cancelled, 1).await;
}

#[tokio::test]
async fn cancel_of_a_delayed_message() {
    let (engine, clock) = engine();
    let mut sub = engine.subscribe("later", None).unwrap();
    let status = publish_with(&engine, "later", json!(1), at(T0 + 60_000))
        .await
        .unwrap();
    let other = publish_with(&engine, "later", json!(2), at(T0 + 60_000))
        .await
        .unwrap();
    assert_eq!(engine.scheduled_len(), 2);

    step(&engine, &clock, 30_000).await;
    let c = engine.cancel(&status.message_id).await.unwrap();
    assert_eq!(c.status, PublishStatus::Cancelled);
    assert_eq!(c.deliveries.runs, 0);
    assert_eq!(engine.scheduled_len(), 1);

    step(&engine, &clock, 30_000).await;
    assert_eq!(
        drain_messages(&mut sub),
        [json!(2)],
        "only the other message fires"
    );
    assert_status(&engine, &status.message_id, PublishStatus::Cancelled, 0).await;
    assert_status(&engine, &other.message_id, PublishStatus::Published, 1).await;
}

#[tokio::test]
async fn cancel_twice_is_5040() {
    let (engine, _clock) = engine();
    let status = publish_with(&engine, "later", json!(1), at(T0 + 60_000))
        .await
        .unwrap();
    engine.cancel(&status.message_id).await.unwrap();
    let err = engine.cancel(&status.message_id).await.unwrap_err();
    assert_error(&err, 5040, MSG_5040);
    assert_status(&engine, &status.message_id, PublishStatus::Cancelled, 0).await;
}

#[tokio::test]
async fn cancel_of_unknown_or_garbage_ids_is_5040() {
    let (engine, _clock) = engine();
    for id in [
        UNKNOWN_ID,
        "nope",
        "",
        "0190B2E4-5A1C-7D3E-8F00-1234567890AZ",
    ] {
        let err = engine.cancel(id).await.unwrap_err();
        assert_error(&err, 5040, MSG_5040);
    }
}

#[tokio::test]
async fn cancel_of_a_published_message_is_5040() {
    let (engine, clock) = engine();
    let now = publish_now(&engine, "ch", json!(1)).await;
    let err = engine.cancel(&now.message_id).await.unwrap_err();
    assert_error(&err, 5040, MSG_5040);
    assert_status(&engine, &now.message_id, PublishStatus::Published, 1).await;

    let delayed = publish_with(&engine, "ch", json!(2), at(T0 + 1_000))
        .await
        .unwrap();
    step(&engine, &clock, 1_000).await;
    assert_status(&engine, &delayed.message_id, PublishStatus::Published, 1).await;
    let err = engine.cancel(&delayed.message_id).await.unwrap_err();
    assert_error(&err, 5040, MSG_5040);
    assert_status(&engine, &delayed.message_id, PublishStatus::Published, 1).await;

    let repeat = publish_with(&engine, "ch", json!(3), every(1, None, Some(T0 + 3_000)))
        .await
        .unwrap();
    for _ in 0..5 {
        step(&engine, &clock, 1_000).await;
    }
    assert_status(&engine, &repeat.message_id, PublishStatus::Published, 2).await;
    assert_eq!(
        engine.cancel(&repeat.message_id).await.unwrap_err().code(),
        5040
    );
}

/// Cancels race the driver firing the same runs: every one-off message is
/// either cancelled (and never delivered) or not cancellable (and delivered
/// exactly once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_racing_the_driver_is_all_or_nothing() {
    const N: usize = 2_000;
    let clock = clock();
    let engine = builder(&clock)
        .subscription_limits(InboxLimits::messages(N))
        .build();
    let mut sub = engine.subscribe("race", None).unwrap();
    let t = T0 + 1_000;
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let s = publish_with(&engine, "race", json!(i), at(t))
            .await
            .unwrap();
        ids.push(s.message_id);
    }
    engine.settle().await;

    let canceller = {
        let engine = engine.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            let mut cancelled = HashSet::new();
            for id in ids.iter().rev() {
                match engine.cancel(id).await {
                    Ok(s) => {
                        assert_eq!(s.status, PublishStatus::Cancelled);
                        cancelled.insert(id.clone());
                    }
                    Err(e) => assert_eq!(e.code(), 5040),
                }
            }
            cancelled
        })
    };
    clock.set(herald_core::Tick::from_millis(t));
    engine.settle().await;
    let cancelled = canceller.await.unwrap();
    engine.settle().await;

    let delivered: Vec<String> = drain(&mut sub)
        .iter()
        .map(|m| m.message_id().to_string())
        .collect();
    let delivered_set: HashSet<String> = delivered.iter().cloned().collect();
    assert_eq!(
        delivered.len(),
        delivered_set.len(),
        "delivered at most once"
    );
    for id in &ids {
        let s = status_of(&engine, id).await;
        if cancelled.contains(id) {
            assert!(
                !delivered_set.contains(id),
                "{id} was cancelled but delivered"
            );
            assert_eq!(s.status, PublishStatus::Cancelled);
        } else {
            assert!(
                delivered_set.contains(id),
                "{id} was neither cancelled nor delivered"
            );
            assert_eq!(s.status, PublishStatus::Published);
        }
    }
    assert_eq!(engine.scheduled_len(), 0);
}

/// Repeating messages cancelled while the driver keeps firing them: once
/// `cancel` has returned, no further run of that message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_run_after_cancel_returns_while_the_driver_is_busy() {
    const N: usize = 500;
    let clock = clock();
    let engine = builder(&clock)
        .subscription_limits(InboxLimits::messages(100_000))
        .build();
    let mut sub = engine.subscribe("race", None).unwrap();
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let s = publish_with(&engine, "race", json!(i), every(1, Some(T0 + 1_000), None))
            .await
            .unwrap();
        ids.push(s.message_id);
    }
    // Start-up over (the store reloaded): this is about the steady state.
    // Cancels during the reload are `engine_shutdown`'s
    // `a_cancel_during_start_up_is_not_undone_by_the_reload`.
    engine.settle().await;

    let ticker = {
        let (engine, clock) = (engine.clone(), clock.clone());
        tokio::spawn(async move {
            for _ in 0..20 {
                step(&engine, &clock, 1_000).await;
            }
        })
    };
    // Cancel everything while the ticker runs. After each cancel returns,
    // note how many runs of that message have arrived: that must be final.
    let mut received = std::collections::HashMap::<String, u64>::new();
    let mut seen_at_cancel = Vec::with_capacity(N);
    for id in &ids {
        tokio::task::yield_now().await;
        let s = engine
            .cancel(id)
            .await
            .expect("a repeating message is always cancellable");
        assert_eq!(s.status, PublishStatus::Cancelled);
        for m in drain(&mut sub) {
            *received.entry(m.message_id().to_string()).or_default() += 1;
        }
        seen_at_cancel.push(received.get(id).copied().unwrap_or(0));
    }
    ticker.await.unwrap();
    step(&engine, &clock, 60_000).await;
    for m in drain(&mut sub) {
        *received.entry(m.message_id().to_string()).or_default() += 1;
    }

    for (id, at_cancel) in ids.iter().zip(seen_at_cancel) {
        let got = received.get(id).copied().unwrap_or(0);
        assert_eq!(got, at_cancel, "{id}: a run arrived after cancel returned");
        let s = status_of(&engine, id).await;
        assert_eq!(s.status, PublishStatus::Cancelled);
        assert_eq!(
            s.deliveries.runs, got,
            "{id}: runs counted vs runs delivered"
        );
    }
    assert_eq!(engine.scheduled_len(), 0);
}

#[tokio::test]
async fn cancelled_status_survives_more_traffic() {
    let (engine, clock): (Engine, _) = engine();
    let s = publish_with(&engine, "ch", json!(1), at(T0 + 5_000))
        .await
        .unwrap();
    engine.cancel(&s.message_id).await.unwrap();
    for i in 0..100 {
        publish_now(&engine, "ch", json!(i)).await;
    }
    step(&engine, &clock, 10_000).await;
    assert_status(&engine, &s.message_id, PublishStatus::Cancelled, 0).await;
}
