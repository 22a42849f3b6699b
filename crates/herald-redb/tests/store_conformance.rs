//! The `Store` conformance suite (`herald-testkit`), every check on a
//! `RedbStore` in a fresh directory that is removed afterwards.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use herald::{CancelOutcome, Claim, Completion, Envelope, MessageId, Record, Store, StoreFuture};
use herald_core::Tick;
use herald_redb::RedbStore;

/// A `RedbStore` in its own temporary directory; dropping it closes the
/// database (the store is dropped first) and removes the directory.
#[derive(Debug)]
struct Scratch {
    store: RedbStore,
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "herald-redb-conformance-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = RedbStore::open(&dir).expect("open");
        assert!(store.path().starts_with(&dir));
        Self { store, dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Every record the check left must still decode, and the indexes
        // agree with the records.
        if !std::thread::panicking() {
            self.store
                .check_records()
                .expect("records and indexes intact");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Store for Scratch {
    fn insert(&self, record: Record) -> StoreFuture<'_, ()> {
        self.store.insert(record)
    }
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        self.store.get(id)
    }
    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Arc<Envelope>>>> {
        self.store.claim(claims, lease_until)
    }
    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, ()> {
        self.store.complete(completions)
    }
    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome> {
        self.store.cancel(id)
    }
    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<Record>> {
        self.store.pending(after, limit)
    }
    fn release_expired(&self, before: Tick) -> StoreFuture<'_, u64> {
        self.store.release_expired(before)
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        self.store.close()
    }
}

herald_testkit::store_conformance_tests!(async { Scratch::new() });
