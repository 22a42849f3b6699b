//! Retention: a final message (finished, no push notification pending) is
//! purged `retention` after it became final, on the store's clock; a
//! repeating message counts from its last run; an unfinished message, or
//! one with push notifications pending or a push job open, is never
//! purged; a status read of a purged id answers `unknown`; the writer
//! purges by itself when idle.
//!
//! Before retention existed every one of these messages was kept for as
//! long as the file lived (the file only grew).

use std::sync::Arc;
use std::time::Duration;

use herald::{
    Amendment, Checkpoint, Claim, Completion, DeliveryCounts, Engine, JobKey, ManualClock, Next,
    PublishStatus, PushJob, PushRetry, RunState, Start, Store,
};
use herald_core::Tick;
use herald_redb::{RedbOptions, RedbStore};
use herald_testkit::TempDir;
use herald_testkit::store_conformance::{id, small_envelope};

const T0: u64 = 1_800_000_000_000;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

fn open(dir: &TempDir, clock: &ManualClock, retention: Duration) -> RedbStore {
    RedbStore::open_with(
        &dir.0,
        RedbOptions {
            retention: Some(retention),
            clock: Arc::new(clock.clone()),
            ..RedbOptions::default()
        },
    )
    .expect("open")
}

async fn insert(store: &RedbStore, n: u128, due: u64) {
    store
        .insert(small_envelope(n), Start::At(t(due)))
        .await
        .expect("insert");
}

/// Claims message `n`'s run at `due` and completes it with `next`.
async fn run(store: &RedbStore, n: u128, due: u64, counts: DeliveryCounts, next: Next) {
    let claimed = store
        .claim(
            vec![Claim {
                id: id(n),
                due: t(due),
            }],
            t(due + HOUR),
        )
        .await
        .expect("claim");
    let token = claimed[0].as_ref().expect("claimed").token;
    let applied = store
        .complete(vec![Completion {
            id: id(n),
            token,
            counts,
            next,
        }])
        .await
        .expect("complete");
    assert_eq!(applied, vec![true]);
}

fn one_run() -> DeliveryCounts {
    DeliveryCounts {
        runs: 1,
        ..DeliveryCounts::default()
    }
}

async fn known(store: &RedbStore, n: u128) -> bool {
    store.get(id(n)).await.expect("get").is_some()
}

/// No row of message `n` is left in any table.
fn gone(store: &RedbStore, n: u128) {
    let raw = id(n).as_u128().to_be_bytes();
    for (table, rows) in store.raw_tables().expect("tables") {
        for (k, _) in rows {
            let holds = k.windows(16).any(|w| w == raw);
            assert!(!holds, "message {n} left a row in `{table}`");
        }
    }
}

/// Purges what is due now, and answers how many messages the store has
/// purged since it was opened: the writer also purges by itself when idle
/// (within a second of the clock passing a retention), so an explicit
/// purge may find its messages gone already (a flake at load 4: 0 purged
/// where 1 was due).
async fn purged_now(store: &RedbStore) -> u64 {
    store.purge().await.expect("purge");
    store.stats().purged
}

#[tokio::test]
async fn final_messages_are_purged_retention_after_they_became_final() {
    let dir = TempDir::new("retention");
    let clock = ManualClock::new(t(T0));
    let store = open(&dir, &clock, Duration::from_millis(HOUR));
    // 1: a one-off, published at T0 + 10 s.
    // 2: repeating, runs at T0 + 10 s, + 2 h, last at + 4 h.
    // 3: cancelled at T0 + 20 min.
    // 4: scheduled 100 days ahead: unfinished, never purged.
    for (n, due) in [
        (1, T0 + 10_000),
        (2, T0 + 10_000),
        (3, T0 + HOUR),
        (4, T0 + 100 * DAY),
    ] {
        insert(&store, n, due).await;
    }
    clock.set(t(T0 + 10_000));
    run(&store, 1, T0 + 10_000, one_run(), Next::Done).await;
    run(
        &store,
        2,
        T0 + 10_000,
        one_run(),
        Next::At(t(T0 + 2 * HOUR)),
    )
    .await;
    clock.set(t(T0 + 20 * MINUTE));
    store.cancel(id(3)).await.expect("cancel");

    clock.set(t(T0 + 10_000 + HOUR - 1));
    assert_eq!(purged_now(&store).await, 0, "not yet");
    assert!(known(&store, 1).await);
    clock.set(t(T0 + 10_000 + HOUR));
    assert_eq!(purged_now(&store).await, 1, "the one-off");
    assert!(!known(&store, 1).await, "purged: unknown");
    gone(&store, 1);
    assert!(known(&store, 3).await, "cancelled later");

    clock.set(t(T0 + 20 * MINUTE + HOUR));
    assert_eq!(purged_now(&store).await, 2, "the cancelled one");
    gone(&store, 3);

    // The repeating message goes on; its last run ends it at T0 + 4 h.
    clock.set(t(T0 + 2 * HOUR));
    run(
        &store,
        2,
        T0 + 2 * HOUR,
        one_run(),
        Next::At(t(T0 + 4 * HOUR)),
    )
    .await;
    clock.set(t(T0 + 4 * HOUR));
    run(&store, 2, T0 + 4 * HOUR, one_run(), Next::Done).await;
    clock.set(t(T0 + 5 * HOUR - 1));
    assert_eq!(
        purged_now(&store).await,
        2,
        "a repeating message counts from its last run"
    );
    let r = store.get(id(2)).await.expect("get").expect("kept");
    assert_eq!((r.state, r.counts.runs), (RunState::Published, 3));
    clock.set(t(T0 + 5 * HOUR));
    assert_eq!(purged_now(&store).await, 3);
    gone(&store, 2);

    clock.set(t(T0 + 99 * DAY));
    assert_eq!(purged_now(&store).await, 3);
    assert_eq!(
        store.get(id(4)).await.expect("get").expect("kept").state,
        RunState::Scheduled {
            due: t(T0 + 100 * DAY)
        },
        "an unfinished message is never purged"
    );
    assert_eq!(store.stats().purged, 3);
    let check = store.check_records().expect("consistent");
    assert_eq!((check.records, check.retained), (1, 0), "{check:?}");

    // Through the engine, a purged id answers `unknown`.
    let engine = Engine::builder()
        .clock(clock.clone())
        .store(store.clone())
        .build();
    let status = engine
        .message_status(&id(1).to_string())
        .await
        .expect("status");
    assert_eq!(status.status, PublishStatus::Unknown);
    engine.shutdown().await;
}

/// A message whose push notifications are pending is never purged; once
/// the last one has its outcome, retention counts from then.
#[tokio::test]
async fn push_pending_is_never_purged() {
    let dir = TempDir::new("retention-push");
    let clock = ManualClock::new(t(T0));
    let store = open(&dir, &clock, Duration::from_millis(HOUR));
    insert(&store, 1, T0).await;
    let pushing = DeliveryCounts {
        runs: 1,
        push_queued: 2,
        ..DeliveryCounts::default()
    };
    run(&store, 1, T0, pushing, Next::Done).await;
    clock.set(t(T0 + 30 * DAY));
    assert_eq!(store.purge().await.expect("purge"), 0, "2 pending");
    let sent = |n| Amendment {
        id: id(1),
        counts: DeliveryCounts {
            push_sent: n,
            ..DeliveryCounts::default()
        },
        error: None,
        fail: false,
    };
    store.amend(vec![sent(1)]).await.expect("amend");
    clock.set(t(T0 + 60 * DAY));
    assert_eq!(store.purge().await.expect("purge"), 0, "1 pending");
    store.amend(vec![sent(1)]).await.expect("amend");
    let r = store.get(id(1)).await.expect("get").expect("kept");
    assert_eq!((r.state, r.counts.push_pending()), (RunState::Published, 0));
    clock.set(t(T0 + 60 * DAY + HOUR - 1));
    assert_eq!(store.purge().await.expect("purge"), 0, "final only now");
    clock.set(t(T0 + 60 * DAY + HOUR));
    assert_eq!(store.purge().await.expect("purge"), 1);
    gone(&store, 1);
    store.check_records().expect("consistent");
}

/// The writer purges by itself in its idle time, in batches, without
/// anyone asking; a purge is kept across a reopen (or done again).
#[tokio::test]
async fn the_idle_writer_purges_by_itself() {
    let dir = TempDir::new("retention-idle");
    let clock = ManualClock::new(t(T0));
    let store = open(&dir, &clock, Duration::from_millis(MINUTE));
    let n = 300u128; // more than one purge transaction takes
    for i in 1..=n {
        store
            .insert(
                small_envelope(i),
                Start::Claimed {
                    due: t(T0),
                    lease_until: t(T0 + HOUR),
                },
            )
            .await
            .expect("insert");
    }
    let all = store.pending(None, 10).await.expect("pending");
    assert!(all.is_empty(), "all claimed");
    for i in 1..=n {
        // Claimed at insert: complete with the token `get` shows.
        let r = store.get(id(i)).await.expect("get").expect("stored");
        let RunState::Firing { token, .. } = r.state else {
            panic!("{:?}", r.state)
        };
        store
            .complete(vec![Completion {
                id: id(i),
                token,
                counts: one_run(),
                next: Next::Done,
            }])
            .await
            .expect("complete");
    }
    // Retention runs out; the writer notices within a second (it looks at
    // the store's clock when idle) and purges in batches.
    let mut purged = store.watch_purged();
    assert_eq!(*purged.borrow(), 0);
    clock.set(t(T0 + MINUTE));
    tokio::time::timeout(Duration::from_secs(20), purged.wait_for(|&p| p >= n as u64))
        .await
        .unwrap_or_else(|_| panic!("the idle writer purged {} of {n}", store.stats().purged))
        .expect("the store is open");
    for i in [1, n / 2, n] {
        assert!(!known(&store, i).await);
    }
    store.close().await.expect("close");
    let store = open(&dir, &clock, Duration::from_millis(MINUTE));
    // Non-durable purges may be lost in a crash; after a clean close they
    // are kept, and anything left is purged again.
    store.purge().await.expect("purge");
    let check = store.check_records().expect("consistent");
    assert_eq!((check.records, check.retained), (0, 0), "{check:?}");
    store.close().await.expect("close");
}

/// A clock that reads less than the retention (a test clock near the
/// epoch) purges nothing: nothing can have been final that long.
#[tokio::test]
async fn nothing_is_purged_before_the_clock_passes_the_retention() {
    let dir = TempDir::new("retention-epoch");
    let clock = ManualClock::new(t(0));
    let store = open(&dir, &clock, Duration::from_millis(HOUR));
    insert(&store, 1, 0).await;
    run(&store, 1, 0, one_run(), Next::Done).await;
    clock.set(t(HOUR - 1));
    assert_eq!(store.purge().await.expect("purge"), 0);
    assert!(known(&store, 1).await);
    clock.set(t(HOUR));
    assert_eq!(store.purge().await.expect("purge"), 1);
    store.close().await.expect("close");
}

fn job(n: u128, run: u64) -> JobKey {
    JobKey {
        message: id(n),
        run: t(run),
    }
}

/// Claims every push job open (whatever its lease).
async fn claim_jobs(store: &RedbStore, lease_until: u64) -> Vec<PushJob> {
    store
        .claim_push_jobs(t(u64::MAX), t(lease_until), 100)
        .await
        .expect("claim push jobs")
}

/// Applies one checkpoint, which must be current.
async fn checkpoint(store: &RedbStore, cp: Checkpoint) {
    assert_eq!(
        store.checkpoint_push(vec![cp]).await.expect("checkpoint"),
        [true]
    );
}

/// A final message with a push job open is never purged: it is not in
/// `finished` while the job is open, whether the job came before the
/// message finished or after. When its last job ends it is final from
/// then, and retention counts from there (the idle writer purges it by
/// itself then).
#[tokio::test]
async fn a_final_message_with_an_open_push_job_is_kept_until_the_job_ends() {
    let dir = TempDir::new("retention-push-job");
    let clock = ManualClock::new(t(T0));
    let store = open(&dir, &clock, Duration::from_millis(HOUR));
    // 1: its run records a push job, then completes (the engine's order).
    // 2: the same without a job: purged an hour after its run.
    // 3: finished first; a job comes half an hour later.
    for n in 1..=3 {
        insert(&store, n, T0).await;
    }
    store.add_push_jobs(vec![job(1, T0)]).await.expect("add");
    run(&store, 1, T0, one_run(), Next::Done).await;
    run(&store, 2, T0, one_run(), Next::Done).await;
    run(&store, 3, T0, one_run(), Next::Done).await;
    let check = store.check_records().expect("consistent");
    assert_eq!((check.retained, check.push_jobs), (2, 1), "{check:?}");
    clock.set(t(T0 + 30 * MINUTE));
    store.add_push_jobs(vec![job(3, T0)]).await.expect("add");
    let check = store.check_records().expect("consistent");
    assert_eq!(
        (check.retained, check.push_jobs),
        (1, 2),
        "3 left `finished`: {check:?}"
    );

    clock.set(t(T0 + 30 * DAY));
    assert_eq!(store.purge().await.expect("purge"), 1, "only 2");
    gone(&store, 2);
    assert!(known(&store, 1).await, "its job is open");
    assert!(known(&store, 3).await, "its job is open");

    // The jobs run: 1 hands out 3 notifications over two checkpoints.
    let jobs = claim_jobs(&store, T0 + 31 * DAY).await;
    assert_eq!(jobs.len(), 2);
    let mut cp = Checkpoint::of(&jobs[0], t(T0 + 31 * DAY));
    cp.counts = DeliveryCounts {
        push_queued: 3,
        push_sent: 1,
        ..DeliveryCounts::default()
    };
    cp.retries = vec![PushRetry {
        device_id: "d2".into(),
        attempts: 1,
        due: t(T0 + 30 * DAY + MINUTE),
    }];
    checkpoint(&store, cp).await;
    clock.set(t(T0 + 40 * DAY));
    assert_eq!(store.purge().await.expect("purge"), 0, "jobs open");
    // 3's job ends at T0 + 40 days: 3 is final from then.
    let mut done3 = Checkpoint::of(&jobs[1], t(T0 + 41 * DAY));
    done3.finished = true;
    checkpoint(&store, done3).await;
    let r = store.get(id(3)).await.expect("get").expect("kept");
    assert_eq!(r.state, RunState::Published);
    // 1's job ends half an hour later with its last outcomes (before 3's
    // retention runs out, which the idle writer would act on at once).
    clock.set(t(T0 + 40 * DAY + HOUR / 2));
    let mut done1 = Checkpoint::of(&jobs[0], t(T0 + 42 * DAY));
    done1.counts = DeliveryCounts {
        push_sent: 2,
        ..DeliveryCounts::default()
    };
    done1.resolved = vec!["d2".into()];
    done1.finished = true;
    checkpoint(&store, done1).await;
    let r = store.get(id(1)).await.expect("get").expect("kept");
    assert_eq!((r.counts.push_sent, r.counts.push_pending()), (3, 0));
    let check = store.check_records().expect("consistent");
    assert_eq!(
        (check.retained, check.push_jobs, check.push_retries),
        (2, 0, 0),
        "{check:?}"
    );

    clock.set(t(T0 + 40 * DAY + HOUR - 1));
    assert_eq!(
        store.purge().await.expect("purge"),
        0,
        "3 final since +40 d"
    );
    clock.set(t(T0 + 40 * DAY + HOUR));
    // The call or the idle writer (it reads the same clock) purges it.
    assert!(store.purge().await.expect("purge") <= 1);
    gone(&store, 3);
    assert!(known(&store, 1).await, "final since +40 d 30 min");

    // Retention runs out for 1: the idle writer purges it by itself.
    let mut purged = store.watch_purged();
    let before = *purged.borrow();
    clock.set(t(T0 + 40 * DAY + HOUR + HOUR / 2));
    tokio::time::timeout(Duration::from_secs(20), purged.wait_for(|&p| p > before))
        .await
        .expect("the idle writer purged it")
        .expect("the store is open");
    assert!(!known(&store, 1).await);
    gone(&store, 1);
    store.check_records().expect("consistent");
    store.close().await.expect("close");
}

/// A message with several push jobs (a repeating message's runs) stays
/// until the last one ends, and one cancelled while a job runs too; a job
/// ending while push notifications are still pending does not make the
/// message final (the last outcome does). The rule holds across a reopen.
#[tokio::test]
async fn every_open_job_keeps_its_message_and_pending_notifications_too() {
    let dir = TempDir::new("retention-push-jobs");
    let clock = ManualClock::new(t(T0));
    let store = open(&dir, &clock, Duration::from_millis(HOUR));
    // 1: repeating, two runs with push, then its last run.
    insert(&store, 1, T0).await;
    store.add_push_jobs(vec![job(1, T0)]).await.expect("add");
    run(&store, 1, T0, one_run(), Next::At(t(T0 + HOUR))).await;
    clock.set(t(T0 + HOUR));
    store
        .add_push_jobs(vec![job(1, T0 + HOUR)])
        .await
        .expect("add");
    run(&store, 1, T0 + HOUR, one_run(), Next::Done).await;
    // 2: cancelled while its job runs.
    insert(&store, 2, T0 + DAY).await;
    store.add_push_jobs(vec![job(2, T0)]).await.expect("add");
    store.cancel(id(2)).await.expect("cancel");
    let check = store.check_records().expect("consistent");
    assert_eq!((check.retained, check.push_jobs), (0, 3), "{check:?}");
    store.close().await.expect("close");

    let store = open(&dir, &clock, Duration::from_millis(HOUR));
    let jobs = claim_jobs(&store, T0 + DAY).await;
    let keys: Vec<JobKey> = jobs.iter().map(|j| j.key).collect();
    assert_eq!(keys, [job(1, T0), job(1, T0 + HOUR), job(2, T0)]);
    let finish = |j: &PushJob, pending: u64| {
        let mut cp = Checkpoint::of(j, t(T0 + DAY));
        cp.counts.push_queued = pending;
        cp.finished = true;
        cp
    };
    clock.set(t(T0 + 2 * HOUR));
    checkpoint(&store, finish(&jobs[0], 0)).await;
    // 2's job ends with a notification still pending.
    checkpoint(&store, finish(&jobs[2], 1)).await;
    clock.set(t(T0 + 30 * DAY));
    assert_eq!(
        store.purge().await.expect("purge"),
        0,
        "1 has a job open, 2 a notification pending"
    );
    checkpoint(&store, finish(&jobs[1], 0)).await;
    store
        .amend(vec![Amendment {
            id: id(2),
            counts: DeliveryCounts {
                push_expired: 1,
                ..DeliveryCounts::default()
            },
            error: None,
            fail: false,
        }])
        .await
        .expect("amend");
    let check = store.check_records().expect("consistent");
    assert_eq!((check.retained, check.push_jobs), (2, 0), "{check:?}");
    clock.set(t(T0 + 30 * DAY + HOUR - 1));
    assert_eq!(store.purge().await.expect("purge"), 0, "final since +30 d");
    assert!(known(&store, 1).await && known(&store, 2).await);
    clock.set(t(T0 + 30 * DAY + HOUR));
    assert_eq!(store.purge().await.expect("purge"), 2);
    gone(&store, 1);
    gone(&store, 2);
    store.close().await.expect("close");
}
