//! Crashes the real `herald-server` binary and checks what it acknowledged.
//!
//! One data directory, five lives of the binary. In each, 24 publisher
//! tasks drive it over HTTP (keep-alive, reqwest): delayed one-off
//! messages (`publishAt` 2-60 s ahead), repeating ones (`repeatEvery`
//! 1-5 s, half with a `publishAt`, half with a `repeatExpiresAt`), a few
//! immediate ones, ~20 % "soon" messages due 1-3 s after the planned kill,
//! and a cancel of every 10th delayed or repeating message. Every answer
//! is recorded: a `200` is an acknowledgement, to be honoured. At a seeded
//! random moment (200-1500 ms after the first acknowledgement) the process
//! is SIGKILLed (lives 1-4) or SIGTERMed (life 5, which must exit 0).
//!
//! Then the binary restarts on the same directory and, over HTTP:
//!
//! * every acknowledged publish so far (all lives) has a status that fits
//!   it: `scheduled`, or `published` once its time has passed (one-offs
//!   with exactly 1 run, no matter how many crashes they lived through), or
//!   `cancelled` if a cancel was acknowledged (a cancel cut short by the
//!   crash may go either way); never `unknown` or `failed`;
//! * everything due by the last "soon" message (this life's soon set, and
//!   older messages whose time has come) fires after the restart: polled
//!   until one-offs are `published` and repeating ones have run (and are
//!   `published` once expired), with a deadline, never a fixed sleep;
//! * a socket.io subscriber (raw WebSocket), connected right after the
//!   restart with a selector for this life's soon set, receives each soon
//!   message due after it subscribed, once, not early.
//!
//! At the end the binary gets SIGTERM (exit 0) and the store is opened
//! directly: every record decodes and there are at least as many as were
//! acknowledged.
//!
//! Seeded: the seed is printed; `HERALD_CRASH_SEED=N` replays the same
//! kill delays and message mix (timing still varies).

mod support;

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use herald::Store as _;
use serde_json::{Value, json};
use support::{RawWs, now_ms};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

const APP: &str = "CRASH-APP";
const KEY: &str = "crash-key";
const CHANNEL: &str = "crash";
const PUBLISHERS: usize = 24;
/// Lives ended by SIGKILL; one more ends with SIGTERM.
const KILLS: usize = 4;
/// Concurrent status requests while verifying.
const CHECKERS: usize = 16;
/// How long past the last soon message everything due must have fired
/// (a debug build restarting on a shared 2-core machine).
const FIRE_DEADLINE: Duration = Duration::from_secs(15);
/// Starting, stopping, the first acknowledgement.
const WAIT: Duration = Duration::from_secs(20);

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The data directory; kept (and its path printed) if the test fails.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("data directory kept: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

// ---------------------------------------------------------------------------
// The binary

struct Running {
    child: Child,
    base: String,
    addr: std::net::SocketAddr,
    /// Kept open: the binary must never write to a closed pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl Running {
    /// `BASE/APP/KEY/{path}`.
    fn url(&self, path: &str) -> String {
        format!("{}/{APP}/{KEY}/{path}", self.base)
    }
}

/// Starts the binary on an ephemeral port; returns once it printed its
/// address.
async fn start(dir: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald-server"))
        .args(["--listen", "127.0.0.1:0", "--app", &format!("{APP}:{KEY}")])
        .arg("--data-dir")
        .arg(dir)
        .env("HERALD_LOG", "warn")
        .env_remove("HERALD_APP")
        .env_remove("HERALD_LISTEN")
        .env_remove("HERALD_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn herald-server");
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
    let addr = base
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("not an http://ADDR: {base:?}"));
    Running {
        child,
        base,
        addr,
        _stdout: lines,
    }
}

/// SIGTERM; the binary must exit 0 in time.
async fn sigterm(r: &mut Running) {
    let pid = r.child.id().expect("still running").to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid}");
    let exit = tokio::time::timeout(WAIT, r.child.wait())
        .await
        .expect("herald-server exits after SIGTERM")
        .expect("wait");
    assert!(
        exit.success(),
        "SIGTERM: graceful exit 0 expected, got {exit}"
    );
}

/// SIGKILL: no destructor, no flush, no close.
async fn sigkill(r: &mut Running) {
    r.child.start_kill().expect("SIGKILL");
    let exit = tokio::time::timeout(WAIT, r.child.wait())
        .await
        .expect("herald-server dies after SIGKILL")
        .expect("wait");
    assert_eq!(exit.signal(), Some(9), "killed by SIGKILL, not {exit}");
}

// ---------------------------------------------------------------------------
// What was acknowledged

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// No `publishAt`: published before the answer.
    Immediate,
    /// One run at `due`.
    Once,
    /// Runs from `due` every `every_ms`, until `expires` (inclusive).
    Repeat { every_ms: u64, expires: Option<u64> },
}

#[derive(Clone, Debug)]
struct Acked {
    id: String,
    kind: Kind,
    /// The first run's due time: `publishAt`, or (immediate, or repeating
    /// without `publishAt`) the time the answer came, an upper bound.
    due: u64,
    life: usize,
    soon: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cancel {
    /// Answered `200 cancelled`.
    Done,
    /// Sent, but the crash came before an answer: either outcome is fine.
    InDoubt,
}

#[derive(Default)]
struct Ledger {
    acked: Vec<Acked>,
    cancels: HashMap<String, Cancel>,
}

// ---------------------------------------------------------------------------
// One life: publish until the crash

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Kill,
    Term,
}

struct Shared {
    http: reqwest::Client,
    base: String,
    life: usize,
    /// Set just before the signal: a failed request after it is the crash.
    stopping: AtomicBool,
    /// The planned kill, wall ms (0 until the first acknowledgement).
    kill_at: AtomicU64,
    first_ack: watch::Sender<u64>,
}

#[derive(Default)]
struct Outcome {
    acked: Vec<Acked>,
    cancels: Vec<(String, Cancel)>,
    errors: Vec<String>,
}

fn body_of(kind: Kind, due: Option<u64>, headers: Value, message: Value) -> Value {
    let mut body = json!({ "message": message, "headers": headers });
    if let Some(at) = due {
        body["publishAt"] = at.into();
    }
    if let Kind::Repeat { every_ms, expires } = kind {
        body["repeatEvery"] = (every_ms / 1_000).into();
        if let Some(e) = expires {
            body["repeatExpiresAt"] = e.into();
        }
    }
    body
}

/// One publisher task: publishes (and cancels) until a request fails.
async fn publisher(sh: Arc<Shared>, p: usize, seed: u64) -> Outcome {
    let mut rng = Rng(seed);
    let mut out = Outcome::default();
    let publish_url = format!("{}messaging/{CHANNEL}", sh.base);
    let mut eligible = 0u64;
    for n in 0u64.. {
        let now = now_ms();
        let kill_at = sh.kill_at.load(Ordering::Acquire);
        let r = rng.below(100);
        let mut soon = false;
        let (kind, publish_at) = if r < 5 {
            (Kind::Immediate, None)
        } else if r < 25 && kill_at != 0 {
            // Due 1-3 s after the planned kill: fires after the restart.
            soon = true;
            let at = kill_at.max(now) + 1_000 + rng.below(2_000);
            if rng.below(5) == 0 {
                let every_ms = 1_000 * (1 + rng.below(5));
                let expires = (rng.below(2) == 0).then(|| at + 2_000 + rng.below(8_000));
                (Kind::Repeat { every_ms, expires }, Some(at))
            } else {
                (Kind::Once, Some(at))
            }
        } else if r < 40 {
            let every_ms = 1_000 * (1 + rng.below(5));
            let at = (rng.below(2) == 0).then(|| now + 2_000 + rng.below(58_000));
            let expires =
                (rng.below(2) == 0).then(|| at.unwrap_or(now) + 2_000 + rng.below(18_000));
            (Kind::Repeat { every_ms, expires }, at)
        } else {
            (Kind::Once, Some(now + 2_000 + rng.below(58_000)))
        };
        let mut headers = json!({ "p": p, "n": n, "life": sh.life });
        if soon {
            headers["soon"] = sh.life.to_string().into();
        }
        let message = json!({ "p": p, "n": n, "at": publish_at, "text": "payload ✓" });
        let body = body_of(kind, publish_at, headers, message);

        let answer = match sh.http.post(&publish_url).json(&body).send().await {
            Ok(res) => {
                let code = res.status();
                res.text().await.map(|t| (code, t))
            }
            Err(e) => Err(e),
        };
        let (code, text) = match answer {
            Ok(a) => a,
            Err(e) => {
                if !sh.stopping.load(Ordering::Acquire) {
                    out.errors.push(format!(
                        "publisher {p}: publish failed before the crash: {e}"
                    ));
                }
                break;
            }
        };
        let st: Value = match serde_json::from_str(&text) {
            Ok(v) if code == 200 => v,
            _ => {
                out.errors.push(format!(
                    "publisher {p}: publish {body} answered {code}: {text}"
                ));
                break;
            }
        };
        let Some(id) = st["messageId"].as_str().map(str::to_owned) else {
            out.errors
                .push(format!("publisher {p}: no messageId: {st}"));
            break;
        };
        let want = if kind == Kind::Immediate {
            "published"
        } else {
            "scheduled"
        };
        if st["status"] != want {
            out.errors.push(format!(
                "publisher {p}: {body} answered {st}, wanted {want}"
            ));
        }
        let acked_at = now_ms();
        sh.first_ack.send_if_modified(|v| {
            let first = *v == 0;
            if first {
                *v = acked_at;
            }
            first
        });
        out.acked.push(Acked {
            id: id.clone(),
            kind,
            due: publish_at.unwrap_or(acked_at),
            life: sh.life,
            soon,
        });

        // Cancel every 10th delayed or repeating message (never a soon one,
        // nor a repeating one whose only run is at once: that one may have
        // been published by the time the cancel arrives, and 5040 is right).
        // (Its runs start when the server accepts it, at or before
        // `acked_at`.)
        let only_run_now = matches!(
            kind,
            Kind::Repeat { every_ms, expires: Some(e) }
                if publish_at.is_none() && e < acked_at + every_ms
        );
        if soon || kind == Kind::Immediate || only_run_now {
            continue;
        }
        eligible += 1;
        if !eligible.is_multiple_of(10) {
            continue;
        }
        out.cancels.push((id.clone(), Cancel::InDoubt));
        let url = format!("{}messaging/{id}", sh.base);
        let answer = match sh.http.delete(&url).send().await {
            Ok(res) => {
                let code = res.status();
                res.text().await.map(|t| (code, t))
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok((code, text)) => {
                let st: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if code == 200 && st["status"] == "cancelled" && st["messageId"] == id.as_str() {
                    out.cancels.push((id, Cancel::Done));
                } else {
                    out.errors.push(format!(
                        "publisher {p}: cancel of {id} ({kind:?}) answered {code}: {text}"
                    ));
                    break;
                }
            }
            Err(e) => {
                if !sh.stopping.load(Ordering::Acquire) {
                    out.errors.push(format!(
                        "publisher {p}: cancel failed before the crash: {e}"
                    ));
                }
                break;
            }
        }
    }
    out
}

struct LifeReport {
    acked: usize,
    cancelled: usize,
    in_doubt: usize,
    soon: usize,
    ran_for: Duration,
}

/// Publishes into `server` from [`PUBLISHERS`] tasks and ends it (`how`)
/// `delay_ms` after the first acknowledgement; adds what was
/// acknowledged to `ledger`.
async fn live_and_die(
    server: &mut Running,
    life: usize,
    seed: u64,
    delay_ms: u64,
    how: Stop,
    ledger: &mut Ledger,
) -> LifeReport {
    let started = Instant::now();
    let (first_ack, mut first_rx) = watch::channel(0u64);
    let sh = Arc::new(Shared {
        http: reqwest::Client::builder()
            .timeout(WAIT)
            .build()
            .expect("client"),
        base: server.url(""),
        life,
        stopping: AtomicBool::new(false),
        kill_at: AtomicU64::new(0),
        first_ack,
    });
    let mut rng = Rng(seed);
    let mut tasks = JoinSet::new();
    for p in 0..PUBLISHERS {
        tasks.spawn(publisher(sh.clone(), p, rng.next()));
    }
    let first = match tokio::time::timeout(WAIT, first_rx.wait_for(|v| *v != 0)).await {
        Ok(Ok(first)) => *first,
        _ => {
            tasks.abort_all();
            let mut errors = Vec::new();
            while let Some(out) = tasks.join_next().await {
                errors.extend(out.map(|o| o.errors).unwrap_or_default());
            }
            panic!("life {life}: no publish acknowledged in {WAIT:?}: {errors:#?}");
        }
    };
    let kill_at = first + delay_ms;
    sh.kill_at.store(kill_at, Ordering::Release);
    // The crash point itself (chosen by the seed), not a synchronisation.
    tokio::time::sleep(Duration::from_millis(kill_at.saturating_sub(now_ms()))).await;
    sh.stopping.store(true, Ordering::Release);
    match how {
        Stop::Kill => sigkill(server).await,
        Stop::Term => sigterm(server).await,
    }
    let mut errors = Vec::new();
    let mut report = LifeReport {
        acked: 0,
        cancelled: 0,
        in_doubt: 0,
        soon: 0,
        ran_for: started.elapsed(),
    };
    let joined = tokio::time::timeout(WAIT, async {
        while let Some(out) = tasks.join_next().await {
            let out = out.expect("publisher task");
            report.acked += out.acked.len();
            report.soon += out.acked.iter().filter(|a| a.soon).count();
            ledger.acked.extend(out.acked);
            for (id, c) in out.cancels {
                ledger.cancels.insert(id, c);
            }
            errors.extend(out.errors);
        }
    })
    .await;
    assert!(joined.is_ok(), "publishers still running after the crash");
    assert!(
        errors.is_empty(),
        "life {life}: {} unexpected answers, e.g. {:#?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    for a in ledger.acked.iter().filter(|a| a.life == life) {
        match ledger.cancels.get(&a.id) {
            Some(Cancel::Done) => report.cancelled += 1,
            Some(Cancel::InDoubt) => report.in_doubt += 1,
            None => {}
        }
    }
    assert!(report.acked > 0, "life {life}: nothing acknowledged");
    report
}

// ---------------------------------------------------------------------------
// Checking after the restart

/// Whether `st` (the status of `a`, read by time `t` ms) is allowed.
fn check_status(a: &Acked, cancel: Option<Cancel>, st: &Value, t: u64) -> Result<(), String> {
    let status = st["status"].as_str().unwrap_or("?");
    let runs = st["deliveries"]["runs"].as_u64();
    let bad = || format!("{a:?} (cancel {cancel:?}) has status {st} at {t}");
    if st["messageId"] != a.id.as_str() {
        return Err(bad());
    }
    match (cancel, status) {
        (Some(Cancel::Done), "cancelled") | (Some(Cancel::InDoubt), "cancelled") => return Ok(()),
        (Some(Cancel::Done), _) | (_, "cancelled") => return Err(bad()),
        _ => {}
    }
    let ok = match (a.kind, status) {
        (Kind::Immediate, "published") => runs == Some(1),
        // Delivered before a crash that lost the record of it: delivered
        // again after the restart (at-least-once), `scheduled` until then.
        // It must still become `published` (the firing check below).
        (Kind::Immediate, "scheduled") => runs == Some(0),
        (Kind::Once, "scheduled") => runs == Some(0),
        (Kind::Once, "published") => a.due <= t && runs == Some(1),
        (Kind::Repeat { .. }, "scheduled") => runs.is_some(),
        // The last run is the first whose next would pass the expiry: it
        // came after `expires - every` (even re-anchored after a crash).
        (Kind::Repeat { every_ms, expires }, "published") => {
            expires.is_some_and(|e| e < t + every_ms) && a.due <= t && runs.is_some_and(|r| r >= 1)
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(bad()) }
}

/// Whether `a` has done what it must by now (given an allowed status).
fn has_fired(a: &Acked, st: &Value, t: u64) -> bool {
    let status = st["status"].as_str().unwrap_or("?");
    let runs = st["deliveries"]["runs"].as_u64().unwrap_or(0);
    match a.kind {
        _ if status == "cancelled" => true,
        Kind::Immediate | Kind::Once => status == "published",
        Kind::Repeat { expires, .. } => {
            runs >= 1 && (status == "published" || expires.is_none_or(|e| e >= t))
        }
    }
}

async fn get_status(http: &reqwest::Client, server_url: &str, id: &str) -> (Value, u64) {
    let res = http
        .get(format!("{server_url}messaging/{id}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET status of {id}: {e}"));
    assert_eq!(res.status(), 200, "GET status of {id}");
    let st: Value = res.json().await.expect("status JSON");
    (st, now_ms())
}

/// Reads the status of every message in `items`, [`CHECKERS`] at a time;
/// returns `(index, status, time read)`.
async fn statuses(
    http: &reqwest::Client,
    server_url: &str,
    items: &[Acked],
) -> Vec<(usize, Value, u64)> {
    let items: Arc<Vec<Acked>> = Arc::new(items.to_vec());
    let mut set = JoinSet::new();
    for c in 0..CHECKERS {
        let (http, url, items) = (http.clone(), server_url.to_owned(), items.clone());
        set.spawn(async move {
            let mut got = Vec::new();
            for i in (c..items.len()).step_by(CHECKERS) {
                let (st, t) = get_status(&http, &url, &items[i].id).await;
                got.push((i, st, t));
            }
            got
        });
    }
    let mut all = Vec::with_capacity(items.len());
    while let Some(r) = set.join_next().await {
        all.extend(r.expect("status checker"));
    }
    all
}

fn fail_on(errors: &[String], what: &str) {
    assert!(
        errors.is_empty(),
        "{what}: {} wrong statuses, e.g. {:#?}",
        errors.len(),
        &errors[..errors.len().min(8)]
    );
}

/// A socket.io subscriber to this life's soon set: `(messageId, run
/// timestamp)` per `SUB_RES`.
async fn subscribe_soon(
    addr: std::net::SocketAddr,
    life: usize,
) -> (
    mpsc::UnboundedReceiver<(String, u64, u64)>,
    tokio::task::JoinHandle<()>,
    u64,
) {
    let (mut ws, open) = RawWs::open(addr, APP, KEY).await;
    assert!(open["sid"].is_string(), "{open}");
    let answer = ws.connect_nsp().await;
    assert!(answer.starts_with(&format!("40/{APP},")), "{answer}");
    ws.emit(
        "SUB_ON",
        &json!({"id": "soon", "name": "PUB_SUB_MESSAGES",
                "options": {"channel": CHANNEL, "selector": format!("soon = '{life}'")}}),
    )
    .await;
    // The answer, or what the server says about its real-time clients.
    let mut frames = Vec::new();
    let (name, ready) = loop {
        let Ok(frame) = tokio::time::timeout(WAIT, ws.recv_text()).await else {
            let metrics = reqwest::get(format!("http://{addr}/metrics"))
                .await
                .expect("GET /metrics")
                .text()
                .await
                .expect("metrics");
            let realtime: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("herald_realtime"))
                .collect();
            panic!("no answer to SUB_ON in {WAIT:?}; frames {frames:?}; server: {realtime:?}");
        };
        let frame = frame.expect("the socket stays open");
        if let Some(event) = frame.strip_prefix(&format!("42/{APP},")) {
            let v: Value = serde_json::from_str(event).expect("event JSON");
            break (v[0].as_str().unwrap_or_default().to_owned(), v[1].clone());
        }
        frames.push(frame);
    };
    assert_eq!(
        (name.as_str(), &ready),
        ("SUB_READY", &json!({"id": "soon"}))
    );
    let ready_at = now_ms();
    let (tx, rx) = mpsc::unbounded_channel();
    let prefix = format!("42/{APP},");
    let reader = tokio::spawn(async move {
        while let Some(text) = ws.recv_text().await {
            let Some(event) = text.strip_prefix(&prefix) else {
                continue;
            };
            let v: Value = serde_json::from_str(event).expect("event JSON");
            assert_eq!(v[0], "SUB_RES", "{v}");
            let data = &v[1]["data"];
            let id = data["messageId"].as_str().expect("messageId").to_owned();
            let ts = data["timestamp"].as_u64().expect("timestamp");
            let at = data["message"]["at"]
                .as_u64()
                .expect("publishAt in the message");
            if tx.send((id, ts, at)).is_err() {
                return;
            }
        }
    });
    (rx, reader, ready_at)
}

struct CheckReport {
    checked: usize,
    check_took: Duration,
    fired: usize,
    received: usize,
    /// Soon messages stored whose answer the crash cut off.
    unacked: usize,
    fire_wait: Duration,
}

/// After the restart that follows life `life`: every acknowledgement is
/// honoured, and what is due fires.
async fn verify(server: &Running, ledger: &Ledger, life: usize) -> CheckReport {
    let http = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client");
    let url = server.url("");
    let (mut soon_rx, reader, ready_at) = subscribe_soon(server.addr, life).await;

    // 1. Every acknowledgement, now.
    let started = Instant::now();
    let mut errors = Vec::new();
    for (i, st, t) in statuses(&http, &url, &ledger.acked).await {
        let a = &ledger.acked[i];
        if let Err(e) = check_status(a, ledger.cancels.get(&a.id).copied(), &st, t) {
            errors.push(e);
        }
    }
    fail_on(&errors, &format!("after life {life}"));
    let check_took = started.elapsed();

    // 2. Everything due by the last soon message fires.
    let target = ledger
        .acked
        .iter()
        .filter(|a| a.life == life && a.soon)
        .map(|a| a.due)
        .max()
        .unwrap_or_else(now_ms);
    let mut waiting: Vec<Acked> = ledger
        .acked
        .iter()
        .filter(|a| a.due <= target && ledger.cancels.get(&a.id) != Some(&Cancel::Done))
        .cloned()
        .collect();
    let fired = waiting.len();
    let deadline =
        Instant::now() + Duration::from_millis(target.saturating_sub(now_ms())) + FIRE_DEADLINE;
    let fire_started = Instant::now();
    loop {
        let mut still = Vec::new();
        let mut errors = Vec::new();
        for (i, st, t) in statuses(&http, &url, &waiting).await {
            let a = &waiting[i];
            if let Err(e) = check_status(a, ledger.cancels.get(&a.id).copied(), &st, t) {
                errors.push(e);
            } else if !has_fired(a, &st, target.min(t)) {
                still.push(a.clone());
            }
        }
        fail_on(&errors, &format!("firing after life {life}"));
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after life {life}: {} messages due by {target} have not fired by {} (deadline), \
             e.g. {:#?}",
            waiting.len(),
            now_ms(),
            &waiting[..waiting.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fire_wait = fire_started.elapsed();

    // 3. The soon messages due after the subscription reached it, once,
    // not early.
    let mut expect: HashMap<&str, &Acked> = ledger
        .acked
        .iter()
        .filter(|a| a.life == life && a.soon && a.due > ready_at)
        .filter(|a| !ledger.cancels.contains_key(&a.id))
        .map(|a| (a.id.as_str(), a))
        .collect();
    let soon_ids: HashMap<&str, &Acked> = ledger
        .acked
        .iter()
        .filter(|a| a.life == life && a.soon)
        .map(|a| (a.id.as_str(), a))
        .collect();
    let received_from = expect.len();
    let mut seen_once: HashSet<String> = HashSet::new();
    let mut unacked = 0;
    let until = Instant::now() + FIRE_DEADLINE;
    while !expect.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(Some((id, ts, at))) = tokio::time::timeout(left, soon_rx.recv()).await else {
            panic!(
                "after life {life}: {} soon messages never reached the subscriber, e.g. {:?}",
                expect.len(),
                expect.values().take(5).collect::<Vec<_>>()
            );
        };
        assert!(ts >= at, "{id} (publishAt {at}) fired early, at {ts}");
        let Some(a) = soon_ids.get(id.as_str()) else {
            // Stored, but its answer was lost in the crash.
            unacked += 1;
            continue;
        };
        assert_eq!(a.due, at, "{a:?}");
        if matches!(a.kind, Kind::Once) {
            assert!(seen_once.insert(id.clone()), "{a:?} delivered twice");
        }
        expect.remove(id.as_str());
    }
    reader.abort();
    CheckReport {
        checked: ledger.acked.len(),
        check_took,
        fired,
        received: received_from,
        unacked,
        fire_wait,
    }
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_requests_survive_sigkill_and_sigterm() {
    let seed = std::env::var("HERALD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(now_ms);
    println!("HERALD_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = TempDir(support::temp_dir());
    let test_started = Instant::now();
    let mut ledger = Ledger::default();
    let mut server = start(&dir.0).await;
    for life in 0..=KILLS {
        let how = if life < KILLS { Stop::Kill } else { Stop::Term };
        let delay_ms = 200 + rng.below(1_300);
        let life_seed = rng.next();
        let r = live_and_die(&mut server, life, life_seed, delay_ms, how, &mut ledger).await;
        let restarting = Instant::now();
        server = start(&dir.0).await;
        let restart = restarting.elapsed();
        let c = verify(&server, &ledger, life).await;
        println!(
            "life {life}: {how:?} {delay_ms} ms after the first ack ({:.1?} alive): {} acked \
             ({} soon, {} cancelled, {} cancels cut short); restart {restart:.1?}; {} statuses \
             checked in {:.1?}; {} due fired within {:.1?}; {} soon messages reached the \
             subscriber (+{} unacknowledged)",
            r.ran_for,
            r.acked,
            r.soon,
            r.cancelled,
            r.in_doubt,
            c.checked,
            c.check_took,
            c.fired,
            c.fire_wait,
            c.received,
            c.unacked
        );
    }
    sigterm(&mut server).await;

    // The store itself: intact, and it holds at least what was acknowledged.
    let store = herald_redb::RedbStore::open(dir.0.join("apps").join(APP)).expect("reopen");
    let check = store.check_records().expect("every record decodes");
    assert!(
        check.records >= ledger.acked.len() as u64,
        "{} records for {} acknowledged publishes",
        check.records,
        ledger.acked.len()
    );
    store.close().await.expect("close");
    println!(
        "{} lives, {} acknowledged publishes, {} records in the store, {:.1?}",
        KILLS + 1,
        ledger.acked.len(),
        check.records,
        test_started.elapsed()
    );
}
