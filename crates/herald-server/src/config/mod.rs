//! The server's configuration: defaults, a TOML file, environment variables
//! and command-line flags, and the development app.
//!
//! # Sources
//!
//! Every setting is defined once, as a field of one struct that clap parses
//! from the command line and serde reads from the TOML file. The field
//! `max_body` is the flag `--max-body`, the environment variable
//! `HERALD_MAX_BODY` and the TOML key `max_body`:
//!
//! | setting | default | what |
//! |---|---|---|
//! | `listen` | `127.0.0.1:8080` | address to listen on |
//! | `data_dir` | `herald-data` | one store per app, and the development app |
//! | `store` | `redb` | `redb` (embedded, in `data_dir`) or a `postgres://` URL shared by every node |
//! | `bus` | the store's own | cluster bus between nodes: `redis://` or `postgres://` URL |
//! | `node_id` | generated | this node's name in a cluster |
//! | `log` | `info` | `error`, `warn`, `info`, `debug` or `trace` |
//! | `max_body` | 1 MiB | largest request body |
//! | `poll_ttl_secs` | 300 | a polling subscription's life without a poll |
//! | `poll_max_bytes` | 4 MiB | largest answer to one poll |
//! | `max_polling_subscriptions` | 10000 | polling subscriptions per app |
//! | `connection_buffer` | 8 MiB | bytes held for a slow real-time or polling client |
//! | `store_cache` | 1 GiB | each app's embedded store's page cache (a fixed bound) |
//! | `max_subscriptions_per_connection` | 1000 | subscriptions per real-time connection |
//! | `log_format` | `text` | `text` or `json` (one object per line) |
//! | `metrics_token` | none | bearer token `/metrics` requires; without it, loopback clients only |
//! | `tls_cert`, `tls_key` | none | serve HTTPS with this certificate chain and key (PEM) |
//! | `cors_origins` | `*` | origins browsers may call the API from |
//! | `header_read_timeout` | 10s | time a client has to send a request's headers |
//! | `request_timeout` | 30s | time a request may take (long polls exempt) |
//! | `ping_interval` | 25s | time between pings to a real-time (socket.io) client |
//! | `ping_timeout` | 20s | time a real-time client has to answer a ping |
//! | `realtime_direct` | true | serve real-time sessions without socketioxide (false: socketioxide serves them) |
//! | `max_connections` | 10000 | connections served at once (a long-polling real-time session counts as one) |
//! | `retention` | 7d | how long a finished message is kept for status reads |
//!
//! Sizes in bytes are whole numbers or take a unit: `8MiB`, `4 KiB`;
//! durations are whole seconds or take a unit: `30s`, `10m`, `24h`, `7d`. The
//! file itself is `--config PATH` (`HERALD_CONFIG`). Apps come from
//! `--app APP_ID:API_KEY` (repeatable), `HERALD_APP` (comma-separated) and
//! the file's `[[apps]]` tables, which give each key its channels: apps from
//! all three are served.
//!
//! Precedence, per setting: a flag beats an environment variable, which
//! beats the file, which beats the default ([`Config::from_args`]).
//!
//! `herald.example.toml`, at the repository's root, is a documented file
//! with every setting at its default and apps with per-key permissions; a
//! test keeps it complete and its values equal to the defaults.
//!
//! # Layout
//!
//! * `typed`: [`Config`], what the server runs on: defaults, validation.
//! * `settings`: the one definition of every setting, and the merge of
//!   layers into a [`Config`].
//! * `sources`: the command line and the environment (clap), the file
//!   (serde).
//! * `file`: the file's `[[apps]]` tables.
//! * `app`: [`AppConfig`] and [`KeyConfig`], and `--app`'s parser.
//! * `cluster`: [`StoreLocation`], [`ServiceUrl`], the node id.
//! * `gateway`: [`ApnsConfig`] and [`FcmConfig`], an app's push gateways.
//! * `byte_size`: `8MiB`.
//! * `duration`: `7d`.
//! * `dev_app`: the development app.
//! * `example` (tests only): `herald.example.toml`.

mod app;
mod byte_size;
pub(crate) mod cluster;
mod dev_app;
mod duration;
mod file;
mod gateway;
mod settings;
mod sources;
mod typed;

#[cfg(test)]
mod example;
#[cfg(test)]
mod tests;

use anyhow::Context;

pub use app::{AppConfig, KeyConfig};
pub use cluster::{ServiceUrl, StoreLocation};
pub(crate) use dev_app::random_uuid;
pub use dev_app::{DEV_APP_FILE, DevApp, ensure_dev_app, share_dev_app};
pub use gateway::{
    APNS_PRODUCTION_URL, APNS_SANDBOX_URL, ApnsConfig, ApnsEnvironment, FCM_URL, FcmConfig,
};
pub use typed::{
    Config, DEFAULT_CONNECTION_BUFFER, DEFAULT_DATA_DIR, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_LISTEN, DEFAULT_MAX_BODY, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_POLLING_SUBSCRIPTIONS,
    DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION, DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT,
    DEFAULT_POLL_MAX_BYTES, DEFAULT_POLL_TTL, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETENTION,
    LogFormat, LogLevel, Secret,
};

use app::AppParser;
use sources::CommandLine;

/// What the command line asked for.
#[derive(Debug)]
pub enum Cli {
    /// Run the server with this configuration.
    Run(Box<Config>),
    /// Print this text (help or version) and exit successfully.
    Print(String),
}

impl Config {
    /// Parses the command line (without the program name), reading
    /// environment variables through `env` (never from the process
    /// environment directly: `main` passes `std::env::var`) and the
    /// `--config` file from disk. Per setting, a flag beats an environment
    /// variable, which beats the file, which beats the default; apps from
    /// `--app`, `HERALD_APP` and the file are all served. The result is
    /// validated.
    ///
    /// Relative paths in the file's `[apps.apns]` and `[apps.fcm]` sections
    /// are relative to the file's folder.
    ///
    /// `--help` and `--version` give [`Cli::Print`].
    ///
    /// # Errors
    ///
    /// An unknown flag or a missing or malformed value (a [`clap::Error`],
    /// whose text has the usage), a malformed environment variable (the
    /// message names it), an unreadable or invalid file (unknown keys
    /// included), or an invalid configuration (see [`Config::validate`]).
    pub fn from_args<I, T, F>(args: I, env: F) -> anyhow::Result<Cli>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString>,
        F: Fn(&str) -> Option<String>,
    {
        let (flags, given) = match sources::command_line(args)? {
            CommandLine::Print(text) => return Ok(Cli::Print(text)),
            CommandLine::Run { settings, given } => (*settings, given),
        };
        let environment = sources::environment(env, &given)?;
        let file = match flags.config.as_ref().or(environment.config.as_ref()) {
            None => settings::Settings::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                let mut file = sources::file(&text)
                    .with_context(|| format!("in config file {}", path.display()))?;
                // Gateway files are relative to the file's folder.
                file.resolve_paths(path.parent().unwrap_or(std::path::Path::new("")));
                file
            }
        };
        let mut config = Self::default();
        flags.or(environment).or(file).apply(&mut config)?;
        config.validate()?;
        Ok(Cli::Run(Box::new(config)))
    }

    /// Reads a TOML configuration (see the crate docs for the format) into
    /// this one: present settings replace the current ones, apps are added.
    /// Does not validate. Relative gateway paths (`[apps.apns]`,
    /// `[apps.fcm]`) stay relative (to the working directory): there is no
    /// config file to resolve them against.
    ///
    /// # Errors
    ///
    /// Malformed TOML, an unknown key, a malformed value, or a duplicate key
    /// within an app.
    pub fn apply_toml(&mut self, text: &str) -> anyhow::Result<()> {
        sources::file(text)?.apply(self)
    }
}
