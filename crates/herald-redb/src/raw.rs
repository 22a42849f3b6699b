//! The tables' rows as bytes, for tests that check which tables an
//! operation writes (not part of the API).

use std::collections::BTreeMap;
use std::ops::RangeBounds;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::RedbStoreError;
use crate::registry::open_if_there;
use crate::store::RedbStore;
use crate::tables::{
    CLAIMS, DEVICE_CHANNELS, DEVICE_EXPIRY, DEVICES, ENVELOPES, FINALS, FINISHED, HEADERS,
    KEY_EXPIRY, KEYS, META, PUSH_JOB_LEASES, PUSH_JOBS, PUSH_RETRIES, PUSH_RETRY_INDEX, QUARANTINE,
    SCHEDULE, TEMPLATES,
};

/// One table's rows: `(key, value)` as bytes.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

impl RedbStore {
    /// Every v2 table's rows, by table name, in key order. Integer keys are
    /// big-endian (so byte order is key order), integer values
    /// little-endian, `&str` and `&[u8]` as they are; in a tuple key, a
    /// `&str` that is not last is followed by a 0 byte. A registry or
    /// push-job table the file does not have yet is listed without rows.
    ///
    /// # Errors
    ///
    /// As [`check_records`](Self::check_records).
    #[doc(hidden)]
    pub fn raw_tables(&self) -> Result<BTreeMap<&'static str, Rows>, RedbStoreError> {
        let db = self.raw_db()?;
        let txn = db.begin_read()?;
        let mut out = BTreeMap::new();
        let le = |v: &[u64]| v.iter().flat_map(|n| n.to_le_bytes()).collect::<Vec<u8>>();
        let mut rows = Rows::new();
        for e in txn.open_table(META)?.iter()? {
            let (k, v) = e?;
            rows.push((k.value().as_bytes().to_vec(), le(&[v.value()])));
        }
        out.insert("meta", rows);
        for (name, def) in [
            ("headers", HEADERS),
            ("envelopes", ENVELOPES),
            ("quarantine", QUARANTINE),
        ] {
            out.insert(name, bytes_rows(&txn, def, ..)?);
        }
        let mut rows = Rows::new();
        for e in txn.open_table(CLAIMS)?.iter()? {
            let (k, v) = e?;
            let (due, lease, token) = v.value();
            rows.push((k.value().to_be_bytes().to_vec(), le(&[due, lease, token])));
        }
        out.insert("claims", rows);
        let mut rows = Rows::new();
        for e in txn.open_table(FINALS)?.iter()? {
            let (k, v) = e?;
            let (due, id) = k.value();
            let mut key = due.to_be_bytes().to_vec();
            key.extend_from_slice(&id.to_be_bytes());
            rows.push((key, v.value().to_vec()));
        }
        out.insert("finals", rows);
        let mut rows = Rows::new();
        for e in txn.open_table(FINISHED)?.iter()? {
            let (k, _) = e?;
            let (at, id) = k.value();
            let mut key = at.to_be_bytes().to_vec();
            key.extend_from_slice(&id.to_be_bytes());
            rows.push((key, Vec::new()));
        }
        out.insert("finished", rows);
        let mut rows = Rows::new();
        for e in txn.open_table(KEYS)?.iter()? {
            let (k, v) = e?;
            let (id, fingerprint, expires_at, status) = v.value();
            let mut value = id.to_le_bytes().to_vec();
            value.extend_from_slice(&fingerprint.to_le_bytes());
            value.extend_from_slice(&expires_at.to_le_bytes());
            value.push(status);
            rows.push((k.value().as_bytes().to_vec(), value));
        }
        out.insert("idempotency", rows);
        let mut rows = Rows::new();
        for e in txn.open_table(KEY_EXPIRY)?.iter()? {
            let (k, _) = e?;
            let (at, key) = k.value();
            let mut bytes = at.to_be_bytes().to_vec();
            bytes.extend_from_slice(key.as_bytes());
            rows.push((bytes, Vec::new()));
        }
        out.insert("idempotency_expiry", rows);
        out.insert("schedule", schedule_rows(&txn, ..)?);
        registry_rows(&txn, &mut out)?;
        push_rows(&txn, &mut out)?;
        Ok(out)
    }

    /// The database, for the raw reads.
    fn raw_db(&self) -> Result<std::sync::Arc<redb::Database>, RedbStoreError> {
        self.db().map_err(|e| match e {
            herald::StoreError::Closed => RedbStoreError::Closed,
            other => RedbStoreError::Check(other.to_string()),
        })
    }

    /// The rows of a message's own tables (`headers`, `envelopes`,
    /// `schedule`; encoded as [`raw_tables`](Self::raw_tables) does) for
    /// the ids above `after`: what a benchmark reads back after each
    /// segment of publishes without reading the whole file again.
    ///
    /// # Errors
    ///
    /// As [`raw_tables`](Self::raw_tables).
    #[doc(hidden)]
    pub fn raw_message_rows_after(
        &self,
        after: u128,
    ) -> Result<BTreeMap<&'static str, Rows>, RedbStoreError> {
        let db = self.raw_db()?;
        let txn = db.begin_read()?;
        // Above the largest id there is nothing.
        let Some(from) = after.checked_add(1) else {
            return Ok(["headers", "envelopes", "schedule"]
                .into_iter()
                .map(|name| (name, Rows::new()))
                .collect());
        };
        Ok(BTreeMap::from([
            ("headers", bytes_rows(&txn, HEADERS, from..)?),
            ("envelopes", bytes_rows(&txn, ENVELOPES, from..)?),
            ("schedule", schedule_rows(&txn, from..)?),
        ]))
    }
}

/// The rows of a table keyed by message id with bytes values, for the ids
/// in `ids` (see [`RedbStore::raw_tables`]).
fn bytes_rows(
    txn: &redb::ReadTransaction,
    def: TableDefinition<'static, u128, &'static [u8]>,
    ids: impl RangeBounds<u128>,
) -> Result<Rows, RedbStoreError> {
    let mut rows = Rows::new();
    for e in txn.open_table(def)?.range(ids)? {
        let (k, v) = e?;
        rows.push((k.value().to_be_bytes().to_vec(), v.value().to_vec()));
    }
    Ok(rows)
}

/// The `schedule` rows for the ids in `ids` (see [`RedbStore::raw_tables`]).
fn schedule_rows(
    txn: &redb::ReadTransaction,
    ids: impl RangeBounds<u128>,
) -> Result<Rows, RedbStoreError> {
    let mut rows = Rows::new();
    for e in txn.open_table(SCHEDULE)?.range(ids)? {
        let (k, v) = e?;
        rows.push((
            k.value().to_be_bytes().to_vec(),
            v.value().to_le_bytes().to_vec(),
        ));
    }
    Ok(rows)
}

/// The rows of the registry tables (see [`RedbStore::raw_tables`]).
fn registry_rows(
    txn: &redb::ReadTransaction,
    out: &mut BTreeMap<&'static str, Rows>,
) -> Result<(), RedbStoreError> {
    for (name, def) in [("devices", DEVICES), ("templates", TEMPLATES)] {
        let mut rows = Rows::new();
        if let Some(table) = open_if_there(txn, def)? {
            for e in table.iter()? {
                let (k, v) = e?;
                rows.push((k.value().as_bytes().to_vec(), v.value().to_vec()));
            }
        }
        out.insert(name, rows);
    }
    let mut rows = Rows::new();
    if let Some(table) = open_if_there(txn, DEVICE_CHANNELS)? {
        for e in table.iter()? {
            let (k, _) = e?;
            let (channel, id) = k.value();
            let mut key = channel.as_bytes().to_vec();
            key.push(0);
            key.extend_from_slice(id.as_bytes());
            rows.push((key, Vec::new()));
        }
    }
    out.insert("device_channels", rows);
    let mut rows = Rows::new();
    if let Some(table) = open_if_there(txn, DEVICE_EXPIRY)? {
        for e in table.iter()? {
            let (k, _) = e?;
            let (at, id) = k.value();
            let mut key = at.to_be_bytes().to_vec();
            key.extend_from_slice(id.as_bytes());
            rows.push((key, Vec::new()));
        }
    }
    out.insert("device_expiry", rows);
    Ok(())
}

/// The rows of the push-job tables (see [`RedbStore::raw_tables`]).
fn push_rows(
    txn: &redb::ReadTransaction,
    out: &mut BTreeMap<&'static str, Rows>,
) -> Result<(), RedbStoreError> {
    let be = |v: &[u64]| v.iter().flat_map(|n| n.to_be_bytes()).collect::<Vec<u8>>();
    let mut rows = Rows::new();
    if let Some(table) = open_if_there(txn, PUSH_JOBS)? {
        for e in table.iter()? {
            let (k, v) = e?;
            let (message, run) = k.value();
            let mut key = message.to_be_bytes().to_vec();
            key.extend_from_slice(&be(&[run]));
            rows.push((key, v.value().to_vec()));
        }
    }
    out.insert("push_jobs", rows);
    let mut rows = Rows::new();
    if let Some(table) = open_if_there(txn, PUSH_JOB_LEASES)? {
        for e in table.iter()? {
            let (k, _) = e?;
            let (lease, message, run) = k.value();
            let mut key = be(&[lease]);
            key.extend_from_slice(&message.to_be_bytes());
            key.extend_from_slice(&be(&[run]));
            rows.push((key, Vec::new()));
        }
    }
    out.insert("push_job_leases", rows);
    let mut rows = Rows::new();
    if let Some(table) = open_if_there(txn, PUSH_RETRIES)? {
        for e in table.iter()? {
            let (k, v) = e?;
            let (message, run, due, device) = k.value();
            let mut key = message.to_be_bytes().to_vec();
            key.extend_from_slice(&be(&[run, due]));
            key.extend_from_slice(device.as_bytes());
            rows.push((key, v.value().to_le_bytes().to_vec()));
        }
    }
    out.insert("push_retries", rows);
    let mut rows = Rows::new();
    if let Some(table) = open_if_there(txn, PUSH_RETRY_INDEX)? {
        for e in table.iter()? {
            let (k, v) = e?;
            let (message, run, device) = k.value();
            let mut key = message.to_be_bytes().to_vec();
            key.extend_from_slice(&be(&[run]));
            key.extend_from_slice(device.as_bytes());
            rows.push((key, v.value().to_le_bytes().to_vec()));
        }
    }
    out.insert("push_retry_index", rows);
    Ok(())
}
