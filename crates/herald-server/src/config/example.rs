//! `herald.example.toml`, the documented example configuration at the
//! repository's root: it parses, validates, names every setting, and shows
//! each at its default.

use super::sources::help_command;
use super::{Config, KeyConfig};
use crate::Glob;

const EXAMPLE: &str = include_str!("../../../../herald.example.toml");

/// The settings a TOML file cannot hold: the file itself and `--app`.
const NOT_IN_A_FILE: [&str; 4] = ["config", "app", "help", "version"];

#[test]
fn it_parses_and_validates() {
    let mut config = Config::default();
    config
        .apply_toml(EXAMPLE)
        .expect("herald.example.toml parses");
    config.validate().expect("herald.example.toml validates");
}

#[test]
fn every_value_it_sets_is_the_default() {
    let mut config = Config::default();
    config.apply_toml(EXAMPLE).unwrap();
    config.apps.clear();
    assert_eq!(config, Config::default());
}

#[test]
fn it_names_every_setting() {
    let help = help_command();
    let mut named = 0;
    for arg in help.get_arguments() {
        let id = arg.get_id().as_str();
        if NOT_IN_A_FILE.contains(&id) {
            continue;
        }
        let set = EXAMPLE.lines().any(|l| {
            let l = l.trim_start_matches("# ");
            l.strip_prefix(id)
                .is_some_and(|rest| rest.starts_with(" = "))
        });
        assert!(set, "herald.example.toml does not name {id:?}");
        named += 1;
    }
    assert_eq!(named, 25);
}

#[test]
fn its_apps_have_the_permissions_its_comments_describe() {
    let mut config = Config::default();
    config.apply_toml(EXAMPLE).unwrap();
    let ids: Vec<&str> = config.apps.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["MY-APP", "OTHER-APP"]);
    let keys = &config.apps[0].keys;
    let globs = |list: &[&str]| list.iter().map(|g| Glob::new(g)).collect::<Vec<_>>();
    assert_eq!(keys.len(), 4);
    assert_eq!(keys[0], KeyConfig::full(keys[0].key.clone()));
    assert_eq!(
        keys[1],
        KeyConfig {
            publish: globs(&["chat-?"]),
            subscribe: globs(&["news.*", "chat-?"]),
            register: true,
            ..KeyConfig::none(keys[1].key.clone())
        }
    );
    assert_eq!(
        keys[2],
        KeyConfig {
            subscribe: globs(&["news.*"]),
            ..KeyConfig::none(keys[2].key.clone())
        }
    );
    assert_eq!(
        keys[3],
        KeyConfig {
            publish: globs(&["news.*"]),
            push: globs(&["news.*"]),
            templates: true,
            ..KeyConfig::none(keys[3].key.clone())
        }
    );
    // The second app's key: publish and subscribe everywhere, no push
    // right (the defaults).
    assert_eq!(
        config.apps[1].keys,
        [KeyConfig {
            publish: globs(&["*"]),
            subscribe: globs(&["*"]),
            ..KeyConfig::none(config.apps[1].keys[0].key.clone())
        }]
    );
    // The gateway sections are commented out (their files are examples).
    assert!(
        config
            .apps
            .iter()
            .all(|a| a.apns.is_none() && a.fcm.is_none())
    );
    assert!(
        config
            .apps
            .iter()
            .flat_map(|a| &a.keys)
            .all(|k| k.key.starts_with("REPLACE-")),
        "placeholder keys only"
    );
}

/// Its commented-out gateway sections, uncommented, are what the
/// contract shows and what the server accepts.
#[test]
fn its_gateway_sections_parse_when_uncommented() {
    let start = EXAMPLE.find("# [apps.apns]").expect("an APNs section");
    let end = EXAMPLE[start..]
        .find("\n\n")
        .map_or(EXAMPLE.len(), |i| start + i);
    let sections: String = EXAMPLE[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with('[') || l.contains(" = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!("[[apps]]\nid = \"A\"\n[[apps.keys]]\nkey = \"k\"\n{sections}");
    let mut config = Config::default();
    config.apply_toml(&text).expect("the sections parse");
    let app = &config.apps[0];
    let apns = app.apns.as_ref().expect("[apps.apns]");
    assert_eq!(apns.key_id, "ABC123DEFG");
    assert_eq!(apns.base_url(), "https://127.0.0.1:8443");
    let fcm = app.fcm.as_ref().expect("[apps.fcm]");
    assert_eq!(fcm.base_url(), "https://127.0.0.1:9443");
}

#[test]
fn help_points_to_it() {
    let help = help_command().render_help().to_string();
    assert!(help.contains("herald.example.toml"), "{help}");
}
