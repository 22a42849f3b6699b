//! Reservations of scheduled runs by the nodes sharing a schema
//! ([`Store::reserve_due`](herald::Store::reserve_due)): one statement
//! that picks the earliest unreserved scheduled runs through the partial
//! index on scheduled rows by due, skips rows another reserver has locked
//! (`FOR UPDATE SKIP LOCKED`, so concurrent callers get disjoint runs) and
//! records each reservation (`reserved_due`, `reserved_until`, migration 2).

use herald::{DueRun, StoreError};
use herald_core::Tick;

use crate::error::pg;
use crate::messages::retry_conflicts;
use crate::open::Inner;
use crate::rows::{due_runs, ms};

/// `$1` now, `$2` before, `$3` hold (ms), `$4` limit. A reservation is
/// live while it was made for the row's current due and ends after now;
/// it ends at `max(due, now) + hold` (clamped to `bigint`).
pub(crate) const RESERVE: &str = "\
    WITH c AS ( \
      SELECT id FROM messages \
      WHERE state = 0 AND due < $2 \
        AND (reserved_until IS NULL OR reserved_due <> due OR reserved_until <= $1) \
      ORDER BY due LIMIT $4 \
      FOR UPDATE SKIP LOCKED) \
    UPDATE messages m SET reserved_due = m.due, \
      reserved_until = LEAST(GREATEST(m.due, $1), 9223372036854775807 - $3) + $3 \
    FROM c WHERE m.id = c.id \
    RETURNING m.id, m.due";

impl Inner {
    pub(crate) async fn reserve_due(
        &self,
        now: Tick,
        before: Tick,
        hold_ms: u64,
        limit: usize,
    ) -> Result<Vec<DueRun>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = ms(now);
        let before = ms(before);
        let hold = i64::try_from(hold_ms).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = retry_conflicts(&self.health, || async {
            let stmt = client.prepare_cached(RESERVE).await.map_err(pg)?;
            client
                .query(&stmt, &[&now, &before, &hold, &limit])
                .await
                .map_err(pg)
        })
        .await;
        let rows = self.health.note(rows)?;
        let mut runs = due_runs(&rows)?;
        // `RETURNING` has no order: earliest first, ties by id.
        runs.sort_unstable_by_key(|r| (r.due, r.id));
        Ok(runs)
    }
}
