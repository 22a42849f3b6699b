//! The typed configuration the server runs on: [`Config`], its defaults
//! and its validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use super::AppConfig;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "herald-data";
/// The default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// The default time a legacy polling subscription lives without a poll.
pub const DEFAULT_POLL_TTL: Duration = Duration::from_secs(300);

/// Everything the server needs to start.
///
/// Built by [`Config::from_args`] (file, then environment, then flags, each
/// overriding the one before; apps from all three are merged) or by hand in
/// tests.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The address to listen on (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// Where the store (and the development app) live.
    pub data_dir: PathBuf,
    /// The largest request body accepted, in bytes (larger: 413).
    pub max_body: usize,
    /// How long a legacy polling subscription lives without being polled.
    pub poll_ttl: Duration,
    /// The applications this server serves, with their API keys.
    pub apps: Vec<AppConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            max_body: DEFAULT_MAX_BODY,
            poll_ttl: DEFAULT_POLL_TTL,
            apps: Vec::new(),
        }
    }
}

impl Config {
    /// Adds `app`, merging its keys into an app with the same id.
    ///
    /// # Errors
    ///
    /// The same key twice for one app.
    pub fn add_app(&mut self, app: AppConfig) -> anyhow::Result<()> {
        match self.apps.iter_mut().find(|a| a.id == app.id) {
            None => self.apps.push(app),
            Some(existing) => {
                for key in app.keys {
                    if existing.keys.iter().any(|k| k.key == key.key) {
                        bail!("app {:?}: the same API key is configured twice", app.id);
                    }
                    existing.keys.push(key);
                }
            }
        }
        Ok(())
    }

    /// Checks the apps: ids of 1 to 100 characters from `A-Z a-z 0-9 - _ .`
    /// (not `health` or `metrics`, which are server routes), each with at
    /// least one key; keys non-empty, without `/` or control characters, and
    /// not repeated within an app.
    ///
    /// # Errors
    ///
    /// The first problem found.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_body == 0 {
            bail!("max_body must be at least 1 byte");
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
            if matches!(id.as_str(), "health" | "metrics") {
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
        }
        Ok(())
    }
}
