//! Request bodies: content type, size limit, bytes.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use crate::error::ApiError;

/// Reads a body of at most `limit` bytes whose content type is JSON
/// (`application/json` or `application/*+json`, any parameters) or absent.
/// Returns `None` for an empty (or all-whitespace) body.
pub(crate) async fn read_bytes(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Option<Bytes>, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE)
        && !is_json_content_type(ct.to_str().unwrap_or(""))
    {
        return Err(ApiError::unsupported_media_type());
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::body_too_large(limit));
        }
        Err(e) => return Err(ApiError::malformed_json(format!("unreadable body: {e}"))),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// Reads a small JSON body into a [`Value`]: `null` when empty and
/// `optional`, else 8004.
pub(crate) async fn read_json(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    optional: bool,
) -> Result<Value, ApiError> {
    match read_bytes(headers, body, limit).await? {
        None if optional => Ok(Value::Null),
        None => Err(ApiError::malformed_json("the body is empty")),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(ApiError::malformed_json),
    }
}

pub(crate) fn is_json_content_type(ct: &str) -> bool {
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/vnd.api+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/x-www-form-urlencoded"));
        assert!(!is_json_content_type(""));
    }
}
