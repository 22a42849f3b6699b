//! Shared helpers for the engine scenario tests: a manual clock at a fixed
//! start, option builders, and draining subscriptions without waiting.
//!
//! Nothing here sleeps: time moves only through [`ManualClock`], and
//! [`Engine::settle`] waits until the driver has fired what is due.
#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use herald::{
    DeliveredMessage, DeliveryOptions, Engine, EngineBuilder, Error, ManualClock, MessageStatus,
    PublishOptions, PublishStatus, Subscription,
};
use herald_core::Tick;

mod gated;
#[allow(unused_imports)] // each test file uses a different subset
pub(crate) use gated::{Asked, GatedStore};

/// The tests' "now" at start: 2027-01-15T08:00:00Z, a round second.
pub(crate) const T0: u64 = 1_800_000_000_000;

/// A UTC time from epoch milliseconds.
pub(crate) fn utc(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(i64::try_from(ms).unwrap()).unwrap()
}

/// A manual clock showing [`T0`].
pub(crate) fn clock() -> ManualClock {
    ManualClock::new(Tick::from_millis(T0))
}

/// An engine on a manual clock at [`T0`], with default store and transport.
pub(crate) fn engine() -> (Engine, ManualClock) {
    let clock = clock();
    (Engine::builder().clock(clock.clone()).build(), clock)
}

/// A builder already on `clock`.
pub(crate) fn builder(clock: &ManualClock) -> EngineBuilder {
    Engine::builder().clock(clock.clone())
}

/// The engine clock's current time in ms.
pub(crate) fn now_ms(engine: &Engine) -> u64 {
    engine.clock().now().as_millis()
}

/// Moves the clock forward by `ms` and waits for the driver to fire what
/// is due.
pub(crate) async fn step(engine: &Engine, clock: &ManualClock, ms: u64) {
    clock.advance(Duration::from_millis(ms));
    engine.settle().await;
}

/// Sets the clock to `ms` and waits for the driver to fire what is due.
pub(crate) async fn step_to(engine: &Engine, clock: &ManualClock, ms: u64) {
    clock.set(Tick::from_millis(ms));
    engine.settle().await;
}

/// Delivery options for a one-off message at `publish_at` (epoch ms).
pub(crate) fn at(publish_at: u64) -> DeliveryOptions {
    DeliveryOptions {
        publish_at: Some(utc(publish_at)),
        ..DeliveryOptions::default()
    }
}

/// Delivery options repeating every `secs` seconds, optionally from
/// `publish_at` and until `expires` (epoch ms).
pub(crate) fn every(secs: i64, publish_at: Option<u64>, expires: Option<u64>) -> DeliveryOptions {
    DeliveryOptions {
        publish_at: publish_at.map(utc),
        repeat_every: Some(TimeDelta::seconds(secs)),
        repeat_expires_at: expires.map(utc),
        ..DeliveryOptions::default()
    }
}

/// Delivery options repeating on `cron` in `tz`, optionally until
/// `expires` (epoch ms).
pub(crate) fn cron(expr: &str, tz: Option<&str>, expires: Option<u64>) -> DeliveryOptions {
    DeliveryOptions {
        repeat_cron: Some(expr.to_owned()),
        time_zone: tz.map(str::to_owned),
        repeat_expires_at: expires.map(utc),
        ..DeliveryOptions::default()
    }
}

/// Publish options with these headers.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> PublishOptions {
    PublishOptions {
        headers: pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<BTreeMap<_, _>>(),
        ..PublishOptions::default()
    }
}

/// Publishes `message` with no options.
pub(crate) async fn publish_now(
    engine: &Engine,
    channel: &str,
    message: serde_json::Value,
) -> MessageStatus {
    engine
        .publish(
            channel,
            message.into(),
            PublishOptions::default(),
            DeliveryOptions::default(),
        )
        .await
        .expect("publish")
}

/// Publishes `message` with these delivery options.
pub(crate) async fn publish_with(
    engine: &Engine,
    channel: &str,
    message: serde_json::Value,
    delivery: DeliveryOptions,
) -> Result<MessageStatus, Error> {
    engine
        .publish(channel, message.into(), PublishOptions::default(), delivery)
        .await
}

/// Every run buffered in `sub` right now, without waiting; panics on a lag.
pub(crate) fn drain(sub: &mut Subscription) -> Vec<DeliveredMessage> {
    let mut out = Vec::new();
    while let Some(item) = sub.try_recv() {
        out.push(item.expect("subscription lagged"));
    }
    out
}

/// The timestamps of the runs buffered in `sub` right now.
pub(crate) fn drain_timestamps(sub: &mut Subscription) -> Vec<u64> {
    drain(sub)
        .iter()
        .map(DeliveredMessage::timestamp_millis)
        .collect()
}

/// The bodies of the runs buffered in `sub` right now.
pub(crate) fn drain_messages(sub: &mut Subscription) -> Vec<serde_json::Value> {
    drain(sub)
        .iter()
        .map(|m| m.message().to_value().expect("a JSON body"))
        .collect()
}

/// The status of `id`, which must be known to the store.
pub(crate) async fn status_of(engine: &Engine, id: &str) -> MessageStatus {
    engine.message_status(id).await.expect("message_status")
}

/// Asserts the status and run count of `id`.
pub(crate) async fn assert_status(engine: &Engine, id: &str, status: PublishStatus, runs: u64) {
    let s = status_of(engine, id).await;
    assert_eq!(
        (s.status, s.deliveries.runs),
        (status, runs),
        "status of {id}: {s:?}"
    );
}

/// Asserts that `err` has Backendless code `code` and exactly `message`.
#[track_caller]
/// `err` has `code` and Backendless's `message`, unchanged, followed by
/// the reason if it carries one.
pub(crate) fn assert_error(err: &Error, code: u32, message: &str) {
    assert_eq!(err.code(), code, "code of {err:?}");
    let expected = match err.reason() {
        Some(reason) => format!("{message} {reason}"),
        None => message.to_owned(),
    };
    assert_eq!(err.to_string(), expected, "message of {err:?}");
}

/// As [`assert_error`], for a validation error: it says what was wrong.
pub(crate) fn assert_invalid(err: &Error, code: u32, message: &str) {
    assert_error(err, code, message);
    assert_eq!(err.summary(), message);
    assert!(
        err.reason()
            .is_some_and(|r| r.len() > 10 && r.ends_with('.')),
        "{err:?} does not say why"
    );
}

pub(crate) const MSG_5003: &str = "Invalid publishAt date in the delivery options.";
pub(crate) const MSG_5007: &str = "Invalid repeatExpiresAt date in delivery options.";
pub(crate) const MSG_5008: &str = "Invalid repeatEvery value in delivery options.";
pub(crate) const MSG_5009: &str = "Invalid cron expression in delivery options.";
pub(crate) const MSG_5010: &str = "Invalid channel name.";
pub(crate) const MSG_5011: &str = "Invalid publishPolicy / pushBroadcast value.";
pub(crate) const MSG_5040: &str = "Message has already been canceled or does not exist.";

/// A well-formed message id that no engine issued.
pub(crate) const UNKNOWN_ID: &str = "0190B2E4-5A1C-7D3E-8F00-1234567890AB";

/// Lets other tasks run a while (no clock involved): a task that can make
/// progress does. For asserting that something is *still waiting*.
pub(crate) async fn let_others_run() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

/// A one-shot pause point in a store method: when armed, the next call
/// signals `entered` and waits for `open`.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    armed: std::sync::atomic::AtomicBool,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl Gate {
    pub(crate) fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    pub(crate) async fn pass(&self) {
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
    }
    pub(crate) async fn wait_entered(&self) {
        self.entered.notified().await;
    }
    pub(crate) fn open(&self) {
        self.release.notify_one();
    }
}
