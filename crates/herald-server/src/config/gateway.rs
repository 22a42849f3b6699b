//! An app's push gateways: the TOML file's `[apps.apns]` and `[apps.fcm]`
//! sections, read, checked and kept as [`ApnsConfig`] and [`FcmConfig`].
//!
//! ```toml
//! [apps.apns]
//! key_file = "AuthKey_ABC123DEFG.p8"   # Apple's .p8 key (PKCS#8 PEM, P-256)
//! key_id = "ABC123DEFG"
//! team_id = "DEF123GHIJ"
//! topic = "com.example.app"            # apns-topic: the bundle id
//! environment = "production"           # or "sandbox"
//! url = "https://127.0.0.1:8443"       # optional: replaces Apple's host
//! ca_file = "ca.pem"                   # optional: extra trusted roots (PEM)
//!
//! [apps.fcm]
//! service_account_file = "service-account.json"
//! url = "https://127.0.0.1:9443"       # optional: replaces https://fcm.googleapis.com
//! ca_file = "ca.pem"                   # optional
//! ```
//!
//! Relative paths are relative to the config file's folder
//! ([`Config::from_args`](super::Config::from_args) resolves them; with
//! [`Config::apply_toml`](super::Config::apply_toml), which has no file,
//! they stay relative to the working directory). Each file must exist, be
//! readable and not be empty when the server starts
//! ([`Config::validate`](super::Config::validate)); its contents (keys,
//! certificates) are not read into the configuration: the push transports
//! read them. So these settings hold no secret, and their `Debug` shows
//! paths and identifiers only.
//!
//! A problem is an error naming the app, the section and the field:
//! `app "MY-APP": [apps.apns] environment: "prod" is neither "production" nor "sandbox"`.

use std::fmt;
use std::path::{Path, PathBuf};

use axum::http::Uri;

/// Apple's production host.
pub const APNS_PRODUCTION_URL: &str = "https://api.push.apple.com";
/// Apple's sandbox (development) host.
pub const APNS_SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";
/// Google's FCM host.
pub const FCM_URL: &str = "https://fcm.googleapis.com";

/// An app's APNs (Apple Push Notification service) settings: token-based
/// authentication with a `.p8` key (`[apps.apns]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApnsConfig {
    /// Apple's `.p8` signing key (a PKCS#8 PEM P-256 key) for the ES256
    /// provider token. The path, not the key.
    pub key_file: PathBuf,
    /// The key's id (`kid` of the provider token): 10 ASCII letters or
    /// digits.
    pub key_id: String,
    /// The Apple developer team id (`iss` of the provider token): 10 ASCII
    /// letters or digits.
    pub team_id: String,
    /// The `apns-topic`: the app's bundle id (printable ASCII, no spaces).
    pub topic: String,
    /// Apple's production or sandbox host.
    pub environment: ApnsEnvironment,
    /// Replaces Apple's host (a proxy, a test server): `https://host[:port]`.
    pub url: Option<Uri>,
    /// Extra trusted root certificates (PEM), added to the usual ones.
    pub ca_file: Option<PathBuf>,
}

/// Which APNs host an app's notifications go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApnsEnvironment {
    /// `api.push.apple.com`: apps from the App Store, TestFlight and ad hoc
    /// builds.
    Production,
    /// `api.sandbox.push.apple.com`: development builds.
    Sandbox,
}

impl ApnsEnvironment {
    /// `production` or `sandbox`, as the TOML file spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Production => "production",
            Self::Sandbox => "sandbox",
        }
    }

    /// Apple's host for this environment ([`APNS_PRODUCTION_URL`] or
    /// [`APNS_SANDBOX_URL`]).
    pub const fn default_url(self) -> &'static str {
        match self {
            Self::Production => APNS_PRODUCTION_URL,
            Self::Sandbox => APNS_SANDBOX_URL,
        }
    }
}

impl ApnsConfig {
    /// The base URL notifications go to: `url` if set, else Apple's host
    /// for the environment.
    pub fn base_url(&self) -> String {
        self.url.as_ref().map_or_else(
            || self.environment.default_url().to_owned(),
            |u| u.to_string().trim_end_matches('/').to_owned(),
        )
    }
}

/// An app's FCM (Firebase Cloud Messaging, HTTP v1) settings: a Google
/// service account key (`[apps.fcm]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FcmConfig {
    /// Google's service account JSON key (`project_id`, `client_email`,
    /// `private_key`, `token_uri`). The path, not the key.
    pub service_account_file: PathBuf,
    /// Replaces `https://fcm.googleapis.com` (a proxy, a test server):
    /// `https://host[:port]`.
    pub url: Option<Uri>,
    /// Extra trusted root certificates (PEM), for the FCM host and the
    /// key's `token_uri` host.
    pub ca_file: Option<PathBuf>,
}

impl FcmConfig {
    /// The base URL messages go to: `url` if set, else [`FCM_URL`].
    pub fn base_url(&self) -> String {
        self.url.as_ref().map_or_else(
            || FCM_URL.to_owned(),
            |u| u.to_string().trim_end_matches('/').to_owned(),
        )
    }
}

/// What is wrong with one field of a gateway section.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// The field (`key_id`), or the section itself (`""`).
    pub(crate) field: String,
    /// What is wrong.
    pub(crate) message: String,
}

impl FieldError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// `app "ID": [apps.SECTION] FIELD: MESSAGE`.
    pub(crate) fn in_app(&self, app: &str, section: &str) -> String {
        if self.field.is_empty() {
            format!("app {app:?}: [apps.{section}] {}", self.message)
        } else {
            format!(
                "app {app:?}: [apps.{section}] {}: {}",
                self.field, self.message
            )
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The fields of a TOML table, taken one by one; what is left at the end
/// is unknown.
struct Fields {
    table: toml::Table,
    known: &'static [&'static str],
}

impl Fields {
    fn string(&mut self, name: &str) -> Result<Option<String>, FieldError> {
        match self.table.remove(name) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(FieldError::new(
                name,
                format!("expected a string, got {}", article(other.type_str())),
            )),
        }
    }

    fn required(&mut self, name: &str) -> Result<String, FieldError> {
        self.string(name)?
            .ok_or_else(|| FieldError::new(name, "is required"))
    }

    fn path(&mut self, name: &str) -> Result<Option<PathBuf>, FieldError> {
        match self.string(name)? {
            Some(s) if s.trim().is_empty() => Err(FieldError::new(name, "is empty")),
            other => Ok(other.map(PathBuf::from)),
        }
    }

    fn url(&mut self, name: &str) -> Result<Option<Uri>, FieldError> {
        self.string(name)?
            .map(|s| {
                if s.contains('#') {
                    // `Uri` would drop it silently.
                    return Err(FieldError::new(
                        name,
                        "must be https://host[:port]: it has a fragment",
                    ));
                }
                s.parse::<Uri>()
                    .map_err(|_| FieldError::new(name, "does not parse as a URL"))
            })
            .transpose()
    }

    /// Fails on the first field not taken.
    fn finish(self) -> Result<(), FieldError> {
        match self.table.keys().next() {
            None => Ok(()),
            Some(unknown) => Err(FieldError::new(
                unknown,
                format!("unknown field; expected one of {}", self.known.join(", ")),
            )),
        }
    }
}

/// `an integer`, `a table`.
fn article(kind: &str) -> String {
    let an = kind.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {kind}", if an { "an" } else { "a" })
}

impl ApnsConfig {
    const FIELDS: &'static [&'static str] = &[
        "key_file",
        "key_id",
        "team_id",
        "topic",
        "environment",
        "url",
        "ca_file",
    ];

    /// Reads an `[apps.apns]` table (types, required fields, unknown
    /// fields, `environment`, `url` syntax); [`check`](Self::check) does
    /// the rest.
    pub(crate) fn from_table(table: toml::Table) -> Result<Self, FieldError> {
        let mut f = Fields {
            table,
            known: Self::FIELDS,
        };
        let key_file = f
            .path("key_file")?
            .ok_or_else(|| FieldError::new("key_file", "is required"))?;
        let key_id = f.required("key_id")?;
        let team_id = f.required("team_id")?;
        let topic = f.required("topic")?;
        let environment = match f.required("environment")?.as_str() {
            "production" => ApnsEnvironment::Production,
            "sandbox" => ApnsEnvironment::Sandbox,
            other => {
                return Err(FieldError::new(
                    "environment",
                    format!("{other:?} is neither \"production\" nor \"sandbox\""),
                ));
            }
        };
        let url = f.url("url")?;
        let ca_file = f.path("ca_file")?;
        f.finish()?;
        Ok(Self {
            key_file,
            key_id,
            team_id,
            topic,
            environment,
            url,
            ca_file,
        })
    }

    /// Makes relative paths relative to `base` (the config file's folder).
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        self.key_file = base.join(&self.key_file);
        if let Some(ca) = &mut self.ca_file {
            *ca = base.join(&*ca);
        }
    }

    /// Checks the values (`key_id`, `team_id`, `topic`, `url`) and that
    /// each file exists, is readable and is not empty.
    ///
    /// # Errors
    ///
    /// The first problem, with its field.
    pub(crate) fn check(&self) -> Result<(), FieldError> {
        apple_id("key_id", &self.key_id)?;
        apple_id("team_id", &self.team_id)?;
        if self.topic.is_empty() || !self.topic.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldError::new(
                "topic",
                "must be the app's bundle id: printable ASCII without spaces",
            ));
        }
        if let Some(url) = &self.url {
            check_url("url", url)?;
        }
        readable("key_file", &self.key_file)?;
        if let Some(ca) = &self.ca_file {
            readable("ca_file", ca)?;
        }
        Ok(())
    }
}

impl FcmConfig {
    const FIELDS: &'static [&'static str] = &["service_account_file", "url", "ca_file"];

    /// Reads an `[apps.fcm]` table (types, required fields, unknown
    /// fields, `url` syntax); [`check`](Self::check) does the rest.
    pub(crate) fn from_table(table: toml::Table) -> Result<Self, FieldError> {
        let mut f = Fields {
            table,
            known: Self::FIELDS,
        };
        let service_account_file = f
            .path("service_account_file")?
            .ok_or_else(|| FieldError::new("service_account_file", "is required"))?;
        let url = f.url("url")?;
        let ca_file = f.path("ca_file")?;
        f.finish()?;
        Ok(Self {
            service_account_file,
            url,
            ca_file,
        })
    }

    /// Makes relative paths relative to `base` (the config file's folder).
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        self.service_account_file = base.join(&self.service_account_file);
        if let Some(ca) = &mut self.ca_file {
            *ca = base.join(&*ca);
        }
    }

    /// Checks `url` and that each file exists, is readable and is not
    /// empty.
    ///
    /// # Errors
    ///
    /// The first problem, with its field.
    pub(crate) fn check(&self) -> Result<(), FieldError> {
        if let Some(url) = &self.url {
            check_url("url", url)?;
        }
        readable("service_account_file", &self.service_account_file)?;
        if let Some(ca) = &self.ca_file {
            readable("ca_file", ca)?;
        }
        Ok(())
    }
}

/// Apple's key and team ids: 10 ASCII letters or digits.
fn apple_id(field: &str, id: &str) -> Result<(), FieldError> {
    if id.len() == 10 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("must be Apple's 10-character id (letters and digits), not {id:?}"),
        ))
    }
}

/// `https://host[:port]`, optionally with a trailing `/`: the value
/// replaces a gateway's host, so it has no path, query or user info. The
/// URL is not repeated in the message.
fn check_url(field: &str, url: &Uri) -> Result<(), FieldError> {
    let wrong = |why: &str| {
        Err(FieldError::new(
            field,
            format!("must be https://host[:port]: {why}"),
        ))
    };
    if url.scheme_str() != Some("https") {
        return wrong("the scheme is not https");
    }
    let Some(authority) = url.authority() else {
        return wrong("it has no host");
    };
    if authority.as_str().contains('@') {
        return wrong("it has user info");
    }
    let host = authority.host();
    if host.is_empty() {
        return wrong("it has no host");
    }
    // What follows the host: nothing, or `:PORT`. (`Authority::port` is
    // `None` for a port it cannot read, such as 70000.)
    let after = authority.as_str().strip_prefix(host).unwrap_or(":");
    if let Some(port) = after.strip_prefix(':')
        && !matches!(port.parse::<u16>(), Ok(1..))
    {
        return wrong("the port is not 1 to 65535");
    }
    if !matches!(url.path(), "" | "/") {
        return wrong("it has a path");
    }
    if url.query().is_some() {
        return wrong("it has a query");
    }
    Ok(())
}

/// The file at `path` exists, is a regular file (not a directory, nor a
/// device that might never end), can be opened and read, and is not empty.
/// One byte is read, and dropped.
fn readable(field: &str, path: &Path) -> Result<(), FieldError> {
    use std::io::Read as _;
    let unreadable =
        |e: std::io::Error| FieldError::new(field, format!("cannot read {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if !meta.is_file() {
        return Err(FieldError::new(
            field,
            format!("{} is not a file", path.display()),
        ));
    }
    let mut byte = [0u8; 1];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut byte))
        .map_err(unreadable)?;
    if n == 0 {
        return Err(FieldError::new(
            field,
            format!("{} is empty", path.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("a TOML table")
    }

    const APNS: &str = r#"
        key_file = "AuthKey_ABC123DEFG.p8"
        key_id = "ABC123DEFG"
        team_id = "DEF123GHIJ"
        topic = "com.example.app"
        environment = "sandbox"
    "#;

    #[test]
    fn apns_reads_every_field() {
        let full = format!("{APNS}\nurl = \"https://127.0.0.1:8443\"\nca_file = \"ca.pem\"");
        let a = ApnsConfig::from_table(table(&full)).unwrap();
        assert_eq!(a.key_file, Path::new("AuthKey_ABC123DEFG.p8"));
        assert_eq!(
            (a.key_id.as_str(), a.team_id.as_str()),
            ("ABC123DEFG", "DEF123GHIJ")
        );
        assert_eq!(a.topic, "com.example.app");
        assert_eq!(a.environment, ApnsEnvironment::Sandbox);
        assert_eq!(a.base_url(), "https://127.0.0.1:8443");
        assert_eq!(a.ca_file.as_deref(), Some(Path::new("ca.pem")));

        let a = ApnsConfig::from_table(table(APNS)).unwrap();
        assert_eq!((a.url, a.ca_file), (None, None));
        assert_eq!(
            ApnsConfig {
                environment: ApnsEnvironment::Production,
                ..ApnsConfig::from_table(table(APNS)).unwrap()
            }
            .base_url(),
            "https://api.push.apple.com"
        );
        assert_eq!(
            ApnsConfig::from_table(table(APNS)).unwrap().base_url(),
            "https://api.sandbox.push.apple.com"
        );
    }

    #[test]
    fn apns_refusals_name_the_field() {
        let without = |field: &str| {
            APNS.lines()
                .filter(|l| !l.trim_start().starts_with(&format!("{field} =")))
                .collect::<Vec<_>>()
                .join("\n")
        };
        for field in ["key_file", "key_id", "team_id", "topic", "environment"] {
            let e = ApnsConfig::from_table(table(&without(field))).unwrap_err();
            assert_eq!(e, FieldError::new(field, "is required"), "{field}");
        }
        let cases = [
            (
                "environment = \"prod\"",
                "environment",
                "\"prod\" is neither \"production\" nor \"sandbox\"",
            ),
            (
                "environment = \"Production\"",
                "environment",
                "\"Production\" is neither \"production\" nor \"sandbox\"",
            ),
            ("key_id = 5", "key_id", "expected a string, got an integer"),
            (
                "topic = [\"a\"]",
                "topic",
                "expected a string, got an array",
            ),
            ("key_file = \"  \"", "key_file", "is empty"),
            ("url = \"not a url\"", "url", "does not parse as a URL"),
            (
                "url = \"https://h#x\"",
                "url",
                "must be https://host[:port]: it has a fragment",
            ),
            (
                "kid = \"x\"",
                "kid",
                "unknown field; expected one of key_file, key_id, team_id, topic, environment, url, ca_file",
            ),
        ];
        for (line, field, message) in cases {
            let text = format!("{}\n{line}", without(line.split(' ').next().unwrap()));
            let e = ApnsConfig::from_table(table(&text)).unwrap_err();
            assert_eq!(e, FieldError::new(field, message), "{line}");
        }
        assert_eq!(
            FieldError::new("environment", "bad").in_app("A", "apns"),
            "app \"A\": [apps.apns] environment: bad"
        );
    }

    #[test]
    fn urls_must_be_https_hosts() {
        for ok in [
            "https://127.0.0.1:8443",
            "https://push.example.com",
            "https://push.example.com/",
            "https://[::1]:9443",
        ] {
            assert_eq!(check_url("url", &ok.parse().unwrap()), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("http://127.0.0.1:8443", "the scheme is not https"),
            ("127.0.0.1:8443", "the scheme is not https"),
            ("/just/a/path", "the scheme is not https"),
            ("https://user:pw@host", "it has user info"),
            ("https://host:0", "the port is not 1 to 65535"),
            ("https://host:70000", "the port is not 1 to 65535"),
            ("https://host:", "the port is not 1 to 65535"),
            ("https://[::1]:99999", "the port is not 1 to 65535"),
            ("https://:443", "it has no host"),
            ("https://host/3/device", "it has a path"),
            ("https://host/?a=1", "it has a query"),
        ] {
            let uri = bad.parse::<Uri>().unwrap();
            let e = check_url("url", &uri).unwrap_err();
            assert_eq!(e.field, "url");
            assert_eq!(
                e.message,
                format!("must be https://host[:port]: {why}"),
                "{bad}"
            );
            assert!(!e.message.contains("pw"), "{e}");
        }
    }

    #[test]
    fn ids_and_topic_are_checked() {
        let dir = std::env::temp_dir().join(format!(
            "herald-gateway-{}",
            super::super::random_uuid().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("AuthKey_ABC123DEFG.p8"), "k").unwrap();
        let mut a = ApnsConfig::from_table(table(APNS)).unwrap();
        a.resolve_paths(&dir);
        assert_eq!(a.check(), Ok(()));
        for (field, value) in [
            ("key_id", "ABC123DEF"),
            ("key_id", "ABC123DEFGH"),
            ("team_id", "DEF 23GHIJ"),
            ("topic", ""),
            ("topic", "com.example app"),
        ] {
            let mut b = a.clone();
            match field {
                "key_id" => b.key_id = value.into(),
                "team_id" => b.team_id = value.into(),
                _ => b.topic = value.into(),
            }
            assert_eq!(b.check().unwrap_err().field, field, "{value:?}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn files_must_exist_be_readable_and_not_empty() {
        let dir = std::env::temp_dir().join(format!(
            "herald-gateway-{}",
            super::super::random_uuid().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sa.json"), "{}").unwrap();
        std::fs::write(dir.join("empty.pem"), "").unwrap();
        let fcm = |extra: &str| {
            let mut f = FcmConfig::from_table(table(&format!(
                "service_account_file = \"sa.json\"\n{extra}"
            )))
            .unwrap();
            f.resolve_paths(&dir);
            f
        };
        assert_eq!(fcm("").check(), Ok(()));
        assert_eq!(fcm("").service_account_file, dir.join("sa.json"));
        assert_eq!(fcm("").base_url(), "https://fcm.googleapis.com");
        let e = fcm("ca_file = \"empty.pem\"").check().unwrap_err();
        assert_eq!(e.field, "ca_file");
        assert_eq!(
            e.message,
            format!("{} is empty", dir.join("empty.pem").display())
        );
        let e = fcm("ca_file = \"missing.pem\"").check().unwrap_err();
        assert_eq!(e.field, "ca_file");
        assert!(
            e.message.starts_with(&format!(
                "cannot read {}: ",
                dir.join("missing.pem").display()
            )),
            "{e}"
        );
        // Neither a directory nor a device is a key file.
        let e = fcm("ca_file = \".\"").check().unwrap_err();
        assert_eq!(
            e.message,
            format!("{} is not a file", dir.join(".").display())
        );
        let e = fcm("ca_file = \"/dev/zero\"").check().unwrap_err();
        assert_eq!(e.message, "/dev/zero is not a file");
        // An absolute path stays as it is.
        let abs = dir.join("sa.json");
        let f = fcm(&format!("ca_file = {:?}", abs.to_str().unwrap()));
        assert_eq!(f.ca_file.as_deref(), Some(abs.as_path()));
        let e = fcm("url = \"http://127.0.0.1:9443\"").check().unwrap_err();
        assert_eq!(e.field, "url");
        let e = FcmConfig::from_table(table("url = \"https://x\"")).unwrap_err();
        assert_eq!(e, FieldError::new("service_account_file", "is required"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
