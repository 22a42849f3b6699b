//! Registry reads, each in one read transaction (which sees every commit
//! that has returned). A table the file does not have yet reads as empty.
//! A record that does not decode, or an index entry without its record,
//! is an error naming the table and the key.

use std::ops::Bound;
use std::sync::Arc;

use herald::{DeviceRegistration, Os, PushTemplate, StoreError};
use redb::{
    Database, Key, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableError, Value,
};

use super::{device, template};
use crate::error::{bad_row, redb_error};
use crate::tables::{DEVICE_CHANNELS, DEVICES, TEMPLATES};

/// `table` in `txn`, or `None` if the file does not have it yet.
pub(crate) fn open_if_there<K: Key + 'static, V: Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<'static, K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, TableError> {
    match txn.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn open<K: Key + 'static, V: Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<'static, K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, StoreError> {
    open_if_there(txn, table).map_err(redb_error)
}

/// The registration of `device_id` in `devices`, decoded.
fn load(
    devices: &ReadOnlyTable<&'static str, &'static [u8]>,
    device_id: &str,
) -> Result<Option<DeviceRegistration>, StoreError> {
    let Some(bytes) = devices.get(device_id).map_err(redb_error)? else {
        return Ok(None);
    };
    device::decode(device_id, bytes.value())
        .map(Some)
        .map_err(|e| bad_row("devices", format!("device {device_id:?}"), e))
}

/// `device`: the registration of `device_id`.
pub(crate) fn device(
    db: &Database,
    device_id: &str,
) -> Result<Option<Arc<DeviceRegistration>>, StoreError> {
    let txn = db.begin_read().map_err(redb_error)?;
    let Some(devices) = open(&txn, DEVICES)? else {
        return Ok(None);
    };
    Ok(load(&devices, device_id)?.map(Arc::new))
}

/// `channel_devices`: at most `limit` devices of `channel` with an id
/// after `after`, in id order: a range scan of `device_channels` from
/// `(channel, after)` that stops at the first entry of another channel (or
/// at `limit`), and one `devices` lookup per entry. Reads the page, never
/// the rest of the channel.
pub(crate) fn channel_devices(
    db: &Database,
    channel: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<Arc<DeviceRegistration>>, StoreError> {
    let txn = db.begin_read().map_err(redb_error)?;
    let (Some(index), Some(devices)) = (open(&txn, DEVICE_CHANNELS)?, open(&txn, DEVICES)?) else {
        return Ok(Vec::new());
    };
    let start = match after {
        Some(after) => Bound::Excluded((channel, after)),
        None => Bound::Included((channel, "")),
    };
    let range = index
        .range::<(&str, &str)>((start, Bound::Unbounded))
        .map_err(redb_error)?;
    let mut page = Vec::with_capacity(limit.min(1024));
    for entry in range {
        if page.len() >= limit {
            break;
        }
        let (k, _) = entry.map_err(redb_error)?;
        let (c, id) = k.value();
        if c != channel {
            break;
        }
        let reg = listed(&devices, channel, id)?;
        page.push(Arc::new(reg));
    }
    Ok(page)
}

/// The registration a `device_channels` entry `(channel, id)` points to,
/// which must be there and list the channel.
fn listed(
    devices: &ReadOnlyTable<&'static str, &'static [u8]>,
    channel: &str,
    id: &str,
) -> Result<DeviceRegistration, StoreError> {
    let entry = || format!("entry ({channel:?}, {id:?})");
    match load(devices, id)? {
        Some(reg) if reg.has_channel(channel) => Ok(reg),
        Some(_) => Err(bad_row(
            "device_channels",
            entry(),
            "the device's registration does not list that channel",
        )),
        None => Err(bad_row(
            "device_channels",
            entry(),
            "the device has no registration",
        )),
    }
}

/// The template called `name` from a `templates` value.
fn decoded(name: &str, bytes: &[u8]) -> Result<PushTemplate, StoreError> {
    template::decode(name, bytes).map_err(|e| bad_row("templates", format!("template {name:?}"), e))
}

/// `template`: the template called `name`.
pub(crate) fn template(db: &Database, name: &str) -> Result<Option<Arc<PushTemplate>>, StoreError> {
    let txn = db.begin_read().map_err(redb_error)?;
    let Some(templates) = open(&txn, TEMPLATES)? else {
        return Ok(None);
    };
    let Some(bytes) = templates.get(name).map_err(redb_error)? else {
        return Ok(None);
    };
    Ok(Some(Arc::new(decoded(name, bytes.value())?)))
}

/// `list_templates`: every template whose audience includes `os` (all for
/// `None`), by name.
pub(crate) fn list_templates(
    db: &Database,
    os: Option<Os>,
) -> Result<Vec<Arc<PushTemplate>>, StoreError> {
    let txn = db.begin_read().map_err(redb_error)?;
    let Some(templates) = open(&txn, TEMPLATES)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in templates.iter().map_err(redb_error)? {
        let (k, v) = entry.map_err(redb_error)?;
        let t = decoded(k.value(), v.value())?;
        if os.is_none_or(|os| t.targets(os)) {
            out.push(Arc::new(t));
        }
    }
    Ok(out)
}
