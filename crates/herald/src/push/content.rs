//! `PushContent`: what a notification says, built from a publish's headers
//! and message (or a template), per OS; and `NotificationId`.

use std::collections::BTreeMap;
use std::fmt;

use herald_core::Tick;
use serde_json::Value;

use super::Os;
use crate::{Body, MessageId};

/// What a notification says, platform-neutral: built once per run and OS
/// (once per device for a template with per-device smart text), turned
/// into the APNs payload or the FCM message by the gateway.
///
/// From the publish's headers, as the contract says: for Apple devices
/// `ios-alert-title`, `ios-alert-subtitle`, `ios-alert-body` (default: the
/// message when it is a string), `ios-badge`, `ios-sound`,
/// `ios-content-available` (`1`: a background push); for Android
/// `android-content-title`, `android-content-text` (default: the message
/// when it is a string), `android-ticker-text`. Every header that starts
/// with neither `ios-` nor `android-` is a custom key; a message that is
/// not a string travels as the custom key `message` (its JSON text).
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use herald::{Body, Os, PushContent};
///
/// let headers = BTreeMap::from([
///     ("ios-alert-title".to_string(), "Sale".to_string()),
///     ("android-content-title".to_string(), "Sale!".to_string()),
///     ("ios-badge".to_string(), "3".to_string()),
///     ("campaign".to_string(), "c7".to_string()),
/// ]);
/// let body = Body::from_json(r#""50% off""#).unwrap();
/// let ios = PushContent::for_os(Os::Ios, &headers, &body);
/// assert_eq!((ios.title.as_deref(), ios.body.as_deref(), ios.badge), (Some("Sale"), Some("50% off"), Some(3)));
/// let android = PushContent::for_os(Os::Android, &headers, &body);
/// assert_eq!(android.title.as_deref(), Some("Sale!"));
/// assert_eq!(android.badge, None, "ios-* headers never reach FCM");
/// assert_eq!(android.custom["campaign"], "c7");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushContent {
    /// The alert title (`ios-alert-title` / `android-content-title`).
    pub title: Option<String>,
    /// The alert subtitle (`ios-alert-subtitle`; Apple only).
    pub subtitle: Option<String>,
    /// The alert body (`ios-alert-body` / `android-content-text`, default
    /// the message when it is a string).
    pub body: Option<String>,
    /// `android-ticker-text` (Android only).
    pub ticker: Option<String>,
    /// `ios-badge`, when it is a non-negative integer (Apple only).
    pub badge: Option<u32>,
    /// `ios-sound` (Apple only).
    pub sound: Option<String>,
    /// `ios-content-available: 1`: a background push (`apns-push-type:
    /// background`, priority 5; Apple only).
    pub background: bool,
    /// Custom keys: the headers that start with neither `ios-` nor
    /// `android-`, and `message` for a message that is not a string.
    pub custom: BTreeMap<String, String>,
}

impl PushContent {
    /// The content for devices of `os`, from a publish's headers and
    /// message.
    pub fn for_os(os: Os, headers: &BTreeMap<String, String>, message: &Body) -> Self {
        let text = message_text(message);
        let get = |name: &str| headers.get(name).cloned();
        let custom: BTreeMap<String, String> = headers
            .iter()
            .filter(|(k, _)| !k.starts_with("ios-") && !k.starts_with("android-"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(
                text.is_none()
                    .then(|| ("message".to_owned(), message.get().to_owned())),
            )
            .collect();
        match os {
            Os::Ios | Os::Osx => Self {
                title: get("ios-alert-title"),
                subtitle: get("ios-alert-subtitle"),
                body: get("ios-alert-body").or(text),
                ticker: None,
                badge: headers.get("ios-badge").and_then(|b| b.trim().parse().ok()),
                sound: get("ios-sound"),
                background: headers
                    .get("ios-content-available")
                    .is_some_and(|v| v.trim() == "1"),
                custom,
            },
            Os::Android | Os::Wp => Self {
                title: get("android-content-title"),
                subtitle: None,
                body: get("android-content-text").or(text),
                ticker: get("android-ticker-text"),
                badge: None,
                sound: None,
                background: false,
                custom,
            },
        }
    }
}

/// The message as text when it is a JSON string.
fn message_text(message: &Body) -> Option<String> {
    match message.get().trim_start().as_bytes().first() {
        Some(b'"') => match message.to_value() {
            Ok(Value::String(s)) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// The stable id of one notification: one (message, run, device). The
/// same inputs give the same id, so a notification resent after a retry or
/// a restart carries the id it had (APNs `apns-id`). A UUID (version 8,
/// RFC 9562's custom layout) from a 128-bit hash of the three; not secret.
///
/// ```
/// use herald::{MessageId, NotificationId};
/// use herald_core::Tick;
///
/// let m = MessageId::from_u128(7);
/// let a = NotificationId::of(m, Tick::from_millis(5), "device-1");
/// assert_eq!(a, NotificationId::of(m, Tick::from_millis(5), "device-1"));
/// assert_ne!(a, NotificationId::of(m, Tick::from_millis(6), "device-1"));
/// assert_eq!(a.to_string().len(), 36);
/// assert_eq!(&a.to_string()[14..15], "8");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NotificationId(u128);

impl NotificationId {
    /// The id of `device_id`'s notification of `message`'s run at `run`.
    pub fn of(message: MessageId, run: Tick, device_id: &str) -> Self {
        let mut a = Mix::new(0x243F_6A88_85A3_08D3);
        let mut b = Mix::new(0x1319_8A2E_0370_7344);
        for m in [&mut a, &mut b] {
            m.bytes(&message.to_bytes());
            m.bytes(&run.as_millis().to_le_bytes());
            m.bytes(&(device_id.len() as u64).to_le_bytes());
            m.bytes(device_id.as_bytes());
        }
        let bits = (u128::from(a.finish()) << 64) | u128::from(b.finish());
        // Version 8, variant 0b10.
        let bits = (bits & !(0xF << 76)) | (0x8 << 76);
        let bits = (bits & !(0b11 << 62)) | (0b10 << 62);
        Self(bits)
    }

    /// The id's 128 bits.
    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (b >> 96) as u32,
            (b >> 80) as u16,
            (b >> 64) as u16,
            (b >> 48) as u16,
            b & 0xFFFF_FFFF_FFFF
        )
    }
}

impl fmt::Debug for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A 64-bit mixing hash (FNV-style input, SplitMix64 finalizer).
struct Mix(u64);

impl Mix {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn apple_content_from_headers() {
        let headers = h(&[
            ("ios-alert-title", "T"),
            ("ios-alert-subtitle", "S"),
            ("ios-badge", "7"),
            ("ios-sound", "ding.caf"),
            ("ios-content-available", "1"),
            ("android-content-title", "A"),
            ("k", "v"),
        ]);
        let c = PushContent::for_os(Os::Osx, &headers, &Body::from_json(r#""hi""#).unwrap());
        assert_eq!(c.title.as_deref(), Some("T"));
        assert_eq!(c.subtitle.as_deref(), Some("S"));
        assert_eq!(c.body.as_deref(), Some("hi"));
        assert_eq!(c.badge, Some(7));
        assert_eq!(c.sound.as_deref(), Some("ding.caf"));
        assert!(c.background);
        assert_eq!(
            c.custom,
            h(&[("k", "v")]),
            "no android-* key, no message key"
        );
    }

    #[test]
    fn android_content_and_non_string_messages() {
        let headers = h(&[
            ("android-content-text", "body"),
            ("android-ticker-text", "tick"),
            ("ios-alert-body", "x"),
        ]);
        let body = Body::from_json(r#"{"a": [1, 2]}"#).unwrap();
        let c = PushContent::for_os(Os::Android, &headers, &body);
        assert_eq!(c.body.as_deref(), Some("body"));
        assert_eq!(c.ticker.as_deref(), Some("tick"));
        assert_eq!(c.title, None, "no default title");
        assert_eq!(c.custom["message"], r#"{"a": [1, 2]}"#);
        assert_eq!(c.custom.len(), 1);
        let ios = PushContent::for_os(Os::Ios, &h(&[("ios-badge", "-1")]), &body);
        assert_eq!(ios.body, None, "a non-string message is no alert body");
        assert_eq!(ios.badge, None, "a badge that is not a count is left out");
    }

    #[test]
    fn notification_ids_differ_per_input_and_are_uuids() {
        let m = MessageId::from_u128(1);
        let mut seen = std::collections::HashSet::new();
        for run in 0..50u64 {
            for d in ["a", "b", "ab", ""] {
                let id = NotificationId::of(m, Tick::from_millis(run), d);
                assert!(seen.insert(id), "unique");
                let text = id.to_string();
                assert_eq!(text.as_bytes()[14], b'8');
                assert!(matches!(text.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
            }
        }
    }
}
