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
        self.compile().is_constant()
    }

    /// The content for `device` (of OS `os`): the texts rendered from the
    /// send's values, then the device's registration, then the defaults;
    /// `title` as the iOS alert title and the Android content title,
    /// `subtitle` as the iOS subtitle, `message` as the body (unless the
    /// headers set those). To render for many devices, [`compile`](Self::compile)
    /// once and render from that.
    pub fn content<H: Headers + ?Sized>(&self, os: Os, device: &H) -> PushContent {
        self.compile().content(os, device)
    }

    /// The texts parsed once, to render for many devices.
    pub fn compile(&self) -> CompiledSend {
        // Texts were checked when the template was stored; one that does
        // not parse (a hand-built send) is taken as plain text.
        let parse = |t: &str| {
            SmartText::parse(t).unwrap_or_else(|_| {
                SmartText::parse(&t.replace('{', "{{").replace('}', "}}"))
                    .unwrap_or_else(|_| unreachable!("escaped text always parses"))
            })
        };
        CompiledSend {
            values: self.values.clone(),
            message: parse(&self.message),
            title: parse(&self.title),
            subtitle: parse(&self.subtitle),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), parse(v)))
                .collect(),
        }
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

/// A [`TemplateSend`] with its texts parsed: what a push job renders each
/// device's content from.
#[derive(Clone, Debug)]
pub struct CompiledSend {
    values: BTreeMap<String, String>,
    message: SmartText,
    title: SmartText,
    subtitle: SmartText,
    headers: Vec<(String, SmartText)>,
}

impl CompiledSend {
    /// Whether no text has a placeholder (the content is then the same for
    /// every device of an OS).
    pub fn is_constant(&self) -> bool {
        [&self.message, &self.title, &self.subtitle]
            .into_iter()
            .chain(self.headers.iter().map(|(_, t)| t))
            .all(SmartText::is_constant)
    }

    /// See [`TemplateSend::content`].
    pub fn content<H: Headers + ?Sized>(&self, os: Os, device: &H) -> PushContent {
        let lookup = Lookup(&self.values, device);
        let mut headers: BTreeMap<String, String> = self
            .headers
            .iter()
            .map(|(k, t)| (k.clone(), t.render(&lookup)))
            .collect();
        let title = self.title.render(&lookup);
        if !title.is_empty() {
            headers
                .entry("ios-alert-title".into())
                .or_insert_with(|| title.clone());
            headers
                .entry("android-content-title".into())
                .or_insert(title);
        }
        let subtitle = self.subtitle.render(&lookup);
        if !subtitle.is_empty() {
            headers
                .entry("ios-alert-subtitle".into())
                .or_insert(subtitle);
        }
        let body = Body::from(Value::String(self.message.render(&lookup)));
        PushContent::for_os(os, &headers, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(message: &str) -> TemplateSend {
        TemplateSend {
            name: "t".into(),
            message: message.into(),
            title: String::new(),
            subtitle: "{s|sub}".into(),
            headers: BTreeMap::from([("k".into(), "{v}".into())]),
            values: BTreeMap::from([("v".into(), "1".into())]),
        }
    }

    #[test]
    fn compiled_once_renders_like_each_time() {
        let t = send("Hi {name|you}");
        let c = t.compile();
        assert!(!c.is_constant());
        let dev = [("name", "Ada")];
        assert_eq!(c.content(Os::Ios, &dev), t.content(Os::Ios, &dev));
        let ios = c.content(Os::Ios, &dev);
        assert_eq!(ios.body.as_deref(), Some("Hi Ada"));
        assert_eq!(ios.subtitle.as_deref(), Some("sub"));
        assert_eq!(ios.custom["k"], "1");
    }

    #[test]
    fn a_text_that_does_not_parse_is_plain_text() {
        let c = send("50% {off").compile();
        assert_eq!(
            c.content(Os::Android, &()).body.as_deref(),
            Some("50% {off")
        );
    }
}
