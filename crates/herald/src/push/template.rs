//! `PushTemplate`: a stored notification with smart text and an audience.

use std::collections::BTreeMap;

use herald_core::selector::{Headers, Selector};
use serde_json::{Map, Value};

use super::{Os, SmartText};
use crate::error::{quoted, shown};
use crate::{Error, PushBroadcast, limits};

/// A push template: content with smart text, and the audience it goes to.
///
/// The content (`message`, `title`, `subtitle`, header values) and the
/// `segmentQuery` may hold [`SmartText`] placeholders, filled when a run
/// fires: content from the send's `templateValues`, then the device's
/// registration, then the default; the segment query from the send's
/// values and the defaults only, each value inserted as a quoted string
/// literal.
///
/// # Examples
///
/// ```
/// use herald::{Os, PushTemplate};
///
/// let t = PushTemplate::from_json(&serde_json::json!({
///     "name": "welcome",
///     "message": "Hello {firstName|there}",
///     "title": "Welcome",
///     "headers": {"ios-badge": "1"},
///     "audience": {"os": ["IOS"], "channel": "news", "segmentQuery": "lang = {lang|en}"},
/// }))?;
/// assert!(t.targets(Os::Osx) && !t.targets(Os::Android));
/// assert_eq!(t.to_json()["audience"]["os"], serde_json::json!(["IOS"]));
///
/// let e = PushTemplate::from_json(&serde_json::json!({"name": "x", "message": "{oops"})).unwrap_err();
/// assert_eq!(e.code(), 5051);
/// # Ok::<(), herald::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushTemplate {
    /// The template's name (its key).
    pub name: String,
    /// The body on every OS (smart text).
    pub message: String,
    /// The iOS alert title and the Android content title (smart text).
    pub title: String,
    /// The iOS alert subtitle (smart text).
    pub subtitle: String,
    /// Headers as in a publish (values are smart text).
    pub headers: BTreeMap<String, String>,
    /// Which OSes it goes to; `IOS` covers OSX devices too.
    pub os: PushBroadcast,
    /// The channel whose devices receive it (default `default`).
    pub channel: String,
    /// The segment query (smart text), if any.
    pub segment_query: Option<String>,
}

impl PushTemplate {
    /// Decodes and checks a template: `name` (required), `message`,
    /// `title`, `subtitle` (strings of smart text), `headers` (an object
    /// of strings), `audience`: `{os: [IOS|ANDROID|OSX|WP|ALL...] (default
    /// ALL), channel (default "default"), segmentQuery}`. Every smart text
    /// must parse, and the segment query must parse as a selector whatever
    /// values fill it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTemplate`] (5051) saying what is wrong.
    pub fn from_json(body: &Value) -> Result<Self, Error> {
        let Value::Object(fields) = body else {
            return bad(format!("A template is a JSON object, not {}.", shown(body)));
        };
        let name = match fields.get("name") {
            Some(Value::String(s)) => {
                check_name(s)?;
                s.clone()
            }
            None | Some(Value::Null) => return bad("name is required.".into()),
            Some(v) => return bad(format!("name is a string, not {}.", shown(v))),
        };
        let message = smart_field(fields, "message")?;
        let title = smart_field(fields, "title")?;
        let subtitle = smart_field(fields, "subtitle")?;
        let headers = match fields.get("headers") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => headers(map)?,
            Some(v) => {
                return bad(format!(
                    "headers is an object of strings, not {}.",
                    shown(v)
                ));
            }
        };
        let (os, channel, segment_query) = match fields.get("audience") {
            None | Some(Value::Null) => (PushBroadcast::ALL, "default".to_owned(), None),
            Some(Value::Object(a)) => audience(a)?,
            Some(v) => return bad(format!("audience is an object, not {}.", shown(v))),
        };
        Ok(Self {
            name,
            message,
            title,
            subtitle,
            headers,
            os,
            channel,
            segment_query,
        })
    }

    /// Whether devices of `os` are in the template's audience.
    pub fn targets(&self, os: Os) -> bool {
        self.os.contains(os.mask())
    }

    /// The template as `POST messaging/pushtemplates` takes it and the
    /// server answers it.
    pub fn to_json(&self) -> Value {
        let mut audience = Map::new();
        audience.insert("os".into(), os_names(self.os).into());
        audience.insert("channel".into(), self.channel.clone().into());
        if let Some(q) = &self.segment_query {
            audience.insert("segmentQuery".into(), q.clone().into());
        }
        let mut m = Map::new();
        m.insert("name".into(), self.name.clone().into());
        m.insert("message".into(), self.message.clone().into());
        m.insert("title".into(), self.title.clone().into());
        m.insert("subtitle".into(), self.subtitle.clone().into());
        m.insert(
            "headers".into(),
            Value::Object(
                self.headers
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        );
        m.insert("audience".into(), Value::Object(audience));
        Value::Object(m)
    }

    /// The segment query with the send's values (then the defaults) filled
    /// in as string literals, parsed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSelector`] (5012): cannot happen for a template
    /// that [`from_json`](Self::from_json) accepted, whatever the values.
    pub fn segment<H: Headers + ?Sized>(&self, values: &H) -> Result<Option<Selector>, Error> {
        match self.segment_text(values)? {
            Some(text) => Ok(Some(Selector::parse(&text)?)),
            None => Ok(None),
        }
    }

    /// The segment query's text with the send's values (then the
    /// defaults) filled in as string literals.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTemplate`] (5051) if the stored query's smart text
    /// does not parse (cannot happen for a template `from_json` accepted).
    pub fn segment_text<H: Headers + ?Sized>(&self, values: &H) -> Result<Option<String>, Error> {
        let Some(q) = &self.segment_query else {
            return Ok(None);
        };
        let text = SmartText::parse(q).map_err(|e| Error::InvalidTemplate {
            reason: format!("segmentQuery: {e}."),
        })?;
        Ok(Some(text.render_quoted(values)))
    }
}

/// The names of a template audience's mask: `IOS` stands for IOS and OSX.
fn os_names(mask: PushBroadcast) -> Vec<&'static str> {
    let mut names = Vec::new();
    let ios = mask.contains(PushBroadcast::IOS);
    for os in Os::ALL {
        let covered = os == Os::Osx && ios;
        if mask.contains(os.mask()) && !covered {
            names.push(os.as_str());
        }
    }
    names
}

fn bad<T>(reason: String) -> Result<T, Error> {
    Err(Error::InvalidTemplate { reason })
}

/// Checks a template name: 1 to 255 bytes, no `/`, no control character
/// (it is a path segment and appears in logs).
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= limits::MAX_TEMPLATE_NAME_LEN
        && !name.contains('/')
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        bad(format!(
            "A template name is 1 to {} bytes without '/' or control characters, not {}.",
            limits::MAX_TEMPLATE_NAME_LEN,
            quoted(name)
        ))
    }
}

fn smart_text(field: &str, text: &str) -> Result<(), Error> {
    if text.len() > limits::MAX_TEMPLATE_TEXT_LEN {
        return bad(format!(
            "{field} is at most {} bytes; this one is {}.",
            limits::MAX_TEMPLATE_TEXT_LEN,
            text.len()
        ));
    }
    SmartText::parse(text)
        .map(drop)
        .or_else(|e| bad(format!("{field}: {e}.")))
}

fn smart_field(fields: &Map<String, Value>, name: &str) -> Result<String, Error> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => {
            smart_text(name, s)?;
            Ok(s.clone())
        }
        Some(v) => bad(format!("{name} is a string, not {}.", shown(v))),
    }
}

fn headers(map: &Map<String, Value>) -> Result<BTreeMap<String, String>, Error> {
    if map.len() > limits::MAX_TEMPLATE_HEADERS {
        return bad(format!(
            "A template has at most {} headers; this one has {}.",
            limits::MAX_TEMPLATE_HEADERS,
            map.len()
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return bad(format!(
                    "The header {} is a string, not {}.",
                    quoted(k),
                    shown(other)
                ));
            }
        };
        smart_text(&format!("The header {}", quoted(k)), &text)?;
        out.insert(k.clone(), text);
    }
    Ok(out)
}

fn audience(a: &Map<String, Value>) -> Result<(PushBroadcast, String, Option<String>), Error> {
    let os = match a.get("os") {
        None | Some(Value::Null) => PushBroadcast::ALL,
        Some(Value::Array(list)) if !list.is_empty() => {
            let mut bits = 0;
            for v in list {
                let mask = v.as_str().and_then(PushBroadcast::parse).ok_or_else(|| {
                    Error::InvalidTemplate {
                        reason: format!(
                            "audience.os lists IOS, ANDROID, OSX, WP or ALL, not {}.",
                            shown(v)
                        ),
                    }
                })?;
                bits |= mask.bits();
            }
            PushBroadcast::from_bits(bits).unwrap_or(PushBroadcast::ALL)
        }
        Some(Value::String(s)) => {
            PushBroadcast::parse(s).ok_or_else(|| Error::InvalidTemplate {
                reason: format!(
                    "audience.os lists IOS, ANDROID, OSX, WP or ALL, not {}.",
                    quoted(s)
                ),
            })?
        }
        Some(v) => {
            return bad(format!(
                "audience.os is a non-empty list of OS names, not {}.",
                shown(v)
            ));
        }
    };
    // IOS covers OSX devices.
    let os = if os.contains(PushBroadcast::IOS) {
        PushBroadcast::from_bits(os.bits() | PushBroadcast::OSX.bits()).unwrap_or(os)
    } else {
        os
    };
    let channel = match a.get("channel") {
        None | Some(Value::Null) => "default".to_owned(),
        Some(Value::String(s)) => {
            if let Err(e) = limits::check_channel(s) {
                return bad(format!("audience.channel {}: {e}", quoted(s)));
            }
            s.clone()
        }
        Some(v) => return bad(format!("audience.channel is a string, not {}.", shown(v))),
    };
    let segment_query = match a.get("segmentQuery") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            smart_text("audience.segmentQuery", s)?;
            check_segment(s)?;
            Some(s.clone())
        }
        Some(v) => {
            return bad(format!(
                "audience.segmentQuery is a string, not {}.",
                shown(v)
            ));
        }
    };
    Ok((os, channel, segment_query))
}

/// The segment query parses as a selector with any values: filled with
/// empty strings and with a word (a placeholder written inside quotes,
/// `'{x}'`, parses with the first and not with the second).
fn check_segment(q: &str) -> Result<(), Error> {
    let text = SmartText::parse(q).map_err(|e| Error::InvalidTemplate {
        reason: format!("audience.segmentQuery: {e}."),
    })?;
    let probe = NameAsValue;
    for values in [&() as &dyn Headers, &probe] {
        if let Err(e) = Selector::parse(&text.render_quoted(values)) {
            let hint = if text.is_constant() {
                ""
            } else {
                " (placeholders become quoted string literals: write lang = {lang}, not lang = '{lang}')"
            };
            return bad(format!(
                "audience.segmentQuery does not parse: {} at column {}{hint}.",
                e.message(),
                e.column()
            ));
        }
    }
    Ok(())
}

/// Every placeholder's value is the word `x`.
struct NameAsValue;

impl Headers for NameAsValue {
    fn header(&self, _: &str) -> Option<&str> {
        Some("x")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults() {
        let t = PushTemplate::from_json(&json!({"name": "n"})).unwrap();
        assert_eq!(t.os, PushBroadcast::ALL);
        assert_eq!(t.channel, "default");
        assert_eq!(t.segment_query, None);
        assert_eq!(t.message, "");
        assert_eq!(PushTemplate::from_json(&t.to_json()).unwrap(), t);
    }

    #[test]
    fn audience_os_forms() {
        let os = |v: Value| {
            PushTemplate::from_json(&json!({"name": "n", "audience": {"os": v}}))
                .unwrap()
                .os
                .bits()
        };
        assert_eq!(os(json!(["IOS"])), 1 | 8);
        assert_eq!(os(json!(["ANDROID"])), 2);
        assert_eq!(os(json!(["ios", "android"])), 1 | 2 | 8);
        assert_eq!(os(json!(["OSX"])), 8);
        assert_eq!(os(json!("ALL")), 15);
        let t = PushTemplate::from_json(&json!({"name": "n", "audience": {"os": ["OSX", "WP"]}}))
            .unwrap();
        assert_eq!(t.to_json()["audience"]["os"], json!(["WP", "OSX"]));
        assert!(t.targets(Os::Wp) && !t.targets(Os::Ios));
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let cases = [
            (json!("x"), "A template is a JSON object, not \"x\"."),
            (json!({}), "name is required."),
            (
                json!({"name": "a/b"}),
                "A template name is 1 to 255 bytes without '/' or control characters, not \"a/b\".",
            ),
            (
                json!({"name": "n", "title": "{"}),
                "title: '{' at byte 0 is not closed (write '{{' for a literal brace).",
            ),
            (
                json!({"name": "n", "headers": {"h": "{}"}}),
                "The header \"h\": '{' at byte 0 starts a placeholder with no name.",
            ),
            (
                json!({"name": "n", "headers": {"h": [1]}}),
                "The header \"h\" is a string, not [1].",
            ),
            (
                json!({"name": "n", "audience": {"os": ["PALM"]}}),
                "audience.os lists IOS, ANDROID, OSX, WP or ALL, not \"PALM\".",
            ),
            (
                json!({"name": "n", "audience": {"os": []}}),
                "audience.os is a non-empty list of OS names, not [].",
            ),
            (
                json!({"name": "n", "audience": {"channel": ""}}),
                "audience.channel \"\": Invalid channel name. A channel name cannot be empty.",
            ),
        ];
        for (body, reason) in cases {
            let e = PushTemplate::from_json(&body).unwrap_err();
            assert_eq!(e.code(), 5051, "{body}");
            assert_eq!(e.reason(), Some(reason), "{body}");
        }
    }

    #[test]
    fn the_segment_query_parses_whatever_fills_it() {
        let seg = |q: &str| {
            PushTemplate::from_json(&json!({"name": "n", "audience": {"segmentQuery": q}}))
        };
        assert!(seg("lang = {lang|en} AND age > 3").is_ok());
        let e = seg("lang = '{lang}'").unwrap_err();
        assert!(e.reason().unwrap().contains("write lang = {lang}"), "{e}");
        let e = seg("lang = = 1").unwrap_err();
        assert!(
            e.reason()
                .unwrap()
                .starts_with("audience.segmentQuery does not parse:"),
            "{e}"
        );

        let t = seg("lang = {lang|en}").unwrap();
        let s = t.segment(&[("lang", "x' OR 'a' = 'a")]).unwrap().unwrap();
        assert!(!s.matches(&[("lang", "de")]), "the value is one literal");
        assert!(s.matches(&[("lang", "x' OR 'a' = 'a")]));
        let s = t.segment(&()).unwrap().unwrap();
        assert!(s.matches(&[("lang", "en")]));
    }
}
