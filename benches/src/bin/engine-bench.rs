//! `engine-bench`: the `herald` engine end to end, with its defaults (the
//! in-memory store, the in-process transport, the system clock) on a
//! two-worker multi-thread tokio runtime.
//!
//! ```text
//! cargo run --release -p herald-benches --bin engine-bench -- [--quick] [--runs K] [--rounds R]
//!     [--only publish,fanout,lateness] [--yield-every Y] [--retention R] [--groups-only]
//! ```
//!
//! Three measurements, each checked (a wrong or missing delivery aborts the
//! run):
//!
//! * **publish**: N immediate publishes (1M; `--quick` 100k) to a channel
//!   with one subscriber, from 1 and then 2 publisher tasks, while a
//!   subscriber task drains the subscription. Rate = N / (first publish to
//!   last message received). Every message must arrive exactly once, in each
//!   publisher's order, with no lag (the transport buffers 2^20 per
//!   subscription). A publisher task yields every Y publishes (default 64):
//!   `Engine::publish` with the in-memory store never waits, and tokio puts
//!   the subscriber task it wakes in the waking worker's LIFO slot, which no
//!   other worker may steal, so with `--yield-every 0` the subscriber only
//!   runs once its publisher is done. K runs per publisher count (default 3).
//!   `--retention R` gives the publish and lateness engines a
//!   `MemoryStore::with_retention(R)` instead of the default (1M finished
//!   records kept for status queries).
//! * **fanout**: one message to N = 10k, then 100k subscriptions of one
//!   channel, R rounds (default 20). (i) hand-off: N / the time of the
//!   `Engine::publish` call, nobody waiting (the transport appends to every
//!   subscription's buffer inside that call); the buffers are drained and
//!   checked after each round, untimed. (ii) end to end: N tasks, each
//!   awaiting `recv()`; time from the start of `publish` until the last task
//!   has the message (it stamps the time; an atomic counter finds the last).
//!   Each round starts once every task is parked in `recv()`. (iii) end to
//!   end through subscription groups: the N subscriptions spread over 4
//!   inboxes (`Engine::subscribe_to`, in blocks of N/4), each drained by one
//!   task, first with `Inbox::recv_many` (an item per delivery), then with
//!   `Inbox::recv_batch` (a run once with its subscriptions); every delivery
//!   is checked (the right round, each subscription exactly once per round,
//!   nothing left over); time from the start of `publish` until the last
//!   delivery is received. Each round starts once every task is parked.
//!   `--groups-only` runs (iii) with `recv_batch` alone (for profiling).
//! * **lateness**: N scheduled messages (1M; `--quick` 100k) with
//!   `publishAt` uniform over 60 s (`--quick` 10 s) at 1 ms resolution,
//!   starting 5 s (`--quick` 2 s) after the run starts, so publishing ends
//!   before the first is due. One subscriber task records, per message, the
//!   receive lateness (wall clock at receipt, µs, minus `publishAt`) and the
//!   firing lateness (the run's `timestamp`, the ms the driver fired it at,
//!   minus `publishAt`).
//!
//!   A control task on the same runtime sleeps to every next whole ms with
//!   tokio's timer meanwhile: its lateness is the floor for anything that
//!   timer wakes, on this machine at that moment.
//!
//! The last line is machine-readable: A is the median run of the faster
//! publisher count, B the median end-to-end round (ii) at 100k (a task per
//! subscription), E the median end-to-end round (iii) at 100k through
//! subscription groups with `recv_batch`, C and D the
//! receive-side p99 and max in ms (what a subscriber observes):
//!
//! ```text
//! engine publish_per_s=A fanout_per_s=B fanout_e2e_per_s=E lateness_p99_ms=C lateness_max_ms=D
//! ```

use std::future::{Future, poll_fn};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use herald::{
    DeliveredMessage, DeliveryOptions, Engine, Inbox, InboxBatchItem, InboxItem, InboxLimits,
    Membership, MemoryStore, MessageId, PublishOptions, PublishStatus, Subscription,
    SubscriptionId,
};
use herald_benches::{DEFAULT_SEED, SplitMix64};
use serde_json::Value;
use tokio::sync::Notify;

/// Worker threads of the runtime everything runs on.
const WORKERS: usize = 2;
/// Publisher task counts in the publish runs.
const PUBLISHERS: [usize; 2] = [1, 2];
/// Subscriptions in the fan-out runs; the last is the headline.
const FANOUT_SIZES: [usize; 2] = [10_000, 100_000];
/// Per-subscription buffer for the publish and lateness runs: more than
/// either sends, so nothing can lag.
const BIG_CAPACITY: usize = 1 << 20;

fn main() -> ExitCode {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    let sizes = Sizes::new(args.quick);
    print_machine(&args, &sizes);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let wall = Instant::now();

    let publish = args.runs_part("publish").then(|| {
        let mut runs = Vec::new();
        for publishers in PUBLISHERS {
            for _ in 0..args.runs {
                runs.push(rt.block_on(publish_run(sizes.publishes, publishers, &args)));
            }
        }
        print_publish(&runs, &args);
        runs
    });
    let fanout = args.runs_part("fanout").then(|| {
        if args.groups_only {
            // For profiling the group path alone: no table, no summary.
            for n in FANOUT_SIZES {
                let g = rt.block_on(fanout_groups(n, args.rounds, Receive::Batch));
                println!(
                    "N={n} (iii) end to end, {GROUPS} groups, recv_batch: median {:.0} deliveries/s",
                    g.median_rate()
                );
            }
            return None;
        }
        let mut rows = Vec::new();
        for n in FANOUT_SIZES {
            let handoff = rt.block_on(fanout_handoff(n, args.rounds));
            let e2e = rt.block_on(fanout_e2e(n, args.rounds));
            let many = rt.block_on(fanout_groups(n, args.rounds, Receive::Many));
            let groups = rt.block_on(fanout_groups(n, args.rounds, Receive::Batch));
            rows.push(FanoutRow {
                handoff,
                e2e,
                many,
                groups,
            });
        }
        print_fanout(&rows);
        rows.pop()
    });
    let lateness = args.runs_part("lateness").then(|| {
        let l = rt.block_on(lateness_run(&sizes, &args));
        l.print();
        l
    });
    println!(
        "total wall time {:.1?}; load average now {}",
        wall.elapsed(),
        loadavg()
    );
    println!();

    let (Some(publish), Some(fanout), Some(lateness)) = (publish, fanout.flatten(), lateness)
    else {
        println!("(no summary line: it needs publish, fanout and lateness)");
        return ExitCode::SUCCESS;
    };
    // The publisher count whose median run is faster, and that median.
    let (publishers, publish_rate) = PUBLISHERS
        .iter()
        .map(|&p| {
            let rates: Vec<f64> = publish
                .iter()
                .filter(|r| r.publishers == p)
                .map(PublishRun::rate)
                .collect();
            (p, median(&rates))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("a publisher count");
    println!(
        "publish_per_s: median run with {publishers} publisher task(s) (the faster count); \
         fanout_per_s: median end-to-end round (ii) at N=100000 (a task per subscription); \
         fanout_e2e_per_s: median end-to-end round (iii) at N=100000 ({GROUPS} subscription \
         groups); lateness: receive-side (what a subscriber sees), ms"
    );
    println!(
        "engine publish_per_s={:.0} fanout_per_s={:.0} fanout_e2e_per_s={:.0} lateness_p99_ms={:.3} \
         lateness_max_ms={:.3}",
        publish_rate,
        fanout.e2e.median_rate(),
        fanout.groups.median_rate(),
        lateness.receive_ms(0.99),
        lateness.receive_ms(1.0),
    );
    ExitCode::SUCCESS
}

/// The parts, by the names `--only` takes.
const PARTS: [&str; 3] = ["publish", "fanout", "lateness"];

/// The herald engine end to end with its defaults (in-memory store,
/// in-process transport, system clock) on a two-worker tokio runtime:
/// publish rate, fan-out, and delivery lateness, each checked.
#[derive(Parser)]
#[command(name = "engine-bench")]
struct Args {
    /// Smaller runs (100k publishes and scheduled messages, lateness over
    /// 10 s): under a minute
    #[arg(long)]
    quick: bool,
    /// Publish runs per publisher count
    #[arg(long, value_name = "K", default_value_t = 3, value_parser = at_least_one)]
    runs: usize,
    /// Fan-out rounds per size
    #[arg(long, value_name = "R", default_value_t = 20, value_parser = at_least_one)]
    rounds: usize,
    /// Run only these parts (comma-separated); the summary line needs all
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        ignore_case = true,
        value_parser = PossibleValuesParser::new(PARTS).map(|s| s.to_lowercase()),
    )]
    only: Option<Vec<String>>,
    /// A publisher task yields every Y publishes (0: never)
    #[arg(long, value_name = "Y", default_value_t = 64)]
    yield_every: usize,
    /// Fan-out: only the subscription-group rounds (iii) with `recv_batch`
    /// (to profile them; no summary line)
    #[arg(long)]
    groups_only: bool,
    /// Finished records the publish and lateness stores keep
    /// (`MemoryStore::with_retention`) [default: the store's own, 1M]
    #[arg(long, value_name = "R", value_parser = at_least_one)]
    retention: Option<usize>,
}

impl Args {
    fn runs_part(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|x| x == name))
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|&k| k >= 1)
        .ok_or_else(|| "not a count of at least 1".to_owned())
}

/// How big each part is.
struct Sizes {
    publishes: usize,
    scheduled: usize,
    /// `publishAt` of the first scheduled message, after the start.
    lead_ms: u64,
    /// `publishAt` is uniform over this many ms after the lead.
    spread_ms: u64,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                publishes: 100_000,
                scheduled: 100_000,
                lead_ms: 2_000,
                spread_ms: 10_000,
            }
        } else {
            Self {
                publishes: 1_000_000,
                scheduled: 1_000_000,
                // 1M scheduled publishes take 2-4 s on the 2-vCPU VM.
                lead_ms: 5_000,
                spread_ms: 60_000,
            }
        }
    }
}

fn print_machine(args: &Args, sizes: &Sizes) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "engine-bench{}: {cores} cores ({model}); tokio multi-thread runtime, {WORKERS} workers; \
         herald Engine defaults (MemoryStore, InProcessTransport, SystemClock)",
        if args.quick { " --quick" } else { "" }
    );
    println!("load average at start: {}", loadavg());
    println!(
        "publish: {} immediate publishes x {} run(s) per publisher count, yield every {}, store {}; \
         fanout: {:?} subscriptions x {} rounds; lateness: {} messages over {} s from +{} s",
        sizes.publishes,
        args.runs,
        args.yield_every,
        args.retention.map_or_else(
            || "MemoryStore::new()".to_owned(),
            |r| format!("MemoryStore::with_retention({r})")
        ),
        FANOUT_SIZES,
        args.rounds,
        sizes.scheduled,
        sizes.spread_ms / 1000,
        sizes.lead_ms / 1000,
    );
    println!();
}

fn fail(part: &str, msg: &str) -> ! {
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!! {part}: WRONG RESULT: {msg}");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    std::process::exit(1);
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

fn best(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NAN, f64::max)
}

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The 1-, 5- and 15-minute load averages (other jobs share this VM).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The default engine, but with a transport buffer of `capacity` runs and
/// the store's retention if asked for, once its driver has loaded the
/// store: a publish that races the driver's start-up reload can be
/// delivered twice (see `a_publish_racing_the_start_up_reload_is_delivered_once`
/// in `herald`).
async fn engine_with(capacity: usize, retention: Option<usize>) -> Engine {
    let b = Engine::builder().subscription_limits(InboxLimits::messages(capacity));
    let engine = match retention {
        Some(r) => b.store(MemoryStore::with_retention(r)),
        None => b,
    }
    .build();
    engine.settle().await;
    engine
}

// ---------------------------------------------------------------- publish

struct PublishRun {
    publishers: usize,
    n: usize,
    /// First publish to last message received.
    elapsed: Duration,
    /// First publish to the last publish call returning.
    publishing: Duration,
}

impl PublishRun {
    fn rate(&self) -> f64 {
        self.n as f64 / self.elapsed.as_secs_f64()
    }
    fn call_rate(&self) -> f64 {
        self.n as f64 / self.publishing.as_secs_f64()
    }
}

/// What a publisher task reports.
struct Published {
    first: Instant,
    last: Instant,
    delivered: u64,
}

async fn publish_run(n: usize, publishers: usize, args: &Args) -> PublishRun {
    let yield_every = args.yield_every;
    let engine = engine_with(BIG_CAPACITY, args.retention).await;
    let mut sub = engine.subscribe("bench", None).expect("subscribe");
    let per = n / publishers;
    let n = per * publishers;

    let receiver = tokio::spawn(async move {
        // Message p * per + i is publisher p's i-th: each publisher's must
        // arrive in order, each exactly once.
        let mut next = vec![0; publishers];
        for _ in 0..n {
            match sub.recv().await {
                Some(Ok(m)) => {
                    let seq = m.message().get().parse::<u64>().expect("a number") as usize;
                    let (p, i) = (seq / per, seq % per);
                    if p >= publishers || next[p] != i {
                        fail(
                            "publish",
                            &format!(
                                "got message {seq}, expected publisher {p}'s #{}",
                                next[p.min(publishers - 1)]
                            ),
                        );
                    }
                    next[p] += 1;
                }
                Some(Err(lag)) => fail("publish", &format!("the subscriber lagged: {lag}")),
                None => fail("publish", "the subscription ended early"),
            }
        }
        let last = Instant::now();
        if let Some(extra) = sub.try_recv() {
            fail("publish", &format!("more than {n} messages: {extra:?}"));
        }
        last
    });

    let tasks: Vec<_> = (0..publishers)
        .map(|p| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let first = Instant::now();
                let mut delivered = 0;
                for i in 0..per {
                    let seq = (p * per + i) as u64;
                    let st = engine
                        .publish(
                            "bench",
                            Value::from(seq).into(),
                            PublishOptions::default(),
                            DeliveryOptions::default(),
                        )
                        .await
                        .expect("publish");
                    if st.status != PublishStatus::Published {
                        fail("publish", &format!("status {:?}", st.status));
                    }
                    delivered += st.deliveries.pubsub;
                    if yield_every > 0 && (i + 1) % yield_every == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                Published {
                    first,
                    last: Instant::now(),
                    delivered,
                }
            })
        })
        .collect();
    let mut first = None::<Instant>;
    let mut last = None::<Instant>;
    for t in tasks {
        let p = t.await.expect("publisher task");
        if p.delivered != per as u64 {
            fail(
                "publish",
                &format!(
                    "a publisher's deliveries.pubsub sum to {} of {per}",
                    p.delivered
                ),
            );
        }
        first = Some(first.map_or(p.first, |f| f.min(p.first)));
        last = Some(last.map_or(p.last, |l| l.max(p.last)));
    }
    let received = receiver.await.expect("subscriber task");
    let (first, last) = (first.expect("a publisher"), last.expect("a publisher"));
    engine.shutdown().await;
    let run = PublishRun {
        publishers,
        n,
        elapsed: received - first,
        publishing: last - first,
    };
    eprintln!(
        "publish: {publishers} publisher(s), {n} messages: {:.2?} to the last receipt ({:.0}/s), \
         publish calls {:.0}/s",
        run.elapsed,
        run.rate(),
        run.call_rate()
    );
    run
}

fn print_publish(runs: &[PublishRun], args: &Args) {
    println!(
        "## publish: immediate publishes to a channel with 1 subscriber (checked: all received once, in order, no lag)"
    );
    println!(
        "{:<12} | {:>6} | {:>16} {:>16} | {:>18}",
        "publishers", "runs", "median msg/s", "best msg/s", "publish calls/s"
    );
    println!("{}", "-".repeat(78));
    for p in PUBLISHERS {
        let rs: Vec<&PublishRun> = runs.iter().filter(|r| r.publishers == p).collect();
        let rates: Vec<f64> = rs.iter().map(|r| r.rate()).collect();
        let calls: Vec<f64> = rs.iter().map(|r| r.call_rate()).collect();
        println!(
            "{:<12} | {:>6} | {:>16.0} {:>16.0} | {:>18.0}",
            p,
            rs.len(),
            median(&rates),
            best(&rates),
            median(&calls)
        );
    }
    println!(
        "msg/s = N / (first publish .. last message received by the subscriber task); publish calls/s = \
         N / (first publish .. last publish returned), median. Publishers yield every {} publishes.",
        args.yield_every
    );
    println!();
}

// ---------------------------------------------------------------- fan-out

/// Per-round times of one fan-out measurement.
struct Rounds {
    n: usize,
    /// The `publish` call.
    publish: Vec<Duration>,
    /// Publish start to the last receiver (end to end only).
    done: Vec<Duration>,
}

impl Rounds {
    fn rates(d: &[Duration], n: usize) -> Vec<f64> {
        d.iter().map(|d| n as f64 / d.as_secs_f64()).collect()
    }
    fn median_rate(&self) -> f64 {
        median(&Self::rates(&self.done, self.n))
    }
}

fn subscribe_many(engine: &Engine, n: usize) -> Vec<Subscription> {
    (0..n)
        .map(|_| engine.subscribe("fanout", None).expect("subscribe"))
        .collect()
}

async fn publish_round(engine: &Engine, round: usize) -> (Duration, MessageId, u64) {
    let t = Instant::now();
    let st = engine
        .publish(
            "fanout",
            Value::from(round as u64).into(),
            PublishOptions::default(),
            DeliveryOptions::default(),
        )
        .await
        .expect("publish");
    let d = t.elapsed();
    let id = st.message_id.parse().expect("a message id");
    (d, id, st.deliveries.pubsub)
}

/// (i) The publish call alone: nobody is waiting in `recv`.
async fn fanout_handoff(n: usize, rounds: usize) -> Rounds {
    let engine = engine_with(InboxLimits::default().max_messages, None).await;
    let mut subs = subscribe_many(&engine, n);
    let mut publish = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (d, id, delivered) = publish_round(&engine, round).await;
        publish.push(d);
        if delivered != n as u64 {
            fail(
                "fanout",
                &format!("publish reports {delivered} deliveries of {n}"),
            );
        }
        for (k, s) in subs.iter_mut().enumerate() {
            match s.try_recv() {
                Some(Ok(m))
                    if m.message_id() == id
                        && m.message().get().parse::<u64>().ok() == Some(round as u64) => {}
                other => fail(
                    "fanout",
                    &format!("subscription {k}, round {round}: got {other:?}"),
                ),
            }
            if let Some(extra) = s.try_recv() {
                fail(
                    "fanout",
                    &format!("subscription {k}, round {round}: a second message {extra:?}"),
                );
            }
        }
    }
    eprintln!("fanout (i) hand-off: {rounds} rounds done");
    engine.shutdown().await;
    Rounds {
        n,
        publish,
        done: Vec::new(),
    }
}

/// Shared by the 100k receiver tasks of the end-to-end fan-out.
struct Fan {
    n: usize,
    /// Receivers parked in `recv` (cumulative over rounds).
    armed: AtomicUsize,
    /// Messages received (cumulative over rounds).
    received: AtomicUsize,
    /// When the last receiver of the round got its message.
    done_at: Mutex<Option<Instant>>,
    done: Notify,
}

/// (ii) End to end: every subscription has a task waiting in `recv`.
async fn fanout_e2e(n: usize, rounds: usize) -> Rounds {
    let engine = engine_with(InboxLimits::default().max_messages, None).await;
    let subs = subscribe_many(&engine, n);
    let fan = Arc::new(Fan {
        n,
        armed: AtomicUsize::new(0),
        received: AtomicUsize::new(0),
        done_at: Mutex::new(None),
        done: Notify::new(),
    });
    let receivers: Vec<_> = subs
        .into_iter()
        .map(|mut sub| {
            let fan = fan.clone();
            tokio::spawn(async move {
                for round in 0..rounds {
                    let mut armed = false;
                    let got = poll_fn(|cx| {
                        let r = sub.poll_recv(cx);
                        if r.is_pending() && !armed {
                            armed = true;
                            fan.armed.fetch_add(1, Ordering::AcqRel);
                        }
                        r
                    })
                    .await;
                    if !armed {
                        // Ready on the first poll: count it as parked anyway
                        // (the publisher only waits for the count).
                        fan.armed.fetch_add(1, Ordering::AcqRel);
                    }
                    match got {
                        Some(Ok(m))
                            if m.message().get().parse::<u64>().ok() == Some(round as u64) => {}
                        other => return Err(format!("round {round}: got {other:?}")),
                    }
                    let before = fan.received.fetch_add(1, Ordering::AcqRel);
                    if before + 1 == fan.n * (round + 1) {
                        *fan.done_at.lock().expect("lock") = Some(Instant::now());
                        fan.done.notify_one();
                    }
                }
                match sub.try_recv() {
                    None => Ok(sub),
                    Some(extra) => Err(format!("a message after the last round: {extra:?}")),
                }
            })
        })
        .collect();

    let driver = {
        let fan = fan.clone();
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut publish = Vec::with_capacity(rounds);
            let mut done = Vec::with_capacity(rounds);
            for round in 0..rounds {
                // Every receiver parked in `recv` for this round.
                while fan.armed.load(Ordering::Acquire) < fan.n * (round + 1) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let start = Instant::now();
                let (d, _, delivered) = publish_round(&engine, round).await;
                if delivered != fan.n as u64 {
                    fail(
                        "fanout",
                        &format!("publish reports {delivered} deliveries of {}", fan.n),
                    );
                }
                fan.done.notified().await;
                let at = fan.done_at.lock().expect("lock").take().expect("stamped");
                publish.push(d);
                done.push(at - start);
                let got = fan.received.load(Ordering::Acquire);
                if got != fan.n * (round + 1) {
                    fail("fanout", &format!("round {round}: {got} receipts in total"));
                }
            }
            (publish, done)
        })
    };
    let (publish, done) = driver.await.expect("fan-out publisher");
    let mut subs = Vec::with_capacity(n);
    for r in receivers {
        match r.await.expect("receiver task") {
            Ok(sub) => subs.push(sub),
            Err(e) => fail("fanout", &e),
        }
    }
    eprintln!("fanout (ii) end to end: {rounds} rounds done");
    engine.shutdown().await;
    drop(subs);
    Rounds { n, publish, done }
}

/// Inboxes the group fan-out spreads its subscriptions over (one receiving
/// task each).
const GROUPS: usize = 4;

/// How a group's task takes its deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Receive {
    /// `Inbox::recv_many`: an `InboxItem` (a reference to the run) per
    /// delivery.
    Many,
    /// `Inbox::recv_batch`: a run once with its subscriptions.
    Batch,
}

/// Shared by the receiving tasks of the group fan-out.
struct GroupFan {
    n: usize,
    /// Receiving tasks parked in `recv_many`/`recv_batch` (cumulative over
    /// rounds).
    armed: AtomicUsize,
    /// Deliveries received (cumulative over rounds).
    received: AtomicUsize,
    /// When the last delivery of the round was received.
    done_at: Mutex<Option<Instant>>,
    done: Notify,
}

/// One group's check of its deliveries: each subscription gets each
/// round's message exactly once, in round order.
struct GroupCheck {
    group: usize,
    /// Rounds each subscription has received, by its id in the inbox.
    seen: Vec<u32>,
    /// The last run's id and round (the body is parsed once per run).
    last: Option<(MessageId, u32)>,
}

impl GroupCheck {
    fn round(&mut self, message: &DeliveredMessage) -> Result<u32, String> {
        match self.last {
            Some((id, r)) if id == message.message_id() => Ok(r),
            _ => {
                let body = message.message().get();
                let r = body
                    .parse::<u32>()
                    .map_err(|e| format!("group {}: body {body}: {e}", self.group))?;
                self.last = Some((message.message_id(), r));
                Ok(r)
            }
        }
    }

    fn receive(&mut self, subscription: SubscriptionId, round: u32) -> Result<(), String> {
        let k = subscription.get() as usize;
        match self.seen.get_mut(k) {
            Some(r) if *r == round => {
                *r += 1;
                Ok(())
            }
            other => Err(format!(
                "group {}, subscription {k}: round {round} after {other:?} rounds",
                self.group
            )),
        }
    }
}

/// Awaits `recv`, counting the task as parked (armed) once: when its first
/// poll is pending, or when it is ready at once.
async fn armed<F: Future>(fan: &GroupFan, recv: F) -> F::Output {
    let mut recv = std::pin::pin!(recv);
    let mut armed = false;
    let out = poll_fn(|cx| {
        let r = recv.as_mut().poll(cx);
        if r.is_pending() && !armed {
            armed = true;
            fan.armed.fetch_add(1, Ordering::AcqRel);
        }
        r
    })
    .await;
    if !armed {
        fan.armed.fetch_add(1, Ordering::AcqRel);
    }
    out
}

/// (iii) End to end through subscription groups: the N subscriptions are
/// spread over [`GROUPS`] inboxes (`Engine::subscribe_to`, in blocks), each
/// drained by one task (with `recv_many` or `recv_batch`), which checks
/// every delivery.
async fn fanout_groups(n: usize, rounds: usize, mode: Receive) -> Rounds {
    let engine = engine_with(InboxLimits::default().max_messages, None).await;
    let per = n.div_ceil(GROUPS);
    let limits = InboxLimits {
        max_messages: per,
        max_bytes: usize::MAX,
        max_subscriptions: per,
    };
    let fan = Arc::new(GroupFan {
        n,
        armed: AtomicUsize::new(0),
        received: AtomicUsize::new(0),
        done_at: Mutex::new(None),
        done: Notify::new(),
    });
    let mut receivers = Vec::with_capacity(GROUPS);
    for g in 0..GROUPS {
        let inbox = Inbox::new(limits);
        let size = per.min(n - (g * per).min(n));
        let members: Vec<Membership> = (0..size)
            .map(|_| {
                engine
                    .subscribe_to(&inbox, "fanout", None)
                    .expect("subscribe")
            })
            .collect();
        let fan = fan.clone();
        receivers.push(tokio::spawn(async move {
            let mut check = GroupCheck {
                group: g,
                seen: vec![0; size],
                last: None,
            };
            let mut items: Vec<InboxItem> = Vec::new();
            let mut batch: Vec<InboxBatchItem> = Vec::new();
            let mut got = 0usize;
            while got < size * rounds {
                let mut here = 0;
                match mode {
                    Receive::Many => {
                        armed(&fan, inbox.recv_many(&mut items, usize::MAX)).await;
                        for item in items.drain(..) {
                            let InboxItem::Message {
                                subscription,
                                message,
                            } = item
                            else {
                                return Err(format!("group {g}: got {item:?}"));
                            };
                            let round = check.round(&message)?;
                            check.receive(subscription, round)?;
                            here += 1;
                        }
                    }
                    Receive::Batch => {
                        armed(&fan, inbox.recv_batch(&mut batch, usize::MAX)).await;
                        for item in batch.drain(..) {
                            let InboxBatchItem::Message {
                                subscriptions,
                                message,
                            } = item
                            else {
                                return Err(format!("group {g}: got {item:?}"));
                            };
                            let round = check.round(&message)?;
                            for s in &subscriptions {
                                check.receive(*s, round)?;
                            }
                            here += subscriptions.len();
                        }
                    }
                }
                got += here;
                let before = fan.received.fetch_add(here, Ordering::AcqRel);
                if here > 0 && (before + here).is_multiple_of(fan.n) {
                    *fan.done_at.lock().expect("lock") = Some(Instant::now());
                    fan.done.notify_one();
                }
            }
            if check.seen.iter().any(|&r| r as usize != rounds) {
                return Err(format!("group {g}: a subscription missed a round"));
            }
            match inbox.try_recv() {
                None => Ok(members),
                Some(extra) => Err(format!(
                    "group {g}: an item after the last round: {extra:?}"
                )),
            }
        }));
    }

    let mut publish = Vec::with_capacity(rounds);
    let mut done = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // Every receiving task parked for this round.
        while fan.armed.load(Ordering::Acquire) < GROUPS * (round + 1) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let start = Instant::now();
        let (d, _, delivered) = publish_round(&engine, round).await;
        if delivered != n as u64 {
            fail(
                "fanout",
                &format!("publish reports {delivered} deliveries of {n}"),
            );
        }
        fan.done.notified().await;
        let at = fan.done_at.lock().expect("lock").take().expect("stamped");
        publish.push(d);
        done.push(at - start);
        let got = fan.received.load(Ordering::Acquire);
        if got != n * (round + 1) {
            fail("fanout", &format!("round {round}: {got} receipts in total"));
        }
    }
    let mut members = Vec::with_capacity(n);
    for r in receivers {
        match r.await.expect("receiver task") {
            Ok(m) => members.extend(m),
            Err(e) => fail("fanout", &e),
        }
    }
    eprintln!("fanout (iii) groups, {mode:?}: {rounds} rounds done");
    engine.shutdown().await;
    drop(members);
    Rounds { n, publish, done }
}

/// One fan-out size's measurements.
struct FanoutRow {
    /// (i)
    handoff: Rounds,
    /// (ii)
    e2e: Rounds,
    /// (iii) with `recv_many`
    many: Rounds,
    /// (iii) with `recv_batch`
    groups: Rounds,
}

fn print_fanout(rows: &[FanoutRow]) {
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let row = |label: String, n: usize, d: &[Duration]| {
        let rates = Rounds::rates(d, n);
        let mut sorted: Vec<f64> = d.iter().map(ms).collect();
        sorted.sort_by(f64::total_cmp);
        println!(
            "{:<50} | {:>9.2} | {:>9.2} {:>9.2} {:>9.2} | {:>14.0} {:>14.0}",
            label,
            ms(&d[0]),
            sorted[0],
            median(&sorted),
            sorted[sorted.len() - 1],
            median(&rates),
            best(&rates),
        );
    };
    let rounds = rows.first().map_or(0, |r| r.handoff.publish.len());
    println!(
        "## fanout: 1 message to N subscriptions of one channel, {rounds} rounds (checked: each \
         subscription got each round's message exactly once)"
    );
    println!(
        "{:<50} | {:>9} | {:>9} {:>9} {:>9} | {:>14} {:>14}",
        "", "round1 ms", "min ms", "median ms", "max ms", "median deliv/s", "best deliv/s"
    );
    println!("{}", "-".repeat(130));
    for FanoutRow {
        handoff,
        e2e,
        many,
        groups,
    } in rows
    {
        let n = handoff.n;
        row(
            format!("N={n} (i) hand-off: publish, nobody waiting"),
            n,
            &handoff.publish,
        );
        row(
            format!("N={n} (ii) publish call, {n} tasks waiting"),
            n,
            &e2e.publish,
        );
        row(
            format!("N={n} (ii) end to end: publish..last recv"),
            n,
            &e2e.done,
        );
        row(
            format!("N={n} (iii) end to end: {GROUPS} groups, recv_many"),
            n,
            &many.done,
        );
        row(
            format!("N={n} (iii) publish call, {GROUPS} groups waiting"),
            n,
            &groups.publish,
        );
        row(
            format!("N={n} (iii) end to end: {GROUPS} groups, recv_batch"),
            n,
            &groups.done,
        );
    }
    println!(
        "(i) = N / duration of Engine::publish (the transport appends to every buffer inside it); \
         (ii) = N / (publish start .. the last of N tasks awaiting recv() has it). round1 is the \
         first round (cold buffers); rates are over all rounds. (iii) = N / (publish start .. the \
         last delivery received), the N subscriptions spread over {GROUPS} inboxes, each drained \
         by one task (every delivery checked), taking an item per delivery (recv_many) or a run \
         once with its subscriptions (recv_batch)."
    );
    println!(
        "fanout_per_s below is (ii) end to end at N=100000, fanout_e2e_per_s (iii) recv_batch, \
         median round."
    );
    println!();
}

// ---------------------------------------------------------------- lateness

struct Lateness {
    n: usize,
    /// Receive lateness, µs, sorted.
    receive_us: Vec<i64>,
    /// Firing lateness, ms, sorted.
    fire_ms: Vec<i64>,
    /// The control task's lateness, µs, sorted.
    control_us: Vec<i64>,
    /// Statuses already purged by the store's retention.
    purged: usize,
    publishing: Duration,
    /// Publishing ended this long before the first `publishAt` (negative:
    /// after).
    margin_ms: i64,
}

fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

impl Lateness {
    fn receive_ms(&self, q: f64) -> f64 {
        quantile(&self.receive_us, q) as f64 / 1e3
    }

    fn print(&self) {
        println!(
            "## lateness: {} scheduled messages on the real clock (checked: each received exactly once; \
             status published with 1 run, or already purged by the store's retention: {})",
            self.n, self.purged
        );
        println!(
            "publishing took {:.2?} ({:.0} scheduled publishes/s), ending {} ms before the first publishAt",
            self.publishing,
            self.n as f64 / self.publishing.as_secs_f64(),
            self.margin_ms
        );
        if self.margin_ms < 0 {
            println!("WARNING: publishing was still going when the first messages came due");
        }
        println!(
            "{:<40} | {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8}",
            "", "min", "p50", "p90", "p99", "p99.9", "max", "> 2 ms", "> 10 ms"
        );
        println!("{}", "-".repeat(122));
        let r = &self.receive_us;
        let over = |v: &[i64], limit: i64| v.iter().filter(|&&x| x > limit).count();
        println!(
            "{:<40} | {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} | {:>8} {:>8}",
            "receive: wall clock at recv - publishAt",
            r[0] as f64 / 1e3,
            self.receive_ms(0.5),
            self.receive_ms(0.9),
            self.receive_ms(0.99),
            self.receive_ms(0.999),
            self.receive_ms(1.0),
            over(r, 2_000),
            over(r, 10_000),
        );
        let f = &self.fire_ms;
        println!(
            "{:<40} | {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8}",
            "firing: run timestamp - publishAt",
            f[0],
            quantile(f, 0.5),
            quantile(f, 0.9),
            quantile(f, 0.99),
            quantile(f, 0.999),
            quantile(f, 1.0),
            over(f, 2),
            over(f, 10),
        );
        let c = &self.control_us;
        let cq = |q: f64| quantile(c, q) as f64 / 1e3;
        println!(
            "{:<40} | {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} | {:>8} {:>8}",
            "control: tokio sleep to next whole ms",
            c[0] as f64 / 1e3,
            cq(0.5),
            cq(0.9),
            cq(0.99),
            cq(0.999),
            cq(1.0),
            over(c, 2_000),
            over(c, 10_000),
        );
        println!(
            "ms. receive: SystemTime (µs) when the subscriber task got the message minus publishAt (whole ms); \
             firing: the ms (SystemClock, truncated) the driver delivered it at minus publishAt;"
        );
        println!(
            "control: {} sleeps of a task on the same runtime to the next whole ms, while the messages fired \
             (what tokio's 1 ms timer and this VM allow).",
            c.len()
        );
        println!();
    }
}

async fn lateness_run(sizes: &Sizes, args: &Args) -> Lateness {
    let n = sizes.scheduled;
    let engine = engine_with(BIG_CAPACITY, args.retention).await;
    let mut sub = engine.subscribe("late", None).expect("subscribe");
    let base = wall_ms() + sizes.lead_ms;
    let mut rng = SplitMix64::new(DEFAULT_SEED);
    let due: Arc<Vec<u64>> = Arc::new((0..n).map(|_| base + rng.below(sizes.spread_ms)).collect());

    let receiver = {
        let due = due.clone();
        tokio::spawn(async move {
            let mut receive_us = Vec::with_capacity(n);
            let mut fire_ms = Vec::with_capacity(n);
            let mut seen = vec![false; n];
            while receive_us.len() < n {
                match sub.recv().await {
                    Some(Ok(m)) => {
                        let now = wall_us();
                        let i = m.message().get().parse::<u64>().expect("a number") as usize;
                        let at = m.publish_at().expect("publishAt").timestamp_millis();
                        if i >= n || std::mem::replace(&mut seen[i], true) {
                            fail("lateness", &format!("message {i} twice or unknown"));
                        }
                        if at as u64 != due[i] {
                            fail(
                                "lateness",
                                &format!("message {i}: publishAt {at}, sent {}", due[i]),
                            );
                        }
                        receive_us.push(now - at * 1000);
                        fire_ms.push(m.timestamp_millis() as i64 - at);
                    }
                    Some(Err(lag)) => fail("lateness", &format!("the subscriber lagged: {lag}")),
                    None => fail("lateness", "the subscription ended early"),
                }
            }
            (sub, receive_us, fire_ms)
        })
    };

    let start = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for (i, &at) in due.iter().enumerate() {
        let delivery = DeliveryOptions {
            publish_at: chrono::DateTime::from_timestamp_millis(at as i64),
            ..DeliveryOptions::default()
        };
        let st = engine
            .publish(
                "late",
                Value::from(i as u64).into(),
                PublishOptions::default(),
                delivery,
            )
            .await
            .expect("publish");
        if st.status != PublishStatus::Scheduled {
            fail("lateness", &format!("message {i}: status {:?}", st.status));
        }
        ids.push(st.message_id);
        if (i + 1) % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let publishing = start.elapsed();
    let margin_ms = base as i64 - wall_ms() as i64;
    eprintln!("lateness: {n} scheduled in {publishing:.2?}; waiting for them to fire");

    // The control: a task on the same runtime sleeping to each next whole
    // ms with tokio's timer, the floor for anything woken by that timer.
    let stop = Arc::new(AtomicBool::new(false));
    let control = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut late = Vec::with_capacity(120_000);
            while !stop.load(Ordering::Relaxed) {
                let now = wall_us();
                let target = (now / 1000 + 1) * 1000;
                tokio::time::sleep(Duration::from_micros((target - now) as u64)).await;
                late.push(wall_us() - target);
            }
            late
        })
    };
    let (mut sub, mut receive_us, mut fire_ms) = receiver.await.expect("subscriber task");
    stop.store(true, Ordering::Relaxed);
    let mut control_us = control.await.expect("control task");
    control_us.sort_unstable();
    // Anything fired twice would be buffered by now (or soon).
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some(extra) = sub.try_recv() {
        fail("lateness", &format!("a message after all {n}: {extra:?}"));
    }
    if engine.scheduled_len() != 0 {
        fail(
            "lateness",
            &format!("{} runs left in the wheel", engine.scheduled_len()),
        );
    }
    // The store keeps about 1M finished records (per shard, so a few of
    // 1M can already be purged): `unknown` is allowed, and counted.
    let mut purged = 0;
    for id in &ids {
        let st = engine.message_status(id).await.expect("status");
        match st.status {
            PublishStatus::Published if st.deliveries.pubsub == 1 && st.deliveries.runs == 1 => {}
            PublishStatus::Unknown => purged += 1,
            _ => fail("lateness", &format!("message {id}: {st:?}")),
        }
    }
    engine.shutdown().await;
    receive_us.sort_unstable();
    fire_ms.sort_unstable();
    if fire_ms[0] < 0 || receive_us[0] < 0 {
        fail("lateness", "a message fired before its publishAt");
    }
    Lateness {
        n,
        receive_us,
        fire_ms,
        control_us,
        purged,
        publishing,
        margin_ms,
    }
}
