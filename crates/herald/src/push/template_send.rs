//! `TemplateSend`: a push template as sent, with its values, kept with
//! the message so each device's content is rendered when the run fires.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use herald_core::selector::Headers;

use super::{Lookup, Os, PushContent, PushTemplate, SmartText};
use crate::Body;
use crate::error::{quoted, shown};

/// A template send: the template's content (smart text) as it was when it
/// was sent, and the send's `templateValues`. Kept in the message's
/// envelope, so a delayed or repeating send renders what was sent even if
/// the template changes later.
///
/// # Examples
///
/// ```
/// use herald::{DeviceRegistration, Os, PushTemplate, TemplateSend};
///
/// let t = PushTemplate::from_json(&serde_json::json!({
///     "name": "hi", "message": "Hallo {firstName|Freund}", "title": "{shop}",
/// }))?;
/// let send = TemplateSend::new(&t, &serde_json::json!({"shop": "Kiosk"}))?;
/// let ada = DeviceRegistration::from_json(&serde_json::json!({
///     "deviceId": "d", "deviceToken": "t", "os": "IOS", "properties": {"firstName": "Ada"}}))?;
/// let c = send.content(Os::Ios, &ada);
/// assert_eq!(c.body.as_deref(), Some("Hallo Ada"));
/// assert_eq!(c.title.as_deref(), Some("Kiosk"));
/// # Ok::<(), herald::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSend {
    /// The template's name.
    pub name: String,
    /// Its `message` (smart text).
    pub message: String,
    /// Its `title` (smart text).
    pub title: String,
    /// Its `subtitle` (smart text).
    pub subtitle: String,
    /// Its headers (values are smart text).
    pub headers: BTreeMap<String, String>,
    /// The send's `templateValues`.
    pub values: BTreeMap<String, String>,
}

impl TemplateSend {
    /// A send of `template` with the `templateValues` of a send's body (an
    /// object of strings; numbers and booleans become their text; absent
    /// or `null`: none).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`](crate::Error::InvalidOptions) (5013) for
    /// values that are not an object of scalars.
    pub fn new(template: &PushTemplate, values: &Value) -> Result<Self, crate::Error> {
        Ok(Self {
            name: template.name.clone(),
            message: template.message.clone(),
            title: template.title.clone(),
            subtitle: template.subtitle.clone(),
            headers: template.headers.clone(),
            values: values_of(values)?,
        })
    }

    /// Whether every text is constant (no placeholder): the content is
    /// then the same for every device of an OS.
    pub fn is_constant(&self) -> bool {
        [&self.message, &self.title, &self.subtitle]
            .into_iter()
            .chain(self.headers.values())
            .all(|t| SmartText::parse(t).is_ok_and(|s| s.is_constant()))
    }

    /// The content for `device` (of OS `os`): the texts rendered from the
    /// send's values, then the device's registration, then the defaults;
    /// `title` as the iOS alert title and the Android content title,
    /// `subtitle` as the iOS subtitle, `message` as the body (unless the
    /// headers set those).
    pub fn content<H: Headers + ?Sized>(&self, os: Os, device: &H) -> PushContent {
        let lookup = Lookup(&self.values, device);
        let render = |text: &str| {
            SmartText::parse(text).map_or_else(|_| text.to_owned(), |t| t.render(&lookup))
        };
        let mut headers: BTreeMap<String, String> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), render(v)))
            .collect();
        let title = render(&self.title);
        if !title.is_empty() {
            headers
                .entry("ios-alert-title".into())
                .or_insert_with(|| title.clone());
            headers
                .entry("android-content-title".into())
                .or_insert(title);
        }
        let subtitle = render(&self.subtitle);
        if !subtitle.is_empty() {
            headers
                .entry("ios-alert-subtitle".into())
                .or_insert(subtitle);
        }
        let message = render(&self.message);
        let body = Body::from(Value::String(message));
        PushContent::for_os(os, &headers, &body)
    }

    /// The stored form: a JSON object.
    pub fn to_json(&self) -> Value {
        let map = |m: &BTreeMap<String, String>| {
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        };
        let mut m = Map::new();
        m.insert("name".into(), self.name.clone().into());
        m.insert("message".into(), self.message.clone().into());
        m.insert("title".into(), self.title.clone().into());
        m.insert("subtitle".into(), self.subtitle.clone().into());
        m.insert("headers".into(), map(&self.headers));
        m.insert("values".into(), map(&self.values));
        Value::Object(m)
    }

    /// Reads [`to_json`](Self::to_json)'s form back; `None` if it is not.
    pub fn from_json(v: &Value) -> Option<Self> {
        let text = |k: &str| v.get(k)?.as_str().map(str::to_owned);
        let map = |k: &str| -> Option<BTreeMap<String, String>> {
            v.get(k)?
                .as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        };
        Some(Self {
            name: text("name")?,
            message: text("message")?,
            title: text("title")?,
            subtitle: text("subtitle")?,
            headers: map("headers")?,
            values: map("values")?,
        })
    }
}

fn values_of(v: &Value) -> Result<BTreeMap<String, String>, crate::Error> {
    let bad = |reason: String| crate::Error::InvalidOptions {
        field: "templateValues",
        reason,
    };
    let obj = match v {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(o) => o,
        other => {
            return Err(bad(format!(
                "templateValues is an object of strings, not {}.",
                shown(other)
            )));
        }
    };
    if obj.len() > crate::limits::MAX_DEVICE_PROPERTIES {
        return Err(bad(format!(
            "templateValues has at most {} values; this one has {}.",
            crate::limits::MAX_DEVICE_PROPERTIES,
            obj.len()
        )));
    }
    obj.iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(bad(format!(
                        "The template value {} is a string, not {}.",
                        quoted(k),
                        shown(other)
                    )));
                }
            };
            if text.len() > crate::limits::MAX_PROPERTY_VALUE_LEN {
                return Err(bad(format!(
                    "The template value {} is at most {} bytes.",
                    quoted(k),
                    crate::limits::MAX_PROPERTY_VALUE_LEN
                )));
            }
            Ok((k.clone(), text))
        })
        .collect()
}
