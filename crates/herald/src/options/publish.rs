//! `PublishOptions`: who publishes and with which headers.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Fields;
use crate::Error;
use crate::error::shown;

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

impl PublishOptions {
    /// Decodes the publish options from a JSON object (the flat request body:
    /// other keys are ignored). `null` and absent fields are unset.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] (5013) if `headers` is not an object, or
    /// `publisherId` / `subtopic` is not a string or number.
    pub fn from_json(body: &Value) -> Result<Self, Error> {
        Self::from_fields(&Fields::of(body))
    }

    pub(crate) fn from_fields(fields: &Fields<'_>) -> Result<Self, Error> {
        let text = |field: &'static str| -> Result<Option<String>, Error> {
            match fields.get(field)?.as_deref() {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
                Some(v) => Err(Error::InvalidOptions {
                    field,
                    reason: format!("{field} is a string or a number, not {}.", shown(v)),
                }),
            }
        };
        let mut headers = BTreeMap::new();
        match fields.get("headers")?.as_deref() {
            None => {}
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
            Some(v) => {
                return Err(Error::InvalidOptions {
                    field: "headers",
                    reason: format!(
                        "headers is an object of header names to values, not {}.",
                        shown(v)
                    ),
                });
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let e = PublishOptions::from_json(&json!({"publisherId": {}})).unwrap_err();
        assert_eq!(e.code(), 5013);
    }

    #[test]
    fn round_trips() {
        let o = PublishOptions::from_json(&json!({
            "publisherId": 7, "subtopic": "s", "headers": {"a": "b"}
        }))
        .unwrap();
        assert_eq!(o.publisher_id.as_deref(), Some("7"));
        assert_eq!(
            PublishOptions::from_json(&Value::Object(o.to_json())).unwrap(),
            o
        );
    }
}
