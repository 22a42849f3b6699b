//! What a publish asks for: [`PublishOptions`], [`DeliveryOptions`] (with
//! [`PublishPolicy`] and [`PushBroadcast`]) and the flat request body,
//! [`PublishRequest`].
//!
//! The Rust API uses `chrono` types; the wire form (serde) uses Backendless's
//! JSON names and units: `publishAt` and `repeatExpiresAt` in epoch
//! milliseconds, `repeatEvery` in seconds. Decoding checks each field's
//! shape and range and reports a malformed one with its Backendless code;
//! the rules that relate fields to each other or to the clock are the
//! [`DeliveryPlan`](crate::DeliveryPlan)'s.

mod delivery;
mod fields;
mod policy;
mod publish;
mod request;

pub use delivery::DeliveryOptions;
pub use policy::{PublishPolicy, PushBroadcast};
pub use publish::PublishOptions;
pub use request::{PublishRequest, RequestError};

pub(crate) use fields::Fields;

macro_rules! json_serde {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.to_json().serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = serde_json::Value::deserialize(d)?;
                Self::from_json(&v).map_err(serde::de::Error::custom)
            }
        }
    };
}

json_serde!(PublishOptions);
json_serde!(DeliveryOptions);
