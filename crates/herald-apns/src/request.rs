//! The request for one notification: `POST /3/device/<token>` and its
//! headers, everything but the provider token (added per attempt, so a
//! notification can be resent with a new one).
//!
//! | Header | Value |
//! |---|---|
//! | `authorization` | `bearer <provider token>` |
//! | `apns-topic` | the app's bundle id |
//! | `apns-push-type` | `background` for a background push, else `alert` |
//! | `apns-priority` | `5` for a background push, else `10` |
//! | `apns-expiration` | the notification's `expires_at`, in Unix seconds |
//! | `apns-collapse-id` | the collapse key, if any (at most 64 bytes) |
//! | `apns-id` | the [`NotificationId`](herald::NotificationId): stable across retries |

use std::fmt::Write as _;

use bytes::Bytes;
use herald::Notification;
use herald_core::Tick;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, Request, Uri};

/// The longest `apns-collapse-id` APNs takes (bytes).
pub const MAX_COLLAPSE_ID_BYTES: usize = 64;

/// `apns-topic`.
pub(crate) const APNS_TOPIC: HeaderName = HeaderName::from_static("apns-topic");
/// `apns-push-type`.
pub(crate) const APNS_PUSH_TYPE: HeaderName = HeaderName::from_static("apns-push-type");
/// `apns-priority`.
pub(crate) const APNS_PRIORITY: HeaderName = HeaderName::from_static("apns-priority");
/// `apns-expiration`.
pub(crate) const APNS_EXPIRATION: HeaderName = HeaderName::from_static("apns-expiration");
/// `apns-collapse-id`.
pub(crate) const APNS_COLLAPSE_ID: HeaderName = HeaderName::from_static("apns-collapse-id");
/// `apns-id`.
pub(crate) const APNS_ID: HeaderName = HeaderName::from_static("apns-id");

/// A notification ready to go, but for its provider token.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// `/3/device/<token>`, on the pool's scheme and host (built once
    /// here, cloned per attempt).
    uri: Uri,
    /// The header values, ready; [`request`](Prepared::request) puts them
    /// in a map made for the attempt (the map goes to h2, which consumes
    /// it: building it there costs what cloning a prepared one would, so
    /// a prepared map would only be one more copy).
    topic: HeaderValue,
    background: bool,
    expiration: HeaderValue,
    collapse_id: Option<HeaderValue>,
    id: HeaderValue,
    body: Bytes,
}

/// `apns-expiration` for a notification expiring at `at`: Unix seconds.
pub(crate) fn expiration(at: Tick) -> HeaderValue {
    HeaderValue::from(at.as_millis() / 1000)
}

/// Why a notification cannot be sent at all (no request is made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unsendable {
    /// The device token is not hex digits: it can never be valid.
    BadDeviceToken,
    /// Anything else, with the reason for `Outcome::Failed`.
    Failed(String),
}

impl Prepared {
    /// The request for `n`, with `body` (its [`apns_payload`](crate::apns_payload))
    /// and `expiration` (its [`expiration`], shared by the notifications
    /// of a message); `uri` makes the request's URI from its path (`None`:
    /// not a path).
    pub(crate) fn new(
        n: &Notification,
        topic: &HeaderValue,
        body: Bytes,
        expiration: HeaderValue,
        uri: impl FnOnce(String) -> Option<Uri>,
    ) -> Result<Self, Unsendable> {
        let token = &n.device_token;
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Unsendable::BadDeviceToken);
        }
        let background = n.content.background;
        let collapse_id = match &n.collapse_key {
            Some(collapse) if collapse.len() > MAX_COLLAPSE_ID_BYTES => {
                return Err(Unsendable::Failed(format!(
                    "the collapse key is {} bytes, over APNs's limit of {MAX_COLLAPSE_ID_BYTES}",
                    collapse.len()
                )));
            }
            Some(collapse) => Some(HeaderValue::from_str(collapse).map_err(|_| {
                Unsendable::Failed(
                    "the collapse key has characters an HTTP header cannot carry".to_owned(),
                )
            })?),
            None => None,
        };
        // Written into a string of its exact size, so the header value
        // takes it over without another allocation.
        let mut id = String::with_capacity(36);
        let _ = write!(id, "{}", n.id);
        let mut id = HeaderValue::try_from(id).expect("a UUID is a valid header value");
        // Never indexed: each request's id is new, so HPACK would insert
        // every one into both sides' tables, only to evict the entries
        // that do repeat (the provider token, the topic) and send them
        // again in full.
        id.set_sensitive(true);
        let uri = uri(format!("/3/device/{token}")).ok_or(Unsendable::BadDeviceToken)?;
        Ok(Self {
            uri,
            topic: topic.clone(),
            background,
            expiration,
            collapse_id,
            id,
            body,
        })
    }

    /// The request, carrying `bearer` (`bearer <jwt>`).
    pub(crate) fn request(&self, bearer: &HeaderValue) -> Request<Bytes> {
        let mut request = Request::new(self.body.clone());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let background = self.background;
        let headers = request.headers_mut();
        headers.reserve(9);
        headers.insert(AUTHORIZATION, bearer.clone());
        headers.insert(APNS_TOPIC, self.topic.clone());
        headers.insert(
            APNS_PUSH_TYPE,
            HeaderValue::from_static(if background { "background" } else { "alert" }),
        );
        headers.insert(
            APNS_PRIORITY,
            HeaderValue::from_static(if background { "5" } else { "10" }),
        );
        headers.insert(APNS_EXPIRATION, self.expiration.clone());
        if let Some(collapse_id) = &self.collapse_id {
            headers.insert(APNS_COLLAPSE_ID, collapse_id.clone());
        }
        headers.insert(APNS_ID, self.id.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use herald::{MessageId, NotificationId, Os, PushContent};
    use herald_core::Tick;

    use super::*;

    fn path(p: String) -> Option<Uri> {
        p.parse().ok()
    }

    fn exp() -> HeaderValue {
        expiration(Tick::from_millis(1_700_000_123_999))
    }

    fn note(token: &str, background: bool, collapse: Option<&str>) -> Notification {
        let message_id = MessageId::from_u128(9);
        Notification {
            id: NotificationId::of(message_id, Tick::ZERO, "d"),
            message_id,
            device_id: "d".into(),
            device_token: token.into(),
            os: Os::Ios,
            content: Arc::new(PushContent {
                background,
                ..PushContent::default()
            }),
            expires_at: Tick::from_millis(1_700_000_123_999),
            collapse_key: collapse.map(str::to_owned),
        }
    }

    #[test]
    fn headers_of_an_alert_and_of_a_background_push() {
        let topic = HeaderValue::from_static("com.example.app");
        let bearer = HeaderValue::from_static("bearer x.y.z");
        let n = note("00fcAB", false, Some("score"));
        let r = Prepared::new(&n, &topic, Bytes::from_static(b"{}"), exp(), path)
            .unwrap()
            .request(&bearer);
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri(), "/3/device/00fcAB");
        let h = r.headers();
        assert_eq!(h["authorization"], "bearer x.y.z");
        assert_eq!(h["apns-topic"], "com.example.app");
        assert_eq!(h["apns-push-type"], "alert");
        assert_eq!(h["apns-priority"], "10");
        assert_eq!(h["apns-expiration"], "1700000123");
        assert_eq!(h["apns-collapse-id"], "score");
        assert_eq!(h["apns-id"], n.id.to_string().as_str());
        assert_eq!(r.body().as_ref(), b"{}");

        let b = Prepared::new(&note("ab", true, None), &topic, Bytes::new(), exp(), path)
            .unwrap()
            .request(&bearer);
        assert_eq!(b.headers()["apns-push-type"], "background");
        assert_eq!(b.headers()["apns-priority"], "5");
        assert!(b.headers().get("apns-collapse-id").is_none());
    }

    #[test]
    fn unsendable_tokens_and_collapse_keys() {
        let topic = HeaderValue::from_static("t");
        for token in ["", "xyz", "ab cd", "ab/../cd", "é"] {
            assert_eq!(
                Prepared::new(&note(token, false, None), &topic, Bytes::new(), exp(), path)
                    .unwrap_err(),
                Unsendable::BadDeviceToken,
                "{token:?}"
            );
        }
        let long = "k".repeat(65);
        assert!(matches!(
            Prepared::new(&note("ab", false, Some(&long)), &topic, Bytes::new(), exp(), path),
            Err(Unsendable::Failed(r)) if r.contains("65 bytes")
        ));
        assert!(
            Prepared::new(
                &note("ab", false, Some(&"k".repeat(64))),
                &topic,
                Bytes::new(),
                exp(),
                path
            )
            .is_ok()
        );
        assert!(matches!(
            Prepared::new(
                &note("ab", false, Some("a\nb")),
                &topic,
                Bytes::new(),
                exp(),
                path
            ),
            Err(Unsendable::Failed(_))
        ));
    }
}
