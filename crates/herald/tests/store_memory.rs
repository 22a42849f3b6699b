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
