//! The development app: created, kept and read back when no app is
//! configured.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use super::{AppConfig, Config};

/// Where the development app's id and key are kept, in the data directory.
pub const DEV_APP_FILE: &str = "dev-app.toml";

/// The development app: created when no app is configured.
#[derive(Clone, PartialEq, Eq)]
pub struct DevApp {
    /// Its app id.
    pub id: String,
    /// Its API key (full permissions).
    pub key: String,
    /// Whether it was generated just now (rather than read back).
    pub created: bool,
}

impl std::fmt::Debug for DevApp {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevApp")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("created", &self.created)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevAppFile {
    app_id: String,
    api_key: String,
}

/// If `config` has no app, adds the development app: read from
/// `DATA_DIR/dev-app.toml`, or generated (random, UUID-shaped id and key)
/// and written there (mode 0600 on Unix) so that restarts keep it.
///
/// # Errors
///
/// The data directory or the file cannot be created, read or parsed.
pub fn ensure_dev_app(config: &mut Config) -> anyhow::Result<Option<DevApp>> {
    if !config.apps.is_empty() {
        return Ok(None);
    }
    let path = config.data_dir.join(DEV_APP_FILE);
    let dev = if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let file: DevAppFile =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        DevApp {
            id: file.app_id,
            key: file.api_key,
            created: false,
        }
    } else {
        let dev = DevApp {
            id: random_uuid()?,
            key: random_uuid()?,
            created: true,
        };
        write_dev_app(&path, &dev)?;
        dev
    };
    config.apps.push(AppConfig::new(&dev.id, &dev.key));
    config
        .validate()
        .with_context(|| format!("the development app in {}", path.display()))?;
    Ok(Some(dev))
}

fn write_dev_app(path: &Path, dev: &DevApp) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
    }
    let text = format!(
        "# The development app herald-server created because none was configured.\n\
         # Delete this file to get a new one.\n\
         app_id = \"{}\"\napi_key = \"{}\"\n",
        dev.id, dev.key
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// 16 random bytes from the OS, as an upper-case UUID-shaped string
/// (Backendless's app ids and keys look like that).
pub(crate) fn random_uuid() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let mut s = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02X}");
    }
    Ok(s)
}

/// On a PostgreSQL store, makes every node agree on one development app:
/// the first node's `(id, key)` is recorded in the database
/// ([`herald_postgres::shared_dev_app`]) and every node, this one included,
/// serves the recorded pair instead of its own file's. On the embedded
/// store, `dev` is returned unchanged.
///
/// # Errors
///
/// The database cannot be reached or the record cannot be written.
pub async fn share_dev_app(config: &mut Config, dev: DevApp) -> anyhow::Result<DevApp> {
    let super::StoreLocation::Postgres(url) = &config.store else {
        return Ok(dev);
    };
    let (id, key) = herald_postgres::shared_dev_app(url.expose(), &dev.id, &dev.key)
        .await
        .with_context(|| format!("sharing the development app in {url}"))?;
    if id == dev.id && key == dev.key {
        return Ok(dev);
    }
    if let Some(app) = config.apps.iter_mut().find(|a| a.id == dev.id) {
        *app = AppConfig::new(&id, &key);
    }
    Ok(DevApp {
        id,
        key,
        created: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_app_is_created_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("herald-dev-app-{}", random_uuid().unwrap()));
        let mut c = Config {
            data_dir: dir.clone(),
            ..Config::default()
        };
        let first = ensure_dev_app(&mut c).unwrap().unwrap();
        assert!(first.created);
        assert_eq!(first.id.len(), 36);
        assert_ne!(first.id, first.key);
        assert_eq!(c.apps, vec![AppConfig::new(&first.id, &first.key)]);
        let debug = format!("{first:?}");
        assert!(debug.contains(r#"key: "<redacted>""#), "{debug}");
        assert!(!debug.contains(&first.key), "{debug}");

        let mut again = Config {
            data_dir: dir.clone(),
            ..Config::default()
        };
        let second = ensure_dev_app(&mut again).unwrap().unwrap();
        assert!(!second.created);
        assert_eq!((second.id, second.key), (first.id, first.key));

        // Not created when an app is configured.
        let mut configured = Config {
            data_dir: dir.clone(),
            apps: vec![AppConfig::new("A", "k")],
            ..Config::default()
        };
        assert!(ensure_dev_app(&mut configured).unwrap().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
