//! The child process of `tests/crash.rs`: publishes as fast as it can
//! through an `Engine` on a `RedbStore` until it is killed.
//!
//! ```text
//! herald-redb-crash-child <dir> <seed> <publishers>
//! ```
//!
//! Opens the store in `<dir>`, builds an engine on the system clock and
//! runs `<publishers>` tasks, each publishing delayed messages (`publishAt`
//! 1-30 s ahead) and repeating ones (`repeatEvery` 1-10 s from a
//! `publishAt` 1-30 s ahead) in a loop, every other one with an
//! idempotency key. Each task cancels every 16th message
//! it published. A line goes to stdout, flushed, only after the call
//! returned `Ok`:
//!
//! ```text
//! ACK <id> once|repeat <publishAt ms> <idempotency key, or ->
//! CANCELLING <id>     (before the call: it may or may not happen)
//! CANCELLED <id>
//! ```
//!
//! It exits by itself after 60 s in case nobody kills it.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald::{DeliveryOptions, Engine, PublishExtras, PublishOptions, PublishStatus};
use herald_redb::RedbStore;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(seed), Some(publishers)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<u64>().ok()),
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: herald-redb-crash-child <dir> <seed> <publishers>");
        return ExitCode::from(2);
    };
    let store = match RedbStore::open(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("herald-redb-crash-child: open {dir}: {e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald-redb-crash-child: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let engine = Engine::builder().store(store).build();
        let failures = Arc::new(AtomicU64::new(0));
        for task in 0..publishers {
            let engine = engine.clone();
            let failures = failures.clone();
            tokio::spawn(publisher(
                engine,
                seed ^ ((task as u64 + 1) * 0x9E37),
                failures,
            ));
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        eprintln!(
            "herald-redb-crash-child: not killed within 60 s ({} failed calls)",
            failures.load(Ordering::Relaxed)
        );
    });
    ExitCode::SUCCESS
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// SplitMix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // One write per line; a kill can cut only the last one short.
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

async fn publisher(engine: Engine, seed: u64, failures: Arc<AtomicU64>) {
    let mut rng = seed;
    let mut n = 0u64;
    loop {
        n += 1;
        let publish_at = wall_ms() + 1_000 + next(&mut rng) % 29_000;
        let repeat = next(&mut rng).is_multiple_of(4);
        let delivery = DeliveryOptions {
            publish_at: chrono::DateTime::from_timestamp_millis(publish_at as i64),
            repeat_every: repeat.then(|| chrono::TimeDelta::seconds(1 + (n % 10) as i64)),
            ..DeliveryOptions::default()
        };
        let mut publish = PublishOptions::default();
        publish.headers.insert("n".into(), n.to_string());
        // Every other publish carries an idempotency key, recorded with
        // its message in one transaction.
        let key = n.is_multiple_of(2).then(|| format!("k-{seed:x}-{n}"));
        let extras = match &key {
            Some(k) => PublishExtras::default().with_idempotency_key(k.clone()),
            None => PublishExtras::default(),
        };
        let status = match engine
            .publish_with(
                "crash",
                serde_json::json!({ "n": n, "text": "payload ✓" }).into(),
                publish,
                delivery,
                extras,
            )
            .await
        {
            Ok(s) if s.status == PublishStatus::Scheduled => s,
            Ok(s) => {
                eprintln!("herald-redb-crash-child: unexpected status {s:?}");
                failures.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Err(e) => {
                eprintln!("herald-redb-crash-child: publish: {e}");
                failures.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let kind = if repeat { "repeat" } else { "once" };
        let key = key.as_deref().unwrap_or("-");
        say(&format!(
            "ACK {} {kind} {publish_at} {key}\n",
            status.message_id
        ));
        if n.is_multiple_of(16) {
            say(&format!("CANCELLING {}\n", status.message_id));
            match engine.cancel(&status.message_id).await {
                Ok(_) => say(&format!("CANCELLED {}\n", status.message_id)),
                Err(e) => {
                    eprintln!("herald-redb-crash-child: cancel: {e}");
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
