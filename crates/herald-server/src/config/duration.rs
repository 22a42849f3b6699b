//! Durations in settings: `30`, `30s`, `10m`, `24h`, `7d`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration, as a setting: whole seconds, optionally followed by a unit
/// `s`, `m` (60 s), `h` (3600 s) or `d` (86400 s), with or without a
/// space: `30`, `30s`, `10m`, `24h`, `7d`. In the TOML file it may also be
/// an integer (seconds).
///
/// [`Display`](fmt::Display) writes the largest unit that divides it
/// exactly (`7d`, `90m`, `45s`), which parses back to the same duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Secs(pub(crate) Duration);

/// The units, largest first, in seconds.
const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];

/// A duration that does not parse (the text, as given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SecsError(String);

impl fmt::Display for SecsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: expected whole seconds, optionally followed by s, m, h or d \
             (as in 30s, 10m, 7d)",
            self.0
        )
    }
}

impl std::error::Error for SecsError {}

impl FromStr for Secs {
    type Err = SecsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || SecsError(text.to_owned());
        let trimmed = text.trim();
        let digits = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(digits);
        let unit = unit.trim_start();
        let scale = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| unit.eq_ignore_ascii_case(name))
                .map(|&(_, s)| s)
                .ok_or_else(err)?
        };
        let count: u64 = number.parse().map_err(|_| err())?;
        count
            .checked_mul(scale)
            .map(|s| Self(Duration::from_secs(s)))
            .ok_or_else(err)
    }
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        match UNITS
            .iter()
            .find(|&&(_, scale)| s > 0 && s.is_multiple_of(scale))
        {
            Some(&(name, scale)) => write!(f, "{}{name}", s / scale),
            None => write!(f, "{s}s"),
        }
    }
}

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecsVisitor;

        impl Visitor<'_> for SecsVisitor {
            type Value = Secs;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds, or a string such as \"7d\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Secs, E> {
                Ok(Secs(Duration::from_secs(v)))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Secs, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("a duration cannot be negative, got {v}")))
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secs, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(SecsVisitor)
    }
}

impl Serialize for Secs {
    /// As text (`"7d"`), the way `--help` shows it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<u64, SecsError> {
        s.parse::<Secs>().map(|d| d.0.as_secs())
    }

    #[test]
    fn seconds_and_units() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("30"), Ok(30));
        assert_eq!(parse("30s"), Ok(30));
        assert_eq!(parse("10m"), Ok(600));
        assert_eq!(parse("24h"), Ok(86_400));
        assert_eq!(parse(" 7 D "), Ok(604_800), "case and spaces");
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["", "s", "soon", "-1", "1.5h", "1w", "10 mins", "0x10"] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains("invalid duration"), "{bad:?}: {e}");
        }
        assert!(parse(&format!("{}d", u64::MAX)).is_err());
    }

    #[test]
    fn displays_the_largest_exact_unit_and_round_trips() {
        for (s, text) in [
            (0, "0s"),
            (45, "45s"),
            (5400, "90m"),
            (604_800, "7d"),
            (7_200, "2h"),
        ] {
            assert_eq!(Secs(Duration::from_secs(s)).to_string(), text);
            assert_eq!(parse(text), Ok(s));
        }
    }

    #[test]
    fn deserializes_integers_and_strings() {
        #[derive(Deserialize)]
        struct T {
            d: Secs,
        }
        let d = |toml: &str| toml::from_str::<T>(toml).map(|t| t.d.0.as_secs());
        assert_eq!(d("d = 90").unwrap(), 90);
        assert_eq!(d("d = \"7d\"").unwrap(), 604_800);
        assert!(d("d = -1").unwrap_err().to_string().contains("negative"));
        assert!(d("d = \"lots\"").is_err());
    }
}
