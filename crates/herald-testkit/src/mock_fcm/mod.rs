//! `MockFcm`: a local FCM HTTP v1 server and Google OAuth2 token endpoint
//! in one, speaking HTTP/2 over TLS (a [`TestCa`]) and checking what
//! Google checks.
//!
//! * `POST /token`: the service-account flow. The form's `grant_type`, the
//!   RS256 assertion's signature against the service account's public key,
//!   its `kid`, `iss`, `aud` (= [`MockFcm::token_uri`]), `scope`
//!   (`firebase.messaging` or `cloud-platform`), `iat`/`exp` (at most an
//!   hour apart, not expired by the mock's clock). Errors are Google's 400
//!   `{"error": "invalid_grant", "error_description": ...}`. It issues
//!   opaque random access tokens that expire after
//!   [`MockFcmOptions::access_token_ttl`] on the mock's clock.
//! * `POST /v1/projects/{project}/messages:send`: a known, unexpired bearer
//!   token (else 401 `UNAUTHENTICATED`), the project (else 403), a JSON
//!   `message` with exactly one of `token`/`topic`/`condition`, string
//!   `data` values, no reserved data key (`from`, `gcm*`, `google*`), a
//!   protobuf-duration `android.ttl`, at most 4096 bytes without the target
//!   (else 400 `INVALID_ARGUMENT` with `fieldViolations`). Then the device
//!   token's [`FcmScript`], if any, or `{"name": "projects/{p}/messages/{id}"}`.
//!
//! It records what it accepted and counts connections, streams, token
//! requests and access tokens issued. It never panics on what a client
//! sends.
//!
//! The service account's key pair is a **test-only** RSA-2048 key
//! committed with this module ([`TEST_PRIVATE_KEY_PEM`]): rcgen on ring
//! cannot generate RSA keys and nothing else in the workspace can. It
//! signs nothing outside tests. [`OTHER_TEST_PRIVATE_KEY_PEM`] is a second
//! one the mock does not know (a wrong key).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
//! use std::sync::Arc;
//! use herald_testkit::mock_fcm::{MockFcm, MockFcmOptions, ScriptedError};
//!
//! let clock = Arc::new(herald::ManualClock::new(herald_core::Tick::from_millis(1_700_000_000_000)));
//! let mock = MockFcm::start(MockFcmOptions::new(clock)).await.unwrap();
//! mock.script("gone-token", ScriptedError::code("UNREGISTERED"));
//! assert!(mock.token_uri().ends_with("/token"));
//! assert!(mock.service_account_json(herald_testkit::mock_fcm::TEST_PRIVATE_KEY_PEM)
//!     .contains(&mock.token_uri()));
//! assert_eq!(mock.tokens_issued(), 0);
//! # }
//! ```

mod google_error;
mod script;
mod send;
mod token;

pub use script::{FcmScript, Gate, ScriptedError};

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use herald::Clock;
use herald_core::Tick;
use jsonwebtoken::DecodingKey;
use serde_json::{Value, json};

use crate::h2_server::{Conn, H2Server, H2ServerOptions, Handler};
use crate::tls::TestCa;

/// The test-only service account private key (RSA-2048, PKCS#8 PEM).
/// Never used outside tests.
pub const TEST_PRIVATE_KEY_PEM: &str = include_str!("test_only_rsa_key.pem");
/// Its public key (SPKI PEM): the default [`MockFcmOptions::public_key_pem`].
pub const TEST_PUBLIC_KEY_PEM: &str = include_str!("test_only_rsa_key.pub.pem");
/// Another test-only private key, one the mock does not know.
pub const OTHER_TEST_PRIVATE_KEY_PEM: &str = include_str!("test_only_other_rsa_key.pem");
/// Its public key.
pub const OTHER_TEST_PUBLIC_KEY_PEM: &str = include_str!("test_only_other_rsa_key.pub.pem");

/// How a [`MockFcm`] behaves.
#[derive(Clone, Debug)]
pub struct MockFcmOptions {
    /// The project it serves (`/v1/projects/{project_id}/...`).
    pub project_id: String,
    /// The service account's email (the assertion's `iss`).
    pub client_email: String,
    /// The service account key's id (the assertion's `kid`, when it has
    /// one).
    pub private_key_id: String,
    /// The service account's RSA public key (SPKI PEM).
    pub public_key_pem: String,
    /// Its clock: access-token expiry, the assertion's `iat`/`exp`.
    pub clock: Arc<dyn Clock>,
    /// How long an access token it issues is valid (`expires_in`).
    pub access_token_ttl: Duration,
    /// Each connection is shut down with GOAWAY once it has received this
    /// many streams (the last one is still answered).
    pub goaway_after_streams: Option<u64>,
    /// The `SETTINGS_MAX_CONCURRENT_STREAMS` it announces (`None`: h2's
    /// default).
    pub max_concurrent_streams: Option<u32>,
    /// Whether it keeps every accepted message for
    /// [`MockFcm::accepted`] (`false` for benchmarks: it only counts them).
    pub keep_accepted: bool,
}

impl MockFcmOptions {
    /// Project `herald-test`, account
    /// `herald-sender@herald-test.iam.gserviceaccount.com` with the
    /// [`TEST_PUBLIC_KEY_PEM`] key `herald-test-key-1`, access tokens valid
    /// for an hour, no GOAWAY, h2's stream limit, accepted messages kept.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            project_id: "herald-test".to_owned(),
            client_email: "herald-sender@herald-test.iam.gserviceaccount.com".to_owned(),
            private_key_id: "herald-test-key-1".to_owned(),
            public_key_pem: TEST_PUBLIC_KEY_PEM.to_owned(),
            clock,
            access_token_ttl: Duration::from_secs(3600),
            goaway_after_streams: None,
            max_concurrent_streams: None,
            keep_accepted: true,
        }
    }
}

/// A message the mock accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct AcceptedMessage {
    /// The name it answered (`projects/{p}/messages/{id}`).
    pub name: String,
    /// The message's `token`.
    pub token: String,
    /// The whole `message` object.
    pub message: Value,
    /// The connection it came on (0, 1, ... in accept order).
    pub connection: u64,
}

#[derive(Default)]
struct Counts {
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    send_requests: AtomicU64,
    /// Names given (validate-only sends included).
    messages: AtomicU64,
    accepted: AtomicU64,
}

/// What the handler shares with the [`MockFcm`].
struct State {
    options: MockFcmOptions,
    key: DecodingKey,
    token_uri: OnceLock<String>,
    random: RandomState,
    counts: Counts,
    /// Access token -> when it expires.
    tokens: Mutex<HashMap<String, Tick>>,
    refuse_keys: Mutex<bool>,
    token_gate: Mutex<Option<Gate>>,
    scripts: Mutex<HashMap<String, FcmScript>>,
    accepted: Mutex<Vec<AcceptedMessage>>,
    send_connections: Mutex<HashSet<u64>>,
}

/// A poisoned lock (a panicking test thread) still guards usable data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    fn token_uri(&self) -> &str {
        self.token_uri.get().map_or("", String::as_str)
    }
    fn refusing_keys(&self) -> bool {
        *lock(&self.refuse_keys)
    }
    fn lock_tokens(&self) -> MutexGuard<'_, HashMap<String, Tick>> {
        lock(&self.tokens)
    }
    fn lock_token_gate(&self) -> MutexGuard<'_, Option<Gate>> {
        lock(&self.token_gate)
    }
    fn lock_scripts(&self) -> MutexGuard<'_, HashMap<String, FcmScript>> {
        lock(&self.scripts)
    }
    fn lock_accepted(&self) -> MutexGuard<'_, Vec<AcceptedMessage>> {
        lock(&self.accepted)
    }
    fn lock_send_connections(&self) -> MutexGuard<'_, HashSet<u64>> {
        lock(&self.send_connections)
    }

    async fn answer(
        self: Arc<Self>,
        request: http::Request<Bytes>,
        conn: Conn,
    ) -> http::Response<Bytes> {
        if let Some(n) = self.options.goaway_after_streams
            && conn.stream >= n
        {
            conn.goaway();
        }
        // A clone of the URI shares its bytes: the path stays readable
        // while the request moves on.
        let uri = request.uri().clone();
        let path = uri.path();
        if path == "/token" {
            return token::answer(&self, &request).await;
        }
        let project = path
            .strip_prefix("/v1/projects/")
            .and_then(|p| p.strip_suffix("/messages:send"))
            .filter(|p| !p.is_empty() && !p.contains('/'));
        match project {
            Some(project) => send::answer(&self, project, request, conn.id).await,
            None => {
                google_error::api_error(404, "Requested entity was not found.", None, &[], None)
            }
        }
    }
}

/// A mock FCM + OAuth2 server on 127.0.0.1 (see the [module docs](self)).
/// Stops when dropped.
pub struct MockFcm {
    server: H2Server,
    ca: TestCa,
    state: Arc<State>,
}

impl MockFcm {
    /// Starts one with a fresh [`TestCa`].
    ///
    /// # Errors
    ///
    /// If it cannot listen, or `public_key_pem` is not an RSA public key
    /// (`InvalidInput`).
    pub async fn start(options: MockFcmOptions) -> std::io::Result<Self> {
        let key = DecodingKey::from_rsa_pem(options.public_key_pem.as_bytes()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("public_key_pem is not an RSA public key: {e}"),
            )
        })?;
        let ca = TestCa::new();
        let server_options = H2ServerOptions {
            max_concurrent_streams: options.max_concurrent_streams,
        };
        let state = Arc::new(State {
            options,
            key,
            token_uri: OnceLock::new(),
            random: RandomState::new(),
            counts: Counts::default(),
            tokens: Mutex::new(HashMap::new()),
            refuse_keys: Mutex::new(false),
            token_gate: Mutex::new(None),
            scripts: Mutex::new(HashMap::new()),
            accepted: Mutex::new(Vec::new()),
            send_connections: Mutex::new(HashSet::new()),
        });
        let handler: Handler = {
            let state = state.clone();
            Arc::new(move |request, conn| Box::pin(state.clone().answer(request, conn)))
        };
        let server = H2Server::start(ca.server_config(), server_options, handler).await?;
        let _ = state.token_uri.set(format!("{}/token", server.url()));
        Ok(Self { server, ca, state })
    }

    /// Its base URL, `https://localhost:PORT` (the gateway's `url`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Its token endpoint, `https://localhost:PORT/token` (the key's
    /// `token_uri`, the assertion's `aud`).
    pub fn token_uri(&self) -> String {
        self.state.token_uri().to_owned()
    }

    /// The project it serves.
    pub fn project_id(&self) -> &str {
        &self.state.options.project_id
    }

    /// The CA certificate (PEM) its TLS certificate chains to.
    pub fn ca_pem(&self) -> &str {
        self.ca.ca_pem()
    }

    /// Writes [`ca_pem`](Self::ca_pem) to `dir/ca.pem` (the gateway's
    /// `ca_file`).
    ///
    /// # Panics
    ///
    /// If the file cannot be written.
    pub fn write_ca_file(&self, dir: &Path) -> PathBuf {
        self.ca.write_ca_file(dir)
    }

    /// A Google service-account JSON key for the account this mock knows,
    /// its `token_uri` this mock's, signing with `private_key_pem` (pass
    /// [`TEST_PRIVATE_KEY_PEM`] for the key the mock expects).
    pub fn service_account_json(&self, private_key_pem: &str) -> String {
        let o = &self.state.options;
        let json = json!({
            "type": "service_account",
            "project_id": o.project_id,
            "private_key_id": o.private_key_id,
            "private_key": private_key_pem,
            "client_email": o.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        });
        serde_json::to_string_pretty(&json).unwrap_or_default()
    }

    /// Writes [`service_account_json`](Self::service_account_json) to
    /// `dir/service-account.json` and returns the path.
    ///
    /// # Panics
    ///
    /// If the file cannot be written.
    pub fn write_service_account(&self, dir: &Path, private_key_pem: &str) -> PathBuf {
        let path = dir.join("service-account.json");
        std::fs::write(&path, self.service_account_json(private_key_pem))
            .expect("write service-account.json");
        path
    }

    /// Answers valid sends to `device_token` as `script` says, until
    /// [`clear_script`](Self::clear_script).
    pub fn script(&self, device_token: &str, script: impl Into<FcmScript>) {
        self.state
            .lock_scripts()
            .insert(device_token.to_owned(), script.into());
    }

    /// Accepts sends to `device_token` again.
    pub fn clear_script(&self, device_token: &str) {
        self.state.lock_scripts().remove(device_token);
    }

    /// Refuses (`true`) every assertion, as Google does for a deleted
    /// service account (`invalid_grant`, `Invalid grant: account not
    /// found`), or accepts good ones again (`false`).
    pub fn refuse_keys(&self, refuse: bool) {
        *lock(&self.state.refuse_keys) = refuse;
    }

    /// Holds every token-endpoint answer at `gate` (`None`: no longer).
    pub fn gate_token_endpoint(&self, gate: Option<Gate>) {
        *self.state.lock_token_gate() = gate;
    }

    /// Forgets every access token it issued: sends with them get 401.
    pub fn revoke_access_tokens(&self) {
        self.state.lock_tokens().clear();
    }

    /// The messages it accepted, in order (none if
    /// [`MockFcmOptions::keep_accepted`] is off).
    pub fn accepted(&self) -> Vec<AcceptedMessage> {
        self.state.lock_accepted().clone()
    }

    /// How many messages it accepted.
    pub fn accepted_count(&self) -> usize {
        usize::try_from(self.state.counts.accepted.load(Ordering::SeqCst)).unwrap_or(usize::MAX)
    }

    /// Access tokens issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.state.counts.tokens_issued.load(Ordering::SeqCst)
    }

    /// Requests to the token endpoint so far (refused ones included).
    pub fn token_requests(&self) -> u64 {
        self.state.counts.token_requests.load(Ordering::SeqCst)
    }

    /// Requests to the send endpoint so far (refused ones included).
    pub fn send_requests(&self) -> u64 {
        self.state.counts.send_requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (TLS done), for either endpoint.
    pub fn connections(&self) -> u64 {
        self.server.connections()
    }

    /// Distinct connections that carried a send request.
    pub fn send_connections(&self) -> usize {
        self.state.lock_send_connections().len()
    }

    /// Streams (requests) received so far, both endpoints.
    pub fn streams(&self) -> u64 {
        self.server.streams()
    }

    /// Stops it, closing every connection.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

impl fmt::Debug for MockFcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockFcm")
            .field("url", &self.url())
            .field("project_id", &self.project_id())
            .field("connections", &self.connections())
            .field("streams", &self.streams())
            .field("tokens_issued", &self.tokens_issued())
            .field("accepted", &self.accepted_count())
            .finish_non_exhaustive()
    }
}
