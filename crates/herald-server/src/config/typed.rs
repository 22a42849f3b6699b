//! The typed configuration the server runs on: [`Config`], its defaults
//! and its validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};
use tracing::level_filters::LevelFilter;

use super::AppConfig;
use super::cluster::{ServiceUrl, StoreLocation};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "herald-data";
/// The default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// The default time a legacy polling subscription lives without a poll.
pub const DEFAULT_POLL_TTL: Duration = Duration::from_secs(300);
/// The default bytes a connection or polling subscription may hold for a
/// slow client: 8 MiB.
pub const DEFAULT_CONNECTION_BUFFER: usize = 8 << 20;
/// The default number of subscriptions one real-time connection may have.
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 1000;
/// The default number of legacy polling subscriptions one app may have.
pub const DEFAULT_MAX_POLLING_SUBSCRIPTIONS: usize = 10_000;
/// The default size limit of one poll's answer: 4 MiB.
pub const DEFAULT_POLL_MAX_BYTES: usize = 4 << 20;
/// The default time a client has to send a request's headers.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time a request may take (long polls are exempt).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The default [`Config::ping_interval`]: 25 s (socket.io's).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(25);
/// The default [`Config::ping_timeout`]: 20 s (socket.io's).
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// The default number of connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The default time a finished message is kept: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// Everything the server needs to start.
///
/// Built by [`Config::from_args`] (defaults, then the TOML file, then the
/// environment, then flags, each overriding the one before; apps from all
/// three are merged) or by hand in tests. Each field's setting has the same
/// name as a TOML key, a flag and an environment variable (see the
/// [module docs](super)); a field in [`Duration`] is set in seconds
/// (`poll_ttl`: `poll_ttl_secs`).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The address to listen on (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// Where the store (and the development app) live.
    pub data_dir: PathBuf,
    /// Where messages, devices and templates live (default: the embedded
    /// redb store in `data_dir`; PostgreSQL: shared by every node).
    pub store: StoreLocation,
    /// The cluster bus between nodes (default: the store's own:
    /// PostgreSQL's `NOTIFY` for a PostgreSQL store, none for redb).
    pub bus: Option<ServiceUrl>,
    /// This node's name in a cluster (default: generated per start).
    pub node_id: Option<String>,
    /// The largest request body accepted, in bytes (larger: 413).
    pub max_body: usize,
    /// How long a legacy polling subscription lives without being polled.
    pub poll_ttl: Duration,
    /// The most bytes a real-time connection, or a legacy polling
    /// subscription, may hold for a client that does not keep up.
    pub connection_buffer: usize,
    /// Each app's embedded store's page cache, in bytes: a fixed bound
    /// (redb's cache; PostgreSQL has its own). What the engine holds
    /// beyond it grows with the pending messages (~50 B each).
    pub store_cache: usize,
    /// The most subscriptions one real-time connection may have at once.
    pub max_subscriptions_per_connection: usize,
    /// The most legacy polling subscriptions one app may have at once.
    pub max_polling_subscriptions: usize,
    /// The largest answer to one legacy poll, in bytes.
    pub poll_max_bytes: usize,
    /// The log level of the `herald-server` binary (stderr).
    pub log: LogLevel,
    /// The log format of the `herald-server` binary: text or JSON lines.
    pub log_format: LogFormat,
    /// The bearer token `GET /metrics` requires; without one, `/metrics`
    /// answers loopback clients only.
    pub metrics_token: Option<Secret>,
    /// How long a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a request may take (engine.io and legacy long polls are
    /// exempt).
    pub request_timeout: Duration,
    /// How often the server pings a real-time (socket.io) client. A client
    /// whose queue is full when a ping is due (it reads nothing) is
    /// dropped then, which frees what it held.
    pub ping_interval: Duration,
    /// How long a real-time client has to answer a ping before it is
    /// dropped.
    pub ping_timeout: Duration,
    /// Whether real-time sessions (WebSocket and long polling) are served
    /// by Herald's own Engine.IO path, where a few writer tasks serve every
    /// connection, instead of socketioxide's (a task and its buffers per
    /// connection).
    pub realtime_direct: bool,
    /// Connections served at once; more wait to be accepted. WebSocket
    /// sessions on the direct path count for as long as they are open.
    pub max_connections: usize,
    /// The TLS certificate chain (PEM) to serve HTTPS with, with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM), with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// How long a finished (published, failed or cancelled) message is kept
    /// for status reads before it is purged.
    pub retention: Duration,
    /// The origins browsers may call the API from (CORS); `*` is any.
    pub cors_origins: Vec<String>,
    /// The applications this server serves, with their API keys.
    pub apps: Vec<AppConfig>,
}

/// A secret setting: compared and used, never printed (`Debug` shows
/// `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the `herald-server` binary writes its log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            store: StoreLocation::Redb,
            bus: None,
            node_id: None,
            max_body: DEFAULT_MAX_BODY,
            poll_ttl: DEFAULT_POLL_TTL,
            connection_buffer: DEFAULT_CONNECTION_BUFFER,
            store_cache: herald_redb::DEFAULT_CACHE_BYTES,
            max_subscriptions_per_connection: DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            max_polling_subscriptions: DEFAULT_MAX_POLLING_SUBSCRIPTIONS,
            poll_max_bytes: DEFAULT_POLL_MAX_BYTES,
            log: LogLevel::default(),
            log_format: LogFormat::default(),
            metrics_token: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            realtime_direct: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls_cert: None,
            tls_key: None,
            retention: DEFAULT_RETENTION,
            cors_origins: vec!["*".to_owned()],
            apps: Vec::new(),
        }
    }
}

/// How much the server logs (to stderr): `error`, `warn`, `info` (the
/// default), `debug` or `trace`, each including the ones before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Start-up, shutdown and other notable events (the default).
    #[default]
    Info,
    /// Diagnostic detail.
    Debug,
    /// Everything.
    Trace,
}

impl From<LogLevel> for LevelFilter {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Error => Self::ERROR,
            LogLevel::Warn => Self::WARN,
            LogLevel::Info => Self::INFO,
            LogLevel::Debug => Self::DEBUG,
            LogLevel::Trace => Self::TRACE,
        }
    }
}

/// `name (--name, HERALD_NAME)`: a setting's three spellings, for messages.
pub(crate) fn spellings(name: &str) -> String {
    format!(
        "{name} (--{}, HERALD_{})",
        name.replace('_', "-"),
        name.to_ascii_uppercase()
    )
}

impl Config {
    /// Adds `app`, merging its keys (and gateways) into an app with the
    /// same id.
    ///
    /// # Errors
    ///
    /// The same key twice for one app, or a gateway section (`[apps.apns]`,
    /// `[apps.fcm]`) given twice for one app.
    pub fn add_app(&mut self, app: AppConfig) -> anyhow::Result<()> {
        match self.apps.iter_mut().find(|a| a.id == app.id) {
            None => self.apps.push(app),
            Some(existing) => {
                let AppConfig {
                    id,
                    keys,
                    apns,
                    fcm,
                } = app;
                for key in keys {
                    if existing.keys.iter().any(|k| k.key == key.key) {
                        bail!("app {id:?}: the same API key is configured twice");
                    }
                    existing.keys.push(key);
                }
                if apns.is_some() && existing.apns.is_some() {
                    bail!("app {id:?}: [apps.apns] is configured twice");
                }
                if fcm.is_some() && existing.fcm.is_some() {
                    bail!("app {id:?}: [apps.fcm] is configured twice");
                }
                existing.apns = existing.apns.take().or(apns);
                existing.fcm = existing.fcm.take().or(fcm);
            }
        }
        Ok(())
    }

    /// Checks the bounds (sizes, counts and durations are at least 1),
    /// that `tls_cert` and `tls_key` come together, the CORS origins, and
    /// the apps: ids of 1 to 100
    /// characters from `A-Z a-z 0-9 - _ .` (not `health`, `metrics` or
    /// `openapi.json`, which are server routes), each with at least one key;
    /// keys non-empty, without `/` or control characters, and not repeated
    /// within an app; and each app's push gateways: their values (Apple's
    /// key and team ids, the topic, an `https://host[:port]` URL) and their
    /// files, which must exist, be readable and not be empty (read here, at
    /// start-up; their contents are not kept).
    ///
    /// # Errors
    ///
    /// The first problem found; a bad bound is named as a setting, a bad
    /// gateway by its app, section and field.
    pub fn validate(&self) -> anyhow::Result<()> {
        let bounds = [
            ("max_body", self.max_body),
            ("poll_ttl_secs", usize::from(!self.poll_ttl.is_zero())),
            ("connection_buffer", self.connection_buffer),
            ("store_cache", self.store_cache),
            (
                "max_subscriptions_per_connection",
                self.max_subscriptions_per_connection,
            ),
            ("max_polling_subscriptions", self.max_polling_subscriptions),
            ("poll_max_bytes", self.poll_max_bytes),
            (
                "header_read_timeout",
                usize::from(!self.header_read_timeout.is_zero()),
            ),
            (
                "request_timeout",
                usize::from(!self.request_timeout.is_zero()),
            ),
            ("ping_interval", usize::from(!self.ping_interval.is_zero())),
            ("ping_timeout", usize::from(!self.ping_timeout.is_zero())),
            ("max_connections", self.max_connections),
            ("retention", usize::from(!self.retention.is_zero())),
        ];
        for (name, value) in bounds {
            if value == 0 {
                bail!("{} must be at least 1, got 0", spellings(name));
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            // The files are read by `check_tls`.
            (Some(_), Some(_)) | (None, None) => {}
            _ => bail!(
                "{} and {} go together: set both or neither",
                spellings("tls_cert"),
                spellings("tls_key")
            ),
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.0.trim().is_empty())
        {
            bail!("{} must not be empty", spellings("metrics_token"));
        }
        if let Some(id) = &self.node_id {
            super::cluster::check_node_id(id).map_err(|e| e.context(spellings("node_id")))?;
        }
        if self.bus.is_some() && !self.store.is_shared() {
            bail!(
                "{} needs a shared store ({} postgres://…): with the embedded redb store this server is the only node",
                spellings("bus"),
                spellings("store")
            );
        }
        if self.cors_origins.is_empty() {
            bail!(
                "{} lists no origin (use \"*\" for any)",
                spellings("cors_origins")
            );
        }
        for origin in &self.cors_origins {
            let ok = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && !origin.chars().any(|c| c.is_whitespace() || c.is_control()));
            if !ok {
                bail!(
                    "{}: {origin:?} is not an origin (scheme://host[:port], no path) or \"*\"",
                    spellings("cors_origins")
                );
            }
        }
        let mut seen = BTreeMap::new();
        for app in &self.apps {
            let id = &app.id;
            let ok_chars = id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if id.is_empty() || id.len() > 100 || !ok_chars || id == "." || id == ".." {
                bail!(
                    "invalid app id {id:?}: use 1 to 100 characters from A-Z, a-z, 0-9, '-', '_', '.'"
                );
            }
            if matches!(id.as_str(), "health" | "metrics" | "openapi.json") {
                bail!("app id {id:?} is reserved for a server route");
            }
            if seen.insert(id.clone(), ()).is_some() {
                bail!("app {id:?} is configured twice");
            }
            if app.keys.is_empty() {
                bail!("app {id:?} has no API key");
            }
            for (i, k) in app.keys.iter().enumerate() {
                if k.key.is_empty() || k.key.contains('/') || k.key.chars().any(char::is_control) {
                    bail!(
                        "app {id:?}: API key #{} is empty or contains '/' or control characters",
                        i + 1
                    );
                }
                if app.keys[..i].iter().any(|o| o.key == k.key) {
                    bail!("app {id:?}: the same API key is configured twice");
                }
            }
            if let Some(apns) = &app.apns {
                apns.check()
                    .map_err(|e| anyhow::anyhow!(e.in_app(id, "apns")))?;
            }
            if let Some(fcm) = &app.fcm {
                fcm.check()
                    .map_err(|e| anyhow::anyhow!(e.in_app(id, "fcm")))?;
            }
        }
        Ok(())
    }
}
