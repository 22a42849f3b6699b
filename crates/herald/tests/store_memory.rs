//! The in-memory store passes the Store conformance suite.

herald_testkit::store_conformance_tests!(async { herald::MemoryStore::new() });

/// Retention: finished records beyond the limit are forgotten, oldest
/// first; unfinished ones never are.
#[tokio::test]
async fn retention_forgets_oldest_finished_only() {
    use herald::{Claim, Completion, DeliveryCounts, MemoryStore, Next, Start, Store};
    use herald_core::Tick;
    use herald_testkit::store_conformance::{id, small_envelope};

    let store = MemoryStore::with_retention(16); // one per shard
    for n in 0..200u128 {
        store
            .insert(small_envelope(n), Start::At(Tick::from_millis(10)))
            .await
            .unwrap();
    }
    // Finish the first 100, in order.
    for n in 0..100u128 {
        let c = Claim {
            id: id(n),
            due: Tick::from_millis(10),
        };
        let claimed = store.claim(vec![c], Tick::from_millis(99)).await.unwrap();
        let token = claimed[0].as_ref().expect("claimed").token;
        let applied = store
            .complete(vec![Completion {
                id: id(n),
                token,
                counts: DeliveryCounts::default(),
                next: Next::Done,
            }])
            .await
            .unwrap();
        assert_eq!(applied, vec![true]);
    }
    assert!(
        store.len() <= 100 + 16,
        "finished records beyond retention are purged: {}",
        store.len()
    );
    assert!(store.len() > 100, "some finished records are kept");
    assert_eq!(
        store.stats().purged,
        200 - store.len() as u64,
        "stats count what was forgotten"
    );
    for n in 100..200u128 {
        assert!(
            store.get(id(n)).await.unwrap().is_some(),
            "unfinished record {n} must never be purged"
        );
    }
    assert!(
        store.get(id(0)).await.unwrap().is_none(),
        "the oldest finished record goes first"
    );
    assert!(
        store.get(id(99)).await.unwrap().is_some(),
        "the newest finished record stays"
    );
}

herald_testkit::push_job_conformance_tests!(async { herald::MemoryStore::new() });

/// A finished message with an open push job is kept past the retention
/// count, and forgotten by count once its job ends.
#[tokio::test]
async fn an_open_push_job_keeps_its_message() {
    use herald::{Checkpoint, Claim, Completion, DeliveryCounts, JobKey, Next, Start, Store};
    use herald_core::Tick;
    use herald_testkit::store_conformance::{envelope, id};

    let store = herald::MemoryStore::with_retention(1);
    let finish = |n: u128| {
        let store = store.clone();
        async move {
            store
                .insert(envelope(n), Start::At(Tick::from_millis(5)))
                .await
                .unwrap();
            let c = store
                .claim(
                    vec![Claim {
                        id: id(n),
                        due: Tick::from_millis(5),
                    }],
                    Tick::from_millis(9),
                )
                .await
                .unwrap()
                .remove(0)
                .unwrap();
            let done = Completion {
                id: id(n),
                token: c.token,
                counts: DeliveryCounts::default(),
                next: Next::Done,
            };
            assert!(store.complete(vec![done]).await.unwrap()[0]);
        }
    };
    let key = JobKey {
        message: id(1),
        run: Tick::from_millis(5),
    };
    store.add_push_jobs(vec![key]).await.unwrap();
    finish(1).await;
    for n in 2..400 {
        finish(n).await;
    }
    assert!(
        store.get(id(1)).await.unwrap().is_some(),
        "kept while its job is open"
    );
    assert!(
        store.get(id(2)).await.unwrap().is_none(),
        "others are forgotten by count"
    );
    let job = store
        .claim_push_jobs(Tick::from_millis(0), Tick::from_millis(10), 10)
        .await
        .unwrap()
        .remove(0);
    let mut cp = Checkpoint::of(&job, Tick::from_millis(10));
    cp.finished = true;
    assert!(store.checkpoint_push(vec![cp]).await.unwrap()[0]);
    for n in 400..800 {
        finish(n).await;
    }
    assert!(
        store.get(id(1)).await.unwrap().is_none(),
        "forgotten after its job ended"
    );
}

/// A shared in-memory store (several engines in one process) passes both
/// suites.
mod shared {
    herald_testkit::store_conformance_tests!(async { herald::MemoryStore::new_shared() });
    herald_testkit::shared_store_conformance_tests!(async { herald::MemoryStore::new_shared() });
}

/// The default in-memory store is exclusive: it says so, reserves nothing
/// and gives no hints.
#[tokio::test]
async fn the_default_store_is_exclusive() {
    use herald::{MemoryStore, Store};
    use herald_core::Tick;

    let store = MemoryStore::new();
    assert!(!store.is_shared());
    assert!(store.due_hints().is_none());
    let err = store
        .reserve_due(Tick::ZERO, Tick::MAX, 10, 10)
        .await
        .expect_err("an exclusive store does not reserve");
    assert!(err.to_string().contains("not shared"), "{err}");
}
