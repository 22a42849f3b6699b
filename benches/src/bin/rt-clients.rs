//! `rt-clients`: N real-time subscribers in a process of their own, for
//! `server-bench`'s fan-out measurement (one process holding both ends of
//! 10k connections would pass the open-files limit).
//!
//! ```text
//! rt-clients --addr HOST:PORT --app APP --key KEY --channel CH --n N
//!     [--threads T] [--parallel P]
//! ```
//!
//! Each of the N connections is a socket.io client on a raw WebSocket
//! ([`herald_benches::http1::SocketIo`]) that subscribes the way the
//! Backendless JS SDK does (`SUB_ON {name: "PUB_SUB_MESSAGES", options:
//! {channel}}`, then `SUB_READY`); at most P (128) handshakes are in
//! flight. The messages it expects are `{"rt": R}` for R = 0, 1, 2, …,
//! each exactly once and in order: anything else (a duplicate, a gap, a
//! foreign message, a closed connection) is an error.
//!
//! Lines on stdout, for the parent:
//!
//! ```text
//! ready N MS                  every connection has its SUB_READY (MS: how long that took)
//! round R FIRST_US LAST_US    every connection has message R: first and last arrival
//! ok N ROUNDS                 stdin closed; every connection got every round once
//! error TEXT                  then exit code 1
//! ```
//!
//! Arrival times are the wall clock (`CLOCK_REALTIME`) in µs since the
//! Unix epoch, taken when the connection's task has parsed the packet: the
//! one clock both processes read, so the parent subtracts the time it sent
//! its publish. (`Instant` is per-process on some systems and not
//! comparable across processes by contract.)

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use herald_benches::durable::wall_us;
use herald_benches::http1::SocketIo;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

/// N socket.io subscribers of one channel; reports arrivals on stdout.
#[derive(Parser)]
#[command(name = "rt-clients")]
struct Flags {
    /// The server
    #[arg(long)]
    addr: SocketAddr,
    /// The app id
    #[arg(long)]
    app: String,
    /// An API key of the app with subscribe rights
    #[arg(long)]
    key: String,
    /// The channel
    #[arg(long)]
    channel: String,
    /// Connections
    #[arg(long, default_value = "10000")]
    n: usize,
    /// Worker threads of the clients' runtime
    #[arg(long, default_value = "1")]
    threads: usize,
    /// Handshakes in flight at once
    #[arg(long, default_value = "128")]
    parallel: usize,
}

/// What a connection's task reports.
enum Event {
    Ready,
    /// Round R arrived at this wall-clock µs.
    Got(u64, i64),
    Failed(String),
}

fn main() -> ExitCode {
    let f = Flags::parse();
    herald_server::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(f.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(f)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(f: Flags) -> Result<(), String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(f.parallel.max(1)));
    let prefix: Arc<str> = format!("42/{},", f.app).into();
    let started = Instant::now();
    for c in 0..f.n {
        let (tx, gate, prefix) = (tx.clone(), gate.clone(), prefix.clone());
        let (app, key, channel) = (f.app.clone(), f.key.clone(), f.channel.clone());
        let addr = f.addr;
        tokio::spawn(async move {
            let ws = {
                let _permit = gate.acquire().await;
                SocketIo::subscribe(addr, &app, &key, &channel).await
            };
            let e = match ws {
                Ok(ws) => {
                    let _ = tx.send(Event::Ready);
                    receive(ws, &prefix, &tx).await
                }
                Err(e) => e,
            };
            let _ = tx.send(Event::Failed(format!("connection {c}: {e}")));
        });
    }
    drop(tx);

    let mut ready = 0;
    while ready < f.n {
        match rx.recv().await {
            Some(Event::Ready) => ready += 1,
            Some(Event::Failed(e)) => return Err(e),
            Some(Event::Got(r, _)) => {
                return Err(format!("message {r} before every connection was ready"));
            }
            None => return Err("every connection ended".into()),
        }
    }
    println!("ready {} {}", f.n, started.elapsed().as_millis());

    // stdin closing ends the run.
    let (eof_tx, mut eof) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
        let _ = eof_tx.send(());
    });

    // Round → (arrivals, first, last).
    let mut rounds: BTreeMap<u64, (usize, i64, i64)> = BTreeMap::new();
    loop {
        let event = tokio::select! {
            e = rx.recv() => e,
            _ = &mut eof => break,
        };
        match event {
            Some(Event::Got(r, at)) => {
                let e = rounds.entry(r).or_insert((0, i64::MAX, i64::MIN));
                e.0 += 1;
                e.1 = e.1.min(at);
                e.2 = e.2.max(at);
                if e.0 == f.n {
                    println!("round {r} {} {}", e.1, e.2);
                }
            }
            Some(Event::Failed(e)) => return Err(e),
            Some(Event::Ready) | None => return Err("a connection ended".into()),
        }
    }
    // Whatever arrived before stdin closed must be whole rounds.
    while let Ok(event) = rx.try_recv() {
        match event {
            Event::Got(r, _) => rounds.entry(r).or_insert((0, 0, 0)).0 += 1,
            Event::Failed(e) => return Err(e),
            Event::Ready => {}
        }
    }
    for (r, (count, _, _)) in &rounds {
        if *count != f.n {
            return Err(format!("round {r}: {count} of {} connections got it", f.n));
        }
    }
    println!("ok {} {}", f.n, rounds.len());
    Ok(())
}

/// Reads `SUB_RES` packets until something is wrong; returns what.
async fn receive(mut ws: SocketIo, prefix: &str, tx: &mpsc::UnboundedSender<Event>) -> String {
    let mut next = 0u64;
    loop {
        let text = match ws.next_event().await {
            Ok(Some(text)) => text,
            Ok(None) => return "closed by the server".into(),
            Err(e) => return e,
        };
        let at = wall_us();
        let round = text
            .strip_prefix(prefix)
            .and_then(|json| serde_json::from_str::<Value>(json).ok())
            .filter(|v| v[0] == "SUB_RES")
            .and_then(|v| v[1]["data"]["message"]["rt"].as_u64());
        match round {
            Some(r) if r == next => {
                next += 1;
                if tx.send(Event::Got(r, at)).is_err() {
                    return "the report channel closed".into();
                }
            }
            Some(r) => return format!("message {r} where {next} was due (a duplicate or a gap)"),
            None => return format!("not a SUB_RES of this bench: {text}"),
        }
    }
}
