//! Format v1, read only: its tables and its record, as the last v1 build
//! (commit 3f67d00) wrote them.
//!
//! ```text
//! messages    u128 id → record
//! unfinished  u128 id → ()
//! firing      u128 id → (u64 due, u64 lease_until)
//! outcomes    (u64 due, u128 id) → header and error text, no envelope
//!
//! record:
//! offset  size  field
//!      0     1  record format version (1)
//!      1     1  state: 0 Scheduled, 2 Published, 3 Failed, 4 Cancelled
//!      2     8  due, ms (Scheduled; else 0)
//!     10    40  counters: runs, pubsub, push_sent, push_failed, push_invalid_tokens
//!     50     4  E = error length
//!     54     E  error text, UTF-8
//!   54+E        envelope:
//!               16  id, big-endian (must equal the key)
//!                8  accepted_at, ms
//!              4+n  channel, UTF-8
//!              4+n  message, JSON
//!              4+n  publish options, JSON (`PublishOptions::to_json`)
//!              4+n  delivery options, JSON (`DeliveryOptions::to_json`)
//! ```
//!
//! Little-endian except the id. A `Scheduled { due }` record with a
//! `firing` entry for that due was `Firing`; with an `outcomes` entry under
//! `(due, id)` it had that entry's state, counters and error.

use std::sync::Arc;

use herald::{
    Body, DeliveryCounts, DeliveryOptions, DeliveryPlan, Envelope, MessageId, PublishOptions,
};
use herald_core::Tick;
use redb::TableDefinition;
use serde_json::Value;

use crate::header::State;

pub(crate) const MESSAGES: TableDefinition<'static, u128, &'static [u8]> =
    TableDefinition::new("messages");
pub(crate) const UNFINISHED: TableDefinition<'static, u128, ()> =
    TableDefinition::new("unfinished");
pub(crate) const FIRING: TableDefinition<'static, u128, (u64, u64)> =
    TableDefinition::new("firing");
pub(crate) const OUTCOMES: TableDefinition<'static, (u64, u128), &'static [u8]> =
    TableDefinition::new("outcomes");

const RECORD_VERSION: u8 = 1;
/// Bytes before the error text.
const HEADER_LEN: usize = 54;

/// A v1 record's header, error text and envelope bytes.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) state: State,
    pub(crate) counts: DeliveryCounts,
    pub(crate) error: &'a str,
    /// The header and error text, as stored.
    pub(crate) head: &'a [u8],
    /// The envelope, as stored.
    pub(crate) envelope: &'a [u8],
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Splits a v1 record (or an `outcomes` value: no envelope).
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed<'_>, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes, shorter than a v1 header", bytes.len()));
    }
    if bytes[0] != RECORD_VERSION {
        return Err(format!("record version {}, not 1", bytes[0]));
    }
    let due = u64_at(bytes, 2);
    let state = match bytes[1] {
        0 => State::Scheduled { due },
        2 => State::Published,
        3 => State::Failed,
        4 => State::Cancelled,
        other => return Err(format!("unknown v1 state tag {other}")),
    };
    let mut five = [0u64; 7];
    for (i, c) in five.iter_mut().take(5).enumerate() {
        *c = u64_at(bytes, 10 + 8 * i);
    }
    let mut r = Reader {
        bytes,
        at: HEADER_LEN - 4,
    };
    let error = r.text("error text")?;
    Ok(Parsed {
        state,
        counts: DeliveryCounts::from_array(five),
        error,
        head: &bytes[..r.at],
        envelope: &bytes[r.at..],
    })
}

/// Converts a v1 envelope stored under `id` into an [`Envelope`]: the
/// message's JSON text becomes the body as it is, the options are read
/// back with `from_json` and checked into a [`DeliveryPlan`].
pub(crate) fn envelope(id: u128, bytes: &[u8]) -> Result<Envelope, String> {
    let mut r = Reader { bytes, at: 0 };
    let mut idb = [0u8; 16];
    idb.copy_from_slice(r.take(16, "id")?);
    let stored = MessageId::from_bytes(idb);
    if stored.as_u128() != id {
        return Err(format!("holds the envelope of {stored}"));
    }
    let accepted_at = Tick::from_millis(u64::from_le_bytes(
        r.take(8, "accepted_at")?
            .try_into()
            .map_err(|_| "accepted_at")?,
    ));
    let channel = r.text("channel")?.to_owned();
    let message = r.text("message")?;
    let body = Body::from_json(message).map_err(|e| format!("message: {e}"))?;
    let publish = PublishOptions::from_json(&r.json("publish options")?)
        .map_err(|e| format!("publish options: {e}"))?;
    let delivery = DeliveryOptions::from_json(&r.json("delivery options")?)
        .map_err(|e| format!("delivery options: {e}"))?;
    if r.at != bytes.len() {
        return Err(format!("{} bytes after the envelope", bytes.len() - r.at));
    }
    let plan = DeliveryPlan::new(delivery).map_err(|e| format!("delivery options: {e}"))?;
    Ok(Envelope {
        template: None,
        id: stored,
        channel,
        accepted_at,
        publish,
        plan: Arc::new(plan),
        body,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "{what}: needs {n} bytes at offset {}, record has {}",
                    self.at,
                    self.bytes.len()
                )
            })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn field(&mut self, what: &str) -> Result<&'a [u8], String> {
        let mut len = [0u8; 4];
        len.copy_from_slice(self.take(4, what)?);
        self.take(u32::from_le_bytes(len) as usize, what)
    }

    fn text(&mut self, what: &str) -> Result<&'a str, String> {
        std::str::from_utf8(self.field(what)?).map_err(|e| format!("{what}: {e}"))
    }

    fn json(&mut self, what: &str) -> Result<Value, String> {
        serde_json::from_slice(self.field(what)?).map_err(|e| format!("{what}: {e}"))
    }
}
