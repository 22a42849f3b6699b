//! The push-job record: a `push_jobs` value (the key is the job's
//! `(message id, run)`, so the record does not repeat it).
//!
//! ```text
//! offset  size  field
//!      0     1  record version (1)
//!      1     1  flags: bit 0 = listed (the audience was walked to its
//!               end), bit 1 = has a cursor; the other bits are 0
//!      2     8  token: the current claim's fencing token (0: never claimed)
//!     10     8  lease_until, ms (0 while never claimed)
//!     18     8  handed: notifications handed out so far
//!     26        cursor: a string, if the flag says so
//! ```
//!
//! Integers are little-endian; a string is its byte length (a LEB128
//! varint) and its UTF-8 bytes. Decoding never panics: damage is a
//! [`RecordError`].

use crate::registry::bytes::{Input, RecordError, put_str};

/// The job record version this build writes and reads.
pub(crate) const JOB_RECORD_VERSION: u8 = 1;

const LISTED: u8 = 1;
const HAS_CURSOR: u8 = 2;

/// A decoded job record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Job {
    /// The current claim's token; 0: never claimed.
    pub(crate) token: u64,
    /// The current claim's end (ms); 0 while never claimed.
    pub(crate) lease_until: u64,
    pub(crate) cursor: Option<String>,
    pub(crate) listed: bool,
    pub(crate) handed: u64,
}

impl Job {
    /// The stored form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let cursor = self.cursor.as_deref();
        let mut out = Vec::with_capacity(28 + cursor.map_or(0, str::len));
        out.push(JOB_RECORD_VERSION);
        let mut flags = 0;
        if self.listed {
            flags |= LISTED;
        }
        if cursor.is_some() {
            flags |= HAS_CURSOR;
        }
        out.push(flags);
        out.extend_from_slice(&self.token.to_le_bytes());
        out.extend_from_slice(&self.lease_until.to_le_bytes());
        out.extend_from_slice(&self.handed.to_le_bytes());
        if let Some(c) = cursor {
            put_str(&mut out, c);
        }
        out
    }

    /// The job from its record.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut input = Input::new(bytes);
        let version = input.u8("record version")?;
        if version != JOB_RECORD_VERSION {
            return Err(RecordError(format!(
                "record version {version}; this build reads version {JOB_RECORD_VERSION}"
            )));
        }
        let flags = input.u8("flags")?;
        if flags & !(LISTED | HAS_CURSOR) != 0 {
            return Err(RecordError(format!("unknown flags {flags:#04x}")));
        }
        let token = input.u64_le("token")?;
        let lease_until = input.u64_le("lease_until")?;
        if token == 0 && lease_until != 0 {
            return Err(RecordError(format!(
                "never claimed (token 0), yet leased until {lease_until}"
            )));
        }
        let handed = input.u64_le("handed")?;
        let cursor = if flags & HAS_CURSOR != 0 {
            Some(input.str("cursor")?.to_owned())
        } else {
            None
        };
        input.end()?;
        Ok(Self {
            token,
            lease_until,
            cursor,
            listed: flags & LISTED != 0,
            handed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Job {
        Job {
            token: 42,
            lease_until: 1_800_000_000_000,
            cursor: Some("device-ü-7".into()),
            listed: true,
            handed: 7_000,
        }
    }

    #[test]
    fn every_field_round_trips() {
        for job in [
            sample(),
            Job::default(),
            Job {
                cursor: Some(String::new()),
                listed: false,
                ..sample()
            },
            Job {
                cursor: None,
                ..sample()
            },
        ] {
            assert_eq!(Job::decode(&job.encode()), Ok(job.clone()), "{job:?}");
        }
    }

    #[test]
    fn the_fixed_fields_sit_where_the_format_says() {
        let b = sample().encode();
        assert_eq!(&b[..2], &[1, LISTED | HAS_CURSOR]);
        assert_eq!(b[2..10], 42u64.to_le_bytes());
        assert_eq!(b[10..18], 1_800_000_000_000u64.to_le_bytes());
        assert_eq!(b[18..26], 7_000u64.to_le_bytes());
        assert_eq!(b[26] as usize, "device-ü-7".len());
        assert_eq!(Job::default().encode().len(), 26);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let good = sample().encode();
        for len in 0..good.len() {
            assert!(Job::decode(&good[..len]).is_err(), "cut to {len}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(Job::decode(&long).is_err(), "a byte too many");
        let mut newer = good.clone();
        newer[0] = 2;
        let e = Job::decode(&newer).unwrap_err().0;
        assert!(e.contains("record version 2"), "{e}");
        let mut flags = good.clone();
        flags[1] |= 0x80;
        assert!(Job::decode(&flags).is_err(), "unknown flag");
        let mut leased = Job::default().encode();
        leased[10] = 1;
        assert!(Job::decode(&leased).is_err(), "a lease without a token");
        let mut utf8 = good;
        let at = utf8.len() - 1;
        utf8[at] = 0xFF;
        assert!(Job::decode(&utf8).is_err(), "cursor not UTF-8");
        // Every single byte changed decodes or is an error, never a panic.
        let good = sample().encode();
        for i in 0..good.len() {
            for b in [0u8, 1, 0x7F, 0x80, 0xFF] {
                let mut v = good.clone();
                v[i] = b;
                let _ = Job::decode(&v);
            }
        }
    }
}
