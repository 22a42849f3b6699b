//! `DeviceRegistration`: a device that receives push notifications, and
//! how a registration request is checked.

use std::collections::BTreeMap;

use herald_core::Tick;
use herald_core::selector::Headers;
use serde_json::{Map, Value};

use super::Os;
use crate::Error;
use crate::error::{quoted, shown};
use crate::limits::{self, MAX_EPOCH_MS};

/// The registration fields a property may not be named like.
pub const RESERVED_PROPERTY_NAMES: [&str; 6] = [
    "deviceId",
    "deviceToken",
    "os",
    "osVersion",
    "channels",
    "expiration",
];

/// One device registered for push notifications.
///
/// A device is known by its `device_id`; registering the same id again
/// replaces everything else (token, channels, expiration, properties) and
/// records the time of that registration in `registered_at`.
///
/// It is also the [`Headers`] a `segmentQuery` is evaluated over: the
/// fields `deviceId`, `os` (`IOS`...), `osVersion` and `deviceToken`, then
/// each property by its name, without copying anything.
///
/// # Examples
///
/// ```
/// use herald::{DeviceRegistration, Os};
/// use herald_core::selector::Selector;
/// use herald_core::Tick;
///
/// let body = serde_json::json!({
///     "deviceId": "phone-1", "deviceToken": "a1b2c3", "os": "IOS", "osVersion": "17.4",
///     "channels": ["news"], "expiration": 1_900_000_000, // seconds: below 1e11
///     "properties": {"lang": "de"},
/// });
/// let reg = DeviceRegistration::from_json(&body)?;
/// assert_eq!(reg.os, Os::Ios);
/// assert_eq!(reg.expiration, Some(Tick::from_millis(1_900_000_000_000)));
/// assert!(Selector::parse("os = 'IOS' AND lang = 'de'").unwrap().matches(&reg));
///
/// let err = DeviceRegistration::from_json(&serde_json::json!({"deviceId": "x"})).unwrap_err();
/// assert_eq!(err.code(), 5015);
/// assert_eq!(err.to_string(), "Invalid device registration. deviceToken is required.");
/// # Ok::<(), herald::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRegistration {
    /// The id answered to the registration (`registrationId`); a new one
    /// for each registration. Set by the engine.
    pub registration_id: String,
    /// The device's id (`deviceId`): the key of the registry.
    pub device_id: String,
    /// The gateway's token for the device (`deviceToken`).
    pub device_token: String,
    /// The device's OS.
    pub os: Os,
    /// `osVersion` (empty when not given).
    pub os_version: String,
    /// The channels it receives pushes of: sorted, without duplicates,
    /// `["default"]` when not given.
    pub channels: Vec<String>,
    /// When the registration ends (`expiration`); `None`: never.
    pub expiration: Option<Tick>,
    /// Herald's `properties`: values for segment queries and templates.
    pub properties: BTreeMap<String, String>,
    /// When this registration was recorded. Set by the engine.
    pub registered_at: Tick,
}

impl DeviceRegistration {
    /// Decodes and checks a registration request body (Backendless's
    /// `POST messaging/registrations`): `deviceToken` and `deviceId`
    /// (non-empty strings), `os` (`IOS`, `ANDROID`, `OSX` or `WP`, any
    /// case), optional `osVersion`, `channels` (a list of channel names, or
    /// one), `expiration` (epoch seconds below 1e11, else milliseconds;
    /// fractions allowed) and `properties` (an object of strings; numbers
    /// and booleans become their text). Unknown keys are ignored.
    /// `registration_id` is left empty and `registered_at` at 0: the engine
    /// sets them when it records the registration.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRegistration`] (5015) saying what is wrong.
    pub fn from_json(body: &Value) -> Result<Self, Error> {
        let Value::Object(fields) = body else {
            return bad(format!("The body is a JSON object, not {}.", shown(body)));
        };
        let device_id = required_text(fields, "deviceId", limits::MAX_DEVICE_ID_LEN)?;
        let device_token = required_text(fields, "deviceToken", limits::MAX_DEVICE_TOKEN_LEN)?;
        if let Some(c) = device_token.chars().find(|c| !c.is_ascii_graphic()) {
            return bad(format!(
                "deviceToken holds printable ASCII without spaces only, not {}.",
                quoted(&c.to_string())
            ));
        }
        let os = match fields.get("os") {
            None | Some(Value::Null) => return bad("os is required.".into()),
            Some(Value::String(s)) => Os::parse(s).ok_or_else(|| {
                invalid(format!("os is IOS, ANDROID, OSX or WP, not {}.", quoted(s)))
            })?,
            Some(v) => return bad(format!("os is a string, not {}.", shown(v))),
        };
        let os_version = match fields.get("osVersion") {
            None | Some(Value::Null) => String::new(),
            Some(v) => scalar_text(v)
                .filter(|s| s.len() <= limits::MAX_OS_VERSION_LEN && printable(s))
                .ok_or_else(|| {
                    invalid(format!(
                        "osVersion is a printable string of at most {} bytes, not {}.",
                        limits::MAX_OS_VERSION_LEN,
                        shown(v)
                    ))
                })?,
        };
        let channels = channels(fields.get("channels"))?;
        let expiration = match fields.get("expiration") {
            None | Some(Value::Null) => None,
            Some(v) => Some(expiration(v)?),
        };
        let properties = match fields.get("properties") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => properties(map)?,
            Some(v) => {
                return bad(format!(
                    "properties is an object of strings, not {}.",
                    shown(v)
                ));
            }
        };
        Ok(Self {
            registration_id: String::new(),
            device_id,
            device_token,
            os,
            os_version,
            channels,
            expiration,
            properties,
            registered_at: Tick::from_millis(0),
        })
    }

    /// Whether the registration has ended at `now`.
    pub fn is_expired(&self, now: Tick) -> bool {
        self.expiration.is_some_and(|end| end <= now)
    }

    /// Whether the device is registered to `channel`.
    pub fn has_channel(&self, channel: &str) -> bool {
        self.channels
            .binary_search_by(|c| c.as_str().cmp(channel))
            .is_ok()
    }

    /// The registration as Backendless answers it (an element of the list
    /// `GET messaging/registrations/{deviceId}` returns): `id`, `deviceId`,
    /// `deviceToken`, `os`, `osVersion`, `channels`, `expiration` (epoch
    /// ms, or null), `properties`, and Herald's `registeredAt` (epoch ms).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), self.registration_id.clone().into());
        m.insert("deviceId".into(), self.device_id.clone().into());
        m.insert("deviceToken".into(), self.device_token.clone().into());
        m.insert("os".into(), self.os.as_str().into());
        m.insert("osVersion".into(), self.os_version.clone().into());
        m.insert("channels".into(), self.channels.clone().into());
        m.insert(
            "expiration".into(),
            self.expiration
                .map_or(Value::Null, |t| t.as_millis().into()),
        );
        m.insert(
            "properties".into(),
            Value::Object(
                self.properties
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        );
        m.insert("registeredAt".into(), self.registered_at.as_millis().into());
        Value::Object(m)
    }
}

impl Headers for DeviceRegistration {
    fn header(&self, name: &str) -> Option<&str> {
        match name {
            "deviceId" => Some(&self.device_id),
            "deviceToken" => Some(&self.device_token),
            "os" => Some(self.os.as_str()),
            "osVersion" => Some(&self.os_version),
            _ => self.properties.get(name).map(String::as_str),
        }
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidRegistration { reason }
}

fn bad<T>(reason: String) -> Result<T, Error> {
    Err(invalid(reason))
}

/// No control character (so it cannot break a log line).
fn printable(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
}

/// A string, number or boolean as text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn required_text(fields: &Map<String, Value>, name: &str, max: usize) -> Result<String, Error> {
    match fields.get(name) {
        None | Some(Value::Null) => bad(format!("{name} is required.")),
        Some(Value::String(s)) if s.is_empty() => bad(format!("{name} cannot be empty.")),
        Some(Value::String(s)) if s.len() > max => bad(format!(
            "{name} is at most {max} bytes; this one is {}.",
            s.len()
        )),
        Some(Value::String(s)) if !printable(s) => bad(format!(
            "{name} cannot contain control characters: {}.",
            quoted(s)
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => bad(format!("{name} is a string, not {}.", shown(v))),
    }
}

fn channels(v: Option<&Value>) -> Result<Vec<String>, Error> {
    let names: Vec<&Value> = match v {
        None | Some(Value::Null) => return Ok(vec!["default".to_owned()]),
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::String(_)) => vec![one],
        Some(other) => {
            return bad(format!(
                "channels is a list of channel names, not {}.",
                shown(other)
            ));
        }
    };
    if names.len() > limits::MAX_DEVICE_CHANNELS {
        return bad(format!(
            "A device is registered to at most {} channels; this request names {}.",
            limits::MAX_DEVICE_CHANNELS,
            names.len()
        ));
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let Value::String(name) = name else {
            return bad(format!("A channel name is a string, not {}.", shown(name)));
        };
        if let Err(e) = limits::check_channel(name) {
            return bad(format!("Channel {}: {e}", quoted(name)));
        }
        out.push(name.clone());
    }
    if out.is_empty() {
        out.push("default".to_owned());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Seconds below 1e11 (the JS SDK sends a `Date` as fractional seconds),
/// milliseconds from 1e11 on (the Swift SDK).
fn expiration(v: &Value) -> Result<Tick, Error> {
    let wrong = || {
        invalid(format!(
            "expiration is a time in epoch seconds (below 1e11) or milliseconds, not {}.",
            shown(v)
        ))
    };
    let x = v
        .as_f64()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .ok_or_else(wrong)?;
    let ms = if x < 1e11 { x * 1000.0 } else { x };
    if ms > MAX_EPOCH_MS as f64 {
        return Err(wrong());
    }
    // In range and non-negative: the cast is exact to the millisecond.
    Ok(Tick::from_millis(ms as u64))
}

fn properties(map: &Map<String, Value>) -> Result<BTreeMap<String, String>, Error> {
    if map.len() > limits::MAX_DEVICE_PROPERTIES {
        return bad(format!(
            "A device has at most {} properties; this one has {}.",
            limits::MAX_DEVICE_PROPERTIES,
            map.len()
        ));
    }
    let mut out = BTreeMap::new();
    for (name, value) in map {
        if RESERVED_PROPERTY_NAMES.contains(&name.as_str()) {
            return bad(format!(
                "The property {} is named like a registration field.",
                quoted(name)
            ));
        }
        if name.is_empty() || name.len() > limits::MAX_PROPERTY_NAME_LEN || !printable(name) {
            return bad(format!(
                "A property name is 1 to {} bytes without control characters, not {}.",
                limits::MAX_PROPERTY_NAME_LEN,
                quoted(name)
            ));
        }
        let text = scalar_text(value)
            .filter(|t| t.len() <= limits::MAX_PROPERTY_VALUE_LEN)
            .ok_or_else(|| {
                invalid(format!(
                    "The property {} is a string of at most {} bytes, not {}.",
                    quoted(name),
                    limits::MAX_PROPERTY_VALUE_LEN,
                    shown(value)
                ))
            })?;
        out.insert(name.clone(), text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn minimal() -> Value {
        json!({"deviceId": "d1", "deviceToken": "t1", "os": "ANDROID"})
    }

    fn with(key: &str, v: Value) -> Value {
        let mut body = minimal();
        body[key] = v;
        body
    }

    #[test]
    fn defaults_and_normal_forms() {
        let reg = DeviceRegistration::from_json(&minimal()).unwrap();
        assert_eq!(reg.channels, ["default"]);
        assert_eq!(reg.expiration, None);
        assert_eq!(reg.os_version, "");
        let reg = DeviceRegistration::from_json(&with("channels", json!(["b", "a", "b"]))).unwrap();
        assert_eq!(reg.channels, ["a", "b"]);
        assert!(reg.has_channel("a") && !reg.has_channel("c"));
        let reg = DeviceRegistration::from_json(&with("channels", json!("news"))).unwrap();
        assert_eq!(reg.channels, ["news"]);
        let reg = DeviceRegistration::from_json(&with("osVersion", json!(14))).unwrap();
        assert_eq!(reg.os_version, "14");
    }

    #[test]
    fn expiration_is_seconds_below_1e11_and_milliseconds_above() {
        let at = |v: Value| {
            DeviceRegistration::from_json(&with("expiration", v))
                .unwrap()
                .expiration
                .unwrap()
                .as_millis()
        };
        assert_eq!(at(json!(1_893_477_600)), 1_893_477_600_000);
        assert_eq!(at(json!(1_893_477_600.5)), 1_893_477_600_500);
        assert_eq!(at(json!(1_893_477_600_000_u64)), 1_893_477_600_000);
        assert_eq!(at(json!(99_999_999_999_u64)), 99_999_999_999_000);
        assert_eq!(at(json!(100_000_000_000_u64)), 100_000_000_000);
        let reg = DeviceRegistration::from_json(&with("expiration", json!(10))).unwrap();
        assert!(reg.is_expired(Tick::from_millis(10_000)));
        assert!(!reg.is_expired(Tick::from_millis(9_999)));
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases = [
            (json!([]), "The body is a JSON object, not []."),
            (
                json!({"deviceToken": "t", "os": "IOS"}),
                "deviceId is required.",
            ),
            (with("deviceId", json!("")), "deviceId cannot be empty."),
            (with("deviceId", json!(5)), "deviceId is a string, not 5."),
            (
                with("deviceId", json!("a\nb")),
                "deviceId cannot contain control characters: \"a\\nb\".",
            ),
            (
                with("deviceToken", json!("a b")),
                "deviceToken holds printable ASCII without spaces only, not \" \".",
            ),
            (with("os", json!(null)), "os is required."),
            (
                with("os", json!("PALM")),
                "os is IOS, ANDROID, OSX or WP, not \"PALM\".",
            ),
            (
                with("channels", json!(["ok", "a/b"])),
                "Channel \"a/b\": Invalid channel name. A channel name cannot contain '/'.",
            ),
            (
                with("channels", json!([1])),
                "A channel name is a string, not 1.",
            ),
            (
                with("expiration", json!(-1)),
                "expiration is a time in epoch seconds (below 1e11) or milliseconds, not -1.",
            ),
            (
                with("expiration", json!("soon")),
                "expiration is a time in epoch seconds (below 1e11) or milliseconds, not \"soon\".",
            ),
            (
                with("properties", json!({"os": "x"})),
                "The property \"os\" is named like a registration field.",
            ),
            (
                with("properties", json!({"a": {"b": 1}})),
                "The property \"a\" is a string of at most 1024 bytes, not {\"b\":1}.",
            ),
            (
                with("properties", json!(["a"])),
                "properties is an object of strings, not [\"a\"].",
            ),
        ];
        for (body, reason) in cases {
            let e = DeviceRegistration::from_json(&body).unwrap_err();
            assert_eq!(e.code(), 5015, "{body}");
            assert_eq!(e.reason(), Some(reason), "{body}");
            assert!(e.to_string().starts_with("Invalid device registration. "));
        }
        for name in RESERVED_PROPERTY_NAMES {
            let body = with("properties", json!({ name: "x" }));
            assert_eq!(
                DeviceRegistration::from_json(&body).unwrap_err().code(),
                5015
            );
        }
    }

    #[test]
    fn a_registration_is_headers_for_segment_queries() {
        let body = with("properties", json!({"lang": "de", "age": 42, "vip": true}));
        let reg = DeviceRegistration::from_json(&body).unwrap();
        assert_eq!(reg.header("os"), Some("ANDROID"));
        assert_eq!(reg.header("deviceId"), Some("d1"));
        assert_eq!(reg.header("deviceToken"), Some("t1"));
        assert_eq!(reg.header("age"), Some("42"));
        assert_eq!(reg.header("vip"), Some("true"));
        assert_eq!(reg.header("channels"), None);
        let json = reg.to_json();
        assert_eq!(json["properties"]["age"], "42");
        assert_eq!(json["expiration"], Value::Null);
    }
}
