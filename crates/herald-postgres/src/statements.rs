//! The statements of the store's scans over live rows, as it runs them
//! (parameters `$n` unbound). Not an API: `tests/indexes.rs` checks their
//! plans (`PREPARE` then `EXPLAIN EXECUTE`) on a table of mostly finished
//! rows, so the check cannot drift from the statements.
#![doc(hidden)]

/// `Store::pending`: scheduled rows after id `$1`, at most `$2`.
pub const PENDING: &str = crate::messages::PENDING;

/// `Store::reserve_due`: `$1` now, `$2` before, `$3` hold (ms), `$4` limit.
pub const RESERVE: &str = crate::reserve::RESERVE;

/// `Store::release_expired`: `$1` before, `$2` hint channel, `$3` tag.
pub const RELEASE: &str = crate::messages::RELEASE;

/// The retention purge: `$1` finished at or before, `$2` chunk.
pub const PURGE_MESSAGES: &str = crate::retention::PURGE_MESSAGES;

/// Expired device registrations: `$1` expired at or before, `$2` limit.
pub const PURGE_DEVICES: &str = crate::registry::PURGE_DEVICES;

/// A record by id (`$1`), its appended pub/sub deliveries summed.
pub fn read_record() -> String {
    crate::messages::read_record()
}
