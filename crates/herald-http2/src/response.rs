//! `Response`: a server's whole answer to one request.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

/// A server's answer to one request, its body read in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The response headers (`apns-id`, `retry-after`...).
    pub headers: HeaderMap,
    /// The body (empty for an APNs 200).
    pub body: Bytes,
}

impl Response {
    /// The value of header `name` as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
