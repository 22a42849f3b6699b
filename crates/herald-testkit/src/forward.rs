//! Forwarding a store's traits through a test fixture that owns it.
//!
//! A test fixture that wraps a store (to remove its directory or schema
//! when dropped, or to check its tables first) must itself be a
//! [`Store`](herald::Store), [`DeviceRegistry`](herald::DeviceRegistry)
//! and [`TemplateStore`](herald::TemplateStore) for the conformance
//! suites. [`forward_store!`](crate::forward_store) and
//! [`forward_registry!`](crate::forward_registry) write those impls: every
//! method goes to one field, so the list of methods is kept here once
//! instead of in every fixture.
//!
//! ```ignore
//! struct Scratch { store: RedbStore, _dir: TempDir }
//! herald_testkit::forward_store!(Scratch => store);
//! herald_testkit::forward_registry!(Scratch => store);
//! ```

/// Implements [`Store`](herald::Store) for `$ty` by forwarding every
/// method to its field `$field`.
#[macro_export]
macro_rules! forward_store {
    ($ty:ty => $field:ident) => {
        impl $crate::__herald::Store for $ty {
            fn insert(
                &self,
                envelope: ::std::sync::Arc<$crate::__herald::Envelope>,
                start: $crate::__herald::Start,
            ) -> $crate::__herald::StoreFuture<'_, Option<$crate::__herald::FencingToken>> {
                self.$field.insert(envelope, start)
            }
            fn insert_idempotent(
                &self,
                envelope: ::std::sync::Arc<$crate::__herald::Envelope>,
                start: $crate::__herald::Start,
                key: $crate::__herald::IdempotencyKey,
            ) -> $crate::__herald::StoreFuture<'_, $crate::__herald::Inserted> {
                self.$field.insert_idempotent(envelope, start, key)
            }
            fn idempotency_key(
                &self,
                key: &str,
            ) -> $crate::__herald::StoreFuture<'_, Option<$crate::__herald::KeyRecord>> {
                self.$field.idempotency_key(key)
            }
            fn get(
                &self,
                id: $crate::__herald::MessageId,
            ) -> $crate::__herald::StoreFuture<'_, Option<$crate::__herald::Record>> {
                self.$field.get(id)
            }
            fn claim(
                &self,
                claims: Vec<$crate::__herald::Claim>,
                lease_until: $crate::__Tick,
            ) -> $crate::__herald::StoreFuture<'_, Vec<Option<$crate::__herald::Claimed>>> {
                self.$field.claim(claims, lease_until)
            }
            fn renew(
                &self,
                leases: Vec<$crate::__herald::Lease>,
                lease_until: $crate::__Tick,
            ) -> $crate::__herald::StoreFuture<'_, Vec<bool>> {
                self.$field.renew(leases, lease_until)
            }
            fn complete(
                &self,
                completions: Vec<$crate::__herald::Completion>,
            ) -> $crate::__herald::StoreFuture<'_, Vec<bool>> {
                self.$field.complete(completions)
            }
            fn cancel(
                &self,
                id: $crate::__herald::MessageId,
            ) -> $crate::__herald::StoreFuture<'_, $crate::__herald::CancelOutcome> {
                self.$field.cancel(id)
            }
            fn amend(
                &self,
                amendments: Vec<$crate::__herald::Amendment>,
            ) -> $crate::__herald::StoreFuture<'_, ()> {
                self.$field.amend(amendments)
            }
            fn pending(
                &self,
                after: Option<$crate::__herald::MessageId>,
                limit: usize,
            ) -> $crate::__herald::StoreFuture<'_, Vec<$crate::__herald::DueRun>> {
                self.$field.pending(after, limit)
            }
            fn release_expired(
                &self,
                before: $crate::__Tick,
            ) -> $crate::__herald::StoreFuture<'_, Vec<$crate::__herald::DueRun>> {
                self.$field.release_expired(before)
            }
            fn close(&self) -> $crate::__herald::StoreFuture<'_, ()> {
                self.$field.close()
            }
            fn is_shared(&self) -> bool {
                self.$field.is_shared()
            }
            fn reserve_due(
                &self,
                now: $crate::__Tick,
                before: $crate::__Tick,
                hold_ms: u64,
                limit: usize,
            ) -> $crate::__herald::StoreFuture<'_, Vec<$crate::__herald::DueRun>> {
                self.$field.reserve_due(now, before, hold_ms, limit)
            }
            fn due_hints(&self) -> Option<$crate::__herald::DueHints> {
                self.$field.due_hints()
            }
            fn stats(&self) -> $crate::__herald::StoreStats {
                self.$field.stats()
            }
            fn add_push_jobs(
                &self,
                keys: Vec<$crate::__herald::JobKey>,
            ) -> $crate::__herald::StoreFuture<'_, ()> {
                self.$field.add_push_jobs(keys)
            }
            fn claim_push_jobs(
                &self,
                expired_before: $crate::__Tick,
                lease_until: $crate::__Tick,
                limit: usize,
            ) -> $crate::__herald::StoreFuture<'_, Vec<$crate::__herald::PushJob>> {
                self.$field
                    .claim_push_jobs(expired_before, lease_until, limit)
            }
            fn push_retries(
                &self,
                key: $crate::__herald::JobKey,
                limit: usize,
            ) -> $crate::__herald::StoreFuture<'_, Vec<$crate::__herald::PushRetry>> {
                self.$field.push_retries(key, limit)
            }
            fn checkpoint_push(
                &self,
                checkpoints: Vec<$crate::__herald::Checkpoint>,
            ) -> $crate::__herald::StoreFuture<'_, Vec<bool>> {
                self.$field.checkpoint_push(checkpoints)
            }
        }
    };
}

/// Implements [`DeviceRegistry`](herald::DeviceRegistry) and
/// [`TemplateStore`](herald::TemplateStore) for `$ty` by forwarding every
/// method to its field `$field`.
#[macro_export]
macro_rules! forward_registry {
    ($ty:ty => $field:ident) => {
        impl $crate::__herald::DeviceRegistry for $ty {
            fn register(
                &self,
                registration: $crate::__herald::DeviceRegistration,
            ) -> $crate::__herald::StoreFuture<'_, ()> {
                self.$field.register(registration)
            }
            fn device<'a>(
                &'a self,
                device_id: &'a str,
            ) -> $crate::__herald::StoreFuture<
                'a,
                Option<::std::sync::Arc<$crate::__herald::DeviceRegistration>>,
            > {
                self.$field.device(device_id)
            }
            fn unregister<'a>(
                &'a self,
                device_id: &'a str,
            ) -> $crate::__herald::StoreFuture<'a, bool> {
                self.$field.unregister(device_id)
            }
            fn channel_devices<'a>(
                &'a self,
                channel: &'a str,
                after: Option<&'a str>,
                limit: usize,
            ) -> $crate::__herald::StoreFuture<
                'a,
                Vec<::std::sync::Arc<$crate::__herald::DeviceRegistration>>,
            > {
                self.$field.channel_devices(channel, after, limit)
            }
            fn remove_invalid(
                &self,
                tokens: Vec<$crate::__herald::InvalidToken>,
            ) -> $crate::__herald::StoreFuture<'_, Vec<bool>> {
                self.$field.remove_invalid(tokens)
            }
            fn purge_expired(
                &self,
                now: $crate::__Tick,
                limit: usize,
            ) -> $crate::__herald::StoreFuture<'_, usize> {
                self.$field.purge_expired(now, limit)
            }
        }

        impl $crate::__herald::TemplateStore for $ty {
            fn put_template(
                &self,
                template: $crate::__herald::PushTemplate,
            ) -> $crate::__herald::StoreFuture<'_, ()> {
                self.$field.put_template(template)
            }
            fn template<'a>(
                &'a self,
                name: &'a str,
            ) -> $crate::__herald::StoreFuture<
                'a,
                Option<::std::sync::Arc<$crate::__herald::PushTemplate>>,
            > {
                self.$field.template(name)
            }
            fn delete_template<'a>(
                &'a self,
                name: &'a str,
            ) -> $crate::__herald::StoreFuture<'a, bool> {
                self.$field.delete_template(name)
            }
            fn list_templates(
                &self,
                os: Option<$crate::__herald::Os>,
            ) -> $crate::__herald::StoreFuture<
                '_,
                Vec<::std::sync::Arc<$crate::__herald::PushTemplate>>,
            > {
                self.$field.list_templates(os)
            }
        }
    };
}
