//! Push-job writes during a real outage: the store's file cannot be
//! written (the process's file-size limit, `RLIMIT_FSIZE`, is lowered to 0
//! with `prlimit`, so every write to the file fails with `EFBIG`, as on a
//! full disk). `add_push_jobs`, `claim_push_jobs` and `checkpoint_push`
//! answer `StoreError::Unavailable` and change nothing (no job added, no
//! lease or token taken, no cursor, retry, counter or finish recorded),
//! `Store::stats` reports the outage, and once the limit is back the
//! writes work again without a reopen by the caller, and everything
//! acknowledged is there after a restart.
//!
//! As in `registry_outage.rs`, the scenario runs in a child process (this
//! test binary, running the ignored test `outage_child` alone) started
//! through `sh` with SIGXFSZ ignored.
#![cfg(target_os = "linux")]

use std::time::Instant;

use herald::{Checkpoint, DeliveryCounts, JobKey, PushJob, PushRetry, Start, Store, StoreError};
use herald_core::Tick;
use herald_redb::RedbStore;
use herald_testkit::TempDir;

#[path = "support/file_limit.rs"]
mod file_limit;
use file_limit::{BACK_WITHIN, prlimit, run_child, unavailable, xfsz_ignored};
use herald_testkit::store_conformance::{id, small_envelope};

#[test]
fn push_job_writes_during_an_outage_answer_unavailable_then_work_again() {
    run_child();
}

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

fn key(n: u128) -> JobKey {
    JobKey {
        message: id(n),
        run: t(10),
    }
}

async fn claim(store: &RedbStore, before: u64, lease: u64) -> Result<Vec<PushJob>, StoreError> {
    store.claim_push_jobs(t(before), t(lease), 100).await
}

#[test]
#[ignore = "the child of push_job_writes_during_an_outage_answer_unavailable_then_work_again"]
fn outage_child() {
    assert!(
        xfsz_ignored(),
        "run with SIGXFSZ ignored (the parent test does), or the limit kills the process"
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(scenario());
}

async fn scenario() {
    const LEASE: u64 = 1_000;
    let dir = TempDir::new("push-outage");
    let store = RedbStore::open(&dir.0).expect("open");
    store
        .insert(small_envelope(1), Start::At(t(10)))
        .await
        .expect("insert");
    store
        .add_push_jobs(vec![key(1), key(2)])
        .await
        .expect("add");
    let jobs = claim(&store, 0, LEASE).await.expect("claim");
    assert_eq!(jobs.len(), 2);
    let mut cp = Checkpoint::of(&jobs[0], t(LEASE));
    cp.cursor = Some("c1".into());
    cp.handed = 1;
    cp.retries = vec![PushRetry {
        device_id: "r1".into(),
        attempts: 1,
        due: t(50),
    }];
    assert_eq!(store.checkpoint_push(vec![cp]).await.expect("cp"), [true]);
    let soft = prlimit(&["--fsize", "--output=SOFT", "--noheadings"]);

    // The file cannot be written: every push-job write is refused.
    prlimit(&["--fsize=0:"]);
    unavailable("add_push_jobs", store.add_push_jobs(vec![key(3)]).await);
    assert!(
        store.stats().unavailable.is_some(),
        "the outage is reported"
    );
    unavailable("claim_push_jobs", claim(&store, u64::MAX, 5_000).await);
    let mut moved = Checkpoint::of(&jobs[0], t(5_000));
    moved.cursor = Some("c2".into());
    moved.resolved = vec!["r1".into()];
    moved.counts = DeliveryCounts {
        push_sent: 1,
        ..DeliveryCounts::default()
    };
    let mut finished = Checkpoint::of(&jobs[1], t(5_000));
    finished.finished = true;
    unavailable(
        "checkpoint_push",
        store.checkpoint_push(vec![moved, finished]).await,
    );
    assert!(store.stats().unavailable.is_some(), "still reported");

    // Space is back: the store writes again by itself (after its backoff;
    // until then it refuses at once).
    prlimit(&[&format!("--fsize={soft}:")]);
    let deadline = Instant::now() + BACK_WITHIN;
    let mut refusals = 0;
    loop {
        match store.add_push_jobs(vec![key(3)]).await {
            Ok(()) => break,
            Err(e) => {
                unavailable("add while coming back", Err::<(), _>(e));
                refusals += 1;
                assert!(
                    Instant::now() < deadline,
                    "still refused after {refusals} tries"
                );
            }
        }
    }
    assert_eq!(store.stats().unavailable, None, "the outage is over");

    // Nothing refused happened: jobs 1 and 2 are still leased (the refused
    // claim took nothing), job 1 keeps its cursor and retry, job 2 is not
    // finished, message 1 got no counter.
    let fresh = claim(&store, LEASE - 1, 5_000).await.expect("claim");
    assert_eq!(
        fresh.iter().map(|j| j.key).collect::<Vec<_>>(),
        [key(3)],
        "only the job added after the outage"
    );
    assert_eq!(
        store.push_retries(key(1), 10).await.expect("retries").len(),
        1
    );
    let r = store.get(id(1)).await.expect("get").expect("stored");
    assert_eq!(r.counts, DeliveryCounts::default());
    assert_eq!(
        store
            .checkpoint_push(vec![Checkpoint::of(&jobs[1], t(LEASE))])
            .await
            .expect("cp"),
        [true],
        "job 2 is there, under the claim from before the outage"
    );
    let again = claim(&store, LEASE, 6_000).await.expect("claim");
    assert_eq!(
        again.iter().map(|j| j.key).collect::<Vec<_>>(),
        [key(1), key(2)]
    );
    assert_eq!(again[0].cursor.as_deref(), Some("c1"));
    assert!(
        again.iter().all(|j| j.token > fresh[0].token),
        "tokens go on rising"
    );

    // Every kind of push-job write works again.
    let mut done = Checkpoint::of(&again[0], t(6_000));
    done.counts = DeliveryCounts {
        push_sent: 1,
        ..DeliveryCounts::default()
    };
    done.finished = true;
    assert_eq!(store.checkpoint_push(vec![done]).await.expect("cp"), [true]);
    store.add_push_jobs(vec![key(4)]).await.expect("add");
    store.close().await.expect("close");

    // Everything acknowledged is on disk.
    let store = RedbStore::open(&dir.0).expect("reopen");
    let left = claim(&store, u64::MAX, 9_000).await.expect("claim");
    assert_eq!(
        left.iter().map(|j| j.key).collect::<Vec<_>>(),
        [key(2), key(3), key(4)]
    );
    assert!(
        store
            .push_retries(key(1), 10)
            .await
            .expect("retries")
            .is_empty()
    );
    let r = store.get(id(1)).await.expect("get").expect("stored");
    assert_eq!(r.counts.push_sent, 1);
    let check = store.check_records().expect("consistent");
    assert_eq!((check.push_jobs, check.push_retries), (3, 0), "{check:?}");
    store.close().await.expect("close");
}
