//! Every rule and limit a publish is checked against, written once.
//!
//! The request decoders ([`DeliveryOptions::from_json`](crate::DeliveryOptions::from_json)),
//! the delivery plan ([`DeliveryPlan`](crate::DeliveryPlan)) and the stored
//! form ([`codec`](crate::codec)) all call these functions, so a rule cannot
//! drift between the wire, the engine and the stores.

use chrono::{DateTime, TimeDelta, Utc};
use herald_core::Tick;

use crate::Error;

/// The longest channel name, in bytes.
pub const MAX_CHANNEL_LEN: usize = 255;

/// How far in the past `publishAt` may be (clock skew) and still publish
/// now; further back it is error 5003.
pub const PAST_TOLERANCE_MS: u64 = 1_000;

/// The longest `repeatEvery`, in seconds (about 31.7 years): far beyond any
/// sensible period, and it keeps the millisecond arithmetic exact.
pub const MAX_REPEAT_SECONDS: u64 = 1_000_000_000;

/// The largest epoch-millisecond time accepted (`publishAt`,
/// `repeatExpiresAt`): the last millisecond `chrono` represents (the end of
/// year 262143), a little before JavaScript's `Date` maximum.
pub const MAX_EPOCH_MS: u64 = 8_210_266_876_799_999;

/// The longest idempotency key (an `Idempotency-Key` header), in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// How long an idempotency key holds after its publish: 24 hours. A retry
/// with the key within this answers the first publish's answer; after it,
/// the key is forgotten (and a publish with it is a new one).
pub const IDEMPOTENCY_KEY_TTL_MS: u64 = 24 * 3_600_000;

/// The first segments of `messaging/...` paths that are not channels:
/// refused as channel names (5010), any case.
pub const RESERVED_CHANNELS: [&str; 4] = ["registrations", "push", "pushtemplates", "channels"];

/// The longest `deviceId`, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 255;

/// The longest `deviceToken`, in bytes (APNs tokens are 64 hex digits, FCM
/// tokens about 160 characters).
pub const MAX_DEVICE_TOKEN_LEN: usize = 4096;

/// The longest `osVersion`, in bytes.
pub const MAX_OS_VERSION_LEN: usize = 64;

/// How many channels one device may be registered to.
pub const MAX_DEVICE_CHANNELS: usize = 64;

/// How many `properties` one device may have.
pub const MAX_DEVICE_PROPERTIES: usize = 64;

/// The longest property name, in bytes.
pub const MAX_PROPERTY_NAME_LEN: usize = 128;

/// The longest property value, in bytes.
pub const MAX_PROPERTY_VALUE_LEN: usize = 1024;

/// The longest push template name, in bytes.
pub const MAX_TEMPLATE_NAME_LEN: usize = 255;

/// The longest smart text of a template (`message`, `title`, `subtitle`,
/// a header value, `segmentQuery`), in bytes.
pub const MAX_TEMPLATE_TEXT_LEN: usize = 4096;

/// How many headers one template may have.
pub const MAX_TEMPLATE_HEADERS: usize = 64;

/// `pushTimeToLive` when a publish gives none: 3 days, in seconds.
pub const DEFAULT_PUSH_TTL_SECONDS: u32 = 259_200;

/// The longest `pushTimeToLive`: 4 weeks, FCM's maximum, in seconds.
pub const MAX_PUSH_TTL_SECONDS: u32 = 2_419_200;

/// The longest `pushCollapseKey`, in bytes (APNs's `apns-collapse-id`
/// limit).
pub const MAX_COLLAPSE_KEY_LEN: usize = 64;

/// Whether `key` is a valid `pushCollapseKey`: 1 to
/// [`MAX_COLLAPSE_KEY_LEN`] bytes of printable ASCII (it travels in an
/// HTTP header).
pub fn is_collapse_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_COLLAPSE_KEY_LEN
        && key.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// Checks an idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] printable
/// ASCII characters (space to `~`).
///
/// # Errors
///
/// [`Error::InvalidIdempotencyKey`] (5096).
pub fn check_idempotency_key(key: &str) -> Result<(), Error> {
    let printable = key.bytes().all(|b| (b' '..=b'~').contains(&b));
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || !printable {
        return Err(Error::InvalidIdempotencyKey);
    }
    Ok(())
}

/// Checks a channel name: 1 to [`MAX_CHANNEL_LEN`] bytes, no `/`, no
/// control character (C0, DEL, C1, and the Unicode line and paragraph
/// separators), so that a channel name can never break a log line.
///
/// # Errors
///
/// [`Error::InvalidChannel`] (5010), saying which rule failed.
///
/// # Examples
///
/// ```
/// use herald::limits::check_channel;
///
/// assert!(check_channel("orders.eu").is_ok());
/// let e = check_channel("a\nERROR forged").unwrap_err();
/// assert_eq!(e.code(), 5010);
/// assert_eq!(
///     e.to_string(),
///     "Invalid channel name. A channel name cannot contain control characters ('\\n' at byte 1)."
/// );
/// ```
pub fn check_channel(channel: &str) -> Result<(), Error> {
    let bad = |reason: String| Err(Error::InvalidChannel { reason });
    if channel.is_empty() {
        return bad("A channel name cannot be empty.".into());
    }
    if channel.len() > MAX_CHANNEL_LEN {
        return bad(format!(
            "A channel name is at most {MAX_CHANNEL_LEN} bytes; this one is {}.",
            channel.len()
        ));
    }
    if channel.contains('/') {
        return bad("A channel name cannot contain '/'.".into());
    }
    if let Some(r) = RESERVED_CHANNELS
        .iter()
        .find(|r| r.eq_ignore_ascii_case(channel))
    {
        return bad(format!(
            "{r:?} is reserved: messaging/{r} is not a channel."
        ));
    }
    // Printable ASCII (the common case) needs no per-char look.
    let printable = |b: u8| (0x20..0x7F).contains(&b);
    if !channel.bytes().all(printable)
        && let Some((at, c)) = channel
            .char_indices()
            .find(|&(_, c)| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return bad(format!(
            "A channel name cannot contain control characters ({c:?} at byte {at})."
        ));
    }
    Ok(())
}

/// An epoch-ms time in `0..=MAX_EPOCH_MS` as a UTC time, or `err` with
/// the reason.
pub(crate) fn time_of_ms(ms: u64, err: fn(String) -> Error) -> Result<DateTime<Utc>, Error> {
    let too_late = || {
        err(format!(
            "{ms} is after the latest time accepted, {MAX_EPOCH_MS}."
        ))
    };
    if ms > MAX_EPOCH_MS {
        return Err(too_late());
    }
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(too_late)
}

/// A UTC time in `0..=MAX_EPOCH_MS` ms as a [`Tick`] (sub-ms precision
/// dropped), or `err`.
pub(crate) fn tick_of(t: DateTime<Utc>, err: fn(String) -> Error) -> Result<Tick, Error> {
    u64::try_from(t.timestamp_millis())
        .ok()
        .filter(|&ms| ms <= MAX_EPOCH_MS)
        .map(Tick::from_millis)
        .ok_or_else(|| {
            err(format!(
                "{} is outside 1970-01-01 ..= {MAX_EPOCH_MS} ms.",
                t.timestamp_millis()
            ))
        })
}

/// `repeatEvery` from whole seconds: `1..=MAX_REPEAT_SECONDS`.
pub(crate) fn repeat_every_of_secs(secs: u64) -> Result<TimeDelta, Error> {
    let err = || Error::InvalidRepeatEvery {
        reason: format!("repeatEvery is whole seconds from 1 to {MAX_REPEAT_SECONDS}, not {secs}."),
    };
    if !(1..=MAX_REPEAT_SECONDS).contains(&secs) {
        return Err(err());
    }
    i64::try_from(secs)
        .map(TimeDelta::seconds)
        .map_err(|_| err())
}

/// The whole seconds of a `repeatEvery`: `1..=MAX_REPEAT_SECONDS`, no
/// fraction.
pub(crate) fn repeat_every_secs(every: TimeDelta) -> Result<u64, Error> {
    let err = || Error::InvalidRepeatEvery {
        reason: format!(
            "repeatEvery is whole seconds from 1 to {MAX_REPEAT_SECONDS}, not {} ms.",
            every.num_milliseconds()
        ),
    };
    let secs = u64::try_from(every.num_seconds()).map_err(|_| err())?;
    if every.subsec_nanos() != 0 {
        return Err(err());
    }
    repeat_every_of_secs(secs).map(|_| secs)
}

/// An IANA time zone name.
pub(crate) fn time_zone(name: &str) -> Result<chrono_tz::Tz, Error> {
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| Error::InvalidCron {
            reason: format!(
                "timeZone {} is not an IANA time zone name.",
                crate::error::quoted(name)
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    #[test]
    fn channel_rules() {
        assert!(check_channel("news").is_ok());
        assert!(check_channel(&"x".repeat(MAX_CHANNEL_LEN)).is_ok());
        assert!(check_channel("ünïcödé ✓").is_ok());
        let long = "x".repeat(MAX_CHANNEL_LEN + 1);
        for (bad, why) in [
            ("", "cannot be empty"),
            ("a/b", "cannot contain '/'"),
            (long.as_str(), "at most 255 bytes; this one is 256"),
            ("a\nERROR forged", "control characters ('\\n' at byte 1)"),
            ("\r", "('\\r' at byte 0)"),
            ("tab\there", "('\\t' at byte 3)"),
            ("nul\0", "('\\0' at byte 3)"),
            ("del\u{7f}", "('\\u{7f}' at byte 3)"),
            ("é\u{85}next line", "('\\u{85}' at byte 2)"),
            ("x\u{2028}y", "('\\u{2028}' at byte 1)"),
            ("esc\u{1b}[31m", "('\\u{1b}' at byte 3)"),
        ] {
            let e = check_channel(bad).unwrap_err();
            assert_eq!(e.code(), 5010, "{bad:?}");
            assert!(e.to_string().starts_with("Invalid channel name. "), "{e}");
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn repeat_every_bounds() {
        assert_eq!(repeat_every_of_secs(1).unwrap(), TimeDelta::seconds(1));
        assert!(repeat_every_of_secs(MAX_REPEAT_SECONDS).is_ok());
        assert!(repeat_every_of_secs(0).is_err());
        assert!(repeat_every_of_secs(MAX_REPEAT_SECONDS + 1).is_err());
        assert_eq!(repeat_every_secs(TimeDelta::seconds(60)).unwrap(), 60);
        assert!(repeat_every_secs(TimeDelta::milliseconds(1500)).is_err());
        assert!(repeat_every_secs(TimeDelta::seconds(-5)).is_err());
        assert!(repeat_every_secs(TimeDelta::zero()).is_err());
    }

    #[test]
    fn epoch_bounds() {
        let e = |reason| Error::InvalidPublishAt { reason };
        assert_eq!(time_of_ms(0, e).unwrap().timestamp_millis(), 0);
        assert_eq!(
            time_of_ms(MAX_EPOCH_MS, e).unwrap(),
            DateTime::<Utc>::MAX_UTC
                .with_nanosecond(999_000_000)
                .unwrap()
        );
        assert!(time_of_ms(MAX_EPOCH_MS + 1, e).is_err());
        let t = DateTime::from_timestamp_millis(-1).unwrap();
        assert!(tick_of(t, e).is_err());
        let t = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        assert_eq!(tick_of(t, e).unwrap().as_millis(), 1_700_000_000_123);
    }
}
