//! `ApiError`: every error response, as `{"code": N, "message": "..."}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The server's own error codes (Backendless publishes none for these; the
/// engine's codes are in [`herald::Error`]).
pub mod codes {
    /// No such endpoint (404).
    pub const UNKNOWN_ROUTE: u32 = 8001;
    /// Unknown application id or API key (401).
    pub const BAD_CREDENTIALS: u32 = 8002;
    /// The request body is over the configured limit (413).
    pub const BODY_TOO_LARGE: u32 = 8003;
    /// The body is not valid JSON, or has the wrong shape (400).
    pub const MALFORMED_JSON: u32 = 8004;
    /// The body's content type is not JSON (415).
    pub const UNSUPPORTED_MEDIA_TYPE: u32 = 8005;
    /// No such legacy polling subscription, or it expired (404).
    pub const UNKNOWN_SUBSCRIPTION: u32 = 8006;
    /// A real-time request or subscription this server does not implement.
    pub const NOT_SUPPORTED: u32 = 8007;
    /// Too many legacy polling subscriptions at once (429).
    pub const TOO_MANY_SUBSCRIPTIONS: u32 = 8008;
    /// The endpoint exists but not with this HTTP method (405).
    pub const METHOD_NOT_ALLOWED: u32 = 8009;
    /// The request did not finish within `request_timeout` (408).
    pub const REQUEST_TIMEOUT: u32 = 8010;
    /// `/metrics` without the metrics token (401), or, with no token
    /// configured, from a client that is not on the loopback interface (403).
    pub const METRICS_DENIED: u32 = 8011;
    /// Publish permission denied (Backendless's text; Herald's code).
    pub const PUBLISH_DENIED: u32 = 5030;
    /// Subscribe permission denied (Backendless's text; Herald's code).
    pub const SUBSCRIBE_DENIED: u32 = 5031;
    /// The key may not register devices, nor read or remove registrations
    /// (400; `register` in the key's configuration).
    pub const REGISTER_DENIED: u32 = 5032;
    /// The key may not send push notifications to that channel (400;
    /// `push` in the key's configuration).
    pub const PUSH_DENIED: u32 = 5033;
    /// The key may not manage (or list) push templates (400; `templates`
    /// in the key's configuration).
    pub const TEMPLATES_DENIED: u32 = 5034;
    /// A device type that is not `IOS`, `ANDROID` or `ALL` (400; `GET
    /// messaging/pushtemplates/{deviceType}`).
    pub const INVALID_DEVICE_TYPE: u32 = 8012;
    /// An invalid selector: the engine's code for one that does not parse
    /// ([`herald::Error::InvalidSelector`]), which the server also uses for
    /// a selector that is not a string (400).
    pub const INVALID_SELECTOR: u32 = 5012;
}

/// An error response: an HTTP status and a Backendless-style body
/// `{"code": N, "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// The HTTP status.
    #[serde(skip)]
    pub status: StatusCode,
    /// The Backendless (or Herald server) error code.
    pub code: u32,
    /// The human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401, code 8002.
    pub fn bad_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::BAD_CREDENTIALS,
            "Invalid application id or API key.",
        )
    }

    /// 404, code 8001.
    pub fn unknown_route(method: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_ROUTE,
            format!("No such endpoint ({method})."),
        )
    }

    /// 404, code 8001, for a Backendless endpoint Herald does not serve.
    pub fn not_supported_endpoint(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_ROUTE,
            format!("Not supported by this Herald server: {what}."),
        )
    }

    /// 405, code 8009.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            format!("Method {method} is not allowed on this endpoint."),
        )
    }

    /// 413, code 8003.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BODY_TOO_LARGE,
            format!("Request body is larger than {limit} bytes."),
        )
    }

    /// 400, code 8004.
    pub fn malformed_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::MALFORMED_JSON,
            format!("Malformed JSON body: {detail}"),
        )
    }

    /// 415, code 8005.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json.",
        )
    }

    /// 404, code 8006.
    pub fn unknown_subscription() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_SUBSCRIPTION,
            "Unknown or expired subscription.",
        )
    }

    /// 429, code 8008.
    pub fn too_many_subscriptions() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::TOO_MANY_SUBSCRIPTIONS,
            "Too many polling subscriptions; try again later.",
        )
    }

    /// 400, code 5030.
    pub fn publish_denied() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::PUBLISH_DENIED,
            "User does not have the permission to publish messages",
        )
    }

    /// 400, code 5031.
    pub fn subscribe_denied() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::SUBSCRIBE_DENIED,
            "User does not have the permission to subscribe",
        )
    }

    /// 400, code 5032.
    pub fn register_denied() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::REGISTER_DENIED,
            "User does not have the permission to register devices",
        )
    }

    /// 400, code 5033.
    pub fn push_denied() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::PUSH_DENIED,
            "User does not have the permission to send push notifications",
        )
    }

    /// 400, code 5034.
    pub fn templates_denied() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::TEMPLATES_DENIED,
            "User does not have the permission to manage push templates",
        )
    }

    /// 400, code 8012: `GET messaging/pushtemplates/{deviceType}` with
    /// another device type than `IOS`, `ANDROID` or `ALL`. The value is
    /// shown escaped and cut to 64 characters.
    pub fn invalid_device_type(given: &str) -> Self {
        let shown: String = given.chars().take(64).collect();
        let more = if shown.len() < given.len() { "…" } else { "" };
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_DEVICE_TYPE,
            format!("Invalid device type {shown:?}{more}: use IOS, ANDROID or ALL."),
        )
    }

    /// 400, code 5012: a `selector` that is not a string (or null).
    pub fn selector_not_a_string() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_SELECTOR,
            "Invalid selector: it must be a string.",
        )
    }

    /// 400, code 8007: a real-time subscription kind (`SUB_ON` name) this
    /// server does not implement.
    pub fn subscription_not_supported(kind: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::NOT_SUPPORTED,
            format!("Subscription {kind:?} is not supported by this server."),
        )
    }

    /// 400, code 8007: a real-time method (`MET_REQ` name) this server does
    /// not implement.
    pub fn method_not_supported(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            codes::NOT_SUPPORTED,
            format!("Method {name:?} is not supported by this server."),
        )
    }

    /// 408, code 8010: the request took longer than `limit`.
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            codes::REQUEST_TIMEOUT,
            format!(
                "The request did not finish within {} s (request_timeout); \
                 a publish may still have been accepted (retry with the same Idempotency-Key).",
                limit.as_secs_f64()
            ),
        )
    }

    /// 401, code 8011: `/metrics` without the right bearer token.
    pub fn metrics_token_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            codes::METRICS_DENIED,
            "The metrics need 'Authorization: Bearer <metrics_token>'.",
        )
    }

    /// 403, code 8011: `/metrics` from a remote client with no metrics
    /// token configured.
    pub fn metrics_loopback_only() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            codes::METRICS_DENIED,
            "The metrics answer loopback clients only; set metrics_token to read them remotely.",
        )
    }

    /// The body as a JSON value (for real-time `error` fields).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code, "message": self.message })
    }
}

impl From<herald::Error> for ApiError {
    /// Validation and cancel errors are 400 (an invalid `Idempotency-Key`,
    /// 5096, too); an unknown device (5000) or push template (5050) is
    /// 404; too many subscriptions on one connection is 429; an
    /// `Idempotency-Key` a different request used (5095) is 409; a
    /// shut-down engine or a store that cannot write (5093) is 503; another
    /// store or transport failure is 500.
    fn from(e: herald::Error) -> Self {
        let status = if matches!(
            e,
            herald::Error::UnknownDevice | herald::Error::TemplateNotFound
        ) {
            StatusCode::NOT_FOUND
        } else if matches!(e, herald::Error::TooManySubscriptions { .. }) {
            StatusCode::TOO_MANY_REQUESTS
        } else if matches!(e, herald::Error::IdempotencyKeyReused) {
            StatusCode::CONFLICT
        } else if e.is_client_error() {
            StatusCode::BAD_REQUEST
        } else if matches!(
            e,
            herald::Error::ShutDown | herald::Error::StoreUnavailable(_)
        ) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Self::new(status, e.code(), e.message())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    /// The JSON body, and the code as an `ErrorCode` extension for the
    /// request log.
    fn into_response(self) -> Response {
        let mut res = json_response(self.status, &self);
        res.extensions_mut().insert(ErrorCode(self.code));
        res
    }
}

/// The error code of an error response, as a response extension: the
/// request log prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ErrorCode(pub(crate) u32);

/// A response with this status whose body is JSON text already written.
pub(crate) fn json_text_response(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A JSON response with this status.
pub(crate) fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut res = (status, bytes).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        // Serializing our own types cannot fail (no non-string map keys).
        Err(e) => {
            tracing::error!(error = %e, "response serialization failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_statuses() {
        let e = ApiError::from(herald::Error::NotCancellable);
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, 5040));
        let e = ApiError::from(herald::Error::ShutDown);
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        let e = ApiError::from(herald::Error::UnknownDevice);
        assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, 5000));
        let e = ApiError::from(herald::Error::TemplateNotFound);
        assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, 5050));
        let e = ApiError::from(herald::Error::InvalidTemplate { reason: "x".into() });
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, 5051));
        assert_eq!(
            ApiError::publish_denied().to_json(),
            serde_json::json!({"code": 5030, "message": "User does not have the permission to publish messages"})
        );
    }

    #[test]
    fn named_constructors() {
        let cases = [
            (
                ApiError::selector_not_a_string(),
                400,
                5012,
                "Invalid selector: it must be a string.",
            ),
            (
                ApiError::subscription_not_supported("PUB_SUB_COMMANDS"),
                400,
                8007,
                "Subscription \"PUB_SUB_COMMANDS\" is not supported by this server.",
            ),
            (
                ApiError::register_denied(),
                400,
                5032,
                "User does not have the permission to register devices",
            ),
            (
                ApiError::push_denied(),
                400,
                5033,
                "User does not have the permission to send push notifications",
            ),
            (
                ApiError::templates_denied(),
                400,
                5034,
                "User does not have the permission to manage push templates",
            ),
            (
                ApiError::invalid_device_type("WINDOWS"),
                400,
                8012,
                "Invalid device type \"WINDOWS\": use IOS, ANDROID or ALL.",
            ),
            (
                ApiError::method_not_supported("SET_FOO"),
                400,
                8007,
                "Method \"SET_FOO\" is not supported by this server.",
            ),
        ];
        for (e, status, code, message) in cases {
            assert_eq!(
                (e.status.as_u16(), e.code, e.message.as_str()),
                (status, code, message)
            );
        }
    }
}
