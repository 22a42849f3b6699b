//! Percent-decoding of path segments and query strings.

/// Decodes `%XX` escapes in a path segment (`+` stays `+`). `None` when an
/// escape is malformed or the result is not UTF-8.
pub(crate) fn decode_segment(raw: &str) -> Option<String> {
    decode(raw, false)
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
    fn queries() {
        let q = Some("EIO=4&transport=polling&apiKey=A%2BB+C&userToken=null");
        assert_eq!(query_param(q, "apiKey").as_deref(), Some("A+B C"));
        assert_eq!(query_param(q, "EIO").as_deref(), Some("4"));
        assert_eq!(query_param(q, "nope"), None);
        assert_eq!(query_param(None, "apiKey"), None);
        assert_eq!(query_param(Some("flag"), "flag").as_deref(), Some(""));
    }
}
