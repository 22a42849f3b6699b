//! Percent-decoding of path segments and query strings.

/// Decodes `%XX` escapes in a path segment (`+` stays `+`). `None` when an
/// escape is malformed or the result is not UTF-8.
pub(crate) fn decode_segment(raw: &str) -> Option<String> {
    decode(raw, false)
}

/// Decodes a path segment naming something clients choose (a template, a
/// device, a message id), leniently: escapes whose bytes are UTF-8 are
/// decoded, a malformed escape or one whose bytes are not UTF-8 stays as
/// its text. A name holding `%e3` (created from a JSON body) is then still
/// found when a client puts it in a path without escaping the `%`, even
/// next to escapes it did encode (`a%C3%B2%e3` is `aò%e3`).
pub(crate) fn decode_segment_lenient(raw: &str) -> String {
    let bytes = raw.as_bytes();
    // Each decoded byte, and where its escape starts in `raw` (`None`: a
    // byte of `raw` itself).
    let mut out: Vec<(u8, Option<usize>)> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| Some(hex(*bytes.get(i + 1)?)? << 4 | hex(*bytes.get(i + 2)?)?))
            .flatten();
        match escape {
            Some(b) => {
                out.push((b, Some(i)));
                i += 3;
            }
            None => {
                out.push((bytes[i], None));
                i += 1;
            }
        }
    }
    let decoded: Vec<u8> = out.iter().map(|&(b, _)| b).collect();
    let mut text = String::with_capacity(raw.len());
    let mut rest = &decoded[..];
    let mut at = 0;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                text.push_str(valid);
                return text;
            }
            Err(e) => {
                let good = e.valid_up_to();
                // Valid UTF-8 up to `good` (checked just now).
                text.push_str(std::str::from_utf8(&rest[..good]).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len() - good);
                // Each invalid byte goes back to its escape's text (a byte
                // of `raw` itself is never the invalid one: `raw` is UTF-8,
                // but it may end a sequence an escape began).
                for &(b, src) in &out[at + good..at + good + bad] {
                    match src {
                        Some(j) => text.push_str(&raw[j..j + 3]),
                        None => text.push(char::from(b)),
                    }
                }
                at += good + bad;
                rest = &rest[good + bad..];
            }
        }
    }
}

/// The value of `name` in a query string (`a=1&b=2`), decoded as a form
/// value (`+` is a space). `None` when absent or undecodable.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(k, true)? == name {
            decode(v, true)
        } else {
            None
        }
    })
}

fn decode(raw: &str, plus_is_space: bool) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert_eq!(decode_segment("my%20chan").as_deref(), Some("my chan"));
        assert_eq!(decode_segment("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_segment("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(decode_segment("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(decode_segment("plain").as_deref(), Some("plain"));
        assert_eq!(decode_segment("%"), None);
        assert_eq!(decode_segment("%4"), None);
        assert_eq!(decode_segment("%zz"), None);
        assert_eq!(decode_segment("%FF"), None, "not UTF-8");
    }

    #[test]
    fn lenient_segments() {
        let d = decode_segment_lenient;
        assert_eq!(d("caf%C3%A9"), "café");
        assert_eq!(d("a%2Fb"), "a/b");
        assert_eq!(d("plain+text"), "plain+text");
        // Not UTF-8 on its own: stays as its text.
        assert_eq!(d("a%e3"), "a%e3");
        assert_eq!(d("a%FF%fe"), "a%FF%fe");
        // Escapes that decode, next to one that does not.
        assert_eq!(d("a%C3%B2%e3%C2%B8"), "aò%e3¸");
        // Malformed escapes stay as they are.
        assert_eq!(d("%"), "%");
        assert_eq!(d("%4"), "%4");
        assert_eq!(d("100%zz"), "100%zz");
        // A lone byte of a sequence, then a valid character.
        assert_eq!(d("%C3x%C3%A9"), "%C3xé");
    }

    #[test]
    fn queries() {
        let q = Some("EIO=4&transport=polling&apiKey=A%2BB+C&userToken=null");
        assert_eq!(query_param(q, "apiKey").as_deref(), Some("A+B C"));
        assert_eq!(query_param(q, "EIO").as_deref(), Some("4"));
        assert_eq!(query_param(q, "nope"), None);
        assert_eq!(query_param(None, "apiKey"), None);
        assert_eq!(query_param(Some("flag"), "flag").as_deref(), Some(""));
    }
}
