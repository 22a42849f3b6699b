//! What the payload rules need of a payload, read without building a JSON
//! tree: for a benchmark that does not keep the payloads.
//!
//! The same parser as `serde_json::from_slice::<Value>` reads every value
//! (strings and numbers parsed and checked, not skipped), so exactly the
//! payloads it accepts are accepted; objects keep their last value for a
//! repeated key, as `Value` does.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The visitor methods of every JSON scalar, each giving `$value`. Strings
/// arrive parsed (escapes and UTF-8 checked), as `Value` would read them.
macro_rules! scalars {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// A payload's `aps`, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Aps {
    /// `content-available` is the integer 1.
    pub(crate) content_available: bool,
    /// It has `alert`, `badge` or `sound`.
    pub(crate) alert_badge_or_sound: bool,
}

/// The `aps` object of a JSON payload (`Ok(None)`: the payload is not an
/// object or has no `aps` object), or `Err` when it is not JSON.
pub(crate) fn aps(body: &[u8]) -> Result<Option<Aps>, serde_json::Error> {
    serde_json::from_slice::<Top>(body).map(|top| top.0)
}

/// The whole payload: its `aps` if it is an object with an `aps` object.
struct Top(Option<Aps>);

/// A value read in full and dropped.
struct Skip;

/// An `aps` value: `Some` if it is an object.
struct ApsValue(Option<Aps>);

/// An object key, as far as the rules care.
enum Key {
    Aps,
    ContentAvailable,
    AlertBadgeOrSound,
    Other,
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
                let mut aps = None;
                while let Some(key) = map.next_key::<Key>()? {
                    if matches!(key, Key::Aps) {
                        aps = map.next_value::<ApsValue>()?.0;
                    } else {
                        map.next_value::<Skip>()?;
                    }
                }
                Ok(Top(aps))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Top, A::Error> {
                skip_seq(seq).map(|()| Top(None))
            }
            scalars!(Top(None));
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ApsValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ApsValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ApsValue, A::Error> {
                let mut aps = Aps {
                    content_available: false,
                    alert_badge_or_sound: false,
                };
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::ContentAvailable => {
                            aps.content_available = map.next_value::<Value>()? == 1;
                        }
                        Key::AlertBadgeOrSound => {
                            aps.alert_badge_or_sound = true;
                            map.next_value::<Skip>()?;
                        }
                        Key::Aps | Key::Other => {
                            map.next_value::<Skip>()?;
                        }
                    }
                }
                Ok(ApsValue(Some(aps)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ApsValue, A::Error> {
                skip_seq(seq).map(|()| ApsValue(None))
            }
            scalars!(ApsValue(None));
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Skip;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
                while map.next_entry::<IgnoredKey, Skip>()?.is_some() {}
                Ok(Skip)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Skip, A::Error> {
                skip_seq(seq).map(|()| Skip)
            }
            scalars!(Skip);
        }
        d.deserialize_any(V)
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<Skip>()?.is_some() {}
    Ok(())
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "aps" => Key::Aps,
            "content-available" => Key::ContentAvailable,
            "alert" | "badge" | "sound" => Key::AlertBadgeOrSound,
            _ => Key::Other,
        })
    }
}

/// A key read and dropped.
struct IgnoredKey;

impl<'de> Deserialize<'de> for IgnoredKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor).map(|_| Self)
    }
}
