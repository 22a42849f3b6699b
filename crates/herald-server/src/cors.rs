//! CORS: which web pages may call the server from another origin.
//!
//! Backendless lets a web page use its API from any origin (the API key is
//! in the path, not in a cookie), and so does Herald by default
//! (`cors_origins = ["*"]`). A list of origins restricts the browsers'
//! grant to those pages; it is no access control for other clients, which
//! do not send or check CORS headers at all.
//!
//! # What is answered
//!
//! [`layer`] is a [`tower_http::cors::CorsLayer`] over the whole router,
//! so it covers the REST API, `/openapi.json`, `/health` and socket.io's
//! Engine.IO long-polling requests (socketioxide adds no CORS headers of
//! its own; its documentation points to this layer). WebSockets need no
//! CORS.
//!
//! * A request from an allowed origin gets `Access-Control-Allow-Origin`
//!   with that origin (mirrored, also for `*`; with `Vary: Origin`, so a
//!   cache keeps the answers apart).
//! * A preflight (`OPTIONS`, from any origin, on any path) is answered by
//!   the layer itself, before routing: `200`, no body,
//!   `Access-Control-Allow-Methods: GET,POST,DELETE`,
//!   `Access-Control-Allow-Headers` with [`ALLOWED_HEADERS`] and
//!   `Access-Control-Max-Age` ([`MAX_AGE`]), and the allow-origin header
//!   only when the origin is allowed. So a preflight is never a 405, and a
//!   disallowed page gets no grant (its browser then refuses the request).
//! * `/metrics` never grants an origin: it needs no key, and without a
//!   metrics token it trusts loopback clients, so a page the operator opens
//!   must not be able to read it.
//!
//! No credentials (`Access-Control-Allow-Credentials`): the SDK sends none
//! (`withCredentials` is off), and the key is in the path.

use std::time::Duration;

use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The request headers a page may send: the JSON content type, the
/// headers Backendless SDKs send (`user-token` in v8; `application-id` and
/// `secret-key` in older ones), and `idempotency-key` (safe publish
/// retries).
pub(crate) const ALLOWED_HEADERS: [&str; 5] = [
    "content-type",
    "application-id",
    "secret-key",
    "user-token",
    "idempotency-key",
];

/// The methods of the REST API (the OpenAPI document's methods; a test
/// keeps them equal).
pub(crate) const ALLOWED_METHODS: [Method; 3] = [Method::GET, Method::POST, Method::DELETE];

/// How long a browser may cache a preflight's answer.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(600);

/// Paths that never grant an origin.
const NO_CORS: [&str; 1] = ["/metrics"];

/// The CORS layer for `origins` (`cors_origins`: `*`, or origins
/// `scheme://host[:port]` as [`Config::validate`](crate::Config::validate)
/// accepts them).
pub(crate) fn layer(origins: &[String]) -> CorsLayer {
    let allowed = Origins::new(origins);
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(
            move |origin: &HeaderValue, parts: &Parts| {
                !NO_CORS.contains(&parts.uri.path()) && allowed.allows(origin)
            },
        ))
        .allow_methods(ALLOWED_METHODS)
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .max_age(MAX_AGE)
}

/// The configured origins, normalized as browsers send them.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origins {
    /// `*`: every origin.
    Any,
    /// Only these (normalized).
    List(Vec<String>),
}

impl Origins {
    fn new(configured: &[String]) -> Self {
        if configured.iter().any(|o| o == "*") {
            return Self::Any;
        }
        Self::List(configured.iter().map(|o| normalize(o)).collect())
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => origin
                .to_str()
                .is_ok_and(|o| list.iter().any(|allowed| *allowed == normalize(o))),
        }
    }
}

/// An origin as a browser serializes it: scheme and host in lower case,
/// without the scheme's default port (`HTTPS://App.Example:443` is
/// `https://app.example`).
fn normalize(origin: &str) -> String {
    let lower = origin.trim().to_ascii_lowercase();
    for (scheme, port) in [("http://", ":80"), ("https://", ":443")] {
        if let Some(host) = lower.strip_prefix(scheme)
            && let Some(bare) = host.strip_suffix(port)
        {
            return format!("{scheme}{bare}");
        }
    }
    lower
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Origins {
        Origins::new(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    fn allows(o: &Origins, origin: &str) -> bool {
        o.allows(&HeaderValue::from_str(origin).unwrap())
    }

    #[test]
    fn star_allows_every_origin() {
        let any = origins(&["https://a.example", "*"]);
        assert_eq!(any, Origins::Any);
        assert!(allows(&any, "https://anything.example:8443"));
        assert!(allows(&any, "null"));
    }

    #[test]
    fn a_list_allows_its_origins_only() {
        let list = origins(&["https://app.example", "http://127.0.0.1:5173"]);
        assert!(allows(&list, "https://app.example"));
        assert!(allows(&list, "http://127.0.0.1:5173"));
        for other in [
            "https://app.example:8443",
            "http://app.example",
            "https://evil.example",
            "https://app.example.evil.example",
            "http://127.0.0.1:5174",
            "null",
            "",
        ] {
            assert!(!allows(&list, other), "{other}");
        }
    }

    #[test]
    fn origins_compare_as_browsers_send_them() {
        assert_eq!(normalize("HTTPS://App.Example:443"), "https://app.example");
        assert_eq!(normalize("http://a.example:80"), "http://a.example");
        assert_eq!(normalize("http://a.example:8080"), "http://a.example:8080");
        assert_eq!(normalize("https://a.example:80"), "https://a.example:80");
        assert_eq!(normalize("http://[::1]:80"), "http://[::1]");
        let list = origins(&["HTTPS://App.Example:443"]);
        assert!(allows(&list, "https://app.example"));
    }
}
