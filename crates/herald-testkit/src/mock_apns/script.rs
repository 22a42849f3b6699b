//! Per-device-token scripts: how the mock answers a request that passed
//! every check, instead of `200`.

use std::fmt;
use std::sync::Arc;

use herald_core::Tick;
use tokio::sync::watch;

/// What the mock answers for one device token once a request passed its
/// checks. Set with [`MockApns::script`](super::MockApns::script); it
/// stays until [`clear_script`](super::MockApns::clear_script).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Script {
    /// `410 Unregistered` with `"timestamp": since` (ms) once the mock's
    /// clock has reached `since`; accepted before.
    Unregistered {
        /// When the token stopped being valid.
        since: Tick,
    },
    /// This status and reason (a `410` gets the mock's time as its
    /// `timestamp`), with `retry-after: <value>` if set.
    Reject {
        /// The HTTP status.
        status: u16,
        /// Apple's reason (`BadDeviceToken`, `TooManyRequests`...).
        reason: String,
        /// The `retry-after` header's value (seconds or an HTTP date).
        retry_after: Option<String>,
    },
    /// Holds the answer until the [`Gate`] opens, then accepts: a slow
    /// answer the test controls, without sleeping.
    Hold(Gate),
}

impl Script {
    /// `status reason`, without `retry-after`.
    pub fn reject(status: u16, reason: &str) -> Self {
        Self::Reject {
            status,
            reason: reason.to_owned(),
            retry_after: None,
        }
    }

    /// `400 BadDeviceToken`.
    pub fn bad_device_token() -> Self {
        Self::reject(400, "BadDeviceToken")
    }

    /// The same rejection with `retry-after: value`. Other scripts are
    /// returned as they are.
    #[must_use]
    pub fn with_retry_after(self, value: &str) -> Self {
        match self {
            Self::Reject { status, reason, .. } => Self::Reject {
                status,
                reason,
                retry_after: Some(value.to_owned()),
            },
            other => other,
        }
    }
}

/// A gate held answers wait at until the test opens it. Clones share it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let gate = herald_testkit::mock_apns::Gate::new();
/// let waiter = gate.clone();
/// let held = tokio::spawn(async move { waiter.passed().await });
/// gate.open();
/// held.await.unwrap();
/// assert!(gate.is_open());
/// # });
/// ```
#[derive(Clone)]
pub struct Gate {
    open: Arc<watch::Sender<bool>>,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self {
            open: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Opens it for good: every waiter goes on, and later ones do not wait.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Completes once the gate is open.
    pub async fn passed(&self) {
        let mut rx = self.open.subscribe();
        // The sender lives in `self`: this only ends when the gate opens.
        let _ = rx.wait_for(|open| *open).await;
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("open", &self.is_open())
            .finish()
    }
}
