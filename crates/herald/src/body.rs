//! `Body`: a message body as raw JSON text, validated once.

use std::fmt;
use std::sync::{Arc, LazyLock};

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

/// A published message body: any JSON value, kept as the JSON text it
/// arrived as.
///
/// The engine never looks inside a body: it is validated once when it is
/// made ([`from_json`](Self::from_json), or serialized from a [`Value`]),
/// stored as these bytes, read back without parsing, and copied byte for
/// byte into every delivered frame. Cloning is a reference-count increment.
///
/// # Examples
///
/// ```
/// use herald::Body;
/// use serde_json::json;
///
/// let raw = Body::from_json(r#"{"order": 42, "items": [1, 2]}"#)?;
/// assert_eq!(raw.get(), r#"{"order": 42, "items": [1, 2]}"#); // as it came
/// assert_eq!(raw.to_value()?["order"], 42);
///
/// let from_value = Body::from(json!({"order": 42}));
/// assert_eq!(from_value.get(), r#"{"order":42}"#);
/// assert_eq!(Body::from("hi").get(), r#""hi""#); // a &str is a JSON string
/// assert!(Body::from_json("{oops").is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Body(Arc<str>);

static NULL: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("null"));

impl Body {
    /// The JSON `null` (what a publish without a message carries).
    pub fn null() -> Self {
        Self(NULL.clone())
    }

    /// Validates `text` as one JSON value and keeps it as it is (without
    /// the whitespace around it). Nesting depth is not limited: the engine
    /// never parses a body, only [`to_value`](Self::to_value) does.
    ///
    /// # Errors
    ///
    /// `text` is not exactly one JSON value.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(text)?;
        Ok(Self::from_raw(raw))
    }

    /// A body from an already validated raw JSON value.
    pub fn from_raw(raw: &RawValue) -> Self {
        Self(Arc::from(raw.get()))
    }

    /// A body from JSON text that the caller has already validated: a store
    /// reading back what it wrote from a `Body`. Nothing is checked, so
    /// text that is not JSON would be delivered as it is (never undefined
    /// behaviour, but broken frames).
    #[doc(hidden)]
    pub fn from_trusted(text: impl Into<Arc<str>>) -> Self {
        Self(text.into())
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }

    /// The JSON text's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty (never, for a valid body).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the body into a [`Value`] (a full parse: for tests and
    /// callers that need to look inside; the engine never does).
    ///
    /// # Errors
    ///
    /// The body nests deeper than `serde_json`'s recursion limit (128).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// Deserializes the body into any `T`.
    ///
    /// # Errors
    ///
    /// The JSON does not have `T`'s shape.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The body as a [`RawValue`], which serializes as these exact bytes.
    /// Costs one validating scan and a copy (the engine's own frames splice
    /// the text in directly instead).
    pub fn to_raw_value(&self) -> Box<RawValue> {
        RawValue::from_string(self.0.to_string()).unwrap_or_else(|_| {
            // Unreachable for a body made by the constructors above.
            RawValue::from_string("null".to_owned()).expect("null is JSON")
        })
    }
}

impl From<Value> for Body {
    fn from(v: Value) -> Self {
        Self::from(&v)
    }
}

impl From<&Value> for Body {
    fn from(v: &Value) -> Self {
        // A `Value` always serializes (its map keys are strings).
        Self(Arc::from(v.to_string()))
    }
}

impl From<&str> for Body {
    /// The JSON string `s` (as `serde_json::Value::from(&str)`), not JSON
    /// text: use [`Body::from_json`] for that.
    fn from(s: &str) -> Self {
        Self::from(Value::from(s))
    }
}

impl From<String> for Body {
    /// The JSON string `s`; see `From<&str>`.
    fn from(s: String) -> Self {
        Self::from(Value::from(s))
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::null()
    }
}

impl PartialEq<Value> for Body {
    /// Parses the body and compares values (for tests; costs a parse).
    fn eq(&self, other: &Value) -> bool {
        self.to_value().is_ok_and(|v| v == *other)
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 120;
        if self.0.len() <= SHOWN {
            write!(f, "Body({})", self.0)
        } else {
            let mut end = SHOWN;
            while !self.0.is_char_boundary(end) {
                end -= 1;
            }
            write!(f, "Body({}… {} bytes)", &self.0[..end], self.0.len())
        }
    }
}

impl fmt::Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Body {
    /// Serializes as the JSON text itself (through [`RawValue`], so with
    /// `serde_json` the bytes are copied unchanged).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_raw_value().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok(Self::from_raw(&raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_the_text_and_trims_the_outside() {
        let b = Body::from_json("  [1,  2 ,3]\n").unwrap();
        assert_eq!(b.get(), "[1,  2 ,3]");
        assert_eq!(b, json!([1, 2, 3]));
        assert_eq!(b.len(), 10);
    }

    #[test]
    fn rejects_what_is_not_one_json_value() {
        for bad in ["", " ", "{", "1 2", "[1,]", "nul", "\"unterminated"] {
            assert!(Body::from_json(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deep_nesting_is_kept_but_does_not_parse_into_a_value() {
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        let b = Body::from_json(&deep).expect("valid JSON");
        assert_eq!(b.get(), deep);
        assert!(b.to_value().is_err(), "beyond serde_json's recursion limit");
    }

    #[test]
    fn serializes_as_its_bytes() {
        let b = Body::from_json(r#"{"a" : "é\u00e9"}"#).unwrap();
        let wrapped = serde_json::to_string(&json!({"x": 1})).unwrap();
        assert_eq!(wrapped, r#"{"x":1}"#);
        let out = serde_json::to_string(&b).unwrap();
        assert_eq!(out, r#"{"a" : "é\u00e9"}"#);
        let back: Body = serde_json::from_str(&out).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn conversions() {
        assert_eq!(Body::null().get(), "null");
        assert_eq!(Body::default(), Body::null());
        assert_eq!(Body::from("a\"b").get(), r#""a\"b""#);
        assert_eq!(Body::from(json!({"k": [true]})).get(), r#"{"k":[true]}"#);
        let d: Vec<u32> = Body::from(json!([1, 2])).deserialize().unwrap();
        assert_eq!(d, [1, 2]);
        let long = Body::from("x".repeat(500));
        assert!(format!("{long:?}").contains("502 bytes"));
    }
}
