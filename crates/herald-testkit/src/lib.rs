//! Test support for Herald (not published).
//!
//! * [`store_conformance`]: the checks every [`Store`](herald::Store)
//!   implementation must pass, and the [`store_conformance_tests!`] macro
//!   that turns them into one `#[tokio::test]` each for a given store.
//! * [`transport_conformance`]: likewise for
//!   [`PubSubTransport`](herald::PubSubTransport) implementations
//!   ([`transport_conformance_tests!`]).
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

pub mod store_conformance;
pub mod transport_conformance;

pub use herald::ManualClock;
