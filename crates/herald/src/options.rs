//! `PublishOptions` and `DeliveryOptions`: what a publish asks for.
//!
//! The Rust API uses `chrono` types; the wire form (serde) uses Backendless's
//! JSON names and units: `publishAt` and `repeatExpiresAt` in epoch
//! milliseconds, `repeatEvery` in seconds. Decoding is lenient where the
//! contract says so (see [`DeliveryOptions::from_json`]) and reports a
//! malformed field with its Backendless code.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use herald_core::selector::Selector;
use serde_json::{Map, Value};

use crate::Error;

/// Who publishes and with which headers.
///
/// # Examples
///
/// ```
/// use herald::PublishOptions;
///
/// let opts = PublishOptions::from_json(&serde_json::json!({
///     "publisherId": "svc-billing",
///     "headers": { "city": "Berlin", "priority": 5 },
///     "someUnknownKey": true,
/// }))?;
/// assert_eq!(opts.publisher_id.as_deref(), Some("svc-billing"));
/// assert_eq!(opts.headers["priority"], "5"); // header values are strings
/// # Ok::<(), herald::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// `publisherId`: free text identifying the publisher.
    pub publisher_id: Option<String>,
    /// `headers`: delivered to subscribers, values as strings; selectors
    /// filter on them.
    pub headers: BTreeMap<String, String>,
    /// `subtopic`: deprecated by Backendless; accepted and echoed.
    pub subtopic: Option<String>,
}

/// Where a message goes: pub/sub subscribers, push devices, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PublishPolicy {
    /// Push notifications only (ordinal 0).
    Push,
    /// Pub/sub subscribers only (ordinal 1); the default.
    #[default]
    Pubsub,
    /// Both (ordinal 2).
    Both,
}

impl PublishPolicy {
    /// The wire name: `PUSH`, `PUBSUB` or `BOTH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "PUSH",
            Self::Pubsub => "PUBSUB",
            Self::Both => "BOTH",
        }
    }

    /// Whether pub/sub subscribers receive the message.
    pub fn includes_pubsub(self) -> bool {
        matches!(self, Self::Pubsub | Self::Both)
    }

    /// Whether push devices receive the message.
    pub fn includes_push(self) -> bool {
        matches!(self, Self::Push | Self::Both)
    }

    fn from_json(v: &Value) -> Result<Self, Error> {
        match v {
            Value::String(s) => match s.trim().to_ascii_uppercase().as_str() {
                "PUSH" | "0" => Ok(Self::Push),
                "PUBSUB" | "PUB_SUB" | "1" => Ok(Self::Pubsub),
                "BOTH" | "2" => Ok(Self::Both),
                _ => Err(Error::InvalidPolicy),
            },
            Value::Number(n) => match n.as_u64() {
                Some(0) => Ok(Self::Push),
                Some(1) => Ok(Self::Pubsub),
                Some(2) => Ok(Self::Both),
                _ => Err(Error::InvalidPolicy),
            },
            _ => Err(Error::InvalidPolicy),
        }
    }
}

impl fmt::Display for PublishPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OS mask for broadcast push: IOS=1, ANDROID=2, WP=4, OSX=8, ALL=15.
///
/// # Examples
///
/// ```
/// use herald::PushBroadcast;
///
/// assert_eq!(PushBroadcast::parse("FOR_IOS|FOR_ANDROID"), Some(PushBroadcast::IOS | PushBroadcast::ANDROID));
/// assert_eq!(PushBroadcast::parse("IOS | ANDROID"), Some(PushBroadcast::from_bits(3).unwrap()));
/// assert_eq!(PushBroadcast::parse("ALL"), Some(PushBroadcast::ALL));
/// assert_eq!(PushBroadcast::parse("FOR_TOASTERS"), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PushBroadcast(u8);

impl PushBroadcast {
    /// Apple iOS devices.
    pub const IOS: Self = Self(1);
    /// Android devices.
    pub const ANDROID: Self = Self(2);
    /// Windows Phone devices.
    pub const WP: Self = Self(4);
    /// macOS devices.
    pub const OSX: Self = Self(8);
    /// Every OS.
    pub const ALL: Self = Self(15);

    /// The mask with these bits, if they are all known (at most 15).
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits <= 15 { Some(Self(bits)) } else { None }
    }

    /// The mask's bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every OS in `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Parses `|`-separated tokens (`IOS`, `ANDROID`, `WP`, `OSX`, `ALL`,
    /// each with or without `FOR_`, any case, spaces allowed) or a decimal
    /// mask.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(bits) = text.parse::<u8>() {
            return Self::from_bits(bits);
        }
        let mut bits = 0;
        for token in text.split('|') {
            let token = token.trim().to_ascii_uppercase();
            let token = token.strip_prefix("FOR_").unwrap_or(&token);
            bits |= match token {
                "IOS" => 1,
                "ANDROID" => 2,
                "WP" => 4,
                "OSX" => 8,
                "ALL" => 15,
                _ => return None,
            };
        }
        Some(Self(bits))
    }

    fn from_json(v: &Value) -> Result<Self, Error> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .and_then(|b| u8::try_from(b).ok())
                .and_then(Self::from_bits)
                .ok_or(Error::InvalidPolicy),
            Value::String(s) => Self::parse(s).ok_or(Error::InvalidPolicy),
            _ => Err(Error::InvalidPolicy),
        }
    }
}

impl std::ops::BitOr for PushBroadcast {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Display for PushBroadcast {
    /// Dart's echo format: tokens joined by `|`, `ALL` for 15.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::ALL {
            return f.write_str("ALL");
        }
        let mut first = true;
        for (bit, name) in [(1, "IOS"), (2, "ANDROID"), (4, "WP"), (8, "OSX")] {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// When and how a message is delivered.
///
/// All fields are optional; the default publishes once, now, to pub/sub.
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
}

impl PublishOptions {
    /// Decodes the publish options from a JSON object (the flat request body:
    /// other keys are ignored). `null` and absent fields are unset.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] (5013) if `headers` is not an object, or
    /// `publisherId` / `subtopic` is not a string or number.
    pub fn from_json(body: &Value) -> Result<Self, Error> {
        let empty = Map::new();
        let obj = body.as_object().unwrap_or(&empty);
        let text = |field: &'static str| -> Result<Option<String>, Error> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
                Some(_) => Err(Error::InvalidOptions { field }),
            }
        };
        let mut headers = BTreeMap::new();
        match obj.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    let value = match v {
                        Value::Null => continue,
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    headers.insert(k.clone(), value);
                }
            }
            Some(_) => return Err(Error::InvalidOptions { field: "headers" }),
        }
        Ok(Self {
            publisher_id: text("publisherId")?,
            headers,
            subtopic: text("subtopic")?,
        })
    }

    /// The wire form, as a JSON object.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(p) = &self.publisher_id {
            m.insert("publisherId".into(), p.clone().into());
        }
        if !self.headers.is_empty() {
            let h = self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())));
            m.insert("headers".into(), Value::Object(h.collect()));
        }
        if let Some(s) = &self.subtopic {
            m.insert("subtopic".into(), s.clone().into());
        }
        m
    }
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
    /// The field's Backendless code: 5003 (`publishAt` not a non-negative
    /// number), 5007 (`repeatExpiresAt` likewise), 5008 (`repeatEvery` not an
    /// integer >= 1, or together with `repeatCron`), 5009 (`repeatCron` or
    /// `timeZone` not a string), 5011 (`publishPolicy`, `pushBroadcast`,
    /// `pushSinglecast` malformed), 5012 (`segmentQuery` does not parse).
    /// Checks that need the current time are the engine's, at publish.
    pub fn from_json(body: &Value) -> Result<Self, Error> {
        let empty = Map::new();
        let obj = body.as_object().unwrap_or(&empty);
        let get = |k: &str| obj.get(k).filter(|v| !v.is_null());

        let publish_policy = match (get("publishPolicy"), get("pushPolicy")) {
            (Some(v), _) => PublishPolicy::from_json(v)?,
            (None, Some(Value::String(s))) => match s.trim().to_ascii_uppercase().as_str() {
                "ONLY" => PublishPolicy::Push,
                "ALSO" => PublishPolicy::Both,
                _ => return Err(Error::InvalidPolicy),
            },
            (None, Some(_)) => return Err(Error::InvalidPolicy),
            (None, None) => PublishPolicy::Pubsub,
        };
        let push_broadcast = get("pushBroadcast")
            .map(PushBroadcast::from_json)
            .transpose()?;
        let push_singlecast = match get("pushSinglecast") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or(Error::InvalidPolicy))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(Error::InvalidPolicy),
        };
        let segment_query = match get("segmentQuery") {
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => {
                Selector::parse(s)?;
                Some(s.clone())
            }
            Some(_) => {
                return Err(Error::InvalidOptions {
                    field: "segmentQuery",
                });
            }
        };
        let publish_at = get("publishAt")
            .map(|v| epoch_ms(v, Error::InvalidPublishAt))
            .transpose()?;
        let repeat_expires_at = get("repeatExpiresAt")
            .map(|v| epoch_ms(v, Error::InvalidRepeatExpiresAt))
            .transpose()?;
        let repeat_every = get("repeatEvery")
            .map(|v| {
                whole_number(v)
                    .filter(|s| (1..=MAX_REPEAT_SECONDS).contains(s))
                    .map(|s| TimeDelta::seconds(s as i64))
                    .ok_or(Error::InvalidRepeatEvery)
            })
            .transpose()?;
        let cron_text = |k: &str| match get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Error::InvalidCron {
                reason: format!("`{k}` must be a string"),
            }),
        };
        let repeat_cron = cron_text("repeatCron")?;
        let time_zone = cron_text("timeZone")?;
        if repeat_cron.is_some() && repeat_every.is_some() {
            return Err(Error::InvalidRepeatEvery);
        }
        Ok(Self {
            publish_policy,
            push_broadcast,
            push_singlecast,
            segment_query,
            publish_at,
            repeat_every,
            repeat_expires_at,
            repeat_cron,
            time_zone,
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
        m
    }
}

/// `repeatEvery` above this (about 31.7 years) is rejected: far beyond any
/// sensible period, and it keeps the ms arithmetic exact.
pub(crate) const MAX_REPEAT_SECONDS: u64 = 1_000_000_000;

/// The largest epoch-ms timestamp accepted (year 275760, chrono's limit
/// is higher; this is JavaScript's `Date` maximum).
const MAX_EPOCH_MS: u64 = 8_640_000_000_000_000;

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
/// dropped).
fn epoch_ms(v: &Value, err: Error) -> Result<DateTime<Utc>, Error> {
    let ms = match v.as_number() {
        Some(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Some(u),
            (None, Some(f)) if (0.0..1.8e19).contains(&f) => Some(f as u64),
            _ => None,
        },
        None => None,
    };
    ms.filter(|&ms| ms <= MAX_EPOCH_MS)
        .and_then(|ms| DateTime::from_timestamp_millis(ms as i64))
        .ok_or(err)
}

/// A decoded publish request body: the message plus both option sets, as the
/// JS SDK sends them (`Object.assign({message}, publishOptions, deliveryOptions)`).
///
/// # Examples
///
/// ```
/// use herald::PublishRequest;
///
/// let req = PublishRequest::from_json(&serde_json::json!({
///     "message": {"text": "hi"},
///     "headers": {"city": "Berlin"},
///     "publishAt": 1_900_000_000_000u64,
/// }))?;
/// assert_eq!(req.message["text"], "hi");
/// assert_eq!(req.publish.headers["city"], "Berlin");
/// assert!(req.delivery.publish_at.is_some());
/// # Ok::<(), herald::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PublishRequest {
    /// `message`: any JSON value (`null` when absent).
    pub message: Value,
    /// The publish options found in the body.
    pub publish: PublishOptions,
    /// The delivery options found in the body.
    pub delivery: DeliveryOptions,
}

impl PublishRequest {
    /// Decodes a flat publish body. A body that is not an object is taken as
    /// the message itself, with no options.
    ///
    /// # Errors
    ///
    /// As [`PublishOptions::from_json`] and [`DeliveryOptions::from_json`].
    pub fn from_json(body: &Value) -> Result<Self, Error> {
        match body {
            Value::Object(obj) => Ok(Self {
                message: obj.get("message").cloned().unwrap_or(Value::Null),
                publish: PublishOptions::from_json(body)?,
                delivery: DeliveryOptions::from_json(body)?,
            }),
            other => Ok(Self {
                message: other.clone(),
                ..Self::default()
            }),
        }
    }
}

macro_rules! json_serde {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.to_json().serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = Value::deserialize(d)?;
                Self::from_json(&v).map_err(serde::de::Error::custom)
            }
        }
    };
}

json_serde!(PublishOptions);
json_serde!(DeliveryOptions);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policy_names_and_ordinals() {
        for (v, want) in [
            (json!("PUSH"), PublishPolicy::Push),
            (json!("pubsub"), PublishPolicy::Pubsub),
            (json!(" Both "), PublishPolicy::Both),
            (json!(0), PublishPolicy::Push),
            (json!(1), PublishPolicy::Pubsub),
            (json!(2), PublishPolicy::Both),
        ] {
            let o = DeliveryOptions::from_json(&json!({ "publishPolicy": v })).unwrap();
            assert_eq!(o.publish_policy, want, "{v}");
        }
        for bad in [json!("SMOKE"), json!(3), json!(-1), json!(true), json!([1])] {
            let e = DeliveryOptions::from_json(&json!({ "publishPolicy": bad })).unwrap_err();
            assert_eq!(e.code(), 5011);
        }
        let legacy = DeliveryOptions::from_json(&json!({ "pushPolicy": "ALSO" })).unwrap();
        assert_eq!(legacy.publish_policy, PublishPolicy::Both);
    }

    #[test]
    fn broadcast_forms() {
        let cases = [
            (json!(3), 3),
            (json!(15), 15),
            (json!("FOR_IOS|FOR_ANDROID"), 3),
            (json!("IOS | ANDROID"), 3),
            (json!("ALL"), 15),
            (json!("for_osx"), 8),
            (json!("FOR_ALL"), 15),
        ];
        for (v, bits) in cases {
            let o = DeliveryOptions::from_json(&json!({ "pushBroadcast": v })).unwrap();
            assert_eq!(o.push_broadcast.unwrap().bits(), bits, "{v}");
        }
        for bad in [
            json!(16),
            json!(""),
            json!("IOS|"),
            json!("MAC"),
            json!(1.5),
        ] {
            let e = DeliveryOptions::from_json(&json!({ "pushBroadcast": bad })).unwrap_err();
            assert_eq!(e.code(), 5011, "{bad}");
        }
    }

    #[test]
    fn numbers_and_their_codes() {
        let bad = [
            (json!({"publishAt": "soon"}), 5003),
            (json!({"publishAt": -1}), 5003),
            (json!({"publishAt": 1e300}), 5003),
            (json!({"repeatExpiresAt": "x"}), 5007),
            (json!({"repeatExpiresAt": -5}), 5007),
            (json!({"repeatEvery": 0}), 5008),
            (json!({"repeatEvery": -3}), 5008),
            (json!({"repeatEvery": 2.5}), 5008),
            (json!({"repeatEvery": "10"}), 5008),
            (json!({"repeatEvery": 5, "repeatCron": "* * * * * *"}), 5008),
            (json!({"repeatCron": 5}), 5009),
            (json!({"segmentQuery": "a >"}), 5012),
            (json!({"pushSinglecast": [1, 2]}), 5011),
        ];
        for (body, code) in bad {
            let e = DeliveryOptions::from_json(&body).unwrap_err();
            assert_eq!(e.code(), code, "{body}");
        }
        let ok =
            DeliveryOptions::from_json(&json!({"publishAt": 1.7e12, "repeatEvery": 3.0})).unwrap();
        assert_eq!(ok.publish_at.unwrap().timestamp_millis(), 1_700_000_000_000);
        assert_eq!(ok.repeat_every, Some(TimeDelta::seconds(3)));
    }

    #[test]
    fn headers_become_strings_and_bad_headers_are_5013() {
        let o = PublishOptions::from_json(&json!({
            "headers": {"n": 20, "b": true, "s": "x", "z": null, "o": {"k": 1}}
        }))
        .unwrap();
        assert_eq!(o.headers["n"], "20");
        assert_eq!(o.headers["b"], "true");
        assert_eq!(o.headers["s"], "x");
        assert_eq!(o.headers["o"], r#"{"k":1}"#);
        assert!(!o.headers.contains_key("z"));
        let e = PublishOptions::from_json(&json!({"headers": [1]})).unwrap_err();
        assert_eq!(e.code(), 5013);
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
