//! `DeliveredMessage`: one run of a message, as a subscriber sees it, with
//! its wire frame serialized once and shared.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, TimeDelta, Utc};
use herald_core::Tick;
use serde_json::value::RawValue;

use crate::{Body, Envelope, MessageId};

/// One run of a message, as delivered to a subscription.
///
/// Cheap to clone (one reference count), so one run fans out to many
/// subscriptions without copying anything. Its wire form, the *frame*
/// ([`frame`](Self::frame)), is the shape Backendless's real-time API
/// delivers: `messageId`, `timestamp` (ms), `message`, `publisherId`,
/// `subtopic`, `headers` (string values), `publishAt`, `repeatEvery`,
/// `repeatExpiresAt` (0 when unset), and the other fields the SDKs expect
/// as `null`. It is serialized once per run, on first use, with the body's
/// bytes copied in unparsed, and shared by every receiver (in-process,
/// socket.io, polling), which wrap their own per-subscription fields around
/// it.
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
///     .publish("news", serde_json::json!("hello").into(), publish, DeliveryOptions::default())
///     .await?;
/// let delivered = sub.recv().await.unwrap().unwrap();
/// assert_eq!(delivered.message_id().to_string(), status.message_id);
/// assert_eq!(delivered.message().get(), r#""hello""#);
/// assert_eq!(delivered.headers()["lang"], "en");
/// let wire: serde_json::Value = serde_json::from_str(delivered.frame()).unwrap();
/// assert_eq!(wire["message"], "hello");
/// assert_eq!(wire["repeatEvery"], 0);
/// # engine.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DeliveredMessage(Arc<Run>);

struct Run {
    envelope: Arc<Envelope>,
    timestamp: Tick,
    /// The frame's size, roughly: computed once, read per receiver.
    weight: usize,
    frame: OnceLock<Box<str>>,
    raw: OnceLock<Box<RawValue>>,
}

impl DeliveredMessage {
    /// A run of `envelope` delivered at `timestamp`.
    pub fn new(envelope: Arc<Envelope>, timestamp: Tick) -> Self {
        Self(Arc::new(Run {
            weight: weight_of(&envelope),
            envelope,
            timestamp,
            frame: OnceLock::new(),
            raw: OnceLock::new(),
        }))
    }

    /// The message id (the same for every run).
    pub fn message_id(&self) -> MessageId {
        self.0.envelope.id
    }

    /// The channel it was published to.
    pub fn channel(&self) -> &str {
        &self.0.envelope.channel
    }

    /// When this run was delivered, in ms since the Unix epoch.
    pub fn timestamp_millis(&self) -> u64 {
        self.0.timestamp.as_millis()
    }

    /// When this run was delivered.
    pub fn timestamp(&self) -> DateTime<Utc> {
        ms_to_datetime(self.0.timestamp.as_millis())
    }

    /// The message body (raw JSON).
    pub fn message(&self) -> &Body {
        &self.0.envelope.body
    }

    /// The publisher id, if one was given.
    pub fn publisher_id(&self) -> Option<&str> {
        self.0.envelope.publish.publisher_id.as_deref()
    }

    /// The headers, values as strings.
    pub fn headers(&self) -> &BTreeMap<String, String> {
        &self.0.envelope.publish.headers
    }

    /// The `publishAt` the message was published with.
    pub fn publish_at(&self) -> Option<DateTime<Utc>> {
        self.0.envelope.delivery().publish_at
    }

    /// The `repeatEvery` the message was published with.
    pub fn repeat_every(&self) -> Option<TimeDelta> {
        self.0.envelope.delivery().repeat_every
    }

    /// The `repeatExpiresAt` the message was published with.
    pub fn repeat_expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.envelope.delivery().repeat_expires_at
    }

    /// The accepted message this run came from.
    pub fn envelope(&self) -> &Arc<Envelope> {
        &self.0.envelope
    }

    /// The frame: this run as Backendless's delivered-message JSON. Built
    /// on first use (one serialization per run, the body copied in as it
    /// is) and shared by every clone.
    pub fn frame(&self) -> &str {
        self.0.frame.get_or_init(|| self.build_frame().into())
    }

    /// The frame as a [`RawValue`], for serde-based writers (a socket.io
    /// emit): serializing it copies the frame's bytes. Checked once per
    /// run (one scan of the frame), shared by every clone.
    pub fn frame_raw(&self) -> &RawValue {
        self.0.raw.get_or_init(|| {
            RawValue::from_string(self.frame().to_owned()).unwrap_or_else(|_| {
                // Unreachable: the frame is built from valid JSON pieces.
                RawValue::from_string("null".to_owned()).expect("null is JSON")
            })
        })
    }

    /// Whether `other` is this very run (not merely an equal one): inboxes
    /// queue consecutive deliveries of one run once.
    pub(crate) fn same_run(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// About how many bytes this run keeps alive for a receiver that holds
    /// it (its frame's size, without building it): what byte budgets count.
    pub fn weight(&self) -> usize {
        self.0.weight
    }

    fn build_frame(&self) -> String {
        let e = &*self.0.envelope;
        let d = e.delivery();
        let ms = |t: Option<DateTime<Utc>>| t.map_or(0, |t| t.timestamp_millis());
        let mut out = String::with_capacity(self.weight());
        // `write!` into a `String` cannot fail.
        let _ = write!(
            out,
            "{{\"messageId\":\"{}\",\"timestamp\":{},\"message\":",
            e.id,
            self.0.timestamp.as_millis()
        );
        out.push_str(e.body.get());
        let _ = write!(
            out,
            ",\"publisherId\":{},\"subtopic\":{},\"headers\":{},\"publishAt\":{},\"repeatEvery\":{},\"repeatExpiresAt\":{}",
            json(&e.publish.publisher_id),
            json(&e.publish.subtopic),
            json(&e.publish.headers),
            ms(d.publish_at),
            d.repeat_every.map_or(0, |r| r.num_seconds()),
            ms(d.repeat_expires_at),
        );
        out.push_str(
            ",\"pushSinglecast\":null,\"pushBroadcast\":null,\"publishPolicy\":null,\
             \"templateValues\":null,\"query\":null}",
        );
        out
    }
}

/// The frame's fixed keys and numbers, roughly.
const FRAME_OVERHEAD: usize = 320;

fn weight_of(e: &Envelope) -> usize {
    let headers: usize = e
        .publish
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.len() + 6)
        .sum();
    e.body.len()
        + headers
        + e.channel.len()
        + e.publish.publisher_id.as_ref().map_or(0, String::len)
        + e.publish.subtopic.as_ref().map_or(0, String::len)
        + FRAME_OVERHEAD
}

/// A piece of the frame as JSON text.
fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    // Strings, optional strings and string maps always serialize.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

pub(crate) fn ms_to_datetime(ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl fmt::Debug for DeliveredMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveredMessage")
            .field("message_id", &self.message_id())
            .field("channel", &self.channel())
            .field("timestamp", &self.timestamp_millis())
            .field("message", self.message())
            .finish_non_exhaustive()
    }
}

impl serde::Serialize for DeliveredMessage {
    /// Serializes as the [`frame`](Self::frame).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.frame_raw().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeliveryOptions, DeliveryPlan, PublishOptions};
    use serde_json::{Value, json};

    fn envelope(body: &str, delivery: DeliveryOptions) -> Arc<Envelope> {
        let mut headers = BTreeMap::new();
        headers.insert("q\"uote".to_owned(), "ü\n".to_owned());
        Arc::new(Envelope {
            template: None,
            id: MessageId::from_u128(0x0190_B2E4_5A1C_7D3E_8F00_1234_5678_90AB),
            channel: "news".into(),
            accepted_at: Tick::from_millis(5),
            publish: PublishOptions {
                publisher_id: Some("p\\1".into()),
                headers,
                subtopic: None,
            },
            plan: Arc::new(DeliveryPlan::new(delivery).unwrap()),
            body: Body::from_json(body).unwrap(),
        })
    }

    #[test]
    fn the_frame_is_backendless_json_with_the_body_unparsed() {
        let delivery = DeliveryOptions {
            publish_at: DateTime::from_timestamp_millis(1_900_000_000_000),
            repeat_every: Some(TimeDelta::seconds(60)),
            ..DeliveryOptions::default()
        };
        let run = DeliveredMessage::new(
            envelope(r#"{ "k" : [1,2] }"#, delivery),
            Tick::from_millis(42),
        );
        let frame = run.frame();
        assert!(frame.contains(r#""message":{ "k" : [1,2] },"#), "{frame}");
        let v: Value = serde_json::from_str(frame).unwrap();
        assert_eq!(
            v,
            json!({
                "messageId": "0190B2E4-5A1C-7D3E-8F00-1234567890AB",
                "timestamp": 42,
                "message": {"k": [1, 2]},
                "publisherId": "p\\1",
                "subtopic": null,
                "headers": {"q\"uote": "ü\n"},
                "publishAt": 1_900_000_000_000u64,
                "repeatEvery": 60,
                "repeatExpiresAt": 0,
                "pushSinglecast": null, "pushBroadcast": null, "publishPolicy": null,
                "templateValues": null, "query": null,
            })
        );
        assert_eq!(
            serde_json::to_string(&run).unwrap(),
            frame,
            "serde writes the frame"
        );
        assert_eq!(run.frame_raw().get(), frame);
        assert!(run.weight() >= frame.len() / 2 && run.weight() <= frame.len() * 2);
    }

    #[test]
    fn clones_share_one_frame() {
        let run = DeliveredMessage::new(
            envelope("1", DeliveryOptions::default()),
            Tick::from_millis(1),
        );
        let other = run.clone();
        assert!(std::ptr::eq(run.frame(), other.frame()));
    }
}
