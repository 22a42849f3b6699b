//! The client's TLS settings: which roots it trusts, ALPN `h2`.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::TlsError;

/// A TLS client configuration for a push gateway: Mozilla's roots
/// (`webpki-roots`) plus the PEM certificates of `ca_file` if given (a
/// proxy's or a test server's CA), ALPN `h2`, the `ring` provider.
///
/// # Errors
///
/// [`TlsError`] when `ca_file` cannot be read or holds no valid
/// certificate.
pub fn client_tls(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
        add_pem(&mut roots, &pem).map_err(|reason| TlsError::Pem {
            path: Some(path.to_owned()),
            reason,
        })?;
    }
    Ok(config(roots))
}

/// A TLS client configuration that trusts only the PEM certificates in
/// `roots_pem` (a test CA), ALPN `h2`, the `ring` provider.
///
/// # Errors
///
/// [`TlsError::Pem`] when `roots_pem` holds no valid certificate.
pub fn client_tls_only(roots_pem: &[u8]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    add_pem(&mut roots, roots_pem).map_err(|reason| TlsError::Pem { path: None, reason })?;
    Ok(config(roots))
}

fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> Result<(), String> {
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("a certificate that cannot be a root: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err("no \"BEGIN CERTIFICATE\" block".to_owned());
    }
    Ok(())
}

fn config(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_roots_are_an_error_that_says_why() {
        let err = client_tls_only(b"hello").unwrap_err();
        assert!(
            err.to_string().contains("no \"BEGIN CERTIFICATE\""),
            "{err}"
        );
        let bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(client_tls_only(bad).is_err());
        let missing = client_tls(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/ca.pem"),
            "{missing}"
        );
    }

    #[test]
    fn the_default_roots_are_mozillas_and_alpn_is_h2() {
        let config = client_tls(None).unwrap();
        assert_eq!(config.alpn_protocols, [b"h2".to_vec()]);
    }
}
