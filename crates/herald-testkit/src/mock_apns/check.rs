//! What the mock checks of a request, in APNs's terms: each rule and its
//! answer.
//!
//! | Rule | Answer |
//! |---|---|
//! | method `POST` | `405 MethodNotAllowed` |
//! | path `/3/device/<token>` | `404 BadPath`; no token: `400 MissingDeviceToken`; not hex: `400 BadDeviceToken` |
//! | each `apns-*` header and `authorization` at most once | `400 DuplicateHeaders` |
//! | `apns-id`, if present, a canonical UUID | `400 BadMessageId` |
//! | the provider token (see `provider_token.rs`) | `403 MissingProviderToken`, `InvalidProviderToken`, `ExpiredProviderToken`; `429 TooManyProviderTokenUpdates` |
//! | `apns-topic` present, printable, the mock's topic | `400 MissingTopic`, `BadTopic`, `DeviceTokenNotForTopic` |
//! | `apns-push-type` (absent: `alert`) one of Apple's types | `400 InvalidPushType`; a known type other than `alert`/`background` needs a topic suffix the mock's topic lacks: `400 TopicDisallowed` |
//! | `apns-priority` (absent: 10) one of 10, 5, 1; 5 for `background` | `400 BadPriority` |
//! | `apns-expiration` a number | `400 BadExpirationDate` |
//! | `apns-collapse-id` at most 64 bytes | `400 BadCollapseId` |
//! | a body | `400 PayloadEmpty` |
//! | at most 4096 bytes | `413 PayloadTooLarge` |
//! | a JSON object with an `aps` object | `400 PayloadEmpty` (Apple documents no reason for this; a guess) |
//! | `background`: `aps` is `content-available: 1` without `alert`, `badge`, `sound` | `400 InvalidPushType` (stricter than Apple's documented checks: Apple's rule for background pushes) |

use bytes::Bytes;
use herald_core::Tick;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use serde_json::Value;

use super::payload::{self, Aps};
use super::provider_token::ProviderTokens;
use super::reply::Rejection;

/// APNs's payload limit (bytes).
pub(crate) const MAX_PAYLOAD: usize = 4096;

/// The push types Apple defines.
const PUSH_TYPES: &[&str] = &[
    "alert",
    "background",
    "location",
    "voip",
    "complication",
    "fileprovider",
    "mdm",
    "liveactivity",
    "pushtotalk",
    "widgets",
    "controls",
];

/// The headers APNs reads, each of which may appear once only: the first
/// value of each, found in one pass over the request's headers.
#[derive(Default)]
struct Headers<'a> {
    authorization: Option<&'a HeaderValue>,
    apns_id: Option<&'a HeaderValue>,
    topic: Option<&'a HeaderValue>,
    push_type: Option<&'a HeaderValue>,
    priority: Option<&'a HeaderValue>,
    expiration: Option<&'a HeaderValue>,
    collapse_id: Option<&'a HeaderValue>,
    /// One of them appeared more than once.
    duplicate: bool,
}

impl<'a> Headers<'a> {
    fn scan(headers: &'a HeaderMap) -> Self {
        let mut seen = Self::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "authorization" => &mut seen.authorization,
                "apns-id" => &mut seen.apns_id,
                "apns-topic" => &mut seen.topic,
                "apns-push-type" => &mut seen.push_type,
                "apns-priority" => &mut seen.priority,
                "apns-expiration" => &mut seen.expiration,
                "apns-collapse-id" => &mut seen.collapse_id,
                _ => continue,
            };
            if slot.is_some() {
                seen.duplicate = true;
            } else {
                *slot = Some(value);
            }
        }
        seen
    }
}

/// `apns-id`.
const APNS_ID: HeaderName = HeaderName::from_static("apns-id");

/// A request that passed every check.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) device_token: String,
    /// The payload, when [`Rules::keep_payload`].
    pub(crate) payload: Option<Value>,
}

/// What the mock checks against.
pub(crate) struct Rules<'a> {
    pub(crate) topic: &'a str,
    pub(crate) tokens: &'a ProviderTokens,
    pub(crate) now: Tick,
    /// Whether to return the payload as JSON (else it is only checked,
    /// without building its tree: the same rules, the same answers).
    pub(crate) keep_payload: bool,
}

/// The `apns-id` to echo: the request's if it is one, else `None`.
pub(crate) fn apns_id(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers
        .get(APNS_ID)
        .filter(|v| v.to_str().is_ok_and(is_uuid))
}

/// Checks `request` as APNs would.
pub(crate) fn check(request: &Request<Bytes>, rules: &Rules<'_>) -> Result<Checked, Rejection> {
    if request.method() != Method::POST {
        return Err(Rejection::new(405, "MethodNotAllowed"));
    }
    let device_token = device_token(request.uri().path())?;
    let headers = Headers::scan(request.headers());
    if headers.duplicate {
        return Err(Rejection::new(400, "DuplicateHeaders"));
    }
    if headers
        .apns_id
        .is_some_and(|id| !id.to_str().is_ok_and(is_uuid))
    {
        return Err(Rejection::new(400, "BadMessageId"));
    }
    rules
        .tokens
        .check(headers.authorization.map(HeaderValue::as_bytes), rules.now)?;
    fn text(value: Option<&HeaderValue>) -> Option<Result<&str, ()>> {
        value.map(|v| v.to_str().map_err(|_| ()))
    }
    match text(headers.topic) {
        None => return Err(Rejection::new(400, "MissingTopic")),
        Some(Ok(t)) if t == rules.topic => {}
        Some(Ok(t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err(Rejection::new(400, "DeviceTokenNotForTopic"));
        }
        Some(_) => return Err(Rejection::new(400, "BadTopic")),
    }
    let push_type = match text(headers.push_type) {
        None => "alert",
        Some(Ok(t)) if PUSH_TYPES.contains(&t) => t,
        Some(_) => return Err(Rejection::new(400, "InvalidPushType")),
    };
    if !matches!(push_type, "alert" | "background") {
        return Err(Rejection::new(400, "TopicDisallowed"));
    }
    let priority = match text(headers.priority) {
        None => "10",
        Some(Ok(p @ ("10" | "5" | "1"))) => p,
        Some(_) => return Err(Rejection::new(400, "BadPriority")),
    };
    if push_type == "background" && priority != "5" {
        return Err(Rejection::new(400, "BadPriority"));
    }
    if let Some(e) = text(headers.expiration)
        && !e.is_ok_and(|e| {
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) && e.parse::<u64>().is_ok()
        })
    {
        return Err(Rejection::new(400, "BadExpirationDate"));
    }
    if headers.collapse_id.is_some_and(|c| c.len() > 64) {
        return Err(Rejection::new(400, "BadCollapseId"));
    }
    let body = request.body();
    if body.is_empty() {
        return Err(Rejection::new(400, "PayloadEmpty"));
    }
    if body.len() > MAX_PAYLOAD {
        return Err(Rejection::new(413, "PayloadTooLarge"));
    }
    let not_json = |_| Rejection::new(400, "PayloadEmpty");
    let (aps, payload) = if rules.keep_payload {
        let payload: Value = serde_json::from_slice(body).map_err(not_json)?;
        let aps = payload
            .get("aps")
            .and_then(Value::as_object)
            .map(|aps| Aps {
                content_available: aps.get("content-available") == Some(&Value::from(1)),
                alert_badge_or_sound: ["alert", "badge", "sound"]
                    .iter()
                    .any(|k| aps.contains_key(*k)),
            });
        (aps, Some(payload))
    } else {
        (payload::aps(body).map_err(not_json)?, None)
    };
    let Some(aps) = aps else {
        return Err(Rejection::new(400, "PayloadEmpty"));
    };
    if push_type == "background" && (!aps.content_available || aps.alert_badge_or_sound) {
        return Err(Rejection::new(400, "InvalidPushType"));
    }
    Ok(Checked {
        device_token,
        payload,
    })
}

/// The device token of `/3/device/<token>`.
fn device_token(path: &str) -> Result<String, Rejection> {
    let Some(token) = path.strip_prefix("/3/device/") else {
        return Err(Rejection::new(404, "BadPath"));
    };
    if token.contains('/') {
        return Err(Rejection::new(404, "BadPath"));
    }
    if token.is_empty() {
        return Err(Rejection::new(400, "MissingDeviceToken"));
    }
    if !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Rejection::new(400, "BadDeviceToken"));
    }
    Ok(token.to_owned())
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock_apns::TestApnsKey;

    fn token(key: &TestApnsKey, iat: u64) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(key.key_id.clone());
        let k = jsonwebtoken::EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap();
        let jwt = jsonwebtoken::encode(
            &header,
            &serde_json::json!({"iss": key.team_id, "iat": iat}),
            &k,
        )
        .unwrap();
        format!("bearer {jwt}")
    }

    #[test]
    fn every_rule_and_its_answer() {
        rules_and_answers(true);
    }

    #[test]
    fn every_rule_and_its_answer_without_keeping_the_payload() {
        rules_and_answers(false);
    }

    #[test]
    fn the_payload_scan_reads_what_the_json_tree_says() {
        let cases: &[&[u8]] = &[
            br#"{"aps":{"alert":"x"}}"#,
            br#"{"aps":{"content-available":1}}"#,
            br#"{"aps":{"content-available":1.0}}"#,
            br#"{"aps":{"content-available":"1"}}"#,
            br#"{"aps":{"content-available":1,"content-available":2}}"#,
            br#"{"aps":{"content-available":2,"content-available":1}}"#,
            br#"{"aps":{"content-available":1,"badge":null}}"#,
            br#"{"aps":{"content-available":1,"sound":{"a":[1,2]}}}"#,
            br#"{"aps":{},"aps":5}"#,
            br#"{"aps":5,"aps":{}}"#,
            br#"{"a\u0070s":{}}"#,
            br#"{"x":{"aps":{}}}"#,
            br#"["aps",{"aps":{}}]"#,
            br#""aps""#,
            b"12",
            b"null",
            b"{\"aps\":{\"alert\":\"\xff\"}}",
            br#"{"aps":{"alert":"\u00e9\n"},"k":[true,false,null,-1,1e3]}"#,
            br#"{"aps":{}} x"#,
            br#"{"aps":{}"#,
            br#"{"aps":1e400}"#,
            b"",
        ];
        for &body in cases {
            let tree = serde_json::from_slice::<Value>(body).map(|payload| {
                payload
                    .get("aps")
                    .and_then(Value::as_object)
                    .map(|aps| Aps {
                        content_available: aps.get("content-available") == Some(&Value::from(1)),
                        alert_badge_or_sound: ["alert", "badge", "sound"]
                            .iter()
                            .any(|k| aps.contains_key(*k)),
                    })
            });
            let scan = payload::aps(body);
            assert_eq!(tree.ok(), scan.ok(), "{}", String::from_utf8_lossy(body));
        }
        let deep = format!(
            "{{\"aps\":{{\"a\":{}1{}}}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(
            serde_json::from_slice::<Value>(deep.as_bytes()).is_ok(),
            payload::aps(deep.as_bytes()).is_ok(),
            "the same depth limit"
        );
    }

    fn rules_and_answers(keep_payload: bool) {
        let key = TestApnsKey::generate();
        let tokens = ProviderTokens::new(&key.public_pem, &key.key_id, &key.team_id).unwrap();
        let now = Tick::from_millis(1_700_000_000_000);
        let rules = Rules {
            topic: "com.example.app",
            tokens: &tokens,
            now,
            keep_payload,
        };
        let auth = token(&key, 1_700_000_000);
        let good = || {
            Request::post("/3/device/00ff")
                .header("authorization", auth.as_str())
                .header("apns-topic", "com.example.app")
                .header("apns-push-type", "alert")
                .header("apns-priority", "10")
                .header("apns-expiration", "1700003600")
                .header("apns-id", "123e4567-e89b-12d3-a456-426614174000")
        };
        let body = Bytes::from_static(br#"{"aps":{"alert":{"body":"hi"}},"k":"v"}"#);
        let answer = |r: Request<Bytes>| match check(&r, &rules) {
            Ok(c) => format!("ok {}", c.device_token),
            Err(r) => format!("{} {}", r.status, r.reason),
        };
        assert_eq!(answer(good().body(body.clone()).unwrap()), "ok 00ff");
        let with = |name: &str, value: &str| {
            let mut r = good().body(body.clone()).unwrap();
            r.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
            answer(r)
        };
        let without = |name: &str| {
            let mut r = good().body(body.clone()).unwrap();
            r.headers_mut().remove(name);
            answer(r)
        };
        let mut get = good().body(body.clone()).unwrap();
        *get.method_mut() = Method::GET;
        assert_eq!(answer(get), "405 MethodNotAllowed");
        for (path, expected) in [
            ("/3/device/", "400 MissingDeviceToken"),
            ("/3/device/xyz", "400 BadDeviceToken"),
            ("/2/device/00ff", "404 BadPath"),
            ("/3/device/00/ff", "404 BadPath"),
            ("/", "404 BadPath"),
        ] {
            let mut r = good().body(body.clone()).unwrap();
            *r.uri_mut() = path.parse().unwrap();
            assert_eq!(answer(r), expected, "{path}");
        }
        let mut dup = good().body(body.clone()).unwrap();
        dup.headers_mut().append(
            "apns-topic",
            http::HeaderValue::from_static("com.example.app"),
        );
        assert_eq!(answer(dup), "400 DuplicateHeaders");
        assert_eq!(with("apns-id", "nope"), "400 BadMessageId");
        assert_eq!(without("apns-id"), "ok 00ff");
        assert_eq!(without("authorization"), "403 MissingProviderToken");
        assert_eq!(
            with("authorization", "bearer x.y.z"),
            "403 InvalidProviderToken"
        );
        assert_eq!(
            with("authorization", &token(&key, 1_700_000_000 - 3601)),
            "403 ExpiredProviderToken"
        );
        assert_eq!(without("apns-topic"), "400 MissingTopic");
        assert_eq!(with("apns-topic", ""), "400 BadTopic");
        assert_eq!(
            with("apns-topic", "com.other.app"),
            "400 DeviceTokenNotForTopic"
        );
        assert_eq!(with("apns-push-type", "shout"), "400 InvalidPushType");
        assert_eq!(with("apns-push-type", "voip"), "400 TopicDisallowed");
        assert_eq!(without("apns-push-type"), "ok 00ff");
        assert_eq!(with("apns-priority", "7"), "400 BadPriority");
        assert_eq!(without("apns-priority"), "ok 00ff");
        assert_eq!(with("apns-expiration", "soon"), "400 BadExpirationDate");
        assert_eq!(with("apns-expiration", "-1"), "400 BadExpirationDate");
        assert_eq!(
            with("apns-collapse-id", &"c".repeat(65)),
            "400 BadCollapseId"
        );
        assert_eq!(with("apns-collapse-id", &"c".repeat(64)), "ok 00ff");
        let with_body = |b: &[u8]| answer(good().body(Bytes::copy_from_slice(b)).unwrap());
        assert_eq!(with_body(b""), "400 PayloadEmpty");
        assert_eq!(with_body(b"{not json"), "400 PayloadEmpty");
        assert_eq!(with_body(br#"{"aps": 5}"#), "400 PayloadEmpty");
        assert_eq!(with_body(br#"["aps"]"#), "400 PayloadEmpty");
        let mut big = br#"{"aps":{},"k":""#.to_vec();
        big.resize(MAX_PAYLOAD - 1, b'x');
        big.extend_from_slice(b"\"}");
        assert_eq!(with_body(&big), "413 PayloadTooLarge");
        big.truncate(MAX_PAYLOAD - 2);
        big.extend_from_slice(b"\"}");
        assert_eq!(with_body(&big), "ok 00ff");

        let background = |priority: &str, body: &'static [u8]| {
            let mut r = good().body(Bytes::from_static(body)).unwrap();
            r.headers_mut().insert(
                "apns-push-type",
                http::HeaderValue::from_static("background"),
            );
            r.headers_mut().insert(
                "apns-priority",
                http::HeaderValue::from_str(priority).unwrap(),
            );
            answer(r)
        };
        assert_eq!(
            background("5", br#"{"aps":{"content-available":1}}"#),
            "ok 00ff"
        );
        assert_eq!(
            background("10", br#"{"aps":{"content-available":1}}"#),
            "400 BadPriority"
        );
        assert_eq!(background("5", br#"{"aps":{}}"#), "400 InvalidPushType");
        assert_eq!(
            background("5", br#"{"aps":{"content-available":1,"alert":"x"}}"#),
            "400 InvalidPushType"
        );
    }
}
