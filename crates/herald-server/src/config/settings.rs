//! Every setting, defined once: [`Settings`] is what clap parses from the
//! command line (and, through [`super::sources`], from the environment)
//! and what serde reads from the TOML file. Layers merge field by field
//! ([`Settings::or`]) and the result is applied to a typed [`Config`]
//! ([`Settings::apply`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};

use super::byte_size::ByteSize;
use super::duration::Secs;
use super::{AppConfig, AppParser, Config, LogFormat, LogLevel, Secret, file};

/// The one-line description in `--help`.
const ABOUT: &str = "Backendless Messaging compatible REST and real-time server";

/// The end of `--help`.
const AFTER_HELP: &str = "\
Every setting is also a key of the TOML file (--config), named like the flag with '_' for '-'
(max_body = \"2MiB\"); apps are [[apps]] tables there, with per-key rights (publish/subscribe/push
channel globs, register, templates) and push gateways ([apps.apns], [apps.fcm]). Flags beat environment variables, which beat the file, which beats the defaults; apps
from all three are served. Sizes in bytes accept KiB, MiB and GiB (8MiB).

With no app configured, a development app is created once (its id and key are kept in
DATA_DIR/dev-app.toml) and printed at start-up.

herald.example.toml, at the root of Herald's repository, documents every key of the file
with its default, and apps with per-key permissions and push gateways.";

/// One layer of settings: what one source (the flags, the environment or
/// the TOML file) says. Every field is optional, so "not set" is visible,
/// and layers merge field by field.
///
/// A field's doc comment is its `--help` line. Names: the field
/// `max_body` is the flag `--max-body`, the environment variable
/// `HERALD_MAX_BODY` and the TOML key `max_body`. The exceptions: apps come
/// from `--app` and `HERALD_APP` (the field `app`) and from the file's
/// `[[apps]]` tables (`apps`); the file's own path (`config`) is no TOML
/// key.
#[derive(Debug, Default, Parser, Deserialize, Serialize)]
#[command(
    name = "herald-server",
    version,
    about = ABOUT,
    long_about = None,
    after_help = AFTER_HELP
)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// TOML configuration file: these settings and per-key permissions
    #[arg(long, env = "HERALD_CONFIG", value_name = "PATH")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,

    /// Address to listen on (host:port; port 0 picks a free one)
    #[arg(long, env = "HERALD_LISTEN", value_name = "ADDR")]
    pub(crate) listen: Option<String>,

    /// Data directory: one store per app, and the development app
    #[arg(long, env = "HERALD_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Where messages, devices and templates live: redb (embedded, one node) or a postgres:// URL shared by every node
    #[arg(
        long,
        env = "HERALD_STORE",
        value_name = "redb|URL",
        hide_env_values = true,
        help_heading = "Cluster"
    )]
    pub(crate) store: Option<String>,

    /// Cluster bus carrying runs between nodes: a redis:// or postgres:// URL (unset: the store's own)
    #[arg(
        long,
        env = "HERALD_BUS",
        value_name = "URL",
        hide_env_values = true,
        help_heading = "Cluster"
    )]
    pub(crate) bus: Option<String>,

    /// This node's name in a cluster (logs, metrics, frames; unset: generated per start)
    #[arg(
        long,
        env = "HERALD_NODE_ID",
        value_name = "NAME",
        help_heading = "Cluster"
    )]
    pub(crate) node_id: Option<String>,

    /// Serve this app with this key, full permissions; repeatable (in the variable: comma-separated)
    #[arg(long, env = "HERALD_APP", value_name = "APP_ID:API_KEY", value_parser = AppParser)]
    #[serde(skip)]
    pub(crate) app: Vec<AppConfig>,

    /// Log level (to stderr)
    #[arg(long, env = "HERALD_LOG", value_name = "LEVEL", ignore_case = true)]
    pub(crate) log: Option<LogLevel>,

    /// Log format: text lines, or one JSON object per line
    #[arg(
        long,
        env = "HERALD_LOG_FORMAT",
        value_name = "FORMAT",
        ignore_case = true
    )]
    pub(crate) log_format: Option<LogFormat>,

    /// Bearer token GET /metrics requires (unset: /metrics answers loopback clients only)
    #[arg(
        long,
        env = "HERALD_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        help_heading = "Security"
    )]
    pub(crate) metrics_token: Option<String>,

    /// TLS certificate chain (PEM) to serve HTTPS with (with --tls-key)
    #[arg(
        long,
        env = "HERALD_TLS_CERT",
        value_name = "PEM",
        help_heading = "Security"
    )]
    pub(crate) tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) (with --tls-cert)
    #[arg(
        long,
        env = "HERALD_TLS_KEY",
        value_name = "PEM",
        help_heading = "Security"
    )]
    pub(crate) tls_key: Option<PathBuf>,

    /// Origins browsers may call the API from (CORS), comma-separated; * is any
    #[arg(
        long,
        env = "HERALD_CORS_ORIGINS",
        value_name = "ORIGINS",
        value_delimiter = ',',
        help_heading = "Security"
    )]
    pub(crate) cors_origins: Option<Vec<String>>,

    /// Time a client has to send a request's headers (30s, 10m, …)
    #[arg(
        long,
        env = "HERALD_HEADER_READ_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Limits"
    )]
    pub(crate) header_read_timeout: Option<Secs>,

    /// Time a request may take (long polls are exempt)
    #[arg(
        long,
        env = "HERALD_REQUEST_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Limits"
    )]
    pub(crate) request_timeout: Option<Secs>,

    /// Time between the server's pings to a real-time (socket.io) client
    #[arg(
        long,
        env = "HERALD_PING_INTERVAL",
        value_name = "DURATION",
        help_heading = "Limits"
    )]
    pub(crate) ping_interval: Option<Secs>,

    /// Time a real-time client has to answer a ping before it is dropped
    #[arg(
        long,
        env = "HERALD_PING_TIMEOUT",
        value_name = "DURATION",
        help_heading = "Limits"
    )]
    pub(crate) ping_timeout: Option<Secs>,

    /// Serve real-time sessions without socketioxide (true or false)
    #[arg(
        long,
        env = "HERALD_REALTIME_DIRECT",
        value_name = "BOOL",
        help_heading = "Limits"
    )]
    pub(crate) realtime_direct: Option<bool>,

    /// Connections served at once; more wait to be accepted
    #[arg(
        long,
        env = "HERALD_MAX_CONNECTIONS",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub(crate) max_connections: Option<usize>,

    /// How long a finished message is kept for status reads (7d, 24h, …)
    #[arg(
        long,
        env = "HERALD_RETENTION",
        value_name = "DURATION",
        help_heading = "Limits"
    )]
    pub(crate) retention: Option<Secs>,

    /// Largest request body accepted, in bytes (larger: 413)
    #[arg(
        long,
        env = "HERALD_MAX_BODY",
        value_name = "BYTES",
        help_heading = "Limits"
    )]
    pub(crate) max_body: Option<ByteSize>,

    /// Seconds a legacy polling subscription lives without being polled
    #[arg(
        long,
        env = "HERALD_POLL_TTL_SECS",
        value_name = "SECS",
        help_heading = "Limits"
    )]
    pub(crate) poll_ttl_secs: Option<u64>,

    /// Largest answer to one legacy poll, in bytes
    #[arg(
        long,
        env = "HERALD_POLL_MAX_BYTES",
        value_name = "BYTES",
        help_heading = "Limits"
    )]
    pub(crate) poll_max_bytes: Option<ByteSize>,

    /// Legacy polling subscriptions one app may have at once
    #[arg(
        long,
        env = "HERALD_MAX_POLLING_SUBSCRIPTIONS",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub(crate) max_polling_subscriptions: Option<usize>,

    /// Bytes a real-time connection or a polling subscription may hold for a slow client
    #[arg(
        long,
        env = "HERALD_CONNECTION_BUFFER",
        value_name = "BYTES",
        help_heading = "Limits"
    )]
    pub(crate) connection_buffer: Option<ByteSize>,

    /// Bytes of the embedded store's page cache (redb): a fixed bound; the rest of the store's memory is per pending message
    #[arg(
        long,
        env = "HERALD_STORE_CACHE",
        value_name = "BYTES",
        help_heading = "Limits"
    )]
    pub(crate) store_cache: Option<ByteSize>,

    /// Subscriptions one real-time connection may have at once
    #[arg(
        long,
        env = "HERALD_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        value_name = "N",
        help_heading = "Limits"
    )]
    pub(crate) max_subscriptions_per_connection: Option<usize>,

    /// The file's `[[apps]]` tables.
    #[arg(skip)]
    #[serde(default, deserialize_with = "file::deserialize_apps", skip_serializing)]
    pub(crate) apps: Vec<AppConfig>,
}

impl Settings {
    /// This layer, with each setting it lacks taken from `lower`; apps from
    /// both (`lower`'s first).
    pub(crate) fn or(self, lower: Self) -> Self {
        let Self {
            config,
            listen,
            data_dir,
            store,
            bus,
            node_id,
            app,
            log,
            log_format,
            metrics_token,
            tls_cert,
            tls_key,
            cors_origins,
            header_read_timeout,
            request_timeout,
            ping_interval,
            ping_timeout,
            realtime_direct,
            max_connections,
            retention,
            max_body,
            poll_ttl_secs,
            poll_max_bytes,
            max_polling_subscriptions,
            connection_buffer,
            store_cache,
            max_subscriptions_per_connection,
            apps,
        } = self;
        let both = |mut first: Vec<AppConfig>, then: Vec<AppConfig>| {
            first.extend(then);
            first
        };
        Self {
            config: config.or(lower.config),
            listen: listen.or(lower.listen),
            data_dir: data_dir.or(lower.data_dir),
            store: store.or(lower.store),
            bus: bus.or(lower.bus),
            node_id: node_id.or(lower.node_id),
            app: both(lower.app, app),
            log: log.or(lower.log),
            log_format: log_format.or(lower.log_format),
            metrics_token: metrics_token.or(lower.metrics_token),
            tls_cert: tls_cert.or(lower.tls_cert),
            tls_key: tls_key.or(lower.tls_key),
            cors_origins: cors_origins.or(lower.cors_origins),
            header_read_timeout: header_read_timeout.or(lower.header_read_timeout),
            request_timeout: request_timeout.or(lower.request_timeout),
            ping_interval: ping_interval.or(lower.ping_interval),
            ping_timeout: ping_timeout.or(lower.ping_timeout),
            realtime_direct: realtime_direct.or(lower.realtime_direct),
            max_connections: max_connections.or(lower.max_connections),
            retention: retention.or(lower.retention),
            max_body: max_body.or(lower.max_body),
            poll_ttl_secs: poll_ttl_secs.or(lower.poll_ttl_secs),
            poll_max_bytes: poll_max_bytes.or(lower.poll_max_bytes),
            max_polling_subscriptions: max_polling_subscriptions
                .or(lower.max_polling_subscriptions),
            connection_buffer: connection_buffer.or(lower.connection_buffer),
            store_cache: store_cache.or(lower.store_cache),
            max_subscriptions_per_connection: max_subscriptions_per_connection
                .or(lower.max_subscriptions_per_connection),
            apps: both(lower.apps, apps),
        }
    }

    /// Sets what this layer sets in `config`, and adds its apps (the
    /// file's `[[apps]]` first, then `--app`/`HERALD_APP`). Does not
    /// validate.
    ///
    /// # Errors
    ///
    /// The same key twice for one app.
    pub(crate) fn apply(self, config: &mut Config) -> anyhow::Result<()> {
        let Self {
            config: _, // read by `Config::from_args`
            listen,
            data_dir,
            store,
            bus,
            node_id,
            app,
            log,
            log_format,
            metrics_token,
            tls_cert,
            tls_key,
            cors_origins,
            header_read_timeout,
            request_timeout,
            ping_interval,
            ping_timeout,
            realtime_direct,
            max_connections,
            retention,
            max_body,
            poll_ttl_secs,
            poll_max_bytes,
            max_polling_subscriptions,
            connection_buffer,
            store_cache,
            max_subscriptions_per_connection,
            apps,
        } = self;
        fn set<T>(field: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *field = v;
            }
        }
        set(&mut config.listen, listen);
        set(&mut config.data_dir, data_dir);
        if let Some(store) = store {
            config.store = super::cluster::StoreLocation::parse(&store)
                .map_err(|e| e.context(super::typed::spellings("store")))?;
        }
        if let Some(bus) = bus {
            config.bus = Some(
                super::cluster::parse_bus(&bus)
                    .map_err(|e| e.context(super::typed::spellings("bus")))?,
            );
        }
        if let Some(id) = node_id {
            config.node_id = Some(id);
        }
        set(&mut config.log, log);
        set(&mut config.log_format, log_format);
        if let Some(token) = metrics_token {
            config.metrics_token = Some(Secret(token));
        }
        if let Some(cert) = tls_cert {
            config.tls_cert = Some(cert);
        }
        if let Some(key) = tls_key {
            config.tls_key = Some(key);
        }
        set(&mut config.cors_origins, cors_origins);
        set(
            &mut config.header_read_timeout,
            header_read_timeout.map(|d| d.0),
        );
        set(&mut config.request_timeout, request_timeout.map(|d| d.0));
        set(&mut config.ping_interval, ping_interval.map(|d| d.0));
        set(&mut config.ping_timeout, ping_timeout.map(|d| d.0));
        set(&mut config.realtime_direct, realtime_direct);
        set(&mut config.max_connections, max_connections);
        set(&mut config.retention, retention.map(|d| d.0));
        set(&mut config.max_body, max_body.map(|b| b.0));
        set(&mut config.poll_ttl, poll_ttl_secs.map(Duration::from_secs));
        set(&mut config.poll_max_bytes, poll_max_bytes.map(|b| b.0));
        set(
            &mut config.max_polling_subscriptions,
            max_polling_subscriptions,
        );
        set(
            &mut config.connection_buffer,
            connection_buffer.map(|b| b.0),
        );
        set(&mut config.store_cache, store_cache.map(|b| b.0));
        set(
            &mut config.max_subscriptions_per_connection,
            max_subscriptions_per_connection,
        );
        for app in apps.into_iter().chain(app) {
            config.add_app(app)?;
        }
        Ok(())
    }

    /// Makes the relative paths of the apps' gateway sections relative to
    /// `base` (the config file's folder).
    pub(crate) fn resolve_paths(&mut self, base: &std::path::Path) {
        for app in &mut self.apps {
            if let Some(apns) = &mut app.apns {
                apns.resolve_paths(base);
            }
            if let Some(fcm) = &mut app.fcm {
                fcm.resolve_paths(base);
            }
        }
    }

    /// Every setting of `config` (whole seconds for `poll_ttl`), without
    /// apps: for the defaults `--help` shows.
    pub(crate) fn from_config(config: &Config) -> Self {
        let Config {
            listen,
            data_dir,
            store,
            bus,
            node_id,
            max_body,
            poll_ttl,
            connection_buffer,
            store_cache,
            max_subscriptions_per_connection,
            max_polling_subscriptions,
            poll_max_bytes,
            log,
            log_format,
            metrics_token: _,
            header_read_timeout,
            request_timeout,
            ping_interval,
            ping_timeout,
            realtime_direct,
            max_connections,
            tls_cert,
            tls_key,
            retention,
            cors_origins,
            apps: _,
        } = config;
        Self {
            config: None,
            listen: Some(listen.clone()),
            data_dir: Some(data_dir.clone()),
            // Shown with passwords hidden (`--help`'s defaults).
            store: Some(store.to_string()),
            bus: bus.as_ref().map(ToString::to_string),
            node_id: node_id.clone(),
            app: Vec::new(),
            log: Some(*log),
            log_format: Some(*log_format),
            // Never shown, not even in `--help`.
            metrics_token: None,
            tls_cert: tls_cert.clone(),
            tls_key: tls_key.clone(),
            cors_origins: Some(cors_origins.clone()),
            header_read_timeout: Some(Secs(*header_read_timeout)),
            request_timeout: Some(Secs(*request_timeout)),
            ping_interval: Some(Secs(*ping_interval)),
            ping_timeout: Some(Secs(*ping_timeout)),
            realtime_direct: Some(*realtime_direct),
            max_connections: Some(*max_connections),
            retention: Some(Secs(*retention)),
            max_body: Some(ByteSize(*max_body)),
            poll_ttl_secs: Some(poll_ttl.as_secs()),
            poll_max_bytes: Some(ByteSize(*poll_max_bytes)),
            max_polling_subscriptions: Some(*max_polling_subscriptions),
            connection_buffer: Some(ByteSize(*connection_buffer)),
            store_cache: Some(ByteSize(*store_cache)),
            max_subscriptions_per_connection: Some(*max_subscriptions_per_connection),
            apps: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(listen: Option<&str>, max_body: Option<usize>, app: &[(&str, &str)]) -> Settings {
        Settings {
            listen: listen.map(str::to_owned),
            max_body: max_body.map(ByteSize),
            app: app
                .iter()
                .map(|(id, key)| AppConfig::new(*id, *key))
                .collect(),
            ..Settings::default()
        }
    }

    #[test]
    fn or_prefers_the_upper_layer_and_keeps_both_apps() {
        let upper = layer(Some("upper:1"), None, &[("B", "k")]);
        let lower = layer(Some("lower:1"), Some(7), &[("A", "k")]);
        let merged = upper.or(lower);
        assert_eq!(merged.listen.as_deref(), Some("upper:1"));
        assert_eq!(merged.max_body, Some(ByteSize(7)));
        let ids: Vec<_> = merged.app.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["A", "B"]);
    }

    #[test]
    fn from_config_then_apply_round_trips() {
        let config = Config {
            listen: "0.0.0.0:1".into(),
            data_dir: "/d".into(),
            store: crate::config::StoreLocation::Redb,
            bus: Some(crate::config::cluster::parse_bus("redis://h:1").unwrap()),
            node_id: Some("n1".into()),
            max_body: 3,
            poll_ttl: Duration::from_secs(4),
            connection_buffer: 5,
            store_cache: 11,
            max_subscriptions_per_connection: 6,
            max_polling_subscriptions: 7,
            poll_max_bytes: 8,
            log: LogLevel::Trace,
            log_format: LogFormat::Json,
            metrics_token: None,
            header_read_timeout: Duration::from_secs(9),
            request_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(13),
            ping_timeout: Duration::from_secs(14),
            realtime_direct: false,
            max_connections: 11,
            tls_cert: Some("/c.pem".into()),
            tls_key: Some("/k.pem".into()),
            retention: Duration::from_secs(12),
            cors_origins: vec!["https://a.example".into()],
            apps: Vec::new(),
        };
        let mut rebuilt = Config::default();
        Settings::from_config(&config).apply(&mut rebuilt).unwrap();
        assert_eq!(rebuilt, config);
    }

    #[test]
    fn applying_an_empty_layer_changes_nothing() {
        let mut config = Config::default();
        Settings::default().apply(&mut config).unwrap();
        assert_eq!(config, Config::default());
    }
}
