//! Herald's server: the Backendless Messaging REST API and the socket.io
//! real-time protocol of the Backendless JS SDK, over [`herald::Engine`].
//!
//! # Endpoints
//!
//! Every API route is under `/{appId}/{apiKey}/` (path segments are
//! percent-decoded):
//!
//! | method and path | what |
//! |---|---|
//! | `GET info` | `{"rtURL": "http://host:port", "loggers": []}` |
//! | `POST messaging/{channel}` | publish the flat JSON body; answers a `MessageStatus`; an optional `Idempotency-Key` header makes retries safe (below) |
//! | `GET messaging/{messageId}` | message status (`unknown` for an id never issued) |
//! | `DELETE messaging/{messageId}` | cancel a scheduled message (5040 when not cancellable) |
//! | `DELETE messaging/channels/{channel}` | delete a channel: `{"result": existed}` |
//! | `POST messaging/{channel}/subscribe` | legacy polling: `{subscriberId?, subtopic?, selector?}` → `{"subscriptionId"}` |
//! | `GET messaging/{channel}/{subscriptionId}` | legacy polling: `{"messages": [{messageId, data, publishedAt, publisherId, headers}]}` |
//! | `POST messaging/registrations` | register a device `{deviceToken, deviceId, os, osVersion?, channels?, expiration?, properties?}` → `{"registrationId"}`; again with the same `deviceId` replaces it (5015 if invalid) |
//! | `GET messaging/registrations/{deviceId}` | `[registration]`: a list with the device's one registration (404, 5000 if unknown) |
//! | `DELETE messaging/registrations/{deviceId}` | unregister: `{"result": true}` (404, 5000 if unknown) |
//! | `POST messaging/pushtemplates` | create or replace a push template `{name, message?, title?, subtitle?, headers?, audience?: {os, channel, segmentQuery}}` → the stored template (5051 if invalid) |
//! | `GET messaging/pushtemplates/{deviceType}` | the templates whose audience includes `IOS`, `ANDROID` or `ALL` (any case; else 8012), by name; without `/{deviceType}`: all |
//! | `DELETE messaging/pushtemplates/{name}` | delete a template: `{"result": true}` (404, 5050 if unknown) |
//! | `POST messaging/push/{name}` | send a push template: `{templateValues?, publishAt?, repeatEvery?, ...}` → a `MessageStatus` (404, 5050 if unknown; 5033 without the push right on its channel) |
//!
//! A registration's `expiration` is epoch seconds below 1e11 (the JS SDK),
//! milliseconds from there (the Swift SDK); a registration answers it in
//! milliseconds. Registrations and templates live in the app's redb file,
//! next to its messages. A publish with `publishPolicy` `PUSH` or `BOTH`
//! needs the key's push right on the channel (5033) and a push gateway
//! (5014 without one): the app's `[apps.apns]` section gives it Apple's
//! (`herald_apns::ApnsGateway`, for IOS and OSX devices), `[apps.fcm]`
//! Google's (`herald_fcm::FcmGateway`, for ANDROID devices), their keys
//! read and checked at start; tests add others through the library API
//! ([`Server::with_push_gateways`], [`OpenStores::with_push_gateway`]). `POST messaging/push` without a
//! name and `messaging/email` are Backendless endpoints this server does
//! not serve (404, code 8001); `registrations`, `push`, `pushtemplates`
//! and `channels` are no channel names (5010).
//!
//! Real-time: socket.io (Engine.IO v4) at path `/{appId}/`, namespace
//! `/{appId}`, API key in the handshake query (`apiKey`): `SUB_ON`
//! `PUB_SUB_CONNECT` → `SUB_READY`; `SUB_ON` `PUB_SUB_MESSAGES` `{channel,
//! selector?}` → a `SUB_RES {id, data}` per message; `SUB_OFF {id}`.
//!
//! Outside the app prefix, without credentials: `GET /health`
//! (`{"status":"ok"}`; 503 `{"status":"unavailable","stores":[{"app",
//! "error"}]}` while an app's store cannot write, a full disk say),
//! `GET /metrics` (Prometheus text; loopback clients only, or a bearer
//! `metrics_token`) and `GET /openapi.json` (the OpenAPI 3.1 description of
//! the REST API).
//!
//! CORS: every answer but `/metrics`'s grants the request's `Origin` when
//! `cors_origins` allows it (any, by default), and preflights (`OPTIONS`)
//! are answered on every path, so a web page on another origin can use the
//! JS SDK (REST and socket.io long polling).
//!
//! # Idempotent publishes
//!
//! A publish may carry an `Idempotency-Key` header (1 to 255 printable
//! ASCII characters; one header). A retry with the same key (per app)
//! within 24 hours, with the same channel and body, answers what the first
//! publish answered (its `messageId` and status kind, with the message's
//! counters now) and publishes nothing; the key is stored with the
//! message, so this holds across a crash or restart. The same key with a
//! different channel or body is refused: 409, code 5095. A malformed key
//! (or two headers) is 400, code 5096.
//!
//! # Errors
//!
//! Every error is `{"code": N, "message": "..."}`: the engine's codes
//! ([`herald::Error`], 400; 5000 unknown device and 5050 unknown push
//! template are 404; 5090/5092 are 500, 5091 and 5093 are 503, 5094 is
//! 429, 5095 is 409), a key's missing right (400, [`codes`]), and the
//! server's own in [`codes`]:
//!
//! | code | status | what |
//! |---|---|---|
//! | 5030 | 400 | the key may not publish to that channel (`publish`) |
//! | 5031 | 400 | the key may not subscribe to that channel (`subscribe`) |
//! | 5032 | 400 | the key may not register devices or read or remove registrations (`register`) |
//! | 5033 | 400 | the key may not push to that channel (`push`) |
//! | 5034 | 400 | the key may not manage push templates (`templates`; listing also takes any `push`) |
//! | 8001 | 404 | unknown endpoint |
//! | 8002 | 401 | unknown app id or API key |
//! | 8003 | 413 | body over the limit |
//! | 8004 | 400 | malformed JSON |
//! | 8005 | 415 | content type not JSON |
//! | 8006 | 404 | unknown polling subscription |
//! | 8007 | 400 | real-time request not supported |
//! | 8008 | 429 | too many polling subscriptions |
//! | 8009 | 405 | method not allowed |
//! | 8010 | 408 | request timeout |
//! | 8011 | 401/403 | `/metrics` refused |
//! | 8012 | 400 | a device type other than `IOS`, `ANDROID`, `ALL` |
//!
//! # Configuration
//!
//! Every setting is a flag, an environment variable and a key of the TOML
//! file, from one definition: `max_body` is `--max-body`,
//! `HERALD_MAX_BODY` and `max_body`. Per setting, a flag beats a variable,
//! which beats the file, which beats the default; apps from `--app
//! APP_ID:API_KEY`, `HERALD_APP` (comma-separated) and the file are all
//! served. See the [`config`] module for the table of settings,
//! [`Config::from_args`], and `herald-server --help`. The TOML file
//! (`--config PATH`, `HERALD_CONFIG`), here with every setting at its
//! default (`herald.example.toml`, at the repository's root, explains each
//! key):
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data_dir = "herald-data"         # one store per app, and the development app
//! store = "redb"                    # or postgres://… shared by every node of a cluster
//! log = "info"                     # error, warn, info, debug or trace
//! max_body = "1MiB"                # largest request body (a byte count, or KiB/MiB/GiB)
//! poll_ttl_secs = 300              # polling subscriptions expire without a poll
//! poll_max_bytes = "4MiB"          # largest answer to one poll
//! max_polling_subscriptions = 10000  # per app
//! connection_buffer = "8MiB"       # held for a slow real-time or polling client
//! store_cache = "1GiB"             # each app's embedded store's page cache (fixed)
//! max_subscriptions_per_connection = 1000
//! log_format = "text"              # or "json"
//! cors_origins = ["*"]             # origins browsers may call the API from
//! header_read_timeout = "10s"      # durations: seconds, or with s, m, h, d
//! request_timeout = "30s"          # long polls are exempt
//! ping_interval = "25s"            # real-time heartbeat: pings this often,
//! ping_timeout = "20s"             # and drops a client that does not answer
//! realtime_direct = true           # real-time sessions without socketioxide
//! max_connections = 10000
//! retention = "7d"                 # finished messages are purged after this
//! # metrics_token = "..."          # unset: /metrics answers loopback clients only
//! # tls_cert = "cert.pem"          # with tls_key: serve HTTPS
//! # tls_key = "key.pem"
//!
//! [[apps]]
//! id = "MY-APP-ID"
//!
//! [[apps.keys]]
//! key = "server-key"               # publish/subscribe omitted: everywhere
//!
//! register = true                 # push rights are opt-in:
//! push = ["*"]                     # channels it may push to
//! templates = true                 # manage push templates
//!
//! [[apps.keys]]
//! key = "browser-key"
//! publish = []                     # nothing
//! subscribe = ["news.*", "chat-?"]
//! register = true                  # phones register themselves
//!
//! [apps.apns]                      # optional: push to Apple devices
//! key_file = "AuthKey_ABC123DEFG.p8"  # relative to this file's folder
//! key_id = "ABC123DEFG"
//! team_id = "DEF123GHIJ"
//! topic = "com.example.app"
//! environment = "production"       # or "sandbox"
//!
//! [apps.fcm]                       # optional: push to Android devices
//! service_account_file = "service-account.json"
//! ```
//!
//! Per key, `publish` and `subscribe` (channel globs) default to `["*"]`;
//! the push rights default to nothing, so that a key configured before
//! they existed gains none: `register` (register devices, read and remove
//! registrations: what a phone's key needs), `push` (channel globs it may
//! push to) and `templates` (manage push templates). `--app` and
//! `HERALD_APP` keys have every right ([`KeyConfig::full`]). The gateway
//! sections are checked at start-up ([`Config::validate`]: files readable,
//! `environment`, `https` URLs); see [`config::ApnsConfig`] and
//! [`config::FcmConfig`].
//!
//! Each app has its own engine and store (`DATA_DIR/apps/{appId}`), so apps
//! share nothing: not channels, not message ids.
//!
//! # Example
//!
//! ```
//! use herald_server::{AppConfig, Config, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let config = Config {
//!     listen: "127.0.0.1:0".into(), // an ephemeral port
//!     data_dir: std::env::temp_dir().join("herald-server-doc-example"),
//!     apps: vec![AppConfig::new("APP", "KEY")],
//!     ..Config::default()
//! };
//! let server = Server::start(config).await?;
//! println!("serving {}/APP/KEY/ ...", server.base_url());
//! server.shutdown().await?; // graceful: engines shut down, stores flushed
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod auth;
mod body;
pub mod config;
mod cors;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod gateways;
mod glob;
mod listen;
mod metrics;
mod openapi;
mod percent;
mod polling;
mod push;
mod realtime;
mod request;
mod rest;
mod state;
mod timer;
mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use herald::bus::ClusterBus;
use herald::{
    Clock, DeviceRegistry, Engine, PushBroadcast, PushTransport, Store, SystemClock, TemplateStore,
};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use config::{AppConfig, Cli, Config, DevApp, KeyConfig, ensure_dev_app, share_dev_app};
pub use error::{ApiError, codes};
pub use glob::Glob;
pub use listen::raise_fd_limit;

pub(crate) use state::State;

/// How long shutdown waits for in-flight requests and connections before
/// going on without them (on the server's clock).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Opens the message store for one app's data directory: a durable
/// [`herald_redb::RedbStore`] (`<data_dir>/herald.redb`), so every accepted
/// message survives a crash. Final messages are purged `retention` after
/// they became final, on `clock` (the engines' clock); its page cache holds
/// at most `cache_bytes` (`store_cache`).
///
/// The one place the store is chosen: every app's engine gets its store
/// from here (through [`open_stores`]).
///
/// # Errors
///
/// The directory cannot be created, or the store cannot be opened: it is
/// in use (another process has it open: the error is a
/// [`herald_redb::RedbStoreError::InUse`]), or it is not a Herald store.
pub fn open_store(
    data_dir: &Path,
    retention: Duration,
    cache_bytes: usize,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<herald_redb::RedbStore> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating store directory {}", data_dir.display()))?;
    let options = herald_redb::RedbOptions {
        retention: Some(retention),
        cache_bytes,
        clock,
        ..herald_redb::RedbOptions::default()
    };
    match herald_redb::RedbStore::open_with(data_dir, options) {
        Ok(store) => Ok(store),
        Err(e @ herald_redb::RedbStoreError::InUse { .. }) => Err(e.into()),
        Err(e) => Err(anyhow::Error::new(e))
            .with_context(|| format!("opening the message store in {}", data_dir.display())),
    }
}

/// The message store of every configured app, opened: the first step of
/// serving, so a data directory in use (or any store that cannot be
/// opened) fails before anything listens.
/// It also holds the push gateways each app's engine gets
/// ([`with_push_gateway`](Self::with_push_gateway)).
#[derive(Debug)]
pub struct OpenStores {
    stores: HashMap<String, AppStore>,
    gateways: HashMap<String, Vec<Gateway>>,
}

/// One app's store: messages, device registrations and templates (one
/// redb file, or one PostgreSQL schema), and the cluster bus of its
/// engine, if it has one.
#[derive(Clone, Debug)]
struct AppStore {
    store: Arc<dyn Store>,
    registry: Arc<dyn DeviceRegistry>,
    templates: Arc<dyn TemplateStore>,
    bus: Option<Arc<dyn ClusterBus>>,
}

impl AppStore {
    fn of<S: Store + DeviceRegistry + TemplateStore + Clone>(store: S) -> Self {
        Self {
            store: Arc::new(store.clone()),
            registry: Arc::new(store.clone()),
            templates: Arc::new(store),
            bus: None,
        }
    }
}

/// The PostgreSQL schema of app `app`: `herald_` and the app id in lower
/// case (other characters as `_`, at most 40), then 8 hex digits of a hash
/// of the exact id, so ids differing only in case or punctuation get
/// their own schemas, and every node derives the same name.
pub fn postgres_schema(app: &str) -> String {
    let mut name: String = app
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let hash = app.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    name = format!("herald_{name}_{hash:08x}");
    name
}

/// A push gateway for an app's engine: the OSes it serves and the
/// transport.
pub type Gateway = (PushBroadcast, Arc<dyn PushTransport>);

impl OpenStores {
    /// Gives app `app`'s engine a push gateway for devices of the OSes in
    /// `os` (see [`EngineBuilder::push_gateway`](herald::EngineBuilder::push_gateway)),
    /// ahead of the gateways its configuration names (the first gateway
    /// serving a device's OS gets its notifications). Tests inject a
    /// [`RecordingTransport`](herald::RecordingTransport) this way.
    #[must_use]
    pub fn with_push_gateway(
        mut self,
        app: &str,
        os: PushBroadcast,
        transport: Arc<dyn PushTransport>,
    ) -> Self {
        self.gateways
            .entry(app.to_owned())
            .or_default()
            .insert(0, (os, transport));
        self
    }
}

/// The cluster bus of app `app` at `url`: PostgreSQL `LISTEN/NOTIFY` on
/// the app's schema, or Redis pub/sub on channel `herald:{app}`.
async fn open_bus(
    url: &config::ServiceUrl,
    app: &str,
    schema: &str,
) -> anyhow::Result<Arc<dyn ClusterBus>> {
    match url.scheme() {
        "postgres" | "postgresql" => {
            let bus = herald_postgres::PgBus::connect(url.expose(), schema)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "opening the cluster bus of app {app:?} on PostgreSQL {url}: {e}"
                    )
                })?;
            Ok(Arc::new(bus))
        }
        _ => {
            let channel = format!("herald:{app}");
            let bus = herald_redis::RedisBus::connect(url.expose(), &channel)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("opening the cluster bus of app {app:?} on Redis {url}: {e}")
                })?;
            Ok(Arc::new(bus))
        }
    }
}

/// Opens the store of every app of `config` with `config.retention`, on
/// `clock` (give the engines' clock): the embedded redb store
/// (`DATA_DIR/apps/{appId}`, see [`open_store`]), or one schema per app
/// ([`postgres_schema`]) of the PostgreSQL database of `config.store`,
/// created or migrated on the way.
///
/// # Errors
///
/// The first store that cannot be opened; a data directory in use by
/// another process is one line that names it; a database that cannot be
/// reached names its URL (without its password).
pub async fn open_stores(config: &Config, clock: &Arc<dyn Clock>) -> anyhow::Result<OpenStores> {
    if let config::StoreLocation::Postgres(url) = &config.store {
        let mut stores = HashMap::new();
        let mut gateways = HashMap::new();
        for app in &config.apps {
            let schema = postgres_schema(&app.id);
            let mut options = herald_postgres::PgOptions::default();
            options.retention = Some(config.retention);
            options.clock = clock.clone();
            let store = herald_postgres::PgStore::connect(url.expose(), &schema, options)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "opening the store of app {:?} in PostgreSQL {url} (schema {schema}): {e}",
                        app.id
                    )
                })?;
            let mut opened = AppStore::of(store);
            opened.bus =
                Some(open_bus(config.bus.as_ref().unwrap_or(url), &app.id, &schema).await?);
            stores.insert(app.id.clone(), opened);
            gateways.insert(app.id.clone(), gateways::of_app(app, clock)?);
        }
        return Ok(OpenStores { stores, gateways });
    }
    let mut stores = HashMap::new();
    let mut gateways = HashMap::new();
    for app in &config.apps {
        let dir = config.data_dir.join("apps").join(&app.id);
        let store =
            open_store(&dir, config.retention, config.store_cache, clock.clone()).map_err(|e| {
                match e.downcast_ref::<herald_redb::RedbStoreError>() {
                    Some(herald_redb::RedbStoreError::InUse { path }) => anyhow::anyhow!(
                        "the data directory {} is in use by another process: {} is locked \
                     (is another herald-server running on it?)",
                        config.data_dir.display(),
                        path.display()
                    ),
                    _ => e.context(format!("opening the store of app {:?}", app.id)),
                }
            })?;
        stores.insert(app.id.clone(), AppStore::of(store));
        gateways.insert(app.id.clone(), gateways::of_app(app, clock)?);
    }
    Ok(OpenStores { stores, gateways })
}

/// Reads the TLS certificate chain and key of `config` (if it has them)
/// and checks they fit, so a bad file fails before the server binds or
/// says it listens. The error names the file.
///
/// # Errors
///
/// A file cannot be read or parsed, or the key does not fit the
/// certificate.
pub fn check_tls(config: &Config) -> anyhow::Result<()> {
    tls_of(config).map(drop)
}

fn tls_of(config: &Config) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => tls::acceptor(cert, key).map(Some),
        _ => Ok(None),
    }
}

/// The whole HTTP surface: health, metrics, one socket.io service per app,
/// and the REST API (the fallback, which routes by hand), all behind the
/// CORS layer (which answers preflights itself); a 405 gets its `Allow`
/// header from the OpenAPI document.
pub(crate) fn router(state: &Arc<State>) -> (Router, Vec<realtime::Realtime>) {
    let mut router = Router::new()
        .route("/health", axum::routing::get(rest::health))
        .route("/metrics", axum::routing::get(rest::metrics))
        .route("/openapi.json", axum::routing::get(openapi::serve));
    let mut ios = Vec::new();
    let mut app_ids: Vec<&str> = state.apps.keys().map(String::as_str).collect();
    app_ids.sort_unstable();
    for app in app_ids {
        let (with_app, io) = realtime::register(router, app, state.clone());
        router = with_app;
        ios.push(io);
    }
    let router = router
        .fallback(rest::dispatch)
        .method_not_allowed_fallback(rest::method_not_allowed)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(openapi::allow_header))
        .layer(cors::layer(&state.cors_origins));
    (router, ios)
}

/// Serves `config` on `listener` with the system clock until `shutdown`
/// completes (see [`serve_with_clock`]).
///
/// # Errors
///
/// A store cannot be opened, or the listener fails.
pub async fn serve<F>(config: Config, listener: TcpListener, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_with_clock(config, listener, shutdown, Arc::new(SystemClock)).await
}

/// Serves `config` on `listener` until `shutdown` completes, then shuts
/// down gracefully: stops accepting, closes real-time connections, lets
/// in-flight requests finish (for up to 10 s), and shuts every engine down
/// (which flushes its store). Every engine and every server timeout (the
/// polling TTL, the shutdown grace) runs on `clock`.
///
/// # Errors
///
/// A store cannot be opened, or the listener fails.
pub async fn serve_with_clock<F>(
    config: Config,
    listener: TcpListener,
    shutdown: F,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_with_gateways(config, listener, shutdown, clock, Vec::new()).await
}

/// As [`serve_with_clock`], with push gateways for some apps: `(app id,
/// OSes, transport)`.
///
/// # Errors
///
/// A store cannot be opened, or the listener fails.
pub async fn serve_with_gateways<F>(
    config: Config,
    listener: TcpListener,
    shutdown: F,
    clock: Arc<dyn Clock>,
    gateways: Vec<(String, PushBroadcast, Arc<dyn PushTransport>)>,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    config.validate()?;
    let mut stores = open_stores(&config, &clock).await?;
    for (app, os, transport) in gateways {
        stores = stores.with_push_gateway(&app, os, transport);
    }
    serve_opened(config, stores, listener, shutdown, clock).await
}

/// As [`serve_with_clock`], on stores already opened by [`open_stores`]
/// on the same `clock` (the binary opens them before it binds and says it
/// listens).
///
/// # Errors
///
/// The configuration is invalid, `stores` lacks an app of `config`, or the
/// listener fails.
pub async fn serve_opened<F>(
    config: Config,
    mut stores: OpenStores,
    listener: TcpListener,
    shutdown: F,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    config.validate()?;
    let local_addr = listener.local_addr().context("listener address")?;
    let state = Arc::new(State::new(&config, clock.clone(), local_addr, |app| {
        let store = stores
            .stores
            .remove(app)
            .with_context(|| format!("no store was opened for app {app:?}"))?;
        // One redb file (or PostgreSQL schema) per app holds its messages,
        // devices and templates.
        let mut builder = Engine::builder()
            .clock(clock.clone())
            .store(store.store)
            .registry(store.registry)
            .templates(store.templates);
        if let Some(bus) = store.bus {
            builder = builder.bus(bus);
        }
        if let Some(node) = &config.node_id {
            builder = builder.node_id(node);
        }
        for (os, transport) in stores.gateways.remove(app).unwrap_or_default() {
            builder = builder.push_gateway(os, transport);
        }
        Ok(builder.build())
    })?);
    let tls = tls_of(&config)?;
    listen::warn_if_over_fd_limit(config.max_connections);
    let (router, ios) = router(&state);
    let reaper = tokio::spawn(polling::reap_forever(state.clone()));

    let (stop, stopped) = watch::channel(false);
    let serving = listen::serve(
        listen::Listen {
            listener,
            tls,
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_connections,
        },
        router,
        state.clone(),
        config.request_timeout,
        stopped,
    );
    let grace = state.clone();
    let stopping = async move {
        shutdown.await;
        info!("shutting down: no new connections; closing real-time connections");
        let _ = stop.send(true);
        for io in ios {
            io.close().await;
        }
        grace.sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = serving => {}
        () = stopping => {
            warn!("connections still open after {SHUTDOWN_GRACE:?}; closing anyway");
        }
    }
    reaper.abort();
    for app in state.apps.values() {
        app.polling.clear();
        app.engine.shutdown().await;
    }
    info!("stopped");
    Ok(())
}

/// A running server: its address, and a handle to stop it.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Binds `config.listen` and starts serving in a background task.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Self::with_listener(config, listener)
    }

    /// Starts serving on `listener` in a background task.
    ///
    /// # Errors
    ///
    /// The configuration is invalid or the listener has no address.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn with_listener(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        Self::with_listener_and_clock(config, listener, Arc::new(SystemClock))
    }

    /// Starts serving on `listener` on `clock` (a
    /// [`ManualClock`](herald::ManualClock) in tests: the engines and the
    /// server's timeouts then move only when the test moves it).
    ///
    /// # Errors
    ///
    /// The configuration is invalid or the listener has no address.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn with_listener_and_clock(
        config: Config,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        Self::with_push_gateways(config, listener, clock, Vec::new())
    }

    /// As [`with_listener_and_clock`](Self::with_listener_and_clock), with
    /// push gateways for some apps: `(app id, OSes, transport)`.
    ///
    /// # Errors
    ///
    /// The configuration is invalid or the listener has no address.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn with_push_gateways(
        config: Config,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
        gateways: Vec<(String, PushBroadcast, Arc<dyn PushTransport>)>,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        check_tls(&config)?;
        let local_addr = listener.local_addr()?;
        let tls = config.tls_cert.is_some();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve_with_gateways(
            config,
            listener,
            async move {
                let _ = rx.await;
            },
            clock,
            gateways,
        ));
        Ok(Self {
            local_addr,
            tls,
            stop: Some(tx),
            task,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR`, or `https://ADDR` with TLS.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Stops the server gracefully and waits until it has stopped.
    ///
    /// # Errors
    ///
    /// What [`serve`] returned, or the task panicked.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.context("server task")?
    }
}

/// A future that completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM. The
/// handlers are registered when this is called, not when the future is
/// first polled, so a signal that arrives between the call and the first
/// poll (say, right after "listening" is printed) is not lost.
///
/// # Panics
///
/// If called outside a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let streams = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>, name: &'static str| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            };
            let (int, term) = streams;
            tokio::select! {
                () = wait(int, "SIGINT") => info!("SIGINT received"),
                () = wait(term, "SIGTERM") => info!("SIGTERM received"),
            }
        }
        #[cfg(not(unix))]
        {
            if let Err(e) = tokio::signal::ctrl_c().await {
                warn!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
            info!("SIGINT received");
        }
    }
}
