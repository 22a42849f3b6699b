//! `push-bench`: push notifications on the durable store: device
//! registrations, the push pipeline end to end, audience resolution, and
//! the memory it all takes.
//!
//! ```text
//! cargo run --release -p herald-benches --bin push-bench -- [--quick] [--devices N]
//!     [--tasks T] [--runs K] [--gateway-ms L] [--sequential-ids] [--no-memory]
//!     [--dir DIR] [--keep]
//! ```
//!
//! N devices (1M; `--quick` 100k) on one channel, `news`: half `IOS` (a
//! 64-hex-digit token), half `ANDROID` (a 152-character token), every
//! other pair with the property `lang = de`. Device ids are random
//! UUID-shaped strings, so registrations arrive in no key order
//! (`--sequential-ids`: `dev-0000000`... in order, for comparison). The
//! engine runs on a fresh `RedbStore` in a temporary directory (as store
//! and registry), on a two-worker multi-thread tokio runtime, on the real
//! clock. Each part checks its result (a wrong one aborts the run):
//!
//! 1. **registrations (durable)**: T tasks (default 256) register the N
//!    devices through `Engine::register_device` (the JSON body of
//!    `POST messaging/registrations`, built by the task, parsed and
//!    checked, then `DeviceRegistry::register` on the store, answered
//!    after its group commit). The writer's commits, requests per commit
//!    and CPU are printed, and the RSS after it.
//! 2. **the push pipeline**: K (default 3) `PUSH` publishes to `news`, one
//!    after the other, each timed from the publish call until
//!    `Engine::message_status` (polled every 5 ms) shows
//!    `pushQueued == N` and `pushPending == 0`; the median is reported.
//!    Two gateways: counting transports that answer `Sent` for every
//!    notification (one for `IOS | OSX`, one for `ANDROID`), at once or
//!    after a simulated round trip (`--gateway-ms`). Checked: each
//!    gateway got exactly its OS's devices, `pushSent == N`. The time
//!    inside the transports' `send` is reported apart, and thin wrappers
//!    around the store and the registry time the calls the push job
//!    awaits (page reads, checkpoints, record reads), so the job's wall
//!    time splits into them. RSS is sampled from `/proc/self/status`
//!    every 5 ms meanwhile (and `VmHWM`, reset before each publish
//!    through `/proc/self/clear_refs`), to compare with the RSS after
//!    registering: two runs at different N show whether it grows with
//!    the audience.
//! 3. **audience resolution**: `Audience::page` walked over the whole
//!    channel in pages of `MAX_BATCH` (as the pipeline reads it), without
//!    and with the segment query `lang = 'de'` (admits half), twice each.
//!    Checked: N and N/2 devices admitted.
//!
//! Then, unless `--no-memory`, parts 1 to 3 again on an engine with a
//! `MemoryRegistry` and a `MemoryStore`, for comparison.
//!
//! The last line is machine-readable (`audience_1m_ms`: the first walk
//! without a segment on the redb registry, at whatever N was;
//! `pipeline_per_s`: the median redb run; `rss_mb`: the peak RSS while the
//! redb pipeline ran):
//!
//! ```text
//! push register_per_s=A audience_1m_ms=B pipeline_per_s=C rss_mb=D
//! ```
//!
//! `--gateways` runs another mode instead: one publish through the real
//! APNs and FCM gateways to the testkit's mocks in a child process
//! ([`herald_benches::push_gateways`]; 100k devices, `--quick` 20k;
//! `--gateway-connections C`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::Parser;
use herald::{
    Audience, Checkpoint, Claim, Claimed, Completion, DeliveryOptions, DeviceRegistration,
    DeviceRegistry, DueRun, Engine, Envelope, FencingToken, IdempotencyKey, Inserted, InvalidToken,
    JobKey, KeyRecord, Lease, MAX_BATCH, MemoryRegistry, MemoryStore, MessageId, Notification,
    Outcome, PublishOptions, PublishStatus, PushBroadcast, PushFuture, PushJob, PushRetry,
    PushTransport, Record, Start, Store, StoreFuture, StoreStats,
};
use herald_benches::durable::{WRITER, loadavg, process_cpu, thread_cpu};
use herald_benches::{DEFAULT_SEED, SplitMix64};
use herald_core::Tick;
use herald_core::selector::Selector;
use herald_redb::RedbStore;
use serde_json::{Value, json};

const WORKERS: usize = 2;
const CHANNEL: &str = "news";
const SEGMENT: &str = "lang = 'de'";

/// Push notifications on the durable store: durable registrations/s,
/// audience resolution, notifications/s through the pipeline, RSS.
#[derive(Parser)]
#[command(name = "push-bench")]
struct Flags {
    /// A smaller run: 100k devices, under a minute
    #[arg(long)]
    quick: bool,
    /// Registered devices [default: 1M, --quick 100k]
    #[arg(long, value_name = "N", value_parser = count)]
    devices: Option<usize>,
    /// Registering tasks
    #[arg(long, value_name = "T", default_value = "256", value_parser = count)]
    tasks: usize,
    /// The data directory [default: a fresh one in the temporary directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the data directory afterwards
    #[arg(long)]
    keep: bool,
    /// Skip the in-memory comparison (registry, audience, pipeline)
    #[arg(long)]
    no_memory: bool,
    /// Device ids in registration order (`dev-0000000`...) instead of
    /// random UUIDs: appends to the registry's trees instead of touching
    /// random pages
    #[arg(long)]
    sequential_ids: bool,
    /// Each gateway's `send` waits this long before answering (a
    /// simulated round trip; 0: answers at once)
    #[arg(long = "gateway-ms", value_name = "L", default_value = "0")]
    gateway_ms: u64,
    /// Pipeline runs (one publish each) on each store; the median is
    /// reported
    #[arg(long, value_name = "K", default_value = "3", value_parser = count_1)]
    runs: usize,
    /// Through the real APNs and FCM gateways to the testkit's mocks (in a
    /// child process) instead [default devices: 100k, --quick 20k]
    #[arg(long)]
    gateways: bool,
    /// With --gateways: each gateway's most connections
    #[arg(long = "gateway-connections", value_name = "C", value_parser = count_1)]
    gateway_connections: Option<usize>,
    /// The child process of --gateways: serves the mocks
    #[arg(long, hide = true)]
    serve_mocks: bool,
}

/// A count of at least 1.
fn count_1(s: &str) -> Result<usize, String> {
    herald_benches::parse_count(s)
        .filter(|&k| k >= 1)
        .ok_or_else(|| "not a count of at least 1".to_owned())
}

/// A count (`parse_count`: 64, 100k, 1M) of at least 2.
fn count(s: &str) -> Result<usize, String> {
    herald_benches::parse_count(s)
        .filter(|&k| k >= 2)
        .ok_or_else(|| "not a count of at least 2, like 256, 100k or 1M".to_owned())
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

fn main() -> ExitCode {
    let f = Flags::parse();
    if f.serve_mocks {
        return herald_benches::push_gateways::serve_mocks();
    }
    if f.gateways {
        use herald_benches::push_gateways::{Options, default_dir, main};
        return main(&Options {
            devices: f.devices.unwrap_or(Options::default_devices(f.quick)),
            runs: f.runs,
            connections: f.gateway_connections,
            dir: f.dir.clone().unwrap_or_else(default_dir),
            keep: f.keep,
            quick: f.quick,
        });
    }
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    let n = f
        .devices
        .unwrap_or(if f.quick { 100_000 } else { 1_000_000 });
    let dir = f.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("herald-push-bench-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    if !f.keep {
        let _ = CLEANUP.set(dir.clone());
    }
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    println!(
        "push-bench{}: {cores} cores; tokio multi-thread runtime, {WORKERS} workers; herald Engine \
         on RedbStore (store and registry) in {}",
        if f.quick { " --quick" } else { "" },
        dir.display()
    );
    println!(
        "audience size: {n} devices on channel {CHANNEL:?} (half IOS, half ANDROID; {SEGMENT} on \
         half; {} device ids); {} registering tasks; gateways answer {}; load average at start: {}",
        if f.sequential_ids {
            "sequential"
        } else {
            "random UUID"
        },
        f.tasks,
        if f.gateway_ms == 0 {
            "at once".to_owned()
        } else {
            format!("after {} ms", f.gateway_ms)
        },
        loadavg()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let s = rt.block_on(run(&f, n, &dir));
    drop(rt);
    if !f.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("load average at the end: {}", loadavg());
    println!();
    println!(
        "push register_per_s={:.0} audience_1m_ms={:.0} pipeline_per_s={:.0} rss_mb={:.0}",
        s.register_rate, s.audience_ms, s.pipeline_rate, s.rss_mb
    );
    ExitCode::SUCCESS
}

struct Summary {
    register_rate: f64,
    audience_ms: f64,
    pipeline_rate: f64,
    rss_mb: f64,
}

async fn run(f: &Flags, n: usize, dir: &Path) -> Summary {
    let store = RedbStore::open(dir).unwrap_or_else(|e| fail("open", &e.to_string()));
    let meters = Arc::new(Meters::default());
    let latency = Duration::from_millis(f.gateway_ms);
    let apns = Arc::new(Counting::new(
        "apns",
        PushBroadcast::IOS | PushBroadcast::OSX,
        latency,
    ));
    let fcm = Arc::new(Counting::new("fcm", PushBroadcast::ANDROID, latency));
    let engine = Engine::builder()
        .store(Timed::new(store.clone(), &meters))
        .registry(Timed::new(store.clone(), &meters))
        .push_gateway(apns.os, apns.clone())
        .push_gateway(fcm.os, fcm.clone())
        .build();
    engine.settle().await;
    let rss_start = rss_kb("VmRSS");

    // 1. Durable registrations.
    println!();
    println!(
        "## 1. registrations through Engine::register_device ({} tasks)",
        f.tasks
    );
    let ws0 = store.writer_stats();
    let cpu0 = thread_cpu(WRITER);
    let io0 = written_bytes();
    let reg = register(&engine, n, f.tasks, f.sequential_ids).await;
    let ws = store.writer_stats();
    let (txns, reqs) = (
        ws.transactions - ws0.transactions,
        ws.requests - ws0.requests,
    );
    let wcpu = thread_cpu(WRITER) - cpu0;
    let written = written_bytes().saturating_sub(io0);
    let file = std::fs::metadata(dir.join(herald_redb::FILE_NAME)).map_or(0, |m| m.len());
    let rss_registered = rss_kb("VmRSS");
    println!(
        "redb:   {n} durable registrations in {:.2?} = {:.0}/s; writer: {txns} commits, {:.1} \
         requests per commit, busy {:.2?} ({:.0} µs per commit), CPU {wcpu:.2?} ({:.1} µs per \
         device); {:.0} MB written to storage ({:.1} KB per device, {:.2} MB per commit); file \
         {:.0} MB ({:.0} B per device)",
        reg,
        n as f64 / reg.as_secs_f64(),
        reqs as f64 / txns.max(1) as f64,
        ws.busy - ws0.busy,
        (ws.busy - ws0.busy).as_secs_f64() * 1e6 / txns.max(1) as f64,
        wcpu.as_secs_f64() * 1e6 / n as f64,
        written as f64 / 1e6,
        written as f64 / 1e3 / n as f64,
        written as f64 / 1e6 / txns.max(1) as f64,
        file as f64 / 1e6,
        file as f64 / n as f64,
    );
    println!(
        "RSS: {:.0} MB at start, {:.0} MB after registering",
        mb(rss_start),
        mb(rss_registered)
    );
    let register_rate = n as f64 / reg.as_secs_f64();

    // 2. The pipeline on redb.
    println!();
    println!(
        "## 2. pipeline: one PUSH publish to {n} devices, counting gateways (redb), {} runs",
        f.runs
    );
    let p = pipelines(f.runs, &engine, n, &apns, &fcm, Some((&store, &meters))).await;
    println!(
        "RSS while the pipeline ran: peak {:.0} MB sampled, VmHWM {:.0} MB (reset before each \
         publish; the highest of the runs); after registering {:.0} MB: growth {:+.0} MB; after \
         the runs {:.0} MB",
        mb(p.rss_peak_kb),
        mb(p.hwm_kb),
        mb(rss_registered),
        mb(p.rss_peak_kb.max(p.hwm_kb)) - mb(rss_registered),
        mb(rss_kb("VmRSS")),
    );

    // 3. Audience walks on redb.
    println!();
    println!("## 3. audience: Audience::page over the channel in pages of {MAX_BATCH}");
    let redb_walks = walks("redb", &store, n).await;
    engine.shutdown().await;
    drop(engine);

    if !f.no_memory {
        println!();
        println!("## in memory, for comparison (MemoryRegistry, MemoryStore)");
        let registry = MemoryRegistry::new();
        let latency = Duration::from_millis(f.gateway_ms);
        let apns = Arc::new(Counting::new(
            "apns",
            PushBroadcast::IOS | PushBroadcast::OSX,
            latency,
        ));
        let fcm = Arc::new(Counting::new("fcm", PushBroadcast::ANDROID, latency));
        let engine = Engine::builder()
            .store(MemoryStore::new())
            .registry(registry.clone())
            .push_gateway(apns.os, apns.clone())
            .push_gateway(fcm.os, fcm.clone())
            .build();
        let reg = register(&engine, n, f.tasks, f.sequential_ids).await;
        println!(
            "memory: {n} registrations in {reg:.2?} = {:.0}/s",
            n as f64 / reg.as_secs_f64()
        );
        walks("memory", &registry, n).await;
        pipelines(f.runs, &engine, n, &apns, &fcm, None).await;
        engine.shutdown().await;
    }

    Summary {
        register_rate,
        audience_ms: redb_walks.first_plain.as_secs_f64() * 1e3,
        pipeline_rate: p.rate(),
        rss_mb: mb(p.rss_peak_kb.max(p.hwm_kb)),
    }
}

// ---------------------------------------------------------------------------
// Devices.

/// Device `i`'s id: UUID-shaped, from a seeded generator (random key
/// order), or `dev-` and `i` in 7 digits (`sequential`).
fn device_id(i: usize, sequential: bool) -> String {
    if sequential {
        return format!("dev-{i:07}");
    }
    let mut r = SplitMix64::new(DEFAULT_SEED ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (a, b) = (r.next_u64(), r.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Whether device `i` is an IOS device (else ANDROID).
fn is_ios(i: usize) -> bool {
    i.is_multiple_of(2)
}

/// Whether device `i` has `lang = de` (every other pair: both OSes).
fn is_de(i: usize) -> bool {
    (i / 2).is_multiple_of(2)
}

/// The registration request body of device `i`.
fn body(i: usize, sequential: bool) -> Value {
    let mut r = SplitMix64::new(!(i as u64));
    let words = if is_ios(i) { 4 } else { 10 };
    let mut token = String::with_capacity(160);
    for _ in 0..words {
        token.push_str(&format!("{:016x}", r.next_u64()));
    }
    let (os, token) = if is_ios(i) {
        ("IOS", token)
    } else {
        ("ANDROID", token[..152].to_owned())
    };
    let properties = if is_de(i) {
        json!({"lang": "de"})
    } else {
        json!({})
    };
    json!({
        "deviceId": device_id(i, sequential),
        "deviceToken": token,
        "os": os,
        "channels": [CHANNEL],
        "properties": properties,
    })
}

/// Registers devices `0..n` through `engine` from `tasks` tasks (device
/// `i` by task `i % tasks`); the time from the first call to the last
/// answer.
async fn register(engine: &Engine, n: usize, tasks: usize, sequential: bool) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut i = t;
                while i < n {
                    engine
                        .register_device(&body(i, sequential))
                        .await
                        .map_err(|e| format!("device {i}: {e}"))?;
                    i += tasks;
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

// ---------------------------------------------------------------------------
// Audience walks.

/// What [`walks`] measured.
struct Walks {
    first_plain: Duration,
}

/// Walks the channel's audience over `registry` twice without and twice
/// with the segment, checking the counts; prints a line.
async fn walks(name: &str, registry: &dyn DeviceRegistry, n: usize) -> Walks {
    let plain = Audience::channel(CHANNEL);
    let segment = Audience {
        segment: Some(Selector::parse(SEGMENT).expect("segment query")),
        ..Audience::channel(CHANNEL)
    };
    let de = (0..n).filter(|&i| is_de(i)).count();
    let mut times = Vec::new();
    for (audience, expected) in [(&plain, n), (&plain, n), (&segment, de), (&segment, de)] {
        let (admitted, pages, took) = walk(registry, audience).await;
        if admitted != expected {
            fail(
                "audience",
                &format!("{name}: {admitted} devices admitted, expected {expected}"),
            );
        }
        times.push((took, pages));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name:<6}: {n} devices in {} pages: whole channel {:.0} ms, again {:.0} ms ({:.2} µs per \
         device, {:.0}k devices/s); with {SEGMENT:?} ({de} admitted) {:.0} ms, again {:.0} ms",
        times[0].1,
        ms(times[0].0),
        ms(times[1].0),
        times[1].0.as_secs_f64() * 1e6 / n as f64,
        n as f64 / times[1].0.as_secs_f64() / 1e3,
        ms(times[2].0),
        ms(times[3].0),
    );
    Walks {
        first_plain: times[0].0,
    }
}

/// One walk: (devices admitted, pages, time).
async fn walk(registry: &dyn DeviceRegistry, audience: &Audience) -> (usize, usize, Duration) {
    let now = Tick::from_millis(herald_benches::durable::wall_us() as u64 / 1_000);
    let start = Instant::now();
    let (mut admitted, mut pages) = (0, 0);
    let mut cursor: Option<String> = None;
    loop {
        let page = audience
            .page(registry, cursor.as_deref(), MAX_BATCH, now)
            .await
            .unwrap_or_else(|e| fail("audience", &e.to_string()));
        pages += 1;
        admitted += page.devices.len();
        if page.done {
            break;
        }
        cursor = page.cursor;
    }
    (admitted, pages, start.elapsed())
}

// ---------------------------------------------------------------------------
// The pipeline.

/// What [`pipeline`] measured.
struct PipelineRun {
    label: &'static str,
    n: usize,
    /// Publish until the status showed everything sent.
    elapsed: Duration,
    /// Publish until the first and the last `send` began.
    first_send: Duration,
    last_send: Duration,
    /// Time inside the transports' `send`, both gateways.
    transport: Duration,
    /// The simulated round trip of each `send` (not in `transport`).
    latency: Duration,
    batches: u64,
    /// The job's awaited store and registry calls (redb only).
    meters: Option<MeterDelta>,
    /// Writer thread: commits, busy, CPU (redb only).
    writer: Option<(u64, Duration, Duration)>,
    /// Bytes this process wrote to storage meanwhile.
    written: u64,
    /// Process CPU (user + system) while it ran.
    cpu: Duration,
    rss_peak_kb: u64,
    hwm_kb: u64,
}

impl PipelineRun {
    fn rate(&self) -> f64 {
        self.n as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self) {
        let n = self.n as f64;
        let wall = self.elapsed;
        let pct = |d: Duration| 100.0 * d.as_secs_f64() / wall.as_secs_f64();
        println!(
            "{:<6}: {} notifications in {wall:.2?} = {:.0}/s (publish until the status showed \
             pushQueued {} and pushPending 0); first send after {:.1?}, last after {:.2?}; \
             process CPU {:.2?} ({:.2} cores, {:.1} µs per notification)",
            self.label,
            self.n,
            self.rate(),
            self.n,
            self.first_send,
            self.last_send,
            self.cpu,
            self.cpu.as_secs_f64() / wall.as_secs_f64(),
            self.cpu.as_secs_f64() * 1e6 / n,
        );
        println!(
            "        transports' send: {} batches, {:.2?} in all ({:.1}% of the wall time, {:.3} µs \
             per notification){}",
            self.batches,
            self.transport,
            pct(self.transport),
            self.transport.as_secs_f64() * 1e6 / n,
            if self.latency.is_zero() {
                String::new()
            } else {
                format!(
                    ", plus a simulated round trip of {:.0?} each ({:.2?} in all)",
                    self.latency,
                    self.latency * self.batches as u32
                )
            }
        );
        if let Some(m) = &self.meters {
            let line = |what: &str, x: &Meter1| {
                println!(
                    "        {what:<34} {:>6} calls {:>9.2?} ({:>4.1}% of the wall time, {:>7.1} µs \
                     per call)",
                    x.calls,
                    x.time,
                    pct(x.time),
                    x.time.as_secs_f64() * 1e6 / x.calls.max(1) as f64,
                );
            };
            line("registry channel_devices (pages)", &m.page);
            line("store checkpoint_push", &m.checkpoint);
            line("store get (message record)", &m.get);
            line("store claim_push_jobs", &m.claim_jobs);
            line("store push_retries", &m.retries);
            line("store insert + complete (publish)", &m.publish);
            if m.page.calls > 0 {
                println!(
                    "        one page of {MAX_BATCH} devices read, sent and checkpointed every {:.2?} \
                     on average",
                    wall / m.page.calls as u32
                );
            }
            let accounted = m.publish.time
                + m.claim_jobs.time
                + m.page.time
                + m.checkpoint.time
                + m.get.time
                + m.retries.time
                + self.transport
                + self.latency * self.batches as u32;
            println!(
                "        the calls above and the sends: {accounted:.2?}; the rest, {:.2?}, is the \
                 job's own CPU (notifications, tallies), task wake-ups and the status poll's slack",
                wall.saturating_sub(accounted),
            );
        }
        if let Some((txns, busy, cpu)) = self.writer {
            println!(
                "        writer: {txns} commits, busy {busy:.2?} ({:.0} µs per commit), CPU {cpu:.2?}; \
                 {:.1} MB written to storage ({:.0} KB per commit)",
                busy.as_secs_f64() * 1e6 / txns.max(1) as f64,
                self.written as f64 / 1e6,
                self.written as f64 / 1e3 / txns.max(1) as f64,
            );
        }
    }
}

/// `runs` pipeline runs; prints one line each and the median run's
/// details; answers the median run, with the highest RSS of all.
async fn pipelines(
    runs: usize,
    engine: &Engine,
    n: usize,
    apns: &Counting,
    fcm: &Counting,
    redb: Option<(&RedbStore, &Arc<Meters>)>,
) -> PipelineRun {
    let mut all = Vec::with_capacity(runs);
    for i in 0..runs {
        let p = pipeline(engine, n, apns, fcm, redb).await;
        println!(
            "{:<6}: run {}: {:.2?} = {:.0} notifications/s",
            p.label,
            i + 1,
            p.elapsed,
            p.rate()
        );
        all.push(p);
    }
    let rss_peak_kb = all.iter().map(|p| p.rss_peak_kb).max().unwrap_or(0);
    let hwm_kb = all.iter().map(|p| p.hwm_kb).max().unwrap_or(0);
    all.sort_by_key(|p| p.elapsed);
    let mut median = all.swap_remove(all.len() / 2);
    println!("median run:");
    median.print();
    median.rss_peak_kb = rss_peak_kb;
    median.hwm_kb = hwm_kb;
    median
}

/// One `PUSH` publish to every device of `news` through `engine`; waits
/// until the status shows all `n` sent; checks the gateways' counts.
async fn pipeline(
    engine: &Engine,
    n: usize,
    apns: &Counting,
    fcm: &Counting,
    redb: Option<(&RedbStore, &Arc<Meters>)>,
) -> PipelineRun {
    let label = if redb.is_some() { "redb" } else { "memory" };
    let part = format!("pipeline ({label})");
    let m0 = redb.map(|(_, m)| m.snapshot());
    let ws0 = redb.map(|(s, _)| (s.writer_stats(), thread_cpu(WRITER)));
    let cpu0 = process_cpu();
    let io0 = written_bytes();
    let sampler = RssSampler::start();
    let start = Instant::now();
    apns.reset(start);
    fcm.reset(start);
    let delivery = DeliveryOptions::from_json(&json!({"publishPolicy": "PUSH"}))
        .unwrap_or_else(|e| fail(&part, &e.to_string()));
    let status = engine
        .publish(
            CHANNEL,
            "Sale: everything must go".into(),
            PublishOptions::default(),
            delivery,
        )
        .await
        .unwrap_or_else(|e| fail(&part, &e.to_string()));
    if status.status != PublishStatus::Published {
        fail(&part, &format!("publish answered {status:?}"));
    }
    let id = status.message_id;
    // Generous: 20k notifications/s at the very least, plus every batch's
    // simulated round trip one after the other.
    let batches = 2 * n.div_ceil(MAX_BATCH) as u32 + 2;
    let deadline = start + Duration::from_secs(30 + n as u64 / 20_000) + apns.latency * batches;
    let last = loop {
        // Not metered: the job's wait is what the meters show.
        let s = UNMETERED
            .scope((), engine.message_status(&id))
            .await
            .unwrap_or_else(|e| fail(&part, &e.to_string()));
        let d = s.deliveries;
        if d.push_queued == n as u64 && d.push_pending() == 0 {
            break s;
        }
        if Instant::now() > deadline {
            fail(&part, &format!("not done in time: {s:?}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let elapsed = start.elapsed();
    let cpu = process_cpu().saturating_sub(cpu0);
    let written = written_bytes().saturating_sub(io0);
    let (rss_peak_kb, hwm_kb) = sampler.stop();
    let d = last.deliveries;
    if d.push_sent != n as u64 || d.push_failed + d.push_expired + d.push_invalid_tokens != 0 {
        fail(&part, &format!("counters {d:?}"));
    }
    let ios = (0..n).filter(|&i| is_ios(i)).count() as u64;
    for (gw, expected) in [(apns, ios), (fcm, n as u64 - ios)] {
        let (sent, wrong) = (gw.sent.load(Relaxed), gw.wrong_os.load(Relaxed));
        if sent != expected || wrong != 0 {
            fail(
                &part,
                &format!(
                    "gateway {}: {sent} notifications ({wrong} of another OS), expected {expected}",
                    gw.name
                ),
            );
        }
    }
    let meters = redb.map(|(_, m)| m.snapshot().since(&m0.expect("snapshot")));
    let writer = redb.map(|(s, _)| {
        let (w0, c0) = ws0.expect("writer stats");
        let w = s.writer_stats();
        (
            w.transactions - w0.transactions,
            w.busy - w0.busy,
            thread_cpu(WRITER) - c0,
        )
    });
    PipelineRun {
        label,
        n,
        elapsed,
        first_send: Duration::from_nanos(apns.first_ns().min(fcm.first_ns())),
        last_send: Duration::from_nanos(apns.last_ns().max(fcm.last_ns())),
        transport: Duration::from_nanos(apns.busy_ns.load(Relaxed) + fcm.busy_ns.load(Relaxed)),
        latency: apns.latency,
        batches: apns.batches.load(Relaxed) + fcm.batches.load(Relaxed),
        meters,
        writer,
        written,
        cpu,
        rss_peak_kb,
        hwm_kb,
    }
}

/// A gateway that answers `Sent` for every notification and counts: what
/// it was handed, of which OS, and the time spent inside `send`.
#[derive(Debug)]
struct Counting {
    name: &'static str,
    os: PushBroadcast,
    /// How long a `send` waits before answering.
    latency: Duration,
    /// What the times below count from.
    base: std::sync::Mutex<Instant>,
    sent: AtomicU64,
    wrong_os: AtomicU64,
    batches: AtomicU64,
    busy_ns: AtomicU64,
    /// The first and last `send`'s start, ns after `base` (+1; 0: none).
    first_ns: AtomicU64,
    last_ns: AtomicU64,
}

impl Counting {
    fn new(name: &'static str, os: PushBroadcast, latency: Duration) -> Self {
        Self {
            name,
            os,
            latency,
            base: std::sync::Mutex::new(Instant::now()),
            sent: AtomicU64::new(0),
            wrong_os: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            first_ns: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
        }
    }

    fn reset(&self, base: Instant) {
        *self.base.lock().unwrap_or_else(|p| p.into_inner()) = base;
        for c in [
            &self.sent,
            &self.wrong_os,
            &self.batches,
            &self.busy_ns,
            &self.first_ns,
            &self.last_ns,
        ] {
            c.store(0, Relaxed);
        }
    }

    fn first_ns(&self) -> u64 {
        match self.first_ns.load(Relaxed) {
            0 => u64::MAX,
            t => t - 1,
        }
    }

    fn last_ns(&self) -> u64 {
        self.last_ns.load(Relaxed).saturating_sub(1)
    }
}

impl PushTransport for Counting {
    fn name(&self) -> &str {
        self.name
    }

    fn send<'a>(&'a self, batch: &'a [Notification]) -> PushFuture<'a> {
        let start = Instant::now();
        let wrong = batch
            .iter()
            .filter(|n| !self.os.contains(n.os.mask()))
            .count() as u64;
        let delivery = herald::Delivery::all(batch.len(), Outcome::Sent);
        let base = *self.base.lock().unwrap_or_else(|p| p.into_inner());
        let at = start.saturating_duration_since(base).as_nanos() as u64 + 1;
        let _ = self.first_ns.compare_exchange(0, at, Relaxed, Relaxed);
        self.last_ns.fetch_max(at, Relaxed);
        self.sent.fetch_add(batch.len() as u64, Relaxed);
        self.wrong_os.fetch_add(wrong, Relaxed);
        self.batches.fetch_add(1, Relaxed);
        let latency = self.latency;
        let fut: PushFuture<'a> = if latency.is_zero() {
            Box::pin(std::future::ready(delivery))
        } else {
            Box::pin(async move {
                tokio::time::sleep(latency).await;
                delivery
            })
        };
        // The simulated round trip is not the transport's cost.
        self.busy_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
        fut
    }
}

// ---------------------------------------------------------------------------
// Timing wrappers around the store and the registry.

/// Calls and time of one kind of call.
#[derive(Debug, Default)]
struct Meter {
    calls: AtomicU64,
    ns: AtomicU64,
}

impl Meter {
    fn add(&self, d: Duration) {
        self.calls.fetch_add(1, Relaxed);
        self.ns.fetch_add(d.as_nanos() as u64, Relaxed);
    }

    fn snapshot(&self) -> Meter1 {
        Meter1 {
            calls: self.calls.load(Relaxed),
            time: Duration::from_nanos(self.ns.load(Relaxed)),
        }
    }

    /// Times `fut` from `start` (taken before the call that made it: some
    /// calls do their work when called, not when polled).
    fn time<'a, T: Send + 'a>(
        &'a self,
        start: Instant,
        fut: StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let r = fut.await;
            self.add(start.elapsed());
            r
        })
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Meter1 {
    calls: u64,
    time: Duration,
}

impl Meter1 {
    fn since(self, before: Self) -> Self {
        Self {
            calls: self.calls - before.calls,
            time: self.time.saturating_sub(before.time),
        }
    }
}

#[derive(Debug, Default)]
struct Meters {
    page: Meter,
    checkpoint: Meter,
    get: Meter,
    claim_jobs: Meter,
    retries: Meter,
    publish: Meter,
}

#[derive(Clone, Copy, Debug)]
struct MeterDelta {
    page: Meter1,
    checkpoint: Meter1,
    get: Meter1,
    claim_jobs: Meter1,
    retries: Meter1,
    publish: Meter1,
}

impl Meters {
    fn snapshot(&self) -> MeterDelta {
        MeterDelta {
            page: self.page.snapshot(),
            checkpoint: self.checkpoint.snapshot(),
            get: self.get.snapshot(),
            claim_jobs: self.claim_jobs.snapshot(),
            retries: self.retries.snapshot(),
            publish: self.publish.snapshot(),
        }
    }
}

impl MeterDelta {
    fn since(&self, b: &Self) -> Self {
        Self {
            page: self.page.since(b.page),
            checkpoint: self.checkpoint.since(b.checkpoint),
            get: self.get.since(b.get),
            claim_jobs: self.claim_jobs.since(b.claim_jobs),
            retries: self.retries.since(b.retries),
            publish: self.publish.since(b.publish),
        }
    }
}

tokio::task_local! {
    /// Set while the bench polls a message's status: those reads are not
    /// the job's.
    static UNMETERED: ();
}

/// A store or registry whose calls the push job awaits are timed into
/// [`Meters`]; everything is passed through unchanged.
#[derive(Debug)]
struct Timed<S> {
    inner: S,
    meters: Arc<Meters>,
}

impl<S> Timed<S> {
    fn new(inner: S, meters: &Arc<Meters>) -> Self {
        Self {
            inner,
            meters: meters.clone(),
        }
    }
}

impl<S: Store> Store for Timed<S> {
    fn insert(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
    ) -> StoreFuture<'_, Option<FencingToken>> {
        let t = Instant::now();
        self.meters
            .publish
            .time(t, self.inner.insert(envelope, start))
    }
    fn insert_idempotent(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
        key: IdempotencyKey,
    ) -> StoreFuture<'_, Inserted> {
        self.inner.insert_idempotent(envelope, start, key)
    }
    fn idempotency_key(&self, key: &str) -> StoreFuture<'_, Option<KeyRecord>> {
        self.inner.idempotency_key(key)
    }
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        if UNMETERED.try_with(|()| ()).is_ok() {
            return self.inner.get(id);
        }
        let t = Instant::now();
        self.meters.get.time(t, self.inner.get(id))
    }
    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Claimed>>> {
        self.inner.claim(claims, lease_until)
    }
    fn renew(&self, leases: Vec<Lease>, lease_until: Tick) -> StoreFuture<'_, Vec<bool>> {
        self.inner.renew(leases, lease_until)
    }
    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, Vec<bool>> {
        let t = Instant::now();
        self.meters
            .publish
            .time(t, self.inner.complete(completions))
    }
    fn cancel(&self, id: MessageId) -> StoreFuture<'_, herald::CancelOutcome> {
        self.inner.cancel(id)
    }
    fn amend(&self, amendments: Vec<herald::Amendment>) -> StoreFuture<'_, ()> {
        self.inner.amend(amendments)
    }
    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<DueRun>> {
        self.inner.pending(after, limit)
    }
    fn release_expired(&self, before: Tick) -> StoreFuture<'_, Vec<DueRun>> {
        self.inner.release_expired(before)
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        self.inner.close()
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
    fn add_push_jobs(&self, keys: Vec<JobKey>) -> StoreFuture<'_, ()> {
        self.inner.add_push_jobs(keys)
    }
    fn claim_push_jobs(
        &self,
        expired_before: Tick,
        lease_until: Tick,
        limit: usize,
    ) -> StoreFuture<'_, Vec<PushJob>> {
        let t = Instant::now();
        self.meters.claim_jobs.time(
            t,
            self.inner
                .claim_push_jobs(expired_before, lease_until, limit),
        )
    }
    fn push_retries(&self, key: JobKey, limit: usize) -> StoreFuture<'_, Vec<PushRetry>> {
        let t = Instant::now();
        self.meters
            .retries
            .time(t, self.inner.push_retries(key, limit))
    }
    fn checkpoint_push(&self, checkpoints: Vec<Checkpoint>) -> StoreFuture<'_, Vec<bool>> {
        let t = Instant::now();
        self.meters
            .checkpoint
            .time(t, self.inner.checkpoint_push(checkpoints))
    }
}

impl<R: DeviceRegistry> DeviceRegistry for Timed<R> {
    fn register(&self, registration: DeviceRegistration) -> StoreFuture<'_, ()> {
        self.inner.register(registration)
    }
    fn device<'a>(
        &'a self,
        device_id: &'a str,
    ) -> StoreFuture<'a, Option<Arc<DeviceRegistration>>> {
        self.inner.device(device_id)
    }
    fn unregister<'a>(&'a self, device_id: &'a str) -> StoreFuture<'a, bool> {
        self.inner.unregister(device_id)
    }
    fn channel_devices<'a>(
        &'a self,
        channel: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, Vec<Arc<DeviceRegistration>>> {
        let t = Instant::now();
        self.meters
            .page
            .time(t, self.inner.channel_devices(channel, after, limit))
    }
    fn remove_invalid(&self, tokens: Vec<InvalidToken>) -> StoreFuture<'_, Vec<bool>> {
        self.inner.remove_invalid(tokens)
    }
    fn purge_expired(&self, now: Tick, limit: usize) -> StoreFuture<'_, usize> {
        self.inner.purge_expired(now, limit)
    }
}

// ---------------------------------------------------------------------------
// Process measurements.

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), or 0.
fn rss_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Bytes this process caused to be written to storage (`write_bytes` of
/// `/proc/self/io`), or 0.
fn written_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Samples `VmRSS` every 5 ms on a thread of its own until stopped; resets
/// `VmHWM` when it starts.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start() -> Self {
        // "5" resets the peak RSS (VmHWM) to the current RSS.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = rss_kb("VmRSS");
                while !stop.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                    peak = peak.max(rss_kb("VmRSS"));
                }
                peak
            })
        };
        Self { stop, thread }
    }

    /// (peak sampled VmRSS, VmHWM), kB.
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Relaxed);
        let peak = self.thread.join().unwrap_or(0);
        (peak, rss_kb("VmHWM"))
    }
}
