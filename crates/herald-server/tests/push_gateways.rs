//! End to end through the `herald-server` binary: an app configured with
//! `[apps.apns]` and `[apps.fcm]` (the real gateways, pointed at the
//! testkit's mock APNs and mock FCM by `url` and `ca_file`) pushes what
//! devices registered over REST should get; a 410 removes a device; keys
//! the gateway refuses make the message `failed` with a clear
//! `errorMessage`.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use herald::{Clock, SystemClock};
use herald_testkit::mock_apns::{MockApns, MockApnsOptions, Script, TestApnsKey};
use herald_testkit::mock_fcm::{MockFcm, MockFcmOptions, TEST_PRIVATE_KEY_PEM};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TOPIC: &str = "com.example.herald";
const KEY: &str = "server-key-0123456789";

struct Running {
    _child: Child,
    base: String,
    http: reqwest::Client,
}

impl Running {
    fn url(&self, app: &str, path: &str) -> String {
        format!("{}/{app}/{KEY}/{path}", self.base)
    }

    async fn post(&self, app: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(self.url(app, path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, app: &str, path: &str) -> (StatusCode, Value) {
        let res = self.http.get(self.url(app, path)).send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn register(&self, app: &str, id: &str, token: &str, os: &str) {
        let body = json!({"deviceId": id, "deviceToken": token, "os": os, "channels": ["news"],
                          "properties": {"name": format!("user-{id}")}});
        let (status, res) = self.post(app, "messaging/registrations", &body).await;
        assert_eq!(status, StatusCode::OK, "{res}");
    }

    /// The message's status once `done` holds for it (bounded by
    /// `support::WAIT`; the server delivers on its own time).
    async fn status_when(&self, app: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + support::WAIT;
        loop {
            let (_, body) = self.get(app, &format!("messaging/{id}")).await;
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "status stayed {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts the binary with `config` (a TOML file) on an ephemeral port.
async fn run(config: &Path, data_dir: &Path) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald-server"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HERALD_") {
            cmd.env_remove(name);
        }
    }
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0", "--log", "warn", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn herald-server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(support::WAIT, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the listening line");
            if let Some(url) = line.strip_prefix("herald-server listening on ") {
                return url.to_owned();
            }
        }
    })
    .await
    .expect("the server starts");
    Running {
        _child: child,
        base,
        http: support::http_client(),
    }
}

struct Mocks {
    apns: MockApns,
    fcm: MockFcm,
}

/// The mocks (on the real clock, as the binary is) and a config with two
/// apps: `GOOD` with the keys the mocks know, `BADKEY` with an APNs key
/// the mock APNs does not know (Apple's 403 `InvalidProviderToken`).
async fn setup(dir: &Path) -> (Mocks, std::path::PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let key = TestApnsKey::generate();
    let apns = MockApns::start(MockApnsOptions::new(&key, TOPIC, clock.clone()))
        .await
        .unwrap();
    let fcm = MockFcm::start(MockFcmOptions::new(clock)).await.unwrap();
    let good_p8 = key.write_p8(dir);
    // Same key id and team, another key: the signature does not verify.
    let mut stranger = TestApnsKey::generate();
    stranger.key_id.clone_from(&key.key_id);
    stranger.team_id.clone_from(&key.team_id);
    let bad_dir = dir.join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let bad_p8 = stranger.write_p8(&bad_dir);
    let apns_ca = dir.join("apns-ca.pem");
    std::fs::write(&apns_ca, apns.ca_pem()).unwrap();
    let fcm_ca = fcm.write_ca_file(dir);
    let service_account = fcm.write_service_account(dir, TEST_PRIVATE_KEY_PEM);
    let apps = |id: &str, p8: &Path| {
        format!(
            r#"
[[apps]]
id = "{id}"
[[apps.keys]]
key = "{KEY}"
register = true
push = ["*"]
templates = true
[apps.apns]
key_file = "{p8}"
key_id = "{key_id}"
team_id = "{team_id}"
topic = "{TOPIC}"
environment = "sandbox"
url = "{apns_url}"
ca_file = "{apns_ca}"
[apps.fcm]
service_account_file = "{sa}"
url = "{fcm_url}"
ca_file = "{fcm_ca}"
"#,
            p8 = p8.display(),
            key_id = key.key_id,
            team_id = key.team_id,
            apns_url = apns.url(),
            apns_ca = apns_ca.display(),
            sa = service_account.display(),
            fcm_url = fcm.url(),
            fcm_ca = fcm_ca.display(),
        )
    };
    let config = dir.join("herald.toml");
    std::fs::write(
        &config,
        format!("{}{}", apps("GOOD", &good_p8), apps("BADKEY", &bad_p8)),
    )
    .unwrap();
    (Mocks { apns, fcm }, config)
}

const IOS_TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const GONE_TOKEN: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
const ANDROID_TOKEN: &str = "fcm-token-of-the-android-device";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_and_template_pushes_reach_apns_and_fcm_and_a_410_removes_the_device() {
    let dir = support::temp_dir();
    let (mocks, config) = setup(&dir).await;
    let server = run(&config, &dir.join("data")).await;
    server.register("GOOD", "iphone", IOS_TOKEN, "IOS").await;
    server
        .register("GOOD", "old-iphone", GONE_TOKEN, "IOS")
        .await;
    server
        .register("GOOD", "pixel", ANDROID_TOKEN, "ANDROID")
        .await;
    // Apple says the old phone's token is gone from now on (after it
    // registered: an older 410 would leave it in place).
    let since = herald_core::Tick::from_millis(support::now_ms());
    mocks
        .apns
        .script(GONE_TOKEN, Script::Unregistered { since });

    // A PUSH publish: one notification per device, through each gateway.
    let publish = json!({
        "message": "Gates open at 9",
        "publishPolicy": "PUSH",
        "headers": {"ios-alert-title": "Concert", "ios-badge": "2",
                    "android-content-title": "Concert!", "campaign": "c7"},
    });
    let (status, res) = server.post("GOOD", "messaging/news", &publish).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let id = res["messageId"].as_str().unwrap().to_owned();
    let done = server
        .status_when("GOOD", &id, |b| {
            b["deliveries"]["pushPending"] == 0 && b["deliveries"]["pushSent"] == 2
        })
        .await;
    assert_eq!(done["deliveries"]["pushInvalidTokens"], 1, "{done}");
    assert_eq!(done["status"], "published", "{done}");

    let ios: Vec<_> = mocks.apns.accepted();
    assert_eq!(ios.len(), 1, "only the valid iOS token was accepted");
    let note = &ios[0];
    assert_eq!(note.device_token, IOS_TOKEN);
    assert_eq!(note.header("apns-topic"), Some(TOPIC));
    assert_eq!(note.header("apns-push-type"), Some("alert"));
    assert_eq!(note.payload["aps"]["alert"]["title"], "Concert");
    assert_eq!(note.payload["aps"]["alert"]["body"], "Gates open at 9");
    assert_eq!(note.payload["aps"]["badge"], 2);
    assert_eq!(note.payload["campaign"], "c7");
    assert!(note.payload.get("android-content-title").is_none());

    let android = mocks.fcm.accepted();
    assert_eq!(android.len(), 1);
    let m = &android[0].message;
    assert_eq!(android[0].token, ANDROID_TOKEN);
    assert_eq!(m["android"]["notification"]["title"], "Concert!");
    assert_eq!(m["android"]["notification"]["body"], "Gates open at 9");
    assert_eq!(m["data"]["campaign"], "c7");
    assert!(m["data"].get("ios-badge").is_none(), "{m}");

    // The 410 removed the old phone.
    let (status, res) = server
        .get("GOOD", "messaging/registrations/old-iphone")
        .await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(5000)),
        "{res}"
    );

    // A template push with smart text from the registration.
    let template = json!({"name": "hello", "message": "Hi {name}", "title": "For {name|you}",
                          "audience": {"os": ["IOS", "ANDROID"], "channel": "news"}});
    let (status, res) = server
        .post("GOOD", "messaging/pushtemplates", &template)
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let (status, res) = server
        .post(
            "GOOD",
            "messaging/push/hello",
            &json!({"templateValues": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let id = res["messageId"].as_str().unwrap().to_owned();
    server
        .status_when("GOOD", &id, |b| {
            b["deliveries"]["pushPending"] == 0 && b["deliveries"]["pushSent"] == 2
        })
        .await;
    let ios = mocks.apns.accepted();
    assert_eq!(ios.len(), 2);
    assert_eq!(ios[1].payload["aps"]["alert"]["body"], "Hi user-iphone");
    assert_eq!(ios[1].payload["aps"]["alert"]["title"], "For user-iphone");
    let android = mocks.fcm.accepted();
    assert_eq!(android.len(), 2);
    assert_eq!(
        android[1].message["android"]["notification"]["body"],
        "Hi user-pixel"
    );

    // One provider token and one access token served every request, over
    // long-lived connections.
    assert_eq!(mocks.apns.provider_tokens(), 1);
    assert_eq!(mocks.fcm.tokens_issued(), 1);
    assert!(
        mocks.apns.connections() <= 2,
        "{}",
        mocks.apns.connections()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_gateway_refuses_make_the_message_failed_with_the_reason() {
    let dir = support::temp_dir();
    let (mocks, config) = setup(&dir).await;
    let server = run(&config, &dir.join("data")).await;
    server.register("BADKEY", "iphone", IOS_TOKEN, "IOS").await;
    let publish = json!({"message": "hello", "publishPolicy": "PUSH"});
    let (status, res) = server.post("BADKEY", "messaging/news", &publish).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let id = res["messageId"].as_str().unwrap().to_owned();
    let failed = server
        .status_when("BADKEY", &id, |b| b["status"] == "failed")
        .await;
    let why = failed["errorMessage"].as_str().unwrap_or_default();
    assert!(why.contains("InvalidProviderToken"), "{failed}");
    assert_eq!(mocks.apns.accepted_count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_key_that_is_not_a_key_stops_the_start_with_a_line_naming_app_and_file() {
    let dir = support::temp_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let p8 = dir.join("AuthKey_SECRET.p8");
    std::fs::write(&p8, "not-a-key-but-a-secret-looking-text").unwrap();
    let config = dir.join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[[apps]]\nid = \"APP\"\n[[apps.keys]]\nkey = \"{KEY}\"\n[apps.apns]\nkey_file = \"{}\"\n\
             key_id = \"ABC123DEFG\"\nteam_id = \"DEF123GHIJ\"\ntopic = \"{TOPIC}\"\nenvironment = \"production\"\n",
            p8.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("HERALD_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("app \"APP\": [apps.apns]"), "{stderr}");
    assert!(stderr.contains("AuthKey_SECRET.p8"), "{stderr}");
    assert!(
        !stderr.contains("secret-looking"),
        "never the key's contents: {stderr}"
    );
    assert!(out.stdout.is_empty() || !String::from_utf8_lossy(&out.stdout).contains("listening"));
    let _ = std::fs::remove_dir_all(&dir);
}
