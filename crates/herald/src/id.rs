//! Message ids: 128-bit, time-ordered, printed like a UUID.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use herald_core::Tick;

/// The id of one publish request. Every repetition of a repeating message is
/// delivered under the same id.
///
/// Ids are laid out as UUID version 7: the top 48 bits are the publish time in
/// ms since the Unix epoch, so ids sort roughly by creation time (which keeps
/// B-tree stores append-mostly); the rest is random per engine and unique
/// within it. On the wire an id is the canonical 36-character UUID text in
/// upper case, as Backendless prints its message ids.
///
/// # Examples
///
/// ```
/// use herald::MessageId;
///
/// let id: MessageId = "0190B2E4-5A1C-7D3E-8F00-1234567890AB".parse()?;
/// assert_eq!(id.to_string(), "0190B2E4-5A1C-7D3E-8F00-1234567890AB");
/// assert_eq!(id, "0190b2e4-5a1c-7d3e-8f00-1234567890ab".parse()?);
/// assert!("not-an-id".parse::<MessageId>().is_err());
/// # Ok::<(), herald::ParseIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(u128);

impl MessageId {
    /// The id with the given 128 bits.
    pub const fn from_u128(bits: u128) -> Self {
        Self(bits)
    }

    /// The id's 128 bits.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The id's 16 bytes, big-endian (so byte order is time order).
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The id from its 16 big-endian bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(bytes))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The 32 hex digits, most significant first, with dashes after the
        // 8th, 12th, 16th and 20th: `{:08X}-{:04X}-{:04X}-{:04X}-{:012X}` of
        // the five fields, written by hand because `core::fmt`'s padded hex
        // cost ~2,900 instructions per id (44 % of an immediate publish,
        // which returns the id as text).
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut text = [b'-'; 36];
        let mut bits = self.0;
        for i in (0..36).rev() {
            if !matches!(i, 8 | 13 | 18 | 23) {
                text[i] = HEX[(bits & 0xF) as usize];
                bits >>= 4;
            }
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

/// A string that is not a message id (the canonical 8-4-4-4-12 hex form).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a message id: expected 8-4-4-4-12 hex digits")]
pub struct ParseIdError(());

impl FromStr for MessageId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 36 {
            return Err(ParseIdError(()));
        }
        let mut bits: u128 = 0;
        for (i, &c) in bytes.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return Err(ParseIdError(()));
                }
                continue;
            }
            let digit = (c as char).to_digit(16).ok_or(ParseIdError(()))?;
            bits = (bits << 4) | u128::from(digit);
        }
        Ok(Self(bits))
    }
}

impl serde::Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Issues [`MessageId`]s: unique within one generator, random across
/// generators (so two nodes do not collide), time-ordered by their first
/// 48 bits.
#[derive(Debug)]
pub(crate) struct IdGenerator {
    seed: u64,
    salt: u16,
    counter: AtomicU64,
}

impl IdGenerator {
    pub(crate) fn new() -> Self {
        let state = RandomState::new();
        Self {
            seed: state.hash_one(0x5EED_u64),
            salt: state.hash_one(0x5A17_u64) as u16,
            counter: AtomicU64::new(0),
        }
    }

    /// The next id, stamped with `now`.
    pub(crate) fn next(&self, now: Tick) -> MessageId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // A bijection of the counter (SplitMix64's finaliser over a seeded
        // sum), so no two ids from this generator share their random part.
        let r = mix(n.wrapping_add(self.seed));
        let ms = u128::from(now.as_millis() & 0xFFFF_FFFF_FFFF);
        let rand_a = u128::from(self.salt & 0x0FFF);
        // Layout: 48 ms | 4 version (7) | 12 rand_a | 2 variant (10) | 62 rand_b.
        // The 64 bits of `r` go to rand_b (62) and the top of rand_a (2).
        let rand_a = (rand_a & 0x3FF) | (u128::from(r >> 62) << 10);
        let rand_b = u128::from(r & ((1 << 62) - 1));
        MessageId((ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_round_trip() {
        let g = IdGenerator::new();
        let mut seen = HashSet::new();
        for i in 0..100_000u64 {
            let id = g.next(Tick::from_millis(1_700_000_000_000 + i / 100));
            assert!(seen.insert(id), "duplicate id {id}");
            let text = id.to_string();
            assert_eq!(text.len(), 36);
            assert_eq!(text.as_bytes()[14], b'7', "version nibble");
            assert_eq!(text.parse::<MessageId>(), Ok(id));
        }
    }

    #[test]
    fn display_is_the_padded_hex_of_the_five_fields() {
        let reference = |b: u128| {
            format!(
                "{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
                (b >> 96) as u32,
                (b >> 80) as u16,
                (b >> 64) as u16,
                (b >> 48) as u16,
                b & 0xFFFF_FFFF_FFFF
            )
        };
        let mut cases = vec![
            0,
            u128::MAX,
            1,
            1 << 127,
            0x0190_B2E4_5A1C_7D3E_8F00_1234_5678_90AB,
        ];
        for i in 0..10_000_u64 {
            cases.push(u128::from(mix(2 * i)) << 64 | u128::from(mix(2 * i + 1)));
        }
        for b in cases {
            let id = MessageId::from_u128(b);
            assert_eq!(id.to_string(), reference(b));
            assert_eq!(
                format!("{id:>40}"),
                reference(b),
                "outer width ignored, as before"
            );
            assert_eq!(format!("{id:?}"), format!("MessageId({})", reference(b)));
        }
    }

    #[test]
    fn ids_sort_by_time() {
        let g = IdGenerator::new();
        let a = g.next(Tick::from_millis(1_000));
        let b = g.next(Tick::from_millis(2_000));
        assert!(a < b);
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "0190B2E4-5A1C-7D3E-8F00-1234567890A",
            "0190B2E4-5A1C-7D3E-8F00-1234567890ABC",
            "0190B2E4+5A1C-7D3E-8F00-1234567890AB",
            "0190B2E4-5A1C-7D3E-8F00-1234567890AG",
            "ééééééééééééééééé-é",
        ] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad:?}");
        }
    }
}
