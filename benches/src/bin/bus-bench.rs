//! `bus-bench`: frames per second through the Redis cluster bus
//! (`herald-redis`), from one node's connection to another's.
//!
//! ```text
//! cargo run --release -p herald-benches --bin bus-bench -- [--url URL]
//!     [--frames N] [--bytes B] [--batch K] [--window W]
//! ```
//!
//! Two `RedisBus`es on one fresh channel (two connections each: one
//! sending, one subscribed), as two nodes hold. The first sends `N`
//! frames of `B` bytes in `send` calls of `K` frames (one pipeline of
//! `PUBLISH`es each, as the engine sends its batches); the second's
//! subscription receives them. The sender keeps at most `W` frames in
//! flight (sent, not yet received), below the subscription's queue of
//! 4096, so nothing is dropped and the rate is the one the pair sustains.
//! The URL defaults to `REDIS_URL`, else `redis://127.0.0.1:6379`.
//!
//! Checked: every frame arrives, once, in order, unchanged in length, and
//! no lag notice comes. Printed: the rate, the bytes per second, this
//! process's CPU per frame (both sides' client work) and the Redis
//! server's (from `INFO cpu`; everything the server did meanwhile, so run
//! it on an otherwise idle server). The last line is machine-readable:
//!
//! ```text
//! bus redis_frames_per_s=A redis_mb_per_s=B client_cpu_us_per_frame=C server_cpu_us_per_frame=D
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use herald::bus::{BusEvent, ClusterBus};
use herald_benches::durable::{loadavg, process_cpu};
use herald_redis::RedisBus;
use tokio::sync::watch;

/// Frames per second through Redis pub/sub between two bus connections.
#[derive(Parser)]
#[command(name = "bus-bench")]
struct Flags {
    /// The Redis server (default: REDIS_URL, else redis://127.0.0.1:6379)
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Frames to send
    #[arg(long, value_name = "N", default_value = "200k", value_parser = count)]
    frames: usize,
    /// Bytes per frame (at least 8)
    #[arg(long, value_name = "B", default_value = "300", value_parser = count)]
    bytes: usize,
    /// Frames per send (one pipeline)
    #[arg(long, value_name = "K", default_value = "1024", value_parser = count)]
    batch: usize,
    /// Frames in flight at most (below the subscription queue's 4096)
    #[arg(long, value_name = "W", default_value = "3072", value_parser = count)]
    window: usize,
}

fn count(s: &str) -> Result<usize, String> {
    herald_benches::parse_count(s)
        .filter(|&k| k >= 1)
        .ok_or_else(|| "not a count of at least 1, like 64, 100k or 1M".to_owned())
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("!! bus-bench: WRONG RESULT: {msg}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let f = Flags::parse();
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; run with --release for meaningful numbers");
    }
    if f.bytes < 8 || f.window >= herald_redis::QUEUE_CAPACITY || f.batch > f.window {
        return fail("need --bytes >= 8, --batch <= --window < 4096");
    }
    let url = f
        .url
        .clone()
        .or_else(|| std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "bus-bench: {} frames of {} B in sends of {}, at most {} in flight, through {url}; load average at start: {}",
        f.frames,
        f.bytes,
        f.batch,
        f.window,
        loadavg()
    );
    rt.block_on(run(f, url))
}

async fn run(f: Flags, url: String) -> ExitCode {
    let channel = format!("herald-bench:bus:{}", std::process::id());
    let (sender, receiver) = match (
        RedisBus::connect(&url, &channel).await,
        RedisBus::connect(&url, &channel).await,
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return fail(&format!("{e}")),
    };
    let mut rx = match receiver.subscribe().await {
        Ok(rx) => rx,
        Err(e) => return fail(&format!("{e}")),
    };
    let (received_tx, mut received) = watch::channel(0usize);
    let n = f.frames;
    let bytes = f.bytes;
    // How often the reader tells the sender how far it got: often enough
    // that the window never stalls.
    let step = (f.window / 4).max(1);
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        while got < n {
            let event = match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => return Err(format!("the subscription ended after {got} frames")),
                Err(_) => return Err(format!("nothing for 20 s after {got} frames")),
            };
            match event {
                BusEvent::Frame(frame) => {
                    let seq = u64::from_le_bytes(frame[..8].try_into().expect("8 bytes"));
                    if seq != got as u64 || frame.len() != bytes {
                        return Err(format!(
                            "frame {seq} of {} B where frame {got} of {bytes} B was due",
                            frame.len()
                        ));
                    }
                    got += 1;
                    if got.is_multiple_of(step) || got == n {
                        let _ = received_tx.send(got);
                    }
                }
                BusEvent::Lagged { missed } => {
                    return Err(format!("lag notice (missed {missed}) after {got} frames"));
                }
            }
        }
        Ok(())
    });

    let server0 = match server_cpu(&url).await {
        Ok(cpu) => cpu,
        Err(e) => return fail(&format!("INFO cpu: {e}")),
    };
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let mut sent = 0usize;
    while sent < n {
        let k = f.batch.min(n - sent);
        // Wait until this batch fits in the window.
        while sent + k > *received.borrow() + f.window {
            if received.changed().await.is_err() {
                break; // the reader ended: its result says why
            }
        }
        let frames: Vec<Arc<[u8]>> = (sent..sent + k)
            .map(|i| {
                let mut v = vec![0xa5u8; bytes];
                v[..8].copy_from_slice(&(i as u64).to_le_bytes());
                Arc::from(v)
            })
            .collect();
        if let Err(e) = sender.send(frames).await {
            return fail(&format!("send after {sent} frames: {e}"));
        }
        sent += k;
    }
    match reader.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return fail(&e),
        Err(e) => return fail(&format!("the reader panicked: {e}")),
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = process_cpu().saturating_sub(cpu0);
    let server = match server_cpu(&url).await {
        Ok(cpu) => cpu - server0,
        Err(e) => return fail(&format!("INFO cpu: {e}")),
    };
    let server_us = server * 1e6 / n as f64;
    let per_s = n as f64 / secs;
    let mb_per_s = per_s * bytes as f64 / 1e6;
    let cpu_us = cpu.as_secs_f64() * 1e6 / n as f64;
    println!(
        "{n} frames in {secs:.2} s: {per_s:.0} frames/s, {mb_per_s:.1} MB/s; this process's CPU {:.2} s ({cpu_us:.2} us per frame, sender and receiver); the Redis server's {server:.2} s ({server_us:.2} us per frame)",
        cpu.as_secs_f64()
    );
    println!(
        "bus redis_frames_per_s={per_s:.0} redis_mb_per_s={mb_per_s:.1} client_cpu_us_per_frame={cpu_us:.2} server_cpu_us_per_frame={server_us:.2}"
    );
    ExitCode::SUCCESS
}

/// The Redis server's CPU time so far (user + system), in seconds.
async fn server_cpu(url: &str) -> Result<f64, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let field = |name: &str| -> Result<f64, String> {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no {name} in INFO cpu"))
    };
    Ok(field("used_cpu_user")? + field("used_cpu_sys")?)
}
