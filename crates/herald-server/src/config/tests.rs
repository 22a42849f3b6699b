//! `Config::from_args` end to end: every source, precedence, errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;

use super::*;
use crate::Glob;

/// A TOML file in a fresh temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("herald-config-{}", random_uuid().unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("herald.toml");
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Cli> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Config::from_args(args.iter().map(|s| (*s).to_owned()), |k| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
}

fn run(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Config> {
    match cli(args, env)? {
        Cli::Run(c) => Ok(*c),
        Cli::Print(t) => bail!("printed {t}"),
    }
}

/// `run` with `toml` as the `--config` file (given as a flag).
fn run_with_file(args: &[&str], env: &[(&str, &str)], toml: &str) -> anyhow::Result<Config> {
    let file = TempFile::new(toml);
    let mut args = args.to_vec();
    args.extend(["--config", file.path()]);
    run(&args, env)
}

/// The error's full text (`{:#}`: with its context).
fn error(result: anyhow::Result<Config>) -> String {
    format!("{:#}", result.expect_err("an error"))
}

#[test]
fn defaults() {
    let c = run(&[], &[]).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.data_dir, Path::new("herald-data"));
    assert_eq!(c.max_body, 1 << 20);
    assert_eq!(c.poll_ttl, Duration::from_secs(300));
    assert_eq!(c.connection_buffer, 8_388_608);
    assert_eq!(c.max_subscriptions_per_connection, 1000);
    assert_eq!(c.max_polling_subscriptions, 10_000);
    assert_eq!(c.poll_max_bytes, 4_194_304);
    assert_eq!(c.log, LogLevel::Info);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.metrics_token, None);
    assert_eq!(c.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.request_timeout, Duration::from_secs(30));
    assert_eq!(c.max_connections, 10_000);
    assert_eq!((c.tls_cert.as_ref(), c.tls_key.as_ref()), (None, None));
    assert_eq!(c.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(c.cors_origins, ["*"]);
    assert_eq!(c.store, crate::config::StoreLocation::Redb);
    assert_eq!((c.bus.as_ref(), c.node_id.as_ref()), (None, None));
    assert!(c.apps.is_empty());
}

#[test]
fn cluster_settings_say_what_is_wrong() {
    let e = error(run(&["--store", "mysql://u:topsecret@h/d"], &[]));
    assert!(e.contains("--store") && e.contains("postgres://"), "{e}");
    assert!(!e.contains("topsecret"), "no password in errors: {e}");
    let e = error(run(&["--bus", "redis://h"], &[]));
    assert!(e.contains("needs a shared store"), "{e}");
    let e = error(run(
        &["--bus", "amqp://h", "--store", "postgres://h/d"],
        &[],
    ));
    assert!(e.contains("redis://"), "{e}");
    let e = error(run(
        &["--bus", "rediss://h", "--store", "postgres://h/d"],
        &[],
    ));
    assert!(e.contains("TLS to Redis"), "{e}");
    let e = error(run(&["--node-id", "a b"], &[]));
    assert!(e.contains("invalid node id"), "{e}");
    let c = run(&["--store", "postgres://h/d"], &[]).unwrap();
    assert!(c.store.is_shared());
    assert_eq!(c.bus, None, "the store's own bus");
}

/// One setting, three distinct values (flag, env, file), and how to read
/// it back from a `Config`.
struct Case {
    name: &'static str,
    values: [&'static str; 3],
    /// The file's value as a TOML literal.
    toml: &'static str,
    read: fn(&Config) -> String,
    /// What `read` gives for each of `values`.
    expected: [&'static str; 3],
}

/// Flags a setting needs beside it (`tls_cert` and `tls_key` go together).
fn companion(name: &str) -> &'static [&'static str] {
    match name {
        "tls_cert" => &["--tls-key=/k.pem"],
        "tls_key" => &["--tls-cert=/c.pem"],
        "bus" => &["--store=postgres://h/d"],
        _ => &[],
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "store",
            values: ["postgres://u:p@f/a", "postgresql://e/b", "redb"],
            toml: "\"redb\"",
            read: |c| c.store.to_string(),
            expected: ["postgres://u:***@f/a", "postgresql://e/b", "redb"],
        },
        Case {
            name: "bus",
            values: ["redis://f:1", "postgres://e/b", "redis://:pw@g"],
            toml: "\"redis://:pw@g\"\nstore = \"postgres://s/d\"",
            read: |c| c.bus.as_ref().map_or("none".into(), |b| b.to_string()),
            expected: ["redis://f:1", "postgres://e/b", "redis://:***@g"],
        },
        Case {
            name: "node_id",
            values: ["n-1", "n.2", "n_3"],
            toml: "\"n_3\"",
            read: |c| c.node_id.clone().unwrap_or_else(|| "none".into()),
            expected: ["n-1", "n.2", "n_3"],
        },
        Case {
            name: "listen",
            values: ["0.0.0.0:1", "0.0.0.0:2", "0.0.0.0:3"],
            toml: "\"0.0.0.0:3\"",
            read: |c| c.listen.clone(),
            expected: ["0.0.0.0:1", "0.0.0.0:2", "0.0.0.0:3"],
        },
        Case {
            name: "data_dir",
            values: ["/flag", "/env", "/file"],
            toml: "\"/file\"",
            read: |c| c.data_dir.display().to_string(),
            expected: ["/flag", "/env", "/file"],
        },
        Case {
            name: "log",
            values: ["DEBUG", "trace", "error"],
            toml: "\"error\"",
            read: |c| format!("{:?}", c.log),
            expected: ["Debug", "Trace", "Error"],
        },
        Case {
            name: "max_body",
            values: ["10", "2KiB", "3MiB"],
            toml: "\"3MiB\"",
            read: |c| c.max_body.to_string(),
            expected: ["10", "2048", "3145728"],
        },
        Case {
            name: "poll_ttl_secs",
            values: ["1", "2", "3"],
            toml: "3",
            read: |c| c.poll_ttl.as_secs().to_string(),
            expected: ["1", "2", "3"],
        },
        Case {
            name: "poll_max_bytes",
            values: ["1 KiB", "20000", "30000"],
            toml: "30000",
            read: |c| c.poll_max_bytes.to_string(),
            expected: ["1024", "20000", "30000"],
        },
        Case {
            name: "max_polling_subscriptions",
            values: ["1", "2", "3"],
            toml: "3",
            read: |c| c.max_polling_subscriptions.to_string(),
            expected: ["1", "2", "3"],
        },
        Case {
            name: "connection_buffer",
            values: ["16MiB", "1GiB", "65536"],
            toml: "65536",
            read: |c| c.connection_buffer.to_string(),
            expected: ["16777216", "1073741824", "65536"],
        },
        Case {
            name: "store_cache",
            values: ["64MiB", "2GiB", "1048576"],
            toml: "1048576",
            read: |c| c.store_cache.to_string(),
            expected: ["67108864", "2147483648", "1048576"],
        },
        Case {
            name: "max_subscriptions_per_connection",
            values: ["7", "8", "9"],
            toml: "9",
            read: |c| c.max_subscriptions_per_connection.to_string(),
            expected: ["7", "8", "9"],
        },
        Case {
            name: "log_format",
            values: ["json", "TEXT", "json"],
            toml: "\"json\"",
            read: |c| format!("{:?}", c.log_format),
            expected: ["Json", "Text", "Json"],
        },
        Case {
            name: "metrics_token",
            values: ["flag-token", "env-token", "file-token"],
            toml: "\"file-token\"",
            read: |c| {
                c.metrics_token
                    .as_ref()
                    .map_or("none".into(), |t| t.0.clone())
            },
            expected: ["flag-token", "env-token", "file-token"],
        },
        Case {
            name: "tls_cert",
            values: ["/flag.pem", "/env.pem", "/file.pem"],
            toml: "\"/file.pem\"\ntls_key = \"/k.pem\"",
            read: |c| {
                c.tls_cert
                    .as_ref()
                    .map_or("none".into(), |p| p.display().to_string())
            },
            expected: ["/flag.pem", "/env.pem", "/file.pem"],
        },
        Case {
            name: "tls_key",
            values: ["/flag.pem", "/env.pem", "/file.pem"],
            toml: "\"/file.pem\"\ntls_cert = \"/c.pem\"",
            read: |c| {
                c.tls_key
                    .as_ref()
                    .map_or("none".into(), |p| p.display().to_string())
            },
            expected: ["/flag.pem", "/env.pem", "/file.pem"],
        },
        Case {
            name: "cors_origins",
            values: [
                "https://a.example",
                "https://b.example,http://c.example:8080",
                "*",
            ],
            toml: "[\"*\"]",
            read: |c| c.cors_origins.join(" "),
            expected: [
                "https://a.example",
                "https://b.example http://c.example:8080",
                "*",
            ],
        },
        Case {
            name: "header_read_timeout",
            values: ["5", "2m", "1h"],
            toml: "\"1h\"",
            read: |c| c.header_read_timeout.as_secs().to_string(),
            expected: ["5", "120", "3600"],
        },
        Case {
            name: "request_timeout",
            values: ["5s", "90", "2h"],
            toml: "7200",
            read: |c| c.request_timeout.as_secs().to_string(),
            expected: ["5", "90", "7200"],
        },
        Case {
            name: "ping_interval",
            values: ["5s", "60", "1m"],
            toml: "\"2m\"",
            read: |c| c.ping_interval.as_secs().to_string(),
            expected: ["5", "60", "120"],
        },
        Case {
            name: "ping_timeout",
            values: ["3", "10s", "1m"],
            toml: "45",
            read: |c| c.ping_timeout.as_secs().to_string(),
            expected: ["3", "10", "45"],
        },
        Case {
            name: "realtime_direct",
            values: ["false", "true", "false"],
            toml: "false",
            read: |c| c.realtime_direct.to_string(),
            expected: ["false", "true", "false"],
        },
        Case {
            name: "max_connections",
            values: ["1", "2", "3"],
            toml: "3",
            read: |c| c.max_connections.to_string(),
            expected: ["1", "2", "3"],
        },
        Case {
            name: "retention",
            values: ["1d", "12h", "30m"],
            toml: "\"30m\"",
            read: |c| c.retention.as_secs().to_string(),
            expected: ["86400", "43200", "1800"],
        },
    ]
}

/// Every setting, from every source, with flag > env > file > default.
#[test]
fn every_setting_from_every_source_in_order() {
    let cases = cases();
    // Every setting but the file and apps is a case.
    let help = sources::help_command();
    let ids: Vec<_> = help
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| !matches!(*id, "help" | "version" | "config" | "app"))
        .collect();
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    let mut ids_sorted = ids.clone();
    ids_sorted.sort_unstable();
    assert_eq!(names, ids_sorted);

    for case in &cases {
        let flag = format!("--{}", case.name.replace('_', "-"));
        let var = format!("HERALD_{}", case.name.to_ascii_uppercase());
        let toml = format!("{} = {}", case.name, case.toml);
        let [from_flag, from_env, _] = case.values;
        let flags = [flag.as_str(), from_flag];
        let env = [(var.as_str(), from_env)];
        let read = |c: anyhow::Result<Config>| (case.read)(&c.unwrap());

        assert_eq!(
            read(run_with_file(&flags, &env, &toml)),
            case.expected[0],
            "{flag}"
        );
        assert_eq!(
            read(run_with_file(&[], &env, &toml)),
            case.expected[1],
            "{var}"
        );
        assert_eq!(
            read(run_with_file(&[], &[], &toml)),
            case.expected[2],
            "{toml}"
        );
        assert_eq!(
            read(run(&[], &[])),
            (case.read)(&Config::default()),
            "default"
        );
        // `--flag=value` works too, and the flag alone beats the default.
        let joined = format!("{flag}={from_flag}");
        let mut alone = vec![joined.as_str()];
        alone.extend(companion(case.name));
        assert_eq!(read(run(&alone, &[])), case.expected[0], "{joined}");
    }
}

#[test]
fn the_file_comes_from_the_flag_before_the_variable() {
    let good = TempFile::new("listen = \"127.0.0.1:9\"");
    let missing = "/definitely/not/here.toml";
    let c = run(&["--config", good.path()], &[("HERALD_CONFIG", missing)]).unwrap();
    assert_eq!(c.listen, "127.0.0.1:9");
    let c = run(&[], &[("HERALD_CONFIG", good.path())]).unwrap();
    assert_eq!(c.listen, "127.0.0.1:9");
    let e = error(run(
        &["--config", missing],
        &[("HERALD_CONFIG", good.path())],
    ));
    assert!(
        e.contains("reading config file /definitely/not/here.toml"),
        "{e}"
    );
}

#[test]
fn apps_from_flags_env_and_file_merge() {
    let file = "[[apps]]\nid = \"F\"\n[[apps.keys]]\nkey = \"kf\"\n\
                [[apps]]\nid = \"A\"\n[[apps.keys]]\nkey = \"k0\"\npublish = []";
    let c = run_with_file(
        &["--app", "A:k1", "--app=B:k:with:colons"],
        &[("HERALD_APP", "A:k2, C:k3,")],
        file,
    )
    .unwrap();
    let ids: Vec<_> = c.apps.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["F", "A", "C", "B"], "file, then env, then flags");
    let a_keys: Vec<_> = c.apps[1].keys.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(a_keys, ["k0", "k2", "k1"]);
    assert!(
        c.apps[1].keys[0].publish.is_empty(),
        "the file's permissions"
    );
    assert_eq!(c.apps[3].keys[0].key, "k:with:colons");
}

#[test]
fn a_flag_hides_a_bad_variable() {
    let c = run(&["--max-body", "5"], &[("HERALD_MAX_BODY", "lots")]).unwrap();
    assert_eq!(c.max_body, 5);
    assert!(run(&[], &[("HERALD_MAX_BODY", "lots")]).is_err());
}

#[test]
fn empty_variables_are_unset() {
    let env = [
        ("HERALD_LISTEN", ""),
        ("HERALD_APP", " , "),
        ("HERALD_LOG", " "),
    ];
    assert_eq!(run(&[], &env).unwrap(), Config::default());
}

/// Flags, environment, file, and what the error message must name.
type BadCase = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

/// Bad values are rejected, with a message naming the setting as it was
/// given: the flag, the variable or the TOML key.
#[test]
fn bad_values_name_the_setting() {
    let cases: [BadCase; 16] = [
        (&["--max-body", "lots"], &[], "", "--max-body"),
        (&[], &[("HERALD_MAX_BODY", "lots")], "", "HERALD_MAX_BODY"),
        (&[], &[], "max_body = \"lots\"", "max_body"),
        (&[], &[], "max_body = -3", "max_body"),
        (&["--max-body", "0"], &[], "", "max_body"),
        (&["--poll-ttl-secs", "0"], &[], "", "poll_ttl_secs"),
        (&["--poll-ttl-secs=-1"], &[], "", "--poll-ttl-secs"),
        (
            &[],
            &[("HERALD_POLL_TTL_SECS", "soon")],
            "",
            "HERALD_POLL_TTL_SECS",
        ),
        (&["--log", "loud"], &[], "", "--log"),
        (&[], &[("HERALD_LOG", "loud")], "", "HERALD_LOG"),
        (&[], &[], "log = \"loud\"", "log"),
        (&[], &[], "connection_buffer = 0", "connection_buffer"),
        (&[], &[("HERALD_POLL_MAX_BYTES", "0")], "", "poll_max_bytes"),
        (
            &["--max-polling-subscriptions=0"],
            &[],
            "",
            "max_polling_subscriptions",
        ),
        (
            &["--max-subscriptions-per-connection", "many"],
            &[],
            "",
            "--max-subscriptions-per-connection",
        ),
        (&[], &[("HERALD_APP", "nokey")], "", "HERALD_APP"),
    ];
    for (args, env, toml, named) in cases {
        let e = error(run_with_file(args, env, toml));
        assert!(e.contains(named), "{args:?} {env:?} {toml:?}: {e}");
    }
}

#[test]
fn bad_arguments_are_errors() {
    for args in [
        &["--nope"][..],
        &["--listen"],
        &["positional"],
        &["--app", "nokey"],
        &["--app", ":k"],
        &["--app", "a b:k"],
        &["--app", "health:k"],
        &["--app", "A:k", "--app", "A:k"],
        &["--config", "/definitely/not/here.toml"],
    ] {
        assert!(run(args, &[]).is_err(), "{args:?}");
    }
    // Command-line errors are clap's, with the usage (main prints them).
    let e = run(&["--nope"], &[]).unwrap_err();
    let clap = e.downcast_ref::<clap::Error>().expect("a clap error");
    assert!(clap.to_string().contains("--nope"), "{clap}");
    assert!(clap.to_string().contains("Usage: herald-server"), "{clap}");
}

#[test]
fn an_app_key_is_never_echoed() {
    let e = error(run(&["--app", "s3cret"], &[]));
    assert!(!e.contains("s3cret"), "{e}");
    let e = error(run(&[], &[("HERALD_APP", "A:k,s3cret")]));
    assert!(e.contains("HERALD_APP") && !e.contains("s3cret"), "{e}");
}

#[test]
fn help_and_version() {
    for flag in ["-h", "--help"] {
        let Cli::Print(help) = cli(&[flag], &[]).unwrap() else {
            panic!("{flag} prints");
        };
        for shown in [
            "--max-body <BYTES>",
            "[env: HERALD_MAX_BODY]",
            "[default: 1MiB]",
            "--poll-ttl-secs",
            "[env: HERALD_CONNECTION_BUFFER]",
            "[default: 8MiB]",
            "--log <LEVEL>",
            "[env: HERALD_APP]",
            "[env: HERALD_CONFIG]",
            "dev-app.toml",
        ] {
            assert!(help.contains(shown), "{flag}: {shown} in\n{help}");
        }
    }
    // Help wins over a bad value before it, as clap does.
    assert!(matches!(
        cli(&["--max-body", "0", "--help"], &[]).unwrap(),
        Cli::Print(_)
    ));
    let Cli::Print(version) = cli(&["-V"], &[]).unwrap() else {
        panic!("-V prints");
    };
    assert_eq!(
        version,
        format!("herald-server {}\n", env!("CARGO_PKG_VERSION"))
    );
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
    let debug = format!("{:?}", keys[1]);
    assert!(debug.contains(r#"key: "<redacted>""#), "{debug}");
    assert!(!debug.contains("reader"), "{debug}");
}

#[test]
fn toml_rejects_unknown_keys() {
    for bad in [
        "lissen = \"x\"",
        "config = \"other.toml\"",
        "app = \"A:k\"",
        "apps = \"A:k\"",
        "[[apps]]\nid = \"A\"\nsecret = 1",
        "[limits]\nmax_body = 1",
    ] {
        let mut c = Config::default();
        let e = c.apply_toml(bad).expect_err(bad).to_string();
        assert!(!e.is_empty(), "{bad}");
    }
    let e = error(run_with_file(&[], &[], "lissen = \"x\""));
    assert!(e.contains("in config file") && e.contains("lissen"), "{e}");
}

/// The crate docs' TOML example parses, sets every setting (to its
/// default) and has apps.
#[test]
fn the_crate_docs_example_is_complete() {
    let lib = include_str!("../lib.rs");
    let start = lib.find("//! ```toml\n").expect("a TOML example") + "//! ```toml\n".len();
    let example: String = lib[start..]
        .lines()
        .take_while(|line| line.trim() != "//! ```")
        .map(|line| format!("{}\n", line.trim_start_matches("//!").trim_start()))
        .collect();
    let layer = sources::file(&example).unwrap();
    assert!(!layer.apps.is_empty());
    let shown = serde_json::to_value(&layer).unwrap();
    let defaults =
        serde_json::to_value(settings::Settings::from_config(&Config::default())).unwrap();
    assert_eq!(
        shown, defaults,
        "the example lists every setting, with its default"
    );
    // Its gateway files, next to the file (fakes: their contents are not
    // read yet).
    let file = TempFile::new(&example);
    let dir = file.0.parent().unwrap();
    std::fs::write(dir.join("AuthKey_ABC123DEFG.p8"), "not a key").unwrap();
    std::fs::write(dir.join("service-account.json"), "{}").unwrap();
    let c = run(&["--config", file.path()], &[]).unwrap();
    let app = &c.apps[0];
    assert_eq!(
        app.apns.as_ref().unwrap().key_file,
        dir.join("AuthKey_ABC123DEFG.p8")
    );
    assert!(app.fcm.is_some());
    assert!(app.keys[0].templates && app.keys[1].register);
}

/// An app with an `[apps.apns]` and an `[apps.fcm]` section; `apns` and
/// `fcm` are lines added to (or replacing) each section's fields.
fn gateways_toml(apns: &str, fcm: &str) -> String {
    let section = |defaults: &[(&str, &str)], extra: &str| {
        let mut lines: Vec<String> = defaults
            .iter()
            .filter(|(k, _)| !extra.lines().any(|l| l.starts_with(&format!("{k} ="))))
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        lines.extend(extra.lines().map(str::to_owned));
        lines.join("\n")
    };
    format!(
        "[[apps]]\nid = \"PUSHY\"\n[[apps.keys]]\nkey = \"k\"\n[apps.apns]\n{}\n[apps.fcm]\n{}\n",
        section(
            &[
                ("key_file", "\"keys/AuthKey_ABC123DEFG.p8\""),
                ("key_id", "\"ABC123DEFG\""),
                ("team_id", "\"DEF123GHIJ\""),
                ("topic", "\"com.example.app\""),
                ("environment", "\"production\""),
            ],
            apns
        ),
        section(&[("service_account_file", "\"service-account.json\"")], fcm),
    )
}

/// `toml` as a config file, with the gateway files in its folder.
fn with_gateway_files(toml: &str) -> TempFile {
    let file = TempFile::new(toml);
    let dir = file.0.parent().unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(
        dir.join("keys/AuthKey_ABC123DEFG.p8"),
        "-----BEGIN PRIVATE KEY-----",
    )
    .unwrap();
    std::fs::write(dir.join("service-account.json"), "{}").unwrap();
    std::fs::write(dir.join("ca.pem"), "-----BEGIN CERTIFICATE-----").unwrap();
    file
}

#[test]
fn gateway_paths_are_relative_to_the_config_file() {
    let file = with_gateway_files(&gateways_toml(
        "url = \"https://127.0.0.1:8443\"\nca_file = \"ca.pem\"\nenvironment = \"sandbox\"",
        "ca_file = \"ca.pem\"",
    ));
    let dir = file.0.parent().unwrap();
    // From another working directory: the paths follow the file, not it.
    let c = run(&["--config", file.path()], &[]).unwrap();
    let apns = c.apps[0].apns.as_ref().unwrap();
    assert_eq!(apns.key_file, dir.join("keys/AuthKey_ABC123DEFG.p8"));
    assert_eq!(apns.ca_file.as_deref(), Some(dir.join("ca.pem").as_path()));
    assert_eq!(apns.environment, ApnsEnvironment::Sandbox);
    assert_eq!(apns.base_url(), "https://127.0.0.1:8443");
    assert_eq!(apns.topic, "com.example.app");
    let fcm = c.apps[0].fcm.as_ref().unwrap();
    assert_eq!(fcm.service_account_file, dir.join("service-account.json"));
    assert_eq!(fcm.ca_file.as_deref(), Some(dir.join("ca.pem").as_path()));
    assert_eq!(fcm.base_url(), FCM_URL);
    // An absolute path stays.
    let abs = dir.join("ca.pem");
    let file = with_gateway_files(&gateways_toml(
        "",
        &format!("service_account_file = {:?}", abs.to_str().unwrap()),
    ));
    let c = run(&["--config", file.path()], &[]).unwrap();
    assert_eq!(c.apps[0].fcm.as_ref().unwrap().service_account_file, abs);
    assert_eq!(
        c.apps[0].apns.as_ref().unwrap().base_url(),
        APNS_PRODUCTION_URL
    );
}

#[test]
fn a_bad_gateway_section_is_a_start_up_error_naming_app_section_and_field() {
    let cases = [
        (
            "environment = \"staging\"",
            "",
            "app \"PUSHY\": [apps.apns] environment: \"staging\" is neither \"production\" nor \"sandbox\"",
        ),
        (
            "url = \"http://127.0.0.1:8443\"",
            "",
            "app \"PUSHY\": [apps.apns] url: must be https://host[:port]: the scheme is not https",
        ),
        (
            "",
            "url = \"https://127.0.0.1:9443/v1\"",
            "app \"PUSHY\": [apps.fcm] url: must be https://host[:port]: it has a path",
        ),
        (
            "key_id = \"short\"",
            "",
            "app \"PUSHY\": [apps.apns] key_id: must be Apple's 10-character id (letters and digits), not \"short\"",
        ),
        (
            "topic = \"\"",
            "",
            "app \"PUSHY\": [apps.apns] topic: must be the app's bundle id: printable ASCII without spaces",
        ),
        (
            "certificate = \"x.p12\"",
            "",
            "app \"PUSHY\": [apps.apns] certificate: unknown field; expected one of key_file, key_id, team_id, topic, environment, url, ca_file",
        ),
        (
            "",
            "project_id = 7",
            "app \"PUSHY\": [apps.fcm] project_id: unknown field; expected one of service_account_file, url, ca_file",
        ),
        (
            "team_id = 1234567890",
            "",
            "app \"PUSHY\": [apps.apns] team_id: expected a string, got an integer",
        ),
    ];
    for (apns, fcm, wanted) in cases {
        let file = with_gateway_files(&gateways_toml(apns, fcm));
        let e = error(run(&["--config", file.path()], &[]));
        assert!(e.contains(wanted), "{apns} {fcm}:\n{e}\nwanted: {wanted}");
    }
    // Missing and empty files, found at start-up.
    let file = with_gateway_files(&gateways_toml("key_file = \"AuthKey_XYZ.p8\"", ""));
    let dir = file.0.parent().unwrap().to_owned();
    let e = error(run(&["--config", file.path()], &[]));
    assert!(
        e.starts_with(&format!(
            "app \"PUSHY\": [apps.apns] key_file: cannot read {}: ",
            dir.join("AuthKey_XYZ.p8").display()
        )),
        "{e}"
    );
    let file = with_gateway_files(&gateways_toml("", ""));
    let dir = file.0.parent().unwrap().to_owned();
    std::fs::write(dir.join("service-account.json"), "").unwrap();
    let e = error(run(&["--config", file.path()], &[]));
    assert_eq!(
        e,
        format!(
            "app \"PUSHY\": [apps.fcm] service_account_file: {} is empty",
            dir.join("service-account.json").display()
        )
    );
    // A required field.
    let text = gateways_toml("", "").replace("topic = \"com.example.app\"\n", "");
    let file = with_gateway_files(&text);
    let e = error(run(&["--config", file.path()], &[]));
    assert!(
        e.contains("app \"PUSHY\": [apps.apns] topic: is required"),
        "{e}"
    );
}

#[test]
fn a_gateway_is_configured_once_per_app() {
    let mut c = Config::default();
    let apns = ApnsConfig {
        key_file: "k.p8".into(),
        key_id: "ABC123DEFG".into(),
        team_id: "DEF123GHIJ".into(),
        topic: "t".into(),
        environment: ApnsEnvironment::Production,
        url: None,
        ca_file: None,
    };
    c.add_app(AppConfig {
        apns: Some(apns.clone()),
        ..AppConfig::new("A", "k1")
    })
    .unwrap();
    // Another key for the app (`--app A:k2`) keeps its gateway.
    c.add_app(AppConfig::new("A", "k2")).unwrap();
    assert_eq!(c.apps[0].apns.as_ref(), Some(&apns));
    assert_eq!(c.apps[0].keys.len(), 2);
    let e = c
        .add_app(AppConfig {
            apns: Some(apns),
            ..AppConfig::new("A", "k3")
        })
        .unwrap_err()
        .to_string();
    assert_eq!(e, "app \"A\": [apps.apns] is configured twice");
    // Debug shows the settings (no secret is held: only paths).
    let debug = format!("{:?}", c.apps[0]);
    assert!(debug.contains("key_file: \"k.p8\""), "{debug}");
    assert!(!debug.contains("k1") && !debug.contains("k2"), "{debug}");
}
