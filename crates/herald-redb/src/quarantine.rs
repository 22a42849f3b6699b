//! Quarantine: a damaged message moved aside, so one bad record never
//! blocks start-up or a batch.
//!
//! A `quarantine` value keeps what was found, for a human to look at:
//!
//! ```text
//!  4+R  reason, UTF-8
//!  4+H  header bytes as stored (a v1 record's header and error text, for
//!       one that failed to migrate)
//!  rest envelope bytes as stored (empty if there were none)
//! ```
//!
//! Lengths are `u32` little-endian. A quarantined id has no row in any
//! other table; [`Store::get`](herald::Store::get) of it is an error
//! naming the quarantine, and an insert of it is a duplicate.

use herald::MessageId;
use tracing::error;

use crate::header::{Header, State};
use crate::tables::Tables;

/// The parts of a `quarantine` value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    pub(crate) reason: &'a str,
    pub(crate) header: &'a [u8],
    pub(crate) envelope: &'a [u8],
}

/// Encodes a `quarantine` value. Parts over 4 GiB are cut (redb refuses
/// values over 3 GiB anyway).
pub(crate) fn encode(reason: &str, header: &[u8], envelope: &[u8]) -> Vec<u8> {
    let max = u32::MAX as usize;
    let header = &header[..header.len().min(max)];
    let reason = &reason.as_bytes()[..reason.len().min(max)];
    let mut out = Vec::with_capacity(8 + reason.len() + header.len() + envelope.len());
    out.extend_from_slice(&(reason.len() as u32).to_le_bytes());
    out.extend_from_slice(reason);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(envelope);
    out
}

/// Decodes a `quarantine` value.
pub(crate) fn decode(b: &[u8]) -> Result<Entry<'_>, String> {
    let mut at = 0;
    let mut field = |what: &str| -> Result<&[u8], String> {
        let len = b
            .get(at..at + 4)
            .ok_or_else(|| format!("quarantine {what}: no length at {at}"))?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let v = b
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| format!("quarantine {what}: {len} bytes past the end"))?;
        at += 4 + len;
        Ok(v)
    };
    let reason = field("reason")?;
    let header = field("header")?;
    let reason = std::str::from_utf8(reason).map_err(|e| format!("quarantine reason: {e}"))?;
    Ok(Entry {
        reason,
        header,
        envelope: &b[at..],
    })
}

/// Moves every row of message `id` into `quarantine` (in the caller's
/// transaction) and logs it at error level. A `finals` entry is found
/// under the header's due (or the `schedule` entry's); its bytes go into
/// the reason, in hex. Its `finished` entry is found under the finish time
/// of its header or final header (as decoded, or the bytes where it would
/// be); one under a damaged finish time stays, and retention drops it.
pub(crate) fn quarantine(t: &mut Tables<'_>, id: u128, reason: &str) -> Result<(), redb::Error> {
    let header = t.headers.remove(id)?.map(|g| g.value().to_vec());
    let envelope = t.envelopes.remove(id)?.map(|g| g.value().to_vec());
    let scheduled = t.schedule.remove(id)?.map(|g| g.value());
    t.claims.remove(id)?;
    let header = header.unwrap_or_default();
    let mut dues: Vec<u64> = scheduled.into_iter().collect();
    // Its `finished` entry: under the finish time of its header or of its
    // final header.
    let mut finished_at = Vec::new();
    let raw_u64 = |at: usize| {
        header.get(at..at + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    match Header::decode(&header) {
        Ok(Header {
            state: State::Scheduled { due },
            ..
        }) => dues.push(due),
        Ok(h) => finished_at.push(h.finished_at),
        // The bytes as they are, in case only another part is damaged.
        Err(_) => {
            dues.extend(raw_u64(2));
            finished_at.extend(raw_u64(74));
        }
    }
    dues.sort_unstable();
    dues.dedup();
    let mut full = reason.to_owned();
    for due in dues {
        if let Some(f) = t.finals.remove((due, id))? {
            let f = f.value().to_vec();
            if let Ok(h) = Header::decode_final(&f) {
                finished_at.push(h.finished_at);
            }
            let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
            full.push_str(&format!(" (its final header, due {due}: {hex})"));
        }
    }
    for at in finished_at {
        t.finished.remove((at, id))?;
    }
    let value = encode(&full, &header, &envelope.unwrap_or_default());
    t.quarantine.insert(id, value.as_slice())?;
    t.quarantined += 1;
    error!(
        message_id = %MessageId::from_u128(id),
        reason = %full,
        "herald-redb: moved a damaged message to quarantine"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_damage_is_an_error() {
        let b = encode("header: unknown state tag 9 ✗", b"\x02\x09", b"env");
        let e = decode(&b).unwrap();
        assert_eq!(
            e,
            Entry {
                reason: "header: unknown state tag 9 ✗",
                header: b"\x02\x09",
                envelope: b"env"
            }
        );
        let header_end = b.len() - 3;
        for len in 0..header_end {
            assert!(decode(&b[..len]).is_err(), "cut to {len}");
        }
        for at in 0..b.len() {
            let mut bad = b.clone();
            bad[at] ^= 0xFF;
            let _ = decode(&bad);
        }
    }
}
