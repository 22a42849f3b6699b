//! `server-bench`: `herald-server` on its durable store (`RedbStore`).
//!
//! ```text
//! cargo run --release -p herald-benches --bin server-bench -- [--quick] [--n N]
//!     [--publishers P] [--spread-s S] [--http-n H] [--connections C]
//!     [--client-threads T] [--dir DIR] [--keep]
//! ```
//!
//! Four measurements, each checked (a wrong or missing answer aborts the
//! run with exit code 1):
//!
//! a. **durable publish** (shared with `store-bench`,
//!    [`herald_benches::durable`]): P (64) publisher tasks publish N (1M;
//!    `--quick` 100k) scheduled messages through `Engine::publish` into a
//!    fresh `RedbStore` in `DIR/apps/BENCH` (the server's layout), each
//!    acknowledged after its durable commit.
//! b. **HTTP publish**: an in-process server (`Server::start` on
//!    127.0.0.1:0, a 2-worker runtime, like the binary on this machine) on
//!    a fresh data directory, and a load generator on its own runtime (T
//!    worker threads, default 1) in another thread: C (64) keep-alive
//!    connections, each sending its share of H requests (200k; `--quick`
//!    30k) one after the other (`POST /BENCH/KEY/messaging/bench`, a small
//!    hand-written HTTP/1.1 client). Once with immediate publishes (no
//!    subscriber: one durable insert and one durable completion each), once
//!    with scheduled ones (`publishAt` an hour ahead: one durable insert).
//!    Checked: every answer is `200` with a distinct `messageId` and the
//!    right `status`, and the count is H. Rate = H / (first request to
//!    last answer); client-side latency quantiles too.
//! c. **restart**: `Server::start` on `DIR` (N pending from a), timed until
//!    the first request that needs the reload done is answered: a
//!    scheduled publish (publishes wait until the engine has reloaded the
//!    store). Checked: `/metrics` then shows N + 1 pending; the probe is
//!    cancelled (`DELETE`, `200 cancelled`) and the server shut down.
//! d. **lateness** (shared with `store-bench`): reopen `DIR/apps/BENCH` on a
//!    clock shifted so the first `publishAt` is 2 s away; all N fire on the
//!    real clock, each claimed and completed in the store; receive and
//!    firing lateness. Checked: each received exactly once, none early,
//!    nothing pending afterwards, N + 1 intact records (the probe).
//!
//! The last line is machine-readable (B: scheduled publishes over HTTP;
//! C: restart with N pending, whatever N was; D: receive-side p99):
//!
//! ```text
//! server durable_publish_per_s=A http_publish_per_s=B restart_1m_s=C lateness_p99_ms=D
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use herald_benches::DEFAULT_SEED;
use herald_benches::durable::{self, Plan, loadavg, quantile, wall_us};
use herald_benches::http1::Conn;
use herald_server::{AppConfig, Config, Server};
use serde_json::Value;

const APP: &str = "BENCH";
const KEY: &str = "bench-key";
const WORKERS: usize = 2;

struct Args {
    quick: bool,
    n: usize,
    publishers: usize,
    spread_ms: u64,
    http_n: usize,
    connections: usize,
    client_threads: usize,
    dir: Option<PathBuf>,
    keep: bool,
}

/// herald-server on its durable store: durable publish rate, HTTP publish
/// rate and latency against an in-process server, restart time with
/// everything pending, and delivery lateness, each checked.
#[derive(Parser)]
#[command(name = "server-bench")]
struct Flags {
    /// Smaller runs: 100k pending messages over 10 s, 30k HTTP publishes
    #[arg(long)]
    quick: bool,
    /// Pending scheduled messages [default: 1M, --quick 100k]
    #[arg(long = "n", value_name = "N", value_parser = count)]
    n: Option<usize>,
    /// Publisher tasks for the durable publish
    #[arg(long, value_name = "P", default_value = "64", value_parser = count)]
    publishers: usize,
    /// publishAt is uniform over S seconds [default: 60, --quick 10]
    #[arg(long = "spread-s", value_name = "S", value_parser = count)]
    spread_s: Option<usize>,
    /// HTTP publishes per kind (immediate, scheduled) [default: 200k, --quick 30k]
    #[arg(long, value_name = "H", value_parser = count)]
    http_n: Option<usize>,
    /// Keep-alive connections of the load generator
    #[arg(long, value_name = "C", default_value = "64", value_parser = count)]
    connections: usize,
    /// Worker threads of the load generator's runtime
    #[arg(long, value_name = "T", default_value = "1", value_parser = count)]
    client_threads: usize,
    /// The data directory [default: a fresh one in the temporary directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the data directory afterwards
    #[arg(long)]
    keep: bool,
}

fn parse_args() -> Args {
    let f = Flags::parse();
    Args {
        quick: f.quick,
        n: f.n.unwrap_or(if f.quick { 100_000 } else { 1_000_000 }),
        publishers: f.publishers,
        spread_ms: f
            .spread_s
            .map_or(if f.quick { 10_000 } else { 60_000 }, |s| s as u64 * 1_000),
        http_n: f.http_n.unwrap_or(if f.quick { 30_000 } else { 200_000 }),
        connections: f.connections,
        client_threads: f.client_threads,
        dir: f.dir,
        keep: f.keep,
    }
}

/// A count (`parse_count`: 64, 100k, 1M) of at least 1.
fn count(s: &str) -> Result<usize, String> {
    herald_benches::parse_count(s)
        .filter(|&k| k >= 1)
        .ok_or_else(|| "not a count of at least 1, like 64, 100k or 1M".to_owned())
}

/// The data directory to remove on the way out (unless `--keep`).
static CLEANUP: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn fail(part: &str, msg: &str) -> ! {
    eprintln!("!! {part}: WRONG RESULT: {msg}");
    if let Some(dir) = CLEANUP.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(1);
}

fn config(data_dir: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: data_dir.to_owned(),
        apps: vec![AppConfig::new(APP, KEY)],
        ..Config::default()
    }
}

fn main() -> ExitCode {
    let args = parse_args();
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("herald-server-bench-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    if !args.keep {
        let _ = CLEANUP.set(dir.clone());
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "server-bench{}: {cores} cores; engine and server on a tokio multi-thread runtime with \
         {WORKERS} workers, HTTP load generator on its own with {}; data in {}",
        if args.quick { " --quick" } else { "" },
        args.client_threads,
        dir.display()
    );
    println!(
        "{} pending scheduled messages from {} publisher tasks (publishAt over {} s); {} HTTP \
         publishes per kind over {} connections; load average at start: {}",
        args.n,
        args.publishers,
        args.spread_ms / 1000,
        args.http_n,
        args.connections,
        loadavg()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let app_dir = dir.join("apps").join(APP);
    let plan = Plan::new(args.n, args.publishers, args.spread_ms, DEFAULT_SEED);

    // a. durable publish
    let published = rt
        .block_on(durable::durable_publish(&app_dir, &plan))
        .unwrap_or_else(|e| fail("durable publish", &e));

    // b. HTTP publish
    let mut http = Vec::new();
    for kind in [Kind::Immediate, Kind::Scheduled] {
        let data = dir.join(format!("http-{}", kind.name()));
        let r = http_publish(&rt, &args, &data, kind).unwrap_or_else(|e| fail("http", &e));
        let _ = std::fs::remove_dir_all(&data);
        http.push(r);
    }

    // c. restart
    let restart = rt
        .block_on(server_restart(&dir, plan.n))
        .unwrap_or_else(|e| fail("restart", &e));

    // d. lateness
    let late = rt
        .block_on(async {
            let restarted = durable::restart(&app_dir, &plan).await?;
            // The restart's probe: one cancelled record besides the plan's.
            durable::lateness(restarted, &plan, 1).await
        })
        .unwrap_or_else(|e| fail("lateness", &e));
    drop(rt);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("load average at the end: {}", loadavg());
    println!();
    println!(
        "http immediate_publish_per_s={:.0} scheduled_publish_per_s={:.0}",
        http[0].rate, http[1].rate
    );
    println!(
        "server durable_publish_per_s={:.0} http_publish_per_s={:.0} restart_1m_s={:.3} \
         lateness_p99_ms={:.3}",
        published.rate,
        http[1].rate,
        restart.as_secs_f64(),
        late.receive_ms(0.99)
    );
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------
// b. HTTP publish

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Immediate,
    Scheduled,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Immediate => "immediate",
            Self::Scheduled => "scheduled",
        }
    }

    fn status(self) -> &'static str {
        match self {
            Self::Immediate => "published",
            Self::Scheduled => "scheduled",
        }
    }
}

struct HttpReport {
    rate: f64,
}

fn post(addr: SocketAddr, body: &str) -> Vec<u8> {
    format!(
        "POST /{APP}/{KEY}/messaging/bench HTTP/1.1\r\nHost: {addr}\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What one connection got: message ids and per-request latency (µs).
type ConnResult = Result<(Vec<String>, Vec<u32>), String>;

/// Publishes requests `c, c + C, c + 2C, ...` of `0..total` on one
/// connection, after `start` opens.
async fn load(
    addr: SocketAddr,
    c: usize,
    connections: usize,
    total: usize,
    kind: Kind,
    publish_at: Arc<Vec<u64>>,
    start: Arc<tokio::sync::Barrier>,
) -> ConnResult {
    let mut conn = Conn::open(addr).await?;
    // Warm the connection up (not counted).
    let (status, _) = conn
        .call(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    if status != 200 {
        return Err(format!("GET /health: {status}"));
    }
    start.wait().await;
    let mut ids = Vec::with_capacity(total / connections + 1);
    let mut micros = Vec::with_capacity(total / connections + 1);
    let mut i = c;
    while i < total {
        let body = match kind {
            Kind::Immediate => format!("{{\"message\":{{\"i\":{i}}}}}"),
            Kind::Scheduled => {
                format!(
                    "{{\"message\":{{\"i\":{i}}},\"publishAt\":{}}}",
                    publish_at[i]
                )
            }
        };
        let request = post(addr, &body);
        let sent = Instant::now();
        let (status, answer) = conn.call(&request).await?;
        micros.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        let v: Value = serde_json::from_slice(&answer)
            .map_err(|e| format!("request {i}: answer not JSON ({e}): {answer:?}"))?;
        if status != 200 || v["status"] != kind.status() {
            return Err(format!("request {i}: {status} {v}"));
        }
        let id = v["messageId"]
            .as_str()
            .ok_or_else(|| format!("request {i}: no messageId: {v}"))?;
        ids.push(id.to_owned());
        i += connections;
    }
    Ok((ids, micros))
}

/// Runs `kind` publishes against a fresh in-process server on `data`.
fn http_publish(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    data: &Path,
    kind: Kind,
) -> Result<HttpReport, String> {
    let _ = std::fs::remove_dir_all(data);
    let server = rt
        .block_on(Server::start(config(data)))
        .map_err(|e| format!("start: {e:#}"))?;
    let addr = server.local_addr();
    let (total, connections) = (args.http_n, args.connections.max(1));
    // Scheduled: an hour ahead, spread over 10 minutes.
    let base = (wall_us() / 1_000) as u64 + 3_600_000;
    let mut rng = herald_benches::SplitMix64::new(DEFAULT_SEED ^ 0x4854_5450);
    let publish_at: Arc<Vec<u64>> =
        Arc::new((0..total).map(|_| base + rng.below(600_000)).collect());
    let client_threads = args.client_threads;
    let client = std::thread::Builder::new()
        .name("load-generator".into())
        .spawn(move || {
            let crt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(client_threads)
                .thread_name("load-gen")
                .enable_all()
                .build()
                .expect("client runtime");
            crt.block_on(async move {
                let start = Arc::new(tokio::sync::Barrier::new(connections + 1));
                let tasks: Vec<_> = (0..connections)
                    .map(|c| {
                        tokio::spawn(load(
                            addr,
                            c,
                            connections,
                            total,
                            kind,
                            publish_at.clone(),
                            start.clone(),
                        ))
                    })
                    .collect();
                start.wait().await;
                let began = Instant::now();
                let mut results = Vec::with_capacity(connections);
                for t in tasks {
                    results.push(t.await.map_err(|e| e.to_string())?);
                }
                let elapsed = began.elapsed();
                Ok::<_, String>((results, elapsed))
            })
        })
        .map_err(|e| e.to_string())?;
    let (results, elapsed) = client
        .join()
        .map_err(|_| "the load generator panicked".to_owned())??;
    rt.block_on(server.shutdown())
        .map_err(|e| format!("shutdown: {e:#}"))?;

    let mut ids = std::collections::HashSet::with_capacity(total);
    let mut micros = Vec::with_capacity(total);
    for r in results {
        let (conn_ids, conn_micros) = r?;
        for id in conn_ids {
            if !ids.insert(id) {
                return Err("a messageId answered twice".into());
            }
        }
        micros.extend(conn_micros);
    }
    if ids.len() != total {
        return Err(format!("{} answers for {total} requests", ids.len()));
    }
    micros.sort_unstable();
    let rate = total as f64 / elapsed.as_secs_f64();
    let ms = |q: f64| f64::from(quantile(&micros, q)) / 1e3;
    println!(
        "## HTTP {} publishes: {total} in {elapsed:.2?} = {rate:.0}/s over {connections} keep-alive \
         connections (checked: all 200 {}, distinct ids); latency ms p50 {:.2} p90 {:.2} p99 {:.2} \
         max {:.2}",
        kind.name(),
        kind.status(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(1.0)
    );
    Ok(HttpReport { rate })
}

// ---------------------------------------------------------------------------
// c. restart

/// A request through a fresh connection: status and JSON body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, Value), String> {
    let mut conn = Conn::open(addr).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, bytes) = conn.call(req.as_bytes()).await?;
    let v = if path == "/metrics" {
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        serde_json::from_slice(&bytes).map_err(|e| format!("{method} {path}: {e}"))?
    };
    Ok((status, v))
}

fn pending_metric(metrics: &Value) -> Option<u64> {
    let sample = format!("herald_scheduled_pending{{app=\"{APP}\"}} ");
    metrics
        .as_str()?
        .lines()
        .find_map(|l| l.strip_prefix(&sample)?.trim().parse().ok())
}

/// Starts a server on `dir` (which holds `n` pending messages) and times
/// it until a scheduled publish is answered; checks, cleans up, stops.
async fn server_restart(dir: &Path, n: usize) -> Result<Duration, String> {
    let started = Instant::now();
    let server = Server::start(config(dir))
        .await
        .map_err(|e| format!("start: {e:#}"))?;
    let addr = server.local_addr();
    let bound = started.elapsed();
    let at = (wall_us() / 1_000) as u64 + 86_400_000;
    let (status, st) = request(
        addr,
        "POST",
        &format!("/{APP}/{KEY}/messaging/bench"),
        &format!("{{\"message\":\"probe\",\"publishAt\":{at}}}"),
    )
    .await?;
    let restart = started.elapsed();
    if status != 200 || st["status"] != "scheduled" {
        return Err(format!("probe publish: {status} {st}"));
    }
    let (_, health) = request(addr, "GET", "/health", "").await?;
    let health_at = started.elapsed();
    if health["status"] != "ok" {
        return Err(format!("health: {health}"));
    }
    let (_, metrics) = request(addr, "GET", "/metrics", "").await?;
    if pending_metric(&metrics) != Some(n as u64 + 1) {
        return Err(format!(
            "{:?} pending after the restart, wanted {}",
            pending_metric(&metrics),
            n + 1
        ));
    }
    let id = st["messageId"].as_str().unwrap_or_default().to_owned();
    let (status, cancelled) =
        request(addr, "DELETE", &format!("/{APP}/{KEY}/messaging/{id}"), "").await?;
    if status != 200 || cancelled["status"] != "cancelled" {
        return Err(format!("probe cancel: {status} {cancelled}"));
    }
    server
        .shutdown()
        .await
        .map_err(|e| format!("shutdown: {e:#}"))?;
    println!(
        "## server restart with {n} pending: first scheduled publish answered {restart:.3?} after \
         Server::start was called (bound {bound:.3?}; /health answered at {health_at:.3?}); \
         checked: /metrics shows {} pending, the probe cancels",
        n + 1
    );
    Ok(restart)
}
