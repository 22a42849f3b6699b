//! `PublishPolicy` and `PushBroadcast`: where a message goes.

use std::fmt;

use serde_json::Value;

use crate::Error;
use crate::error::shown;

/// Where a message goes: pub/sub subscribers, push devices, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PublishPolicy {
    /// Push notifications only (ordinal 0).
    Push,
    /// Pub/sub subscribers only (ordinal 1); the default.
    #[default]
    Pubsub,
    /// Both (ordinal 2).
    Both,
}

impl PublishPolicy {
    /// The wire name: `PUSH`, `PUBSUB` or `BOTH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "PUSH",
            Self::Pubsub => "PUBSUB",
            Self::Both => "BOTH",
        }
    }

    /// The ordinal Backendless gives it (0 = PUSH, 1 = PUBSUB, 2 = BOTH).
    pub fn ordinal(self) -> u8 {
        match self {
            Self::Push => 0,
            Self::Pubsub => 1,
            Self::Both => 2,
        }
    }

    /// The policy with this ordinal.
    pub fn from_ordinal(n: u64) -> Option<Self> {
        match n {
            0 => Some(Self::Push),
            1 => Some(Self::Pubsub),
            2 => Some(Self::Both),
            _ => None,
        }
    }

    /// Whether pub/sub subscribers receive the message.
    pub fn includes_pubsub(self) -> bool {
        matches!(self, Self::Pubsub | Self::Both)
    }

    /// Whether push devices receive the message.
    pub fn includes_push(self) -> bool {
        matches!(self, Self::Push | Self::Both)
    }

    pub(crate) fn from_json(v: &Value) -> Result<Self, Error> {
        match v {
            Value::String(s) => match s.trim().to_ascii_uppercase().as_str() {
                "PUSH" | "0" => Ok(Self::Push),
                "PUBSUB" | "PUB_SUB" | "1" => Ok(Self::Pubsub),
                "BOTH" | "2" => Ok(Self::Both),
                _ => Err(Self::invalid(v)),
            },
            Value::Number(n) => small_whole(n)
                .and_then(Self::from_ordinal)
                .ok_or_else(|| Self::invalid(v)),
            _ => Err(Self::invalid(v)),
        }
    }

    fn invalid(v: &Value) -> Error {
        Error::InvalidPolicy {
            reason: format!(
                "publishPolicy is PUSH, PUBSUB or BOTH (or 0, 1, 2), not {}.",
                shown(v)
            ),
        }
    }
}

impl fmt::Display for PublishPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OS mask for broadcast push: IOS=1, ANDROID=2, WP=4, OSX=8, ALL=15.
///
/// # Examples
///
/// ```
/// use herald::PushBroadcast;
///
/// assert_eq!(PushBroadcast::parse("FOR_IOS|FOR_ANDROID"), Some(PushBroadcast::IOS | PushBroadcast::ANDROID));
/// assert_eq!(PushBroadcast::parse("IOS | ANDROID"), Some(PushBroadcast::from_bits(3).unwrap()));
/// assert_eq!(PushBroadcast::parse("ALL"), Some(PushBroadcast::ALL));
/// assert_eq!(PushBroadcast::parse("FOR_TOASTERS"), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PushBroadcast(u8);

impl PushBroadcast {
    /// Apple iOS devices.
    pub const IOS: Self = Self(1);
    /// Android devices.
    pub const ANDROID: Self = Self(2);
    /// Windows Phone devices.
    pub const WP: Self = Self(4);
    /// macOS devices.
    pub const OSX: Self = Self(8);
    /// Every OS.
    pub const ALL: Self = Self(15);

    /// The mask with these bits, if they are all known (at most 15).
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits <= 15 { Some(Self(bits)) } else { None }
    }

    /// The mask's bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every OS in `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Parses `|`-separated tokens (`IOS`, `ANDROID`, `WP`, `OSX`, `ALL`,
    /// each with or without `FOR_`, any case, spaces allowed) or a decimal
    /// mask.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(bits) = text.parse::<u8>() {
            return Self::from_bits(bits);
        }
        let mut bits = 0;
        for token in text.split('|') {
            let token = token.trim().to_ascii_uppercase();
            let token = token.strip_prefix("FOR_").unwrap_or(&token);
            bits |= match token {
                "IOS" => 1,
                "ANDROID" => 2,
                "WP" => 4,
                "OSX" => 8,
                "ALL" => 15,
                _ => return None,
            };
        }
        Some(Self(bits))
    }

    pub(crate) fn from_json(v: &Value) -> Result<Self, Error> {
        match v {
            Value::Number(n) => small_whole(n)
                .and_then(|b| u8::try_from(b).ok())
                .and_then(Self::from_bits)
                .ok_or_else(|| Self::invalid(v)),
            Value::String(s) => Self::parse(s).ok_or_else(|| Self::invalid(v)),
            _ => Err(Self::invalid(v)),
        }
    }

    fn invalid(v: &Value) -> Error {
        Error::InvalidPolicy {
            reason: format!(
                "pushBroadcast is a mask from 0 to 15 or names such as \"FOR_IOS|FOR_ANDROID\", not {}.",
                shown(v)
            ),
        }
    }
}

impl std::ops::BitOr for PushBroadcast {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Display for PushBroadcast {
    /// Dart's echo format: tokens joined by `|`, `ALL` for 15.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("ALL");
        }
        let mut first = true;
        for (bit, name) in [(1, "IOS"), (2, "ANDROID"), (4, "WP"), (8, "OSX")] {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A JSON number that is a small whole number: an integer, or a float
/// with no fraction (`6.0`, as JavaScript clients may send), as the other
/// numeric options take them.
fn small_whole(n: &serde_json::Number) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=255.0).contains(f))
            .map(|f| f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policy_names_and_ordinals() {
        for (v, want) in [
            (json!("PUSH"), PublishPolicy::Push),
            (json!("pubsub"), PublishPolicy::Pubsub),
            (json!(" Both "), PublishPolicy::Both),
            (json!(0), PublishPolicy::Push),
            (json!(1), PublishPolicy::Pubsub),
            (json!(2), PublishPolicy::Both),
        ] {
            assert_eq!(PublishPolicy::from_json(&v).unwrap(), want, "{v}");
            assert_eq!(
                PublishPolicy::from_ordinal(want.ordinal().into()),
                Some(want)
            );
        }
        for bad in [json!("SMOKE"), json!(3), json!(-1), json!(true), json!([1])] {
            assert_eq!(PublishPolicy::from_json(&bad).unwrap_err().code(), 5011);
        }
    }

    #[test]
    fn broadcast_forms() {
        let cases = [
            (json!(3), 3),
            (json!(15), 15),
            (json!("FOR_IOS|FOR_ANDROID"), 3),
            (json!("IOS | ANDROID"), 3),
            (json!("ALL"), 15),
            (json!("for_osx"), 8),
            (json!("FOR_ALL"), 15),
        ];
        for (v, bits) in cases {
            assert_eq!(PushBroadcast::from_json(&v).unwrap().bits(), bits, "{v}");
        }
        for bad in [
            json!(16),
            json!(""),
            json!("IOS|"),
            json!("MAC"),
            json!(1.5),
        ] {
            assert_eq!(
                PushBroadcast::from_json(&bad).unwrap_err().code(),
                5011,
                "{bad}"
            );
        }
        assert_eq!(PushBroadcast::from_bits(5).unwrap().to_string(), "IOS|WP");
        assert_eq!(PushBroadcast::ALL.to_string(), "ALL");
    }
}
