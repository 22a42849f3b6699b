//! What each registry request does to the registry tables, inside the
//! writer's transaction.
//!
//! A registration lives in three places: its record in `devices`, one
//! `device_channels` entry per channel, and (if it expires) one
//! `device_expiry` entry. Every request that replaces or removes a
//! registration first decodes the old record to find its index entries,
//! and removes them in the same transaction. A record that does not decode
//! (or an index entry that disagrees with its record) makes that request
//! answer `StoreError::Other` naming it, without changing anything; the
//! rest of the batch goes on.

use std::collections::HashMap;

use herald::{DeviceRegistration, InvalidToken, StoreError};
use redb::ReadableTable;

use crate::error::bad_row;
use crate::registry::device;
use crate::tables::{RegistryTables, Tables};

type R<T> = Result<T, redb::Error>;

/// A request's outcome: a redb error fails the transaction; an inner
/// error is the request's own answer.
type Outcome<T> = R<Result<T, StoreError>>;

/// The registration of `device_id`, decoded: `Ok(None)` if there is none,
/// the request's error if its record is damaged.
fn load(r: &RegistryTables<'_>, device_id: &str) -> Outcome<Option<DeviceRegistration>> {
    let Some(bytes) = r.devices.get(device_id)? else {
        return Ok(Ok(None));
    };
    Ok(device::decode(device_id, bytes.value())
        .map(Some)
        .map_err(|e| bad_row("devices", format!("device {device_id:?}"), e)))
}

/// Adds the index entries of `reg`.
fn index(r: &mut RegistryTables<'_>, reg: &DeviceRegistration) -> R<()> {
    let id = reg.device_id.as_str();
    for c in &reg.channels {
        r.channels.insert((c.as_str(), id), ())?;
    }
    if let Some(at) = reg.expiration {
        r.expiry.insert((at.as_millis(), id), ())?;
    }
    Ok(())
}

/// Removes the record of `reg` and its index entries.
fn remove(r: &mut RegistryTables<'_>, reg: &DeviceRegistration) -> R<()> {
    let id = reg.device_id.as_str();
    r.devices.remove(id)?;
    for c in &reg.channels {
        r.channels.remove((c.as_str(), id))?;
    }
    if let Some(at) = reg.expiration {
        r.expiry.remove((at.as_millis(), id))?;
    }
    Ok(())
}

/// Stores `reg` (its `record`), replacing the device's previous
/// registration and its index entries.
pub(crate) fn register(t: &mut Tables<'_>, reg: &DeviceRegistration, record: &[u8]) -> Outcome<()> {
    let r = t.registry()?;
    let old = match load(r, &reg.device_id)? {
        Ok(old) => old,
        Err(e) => return Ok(Err(e)),
    };
    if let Some(old) = old {
        remove(r, &old)?;
    }
    r.devices.insert(reg.device_id.as_str(), record)?;
    index(r, reg)?;
    Ok(Ok(()))
}

/// Removes `device_id`; whether it was registered.
pub(crate) fn unregister(t: &mut Tables<'_>, device_id: &str) -> Outcome<bool> {
    let r = t.registry()?;
    match load(r, device_id)? {
        Ok(Some(old)) => {
            remove(r, &old)?;
            Ok(Ok(true))
        }
        Ok(None) => Ok(Ok(false)),
        Err(e) => Ok(Err(e)),
    }
}

/// Loads every device named in `ids` before anything changes, so a
/// damaged record fails the request without a partial effect.
fn load_all<'i>(
    r: &RegistryTables<'_>,
    ids: impl Iterator<Item = &'i str>,
) -> Outcome<HashMap<&'i str, DeviceRegistration>> {
    let mut out = HashMap::new();
    for id in ids {
        if out.contains_key(id) {
            continue;
        }
        match load(r, id)? {
            Ok(Some(reg)) => {
                out.insert(id, reg);
            }
            Ok(None) => {}
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(out))
}

/// Removes each device whose registration still has the refused token and
/// was registered at or before the refusal; one answer per token (a
/// device named twice is removed by the first).
pub(crate) fn remove_invalid(t: &mut Tables<'_>, tokens: &[InvalidToken]) -> Outcome<Vec<bool>> {
    let r = t.registry()?;
    let mut regs = match load_all(r, tokens.iter().map(|t| t.device_id.as_str()))? {
        Ok(regs) => regs,
        Err(e) => return Ok(Err(e)),
    };
    let mut out = Vec::with_capacity(tokens.len());
    for token in tokens {
        let stale = regs.get(token.device_id.as_str()).is_some_and(|reg| {
            reg.device_token == token.device_token && reg.registered_at <= token.seen_at
        });
        if stale && let Some(reg) = regs.remove(token.device_id.as_str()) {
            remove(r, &reg)?;
        }
        out.push(stale);
    }
    Ok(Ok(out))
}

/// Removes up to `limit` registrations whose expiration is at or before
/// `now`, earliest first; how many.
pub(crate) fn purge_expired(t: &mut Tables<'_>, now: u64, limit: usize) -> Outcome<usize> {
    let r = t.registry()?;
    let mut due: Vec<(u64, String)> = Vec::with_capacity(limit.min(1024));
    for entry in r.expiry.iter()? {
        if due.len() >= limit {
            break;
        }
        let (k, _) = entry?;
        let (at, id) = k.value();
        if at > now {
            break;
        }
        due.push((at, id.to_owned()));
    }
    let regs = match load_all(r, due.iter().map(|(_, id)| id.as_str()))? {
        Ok(regs) => regs,
        Err(e) => return Ok(Err(e)),
    };
    for (at, id) in &due {
        let Some(reg) = regs.get(id.as_str()) else {
            return Ok(Err(stale_expiry(*at, id, "the device has no registration")));
        };
        if reg.expiration.map(|e| e.as_millis()) != Some(*at) {
            return Ok(Err(stale_expiry(
                *at,
                id,
                format!("the registration expires at {:?}", reg.expiration),
            )));
        }
    }
    for reg in regs.values() {
        remove(r, reg)?;
    }
    Ok(Ok(due.len()))
}

/// A `device_expiry` entry that disagrees with its registration.
fn stale_expiry(at: u64, id: &str, what: impl std::fmt::Display) -> StoreError {
    bad_row("device_expiry", format!("entry ({at}, {id:?})"), what)
}

/// Creates or replaces the template `name` (its `record`).
pub(crate) fn put_template(t: &mut Tables<'_>, name: &str, record: &[u8]) -> R<()> {
    t.registry()?.templates.insert(name, record)?;
    Ok(())
}

/// Removes the template `name`; whether it existed.
pub(crate) fn delete_template(t: &mut Tables<'_>, name: &str) -> R<bool> {
    Ok(t.registry()?.templates.remove(name)?.is_some())
}
