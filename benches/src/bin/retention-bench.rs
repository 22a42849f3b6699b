//! `retention-bench`: does the `herald-redb` file stop growing under a
//! steady publish rate once retention purges what finished?
//!
//! ```text
//! cargo run --release -p herald-benches --bin retention-bench -- [--rate N]
//!     [--retention-s S] [--no-retention] [--duration-s D] [--body-bytes B]
//!     [--publishers P] [--sample-s T] [--dir DIR] [--keep]
//! ```
//!
//! An engine on a fresh `RedbStore` (system clock) with a short retention
//! (default 10 s) takes a steady rate (default 2000/s) of immediate
//! publishes (each finishes at once, so each becomes purgeable `retention`
//! later) of `B`-byte messages from `P` paced tasks, for `D` s. Every `T` s
//! it prints the file size, what was published and purged, and the
//! records still held (published − purged). `--no-retention` runs the same
//! with nothing purged, for comparison.
//!
//! Checked: every publish is acknowledged `published`; with retention,
//! something was purged and the records held stay near rate × retention
//! (at most twice that, plus one sample). The last line is
//! machine-readable:
//!
//! ```text
//! retention file_mb_at_2r=A file_mb_end=B growth_after_2r_pct=C held_end=D
//! ```
//!
//! (`file_mb_at_2r`: the file size at twice the retention, when purging
//! has been going on for a whole retention; `growth_after_2r_pct`: how much
//! the file grew from then to the end.)

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use herald::{DeliveryOptions, Engine, PublishOptions, PublishStatus, Store, SystemClock};
use herald_benches::durable::loadavg;
use herald_redb::{RedbOptions, RedbStore};

const WORKERS: usize = 2;

/// A steady publish rate on the durable store with a short retention: the
/// file size over time.
#[derive(Parser)]
#[command(name = "retention-bench")]
struct Flags {
    /// Publishes per second, in total
    #[arg(long, value_name = "N", default_value = "2000", value_parser = count)]
    rate: usize,
    /// How long a finished message is kept
    #[arg(long = "retention-s", value_name = "S", default_value = "10", value_parser = count)]
    retention_s: usize,
    /// Keep everything (for comparison)
    #[arg(long)]
    no_retention: bool,
    /// How long to publish
    #[arg(long = "duration-s", value_name = "D", default_value = "60", value_parser = count)]
    duration_s: usize,
    /// The size of each message
    #[arg(long = "body-bytes", value_name = "B", default_value = "512", value_parser = count)]
    body_bytes: usize,
    /// Publisher tasks, each paced to rate / P
    #[arg(long, value_name = "P", default_value = "16", value_parser = count)]
    publishers: usize,
    /// Seconds between two samples
    #[arg(long = "sample-s", value_name = "T", default_value = "2", value_parser = count)]
    sample_s: usize,
    /// The data directory [default: a fresh one in the temporary directory]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the data directory afterwards
    #[arg(long)]
    keep: bool,
}

/// A count (`parse_count`: 64, 100k, 1M) of at least 1.
fn count(s: &str) -> Result<usize, String> {
    herald_benches::parse_count(s)
        .filter(|&k| k >= 1)
        .ok_or_else(|| "not a count of at least 1, like 64, 100k or 1M".to_owned())
}

fn fail(dir: &Path, keep: bool, msg: &str) -> ExitCode {
    eprintln!("!! retention: WRONG RESULT: {msg}");
    if !keep {
        let _ = std::fs::remove_dir_all(dir);
    }
    ExitCode::FAILURE
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// One sample.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    file: u64,
    published: u64,
    purged: u64,
}

fn main() -> ExitCode {
    let f = Flags::parse();
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    let dir = f.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("herald-retention-bench-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let retention = (!f.no_retention).then(|| Duration::from_secs(f.retention_s as u64));
    println!(
        "retention-bench: {} publishes/s of {} B messages from {} tasks for {} s; retention {}; \
         herald Engine on RedbStore in {}; load average at start: {}",
        f.rate,
        f.body_bytes,
        f.publishers,
        f.duration_s,
        retention.map_or_else(|| "none".to_owned(), |r| format!("{} s", r.as_secs())),
        dir.display(),
        loadavg()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(run(&f, &dir, retention));
    let samples = match result {
        Ok(s) => s,
        Err(e) => return fail(&dir, f.keep, &e),
    };
    if !f.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let last = *samples.last().expect("samples");
    let held_end = last.published - last.purged;
    let at_2r = retention.map(|r| *samples.iter().find(|s| s.at >= 2 * r).unwrap_or(&last));
    if let Some(r) = retention {
        let expected = f.rate as f64 * r.as_secs_f64();
        let most = 2.0 * expected + f.rate as f64 * f.sample_s as f64;
        if last.purged == 0 {
            return fail(&dir, f.keep, "nothing was purged");
        }
        if held_end as f64 > most {
            return fail(
                &dir,
                f.keep,
                &format!(
                    "{held_end} records held, more than {most:.0} (rate x retention: {expected:.0})"
                ),
            );
        }
    }
    println!("load average at the end: {}", loadavg());
    println!();
    let start = at_2r.unwrap_or(samples[0]);
    let growth = (last.file as f64 / start.file.max(1) as f64 - 1.0) * 100.0;
    println!(
        "retention file_mb_at_2r={:.1} file_mb_end={:.1} growth_after_2r_pct={growth:.1} held_end={held_end}",
        mb(start.file),
        mb(last.file),
    );
    ExitCode::SUCCESS
}

async fn run(f: &Flags, dir: &Path, retention: Option<Duration>) -> Result<Vec<Sample>, String> {
    let store = RedbStore::open_with(
        dir,
        RedbOptions {
            retention,
            clock: Arc::new(SystemClock),
            ..RedbOptions::default()
        },
    )
    .map_err(|e| format!("open: {e}"))?;
    let engine = Engine::builder().store(store.clone()).build();
    let body = serde_json::Value::String("x".repeat(f.body_bytes.saturating_sub(2)));
    let published = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + Duration::from_secs(f.duration_s as u64);
    let period = Duration::from_secs_f64(f.publishers as f64 / f.rate as f64);
    let mut tasks = Vec::new();
    for p in 0..f.publishers {
        // Spread the tasks over one period.
        let first = tokio::time::Instant::now() + period.mul_f64(p as f64 / f.publishers as f64);
        let engine = engine.clone();
        let body = body.clone();
        let published = published.clone();
        let wrong = wrong.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(first, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < end {
                tick.tick().await;
                match engine
                    .publish(
                        "retention",
                        body.clone().into(),
                        PublishOptions::default(),
                        DeliveryOptions::default(),
                    )
                    .await
                {
                    Ok(s) if s.status == PublishStatus::Published => {
                        published.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let file = dir.join(herald_redb::FILE_NAME);
    let mut samples = Vec::new();
    println!(
        "{:>6} | {:>9} | {:>10} | {:>10} | {:>9} | writer: transactions",
        "t (s)", "file (MB)", "published", "purged", "held"
    );
    let mut next = started;
    loop {
        next += Duration::from_secs(f.sample_s as u64);
        tokio::time::sleep_until(next.into()).await;
        let s = Sample {
            at: started.elapsed(),
            file: std::fs::metadata(&file).map_or(0, |m| m.len()),
            published: published.load(Ordering::Relaxed),
            purged: store.stats().purged,
        };
        println!(
            "{:>6.0} | {:>9.1} | {:>10} | {:>10} | {:>9} | {}",
            s.at.as_secs_f64(),
            mb(s.file),
            s.published,
            s.purged,
            s.published.saturating_sub(s.purged),
            store.writer_stats().transactions
        );
        samples.push(s);
        if Instant::now() >= end {
            break;
        }
    }
    for t in tasks {
        t.await.map_err(|e| format!("publisher: {e}"))?;
    }
    engine.shutdown().await;
    let n = wrong.load(Ordering::Relaxed);
    if n > 0 {
        return Err(format!("{n} publishes were not acknowledged `published`"));
    }
    Ok(samples)
}
