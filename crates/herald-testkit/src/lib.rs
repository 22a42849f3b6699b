//! Test support for Herald (not published).
//!
//! * [`store_conformance`]: the checks every [`Store`](herald::Store)
//!   implementation must pass, and the [`store_conformance_tests!`] macro
//!   that turns them into one `#[tokio::test]` each for a given store.
//! * [`shared_store_conformance`]: what a store several engines share
//!   must also do (reservations by due time, hints;
//!   [`shared_store_conformance_tests!`]).
//! * [`transport_conformance`]: likewise for
//!   [`PubSubTransport`](herald::PubSubTransport) implementations
//!   ([`transport_conformance_tests!`]).
//! * [`registry_conformance`]: the checks for
//!   [`DeviceRegistry`](herald::DeviceRegistry) and
//!   [`TemplateStore`](herald::TemplateStore) implementations
//!   ([`registry_conformance_tests!`], [`template_conformance_tests!`]).
//! * [`push_job_conformance`]: the push-job part of the
//!   [`Store`](herald::Store) contract ([`push_job_conformance_tests!`]).
//! * [`push_transport_conformance`]: the checks for
//!   [`PushTransport`](herald::PushTransport) implementations
//!   ([`push_transport_conformance_tests!`]).
//! * [`bus_conformance`]: the checks for
//!   [`ClusterBus`](herald::bus::ClusterBus) implementations
//!   ([`bus_conformance_tests!`]).
//! * [`tls`] and [`h2_server`]: a test CA and an HTTP/2-over-TLS server,
//!   the base of the mock push gateways.
//! * [`mock_apns`]: a local APNs checking what Apple checks, with scripted answers.
//! * [`mock_fcm`]: a local FCM HTTP v1 and OAuth2 token endpoint checking what Google checks, with scripted answers.
//! * [`forward`]: [`forward_store!`] and [`forward_registry!`], the
//!   trait impls of a test fixture that owns a store.
//! * Re-exports [`ManualClock`], the clock tests drive
//!   by hand.
//!
//! # Example
//!
//! ```ignore
//! // In a store crate's tests/store_conformance.rs:
//! herald_testkit::store_conformance_tests!(async { my_crate::MyStore::open_temp().await });
//! ```
#![forbid(unsafe_code)]

pub mod bus_conformance;
pub mod forward;
pub mod h2_server;
pub mod mock_apns;
pub mod mock_fcm;
pub mod push_job_conformance;
pub mod push_transport_conformance;
pub mod registry_conformance;
pub mod shared_store_conformance;
pub mod store_conformance;
pub mod tls;
pub mod transport_conformance;

pub use herald::ManualClock;

/// For the macros ([`forward_store!`] and others): the crates they name.
#[doc(hidden)]
pub use herald as __herald;
#[doc(hidden)]
pub use herald_core::Tick as __Tick;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory under the system temp dir, removed on drop: one per
/// test, named after it and unique within the process.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `herald-test-{name}-{pid}-{n}`, emptied if it exists.
    pub fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "herald-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
