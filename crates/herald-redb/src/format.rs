//! The on-disk record format (see `docs/design.md`, "Store format:
//! herald-redb").
//!
//! A record is one value of the `messages` table, keyed by the message id:
//!
//! ```text
//! offset  size  field
//!      0     1  record format version (1)
//!      1     1  state: 0 Scheduled (or Firing: see below), 2 Published, 3 Failed,
//!               4 Cancelled (1 is not used)
//!      2     8  due (ms, Scheduled; else 0)
//!     10    40  counters: runs, pubsub, push_sent, push_failed, push_invalid_tokens
//!     50     4  error length E (Failed; else 0)
//!     54     E  error text, UTF-8
//!   54+E        envelope:
//!               16  id (big-endian, must equal the key)
//!                8  accepted_at (ms)
//!             4+n   channel, UTF-8
//!             4+n   message, JSON
//!             4+n   publish options, JSON (`PublishOptions::to_json`)
//!             4+n   delivery options, JSON (`DeliveryOptions::to_json`)
//! ```
//!
//! A claimed run is not written here: `Firing { due, lease_until }` is a
//! `Scheduled { due }` record whose id is in the `firing` table with that
//! due and lease (claims and lease releases then touch only that small
//! table, not the record's page).
//!
//! Integers are little-endian except the id; lengths are `u32`. Decoding
//! checks every length and that nothing trails the envelope, and never
//! panics: a damaged record is a [`FormatError`].

use std::fmt;
use std::sync::Arc;

use herald::{
    DeliveryCounts, DeliveryOptions, Envelope, MessageId, PublishOptions, Record, RunState,
};
use herald_core::Tick;
use serde_json::Value;

/// The record format this build writes and reads.
pub(crate) const RECORD_VERSION: u8 = 1;

/// Bytes before the error text.
pub(crate) const HEADER_LEN: usize = 54;

const STATE_SCHEDULED: u8 = 0;
const STATE_PUBLISHED: u8 = 2;
const STATE_FAILED: u8 = 3;
const STATE_CANCELLED: u8 = 4;

/// The largest epoch-ms time `DeliveryOptions::from_json` accepts back.
const MAX_EPOCH_MS: i64 = 8_640_000_000_000_000;
/// The longest `repeatEvery` `DeliveryOptions::from_json` accepts back.
const MAX_REPEAT_SECONDS: i64 = 1_000_000_000;

/// A record that cannot be decoded (or a record that could not be read
/// back, refused at insert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError {
    pub(crate) id: u128,
    pub(crate) what: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "herald-redb: record {} is corrupt or unreadable: {}",
            MessageId::from_u128(self.id),
            self.what
        )
    }
}

impl std::error::Error for FormatError {}

fn err(id: u128, what: impl Into<String>) -> FormatError {
    FormatError {
        id,
        what: what.into(),
    }
}

/// The fixed part of a record: everything the state machine changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) state: HeaderState,
    pub(crate) counts: DeliveryCounts,
}

/// [`RunState`] as the record stores it: without the error text (kept next
/// to the header) and without `Firing` (the `firing` table's overlay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderState {
    Scheduled { due: u64 },
    Published,
    Failed,
    Cancelled,
}

impl HeaderState {
    pub(crate) fn is_unfinished(self) -> bool {
        matches!(self, Self::Scheduled { .. })
    }
}

/// A claim on a run: `(due, lease_until)`, the `firing` table's value.
pub(crate) type Lease = (u64, u64);

/// A record split into its parts, borrowing the stored bytes.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub(crate) header: Header,
    pub(crate) error: &'a str,
    /// The encoded envelope (immutable after insert).
    pub(crate) envelope: &'a [u8],
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Splits a stored record. Checks the header, not the envelope.
pub(crate) fn parse(id: u128, bytes: &[u8]) -> Result<Parsed<'_>, FormatError> {
    if bytes.len() < HEADER_LEN {
        return Err(err(
            id,
            format!("{} bytes, shorter than the header", bytes.len()),
        ));
    }
    if bytes[0] != RECORD_VERSION {
        return Err(err(
            id,
            format!(
                "record format version {}, this build reads version {RECORD_VERSION}",
                bytes[0]
            ),
        ));
    }
    let due = u64_at(bytes, 2);
    let state = match bytes[1] {
        STATE_SCHEDULED => HeaderState::Scheduled { due },
        STATE_PUBLISHED => HeaderState::Published,
        STATE_FAILED => HeaderState::Failed,
        STATE_CANCELLED => HeaderState::Cancelled,
        other => return Err(err(id, format!("unknown state tag {other}"))),
    };
    let counts = DeliveryCounts {
        runs: u64_at(bytes, 10),
        pubsub: u64_at(bytes, 18),
        push_sent: u64_at(bytes, 26),
        push_failed: u64_at(bytes, 34),
        push_invalid_tokens: u64_at(bytes, 42),
    };
    let mut r = Reader {
        id,
        bytes,
        at: HEADER_LEN - 4,
    };
    let error = r.text("error text")?;
    Ok(Parsed {
        header: Header { state, counts },
        error,
        envelope: &bytes[r.at..],
    })
}

/// Writes a record from its parts.
pub(crate) fn build(header: &Header, error: &str, envelope: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(HEADER_LEN + error.len() + envelope.len());
    let (tag, due) = match header.state {
        HeaderState::Scheduled { due } => (STATE_SCHEDULED, due),
        HeaderState::Published => (STATE_PUBLISHED, 0),
        HeaderState::Failed => (STATE_FAILED, 0),
        HeaderState::Cancelled => (STATE_CANCELLED, 0),
    };
    out.push(RECORD_VERSION);
    out.push(tag);
    out.extend_from_slice(&due.to_le_bytes());
    let c = &header.counts;
    for n in [
        c.runs,
        c.pubsub,
        c.push_sent,
        c.push_failed,
        c.push_invalid_tokens,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    put_len(&mut out, error.len())?;
    out.extend_from_slice(error.as_bytes());
    out.extend_from_slice(envelope);
    Ok(out)
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), String> {
    let len = u32::try_from(len).map_err(|_| format!("a field of {len} bytes is over 4 GiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

fn put_json(out: &mut Vec<u8>, value: &impl serde::Serialize) -> Result<(), String> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *out, value).map_err(|e| e.to_string())?;
    let len = out.len() - at - 4;
    let len = u32::try_from(len).map_err(|_| format!("a field of {len} bytes is over 4 GiB"))?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Refuses delivery options that `DeliveryOptions::from_json` would not
/// read back (possible only for records built by hand, not by the engine,
/// which validates them at publish).
fn check_delivery(d: &DeliveryOptions) -> Result<(), String> {
    for (name, t) in [
        ("publishAt", d.publish_at),
        ("repeatExpiresAt", d.repeat_expires_at),
    ] {
        if let Some(t) = t
            && !(0..=MAX_EPOCH_MS).contains(&t.timestamp_millis())
        {
            return Err(format!("{name} {t} is outside 1970..275760"));
        }
    }
    if let Some(every) = d.repeat_every
        && (!(1..=MAX_REPEAT_SECONDS).contains(&every.num_seconds()) || every.subsec_nanos() != 0)
    {
        return Err(format!(
            "repeatEvery {every} is not a whole number of seconds in 1 ..= 10^9"
        ));
    }
    if d.repeat_every.is_some() && d.repeat_cron.is_some() {
        return Err("both repeatEvery and repeatCron".into());
    }
    if let Some(q) = &d.segment_query
        && (q.trim().is_empty() || herald_core::selector::Selector::parse(q).is_err())
    {
        return Err(format!("segmentQuery {q:?} does not parse"));
    }
    Ok(())
}

/// Encodes an envelope (the immutable part of a record).
pub(crate) fn encode_envelope(e: &Envelope) -> Result<Vec<u8>, String> {
    check_delivery(&e.delivery)?;
    let mut out = Vec::with_capacity(128 + e.channel.len());
    out.extend_from_slice(&e.id.to_bytes());
    out.extend_from_slice(&e.accepted_at.as_millis().to_le_bytes());
    put_len(&mut out, e.channel.len())?;
    out.extend_from_slice(e.channel.as_bytes());
    put_json(&mut out, &e.message)?;
    put_json(&mut out, &e.publish)?;
    put_json(&mut out, &e.delivery)?;
    Ok(out)
}

/// Encodes a whole record; a `Firing` one is stored as scheduled, and its
/// claim returned for the `firing` table.
pub(crate) fn encode_record(r: &Record) -> Result<(Vec<u8>, Option<Lease>), String> {
    let (state, error, lease) = header_state_of(&r.state);
    let envelope = encode_envelope(&r.envelope)?;
    let bytes = build(
        &Header {
            state,
            counts: r.counts,
        },
        error,
        &envelope,
    )?;
    Ok((bytes, lease))
}

/// The stored form of a run state: header state, error text, claim.
pub(crate) fn header_state_of(s: &RunState) -> (HeaderState, &str, Option<Lease>) {
    match s {
        RunState::Scheduled { due } => (
            HeaderState::Scheduled {
                due: due.as_millis(),
            },
            "",
            None,
        ),
        RunState::Firing { due, lease_until } => (
            HeaderState::Scheduled {
                due: due.as_millis(),
            },
            "",
            Some((due.as_millis(), lease_until.as_millis())),
        ),
        RunState::Published => (HeaderState::Published, "", None),
        RunState::Failed { error } => (HeaderState::Failed, error, None),
        RunState::Cancelled => (HeaderState::Cancelled, "", None),
    }
}

struct Reader<'a> {
    id: u128,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                err(
                    self.id,
                    format!(
                        "{what}: needs {n} bytes at offset {}, record has {}",
                        self.at,
                        self.bytes.len()
                    ),
                )
            })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn field(&mut self, what: &str) -> Result<&'a [u8], FormatError> {
        let mut len = [0u8; 4];
        len.copy_from_slice(self.take(4, what)?);
        self.take(u32::from_le_bytes(len) as usize, what)
    }

    fn text(&mut self, what: &str) -> Result<&'a str, FormatError> {
        let b = self.field(what)?;
        std::str::from_utf8(b).map_err(|e| err(self.id, format!("{what}: {e}")))
    }

    fn json(&mut self, what: &str) -> Result<Value, FormatError> {
        let b = self.field(what)?;
        serde_json::from_slice(b).map_err(|e| err(self.id, format!("{what}: {e}")))
    }
}

/// Decodes an envelope stored under key `id`.
pub(crate) fn decode_envelope(id: u128, bytes: &[u8]) -> Result<Envelope, FormatError> {
    let mut r = Reader { id, bytes, at: 0 };
    let mut idb = [0u8; 16];
    idb.copy_from_slice(r.take(16, "id")?);
    let stored = MessageId::from_bytes(idb);
    if stored.as_u128() != id {
        return Err(err(id, format!("holds the envelope of {stored}")));
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(r.take(8, "accepted_at")?);
    let channel = r.text("channel")?.to_owned();
    let message = r.json("message")?;
    let publish = PublishOptions::from_json(&r.json("publish options")?)
        .map_err(|e| err(id, format!("publish options: {e}")))?;
    let delivery = DeliveryOptions::from_json(&r.json("delivery options")?)
        .map_err(|e| err(id, format!("delivery options: {e}")))?;
    if r.at != bytes.len() {
        return Err(err(
            id,
            format!("{} bytes after the envelope", bytes.len() - r.at),
        ));
    }
    Ok(Envelope {
        id: stored,
        channel,
        message,
        publish,
        delivery,
        accepted_at: Tick::from_millis(u64::from_le_bytes(at)),
    })
}

/// The run state of a stored header with its `firing` entry, if any. A
/// claim for another due than the record's (never written) is ignored.
pub(crate) fn run_state(state: HeaderState, error: &str, lease: Option<Lease>) -> RunState {
    match state {
        HeaderState::Scheduled { due } => match lease {
            Some((d, lease_until)) if d == due => RunState::Firing {
                due: Tick::from_millis(due),
                lease_until: Tick::from_millis(lease_until),
            },
            _ => RunState::Scheduled {
                due: Tick::from_millis(due),
            },
        },
        HeaderState::Published => RunState::Published,
        HeaderState::Failed => RunState::Failed {
            error: error.to_owned(),
        },
        HeaderState::Cancelled => RunState::Cancelled,
    }
}

/// Parses an `outcomes` value: a header and error text with no envelope,
/// which must be finished.
pub(crate) fn parse_outcome(id: u128, bytes: &[u8]) -> Result<Parsed<'_>, FormatError> {
    let p = parse(id, bytes)?;
    if p.header.state.is_unfinished() || !p.envelope.is_empty() {
        return Err(err(id, "an outcome that is not a finished state"));
    }
    Ok(p)
}

/// Encodes an `outcomes` value.
pub(crate) fn build_outcome(header: &Header, error: &str) -> Result<Vec<u8>, String> {
    build(header, error, &[])
}

/// Decodes a whole record stored under key `id`, with its `firing` entry
/// and its `outcomes` value (for a record stored as scheduled).
pub(crate) fn decode_record(
    id: u128,
    bytes: &[u8],
    lease: Option<Lease>,
    outcome: Option<&[u8]>,
) -> Result<Record, FormatError> {
    let p = parse(id, bytes)?;
    let envelope = Arc::new(decode_envelope(id, p.envelope)?);
    let (header, error) = match outcome {
        Some(o) => {
            let o = parse_outcome(id, o)?;
            (o.header, o.error)
        }
        None => (p.header, p.error),
    };
    Ok(Record {
        envelope,
        state: run_state(header.state, error, lease),
        counts: header.counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_testkit::store_conformance::{envelope, small_envelope};

    fn record(n: u128, state: RunState) -> Record {
        Record {
            envelope: envelope(n),
            state,
            counts: DeliveryCounts {
                runs: 1,
                pubsub: 2,
                push_sent: 3,
                push_failed: 4,
                push_invalid_tokens: u64::MAX,
            },
        }
    }

    fn states() -> Vec<RunState> {
        vec![
            RunState::Scheduled {
                due: Tick::from_millis(7),
            },
            RunState::Firing {
                due: Tick::from_millis(8),
                lease_until: Tick::MAX,
            },
            RunState::Published,
            RunState::Failed {
                error: "nö ✗".into(),
            },
            RunState::Cancelled,
        ]
    }

    #[test]
    fn every_state_round_trips() {
        for (n, s) in states().into_iter().enumerate() {
            let r = record(n as u128, s);
            let id = r.envelope.id.as_u128();
            let (bytes, lease) = encode_record(&r).expect("encode");
            assert_eq!(bytes[0], RECORD_VERSION);
            assert_eq!(lease.is_some(), matches!(r.state, RunState::Firing { .. }));
            assert_eq!(decode_record(id, &bytes, lease, None).expect("decode"), r);
        }
        let small = Record {
            envelope: small_envelope(9),
            state: RunState::Published,
            counts: DeliveryCounts::default(),
        };
        let (bytes, _) = encode_record(&small).expect("encode");
        assert_eq!(
            decode_record(small.envelope.id.as_u128(), &bytes, None, None),
            Ok(small)
        );
    }

    #[test]
    fn the_header_sits_where_the_format_says() {
        let r = record(
            1,
            RunState::Firing {
                due: Tick::from_millis(0x0102),
                lease_until: Tick::from_millis(0x0304),
            },
        );
        let (b, lease) = encode_record(&r).expect("encode");
        assert_eq!(
            &b[..2],
            &[1, STATE_SCHEDULED],
            "firing is stored as scheduled"
        );
        assert_eq!(lease, Some((0x0102, 0x0304)), "plus the claim");
        assert_eq!(u64_at(&b, 2), 0x0102);
        assert_eq!(u64_at(&b, 10), 1);
        assert_eq!(u64_at(&b, 42), u64::MAX);
        assert_eq!(&b[50..54], &[0, 0, 0, 0]);
        assert_eq!(&b[54..70], &r.envelope.id.to_bytes());
        // A claim for another due than the record's is not a claim.
        let stale =
            decode_record(r.envelope.id.as_u128(), &b, Some((0x0103, 9)), None).expect("decode");
        assert_eq!(
            stale.state,
            RunState::Scheduled {
                due: Tick::from_millis(0x0102)
            }
        );
    }

    /// Every truncation, every single-byte change and trailing bytes decode
    /// to an error or to some record, never a panic; damage to the framing
    /// is reported.
    #[test]
    fn damaged_records_are_errors_not_panics() {
        let r = record(
            3,
            RunState::Failed {
                error: "boom".into(),
            },
        );
        let id = r.envelope.id.as_u128();
        let (good, _) = encode_record(&r).expect("encode");
        for len in 0..good.len() {
            assert!(
                decode_record(id, &good[..len], None, None).is_err(),
                "truncated to {len} bytes must not decode"
            );
        }
        for at in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                let _ = decode_record(id, &bad, None, None);
            }
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode_record(id, &long, None, None).is_err());
        let mut v2 = good.clone();
        v2[0] = 2;
        let e = decode_record(id, &v2, None, None).expect_err("unknown version");
        assert!(e.to_string().contains("version 2"), "{e}");
        let mut tag = good.clone();
        for t in [1, 9] {
            tag[1] = t;
            assert!(decode_record(id, &tag, None, None).is_err(), "tag {t}");
        }
        assert!(
            decode_record(id + 1, &good, None, None).is_err(),
            "an envelope under another id's key"
        );
    }

    #[test]
    fn an_outcome_overrides_the_stored_state() {
        let r = record(
            4,
            RunState::Scheduled {
                due: Tick::from_millis(5),
            },
        );
        let id = r.envelope.id.as_u128();
        let (bytes, _) = encode_record(&r).expect("encode");
        let outcome = build_outcome(
            &Header {
                state: HeaderState::Failed,
                counts: DeliveryCounts {
                    runs: 9,
                    ..DeliveryCounts::default()
                },
            },
            "gone",
        )
        .expect("outcome");
        let got = decode_record(id, &bytes, Some((5, 7)), Some(&outcome)).expect("decode");
        assert_eq!(
            got.state,
            RunState::Failed {
                error: "gone".into()
            }
        );
        assert_eq!(got.counts.runs, 9);
        // An outcome must be a finished state with no envelope.
        let (scheduled, _) = encode_record(&r).expect("encode");
        assert!(decode_record(id, &bytes, None, Some(&scheduled)).is_err());
        assert!(decode_record(id, &bytes, None, Some(b"\x01")).is_err());
    }

    #[test]
    fn options_that_would_not_read_back_are_refused_at_encode() {
        let mut e = (*small_envelope(1)).clone();
        e.delivery.repeat_every = Some(chrono::TimeDelta::zero());
        assert!(encode_envelope(&e).is_err());
        let mut e = (*small_envelope(1)).clone();
        e.delivery.publish_at = chrono::DateTime::from_timestamp_millis(-1);
        assert!(encode_envelope(&e).is_err());
        let mut e = (*small_envelope(1)).clone();
        e.delivery.segment_query = Some("a >".into());
        assert!(encode_envelope(&e).is_err());
    }
}
