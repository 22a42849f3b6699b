//! `TestCa`: a certificate authority generated when a test starts, and a
//! server certificate it signed, for the mock gateways' TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test CA (ECDSA P-256, generated at start, never written unless asked)
/// and a server certificate it signed for `localhost` and `127.0.0.1`.
///
/// A client trusts the mocks by trusting [`ca_pem`](Self::ca_pem) (the
/// gateways' `ca_file`); one that does not is refused, as a real server's
/// certificate from an unknown CA would be.
///
/// ```
/// let ca = herald_testkit::tls::TestCa::new();
/// assert!(ca.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// assert_eq!(ca.server_config().alpn_protocols, [b"h2".to_vec()]);
/// ```
#[derive(Debug)]
pub struct TestCa {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl TestCa {
    /// A fresh CA and server certificate.
    ///
    /// # Panics
    ///
    /// If rcgen cannot generate a key or sign (not expected: test support).
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("a P-256 key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Herald test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, ca_key).expect("a self-signed CA");
        let server_key = KeyPair::generate().expect("a P-256 key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, "Herald mock gateway");
        let server = params
            .signed_by(&server_key, &ca)
            .expect("a server certificate");
        Self {
            ca_pem: ca.pem(),
            chain: vec![server.der().clone(), ca.der().clone()],
            key_der: server_key.serialize_der(),
        }
    }

    /// The CA certificate, PEM: what a client's `ca_file` holds to trust
    /// the mocks.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`ca_pem`](Self::ca_pem) to `dir/ca.pem` and returns the path.
    ///
    /// # Panics
    ///
    /// If the file cannot be written.
    pub fn write_ca_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write ca.pem");
        path
    }

    /// A TLS server configuration presenting the server certificate, ALPN
    /// `h2` only, on the `ring` provider.
    ///
    /// # Panics
    ///
    /// If rustls refuses the generated certificate (not expected).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .expect("the generated certificate");
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
