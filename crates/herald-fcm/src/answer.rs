//! What FCM's answer to one send means: classified by the
//! `google.firebase.fcm.v1.FcmError` `errorCode` of Google's error JSON,
//! the HTTP status only when there is none.

use herald::{Outcome, Refusal};
use herald_core::Tick;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

/// An error text from FCM is cut to about this many bytes.
const MAX_REASON: usize = 500;

/// What an answer means for its notification and for the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The notification's outcome, and whether the gateway as a whole
    /// refuses.
    Done(Outcome, Option<Refusal>),
    /// 401 without an FCM error code: the access token was refused
    /// (expired, revoked). `String`: what FCM said.
    Unauthenticated(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    error: GoogleError,
}

#[derive(Deserialize)]
struct GoogleError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

/// Google's error, as far as it could be read.
#[derive(Debug, Default)]
struct Said {
    error_code: Option<String>,
    status: Option<String>,
    message: Option<String>,
    violations: Vec<String>,
}

impl Said {
    fn read(body: &[u8]) -> Self {
        let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) else {
            return Self::default();
        };
        let mut said = Self {
            error_code: None,
            status: error.status,
            message: error.message,
            violations: Vec::new(),
        };
        for detail in &error.details {
            let kind = detail.get("@type").and_then(Value::as_str).unwrap_or("");
            if kind.ends_with("google.firebase.fcm.v1.FcmError") {
                if let Some(code) = detail.get("errorCode").and_then(Value::as_str) {
                    said.error_code.get_or_insert_with(|| code.to_owned());
                }
            } else if kind.ends_with("google.rpc.BadRequest") {
                let violations = detail.get("fieldViolations").and_then(Value::as_array);
                for v in violations.into_iter().flatten() {
                    let field = v.get("field").and_then(Value::as_str).unwrap_or("?");
                    let description = v.get("description").and_then(Value::as_str).unwrap_or("");
                    said.violations.push(format!("{field}: {description}"));
                }
            }
        }
        said
    }

    /// `FCM 400 INVALID_ARGUMENT: <message> (<field>: <description>; …)`.
    fn describe(&self, status: StatusCode) -> String {
        let mut text = format!("FCM {}", status.as_u16());
        if let Some(code) = self.error_code.as_ref().or(self.status.as_ref()) {
            text.push(' ');
            text.push_str(code);
        }
        if let Some(m) = &self.message {
            text.push_str(": ");
            text.push_str(m);
        }
        if !self.violations.is_empty() {
            text.push_str(" (");
            text.push_str(&self.violations.join("; "));
            text.push(')');
        }
        cut(text)
    }
}

/// What FCM's answer `status`/`headers`/`body` to one send means, at `now`
/// (for a `Retry-After` date).
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8], now: Tick) -> Verdict {
    if status.is_success() {
        return Verdict::Done(Outcome::Sent, None);
    }
    let said = Said::read(body);
    let after = || {
        headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| herald_http2::retry_after(v, now))
    };
    let retry = |refusal| Verdict::Done(Outcome::Retry { after: after() }, refusal);
    let credentials = |reason| {
        Verdict::Done(
            Outcome::Retry { after: None },
            Some(Refusal::Credentials { reason }),
        )
    };
    match said.error_code.as_deref() {
        Some("UNREGISTERED" | "SENDER_ID_MISMATCH") => {
            Verdict::Done(Outcome::InvalidToken { at: None }, None)
        }
        Some("QUOTA_EXCEEDED") => {
            let after = after();
            Verdict::Done(Outcome::Retry { after }, Some(Refusal::Quota { after }))
        }
        Some("UNAVAILABLE" | "INTERNAL") => retry(None),
        Some("THIRD_PARTY_AUTH_ERROR" | "APNS_AUTH_ERROR") => credentials(said.describe(status)),
        Some("INVALID_ARGUMENT") => Verdict::Done(
            Outcome::Failed {
                reason: said.describe(status),
            },
            None,
        ),
        // No FCM error code (or UNSPECIFIED_ERROR, or one we do not know):
        // the status decides.
        _ => match status {
            StatusCode::UNAUTHORIZED => Verdict::Unauthenticated(said.describe(status)),
            StatusCode::FORBIDDEN => credentials(format!(
                "{} (the service account may not send messages for this project)",
                said.describe(status)
            )),
            StatusCode::TOO_MANY_REQUESTS => {
                let after = after();
                Verdict::Done(Outcome::Retry { after }, Some(Refusal::Quota { after }))
            }
            StatusCode::REQUEST_TIMEOUT
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => retry(None),
            _ => Verdict::Done(
                Outcome::Failed {
                    reason: said.describe(status),
                },
                None,
            ),
        },
    }
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn google(code: u16, status: &str, error_code: Option<&str>) -> Vec<u8> {
        let mut details = vec![];
        if let Some(c) = error_code {
            details.push(json!({
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": c,
            }));
        }
        json!({"error": {"code": code, "message": "m", "status": status, "details": details}})
            .to_string()
            .into_bytes()
    }

    fn verdict(status: u16, body: &[u8], retry_after: Option<&str>) -> Verdict {
        let mut headers = HeaderMap::new();
        if let Some(r) = retry_after {
            headers.insert(http::header::RETRY_AFTER, r.parse().unwrap());
        }
        classify(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            body,
            Tick::from_millis(0),
        )
    }

    #[test]
    fn the_error_code_decides_not_the_status() {
        let invalid = Verdict::Done(Outcome::InvalidToken { at: None }, None);
        let retry = Verdict::Done(Outcome::Retry { after: None }, None);
        assert_eq!(
            verdict(404, &google(404, "NOT_FOUND", Some("UNREGISTERED")), None),
            invalid
        );
        assert_eq!(
            verdict(404, &google(404, "NOT_FOUND", Some("UNAVAILABLE")), None),
            retry
        );
        assert_eq!(
            verdict(503, &google(503, "UNAVAILABLE", Some("UNREGISTERED")), None),
            invalid
        );
        assert_eq!(
            verdict(503, &google(503, "UNAVAILABLE", Some("UNAVAILABLE")), None),
            retry
        );
        assert_eq!(
            verdict(
                403,
                &google(403, "PERMISSION_DENIED", Some("SENDER_ID_MISMATCH")),
                None
            ),
            invalid
        );
    }

    #[test]
    fn retry_after_and_quota() {
        let seven = Some(Duration::from_secs(7));
        assert_eq!(
            verdict(
                429,
                &google(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED")),
                Some("7")
            ),
            Verdict::Done(
                Outcome::Retry { after: seven },
                Some(Refusal::Quota { after: seven })
            )
        );
        assert_eq!(
            verdict(
                500,
                &google(500, "INTERNAL", Some("INTERNAL")),
                Some("Thu, 01 Jan 1970 00:00:07 GMT")
            ),
            Verdict::Done(Outcome::Retry { after: seven }, None)
        );
        assert_eq!(
            verdict(503, b"<html>overloaded</html>", None),
            Verdict::Done(Outcome::Retry { after: None }, None)
        );
    }

    #[test]
    fn credentials_and_bad_requests_say_why() {
        let Verdict::Done(Outcome::Retry { after: None }, Some(Refusal::Credentials { reason })) =
            verdict(
                401,
                &google(401, "UNAUTHENTICATED", Some("THIRD_PARTY_AUTH_ERROR")),
                None,
            )
        else {
            panic!("credentials")
        };
        assert_eq!(reason, "FCM 401 THIRD_PARTY_AUTH_ERROR: m");
        assert_eq!(
            verdict(401, &google(401, "UNAUTHENTICATED", None), None),
            Verdict::Unauthenticated("FCM 401 UNAUTHENTICATED: m".into())
        );
        let body = json!({"error": {"code": 400, "message": "bad ttl", "status": "INVALID_ARGUMENT",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "fieldViolations": [{"field": "message.android.ttl", "description": "Invalid value"}]},
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"},
        ]}});
        assert_eq!(
            verdict(400, body.to_string().as_bytes(), None),
            Verdict::Done(
                Outcome::Failed {
                    reason:
                        "FCM 400 INVALID_ARGUMENT: bad ttl (message.android.ttl: Invalid value)"
                            .into()
                },
                None
            )
        );
        let Verdict::Done(Outcome::Failed { reason }, None) = verdict(418, &[0xff; 2000], None)
        else {
            panic!("failed")
        };
        assert_eq!(reason, "FCM 418");
    }
}
