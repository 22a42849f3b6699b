//! Byte sizes in settings: `1048576`, `8MiB`, `4 KiB`.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A number of bytes, as a setting: a whole number, optionally followed by
/// a binary unit `B`, `KiB` (1024), `MiB` (1024²) or `GiB` (1024³), in any
/// case, with or without a space: `1048576`, `1MiB`, `4 KiB`, `2gib`. In
/// the TOML file it may also be an integer.
///
/// [`Display`](fmt::Display) writes the largest unit that divides it
/// exactly (`8MiB`, `1536KiB`, `1000`), which parses back to the same size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ByteSize(pub(crate) usize);

/// The units, largest first, with the power of two each stands for.
const UNITS: [(&str, u32); 4] = [("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0)];

/// A byte size that does not parse (the text, as given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ByteSizeError(String);

impl fmt::Display for ByteSizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid byte size {:?}: expected a whole number of bytes, optionally followed by \
             B, KiB, MiB or GiB (as in 8MiB)",
            self.0
        )
    }
}

impl std::error::Error for ByteSizeError {}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ByteSizeError(text.to_owned());
        let trimmed = text.trim();
        let digits = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(digits);
        let unit = unit.trim_start();
        let shift = if unit.is_empty() {
            0
        } else {
            UNITS
                .iter()
                .find(|(name, _)| unit.eq_ignore_ascii_case(name))
                .map(|&(_, shift)| shift)
                .ok_or_else(err)?
        };
        let count: usize = number.parse().map_err(|_| err())?;
        count.checked_mul(1 << shift).map(Self).ok_or_else(err)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        match UNITS
            .iter()
            .find(|&&(_, shift)| shift > 0 && n > 0 && n.is_multiple_of(1 << shift))
        {
            Some(&(name, shift)) => write!(f, "{}{name}", n >> shift),
            None => write!(f, "{n}"),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ByteSizeVisitor;

        impl Visitor<'_> for ByteSizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes, or a string such as \"8MiB\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                usize::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("{v} bytes is too large")))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("a byte size cannot be negative, got {v}")))
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

impl Serialize for ByteSize {
    /// As text (`"8MiB"`), the way `--help` shows it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<usize, ByteSizeError> {
        s.parse::<ByteSize>().map(|b| b.0)
    }

    #[test]
    fn plain_counts_and_units() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("1048576"), Ok(1 << 20));
        assert_eq!(parse("17B"), Ok(17));
        assert_eq!(parse("4KiB"), Ok(4096));
        assert_eq!(parse("8MiB"), Ok(8 << 20));
        assert_eq!(parse("2GiB"), Ok(2 << 30));
        assert_eq!(parse(" 4 kib "), Ok(4096), "case and spaces");
        assert_eq!(parse("3MIB"), Ok(3 << 20));
    }

    #[test]
    fn rejects_what_is_not_a_size() {
        for bad in [
            "", " ", "MiB", "lots", "-1", "1.5MiB", "4KB", "4k", "4 Ki B", "1_000", "0x10",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains("invalid byte size"), "{bad:?}: {e}");
        }
        let too_big = format!("{}GiB", usize::MAX);
        assert!(parse(&too_big).is_err());
        assert!(parse(&format!("{}", u128::from(u64::MAX) + 1)).is_err());
    }

    #[test]
    fn displays_the_largest_exact_unit_and_round_trips() {
        let cases = [
            (0, "0"),
            (1000, "1000"),
            (1024, "1KiB"),
            (1536, "1536"),
            (1536 * 1024, "1536KiB"),
            (1 << 20, "1MiB"),
            (8 << 20, "8MiB"),
            (3 << 30, "3GiB"),
        ];
        for (n, text) in cases {
            assert_eq!(ByteSize(n).to_string(), text);
            assert_eq!(parse(text), Ok(n));
        }
    }

    #[test]
    fn deserializes_integers_and_strings() {
        #[derive(Deserialize)]
        struct T {
            size: ByteSize,
        }
        let size = |toml: &str| toml::from_str::<T>(toml).map(|t| t.size.0);
        assert_eq!(size("size = 2048").unwrap(), 2048);
        assert_eq!(size("size = \"4MiB\"").unwrap(), 4 << 20);
        let e = size("size = -1").unwrap_err().to_string();
        assert!(e.contains("negative"), "{e}");
        let e = size("size = \"lots\"").unwrap_err().to_string();
        assert!(e.contains("invalid byte size"), "{e}");
        assert!(size("size = 1.5").is_err());
    }
}
