//! API keys: who may call, and what each key may do: publish and
//! subscribe (channel globs), register devices, push (channel globs), and
//! manage push templates.

use std::fmt;
use std::sync::Arc;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::Glob;
use crate::config::AppConfig;
use crate::error::ApiError;

/// An authenticated API key's permissions.
pub(crate) struct Key {
    secret: Box<[u8]>,
    publish: Vec<Glob>,
    subscribe: Vec<Glob>,
    register: bool,
    push: Vec<Glob>,
    templates: bool,
}

impl Key {
    /// Whether this key may publish to (or delete, or cancel on) `channel`.
    pub(crate) fn can_publish(&self, channel: &str) -> bool {
        self.publish.iter().any(|g| g.matches(channel))
    }

    /// Whether this key may subscribe to `channel`.
    pub(crate) fn can_subscribe(&self, channel: &str) -> bool {
        self.subscribe.iter().any(|g| g.matches(channel))
    }

    /// Checks publish permission: 5030 when denied.
    pub(crate) fn check_publish(&self, channel: &str) -> Result<(), ApiError> {
        if self.can_publish(channel) {
            Ok(())
        } else {
            Err(ApiError::publish_denied())
        }
    }

    /// Checks subscribe permission: 5031 when denied.
    pub(crate) fn check_subscribe(&self, channel: &str) -> Result<(), ApiError> {
        if self.can_subscribe(channel) {
            Ok(())
        } else {
            Err(ApiError::subscribe_denied())
        }
    }

    /// Checks the right to register devices and to read and remove
    /// registrations: 5032 when denied.
    pub(crate) fn check_register(&self) -> Result<(), ApiError> {
        if self.register {
            Ok(())
        } else {
            Err(ApiError::register_denied())
        }
    }

    /// Whether this key may send push notifications to `channel`.
    pub(crate) fn can_push(&self, channel: &str) -> bool {
        self.push.iter().any(|g| g.matches(channel))
    }

    /// Checks push permission on `channel`: 5033 when denied. (For the
    /// push sends: a publish with `PUSH`/`BOTH`, a template's send.)
    pub(crate) fn check_push(&self, channel: &str) -> Result<(), ApiError> {
        if self.can_push(channel) {
            Ok(())
        } else {
            Err(ApiError::push_denied())
        }
    }

    /// Checks the right to create, replace and delete push templates:
    /// 5034 when denied.
    pub(crate) fn check_templates(&self) -> Result<(), ApiError> {
        if self.templates {
            Ok(())
        } else {
            Err(ApiError::templates_denied())
        }
    }

    /// Checks the right to list push templates: the template right, or
    /// any push right (a key that may send templates may see them); 5034
    /// when denied.
    pub(crate) fn check_list_templates(&self) -> Result<(), ApiError> {
        if self.templates || !self.push.is_empty() {
            Ok(())
        } else {
            Err(ApiError::templates_denied())
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("secret", &"<redacted>")
            .field("publish", &self.publish)
            .field("subscribe", &self.subscribe)
            .field("register", &self.register)
            .field("push", &self.push)
            .field("templates", &self.templates)
            .finish()
    }
}

/// One app's keys, checked in constant time.
#[derive(Debug, Default)]
pub(crate) struct Keys(Vec<Arc<Key>>);

impl Keys {
    pub(crate) fn from_config(app: &AppConfig) -> Self {
        Self(
            app.keys
                .iter()
                .map(|k| {
                    Arc::new(Key {
                        secret: k.key.as_bytes().into(),
                        publish: k.publish.clone(),
                        subscribe: k.subscribe.clone(),
                        register: k.register,
                        push: k.push.clone(),
                        templates: k.templates,
                    })
                })
                .collect(),
        )
    }

    /// The key `key`, or 401 (8002). Every key of the app is compared,
    /// each in constant time ([`subtle`]: the time depends only on the two
    /// lengths), and the loop does not stop at a match, so the time taken
    /// does not tell which key (or which prefix) was close. App ids are not
    /// secret.
    pub(crate) fn authenticate(&self, key: &str) -> Result<Arc<Key>, ApiError> {
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, k) in self.0.iter().enumerate() {
            let hit = k.secret.ct_eq(key.as_bytes());
            // The first match wins (keys are unique within an app anyway).
            index.conditional_assign(&(i as u64), hit & !found);
            found |= hit;
        }
        if bool::from(found) {
            Ok(self.0[index as usize].clone())
        } else {
            Err(ApiError::bad_credentials())
        }
    }
}

/// `path` with its API-key segment (the second) replaced by `***`, for
/// logs: `/APP/KEY/messaging/x` → `/APP/***/messaging/x`. Paths with fewer
/// than three segments (`/health`, `/APP/`) carry no key and are returned
/// as they are.
pub(crate) fn redact_path(path: &str) -> String {
    let mut parts = path.splitn(4, '/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(""), Some(app), Some(key), rest)
            if !app.is_empty() && (rest.is_some() || !key.is_empty()) =>
        {
            match rest {
                Some(rest) => format!("/{app}/***/{rest}"),
                None => format!("/{app}/***"),
            }
        }
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyConfig;

    #[test]
    fn keys_match_exactly() {
        let keys = Keys::from_config(&AppConfig {
            keys: vec![KeyConfig::full("abc"), KeyConfig::full("abd")],
            ..AppConfig::new("A", "unused")
        });
        assert!(keys.authenticate("abc").is_ok());
        assert!(keys.authenticate("abd").is_ok());
        for wrong in ["", "ab", "abcd", "abc\0", "ABC", "abe"] {
            assert_eq!(
                keys.authenticate(wrong).unwrap_err().code,
                8002,
                "{wrong:?}"
            );
        }
        // The second key is found too (not only the first).
        let second = keys.authenticate("abd").unwrap();
        assert!(Arc::ptr_eq(&second, &keys.0[1]));
    }

    #[test]
    fn authenticates_and_checks_permissions() {
        let auth = Keys::from_config(&AppConfig {
            keys: vec![
                KeyConfig::full("full"),
                KeyConfig {
                    publish: vec![Glob::new("out-*")],
                    ..KeyConfig::none("narrow")
                },
            ],
            ..AppConfig::new("A", "unused")
        });
        let full = auth.authenticate("full").unwrap();
        assert!(full.can_subscribe("x"));
        assert!(full.check_register().is_ok());
        assert!(full.check_push("any").is_ok());
        assert!(full.check_templates().is_ok() && full.check_list_templates().is_ok());
        let narrow = auth.authenticate("narrow").unwrap();
        assert!(narrow.can_publish("out-1"));
        assert!(!narrow.can_publish("in-1"));
        assert!(!narrow.can_subscribe("out-1"));
        assert_eq!(narrow.check_subscribe("x").unwrap_err().code, 5031);
        assert_eq!(narrow.check_publish("x").unwrap_err().code, 5030);
        assert_eq!(narrow.check_register().unwrap_err().code, 5032);
        assert_eq!(narrow.check_push("out-1").unwrap_err().code, 5033);
        assert_eq!(narrow.check_templates().unwrap_err().code, 5034);
        assert_eq!(narrow.check_list_templates().unwrap_err().code, 5034);
        assert_eq!(auth.authenticate("nope").unwrap_err().code, 8002);
        assert_eq!(auth.authenticate("nope").unwrap_err().status, 401);
        let debug = format!("{narrow:?}");
        assert!(debug.contains(r#"secret: "<redacted>""#), "{debug}");
        assert!(!debug.contains("narrow"), "{debug}");
        let as_bytes = format!("{:?}", b"narrow".as_slice()); // [110, 97, ...]
        assert!(!debug.contains(&as_bytes[1..as_bytes.len() - 1]), "{debug}");
    }

    #[test]
    fn push_rights_are_separate() {
        let auth = Keys::from_config(&AppConfig {
            keys: vec![
                KeyConfig {
                    register: true,
                    ..KeyConfig::none("phone")
                },
                KeyConfig {
                    push: vec![Glob::new("news.*")],
                    ..KeyConfig::none("pusher")
                },
                KeyConfig {
                    templates: true,
                    ..KeyConfig::none("editor")
                },
            ],
            ..AppConfig::new("A", "unused")
        });
        let phone = auth.authenticate("phone").unwrap();
        assert!(phone.check_register().is_ok());
        assert!(phone.check_push("news.a").is_err());
        assert!(phone.check_templates().is_err() && phone.check_list_templates().is_err());
        let pusher = auth.authenticate("pusher").unwrap();
        assert!(pusher.check_push("news.a").is_ok());
        assert_eq!(pusher.check_push("sport").unwrap_err().code, 5033);
        assert!(pusher.check_register().is_err() && pusher.check_templates().is_err());
        assert!(
            pusher.check_list_templates().is_ok(),
            "it may see what it may send"
        );
        let editor = auth.authenticate("editor").unwrap();
        assert!(editor.check_templates().is_ok() && editor.check_list_templates().is_ok());
        assert!(!editor.can_push("x") && editor.check_register().is_err());
        assert!(!editor.can_publish("x") && !editor.can_subscribe("x"));
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_path("/A/secret/messaging/x"), "/A/***/messaging/x");
        assert_eq!(redact_path("/A/secret"), "/A/***");
        assert_eq!(redact_path("/A/secret/"), "/A/***/");
        assert_eq!(redact_path("/A/"), "/A/");
        assert_eq!(redact_path("/health"), "/health");
        assert_eq!(redact_path("/"), "/");
    }
}
