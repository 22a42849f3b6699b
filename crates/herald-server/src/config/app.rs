//! Applications and their API keys.

use anyhow::bail;

use crate::Glob;

/// One application: an id and the API keys that may use it.
#[derive(Clone, Debug, PartialEq)]
pub struct AppConfig {
    /// The app id, the first path segment of every request.
    pub id: String,
    /// Its API keys.
    pub keys: Vec<KeyConfig>,
}

/// One API key and what it may do.
#[derive(Clone, PartialEq)]
pub struct KeyConfig {
    /// The key itself, the second path segment of every request.
    pub key: String,
    /// Channels this key may publish to (and delete, and cancel on).
    pub publish: Vec<Glob>,
    /// Channels this key may subscribe to (real-time and polling).
    pub subscribe: Vec<Glob>,
}

impl KeyConfig {
    /// A key that may publish and subscribe everywhere.
    pub fn full(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            publish: vec![Glob::new("*")],
            subscribe: vec![Glob::new("*")],
        }
    }
}

impl std::fmt::Debug for KeyConfig {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("key", &"<redacted>")
            .field("publish", &self.publish)
            .field("subscribe", &self.subscribe)
            .finish()
    }
}

impl AppConfig {
    /// An app with one full-permission key.
    pub fn new(id: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            keys: vec![KeyConfig::full(key)],
        }
    }
}

/// Parses `APP_ID:API_KEY` (the key may itself contain `:`).
pub(super) fn parse_app_flag(text: &str) -> anyhow::Result<AppConfig> {
    match text.split_once(':') {
        Some((id, key)) if !id.is_empty() && !key.is_empty() => Ok(AppConfig::new(id, key)),
        _ => bail!("expected APP_ID:API_KEY, got a value without both parts"),
    }
}
