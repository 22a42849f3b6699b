//! A model-based property test of the push pipeline: random outcomes per
//! token and per attempt, random clock steps, an optional cancel; checked
//! against what the gateway saw. Every notification ends in exactly one
//! final outcome, none is attempted after a final outcome, after its time
//! to live or after a cancel, and the counters add up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::{
    Clock, DeliveryOptions, Engine, ManualClock, Notification, Outcome, PublishOptions,
    PublishStatus, PushBroadcast, PushFuture, PushTransport, RecordingTransport, RetryPolicy,
};
use herald_core::Tick;
use proptest::prelude::*;
use serde_json::json;

const T0: u64 = 1_800_000_000_000;

/// A recording gateway that also notes the clock at each attempt.
#[derive(Debug, Clone)]
struct Timed {
    inner: RecordingTransport,
    clock: ManualClock,
    log: Arc<Mutex<Vec<(String, Tick, Outcome)>>>,
}

impl PushTransport for Timed {
    fn name(&self) -> &str {
        "model"
    }
    fn send<'a>(&'a self, batch: &'a [Notification]) -> PushFuture<'a> {
        Box::pin(async move {
            let now = self.clock.now();
            let d = self.inner.send(batch).await;
            let mut log = self.log.lock().unwrap();
            for (n, o) in batch.iter().zip(&d.outcomes) {
                log.push((n.device_token.clone(), now, o.clone()));
            }
            d
        })
    }
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        3 => Just(Outcome::Sent),
        1 => Just(Outcome::Failed { reason: "x".into() }),
        1 => Just(Outcome::InvalidToken { at: None }),
        3 => Just(Outcome::Retry { after: None }),
        2 => (1u64..90).prop_map(|s| Outcome::Retry { after: Some(Duration::from_secs(s)) }),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    scripts: Vec<Vec<Outcome>>,
    ttl_s: u64,
    steps: Vec<u64>,
    cancel_after: Option<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(prop::collection::vec(outcome(), 0..6), 1..20),
        1u64..200,
        prop::collection::vec(1u64..40_000, 1..25),
        prop::option::of(0usize..25),
    )
        .prop_map(|(scripts, ttl_s, steps, cancel_after)| Case {
            scripts,
            ttl_s,
            steps,
            cancel_after,
        })
}

fn is_final(o: &Outcome) -> bool {
    !matches!(o, Outcome::Retry { .. })
}

fn run(case: Case) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let clock = ManualClock::new(Tick::from_millis(T0));
        let gw = Timed {
            inner: RecordingTransport::new("model"),
            clock: clock.clone(),
            log: Arc::default(),
        };
        let engine = Engine::builder()
            .clock(clock.clone())
            .push_gateway(PushBroadcast::ALL, gw.clone())
            .push_retry_policy(RetryPolicy { base: Duration::from_secs(1), cap: Duration::from_secs(30) })
            .build();
        for (i, script) in case.scripts.iter().enumerate() {
            engine
                .register_device(&json!({"deviceId": format!("d{i:02}"), "deviceToken": format!("t{i:02}"), "os": "ANDROID"}))
                .await
                .unwrap();
            gw.inner.script(&format!("t{i:02}"), script.iter().cloned());
        }
        // Repeating (hourly), so it can be cancelled while its push runs.
        let delivery = DeliveryOptions::from_json(&json!({
            "publishPolicy": "PUSH", "repeatEvery": 3600, "pushTimeToLive": case.ttl_s,
        }))
        .unwrap();
        let id = engine
            .publish("default", "m".into(), PublishOptions::default(), delivery)
            .await
            .unwrap()
            .message_id;
        engine.settle().await;
        let mut cancelled_at = None;
        for (k, step) in case.steps.iter().enumerate() {
            if case.cancel_after == Some(k) {
                engine.cancel(&id).await.unwrap();
                cancelled_at = Some(clock.now());
            }
            // Stay within the first hour: one run only.
            if clock.now().as_millis() + step < T0 + 3_000_000 {
                clock.advance(Duration::from_millis(*step));
            }
            engine.settle().await;
        }
        // Let every retry reach its end (the TTL is at most 200 s).
        if cancelled_at.is_none() {
            clock.set(Tick::from_millis(T0 + 3_000_000));
            engine.settle().await;
        }
        let status = engine.message_status(&id).await.unwrap();
        let c = status.deliveries;
        let log = gw.log.lock().unwrap().clone();
        engine.shutdown().await;

        let expires = Tick::from_millis(T0 + case.ttl_s * 1000);
        let mut by_token: HashMap<String, Vec<(Tick, Outcome)>> = HashMap::new();
        for (t, at, o) in log {
            prop_assert!(at < expires, "{t} attempted at {at:?}, after its TTL");
            if let Some(c) = cancelled_at {
                prop_assert!(at <= c, "{t} attempted after the cancel");
            }
            by_token.entry(t).or_default().push((at, o));
        }
        let n = case.scripts.len() as u64;
        prop_assert_eq!(c.push_queued, n, "every device was handed out once");
        prop_assert_eq!(c.push_pending(), 0, "every notification has a final outcome");
        prop_assert_eq!(
            c.push_sent + c.push_failed + c.push_invalid_tokens + c.push_expired,
            n,
            "the counters add up"
        );
        let (mut sent, mut failed, mut invalid) = (0, 0, 0);
        for attempts in by_token.values() {
            let finals: Vec<_> = attempts.iter().filter(|(_, o)| is_final(o)).collect();
            prop_assert!(finals.len() <= 1, "nothing after a final outcome: {attempts:?}");
            if let Some((_, o)) = finals.first() {
                prop_assert!(is_final(&attempts.last().unwrap().1), "the final outcome is the last");
                match o {
                    Outcome::Sent => sent += 1,
                    Outcome::Failed { .. } => failed += 1,
                    Outcome::InvalidToken { .. } => invalid += 1,
                    Outcome::Retry { .. } => unreachable!(),
                }
            }
        }
        prop_assert_eq!(c.push_sent, sent);
        prop_assert_eq!(c.push_invalid_tokens, invalid);
        if cancelled_at.is_none() {
            prop_assert_eq!(c.push_failed, failed);
            prop_assert_eq!(c.push_expired, n - sent - failed - invalid, "the rest ran out of time");
            prop_assert_eq!(status.status, PublishStatus::Scheduled);
        } else {
            // Retries stopped by the cancel count as failed.
            prop_assert_eq!(c.push_failed + c.push_expired, n - sent - invalid);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn the_pipeline_matches_its_model(c in case()) {
        run(c)?;
    }
}
