//! The rules for a bus's Redis channel name.

use crate::ConnectError;

/// The longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 256;

/// Checks `name` against the rules of
/// [`RedisBus::connect`](crate::RedisBus::connect): 1 to
/// [`MAX_CHANNEL_LEN`] bytes of printable ASCII without spaces.
///
/// Redis itself takes any bytes; the narrower rule keeps names readable in
/// `PUBSUB CHANNELS`, `MONITOR` and logs, and catches a name assembled
/// from an empty or garbled setting.
///
/// # Errors
///
/// [`ConnectError::Channel`], saying which rule the name breaks.
///
/// # Examples
///
/// ```
/// assert!(herald_redis::validate_channel("herald:prod:news-app").is_ok());
/// assert!(herald_redis::validate_channel("").is_err());
/// assert!(herald_redis::validate_channel("herald: spaced").is_err());
/// ```
pub fn validate_channel(name: &str) -> Result<(), ConnectError> {
    let why = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_CHANNEL_LEN {
        Some("longer than 256 bytes")
    } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
        Some("only printable ASCII without spaces is allowed")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(ConnectError::Channel {
            name: name.to_owned(),
            why,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(name: &str) -> Option<&'static str> {
        match validate_channel(name) {
            Ok(()) => None,
            Err(ConnectError::Channel { why, .. }) => Some(why),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn names_follow_the_rules() {
        assert_eq!(why("herald:app"), None);
        assert_eq!(why("h{app}*?[x]"), None, "no pattern is involved");
        assert_eq!(why(&"x".repeat(MAX_CHANNEL_LEN)), None);
        assert_eq!(why(""), Some("empty"));
        assert_eq!(
            why(&"x".repeat(MAX_CHANNEL_LEN + 1)),
            Some("longer than 256 bytes")
        );
        for bad in ["a b", "a\nb", "a\tb", "é", "a\0"] {
            assert_eq!(
                why(bad),
                Some("only printable ASCII without spaces is allowed"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_error_names_the_channel_and_the_rule() {
        let e = validate_channel("a b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid redis bus channel name \"a b\": only printable ASCII without spaces is allowed"
        );
    }
}
