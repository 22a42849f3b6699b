//! The OAuth2 service-account flow: an RS256 JWT assertion exchanged at the
//! key's `token_uri` for an access token, cached and refreshed on the
//! injected clock, one refresh at a time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use herald::Clock;
use herald_core::Tick;
use herald_http2::{Pool, PoolOptions, PoolStats};
use http::HeaderValue;
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};

use crate::{FcmError, ServiceAccount};

/// The scope FCM's send endpoint asks for.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The assertion's lifetime: Google's maximum.
const ASSERTION_LIFETIME_S: u64 = 3600;

/// How long before its expiry an access token is replaced (at most half
/// its lifetime).
const REFRESH_EARLY: Duration = Duration::from_secs(60);

/// An error text from the token endpoint is cut to this many bytes.
const MAX_REASON: usize = 300;

/// The JWT grant type (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// An access token and when it runs out. `Debug` hides the token.
#[derive(Clone)]
pub(crate) struct AccessToken {
    /// `Bearer <token>`, ready for the `authorization` header.
    ///
    /// Not marked sensitive: HPACK then indexes it, so each request of a
    /// batch carries a one- or two-byte reference instead of the token
    /// (~250 bytes from Google) Huffman-coded anew, for the gateway to
    /// encode and the server to decode. The never-indexed flag guards
    /// low-entropy secrets against guessing through compression (RFC 7541
    /// §7.1); HPACK only matches whole values, and an access token is an
    /// opaque random string that cannot be guessed (the APNs gateway's
    /// provider token is indexed for the same reason). Nothing logs
    /// request headers; [`AccessToken`]'s `Debug` hides it.
    pub(crate) header: HeaderValue,
    /// Which fetch it came from (1, 2, ...).
    generation: u64,
    /// When the token endpoint said it expires.
    expires_at: Tick,
    /// When it is replaced.
    refresh_at: Tick,
}

impl AccessToken {
    fn is_same(&self, other: &Self) -> bool {
        self.generation == other.generation
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

/// Why no access token could be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// The token endpoint refuses the key (`invalid_grant`...): the
    /// gateway refuses the credentials.
    Refused(String),
    /// The token endpoint could not be reached or failed (5xx, a broken
    /// connection): worth trying again.
    Unavailable(String),
}

/// The access tokens of one service account: at most one cached, at most
/// one fetch at a time (concurrent sends wait for it and share its
/// result).
pub(crate) struct AccessTokens {
    account: ServiceAccount,
    /// The path (and query) of `token_uri`.
    path: String,
    pool: Pool,
    clock: Arc<dyn Clock>,
    cached: tokio::sync::Mutex<Option<AccessToken>>,
    fetched: AtomicU64,
}

impl AccessTokens {
    /// The tokens of `account`, fetched over `tls` from its `token_uri`.
    pub(crate) fn new(
        account: ServiceAccount,
        tls: Arc<rustls::ClientConfig>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, FcmError> {
        let bad = |reason: &str| FcmError::TokenUri {
            uri: account.token_uri.clone(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = account.token_uri.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
            return Err(bad("the scheme is not https"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let options = PoolOptions {
            max_connections: 1,
            ..PoolOptions::default()
        };
        let pool = Pool::new(&format!("https://{authority}"), tls, options, clock.clone())
            .map_err(|e| bad(e.reason))?;
        Ok(Self {
            account,
            path,
            pool,
            clock,
            cached: tokio::sync::Mutex::new(None),
            fetched: AtomicU64::new(0),
        })
    }

    /// A token valid for a while yet: the cached one, or a fresh one.
    pub(crate) async fn get(&self) -> Result<AccessToken, TokenError> {
        let mut cached = self.cached.lock().await;
        let now = self.clock.now();
        match &*cached {
            Some(t) if now < t.refresh_at => Ok(t.clone()),
            _ => self.replace(&mut cached, now).await,
        }
    }

    /// A token to use instead of `refused` (FCM answered 401 to it): the
    /// one another send fetched meanwhile, or a fresh one.
    pub(crate) async fn renew(&self, refused: &AccessToken) -> Result<AccessToken, TokenError> {
        let mut cached = self.cached.lock().await;
        let now = self.clock.now();
        match &*cached {
            Some(t) if !t.is_same(refused) && now < t.refresh_at => Ok(t.clone()),
            _ => {
                if cached.as_ref().is_some_and(|t| t.is_same(refused)) {
                    *cached = None;
                }
                self.replace(&mut cached, now).await
            }
        }
    }

    /// Fetches a token into `cached`; if the endpoint is unavailable, the
    /// cached one serves until it really expires.
    async fn replace(
        &self,
        cached: &mut Option<AccessToken>,
        now: Tick,
    ) -> Result<AccessToken, TokenError> {
        match self.fetch(now).await {
            Ok(t) => {
                *cached = Some(t.clone());
                Ok(t)
            }
            Err(TokenError::Unavailable(why)) => match cached {
                Some(t) if self.clock.now() < t.expires_at => {
                    tracing::warn!(reason = %why, "FCM token endpoint unavailable; the current access token serves until it expires");
                    Ok(t.clone())
                }
                _ => Err(TokenError::Unavailable(why)),
            },
            Err(e) => Err(e),
        }
    }

    /// How many access tokens were fetched.
    pub(crate) fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// The token endpoint's connections.
    pub(crate) fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Signs an assertion at `now` and exchanges it for a token.
    async fn fetch(&self, now: Tick) -> Result<AccessToken, TokenError> {
        let assertion = assertion(&self.account, now)?;
        let body = format!(
            "grant_type={}&assertion={}",
            form_encode(JWT_BEARER),
            form_encode(&assertion)
        );
        let request = http::Request::post(self.path.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Bytes::from(body))
            .map_err(|e| TokenError::Unavailable(format!("cannot build the token request: {e}")))?;
        let answer = self.pool.send(request).await.map_err(|e| {
            TokenError::Unavailable(format!("token endpoint {}: {e}", self.account.token_uri))
        })?;
        let token = parse_answer(answer.status, &answer.body, &self.account.token_uri)?;
        let header =
            HeaderValue::from_str(&format!("Bearer {}", token.access_token)).map_err(|_| {
                TokenError::Unavailable("the access token is not a valid header value".to_owned())
            })?;
        let generation = self.fetched.fetch_add(1, Ordering::Relaxed) + 1;
        let lifetime = Duration::from_secs(token.expires_in);
        let early = REFRESH_EARLY.min(lifetime / 2);
        let received = self.clock.now();
        tracing::debug!(expires_in = token.expires_in, "FCM access token fetched");
        Ok(AccessToken {
            header,
            generation,
            expires_at: received.saturating_add_millis(millis(lifetime)),
            refresh_at: received.saturating_add_millis(millis(lifetime - early)),
        })
    }
}

impl fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokens")
            .field("client_email", &self.account.client_email)
            .field("token_uri", &self.account.token_uri)
            .field("fetched", &self.fetched())
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The assertion's claims (Google's service-account flow).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Claims {
    pub(crate) iss: String,
    pub(crate) scope: String,
    pub(crate) aud: String,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
}

/// The RS256 JWT assertion for `account` at `now`: `kid` the key's id,
/// `iss` its email, `aud` its `token_uri`, valid for an hour.
pub(crate) fn assertion(account: &ServiceAccount, now: Tick) -> Result<String, TokenError> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid.clone_from(&account.private_key_id);
    let iat = now.as_millis() / 1000;
    let claims = Claims {
        iss: account.client_email.clone(),
        scope: FCM_SCOPE.to_owned(),
        aud: account.token_uri.clone(),
        iat,
        exp: iat + ASSERTION_LIFETIME_S,
    };
    jsonwebtoken::encode(&header, &claims, account.key())
        .map_err(|e| TokenError::Refused(format!("cannot sign the OAuth2 assertion: {e}")))
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct Refusal {
    error: Option<String>,
    error_description: Option<String>,
}

/// The token endpoint's answer: a token, or why not.
fn parse_answer(
    status: http::StatusCode,
    body: &[u8],
    token_uri: &str,
) -> Result<Granted, TokenError> {
    if status.is_success() {
        return match serde_json::from_slice::<Granted>(body) {
            Ok(g) if !g.access_token.is_empty() && header_safe(&g.access_token) => Ok(g),
            _ => Err(TokenError::Unavailable(format!(
                "token endpoint {token_uri} answered {status} without a usable access_token and expires_in"
            ))),
        };
    }
    let said = serde_json::from_slice::<Refusal>(body).ok();
    let what = match said {
        Some(Refusal {
            error: Some(error),
            error_description,
        }) => {
            let mut what = error;
            if let Some(d) = error_description {
                what.push_str(": ");
                what.push_str(&d);
            }
            what
        }
        _ => format!("status {status}"),
    };
    let what = cut(&what, MAX_REASON);
    if status.is_client_error() && status != http::StatusCode::TOO_MANY_REQUESTS {
        Err(TokenError::Refused(format!(
            "the token endpoint {token_uri} refuses the service account key: {what}"
        )))
    } else {
        Err(TokenError::Unavailable(format!(
            "token endpoint {token_uri}: {what}"
        )))
    }
}

/// A token that can go in an `authorization` header as it is.
fn header_safe(token: &str) -> bool {
    token.bytes().all(|b| b.is_ascii_graphic())
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*') {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_testkit::mock_fcm::{TEST_PRIVATE_KEY_PEM, TEST_PUBLIC_KEY_PEM};
    use jsonwebtoken::{DecodingKey, Validation};

    fn account() -> ServiceAccount {
        let json = serde_json::json!({
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "kid-1",
            "private_key": TEST_PRIVATE_KEY_PEM,
            "client_email": "s@p.iam.gserviceaccount.com",
            "token_uri": "https://localhost:9/token",
        });
        ServiceAccount::from_json(&json.to_string(), None).unwrap()
    }

    #[test]
    fn the_assertion_is_an_rs256_jwt_with_googles_claims() {
        let jwt = assertion(&account(), Tick::from_millis(1_700_000_000_999)).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("kid-1"));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.set_audience(&["https://localhost:9/token"]);
        let key = DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY_PEM.as_bytes()).unwrap();
        let claims = jsonwebtoken::decode::<Claims>(&jwt, &key, &v)
            .unwrap()
            .claims;
        assert_eq!(
            claims,
            Claims {
                iss: "s@p.iam.gserviceaccount.com".into(),
                scope: FCM_SCOPE.into(),
                aud: "https://localhost:9/token".into(),
                iat: 1_700_000_000,
                exp: 1_700_003_600,
            }
        );
    }

    #[test]
    fn token_endpoint_answers_are_read_like_googles() {
        let ok = parse_answer(
            http::StatusCode::OK,
            br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
            "u",
        )
        .unwrap();
        assert_eq!((ok.access_token.as_str(), ok.expires_in), ("ya29.x", 3599));
        let refused = parse_answer(
            http::StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
            "https://t/token",
        )
        .err();
        assert_eq!(
            refused,
            Some(TokenError::Refused(
                "the token endpoint https://t/token refuses the service account key: invalid_grant: Invalid JWT Signature.".into()
            ))
        );
        for (status, body) in [
            (http::StatusCode::SERVICE_UNAVAILABLE, &b"<html>"[..]),
            (http::StatusCode::TOO_MANY_REQUESTS, b"{}"),
            (
                http::StatusCode::OK,
                b"{\"access_token\":\"a b\",\"expires_in\":5}",
            ),
            (http::StatusCode::OK, b"{\"expires_in\":5}"),
        ] {
            assert!(
                matches!(
                    parse_answer(status, body, "u"),
                    Err(TokenError::Unavailable(_))
                ),
                "{status} {body:?}"
            );
        }
        let long = format!(
            r#"{{"error":"invalid_grant","error_description":"{}"}}"#,
            "é".repeat(400)
        );
        let Err(TokenError::Refused(why)) =
            parse_answer(http::StatusCode::BAD_REQUEST, long.as_bytes(), "u")
        else {
            panic!("refused")
        };
        assert!(why.len() < 400, "{}", why.len());
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(
            form_encode(JWT_BEARER),
            "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
        );
        assert_eq!(form_encode("a.b_c-d e+&="), "a.b_c-d+e%2B%26%3D");
    }

    #[test]
    fn debug_hides_the_token() {
        let t = AccessToken {
            header: HeaderValue::from_static("Bearer ya29.secret"),
            generation: 1,
            expires_at: Tick::from_millis(1),
            refresh_at: Tick::from_millis(0),
        };
        assert!(!format!("{t:?}").contains("secret"));
    }
}
