//! Push jobs survive a restart: jobs, cursors, `listed`, `handed`, tokens,
//! leases and retries are as they were after a close (or a drop without a
//! close) and a reopen. A lease taken before the restart still holds, so
//! a single node re-claims its jobs with `expired_before` in the far
//! future; the new tokens come after every token issued before (message
//! claims included), and the old ones are stale. A file written before
//! the push-job tables existed has no jobs, and reading, claiming or
//! checkpointing does not create the tables (so the format version stays
//! 2); the first `add_push_jobs` does.

use std::collections::BTreeSet;
use std::sync::Arc;

use herald::{Checkpoint, JobKey, ManualClock, Next, PushJob, PushRetry, Start, Store};
use herald_core::Tick;
use herald_redb::{FILE_NAME, RedbOptions, RedbStore};
use herald_testkit::TempDir;
use herald_testkit::store_conformance::{id, small_envelope};
use redb::{Database, ReadableDatabase, TableHandle};

const T0: u64 = 1_800_000_000_000;
const MINUTE: u64 = 60_000;

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

fn key(n: u128, run: u64) -> JobKey {
    JobKey {
        message: id(n),
        run: t(run),
    }
}

fn retry(device: &str, attempts: u32, due: u64) -> PushRetry {
    PushRetry {
        device_id: device.to_owned(),
        attempts,
        due: t(due),
    }
}

fn open(dir: &TempDir) -> RedbStore {
    RedbStore::open_with(
        &dir.0,
        RedbOptions {
            clock: Arc::new(ManualClock::new(t(T0))),
            ..RedbOptions::default()
        },
    )
    .expect("open")
}

async fn claim(store: &RedbStore, expired_before: u64, lease_until: u64) -> Vec<PushJob> {
    store
        .claim_push_jobs(t(expired_before), t(lease_until), 100)
        .await
        .expect("claim push jobs")
}

async fn checkpoint(store: &RedbStore, cp: Checkpoint) -> bool {
    let got = store.checkpoint_push(vec![cp]).await.expect("checkpoint");
    assert_eq!(got.len(), 1);
    got[0]
}

/// Claims message `n`'s run at `due`: its token.
async fn claim_run(store: &RedbStore, n: u128, due: u64) -> u64 {
    let got = store
        .claim(
            vec![herald::Claim {
                id: id(n),
                due: t(due),
            }],
            t(due + MINUTE),
        )
        .await
        .expect("claim");
    got[0].as_ref().expect("claimed").token.get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_cursors_tokens_leases_and_retries_survive_a_restart() {
    let dir = TempDir::new("push-restart");
    let store = open(&dir);
    store
        .insert(small_envelope(1), Start::At(t(T0)))
        .await
        .expect("insert");
    let run_token = claim_run(&store, 1, T0).await;
    let (a, b, c) = (key(1, T0), key(2, T0 + 5), key(3, T0 + 7));
    store.add_push_jobs(vec![c, a, b]).await.expect("add");
    let lease = T0 + 10 * MINUTE;
    let first = claim(&store, 0, lease).await;
    assert_eq!(
        first.iter().map(|j| j.key).collect::<Vec<_>>(),
        [a, b, c],
        "key order"
    );
    assert!(
        first.iter().all(|j| j.token.get() > run_token),
        "one token counter for runs and jobs"
    );
    let mut cp = Checkpoint::of(&first[0], t(lease));
    cp.cursor = Some("dev-0042".into());
    cp.handed = 42;
    cp.retries = vec![
        retry("dev-0007", 1, T0 + MINUTE),
        retry("dev-0003", 2, T0 + 2 * MINUTE),
        retry("dev-0011", 1, T0 + MINUTE),
    ];
    assert!(checkpoint(&store, cp).await);
    let mut cp = Checkpoint::of(&first[1], t(lease));
    cp.cursor = Some("zz".into());
    cp.listed = true;
    cp.handed = 9;
    assert!(checkpoint(&store, cp).await);
    let mut cp = Checkpoint::of(&first[2], t(lease));
    cp.retries = vec![retry("gone", 1, T0)];
    cp.finished = true;
    assert!(checkpoint(&store, cp).await);
    let retries_a = store.push_retries(a, 10).await.expect("retries");
    assert_eq!(
        retries_a,
        [
            retry("dev-0007", 1, T0 + MINUTE),
            retry("dev-0011", 1, T0 + MINUTE),
            retry("dev-0003", 2, T0 + 2 * MINUTE)
        ]
    );
    store.close().await.expect("close");

    // Reopened: the leases still hold; past them the same node re-claims.
    let store = open(&dir);
    assert!(
        claim(&store, lease - 1, lease + MINUTE).await.is_empty(),
        "the leases survived the restart"
    );
    assert_eq!(store.push_retries(a, 10).await.expect("retries"), retries_a);
    assert!(
        store.push_retries(c, 10).await.expect("retries").is_empty(),
        "a finished job's retries are gone"
    );
    let second = claim(&store, u64::MAX, lease + MINUTE).await;
    assert_eq!(
        second.iter().map(|j| j.key).collect::<Vec<_>>(),
        [a, b],
        "the finished job stays finished"
    );
    assert_eq!(
        (
            second[0].cursor.as_deref(),
            second[0].listed,
            second[0].handed
        ),
        (Some("dev-0042"), false, 42)
    );
    assert_eq!(
        (
            second[1].cursor.as_deref(),
            second[1].listed,
            second[1].handed
        ),
        (Some("zz"), true, 9)
    );
    let before = first.iter().map(|j| j.token.get()).max().expect("tokens");
    assert!(
        second.iter().all(|j| j.token.get() > before),
        "tokens never repeat across a restart: {second:?} after {before}"
    );
    assert!(
        !checkpoint(&store, Checkpoint::of(&first[0], t(lease))).await,
        "the claim from before the restart is stale"
    );

    // Dropped without a close: the new claims and a checkpoint survive.
    let mut cp = Checkpoint::of(&second[0], t(lease + MINUTE));
    cp.cursor = Some("dev-0050".into());
    cp.handed = 50;
    cp.resolved = vec!["dev-0007".into()];
    assert!(checkpoint(&store, cp).await);
    drop(store);
    let store = open(&dir);
    assert!(claim(&store, lease, lease + 2 * MINUTE).await.is_empty());
    let mut cp = Checkpoint::of(&second[1], t(lease + MINUTE));
    cp.finished = true;
    assert!(
        checkpoint(&store, cp).await,
        "a token issued before the drop is still current"
    );
    assert_eq!(
        store.push_retries(a, 10).await.expect("retries"),
        [
            retry("dev-0011", 1, T0 + MINUTE),
            retry("dev-0003", 2, T0 + 2 * MINUTE)
        ]
    );
    let third = claim(&store, u64::MAX, lease + 3 * MINUTE).await;
    assert_eq!(third.len(), 1);
    assert_eq!(
        (third[0].key, third[0].cursor.as_deref(), third[0].handed),
        (a, Some("dev-0050"), 50)
    );
    let newest = second.iter().map(|j| j.token.get()).max().expect("tokens");
    assert!(third[0].token.get() > newest);
    store
        .insert(small_envelope(9), Start::At(t(T0)))
        .await
        .expect("insert");
    assert!(
        claim_run(&store, 9, T0).await > third[0].token.get(),
        "a run claimed after job claims gets a later token"
    );
    let check = store.check_records().expect("consistent");
    assert_eq!((check.push_jobs, check.push_retries), (1, 2), "{check:?}");
    store.close().await.expect("close");
}

fn tables(dir: &TempDir) -> BTreeSet<String> {
    let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
    let txn = db.begin_read().expect("read");
    txn.list_tables()
        .expect("tables")
        .map(|t| t.name().to_owned())
        .collect()
}

const PUSH_TABLES: [&str; 4] = [
    "push_jobs",
    "push_job_leases",
    "push_retries",
    "push_retry_index",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_before_push_jobs_has_none_and_takes_them() {
    let dir = TempDir::new("push-old-file");
    let store = open(&dir);
    // Messages only: finished, cancelled and scheduled ones.
    for n in 1..=3 {
        store
            .insert(small_envelope(n), Start::At(t(T0)))
            .await
            .expect("insert");
    }
    let token = claim_run(&store, 1, T0).await;
    let done = herald::Completion {
        id: id(1),
        token: herald::FencingToken::new(token),
        counts: herald::DeliveryCounts::default(),
        next: Next::Done,
    };
    assert_eq!(store.complete(vec![done]).await.expect("complete"), [true]);
    store.cancel(id(2)).await.expect("cancel");
    store.close().await.expect("close");
    let before = tables(&dir);
    assert!(before.contains("headers"), "{before:?}");
    assert!(
        PUSH_TABLES.iter().all(|t| !before.contains(*t)),
        "finishing messages creates no push-job table: {before:?}"
    );

    let store = open(&dir);
    assert!(claim(&store, u64::MAX, T0).await.is_empty());
    assert!(
        store
            .push_retries(key(1, T0), 10)
            .await
            .expect("retries")
            .is_empty()
    );
    let unknown = PushJob {
        key: key(1, T0),
        token: herald::FencingToken::new(1),
        cursor: None,
        listed: false,
        handed: 0,
    };
    assert!(!checkpoint(&store, Checkpoint::of(&unknown, t(T0))).await);
    assert_eq!(store.purge().await.expect("purge"), 0);
    let check = store.check_records().expect("consistent");
    assert_eq!((check.records, check.push_jobs), (3, 0), "{check:?}");
    store.close().await.expect("close");
    assert_eq!(tables(&dir), before, "reads and refusals created nothing");

    let store = open(&dir);
    store.add_push_jobs(vec![key(1, T0)]).await.expect("add");
    let jobs = claim(&store, 0, T0 + MINUTE).await;
    assert_eq!(jobs.len(), 1);
    let check = store.check_records().expect("consistent");
    assert_eq!(
        (check.retained, check.push_jobs),
        (1, 1),
        "message 1 left `finished` while its job is open, 2 did not: {check:?}"
    );
    store.close().await.expect("close");
    let after = tables(&dir);
    for t in PUSH_TABLES {
        assert!(after.contains(t), "{t} created by the first add: {after:?}");
    }
}
