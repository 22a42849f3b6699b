//! The durable-store measurements `store-bench` and `server-bench` share:
//! the engine on a [`RedbStore`], checked.
//!
//! 1. [`durable_publish`]: P publisher tasks publish the N scheduled
//!    messages of a [`Plan`] through `Engine::publish` into a fresh store
//!    (each publish returns after its durable commit), then
//!    `Engine::shutdown`.
//! 2. [`restart`]: reopen the directory, build an engine on a
//!    [`ShiftedClock`] (nothing due yet), `settle()`: timed from before
//!    `RedbStore::open` until every pending message is back in the wheel.
//! 3. [`lateness`]: shift the clock so the first `publishAt` is 2 s away;
//!    all N fire on the real clock, each claimed and completed in the
//!    store; one subscriber records receive and firing lateness.
//!
//! Every step checks its result and returns `Err` on a wrong one (the
//! binaries print it and exit non-zero). Each prints its own report lines.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald::{Clock, DeliveryOptions, Engine, InboxLimits, PublishOptions, PublishStatus, Sleep};
use herald_core::Tick;
use herald_redb::RedbStore;
use serde_json::Value;

use crate::SplitMix64;

/// The thread name of `RedbStore`'s writer (as `/proc` shows it).
pub const WRITER: &str = "herald-redb-wri";

/// Wall-clock microseconds since the Unix epoch.
pub fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// `/proc/loadavg`'s three averages, or `?`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU time (user + system) of this process's thread named `name`, from
/// `/proc` (10 ms resolution); zero if not found.
pub fn thread_cpu(name: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        return stat_cpu(&stat);
    }
    Duration::ZERO
}

/// This process's CPU time (user + system, every thread), from
/// `/proc/self/stat` (10 ms resolution); zero if unreadable.
pub fn process_cpu() -> Duration {
    stat_cpu(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// CPU time (user + system, every thread) of process `pid`, from
/// `/proc/PID/stat` (10 ms resolution); zero if it is gone.
pub fn pid_cpu(pid: u32) -> Duration {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// CPU time of every process named `comm` (e.g. `postgres`: the server
/// and all its backends), summed; processes that ended are not counted,
/// so take it around a window in which none ends.
pub fn cpu_of_all(comm: &str) -> Duration {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    let mut total = Duration::ZERO;
    for p in procs.flatten() {
        if !p
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let name = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
        if name.trim() == comm {
            total += stat_cpu(&std::fs::read_to_string(p.path().join("stat")).unwrap_or_default());
        }
    }
    total
}

/// utime + stime of a `/proc/.../stat` line.
fn stat_cpu(stat: &str) -> Duration {
    // Fields after the `(comm)`: state is 3rd; utime 14th, stime 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The `q` quantile of `sorted` (nearest rank).
///
/// # Panics
///
/// If `sorted` is empty.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The system clock shifted by a settable offset (ms), sleeping at most
/// 1 s at a time (like `SystemClock`) so a shift is noticed within 1 s.
#[derive(Clone, Debug, Default)]
pub struct ShiftedClock {
    offset_ms: Arc<AtomicI64>,
}

impl ShiftedClock {
    /// The shifted time in µs.
    pub fn now_us(&self) -> i64 {
        wall_us() + self.offset_ms.load(Ordering::Relaxed) * 1_000
    }

    /// Makes the clock read `at_ms` now.
    pub fn set_now_ms(&self, at_ms: i64) {
        self.offset_ms
            .store(at_ms - wall_us() / 1_000, Ordering::Relaxed);
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

/// N scheduled messages: message `i` (its payload is `i`) is due at
/// `due[i]`, uniform over `spread_ms` from `base` (an hour from now).
#[derive(Clone, Debug)]
pub struct Plan {
    /// How many messages.
    pub n: usize,
    /// Publisher tasks.
    pub publishers: usize,
    /// The spread of `publishAt`, ms.
    pub spread_ms: u64,
    /// The earliest possible `publishAt` (wall ms, an hour ahead).
    pub base: u64,
    /// Each message's `publishAt`, wall ms.
    pub due: Arc<Vec<u64>>,
    /// The earliest `publishAt` drawn.
    pub first_due: u64,
}

impl Plan {
    /// A plan seeded with `seed`.
    pub fn new(n: usize, publishers: usize, spread_ms: u64, seed: u64) -> Self {
        let base = (wall_us() / 1_000) as u64 + 3_600_000;
        let mut rng = SplitMix64::new(seed);
        let due: Arc<Vec<u64>> = Arc::new((0..n).map(|_| base + rng.below(spread_ms)).collect());
        let first_due = due.iter().copied().min().unwrap_or(base);
        Self {
            n,
            publishers: publishers.max(1),
            spread_ms,
            base,
            due,
            first_due,
        }
    }
}

/// What [`durable_publish`] measured.
#[derive(Clone, Debug)]
pub struct PublishReport {
    /// Durable scheduled publishes per second.
    pub rate: f64,
    /// First publish to last answer.
    pub elapsed: Duration,
    /// The store file's size afterwards.
    pub file_bytes: u64,
    /// Publishes per commit of the store's writer (its average group).
    pub per_commit: f64,
    /// The memory the messages cost while pending, per pending message:
    /// see [`Memory::per_pending`].
    pub rss_bytes_per_pending: f64,
    /// Where the memory went.
    pub memory: Memory,
    /// Where the writer's time went, per transaction.
    pub round: Round,
}

/// One group-commit round of the store's writer during [`durable_publish`],
/// µs per transaction on average: the callers the last commit answered come
/// back (`waiting`), their requests are applied as they arrive
/// (`gathering`), the transaction commits (`committing`: page writes and
/// fsync) and its callers are answered (`answering`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Round {
    /// From the last answers to the next transaction's first request:
    /// the wall time the writer was neither applying, committing nor
    /// answering.
    pub waiting_us: f64,
    /// From a transaction's first request to its commit.
    pub gathering_us: f64,
    /// In redb's durable commit.
    pub committing_us: f64,
    /// Answering the transaction's callers.
    pub answering_us: f64,
}

impl Round {
    /// The whole round.
    pub fn total_us(&self) -> f64 {
        self.waiting_us + self.gathering_us + self.committing_us + self.answering_us
    }
}

/// The process's memory grown while [`durable_publish`] published N
/// messages (all pending at the end), measured before the engine shuts
/// down.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Pending messages.
    pub n: u64,
    /// Resident set (`VmRSS`) after the publishes minus before them.
    pub rss_grown: u64,
    /// What redb's page cache held at the end (`RedbStore::cache_used_bytes`):
    /// bounded by `cache_bytes`, whatever N.
    pub cache_used: u64,
    /// The cache's configured bound (`RedbOptions::cache_bytes`).
    pub cache_bytes: u64,
    /// What the engine reports it holds for its pending runs
    /// (`Engine::scheduled_bytes`: the wheel and the id index).
    pub engine: u64,
    /// glibc malloc's bytes in use, grown (`None`: not glibc).
    pub heap_grown: Option<i64>,
    /// glibc malloc's freed-but-kept bytes, grown.
    pub free_kept_grown: Option<i64>,
}

impl Memory {
    /// `(rss_grown - cache_used) / n`: the resident memory the pending
    /// messages cost on top of redb's page cache (a fixed, configured
    /// amount once full; subtracted as much as it held, never more), the
    /// allocator's slack included.
    pub fn per_pending(&self) -> f64 {
        self.rss_grown.saturating_sub(self.cache_used) as f64 / self.n.max(1) as f64
    }

    /// The report lines.
    pub fn print(&self) {
        let n = self.n.max(1) as f64;
        let mb = |b: u64| b as f64 / 1e6;
        println!(
            "memory: resident set grew {:.1} MB while publishing ({:.0} B per pending message); \
             redb's page cache holds {:.1} MB of its {:.0} MB bound ({:.0} B per pending message)",
            mb(self.rss_grown),
            self.rss_grown as f64 / n,
            mb(self.cache_used),
            mb(self.cache_bytes),
            self.cache_used as f64 / n
        );
        if let (Some(heap), Some(kept)) = (self.heap_grown, self.free_kept_grown) {
            println!(
                "memory: malloc in use grew {:.1} MB ({:.0} B per pending message; redb's cache is \
                 part of it), freed-but-kept grew {:.1} MB ({:.0} B per pending message)",
                heap as f64 / 1e6,
                heap as f64 / n,
                kept as f64 / 1e6,
                kept as f64 / n
            );
        }
        println!(
            "memory: the engine's wheel and id index {:.1} MB ({:.0} B per pending message)",
            mb(self.engine),
            self.engine as f64 / n
        );
        println!(
            "memory: rss_bytes_per_pending = (resident set grown - redb's cache in use) / N = \
             ({:.1} MB - {:.1} MB) / {} = {:.0} B",
            mb(self.rss_grown),
            mb(self.cache_used),
            self.n,
            self.per_pending()
        );
    }
}

/// This process's resident set size, bytes (`VmRSS`), or 0.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Publishes `plan` into a fresh `RedbStore` in `dir` from
/// `plan.publishers` tasks (message `i` by task `i % publishers`), checks
/// every answer is `scheduled`, shuts the engine down. Prints the writer's
/// statistics and a `## durable publish` line.
///
/// # Errors
///
/// The store cannot be opened, a publish fails or is not `scheduled`.
pub async fn durable_publish(dir: &Path, plan: &Plan) -> Result<PublishReport, String> {
    durable_publish_with(dir, plan, herald_redb::DEFAULT_CACHE_BYTES).await
}

/// [`durable_publish`] on a store whose redb page cache is bounded by
/// `cache_bytes`; the report's [`Memory`] says where the memory went.
///
/// # Errors
///
/// As [`durable_publish`].
pub async fn durable_publish_with(
    dir: &Path,
    plan: &Plan,
    cache_bytes: usize,
) -> Result<PublishReport, String> {
    let n = plan.n;
    let options = herald_redb::RedbOptions {
        cache_bytes,
        ..herald_redb::RedbOptions::default()
    };
    let store = RedbStore::open_with(dir, options).map_err(|e| format!("publish: open: {e}"))?;
    let engine = Engine::builder().store(store.clone()).build();
    engine.settle().await;
    let publishers = plan.publishers;
    let cpu0 = thread_cpu(WRITER);
    let heap0 = crate::alloc::malloc_stats();
    let rss0 = rss_bytes();
    let ws0 = store.writer_stats();
    let start = Instant::now();
    publish_range(&engine, &plan.due, 0..n, publishers).await?;
    let elapsed = start.elapsed();
    let rss_grown = rss_bytes().saturating_sub(rss0);
    let heap1 = crate::alloc::malloc_stats();
    let grown = |f: fn(&crate::alloc::MallocStats) -> u64| {
        heap0.zip(heap1).map(|(a, b)| f(&b) as i64 - f(&a) as i64)
    };
    let memory = Memory {
        n: n as u64,
        rss_grown,
        cache_used: store.cache_used_bytes() as u64,
        cache_bytes: cache_bytes as u64,
        engine: engine.scheduled_bytes() as u64,
        heap_grown: grown(|m| m.in_use),
        free_kept_grown: grown(|m| m.free_kept),
    };
    let rss_bytes_per_pending = memory.per_pending();
    let rate = n as f64 / elapsed.as_secs_f64();
    let ws = store.writer_stats();
    let per_commit = ws.requests as f64 / ws.transactions.max(1) as f64;
    let cpu = thread_cpu(WRITER) - cpu0;
    let round = {
        let txns = ws.transactions.saturating_sub(ws0.transactions).max(1) as f64;
        let us = |d: Duration| d.as_secs_f64() * 1e6 / txns;
        let busy = ws.busy.saturating_sub(ws0.busy);
        let committing = ws.committing.saturating_sub(ws0.committing);
        let answering = ws.answering.saturating_sub(ws0.answering);
        Round {
            waiting_us: us(elapsed.saturating_sub(busy + answering)),
            gathering_us: us(busy.saturating_sub(committing)),
            committing_us: us(committing),
            answering_us: us(answering),
        }
    };
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
    println!(
        "writer round: {:.0} µs per commit = waiting for the first caller back {:.0} + gathering \
         and applying the requests as they come {:.0} + durable commit {:.0} + answering {:.0}",
        round.total_us(),
        round.waiting_us,
        round.gathering_us,
        round.committing_us,
        round.answering_us
    );
    engine.shutdown().await;
    drop(engine);
    drop(store);
    let file_bytes = std::fs::metadata(dir.join(herald_redb::FILE_NAME)).map_or(0, |m| m.len());
    println!(
        "## durable publish: {n} scheduled publishes in {elapsed:.2?} = {rate:.0}/s \
         ({publishers} tasks; each acknowledged after its commit); file {:.0} MB ({:.0} B/message)",
        file_bytes as f64 / 1e6,
        file_bytes as f64 / n.max(1) as f64
    );
    memory.print();
    Ok(PublishReport {
        rate,
        elapsed,
        file_bytes,
        per_commit,
        rss_bytes_per_pending,
        memory,
        round,
    })
}

/// Publishes messages `range` of a plan (message `i` due at `due[i]`, its
/// payload `i`) from `publishers` tasks (message `i` by task `i %
/// publishers`), each waiting for its answer before its next publish;
/// checks every answer is `scheduled`.
///
/// # Errors
///
/// A publish fails or is not `scheduled`.
pub async fn publish_range(
    engine: &Engine,
    due: &Arc<Vec<u64>>,
    range: std::ops::Range<usize>,
    publishers: usize,
) -> Result<(), String> {
    let publishers = publishers.max(1);
    let tasks: Vec<_> = (0..publishers)
        .map(|p| {
            let engine = engine.clone();
            let due = due.clone();
            let end = range.end.min(due.len());
            let mut i = range.start + p;
            tokio::spawn(async move {
                while i < end {
                    let delivery = DeliveryOptions {
                        publish_at: chrono::DateTime::from_timestamp_millis(due[i] as i64),
                        ..DeliveryOptions::default()
                    };
                    let st = engine
                        .publish(
                            "bench",
                            Value::from(i as u64).into(),
                            PublishOptions::default(),
                            delivery,
                        )
                        .await
                        .map_err(|e| format!("publish: message {i}: {e}"))?;
                    if st.status != PublishStatus::Scheduled {
                        return Err(format!("publish: message {i}: {st:?}"));
                    }
                    i += publishers;
                }
                Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| format!("publish: task: {e}"))??;
    }
    Ok(())
}

/// An engine reopened on a plan's directory by [`restart`].
#[derive(Debug)]
pub struct Restarted {
    /// The engine (on `clock`, an in-process transport that holds N).
    pub engine: Engine,
    /// Its store.
    pub store: RedbStore,
    /// Its clock: nothing is due yet.
    pub clock: ShiftedClock,
    /// `RedbStore::open` until `settle()` returned.
    pub restart: Duration,
}

/// Reopens `dir` and reloads `plan`'s messages: times `RedbStore::open` +
/// engine build + `settle()`; checks the wheel holds exactly `plan.n`.
/// Prints a `## restart` line.
///
/// # Errors
///
/// The store cannot be opened, or the wheel holds another count.
pub async fn restart(dir: &Path, plan: &Plan) -> Result<Restarted, String> {
    let n = plan.n;
    let clock = ShiftedClock::default();
    // Nothing is due at first: the reload only fills the wheel.
    clock.set_now_ms(plan.base as i64 - 3_600_000 - 600_000);
    let start = Instant::now();
    let store = RedbStore::open(dir).map_err(|e| format!("restart: reopen: {e}"))?;
    let opened = start.elapsed();
    let engine = Engine::builder()
        .clock(clock.clone())
        .store(store.clone())
        .subscription_limits(InboxLimits::messages(n + 1))
        .build();
    engine.settle().await;
    let restart = start.elapsed();
    if engine.scheduled_len() != n {
        return Err(format!(
            "restart: {} of {n} messages reloaded",
            engine.scheduled_len()
        ));
    }
    println!(
        "## restart with {n} pending: {restart:.3?} (RedbStore::open {opened:.3?}, then engine build + \
         reload until settle() returned)"
    );
    Ok(Restarted {
        engine,
        store,
        clock,
        restart,
    })
}

/// What [`lateness`] measured.
#[derive(Clone, Debug)]
pub struct LatenessReport {
    /// Receive lateness (shifted clock at receipt minus `publishAt`), µs,
    /// sorted.
    pub receive_us: Vec<i64>,
    /// Firing lateness (the run's timestamp minus `publishAt`), ms, sorted.
    pub fire_ms: Vec<i64>,
}

impl LatenessReport {
    /// The receive-side `q` quantile, ms.
    pub fn receive_ms(&self, q: f64) -> f64 {
        quantile(&self.receive_us, q) as f64 / 1e3
    }
}

/// Fires every message of `plan` on the real clock (shifted so the first
/// is due 2 s from now): checks each is received exactly once, none early,
/// and that afterwards the store has nothing pending and `plan.n` intact
/// records (plus `other_records` the caller added, none of them pending). Shuts the engine down. Prints the writer's statistics while
/// firing and a lateness table.
///
/// # Errors
///
/// A message is lost, duplicated, unknown or early; the subscription lags
/// or ends; the store disagrees afterwards.
pub async fn lateness(
    r: Restarted,
    plan: &Plan,
    other_records: u64,
) -> Result<LatenessReport, String> {
    let n = plan.n;
    let Restarted {
        engine,
        store,
        clock,
        ..
    } = r;
    let mut sub = engine
        .subscribe("bench", None)
        .map_err(|e| format!("lateness: subscribe: {e}"))?;
    let receiver = {
        let due = plan.due.clone();
        let clock = clock.clone();
        tokio::spawn(async move {
            let mut receive_us = Vec::with_capacity(n);
            let mut fire_ms = Vec::with_capacity(n);
            let mut seen = vec![false; n];
            while receive_us.len() < n {
                match sub.recv().await {
                    Some(Ok(m)) => {
                        let now = clock.now_us();
                        let i = m
                            .message()
                            .get()
                            .parse::<u64>()
                            .map_err(|_| "lateness: not a number")?
                            as usize;
                        if i >= n || std::mem::replace(&mut seen[i], true) {
                            return Err(format!("lateness: message {i} twice or unknown"));
                        }
                        let at = due[i] as i64;
                        receive_us.push(now - at * 1_000);
                        fire_ms.push(m.timestamp_millis() as i64 - at);
                    }
                    Some(Err(lag)) => return Err(format!("lateness: lagged: {lag}")),
                    None => return Err("lateness: the subscription ended".to_owned()),
                }
            }
            Ok((receive_us, fire_ms))
        })
    };
    // The first message is due 2 s from now.
    clock.set_now_ms(plan.first_due as i64 - 2_000);
    let firing = Instant::now();
    let ws0 = store.writer_stats();
    let cpu0 = thread_cpu(WRITER);
    let (mut receive_us, mut fire_ms) = receiver
        .await
        .map_err(|e| format!("lateness: receiver: {e}"))??;
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
    if receive_us.first().is_some_and(|&l| l < 0) || fire_ms.first().is_some_and(|&l| l < 0) {
        return Err("lateness: a message fired before its publishAt".to_owned());
    }
    // The last runs' completions are committed by the pass that delivered
    // them: `settle` waits for it.
    engine.settle().await;
    let check = Instant::now();
    let pending = herald::Store::pending(&store, None, 10)
        .await
        .map_err(|e| format!("lateness: pending: {e}"))?;
    if !pending.is_empty() {
        return Err(format!("lateness: {} records still pending", pending.len()));
    }
    let ids = store
        .check_records()
        .map_err(|e| format!("lateness: records damaged: {e}"))?
        .records;
    if ids != n as u64 + other_records {
        return Err(format!(
            "lateness: {ids} records for {n} messages and {other_records} others"
        ));
    }
    engine.shutdown().await;
    let report = LatenessReport {
        receive_us,
        fire_ms,
    };
    let r = |q: f64| report.receive_ms(q);
    let f = |q: f64| quantile(&report.fire_ms, q);
    println!(
        "## lateness: {n} messages fired over {fired_in:.1?} on the (shifted) real clock; checked: \
         each received once, store has 0 pending and {ids} intact records ({:.1?})",
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
    Ok(report)
}
