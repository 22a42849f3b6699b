//! The server's configuration: defaults, a TOML file, environment variables
//! and command-line flags, and the development app.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::Glob;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "herald-data";
/// The default request body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// The default time a legacy polling subscription lives without a poll.
pub const DEFAULT_POLL_TTL: Duration = Duration::from_secs(300);
/// Where the development app's id and key are kept, in the data directory.
pub const DEV_APP_FILE: &str = "dev-app.toml";

/// Everything the server needs to start.
///
/// Built by [`Config::from_args`] (file, then environment, then flags, each
/// overriding the one before; apps from all three are merged) or by hand in
/// tests.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The address to listen on (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// Where the store (and the development app) live.
    pub data_dir: PathBuf,
    /// The largest request body accepted, in bytes (larger: 413).
    pub max_body: usize,
    /// How long a legacy polling subscription lives without being polled.
    pub poll_ttl: Duration,
    /// The applications this server serves, with their API keys.
    pub apps: Vec<AppConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            max_body: DEFAULT_MAX_BODY,
            poll_ttl: DEFAULT_POLL_TTL,
            apps: Vec::new(),
        }
    }
}

/// One application: an id and the API keys that may use it.
#[derive(Clone, Debug, PartialEq)]
pub struct AppConfig {
    /// The app id, the first path segment of every request.
    pub id: String,
    /// Its API keys.
    pub keys: Vec<KeyConfig>,
}

/// One API key and what it may do.
#[derive(Clone, PartialEq)]
pub struct KeyConfig {
    /// The key itself, the second path segment of every request.
    pub key: String,
    /// Channels this key may publish to (and delete, and cancel on).
    pub publish: Vec<Glob>,
    /// Channels this key may subscribe to (real-time and polling).
    pub subscribe: Vec<Glob>,
}

impl KeyConfig {
    /// A key that may publish and subscribe everywhere.
    pub fn full(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            publish: vec![Glob::new("*")],
            subscribe: vec![Glob::new("*")],
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
            .finish()
    }
}

impl AppConfig {
    /// An app with one full-permission key.
    pub fn new(id: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            keys: vec![KeyConfig::full(key)],
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Cli {
    /// Run the server with this configuration.
    Run(Box<Config>),
    /// Print this text (usage or version) and exit successfully.
    Print(String),
}

/// The `--help` text.
pub const USAGE: &str = "\
herald-server: Backendless Messaging compatible REST and real-time server

USAGE:
    herald-server [OPTIONS]

OPTIONS:
    --listen ADDR         address to listen on [env HERALD_LISTEN] (default 127.0.0.1:8080)
    --data-dir DIR        data directory [env HERALD_DATA_DIR] (default ./herald-data)
    --app APP_ID:API_KEY  serve this app with this key, full permissions; repeatable
                          [env HERALD_APP, comma-separated]
    --max-body BYTES      largest request body accepted (default 1048576)
    --config PATH         TOML configuration file (per-key permissions)
    -h, --help            print this help
    -V, --version         print the version

With no app configured, a development app is created once (its id and key are
kept in DATA_DIR/dev-app.toml) and printed at start-up.
Log level: HERALD_LOG=error|warn|info|debug|trace (default info).
";

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    max_body: Option<usize>,
    poll_ttl_secs: Option<u64>,
    #[serde(default)]
    apps: Vec<FileApp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApp {
    id: String,
    #[serde(default)]
    keys: Vec<FileKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    key: String,
    publish: Option<Vec<String>>,
    subscribe: Option<Vec<String>>,
}

impl Config {
    /// Parses the command line (without the program name), reading
    /// environment variables through `env` and the `--config` file from
    /// disk. Precedence: defaults < file < environment < flags; apps from
    /// the file, `HERALD_APP` and `--app` are all served.
    ///
    /// # Errors
    ///
    /// An unknown flag, a missing or malformed value, an unreadable or
    /// invalid file, or an invalid app (see [`Config::validate`]).
    pub fn from_args<I, F>(args: I, env: F) -> anyhow::Result<Cli>
    where
        I: IntoIterator<Item = String>,
        F: Fn(&str) -> Option<String>,
    {
        let mut listen = None;
        let mut data_dir = None;
        let mut max_body = None;
        let mut config_path = None;
        let mut flag_apps = Vec::new();

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| -> anyhow::Result<String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => args
                        .next()
                        .with_context(|| format!("{name} needs a value (see --help)")),
                }
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(Cli::Print(USAGE.to_owned())),
                "-V" | "--version" => {
                    return Ok(Cli::Print(format!(
                        "herald-server {}\n",
                        env!("CARGO_PKG_VERSION")
                    )));
                }
                "--listen" => listen = Some(value("--listen")?),
                "--data-dir" => data_dir = Some(PathBuf::from(value("--data-dir")?)),
                "--max-body" => {
                    let v = value("--max-body")?;
                    max_body = Some(
                        v.parse::<usize>()
                            .with_context(|| format!("--max-body: not a byte count: {v:?}"))?,
                    );
                }
                "--config" => config_path = Some(PathBuf::from(value("--config")?)),
                "--app" => flag_apps.push(parse_app_flag(&value("--app")?)?),
                other => bail!("unknown argument {other:?} (see --help)"),
            }
        }

        let mut config = Self::default();
        if let Some(path) = &config_path {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            config
                .apply_toml(&text)
                .with_context(|| format!("in config file {}", path.display()))?;
        }
        if let Some(v) = env("HERALD_LISTEN").filter(|v| !v.is_empty()) {
            config.listen = v;
        }
        if let Some(v) = env("HERALD_DATA_DIR").filter(|v| !v.is_empty()) {
            config.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("HERALD_APP") {
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let app = parse_app_flag(item).context("in HERALD_APP")?;
                config.add_app(app)?;
            }
        }
        if let Some(v) = listen {
            config.listen = v;
        }
        if let Some(v) = data_dir {
            config.data_dir = v;
        }
        if let Some(v) = max_body {
            config.max_body = v;
        }
        for app in flag_apps {
            config.add_app(app)?;
        }
        config.validate()?;
        Ok(Cli::Run(Box::new(config)))
    }

    /// Reads a TOML configuration (see the crate docs for the format) into
    /// this one: present settings replace the current ones, apps are added.
    ///
    /// # Errors
    ///
    /// Malformed TOML, an unknown key, or a duplicate key within an app.
    pub fn apply_toml(&mut self, text: &str) -> anyhow::Result<()> {
        let file: FileConfig = toml::from_str(text)?;
        if let Some(v) = file.listen {
            self.listen = v;
        }
        if let Some(v) = file.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = file.max_body {
            self.max_body = v;
        }
        if let Some(v) = file.poll_ttl_secs {
            self.poll_ttl = Duration::from_secs(v.max(1));
        }
        for app in file.apps {
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
            self.add_app(AppConfig { id: app.id, keys })?;
        }
        Ok(())
    }

    /// Adds `app`, merging its keys into an app with the same id.
    ///
    /// # Errors
    ///
    /// The same key twice for one app.
    pub fn add_app(&mut self, app: AppConfig) -> anyhow::Result<()> {
        match self.apps.iter_mut().find(|a| a.id == app.id) {
            None => self.apps.push(app),
            Some(existing) => {
                for key in app.keys {
                    if existing.keys.iter().any(|k| k.key == key.key) {
                        bail!("app {:?}: the same API key is configured twice", app.id);
                    }
                    existing.keys.push(key);
                }
            }
        }
        Ok(())
    }

    /// Checks the apps: ids of 1 to 100 characters from `A-Z a-z 0-9 - _ .`
    /// (not `health` or `metrics`, which are server routes), each with at
    /// least one key; keys non-empty, without `/` or control characters, and
    /// not repeated within an app.
    ///
    /// # Errors
    ///
    /// The first problem found.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_body == 0 {
            bail!("max_body must be at least 1 byte");
        }
        let mut seen = BTreeMap::new();
        for app in &self.apps {
            let id = &app.id;
            let ok_chars = id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if id.is_empty() || id.len() > 100 || !ok_chars || id == "." || id == ".." {
                bail!(
                    "invalid app id {id:?}: use 1 to 100 characters from A-Z, a-z, 0-9, '-', '_', '.'"
                );
            }
            if matches!(id.as_str(), "health" | "metrics") {
                bail!("app id {id:?} is reserved for a server route");
            }
            if seen.insert(id.clone(), ()).is_some() {
                bail!("app {id:?} is configured twice");
            }
            if app.keys.is_empty() {
                bail!("app {id:?} has no API key");
            }
            for (i, k) in app.keys.iter().enumerate() {
                if k.key.is_empty() || k.key.contains('/') || k.key.chars().any(char::is_control) {
                    bail!(
                        "app {id:?}: API key #{} is empty or contains '/' or control characters",
                        i + 1
                    );
                }
                if app.keys[..i].iter().any(|o| o.key == k.key) {
                    bail!("app {id:?}: the same API key is configured twice");
                }
            }
        }
        Ok(())
    }
}

/// Parses `APP_ID:API_KEY` (the key may itself contain `:`).
fn parse_app_flag(text: &str) -> anyhow::Result<AppConfig> {
    match text.split_once(':') {
        Some((id, key)) if !id.is_empty() && !key.is_empty() => Ok(AppConfig::new(id, key)),
        _ => bail!("expected APP_ID:API_KEY, got a value without both parts"),
    }
}

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
            .field("created", &self.created)
            .finish_non_exhaustive()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let cli = Config::from_args(args.iter().map(|s| (*s).to_owned()), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })?;
        match cli {
            Cli::Run(c) => Ok(*c),
            Cli::Print(t) => bail!("printed {t}"),
        }
    }

    #[test]
    fn defaults() {
        let c = run(&[], &[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.max_body, 1 << 20);
    }

    #[test]
    fn flags_override_env() {
        let c = run(
            &["--listen", "0.0.0.0:9", "--data-dir=/x", "--max-body", "10"],
            &[("HERALD_LISTEN", "1.2.3.4:5"), ("HERALD_DATA_DIR", "/y")],
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9");
        assert_eq!(c.data_dir, PathBuf::from("/x"));
        assert_eq!(c.max_body, 10);
        let c = run(&[], &[("HERALD_LISTEN", "1.2.3.4:5")]).unwrap();
        assert_eq!(c.listen, "1.2.3.4:5");
    }

    #[test]
    fn apps_from_flags_and_env_merge() {
        let c = run(
            &["--app", "A:k1", "--app=B:k:with:colons"],
            &[("HERALD_APP", "A:k2, C:k3")],
        )
        .unwrap();
        let ids: Vec<_> = c.apps.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["A", "C", "B"]);
        assert_eq!(c.apps[0].keys.len(), 2);
        assert_eq!(c.apps[2].keys[0].key, "k:with:colons");
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(run(&["--nope"], &[]).is_err());
        assert!(run(&["--listen"], &[]).is_err());
        assert!(run(&["--max-body", "lots"], &[]).is_err());
        assert!(run(&["--max-body", "0"], &[]).is_err());
        assert!(run(&["--app", "nokey"], &[]).is_err());
        assert!(run(&["--app", ":k"], &[]).is_err());
        assert!(run(&["--app", "a b:k"], &[]).is_err());
        assert!(run(&["--app", "health:k"], &[]).is_err());
        assert!(run(&["--app", "A:k", "--app", "A:k"], &[]).is_err());
        assert!(run(&["--config", "/definitely/not/here.toml"], &[]).is_err());
    }

    #[test]
    fn help_and_version() {
        let cli = Config::from_args(["--help".to_owned()], |_| None).unwrap();
        assert!(matches!(cli, Cli::Print(t) if t.contains("--max-body")));
        let cli = Config::from_args(["-V".to_owned()], |_| None).unwrap();
        assert!(matches!(cli, Cli::Print(t) if t.starts_with("herald-server ")));
    }

    #[test]
    fn toml_with_permissions() {
        let mut c = Config::default();
        c.apply_toml(
            r#"
            listen = "127.0.0.1:0"
            max_body = 2048
            poll_ttl_secs = 7

            [[apps]]
            id = "APP"

            [[apps.keys]]
            key = "full"

            [[apps.keys]]
            key = "reader"
            publish = []
            subscribe = ["news.*", "chat-?"]
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.max_body, 2048);
        assert_eq!(c.poll_ttl, Duration::from_secs(7));
        let keys = &c.apps[0].keys;
        assert_eq!(keys[0].publish, vec![Glob::new("*")]);
        assert!(keys[1].publish.is_empty());
        assert_eq!(keys[1].subscribe.len(), 2);
        assert!(!format!("{:?}", keys[1]).contains("reader"), "key redacted");
    }

    #[test]
    fn toml_rejects_unknown_keys() {
        let mut c = Config::default();
        assert!(c.apply_toml("lissen = \"x\"").is_err());
        assert!(c.apply_toml("[[apps]]\nid = \"A\"\nsecret = 1").is_err());
    }

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
        assert!(!format!("{first:?}").contains(&first.key));

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
