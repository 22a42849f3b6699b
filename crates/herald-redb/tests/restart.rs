//! Restarts: an engine writes through a `RedbStore`, stops (shutdown, or
//! dropped without one), and a new engine on the reopened directory carries
//! on: statuses and counters intact, scheduled messages fire at their time,
//! repeating ones resume (missed runs collapse into one), cancelled ones
//! stay cancelled, and a run left `Firing` is delivered again.
//!
//! Each phase runs on its own current-thread runtime, so the driver only
//! runs when the test awaits, and dropping the runtime drops the engine
//! the way a process exit would (minus the crash: see `crash.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::DateTime;
use herald::{
    Claim, DeliveryCounts, DeliveryOptions, Engine, ManualClock, MessageStatus, PublishOptions,
    PublishStatus, RunState, Store, StoreError, Subscription,
};
use herald_core::Tick;
use herald_redb::{FILE_NAME, RedbStore, RedbStoreError};
use herald_testkit::TempDir;
use serde_json::json;

/// 2027-01-15T08:00:00Z, on a whole hour.
const T0: u64 = 1_800_000_000_000;
const SEC: u64 = 1_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn at(ms: u64) -> Option<DateTime<chrono::Utc>> {
    DateTime::from_timestamp_millis(ms as i64)
}

fn engine(store: &RedbStore, clock: &ManualClock) -> Engine {
    Engine::builder()
        .clock(clock.clone())
        .store(store.clone())
        .build()
}

async fn publish(engine: &Engine, name: &str, delivery: DeliveryOptions) -> String {
    let mut publish = PublishOptions::default();
    publish.headers.insert("name".into(), name.into());
    engine
        .publish("ch", json!({ "name": name }).into(), publish, delivery)
        .await
        .unwrap_or_else(|e| panic!("publish {name}: {e}"))
        .message_id
}

async fn status(engine: &Engine, id: &str) -> MessageStatus {
    engine.message_status(id).await.expect("status")
}

fn counts(runs: u64, pubsub: u64) -> DeliveryCounts {
    DeliveryCounts {
        runs,
        pubsub,
        ..DeliveryCounts::default()
    }
}

/// The names of the runs delivered so far, in order.
fn drain(sub: &mut Subscription) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = sub.try_recv() {
        let m = m.expect("no lag");
        out.push(m.headers()["name"].clone());
    }
    out
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn names(list: &[&str]) -> Vec<String> {
    sorted(list.iter().map(|s| (*s).to_owned()).collect())
}

/// The ids of phase one, by name.
type Ids = BTreeMap<&'static str, String>;

/// Phase one at T0: publishes every kind of message, lets the repeating one
/// run once, cancels one, and claims one directly in the store (as if the
/// engine had crashed while delivering it). Then stops the engine: with
/// `shutdown`, or by dropping it (and its runtime) without one.
fn phase_one(dir: &TempDir, shutdown: bool) -> Ids {
    let rt = runtime();
    let clock = ManualClock::new(Tick::from_millis(T0));
    let store = RedbStore::open(&dir.0).expect("open");
    let ids = rt.block_on(async {
        let engine = engine(&store, &clock);
        let mut sub = engine.subscribe("ch", None).expect("subscribe");
        let mut ids = Ids::new();
        let delayed = |ms| DeliveryOptions {
            publish_at: at(ms),
            ..DeliveryOptions::default()
        };
        ids.insert(
            "delayed",
            publish(&engine, "delayed", delayed(T0 + 10 * SEC)).await,
        );
        ids.insert(
            "cancelled",
            publish(&engine, "cancelled", delayed(T0 + 20 * SEC)).await,
        );
        ids.insert(
            "later",
            publish(&engine, "later", delayed(T0 + 15 * 60 * SEC)).await,
        );
        ids.insert(
            "crashed",
            publish(&engine, "crashed", delayed(T0 + 8 * SEC)).await,
        );
        ids.insert(
            "every",
            publish(
                &engine,
                "every",
                DeliveryOptions {
                    publish_at: at(T0 + 5 * SEC),
                    repeat_every: Some(chrono::TimeDelta::seconds(60)),
                    ..DeliveryOptions::default()
                },
            )
            .await,
        );
        ids.insert(
            "cron",
            publish(
                &engine,
                "cron",
                DeliveryOptions {
                    repeat_cron: Some("30 * * * * *".into()),
                    time_zone: Some("Europe/Berlin".into()),
                    ..DeliveryOptions::default()
                },
            )
            .await,
        );
        ids.insert(
            "now",
            publish(&engine, "now", DeliveryOptions::default()).await,
        );
        let cancelled = engine.cancel(&ids["cancelled"]).await.expect("cancel");
        assert_eq!(cancelled.status, PublishStatus::Cancelled);

        // 6 s in: only `every` (due at 5 s) has run.
        clock.advance(Duration::from_secs(6));
        engine.settle().await;
        assert_eq!(sorted(drain(&mut sub)), names(&["now", "every"]));
        assert_eq!(
            status(&engine, &ids["every"]).await.deliveries,
            counts(1, 1)
        );

        // `crashed` (due at 8 s) is claimed behind the engine's back: the
        // store says a node is delivering it, and nobody will complete it.
        let claimed = store
            .claim(
                vec![Claim {
                    id: ids["crashed"].parse().expect("id"),
                    due: Tick::from_millis(T0 + 8 * SEC),
                }],
                Tick::from_millis(T0 + 68 * SEC),
            )
            .await
            .expect("claim");
        assert!(claimed[0].is_some(), "the run is claimable");

        if shutdown {
            engine.shutdown().await;
            assert!(
                matches!(
                    store.get(ids["now"].parse().expect("id")).await,
                    Err(StoreError::Closed)
                ),
                "a closed store says so"
            );
        }
        ids
    });
    // Without a shutdown, dropping the runtime drops the driver task and,
    // with the last store handle, the database (its writer is joined).
    drop(store);
    drop(rt);
    ids
}

/// Phase two, 10 minutes later on a reopened store.
fn phase_two(dir: &TempDir, ids: &Ids) {
    let rt = runtime();
    let clock = ManualClock::new(Tick::from_millis(T0 + 600 * SEC));
    let store = RedbStore::open(&dir.0).expect("reopen");
    rt.block_on(async {
        // Before any engine runs: what the store kept.
        let crashed = store
            .get(ids["crashed"].parse().expect("id"))
            .await
            .expect("get")
            .expect("kept");
        assert!(
            matches!(
                crashed.state,
                RunState::Firing { due, lease_until, .. }
                    if due == Tick::from_millis(T0 + 8 * SEC)
                        && lease_until == Tick::from_millis(T0 + 68 * SEC)
            ),
            "{:?}",
            crashed.state
        );

        let engine = engine(&store, &clock);
        // Subscribed before the driver first runs (current-thread runtime).
        let mut sub = engine.subscribe("ch", None).expect("subscribe");
        engine.settle().await;
        // Everything due while down fires once: `delayed`, the crashed run
        // (at-least-once), and one run each for the repeating messages.
        assert_eq!(
            sorted(drain(&mut sub)),
            names(&["delayed", "crashed", "every", "cron"])
        );

        let st = |name: &'static str| {
            let engine = engine.clone();
            let id = ids[name].clone();
            async move { status(&engine, &id).await }
        };
        let s = st("delayed").await;
        assert_eq!(
            (s.status, s.deliveries),
            (PublishStatus::Published, counts(1, 1))
        );
        let s = st("crashed").await;
        assert_eq!(
            (s.status, s.deliveries),
            (PublishStatus::Published, counts(1, 1))
        );
        let s = st("cancelled").await;
        assert_eq!(
            (s.status, s.deliveries),
            (PublishStatus::Cancelled, counts(0, 0))
        );
        let s = st("now").await;
        assert_eq!(
            (s.status, s.deliveries),
            (PublishStatus::Published, counts(1, 1))
        );
        let s = st("every").await;
        assert_eq!(
            (s.status, s.deliveries),
            (PublishStatus::Scheduled, counts(2, 2))
        );
        let s = st("cron").await;
        assert_eq!(
            (s.status, s.deliveries),
            (PublishStatus::Scheduled, counts(1, 1))
        );
        let s = st("later").await;
        assert_eq!(
            (s.status, s.deliveries),
            (PublishStatus::Scheduled, counts(0, 0))
        );
        assert!(
            engine.cancel(&ids["cancelled"]).await.is_err(),
            "still cancelled: cancelling again is 5040"
        );

        // The repeating messages continue from now: cron at :30 of every
        // minute, `every` 60 s after the collapsed run.
        clock.advance(Duration::from_secs(30));
        engine.settle().await;
        assert_eq!(sorted(drain(&mut sub)), names(&["cron"]));
        clock.advance(Duration::from_secs(30));
        engine.settle().await;
        assert_eq!(sorted(drain(&mut sub)), names(&["every"]));
        assert_eq!(st("every").await.deliveries, counts(3, 3));
        assert_eq!(st("cron").await.deliveries, counts(2, 2));

        // `later` fires at 15 min, not a ms before.
        clock.set(Tick::from_millis(T0 + 15 * 60 * SEC - 1));
        engine.settle().await;
        // The repeating ones were late by several periods: one run each.
        assert_eq!(sorted(drain(&mut sub)), names(&["every", "cron"]));
        clock.advance(Duration::from_millis(1));
        engine.settle().await;
        assert_eq!(sorted(drain(&mut sub)), names(&["later"]));
        assert_eq!(st("later").await.status, PublishStatus::Published);
        engine.shutdown().await;
    });
    drop(store);
    drop(rt);
}

/// Phase three: nothing is due, so nothing fires, and every status is as
/// phase two left it (its completions were durable).
fn phase_three(dir: &TempDir, ids: &Ids) {
    let rt = runtime();
    let clock = ManualClock::new(Tick::from_millis(T0 + 15 * 60 * SEC + 1));
    let store = RedbStore::open(&dir.0).expect("reopen");
    let check = store.check_records().expect("intact");
    assert_eq!(check.records, ids.len() as u64);
    // Phase two's reload met the finished ids and had them tidied away
    // from `schedule`; what it finished after that is still indexed.
    assert_eq!(check.unfinished, 2, "every and cron");
    assert!(check.indexed >= check.unfinished, "{check:?}");
    assert_eq!((check.claims, check.quarantined), (0, 0), "{check:?}");
    rt.block_on(async {
        let engine = engine(&store, &clock);
        let mut sub = engine.subscribe("ch", None).expect("subscribe");
        engine.settle().await;
        assert_eq!(drain(&mut sub), Vec::<String>::new());
        let want = [
            ("delayed", PublishStatus::Published, 1),
            ("crashed", PublishStatus::Published, 1),
            ("cancelled", PublishStatus::Cancelled, 0),
            ("now", PublishStatus::Published, 1),
            ("later", PublishStatus::Published, 1),
            // Phase two ran `every` at +10 and +11 min, then once for the
            // runs missed until 15 min - 1 ms (collapsed); `cron` at +10,
            // +10.5, then once for +11.5 .. +14.5 (collapsed).
            ("every", PublishStatus::Scheduled, 4),
            ("cron", PublishStatus::Scheduled, 3),
        ];
        for (name, want_status, runs) in want {
            let s = status(&engine, &ids[name]).await;
            assert_eq!(
                (s.status, s.deliveries.runs),
                (want_status, runs),
                "{name}: {s:?}"
            );
        }
        assert_eq!(engine.scheduled_len(), 2, "every and cron are in the wheel");
        engine.shutdown().await;
    });
}

#[test]
fn restart_after_shutdown_carries_on() {
    let dir = TempDir::new("shutdown");
    let ids = phase_one(&dir, true);
    phase_two(&dir, &ids);
    phase_three(&dir, &ids);
}

#[test]
fn restart_after_drop_without_shutdown_carries_on() {
    let dir = TempDir::new("drop");
    let ids = phase_one(&dir, false);
    phase_two(&dir, &ids);
    phase_three(&dir, &ids);
}

/// The database is exclusive: a second open while it is open fails with an
/// error (not a panic), and succeeds once the first is closed.
#[test]
fn a_second_open_fails_until_the_first_is_closed() {
    let dir = TempDir::new("exclusive");
    let rt = runtime();
    let first = RedbStore::open(&dir.0).expect("open");
    let second = RedbStore::open(&dir.0).expect_err("already open");
    assert!(
        matches!(&second, RedbStoreError::InUse { path } if path == &dir.0.join(FILE_NAME)),
        "{second}"
    );
    assert!(second.to_string().contains("in use"), "{second}");
    assert!(
        std::error::Error::source(&second).is_none(),
        "one line, not redb's text twice"
    );
    rt.block_on(first.close()).expect("close");
    let again = RedbStore::open(&dir.0).expect("reopen after close");
    rt.block_on(async {
        assert!(matches!(
            first.release_expired(Tick::MAX).await,
            Err(StoreError::Closed)
        ));
        assert!(matches!(
            first.pending(None, 10).await,
            Err(StoreError::Closed)
        ));
        assert_eq!(again.pending(None, 10).await.expect("pending").len(), 0);
    });
}

/// A close that lands while the writer's transaction is taking in a burst
/// of concurrent inserts: every insert is answered, either stored (and
/// there after reopening) or refused as `Closed` (and not there); the
/// close itself succeeds and the file reopens at once.
#[test]
fn a_close_during_a_burst_of_inserts_loses_no_acknowledged_one() {
    use herald::Start;
    use herald_testkit::store_conformance::small_envelope;
    let dir = TempDir::new("close-burst");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = RedbStore::open(&dir.0).expect("open");
    let (stored, refused) = rt.block_on(async {
        let mut tasks = Vec::new();
        for task in 0..64u128 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..200u128 {
                    let n = task * 1_000 + i;
                    let due = Start::At(Tick::from_millis(T0 + 60 * SEC));
                    match store.insert(small_envelope(n), due).await {
                        Ok(_) => answers.push((n, true)),
                        Err(StoreError::Closed) => answers.push((n, false)),
                        Err(e) => panic!("insert {n}: {e}"),
                    }
                }
                answers
            }));
        }
        // Once some inserts are in, close in the middle of the burst.
        while store.pending(None, 100).await.map_or(0, |p| p.len()) < 100 {
            tokio::task::yield_now().await;
        }
        store.close().await.expect("close");
        let (mut stored, mut refused) = (Vec::new(), 0);
        for t in tasks {
            for (n, ok) in t.await.expect("task") {
                if ok {
                    stored.push(n);
                } else {
                    refused += 1;
                }
            }
        }
        (stored, refused)
    });
    assert!(stored.len() >= 100, "{} stored", stored.len());
    assert!(refused > 0, "the close landed after every insert");
    let again = RedbStore::open(&dir.0).expect("reopen after close");
    let pending = rt.block_on(async {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = again.pending(after, 1_000).await.expect("pending");
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            all.extend(page.into_iter().map(|r| r.id));
        }
        all
    });
    let mut want: Vec<_> = stored
        .iter()
        .map(|&n| herald_testkit::store_conformance::id(n))
        .collect();
    want.sort_unstable();
    let mut got = pending;
    got.sort_unstable();
    assert_eq!(got, want, "exactly the acknowledged inserts are stored");
}
