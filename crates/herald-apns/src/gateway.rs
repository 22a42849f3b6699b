//! [`ApnsGateway`]: the [`PushTransport`] for Apple's devices.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use herald::{Clock, Delivery, Notification, Outcome, PushContent, PushFuture, PushTransport};
use herald_core::Tick;
use herald_http2::Pool;
use http::HeaderValue;

use crate::answer::{Verdict, classify};
use crate::batch::{Fate, settle};
use crate::request::{Prepared, Unsendable, expiration};
use crate::token::{ProviderToken, Signed};
use crate::{ApnsConfig, ApnsError, ApnsStats, PayloadError, apns_payload};

/// Apple's push gateway, as a [`PushTransport`] named `apns`.
///
/// # Usage
///
/// Build one per app (per key and topic) with [`ApnsGateway::new`], and
/// share it: every batch goes over the same few HTTP/2 connections and the
/// same provider token.
///
/// # Implementation
///
/// * A batch's notifications go out concurrently (driven together by the
///   `send` future: no task per notification) over a
///   [`herald_http2::Pool`]: HTTP/2 multiplexes them over the pool's few
///   long-lived connections, within the server's
///   `SETTINGS_MAX_CONCURRENT_STREAMS`. A request the server provably did
///   not process (GOAWAY, refused stream) is sent again by the pool; one it
///   may have processed is not, and gets [`Outcome::Retry`].
/// * Before a request: a notification already at its `expires_at` by the
///   gateway's clock is [`Outcome::Failed`]; a device token that is not hex
///   digits is [`Outcome::InvalidToken`]; a payload over 4096 bytes, a
///   custom key named `aps`, or a collapse key over 64 bytes is
///   [`Outcome::Failed`]. None of these makes a request.
/// * The answers are classified as the [`answer`](crate#answers) table
///   says; `403 ExpiredProviderToken` re-signs the provider token (at most
///   once per 20 minutes) and resends that notification once with it,
///   else it is [`Outcome::Retry`] after the time left until a new token
///   may be signed.
/// * A refused credential ([`Refusal::Credentials`](herald::Refusal)) stops
///   the batch: notifications whose turn had not come are not sent and get
///   [`Outcome::Retry`].
///
/// # Cancellation safety
///
/// Dropping a [`send`](PushTransport::send) future leaves the pool and the
/// provider token usable: requests already made finish in the background
/// (resetting hundreds of streams at once would look like a rapid-reset
/// attack and get the connection closed); notifications whose turn had not
/// come are not sent.
pub struct ApnsGateway {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    token: ProviderToken,
    topic: HeaderValue,
    clock: Arc<dyn Clock>,
    base_url: String,
    requests: AtomicU64,
    token_resends: AtomicU64,
    not_sent: AtomicU64,
}

impl ApnsGateway {
    /// A gateway with `config`'s key, ids, topic and host, its time from
    /// `clock`. The key is read and a first provider token signed here; no
    /// connection opens before the first send.
    ///
    /// # Errors
    ///
    /// [`ApnsError::Key`] when the key is not a PKCS#8 PEM P-256 key
    /// (naming its file, never its content); [`ApnsError::Setting`] for an
    /// empty key id or team id, or a topic that cannot be a header;
    /// [`ApnsError::Url`] for a base URL that is not `https://host[:port]`.
    pub fn new(config: ApnsConfig, clock: Arc<dyn Clock>) -> Result<Self, ApnsError> {
        for (field, value) in [("key_id", &config.key_id), ("team_id", &config.team_id)] {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ApnsError::Setting {
                    field,
                    reason: "must be Apple's id: printable ASCII, not empty".to_owned(),
                });
            }
        }
        let topic = HeaderValue::from_str(&config.topic)
            .ok()
            .filter(|t| !t.is_empty() && t.as_bytes().iter().all(u8::is_ascii_graphic))
            .ok_or_else(|| ApnsError::Setting {
                field: "topic",
                reason: "must be the app's bundle id: printable ASCII without spaces".to_owned(),
            })?;
        let token = ProviderToken::new(
            config.key_pem.as_bytes(),
            &config.key_id,
            &config.team_id,
            clock.now(),
        )
        .map_err(|e| ApnsError::Key {
            origin: config.key_origin(),
            reason: e.0,
        })?;
        let pool = Pool::new(&config.base_url, config.tls, config.pool, clock.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                token,
                topic,
                clock,
                base_url: config.base_url,
                requests: AtomicU64::new(0),
                token_resends: AtomicU64::new(0),
                not_sent: AtomicU64::new(0),
            }),
        })
    }

    /// What the gateway has done so far.
    pub fn stats(&self) -> ApnsStats {
        let inner = &self.inner;
        ApnsStats {
            provider_tokens_signed: inner.token.signed(),
            requests: inner.requests.load(Ordering::Relaxed),
            token_resends: inner.token_resends.load(Ordering::Relaxed),
            not_sent: inner.not_sent.load(Ordering::Relaxed),
            pool: inner.pool.stats(),
        }
    }

    async fn deliver(&self, batch: &[Notification]) -> Delivery {
        if batch.is_empty() {
            return Delivery::default();
        }
        let inner = &self.inner;
        let now = inner.clock.now();
        let mut fates: Vec<Option<Fate>> = vec![None; batch.len()];
        let stop = Arc::new(AtomicBool::new(false));
        let mut flight = InFlight {
            requests: FuturesUnordered::new(),
            stop: stop.clone(),
        };
        // The notifications of a batch mostly share one content, and one
        // expiry.
        let mut last: Option<(&Arc<PushContent>, Result<Bytes, PayloadError>)> = None;
        let mut last_expiration: Option<(Tick, HeaderValue)> = None;
        for (i, n) in batch.iter().enumerate() {
            if now >= n.expires_at {
                fates[i] = Some(Fate::Decided(Outcome::Failed {
                    reason: "the notification expired before it could be sent".to_owned(),
                }));
                continue;
            }
            let payload = match &last {
                Some((content, payload)) if Arc::ptr_eq(content, &n.content) => payload.clone(),
                _ => {
                    let payload = apns_payload(&n.content);
                    last = Some((&n.content, payload.clone()));
                    payload
                }
            };
            let expires = match &last_expiration {
                Some((at, value)) if *at == n.expires_at => value.clone(),
                _ => {
                    let value = expiration(n.expires_at);
                    last_expiration = Some((n.expires_at, value.clone()));
                    value
                }
            };
            let prepared = payload
                .map_err(|e| Unsendable::Failed(e.to_string()))
                .and_then(|body| {
                    Prepared::new(n, &inner.topic, body, expires, |path| {
                        inner.pool.uri(path).ok()
                    })
                });
            match prepared {
                Ok(prepared) => {
                    let inner = inner.clone();
                    let stop = stop.clone();
                    flight
                        .requests
                        .push(async move { (i, inner.deliver_one(prepared, &stop).await) });
                }
                Err(Unsendable::BadDeviceToken) => {
                    fates[i] = Some(Fate::Decided(Outcome::InvalidToken { at: None }));
                }
                Err(Unsendable::Failed(reason)) => {
                    fates[i] = Some(Fate::Decided(Outcome::Failed { reason }));
                }
            }
        }
        let requested = flight.requests.len();
        inner
            .not_sent
            .fetch_add((batch.len() - requested) as u64, Ordering::Relaxed);
        while let Some((i, fate)) = flight.requests.next().await {
            fates[i] = Some(fate);
        }
        // Every notification has its fate by now (an unset one would be a
        // bug: it is retried).
        settle(
            fates
                .into_iter()
                .map(|f| f.unwrap_or(Fate::Answered(Verdict::Retry(None))))
                .collect(),
        )
    }
}

/// A batch's requests, driven by the `send` future. Dropped before they
/// are all done (the `send` future was dropped), it hands the requests
/// already made to one background task that lets them finish instead of
/// aborting them, and stops the others from starting: a burst of stream
/// resets is what a server's rapid-reset defence (CVE-2023-44487) answers
/// with a GOAWAY for the whole connection, failing every other request on
/// it.
struct InFlight<F>
where
    F: Future<Output = (usize, Fate)> + Send + 'static,
{
    requests: FuturesUnordered<F>,
    stop: Arc<AtomicBool>,
}

impl<F> Drop for InFlight<F>
where
    F: Future<Output = (usize, Fate)> + Send + 'static,
{
    fn drop(&mut self) {
        if self.requests.is_empty() {
            return;
        }
        self.stop.store(true, Ordering::Relaxed);
        let mut requests = std::mem::take(&mut self.requests);
        // Outside a runtime (it is shutting down) there is nowhere to
        // finish them: they are dropped, as the runtime would.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { while requests.next().await.is_some() {} });
        }
    }
}

impl Inner {
    /// Sends one notification (resending it once with a new provider token
    /// after `ExpiredProviderToken`), unless the batch was refused or
    /// dropped first.
    async fn deliver_one(&self, prepared: Prepared, stop: &AtomicBool) -> Fate {
        if stop.load(Ordering::Relaxed) {
            return Fate::NotAttempted;
        }
        let token = self.token.current(self.clock.now());
        let verdict = match self.attempt(&prepared, &token).await {
            Verdict::ExpiredProviderToken => {
                match self.token.on_expired(&token, self.clock.now()) {
                    Ok(fresh) => {
                        self.token_resends.fetch_add(1, Ordering::Relaxed);
                        match self.attempt(&prepared, &fresh).await {
                            Verdict::ExpiredProviderToken => Verdict::Retry(
                                self.token.on_expired(&fresh, self.clock.now()).err(),
                            ),
                            other => other,
                        }
                    }
                    Err(wait) => Verdict::Retry(Some(wait)),
                }
            }
            other => other,
        };
        if matches!(verdict, Verdict::Credentials(_)) {
            stop.store(true, Ordering::Relaxed);
        }
        Fate::Answered(verdict)
    }

    /// One request and what its answer means.
    async fn attempt(&self, prepared: &Prepared, token: &Signed) -> Verdict {
        self.requests.fetch_add(1, Ordering::Relaxed);
        // Boxed: the pool's future is large, and a batch holds one request
        // future per notification; unboxed, each would carry it.
        let request = || prepared.request(token.bearer());
        match Box::pin(self.pool.send_with(request)).await {
            Ok(answer) => classify(&answer, self.clock.now()),
            Err(e) => {
                tracing::debug!(url = %self.base_url, error = %e, "an APNs request got no answer");
                Verdict::Retry(None)
            }
        }
    }
}

impl PushTransport for ApnsGateway {
    fn name(&self) -> &str {
        "apns"
    }

    fn send<'a>(&'a self, batch: &'a [Notification]) -> PushFuture<'a> {
        Box::pin(self.deliver(batch))
    }
}

impl fmt::Debug for ApnsGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApnsGateway")
            .field("base_url", &self.inner.base_url)
            .field("topic", &self.inner.topic)
            .field("token", &self.inner.token)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
