//! The FCM HTTP v1 request body for one notification:
//! `{"message": {"token", "notification"?, "data"?, "android"}}`, built
//! from its [`PushContent`](herald::PushContent) as the contract says.

use std::collections::BTreeMap;

use bytes::Bytes;
use herald::{Notification, Outcome};
use herald_core::Tick;
use serde::Serialize;

/// What every request body starts with.
const PREFIX: &[u8] = b"{\"message\":{\"token\":";

/// FCM's limit on a message (its `message` JSON without the target).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// FCM's longest (and default) Android time to live: 4 weeks.
pub const MAX_TTL_SECS: u64 = 28 * 24 * 3600;

#[derive(Serialize)]
struct Message<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<Alert<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    data: &'a BTreeMap<String, String>,
    android: Android<'a>,
}

#[derive(Serialize)]
struct Alert<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
}

#[derive(Serialize)]
struct Android<'a> {
    ttl: Seconds,
    #[serde(skip_serializing_if = "Option::is_none")]
    collapse_key: Option<&'a str>,
    priority: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    notification: Option<AndroidAlert<'a>>,
}

/// A protobuf duration in whole seconds (`"259200s"`), written without
/// building a string first.
struct Seconds(u64);

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}s", self.0))
    }
}

#[derive(Serialize)]
struct AndroidAlert<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticker: Option<&'a str>,
}

/// Whether FCM reserves `key` in `data` (`from`, and any key starting with
/// `gcm` or `google`).
pub fn is_reserved_data_key(key: &str) -> bool {
    key == "from" || key.starts_with("gcm") || key.starts_with("google")
}

/// The request body for `n` sent at `now`, or the outcome it gets without
/// a request: [`Outcome::Failed`] when it has expired, carries a custom
/// key FCM reserves, or its message is over [`MAX_MESSAGE_BYTES`].
///
/// * `notification` {`title`, `body`} when the content has either;
/// * `data`: the custom keys (string values), left out when there are
///   none;
/// * `android`: `ttl` the whole seconds left until `expires_at` (at most
///   4 weeks), `collapse_key` if any, `priority` `high`, and
///   `notification` {`title`, `body`, `ticker`} when the content has any.
pub(crate) fn request_body(n: &Notification, now: Tick) -> Result<Bytes, Outcome> {
    if now >= n.expires_at {
        return Err(Outcome::Failed {
            reason: "expired before it could be sent".to_owned(),
        });
    }
    let c = &*n.content;
    if let Some(key) = c.custom.keys().find(|k| is_reserved_data_key(k)) {
        return Err(Outcome::Failed {
            reason: format!(
                "custom key {key:?} is reserved by FCM (\"from\" and keys starting with \"gcm\" or \"google\")"
            ),
        });
    }
    let left_s = (n.expires_at.as_millis() - now.as_millis()) / 1000;
    let title = c.title.as_deref();
    let body = c.body.as_deref();
    let ticker = c.ticker.as_deref();
    let message = Message {
        notification: (title.is_some() || body.is_some()).then_some(Alert { title, body }),
        data: &c.custom,
        android: Android {
            ttl: Seconds(left_s.min(MAX_TTL_SECS)),
            collapse_key: n.collapse_key.as_deref(),
            priority: "high",
            notification: (title.is_some() || body.is_some() || ticker.is_some()).then_some(
                AndroidAlert {
                    title,
                    body,
                    ticker,
                },
            ),
        },
    };
    // `{"message":{"token":"…",` + the rest without its `{`, written
    // into one buffer (sized for a typical message: no regrowth).
    let mut out = Vec::with_capacity(PREFIX.len() + n.device_token.len() + 512);
    out.extend_from_slice(PREFIX);
    serde_json::to_writer(&mut out, &n.device_token).map_err(|e| Outcome::Failed {
        reason: format!("cannot encode the device token: {e}"),
    })?;
    out.push(b',');
    let rest = out.len();
    serde_json::to_writer(&mut out, &message).map_err(|e| Outcome::Failed {
        reason: format!("cannot encode the FCM message: {e}"),
    })?;
    let size = out.len() - rest;
    if size > MAX_MESSAGE_BYTES {
        return Err(Outcome::Failed {
            reason: format!(
                "the FCM message is {size} bytes, over FCM's limit of {MAX_MESSAGE_BYTES}"
            ),
        });
    }
    out.remove(rest); // the message's own `{`
    out.push(b'}');
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald::{MessageId, NotificationId, Os, PushContent};
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn note(content: PushContent, expires_at: u64, collapse: Option<&str>) -> Notification {
        let m = MessageId::from_u128(1);
        Notification {
            id: NotificationId::of(m, Tick::from_millis(0), "d"),
            message_id: m,
            device_id: "d".into(),
            device_token: "tok:en_1".into(),
            os: Os::Android,
            content: Arc::new(content),
            expires_at: Tick::from_millis(expires_at),
            collapse_key: collapse.map(str::to_owned),
        }
    }

    fn json_of(n: &Notification, now: u64) -> Value {
        let body = request_body(n, Tick::from_millis(now)).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn the_message_follows_the_contract() {
        let content = PushContent {
            title: Some("Sale".into()),
            body: Some("50% off".into()),
            ticker: Some("tick".into()),
            badge: Some(3),
            sound: Some("ding".into()),
            subtitle: Some("sub".into()),
            custom: BTreeMap::from([("campaign".into(), "c7".into())]),
            ..PushContent::default()
        };
        let n = note(content, 259_200_000 + 1_500, Some("sale"));
        assert_eq!(
            json_of(&n, 1_000),
            json!({"message": {
                "token": "tok:en_1",
                "notification": {"title": "Sale", "body": "50% off"},
                "data": {"campaign": "c7"},
                "android": {
                    "ttl": "259200s",
                    "collapse_key": "sale",
                    "priority": "high",
                    "notification": {"title": "Sale", "body": "50% off", "ticker": "tick"},
                },
            }})
        );
    }

    #[test]
    fn a_data_only_message_has_no_notification_and_ttl_is_capped() {
        let content = PushContent {
            custom: BTreeMap::from([("message".into(), "{\"a\":1}".into())]),
            ..PushContent::default()
        };
        let n = note(content, u64::MAX / 2, None);
        assert_eq!(
            json_of(&n, 0),
            json!({"message": {
                "token": "tok:en_1",
                "data": {"message": "{\"a\":1}"},
                "android": {"ttl": "2419200s", "priority": "high"},
            }})
        );
        let n = note(PushContent::default(), 10_999, None);
        assert_eq!(
            json_of(&n, 1_000),
            json!({"message": {"token": "tok:en_1", "android": {"ttl": "9s", "priority": "high"}}})
        );
    }

    #[test]
    fn expired_reserved_and_oversized_are_failed_without_a_body() {
        let n = note(PushContent::default(), 5_000, None);
        assert!(request_body(&n, Tick::from_millis(4_999)).is_ok());
        assert_eq!(
            request_body(&n, Tick::from_millis(5_000)),
            Err(Outcome::Failed {
                reason: "expired before it could be sent".into()
            })
        );
        for key in ["from", "gcm.x", "google.c.a.e", "googleish"] {
            let content = PushContent {
                custom: BTreeMap::from([(key.to_owned(), "v".into())]),
                ..PushContent::default()
            };
            let Err(Outcome::Failed { reason }) =
                request_body(&note(content, 5_000, None), Tick::from_millis(0))
            else {
                panic!("{key} is reserved");
            };
            assert!(reason.contains(&format!("{key:?}")), "{reason}");
        }
        assert!(!is_reserved_data_key("fromage"));
    }

    /// The size counted is the message without its target: the largest
    /// body that fits is 4096 bytes plus the token's part, one byte more
    /// fails.
    #[test]
    fn the_limit_is_on_the_message_without_its_target() {
        let fill = |len: usize| {
            let content = PushContent {
                body: Some("x".repeat(len)),
                ..PushContent::default()
            };
            request_body(&note(content, 10_000, None), Tick::from_millis(0))
        };
        // The body is this prefix, then the message without its token.
        let prefix = "{\"message\":{\"token\":\"tok:en_1\",".len();
        let rest = |len: usize| fill(len).map(|b| b.len() - prefix);
        let base = rest(0).unwrap();
        // `body` appears twice (notification and android.notification).
        let fits = (MAX_MESSAGE_BYTES - base) / 2;
        let size = rest(fits).unwrap();
        assert!(
            (MAX_MESSAGE_BYTES - 1..=MAX_MESSAGE_BYTES).contains(&size),
            "{size}"
        );
        let Err(Outcome::Failed { reason }) = fill(fits + 1) else {
            panic!("over the limit");
        };
        assert!(reason.contains("over FCM's limit of 4096"), "{reason}");
    }

    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zA-Z0-9 \"\\\\éü✓\n\t{}]{0,40}").unwrap()
    }

    proptest! {
        /// Any content: the body is JSON, with exactly the token as its
        /// target, every data value a string equal to the custom key's,
        /// the alert texts as given, and the ttl the seconds left.
        #[test]
        fn any_content_builds_a_message_fcm_accepts(
            title in proptest::option::of(text()),
            body in proptest::option::of(text()),
            ticker in proptest::option::of(text()),
            custom in proptest::collection::btree_map("[a-z][a-z0-9_]{0,8}", text(), 0..6),
            token in "[A-Za-z0-9:_-]{1,160}",
            left_ms in 1u64..4_000_000_000,
            collapse in proptest::option::of("[a-z]{1,10}"),
        ) {
            let custom: BTreeMap<String, String> =
                custom.into_iter().filter(|(k, _)| !is_reserved_data_key(k)).collect();
            let content = PushContent {
                title: title.clone(), body: body.clone(), ticker: ticker.clone(),
                custom: custom.clone(), ..PushContent::default()
            };
            let mut n = note(content, 1_000 + left_ms, collapse.as_deref());
            n.device_token = token.clone();
            let v = json_of(&n, 1_000);
            let m = &v["message"];
            prop_assert_eq!(v.as_object().unwrap().len(), 1);
            prop_assert_eq!(m["token"].as_str(), Some(token.as_str()));
            prop_assert!(m.get("topic").is_none() && m.get("condition").is_none());
            let data = m.get("data").and_then(Value::as_object).cloned().unwrap_or_default();
            prop_assert_eq!(data.len(), custom.len());
            for (k, val) in &custom {
                prop_assert_eq!(data[k].as_str(), Some(val.as_str()));
            }
            let a = &m["android"];
            let ttl = format!("{}s", (left_ms / 1000).min(MAX_TTL_SECS));
            prop_assert_eq!(a["ttl"].as_str(), Some(ttl.as_str()));
            prop_assert_eq!(a["priority"].as_str(), Some("high"));
            prop_assert_eq!(a.get("collapse_key").and_then(Value::as_str), collapse.as_deref());
            prop_assert_eq!(m.pointer("/notification/title").and_then(Value::as_str), title.as_deref());
            prop_assert_eq!(m.pointer("/notification/body").and_then(Value::as_str), body.as_deref());
            prop_assert_eq!(a.pointer("/notification/ticker").and_then(Value::as_str), ticker.as_deref());
            prop_assert_eq!(a.pointer("/notification/title").and_then(Value::as_str), title.as_deref());
            // The size rule as the mock measures it: the message without its token.
            let mut rest = m.clone();
            rest.as_object_mut().unwrap().remove("token");
            prop_assert!(serde_json::to_vec(&rest).unwrap().len() <= MAX_MESSAGE_BYTES);
        }
    }
}
