//! API keys: who may call, and what each key may publish and subscribe to.

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
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("secret", &"<redacted>")
            .field("publish", &self.publish)
            .field("subscribe", &self.subscribe)
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
            id: "A".into(),
            keys: vec![KeyConfig::full("abc"), KeyConfig::full("abd")],
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
            id: "A".into(),
            keys: vec![
                KeyConfig::full("full"),
                KeyConfig {
                    key: "narrow".into(),
                    publish: vec![Glob::new("out-*")],
                    subscribe: vec![],
                },
            ],
        });
        assert!(auth.authenticate("full").unwrap().can_subscribe("x"));
        let narrow = auth.authenticate("narrow").unwrap();
        assert!(narrow.can_publish("out-1"));
        assert!(!narrow.can_publish("in-1"));
        assert!(!narrow.can_subscribe("out-1"));
        assert_eq!(narrow.check_subscribe("x").unwrap_err().code, 5031);
        assert_eq!(narrow.check_publish("x").unwrap_err().code, 5030);
        assert_eq!(auth.authenticate("nope").unwrap_err().code, 8002);
        assert_eq!(auth.authenticate("nope").unwrap_err().status, 401);
        let debug = format!("{narrow:?}");
        assert!(debug.contains(r#"secret: "<redacted>""#), "{debug}");
        assert!(!debug.contains("narrow"), "{debug}");
        let as_bytes = format!("{:?}", b"narrow".as_slice()); // [110, 97, ...]
        assert!(!debug.contains(&as_bytes[1..as_bytes.len() - 1]), "{debug}");
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
