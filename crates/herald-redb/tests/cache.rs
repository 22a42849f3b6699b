//! redb's page cache is bounded by `RedbOptions::cache_bytes`, whatever
//! the number of messages: a store holding more pages than its bound keeps
//! at most the bound in memory, and a larger bound keeps more (so the
//! option is what bounds it). `RedbStore::cache_used_bytes` says how much.

use std::sync::Arc;

use herald::{ManualClock, Start, Store};
use herald_core::Tick;
use herald_redb::{DEFAULT_CACHE_BYTES, RedbOptions, RedbStore};
use herald_testkit::TempDir;
use herald_testkit::store_conformance::small_envelope;

const T0: u64 = 1_800_000_000_000;
const MESSAGES: u128 = 3_000;

/// A store bounded to `cache_bytes` after `MESSAGES` scheduled inserts, and
/// what its cache holds.
async fn filled(cache_bytes: usize) -> (TempDir, RedbStore, usize) {
    let dir = TempDir::new("herald-redb-cache");
    let store = RedbStore::open_with(
        &dir.0,
        RedbOptions {
            cache_bytes,
            clock: Arc::new(ManualClock::new(Tick::from_millis(T0))),
            ..RedbOptions::default()
        },
    )
    .expect("open");
    // Concurrently, so they share commits.
    let inserts: Vec<_> = (0..MESSAGES)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let due = Tick::from_millis(T0 + 3_600_000);
                store.insert(small_envelope(n + 1), Start::At(due)).await
            })
        })
        .collect();
    for insert in inserts {
        insert.await.expect("task").expect("insert");
    }
    // Read everything back: the pages go through the read cache too.
    let pending = store
        .pending(None, MESSAGES as usize)
        .await
        .expect("pending");
    assert_eq!(pending.len() as u128, MESSAGES);
    let used = store.cache_used_bytes();
    (dir, store, used)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_cache_stays_within_its_bound() {
    const SMALL: usize = 64 << 10;
    let (_dir, small, used_small) = filled(SMALL).await;
    let file = std::fs::metadata(small.path()).expect("file").len() as usize;
    assert!(
        file > 4 * SMALL,
        "the file ({file} B) outgrows the small cache"
    );
    assert!(
        used_small <= SMALL,
        "the cache holds {used_small} B, over its {SMALL} B bound"
    );
    assert!(used_small > 0, "the cache holds pages");
    let (_dir, _large, used_large) = filled(DEFAULT_CACHE_BYTES).await;
    assert!(
        used_large > 2 * SMALL,
        "with the default bound the cache keeps more ({used_large} B): the option bounds it"
    );
}
