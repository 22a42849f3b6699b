//! `Envelope` (a message as accepted) and `DeliveredMessage` (one run of it,
//! as a subscriber sees it).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use herald_core::Tick;
use serde::ser::SerializeMap;
use serde_json::Value;

use crate::{DeliveryOptions, MessageId, PublishOptions};

/// A message as the engine accepted it: immutable from publish on. Stores
/// persist it; every run is delivered from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The id issued at publish.
    pub id: MessageId,
    /// The channel it was published to.
    pub channel: String,
    /// The message body, any JSON value.
    pub message: Value,
    /// Publisher id, headers, subtopic.
    pub publish: PublishOptions,
    /// Timing, repetition and push targeting.
    pub delivery: DeliveryOptions,
    /// When the engine accepted it.
    pub accepted_at: Tick,
}

/// One run of a message, as delivered to a subscription.
///
/// Cheap to clone (a reference count and a timestamp), so one run fans out
/// to many subscriptions without copying the body. Serializes to the shape
/// Backendless's real-time API delivers: `messageId`, `timestamp` (ms),
/// `message`, `publisherId`, `headers` (string values), `publishAt`,
/// `repeatEvery`, `repeatExpiresAt` (0 when unset), and the other fields the
/// SDKs expect as `null`.
///
/// # Examples
///
/// ```
/// # use herald::{Engine, DeliveryOptions, PublishOptions};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald::Error> {
/// let engine = Engine::builder().build();
/// let mut sub = engine.subscribe("news", None)?;
/// let mut publish = PublishOptions::default();
/// publish.headers.insert("lang".into(), "en".into());
/// let status = engine
///     .publish("news", serde_json::json!("hello"), publish, DeliveryOptions::default())
///     .await?;
/// let delivered = sub.recv().await.unwrap().unwrap();
/// assert_eq!(delivered.message_id().to_string(), status.message_id);
/// assert_eq!(delivered.message(), "hello");
/// assert_eq!(delivered.headers()["lang"], "en");
/// let wire = serde_json::to_value(&delivered).unwrap();
/// assert_eq!(wire["repeatEvery"], 0);
/// # engine.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct DeliveredMessage {
    envelope: Arc<Envelope>,
    timestamp: Tick,
}

impl DeliveredMessage {
    /// A run of `envelope` delivered at `timestamp`.
    pub fn new(envelope: Arc<Envelope>, timestamp: Tick) -> Self {
        Self {
            envelope,
            timestamp,
        }
    }

    /// The message id (the same for every run).
    pub fn message_id(&self) -> MessageId {
        self.envelope.id
    }

    /// The channel it was published to.
    pub fn channel(&self) -> &str {
        &self.envelope.channel
    }

    /// When this run was delivered, in ms since the Unix epoch.
    pub fn timestamp_millis(&self) -> u64 {
        self.timestamp.as_millis()
    }

    /// When this run was delivered.
    pub fn timestamp(&self) -> DateTime<Utc> {
        ms_to_datetime(self.timestamp.as_millis())
    }

    /// The message body.
    pub fn message(&self) -> &Value {
        &self.envelope.message
    }

    /// The publisher id, if one was given.
    pub fn publisher_id(&self) -> Option<&str> {
        self.envelope.publish.publisher_id.as_deref()
    }

    /// The headers, values as strings.
    pub fn headers(&self) -> &BTreeMap<String, String> {
        &self.envelope.publish.headers
    }

    /// The `publishAt` the message was published with.
    pub fn publish_at(&self) -> Option<DateTime<Utc>> {
        self.envelope.delivery.publish_at
    }

    /// The `repeatEvery` the message was published with.
    pub fn repeat_every(&self) -> Option<TimeDelta> {
        self.envelope.delivery.repeat_every
    }

    /// The `repeatExpiresAt` the message was published with.
    pub fn repeat_expires_at(&self) -> Option<DateTime<Utc>> {
        self.envelope.delivery.repeat_expires_at
    }

    /// The accepted message this run came from.
    pub fn envelope(&self) -> &Arc<Envelope> {
        &self.envelope
    }
}

pub(crate) fn ms_to_datetime(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl serde::Serialize for DeliveredMessage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = &*self.envelope;
        let d = &e.delivery;
        let ms = |t: Option<DateTime<Utc>>| t.map_or(0, |t| t.timestamp_millis());
        let mut m = s.serialize_map(Some(15))?;
        m.serialize_entry("messageId", &e.id)?;
        m.serialize_entry("timestamp", &self.timestamp.as_millis())?;
        m.serialize_entry("message", &e.message)?;
        m.serialize_entry("publisherId", &e.publish.publisher_id)?;
        m.serialize_entry("subtopic", &e.publish.subtopic)?;
        m.serialize_entry("headers", &e.publish.headers)?;
        m.serialize_entry("publishAt", &ms(d.publish_at))?;
        m.serialize_entry(
            "repeatEvery",
            &d.repeat_every.map_or(0, |r| r.num_seconds()),
        )?;
        m.serialize_entry("repeatExpiresAt", &ms(d.repeat_expires_at))?;
        m.serialize_entry("pushSinglecast", &None::<()>)?;
        m.serialize_entry("pushBroadcast", &None::<()>)?;
        m.serialize_entry("publishPolicy", &None::<()>)?;
        m.serialize_entry("templateValues", &None::<()>)?;
        m.serialize_entry("query", &None::<()>)?;
        m.end()
    }
}
