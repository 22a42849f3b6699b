//! `server-bench`: `herald-server` on its durable store (`RedbStore`).
//!
//! ```text
//! cargo build --release -p herald-benches --bin server-bench --bin rt-clients
//! target/release/server-bench [--quick] [--n N]
//!     [--publishers P] [--spread-s S] [--http-n H] [--connections C]
//!     [--client-threads T] [--rt-n R] [--rt-rounds K] [--rt-client-threads T]
//!     [--rt-only] [--rt-socketioxide] [--dir DIR] [--keep]
//! ```
//!
//! Five measurements, each checked (a wrong or missing answer aborts the
//! run with exit code 1); e runs first, while the process's memory is
//! fresh:
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
//! e. **real-time fan-out**: a fresh in-process server, and R (10k)
//!    socket.io subscribers of one channel on loopback WebSockets in a
//!    child process (`rt-clients`, next to this binary: one process
//!    holding both ends of 10k connections would pass the open-files
//!    limit; both raise their soft limit to the hard one). Each subscribes
//!    as the Backendless JS SDK does (`SUB_ON PUB_SUB_MESSAGES`). Memory:
//!    the growth of this process's RSS from before the clients connect
//!    until all have their `SUB_READY`, per connection. Then K (7;
//!    `--quick` 5) rounds of one HTTP publish, each timed from just before
//!    its request is written until the last subscriber has parsed it (both
//!    processes read the wall clock, the one clock they share). Checked
//!    (by `rt-clients`): every connection gets every round exactly once,
//!    in order, and nothing else. The clients open their sessions as
//!    WebSockets, so the server's direct WebSocket path serves them;
//!    `--rt-socketioxide` runs e with `realtime_direct = false`
//!    (socketioxide's path) for a side-by-side figure (run it as its own
//!    process: a second fan-out in the same process would reuse the
//!    memory the first freed).
//!
//! The last line is machine-readable (B: scheduled publishes over HTTP;
//! C: restart with N pending, whatever N was; D: receive-side p99; E:
//! median over the rounds of e, whatever R was; F: bytes per idle
//! real-time connection; G: the 1-minute load average at the end):
//!
//! ```text
//! server durable_publish_per_s=A http_publish_per_s=B restart_1m_s=C lateness_p99_ms=D rt_fanout_10k_ms=E rt_conn_bytes=F load=G
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use herald_benches::DEFAULT_SEED;
use herald_benches::durable::{self, Plan, loadavg, quantile, rss_bytes, wall_us};
use herald_benches::http1::Conn;
use herald_benches::rt_clients::Clients;
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
    rt_n: usize,
    rt_rounds: usize,
    rt_client_threads: usize,
    rt_only: bool,
    rt_socketioxide: bool,
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
    /// Real-time subscribers of the fan-out (in the `rt-clients` process)
    #[arg(long, value_name = "R", default_value = "10k", value_parser = count)]
    rt_n: usize,
    /// Publishes (rounds) of the real-time fan-out [default: 7, --quick 5]
    #[arg(long, value_name = "K", value_parser = count)]
    rt_rounds: Option<usize>,
    /// Worker threads of the `rt-clients` process
    #[arg(long, value_name = "T", default_value = "1", value_parser = count)]
    rt_client_threads: usize,
    /// Only the real-time fan-out (e)
    #[arg(long)]
    rt_only: bool,
    /// The real-time fan-out on socketioxide's path (`realtime_direct = false`)
    #[arg(long)]
    rt_socketioxide: bool,
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
        rt_n: f.rt_n,
        rt_rounds: f.rt_rounds.unwrap_or(if f.quick { 5 } else { 7 }),
        rt_client_threads: f.rt_client_threads,
        rt_only: f.rt_only,
        rt_socketioxide: f.rt_socketioxide,
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
    // 10k real-time connections (and the HTTP ones) need descriptors.
    herald_server::raise_fd_limit();
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

    // e. real-time fan-out, first: the process's memory is still fresh, so
    // its growth is the connections'.
    let fanout = rt_fanout(&rt, &args, &dir.join("rt")).unwrap_or_else(|e| fail("rt fan-out", &e));
    if args.rt_only {
        let _ = std::fs::remove_dir_all(&dir);
        println!();
        println!(
            "rt path={} subscribers={} rounds={} fanout_median_ms={:.2} fanout_max_ms={:.2} \
             conn_bytes={:.0} cpu_us_per_delivery={:.1} load={}",
            rt_path(&args),
            args.rt_n,
            fanout.ms.len(),
            fanout.median_ms(),
            fanout.max_ms(),
            fanout.conn_bytes,
            fanout.cpu_us_per_delivery,
            loadavg()
        );
        return ExitCode::SUCCESS;
    }

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
    let load = loadavg();
    println!("load average at the end: {load}");
    println!();
    println!(
        "http immediate_publish_per_s={:.0} scheduled_publish_per_s={:.0}",
        http[0].rate, http[1].rate
    );
    println!(
        "rt path={} subscribers={} rounds={} fanout_median_ms={:.2} fanout_max_ms={:.2} \
         conn_bytes={:.0} cpu_us_per_delivery={:.1} load={load}",
        rt_path(&args),
        args.rt_n,
        fanout.ms.len(),
        fanout.median_ms(),
        fanout.max_ms(),
        fanout.conn_bytes,
        fanout.cpu_us_per_delivery
    );
    println!(
        "server durable_publish_per_s={:.0} http_publish_per_s={:.0} restart_1m_s={:.3} \
         lateness_p99_ms={:.3} rt_fanout_10k_ms={:.2} rt_conn_bytes={:.0} load={}",
        published.rate,
        http[1].rate,
        restart.as_secs_f64(),
        late.receive_ms(0.99),
        fanout.median_ms(),
        fanout.conn_bytes,
        load.split_whitespace().next().unwrap_or("?")
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

// ---------------------------------------------------------------------------
// e. real-time fan-out

/// The channel the real-time subscribers listen to.
const RT_CHANNEL: &str = "rt";

struct RtReport {
    /// Per round: publish request sent → last subscriber has it.
    ms: Vec<f64>,
    /// Server-side resident memory per idle subscribed connection.
    conn_bytes: f64,
    /// This process's CPU time over the rounds per delivery, in µs.
    cpu_us_per_delivery: f64,
}

/// Which real-time path the fan-out measures.
fn rt_path(args: &Args) -> &'static str {
    if args.rt_socketioxide {
        "socketioxide"
    } else {
        "direct"
    }
}

impl RtReport {
    fn median_ms(&self) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    fn max_ms(&self) -> f64 {
        self.ms.iter().copied().fold(f64::NAN, f64::max)
    }
}

/// One HTTP publish of `{"rt": round}` at a time to `args.rt_n` real-time
/// subscribers in the `rt-clients` process; each timed from just before
/// its request is written until the last subscriber has it (both read the
/// wall clock), each checked (the clients check every connection got each
/// round once, in order). Also the server's resident memory per idle
/// subscribed connection.
fn rt_fanout(rt: &tokio::runtime::Runtime, args: &Args, data: &Path) -> Result<RtReport, String> {
    let _ = std::fs::remove_dir_all(data);
    let n = args.rt_n;
    let server = rt
        .block_on(Server::start(Config {
            max_connections: n + 256,
            realtime_direct: !args.rt_socketioxide,
            ..config(data)
        }))
        .map_err(|e| format!("start: {e:#}"))?;
    let addr = server.local_addr();
    let rss0 = rss_bytes();
    let clients = Clients::spawn(addr, APP, KEY, RT_CHANNEL, n, args.rt_client_threads)?;
    let ready = clients.expect("ready")?;
    let rss1 = rss_bytes();
    let conn_bytes = rss1.saturating_sub(rss0) as f64 / n as f64;
    println!(
        "## real-time ({}): {n} socket.io subscribers of one channel connected and subscribed in {} ms \
         (rt-clients process, {} thread(s)); server RSS {:.1} -> {:.1} MB = {conn_bytes:.0} B per \
         idle connection",
        rt_path(args),
        ready.get(1).map_or("?", String::as_str),
        args.rt_client_threads,
        rss0 as f64 / 1e6,
        rss1 as f64 / 1e6,
    );

    let mut ms = Vec::with_capacity(args.rt_rounds);
    let cpu0 = cpu_ms();
    for round in 0..args.rt_rounds {
        let body = format!("{{\"message\":{{\"rt\":{round}}}}}");
        let request = format!(
            "POST /{APP}/{KEY}/messaging/{RT_CHANNEL} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: \
             application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        // A fresh connection per round, warmed up (not timed): an idle
        // keep-alive connection is closed after `header_read_timeout`
        // (10 s), which connecting 10k clients on a loaded machine exceeds.
        let mut publisher = rt.block_on(Conn::open(addr))?;
        let (status, _) = rt.block_on(
            publisher.call(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()),
        )?;
        if status != 200 {
            return Err(format!("GET /health: {status}"));
        }
        let sent = wall_us();
        let (status, answer) = rt.block_on(publisher.call(request.as_bytes()))?;
        let answered = wall_us();
        let v: Value = serde_json::from_slice(&answer).map_err(|e| format!("publish: {e}"))?;
        if status != 200 || v["status"] != "published" {
            return Err(format!("publish {round}: {status} {v}"));
        }
        let (first, last) = clients.expect_round(round)?;
        let to_ms = |us: i64| (us - sent) as f64 / 1e3;
        println!(
            "   round {round}: answered {:.2} ms, first subscriber {:.2} ms, last {:.2} ms",
            to_ms(answered),
            to_ms(first),
            to_ms(last)
        );
        ms.push(to_ms(last));
    }
    let cpu = cpu_ms().zip(cpu0).map(|(b, a)| b - a);
    clients.finish(n, args.rt_rounds)?;
    rt.block_on(server.shutdown())
        .map_err(|e| format!("shutdown: {e:#}"))?;
    let _ = std::fs::remove_dir_all(data);
    let cpu_us_per_delivery = cpu.map_or(f64::NAN, |ms| ms * 1e3 / (n * args.rt_rounds) as f64);
    let report = RtReport {
        ms,
        conn_bytes,
        cpu_us_per_delivery,
    };
    println!(
        "## real-time fan-out: 1 HTTP publish to {n} subscribers, {} rounds (checked: every \
         connection got every round exactly once, in order): last subscriber median {:.2} ms, max \
         {:.2} ms; server CPU {} per delivery (load average {})",
        report.ms.len(),
        report.median_ms(),
        report.max_ms(),
        cpu.map_or("?".into(), |ms| format!(
            "{:.1} µs",
            ms * 1e3 / (n * args.rt_rounds) as f64
        )),
        loadavg()
    );
    Ok(report)
}

/// CPU time (user + system) of this process so far, in ms, from
/// `/proc/self/stat` (in 10 ms ticks: `USER_HZ` is 100 on Linux).
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command's closing parenthesis: state is the
    // 3rd field, utime the 14th, stime the 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 * 10.0)
}
