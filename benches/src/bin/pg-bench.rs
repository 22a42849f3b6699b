//! `pg-bench`: the `herald` engine on the shared store, `herald-postgres`,
//! and on the embedded one, `herald-redb`, in the same run.
//!
//! ```text
//! cargo run --release -p herald-benches --bin pg-bench -- [--postgres URL]
//!     [--quick] [--n N] [--publishers P] [--writers W]
//! ```
//!
//! `URL` defaults to `DATABASE_URL`. For each store, from P (default 64)
//! publisher tasks through `Engine::publish`, each publish acknowledged
//! only after its commit:
//!
//! 1. **scheduled**: N (default 200k; `--quick` 50k) messages with
//!    `publishAt` an hour ahead, uniform over 60 s; every answer must be
//!    `scheduled`.
//! 2. **immediate**: N messages due now (no subscriber): each is stored
//!    already claimed, delivered, and its completion recorded; timed until
//!    `Engine::settle` returns (every completion stored). Every answer must
//!    be `published`, and a sample of statuses must show one run.
//!
//! Each line also gives the bench process's CPU per publish and, when the
//! server runs on this machine, PostgreSQL's (every `postgres` process).
//! PostgreSQL works in a fresh schema, dropped at the end; redb in a fresh
//! directory, removed at the end. The last line is machine-readable:
//!
//! ```text
//! pg scheduled_per_s=A immediate_per_s=B redb_scheduled_per_s=C redb_immediate_per_s=D
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use herald::{DeliveryOptions, Engine, PublishOptions, PublishStatus, Store};
use herald_benches::durable::{loadavg, process_cpu, wall_us};
use herald_postgres::{PgOptions, PgStore};
use herald_redb::RedbStore;
use serde_json::Value;

const WORKERS: usize = 2;

/// The herald engine on PostgreSQL (herald-postgres) and on redb: scheduled
/// and immediate publishes per second, each checked.
#[derive(Parser)]
#[command(name = "pg-bench")]
struct Flags {
    /// The PostgreSQL database [default: $DATABASE_URL]
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Smaller runs: 50k messages per measurement
    #[arg(long)]
    quick: bool,
    /// Messages per measurement [default: 200k, --quick 50k]
    #[arg(long = "n", value_name = "N", value_parser = count)]
    n: Option<usize>,
    /// Publisher tasks
    #[arg(long, value_name = "P", default_value = "64", value_parser = count)]
    publishers: usize,
    /// herald-postgres insert batches in flight (`PgOptions::writers`)
    #[arg(long, value_name = "W", default_value = "4", value_parser = count)]
    writers: usize,
}

/// A count (`parse_count`: 64, 100k, 1M) of at least 1.
fn count(s: &str) -> Result<usize, String> {
    herald_benches::parse_count(s)
        .filter(|&k| k >= 1)
        .ok_or_else(|| "not a count of at least 1, like 64, 100k or 1M".to_owned())
}

fn fail(part: &str, msg: &str) -> ! {
    eprintln!("!! {part}: WRONG RESULT: {msg}");
    std::process::exit(1);
}

fn main() -> ExitCode {
    let f = Flags::parse();
    let Some(url) = f
        .postgres
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok())
    else {
        eprintln!("pg-bench needs a database: --postgres URL or DATABASE_URL");
        return ExitCode::FAILURE;
    };
    let n = f.n.unwrap_or(if f.quick { 50_000 } else { 200_000 });
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "pg-bench{}: {cores} cores; tokio multi-thread runtime, {WORKERS} workers (PostgreSQL on \
         the same machine); {n} messages per measurement from {} publisher tasks; load average \
         at start: {}",
        if f.quick { " --quick" } else { "" },
        f.publishers,
        loadavg()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (pg, redb) = rt.block_on(async {
        let schema = format!("herald_bench_{}", std::process::id());
        let mut options = PgOptions::default();
        options.writers = f.writers;
        let store = PgStore::connect(&url, &schema, options)
            .await
            .unwrap_or_else(|e| fail("connect", &e.to_string()));
        let pg = measure("postgres", store, n, f.publishers).await;
        drop_schema(&url, &schema).await;
        let dir = std::env::temp_dir().join(format!("herald-pg-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = RedbStore::open(&dir).unwrap_or_else(|e| fail("redb", &e.to_string()));
        let redb = measure("redb", store, n, f.publishers).await;
        let _ = std::fs::remove_dir_all(&dir);
        (pg, redb)
    });
    println!("load average at the end: {}", loadavg());
    println!();
    println!(
        "pg scheduled_per_s={:.0} immediate_per_s={:.0} redb_scheduled_per_s={:.0} \
         redb_immediate_per_s={:.0}",
        pg.0, pg.1, redb.0, redb.1
    );
    ExitCode::SUCCESS
}

/// Scheduled, then immediate publishes per second on `store`.
async fn measure<S: Store + Clone>(
    name: &str,
    store: S,
    n: usize,
    publishers: usize,
) -> (f64, f64) {
    let engine = Engine::builder().store(store.clone()).build();
    engine.settle().await;
    let base = wall_us() / 1_000 + 3_600_000;
    let scheduled = publish_all(
        name,
        &engine,
        n,
        publishers,
        Some(base),
        PublishStatus::Scheduled,
    )
    .await;
    let immediate = publish_all(name, &engine, n, publishers, None, PublishStatus::Published).await;
    engine.shutdown().await;
    (scheduled, immediate)
}

async fn publish_all(
    name: &str,
    engine: &Engine,
    n: usize,
    publishers: usize,
    base: Option<i64>,
    want: PublishStatus,
) -> f64 {
    let what = if base.is_some() {
        "scheduled"
    } else {
        "immediate"
    };
    let cpu0 = process_cpu();
    let server0 = postgres_cpu();
    let start = Instant::now();
    let tasks: Vec<_> = (0..publishers)
        .map(|p| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let mut i = p;
                while i < n {
                    let delivery = DeliveryOptions {
                        publish_at: base.and_then(|b| {
                            chrono::DateTime::from_timestamp_millis(b + (i as i64 * 7919) % 60_000)
                        }),
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
                        .map_err(|e| format!("message {i}: {e}"))?;
                    if st.status != want {
                        return Err(format!("message {i}: {st:?}"));
                    }
                    if i % 997 == 0 {
                        ids.push(st.message_id);
                    }
                    i += publishers;
                }
                Ok::<_, String>(ids)
            })
        })
        .collect();
    let mut sample = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(ids)) => sample.extend(ids),
            Ok(Err(e)) => fail(&format!("{name} {what}"), &e),
            Err(e) => fail(&format!("{name} {what}"), &e.to_string()),
        }
    }
    engine.settle().await;
    let elapsed = start.elapsed();
    let cpu = process_cpu().saturating_sub(cpu0);
    let server = postgres_cpu()
        .iter()
        .map(|(pid, t)| t.saturating_sub(server0.get(pid).copied().unwrap_or_default()))
        .sum::<Duration>();
    for id in &sample {
        let st = engine
            .message_status(id)
            .await
            .unwrap_or_else(|e| fail(&format!("{name} {what}"), &e.to_string()));
        let runs = u64::from(want == PublishStatus::Published);
        if st.status != want || st.deliveries.runs != runs {
            fail(&format!("{name} {what}"), &format!("{id}: {st:?}"));
        }
    }
    let rate = n as f64 / elapsed.as_secs_f64();
    let server = if name == "postgres" && !server.is_zero() {
        format!(", PostgreSQL CPU {:.1} µs", cpu_per(server, n))
    } else {
        String::new()
    };
    println!(
        "## {name} {what}: {n} publishes in {elapsed:.2?} = {rate:.0}/s; herald CPU {:.1} µs{server} \
         per publish ({} statuses checked)",
        cpu_per(cpu, n),
        sample.len()
    );
    rate
}

fn cpu_per(cpu: Duration, n: usize) -> f64 {
    cpu.as_secs_f64() * 1e6 / n.max(1) as f64
}

/// The CPU time (user + system) of every `postgres` process on this
/// machine, by pid (empty if the server runs elsewhere or `/proc` is not
/// readable): the server's share of a measurement, with backends that
/// start during it counted from zero.
fn postgres_cpu() -> HashMap<u32, Duration> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        // After `(comm)`: utime and stime are the 12th and 13th fields.
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        out.insert(pid, Duration::from_millis(ticks * 10));
    }
    out
}

async fn drop_schema(url: &str, schema: &str) {
    let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        eprintln!("could not connect to drop schema {schema}");
        return;
    };
    let conn = tokio::spawn(conn);
    if let Err(e) = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
    {
        eprintln!("could not drop schema {schema}: {e}");
    }
    drop(client);
    let _ = conn.await;
}
