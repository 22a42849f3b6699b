//! Publish-time validation that needs the clock, and the recurrence rule a
//! message's options describe.

use chrono::{DateTime, Utc};
use herald_core::{Recurrence, RecurrenceError, Tick};

use crate::{DeliveryOptions, Error};

/// The longest channel name, in bytes.
pub(crate) const MAX_CHANNEL_LEN: usize = 255;

/// How far in the past `publishAt` may be (clock skew) and still publish now.
pub(crate) const PAST_TOLERANCE_MS: u64 = 1_000;

/// What a valid publish will do.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The first run's due time; `None` for a one-off due now.
    pub(crate) first: Option<Tick>,
}

pub(crate) fn check_channel(channel: &str) -> Result<(), Error> {
    if channel.is_empty() || channel.len() > MAX_CHANNEL_LEN || channel.contains('/') {
        return Err(Error::InvalidChannel);
    }
    Ok(())
}

fn tick_of(t: DateTime<Utc>, err: fn() -> Error) -> Result<Tick, Error> {
    u64::try_from(t.timestamp_millis())
        .map(Tick::from_millis)
        .map_err(|_| err())
}

/// The repetition rule of `delivery`, if it repeats.
pub(crate) fn recurrence_of(delivery: &DeliveryOptions) -> Result<Option<Recurrence>, Error> {
    let expires = delivery
        .repeat_expires_at
        .map(|t| tick_of(t, || Error::InvalidRepeatExpiresAt))
        .transpose()?;
    if let Some(cron) = &delivery.repeat_cron {
        if delivery.repeat_every.is_some() {
            return Err(Error::InvalidRepeatEvery);
        }
        let tz = match &delivery.time_zone {
            None => chrono_tz::UTC,
            Some(name) => name
                .parse::<chrono_tz::Tz>()
                .map_err(|_| Error::InvalidCron {
                    reason: format!("unknown time zone `{name}`"),
                })?,
        };
        return Recurrence::cron(cron, tz, expires)
            .map(Some)
            .map_err(|e| Error::InvalidCron {
                reason: e.to_string(),
            });
    }
    if let Some(every) = delivery.repeat_every {
        let secs = every.num_seconds();
        if secs < 1 || every.subsec_nanos() != 0 || secs as u64 > crate::options::MAX_REPEAT_SECONDS
        {
            return Err(Error::InvalidRepeatEvery);
        }
        return Recurrence::every(secs as u64 * 1_000, expires)
            .map(Some)
            .map_err(|_: RecurrenceError| Error::InvalidRepeatEvery);
    }
    Ok(None)
}

/// Checks `delivery` against the clock and works out the first run.
pub(crate) fn plan(delivery: &DeliveryOptions, now: Tick) -> Result<Plan, Error> {
    let publish_at = delivery
        .publish_at
        .map(|t| tick_of(t, || Error::InvalidPublishAt))
        .transpose()?;
    if publish_at.is_some_and(|p| p.saturating_add_millis(PAST_TOLERANCE_MS) < now) {
        return Err(Error::InvalidPublishAt);
    }
    if let Some(exp) = delivery.repeat_expires_at {
        let exp = tick_of(exp, || Error::InvalidRepeatExpiresAt)?;
        if exp < now || publish_at.is_some_and(|p| exp < p) {
            return Err(Error::InvalidRepeatExpiresAt);
        }
    }
    if let Some(tz) = &delivery.time_zone
        && tz.parse::<chrono_tz::Tz>().is_err()
    {
        return Err(Error::InvalidCron {
            reason: format!("unknown time zone `{tz}`"),
        });
    }
    let start = publish_at.map_or(now, |p| p.max(now));
    match recurrence_of(delivery)? {
        None if start <= now => Ok(Plan { first: None }),
        None => Ok(Plan { first: Some(start) }),
        Some(rule @ Recurrence::Cron { .. }) => {
            // The first occurrence at or after the start.
            let first = rule
                .next_after(start.saturating_sub_millis(1))
                .ok_or_else(|| Error::InvalidCron {
                    reason: "the rule has no run after the publish time (before it expires)".into(),
                })?;
            Ok(Plan { first: Some(first) })
        }
        Some(_) => Ok(Plan { first: Some(start) }),
    }
}
