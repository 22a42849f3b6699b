//! The header codec: the small, mutable part of a message (a `headers`
//! value, and a `finals` value).
//!
//! ```text
//! offset  size  field
//!      0     1  header version (2)
//!      1     1  state: 0 Scheduled, 2 Published, 3 Failed, 4 Cancelled (1 unused)
//!      2     8  due, ms (Scheduled; else 0)
//!     10     8  token (0: none; only a Cancelled header has one: the claim
//!               a cancel interrupted, whose completion still counts)
//!     18    56  7 counters, `DeliveryCounts::to_array` order
//!     74     8  finished_at, ms (finished states; Scheduled: 0): when the
//!               message finished, or, if push notifications were still
//!               pending then, when the last of them got its outcome
//!     82     4  E = error length (0: no error)
//!     86     E  error text, UTF-8
//! ```
//!
//! Little-endian. Decoding checks the length, the version, the state tag,
//! that `due`, `token` and `finished_at` are 0 where the state has none,
//! and UTF-8, and never panics: damage is a [`HeaderError`]. A header has
//! no checksum (redb checksums its pages), so a changed counter or due
//! still decodes.

use std::fmt;

use herald::DeliveryCounts;

/// The header version this build writes and reads.
pub(crate) const HEADER_VERSION: u8 = 2;

/// Bytes before the error text.
pub(crate) const FIXED: usize = 86;

/// Where `finished_at` is.
const FINISHED_AT: usize = 74;

/// Where the error length is.
const ERROR_LEN: usize = 82;

const SCHEDULED: u8 = 0;
const PUBLISHED: u8 = 2;
const FAILED: u8 = 3;
const CANCELLED: u8 = 4;

/// A message's state as its header stores it: `Firing` is a `Scheduled`
/// header with a `claims` entry (see [`crate::read::run_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Scheduled { due: u64 },
    Published,
    Failed,
    Cancelled,
}

impl State {
    /// A state no run follows (what a `finals` value must hold is
    /// `Published` or `Failed`).
    pub(crate) fn is_finished(self) -> bool {
        !matches!(self, Self::Scheduled { .. })
    }
}

/// A decoded header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) state: State,
    /// The claim a cancel interrupted (0: none); only on `Cancelled`.
    pub(crate) token: u64,
    pub(crate) counts: DeliveryCounts,
    /// When it became final (ms on the store's clock); 0 while scheduled.
    pub(crate) finished_at: u64,
    pub(crate) error: Option<String>,
}

/// Bytes that are not a header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeaderError(String);

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "header: {}", self.0)
    }
}

impl std::error::Error for HeaderError {}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Header {
    /// A new message's header: scheduled at `due`, nothing counted.
    pub(crate) fn scheduled(due: u64) -> Self {
        Self {
            state: State::Scheduled { due },
            token: 0,
            counts: DeliveryCounts::default(),
            finished_at: 0,
            error: None,
        }
    }

    /// Whether the header is final: finished, with no push notification
    /// pending (what retention may purge, `finished_at` after, unless a
    /// push job of the message is open: see `Tables::has_push_job`).
    pub(crate) fn is_final(&self) -> bool {
        self.state.is_finished() && self.counts.push_pending() == 0
    }

    /// The stored form. An error text over 4 GiB is cut (at a character
    /// boundary) to fit its `u32` length; redb refuses values over 3 GiB
    /// anyway.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let error = self
            .error
            .as_deref()
            .map_or("", |e| cut(e, u32::MAX as usize));
        let mut out = Vec::with_capacity(FIXED + error.len());
        let (tag, due) = match self.state {
            State::Scheduled { due } => (SCHEDULED, due),
            State::Published => (PUBLISHED, 0),
            State::Failed => (FAILED, 0),
            State::Cancelled => (CANCELLED, 0),
        };
        let token = if self.state == State::Cancelled {
            self.token
        } else {
            0
        };
        out.push(HEADER_VERSION);
        out.push(tag);
        out.extend_from_slice(&due.to_le_bytes());
        out.extend_from_slice(&token.to_le_bytes());
        for n in self.counts.to_array() {
            out.extend_from_slice(&n.to_le_bytes());
        }
        let finished_at = if self.state.is_finished() {
            self.finished_at
        } else {
            0
        };
        out.extend_from_slice(&finished_at.to_le_bytes());
        out.extend_from_slice(&(error.len() as u32).to_le_bytes());
        out.extend_from_slice(error.as_bytes());
        out
    }

    /// Decodes a stored header.
    pub(crate) fn decode(b: &[u8]) -> Result<Self, HeaderError> {
        if b.len() < FIXED {
            return Err(HeaderError(format!(
                "{} bytes, shorter than the {FIXED} fixed ones",
                b.len()
            )));
        }
        if b[0] != HEADER_VERSION {
            return Err(HeaderError(format!(
                "header version {}, this build reads version {HEADER_VERSION}",
                b[0]
            )));
        }
        let due = u64_at(b, 2);
        let token = u64_at(b, 10);
        let state = match b[1] {
            SCHEDULED => State::Scheduled { due },
            PUBLISHED => State::Published,
            FAILED => State::Failed,
            CANCELLED => State::Cancelled,
            other => return Err(HeaderError(format!("unknown state tag {other}"))),
        };
        if state.is_finished() && due != 0 {
            return Err(HeaderError(format!("a due time ({due}) on {state:?}")));
        }
        if state != State::Cancelled && token != 0 {
            return Err(HeaderError(format!("a token ({token}) on {state:?}")));
        }
        let mut counts = [0u64; 7];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = u64_at(b, 18 + 8 * i);
        }
        let finished_at = u64_at(b, FINISHED_AT);
        if !state.is_finished() && finished_at != 0 {
            return Err(HeaderError(format!(
                "a finish time ({finished_at}) on {state:?}"
            )));
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&b[ERROR_LEN..FIXED]);
        let len = u32::from_le_bytes(len) as usize;
        if b.len() - FIXED != len {
            return Err(HeaderError(format!(
                "an error text of {len} bytes in {} bytes after the fixed part",
                b.len() - FIXED
            )));
        }
        let error = std::str::from_utf8(&b[FIXED..])
            .map_err(|e| HeaderError(format!("error text: {e}")))?;
        Ok(Self {
            state,
            token,
            counts: DeliveryCounts::from_array(counts),
            finished_at,
            error: (!error.is_empty()).then(|| error.to_owned()),
        })
    }

    /// Decodes a `finals` value: a header that must hold `Published` or
    /// `Failed`.
    pub(crate) fn decode_final(b: &[u8]) -> Result<Self, HeaderError> {
        let h = Self::decode(b)?;
        match h.state {
            State::Published | State::Failed => Ok(h),
            other => Err(HeaderError(format!(
                "a final header must be Published or Failed, not {other:?}"
            ))),
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(state: State, error: Option<&str>) -> Header {
        Header {
            state,
            token: if state == State::Cancelled { 77 } else { 0 },
            counts: DeliveryCounts::from_array([1, 2, 3, 4, 5, 6, u64::MAX]),
            finished_at: if state.is_finished() { 0x0F0E } else { 0 },
            error: error.map(str::to_owned),
        }
    }

    fn states() -> [State; 4] {
        [
            State::Scheduled { due: 0x0102 },
            State::Published,
            State::Failed,
            State::Cancelled,
        ]
    }

    #[test]
    fn every_state_round_trips() {
        for s in states() {
            for e in [None, Some("nö ✗")] {
                let h = sample(s, e);
                let b = h.encode();
                assert_eq!(b[0], HEADER_VERSION);
                assert_eq!(Header::decode(&b), Ok(h));
            }
        }
        // No token except on Cancelled, no finish time on Scheduled: they
        // are not written.
        let mut h = sample(State::Published, None);
        h.token = 9;
        assert_eq!(Header::decode(&h.encode()).unwrap().token, 0);
        let mut h = sample(State::Scheduled { due: 5 }, None);
        h.finished_at = 9;
        assert_eq!(Header::decode(&h.encode()).unwrap().finished_at, 0);
    }

    #[test]
    fn the_fields_sit_where_the_format_says() {
        let mut h = sample(State::Scheduled { due: 0x0102 }, Some("é"));
        let b = h.encode();
        assert_eq!(&b[..2], &[2, SCHEDULED]);
        assert_eq!(u64_at(&b, 2), 0x0102);
        assert_eq!(u64_at(&b, 10), 0, "no token");
        assert_eq!(u64_at(&b, 18), 1, "runs first");
        assert_eq!(u64_at(&b, 18 + 6 * 8), u64::MAX, "push_queued last");
        assert_eq!(u64_at(&b, 74), 0, "no finish time");
        assert_eq!(&b[82..86], &[2, 0, 0, 0]);
        assert_eq!(&b[86..], "é".as_bytes());
        h.state = State::Cancelled;
        h.token = 0x0A0B;
        h.finished_at = 0x0C0D;
        let b = h.encode();
        assert_eq!(
            (b[1], u64_at(&b, 2), u64_at(&b, 10), u64_at(&b, 74)),
            (CANCELLED, 0, 0x0A0B, 0x0C0D)
        );
    }

    #[test]
    fn finals_hold_finished_states_only() {
        for s in states() {
            let b = sample(s, None).encode();
            assert_eq!(
                Header::decode_final(&b).is_ok(),
                matches!(s, State::Published | State::Failed),
                "{s:?}"
            );
        }
    }

    /// Every truncation and every trailing byte is an error; every
    /// single-byte change is an error or some header, never a panic, and
    /// a change to the framing (the version, an unknown state tag, a due or
    /// a token where the state has none, the error length) is an error.
    #[test]
    fn damage_is_an_error_not_a_panic() {
        for s in states() {
            let good = sample(s, Some("boom ✗")).encode();
            for len in 0..good.len() {
                assert!(Header::decode(&good[..len]).is_err(), "{s:?} cut to {len}");
            }
            let mut long = good.clone();
            long.push(b'x');
            assert!(Header::decode(&long).is_err());
            for at in 0..good.len() {
                for flip in [0x01u8, 0x80, 0xFF] {
                    let mut bad = good.clone();
                    bad[at] ^= flip;
                    let got = Header::decode(&bad);
                    let framing = at == 0
                        || (at == 1 && ![0, 2, 3, 4].contains(&bad[1]))
                        || (82..86).contains(&at)
                        || (s.is_finished() && (2..10).contains(&at))
                        || (s != State::Cancelled && (10..18).contains(&at))
                        || (!s.is_finished() && (74..82).contains(&at));
                    if framing {
                        assert!(got.is_err(), "{s:?}: byte {at} ^ {flip:#x} decoded");
                    }
                }
            }
        }
        let e = Header::decode(&[9; FIXED]).unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
    }

    #[test]
    fn an_empty_error_text_is_no_error() {
        let h = sample(State::Failed, Some(""));
        assert_eq!(Header::decode(&h.encode()).unwrap().error, None);
        assert_eq!(cut("aé", 2), "a");
    }
}
