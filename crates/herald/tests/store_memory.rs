//! The in-memory store passes the Store conformance suite.

herald_testkit::store_conformance_tests!(async { herald::MemoryStore::new() });

/// Retention: finished records beyond the limit are forgotten, oldest
/// first; unfinished ones never are.
#[tokio::test]
async fn retention_forgets_oldest_finished_only() {
    use herald::{Claim, Completion, DeliveryCounts, MemoryStore, Next, Record, RunState, Store};
    use herald_core::Tick;
    use herald_testkit::store_conformance::{id, small_envelope};

    let store = MemoryStore::with_retention(16); // one per shard
    for n in 0..200u128 {
        let state = RunState::Scheduled {
            due: Tick::from_millis(10),
        };
        store
            .insert(Record {
                envelope: small_envelope(n),
                state,
                counts: DeliveryCounts::default(),
            })
            .await
            .unwrap();
    }
    // Finish the first 100, in order.
    for n in 0..100u128 {
        let c = Claim {
            id: id(n),
            due: Tick::from_millis(10),
        };
        assert!(store.claim(vec![c], Tick::from_millis(99)).await.unwrap()[0].is_some());
        store
            .complete(vec![Completion {
                id: id(n),
                due: c.due,
                counts: DeliveryCounts::default(),
                next: Next::Done,
            }])
            .await
            .unwrap();
    }
    assert!(
        store.len() <= 100 + 16,
        "finished records beyond retention are purged: {}",
        store.len()
    );
    assert!(store.len() > 100, "some finished records are kept");
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
