//! The `Store` conformance suite and the push-job conformance suite
//! (`herald-testkit`), every check on a `RedbStore` in a fresh directory
//! that is removed afterwards (after `check_records` found every table
//! consistent).

use std::sync::Arc;

use herald_core::Tick;
use herald_redb::{RedbOptions, RedbStore};
use herald_testkit::TempDir;

/// A `RedbStore` in its own temporary directory; dropping it closes the
/// database (the store is dropped first) and removes the directory.
#[derive(Debug)]
struct Scratch {
    store: RedbStore,
    _dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = TempDir::new("conformance");
        // The suite's times are small numbers of ms: the store's clock
        // (finish times, key expiry) starts at 0 too.
        let clock = herald::ManualClock::new(Tick::from_millis(0));
        let store = RedbStore::open_with(
            &dir.0,
            RedbOptions {
                clock: Arc::new(clock),
                ..RedbOptions::default()
            },
        )
        .expect("open");
        assert!(store.path().starts_with(&dir.0));
        Self { store, _dir: dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Every record the check left must still decode, and the tables
        // agree with each other. (The directory goes with `_dir`.)
        if !std::thread::panicking() {
            let check = self
                .store
                .check_records()
                .expect("records and tables intact");
            assert_eq!(check.quarantined, 0, "{check:?}");
        }
    }
}

herald_testkit::forward_store!(Scratch => store);

herald_testkit::store_conformance_tests!(async { Scratch::new() });

mod push_jobs {
    use super::Scratch;

    herald_testkit::push_job_conformance_tests!(async { Scratch::new() });
}
