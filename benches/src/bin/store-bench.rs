//! `store-bench`: the `herald` engine on the durable store, `herald-redb`.
//!
//! ```text
//! cargo run --release -p herald-benches --bin store-bench -- [--quick] [--n N]
//!     [--publishers P] [--spread-s S] [--dir DIR] [--keep] [--publish-only]
//!     [--cache-mb MB] [--skip-raw] [--segments K] [--raw-shuffled]
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
//! After 1, **the store vs raw redb, paired in time**
//! (`herald_benches::raw_baseline::interleaved`): the same plan published
//! again into a fresh store in `DIR/vs-raw`, in K segments (`--segments`,
//! default 20); after each segment, its rows (read back from the file: the
//! same keys and bytes) inserted by one thread into a raw redb file
//! growing alongside, as many messages per durable commit as the store's
//! writer put in its average commit in that segment. `vs_raw_redb` = the
//! median over the segments of (the store's rate / raw redb's). Each pair
//! is measured within a fraction of a second, so a disk or a neighbour
//! that slows down for a few seconds slows both sides of the pairs it
//! falls in. (Segment edges cost the store something: each segment starts
//! with its publishers coming up and ends with the last ones, after the
//! engine idled while raw redb wrote; with 100k messages, 100 segments gave
//! lower medians than 20. At 20 segments an edge is ~1 commit in 80.)
//! (`--skip-raw` leaves it out: `vs_raw_redb=NaN`. `--raw-shuffled`
//! inserts each commit's messages in random order instead of by id: what
//! the writer got while ids were random within their millisecond, ~20 %
//! slower in redb.)
//!
//! And the memory the N pending messages cost, measured at the end of 1,
//! before the engine shuts down (`durable::Memory`):
//!
//! ```text
//! rss_bytes_per_pending = (VmRSS after the publishes - VmRSS before them
//!                          - the bytes redb's page cache holds then) / N
//! ```
//!
//! redb's page cache is bounded by `--cache-mb` (default 1024: herald-redb's
//! `DEFAULT_CACHE_BYTES`), a fixed amount whatever N; only what it holds is
//! subtracted (at most the bound), and the output says how much. Everything
//! else stays in: the engine's wheel and id index, malloc's freed-but-kept
//! memory after the publishes' burst (printed apart, from `mallinfo2`), the
//! store's bounded plan cache. With a cache smaller than the file the cache
//! is full and the figure is what each further pending message costs.
//!
//! The last line is machine-readable (lateness = receive-side p99):
//!
//! ```text
//! store durable_publish_per_s=A restart_1m_s=B lateness_p99_ms=C vs_raw_redb=D rss_bytes_per_pending=E
//! ```
//!
//! (`restart_1m_s` is the restart time of whatever N was; with `--quick` it
//! is the restart with 100k pending.)

use std::process::ExitCode;

use clap::Parser;
use herald_benches::DEFAULT_SEED;
use herald_benches::durable::{self, Plan, loadavg};
use herald_benches::raw_baseline;

const WORKERS: usize = 2;

struct Args {
    quick: bool,
    n: usize,
    publishers: usize,
    spread_ms: u64,
    dir: Option<std::path::PathBuf>,
    keep: bool,
    publish_only: bool,
    cache_bytes: usize,
    skip_raw: bool,
    segments: usize,
    raw_order: raw_baseline::RawOrder,
}

/// The herald engine on the durable store (herald-redb): durable publish
/// rate, restart time with everything pending, then delivery lateness on the
/// real clock, each checked.
#[derive(Parser)]
#[command(name = "store-bench")]
struct Flags {
    /// Smaller runs: 100k messages over 10 s
    #[arg(long)]
    quick: bool,
    /// Scheduled messages [default: 1M, --quick 100k]
    #[arg(long = "n", value_name = "N", value_parser = count)]
    n: Option<usize>,
    /// Publisher tasks
    #[arg(long, value_name = "P", default_value = "64", value_parser = count)]
    publishers: usize,
    /// publishAt is uniform over S seconds [default: 60, --quick 10]
    #[arg(long = "spread-s", value_name = "S", value_parser = count)]
    spread_s: Option<usize>,
    /// The data directory [default: a fresh one in the temporary directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
    /// Keep the data directory afterwards
    #[arg(long)]
    keep: bool,
    /// Stop after the durable publish
    #[arg(long)]
    publish_only: bool,
    /// redb's page cache bound, MB (MiB) [default: 1024, herald-redb's default]
    #[arg(long = "cache-mb", value_name = "MB")]
    cache_mb: Option<usize>,
    /// Leave out the raw redb baseline (vs_raw_redb=NaN)
    #[arg(long)]
    skip_raw: bool,
    /// Segments of the store-vs-raw-redb comparison
    #[arg(long, value_name = "K", default_value = "20", value_parser = count)]
    segments: usize,
    /// Raw redb inserts each commit's messages in random order, not by id
    #[arg(long)]
    raw_shuffled: bool,
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
        dir: f.dir,
        keep: f.keep,
        publish_only: f.publish_only,
        cache_bytes: f
            .cache_mb
            .map_or(herald_redb::DEFAULT_CACHE_BYTES, |mb| mb << 20),
        skip_raw: f.skip_raw,
        segments: f.segments,
        raw_order: if f.raw_shuffled {
            raw_baseline::RawOrder::Shuffled
        } else {
            raw_baseline::RawOrder::Id
        },
    }
}

/// A count (`parse_count`: 64, 100k, 1M) of at least 1.
fn count(s: &str) -> Result<usize, String> {
    herald_benches::parse_count(s)
        .filter(|&k| k >= 1)
        .ok_or_else(|| "not a count of at least 1, like 64, 100k or 1M".to_owned())
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

fn main() -> ExitCode {
    let args = parse_args();
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
        "{} scheduled messages from {} publisher tasks, publishAt over {} s; redb page cache bound \
         {} MiB; load average at start: {}",
        args.n,
        args.publishers,
        args.spread_ms / 1000,
        args.cache_bytes >> 20,
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
        "store durable_publish_per_s={:.0} restart_1m_s={:.3} lateness_p99_ms={:.3} \
         vs_raw_redb={:.2} rss_bytes_per_pending={:.0}",
        result.publish_rate,
        result.restart_s,
        result.lateness_p99_ms,
        result.vs_raw_redb,
        result.rss_bytes_per_pending
    );
    ExitCode::SUCCESS
}

struct Summary {
    publish_rate: f64,
    restart_s: f64,
    lateness_p99_ms: f64,
    vs_raw_redb: f64,
    rss_bytes_per_pending: f64,
}

async fn run(args: &Args, dir: &std::path::Path) -> Summary {
    let plan = Plan::new(args.n, args.publishers, args.spread_ms, DEFAULT_SEED);
    let published = durable::durable_publish_with(dir, &plan, args.cache_bytes)
        .await
        .unwrap_or_else(|e| fail("publish", &e));
    let vs_raw_redb = if args.skip_raw {
        f64::NAN
    } else {
        vs_raw(dir, args, &published).await
    };
    if args.publish_only {
        return Summary {
            publish_rate: published.rate,
            restart_s: f64::NAN,
            lateness_p99_ms: f64::NAN,
            vs_raw_redb,
            rss_bytes_per_pending: published.rss_bytes_per_pending,
        };
    }
    let restarted = durable::restart(dir, &plan)
        .await
        .unwrap_or_else(|e| fail("restart", &e));
    let restart_s = restarted.restart.as_secs_f64();
    let late = durable::lateness(restarted, &plan, 0)
        .await
        .unwrap_or_else(|e| fail("lateness", &e));
    Summary {
        publish_rate: published.rate,
        restart_s,
        lateness_p99_ms: late.receive_ms(0.99),
        vs_raw_redb,
        rss_bytes_per_pending: published.rss_bytes_per_pending,
    }
}

/// The store against raw redb, interleaved in `dir/vs-raw` (then
/// removed): prints the comparison and the per-commit split (herald's round
/// from the publish phase); returns the median of the segments' ratios.
async fn vs_raw(dir: &std::path::Path, args: &Args, published: &durable::PublishReport) -> f64 {
    let plan = Plan::new(args.n, args.publishers, args.spread_ms, DEFAULT_SEED);
    let vs_dir = dir.join("vs-raw");
    let _ = std::fs::remove_dir_all(&vs_dir);
    let paired = raw_baseline::interleaved(
        &vs_dir,
        &plan,
        args.segments,
        args.cache_bytes,
        args.raw_order,
    )
    .await
    .unwrap_or_else(|e| fail("raw redb", &e));
    let _ = std::fs::remove_dir_all(&vs_dir);
    let r = &published.round;
    println!(
        "## per commit: herald's round {:.0} µs (waiting {:.0} + gathering {:.0} + commit {:.0} + \
         answering {:.0}) vs raw redb's {:.0} µs (inserting {:.0} + commit {:.0})",
        r.total_us(),
        r.waiting_us,
        r.gathering_us,
        r.committing_us,
        r.answering_us,
        paired.raw_inserting_us + paired.raw_committing_us,
        paired.raw_inserting_us,
        paired.raw_committing_us
    );
    paired.median_ratio()
}
