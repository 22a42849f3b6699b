//! Entry points for the fuzz target `gateway_answers` (not a public API).

use herald_core::Tick;
use http::{HeaderMap, HeaderValue, StatusCode};

/// Arbitrary bytes as an FCM answer: two bytes of status, a `Retry-After`
/// value up to the first zero byte, the rest as the body (Google's error
/// JSON); classified at an arbitrary time. The body is also read as a
/// service-account key. Must never panic.
pub fn answer(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = StatusCode::from_u16(100 + u16::from_be_bytes(*head) % 500)
        .unwrap_or(StatusCode::BAD_REQUEST);
    let (retry, body) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(retry) {
        headers.insert(http::header::RETRY_AFTER, v);
    }
    let now = Tick::from_millis(u64::from(body.len() as u32) * 1_000_000_007);
    let _ = crate::answer::classify(status, &headers, body, now);
    if let Ok(text) = std::str::from_utf8(retry) {
        let _ = herald_http2::retry_after(text, now);
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = crate::ServiceAccount::from_json(text, None);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fuzz_entry_point_takes_garbage_and_real_answers() {
        for data in [
            &b""[..],
            b"\x01",
            b"\x01\x2d7\x00{\"error\":{\"details\":[{\"errorCode\":\"QUOTA_EXCEEDED\"}]}}",
            b"\x01\x2d\x00{\"error\":{\"details\":[{\"fieldViolations\":[{}]}, 7, null]}}",
            b"\x00\x00\x00{\"private_key\": 5, \"client_email\": []}",
            b"\x00\x00Tue, 01 Jan 1970 00:00:00 GMT\x00[]",
        ] {
            super::answer(data);
        }
    }
}
