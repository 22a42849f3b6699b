//! Entry points for the fuzz target `gateway_answers` (not a public API).

use bytes::Bytes;
use herald_core::Tick;
use herald_http2::Response;
use http::{HeaderMap, HeaderValue, StatusCode};

/// Arbitrary bytes as an APNs answer: two bytes of status, a `Retry-After`
/// value up to the first zero byte, the rest as the body; classified at an
/// arbitrary time. Must never panic.
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
        headers.insert("retry-after", v);
    }
    let now = Tick::from_millis(u64::from(body.len() as u32) * 1_000_000_007);
    let response = Response {
        status,
        headers,
        body: Bytes::copy_from_slice(body),
    };
    let _ = crate::answer::classify(&response, now);
    if let Ok(text) = std::str::from_utf8(retry) {
        let _ = herald_http2::retry_after(text, now);
        let _ = crate::answer::describe(status.as_u16(), Some(text));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fuzz_entry_point_takes_garbage_and_real_answers() {
        for data in [
            &b""[..],
            b"\x01",
            b"\x01\x2c5\x00{\"reason\":\"TooManyRequests\"}",
            b"\x01\x36\x00{\"reason\":\"Unregistered\",\"timestamp\":18446744073709551615}",
            b"\xff\xff\xff\x00\xff{",
            b"\x00\x00Tue, 01 Jan 2999 00:00:00 GMT\x00{}",
        ] {
            super::answer(data);
        }
    }
}
