//! [`MockApns`]: a local APNs that speaks Apple's provider API (HTTP/2 over
//! TLS, `POST /3/device/<token>`) and checks what Apple checks, for the
//! gateway's tests and for push-bench.
//!
//! * **TLS** with a [`TestCa`] generated at start: a client trusts it by
//!   trusting [`MockApns::ca_pem`] (the gateway's `ca_file`).
//! * **Provider tokens** verified like Apple does (ES256 signature against
//!   the test key's public half, `kid`, `iss`, `iat` at most an hour old by
//!   the mock's clock, at most one new token per 20 minutes), each verified
//!   once and then remembered; [`MockApns::provider_tokens`] counts the
//!   distinct ones.
//! * **Every header and payload rule** of the table in `check.rs`, with
//!   Apple's statuses and `{"reason": ...}` bodies.
//! * **Scripts** per device token ([`Script`]): unregistered since a time,
//!   any status and reason with or without `retry-after`, an answer held
//!   at a [`Gate`] until the test opens it.
//! * **Connections**: the announced `SETTINGS_MAX_CONCURRENT_STREAMS`
//!   ([`MockApnsOptions::max_concurrent_streams`]) and a GOAWAY after N
//!   streams on each connection
//!   ([`MockApnsOptions::goaway_after_streams`]).
//! * **Records** of what it accepted ([`Accepted`]) and counts of
//!   connections, streams and refusals.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use herald_testkit::ManualClock;
//! use herald_testkit::mock_apns::{MockApns, MockApnsOptions, Script, TestApnsKey};
//!
//! let key = TestApnsKey::generate();
//! let clock = Arc::new(ManualClock::new(herald_core::Tick::from_millis(1_700_000_000_000)));
//! let mock = MockApns::start(MockApnsOptions::new(&key, "com.example.app", clock)).await.unwrap();
//! assert!(mock.url().starts_with("https://localhost:"));
//! mock.script("00ff", Script::bad_device_token());
//! assert_eq!((mock.connections(), mock.streams(), mock.provider_tokens()), (0, 0, 0));
//! mock.stop().await;
//! # });
//! ```

mod check;
mod key;
mod payload;
mod provider_token;
mod record;
mod reply;
mod script;

pub use key::TestApnsKey;
pub use record::Accepted;
pub use script::{Gate, Script};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use herald::Clock;
use http::{HeaderValue, Request, Response};

use crate::h2_server::{Conn, H2Server, H2ServerOptions, Handler};
use crate::tls::TestCa;
use check::{Rules, check};
use provider_token::ProviderTokens;
use reply::Rejection;

/// How a [`MockApns`] behaves.
#[derive(Clone, Debug)]
pub struct MockApnsOptions {
    /// The signing key's id (the provider token's `kid`).
    pub key_id: String,
    /// The team's id (the provider token's `iss`).
    pub team_id: String,
    /// The signing key's public half, SPKI PEM (P-256).
    pub public_key_pem: String,
    /// The only `apns-topic` it accepts.
    pub topic: String,
    /// Its time: token ages, the 20-minute rule, unregistered-since.
    pub clock: Arc<dyn Clock>,
    /// The `SETTINGS_MAX_CONCURRENT_STREAMS` it announces (`None`:
    /// unlimited).
    pub max_concurrent_streams: Option<u32>,
    /// Each connection's GOAWAY comes when its stream number N arrives:
    /// streams up to N are answered, later ones refused.
    pub goaway_after_streams: Option<u64>,
    /// Whether to keep an [`Accepted`] per notification (default true; a
    /// benchmark turns it off and reads
    /// [`accepted_count`](MockApns::accepted_count)).
    pub record: bool,
}

impl MockApnsOptions {
    /// Options for `key`'s tokens and `topic`, time from `clock`, no stream
    /// limit, no GOAWAY, recording on.
    pub fn new(key: &TestApnsKey, topic: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            key_id: key.key_id.clone(),
            team_id: key.team_id.clone(),
            public_key_pem: key.public_pem.clone(),
            topic: topic.to_owned(),
            clock,
            max_concurrent_streams: None,
            goaway_after_streams: None,
            record: true,
        }
    }
}

/// A running mock APNs on 127.0.0.1 (see the [module docs](self)). Stops
/// when dropped or [`stop`](Self::stop)ped.
pub struct MockApns {
    server: H2Server,
    ca: TestCa,
    state: Arc<State>,
}

struct State {
    topic: String,
    tokens: ProviderTokens,
    clock: Arc<dyn Clock>,
    goaway_after: Option<u64>,
    record: bool,
    scripts: Mutex<HashMap<String, Script>>,
    accepted: Mutex<Vec<Accepted>>,
    accepted_count: AtomicU64,
    refusals: Mutex<BTreeMap<String, u64>>,
    held: AtomicUsize,
    next_id: AtomicU64,
}

impl MockApns {
    /// Starts a mock on an ephemeral port of 127.0.0.1, with a fresh test
    /// CA.
    ///
    /// # Errors
    ///
    /// If it cannot bind, or `public_key_pem` is not an EC public key
    /// (`InvalidInput`).
    pub async fn start(options: MockApnsOptions) -> std::io::Result<Self> {
        let tokens =
            ProviderTokens::new(&options.public_key_pem, &options.key_id, &options.team_id)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let state = Arc::new(State {
            topic: options.topic,
            tokens,
            clock: options.clock,
            goaway_after: options.goaway_after_streams,
            record: options.record,
            scripts: Mutex::default(),
            accepted: Mutex::default(),
            accepted_count: AtomicU64::new(0),
            refusals: Mutex::default(),
            held: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
        });
        let handler: Handler = {
            let state = state.clone();
            Arc::new(move |request, conn| Box::pin(handle(state.clone(), request, conn)))
        };
        let ca = TestCa::new();
        let server = H2Server::start(
            ca.server_config(),
            H2ServerOptions {
                max_concurrent_streams: options.max_concurrent_streams,
            },
            handler,
        )
        .await?;
        Ok(Self { server, ca, state })
    }

    /// `https://localhost:PORT`: the gateway's base URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The test CA's certificate, PEM: what the gateway's `ca_file` holds.
    pub fn ca_pem(&self) -> &str {
        self.ca.ca_pem()
    }

    /// The test CA (to write a `ca_file`: [`TestCa::write_ca_file`]).
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// Answers requests for `device_token` (once they pass the checks) by
    /// `script` from now on, replacing its previous script.
    pub fn script(&self, device_token: &str, script: Script) {
        lock(&self.state.scripts).insert(device_token.to_owned(), script);
    }

    /// Back to accepting `device_token`'s notifications.
    pub fn clear_script(&self, device_token: &str) {
        lock(&self.state.scripts).remove(device_token);
    }

    /// The notifications accepted so far, in the order answered (empty when
    /// recording is off).
    pub fn accepted(&self) -> Vec<Accepted> {
        lock(&self.state.accepted).clone()
    }

    /// How many notifications were accepted (recorded or not).
    pub fn accepted_count(&self) -> u64 {
        self.state.accepted_count.load(Ordering::SeqCst)
    }

    /// Refusals so far by answer: `"400 BadTopic" => 2`. Scripted ones
    /// included.
    pub fn refusals(&self) -> BTreeMap<String, u64> {
        lock(&self.state.refusals).clone()
    }

    /// Answers held at a [`Gate`] right now.
    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (TLS done: a client that refused the
    /// certificate is not counted).
    pub fn connections(&self) -> u64 {
        self.server.connections()
    }

    /// Requests received so far.
    pub fn streams(&self) -> u64 {
        self.server.streams()
    }

    /// Distinct provider tokens accepted so far.
    pub fn provider_tokens(&self) -> u64 {
        self.state.tokens.distinct()
    }

    /// Stops accepting and closes every connection.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

impl fmt::Debug for MockApns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockApns")
            .field("url", &self.url())
            .field("topic", &self.state.topic)
            .field("connections", &self.connections())
            .field("streams", &self.streams())
            .field("accepted", &self.accepted_count())
            .field("provider_tokens", &self.provider_tokens())
            .finish_non_exhaustive()
    }
}

/// Answers one request.
async fn handle(state: Arc<State>, request: Request<Bytes>, conn: Conn) -> Response<Bytes> {
    if state.goaway_after == Some(conn.stream) {
        conn.goaway();
    }
    // The request's own id is echoed as it came (no copy).
    let apns_id = check::apns_id(request.headers())
        .cloned()
        .unwrap_or_else(|| {
            let n = state.next_id.fetch_add(1, Ordering::SeqCst);
            HeaderValue::try_from(format!(
                "00000000-0000-4000-8000-{:012x}",
                n & 0xFFFF_FFFF_FFFF
            ))
            .expect("a UUID is a valid header value")
        });
    let now = state.clock.now();
    let rules = Rules {
        topic: &state.topic,
        tokens: &state.tokens,
        now,
        keep_payload: state.record,
    };
    let checked = match check(&request, &rules) {
        Ok(c) => c,
        Err(r) => return state.refuse(&r, &apns_id, None, None),
    };
    let script = lock(&state.scripts).get(&checked.device_token).cloned();
    match script {
        Some(Script::Unregistered { since }) if now >= since => {
            let r = Rejection::new(410, "Unregistered");
            return state.refuse(&r, &apns_id, Some(since.as_millis()), None);
        }
        Some(Script::Reject {
            status,
            reason,
            retry_after,
        }) => {
            let r = Rejection {
                status,
                reason: reason.into(),
            };
            let timestamp = (status == 410).then(|| now.as_millis());
            return state.refuse(&r, &apns_id, timestamp, retry_after.as_deref());
        }
        Some(Script::Hold(gate)) => {
            let _held = Held::enter(&state.held);
            gate.passed().await;
        }
        Some(Script::Unregistered { .. }) | None => {}
    }
    state.accepted_count.fetch_add(1, Ordering::SeqCst);
    if state.record {
        let (parts, _) = request.into_parts();
        let mut headers = parts.headers;
        headers.remove(http::header::AUTHORIZATION);
        lock(&state.accepted).push(Accepted {
            device_token: checked.device_token,
            apns_id: apns_id.to_str().unwrap_or_default().to_owned(),
            headers,
            payload: checked.payload.unwrap_or_default(),
            connection: conn.id,
            at: state.clock.now(),
        });
    }
    reply::accepted(&apns_id)
}

impl State {
    fn refuse(
        &self,
        r: &Rejection,
        apns_id: &HeaderValue,
        timestamp_ms: Option<u64>,
        retry_after: Option<&str>,
    ) -> Response<Bytes> {
        *lock(&self.refusals)
            .entry(format!("{} {}", r.status, r.reason))
            .or_default() += 1;
        reply::refused(r, apns_id, timestamp_ms, retry_after)
    }
}

/// Counts an answer held at a gate while it waits (also when the client
/// gives up and the request is dropped).
struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
