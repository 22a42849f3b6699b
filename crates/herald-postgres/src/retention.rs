//! Retention: final messages (finished, no push notification pending, no
//! push job open) are deleted `retention` after their last change, and
//! expired idempotency keys with them, on the store's clock.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use herald::{Clock, StoreError};
use herald_core::Tick;

use crate::PgStore;
use crate::error::pg;
use crate::open::Inner;
use crate::rows::ms;

/// Rows one purge statement deletes at most (so a purge never holds many
/// locks for long).
const CHUNK: i64 = 5_000;

/// Final messages whose last change is at or before `$1`, oldest first
/// (the `finished_at` partial index), at most `$2`.
/// Their rows of other nodes' deliveries go with them. Answers how many
/// messages it deleted. The ids go through `= ANY(ARRAY(…))`: with
/// `id IN (subquery)` PostgreSQL estimated the chunk's full `LIMIT` and
/// joined it by hash against a sequential scan of the whole table (39 ms
/// per chunk of 5,000 at 200k rows, growing with the table; 13 ms through
/// the primary key).
pub(crate) const PURGE_MESSAGES: &str = "\
    WITH d AS ( \
      DELETE FROM messages WHERE id = ANY(ARRAY( \
        SELECT m.id FROM messages m \
        WHERE m.state >= 2 AND m.finished_at <= $1 \
          AND m.push_queued <= m.push_sent + m.push_failed + m.push_invalid_tokens + m.push_expired \
          AND NOT EXISTS (SELECT 1 FROM push_jobs j WHERE j.message = m.id) \
        ORDER BY m.finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)) \
      RETURNING id), \
    b AS (DELETE FROM bus_deliveries WHERE id = ANY(ARRAY(SELECT id FROM d))) \
    SELECT count(*) FROM d";

/// Expired idempotency keys, oldest first, at most `$2` (through the
/// primary key, as [`PURGE_MESSAGES`]).
const PURGE_KEYS: &str = "\
    DELETE FROM idempotency_keys WHERE key = ANY(ARRAY( \
      SELECT key FROM idempotency_keys WHERE expires_at <= $1 \
      ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED))";

impl Inner {
    /// One retention pass at `now`: how many messages it deleted.
    pub(crate) async fn purge(&self, now: Tick) -> Result<u64, StoreError> {
        let Some(retention) = self.retention else {
            return Ok(0);
        };
        let cutoff =
            ms(now).saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let client = self.client().await?;
        let r = async {
            let mut total = 0;
            let stmt = client.prepare_cached(PURGE_MESSAGES).await.map_err(pg)?;
            loop {
                let row = client
                    .query_one(&stmt, &[&cutoff, &CHUNK])
                    .await
                    .map_err(pg)?;
                let n = u64::try_from(row.try_get::<_, i64>(0).map_err(pg)?).unwrap_or(0);
                total += n;
                if n < CHUNK as u64 {
                    break;
                }
            }
            let stmt = client.prepare_cached(PURGE_KEYS).await.map_err(pg)?;
            loop {
                let n = client
                    .execute(&stmt, &[&ms(now), &CHUNK])
                    .await
                    .map_err(pg)?;
                if n < CHUNK as u64 {
                    break;
                }
            }
            Ok(total)
        }
        .await;
        let purged = self.health.note(r)?;
        self.health.purged.fetch_add(purged, Ordering::Relaxed);
        Ok(purged)
    }
}

impl PgStore {
    /// Runs retention now, on the store's clock: deletes the messages that
    /// have been final for the retention period (and expired idempotency
    /// keys); answers how many messages. The store also does this by
    /// itself every [`PgOptions::purge_every`](crate::PgOptions::purge_every).
    ///
    /// # Errors
    ///
    /// As any store call: `Unavailable` if PostgreSQL cannot be reached.
    pub async fn purge_final(&self) -> Result<u64, StoreError> {
        self.inner.purge(self.inner.clock.now()).await
    }
}

/// The retention task: a pass every `every` on `clock`, until the store
/// is gone. Errors are logged; the next pass tries again.
pub(crate) async fn maintain(
    store: Weak<Inner>,
    clock: std::sync::Arc<dyn Clock>,
    every: Duration,
) {
    let every = Tick::from_millis(u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1));
    loop {
        let next = Tick::from_millis(clock.now().as_millis().saturating_add(every.as_millis()));
        clock.sleep_until(next).await;
        let Some(inner) = store.upgrade() else {
            return;
        };
        if let Err(e) = inner.purge(clock.now()).await {
            tracing::warn!(schema = %inner.schema, "retention pass failed: {e}");
        }
    }
}
