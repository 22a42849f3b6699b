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
///
/// On the wire (camelCase): `runs`, `pubsub`, `pushSent`, `pushFailed`,
/// `pushInvalidTokens`, `pushExpired`, and `pushPending`: the notifications
/// handed to the push pipeline ([`push_queued`](Self::push_queued)) that
/// have no final outcome yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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
    /// Push notifications dropped because their time to live ran out.
    pub push_expired: u64,
    /// Push notifications handed to the push pipeline (final or not).
    pub push_queued: u64,
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
        self.push_expired = self.push_expired.saturating_add(other.push_expired);
        self.push_queued = self.push_queued.saturating_add(other.push_queued);
    }

    /// Notifications handed to the pipeline with no final outcome yet.
    pub fn push_pending(&self) -> u64 {
        self.push_queued.saturating_sub(
            self.push_sent
                .saturating_add(self.push_failed)
                .saturating_add(self.push_invalid_tokens)
                .saturating_add(self.push_expired),
        )
    }

    /// The counters in their stored order (the stores' codecs use it).
    pub fn to_array(&self) -> [u64; 7] {
        [
            self.runs,
            self.pubsub,
            self.push_sent,
            self.push_failed,
            self.push_invalid_tokens,
            self.push_expired,
            self.push_queued,
        ]
    }

    /// The counters from [`to_array`](Self::to_array)'s order.
    pub fn from_array(a: [u64; 7]) -> Self {
        Self {
            runs: a[0],
            pubsub: a[1],
            push_sent: a[2],
            push_failed: a[3],
            push_invalid_tokens: a[4],
            push_expired: a[5],
            push_queued: a[6],
        }
    }
}

/// The wire form of [`DeliveryCounts`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCounts {
    #[serde(default)]
    runs: u64,
    #[serde(default)]
    pubsub: u64,
    #[serde(default)]
    push_sent: u64,
    #[serde(default)]
    push_failed: u64,
    #[serde(default)]
    push_invalid_tokens: u64,
    #[serde(default)]
    push_expired: u64,
    #[serde(default)]
    push_pending: u64,
}

impl Serialize for DeliveryCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireCounts {
            runs: self.runs,
            pubsub: self.pubsub,
            push_sent: self.push_sent,
            push_failed: self.push_failed,
            push_invalid_tokens: self.push_invalid_tokens,
            push_expired: self.push_expired,
            push_pending: self.push_pending(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DeliveryCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireCounts::deserialize(d)?;
        let finals = w
            .push_sent
            .saturating_add(w.push_failed)
            .saturating_add(w.push_invalid_tokens)
            .saturating_add(w.push_expired);
        Ok(Self {
            runs: w.runs,
            pubsub: w.pubsub,
            push_sent: w.push_sent,
            push_failed: w.push_failed,
            push_invalid_tokens: w.push_invalid_tokens,
            push_expired: w.push_expired,
            push_queued: finals.saturating_add(w.push_pending),
        })
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
///         "deliveries": {"runs": 0, "pubsub": 0, "pushSent": 0, "pushFailed": 0,
///                        "pushInvalidTokens": 0, "pushExpired": 0, "pushPending": 0}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_on_the_wire_report_pending_push() {
        let c = DeliveryCounts {
            runs: 1,
            pubsub: 2,
            push_sent: 3,
            push_failed: 1,
            push_invalid_tokens: 1,
            push_expired: 1,
            push_queued: 10,
        };
        assert_eq!(c.push_pending(), 4);
        let wire = serde_json::to_value(c).unwrap();
        assert_eq!(wire["pushPending"], 4);
        assert_eq!(wire["pushExpired"], 1);
        assert!(wire.get("pushQueued").is_none());
        let back: DeliveryCounts = serde_json::from_value(wire).unwrap();
        assert_eq!(back, c);
        assert_eq!(DeliveryCounts::from_array(c.to_array()), c);
        let mut sum = c;
        sum.add(&c);
        assert_eq!(sum.push_queued, 20);
        assert_eq!(sum.push_pending(), 8);
    }
}
