//! The `DeviceRegistry` and `TemplateStore` conformance suites
//! (`herald-testkit`), every check on a `RedbStore` in a fresh directory
//! that is removed afterwards; after each, the store's tables must agree
//! with each other (`check_records`).

use std::sync::Arc;

use herald::{
    DeviceRegistration, DeviceRegistry, InvalidToken, Os, PushTemplate, StoreFuture, TemplateStore,
};
use herald_core::Tick;
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

impl DeviceRegistry for Scratch {
    fn register(&self, registration: DeviceRegistration) -> StoreFuture<'_, ()> {
        self.store.register(registration)
    }
    fn device<'a>(
        &'a self,
        device_id: &'a str,
    ) -> StoreFuture<'a, Option<Arc<DeviceRegistration>>> {
        self.store.device(device_id)
    }
    fn unregister<'a>(&'a self, device_id: &'a str) -> StoreFuture<'a, bool> {
        self.store.unregister(device_id)
    }
    fn channel_devices<'a>(
        &'a self,
        channel: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Arc<DeviceRegistration>>> {
        self.store.channel_devices(channel, after, limit)
    }
    fn remove_invalid(&self, tokens: Vec<InvalidToken>) -> StoreFuture<'_, Vec<bool>> {
        self.store.remove_invalid(tokens)
    }
    fn purge_expired(&self, now: Tick, limit: usize) -> StoreFuture<'_, usize> {
        self.store.purge_expired(now, limit)
    }
}

impl TemplateStore for Scratch {
    fn put_template(&self, template: PushTemplate) -> StoreFuture<'_, ()> {
        self.store.put_template(template)
    }
    fn template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Arc<PushTemplate>>> {
        self.store.template(name)
    }
    fn delete_template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        self.store.delete_template(name)
    }
    fn list_templates(&self, os: Option<Os>) -> StoreFuture<'_, Vec<Arc<PushTemplate>>> {
        self.store.list_templates(os)
    }
}

herald_testkit::registry_conformance_tests!(async { Scratch::new() });
herald_testkit::template_conformance_tests!(async { Scratch::new() });
