//! The `PushTransport` conformance suite: `FcmGateway` against a mock FCM
//! that accepts everything.

use std::sync::Arc;

use herald::{ManualClock, Notification, Os, PushFuture, PushTransport};
use herald_core::Tick;
use herald_fcm::{FcmConfig, FcmGateway, ServiceAccount};
use herald_http2::PoolOptions;
use herald_testkit::mock_fcm::{MockFcm, MockFcmOptions, TEST_PRIVATE_KEY_PEM};

/// The gateway, keeping its mock alive as long as the suite uses it.
#[derive(Debug)]
struct WithMock {
    gateway: FcmGateway,
    _mock: MockFcm,
}

impl PushTransport for WithMock {
    fn name(&self) -> &str {
        self.gateway.name()
    }
    fn send<'a>(&'a self, batch: &'a [Notification]) -> PushFuture<'a> {
        self.gateway.send(batch)
    }
}

async fn fcm() -> WithMock {
    let clock = Arc::new(ManualClock::new(Tick::from_millis(1_700_000_000_000)));
    let mock = MockFcm::start(MockFcmOptions::new(clock.clone()))
        .await
        .unwrap();
    let config = FcmConfig {
        service_account: ServiceAccount::from_json(
            &mock.service_account_json(TEST_PRIVATE_KEY_PEM),
            None,
        )
        .unwrap(),
        base_url: mock.url(),
        tls: herald_http2::client_tls_only(mock.ca_pem().as_bytes()).unwrap(),
        pool: PoolOptions::default(),
    };
    let gateway = FcmGateway::new(config, clock).unwrap();
    assert_eq!(gateway.name(), "fcm");
    WithMock {
        gateway,
        _mock: mock,
    }
}

herald_testkit::push_transport_conformance_tests!(fcm(), Os::Android);
