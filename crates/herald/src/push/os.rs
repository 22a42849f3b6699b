//! `Os`: the platform a device registered with.

use std::fmt;

use crate::PushBroadcast;

/// The operating system of a registered device, as Backendless names it.
///
/// IOS and OSX devices are reached through APNs, ANDROID through FCM; WP
/// (Windows Phone) has no gateway, so a notification to it counts as
/// failed.
///
/// ```
/// use herald::{Os, PushBroadcast};
///
/// assert_eq!(Os::parse("ios"), Some(Os::Ios));
/// assert_eq!(Os::Osx.as_str(), "OSX");
/// assert!(PushBroadcast::IOS.contains(Os::Ios.mask()));
/// assert_eq!(Os::parse("BLACKBERRY"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Os {
    /// Apple iOS (APNs).
    Ios,
    /// Android (FCM).
    Android,
    /// Apple macOS (APNs).
    Osx,
    /// Windows Phone (no gateway).
    Wp,
}

impl Os {
    /// Every OS, in mask order.
    pub const ALL: [Self; 4] = [Self::Ios, Self::Android, Self::Wp, Self::Osx];

    /// Backendless's name: `IOS`, `ANDROID`, `OSX` or `WP`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ios => "IOS",
            Self::Android => "ANDROID",
            Self::Osx => "OSX",
            Self::Wp => "WP",
        }
    }

    /// The OS by name, in any case.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|os| os.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// This OS's bit in a `pushBroadcast` mask.
    pub const fn mask(self) -> PushBroadcast {
        match self {
            Self::Ios => PushBroadcast::IOS,
            Self::Android => PushBroadcast::ANDROID,
            Self::Wp => PushBroadcast::WP,
            Self::Osx => PushBroadcast::OSX,
        }
    }

    /// The one-byte code durable stores keep.
    pub const fn code(self) -> u8 {
        self.mask().bits()
    }

    /// The OS of a [`code`](Self::code).
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Ios),
            2 => Some(Self::Android),
            4 => Some(Self::Wp),
            8 => Some(Self::Osx),
            _ => None,
        }
    }
}

impl fmt::Display for Os {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Os {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Os {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format_args!("unknown os {name:?}: IOS, ANDROID, OSX or WP"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_masks_round_trip() {
        for os in Os::ALL {
            assert_eq!(Os::from_code(os.code()), Some(os));
            assert_eq!(Os::parse(os.as_str()), Some(os));
            assert_eq!(PushBroadcast::parse(os.as_str()), Some(os.mask()));
        }
        assert_eq!(Os::from_code(3), None);
        let json = serde_json::to_string(&Os::Android).unwrap();
        assert_eq!(json, "\"ANDROID\"");
        assert_eq!(serde_json::from_str::<Os>("\"osx\"").unwrap(), Os::Osx);
        assert!(serde_json::from_str::<Os>("\"PALM\"").is_err());
    }
}
