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
    /// `message`: any JSON value (including `null`).
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
    /// copy), and only the option fields are parsed.
    ///
    /// # Errors
    ///
    /// [`RequestError::Json`] if `bytes` is not one JSON value;
    /// [`RequestError::Invalid`] with [`Error::MissingMessage`] (5013) if
    /// it is not an object with a `message` key (`"message": null` is a
    /// message), else as [`PublishOptions::from_json`] and
    /// [`DeliveryOptions::from_json`].
    pub fn from_slice(bytes: &[u8]) -> Result<Self, RequestError> {
        let raw: &RawValue = serde_json::from_slice(bytes)?;
        if !raw.get().starts_with('{') {
            return Err(Error::MissingMessage.into());
        }
        let map: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(raw.get())?;
        let fields = Fields::Raw(&map);
        let message = map.get("message").ok_or(Error::MissingMessage)?;
        Ok(Self {
            message: Body::from_raw(message),
            publish: PublishOptions::from_fields(&fields)?,
            delivery: DeliveryOptions::from_fields(&fields)?,
        })
    }

    /// Decodes a flat publish body that is already a [`Value`].
    ///
    /// # Errors
    ///
    /// [`Error::MissingMessage`] (5013) if `body` is not an object with a
    /// `message` key, else as [`PublishOptions::from_json`] and
    /// [`DeliveryOptions::from_json`].
    pub fn from_json(body: &Value) -> Result<Self, Error> {
        let message = body.get("message").ok_or(Error::MissingMessage)?;
        Ok(Self {
            message: Body::from(message),
            publish: PublishOptions::from_json(body)?,
            delivery: DeliveryOptions::from_json(body)?,
        })
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
            json!({"repeatEvery": 60, "message": "m"}),
        ];
        for body in cases {
            let bytes = serde_json::to_vec(&body).unwrap();
            let a = PublishRequest::from_slice(&bytes).unwrap();
            let b = PublishRequest::from_json(&body).unwrap();
            assert_eq!(a, b, "{body}");
        }
    }

    #[test]
    fn a_body_without_a_message_is_refused() {
        for body in [
            json!({}),
            json!({"repeatEvery": 60}),
            json!({"Message": 1}),
            json!([1, 2, 3]),
            json!("just text"),
            json!(42),
            json!(null),
        ] {
            let bytes = serde_json::to_vec(&body).unwrap();
            match PublishRequest::from_slice(&bytes) {
                Err(RequestError::Invalid(e)) => {
                    assert_eq!(
                        (e.code(), e.to_string()),
                        (5013, "message is required".into())
                    );
                }
                other => panic!("{body}: {other:?}"),
            }
            let e = PublishRequest::from_json(&body).unwrap_err();
            assert!(matches!(e, Error::MissingMessage), "{body}: {e:?}");
        }
        // A null message is a message.
        let req = PublishRequest::from_slice(br#"{"message": null}"#).unwrap();
        assert_eq!(req.message.get(), "null");
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
        match PublishRequest::from_slice(br#"{"message": 1, "repeatEvery": 0}"#) {
            Err(RequestError::Invalid(e)) => assert_eq!(e.code(), 5008),
            other => panic!("{other:?}"),
        }
        // An option nested too deep to parse is that option's error.
        let deep = format!(
            r#"{{"message": 1, "headers": {}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        match PublishRequest::from_slice(deep.as_bytes()) {
            Err(RequestError::Invalid(e)) => assert_eq!(e.code(), 5013),
            other => panic!("{other:?}"),
        }
    }
}
