//! `Fields`: the option fields of a flat request body, from a parsed JSON
//! object or from raw JSON fields (where only the option fields are
//! parsed, never the message).

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::Error;

/// Where option decoders read fields from.
pub(crate) enum Fields<'a> {
    /// A parsed JSON object (or nothing: every field absent).
    Object(Option<&'a Map<String, Value>>),
    /// The raw fields of a request body, parsed one by one on demand.
    Raw(&'a HashMap<Cow<'a, str>, &'a RawValue>),
}

impl<'a> Fields<'a> {
    /// The fields of `body` if it is an object (else none).
    pub(crate) fn of(body: &'a Value) -> Self {
        Self::Object(body.as_object())
    }

    /// Field `name`, with `null` meaning absent. A raw field that does not
    /// parse into a value (nested deeper than `serde_json`'s limit) is
    /// [`Error::InvalidOptions`] naming it.
    pub(crate) fn get(&self, name: &'static str) -> Result<Option<Cow<'a, Value>>, Error> {
        let v = match self {
            Self::Object(obj) => obj.and_then(|o| o.get(name)).map(Cow::Borrowed),
            Self::Raw(map) => match map.get(name) {
                None => None,
                Some(raw) => Some(Cow::Owned(serde_json::from_str(raw.get()).map_err(
                    |e| Error::InvalidOptions {
                        field: name,
                        reason: format!("{name} does not parse: {e}."),
                    },
                )?)),
            },
        };
        Ok(v.filter(|v| !v.is_null()))
    }
}
