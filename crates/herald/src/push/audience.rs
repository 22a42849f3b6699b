//! `Audience`: which registered devices a push run reaches.

use std::collections::BTreeSet;

use herald_core::Tick;
use herald_core::selector::Selector;

use super::DeviceRegistration;
use crate::PushBroadcast;

/// The devices a push reaches: those registered to `channel`, narrowed by
/// a device list (`pushSinglecast`), an OS mask (`pushBroadcast`) and a
/// segment query, all combined by intersection; expired registrations are
/// never in it. Computed when the run fires, over devices streamed from
/// the registry in pages.
///
/// # Examples
///
/// ```
/// use herald::{Audience, DeviceRegistration, PushBroadcast};
/// use herald_core::selector::Selector;
/// use herald_core::Tick;
///
/// let dev = |id: &str, os: &str, lang: &str| DeviceRegistration::from_json(&serde_json::json!({
///     "deviceId": id, "deviceToken": "t", "os": os, "channels": ["news"],
///     "properties": {"lang": lang}})).unwrap();
/// let audience = Audience {
///     channel: "news".into(),
///     os: PushBroadcast::IOS,
///     devices: None,
///     segment: Some(Selector::parse("lang = 'de'").unwrap()),
/// };
/// let now = Tick::from_millis(0);
/// assert!(audience.admits(&dev("a", "IOS", "de"), now));
/// assert!(!audience.admits(&dev("b", "ANDROID", "de"), now));
/// assert!(!audience.admits(&dev("c", "IOS", "en"), now));
/// ```
#[derive(Clone, Debug)]
pub struct Audience {
    /// The channel whose devices it reaches.
    pub channel: String,
    /// The OSes it reaches ([`PushBroadcast::ALL`] when unrestricted).
    pub os: PushBroadcast,
    /// Only these device ids (`pushSinglecast`), if given.
    pub devices: Option<BTreeSet<String>>,
    /// Only devices whose registration satisfies this selector.
    pub segment: Option<Selector>,
}

impl Audience {
    /// Everyone registered to `channel`.
    pub fn channel(channel: impl Into<String>) -> Self {
        Self {
            channel: channel.into(),
            os: PushBroadcast::ALL,
            devices: None,
            segment: None,
        }
    }

    /// Whether `device` is in the audience at `now`.
    pub fn admits(&self, device: &DeviceRegistration, now: Tick) -> bool {
        device.has_channel(&self.channel)
            && !device.is_expired(now)
            && self.os.contains(device.os.mask())
            && self
                .devices
                .as_ref()
                .is_none_or(|ids| ids.contains(&device.device_id))
            && self.segment.as_ref().is_none_or(|s| s.matches(device))
    }
}
