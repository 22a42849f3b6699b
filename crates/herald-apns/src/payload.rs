//! The payload: the JSON body of an APNs request, built from a
//! [`PushContent`], and Apple's size limit.
//!
//! ```text
//! {"aps": {"alert": {"title": …, "subtitle": …, "body": …}, "badge": 3, "sound": "ding.caf"},
//!  "campaign": "c7"}
//! ```
//!
//! * `aps.alert` holds the title, subtitle and body that are set (none set:
//!   no `alert`); `badge` is a JSON number; `sound` a string.
//! * A background push (`ios-content-available: 1`) is
//!   `{"aps": {"content-available": 1}}` plus the custom keys: Apple's
//!   background notifications carry no alert, badge or sound (it throttles
//!   or drops those that do), so they are left out.
//! * Custom keys (the publish's other headers, `message` for a message
//!   that is not a string) sit at the top level, as strings. A custom key
//!   named `aps` would replace Apple's dictionary: such a notification is
//!   refused ([`PayloadError::ApsKey`]).
//! * The serialized JSON may be at most [`MAX_PAYLOAD_BYTES`] bytes.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use herald::PushContent;
use serde::Serialize;

/// APNs's limit on a notification's JSON body (VoIP pushes, which Herald
/// does not send, may have 5120).
pub const MAX_PAYLOAD_BYTES: usize = 4096;

/// Why a notification's content cannot be an APNs payload.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// The JSON body would be over [`MAX_PAYLOAD_BYTES`].
    TooLarge {
        /// Its size in bytes.
        bytes: usize,
    },
    /// A custom key is named `aps`, Apple's own dictionary.
    ApsKey,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { bytes } => write!(
                f,
                "the APNs payload is {bytes} bytes, over Apple's limit of {MAX_PAYLOAD_BYTES}"
            ),
            Self::ApsKey => {
                f.write_str("a custom key named \"aps\" would replace Apple's aps dictionary")
            }
        }
    }
}

impl std::error::Error for PayloadError {}

#[derive(Serialize)]
struct Payload<'a> {
    aps: Aps<'a>,
    #[serde(flatten)]
    custom: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Aps<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<Alert<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    badge: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sound: Option<&'a str>,
    #[serde(rename = "content-available", skip_serializing_if = "Option::is_none")]
    content_available: Option<u8>,
}

#[derive(Serialize)]
struct Alert<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subtitle: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
}

/// The APNs JSON body for `content`.
///
/// # Errors
///
/// [`PayloadError::TooLarge`] over [`MAX_PAYLOAD_BYTES`];
/// [`PayloadError::ApsKey`] for a custom key named `aps`.
///
/// # Examples
///
/// ```
/// use herald::PushContent;
///
/// let content = PushContent {
///     title: Some("Sale".into()),
///     body: Some("50% off".into()),
///     badge: Some(3),
///     custom: [("campaign".to_string(), "c7".to_string())].into(),
///     ..PushContent::default()
/// };
/// let body = herald_apns::apns_payload(&content).unwrap();
/// assert_eq!(
///     std::str::from_utf8(&body).unwrap(),
///     r#"{"aps":{"alert":{"title":"Sale","body":"50% off"},"badge":3},"campaign":"c7"}"#
/// );
/// ```
pub fn apns_payload(content: &PushContent) -> Result<Bytes, PayloadError> {
    if content.custom.contains_key("aps") {
        return Err(PayloadError::ApsKey);
    }
    let aps = if content.background {
        Aps {
            alert: None,
            badge: None,
            sound: None,
            content_available: Some(1),
        }
    } else {
        let alert =
            (content.title.is_some() || content.subtitle.is_some() || content.body.is_some())
                .then_some(Alert {
                    title: content.title.as_deref(),
                    subtitle: content.subtitle.as_deref(),
                    body: content.body.as_deref(),
                });
        Aps {
            alert,
            badge: content.badge,
            sound: content.sound.as_deref(),
            content_available: None,
        }
    };
    let json = serde_json::to_vec(&Payload {
        aps,
        custom: &content.custom,
    })
    .expect("strings and numbers always serialize");
    if json.len() > MAX_PAYLOAD_BYTES {
        return Err(PayloadError::TooLarge { bytes: json.len() });
    }
    Ok(Bytes::from(json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn alert_fields_badge_sound_and_custom_keys() {
        let c = PushContent {
            title: Some("T".into()),
            subtitle: Some("S".into()),
            body: Some("B \"quoted\" ✓".into()),
            badge: Some(0),
            sound: Some("ding.caf".into()),
            custom: [
                ("k".to_string(), "v".to_string()),
                ("message".to_string(), "{\"a\":1}".to_string()),
            ]
            .into(),
            ..PushContent::default()
        };
        assert_eq!(
            parse(&apns_payload(&c).unwrap()),
            json!({"aps": {"alert": {"title": "T", "subtitle": "S", "body": "B \"quoted\" ✓"}, "badge": 0, "sound": "ding.caf"},
                   "k": "v", "message": "{\"a\":1}"})
        );
    }

    #[test]
    fn empty_content_is_an_empty_aps() {
        assert_eq!(
            apns_payload(&PushContent::default()).unwrap(),
            Bytes::from_static(br#"{"aps":{}}"#)
        );
    }

    #[test]
    fn background_pushes_carry_content_available_only() {
        let c = PushContent {
            body: Some("hidden".into()),
            badge: Some(4),
            sound: Some("s".into()),
            background: true,
            custom: [("sync".to_string(), "1".to_string())].into(),
            ..PushContent::default()
        };
        assert_eq!(
            parse(&apns_payload(&c).unwrap()),
            json!({"aps": {"content-available": 1}, "sync": "1"})
        );
    }

    #[test]
    fn an_aps_custom_key_and_oversize_are_refused() {
        let c = PushContent {
            custom: [("aps".to_string(), "x".to_string())].into(),
            ..PushContent::default()
        };
        assert_eq!(apns_payload(&c), Err(PayloadError::ApsKey));
        // `{"aps":{"alert":{"body":"…"}}}` is 29 bytes around the body.
        let fits = PushContent {
            body: Some("x".repeat(MAX_PAYLOAD_BYTES - 29)),
            ..PushContent::default()
        };
        assert_eq!(apns_payload(&fits).unwrap().len(), MAX_PAYLOAD_BYTES);
        let over = PushContent {
            body: Some("x".repeat(MAX_PAYLOAD_BYTES - 28)),
            ..PushContent::default()
        };
        assert_eq!(
            apns_payload(&over),
            Err(PayloadError::TooLarge {
                bytes: MAX_PAYLOAD_BYTES + 1
            })
        );
        assert_eq!(
            apns_payload(&over).unwrap_err().to_string(),
            "the APNs payload is 4097 bytes, over Apple's limit of 4096"
        );
    }
}
