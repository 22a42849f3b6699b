//! [`ApnsConfig`]: what an [`ApnsGateway`](crate::ApnsGateway) needs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use herald_http2::PoolOptions;

use crate::ApnsError;

/// Apple's production host (App Store, TestFlight and ad hoc builds).
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Apple's sandbox host (development builds).
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// An APNs gateway's settings: token-based authentication with a `.p8` key.
///
/// Its `Debug` shows the key's origin, never the key.
///
/// # Examples
///
/// ```no_run
/// use std::path::Path;
/// use herald_apns::ApnsConfig;
///
/// let config = ApnsConfig::from_files(
///     Path::new("AuthKey_ABC123DEFG.p8"),
///     "ABC123DEFG",
///     "DEF123GHIJ",
///     "com.example.app",
///     herald_apns::PRODUCTION_URL,
///     None,
/// )?;
/// assert!(format!("{config:?}").contains("<redacted>"));
/// # Ok::<(), herald_apns::ApnsError>(())
/// ```
#[derive(Clone)]
pub struct ApnsConfig {
    /// The `.p8` key's text: a PKCS#8 PEM P-256 private key. Secret.
    pub key_pem: String,
    /// The file the key came from, for error messages (`None`: given as
    /// text).
    pub key_file: Option<PathBuf>,
    /// The key's id (the provider token's `kid`).
    pub key_id: String,
    /// The developer team's id (the provider token's `iss`).
    pub team_id: String,
    /// `apns-topic`: the app's bundle id.
    pub topic: String,
    /// `https://host[:port]`: [`PRODUCTION_URL`], [`SANDBOX_URL`], or a
    /// proxy or test server.
    pub base_url: String,
    /// The TLS client settings (trusted roots, ALPN `h2`); see
    /// [`herald_http2::client_tls`].
    pub tls: Arc<rustls::ClientConfig>,
    /// The connection pool's settings.
    pub pool: PoolOptions,
}

impl ApnsConfig {
    /// Settings from the key's text, with the default pool options.
    pub fn new(
        key_pem: impl Into<String>,
        key_id: impl Into<String>,
        team_id: impl Into<String>,
        topic: impl Into<String>,
        base_url: impl Into<String>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            key_pem: key_pem.into(),
            key_file: None,
            key_id: key_id.into(),
            team_id: team_id.into(),
            topic: topic.into(),
            base_url: base_url.into(),
            tls,
            pool: PoolOptions::default(),
        }
    }

    /// Settings from files, as the server's `[apps.apns]` section names
    /// them: the `.p8` key file, and optionally a PEM file of extra trusted
    /// roots (added to Mozilla's). The key is read here and checked when
    /// the gateway is built.
    ///
    /// # Errors
    ///
    /// [`ApnsError::KeyFile`] when the key file cannot be read (naming the
    /// file); [`ApnsError::Tls`] when `ca_file` cannot be loaded.
    pub fn from_files(
        key_file: &Path,
        key_id: &str,
        team_id: &str,
        topic: &str,
        base_url: &str,
        ca_file: Option<&Path>,
    ) -> Result<Self, ApnsError> {
        let key_pem = std::fs::read_to_string(key_file).map_err(|source| ApnsError::KeyFile {
            path: key_file.to_owned(),
            source,
        })?;
        let tls = herald_http2::client_tls(ca_file)?;
        Ok(Self {
            key_file: Some(key_file.to_owned()),
            ..Self::new(key_pem, key_id, team_id, topic, base_url, tls)
        })
    }

    /// `file AuthKey_X.p8` or `(given as text)`, for error messages.
    pub(crate) fn key_origin(&self) -> String {
        match &self.key_file {
            Some(path) => format!("file {}", path.display()),
            None => "(given as text)".to_owned(),
        }
    }
}

impl fmt::Debug for ApnsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApnsConfig")
            .field("key_pem", &"<redacted>")
            .field("key_file", &self.key_file)
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("topic", &self.topic)
            .field("base_url", &self.base_url)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}
