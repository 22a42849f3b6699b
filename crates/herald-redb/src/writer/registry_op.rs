//! The registry's write requests (`Op::Registry`): what each carries, and
//! how it is answered when it is applied, refused or never applied.

use herald::{DeviceRegistration, InvalidToken, StoreError};

use super::op::{Answer, Answered, Reply};
use super::registry_exec as exec;
use crate::tables::Tables;

/// One registry write request.
pub(crate) enum RegistryOp {
    /// Stores a registration (channels normalized), replacing the device's
    /// previous one and its index entries.
    Register {
        /// Boxed: it is large and rare, and every request in the writer's
        /// channel takes the size of the largest.
        registration: Box<DeviceRegistration>,
        /// Its device record, encoded by the caller.
        record: Vec<u8>,
        reply: Reply<()>,
    },
    /// Removes a device; answers whether it was registered.
    Unregister {
        device_id: String,
        reply: Reply<bool>,
    },
    /// Removes the devices that still have a refused token and were
    /// registered at or before the refusal; one answer per token.
    RemoveInvalid {
        tokens: Vec<InvalidToken>,
        reply: Reply<Vec<bool>>,
    },
    /// Removes up to `limit` registrations expired at `now` (ms); answers
    /// how many.
    PurgeExpired {
        now: u64,
        limit: usize,
        reply: Reply<usize>,
    },
    /// Creates or replaces a template.
    PutTemplate {
        name: String,
        /// Its template record, encoded by the caller.
        record: Vec<u8>,
        reply: Reply<()>,
    },
    /// Removes a template; answers whether it existed.
    DeleteTemplate { name: String, reply: Reply<bool> },
}

/// The answer slot of a request, holding `Closed` until replaced.
fn slot<T: Send + 'static>(reply: Reply<T>) -> Box<dyn Answer> {
    Box::new(Answered {
        reply,
        value: Err(StoreError::Closed),
    })
}

impl RegistryOp {
    /// The request's name, for `Op`'s `Debug`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Register { .. } => "Register",
            Self::Unregister { .. } => "Unregister",
            Self::RemoveInvalid { .. } => "RemoveInvalid",
            Self::PurgeExpired { .. } => "PurgeExpired",
            Self::PutTemplate { .. } => "PutTemplate",
            Self::DeleteTemplate { .. } => "DeleteTemplate",
        }
    }

    /// The answer slot of a request that is not applied: it is failed
    /// with the error of the moment (`Unavailable` during an outage, the
    /// transaction's error, `Closed`).
    pub(crate) fn unapplied(self) -> Box<dyn Answer> {
        match self {
            Self::Register { reply, .. } | Self::PutTemplate { reply, .. } => slot(reply),
            Self::Unregister { reply, .. } | Self::DeleteTemplate { reply, .. } => slot(reply),
            Self::RemoveInvalid { reply, .. } => slot(reply),
            Self::PurgeExpired { reply, .. } => slot(reply),
        }
    }

    /// Applies the request in the writer's transaction: its answer (sent
    /// after the commit), and the redb error that fails the transaction,
    /// if any.
    pub(crate) fn apply(self, t: &mut Tables<'_>) -> (Box<dyn Answer>, Result<(), redb::Error>) {
        use super::answer;
        match self {
            Self::Register {
                registration,
                record,
                reply,
            } => answer(reply, exec::register(t, &registration, &record)),
            Self::Unregister { device_id, reply } => answer(reply, exec::unregister(t, &device_id)),
            Self::RemoveInvalid { tokens, reply } => {
                answer(reply, exec::remove_invalid(t, &tokens))
            }
            Self::PurgeExpired { now, limit, reply } => {
                answer(reply, exec::purge_expired(t, now, limit))
            }
            Self::PutTemplate {
                name,
                record,
                reply,
            } => answer(reply, exec::put_template(t, &name, &record).map(Ok)),
            Self::DeleteTemplate { name, reply } => {
                answer(reply, exec::delete_template(t, &name).map(Ok))
            }
        }
    }
}
