//! Shared set-up of the gateway tests: a mock FCM, a gateway configured
//! the way the server does it (key file, url, ca_file), notifications.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use herald::{ManualClock, MessageId, Notification, NotificationId, Os, PushContent};
use herald_core::Tick;
use herald_fcm::{FcmConfig, FcmGateway};
use herald_http2::PoolOptions;
use herald_testkit::TempDir;
use herald_testkit::mock_fcm::{MockFcm, MockFcmOptions, TEST_PRIVATE_KEY_PEM};

/// 2023-11-14T22:13:20Z.
pub const START: u64 = 1_700_000_000_000;

/// A mock, a gateway to it, their clock and the folder of the key files.
pub struct Fcm {
    pub clock: ManualClock,
    pub mock: MockFcm,
    pub gateway: FcmGateway,
    pub dir: TempDir,
}

/// A mock with `tweak`ed options and a gateway to it with `pool` options,
/// built from files as the server builds it.
pub async fn start(name: &str, tweak: impl FnOnce(&mut MockFcmOptions), pool: PoolOptions) -> Fcm {
    let clock = ManualClock::new(Tick::from_millis(START));
    let mut options = MockFcmOptions::new(Arc::new(clock.clone()));
    tweak(&mut options);
    let mock = MockFcm::start(options).await.expect("the mock starts");
    let dir = TempDir::new(name);
    std::fs::create_dir_all(&dir.0).unwrap();
    let gateway = gateway(&mock, &clock, &dir, TEST_PRIVATE_KEY_PEM, pool);
    Fcm {
        clock,
        mock,
        gateway,
        dir,
    }
}

/// A mock with default options and a gateway with default pool options.
pub async fn start_default(name: &str) -> Fcm {
    start(name, |_| {}, PoolOptions::default()).await
}

/// A gateway to `mock` signing with `key_pem`, from files in `dir`.
pub fn gateway(
    mock: &MockFcm,
    clock: &ManualClock,
    dir: &TempDir,
    key_pem: &str,
    pool: PoolOptions,
) -> FcmGateway {
    let key_file = mock.write_service_account(&dir.0, key_pem);
    let ca_file = mock.write_ca_file(&dir.0);
    let mut config = FcmConfig::from_files(&key_file, &mock.url(), Some(&ca_file)).unwrap();
    config.pool = pool;
    FcmGateway::new(config, Arc::new(clock.clone())).unwrap()
}

/// A notification to device token `token`, expiring an hour from [`START`].
pub fn note(token: &str) -> Notification {
    note_with(
        token,
        PushContent {
            title: Some("Hello".into()),
            body: Some(format!("for {token}")),
            ..PushContent::default()
        },
    )
}

/// A notification with `content`, expiring an hour from [`START`].
pub fn note_with(token: &str, content: PushContent) -> Notification {
    let message_id = MessageId::from_u128(42);
    Notification {
        id: NotificationId::of(message_id, Tick::from_millis(START), token),
        message_id,
        device_id: format!("device-{token}"),
        device_token: token.to_owned(),
        os: Os::Android,
        content: Arc::new(content),
        expires_at: Tick::from_millis(START + 3_600_000),
        collapse_key: None,
    }
}

/// Notifications to tokens `tok-0` ... `tok-{n-1}`.
pub fn batch(n: usize) -> Vec<Notification> {
    (0..n).map(|i| note(&format!("tok-{i}"))).collect()
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
