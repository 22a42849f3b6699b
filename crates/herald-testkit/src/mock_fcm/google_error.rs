//! Google's answers as JSON responses: the API error
//! (`{"error": {"code", "message", "status", "details"}}`) and the OAuth2
//! token endpoint's error (`{"error", "error_description"}`).

use bytes::Bytes;
use http::HeaderValue;
use serde_json::{Value, json};

/// The `@type` of FCM's error detail.
pub(crate) const FCM_ERROR_TYPE: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";
/// The `@type` of a bad request's field violations.
pub(crate) const BAD_REQUEST_TYPE: &str = "type.googleapis.com/google.rpc.BadRequest";

/// A JSON response with `status` and optional `Retry-After`.
pub(crate) fn json_response(
    status: u16,
    body: &Value,
    retry_after: Option<&str>,
) -> http::Response<Bytes> {
    let mut builder = http::Response::builder().status(status).header(
        http::header::CONTENT_TYPE,
        "application/json; charset=UTF-8",
    );
    if let Some(r) = retry_after {
        builder = builder.header(http::header::RETRY_AFTER, r);
    }
    let body = Bytes::from(body.to_string());
    with_body(builder, body)
}

/// A `200`-style JSON answer whose body is written already.
pub(crate) fn json_bytes(status: u16, body: Bytes) -> http::Response<Bytes> {
    let builder = http::Response::builder().status(status).header(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    with_body(builder, body)
}

fn with_body(builder: http::response::Builder, body: Bytes) -> http::Response<Bytes> {
    builder.body(body.clone()).unwrap_or_else(|_| {
        // A status or Retry-After the test scripted that HTTP cannot carry.
        let mut r = http::Response::new(body);
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// Google's canonical status name for an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// Google's message for an FCM error code.
pub(crate) fn fcm_message(error_code: Option<&str>, status: u16) -> &'static str {
    match error_code {
        Some("UNREGISTERED") => "Requested entity was not found.",
        Some("SENDER_ID_MISMATCH") => "SenderId mismatch",
        Some("QUOTA_EXCEEDED") => {
            "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'."
        }
        Some("UNAVAILABLE") => "The service is currently unavailable.",
        Some("INTERNAL") => "Internal error encountered.",
        Some("THIRD_PARTY_AUTH_ERROR") => "Auth error from APNS or Web Push Service",
        Some("INVALID_ARGUMENT") => "The registration token is not a valid FCM registration token",
        _ => match status {
            401 => {
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
            }
            404 => "Requested entity was not found.",
            429 => "Resource has been exhausted (e.g. check quota).",
            503 => "The service is currently unavailable.",
            _ => "Internal error encountered.",
        },
    }
}

/// Google's API error: `status`, `message`, an FCM `errorCode` detail if
/// given, and a `BadRequest` detail if there are field violations.
pub(crate) fn api_error(
    status: u16,
    message: &str,
    error_code: Option<&str>,
    violations: &[(String, String)],
    retry_after: Option<&str>,
) -> http::Response<Bytes> {
    let mut details = Vec::new();
    if !violations.is_empty() {
        let violations: Vec<Value> = violations
            .iter()
            .map(|(field, description)| json!({"field": field, "description": description}))
            .collect();
        details.push(json!({"@type": BAD_REQUEST_TYPE, "fieldViolations": violations}));
    }
    if let Some(code) = error_code {
        details.push(json!({"@type": FCM_ERROR_TYPE, "errorCode": code}));
    }
    let mut error = json!({
        "code": status,
        "message": message,
        "status": status_name(status),
    });
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    json_response(status, &json!({ "error": error }), retry_after)
}

/// A message FCM refuses as `INVALID_ARGUMENT`, naming the field.
pub(crate) fn invalid_argument(field: &str, description: String) -> http::Response<Bytes> {
    api_error(
        400,
        &description,
        Some("INVALID_ARGUMENT"),
        &[(field.to_owned(), description.clone())],
        None,
    )
}

/// The token endpoint's error: 400 `{"error", "error_description"}`.
pub(crate) fn oauth_error(error: &str, description: &str) -> http::Response<Bytes> {
    json_response(
        400,
        &json!({"error": error, "error_description": description}),
        None,
    )
}
