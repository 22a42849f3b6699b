//! Numbers: the one grammar shared by literals and header values, and exact
//! comparison between integers and floats.

use std::cmp::Ordering;
use std::fmt;

/// A number from a literal or a header value: an `i64` when written without
/// a fraction or exponent and in range, otherwise an `f64`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Number {
    Int(i64),
    Float(f64),
}

/// Length of the longest prefix of `s` that is a number:
/// `[+-]? (digits ('.' digits?)? | '.' digits) ([eE] [+-]? digits)?`.
/// Zero when `s` does not start with one.
pub(crate) fn scan(s: &str) -> usize {
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_end = digits(i);
    let mut mantissa = int_end > i;
    i = int_end;
    if b.get(i) == Some(&b'.') {
        let frac_end = digits(i + 1);
        if mantissa || frac_end > i + 1 {
            mantissa = true;
            i = frac_end;
        }
    }
    if !mantissa {
        return 0;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_end = digits(j);
        if exp_end > j {
            i = exp_end;
        }
    }
    i
}

/// Parses text that [`scan`] accepted whole. Integers out of `i64` range
/// become floats; floats may come out infinite (`1e999`).
fn parse_scanned(text: &str) -> Option<Number> {
    if !text.bytes().any(|c| matches!(c, b'.' | b'e' | b'E'))
        && let Ok(i) = text.parse::<i64>()
    {
        return Some(Number::Int(i));
    }
    text.parse::<f64>().ok().map(Number::Float)
}

/// `s` as a number if all of it is one (no surrounding whitespace).
pub(crate) fn parse(s: &str) -> Option<Number> {
    if s.is_empty() || scan(s) != s.len() {
        return None;
    }
    parse_scanned(s)
}

/// Compares an integer with a float exactly (no rounding of the integer).
/// `None` only for NaN, which [`parse`] never produces.
fn cmp_int_float(i: i64, f: f64) -> Option<Ordering> {
    // 2^63 as f64: every i64 is below it, and -2^63 is i64::MIN.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    // In range and integral, so the cast is exact.
    #[allow(clippy::cast_possible_truncation)]
    let whole_int = whole as i64;
    Some(i.cmp(&whole_int).then_with(|| {
        // Same integer part: the fraction decides.
        if f > whole {
            Ordering::Less
        } else if f < whole {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }))
}

impl Number {
    /// Exact numeric order; integers are never rounded to floats.
    pub(crate) fn compare(self, other: Self) -> Option<Ordering> {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => Some(a.cmp(&b)),
            (Self::Float(a), Self::Float(b)) => a.partial_cmp(&b),
            (Self::Int(a), Self::Float(b)) => cmp_int_float(a, b),
            (Self::Float(a), Self::Int(b)) => cmp_int_float(b, a).map(Ordering::reverse),
        }
    }
}

impl fmt::Display for Number {
    /// Prints a form that [`parse`] reads back to the same value: `Debug`
    /// for floats is the shortest round-tripping text (`1.5`, `1e300`,
    /// `10.0`), never `inf` since literals are finite.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        for ok in [
            "0", "-1", "+1", "1.", ".5", "-.5", "1.5e3", "1E-3", "1.e2", "007",
        ] {
            assert_eq!(scan(ok), ok.len(), "{ok}");
            assert!(parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "-", "+", ".", "e5", "1e", "1e+", " 1", "1 ", "nan", "inf", "0x10", "1..2", "--1",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(scan("12abc"), 2);
        assert_eq!(scan("1e"), 1);
        assert_eq!(scan("1.2.3"), 3);
    }

    #[test]
    fn kinds() {
        assert_eq!(parse("20"), Some(Number::Int(20)));
        assert_eq!(parse("+20"), Some(Number::Int(20)));
        assert_eq!(parse("-9223372036854775808"), Some(Number::Int(i64::MIN)));
        assert_eq!(
            parse("9223372036854775808"),
            Some(Number::Float(9_223_372_036_854_775_808.0))
        );
        assert_eq!(parse("10.0"), Some(Number::Float(10.0)));
        assert_eq!(parse("1e999"), Some(Number::Float(f64::INFINITY)));
    }

    #[test]
    fn exact_mixed_comparison() {
        use Ordering::*;
        let two53 = 9_007_199_254_740_992.0_f64;
        let cases = [
            (9_007_199_254_740_993, two53, Greater),
            (9_007_199_254_740_992, two53, Equal),
            (10, 10.0, Equal),
            (10, 10.5, Less),
            (-10, -10.5, Greater),
            (-10, -9.5, Less),
            (0, -0.0, Equal),
            (i64::MAX, 9_223_372_036_854_775_808.0, Less),
            (i64::MIN, -9_223_372_036_854_775_808.0, Equal),
            (i64::MIN, -1e19, Greater),
            (5, f64::INFINITY, Less),
            (5, f64::NEG_INFINITY, Greater),
        ];
        for (i, f, want) in cases {
            assert_eq!(cmp_int_float(i, f), Some(want), "{i} vs {f}");
            assert_eq!(
                Number::Float(f).compare(Number::Int(i)),
                Some(want.reverse())
            );
        }
        assert_eq!(cmp_int_float(1, f64::NAN), None);
    }

    #[test]
    fn display_round_trips() {
        for x in [
            1.5,
            1e300,
            1e-7,
            10.0,
            -0.0,
            0.1,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let text = Number::Float(x).to_string();
            assert_eq!(parse(&text), Some(Number::Float(x)), "{text}");
        }
        for i in [0, -1, i64::MAX, i64::MIN] {
            assert_eq!(parse(&Number::Int(i).to_string()), Some(Number::Int(i)));
        }
    }
}
