//! Message ids: 128-bit, time-ordered, printed like a UUID.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use herald_core::Tick;

/// The id of one publish request. Every repetition of a repeating message is
/// delivered under the same id.
///
/// Ids are laid out as UUID version 7: the top 48 bits are the publish time in
/// ms since the Unix epoch and the next 12 count the engine's ids within that
/// millisecond, so one engine's ids sort in the order it made them (which
/// keeps B-tree stores append-only); the other 62 non-fixed bits come from
/// the OS's cryptographically secure random number generator. On the wire an
/// id is the canonical 36-character UUID text in upper case, as Backendless
/// prints its message ids.
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

    /// The canonical text: the 32 hex digits, most significant first,
    /// with dashes after the 8th, 12th, 16th and 20th:
    /// `{:08X}-{:04X}-{:04X}-{:04X}-{:012X}` of the five fields, written by
    /// hand because `core::fmt`'s padded hex cost ~2,900 instructions per
    /// id (44 % of an immediate publish, which returns the id as text).
    fn text(self) -> [u8; 36] {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        // Two digits per byte, then the five groups copied to their places
        // (~30 instructions fewer than a loop over the 36 characters
        // shifting the `u128`).
        let mut digits = [0u8; 32];
        for (pair, byte) in digits.chunks_exact_mut(2).zip(self.0.to_be_bytes()) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xF)];
        }
        let mut text = [b'-'; 36];
        text[..8].copy_from_slice(&digits[..8]);
        text[9..13].copy_from_slice(&digits[8..12]);
        text[14..18].copy_from_slice(&digits[12..16]);
        text[19..23].copy_from_slice(&digits[16..20]);
        text[24..].copy_from_slice(&digits[20..]);
        text
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.text()).map_err(|_| fmt::Error)?)
    }
}

/// The canonical text, as [`Display`](fmt::Display) writes it, without
/// `core::fmt`: `to_string()` through a `Formatter` cost ~450 instructions
/// per id with its allocation, this ~300 (a durable publish, which answers
/// its id as text, is ~7,000).
impl From<MessageId> for String {
    fn from(id: MessageId) -> Self {
        std::str::from_utf8(&id.text())
            .map(Self::from)
            .unwrap_or_default()
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

/// Issues [`MessageId`]s: the top 48 bits are the publish time (so ids
/// sort by millisecond), the next 12 (UUIDv7's `rand_a`) count the ids made
/// within that millisecond, and the other 62 (`rand_b`) come from the OS's
/// cryptographically secure random number generator, so no id tells
/// anything about another (a key allowed to publish on one channel cannot
/// predict, and cancel, another key's next message: 2^62 guesses). What
/// the counter gives away is volume: two ids of the same millisecond tell
/// how many ids the engine made between them.
///
/// Ids from one generator (one engine) strictly increase, in the order
/// they are made (RFC 9562 §6.2, method 1: a counter in `rand_a`). So the
/// store's B-trees are appended to: redb keeps a full rightmost leaf packed
/// and starts a new one for a key above every other, where a key landing
/// inside that leaf splits it evenly and strands half a page (measured:
/// raw redb inserting a commit's rows in id order commits 20 % faster than
/// in random order; `docs/benchmarks.md`). Past 4096 ids in a millisecond
/// the counter carries into the timestamp, and a clock that steps back
/// does not take the ids back: either way an id's time may run ahead of
/// the clock by as much, until the clock catches up.
///
/// # Implementation
///
/// Entropy is read in batches: each thread keeps a 4 KiB buffer filled by
/// one `getrandom` call and takes 8 bytes per id (a system call per 512
/// ids).
#[derive(Debug, Default)]
pub(crate) struct IdGenerator {
    /// The last id's time and counter: `ms << 12 | counter`.
    last: AtomicU64,
}

/// Bytes of entropy per refill.
const POOL: usize = 4096;

/// Random bytes per id (62 bits used of 64).
const PER_ID: usize = 8;

/// Bits of the counter within a millisecond (`rand_a`).
const COUNTER_BITS: u32 = 12;

struct Pool {
    bytes: [u8; POOL],
    at: usize,
}

thread_local! {
    static ENTROPY: std::cell::RefCell<Pool> =
        const { std::cell::RefCell::new(Pool { bytes: [0; POOL], at: POOL }) };
}

/// The OS's random number generator failed (it does not on Linux since
/// 3.17; on other systems, early at boot perhaps).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub(crate) struct NoEntropy(String);

impl IdGenerator {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The next id, stamped with `now` (or just after the last id, if that
    /// is later).
    pub(crate) fn next(&self, now: Tick) -> Result<MessageId, NoEntropy> {
        let mut r = [0u8; PER_ID];
        ENTROPY.with_borrow_mut(|pool| {
            if pool.at + PER_ID > POOL {
                getrandom::fill(&mut pool.bytes).map_err(|e| NoEntropy(e.to_string()))?;
                pool.at = 0;
            }
            r.copy_from_slice(&pool.bytes[pool.at..pool.at + PER_ID]);
            // Used once: a copy of this thread's buffer never hands it out
            // again.
            pool.bytes[pool.at..pool.at + PER_ID].fill(0);
            pool.at += PER_ID;
            Ok::<(), NoEntropy>(())
        })?;
        let floor = (now.as_millis() & 0xFFFF_FFFF_FFFF) << COUNTER_BITS;
        let step = |last: u64| floor.max(last.wrapping_add(1));
        let stamp = match self
            .last
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                Some(step(last))
            }) {
            Ok(last) | Err(last) => step(last),
        };
        let ms = u128::from((stamp >> COUNTER_BITS) & 0xFFFF_FFFF_FFFF);
        let rand_a = u128::from(stamp & ((1 << COUNTER_BITS) - 1));
        let rand_b = u128::from(u64::from_le_bytes(r) & ((1 << 62) - 1));
        // Layout: 48 ms | 4 version (7) | 12 counter | 2 variant (10) | 62 random.
        Ok(MessageId(
            (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// SplitMix64's finaliser: the old id generator's mixer, and a cheap
    /// source of varied test bits.
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn ids_are_unique_and_round_trip() {
        let g = IdGenerator::new();
        let mut seen = HashSet::new();
        for i in 0..100_000u64 {
            let id = g
                .next(Tick::from_millis(1_700_000_000_000 + i / 100))
                .unwrap();
            assert!(seen.insert(id), "duplicate id {id}");
            let text = id.to_string();
            assert_eq!(text.len(), 36);
            assert_eq!(text.as_bytes()[14], b'7', "version nibble");
            assert_eq!(text.parse::<MessageId>(), Ok(id));
        }
    }

    #[test]
    fn display_and_from_are_the_padded_hex_of_the_five_fields() {
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
            assert_eq!(String::from(id), reference(b), "From is Display's text");
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
        let a = g.next(Tick::from_millis(1_000)).unwrap();
        let b = g.next(Tick::from_millis(2_000)).unwrap();
        assert!(a < b);
    }

    /// The attack the security test found: from one id of its own, a
    /// client predicts the engine's next id (the random part was SplitMix64
    /// of a counter, which is invertible). With 62 bits from the OS's
    /// CSPRNG, the same prediction never hits.
    #[test]
    fn the_next_id_cannot_be_predicted_from_one_id() {
        fn unmix(mut z: u64) -> u64 {
            // The inverse of SplitMix64's finaliser.
            z = (z ^ (z >> 31) ^ (z >> 62)).wrapping_mul(0x3196_42B2_D24D_8EC3);
            z = (z ^ (z >> 27) ^ (z >> 54)).wrapping_mul(0x96DE_1B17_3F11_9089);
            z ^ (z >> 30) ^ (z >> 60)
        }
        // The random bits an id carries: rand_b (62).
        let r = |id: MessageId| (id.as_u128() & ((1 << 62) - 1)) as u64;
        let mask = (1u64 << 62) - 1;
        let predict = |id: MessageId| mix(unmix(r(id)).wrapping_add(1)) & mask;
        let g = IdGenerator::new();
        let now = Tick::from_millis(1_800_000_000_000);
        let mut hits = 0;
        let mut prev = g.next(now).unwrap();
        for _ in 0..1_000 {
            let next = g.next(now).unwrap();
            hits += u32::from(predict(prev) == r(next));
            prev = next;
        }
        assert_eq!(
            hits, 0,
            "{hits} of 1000 next ids predicted from the previous one"
        );
    }

    /// Ids from consecutive publishes share nothing beyond the timestamp
    /// and the counter: each random bit is a fair coin, no two ids (or two
    /// differences of consecutive ids) repeat, and the fixed bits are the
    /// UUIDv7 ones.
    #[test]
    fn consecutive_ids_share_no_pattern_beyond_the_timestamp_and_counter() {
        const N: usize = 20_000;
        let g = IdGenerator::new();
        let ms = 1_800_000_000_000u128;
        // 20 ms, 1000 ids in each.
        let ids: Vec<u128> = (0..N)
            .map(|i| {
                g.next(Tick::from_millis((ms + i as u128 / 1000) as u64))
                    .unwrap()
                    .as_u128()
            })
            .collect();
        let random = |b: u128| b & ((1 << 62) - 1);
        let mut ones = [0usize; 62];
        for (i, &b) in ids.iter().enumerate() {
            assert_eq!(b >> 80, ms + i as u128 / 1000, "the 48 bits of ms");
            assert_eq!((b >> 76) & 0xF, 7, "version 7");
            assert_eq!((b >> 64) & 0xFFF, i as u128 % 1000, "the counter");
            assert_eq!((b >> 62) & 0b11, 0b10, "the RFC 4122 variant");
            let r = random(b);
            for (bit, count) in ones.iter_mut().enumerate() {
                *count += ((r >> bit) & 1) as usize;
            }
        }
        // A fair coin: N/2 ± 10 standard deviations (sqrt(N)/2 = 70).
        for (bit, &count) in ones.iter().enumerate() {
            assert!(
                count.abs_diff(N / 2) < 710,
                "random bit {bit} is one {count} times out of {N}"
            );
        }
        let distinct: HashSet<u128> = ids.iter().map(|&b| random(b)).collect();
        assert_eq!(distinct.len(), N);
        let steps: HashSet<u128> = ids
            .windows(2)
            .map(|w| random(w[1]).wrapping_sub(random(w[0])) & ((1 << 62) - 1))
            .collect();
        assert_eq!(steps.len(), N - 1, "no constant or repeating step");
        let xors: HashSet<u128> = ids.windows(2).map(|w| random(w[1] ^ w[0])).collect();
        assert_eq!(xors.len(), N - 1);
    }

    /// One generator's ids strictly increase in the order they are made:
    /// within a millisecond (the counter), past 4096 in one (the counter
    /// carries into the timestamp), with a clock that steps back, and from
    /// several threads at once (each thread's ids in its own order, none
    /// repeated).
    #[test]
    fn ids_increase_in_the_order_they_are_made() {
        let g = IdGenerator::new();
        let t = |ms: u64| Tick::from_millis(1_800_000_000_000 + ms);
        let mut prev = g.next(t(0)).unwrap();
        // 10,000 in one millisecond: the counter carries twice.
        for _ in 0..10_000 {
            let id = g.next(t(0)).unwrap();
            assert!(id > prev, "{id} after {prev}");
            prev = id;
        }
        assert_eq!(
            prev.as_u128() >> 80,
            1_800_000_000_002,
            "10,001 ids: two carries"
        );
        // The clock steps back: the ids do not.
        let back = g.next(t(1)).unwrap();
        assert!(back > prev);
        // The clock passes the ids' time: they follow it again, counter 0.
        let later = g.next(t(10)).unwrap();
        assert_eq!(later.as_u128() >> 80, 1_800_000_000_010);
        assert_eq!((later.as_u128() >> 64) & 0xFFF, 0);

        let g = std::sync::Arc::new(IdGenerator::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || {
                    (0..5_000)
                        .map(|i| g.next(t(i / 1000)).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = HashSet::new();
        for th in threads {
            let ids = th.join().unwrap();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "a thread's ids in order"
            );
            all.extend(ids);
        }
        assert_eq!(all.len(), 20_000, "no id twice");
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
