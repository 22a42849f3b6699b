//! The `DeviceRegistry` and `TemplateStore` boundaries.

use std::fmt;
use std::sync::Arc;

use herald_core::Tick;

use super::{DeviceRegistration, PushTemplate};
use crate::{Os, StoreFuture};

/// A device token a gateway reported invalid, to remove from the registry
/// unless the device registered again since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidToken {
    /// The device.
    pub device_id: String,
    /// The token the gateway refused.
    pub device_token: String,
    /// The gateway's time for it (APNs 410 `timestamp`), else the time the
    /// notification was sent.
    pub seen_at: Tick,
}

/// Where device registrations live.
///
/// # Contract
///
/// Each method is atomic; when its future resolves `Ok`, its effect is as
/// durable as the implementation promises (memory: until exit; redb: on
/// disk). Methods may be called concurrently.
///
/// * [`register`](Self::register) stores a registration under its
///   `device_id`, replacing the previous one of that device entirely (its
///   token, channels, expiration and properties): after it, the device is
///   in exactly the registration's channels.
/// * [`device`](Self::device) answers the registration of a device id, or
///   `None` (never registered, unregistered, removed or purged). Expired
///   registrations that are not purged yet are answered (the caller checks
///   [`DeviceRegistration::is_expired`]).
/// * [`unregister`](Self::unregister) removes a device; `false` if it was
///   not registered.
/// * [`channel_devices`](Self::channel_devices) pages through the devices
///   registered to a channel in ascending `device_id` order (byte order):
///   at most `limit` with an id strictly after `after`. The order is
///   stable, so a cursor (the last id seen) survives a restart and
///   concurrent changes: a device registered or removed during a walk is
///   seen or not, but no other device is skipped or seen twice. An
///   implementation reads one page's worth, never the whole channel.
/// * [`remove_invalid`](Self::remove_invalid) removes each device whose
///   registration still has the refused token and was registered at or
///   before `seen_at`; a device registered again after it (or with another
///   token) stays. One result per token, in order: whether it was removed.
/// * [`purge_expired`](Self::purge_expired) removes up to `limit`
///   registrations whose expiration is at or before `now`, and answers how
///   many it removed (fewer than `limit`: none is left).
///
/// `herald-testkit`'s `registry_conformance_tests!` checks all of this.
pub trait DeviceRegistry: Send + Sync + fmt::Debug + 'static {
    /// Stores `registration`, replacing the device's previous one.
    fn register(&self, registration: DeviceRegistration) -> StoreFuture<'_, ()>;

    /// The registration of `device_id`.
    fn device<'a>(&'a self, device_id: &'a str)
    -> StoreFuture<'a, Option<Arc<DeviceRegistration>>>;

    /// Removes `device_id`; whether it was registered.
    fn unregister<'a>(&'a self, device_id: &'a str) -> StoreFuture<'a, bool>;

    /// The devices of `channel` after `after`, in `device_id` order, at
    /// most `limit`.
    fn channel_devices<'a>(
        &'a self,
        channel: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Arc<DeviceRegistration>>>;

    /// Removes refused tokens unless re-registered since; one result each.
    fn remove_invalid(&self, tokens: Vec<InvalidToken>) -> StoreFuture<'_, Vec<bool>>;

    /// Removes up to `limit` registrations expired at `now`; how many.
    fn purge_expired(&self, now: Tick, limit: usize) -> StoreFuture<'_, usize>;
}

/// Where push templates live.
///
/// # Contract
///
/// Each method is atomic and as durable as the implementation promises.
///
/// * [`put_template`](Self::put_template) creates or replaces the template
///   of that name.
/// * [`template`](Self::template) answers it, or `None`.
/// * [`delete_template`](Self::delete_template) removes it; `false` if
///   there was none.
/// * [`list_templates`](Self::list_templates) answers, by name, the
///   templates whose audience includes `os` (every template for `None`).
///
/// `herald-testkit`'s `template_conformance_tests!` checks all of this.
pub trait TemplateStore: Send + Sync + fmt::Debug + 'static {
    /// Creates or replaces a template.
    fn put_template(&self, template: PushTemplate) -> StoreFuture<'_, ()>;

    /// The template called `name`.
    fn template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Arc<PushTemplate>>>;

    /// Removes the template called `name`; whether it existed.
    fn delete_template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool>;

    /// The templates for `os` (all for `None`), by name.
    fn list_templates(&self, os: Option<Os>) -> StoreFuture<'_, Vec<Arc<PushTemplate>>>;
}

impl<R: DeviceRegistry + ?Sized> DeviceRegistry for Arc<R> {
    fn register(&self, registration: DeviceRegistration) -> StoreFuture<'_, ()> {
        (**self).register(registration)
    }
    fn device<'a>(
        &'a self,
        device_id: &'a str,
    ) -> StoreFuture<'a, Option<Arc<DeviceRegistration>>> {
        (**self).device(device_id)
    }
    fn unregister<'a>(&'a self, device_id: &'a str) -> StoreFuture<'a, bool> {
        (**self).unregister(device_id)
    }
    fn channel_devices<'a>(
        &'a self,
        channel: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Arc<DeviceRegistration>>> {
        (**self).channel_devices(channel, after, limit)
    }
    fn remove_invalid(&self, tokens: Vec<InvalidToken>) -> StoreFuture<'_, Vec<bool>> {
        (**self).remove_invalid(tokens)
    }
    fn purge_expired(&self, now: Tick, limit: usize) -> StoreFuture<'_, usize> {
        (**self).purge_expired(now, limit)
    }
}

impl<T: TemplateStore + ?Sized> TemplateStore for Arc<T> {
    fn put_template(&self, template: PushTemplate) -> StoreFuture<'_, ()> {
        (**self).put_template(template)
    }
    fn template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Arc<PushTemplate>>> {
        (**self).template(name)
    }
    fn delete_template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        (**self).delete_template(name)
    }
    fn list_templates(&self, os: Option<Os>) -> StoreFuture<'_, Vec<Arc<PushTemplate>>> {
        (**self).list_templates(os)
    }
}
