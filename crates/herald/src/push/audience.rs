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

/// One page of an audience: the admitted devices, and where the next page
/// starts.
#[derive(Clone, Debug, Default)]
pub struct AudiencePage {
    /// The devices of this page that are in the audience, in `device_id`
    /// order.
    pub devices: Vec<std::sync::Arc<DeviceRegistration>>,
    /// The last device id this page looked at (admitted or not): the
    /// cursor to continue after. `None` with an empty page: the audience
    /// is exhausted.
    pub cursor: Option<String>,
    /// Whether the audience is exhausted (no device after `cursor`).
    pub done: bool,
}

impl Audience {
    /// Reads the next page of the audience from `registry`: the devices
    /// after `after` (a cursor from the previous page; `None` to start), in
    /// `device_id` order, looking at most `scan` registrations. A device
    /// list (`pushSinglecast`) is looked up id by id; otherwise the
    /// channel's devices are paged. Only the page is held in memory, so an
    /// audience of millions streams in bounded memory, and the cursor
    /// (a device id) survives a restart.
    ///
    /// # Errors
    ///
    /// The registry's.
    pub async fn page(
        &self,
        registry: &dyn super::DeviceRegistry,
        after: Option<&str>,
        scan: usize,
        now: Tick,
    ) -> Result<AudiencePage, crate::StoreError> {
        let scan = scan.max(1);
        let mut page = AudiencePage::default();
        match &self.devices {
            Some(ids) => {
                use std::ops::Bound::{Excluded, Unbounded};
                let start = after.map_or(Unbounded, |a| Excluded(a.to_owned()));
                let mut next = ids.range((start, Unbounded));
                for id in next.by_ref().take(scan) {
                    if let Some(d) = registry.device(id).await?
                        && self.admits(&d, now)
                    {
                        page.devices.push(d);
                    }
                    page.cursor = Some(id.clone());
                }
                page.done = next.next().is_none();
            }
            None => {
                let found = registry.channel_devices(&self.channel, after, scan).await?;
                page.done = found.len() < scan;
                page.cursor = found.last().map(|d| d.device_id.clone());
                page.devices = found.into_iter().filter(|d| self.admits(d, now)).collect();
            }
        }
        if page.cursor.is_none() {
            page.cursor = after.map(str::to_owned);
        }
        Ok(page)
    }
}
