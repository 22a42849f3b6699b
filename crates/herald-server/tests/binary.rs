//! The `herald-server` binary: the development app, flags, SIGTERM.

mod support;

use std::process::Stdio;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Running {
    child: Child,
    base: String,
    app: String,
    key: String,
    /// The log, when captured.
    stderr: Option<tokio::process::ChildStderr>,
}

/// The binary, without the caller's `HERALD_*` variables.
fn server() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald-server"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HERALD_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Starts the binary on an ephemeral port with `data_dir` and reads what it
/// prints until the listening line.
async fn run(data_dir: &std::path::Path) -> Running {
    run_with(data_dir, &[], "warn", false).await
}

/// As [`run`], with more flags, a log level, and the log captured or not.
async fn run_with(
    data_dir: &std::path::Path,
    args: &[&str],
    log: &str,
    capture_log: bool,
) -> Running {
    let mut child = server()
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env("HERALD_LOG", log)
        .stdout(Stdio::piped())
        .stderr(if capture_log {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .kill_on_drop(true)
        .spawn()
        .expect("spawn herald-server");
    let stderr = child.stderr.take();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut app, mut key) = (String::new(), String::new());
    let base = tokio::time::timeout(support::WAIT, async {
        loop {
            let line = lines.next_line().await.unwrap().expect("a line");
            if let Some(v) = line.trim().strip_prefix("app id:") {
                app = v.trim().to_owned();
            } else if let Some(v) = line.trim().strip_prefix("API key:") {
                key = v.trim().to_owned();
            } else if let Some(url) = line.strip_prefix("herald-server listening on ") {
                return url.to_owned();
            }
        }
    })
    .await
    .expect("the server starts");
    Running {
        child,
        base,
        app,
        key,
        stderr,
    }
}

/// Stops `r` with SIGTERM and returns its captured log.
async fn stop_and_read_log(mut r: Running) -> String {
    let mut stderr = r.stderr.take().expect("log captured");
    let reading = tokio::spawn(async move {
        let mut log = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut log)
            .await
            .unwrap();
        log
    });
    sigterm_and_wait(r).await;
    reading.await.unwrap()
}

async fn sigterm_and_wait(mut r: Running) {
    let pid = r.child.id().expect("running").to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(support::WAIT, r.child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn dev_app_persists_and_sigterm_exits_zero() {
    let dir = support::temp_dir();
    let http = reqwest::Client::new();

    let first = run(&dir).await;
    assert_eq!(first.app.len(), 36, "app id printed");
    assert_eq!(first.key.len(), 36, "API key printed");
    let health: serde_json::Value = http
        .get(format!("{}/health", first.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let res = http
        .post(format!(
            "{}/{}/{}/messaging/c",
            first.base, first.app, first.key
        ))
        .json(&json!({"message": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (app, key) = (first.app.clone(), first.key.clone());
    sigterm_and_wait(first).await;

    // A restart reads the same development app back.
    let second = run(&dir).await;
    assert_eq!(
        (second.app.as_str(), second.key.as_str()),
        (app.as_str(), key.as_str())
    );
    let res = http
        .get(format!("{}/{app}/{key}/info", second.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    sigterm_and_wait(second).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn bad_flags_exit_nonzero_and_help_exits_zero() {
    let out = server().arg("--bogus").output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));

    // A bad value, from a flag, a variable, or one that fails validation.
    let out = server()
        .args(["--max-body", "lots"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-body"));
    let out = server().env("HERALD_LOG", "loud").output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HERALD_LOG"));
    let out = server().arg("--poll-ttl-secs=0").output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("poll_ttl_secs"));

    // An argument that is not UTF-8: an error, not a panic.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let out = server()
            .arg(std::ffi::OsStr::from_bytes(b"--listen=\xff:80"))
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }

    let out = server().arg("--help").output().await.unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for shown in [
        "--max-body",
        "[env: HERALD_CONNECTION_BUFFER]",
        "[default: 8MiB]",
    ] {
        assert!(help.contains(shown), "{shown} in\n{help}");
    }
    let out = server().arg("-V").output().await.unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("herald-server "));
}

/// A second server on a data directory the first one is using fails before
/// it says it is listening, with one line on stderr that names the
/// directory (it used to print "listening" and then a doubled redb lock
/// error).
#[tokio::test]
async fn a_second_server_on_a_data_directory_in_use_fails_before_listening() {
    let dir = support::temp_dir();
    let first = run(&dir).await;
    let out = server()
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("HERALD_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {stdout:?}, stderr {stderr:?}"
    );
    assert!(
        !stdout.contains("listening"),
        "it must not say it listens: {stdout:?}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    assert!(
        lines[0].contains(&dir.display().to_string()),
        "names the data directory: {stderr:?}"
    );
    assert!(lines[0].contains("in use"), "{stderr:?}");
    assert_eq!(
        lines[0].matches("Cannot acquire lock").count(),
        0,
        "redb's text is not repeated: {stderr:?}"
    );
    sigterm_and_wait(first).await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// The requests a test sends to a running binary: a health check, a
/// publish, and channel names that try to forge a log line (control
/// characters, percent-encoded; refused with 5010).
async fn traffic(r: &Running) {
    let http = reqwest::Client::new();
    let ok = http.get(format!("{}/health", r.base)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let res = http
        .post(format!("{}/{}/{}/messaging/news", r.base, r.app, r.key))
        .json(&json!({"message": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for forged in [
        "x%0A2026-12-03T00:00:00.000000Z%20ERROR%20herald_server:%20forged",
        "x%0D%0AERROR%20forged",
        "x%1B%5B31mERROR",
        "x%E2%80%A8ERROR%20forged",
    ] {
        let res = http
            .post(format!("{}/{}/{}/messaging/{forged}", r.base, r.app, r.key))
            .json(&json!({"message": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{forged}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], 5010, "{forged}: {body}");
    }
}

/// One `info` line per request (method, path with the key redacted,
/// status, code, duration), and no user input can start a line of its own.
#[tokio::test]
async fn one_log_line_per_request_and_no_forged_lines() {
    let dir = support::temp_dir();
    let r = run_with(&dir, &[], "info", true).await;
    traffic(&r).await;
    let key = r.key.clone();
    let log = stop_and_read_log(r).await;
    let requests: Vec<&str> = log.lines().filter(|l| l.contains(" request ")).collect();
    assert_eq!(requests.len(), 6, "{log}");
    assert!(
        requests[0].contains("method=GET path=/health status=200"),
        "{}",
        requests[0]
    );
    assert!(requests[1].contains("method=POST"), "{}", requests[1]);
    assert!(
        requests[1].contains("/***/messaging/news status=200"),
        "{}",
        requests[1]
    );
    assert!(requests[1].contains(" micros="), "{}", requests[1]);
    for line in &requests[2..] {
        assert!(line.contains("status=400 code=5010"), "{line}");
    }
    assert!(!log.contains(&key), "the API key is never logged:\n{log}");
    // Every line is one of ours: it starts with a timestamp and a level,
    // and no line is the forged one.
    for line in log.lines() {
        let mut words = line.split_whitespace();
        let (time, level) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        assert!(
            time.starts_with("20") && time.ends_with('Z') && time.len() >= 20,
            "a line that is not the logger's: {line:?}"
        );
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{line:?}"
        );
        assert!(
            !line.contains("forged") || line.contains("path="),
            "{line:?}"
        );
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{2028}'),
            "{line:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `--log-format json`: one JSON object per line, the same fields.
#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = support::temp_dir();
    let r = run_with(&dir, &["--log-format", "json"], "info", true).await;
    traffic(&r).await;
    let key = r.key.clone();
    let log = stop_and_read_log(r).await;
    assert!(!log.contains(&key), "the API key is never logged");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let requests: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 6, "{log}");
    assert_eq!(requests[0]["level"], "INFO");
    assert_eq!(requests[0]["method"], "GET");
    assert_eq!(requests[0]["path"], "/health");
    assert_eq!(requests[0]["status"], 200);
    assert!(requests[1]["micros"].is_u64());
    assert_eq!(requests[2]["code"], 5010);
    assert!(lines.iter().any(|l| l["message"] == "stopped"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Push gateway sections: files relative to the config file's folder
/// (whatever the working directory), checked at start-up; a bad section
/// stops the binary before it listens, naming the app, section and field.
#[tokio::test]
async fn push_gateway_sections_are_checked_at_start_up() {
    let dir = support::temp_dir();
    let conf = dir.join("conf");
    std::fs::create_dir_all(conf.join("keys")).unwrap();
    // Real keys (the gateways read and check them at start): a fresh P-256
    // key, and the testkit's test-only RSA key in a service-account file.
    let apns_key = herald_testkit::mock_apns::TestApnsKey::generate();
    std::fs::write(
        conf.join("keys/AuthKey_ABC123DEFG.p8"),
        &apns_key.private_pem,
    )
    .unwrap();
    let service_account = json!({
        "type": "service_account",
        "project_id": "herald-test",
        "private_key_id": "k1",
        "private_key": herald_testkit::mock_fcm::TEST_PRIVATE_KEY_PEM,
        "client_email": "sender@herald-test.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    });
    std::fs::write(conf.join("sa.json"), service_account.to_string()).unwrap();
    let toml = |key_file: &str| {
        format!(
            "[[apps]]\nid = \"PUSHY\"\n[[apps.keys]]\nkey = \"k\"\nregister = true\n\
             [apps.apns]\nkey_file = \"{key_file}\"\nkey_id = \"ABC123DEFG\"\n\
             team_id = \"DEF123GHIJ\"\ntopic = \"com.example.app\"\nenvironment = \"sandbox\"\n\
             [apps.fcm]\nservice_account_file = \"sa.json\"\n"
        )
    };
    let good = conf.join("good.toml");
    std::fs::write(&good, toml("keys/AuthKey_ABC123DEFG.p8")).unwrap();
    let bad = conf.join("bad.toml");
    std::fs::write(&bad, toml("keys/missing.p8")).unwrap();

    // The bad one, run from elsewhere (the crate's folder).
    let out = server()
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&bad)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    let wanted = format!(
        "herald-server: app \"PUSHY\": [apps.apns] key_file: cannot read {}: ",
        conf.join("keys/missing.p8").display()
    );
    assert!(stderr.starts_with(&wanted), "{stderr}\nwanted: {wanted}");

    // The good one serves.
    let running = run_with(
        &dir.join("data"),
        &["--config", good.to_str().unwrap()],
        "warn",
        false,
    )
    .await;
    let http = support::http_client();
    let res = http
        .post(format!("{}/PUSHY/k/messaging/registrations", running.base))
        .json(&json!({"deviceId": "d", "deviceToken": "t", "os": "IOS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    sigterm_and_wait(running).await;
    std::fs::remove_dir_all(dir).unwrap();
}
