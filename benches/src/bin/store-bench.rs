//! `store-bench`: the `herald` engine on the durable store, `herald-redb`.
//!
//! ```text
//! cargo run --release -p herald-benches --bin store-bench -- [--quick] [--n N]
//!     [--publishers P] [--spread-s S] [--dir DIR] [--keep] [--publish-only]
//! ```
//!
//! One data set, three measurements, each checked (a wrong or missing
//! result aborts the run):
//!
//! 1. **durable publish**: P (default 64) publisher tasks publish N (1M;
//!    `--quick` 100k) scheduled messages through `Engine::publish` on a
//!    fresh `RedbStore`, `publishAt` uniform over S s (60; `--quick` 10)
//!    starting an hour ahead. Every publish returns only after its commit
//!    (`Durability::Immediate`), so the rate is durable publishes/s. Then
//!    `Engine::shutdown`.
//! 2. **restart**: reopen the directory, build an engine, `settle()` (which
//!    answers once the driver has reloaded every pending message into its
//!    wheel). Timed from before `RedbStore::open` to `settle` returning.
//! 3. **lateness**: the engine's clock is the system clock shifted so the
//!    first `publishAt` comes 2 s after the restart; every message then
//!    fires on the real clock, each claimed and completed in the store. One
//!    subscriber records receive lateness (shifted wall clock at receipt,
//!    µs, minus `publishAt`) and firing lateness (the run's timestamp minus
//!    `publishAt`). Each message must arrive exactly once and end
//!    `published` with 1 run.
//!
//! The last line is machine-readable (lateness = receive-side p99):
//!
//! ```text
//! store durable_publish_per_s=A restart_1m_s=B lateness_p99_ms=C
//! ```
//!
//! (`restart_1m_s` is the restart time of whatever N was; with `--quick` it
//! is the restart with 100k pending.)

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald::{
    Clock, DeliveryOptions, Engine, InProcessTransport, PublishOptions, PublishStatus, Sleep,
};
use herald_benches::{DEFAULT_SEED, SplitMix64};
use herald_core::Tick;
use herald_redb::RedbStore;
use serde_json::Value;

const WORKERS: usize = 2;

struct Args {
    quick: bool,
    n: usize,
    publishers: usize,
    spread_ms: u64,
    dir: Option<std::path::PathBuf>,
    keep: bool,
    publish_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        n: 0,
        publishers: 64,
        spread_ms: 0,
        dir: None,
        keep: false,
        publish_only: false,
    };
    let mut n = None;
    let mut spread = None;
    let mut it = std::env::args().skip(1);
    let num = |flag: &str, v: Option<String>| -> Result<u64, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        herald_benches::parse_count(&v)
            .filter(|&k| k >= 1)
            .map(|k| k as u64)
            .ok_or_else(|| format!("bad {flag} value {v:?}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--n" => n = Some(num("--n", it.next())? as usize),
            "--publishers" => a.publishers = num("--publishers", it.next())? as usize,
            "--spread-s" => spread = Some(num("--spread-s", it.next())? * 1_000),
            "--dir" => a.dir = Some(it.next().ok_or("--dir needs a path")?.into()),
            "--keep" => a.keep = true,
            "--publish-only" => a.publish_only = true,
            "-h" | "--help" => return Err("help".into()),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    a.n = n.unwrap_or(if a.quick { 100_000 } else { 1_000_000 });
    a.spread_ms = spread.unwrap_or(if a.quick { 10_000 } else { 60_000 });
    Ok(a)
}

/// The data directory to remove on the way out (unless `--keep`).
static CLEANUP: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

fn fail(part: &str, msg: &str) -> ! {
    eprintln!("!! {part}: WRONG RESULT: {msg}");
    if let Some(dir) = CLEANUP.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(1);
}

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The system clock shifted by a settable offset (ms), sleeping at most
/// 1 s at a time (like `SystemClock`) so a shift is noticed within 1 s.
#[derive(Clone, Debug, Default)]
struct ShiftedClock {
    offset_ms: Arc<AtomicI64>,
}

impl ShiftedClock {
    fn now_us(&self) -> i64 {
        wall_us() + self.offset_ms.load(Ordering::Relaxed) * 1_000
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> Tick {
        Tick::from_millis((self.now_us() / 1_000).max(0) as u64)
    }

    fn sleep_until(&self, deadline: Tick) -> Sleep {
        let wait_us = (deadline.as_millis() as i64 * 1_000 - self.now_us()).clamp(0, 1_000_000);
        Box::pin(tokio::time::sleep(Duration::from_micros(wait_us as u64)))
    }
}

/// CPU time (user + system) of this process's thread named `name`, from
/// `/proc` (10 ms resolution); zero if not found.
fn thread_cpu(name: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the `(comm)`: state is 3rd; utime 14th, stime 15th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        return Duration::from_millis(ticks * 10);
    }
    Duration::ZERO
}

const WRITER: &str = "herald-redb-wri";

fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("store-bench: {msg}");
            eprintln!(
                "usage: store-bench [--quick] [--n N] [--publishers P] [--spread-s S] [--dir DIR] [--keep] \
                 [--publish-only]"
            );
            return ExitCode::from(2);
        }
    };
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("herald-store-bench-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    if !args.keep {
        let _ = CLEANUP.set(dir.clone());
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "store-bench{}: {cores} cores; tokio multi-thread runtime, {WORKERS} workers; herald Engine on \
         RedbStore in {}",
        if args.quick { " --quick" } else { "" },
        dir.display()
    );
    println!(
        "{} scheduled messages from {} publisher tasks, publishAt over {} s; load average at start: {}",
        args.n,
        args.publishers,
        args.spread_ms / 1000,
        loadavg()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(run(&args, &dir));
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("load average at the end: {}", loadavg());
    println!();
    println!(
        "store durable_publish_per_s={:.0} restart_1m_s={:.3} lateness_p99_ms={:.3}",
        result.publish_rate, result.restart_s, result.lateness_p99_ms
    );
    ExitCode::SUCCESS
}

struct Summary {
    publish_rate: f64,
    restart_s: f64,
    lateness_p99_ms: f64,
}

async fn run(args: &Args, dir: &std::path::Path) -> Summary {
    let n = args.n;
    let base = (wall_us() / 1_000) as u64 + 3_600_000;
    let mut rng = SplitMix64::new(DEFAULT_SEED);
    let due: Arc<Vec<u64>> = Arc::new((0..n).map(|_| base + rng.below(args.spread_ms)).collect());
    let first_due = due.iter().copied().min().unwrap_or(base);

    // ------------------------------------------------------------ publish
    let store = RedbStore::open(dir).expect("open");
    let engine = Engine::builder().store(store.clone()).build();
    engine.settle().await;
    let publishers = args.publishers;
    let cpu0 = thread_cpu(WRITER);
    let start = Instant::now();
    let tasks: Vec<_> = (0..publishers)
        .map(|p| {
            let engine = engine.clone();
            let due = due.clone();
            tokio::spawn(async move {
                let mut i = p;
                while i < due.len() {
                    let delivery = DeliveryOptions {
                        publish_at: chrono::DateTime::from_timestamp_millis(due[i] as i64),
                        ..DeliveryOptions::default()
                    };
                    let st = engine
                        .publish(
                            "bench",
                            Value::from(i as u64),
                            PublishOptions::default(),
                            delivery,
                        )
                        .await
                        .expect("publish");
                    if st.status != PublishStatus::Scheduled {
                        fail("publish", &format!("message {i}: {st:?}"));
                    }
                    i += publishers;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("publisher");
    }
    let publishing = start.elapsed();
    let publish_rate = n as f64 / publishing.as_secs_f64();
    let ws = store.writer_stats();
    let cpu = thread_cpu(WRITER) - cpu0;
    println!(
        "writer: {} transactions, {} requests ({:.1} per commit), busy {:.2?} ({:.0} µs per commit), \
         CPU {cpu:.2?} ({:.1} µs per message)",
        ws.transactions,
        ws.requests,
        ws.requests as f64 / ws.transactions.max(1) as f64,
        ws.busy,
        ws.busy.as_secs_f64() * 1e6 / ws.transactions.max(1) as f64,
        cpu.as_secs_f64() * 1e6 / n as f64
    );
    engine.shutdown().await;
    drop(engine);
    drop(store);
    let size = std::fs::metadata(dir.join(herald_redb::FILE_NAME)).map_or(0, |m| m.len());
    println!(
        "## durable publish: {n} scheduled publishes in {publishing:.2?} = {publish_rate:.0}/s \
         ({publishers} tasks; each acknowledged after its commit); file {:.0} MB ({:.0} B/message)",
        size as f64 / 1e6,
        size as f64 / n as f64
    );

    if args.publish_only {
        return Summary {
            publish_rate,
            restart_s: f64::NAN,
            lateness_p99_ms: f64::NAN,
        };
    }

    // ------------------------------------------------------------ restart
    let clock = ShiftedClock::default();
    // Nothing is due at first: the reload only fills the wheel.
    clock.offset_ms.store(
        base as i64 - 3_600_000 - wall_us() / 1_000 - 600_000,
        Ordering::Relaxed,
    );
    let start = Instant::now();
    let store = RedbStore::open(dir).expect("reopen");
    let opened = start.elapsed();
    let engine = Engine::builder()
        .clock(clock.clone())
        .store(store.clone())
        .transport(InProcessTransport::with_capacity(n + 1))
        .build();
    engine.settle().await;
    let restart = start.elapsed();
    if engine.scheduled_len() != n {
        fail(
            "restart",
            &format!("{} of {n} messages reloaded", engine.scheduled_len()),
        );
    }
    println!(
        "## restart with {n} pending: {restart:.3?} (RedbStore::open {opened:.3?}, then engine build + \
         reload until settle() returned)"
    );

    // ----------------------------------------------------------- lateness
    let mut sub = engine.subscribe("bench", None).expect("subscribe");
    let receiver = {
        let due = due.clone();
        let clock = clock.clone();
        tokio::spawn(async move {
            let mut receive_us = Vec::with_capacity(n);
            let mut fire_ms = Vec::with_capacity(n);
            let mut seen = vec![false; n];
            while receive_us.len() < n {
                match sub.recv().await {
                    Some(Ok(m)) => {
                        let now = clock.now_us();
                        let i = m.message().as_u64().expect("a number") as usize;
                        if i >= n || std::mem::replace(&mut seen[i], true) {
                            fail("lateness", &format!("message {i} twice or unknown"));
                        }
                        let at = due[i] as i64;
                        receive_us.push(now - at * 1_000);
                        fire_ms.push(m.timestamp_millis() as i64 - at);
                    }
                    Some(Err(lag)) => fail("lateness", &format!("lagged: {lag}")),
                    None => fail("lateness", "the subscription ended"),
                }
            }
            (receive_us, fire_ms)
        })
    };
    // The first message is due 2 s from now.
    clock.offset_ms.store(
        first_due as i64 - 2_000 - wall_us() / 1_000,
        Ordering::Relaxed,
    );
    let firing = Instant::now();
    let ws0 = store.writer_stats();
    let cpu0 = thread_cpu(WRITER);
    let (mut receive_us, mut fire_ms) = receiver.await.expect("receiver");
    let fired_in = firing.elapsed();
    let ws = store.writer_stats();
    let (txns, reqs) = (
        ws.transactions - ws0.transactions,
        ws.requests - ws0.requests,
    );
    let cpu = thread_cpu(WRITER) - cpu0;
    println!(
        "writer while firing: {txns} transactions ({reqs} requests), busy {:.2?} ({:.0} µs per \
         commit), CPU {cpu:.2?} ({:.1} µs per message)",
        ws.busy - ws0.busy,
        (ws.busy - ws0.busy).as_secs_f64() * 1e6 / txns.max(1) as f64,
        cpu.as_secs_f64() * 1e6 / n as f64
    );
    receive_us.sort_unstable();
    fire_ms.sort_unstable();
    if receive_us[0] < 0 || fire_ms[0] < 0 {
        fail("lateness", "a message fired before its publishAt");
    }
    // The last runs' completions are committed by the pass that delivered
    // them: `settle` waits for it.
    engine.settle().await;
    let check = Instant::now();
    let ids = {
        // Every record must now be published with one run.
        let pending = herald::Store::pending(&store, None, 10)
            .await
            .expect("pending");
        if !pending.is_empty() {
            fail(
                "lateness",
                &format!("{} records still pending", pending.len()),
            );
        }
        store.check_records().expect("records intact").records
    };
    if ids != n as u64 {
        fail("lateness", &format!("{ids} records for {n} messages"));
    }
    engine.shutdown().await;
    let r = |q: f64| quantile(&receive_us, q) as f64 / 1e3;
    let f = |q: f64| quantile(&fire_ms, q);
    println!(
        "## lateness: {n} messages fired over {:.1?} on the (shifted) real clock; checked: each \
         received once, store has 0 pending and {ids} intact records ({:.1?})",
        fired_in,
        check.elapsed()
    );
    println!(
        "{:<38} | {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "", "min", "p50", "p90", "p99", "p99.9", "max"
    );
    println!(
        "{:<38} | {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
        "receive: clock at recv - publishAt",
        r(0.0),
        r(0.5),
        r(0.9),
        r(0.99),
        r(0.999),
        r(1.0)
    );
    println!(
        "{:<38} | {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "firing: run timestamp - publishAt",
        f(0.0),
        f(0.5),
        f(0.9),
        f(0.99),
        f(0.999),
        f(1.0)
    );
    println!("(ms; receive includes the claim's durable commit before delivery)");
    Summary {
        publish_rate,
        restart_s: restart.as_secs_f64(),
        lateness_p99_ms: r(0.99),
    }
}
