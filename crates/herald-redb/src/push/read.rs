//! The push-job read, in one read transaction (which sees every commit
//! that has returned). A file without the push-job tables has no retries.

use herald::{JobKey, PushRetry, StoreError};
use herald_core::Tick;
use redb::{Database, ReadableDatabase};

use crate::error::redb_error;
use crate::registry::open_if_there;
use crate::tables::PUSH_RETRIES;

/// `push_retries`: at most `limit` retries of job `key` by `(due, device
/// id)`: a range scan of `push_retries` from the job's first key that
/// stops at the first row of another job (or at `limit`).
pub(crate) fn retries(
    db: &Database,
    key: JobKey,
    limit: usize,
) -> Result<Vec<PushRetry>, StoreError> {
    let txn = db.begin_read().map_err(redb_error)?;
    let Some(table) = open_if_there(&txn, PUSH_RETRIES).map_err(redb_error)? else {
        return Ok(Vec::new());
    };
    let (message, run) = (key.message.as_u128(), key.run.as_millis());
    let range = table
        .range::<(u128, u64, u64, &str)>((message, run, 0, "")..)
        .map_err(redb_error)?;
    let mut out = Vec::with_capacity(limit.min(1024));
    for entry in range {
        if out.len() >= limit {
            break;
        }
        let (k, v) = entry.map_err(redb_error)?;
        let (m, r, due, device) = k.value();
        if (m, r) != (message, run) {
            break;
        }
        out.push(PushRetry {
            device_id: device.to_owned(),
            attempts: v.value(),
            due: Tick::from_millis(due),
        });
    }
    Ok(out)
}
