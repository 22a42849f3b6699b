//! The TOML file's `[[apps]]` tables: apps, their keys and what each key
//! may do, and the app's push gateways.
//!
//! ```toml
//! [[apps]]
//! id = "MY-APP-ID"
//!
//! [[apps.keys]]
//! key = "server-key"             # publish/subscribe omitted: everything
//! register = true                # push rights are opt-in
//! push = ["*"]
//! templates = true
//!
//! [[apps.keys]]
//! key = "browser-key"
//! publish = []                   # nothing
//! subscribe = ["news.*", "chat-?"]
//! register = true                # phones register themselves
//!
//! [apps.apns]                    # see `gateway`
//! key_file = "AuthKey_ABC123DEFG.p8"
//! # ...
//! ```
//!
//! The other keys of the file are [`Settings`](super::settings::Settings)
//! fields.

use serde::{Deserialize, Deserializer};

use super::{ApnsConfig, AppConfig, FcmConfig, KeyConfig};
use crate::Glob;

/// One `[[apps]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApp {
    id: String,
    #[serde(default)]
    keys: Vec<FileKey>,
    /// Read field by field by [`ApnsConfig::from_table`], so that every
    /// problem names the app, the section and the field.
    apns: Option<toml::Table>,
    /// Read by [`FcmConfig::from_table`].
    fcm: Option<toml::Table>,
}

/// One `[[apps.keys]]` table. (No `Debug`: it holds a key.)
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    key: String,
    /// Globs; omitted means `["*"]`.
    publish: Option<Vec<String>>,
    /// Globs; omitted means `["*"]`.
    subscribe: Option<Vec<String>>,
    /// Omitted means `false`.
    register: Option<bool>,
    /// Globs; omitted means `[]`.
    push: Option<Vec<String>>,
    /// Omitted means `false`.
    templates: Option<bool>,
}

impl TryFrom<FileApp> for AppConfig {
    type Error = String;

    /// The app, or what is wrong with a gateway section.
    fn try_from(app: FileApp) -> Result<Self, String> {
        let globs = |list: Option<Vec<String>>, default: &[&str]| match list {
            None => default.iter().map(|g| Glob::new(g)).collect(),
            Some(items) => items.iter().map(|s| Glob::new(s)).collect(),
        };
        let keys = app
            .keys
            .into_iter()
            .map(|k| KeyConfig {
                key: k.key,
                publish: globs(k.publish, &["*"]),
                subscribe: globs(k.subscribe, &["*"]),
                register: k.register.unwrap_or(false),
                push: globs(k.push, &[]),
                templates: k.templates.unwrap_or(false),
            })
            .collect();
        let apns = app
            .apns
            .map(ApnsConfig::from_table)
            .transpose()
            .map_err(|e| e.in_app(&app.id, "apns"))?;
        let fcm = app
            .fcm
            .map(FcmConfig::from_table)
            .transpose()
            .map_err(|e| e.in_app(&app.id, "fcm"))?;
        Ok(Self {
            id: app.id,
            keys,
            apns,
            fcm,
        })
    }
}

/// Deserializes the `[[apps]]` tables (for `#[serde(deserialize_with)]`).
pub(super) fn deserialize_apps<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<AppConfig>, D::Error> {
    let apps = Vec::<FileApp>::deserialize(deserializer)?;
    apps.into_iter()
        .map(|app| AppConfig::try_from(app).map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(deserialize_with = "deserialize_apps")]
        apps: Vec<AppConfig>,
    }

    #[test]
    fn apps_keys_and_globs() {
        let file: File = toml::from_str(
            r#"
            [[apps]]
            id = "APP"

            [[apps.keys]]
            key = "full"

            [[apps.keys]]
            key = "reader"
            publish = []
            subscribe = ["news.*", "chat-?"]

            [[apps]]
            id = "EMPTY"
            "#,
        )
        .unwrap();
        assert_eq!(file.apps.len(), 2);
        let keys = &file.apps[0].keys;
        assert_eq!(
            keys[0],
            KeyConfig {
                publish: vec![Glob::new("*")],
                subscribe: vec![Glob::new("*")],
                ..KeyConfig::none("full")
            },
            "publish and subscribe everywhere, no push right"
        );
        assert!(keys[1].publish.is_empty());
        assert_eq!(
            keys[1].subscribe,
            vec![Glob::new("news.*"), Glob::new("chat-?")]
        );
        assert!(file.apps[1].keys.is_empty(), "rejected later, by validate");
        assert_eq!((&file.apps[0].apns, &file.apps[0].fcm), (&None, &None));
    }

    #[test]
    fn push_rights_are_opt_in() {
        let file: File = toml::from_str(
            r#"
            [[apps]]
            id = "APP"

            [[apps.keys]]
            key = "old"
            publish = ["a"]

            [[apps.keys]]
            key = "bare"

            [[apps.keys]]
            key = "phone"
            publish = []
            subscribe = []
            register = true

            [[apps.keys]]
            key = "pusher"
            push = ["news.*", "alerts"]
            templates = true
            "#,
        )
        .unwrap();
        let keys = &file.apps[0].keys;
        for k in &keys[..2] {
            assert!(!k.register && !k.templates && k.push.is_empty());
            assert_eq!(k.subscribe, vec![Glob::new("*")]);
        }
        assert_eq!(keys[0].publish, vec![Glob::new("a")]);
        assert_eq!(keys[1].publish, vec![Glob::new("*")]);
        assert_eq!(
            keys[2],
            KeyConfig {
                register: true,
                ..KeyConfig::none("phone")
            }
        );
        assert!(!keys[3].register && keys[3].templates);
        assert_eq!(keys[3].push, vec![Glob::new("news.*"), Glob::new("alerts")]);
    }

    #[test]
    fn gateway_sections() {
        let file: File = toml::from_str(
            r#"
            [[apps]]
            id = "APP"
            [[apps.keys]]
            key = "k"
            [apps.apns]
            key_file = "AuthKey_ABC123DEFG.p8"
            key_id = "ABC123DEFG"
            team_id = "DEF123GHIJ"
            topic = "com.example.app"
            environment = "production"
            [apps.fcm]
            service_account_file = "service-account.json"
            url = "https://127.0.0.1:9443"
            "#,
        )
        .unwrap();
        let app = &file.apps[0];
        let apns = app.apns.as_ref().expect("apns");
        assert_eq!(apns.topic, "com.example.app");
        assert_eq!(apns.environment, crate::config::ApnsEnvironment::Production);
        let fcm = app.fcm.as_ref().expect("fcm");
        assert_eq!(fcm.base_url(), "https://127.0.0.1:9443");

        let e = toml::from_str::<File>(
            "[[apps]]\nid = \"APP\"\n[apps.fcm]\nservice_account_file = \"sa.json\"\nurl = 443",
        )
        .err()
        .expect("an error")
        .to_string();
        assert!(
            e.contains("app \"APP\": [apps.fcm] url: expected a string, got an integer"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        for bad in [
            "[[apps]]\nid = \"A\"\nsecret = 1",
            "[[apps]]\nid = \"A\"\n[[apps.keys]]\nkey = \"k\"\nadmin = true",
            "[[apps]]\nkeys = []",
            "[[apps]]\nid = \"A\"\n[[apps.keys]]\nkey = \"k\"\nregister = \"yes\"",
            "[[apps]]\nid = \"A\"\n[[apps.keys]]\nkey = \"k\"\npush = true",
            "[[apps]]\nid = \"A\"\napns = 1",
        ] {
            assert!(toml::from_str::<File>(bad).is_err(), "{bad}");
        }
    }
}
