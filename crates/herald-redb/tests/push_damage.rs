//! Damaged push-job rows, written behind the store's back: every cut and
//! a newer record version of a job record, and a lease entry that
//! disagrees with its job, read back as `StoreError::Other` naming the
//! table and the job, never as a panic. A request that meets one answers
//! that error and changes nothing (not even the parts of it that would
//! have worked: no token is issued, no checkpoint of the same request is
//! applied), while the requests that meet no damage go on; `check_records`
//! finds the damage.

use herald::{Checkpoint, JobKey, PushJob, PushRetry, Store, StoreError};
use herald_core::Tick;
use herald_redb::{FILE_NAME, RedbStore, RedbStoreError};
use herald_testkit::TempDir;
use herald_testkit::store_conformance::id;
use redb::{Database, ReadableDatabase, TableDefinition};

const JOBS: TableDefinition<'static, (u128, u64), &'static [u8]> =
    TableDefinition::new("push_jobs");
const LEASES: TableDefinition<'static, (u64, u128, u64), ()> =
    TableDefinition::new("push_job_leases");

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

fn key(n: u128) -> JobKey {
    JobKey {
        message: id(n),
        run: t(7),
    }
}

fn row(n: u128) -> (u128, u64) {
    (id(n).as_u128(), 7)
}

/// How the store names job `n` in errors.
fn job_name(n: u128) -> String {
    format!("job ({}, run 7)", id(n))
}

/// The stored record of job `n` (the store must be closed).
fn read_job(dir: &TempDir, n: u128) -> Vec<u8> {
    let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
    let txn = db.begin_read().expect("read");
    let t = txn.open_table(JOBS).expect("table");
    t.get(row(n))
        .expect("get")
        .expect("stored")
        .value()
        .to_vec()
}

/// Overwrites job records (the store must be closed).
fn overwrite(dir: &TempDir, rows: &[(u128, Vec<u8>)]) {
    let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
    let txn = db.begin_write().expect("write");
    {
        let mut t = txn.open_table(JOBS).expect("table");
        for (n, bytes) in rows {
            t.insert(row(*n), bytes.as_slice()).expect("insert");
        }
    }
    txn.commit().expect("commit");
}

/// A damaged-row error naming `table` and `what`.
fn names(e: &StoreError, table: &str, what: &str) -> bool {
    let text = e.to_string();
    matches!(e, StoreError::Other(_))
        && text.contains(&format!("table `{table}`"))
        && text.contains(what)
        && text.contains("damaged")
}

async fn claim(store: &RedbStore, before: u64, lease: u64) -> Result<Vec<PushJob>, StoreError> {
    store.claim_push_jobs(t(before), t(lease), 1_000).await
}

/// Jobs `ns`, claimed until `lease`, each checkpointed with a cursor of
/// the same length (so their records have the same length).
async fn jobs(store: &RedbStore, ns: impl Iterator<Item = u128>, lease: u64) -> Vec<PushJob> {
    let keys: Vec<JobKey> = ns.map(key).collect();
    store.add_push_jobs(keys.clone()).await.expect("add");
    let claimed = claim(store, 0, lease).await.expect("claim");
    assert_eq!(claimed.len(), keys.len());
    for j in &claimed {
        let mut cp = Checkpoint::of(j, t(lease));
        cp.cursor = Some("dev-0001".into());
        cp.handed = 1;
        cp.retries = vec![PushRetry {
            device_id: "dev-0000".into(),
            attempts: 1,
            due: t(100),
        }];
        assert_eq!(store.checkpoint_push(vec![cp]).await.expect("cp"), [true]);
    }
    claimed
}

/// Every cut of a job record is an error at a checkpoint of that job, at
/// a claim that reaches it and at `check_records`; none changes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cut_of_a_job_record_is_an_error_naming_the_job() {
    let dir = TempDir::new("push-cuts");
    let store = RedbStore::open(&dir.0).expect("open");
    jobs(&store, 1..=1, 1_000).await;
    store.close().await.expect("close");
    let good = read_job(&dir, 1);
    assert!(good.len() > 26, "a record with a cursor: {good:?}");

    // Job 1 stays intact; jobs 100.. are cut, one per length.
    let store = RedbStore::open(&dir.0).expect("reopen");
    let cut = |n: usize| 100 + n as u128;
    let claimed = jobs(&store, (0..good.len()).map(cut), 1_000).await;
    store.close().await.expect("close");
    let rows: Vec<(u128, Vec<u8>)> = (0..good.len())
        .map(|n| {
            let whole = read_job(&dir, cut(n));
            assert_eq!(whole.len(), good.len(), "shaped like job 1");
            (cut(n), whole[..n].to_vec())
        })
        .collect();
    overwrite(&dir, &rows);

    let store = RedbStore::open(&dir.0).expect("reopen damaged");
    let before = store.raw_tables().expect("tables");
    for (n, j) in claimed.iter().enumerate() {
        let mut cp = Checkpoint::of(j, t(2_000));
        cp.finished = true;
        let e = store
            .checkpoint_push(vec![cp])
            .await
            .expect_err("a cut record decoded");
        assert!(names(&e, "push_jobs", &job_name(cut(n))), "{n}: {e}");
        assert_eq!(
            store
                .push_retries(j.key, 10)
                .await
                .expect("retries do not need the record")
                .len(),
            1
        );
    }
    let e = claim(&store, u64::MAX, 5_000)
        .await
        .expect_err("the claim meets the cut records");
    assert!(names(&e, "push_jobs", &job_name(cut(0))), "{e}");
    assert_eq!(
        store.raw_tables().expect("tables"),
        before,
        "nothing changed, no token was issued"
    );
    assert!(
        claim(&store, 999, 5_000).await.expect("claim").is_empty(),
        "a claim that reaches no record is fine"
    );
    let e = store.check_records().expect_err("the damage is found");
    assert!(
        matches!(&e, RedbStoreError::Check(what) if what.contains(&job_name(cut(0))) && what.contains("push_jobs")),
        "{e}"
    );
    store.close().await.expect("close");
}

/// A record of a newer version (a downgrade) fails the requests that meet
/// it as a whole; the requests sent with them that meet no damage are
/// applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_job_record_fails_only_the_requests_that_meet_it() {
    let dir = TempDir::new("push-newer");
    let store = RedbStore::open(&dir.0).expect("open");
    // Job 1 (to be damaged) leased until 5000, job 2 until 1000.
    let bad = jobs(&store, 1..=1, 5_000).await.remove(0);
    let good = jobs(&store, 2..=2, 1_000).await.remove(0);
    store.close().await.expect("close");
    let mut newer = read_job(&dir, 1);
    newer[0] = 2;
    overwrite(&dir, &[(1, newer.clone())]);

    let store = RedbStore::open(&dir.0).expect("reopen");
    let is_bad = |e: &StoreError| names(e, "push_jobs", &job_name(1));
    let moved = |j: &PushJob, cursor: &str| {
        let mut cp = Checkpoint::of(j, t(1_000));
        cp.cursor = Some(cursor.into());
        cp
    };
    let (both, claimed, alone, added) = tokio::join!(
        store.checkpoint_push(vec![moved(&good, "from-both"), moved(&bad, "x")]),
        claim(&store, 6_000, 9_000),
        store.checkpoint_push(vec![moved(&good, "alone")]),
        store.add_push_jobs(vec![key(3)]),
    );
    for e in [
        both.expect_err("meets job 1"),
        claimed.expect_err("meets job 1"),
    ] {
        assert!(is_bad(&e), "{e}");
        assert!(e.to_string().contains("record version 2"), "{e}");
    }
    assert_eq!(alone.expect("meets no damage"), [true]);
    added.expect("meets no damage");
    // Up to 1000: job 3 (new) and job 2, with the cursor of the checkpoint
    // that was applied alone.
    let got = claim(&store, 1_000, 2_000).await.expect("claim");
    assert_eq!(
        got.iter().map(|j| j.key).collect::<Vec<_>>(),
        [key(2), key(3)]
    );
    assert_eq!(got[0].cursor.as_deref(), Some("alone"));
    let e = store.check_records().expect_err("found");
    assert!(e.to_string().contains(&job_name(1)), "{e}");
    store.close().await.expect("close");
    assert_eq!(read_job(&dir, 1), newer, "left as it was");
}

/// A lease entry whose job is gone, or whose job is leased until another
/// time, is an error naming the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_entry_that_disagrees_with_its_job_is_an_error() {
    let dir = TempDir::new("push-lease-entry");
    let store = RedbStore::open(&dir.0).expect("open");
    store
        .add_push_jobs(vec![key(1), key(2)])
        .await
        .expect("add");
    store.close().await.expect("close");
    {
        let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
        let txn = db.begin_write().expect("write");
        {
            let mut leases = txn.open_table(LEASES).expect("table");
            let (m, r) = row(1);
            leases.remove((0, m, r)).expect("remove");
            leases.insert((5, m, r), ()).expect("insert");
            txn.open_table(JOBS)
                .expect("table")
                .remove(row(2))
                .expect("remove");
        }
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(&dir.0).expect("reopen");
    let e = claim(&store, 0, 100).await.expect_err("an orphan entry");
    assert!(
        names(&e, "push_job_leases", &format!("(0, {})", job_name(2))),
        "{e}"
    );
    assert!(e.to_string().contains("no record"), "{e}");
    let e = store.check_records().expect_err("found");
    assert!(e.to_string().contains("push_job_leases"), "{e}");
    store.close().await.expect("close");
    {
        let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
        let txn = db.begin_write().expect("write");
        {
            let (m, r) = row(2);
            txn.open_table(LEASES)
                .expect("table")
                .remove((0, m, r))
                .expect("remove");
        }
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(&dir.0).expect("reopen");
    let e = claim(&store, 10, 100).await.expect_err("a moved entry");
    assert!(
        names(&e, "push_job_leases", &format!("(5, {})", job_name(1))),
        "{e}"
    );
    assert!(e.to_string().contains("leased until 0"), "{e}");
    store.close().await.expect("close");
}
