//! A full disk, for real: the `herald-server` binary runs with SIGXFSZ
//! ignored, and the test lowers its file-size limit (`RLIMIT_FSIZE`, with
//! `prlimit`) to the size its store has: when redb needs to grow the file,
//! its write fails (`EFBIG`), as on a full disk. Then the limit is raised
//! again: space is back.
//!
//! While the store cannot write, publishes answer 503 with code 5093,
//! `/health` answers 503 naming the app, and the log gets a few lines, not
//! ten a second. When space is back, publishes work again without a
//! restart, the repeating message runs again, `/health` is 200, and every
//! publish acknowledged before, during and after is there, also after a
//! restart.
//!
//! Before: after the first failed write redb refused everything until a
//! restart (even after space returned), the repeating message stopped for
//! good, errors were logged ten times a second and `/health` said `ok`.
#![cfg(target_os = "linux")]

mod support;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const APP: &str = "DISK-APP";
const KEY: &str = "disk-key";
/// Starting, stopping, coming back.
const WAIT: Duration = Duration::from_secs(30);

struct Running {
    child: Child,
    base: String,
    http: reqwest::Client,
    /// Every stderr line so far.
    log: Arc<Mutex<Vec<String>>>,
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("{}/{APP}/{KEY}/{path}", self.base)
    }

    async fn publish(&self, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(self.url("messaging/disk"))
            .json(body)
            .send()
            .await
            .expect("publish sent");
        (
            res.status().as_u16(),
            res.json().await.expect("a JSON body"),
        )
    }

    async fn get(&self, url: &str) -> (u16, Value) {
        let res = self.http.get(url).send().await.expect("sent");
        (
            res.status().as_u16(),
            res.json().await.expect("a JSON body"),
        )
    }

    async fn health(&self) -> (u16, Value) {
        self.get(&format!("{}/health", self.base)).await
    }

    /// The `herald_store_writable` sample of the app in `/metrics`.
    async fn writable(&self) -> String {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let sample = format!("herald_store_writable{{app=\"{APP}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&sample))
            .unwrap_or("missing")
            .to_owned()
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Warnings and errors logged so far.
    fn complaints(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .cloned()
            .collect()
    }
}

/// Starts the binary with SIGXFSZ ignored (an ignored signal stays ignored
/// across `exec`), so a write past the file-size limit fails with `EFBIG`
/// instead of killing it.
async fn start(dir: &Path) -> Running {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_herald-server"))
        .args(["--listen", "127.0.0.1:0", "--app", &format!("{APP}:{KEY}")])
        .arg("--data-dir")
        .arg(dir)
        .env("HERALD_LOG", "warn")
        .env_remove("HERALD_APP")
        .env_remove("HERALD_LISTEN")
        .env_remove("HERALD_DATA_DIR")
        .env_remove("HERALD_RETENTION")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn herald-server");
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let sink = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            eprintln!("[herald-server] {line}");
            sink.lock().unwrap().push(line);
        }
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = tokio::time::timeout(WAIT, async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("read stdout")
                .expect("herald-server exited before listening");
            if let Some(url) = line.strip_prefix("herald-server listening on ") {
                return url.trim().to_owned();
            }
        }
    })
    .await
    .expect("herald-server listens in time");
    Running {
        child,
        base,
        http: support::http_client(),
        log,
        _stdout: lines,
    }
}

/// Sets the process's soft file-size limit (`unlimited` or bytes).
async fn fsize(pid: u32, soft: &str) {
    let out = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--fsize={soft}:"))
        .output()
        .await
        .expect("prlimit (util-linux) runs");
    assert!(
        out.status.success(),
        "prlimit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn sigterm(mut r: Running) {
    let pid = r.pid().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(WAIT, r.child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
}

/// Every acknowledged message is there, with a fitting status.
async fn all_there(r: &Running, acked: &[(String, &'static str)]) {
    for (id, want) in acked {
        let (code, body) = r.get(&r.url(&format!("messaging/{id}"))).await;
        assert_eq!(code, 200, "{id}: {body}");
        assert_eq!(body["status"], *want, "{id}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_publishes_then_writes_resume_by_themselves() {
    let dir = support::temp_dir();
    let r = start(&dir).await;
    let store = dir.join("apps").join(APP).join(herald_redb::FILE_NAME);
    let later = support::now_ms() + 3_600_000;
    // (id, status it must have): scheduled an hour ahead, so they stay put.
    let mut acked: Vec<(String, &'static str)> = Vec::new();
    let (code, repeating) = r
        .publish(&json!({"message": "tick", "repeatEvery": 1}))
        .await;
    assert_eq!(code, 200, "{repeating}");
    let repeating = repeating["messageId"].as_str().expect("id").to_owned();
    acked.push((repeating.clone(), "scheduled"));
    let runs_of = |body: &Value| body["deliveries"]["runs"].as_u64().unwrap_or(0);

    // The disk is full: the file cannot grow past its size.
    let size = std::fs::metadata(&store).expect("the store file").len();
    fsize(r.pid(), &size.to_string()).await;
    let big = "x".repeat(64 * 1024);
    let mut refused = None;
    for i in 0..2_000 {
        let (code, body) = r
            .publish(&json!({"message": {"i": i, "pad": big}, "publishAt": later}))
            .await;
        match code {
            200 => acked.push((
                body["messageId"].as_str().expect("id").to_owned(),
                "scheduled",
            )),
            503 => {
                refused = Some(body);
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let refused = refused.expect("the file reached its limit");
    assert_eq!(refused["code"], 5093, "{refused}");
    let message = refused["message"].as_str().expect("message");
    assert!(
        message.starts_with("The message store cannot write: herald-redb:"),
        "{message}"
    );
    let outage_started = Instant::now();
    let complaints_before = r.complaints().len();

    // While it cannot write: /health says so, naming the app; publishes
    // keep failing the same way (or, if redb finds room in the file,
    // succeed: those are acknowledged like any other).
    let (code, health) = r.health().await;
    assert_eq!(code, 503, "{health}");
    assert_eq!(health["status"], "unavailable", "{health}");
    assert_eq!(health["stores"][0]["app"], APP, "{health}");
    assert!(
        health["stores"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("herald-redb"),
        "{health}"
    );
    assert_eq!(r.writable().await, "0");
    let mut refusals = 1;
    while outage_started.elapsed() < Duration::from_secs(3) {
        let (code, body) = r
            .publish(&json!({"message": {"pad": big}, "publishAt": later}))
            .await;
        match code {
            200 => acked.push((
                body["messageId"].as_str().expect("id").to_owned(),
                "scheduled",
            )),
            503 => {
                assert_eq!(body["code"], 5093, "{body}");
                refusals += 1;
            }
            other => panic!("{other}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refusals > 10, "refused {refusals}");
    let (_, before) = r.get(&r.url(&format!("messaging/{repeating}"))).await;
    let runs_before = runs_of(&before);

    // Space is back: no restart, writes resume by themselves.
    fsize(r.pid(), "unlimited").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, body) = r
            .publish(&json!({"message": "back", "publishAt": later}))
            .await;
        if code == 200 {
            acked.push((
                body["messageId"].as_str().expect("id").to_owned(),
                "scheduled",
            ));
            break;
        }
        assert_eq!((code, &body["code"]), (503, &json!(5093)), "{body}");
        assert!(Instant::now() < deadline, "publishes still refused: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outage = outage_started.elapsed();
    let (code, health) = r.health().await;
    assert_eq!((code, &health), (200, &json!({"status": "ok"})));
    assert_eq!(r.writable().await, "1");
    // Logged at a bounded rate: a few lines for the whole outage.
    let during = r.complaints().len() - complaints_before;
    let total = r.complaints().len();
    assert!(
        total <= 8,
        "{total} warnings/errors ({during} after the first refusal) in a {outage:?} outage: {:#?}",
        r.complaints()
    );
    // The repeating message runs again (every second).
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, now) = r.get(&r.url(&format!("messaging/{repeating}"))).await;
        if runs_of(&now) >= runs_before + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the repeating message stopped: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    all_there(&r, &acked).await;
    sigterm(r).await;

    // And after a restart.
    let r = start(&dir).await;
    all_there(&r, &acked).await;
    sigterm(r).await;
    std::fs::remove_dir_all(&dir).expect("remove the data directory");
}
