//! What the mock answers for a scripted device token ([`FcmScript`]), and
//! the [`Gate`] a test opens to release slow answers.

use std::sync::Arc;

use tokio::sync::watch;

/// How the mock answers a valid send to one device token.
#[derive(Clone, Debug)]
pub enum FcmScript {
    /// Google's error JSON with this status, error code and `Retry-After`.
    Error(ScriptedError),
    /// Waits until the gate opens, then answers as without a script.
    Slow(Gate),
}

/// A scripted Google error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptedError {
    /// The HTTP status.
    pub status: u16,
    /// The `google.firebase.fcm.v1.FcmError` detail's `errorCode`; `None`:
    /// no FCM detail (a bare status, as a proxy or a front end answers).
    pub error_code: Option<String>,
    /// The `Retry-After` header, if any (seconds or an HTTP date).
    pub retry_after: Option<String>,
}

impl ScriptedError {
    /// FCM's error `code` (`UNREGISTERED`, `SENDER_ID_MISMATCH`,
    /// `QUOTA_EXCEEDED`, `UNAVAILABLE`, `INTERNAL`,
    /// `THIRD_PARTY_AUTH_ERROR`, `INVALID_ARGUMENT`) with the status Google
    /// answers it with (404, 403, 429, 503, 500, 401, 400; 500 for one it
    /// does not know), no `Retry-After`.
    pub fn code(code: &str) -> Self {
        let status = match code {
            "INVALID_ARGUMENT" => 400,
            "THIRD_PARTY_AUTH_ERROR" | "APNS_AUTH_ERROR" => 401,
            "SENDER_ID_MISMATCH" => 403,
            "UNREGISTERED" => 404,
            "QUOTA_EXCEEDED" => 429,
            "UNAVAILABLE" => 503,
            _ => 500,
        };
        Self {
            status,
            error_code: Some(code.to_owned()),
            retry_after: None,
        }
    }

    /// A bare `status` without an FCM error code.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            error_code: None,
            retry_after: None,
        }
    }

    /// The same with another HTTP status (to show that the error code,
    /// not the status, decides).
    #[must_use]
    pub fn with_status(self, status: u16) -> Self {
        Self { status, ..self }
    }

    /// The same with a `Retry-After` header.
    #[must_use]
    pub fn with_retry_after(self, value: &str) -> Self {
        Self {
            retry_after: Some(value.to_owned()),
            ..self
        }
    }
}

impl From<ScriptedError> for FcmScript {
    fn from(e: ScriptedError) -> Self {
        Self::Error(e)
    }
}

/// Holds answers until a test opens it; counts what arrived at it, so a
/// test can wait for requests to be in flight without sleeping.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let gate = herald_testkit::mock_fcm::Gate::new();
/// let held = tokio::spawn({
///     let gate = gate.clone();
///     async move { gate.pass().await }
/// });
/// gate.until_arrived(1).await;
/// gate.open();
/// held.await.unwrap();
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Gate(Arc<watch::Sender<GateState>>);

#[derive(Clone, Copy, Debug, Default)]
struct GateState {
    open: bool,
    arrived: usize,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self(Arc::new(watch::Sender::new(GateState::default())))
    }

    /// Opens it for good: what waits goes on, what arrives passes.
    pub fn open(&self) {
        self.0.send_modify(|s| s.open = true);
    }

    /// How many arrived at it so far.
    pub fn arrived(&self) -> usize {
        self.0.borrow().arrived
    }

    /// Waits until at least `n` arrived.
    pub async fn until_arrived(&self, n: usize) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`: the wait cannot fail.
        let _ = rx.wait_for(|s| s.arrived >= n).await;
    }

    /// Arrives, and waits until it is open.
    pub async fn pass(&self) {
        let mut rx = self.0.subscribe();
        self.0.send_modify(|s| s.arrived += 1);
        let _ = rx.wait_for(|s| s.open).await;
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}
