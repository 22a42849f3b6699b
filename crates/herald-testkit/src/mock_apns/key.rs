//! [`TestApnsKey`]: an APNs signing key generated at test time, so no key
//! file is ever committed.

use std::fmt;
use std::path::{Path, PathBuf};

/// A P-256 key pair in the shape Apple issues (`AuthKey_<KEY_ID>.p8`: a
/// PKCS#8 PEM private key), with a key id and a team id.
///
/// ```
/// let key = herald_testkit::mock_apns::TestApnsKey::generate();
/// assert!(key.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
/// assert!(key.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
/// assert_eq!((key.key_id.len(), key.team_id.len()), (10, 10));
/// ```
#[derive(Clone)]
pub struct TestApnsKey {
    /// The key's id (the provider token's `kid`): `TESTKEY001`.
    pub key_id: String,
    /// The team's id (the provider token's `iss`): `TESTTEAM01`.
    pub team_id: String,
    /// The private key, PKCS#8 PEM (the `.p8` file's contents).
    pub private_pem: String,
    /// The public key, SPKI PEM (what the mock verifies with).
    pub public_pem: String,
}

impl TestApnsKey {
    /// A fresh key pair, key id `TESTKEY001`, team id `TESTTEAM01`.
    ///
    /// # Panics
    ///
    /// If rcgen cannot generate a key (not expected: test support).
    pub fn generate() -> Self {
        let pair =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key pair");
        Self {
            key_id: "TESTKEY001".to_owned(),
            team_id: "TESTTEAM01".to_owned(),
            private_pem: pair.serialize_pem(),
            public_pem: pair.public_key_pem(),
        }
    }

    /// Writes the private key to `dir/AuthKey_<KEY_ID>.p8` (what
    /// `[apps.apns] key_file` names) and returns the path.
    ///
    /// # Panics
    ///
    /// If the file cannot be written.
    pub fn write_p8(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("AuthKey_{}.p8", self.key_id));
        std::fs::write(&path, &self.private_pem).expect("write the .p8 key");
        path
    }
}

impl fmt::Debug for TestApnsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestApnsKey")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("private_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}
