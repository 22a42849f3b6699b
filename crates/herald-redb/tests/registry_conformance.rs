//! The `DeviceRegistry` and `TemplateStore` conformance suites
//! (`herald-testkit`), every check on a `RedbStore` in a fresh directory
//! that is removed afterwards; after each, the store's tables must agree
//! with each other (`check_records`).

use herald_redb::RedbStore;
use herald_testkit::TempDir;

/// A `RedbStore` in its own temporary directory; dropping it checks the
/// tables, closes the database (the store is dropped first) and removes
/// the directory.
#[derive(Debug)]
struct Scratch {
    store: RedbStore,
    _dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = TempDir::new("registry-conformance");
        let store = RedbStore::open(&dir.0).expect("open");
        Self { store, _dir: dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.store
                .check_records()
                .expect("records decode and the index tables agree");
        }
    }
}

herald_testkit::forward_registry!(Scratch => store);

herald_testkit::registry_conformance_tests!(async { Scratch::new() });
herald_testkit::template_conformance_tests!(async { Scratch::new() });
