//! `PublishRequest`: the flat publish body the SDKs send.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;
use serde_json::value::RawValue;

use super::{DeliveryOptions, Fields, PublishOptions};
use crate::{Body, Error};

/// A decoded publish request body: the message plus both option sets, as the
/// JS SDK sends them (`Object.assign({message}, publishOptions, deliveryOptions)`).
///
/// # Examples
///
/// ```
/// use herald::PublishRequest;
///
/// let req = PublishRequest::from_slice(
///     br#"{"message": {"text": "hi"}, "headers": {"city": "Berlin"}, "publishAt": 1900000000000}"#,
/// )?;
/// assert_eq!(req.message.get(), r#"{"text": "hi"}"#); // the body's bytes, untouched
/// assert_eq!(req.publish.headers["city"], "Berlin");
/// assert!(req.delivery.publish_at.is_some());
/// # Ok::<(), herald::RequestError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PublishRequest {
    /// `message`: any JSON value (`null` when absent).
    pub message: Body,
    /// The publish options found in the body.
    pub publish: PublishOptions,
    /// The delivery options found in the body.
    pub delivery: DeliveryOptions,
}

/// Why [`PublishRequest::from_slice`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The bytes are not one JSON value.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is fine but an option is not (with its Backendless code).
    #[error(transparent)]
    Invalid(#[from] Error),
}

impl PublishRequest {
    /// Decodes a flat publish body from its bytes, without parsing the
    /// message: the message is kept as the JSON text it arrived as (one
    /// copy), and only the option fields are parsed. A body that is not an
    /// object is taken as the message itself, with no options.
    ///
    /// # Errors
    ///
    /// [`RequestError::Json`] if `bytes` is not one JSON value;
    /// [`RequestError::Invalid`] as [`PublishOptions::from_json`] and
    /// [`DeliveryOptions::from_json`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, RequestError> {
        let raw: &RawValue = serde_json::from_slice(bytes)?;
        if !raw.get().starts_with('{') {
            return Ok(Self {
                message: Body::from_raw(raw),
                ..Self::default()
            });
        }
        let map: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(raw.get())?;
        let fields = Fields::Raw(&map);
        Ok(Self {
            message: map
                .get("message")
                .map_or_else(Body::null, |m| Body::from_raw(m)),
            publish: PublishOptions::from_fields(&fields)?,
            delivery: DeliveryOptions::from_fields(&fields)?,
        })
    }

    /// Decodes a flat publish body that is already a [`Value`]. A body that
    /// is not an object is taken as the message itself, with no options.
    ///
    /// # Errors
    ///
    /// As [`PublishOptions::from_json`] and [`DeliveryOptions::from_json`].
    pub fn from_json(body: &Value) -> Result<Self, Error> {
        match body {
            Value::Object(obj) => Ok(Self {
                message: obj.get("message").map_or_else(Body::null, Body::from),
                publish: PublishOptions::from_json(body)?,
                delivery: DeliveryOptions::from_json(body)?,
            }),
            other => Ok(Self {
                message: Body::from(other),
                ..Self::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bytes_and_values_decode_alike() {
        let cases = [
            json!({"message": {"a": [1, 2]}, "headers": {"x": 1}, "publishAt": 5, "junk": {"deep": [[]]}}),
            json!({"message": null, "publisherId": "p"}),
            json!({"repeatEvery": 60}),
            json!([1, 2, 3]),
            json!("just text"),
            json!(42),
        ];
        for body in cases {
            let bytes = serde_json::to_vec(&body).unwrap();
            let a = PublishRequest::from_slice(&bytes).unwrap();
            let b = PublishRequest::from_json(&body).unwrap();
            assert_eq!(a, b, "{body}");
        }
    }

    #[test]
    fn the_message_keeps_its_bytes() {
        let req =
            PublishRequest::from_slice(br#" { "message" : [ 1 ,2 ] , "subtopic": "t" } "#).unwrap();
        assert_eq!(req.message.get(), "[ 1 ,2 ]");
        assert_eq!(req.publish.subtopic.as_deref(), Some("t"));
    }

    #[test]
    fn errors_say_which_kind() {
        assert!(matches!(
            PublishRequest::from_slice(b"{nope"),
            Err(RequestError::Json(_))
        ));
        assert!(matches!(
            PublishRequest::from_slice(b"{} {}"),
            Err(RequestError::Json(_))
        ));
        match PublishRequest::from_slice(br#"{"repeatEvery": 0}"#) {
            Err(RequestError::Invalid(e)) => assert_eq!(e.code(), 5008),
            other => panic!("{other:?}"),
        }
        // An option nested too deep to parse is that option's error.
        let deep = format!(r#"{{"headers": {}1{}}}"#, "[".repeat(200), "]".repeat(200));
        match PublishRequest::from_slice(deep.as_bytes()) {
            Err(RequestError::Invalid(e)) => assert_eq!(e.code(), 5013),
            other => panic!("{other:?}"),
        }
    }
}
