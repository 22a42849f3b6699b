//! Behaviour that depends on how `RedbStore` lays records out (claims in
//! the `firing` table, one-off outcomes in `outcomes`, finished ids left in
//! the `unfinished` index until `pending` meets them), checked through the
//! `Store` API and `check_records`, and across a reopen.

use herald::{CancelOutcome, Claim, Completion, DeliveryCounts, Next, Record, RunState, Store};
use herald_core::Tick;
use herald_redb::RedbStore;
use herald_testkit::TempDir;
use herald_testkit::store_conformance::{id, small_envelope};

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

fn scheduled(n: u128, due: u64) -> Record {
    Record {
        envelope: small_envelope(n),
        state: RunState::Scheduled { due: t(due) },
        counts: DeliveryCounts::default(),
    }
}

fn runs(n: u64) -> DeliveryCounts {
    DeliveryCounts {
        runs: n,
        pubsub: 2 * n,
        ..DeliveryCounts::default()
    }
}

fn done(n: u128, due: u64, next: Next) -> Completion {
    Completion {
        id: id(n),
        due: t(due),
        counts: runs(1),
        next,
    }
}

async fn claim(store: &RedbStore, n: u128, due: u64, lease: u64) -> bool {
    store
        .claim(
            vec![Claim {
                id: id(n),
                due: t(due),
            }],
            t(lease),
        )
        .await
        .expect("claim")[0]
        .is_some()
}

async fn state(store: &RedbStore, n: u128) -> (RunState, DeliveryCounts) {
    let r = store.get(id(n)).await.expect("get").expect("stored");
    (r.state, r.counts)
}

/// A finished one-off stays finished for every operation, a stale
/// completion still adds its counters, and all of it survives a reopen.
#[tokio::test]
async fn finished_one_offs_stay_finished_and_count_stale_runs() {
    let dir = TempDir::new("finished");
    let store = RedbStore::open(&dir.0).expect("open");
    for n in 1..=4 {
        store.insert(scheduled(n, 10)).await.expect("insert");
    }
    for n in 1..=4 {
        assert!(claim(&store, n, 10, 100).await);
    }
    store
        .complete(vec![
            done(1, 10, Next::Done),
            done(2, 10, Next::Failed("no route".into())),
            done(3, 10, Next::At(t(20))),
        ])
        .await
        .expect("complete");
    // 4: the lease runs out, the run is released and claimed again, and
    // both deliveries complete (at-least-once): one state change, two
    // runs counted.
    assert_eq!(store.release_expired(t(101)).await.expect("release"), 1);
    assert!(claim(&store, 4, 10, 200).await);
    store
        .complete(vec![done(4, 10, Next::Done)])
        .await
        .expect("complete");
    store
        .complete(vec![done(4, 10, Next::Done), done(1, 10, Next::Done)])
        .await
        .expect("stale completions");

    for reopen in [false, true] {
        let store = if reopen {
            store.close().await.expect("close");
            RedbStore::open(&dir.0).expect("reopen")
        } else {
            store.clone()
        };
        assert_eq!(state(&store, 1).await, (RunState::Published, runs(2)));
        assert_eq!(
            state(&store, 2).await,
            (
                RunState::Failed {
                    error: "no route".into()
                },
                runs(1)
            )
        );
        assert_eq!(
            state(&store, 3).await,
            (RunState::Scheduled { due: t(20) }, runs(1))
        );
        assert_eq!(state(&store, 4).await, (RunState::Published, runs(2)));
        // Finished: not claimable, not released, not cancellable.
        assert!(!claim(&store, 1, 10, 300).await);
        assert!(!claim(&store, 2, 10, 300).await);
        assert_eq!(store.release_expired(Tick::MAX).await.expect("release"), 0);
        assert!(matches!(
            store.cancel(id(1)).await.expect("cancel"),
            CancelOutcome::Finished(r) if r.state == RunState::Published
        ));
        let pending: Vec<_> = store
            .pending(None, 10)
            .await
            .expect("pending")
            .into_iter()
            .map(|r| r.envelope.id)
            .collect();
        assert_eq!(pending, vec![id(3)]);
        let check = store.check_records().expect("consistent");
        assert_eq!((check.records, check.unfinished, check.firing), (4, 1, 0));
        assert_eq!(check.outcomes, 3, "1, 2 and 4 finished by a completion");
    }
}

/// `pending` pages by id over an index that still holds finished ids: the
/// limit counts unfinished records only, and each comes exactly once.
#[tokio::test]
async fn pending_skips_finished_ids_left_in_the_index() {
    let dir = TempDir::new("pending");
    let store = RedbStore::open(&dir.0).expect("open");
    for n in 1..=40 {
        store.insert(scheduled(n, 10)).await.expect("insert");
    }
    // Finish every id divisible by 3 or 4 (a one-off outcome each).
    let finished: Vec<u128> = (1..=40).filter(|n| n % 3 == 0 || n % 4 == 0).collect();
    let claims = finished
        .iter()
        .map(|&n| Claim {
            id: id(n),
            due: t(10),
        })
        .collect();
    store.claim(claims, t(100)).await.expect("claim");
    store
        .complete(finished.iter().map(|&n| done(n, 10, Next::Done)).collect())
        .await
        .expect("complete");
    let check = store.check_records().expect("consistent");
    assert_eq!(
        (check.records, check.unfinished, check.indexed),
        (40, 40 - finished.len() as u64, 40),
        "finished ids stay indexed until pending meets them"
    );
    for _ in 0..2 {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.pending(after, 4).await.expect("pending");
            assert!(page.len() <= 4);
            if page.is_empty() {
                break;
            }
            after = page.last().map(|r| r.envelope.id);
            seen.extend(page.into_iter().map(|r| r.envelope.id));
        }
        let want: Vec<_> = (1..=40).filter(|n| !finished.contains(n)).map(id).collect();
        assert_eq!(seen, want);
        // `pending` had the finished ids it met removed; any write after
        // it is applied after that.
        store.release_expired(t(0)).await.expect("a write");
        let check = store.check_records().expect("consistent");
        assert_eq!(check.records, 40);
        assert_eq!(check.indexed, check.unfinished, "the index was tidied");
    }
    store.close().await.expect("close");
}

/// `RedbStore` is a cheap, shareable handle.
#[test]
fn the_store_is_clone_debug_send_sync() {
    fn check<T: Clone + std::fmt::Debug + Send + Sync + 'static>() {}
    check::<RedbStore>();
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    error::<herald_redb::RedbStoreError>();
    let dir = TempDir::new("debug");
    let store = RedbStore::open(&dir.0).expect("open");
    let text = format!("{store:?}");
    assert!(
        text.contains("herald.redb") && text.contains("closed: false"),
        "{text}"
    );
}
