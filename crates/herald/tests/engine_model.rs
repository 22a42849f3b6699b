//! Model-based property test of the engine: random publishes (immediate,
//! delayed, repeating with and without expiry), cancels and clock jumps on a
//! `ManualClock`, checked after every step against a plain model of what the
//! contract says must have been delivered (every run under the publish's id,
//! at the time the driver fired it) and what every status must be.
//!
//! `PROPTEST_CASES` sets the number of cases (default 64).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta};
use herald::{
    DeliveryOptions, Engine, InboxLimits, ManualClock, PublishOptions, PublishStatus, Subscription,
};
use herald_core::Tick;
use proptest::prelude::*;

const T0: u64 = 1_800_000_000_000;

#[derive(Clone, Debug)]
enum Op {
    /// `delay_ms == 0` and no repeat: immediate. `repeat`: (every s, runs
    /// before expiry; `None` runs = no expiry).
    Publish {
        channel: usize,
        delay_ms: u64,
        repeat: Option<(u64, Option<u64>)>,
    },
    Cancel(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, prop_oneof![Just(0u64), 1..4_000u64],
              proptest::option::weighted(0.5, (1..4u64, proptest::option::weighted(0.7, 0..5u64))))
            .prop_map(|(channel, delay_ms, repeat)| Op::Publish { channel, delay_ms, repeat }),
        2 => any::<usize>().prop_map(Op::Cancel),
        4 => prop_oneof![0..50u64, 50..1_500u64, 1_500..12_000u64].prop_map(Op::Advance),
    ]
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum State {
    Scheduled,
    Published,
    Cancelled,
}

#[derive(Debug)]
struct Model {
    id: String,
    channel: usize,
    due: u64,
    every_ms: Option<u64>,
    expires: Option<u64>,
    state: State,
    runs: Vec<u64>,
}

impl Model {
    /// What the driver does at `now`: one run for whatever is due (missed
    /// periods collapse into it), then the next run on the rule's grid, or
    /// after `now` if the grid point has passed.
    fn fire_due(&mut self, now: u64) {
        if self.state != State::Scheduled || self.due > now {
            return;
        }
        self.runs.push(now);
        let Some(every) = self.every_ms else {
            self.state = State::Published;
            return;
        };
        let mut next = self.due + every;
        if next <= now {
            next = now + every;
        }
        if self.expires.is_some_and(|e| next > e) {
            self.state = State::Published;
        } else {
            self.due = next;
        }
    }

    fn status(&self) -> PublishStatus {
        match self.state {
            State::Scheduled => PublishStatus::Scheduled,
            State::Published => PublishStatus::Published,
            State::Cancelled => PublishStatus::Cancelled,
        }
    }
}

fn drain(sub: &mut Subscription, got: &mut HashMap<String, Vec<u64>>) {
    while let Some(item) = sub.try_recv() {
        let m = item.expect("capacity is large enough that nothing lags");
        got.entry(m.message_id().to_string())
            .or_default()
            .push(m.timestamp_millis());
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(Tick::from_millis(T0));
    let engine = Engine::builder()
        .clock(clock.clone())
        .subscription_limits(InboxLimits {
            max_messages: 1 << 16,
            max_bytes: 1 << 30,
            ..InboxLimits::default()
        })
        .build();
    let channels = ["a", "b"];
    let mut subs: Vec<Subscription> = channels
        .iter()
        .map(|c| engine.subscribe(c, None).unwrap())
        .collect();
    let mut model: Vec<Model> = Vec::new();
    let mut got: HashMap<String, Vec<u64>> = HashMap::new();
    let mut now = T0;

    for op in ops {
        match op {
            Op::Publish {
                channel,
                delay_ms,
                repeat,
            } => {
                let start = now + delay_ms;
                let delivery = DeliveryOptions {
                    publish_at: (delay_ms > 0)
                        .then(|| DateTime::from_timestamp_millis(start as i64).unwrap()),
                    repeat_every: repeat.map(|(s, _)| TimeDelta::seconds(s as i64)),
                    repeat_expires_at: repeat
                        .and_then(|(s, runs)| runs.map(|r| start + s * 1_000 * r))
                        .map(|e| DateTime::from_timestamp_millis(e as i64).unwrap()),
                    ..DeliveryOptions::default()
                };
                let status = engine
                    .publish(
                        channels[channel],
                        serde_json::json!(model.len()).into(),
                        PublishOptions::default(),
                        delivery,
                    )
                    .await
                    .expect("valid publish");
                let immediate = delay_ms == 0 && repeat.is_none();
                prop_assert_eq!(
                    status.status,
                    if immediate {
                        PublishStatus::Published
                    } else {
                        PublishStatus::Scheduled
                    }
                );
                let mut m = Model {
                    id: status.message_id,
                    channel,
                    due: start,
                    every_ms: repeat.map(|(s, _)| s * 1_000),
                    expires: repeat.and_then(|(s, runs)| runs.map(|r| start + s * 1_000 * r)),
                    state: State::Scheduled,
                    runs: Vec::new(),
                };
                if immediate {
                    m.runs.push(now);
                    m.state = State::Published;
                }
                model.push(m);
            }
            Op::Cancel(i) if !model.is_empty() => {
                let n = model.len();
                let m = &mut model[i % n];
                let result = engine.cancel(&m.id).await;
                if m.state == State::Scheduled {
                    let s = result.expect("a scheduled message is cancellable");
                    prop_assert_eq!(s.status, PublishStatus::Cancelled);
                    m.state = State::Cancelled;
                } else {
                    prop_assert_eq!(
                        result
                            .expect_err("finished messages are not cancellable")
                            .code(),
                        5040
                    );
                }
            }
            Op::Cancel(_) => {}
            Op::Advance(ms) => {
                now += ms;
                clock.advance(Duration::from_millis(ms));
            }
        }
        engine.settle().await;
        for m in &mut model {
            m.fire_due(now);
        }
        for s in &mut subs {
            drain(s, &mut got);
        }
        for m in &model {
            let seen = got.get(&m.id).cloned().unwrap_or_default();
            prop_assert_eq!(&seen, &m.runs, "runs of {} (channel {})", m.id, m.channel);
        }
    }
    for m in &model {
        let s = engine.message_status(&m.id).await.unwrap();
        prop_assert_eq!(s.status, m.status(), "status of {}", m.id);
        prop_assert_eq!(s.deliveries.runs, m.runs.len() as u64);
        prop_assert_eq!(
            s.deliveries.pubsub,
            m.runs.len() as u64,
            "one subscriber per channel"
        );
    }
    prop_assert_eq!(
        engine.scheduled_len(),
        model.iter().filter(|m| m.state == State::Scheduled).count()
    );
    engine.shutdown().await;
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
