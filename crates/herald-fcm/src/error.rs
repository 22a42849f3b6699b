//! `FcmError`: why an FCM gateway cannot be built.

use std::path::PathBuf;

/// Why an [`FcmGateway`](crate::FcmGateway) or its
/// [`FcmConfig`](crate::FcmConfig) cannot be made. Sending never fails
/// with this: a send's problems are [`Outcome`](herald::Outcome)s and
/// [`Refusal`](herald::Refusal)s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FcmError {
    /// The service account key file is unusable. `reason` names the field
    /// and never holds the key.
    #[error("service account key{}: {reason}", file.as_ref().map(|f| format!(" {}", f.display())).unwrap_or_default())]
    ServiceAccount {
        /// The key file, if the key came from one.
        file: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// The extra trusted roots (`ca_file`) cannot be loaded.
    #[error(transparent)]
    Tls(#[from] herald_http2::TlsError),
    /// The FCM base URL is not `https://host[:port]`.
    #[error("FCM url: {0}")]
    Url(herald_http2::BadUrl),
    /// The key's `token_uri` is not an `https` URL the client can post to.
    #[error("service account key: token_uri {uri:?}: {reason}")]
    TokenUri {
        /// The `token_uri` as the key has it.
        uri: String,
        /// What is wrong.
        reason: String,
    },
}
