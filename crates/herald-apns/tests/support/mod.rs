//! What the gateway's integration tests share: a mock APNs with its own
//! clock, a gateway pointed at it with another clock, notifications.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::{Notification, Os};
use herald_apns::{ApnsConfig, ApnsGateway};
use herald_core::Tick;
use herald_testkit::ManualClock;
use herald_testkit::mock_apns::{MockApns, MockApnsOptions, TestApnsKey};

/// Where both clocks start (2023-11-14T22:13:20Z).
pub(crate) const START: u64 = 1_700_000_000_000;
/// The app's bundle id.
pub(crate) const TOPIC: &str = "com.example.app";
/// A minute in ms.
pub(crate) const MIN: u64 = 60_000;

/// A running mock and what a gateway needs to talk to it.
pub(crate) struct Setup {
    pub(crate) key: TestApnsKey,
    pub(crate) gateway_clock: ManualClock,
    pub(crate) mock_clock: ManualClock,
    pub(crate) mock: MockApns,
}

impl Setup {
    /// A mock with default options.
    pub(crate) async fn start() -> Self {
        Self::with(|_| {}).await
    }

    /// A mock with options tweaked by `tweak`.
    pub(crate) async fn with(tweak: impl FnOnce(&mut MockApnsOptions)) -> Self {
        let key = TestApnsKey::generate();
        let gateway_clock = ManualClock::new(Tick::from_millis(START));
        let mock_clock = ManualClock::new(Tick::from_millis(START));
        let mut options = MockApnsOptions::new(&key, TOPIC, Arc::new(mock_clock.clone()));
        tweak(&mut options);
        let mock = MockApns::start(options).await.expect("the mock starts");
        Self {
            key,
            gateway_clock,
            mock_clock,
            mock,
        }
    }

    /// Settings for a gateway that trusts the mock's CA only.
    pub(crate) fn config(&self) -> ApnsConfig {
        ApnsConfig::new(
            self.key.private_pem.clone(),
            self.key.key_id.clone(),
            self.key.team_id.clone(),
            TOPIC,
            self.mock.url(),
            herald_http2::client_tls_only(self.mock.ca_pem().as_bytes()).expect("the test CA"),
        )
    }

    /// A gateway with [`config`](Self::config) on the gateway clock.
    pub(crate) fn gateway(&self) -> ApnsGateway {
        self.gateway_with(self.config())
    }

    /// A gateway with `config` on the gateway clock.
    pub(crate) fn gateway_with(&self, config: ApnsConfig) -> ApnsGateway {
        ApnsGateway::new(config, Arc::new(self.gateway_clock.clone())).expect("a gateway")
    }

    /// Moves both clocks forward.
    pub(crate) fn advance(&self, ms: u64) {
        self.gateway_clock.advance(Duration::from_millis(ms));
        self.mock_clock.advance(Duration::from_millis(ms));
    }
}

/// Notification `n` for device token [`token`]`(n)`, expiring a day after
/// [`START`].
pub(crate) fn note(n: usize) -> Notification {
    Notification {
        expires_at: Tick::from_millis(START + 24 * 60 * MIN),
        ..herald_testkit::push_transport_conformance::notification(Os::Ios, n)
    }
}

/// Notifications `range`.
pub(crate) fn notes(range: std::ops::Range<usize>) -> Vec<Notification> {
    range.map(note).collect()
}

/// The device token of notification `n`.
pub(crate) fn token(n: usize) -> String {
    format!("{n:064x}")
}

/// Waits (yielding, never sleeping) until `done` holds: something real
/// sockets will make true. Panics after 20 s.
pub(crate) async fn until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
    }
}
