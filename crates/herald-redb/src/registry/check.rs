//! The registry's part of `RedbStore::check_records`: every device and
//! template record decodes, and the index tables hold exactly the entries
//! the registrations call for.

use redb::{ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::{device, open_if_there, template};
use crate::check::RecordCheck;
use crate::error::RedbStoreError;
use crate::tables::{DEVICE_CHANNELS, DEVICE_EXPIRY, DEVICES, TEMPLATES};

fn fail<T>(what: String) -> Result<T, RedbStoreError> {
    Err(RedbStoreError::Check(what))
}

/// The number of rows of a table the file may not have yet.
fn len<K: redb::Key + 'static, V: redb::Value + 'static>(
    table: Option<&ReadOnlyTable<K, V>>,
) -> Result<u64, RedbStoreError> {
    Ok(match table {
        Some(t) => t.len()?,
        None => 0,
    })
}

/// Checks the registry tables in `txn` and counts devices and templates
/// into `c`:
///
/// * every `devices` record decodes;
/// * every channel of a registration has its `device_channels` entry, and
///   an expiring registration its `device_expiry` entry;
/// * those tables hold no other entry (their sizes are the sums).
pub(crate) fn check(txn: &ReadTransaction, c: &mut RecordCheck) -> Result<(), RedbStoreError> {
    let devices = open_if_there(txn, DEVICES)?;
    let channels = open_if_there(txn, DEVICE_CHANNELS)?;
    let expiry = open_if_there(txn, DEVICE_EXPIRY)?;
    let (mut channel_entries, mut expiring) = (0u64, 0u64);
    if let Some(devices) = &devices {
        for entry in devices.iter()? {
            let (k, v) = entry?;
            let id = k.value();
            let reg = match device::decode(id, v.value()) {
                Ok(reg) => reg,
                Err(e) => return fail(format!("device {id:?} in `devices`: {e}")),
            };
            for ch in &reg.channels {
                let indexed = match &channels {
                    Some(t) => t.get((ch.as_str(), id))?.is_some(),
                    None => false,
                };
                if !indexed {
                    return fail(format!(
                        "device {id:?}: channel {ch:?} has no `device_channels` entry"
                    ));
                }
            }
            if let Some(at) = reg.expiration {
                let indexed = match &expiry {
                    Some(t) => t.get((at.as_millis(), id))?.is_some(),
                    None => false,
                };
                if !indexed {
                    return fail(format!(
                        "device {id:?}: its expiration {} has no `device_expiry` entry",
                        at.as_millis()
                    ));
                }
                expiring += 1;
            }
            channel_entries += reg.channels.len() as u64;
            c.devices += 1;
        }
    }
    let n = len(channels.as_ref())?;
    if n != channel_entries {
        return fail(format!(
            "{n} `device_channels` entries for {channel_entries} channels of registrations"
        ));
    }
    let n = len(expiry.as_ref())?;
    if n != expiring {
        return fail(format!(
            "{n} `device_expiry` entries for {expiring} expiring registrations"
        ));
    }
    check_templates(txn, c)
}

fn check_templates(txn: &ReadTransaction, c: &mut RecordCheck) -> Result<(), RedbStoreError> {
    let Some(templates) = open_if_there(txn, TEMPLATES)? else {
        return Ok(());
    };
    for entry in templates.iter()? {
        let (k, v) = entry?;
        if let Err(e) = template::decode(k.value(), v.value()) {
            return fail(format!("template {:?} in `templates`: {e}", k.value()));
        }
        c.templates += 1;
    }
    Ok(())
}
