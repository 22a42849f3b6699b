//! The server's configuration: defaults, a TOML file, environment variables
//! and command-line flags, and the development app.

mod app;
mod dev_app;
mod file;
mod typed;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::Glob;

pub use app::{AppConfig, KeyConfig};
pub(crate) use dev_app::random_uuid;
pub use dev_app::{DEV_APP_FILE, DevApp, ensure_dev_app};
pub use typed::{Config, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_MAX_BODY, DEFAULT_POLL_TTL};

use app::parse_app_flag;
use file::FileConfig;

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
}
