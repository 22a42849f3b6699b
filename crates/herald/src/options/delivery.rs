//! `DeliveryOptions`: when and how a message is delivered.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::{Fields, PublishPolicy, PushBroadcast};
use crate::error::shown;
use crate::{Error, limits};

/// When and how a message is delivered.
///
/// All fields are optional; the default publishes once, now, to pub/sub.
/// These are the options as given; [`DeliveryPlan::new`](crate::DeliveryPlan::new)
/// checks how they fit together and parses the cron rule and the segment
/// query once.
///
/// # Examples
///
/// ```
/// use herald::{DeliveryOptions, PublishPolicy};
///
/// let opts = DeliveryOptions::from_json(&serde_json::json!({
///     "publishAt": 1_900_000_000_000u64,   // epoch ms
///     "repeatEvery": 60,                   // seconds
///     "publishPolicy": "BOTH",
///     "pushBroadcast": "FOR_IOS|FOR_ANDROID",
/// }))?;
/// assert_eq!(opts.publish_at.unwrap().timestamp_millis(), 1_900_000_000_000);
/// assert_eq!(opts.repeat_every.unwrap().num_seconds(), 60);
/// assert_eq!(opts.publish_policy, PublishPolicy::Both);
///
/// let err = DeliveryOptions::from_json(&serde_json::json!({ "repeatEvery": 1.5 })).unwrap_err();
/// assert_eq!(err.code(), 5008);
/// # Ok::<(), herald::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// `publishPolicy`: pub/sub, push or both; pub/sub when absent.
    pub publish_policy: PublishPolicy,
    /// `pushBroadcast`: which OSes a push goes to.
    pub push_broadcast: Option<PushBroadcast>,
    /// `pushSinglecast`: push only to these device ids.
    pub push_singlecast: Vec<String>,
    /// `segmentQuery`: a where-clause over device registrations (selector
    /// grammar).
    pub segment_query: Option<String>,
    /// `publishAt`: deliver at this time (ms precision) instead of now.
    pub publish_at: Option<DateTime<Utc>>,
    /// `repeatEvery`: repeat with this period (whole seconds, at least 1).
    pub repeat_every: Option<TimeDelta>,
    /// `repeatExpiresAt`: the last instant a repetition may happen at.
    pub repeat_expires_at: Option<DateTime<Utc>>,
    /// `repeatCron` (Herald extension): repeat on a cron schedule (6 or 7
    /// fields, seconds first). Exclusive with `repeat_every`.
    pub repeat_cron: Option<String>,
    /// `timeZone` (Herald extension): the IANA zone `repeat_cron` runs in;
    /// UTC when absent.
    pub time_zone: Option<String>,
    /// `pushTimeToLive` (Herald extension): seconds a push notification
    /// stays worth sending after its run (default
    /// [`DEFAULT_PUSH_TTL_SECONDS`](crate::limits::DEFAULT_PUSH_TTL_SECONDS)).
    pub push_time_to_live: Option<u32>,
    /// `pushCollapseKey` (Herald extension): APNs `apns-collapse-id` and
    /// FCM `android.collapse_key`.
    pub push_collapse_key: Option<String>,
    /// `pushThrottlePerMinute` (Herald extension): send this message's
    /// notifications at most this many per minute.
    pub push_throttle_per_minute: Option<u32>,
}

impl DeliveryOptions {
    /// Decodes the delivery options from a JSON object (the flat request body:
    /// other keys are ignored). `null` and absent fields are unset.
    ///
    /// Lenient where Backendless clients differ: `publishPolicy` as a name
    /// (any case) or ordinal (0 = PUSH, 1 = PUBSUB, 2 = BOTH), or the legacy
    /// `pushPolicy` (`ONLY`, `ALSO`); `pushBroadcast` as a mask or tokens;
    /// `pushSinglecast` as a list or one id; integral floats for numbers.
    ///
    /// # Errors
    ///
    /// The field's Backendless code: 5003 (`publishAt` not a number in
    /// 0 ..= [`MAX_EPOCH_MS`](crate::limits::MAX_EPOCH_MS)), 5007
    /// (`repeatExpiresAt` likewise), 5008 (`repeatEvery` not an integer in
    /// 1 ..= [`MAX_REPEAT_SECONDS`](crate::limits::MAX_REPEAT_SECONDS)),
    /// 5009 (`repeatCron` or `timeZone` not a string), 5011
    /// (`publishPolicy`, `pushBroadcast`, `pushSinglecast` malformed), 5013
    /// (`segmentQuery` not a string). Rules between fields, the cron and
    /// segment-query syntax and the checks that need the current time are
    /// the [`DeliveryPlan`](crate::DeliveryPlan)'s.
    pub fn from_json(body: &Value) -> Result<Self, Error> {
        Self::from_fields(&Fields::of(body))
    }

    pub(crate) fn from_fields(fields: &Fields<'_>) -> Result<Self, Error> {
        let publish_policy = match (fields.get("publishPolicy")?, fields.get("pushPolicy")?) {
            (Some(v), _) => PublishPolicy::from_json(&v)?,
            (None, Some(v)) => match v.as_str().map(|s| s.trim().to_ascii_uppercase()) {
                Some(s) if s == "ONLY" => PublishPolicy::Push,
                Some(s) if s == "ALSO" => PublishPolicy::Both,
                _ => {
                    return Err(Error::InvalidPolicy {
                        reason: format!("pushPolicy is ONLY or ALSO, not {}.", shown(&v)),
                    });
                }
            },
            (None, None) => PublishPolicy::Pubsub,
        };
        let push_broadcast = fields
            .get("pushBroadcast")?
            .map(|v| PushBroadcast::from_json(&v))
            .transpose()?;
        let singlecast_err = |v: &Value| Error::InvalidPolicy {
            reason: format!(
                "pushSinglecast is a device id or a list of device ids, not {}.",
                shown(v)
            ),
        };
        let push_singlecast = match fields.get("pushSinglecast")?.as_deref() {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| singlecast_err(v))
                })
                .collect::<Result<_, _>>()?,
            Some(v) => return Err(singlecast_err(v)),
        };
        let segment_query = match fields.get("segmentQuery")?.as_deref() {
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                return Err(Error::InvalidOptions {
                    field: "segmentQuery",
                    reason: format!("segmentQuery is a string, not {}.", shown(v)),
                });
            }
        };
        let publish_at = fields
            .get("publishAt")?
            .map(|v| epoch_ms(&v, "publishAt", |reason| Error::InvalidPublishAt { reason }))
            .transpose()?;
        let repeat_expires_at = fields
            .get("repeatExpiresAt")?
            .map(|v| {
                epoch_ms(&v, "repeatExpiresAt", |reason| {
                    Error::InvalidRepeatExpiresAt { reason }
                })
            })
            .transpose()?;
        let repeat_every = fields
            .get("repeatEvery")?
            .map(|v| {
                whole_number(&v)
                    .ok_or_else(|| Error::InvalidRepeatEvery {
                        reason: format!(
                            "repeatEvery is whole seconds from 1 to {}, not {}.",
                            limits::MAX_REPEAT_SECONDS,
                            shown(&v)
                        ),
                    })
                    .and_then(limits::repeat_every_of_secs)
            })
            .transpose()?;
        let cron_text = |k: &'static str| match fields.get(k)?.as_deref() {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(Error::InvalidCron {
                reason: format!("{k} is a string, not {}.", shown(v)),
            }),
        };
        let push_time_to_live = fields
            .get("pushTimeToLive")?
            .map(|v| {
                whole_number(&v)
                    .filter(|&n| n <= u64::from(limits::MAX_PUSH_TTL_SECONDS))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| Error::InvalidOptions {
                        field: "pushTimeToLive",
                        reason: format!(
                            "pushTimeToLive is whole seconds from 0 to {}, not {}.",
                            limits::MAX_PUSH_TTL_SECONDS,
                            shown(&v)
                        ),
                    })
            })
            .transpose()?;
        let push_collapse_key = match fields.get("pushCollapseKey")?.as_deref() {
            None => None,
            Some(Value::String(s)) if limits::is_collapse_key(s) => Some(s.clone()),
            Some(v) => {
                return Err(Error::InvalidOptions {
                    field: "pushCollapseKey",
                    reason: format!(
                        "pushCollapseKey is 1 to {} bytes of printable ASCII, not {}.",
                        limits::MAX_COLLAPSE_KEY_LEN,
                        shown(v)
                    ),
                });
            }
        };
        let push_throttle_per_minute = fields
            .get("pushThrottlePerMinute")?
            .map(|v| {
                whole_number(&v)
                    .filter(|&n| n >= 1)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| Error::InvalidOptions {
                        field: "pushThrottlePerMinute",
                        reason: format!(
                            "pushThrottlePerMinute is a whole number from 1 to {}, not {}.",
                            u32::MAX,
                            shown(&v)
                        ),
                    })
            })
            .transpose()?;
        Ok(Self {
            publish_policy,
            push_broadcast,
            push_singlecast,
            segment_query,
            publish_at,
            repeat_every,
            repeat_expires_at,
            repeat_cron: cron_text("repeatCron")?,
            time_zone: cron_text("timeZone")?,
            push_time_to_live,
            push_collapse_key,
            push_throttle_per_minute,
        })
    }

    /// Whether the message repeats (`repeat_every` or `repeat_cron`).
    pub fn is_repeating(&self) -> bool {
        self.repeat_every.is_some() || self.repeat_cron.is_some()
    }

    /// The wire form, as a JSON object (unset fields left out).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("publishPolicy".into(), self.publish_policy.as_str().into());
        if let Some(b) = self.push_broadcast {
            m.insert("pushBroadcast".into(), b.bits().into());
        }
        if !self.push_singlecast.is_empty() {
            m.insert("pushSinglecast".into(), self.push_singlecast.clone().into());
        }
        if let Some(q) = &self.segment_query {
            m.insert("segmentQuery".into(), q.clone().into());
        }
        if let Some(t) = self.publish_at {
            m.insert("publishAt".into(), t.timestamp_millis().into());
        }
        if let Some(d) = self.repeat_every {
            m.insert("repeatEvery".into(), d.num_seconds().into());
        }
        if let Some(t) = self.repeat_expires_at {
            m.insert("repeatExpiresAt".into(), t.timestamp_millis().into());
        }
        if let Some(c) = &self.repeat_cron {
            m.insert("repeatCron".into(), c.clone().into());
        }
        if let Some(z) = &self.time_zone {
            m.insert("timeZone".into(), z.clone().into());
        }
        if let Some(ttl) = self.push_time_to_live {
            m.insert("pushTimeToLive".into(), ttl.into());
        }
        if let Some(k) = &self.push_collapse_key {
            m.insert("pushCollapseKey".into(), k.clone().into());
        }
        if let Some(n) = self.push_throttle_per_minute {
            m.insert("pushThrottlePerMinute".into(), n.into());
        }
        m
    }
}

/// A non-negative whole number: a JSON integer, or a float with no
/// fractional part.
fn whole_number(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1.8e19).then_some(f as u64)
}

/// Epoch milliseconds: a non-negative number (a float's fraction is
/// dropped) within [`limits::MAX_EPOCH_MS`].
fn epoch_ms(v: &Value, field: &str, err: fn(String) -> Error) -> Result<DateTime<Utc>, Error> {
    let ms = match v.as_number() {
        Some(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Some(u),
            (None, Some(f)) if (0.0..1.8e19).contains(&f) => Some(f as u64),
            _ => None,
        },
        None => None,
    };
    let ms = ms.ok_or_else(|| {
        err(format!(
            "{field} is a number of epoch milliseconds from 0, not {}.",
            shown(v)
        ))
    })?;
    limits::time_of_ms(ms, err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn push_options_decode_check_and_round_trip() {
        let o = DeliveryOptions::from_json(&json!({
            "pushTimeToLive": 60, "pushCollapseKey": "score", "pushThrottlePerMinute": 1000.0,
        }))
        .unwrap();
        assert_eq!(o.push_time_to_live, Some(60));
        assert_eq!(o.push_collapse_key.as_deref(), Some("score"));
        assert_eq!(o.push_throttle_per_minute, Some(1000));
        let again = DeliveryOptions::from_json(&Value::Object(o.to_json())).unwrap();
        assert_eq!(again, o);
        let zero = DeliveryOptions::from_json(&json!({"pushTimeToLive": 0})).unwrap();
        assert_eq!(zero.push_time_to_live, Some(0), "0: now or never");
        for (body, reason) in [
            (
                json!({"pushTimeToLive": -1}),
                "pushTimeToLive is whole seconds from 0 to 2419200, not -1.",
            ),
            (
                json!({"pushTimeToLive": 2_419_201}),
                "pushTimeToLive is whole seconds from 0 to 2419200, not 2419201.",
            ),
            (
                json!({"pushTimeToLive": "1h"}),
                "pushTimeToLive is whole seconds from 0 to 2419200, not \"1h\".",
            ),
            (
                json!({"pushCollapseKey": ""}),
                "pushCollapseKey is 1 to 64 bytes of printable ASCII, not \"\".",
            ),
            (
                json!({"pushCollapseKey": "ü"}),
                "pushCollapseKey is 1 to 64 bytes of printable ASCII, not \"ü\".",
            ),
            (json!({"pushCollapseKey": "x".repeat(65)}), "LONG"),
            (
                json!({"pushThrottlePerMinute": 0}),
                "pushThrottlePerMinute is a whole number from 1 to 4294967295, not 0.",
            ),
            (
                json!({"pushThrottlePerMinute": 1.5}),
                "pushThrottlePerMinute is a whole number from 1 to 4294967295, not 1.5.",
            ),
        ] {
            let long = format!(
                "pushCollapseKey is 1 to 64 bytes of printable ASCII, not \"{}….",
                "x".repeat(63)
            );
            let reason = if reason == "LONG" {
                long.as_str()
            } else {
                reason
            };
            let e = DeliveryOptions::from_json(&body).unwrap_err();
            assert_eq!(e.code(), 5013, "{body}");
            assert_eq!(e.reason(), Some(reason), "{body}");
        }
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn policy_forms_and_the_legacy_push_policy() {
        let o = DeliveryOptions::from_json(&json!({ "publishPolicy": 0 })).unwrap();
        assert_eq!(o.publish_policy, PublishPolicy::Push);
        let legacy = DeliveryOptions::from_json(&json!({ "pushPolicy": "ALSO" })).unwrap();
        assert_eq!(legacy.publish_policy, PublishPolicy::Both);
        for bad in [json!({ "pushPolicy": 3 }), json!({ "pushPolicy": "X" })] {
            assert_eq!(DeliveryOptions::from_json(&bad).unwrap_err().code(), 5011);
        }
        let o = DeliveryOptions::from_json(&json!({ "pushBroadcast": "FOR_ALL" })).unwrap();
        assert_eq!(o.push_broadcast, Some(PushBroadcast::ALL));
    }

    #[test]
    fn numbers_and_their_codes() {
        let bad = [
            (json!({"publishAt": "soon"}), 5003),
            (json!({"publishAt": -1}), 5003),
            (json!({"publishAt": 1e300}), 5003),
            (json!({"publishAt": 8_210_266_876_800_000u64}), 5003),
            (json!({"repeatExpiresAt": "x"}), 5007),
            (json!({"repeatExpiresAt": -5}), 5007),
            (json!({"repeatEvery": 0}), 5008),
            (json!({"repeatEvery": -3}), 5008),
            (json!({"repeatEvery": 2.5}), 5008),
            (json!({"repeatEvery": "10"}), 5008),
            (json!({"repeatEvery": 1_000_000_001u64}), 5008),
            (json!({"repeatCron": 5}), 5009),
            (json!({"timeZone": []}), 5009),
            (json!({"segmentQuery": 7}), 5013),
            (json!({"pushSinglecast": [1, 2]}), 5011),
            (json!({"pushSinglecast": {}}), 5011),
        ];
        for (body, code) in bad {
            let e = DeliveryOptions::from_json(&body).unwrap_err();
            assert_eq!(e.code(), code, "{body}");
        }
        let ok =
            DeliveryOptions::from_json(&json!({"publishAt": 1.7e12, "repeatEvery": 3.0})).unwrap();
        assert_eq!(ok.publish_at.unwrap().timestamp_millis(), 1_700_000_000_000);
        assert_eq!(ok.repeat_every, Some(TimeDelta::seconds(3)));
        let one = DeliveryOptions::from_json(&json!({"pushSinglecast": "d1", "segmentQuery": " "}))
            .unwrap();
        assert_eq!(one.push_singlecast, ["d1"]);
        assert_eq!(one.segment_query, None, "blank is unset");
    }

    #[test]
    fn wire_round_trip() {
        let body = json!({
            "publishPolicy": "BOTH",
            "pushBroadcast": 3,
            "pushSinglecast": ["d1"],
            "segmentQuery": "os = 'IOS'",
            "publishAt": 1_900_000_000_000u64,
            "repeatEvery": 60,
            "repeatExpiresAt": 1_900_000_600_000u64,
        });
        let o = DeliveryOptions::from_json(&body).unwrap();
        assert_eq!(Value::Object(o.to_json()), body);
        let back: DeliveryOptions = serde_json::from_value(body).unwrap();
        assert_eq!(back, o);
    }
}
