//! The provider token: the ES256 JWT that authenticates every request
//! (`authorization: bearer <token>`), signed with the team's `.p8` key,
//! cached and reused.
//!
//! # When a new token is signed
//!
//! * Once when the gateway is built (which also proves the key can sign).
//! * When the current one is [`REFRESH_AFTER`] old by the injected clock
//!   (Apple refuses a token whose `iat` is more than an hour old; a2 re-signs
//!   after 55 minutes, Go's apns2 after 50).
//! * When APNs answers `403 ExpiredProviderToken` for the current token.
//!
//! Never twice within [`MIN_RESIGN_INTERVAL`]: APNs answers
//! `429 TooManyProviderTokenUpdates` to a provider that changes its token
//! more often. Concurrent requests that all see `ExpiredProviderToken` for
//! the same token cause one signing; the others reuse its result.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use herald_core::Tick;
use http::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// A token this old (by the gateway's clock) is replaced before use.
pub const REFRESH_AFTER: Duration = Duration::from_secs(50 * 60);

/// The shortest time between two signings (Apple's limit is one new token
/// per 20 minutes).
pub const MIN_RESIGN_INTERVAL: Duration = Duration::from_secs(20 * 60);

/// One signed provider token and when it was signed.
pub(crate) struct Signed {
    /// `bearer <jwt>`.
    ///
    /// Not marked sensitive: HPACK then indexes it, so each request
    /// carries a one-byte reference instead of the ~200-byte token
    /// Huffman-coded anew (measured: 30% of the instructions per
    /// notification, client and server together). The never-indexed flag
    /// guards low-entropy secrets against guessing through compression
    /// (RFC 7541 §7.1); HPACK only matches whole values, and a signed JWT
    /// cannot be guessed. Nothing logs request headers; [`Signed`]'s own
    /// `Debug` redacts it.
    bearer: HeaderValue,
    /// When it was signed, by the gateway's clock (its `iat` is this, in
    /// whole seconds).
    signed_at: Tick,
}

impl Signed {
    /// The `authorization` header value.
    pub(crate) fn bearer(&self) -> &HeaderValue {
        &self.bearer
    }
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("bearer", &"<redacted>")
            .field("signed_at", &self.signed_at)
            .finish()
    }
}

/// Why a key cannot sign provider tokens. Never holds the key's text.
#[derive(Debug)]
pub(crate) struct KeyError(pub(crate) String);

/// The claims of an APNs provider token.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
}

/// The signer and the cached token.
pub(crate) struct ProviderToken {
    key: EncodingKey,
    header: Header,
    team_id: String,
    current: Mutex<Arc<Signed>>,
    signed: AtomicU64,
}

impl ProviderToken {
    /// Reads `key_pem` (a PKCS#8 PEM P-256 key, Apple's `.p8`) and signs
    /// the first token at `now`.
    ///
    /// # Errors
    ///
    /// [`KeyError`] when the text is not such a key (the message says
    /// what is wrong, never what the text holds).
    pub(crate) fn new(
        key_pem: &[u8],
        key_id: &str,
        team_id: &str,
        now: Tick,
    ) -> Result<Self, KeyError> {
        if !key_pem.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(KeyError(
                "no PEM block: Apple's .p8 file is a PEM \"PRIVATE KEY\"".to_owned(),
            ));
        }
        let key = EncodingKey::from_ec_pem(key_pem).map_err(|e| {
            KeyError(format!(
                "not a PKCS#8 PEM EC private key (Apple's .p8 format): {}",
                describe(&e)
            ))
        })?;
        let mut header = Header::new(Algorithm::ES256);
        header.typ = None;
        header.kid = Some(key_id.to_owned());
        let first = sign(&key, &header, team_id, now).map_err(|e| {
            KeyError(format!(
                "cannot sign an ES256 token with it (is it a P-256 key?): {}",
                describe(&e)
            ))
        })?;
        Ok(Self {
            key,
            header,
            team_id: team_id.to_owned(),
            current: Mutex::new(Arc::new(first)),
            signed: AtomicU64::new(1),
        })
    }

    /// The token to use at `now`: the cached one, or a new one if the
    /// cached one is [`REFRESH_AFTER`] old.
    pub(crate) fn current(&self, now: Tick) -> Arc<Signed> {
        let mut current = self.lock();
        if now.millis_since(current.signed_at) >= millis(REFRESH_AFTER) {
            self.resign(&mut current, now);
        }
        current.clone()
    }

    /// APNs answered `ExpiredProviderToken` to a request that carried
    /// `used`: the token to resend with, or, when a new one cannot be
    /// signed yet ([`MIN_RESIGN_INTERVAL`]), how long until it can.
    ///
    /// If another request already replaced `used`, its replacement is
    /// returned without signing again.
    pub(crate) fn on_expired(
        &self,
        used: &Arc<Signed>,
        now: Tick,
    ) -> Result<Arc<Signed>, Duration> {
        let mut current = self.lock();
        if !Arc::ptr_eq(&current, used) {
            return Ok(current.clone());
        }
        let age = now.millis_since(current.signed_at);
        let floor = millis(MIN_RESIGN_INTERVAL);
        if age < floor {
            return Err(Duration::from_millis(floor - age));
        }
        self.resign(&mut current, now);
        Ok(current.clone())
    }

    /// How many tokens have been signed (the first one included).
    pub(crate) fn signed(&self) -> u64 {
        self.signed.load(Ordering::Relaxed)
    }

    /// Signs a new token into `current`; keeps the old one if signing
    /// fails (a key that signed once does not stop signing, short of the
    /// system's random source failing).
    fn resign(&self, current: &mut Arc<Signed>, now: Tick) {
        match sign(&self.key, &self.header, &self.team_id, now) {
            Ok(new) => {
                *current = Arc::new(new);
                self.signed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %describe(&e), "cannot sign a new APNs provider token; keeping the current one");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<Signed>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.lock();
        f.debug_struct("ProviderToken")
            .field("key_id", &self.header.kid)
            .field("team_id", &self.team_id)
            .field("token", &"<redacted>")
            .field("signed_at", &current.signed_at)
            .field("signed", &self.signed())
            .finish()
    }
}

fn sign(
    key: &EncodingKey,
    header: &Header,
    team_id: &str,
    now: Tick,
) -> Result<Signed, jsonwebtoken::errors::Error> {
    let claims = Claims {
        iss: team_id,
        iat: now.as_millis() / 1000,
    };
    let jwt = jsonwebtoken::encode(header, &claims, key)?;
    let bearer = HeaderValue::try_from(format!("bearer {jwt}"))
        .expect("a JWT is base64url and dots: a valid header value");
    Ok(Signed {
        bearer,
        signed_at: now,
    })
}

/// What a jsonwebtoken error says, in words (its kinds hold no key text).
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidKeyFormat => "the PEM block is not a private key".to_owned(),
        ErrorKind::InvalidEcdsaKey => "the key is not a valid ECDSA P-256 key".to_owned(),
        other => format!("{other:?}"),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_pem()
    }

    const MIN: u64 = 60_000;

    #[test]
    fn reused_until_fifty_minutes_then_resigned() {
        let t = ProviderToken::new(
            key().as_bytes(),
            "ABC123DEFG",
            "DEF123GHIJ",
            Tick::from_millis(MIN),
        )
        .unwrap();
        let first = t.current(Tick::from_millis(MIN));
        assert!(Arc::ptr_eq(
            &first,
            &t.current(Tick::from_millis(50 * MIN - 1))
        ));
        assert_eq!(t.signed(), 1);
        let second = t.current(Tick::from_millis(51 * MIN));
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(t.signed(), 2);
        assert_ne!(first.bearer(), second.bearer());
        // A clock that steps back keeps the token.
        assert!(Arc::ptr_eq(&second, &t.current(Tick::from_millis(0))));
    }

    #[test]
    fn expired_resigns_at_most_once_per_twenty_minutes() {
        let start = Tick::from_millis(100 * MIN);
        let t = ProviderToken::new(key().as_bytes(), "ABC123DEFG", "DEF123GHIJ", start).unwrap();
        let first = t.current(start);
        let wait = t
            .on_expired(&first, start.saturating_add_millis(5 * MIN))
            .unwrap_err();
        assert_eq!(wait, Duration::from_millis(15 * MIN));
        let at = start.saturating_add_millis(20 * MIN);
        let second = t.on_expired(&first, at).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        // Other requests that carried the old token get the new one.
        let again = t.on_expired(&first, at).unwrap();
        assert!(Arc::ptr_eq(&second, &again));
        assert_eq!(t.signed(), 2);
        // The new one expired too: no new token before another 20 minutes.
        assert!(
            t.on_expired(&second, at.saturating_add_millis(MIN))
                .is_err()
        );
    }

    #[test]
    fn the_token_is_an_es256_jwt_with_kid_iss_iat() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let t = ProviderToken::new(
            pair.serialize_pem().as_bytes(),
            "ABC123DEFG",
            "DEF123GHIJ",
            Tick::from_millis(1_700_000_000_123),
        )
        .unwrap();
        let bearer = t.current(Tick::from_millis(1_700_000_000_123));
        let jwt = bearer
            .bearer()
            .to_str()
            .unwrap()
            .strip_prefix("bearer ")
            .unwrap()
            .to_owned();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("ABC123DEFG"));
        assert_eq!(header.typ, None);
        let key = jsonwebtoken::DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes()).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &v).unwrap();
        assert_eq!(
            data.claims,
            serde_json::json!({"iss": "DEF123GHIJ", "iat": 1_700_000_000})
        );
        assert!(format!("{t:?}").contains("<redacted>"));
        assert!(!format!("{t:?}").contains(&jwt[..20]));
        assert!(!format!("{bearer:?}").contains(&jwt[..20]));
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        let rsa_like = "-----BEGIN PRIVATE KEY-----\nTUlJQ2VnSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NBbVF3Z2dKZ0FnRUFBb0dCQU1h\n-----END PRIVATE KEY-----\n";
        for text in ["", "hello", rsa_like] {
            let e = ProviderToken::new(text.as_bytes(), "ABC123DEFG", "DEF123GHIJ", Tick::ZERO)
                .unwrap_err();
            assert!(!e.0.is_empty());
            if !text.is_empty() {
                assert!(!e.0.contains("TUlJ") && !e.0.contains("hello"), "{}", e.0);
            }
        }
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .unwrap()
            .serialize_pem();
        assert!(
            ProviderToken::new(p384.as_bytes(), "ABC123DEFG", "DEF123GHIJ", Tick::ZERO).is_err()
        );
    }
}
