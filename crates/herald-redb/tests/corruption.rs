//! Damaged files: a record overwritten with garbage (or written by a
//! future format) and an unknown store format version are reported as
//! errors naming the problem, never as panics or silently wrong data.

use herald::{
    CancelOutcome, Claim, Completion, DeliveryCounts, Next, Record, RunState, Store, StoreError,
};
use herald_core::Tick;
use herald_redb::{FILE_NAME, RedbStore, RedbStoreError};
use herald_testkit::TempDir;
use herald_testkit::store_conformance::{id, small_envelope};
use redb::{Database, TableDefinition};

const MESSAGES: TableDefinition<'static, u128, &'static [u8]> = TableDefinition::new("messages");
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");

fn scheduled(n: u128, due: u64) -> Record {
    Record {
        envelope: small_envelope(n),
        state: RunState::Scheduled {
            due: Tick::from_millis(due),
        },
        counts: DeliveryCounts::default(),
    }
}

/// Overwrites the stored bytes of message `n` behind the store's back.
fn overwrite(dir: &TempDir, n: u128, bytes: &[u8]) {
    let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
    let txn = db.begin_write().expect("write");
    txn.open_table(MESSAGES)
        .expect("table")
        .insert(id(n).as_u128(), bytes)
        .expect("insert");
    txn.commit().expect("commit");
}

fn is_other_mentioning(e: &StoreError, needle: &str) -> bool {
    matches!(e, StoreError::Other(_)) && e.to_string().contains(needle)
}

#[tokio::test]
async fn a_damaged_record_is_an_error_and_does_not_stop_the_others() {
    let dir = TempDir::new("record");
    let store = RedbStore::open(&dir.0).expect("open");
    for n in 1..=3 {
        store.insert(scheduled(n, 10)).await.expect("insert");
    }
    store.close().await.expect("close");

    // Record 2: garbage; record 3: a format version from the future.
    overwrite(&dir, 2, b"\x01\x00not a record");
    let mut future = vec![9u8; 80];
    future[1] = 0;
    overwrite(&dir, 3, &future);

    let store = RedbStore::open(&dir.0).expect("reopen");
    let e = store.get(id(2)).await.expect_err("garbage");
    assert!(is_other_mentioning(&e, "corrupt"), "{e}");
    assert!(
        e.to_string().contains(&id(2).to_string()),
        "names the id: {e}"
    );
    let e = store.get(id(3)).await.expect_err("future version");
    assert!(is_other_mentioning(&e, "version 9"), "{e}");
    assert_eq!(
        store.get(id(1)).await.expect("intact").map(|r| r.state),
        Some(RunState::Scheduled {
            due: Tick::from_millis(10)
        })
    );

    // Reading every unfinished record reports the damage.
    let e = store.pending(None, 10).await.expect_err("pending");
    assert!(is_other_mentioning(&e, "corrupt"), "{e}");
    assert!(store.check_records().is_err());
    let e = store.cancel(id(2)).await.expect_err("cancel");
    assert!(is_other_mentioning(&e, "corrupt"), "{e}");

    // A batch claim skips the damaged records and claims the rest.
    let claims = (1..=3)
        .map(|n| Claim {
            id: id(n),
            due: Tick::from_millis(10),
        })
        .collect();
    let got = store
        .claim(claims, Tick::from_millis(100))
        .await
        .expect("claim");
    let got: Vec<bool> = got.iter().map(Option::is_some).collect();
    assert_eq!(got, vec![true, false, false]);
    // Completions of damaged records are skipped, the others applied.
    let done = |n| Completion {
        id: id(n),
        due: Tick::from_millis(10),
        counts: DeliveryCounts {
            runs: 1,
            ..DeliveryCounts::default()
        },
        next: Next::Done,
    };
    store
        .complete(vec![done(2), done(1), done(3)])
        .await
        .expect("complete");
    assert_eq!(
        store.get(id(1)).await.expect("get").map(|r| r.state),
        Some(RunState::Published)
    );
    assert!(matches!(
        store.cancel(id(1)).await.expect("cancel"),
        CancelOutcome::Finished(_)
    ));
    assert_eq!(store.release_expired(Tick::MAX).await.expect("release"), 0);
    store.close().await.expect("close");
}

#[tokio::test]
async fn an_unknown_store_format_version_is_refused() {
    let dir = TempDir::new("version");
    let store = RedbStore::open(&dir.0).expect("open");
    store.close().await.expect("close");
    {
        let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
        let txn = db.begin_write().expect("write");
        txn.open_table(META)
            .expect("meta")
            .insert("format_version", 2)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let e = RedbStore::open(&dir.0).expect_err("version 2");
    assert!(matches!(e, RedbStoreError::Version { found: 2, .. }), "{e}");
    assert!(e.to_string().contains("version 2"), "{e}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = TempDir::new("garbage");
    std::fs::create_dir_all(&dir.0).expect("dir");
    std::fs::write(dir.0.join(FILE_NAME), vec![0x5A; 10_000]).expect("write");
    let e = RedbStore::open(&dir.0).expect_err("not redb");
    assert!(matches!(e, RedbStoreError::Redb(_)), "{e}");
}

#[tokio::test]
async fn records_the_engine_could_not_read_back_are_refused_at_insert() {
    let dir = TempDir::new("insert");
    let store = RedbStore::open(&dir.0).expect("open");
    let mut envelope = (*small_envelope(1)).clone();
    envelope.delivery.repeat_every = Some(chrono::TimeDelta::milliseconds(1500));
    let record = Record {
        envelope: envelope.into(),
        ..scheduled(1, 10)
    };
    let e = store.insert(record).await.expect_err("refused");
    assert!(is_other_mentioning(&e, "repeatEvery"), "{e}");
    assert!(store.get(id(1)).await.expect("get").is_none());
    store.close().await.expect("close");
}
