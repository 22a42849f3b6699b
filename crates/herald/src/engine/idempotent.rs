//! Idempotent publishes: [`PublishExtras`], the request's fingerprint, and
//! the answer a retry gets.
//!
//! A publish with an idempotency key is first looked up by its key: a key
//! that holds answers the first publish's answer (same message id and
//! status kind) without validating or publishing anything, or
//! [`Error::IdempotencyKeyReused`] when its request differs. Otherwise the
//! publish goes on as usual, and the store records the key with the
//! message, atomically ([`Store::insert_idempotent`](crate::Store::insert_idempotent)),
//! which also settles two racing requests with one key.

use herald_core::Tick;

use super::shared::Shared;
use crate::store::KeyRecord;
use crate::{Body, DeliveryCounts, DeliveryOptions, Error, MessageStatus, PublishOptions, limits};

/// What a publish may carry beyond Backendless's options (see
/// [`Engine::publish_with`](crate::Engine::publish_with)).
///
/// # Examples
///
/// ```
/// use herald::PublishExtras;
///
/// let extras = PublishExtras::default().with_idempotency_key("order-42-confirmation");
/// assert_eq!(extras.idempotency_key.as_deref(), Some("order-42-confirmation"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishExtras {
    /// The client's key for this request (an HTTP `Idempotency-Key`): a
    /// retry with the same key within 24 hours answers the first answer
    /// (same message id and status kind) and publishes nothing; with a
    /// different request (channel, options or message), error 5095. At
    /// most 255 printable ASCII characters (else 5096).
    pub idempotency_key: Option<String>,
}

impl PublishExtras {
    /// These extras with `key` as the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// FNV-1a, 128 bits (Fowler, Noll, Vo): stable across builds and
/// platforms (it is stored), cheap, and wide enough that two different
/// requests under one key do not collide by accident.
struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;

    fn new() -> Self {
        Self(Self::OFFSET)
    }

    /// Adds `bytes` and a separator (so fields cannot run into each other).
    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes.iter().chain(&[0xFF]) {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
        self
    }
}

/// The fingerprint of a publish request: its channel, both option sets
/// (their JSON forms, keys sorted) and the message's JSON text as sent.
pub(super) fn fingerprint(
    channel: &str,
    publish: &PublishOptions,
    delivery: &DeliveryOptions,
    body: &Body,
) -> u128 {
    let publish = serde_json::Value::Object(publish.to_json()).to_string();
    let delivery = serde_json::Value::Object(delivery.to_json()).to_string();
    Fnv128::new()
        .field(b"herald publish v1")
        .field(channel.as_bytes())
        .field(publish.as_bytes())
        .field(delivery.as_bytes())
        .field(body.get().as_bytes())
        .0
}

/// A checked key and the request's fingerprint, or nothing without a key.
pub(super) fn checked(
    extras: PublishExtras,
    channel: &str,
    publish: &PublishOptions,
    delivery: &DeliveryOptions,
    body: &Body,
) -> Result<Option<(String, u128)>, Error> {
    let Some(key) = extras.idempotency_key else {
        return Ok(None);
    };
    limits::check_idempotency_key(&key)?;
    Ok(Some((key, fingerprint(channel, publish, delivery, body))))
}

/// The key's record, if it holds at `now`.
pub(super) async fn lookup(sh: &Shared, key: &str, now: Tick) -> Result<Option<KeyRecord>, Error> {
    Ok(sh
        .store
        .idempotency_key(key)
        .await?
        .filter(|r| r.expires_at > now))
}

/// The answer to a retry: the first answer's message id and status kind,
/// with the message's counters now (none if it was purged); or 5095 if the
/// request is not the first one.
pub(super) async fn answer(
    sh: &Shared,
    found: KeyRecord,
    fingerprint: u128,
) -> Result<MessageStatus, Error> {
    if found.fingerprint != fingerprint {
        return Err(Error::IdempotencyKeyReused);
    }
    let deliveries = match sh.store.get(found.id).await {
        Ok(Some(record)) => record.counts,
        // Purged, or unreadable right now: the answer stands without them.
        Ok(None) | Err(_) => DeliveryCounts::default(),
    };
    Ok(MessageStatus {
        message_id: String::from(found.id),
        status: found.status,
        error_message: None,
        deliveries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_128_matches_its_reference_values() {
        // FNV-1a 128 of "" and "a" (from the FNV reference).
        assert_eq!(Fnv128::new().0, 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        let mut h = Fnv128::new();
        for &b in b"a" {
            h.0 ^= u128::from(b);
            h.0 = h.0.wrapping_mul(Fnv128::PRIME);
        }
        assert_eq!(h.0, 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }

    #[test]
    fn the_fingerprint_covers_channel_options_and_message() {
        let body = Body::from_json(r#"{"a": 1}"#).unwrap();
        let base = fingerprint(
            "c",
            &PublishOptions::default(),
            &DeliveryOptions::default(),
            &body,
        );
        assert_eq!(
            base,
            fingerprint(
                "c",
                &PublishOptions::default(),
                &DeliveryOptions::default(),
                &body
            ),
            "stable"
        );
        let mut publish = PublishOptions::default();
        publish.headers.insert("h".into(), "1".into());
        let delivery = DeliveryOptions {
            repeat_every: Some(chrono::TimeDelta::seconds(5)),
            ..DeliveryOptions::default()
        };
        let other = Body::from_json(r#"{"a": 2}"#).unwrap();
        for changed in [
            fingerprint(
                "d",
                &PublishOptions::default(),
                &DeliveryOptions::default(),
                &body,
            ),
            fingerprint("c", &publish, &DeliveryOptions::default(), &body),
            fingerprint("c", &PublishOptions::default(), &delivery, &body),
            fingerprint(
                "c",
                &PublishOptions::default(),
                &DeliveryOptions::default(),
                &other,
            ),
        ] {
            assert_ne!(changed, base);
        }
        // Fields do not run into each other.
        assert_ne!(
            Fnv128::new().field(b"ab").field(b"c").0,
            Fnv128::new().field(b"a").field(b"bc").0
        );
    }
}
