//! The TOML file's `[[apps]]` tables: apps, their keys, and the channels
//! each key may publish and subscribe to.
//!
//! ```toml
//! [[apps]]
//! id = "MY-APP-ID"
//!
//! [[apps.keys]]
//! key = "server-key"             # publish/subscribe omitted: everything
//!
//! [[apps.keys]]
//! key = "browser-key"
//! publish = []                   # nothing
//! subscribe = ["news.*", "chat-?"]
//! ```
//!
//! The other keys of the file are [`Settings`](super::settings::Settings)
//! fields.

use serde::{Deserialize, Deserializer};

use super::{AppConfig, KeyConfig};
use crate::Glob;

/// One `[[apps]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApp {
    id: String,
    #[serde(default)]
    keys: Vec<FileKey>,
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
}

impl From<FileApp> for AppConfig {
    fn from(app: FileApp) -> Self {
        let globs = |list: Option<Vec<String>>| match list {
            None => vec![Glob::new("*")],
            Some(items) => items.iter().map(|s| Glob::new(s)).collect(),
        };
        let keys = app
            .keys
            .into_iter()
            .map(|k| KeyConfig {
                key: k.key,
                publish: globs(k.publish),
                subscribe: globs(k.subscribe),
            })
            .collect();
        Self { id: app.id, keys }
    }
}

/// Deserializes the `[[apps]]` tables (for `#[serde(deserialize_with)]`).
pub(super) fn deserialize_apps<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<AppConfig>, D::Error> {
    let apps = Vec::<FileApp>::deserialize(deserializer)?;
    Ok(apps.into_iter().map(AppConfig::from).collect())
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
        assert_eq!(keys[0], KeyConfig::full("full"));
        assert!(keys[1].publish.is_empty());
        assert_eq!(
            keys[1].subscribe,
            vec![Glob::new("news.*"), Glob::new("chat-?")]
        );
        assert!(file.apps[1].keys.is_empty(), "rejected later, by validate");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        for bad in [
            "[[apps]]\nid = \"A\"\nsecret = 1",
            "[[apps]]\nid = \"A\"\n[[apps.keys]]\nkey = \"k\"\nadmin = true",
            "[[apps]]\nkeys = []",
        ] {
            assert!(toml::from_str::<File>(bad).is_err(), "{bad}");
        }
    }
}
