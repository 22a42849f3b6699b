//! `push-bench --gateways`: one publish to N devices through the real APNs
//! and FCM gateways (`herald-apns`, `herald-fcm` over `herald-http2`)
//! against the testkit's protocol-true mocks over loopback.
//!
//! ```text
//! cargo run --release -p herald-benches --bin push-bench -- --gateways [--quick]
//!     [--devices N] [--runs K] [--gateway-connections C] [--dir DIR] [--keep]
//! ```
//!
//! * **The mocks run in a child process**: the bench starts itself again
//!   with the hidden flag `--serve-mocks`, which starts a `MockApns` and a
//!   `MockFcm` on the real clock with recording off, prints what a
//!   gateway needs on stdout (one `name <JSON string>` line each: URLs, CA
//!   certificates, the generated APNs test key and ids, the FCM
//!   service-account JSON; then `ready`), answers each `counters` line on
//!   its stdin with one `counters <JSON>` line (the mocks' counts and its
//!   own CPU time), and stops when its stdin closes (the parent exiting,
//!   however it exits). So this process's CPU time is the sending side
//!   alone: engine, store, gateways, TLS and HTTP/2 client.
//! * **This process**: an `Engine` on a fresh `RedbStore` (store and
//!   registry, as the server runs it) in a temporary directory, on a
//!   two-worker tokio runtime, on the real clock, with the real
//!   `ApnsGateway` (`IOS | OSX`) and `FcmGateway` (`ANDROID`) pointed at
//!   the mocks (`client_tls_only` with the mocks' CAs: nothing else is
//!   trusted). Each gateway is wrapped in `Clocked`, a thin
//!   `PushTransport` that times every batch from the hand-off (`send`
//!   called) to its outcomes (the future resolved) and the time spent in
//!   the send future's own polls.
//! * N devices (100k; `--quick` 20k) registered through
//!   `Engine::register_device`, half `IOS` (64 hex digits), half `ANDROID`
//!   (152 characters), on channel `news`; then K (default 3) `PUSH`
//!   publishes to `news`, one after the other, each timed from the publish
//!   call until `Engine::message_status` (polled every 5 ms) shows
//!   `pushQueued == N`, `pushPending == 0`, and checked: `pushSent == N`,
//!   every outcome `Sent`, each mock accepted exactly its N/2, each
//!   gateway made exactly N/2 requests, the gateways' connections opened
//!   equal to the mocks' connections accepted, their tokens signed or
//!   fetched equal to the tokens the mocks saw. A wrong result aborts the
//!   run.
//!
//! Reported per run: each gateway's notifications/s (its N/2 over the time
//! from its first `send` to its last outcome), this process's CPU per
//! notification over the run (the mocks' apart), the p50/p99 of the batch
//! latency per notification (each notification counted with the
//! hand-off-to-outcome time of the batch it was in), connections and
//! tokens. The median run (by wall time) is the summary. The last line:
//!
//! ```text
//! push_gw apns_per_s=A fcm_per_s=B cpu_us_per_notification=C connections=D tokens=E
//! ```
//!
//! (`connections`: opened by both gateways, token endpoint included, over
//! all runs; `tokens`: APNs provider tokens signed plus FCM access tokens
//! fetched, over all runs.)

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, ChildStdin, ChildStdout, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use herald::{
    Clock, DeliveryOptions, Engine, Notification, Outcome, PublishOptions, PublishStatus,
    PushBroadcast, PushFuture, PushTransport, SystemClock,
};
use herald_apns::{ApnsConfig, ApnsGateway};
use herald_fcm::{FcmConfig, FcmGateway, ServiceAccount};
use herald_http2::PoolOptions;
use herald_redb::RedbStore;
use herald_testkit::mock_apns::{MockApns, MockApnsOptions, TestApnsKey};
use herald_testkit::mock_fcm::{MockFcm, MockFcmOptions, TEST_PRIVATE_KEY_PEM};
use serde_json::{Value, json};

use crate::durable::{loadavg, process_cpu, quantile};
use crate::{DEFAULT_SEED, SplitMix64};

/// The engine's and the mocks' tokio worker threads, each process.
const WORKERS: usize = 2;
const CHANNEL: &str = "news";
const TOPIC: &str = "com.example.herald.bench";
/// Tasks registering the devices.
const REGISTER_TASKS: usize = 64;

/// What `push-bench --gateways` was asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// Registered devices, half IOS, half ANDROID.
    pub devices: usize,
    /// Publishes to all of them, one after the other.
    pub runs: usize,
    /// Each gateway's `PoolOptions::max_connections` (`None`: the default).
    pub connections: Option<usize>,
    /// The data directory (a fresh one if it exists).
    pub dir: PathBuf,
    /// Keep the data directory afterwards.
    pub keep: bool,
    /// Whether `--quick` was given (printed only).
    pub quick: bool,
}

impl Options {
    /// The default device count: 100k, `--quick` 20k.
    pub fn default_devices(quick: bool) -> usize {
        if quick { 20_000 } else { 100_000 }
    }
}

/// The data directory to remove when the run is aborted.
static CLEANUP: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Prints a wrong result and exits non-zero (the child sees its stdin
/// close and stops).
fn fail(part: &str, msg: &str) -> ! {
    eprintln!("!! {part}: WRONG RESULT: {msg}");
    if let Some(dir) = CLEANUP.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(1);
}

// ---------------------------------------------------------------------------
// The child: the mocks.

/// `push-bench --serve-mocks`: the mocks of `--gateways`, in this process
/// (see the [module docs](self)).
pub fn serve_mocks() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serve-mocks: no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let key = TestApnsKey::generate();
    let started = rt.block_on(async {
        let apns = MockApns::start(MockApnsOptions {
            record: false,
            ..MockApnsOptions::new(&key, TOPIC, clock.clone())
        })
        .await?;
        let fcm = MockFcm::start(MockFcmOptions {
            keep_accepted: false,
            ..MockFcmOptions::new(clock)
        })
        .await?;
        Ok::<_, std::io::Error>((apns, fcm))
    });
    let (apns, fcm) = match started {
        Ok(m) => m,
        Err(e) => {
            eprintln!("serve-mocks: cannot start the mocks: {e}");
            return ExitCode::FAILURE;
        }
    };
    let info = [
        ("apns_url", apns.url()),
        ("apns_ca", apns.ca_pem().to_owned()),
        ("apns_key", key.private_pem.clone()),
        ("apns_key_id", key.key_id.clone()),
        ("apns_team_id", key.team_id.clone()),
        ("fcm_url", fcm.url()),
        ("fcm_ca", fcm.ca_pem().to_owned()),
        (
            "fcm_service_account",
            fcm.service_account_json(TEST_PRIVATE_KEY_PEM),
        ),
    ];
    let mut out = std::io::stdout().lock();
    for (name, value) in info {
        let _ = writeln!(out, "{name} {}", Value::String(value));
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "counters" {
            let counters = json!({
                "apns_connections": apns.connections(),
                "apns_streams": apns.streams(),
                "apns_provider_tokens": apns.provider_tokens(),
                "apns_accepted": apns.accepted_count(),
                "apns_refused": apns.refusals().values().sum::<u64>(),
                "fcm_connections": fcm.connections(),
                "fcm_streams": fcm.streams(),
                "fcm_tokens_issued": fcm.tokens_issued(),
                "fcm_token_requests": fcm.token_requests(),
                "fcm_send_requests": fcm.send_requests(),
                "fcm_accepted": fcm.accepted_count() as u64,
                "cpu_us": process_cpu().as_micros() as u64,
            });
            let _ = writeln!(out, "counters {counters}");
            let _ = out.flush();
        }
    }
    rt.block_on(async {
        apns.stop().await;
        fcm.stop().await;
    });
    ExitCode::SUCCESS
}

/// What the child printed: where the mocks are and the credentials they
/// accept. Test keys generated for this run; never printed here.
struct MockInfo {
    apns_url: String,
    apns_ca: String,
    apns_key: String,
    apns_key_id: String,
    apns_team_id: String,
    fcm_url: String,
    fcm_ca: String,
    fcm_service_account: String,
}

/// The mocks' counts (and the child's CPU time) at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct MockCounters {
    apns_connections: u64,
    apns_streams: u64,
    apns_provider_tokens: u64,
    apns_accepted: u64,
    apns_refused: u64,
    fcm_connections: u64,
    fcm_streams: u64,
    fcm_tokens_issued: u64,
    fcm_token_requests: u64,
    fcm_send_requests: u64,
    fcm_accepted: u64,
    cpu: Duration,
}

impl MockCounters {
    fn parse(v: &Value) -> Option<Self> {
        let n = |k: &str| v.get(k).and_then(Value::as_u64);
        Some(Self {
            apns_connections: n("apns_connections")?,
            apns_streams: n("apns_streams")?,
            apns_provider_tokens: n("apns_provider_tokens")?,
            apns_accepted: n("apns_accepted")?,
            apns_refused: n("apns_refused")?,
            fcm_connections: n("fcm_connections")?,
            fcm_streams: n("fcm_streams")?,
            fcm_tokens_issued: n("fcm_tokens_issued")?,
            fcm_token_requests: n("fcm_token_requests")?,
            fcm_send_requests: n("fcm_send_requests")?,
            fcm_accepted: n("fcm_accepted")?,
            cpu: Duration::from_micros(n("cpu_us")?),
        })
    }
}

/// The child process serving the mocks.
struct Mocks {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Mocks {
    /// Starts `push-bench --serve-mocks` and reads what it printed.
    fn spawn() -> Result<(Self, MockInfo), String> {
        let exe = std::env::current_exe().map_err(|e| format!("this executable: {e}"))?;
        let mut child = std::process::Command::new(exe)
            .arg("--serve-mocks")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the mocks' process: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the mocks' process has no pipes".to_owned());
        };
        let mut mocks = Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        };
        let mut fields = std::collections::HashMap::new();
        loop {
            let line = mocks.line()?;
            if line == "ready" {
                break;
            }
            let (name, value) = line
                .split_once(' ')
                .ok_or_else(|| format!("the mocks printed {line:?}"))?;
            let value: String = serde_json::from_str(value)
                .map_err(|e| format!("the mocks' {name} is not a JSON string: {e}"))?;
            fields.insert(name.to_owned(), value);
        }
        let mut take = |name: &str| {
            fields
                .remove(name)
                .ok_or_else(|| format!("the mocks did not print {name}"))
        };
        let info = MockInfo {
            apns_url: take("apns_url")?,
            apns_ca: take("apns_ca")?,
            apns_key: take("apns_key")?,
            apns_key_id: take("apns_key_id")?,
            apns_team_id: take("apns_team_id")?,
            fcm_url: take("fcm_url")?,
            fcm_ca: take("fcm_ca")?,
            fcm_service_account: take("fcm_service_account")?,
        };
        Ok((mocks, info))
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err("the mocks' process ended".to_owned()),
            Ok(_) => Ok(line.trim_end().to_owned()),
            Err(e) => Err(format!("reading the mocks' output: {e}")),
        }
    }

    /// The mocks' counts now (blocking I/O on a pipe: off the runtime's
    /// scheduling, through `block_in_place`).
    fn counters(&mut self) -> MockCounters {
        let asked = tokio::task::block_in_place(|| {
            let stdin = self.stdin.as_mut().ok_or("the mocks' stdin is closed")?;
            writeln!(stdin, "counters")
                .and_then(|()| stdin.flush())
                .map_err(|e| format!("asking the mocks: {e}"))?;
            let line = self.line()?;
            let json = line
                .strip_prefix("counters ")
                .ok_or_else(|| format!("the mocks answered {line:?}"))?;
            let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
            MockCounters::parse(&v).ok_or_else(|| format!("the mocks' counters lack a field: {v}"))
        });
        asked.unwrap_or_else(|e| fail("mocks", &e))
    }

    /// Closes its stdin and waits for it to stop.
    fn stop(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The timing wrapper.

/// A gateway timed from outside: every batch from the hand-off to its
/// outcomes, the time inside its send future's polls, the outcomes that
/// were not `Sent`. Passes everything through unchanged.
#[derive(Debug)]
struct Clocked<G> {
    gateway: G,
    /// What the times below count from (reset before each run).
    base: Mutex<Instant>,
    notifications: AtomicU64,
    not_sent: AtomicU64,
    /// The first hand-off and the last outcome, ns after `base` (first:
    /// `u64::MAX` when none).
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    /// Time inside the send futures' `poll`.
    poll_ns: AtomicU64,
    /// Each batch: (hand-off to outcomes, notifications).
    batches: Mutex<Vec<(Duration, usize)>>,
}

impl<G> Clocked<G> {
    fn new(gateway: G) -> Self {
        Self {
            gateway,
            base: Mutex::new(Instant::now()),
            notifications: AtomicU64::new(0),
            not_sent: AtomicU64::new(0),
            first_ns: AtomicU64::new(u64::MAX),
            last_ns: AtomicU64::new(0),
            poll_ns: AtomicU64::new(0),
            batches: Mutex::new(Vec::new()),
        }
    }

    fn reset(&self, base: Instant) {
        *lock(&self.base) = base;
        lock(&self.batches).clear();
        self.first_ns.store(u64::MAX, Relaxed);
        for c in [
            &self.notifications,
            &self.not_sent,
            &self.last_ns,
            &self.poll_ns,
        ] {
            c.store(0, Relaxed);
        }
    }

    fn since_base(&self, t: Instant) -> u64 {
        t.saturating_duration_since(*lock(&self.base)).as_nanos() as u64
    }

    /// What was measured since the last [`reset`](Self::reset).
    fn report(&self) -> GatewayRun {
        let mut batches = lock(&self.batches).clone();
        batches.sort();
        // One entry per notification would be N/2 entries: weigh instead.
        let total: usize = batches.iter().map(|b| b.1).sum();
        let at = |q: f64| {
            let want = ((total as f64 * q).ceil() as usize).max(1);
            let mut seen = 0;
            for &(d, k) in &batches {
                seen += k;
                if seen >= want {
                    return d;
                }
            }
            Duration::ZERO
        };
        let first = self.first_ns.load(Relaxed);
        let last = self.last_ns.load(Relaxed);
        let lat: Vec<Duration> = batches.iter().map(|b| b.0).collect();
        GatewayRun {
            notifications: self.notifications.load(Relaxed),
            not_sent: self.not_sent.load(Relaxed),
            batches: batches.len(),
            first: Duration::from_nanos(if first == u64::MAX { 0 } else { first }),
            active: Duration::from_nanos(last.saturating_sub(first.min(last))),
            polls: Duration::from_nanos(self.poll_ns.load(Relaxed)),
            p50: at(0.50),
            p99: at(0.99),
            batch_max: lat.last().copied().unwrap_or_default(),
            batch_median: if lat.is_empty() {
                Duration::ZERO
            } else {
                quantile(&lat, 0.5)
            },
        }
    }
}

impl<G: PushTransport> PushTransport for Clocked<G> {
    fn name(&self) -> &str {
        self.gateway.name()
    }

    fn send<'a>(&'a self, batch: &'a [Notification]) -> PushFuture<'a> {
        let start = Instant::now();
        let _ = self.first_ns.fetch_min(self.since_base(start), Relaxed);
        let fut = PollTimed {
            fut: self.gateway.send(batch),
            ns: &self.poll_ns,
        };
        Box::pin(async move {
            let delivery = fut.await;
            let end = Instant::now();
            self.last_ns.fetch_max(self.since_base(end), Relaxed);
            self.notifications.fetch_add(batch.len() as u64, Relaxed);
            let not_sent = delivery
                .outcomes
                .iter()
                .filter(|o| **o != Outcome::Sent)
                .count();
            self.not_sent.fetch_add(not_sent as u64, Relaxed);
            lock(&self.batches).push((end - start, batch.len()));
            delivery
        })
    }
}

/// A future whose polls are timed into `ns`.
struct PollTimed<'a> {
    fut: PushFuture<'a>,
    ns: &'a AtomicU64,
}

impl Future for PollTimed<'_> {
    type Output = herald::Delivery;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let t = Instant::now();
        let r = self.fut.as_mut().poll(cx);
        self.ns.fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
        r
    }
}

/// One gateway's numbers for one run.
#[derive(Clone, Copy, Debug, Default)]
struct GatewayRun {
    notifications: u64,
    not_sent: u64,
    batches: usize,
    /// The publish call until its first hand-off.
    first: Duration,
    /// Its first hand-off until its last outcome.
    active: Duration,
    polls: Duration,
    /// Batch latency per notification.
    p50: Duration,
    p99: Duration,
    batch_median: Duration,
    batch_max: Duration,
}

impl GatewayRun {
    fn rate(&self) -> f64 {
        self.notifications as f64 / self.active.as_secs_f64().max(1e-9)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// The parent: the engine and the gateways.

/// `push-bench --gateways` (see the [module docs](self)).
pub fn main(options: &Options) -> ExitCode {
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    let _ = std::fs::remove_dir_all(&options.dir);
    if !options.keep {
        let _ = CLEANUP.set(options.dir.clone());
    }
    let (mut mocks, info) = Mocks::spawn().unwrap_or_else(|e| fail("mocks", &e));
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    println!(
        "push-bench --gateways{}: {cores} cores; this process: herald Engine on RedbStore (store \
         and registry) in {}, tokio multi-thread runtime with {WORKERS} workers, the real \
         ApnsGateway and FcmGateway; mock APNs and mock FCM in a child process (pid {}, its own \
         {WORKERS}-worker runtime) on the same machine, over loopback TLS",
        if options.quick { " --quick" } else { "" },
        options.dir.display(),
        mocks.child.id(),
    );
    println!(
        "{} devices on channel {CHANNEL:?} (half IOS, half ANDROID), {} runs, gateway pool \
         max_connections {}; load average at start: {}",
        options.devices,
        options.runs,
        options.connections.map_or_else(
            || format!("{} (default)", PoolOptions::default().max_connections),
            |c| c.to_string()
        ),
        loadavg()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail("runtime", &e.to_string()));
    let summary = rt.block_on(run(options, &info, &mut mocks));
    drop(rt);
    mocks.stop();
    if !options.keep {
        let _ = std::fs::remove_dir_all(&options.dir);
    }
    println!("load average at the end: {}", loadavg());
    println!();
    println!(
        "push_gw apns_per_s={:.0} fcm_per_s={:.0} cpu_us_per_notification={:.1} connections={} \
         tokens={}",
        summary.apns_rate, summary.fcm_rate, summary.cpu_us, summary.connections, summary.tokens
    );
    ExitCode::SUCCESS
}

struct Summary {
    apns_rate: f64,
    fcm_rate: f64,
    cpu_us: f64,
    connections: u64,
    tokens: u64,
}

/// The gateways' stats that matter here, at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct GatewayStats {
    apns_connections: u64,
    apns_requests: u64,
    apns_resent: u64,
    apns_tokens: u64,
    fcm_connections: u64,
    fcm_token_connections: u64,
    fcm_requests: u64,
    fcm_resent: u64,
    fcm_tokens: u64,
}

impl GatewayStats {
    fn of(apns: &ApnsGateway, fcm: &FcmGateway) -> Self {
        let a = apns.stats();
        let f = fcm.stats();
        Self {
            apns_connections: a.pool.connections_opened,
            apns_requests: a.requests,
            apns_resent: a.pool.requests_resent,
            apns_tokens: a.provider_tokens_signed,
            fcm_connections: f.fcm_pool.connections_opened,
            fcm_token_connections: f.token_pool.connections_opened,
            fcm_requests: f.requests,
            fcm_resent: f.fcm_pool.requests_resent,
            fcm_tokens: f.access_tokens_fetched,
        }
    }

    fn connections(&self) -> u64 {
        self.apns_connections + self.fcm_connections + self.fcm_token_connections
    }

    fn tokens(&self) -> u64 {
        self.apns_tokens + self.fcm_tokens
    }
}

async fn run(options: &Options, info: &MockInfo, mocks: &mut Mocks) -> Summary {
    let n = options.devices;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut pool = PoolOptions::default();
    if let Some(c) = options.connections {
        pool.max_connections = c;
    }
    let apns_tls = herald_http2::client_tls_only(info.apns_ca.as_bytes())
        .unwrap_or_else(|e| fail("apns", &e.to_string()));
    let apns = ApnsGateway::new(
        ApnsConfig {
            pool: pool.clone(),
            ..ApnsConfig::new(
                info.apns_key.clone(),
                info.apns_key_id.clone(),
                info.apns_team_id.clone(),
                TOPIC,
                info.apns_url.clone(),
                apns_tls,
            )
        },
        clock.clone(),
    )
    .unwrap_or_else(|e| fail("apns", &e.to_string()));
    let fcm = FcmGateway::new(
        FcmConfig {
            service_account: ServiceAccount::from_json(&info.fcm_service_account, None)
                .unwrap_or_else(|e| fail("fcm", &e.to_string())),
            base_url: info.fcm_url.clone(),
            tls: herald_http2::client_tls_only(info.fcm_ca.as_bytes())
                .unwrap_or_else(|e| fail("fcm", &e.to_string())),
            pool,
        },
        clock,
    )
    .unwrap_or_else(|e| fail("fcm", &e.to_string()));
    let apns = Arc::new(Clocked::new(apns));
    let fcm = Arc::new(Clocked::new(fcm));
    let store = RedbStore::open(&options.dir).unwrap_or_else(|e| fail("open", &e.to_string()));
    let engine = Engine::builder()
        .store(store.clone())
        .registry(store)
        .push_gateway(PushBroadcast::IOS | PushBroadcast::OSX, apns.clone())
        .push_gateway(PushBroadcast::ANDROID, fcm.clone())
        .build();
    engine.settle().await;

    println!();
    let took = register(&engine, n).await;
    println!(
        "## registered {n} devices through Engine::register_device ({REGISTER_TASKS} tasks) in \
         {took:.2?} ({:.0}/s)",
        n as f64 / took.as_secs_f64()
    );
    println!();
    println!(
        "## {} runs: one PUSH publish to {n} devices each",
        options.runs
    );
    let mut runs = Vec::with_capacity(options.runs);
    for i in 0..options.runs {
        let mut r = publish_once(&engine, n, &apns, &fcm, mocks).await;
        r.index = i + 1;
        r.print();
        runs.push(r);
    }
    engine.shutdown().await;
    drop(engine);

    let end = GatewayStats::of(&apns.gateway, &fcm.gateway);
    let m = mocks.counters();
    check_agreement(&end, &m);
    println!();
    println!(
        "connections opened over all runs: APNs {} (mock APNs accepted {}), FCM {} + token \
         endpoint {} (mock FCM accepted {}); tokens: APNs provider tokens signed {} (distinct at \
         the mock {}), FCM access tokens fetched {} (issued by the mock {}, token requests {}); \
         requests resent by the pools (GOAWAY, refused streams): APNs {}, FCM {}",
        end.apns_connections,
        m.apns_connections,
        end.fcm_connections,
        end.fcm_token_connections,
        m.fcm_connections,
        end.apns_tokens,
        m.apns_provider_tokens,
        end.fcm_tokens,
        m.fcm_tokens_issued,
        m.fcm_token_requests,
        end.apns_resent,
        end.fcm_resent,
    );
    runs.sort_by_key(|r| r.elapsed);
    let median = &runs[runs.len() / 2];
    println!("median run (by wall time): run {}", median.index);
    Summary {
        apns_rate: median.apns.rate(),
        fcm_rate: median.fcm.rate(),
        cpu_us: median.cpu_us(),
        connections: end.connections(),
        tokens: end.tokens(),
    }
}

/// The gateways' counts must be the mocks': connections opened and
/// accepted, tokens signed/fetched and seen/issued.
fn check_agreement(g: &GatewayStats, m: &MockCounters) {
    let pairs = [
        ("APNs connections", g.apns_connections, m.apns_connections),
        (
            "FCM connections (send + token endpoint)",
            g.fcm_connections + g.fcm_token_connections,
            m.fcm_connections,
        ),
        (
            "APNs provider tokens",
            g.apns_tokens,
            m.apns_provider_tokens,
        ),
        ("FCM access tokens", g.fcm_tokens, m.fcm_tokens_issued),
    ];
    for (what, gateway, mock) in pairs {
        if gateway != mock {
            fail(
                "agreement",
                &format!("{what}: the gateway says {gateway}, the mock {mock}"),
            );
        }
    }
}

/// Device `i`'s registration body: `gw-0000000`..., even `i` IOS (64 hex
/// digits), odd ANDROID (152 characters).
fn body(i: usize) -> Value {
    let mut r = SplitMix64::new(DEFAULT_SEED ^ !(i as u64));
    let ios = i.is_multiple_of(2);
    let mut token = String::with_capacity(160);
    for _ in 0..if ios { 4 } else { 10 } {
        token.push_str(&format!("{:016x}", r.next_u64()));
    }
    token.truncate(if ios { 64 } else { 152 });
    json!({
        "deviceId": format!("gw-{i:07}"),
        "deviceToken": token,
        "os": if ios { "IOS" } else { "ANDROID" },
        "channels": [CHANNEL],
    })
}

async fn register(engine: &Engine, n: usize) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..REGISTER_TASKS)
        .map(|t| {
            let engine = engine.clone();
            tokio::spawn(async move {
                for i in (t..n).step_by(REGISTER_TASKS) {
                    engine
                        .register_device(&body(i))
                        .await
                        .map_err(|e| format!("device {i}: {e}"))?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for h in handles {
        h.await
            .unwrap_or_else(|e| fail("register", &e.to_string()))
            .unwrap_or_else(|e| fail("register", &e));
    }
    start.elapsed()
}

/// One run's numbers.
struct Run {
    index: usize,
    n: usize,
    /// The publish call until the status showed all sent.
    elapsed: Duration,
    apns: GatewayRun,
    fcm: GatewayRun,
    /// This process's CPU time over the run.
    cpu: Duration,
    /// The mocks' process's.
    mock_cpu: Duration,
    /// Connections opened and tokens made during the run.
    connections: u64,
    tokens: u64,
    mock_streams: u64,
}

impl Run {
    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.n as f64
    }

    fn print(&self) {
        let i = self.index;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let wall = self.elapsed.as_secs_f64();
        println!(
            "run {i}: {} notifications in {:.2?} = {:.0}/s (publish until the status showed all \
             sent); this process's CPU {:.2?} ({:.2} cores, {:.1} µs per notification); the mocks' \
             process {:.2?} ({:.2} cores, {:.1} µs per notification); {} connections opened and {} \
             tokens made during the run; {} streams at the mocks",
            self.n,
            self.elapsed,
            self.n as f64 / wall,
            self.cpu,
            self.cpu.as_secs_f64() / wall,
            self.cpu_us(),
            self.mock_cpu,
            self.mock_cpu.as_secs_f64() / wall,
            self.mock_cpu.as_secs_f64() * 1e6 / self.n as f64,
            self.connections,
            self.tokens,
            self.mock_streams,
        );
        for (name, g) in [("apns", &self.apns), ("fcm ", &self.fcm)] {
            println!(
                "    {name}: {} notifications in {} batches, first hand-off {:.1} ms after the \
                 publish, then {:.1} ms to its last outcome = {:.0}/s; batch latency per \
                 notification p50 {:.1} ms, p99 {:.1} ms (batches: median {:.1} ms, max {:.1} \
                 ms); inside the send future's polls {:.1} ms ({:.2} µs per notification)",
                g.notifications,
                g.batches,
                ms(g.first),
                ms(g.active),
                g.rate(),
                ms(g.p50),
                ms(g.p99),
                ms(g.batch_median),
                ms(g.batch_max),
                ms(g.polls),
                g.polls.as_secs_f64() * 1e6 / g.notifications.max(1) as f64,
            );
        }
    }
}

/// One `PUSH` publish to every device; waits until the status shows all
/// `n` sent; checks everything that can be checked.
async fn publish_once(
    engine: &Engine,
    n: usize,
    apns: &Clocked<ApnsGateway>,
    fcm: &Clocked<FcmGateway>,
    mocks: &mut Mocks,
) -> Run {
    let part = "publish";
    let m0 = mocks.counters();
    let g0 = GatewayStats::of(&apns.gateway, &fcm.gateway);
    let cpu0 = process_cpu();
    let start = Instant::now();
    apns.reset(start);
    fcm.reset(start);
    let delivery = DeliveryOptions::from_json(&json!({"publishPolicy": "PUSH"}))
        .unwrap_or_else(|e| fail(part, &e.to_string()));
    let status = engine
        .publish(
            CHANNEL,
            "Gates open at 9".into(),
            PublishOptions::default(),
            delivery,
        )
        .await
        .unwrap_or_else(|e| fail(part, &e.to_string()));
    if status.status != PublishStatus::Published {
        fail(part, &format!("publish answered {status:?}"));
    }
    let id = status.message_id;
    // 5k notifications/s at the very least.
    let deadline = start + Duration::from_secs(30 + n as u64 / 5_000);
    let last = loop {
        let s = engine
            .message_status(&id)
            .await
            .unwrap_or_else(|e| fail(part, &e.to_string()));
        let d = s.deliveries;
        if d.push_queued == n as u64 && d.push_pending() == 0 {
            break d;
        }
        if Instant::now() > deadline {
            fail(part, &format!("not done in time: {s:?}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let elapsed = start.elapsed();
    let cpu = process_cpu().saturating_sub(cpu0);
    let m1 = mocks.counters();
    let g1 = GatewayStats::of(&apns.gateway, &fcm.gateway);
    if last.push_sent != n as u64 {
        fail(part, &format!("counters {last:?}"));
    }
    let (a, f) = (apns.report(), fcm.report());
    let ios = n.div_ceil(2) as u64;
    let android = n as u64 - ios;
    let checks = [
        ("notifications handed to APNs", a.notifications, ios),
        ("notifications handed to FCM", f.notifications, android),
        ("APNs outcomes not Sent", a.not_sent, 0),
        ("FCM outcomes not Sent", f.not_sent, 0),
        ("APNs requests", g1.apns_requests - g0.apns_requests, ios),
        (
            "FCM send requests",
            g1.fcm_requests - g0.fcm_requests,
            android,
        ),
        (
            "accepted by the mock APNs",
            m1.apns_accepted - m0.apns_accepted,
            ios,
        ),
        (
            "refused by the mock APNs",
            m1.apns_refused - m0.apns_refused,
            0,
        ),
        (
            "accepted by the mock FCM",
            m1.fcm_accepted - m0.fcm_accepted,
            android,
        ),
        (
            "send requests at the mock FCM",
            m1.fcm_send_requests - m0.fcm_send_requests,
            android,
        ),
    ];
    for (what, got, expected) in checks {
        if got != expected {
            fail(part, &format!("{what}: {got}, expected {expected}"));
        }
    }
    check_agreement(&g1, &m1);
    Run {
        index: 0,
        n,
        elapsed,
        apns: a,
        fcm: f,
        cpu,
        mock_cpu: m1.cpu.saturating_sub(m0.cpu),
        connections: g1.connections() - g0.connections(),
        tokens: g1.tokens() - g0.tokens(),
        mock_streams: (m1.apns_streams + m1.fcm_streams) - (m0.apns_streams + m0.fcm_streams),
    }
}

/// Where a bench's data goes when no `--dir` is given.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("herald-push-gw-bench-{}", std::process::id()))
}
