//! The mock's answers, shaped like APNs's: `200` with `apns-id`, or a
//! status with `{"reason": "..."}` (`410` adds `"timestamp"` in ms), and
//! `retry-after` when scripted.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

/// A refusal: a status and Apple's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) status: u16,
    pub(crate) reason: Cow<'static, str>,
}

impl Rejection {
    pub(crate) const fn new(status: u16, reason: &'static str) -> Self {
        Self {
            status,
            reason: Cow::Borrowed(reason),
        }
    }
}

/// `200`, echoing `apns_id`.
pub(crate) fn accepted(apns_id: &HeaderValue) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    insert_id(&mut response, apns_id);
    response
}

/// An error answer: `{"reason": ...}`, plus `"timestamp"` (ms) for a 410,
/// and `retry-after` if given.
pub(crate) fn refused(
    rejection: &Rejection,
    apns_id: &HeaderValue,
    timestamp_ms: Option<u64>,
    retry_after: Option<&str>,
) -> Response<Bytes> {
    let body = match timestamp_ms {
        Some(ts) => serde_json::json!({"reason": rejection.reason, "timestamp": ts}),
        None => serde_json::json!({"reason": rejection.reason}),
    };
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, value);
    }
    insert_id(&mut response, apns_id);
    response
}

/// `apns-id`, never HPACK-indexed: each answer's is new, and indexing
/// them would only churn both sides' tables.
fn insert_id(response: &mut Response<Bytes>, apns_id: &HeaderValue) {
    let mut value = apns_id.clone();
    value.set_sensitive(true);
    response.headers_mut().insert(APNS_ID, value);
}

const APNS_ID: http::HeaderName = http::HeaderName::from_static("apns-id");
