//! `MessageStatus`, `PublishStatus` and the delivery counters.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a message is in its life.
///
/// `scheduled` (accepted, waiting for its time or for more repetitions) →
/// `published` (the last run was delivered) | `failed` (with an error
/// message) | `cancelled`. An id the engine never issued is `unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishStatus {
    /// The last (or only) run was delivered to pub/sub and handed to push.
    Published,
    /// Accepted and waiting: for its `publishAt`, or for more repetitions.
    Scheduled,
    /// Delivery failed; see [`MessageStatus::error_message`].
    Failed,
    /// Cancelled before its last run.
    Cancelled,
    /// The engine never issued this id.
    Unknown,
}

impl PublishStatus {
    /// The wire name, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Scheduled => "scheduled",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for PublishStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many times, and to how many receivers, a message has been delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryCounts {
    /// Runs delivered so far (1 for a one-off message once published).
    pub runs: u64,
    /// Pub/sub deliveries so far: one per run per matching subscription.
    pub pubsub: u64,
    /// Push notifications the gateways accepted.
    pub push_sent: u64,
    /// Push notifications that failed for good.
    pub push_failed: u64,
    /// Push notifications refused because the device token is invalid.
    pub push_invalid_tokens: u64,
}

impl DeliveryCounts {
    /// Adds `other`'s counters to these (saturating).
    pub fn add(&mut self, other: &Self) {
        self.runs = self.runs.saturating_add(other.runs);
        self.pubsub = self.pubsub.saturating_add(other.pubsub);
        self.push_sent = self.push_sent.saturating_add(other.push_sent);
        self.push_failed = self.push_failed.saturating_add(other.push_failed);
        self.push_invalid_tokens = self
            .push_invalid_tokens
            .saturating_add(other.push_invalid_tokens);
    }
}

/// The answer to publish, status and cancel: Backendless's `MessageStatus`
/// plus Herald's delivery counters.
///
/// # Examples
///
/// ```
/// use herald::{MessageStatus, PublishStatus};
///
/// let s = MessageStatus::unknown("nope");
/// assert_eq!(
///     serde_json::to_value(&s)?,
///     serde_json::json!({
///         "messageId": "nope", "status": "unknown", "errorMessage": null,
///         "deliveries": {"runs": 0, "pubsub": 0, "pushSent": 0, "pushFailed": 0, "pushInvalidTokens": 0}
///     })
/// );
/// assert_eq!(s.status, PublishStatus::Unknown);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStatus {
    /// The message id, as issued at publish (or as asked for, if unknown).
    pub message_id: String,
    /// Where the message is in its life.
    pub status: PublishStatus,
    /// Why it failed, when `status` is `failed`.
    pub error_message: Option<String>,
    /// Delivery counters so far.
    #[serde(default)]
    pub deliveries: DeliveryCounts,
}

impl MessageStatus {
    /// The status of an id the engine never issued.
    pub fn unknown(id: &str) -> Self {
        Self {
            message_id: id.to_owned(),
            status: PublishStatus::Unknown,
            error_message: None,
            deliveries: DeliveryCounts::default(),
        }
    }
}
