//! The `PushTransport` conformance suite, against a mock APNs that accepts
//! every notification.

mod support;

use herald::{Notification, Os, PushFuture, PushTransport};
use herald_apns::ApnsGateway;
use herald_testkit::mock_apns::MockApns;
use support::Setup;

/// The gateway and the mock it talks to, kept alive together.
#[derive(Debug)]
struct WithMock {
    gateway: ApnsGateway,
    _mock: MockApns,
}

impl PushTransport for WithMock {
    fn name(&self) -> &str {
        self.gateway.name()
    }

    fn send<'a>(&'a self, batch: &'a [Notification]) -> PushFuture<'a> {
        self.gateway.send(batch)
    }
}

async fn make() -> WithMock {
    let s = Setup::start().await;
    let gateway = s.gateway();
    assert_eq!(gateway.name(), "apns");
    WithMock {
        gateway,
        _mock: s.mock,
    }
}

herald_testkit::push_transport_conformance_tests!(make(), Os::Ios);
