//! What APNs's answer to one request means: [`classify`] maps every status
//! and reason of Apple's table to a [`Verdict`].
//!
//! | Status | Reason | Verdict |
//! |---|---|---|
//! | 200 | | [`Sent`](Verdict::Sent) |
//! | 410 | `Unregistered`, `ExpiredToken` | [`Unregistered`](Verdict::Unregistered), at the body's ms `timestamp` |
//! | 400 | `BadDeviceToken` | [`BadDeviceToken`](Verdict::BadDeviceToken) (an invalid token, or a sandbox/production mismatch: the batch decides) |
//! | 403 | `ExpiredProviderToken` | [`ExpiredProviderToken`](Verdict::ExpiredProviderToken): re-sign and resend |
//! | 403 | `InvalidProviderToken`, `BadCertificate`, `BadCertificateEnvironment`, `Forbidden`, `MissingProviderToken` | [`Credentials`](Verdict::Credentials) |
//! | 429 | `TooManyRequests`, `TooManyProviderTokenUpdates` | [`Retry`](Verdict::Retry) |
//! | 5xx | `InternalServerError`, `ServiceUnavailable`, `Shutdown`... | [`Retry`](Verdict::Retry) |
//! | other | | [`Failed`](Verdict::Failed): `APNs 400 BadTopic` |
//!
//! A `Retry-After` header (seconds, or an HTTP date read against the
//! gateway's clock) comes with a retry.

use std::time::Duration;

use herald_core::Tick;
use herald_http2::Response;
use herald_http2::retry_after;
use serde::Deserialize;

/// What one answer means for its notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 200.
    Sent,
    /// 410: the token is no longer valid for the topic, since `at`.
    Unregistered {
        /// The body's `timestamp` (ms), if any.
        at: Option<Tick>,
    },
    /// 400 `BadDeviceToken`.
    BadDeviceToken,
    /// 403 `ExpiredProviderToken`.
    ExpiredProviderToken,
    /// A 403 that refuses the credentials: `APNs 403 InvalidProviderToken`.
    Credentials(String),
    /// Worth trying again, no sooner than `after` if set.
    Retry(Option<Duration>),
    /// Never worth trying again: `APNs 400 BadTopic`.
    Failed(String),
}

/// An APNs error body: `{"reason": "...", "timestamp": ms}`.
#[derive(Deserialize)]
struct ErrorBody {
    reason: Option<String>,
    timestamp: Option<u64>,
}

/// The 403 reasons that mean the credentials (key, key id, team id) are
/// refused, so every request would be.
const CREDENTIAL_REASONS: &[&str] = &[
    "InvalidProviderToken",
    "BadCertificate",
    "BadCertificateEnvironment",
    "Forbidden",
    "MissingProviderToken",
];

/// What `response` means, `now` being the gateway's time (for a
/// `Retry-After` date).
pub(crate) fn classify(response: &Response, now: Tick) -> Verdict {
    let status = response.status.as_u16();
    if status == 200 {
        return Verdict::Sent;
    }
    let body: Option<ErrorBody> = serde_json::from_slice(&response.body).ok();
    let reason = body.as_ref().and_then(|b| b.reason.as_deref());
    let retry = || {
        Verdict::Retry(
            response
                .header("retry-after")
                .and_then(|v| retry_after(v, now)),
        )
    };
    match (status, reason) {
        (410, _) => Verdict::Unregistered {
            at: body.and_then(|b| b.timestamp).map(Tick::from_millis),
        },
        (400, Some("BadDeviceToken")) => Verdict::BadDeviceToken,
        (403, Some("ExpiredProviderToken")) => Verdict::ExpiredProviderToken,
        (403, Some(r)) if CREDENTIAL_REASONS.contains(&r) => {
            Verdict::Credentials(describe(status, reason))
        }
        (429 | 500..=599, _) => retry(),
        _ => Verdict::Failed(describe(status, reason)),
    }
}

/// `APNs 400 BadTopic`, or `APNs 400` without a reason. The reason is
/// Apple's word; anything else in it is dropped to keep logs clean.
pub(crate) fn describe(status: u16, reason: Option<&str>) -> String {
    match reason {
        Some(r)
            if !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            format!("APNs {status} {r}")
        }
        _ => format!("APNs {status}"),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, StatusCode};

    use super::*;

    fn answer(status: u16, body: &str, retry: Option<&str>) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(r) = retry {
            headers.insert("retry-after", HeaderValue::from_str(r).unwrap());
        }
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    fn reason(status: u16, reason: &str) -> Verdict {
        classify(
            &answer(status, &format!(r#"{{"reason":"{reason}"}}"#), None),
            Tick::ZERO,
        )
    }

    #[test]
    fn every_reason_of_apples_table() {
        assert_eq!(classify(&answer(200, "", None), Tick::ZERO), Verdict::Sent);
        for r in ["Unregistered", "ExpiredToken"] {
            assert_eq!(
                classify(
                    &answer(
                        410,
                        &format!(r#"{{"reason":"{r}","timestamp":1700000000123}}"#),
                        None
                    ),
                    Tick::ZERO
                ),
                Verdict::Unregistered {
                    at: Some(Tick::from_millis(1_700_000_000_123))
                }
            );
        }
        assert_eq!(
            reason(410, "Unregistered"),
            Verdict::Unregistered { at: None }
        );
        assert_eq!(reason(400, "BadDeviceToken"), Verdict::BadDeviceToken);
        assert_eq!(
            reason(403, "ExpiredProviderToken"),
            Verdict::ExpiredProviderToken
        );
        for r in CREDENTIAL_REASONS {
            assert_eq!(
                reason(403, r),
                Verdict::Credentials(format!("APNs 403 {r}"))
            );
        }
        for (s, r) in [
            (429, "TooManyRequests"),
            (429, "TooManyProviderTokenUpdates"),
            (500, "InternalServerError"),
            (503, "ServiceUnavailable"),
            (503, "Shutdown"),
        ] {
            assert_eq!(reason(s, r), Verdict::Retry(None), "{s} {r}");
        }
        for r in [
            "BadCollapseId",
            "BadExpirationDate",
            "BadMessageId",
            "BadPriority",
            "BadTopic",
            "DeviceTokenNotForTopic",
            "DuplicateHeaders",
            "IdleTimeout",
            "InvalidPushType",
            "MissingDeviceToken",
            "MissingTopic",
            "PayloadEmpty",
            "TopicDisallowed",
        ] {
            assert_eq!(reason(400, r), Verdict::Failed(format!("APNs 400 {r}")));
        }
        assert_eq!(
            reason(404, "BadPath"),
            Verdict::Failed("APNs 404 BadPath".into())
        );
        assert_eq!(
            reason(405, "MethodNotAllowed"),
            Verdict::Failed("APNs 405 MethodNotAllowed".into())
        );
        assert_eq!(
            reason(413, "PayloadTooLarge"),
            Verdict::Failed("APNs 413 PayloadTooLarge".into())
        );
        assert_eq!(
            reason(403, "SomethingNew"),
            Verdict::Failed("APNs 403 SomethingNew".into())
        );
    }

    #[test]
    fn garbage_bodies_still_classify() {
        assert_eq!(
            classify(&answer(400, "<html>", None), Tick::ZERO),
            Verdict::Failed("APNs 400".into())
        );
        assert_eq!(
            classify(&answer(410, "{", None), Tick::ZERO),
            Verdict::Unregistered { at: None }
        );
        assert_eq!(
            classify(&answer(503, "", None), Tick::ZERO),
            Verdict::Retry(None)
        );
        assert_eq!(
            classify(
                &answer(400, r#"{"reason":"a b\nlog injection"}"#, None),
                Tick::ZERO
            ),
            Verdict::Failed("APNs 400".into())
        );
        assert_eq!(
            classify(&answer(418, r#"{"reason":5}"#, None), Tick::ZERO),
            Verdict::Failed("APNs 418".into())
        );
    }

    #[test]
    fn retry_after_seconds_or_date() {
        let now = Tick::from_millis(1_445_412_480_000); // 2015-10-21T07:28:00Z
        assert_eq!(
            classify(
                &answer(429, r#"{"reason":"TooManyRequests"}"#, Some("120")),
                now
            ),
            Verdict::Retry(Some(Duration::from_secs(120)))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:29:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
        assert_eq!(
            classify(&answer(503, "", Some("later")), now),
            Verdict::Retry(None)
        );
    }
}
