//! [`Accepted`]: what the mock recorded of a notification it accepted.

use herald_core::Tick;
use http::HeaderMap;
use serde_json::Value;

/// A notification the mock answered `200`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Accepted {
    /// The device token of the path.
    pub device_token: String,
    /// The `apns-id` answered (the request's, or one the mock made up).
    pub apns_id: String,
    /// The request's headers, `authorization` left out.
    pub headers: HeaderMap,
    /// The body, parsed.
    pub payload: Value,
    /// Which connection it came on (0, 1, ... in accept order).
    pub connection: u64,
    /// The mock's time when it was accepted.
    pub at: Tick,
}

impl Accepted {
    /// The value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
