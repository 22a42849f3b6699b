//! The primitives of the registry and push-job records: fixed
//! little-endian integers, LEB128 varints for lengths and counts, and
//! length-prefixed UTF-8 strings. Reading checks every length against
//! what is left and never panics: a short, long or malformed record is a
//! [`RecordError`] naming the field.

use std::fmt;

/// Bytes that are not a registry record: what is wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordError(pub(crate) String);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

/// The longest LEB128 encoding of a `u64`.
const MAX_VARINT_LEN: usize = 10;

/// Appends `n` as a LEB128 varint (7 bits a byte, low first).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7F) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends `s` as its byte length (a varint) and its bytes.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A record being read, front to back.
#[derive(Debug)]
pub(crate) struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// The next `n` bytes, for `field`.
    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], RecordError> {
        if n > self.left() {
            return Err(RecordError(format!(
                "cut short in {field}: {n} bytes needed at offset {}, {} left",
                self.at,
                self.left()
            )));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &str) -> Result<u8, RecordError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u64_le(&mut self, field: &str) -> Result<u64, RecordError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, field)?);
        Ok(u64::from_le_bytes(a))
    }

    /// A LEB128 varint in its shortest form.
    pub(crate) fn varint(&mut self, field: &str) -> Result<u64, RecordError> {
        let start = self.at;
        let mut n: u64 = 0;
        for i in 0..MAX_VARINT_LEN {
            let b = self.u8(field)?;
            let bits = u64::from(b & 0x7F);
            let shifted = bits << (7 * i);
            if shifted >> (7 * i) != bits {
                break;
            }
            n |= shifted;
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(RecordError(format!(
                        "{field}: the varint at offset {start} is not in its shortest form"
                    )));
                }
                return Ok(n);
            }
        }
        Err(RecordError(format!(
            "{field}: the varint at offset {start} does not fit in 64 bits"
        )))
    }

    /// A count of items that take at least one byte each: more than the
    /// bytes left is an error (so a damaged count allocates nothing).
    pub(crate) fn count(&mut self, field: &str) -> Result<usize, RecordError> {
        let n = self.varint(field)?;
        match usize::try_from(n) {
            Ok(n) if n <= self.left() => Ok(n),
            _ => Err(RecordError(format!(
                "{field}: a count of {n} with {} bytes left",
                self.left()
            ))),
        }
    }

    /// A length-prefixed UTF-8 string.
    pub(crate) fn str(&mut self, field: &str) -> Result<&'a str, RecordError> {
        let len = self.varint(field)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map_err(|e| RecordError(format!("{field} is not UTF-8: {e}")))
    }

    /// Nothing may follow the last field.
    pub(crate) fn end(self) -> Result<(), RecordError> {
        match self.left() {
            0 => Ok(()),
            n => Err(RecordError(format!(
                "{n} bytes after the end of the record (at offset {})",
                self.at
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_width() {
        for n in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            let mut input = Input::new(&out);
            assert_eq!(input.varint("n"), Ok(n), "{n}");
            assert_eq!(input.end(), Ok(()));
        }
        let mut out = Vec::new();
        put_varint(&mut out, u64::MAX);
        assert_eq!(out.len(), MAX_VARINT_LEN);
    }

    #[test]
    fn malformed_varints_are_errors() {
        let err = |bytes: &[u8]| Input::new(bytes).varint("n").unwrap_err().0;
        assert!(err(&[]).starts_with("cut short in n"));
        assert!(err(&[0x80]).starts_with("cut short in n"));
        assert!(err(&[0x80, 0x00]).contains("shortest form"));
        assert!(err(&[0xFF; 10]).contains("64 bits"));
        assert!(
            err(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02]).contains("64 bits")
        );
    }

    #[test]
    fn strings_and_counts_are_checked_against_what_is_left() {
        let mut out = Vec::new();
        put_str(&mut out, "zoë");
        let mut input = Input::new(&out);
        assert_eq!(input.str("s"), Ok("zoë"));
        assert_eq!(input.end(), Ok(()));
        let e = Input::new(&out[..3]).str("name").unwrap_err().0;
        assert_eq!(e, "cut short in name: 4 bytes needed at offset 1, 2 left");
        let e = Input::new(&[2, 0xC3, 0x28]).str("name").unwrap_err().0;
        assert!(e.starts_with("name is not UTF-8"), "{e}");
        let e = Input::new(&[3, 1, 1]).count("channels").unwrap_err().0;
        assert_eq!(e, "channels: a count of 3 with 2 bytes left");
        let e = Input::new(&[1, 2]).end().unwrap_err().0;
        assert_eq!(e, "2 bytes after the end of the record (at offset 0)");
    }
}
