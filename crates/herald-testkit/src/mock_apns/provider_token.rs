//! The mock's provider-token check: what APNs checks of the
//! `authorization: bearer <jwt>` header.
//!
//! * An ES256 signature by the team's key, `kid` the key's id, `iss` the
//!   team's id, a numeric `iat` (else `403 InvalidProviderToken`).
//! * `iat` at most an hour old by the mock's clock (else
//!   `403 ExpiredProviderToken`).
//! * A *new* token (one not seen before) for the key less than 20 minutes,
//!   by the mock's clock, after the previous new one is refused with
//!   `429 TooManyProviderTokenUpdates`, and not remembered.
//!
//! A token that passed is remembered (its `iat`), so its signature is
//! verified once, not per request: the mock stays cheap under a benchmark.
//! Only accepted tokens are remembered, and at most one a 20 minutes of
//! mock time gets in, so the cache stays small whatever clients send.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use herald_core::Tick;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::reply::Rejection;

/// How old (ms) a token's `iat` may be.
const MAX_AGE_MS: u64 = 60 * 60 * 1000;
/// The shortest time (ms) between two new tokens for one key.
const MIN_UPDATE_MS: u64 = 20 * 60 * 1000;

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    iat: Option<u64>,
}

struct Seen {
    /// Accepted tokens and their `iat` (seconds).
    tokens: HashMap<String, u64>,
    /// When the last new token was accepted.
    last_new: Option<Tick>,
}

/// Verifies provider tokens for one key and team.
pub(crate) struct ProviderTokens {
    key: DecodingKey,
    key_id: String,
    team_id: String,
    validation: Validation,
    seen: Mutex<Seen>,
    distinct: AtomicU64,
}

impl ProviderTokens {
    /// A checker for tokens signed by the private half of
    /// `public_key_pem` (SPKI PEM, P-256).
    ///
    /// # Errors
    ///
    /// When `public_key_pem` is not an EC public key.
    pub(crate) fn new(public_key_pem: &str, key_id: &str, team_id: &str) -> Result<Self, String> {
        let key = DecodingKey::from_ec_pem(public_key_pem.as_bytes())
            .map_err(|e| format!("the mock's public key is not an EC public key in PEM: {e}"))?;
        let mut validation = Validation::new(Algorithm::ES256);
        // APNs tokens have neither `exp` nor `aud`: the age rule is ours.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        Ok(Self {
            key,
            key_id: key_id.to_owned(),
            team_id: team_id.to_owned(),
            validation,
            seen: Mutex::new(Seen {
                tokens: HashMap::new(),
                last_new: None,
            }),
            distinct: AtomicU64::new(0),
        })
    }

    /// Checks the `authorization` header's value (`None`: absent) at the
    /// mock's time `now`.
    pub(crate) fn check(&self, authorization: Option<&[u8]>, now: Tick) -> Result<(), Rejection> {
        let Some(value) = authorization else {
            return Err(Rejection::new(403, "MissingProviderToken"));
        };
        let invalid = || Rejection::new(403, "InvalidProviderToken");
        let value = std::str::from_utf8(value).map_err(|_| invalid())?;
        let (scheme, jwt) = value.split_once(' ').ok_or_else(invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") || jwt.is_empty() {
            return Err(invalid());
        }
        let now_s = now.as_millis() / 1000;
        let fresh = |iat: u64| now_s.saturating_sub(iat).saturating_mul(1000) <= MAX_AGE_MS;
        if let Some(&iat) = self.lock().tokens.get(jwt) {
            return if fresh(iat) {
                Ok(())
            } else {
                Err(Rejection::new(403, "ExpiredProviderToken"))
            };
        }
        // A token not seen yet: verify it (outside the lock).
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| invalid())?;
        if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(self.key_id.as_str()) {
            return Err(invalid());
        }
        let claims = jsonwebtoken::decode::<Claims>(jwt, &self.key, &self.validation)
            .map_err(|_| invalid())?
            .claims;
        if claims.iss.as_deref() != Some(self.team_id.as_str()) {
            return Err(invalid());
        }
        let iat = claims.iat.ok_or_else(invalid)?;
        if !fresh(iat) {
            return Err(Rejection::new(403, "ExpiredProviderToken"));
        }
        let mut seen = self.lock();
        if seen.tokens.contains_key(jwt) {
            return Ok(()); // accepted by a concurrent request meanwhile
        }
        if seen
            .last_new
            .is_some_and(|last| now.millis_since(last) < MIN_UPDATE_MS)
        {
            return Err(Rejection::new(429, "TooManyProviderTokenUpdates"));
        }
        seen.last_new = Some(now);
        seen.tokens.insert(jwt.to_owned(), iat);
        self.distinct.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// How many distinct tokens have been accepted.
    pub(crate) fn distinct(&self) -> u64 {
        self.distinct.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::mock_apns::TestApnsKey;

    const MIN: u64 = 60_000;

    fn jwt(key: &TestApnsKey, kid: &str, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        let k = EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap();
        format!(
            "bearer {}",
            jsonwebtoken::encode(&header, &claims, &k).unwrap()
        )
    }

    fn reason(r: Result<(), Rejection>) -> String {
        match r {
            Ok(()) => "ok".to_owned(),
            Err(r) => format!("{} {}", r.status, r.reason),
        }
    }

    #[test]
    fn what_apns_checks() {
        let key = TestApnsKey::generate();
        let other = TestApnsKey::generate();
        let t = ProviderTokens::new(&key.public_pem, &key.key_id, &key.team_id).unwrap();
        let now = Tick::from_millis(1_000_000 * MIN);
        let iat = now.as_millis() / 1000;
        let check = |auth: &str, at: Tick| reason(t.check(Some(auth.as_bytes()), at));
        assert_eq!(reason(t.check(None, now)), "403 MissingProviderToken");
        for bad in [
            "".to_owned(),
            "bearer".to_owned(),
            "bearer ".to_owned(),
            "basic abc".to_owned(),
            "bearer not.a.jwt".to_owned(),
            jwt(&other, &key.key_id, json!({"iss": key.team_id, "iat": iat})),
            jwt(&key, "OTHERKEY01", json!({"iss": key.team_id, "iat": iat})),
            jwt(&key, &key.key_id, json!({"iss": "OTHERTEAM1", "iat": iat})),
            jwt(&key, &key.key_id, json!({"iss": key.team_id})),
            jwt(
                &key,
                &key.key_id,
                json!({"iss": key.team_id, "iat": "soon"}),
            ),
        ] {
            assert_eq!(check(&bad, now), "403 InvalidProviderToken", "{bad}");
        }
        assert_eq!(
            reason(t.check(Some(&[0xff, 0xfe]), now)),
            "403 InvalidProviderToken"
        );
        assert_eq!(t.distinct(), 0);

        let first = jwt(&key, &key.key_id, json!({"iss": key.team_id, "iat": iat}));
        assert_eq!(check(&first, now), "ok");
        assert_eq!(check(&first, now.saturating_add_millis(60 * MIN)), "ok");
        assert_eq!(
            check(&first, now.saturating_add_millis(61 * MIN)),
            "403 ExpiredProviderToken"
        );
        // A new token within 20 minutes of the first.
        let second = jwt(
            &key,
            &key.key_id,
            json!({"iss": key.team_id, "iat": iat + 60}),
        );
        assert_eq!(
            check(&second, now.saturating_add_millis(19 * MIN)),
            "429 TooManyProviderTokenUpdates"
        );
        assert_eq!(check(&second, now.saturating_add_millis(20 * MIN)), "ok");
        assert_eq!(t.distinct(), 2);
        let stale = jwt(
            &key,
            &key.key_id,
            json!({"iss": key.team_id, "iat": iat - 3601}),
        );
        assert_eq!(check(&stale, now), "403 ExpiredProviderToken");
        assert_eq!(t.distinct(), 2);
        assert!(ProviderTokens::new("garbage", "k", "t").is_err());
    }
}
