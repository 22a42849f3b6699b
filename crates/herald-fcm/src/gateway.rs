//! `FcmGateway`: the [`PushTransport`] that sends through FCM HTTP v1, one
//! request per notification, all of a batch at once as HTTP/2 streams over
//! a few connections.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use herald::{Clock, Delivery, Notification, Outcome, PushFuture, PushTransport, Refusal};
use herald_core::Tick;
use herald_http2::{Pool, PoolStats};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};

use crate::answer::{Verdict, classify};
use crate::message::request_body;
use crate::oauth::{AccessToken, AccessTokens, TokenError};
use crate::{FcmConfig, FcmError};

/// When fetching the access token took longer than this, the bodies are
/// built again so each `android.ttl` is the time left at sending.
const STALE_BODIES: Duration = Duration::from_secs(1);

/// What an [`FcmGateway`] has done so far (for metrics and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FcmStats {
    /// Access tokens fetched from the token endpoint.
    pub access_tokens_fetched: u64,
    /// Send requests made to FCM (a resend after a 401 counts again).
    pub requests: u64,
    /// The connections to the FCM host.
    pub fcm_pool: PoolStats,
    /// The connection to the token endpoint's host.
    pub token_pool: PoolStats,
}

/// Firebase Cloud Messaging (HTTP v1) as a [`PushTransport`] named `fcm`.
///
/// Each notification is one `POST /v1/projects/{project_id}/messages:send`
/// (FCM v1 has no batch request); a batch's requests go out at once as
/// HTTP/2 streams over a [`Pool`] of long-lived connections, authorized by
/// one OAuth2 access token shared by every send until shortly before it
/// expires (see the [crate docs](crate) for the whole mapping).
///
/// Cheap to share: `send` takes `&self` and may be called concurrently.
///
/// # Cancellation safety
///
/// A dropped `send` leaves the gateway usable: its requests already made
/// finish in the background (resetting hundreds of streams at once looks
/// like a rapid-reset attack to a server, which closes the connection);
/// those not yet made are not sent.
pub struct FcmGateway {
    shared: Arc<Shared>,
}

struct Shared {
    base_url: String,
    project_id: String,
    /// `/v1/projects/{project_id}/messages:send`, or why it is not a
    /// path.
    send_uri: Result<Uri, String>,
    pool: Pool,
    tokens: AccessTokens,
    clock: Arc<dyn Clock>,
    requests: AtomicU64,
}

impl FcmGateway {
    /// A gateway sending as `config`'s service account to
    /// `config.base_url`, on `clock` (access-token expiry, `android.ttl`,
    /// timeouts). Nothing is connected or fetched before the first send.
    ///
    /// # Errors
    ///
    /// [`FcmError::Url`] when `base_url` is not `https://host[:port]`,
    /// [`FcmError::TokenUri`] when the key's `token_uri` is not an `https`
    /// URL.
    pub fn new(config: FcmConfig, clock: Arc<dyn Clock>) -> Result<Self, FcmError> {
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        let pool = Pool::new(&base_url, config.tls.clone(), config.pool, clock.clone())
            .map_err(FcmError::Url)?;
        let project_id = config.service_account.project_id.clone();
        let tokens = AccessTokens::new(config.service_account, config.tls, clock.clone())?;
        Ok(Self {
            shared: Arc::new(Shared {
                send_uri: pool
                    .uri(format!("/v1/projects/{project_id}/messages:send"))
                    .map_err(|e| e.to_string()),
                base_url,
                project_id,
                pool,
                tokens,
                clock,
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// The project messages are sent for.
    pub fn project_id(&self) -> &str {
        &self.shared.project_id
    }

    /// What it has done so far.
    pub fn stats(&self) -> FcmStats {
        let s = &self.shared;
        FcmStats {
            access_tokens_fetched: s.tokens.fetched(),
            requests: s.requests.load(Ordering::Relaxed),
            fcm_pool: s.pool.stats(),
            token_pool: s.tokens.pool_stats(),
        }
    }
}

impl fmt::Debug for FcmGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcmGateway")
            .field("base_url", &self.shared.base_url)
            .field("project_id", &self.shared.project_id)
            .field("tokens", &self.shared.tokens)
            .field("stats", &self.stats())
            .finish()
    }
}

impl PushTransport for FcmGateway {
    fn name(&self) -> &str {
        "fcm"
    }

    fn send<'a>(&'a self, batch: &'a [Notification]) -> PushFuture<'a> {
        Box::pin(Shared::send_batch(self.shared.clone(), batch))
    }
}

/// A notification's answer: its outcome, and the gateway's refusal if the
/// answer is one.
type Answer = (Outcome, Option<Refusal>);

impl Shared {
    async fn send_batch(this: Arc<Self>, batch: &[Notification]) -> Delivery {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let built = Self::bodies(batch, this.clock.now(), &mut outcomes);
        if built.is_empty() {
            return finish(outcomes, None);
        }
        let started = this.clock.now();
        let token = match this.tokens.get().await {
            Ok(t) => t,
            Err(TokenError::Refused(reason)) => {
                tracing::warn!(project = %this.project_id, %reason, "FCM access token refused");
                return finish(outcomes, Some(Refusal::Credentials { reason }));
            }
            Err(TokenError::Unavailable(reason)) => {
                tracing::warn!(project = %this.project_id, %reason, "no FCM access token");
                return finish(outcomes, None);
            }
        };
        let now = this.clock.now();
        let waited = Duration::from_millis(now.as_millis().saturating_sub(started.as_millis()));
        let built = if waited > STALE_BODIES {
            outcomes.iter_mut().for_each(|o| *o = None);
            Self::bodies(batch, now, &mut outcomes)
        } else {
            built
        };
        let common = Arc::new(Batch {
            headers: headers_for(&token),
            shared: this,
            token,
            stop: AtomicBool::new(false),
        });
        let mut flight = InFlight {
            requests: FuturesUnordered::new(),
            batch: common.clone(),
        };
        for (i, body) in built {
            let batch = common.clone();
            flight
                .requests
                .push(async move { (i, batch.send_one(body).await) });
        }
        drop(common);
        let mut refused: Option<Refusal> = None;
        while let Some((i, (outcome, refusal))) = flight.requests.next().await {
            outcomes[i] = Some(outcome);
            refused = merge(refused, refusal);
        }
        finish(outcomes, refused)
    }

    /// The request bodies of `batch` at `now`, by index; what needs no
    /// request gets its outcome in `outcomes`.
    fn bodies(
        batch: &[Notification],
        now: Tick,
        outcomes: &mut [Option<Outcome>],
    ) -> Vec<(usize, Bytes)> {
        let mut built = Vec::with_capacity(batch.len());
        for (i, n) in batch.iter().enumerate() {
            match request_body(n, now) {
                Ok(body) => built.push((i, body)),
                Err(outcome) => outcomes[i] = Some(outcome),
            }
        }
        built
    }

    /// One request; what its answer means, or the outcome of no answer.
    async fn post(&self, body: Bytes, headers: &HeaderMap) -> Result<Verdict, Outcome> {
        let uri = self.send_uri.as_ref().map_err(|e| Outcome::Failed {
            reason: format!("cannot build the FCM request: {e}"),
        })?;
        // Made for each attempt from the batch's headers and the URI built
        // once (the pool then needs no copy of its own).
        let request = || {
            let mut request = Request::new(body.clone());
            *request.method_mut() = Method::POST;
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            request
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        // Boxed: the pool's future is large, and a batch holds one request
        // future per notification; unboxed, each would carry it.
        match Box::pin(self.pool.send_with(request)).await {
            Ok(answer) => Ok(classify(
                answer.status,
                &answer.headers,
                &answer.body,
                self.clock.now(),
            )),
            Err(e) => {
                tracing::debug!(url = %self.base_url, error = %e, "FCM send got no answer");
                Err(Outcome::Retry { after: None })
            }
        }
    }
}

/// What a batch's requests share: the gateway, the access token and the
/// headers made from it (built once per batch, cloned per request), and
/// the flag that keeps requests not yet made from starting.
struct Batch {
    shared: Arc<Shared>,
    token: AccessToken,
    headers: HeaderMap,
    stop: AtomicBool,
}

impl Batch {
    /// Sends one message; after a 401 (the access token refused) once more
    /// with a renewed token. Nothing is sent once `stop` is set (the batch's
    /// `send` was dropped).
    async fn send_one(&self, body: Bytes) -> Answer {
        let shared = &self.shared;
        let not_attempted = (Outcome::Retry { after: None }, None);
        if self.stop.load(Ordering::Relaxed) {
            return not_attempted;
        }
        match shared.post(body.clone(), &self.headers).await {
            Ok(Verdict::Done(outcome, refusal)) => return (outcome, refusal),
            Ok(Verdict::Unauthenticated(_)) => {}
            Err(outcome) => return (outcome, None),
        }
        let token = match shared.tokens.renew(&self.token).await {
            Ok(t) => t,
            Err(TokenError::Refused(reason)) => {
                return (
                    Outcome::Retry { after: None },
                    Some(Refusal::Credentials { reason }),
                );
            }
            Err(TokenError::Unavailable(_)) => return not_attempted,
        };
        if self.stop.load(Ordering::Relaxed) {
            return not_attempted;
        }
        match shared.post(body, &headers_for(&token)).await {
            Ok(Verdict::Done(outcome, refusal)) => (outcome, refusal),
            Ok(Verdict::Unauthenticated(reason)) => (
                Outcome::Retry { after: None },
                Some(Refusal::Credentials {
                    reason: format!("{reason} (a freshly fetched access token was refused too)"),
                }),
            ),
            Err(outcome) => (outcome, None),
        }
    }
}

/// The headers of a send request authorized by `token`.
fn headers_for(token: &AccessToken) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(AUTHORIZATION, token.header.clone());
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    headers
}

/// A batch's requests, driven by the `send` future. Dropped before they
/// are all done (the `send` future was dropped), it hands the requests
/// already made to one background task that lets them finish instead of
/// aborting them, and keeps the others from starting: a burst of stream
/// resets is what a server's rapid-reset defence (CVE-2023-44487) answers
/// with a GOAWAY for the whole connection, failing every other request on
/// it.
struct InFlight<F>
where
    F: Future<Output = (usize, Answer)> + Send + 'static,
{
    requests: FuturesUnordered<F>,
    batch: Arc<Batch>,
}

impl<F> Drop for InFlight<F>
where
    F: Future<Output = (usize, Answer)> + Send + 'static,
{
    fn drop(&mut self) {
        if self.requests.is_empty() {
            return;
        }
        self.batch.stop.store(true, Ordering::Relaxed);
        let mut requests = std::mem::take(&mut self.requests);
        // Outside a runtime (it is shutting down) there is nowhere to
        // finish them: they are dropped, as the runtime would.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { while requests.next().await.is_some() {} });
        }
    }
}

/// The delivery: an unset outcome (not attempted) is a retry.
fn finish(outcomes: Vec<Option<Outcome>>, refused: Option<Refusal>) -> Delivery {
    Delivery {
        outcomes: outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Retry { after: None }))
            .collect(),
        refused,
    }
}

/// One refusal for the batch: credentials over quota (the longer pause).
fn merge(a: Option<Refusal>, b: Option<Refusal>) -> Option<Refusal> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(c @ Refusal::Credentials { .. }), _) | (_, Some(c @ Refusal::Credentials { .. })) => {
            Some(c)
        }
        (Some(Refusal::Quota { after: x }), Some(Refusal::Quota { after: y })) => {
            Some(Refusal::Quota { after: x.max(y) })
        }
        (Some(a), Some(_)) => Some(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_merge_to_the_strongest() {
        let q = |s: Option<u64>| {
            Some(Refusal::Quota {
                after: s.map(Duration::from_secs),
            })
        };
        let c = Some(Refusal::Credentials { reason: "x".into() });
        assert_eq!(merge(None, None), None);
        assert_eq!(merge(q(Some(3)), q(Some(9))), q(Some(9)));
        assert_eq!(merge(q(None), q(Some(2))), q(Some(2)));
        assert_eq!(merge(q(Some(3)), c.clone()), c);
        assert_eq!(merge(c.clone(), q(Some(3))), c);
        assert_eq!(merge(None, q(None)), q(None));
    }
}
