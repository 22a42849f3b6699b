//! Conversions between Herald's values and the columns they are stored in.

use herald::{DeliveryCounts, DueRun, FencingToken, MessageId, RunState};
use herald_core::Tick;
use tokio_postgres::Row;

use crate::error::{damaged, pg};
use herald::StoreError;

/// `state` column values.
pub(crate) const SCHEDULED: i16 = 0;
pub(crate) const FIRING: i16 = 1;
pub(crate) const PUBLISHED: i16 = 2;
pub(crate) const FAILED: i16 = 3;
pub(crate) const CANCELLED: i16 = 4;

/// A tick as a `bigint`: ticks past `i64::MAX` ms (292 million years)
/// are clamped, which keeps every comparison the store makes.
/// Rows of `(id, due)` (the first two columns) as runs, in the rows'
/// order.
pub(crate) fn due_runs(rows: &[Row]) -> Result<Vec<DueRun>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(DueRun {
                id: id_of(col(row, 0)?)?,
                due: tick(col(row, 1)?),
            })
        })
        .collect()
}

pub(crate) fn ms(t: Tick) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

/// A `bigint` as a tick (negative values, never written, read as 0).
pub(crate) fn tick(v: i64) -> Tick {
    Tick::from_millis(u64::try_from(v).unwrap_or(0))
}

/// A counter as a `bigint` (clamped).
pub(crate) fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A token as a `bigint` (tokens come from a PostgreSQL sequence, so
/// they fit; a larger one matches nothing).
pub(crate) fn token_value(t: FencingToken) -> i64 {
    i64::try_from(t.get()).unwrap_or(-1)
}

/// A `bigint` token.
pub(crate) fn token(v: i64) -> FencingToken {
    FencingToken::new(u64::try_from(v).unwrap_or(0))
}

/// A message id's column value: its 16 bytes, big-endian.
pub(crate) fn id_bytes(id: MessageId) -> Vec<u8> {
    id.to_bytes().to_vec()
}

/// A message id from its column value.
pub(crate) fn id_of(bytes: &[u8]) -> Result<MessageId, StoreError> {
    let b: [u8; 16] = bytes
        .try_into()
        .map_err(|_| damaged(format!("a message id of {} bytes, not 16", bytes.len())))?;
    Ok(MessageId::from_bytes(b))
}

/// A fingerprint's column value (16 bytes, big-endian).
pub(crate) fn fingerprint_bytes(f: u128) -> Vec<u8> {
    f.to_be_bytes().to_vec()
}

/// A fingerprint from its column value.
pub(crate) fn fingerprint(bytes: &[u8]) -> Result<u128, StoreError> {
    let b: [u8; 16] = bytes
        .try_into()
        .map_err(|_| damaged("an idempotency fingerprint that is not 16 bytes"))?;
    Ok(u128::from_be_bytes(b))
}

/// The columns of a record, in the order [`state_of`] and [`counts_of`]
/// read them.
pub(crate) const RECORD_COLUMNS: &str = "id, envelope, state, due, lease_until, token, \
    runs, pubsub + COALESCE((SELECT sum(b.n) FROM bus_deliveries b WHERE b.id = messages.id), 0)::int8, \
    push_sent, push_failed, push_invalid_tokens, push_expired, push_queued, error";

/// Column `i` of `row`, or a non-retryable error naming it.
pub(crate) fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
) -> Result<T, StoreError> {
    row.try_get(i).map_err(pg)
}

/// The state of a row read with [`RECORD_COLUMNS`].
pub(crate) fn state_of(row: &Row, id: MessageId) -> Result<RunState, StoreError> {
    let due = tick(col(row, 3)?);
    Ok(match col::<i16>(row, 2)? {
        SCHEDULED => RunState::Scheduled { due },
        FIRING => RunState::Firing {
            due,
            lease_until: tick(col(row, 4)?),
            token: token(col(row, 5)?),
        },
        PUBLISHED => RunState::Published,
        FAILED => RunState::Failed,
        CANCELLED => RunState::Cancelled,
        other => return Err(damaged(format!("message {id} has unknown state {other}"))),
    })
}

/// The counters of a row read with [`RECORD_COLUMNS`].
pub(crate) fn counts_of(row: &Row) -> Result<DeliveryCounts, StoreError> {
    let mut a = [0u64; 7];
    for (i, slot) in a.iter_mut().enumerate() {
        *slot = u64::try_from(col::<i64>(row, 6 + i)?).unwrap_or(0);
    }
    Ok(DeliveryCounts::from_array(a))
}

/// Counters as seven `bigint[]` columns' worth of values, one per item.
#[derive(Debug, Default)]
pub(crate) struct CountColumns(pub(crate) [Vec<i64>; 7]);

impl CountColumns {
    pub(crate) fn push(&mut self, c: &DeliveryCounts) {
        for (col, v) in self.0.iter_mut().zip(c.to_array()) {
            col.push(count(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_keep_their_order_and_clamp_at_the_top() {
        assert_eq!(ms(Tick::from_millis(1_800_000_000_000)), 1_800_000_000_000);
        assert_eq!(ms(Tick::MAX), i64::MAX);
        assert!(ms(Tick::from_millis(10)) < ms(Tick::MAX));
        assert_eq!(tick(ms(Tick::from_millis(42))), Tick::from_millis(42));
        assert_eq!(tick(-5), Tick::from_millis(0));
    }

    #[test]
    fn ids_and_fingerprints_round_trip() {
        let id = MessageId::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
        assert_eq!(id_of(&id_bytes(id)).unwrap(), id);
        assert!(id_of(&[1, 2, 3]).is_err());
        assert_eq!(
            fingerprint(&fingerprint_bytes(u128::MAX - 3)).unwrap(),
            u128::MAX - 3
        );
    }
}
