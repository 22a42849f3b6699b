//! [`ApnsError`]: why a gateway cannot be built.

use std::path::PathBuf;

use herald_http2::{BadUrl, TlsError};

/// Why an [`ApnsGateway`](crate::ApnsGateway) (or its
/// [`ApnsConfig`](crate::ApnsConfig)) cannot be built. No variant holds
/// the key's text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApnsError {
    /// The `.p8` key file cannot be read.
    #[error("cannot read the APNs key file {}: {source}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key is not an ES256 signing key (a PKCS#8 PEM P-256 key, the
    /// format of Apple's `.p8` files).
    #[error("the APNs key {origin} is unusable: {reason}")]
    Key {
        /// Where the key came from: `file AuthKey_X.p8`, or `(given as text)`.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting cannot go into a request (`topic` with a space...).
    #[error("APNs {field}: {reason}")]
    Setting {
        /// The setting (`key_id`, `team_id`, `topic`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The extra trusted roots (`ca_file`) cannot be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The base URL is not `https://host[:port]`.
    #[error(transparent)]
    Url(#[from] BadUrl),
}
