//! `Retry-After`: delay seconds or an HTTP date (RFC 9110 §10.2.3), read
//! against the injected clock; what APNs and FCM send with a 429 or 503.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime};
use herald_core::Tick;

/// How long a `Retry-After` `value` says to wait at `now`: whole seconds,
/// or an HTTP date (IMF-fixdate, and the obsolete RFC 850 and asctime
/// forms); a date in the past is no wait. `None` when it is neither.
///
/// ```
/// use std::time::Duration;
/// use herald_core::Tick;
/// use herald_http2::retry_after;
///
/// let now = Tick::from_millis(1_445_412_570_000); // 2015-10-21 07:29:30 UTC
/// assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now), Some(Duration::from_secs(30)));
/// assert_eq!(retry_after("soon", now), None);
/// ```
pub fn retry_after(value: &str, now: Tick) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long numbers saturate instead of being ignored.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at_ms = date(value)?;
    let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    Some(Duration::from_millis(
        u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0),
    ))
}

/// An HTTP date as ms since the epoch.
fn date(value: &str) -> Option<i64> {
    if let Ok(d) = DateTime::parse_from_rfc2822(value) {
        return Some(d.timestamp_millis());
    }
    // RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
    // (`Sun Nov  6 08:49:37 1994`).
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
        .map(|d| d.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06T08:49:37Z.
    const AT: u64 = 784_111_777_000;

    #[test]
    fn seconds_and_every_http_date_form() {
        let now = Tick::from_millis(AT - 30_000);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                retry_after(date, now),
                Some(Duration::from_secs(30)),
                "{date}"
            );
        }
        assert_eq!(
            retry_after(
                "Sun, 06 Nov 1994 08:49:37 GMT",
                Tick::from_millis(AT + 5_000)
            ),
            Some(Duration::ZERO),
            "a date in the past: no wait"
        );
        for bad in ["", "-5", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(retry_after(bad, now), None, "{bad:?}");
        }
    }
}
