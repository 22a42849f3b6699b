//! The `PushTransport` boundary: one push gateway (APNs, FCM, a test
//! double), and what goes through it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use herald_core::Tick;

use super::{NotificationId, Os, PushContent};
use crate::MessageId;

/// One notification to one device: what a [`PushTransport`] sends.
///
/// Platform-neutral: the gateway turns [`content`](Self::content) into its
/// own payload (the APNs `aps` dictionary, the FCM `message`), checks its
/// size, and maps [`expires_at`](Self::expires_at) and
/// [`collapse_key`](Self::collapse_key) to its headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Stable for one (message, run, device), across retries and restarts:
    /// the `apns-id`, and how a receiver spots a duplicate.
    pub id: NotificationId,
    /// The message it belongs to.
    pub message_id: MessageId,
    /// The device's id in the registry.
    pub device_id: String,
    /// The gateway's token for the device.
    pub device_token: String,
    /// The device's OS.
    pub os: Os,
    /// What it says, shared by every device that gets the same content.
    pub content: Arc<PushContent>,
    /// When it stops being worth sending: the run's time plus
    /// `pushTimeToLive` (APNs `apns-expiration`; FCM `android.ttl` is the
    /// time left when sending).
    pub expires_at: Tick,
    /// `pushCollapseKey` (APNs `apns-collapse-id`, FCM
    /// `android.collapse_key`).
    pub collapse_key: Option<String>,
}

/// What became of one notification handed to a gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The gateway accepted it.
    Sent,
    /// The gateway says the token is permanently invalid (APNs 410 or
    /// `BadDeviceToken`, FCM `UNREGISTERED`...): the device is removed from
    /// the registry unless it registered again after `at` (the gateway's
    /// time, APNs 410 `timestamp`; `None`: the time of sending).
    InvalidToken {
        /// The gateway's time for the refusal, if it gave one.
        at: Option<Tick>,
    },
    /// Worth trying again (a 429, 500, 503, a lost connection), no sooner
    /// than `after` if the gateway said (`Retry-After`).
    Retry {
        /// The gateway's `Retry-After`, if any.
        after: Option<Duration>,
    },
    /// Never worth trying again (a payload too large, a bad collapse id...).
    Failed {
        /// Why, for the message's `errorMessage` and the logs.
        reason: String,
    },
}

/// Why a gateway as a whole refuses to send: the pipeline pauses it
/// instead of trying device by device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The gateway refuses the credentials (APNs 403
    /// `InvalidProviderToken`, FCM `THIRD_PARTY_AUTH_ERROR`, a token
    /// endpoint that refuses the key): messages for it fail with `reason`
    /// until a probe (every 5 minutes) succeeds.
    Credentials {
        /// What the gateway said, for `errorMessage`.
        reason: String,
    },
    /// The gateway's quota is exhausted (FCM `QUOTA_EXCEEDED`): nothing is
    /// sent through it until `after` (or the pipeline's backoff).
    Quota {
        /// The gateway's `Retry-After`, if any.
        after: Option<Duration>,
    },
    /// The gateway is misconfigured in a way that makes every token look
    /// invalid (APNs sandbox/production mismatch): paused like refused
    /// credentials, and no token is removed.
    Misconfigured {
        /// What is wrong, for `errorMessage`.
        reason: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Credentials { reason } => {
                write!(f, "the gateway refuses the credentials: {reason}")
            }
            Self::Quota { after: Some(d) } => {
                write!(f, "the gateway's quota is exhausted for {} s", d.as_secs())
            }
            Self::Quota { after: None } => f.write_str("the gateway's quota is exhausted"),
            Self::Misconfigured { reason } => write!(f, "the gateway is misconfigured: {reason}"),
        }
    }
}

/// What a gateway answers for a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// One outcome per notification of the batch, in order.
    pub outcomes: Vec<Outcome>,
    /// Set when the gateway as a whole refuses; the notifications it did
    /// not attempt have [`Outcome::Retry`].
    pub refused: Option<Refusal>,
}

impl Delivery {
    /// Every notification of a batch of `n` with the same outcome.
    pub fn all(n: usize, outcome: Outcome) -> Self {
        Self {
            outcomes: vec![outcome; n],
            refused: None,
        }
    }
}

/// The future [`PushTransport::send`] returns.
pub type PushFuture<'a> = Pin<Box<dyn Future<Output = Delivery> + Send + 'a>>;

/// One push gateway.
///
/// # Contract
///
/// * [`send`](Self::send) takes a batch (at most [`MAX_BATCH`] notifications,
///   all for this gateway's OSes) and resolves to a [`Delivery`] with
///   exactly one [`Outcome`] per notification, in the batch's order. It
///   never fails as a whole: a lost connection is [`Outcome::Retry`] for
///   what it did not get an answer for.
/// * It never sends a notification after its `expires_at` by the
///   gateway's clock (it answers [`Outcome::Failed`] or lets the pipeline
///   drop it), and never resends one itself: retries are the pipeline's
///   (it owns the backoff and the time to live).
/// * When the gateway as a whole refuses (credentials, quota,
///   misconfiguration), it says so in [`Delivery::refused`], giving
///   [`Outcome::Retry`] to what it did not attempt; the pipeline then
///   pauses it. A payload over the gateway's size limit is
///   [`Outcome::Failed`] without a request.
/// * It may be called concurrently (the pipeline keeps a bounded number of
///   batches in flight per gateway) and must be cancel-safe: a dropped
///   `send` future leaves nothing half-done that breaks the next call.
///
/// `herald-testkit`'s `push_transport_conformance` checks what can be
/// checked from outside; [`RecordingTransport`](crate::RecordingTransport)
/// is a scriptable one for tests.
pub trait PushTransport: Send + Sync + fmt::Debug + 'static {
    /// Short name for logs and metrics (`apns`, `fcm`).
    fn name(&self) -> &str;

    /// Sends a batch; one outcome per notification, in order.
    fn send<'a>(&'a self, batch: &'a [Notification]) -> PushFuture<'a>;
}

/// The most notifications in one batch handed to a gateway.
pub const MAX_BATCH: usize = 1000;

impl<T: PushTransport + ?Sized> PushTransport for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn send<'a>(&'a self, batch: &'a [Notification]) -> PushFuture<'a> {
        (**self).send(batch)
    }
}
