//! `ServiceAccount`: Google's service-account JSON key, the credentials the
//! OAuth2 flow signs its assertion with.

use std::fmt;
use std::path::Path;

use jsonwebtoken::EncodingKey;
use serde_json::{Map, Value};

use crate::FcmError;

/// Google's token endpoint, for a key file without `token_uri`.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A Google service account key, as the JSON file the Cloud console
/// downloads holds it (`type: "service_account"`).
///
/// Only what the OAuth2 flow needs is kept: the project, the account's
/// email (the assertion's `iss`), the private key (RS256, PKCS#8 PEM), its
/// id (the assertion's `kid`) and the token endpoint (`token_uri`, the
/// assertion's `aud`). The key is checked when the file is read: a key
/// that is not an RSA PEM key is an error, never a surprise at the first
/// send.
///
/// `Debug` shows everything but the private key.
///
/// # Examples
///
/// ```
/// use herald_fcm::ServiceAccount;
///
/// let json = r#"{"type": "service_account", "project_id": "demo"}"#;
/// let err = ServiceAccount::from_json(json, None).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "service account key: client_email is missing"
/// );
/// ```
#[derive(Clone)]
pub struct ServiceAccount {
    /// The Firebase/Google Cloud project (`project_id`): the send URL's
    /// `projects/{project_id}`.
    pub project_id: String,
    /// The service account's email (`client_email`): the assertion's `iss`.
    pub client_email: String,
    /// The private key's id (`private_key_id`): the assertion's `kid`, if
    /// the file has one.
    pub private_key_id: Option<String>,
    /// The token endpoint (`token_uri`; Google's if the file has none).
    pub token_uri: String,
    key: EncodingKey,
}

impl ServiceAccount {
    /// Reads and checks the key file at `path`.
    ///
    /// # Errors
    ///
    /// [`FcmError::ServiceAccount`] naming the file and what is wrong: it
    /// cannot be read, is not JSON, lacks a field, or its `private_key` is
    /// not an RSA PEM key. The message never holds the key.
    pub fn from_file(path: &Path) -> Result<Self, FcmError> {
        let text = std::fs::read_to_string(path).map_err(|e| FcmError::ServiceAccount {
            file: Some(path.to_owned()),
            reason: format!("cannot be read: {e}"),
        })?;
        Self::from_json(&text, Some(path))
    }

    /// Reads a key from its JSON text; `file` (if it came from one) is
    /// named in errors.
    ///
    /// # Errors
    ///
    /// As [`from_file`](Self::from_file).
    pub fn from_json(json: &str, file: Option<&Path>) -> Result<Self, FcmError> {
        let wrong = |reason: String| FcmError::ServiceAccount {
            file: file.map(Path::to_owned),
            reason,
        };
        // Parsed as a plain map, then field by field: serde's own messages
        // could quote a value, and a value may be the key.
        let map: Map<String, Value> = match serde_json::from_str(json) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(wrong("is not a JSON object".to_owned())),
            Err(e) => {
                return Err(wrong(format!(
                    "is not JSON (line {}, column {})",
                    e.line(),
                    e.column()
                )));
            }
        };
        let field = |name: &str| -> Result<Option<String>, FcmError> {
            match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => {
                    Err(wrong(format!("{name} is empty")))
                }
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(wrong(format!("{name} is not a string"))),
            }
        };
        let required = |name: &str| -> Result<String, FcmError> {
            field(name)?.ok_or_else(|| wrong(format!("{name} is missing")))
        };
        if let Some(kind) = field("type")?
            && kind != "service_account"
        {
            return Err(wrong(format!(
                "type is {kind:?}, not \"service_account\" (FCM needs a service account key)"
            )));
        }
        let project_id = required("project_id")?;
        if !project_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        {
            return Err(wrong(format!(
                "project_id {project_id:?} is not a Google Cloud project id"
            )));
        }
        let client_email = required("client_email")?;
        let private_key = required("private_key")?;
        let key = EncodingKey::from_rsa_pem(private_key.as_bytes()).map_err(|_| {
            wrong("private_key is not an RSA private key in PEM (PKCS#8 or PKCS#1)".to_owned())
        })?;
        let private_key_id = field("private_key_id")?;
        let token_uri = field("token_uri")?.unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned());
        Ok(Self {
            project_id,
            client_email,
            private_key_id,
            token_uri,
            key,
        })
    }

    /// The signing key.
    pub(crate) fn key(&self) -> &EncodingKey {
        &self.key
    }
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_testkit::mock_fcm::TEST_PRIVATE_KEY_PEM;

    fn key_json(extra: &[(&str, Value)], without: &[&str]) -> String {
        let mut map = Map::new();
        map.insert("type".into(), "service_account".into());
        map.insert("project_id".into(), "demo-project".into());
        map.insert("private_key_id".into(), "k1".into());
        map.insert("private_key".into(), TEST_PRIVATE_KEY_PEM.into());
        map.insert(
            "client_email".into(),
            "sender@demo-project.iam.gserviceaccount.com".into(),
        );
        map.insert("token_uri".into(), "https://localhost:1/token".into());
        for (k, v) in extra {
            map.insert((*k).to_owned(), v.clone());
        }
        for k in without {
            map.remove(*k);
        }
        Value::Object(map).to_string()
    }

    #[test]
    fn a_good_key_is_read_and_its_debug_hides_the_key() {
        let sa = ServiceAccount::from_json(&key_json(&[], &[]), None).unwrap();
        assert_eq!(sa.project_id, "demo-project");
        assert_eq!(sa.private_key_id.as_deref(), Some("k1"));
        assert_eq!(sa.token_uri, "https://localhost:1/token");
        let debug = format!("{sa:?}");
        assert!(debug.contains("<redacted>"), "{debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        let sa = ServiceAccount::from_json(&key_json(&[], &["token_uri", "private_key_id"]), None)
            .unwrap();
        assert_eq!(sa.token_uri, GOOGLE_TOKEN_URI);
        assert_eq!(sa.private_key_id, None);
    }

    #[test]
    fn each_problem_names_the_file_and_the_field_never_the_key() {
        let file = Path::new("/etc/herald/sa.json");
        let cases: Vec<(String, &str)> = vec![
            (key_json(&[], &["project_id"]), "project_id is missing"),
            (key_json(&[], &["client_email"]), "client_email is missing"),
            (key_json(&[], &["private_key"]), "private_key is missing"),
            (
                key_json(&[("private_key", "  ".into())], &[]),
                "private_key is empty",
            ),
            (
                key_json(&[("private_key", 5.into())], &[]),
                "private_key is not a string",
            ),
            (
                key_json(
                    &[(
                        "private_key",
                        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n".into(),
                    )],
                    &[],
                ),
                "private_key is not an RSA private key in PEM (PKCS#8 or PKCS#1)",
            ),
            (
                key_json(&[("type", "authorized_user".into())], &[]),
                "type is \"authorized_user\", not \"service_account\" (FCM needs a service account key)",
            ),
            (
                key_json(&[("project_id", "a/b".into())], &[]),
                "project_id \"a/b\" is not a Google Cloud project id",
            ),
            ("[1, 2]".to_owned(), "is not a JSON object"),
            (
                "{\"private_key\": \"abc".to_owned(),
                "is not JSON (line 1, column 20)",
            ),
        ];
        for (json, reason) in cases {
            let err = ServiceAccount::from_json(&json, Some(file)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("service account key /etc/herald/sa.json: {reason}")
            );
            assert!(!err.to_string().contains("c2VjcmV0"));
            assert!(!err.to_string().contains("abc"));
        }
        let err = ServiceAccount::from_file(Path::new("/nonexistent/sa.json")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("service account key /nonexistent/sa.json: cannot be read: "),
            "{err}"
        );
    }
}
