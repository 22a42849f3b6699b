//! `MemoryRegistry`: device registrations and templates in memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::ready;
use std::sync::{Arc, Mutex, MutexGuard};

use herald_core::Tick;

use super::{DeviceRegistration, DeviceRegistry, InvalidToken, PushTemplate, TemplateStore};
use crate::{Os, StoreFuture};

/// A [`DeviceRegistry`] and [`TemplateStore`] in memory: the default for
/// embedding, shared by clones, gone when the process exits.
///
/// A channel's devices are an ordered index of `(channel, device id)`, so
/// paging through a channel costs the page, not the channel.
///
/// ```
/// use herald::{DeviceRegistration, DeviceRegistry, MemoryRegistry};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), herald::StoreError> {
/// let registry = MemoryRegistry::new();
/// let reg = DeviceRegistration::from_json(&serde_json::json!({
///     "deviceId": "d1", "deviceToken": "t", "os": "IOS", "channels": ["news"]})).unwrap();
/// registry.register(reg).await?;
/// let page = registry.channel_devices("news", None, 100).await?;
/// assert_eq!(page[0].device_id, "d1");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryRegistry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    devices: HashMap<String, Arc<DeviceRegistration>>,
    /// `(channel, device id)` of every registration.
    channels: BTreeSet<(String, String)>,
    /// `(expiration, device id)` of the registrations that expire.
    expirations: BTreeSet<(Tick, String)>,
    templates: BTreeMap<String, Arc<PushTemplate>>,
}

impl Inner {
    fn remove(&mut self, device_id: &str) -> Option<Arc<DeviceRegistration>> {
        let old = self.devices.remove(device_id)?;
        for c in &old.channels {
            self.channels.remove(&(c.clone(), old.device_id.clone()));
        }
        if let Some(at) = old.expiration {
            self.expirations.remove(&(at, old.device_id.clone()));
        }
        Some(old)
    }
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many devices are registered (expired ones included until they
    /// are purged).
    pub fn len(&self) -> usize {
        self.lock().devices.len()
    }

    /// Whether no device is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps consistent (every
        // method updates them before it can panic), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DeviceRegistry for MemoryRegistry {
    fn register(&self, registration: DeviceRegistration) -> StoreFuture<'_, ()> {
        let mut inner = self.lock();
        inner.remove(&registration.device_id);
        for c in &registration.channels {
            inner
                .channels
                .insert((c.clone(), registration.device_id.clone()));
        }
        if let Some(at) = registration.expiration {
            inner
                .expirations
                .insert((at, registration.device_id.clone()));
        }
        inner
            .devices
            .insert(registration.device_id.clone(), Arc::new(registration));
        Box::pin(ready(Ok(())))
    }

    fn device<'a>(
        &'a self,
        device_id: &'a str,
    ) -> StoreFuture<'a, Option<Arc<DeviceRegistration>>> {
        Box::pin(ready(Ok(self.lock().devices.get(device_id).cloned())))
    }

    fn unregister<'a>(&'a self, device_id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(ready(Ok(self.lock().remove(device_id).is_some())))
    }

    fn channel_devices<'a>(
        &'a self,
        channel: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Arc<DeviceRegistration>>> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let inner = self.lock();
        let key = (channel.to_owned(), after.unwrap_or_default().to_owned());
        let start = if after.is_some() {
            Excluded(&key)
        } else {
            Included(&key)
        };
        let page = inner
            .channels
            .range::<(String, String), _>((start, Unbounded))
            .take_while(|(c, _)| c == channel)
            .take(limit)
            .filter_map(|(_, id)| inner.devices.get(id).cloned())
            .collect();
        Box::pin(ready(Ok(page)))
    }

    fn remove_invalid(&self, tokens: Vec<InvalidToken>) -> StoreFuture<'_, Vec<bool>> {
        let mut inner = self.lock();
        let removed = tokens
            .iter()
            .map(|t| {
                let stale = inner.devices.get(&t.device_id).is_some_and(|r| {
                    r.device_token == t.device_token && r.registered_at <= t.seen_at
                });
                stale && inner.remove(&t.device_id).is_some()
            })
            .collect();
        Box::pin(ready(Ok(removed)))
    }

    fn purge_expired(&self, now: Tick, limit: usize) -> StoreFuture<'_, usize> {
        let mut inner = self.lock();
        let due: Vec<String> = inner
            .expirations
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        for id in &due {
            inner.remove(id);
        }
        Box::pin(ready(Ok(due.len())))
    }
}

impl TemplateStore for MemoryRegistry {
    fn put_template(&self, template: PushTemplate) -> StoreFuture<'_, ()> {
        self.lock()
            .templates
            .insert(template.name.clone(), Arc::new(template));
        Box::pin(ready(Ok(())))
    }

    fn template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Arc<PushTemplate>>> {
        Box::pin(ready(Ok(self.lock().templates.get(name).cloned())))
    }

    fn delete_template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(ready(Ok(self.lock().templates.remove(name).is_some())))
    }

    fn list_templates(&self, os: Option<Os>) -> StoreFuture<'_, Vec<Arc<PushTemplate>>> {
        let list = self
            .lock()
            .templates
            .values()
            .filter(|t| os.is_none_or(|os| t.targets(os)))
            .cloned()
            .collect();
        Box::pin(ready(Ok(list)))
    }
}
