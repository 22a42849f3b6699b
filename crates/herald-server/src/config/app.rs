//! Applications and their API keys.

use std::ffi::OsStr;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

use super::{ApnsConfig, FcmConfig};
use crate::Glob;

/// One application: an id, the API keys that may use it, and its push
/// gateways.
#[derive(Clone, Debug, PartialEq)]
pub struct AppConfig {
    /// The app id, the first path segment of every request.
    pub id: String,
    /// Its API keys.
    pub keys: Vec<KeyConfig>,
    /// Its APNs settings (`[apps.apns]`), if it pushes to Apple devices.
    pub apns: Option<ApnsConfig>,
    /// Its FCM settings (`[apps.fcm]`), if it pushes to Android devices.
    pub fcm: Option<FcmConfig>,
}

/// One API key and what it may do.
///
/// In the TOML file, `publish` and `subscribe` default to `["*"]` (as they
/// always have), while the push rights are opt-in: `register` and
/// `templates` default to `false` and `push` to `[]`, so no key configured
/// before they existed gains them.
#[derive(Clone, PartialEq)]
pub struct KeyConfig {
    /// The key itself, the second path segment of every request.
    pub key: String,
    /// Channels this key may publish to, delete, and cancel messages on
    /// (and read their status).
    pub publish: Vec<Glob>,
    /// Channels this key may subscribe to (real-time and polling) and read
    /// message statuses on. A message on a channel the key has neither
    /// right on answers as an unknown id does.
    pub subscribe: Vec<Glob>,
    /// Whether this key may register devices for push notifications, read
    /// their registrations and unregister them (`messaging/registrations`):
    /// what a mobile app's key needs. Denied: 5032.
    pub register: bool,
    /// Channels this key may send push notifications to: a publish with
    /// `publishPolicy` `PUSH` or `BOTH` (which also needs `publish` on the
    /// channel), and a push template's send (on the template's channel).
    /// A key with any `push` glob may also list the push templates.
    /// Denied: 5033.
    pub push: Vec<Glob>,
    /// Whether this key may create, replace, delete and list push
    /// templates (`messaging/pushtemplates`). Denied: 5034.
    pub templates: bool,
}

impl KeyConfig {
    /// A key that may do everything: publish, subscribe and push
    /// everywhere, register devices, and manage push templates.
    pub fn full(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            publish: vec![Glob::new("*")],
            subscribe: vec![Glob::new("*")],
            register: true,
            push: vec![Glob::new("*")],
            templates: true,
        }
    }

    /// A key that may do nothing (every right is added to it).
    pub fn none(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            publish: Vec::new(),
            subscribe: Vec::new(),
            register: false,
            push: Vec::new(),
            templates: false,
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
            .field("register", &self.register)
            .field("push", &self.push)
            .field("templates", &self.templates)
            .finish()
    }
}

impl AppConfig {
    /// An app with one full-permission key.
    pub fn new(id: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            keys: vec![KeyConfig::full(key)],
            apns: None,
            fcm: None,
        }
    }
}

/// Parses `APP_ID:API_KEY` (the key may itself contain `:`) for `--app`
/// and `HERALD_APP`. A bad value is not repeated in the error, since it
/// may hold a key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AppParser;

impl TypedValueParser for AppParser {
    type Value = AppConfig;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<AppConfig, clap::Error> {
        match value.to_str().and_then(|text| text.split_once(':')) {
            Some((id, key)) if !id.is_empty() && !key.is_empty() => Ok(AppConfig::new(id, key)),
            _ => {
                let flag = arg.map_or_else(|| "--app".to_owned(), ToString::to_string);
                let message = format!(
                    "invalid value for '{flag}': expected APP_ID:API_KEY, both parts non-empty \
                     (the value is not shown: it may hold a key)\n"
                );
                Err(clap::Error::raw(ErrorKind::ValueValidation, message).with_cmd(cmd))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_key() {
        let key = KeyConfig::full("s3cret-key");
        let debug = format!("{key:?}");
        assert!(debug.contains(r#"key: "<redacted>""#), "{debug}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let debug = format!("{:?}", AppConfig::new("APP", "s3cret-key"));
        assert!(
            debug.contains("<redacted>") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn app_values() {
        let cmd = clap::Command::new("t");
        let parse = |text: &str| AppParser.parse_ref(&cmd, None, OsStr::new(text));
        assert_eq!(parse("A:k").unwrap(), AppConfig::new("A", "k"));
        assert_eq!(
            parse("A:k:with:colons").unwrap().keys[0].key,
            "k:with:colons"
        );
        for bad in ["nokey", ":k", "A:", ":", ""] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("expected APP_ID:API_KEY"), "{bad:?}: {e}");
        }
        let e = parse("s3cret-without-app").unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
