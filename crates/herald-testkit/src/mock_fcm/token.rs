//! The mock's OAuth2 token endpoint (`POST /token`): checks a
//! service-account JWT assertion as Google does and issues opaque access
//! tokens that expire on the mock's clock.

use std::hash::BuildHasher;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Value, json};

use super::State;
use super::google_error::{json_response, oauth_error};

/// The grant type of the service-account flow (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The scopes that allow sending.
const SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/firebase.messaging",
    "https://www.googleapis.com/auth/cloud-platform",
];
/// How far in the future an `iat` may be (clock skew).
const SKEW_S: u64 = 300;

const SHORT_LIVED: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";

/// Answers one token request.
pub(crate) async fn answer(state: &State, request: &http::Request<Bytes>) -> http::Response<Bytes> {
    state.counts.token_requests.fetch_add(1, Ordering::SeqCst);
    let gate = state.lock_token_gate().clone();
    if let Some(gate) = gate {
        gate.pass().await;
    }
    if request.method() != http::Method::POST {
        return oauth_error("invalid_request", "Only POST is supported.");
    }
    let form = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return oauth_error(
            "invalid_request",
            "The request body must be application/x-www-form-urlencoded.",
        );
    }
    let fields = form_decode(request.body());
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match field("grant_type") {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return oauth_error(
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            );
        }
        None => return oauth_error("invalid_request", "Missing required parameter: grant_type"),
    }
    let Some(assertion) = field("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    if let Err(refusal) = check_assertion(state, assertion) {
        return oauth_error(refusal.error, &refusal.description);
    }
    if state.refusing_keys() {
        return oauth_error("invalid_grant", "Invalid grant: account not found");
    }
    issue(state)
}

/// Why the token endpoint refuses an assertion: Google's `error` and
/// `error_description`.
#[derive(Debug)]
struct OAuthRefusal {
    error: &'static str,
    description: String,
}

impl OAuthRefusal {
    fn new(error: &'static str, description: &str) -> Self {
        Self {
            error,
            description: description.to_owned(),
        }
    }
}

/// Checks what Google checks of an assertion: the RS256 signature against
/// the service account's key, `kid`, `iss`, `aud`, `scope`, `iat`/`exp`.
fn check_assertion(state: &State, assertion: &str) -> Result<(), OAuthRefusal> {
    let bad_signature = || OAuthRefusal::new("invalid_grant", "Invalid JWT Signature.");
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
        OAuthRefusal::new("invalid_grant", "Invalid JWT: the assertion is not a JWT.")
    })?;
    if header.alg != Algorithm::RS256 {
        return Err(bad_signature());
    }
    if let Some(kid) = &header.kid
        && *kid != state.options.private_key_id
    {
        return Err(bad_signature());
    }
    let mut validation = Validation::new(Algorithm::RS256);
    // Checked below on the mock's clock, with Google's messages.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(assertion, &state.key, &validation)
        .map_err(|_| bad_signature())?
        .claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(state.options.client_email.as_str()) {
        return Err(OAuthRefusal::new(
            "invalid_grant",
            "Not a valid email or user ID.",
        ));
    }
    if text("aud") != Some(state.token_uri()) {
        return Err(OAuthRefusal::new(
            "invalid_grant",
            &format!(
                "Invalid JWT: Failed audience check. The right audience is {}",
                state.token_uri()
            ),
        ));
    }
    let scoped = text("scope").is_some_and(|s| s.split(' ').any(|s| SCOPES.contains(&s)));
    if !scoped {
        return Err(OAuthRefusal::new(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ));
    }
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_u64),
        claims.get("exp").and_then(Value::as_u64),
    ) else {
        return Err(OAuthRefusal::new("invalid_grant", SHORT_LIVED));
    };
    let now = state.options.clock.now().as_millis() / 1000;
    if exp <= iat || exp - iat > 3600 || exp <= now || iat > now + SKEW_S {
        return Err(OAuthRefusal::new("invalid_grant", SHORT_LIVED));
    }
    Ok(())
}

/// A new opaque access token, valid for the configured lifetime.
fn issue(state: &State) -> http::Response<Bytes> {
    let n = state.counts.tokens_issued.fetch_add(1, Ordering::SeqCst);
    let token = format!(
        "ya29.mock-{:016x}{:016x}",
        state.random.hash_one((n, 1u8)),
        state.random.hash_one((n, 2u8))
    );
    let ttl = state.options.access_token_ttl;
    let expires_at = state
        .options
        .clock
        .now()
        .saturating_add_millis(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    state.lock_tokens().insert(token.clone(), expires_at);
    json_response(
        200,
        &json!({
            "access_token": token,
            "expires_in": ttl.as_secs(),
            "token_type": "Bearer",
        }),
        None,
    )
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a
/// byte); malformed escapes stay as they are.
pub(crate) fn form_decode(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |&b| b == b'=');
            let key = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default();
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &[u8]) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                text.get(i + 1).copied().and_then(hex),
                text.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_garbage_does_not_panic() {
        assert_eq!(
            form_decode(b"grant_type=urn%3Aietf%3Aa&assertion=x.y.z&e=a+b%2"),
            vec![
                ("grant_type".to_owned(), "urn:ietf:a".to_owned()),
                ("assertion".to_owned(), "x.y.z".to_owned()),
                ("e".to_owned(), "a b%2".to_owned()),
            ]
        );
        for garbage in [&b"%"[..], b"&&=&", b"%zz=%ff%fe", b"=\xff"] {
            let _ = form_decode(garbage);
        }
    }
}
