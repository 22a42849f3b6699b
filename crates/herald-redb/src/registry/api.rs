//! `RedbStore` as a [`DeviceRegistry`] and a [`TemplateStore`]: every
//! write is a request to the writer thread (group-committed with the
//! message writes, answered after its durable commit, refused with
//! `StoreError::Unavailable` during an outage), every read a read
//! transaction.

use std::sync::Arc;

use herald::{
    DeviceRegistration, DeviceRegistry, InvalidToken, Os, PushTemplate, StoreFuture, TemplateStore,
};
use herald_core::Tick;

use super::{device, read, template};
use crate::store::{RedbStore, off_thread, ready};
use crate::writer::{Op, RegistryOp};

/// Channel pages longer than this are read on tokio's blocking pool.
const INLINE_PAGE: usize = 256;

impl DeviceRegistry for RedbStore {
    fn register(&self, mut registration: DeviceRegistration) -> StoreFuture<'_, ()> {
        device::normalize(&mut registration);
        let record = device::encode(&registration);
        self.write(|reply| {
            Op::Registry(RegistryOp::Register {
                registration: Box::new(registration),
                record,
                reply,
            })
        })
    }

    fn device<'a>(
        &'a self,
        device_id: &'a str,
    ) -> StoreFuture<'a, Option<Arc<DeviceRegistration>>> {
        ready(self.db().and_then(|db| read::device(&db, device_id)))
    }

    fn unregister<'a>(&'a self, device_id: &'a str) -> StoreFuture<'a, bool> {
        let device_id = device_id.to_owned();
        self.write(|reply| Op::Registry(RegistryOp::Unregister { device_id, reply }))
    }

    fn channel_devices<'a>(
        &'a self,
        channel: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Arc<DeviceRegistration>>> {
        if limit == 0 {
            return ready(self.db().map(|_| Vec::new()));
        }
        let db = match self.db() {
            Ok(db) => db,
            Err(e) => return ready(Err(e)),
        };
        if limit <= INLINE_PAGE {
            return ready(read::channel_devices(&db, channel, after, limit));
        }
        let (channel, after) = (channel.to_owned(), after.map(str::to_owned));
        Box::pin(off_thread(true, move || {
            read::channel_devices(&db, &channel, after.as_deref(), limit)
        }))
    }

    fn remove_invalid(&self, tokens: Vec<InvalidToken>) -> StoreFuture<'_, Vec<bool>> {
        if tokens.is_empty() {
            return ready(self.db().map(|_| Vec::new()));
        }
        self.write(|reply| Op::Registry(RegistryOp::RemoveInvalid { tokens, reply }))
    }

    fn purge_expired(&self, now: Tick, limit: usize) -> StoreFuture<'_, usize> {
        if limit == 0 {
            return ready(self.db().map(|_| 0));
        }
        self.write(|reply| {
            Op::Registry(RegistryOp::PurgeExpired {
                now: now.as_millis(),
                limit,
                reply,
            })
        })
    }
}

impl TemplateStore for RedbStore {
    fn put_template(&self, template: PushTemplate) -> StoreFuture<'_, ()> {
        let record = template::encode(&template);
        let name = template.name;
        self.write(|reply| {
            Op::Registry(RegistryOp::PutTemplate {
                name,
                record,
                reply,
            })
        })
    }

    fn template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<Arc<PushTemplate>>> {
        ready(self.db().and_then(|db| read::template(&db, name)))
    }

    fn delete_template<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        let name = name.to_owned();
        self.write(|reply| Op::Registry(RegistryOp::DeleteTemplate { name, reply }))
    }

    fn list_templates(&self, os: Option<Os>) -> StoreFuture<'_, Vec<Arc<PushTemplate>>> {
        ready(self.db().and_then(|db| read::list_templates(&db, os)))
    }
}
