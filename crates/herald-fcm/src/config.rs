//! `FcmConfig`: what an FCM gateway needs: the service account, where to
//! send, whom to trust, how to use connections.

use std::path::Path;
use std::sync::Arc;

use herald_http2::PoolOptions;

use crate::{FcmError, ServiceAccount};

/// Google's FCM host, the default base URL.
pub const FCM_URL: &str = "https://fcm.googleapis.com";

/// An FCM gateway's settings.
///
/// The same TLS configuration serves the FCM host and the key's
/// `token_uri` host, so an extra root (`ca_file`) covers both; `pool`
/// applies to the FCM host (the token endpoint gets one connection).
#[derive(Clone, Debug)]
pub struct FcmConfig {
    /// The service account whose key signs the OAuth2 assertion.
    pub service_account: ServiceAccount,
    /// Where messages go: `https://host[:port]` ([`FCM_URL`] unless a
    /// proxy or a test server replaces it).
    pub base_url: String,
    /// Whom the client trusts (see [`herald_http2::client_tls`]).
    pub tls: Arc<rustls::ClientConfig>,
    /// How the connections to the FCM host are used.
    pub pool: PoolOptions,
}

impl FcmConfig {
    /// The settings the server's `[apps.fcm]` section gives: the key file,
    /// the base URL (`url`, or [`FCM_URL`]), and an optional PEM file of
    /// extra trusted roots (`ca_file`, added to Mozilla's), with the
    /// default pool options.
    ///
    /// # Errors
    ///
    /// [`FcmError::ServiceAccount`] when the key file is unusable (the
    /// message names the file and the field), [`FcmError::Tls`] when
    /// `ca_file` is.
    pub fn from_files(
        service_account_file: &Path,
        base_url: &str,
        ca_file: Option<&Path>,
    ) -> Result<Self, FcmError> {
        Ok(Self {
            service_account: ServiceAccount::from_file(service_account_file)?,
            base_url: base_url.to_owned(),
            tls: herald_http2::client_tls(ca_file)?,
            pool: PoolOptions::default(),
        })
    }
}
