//! The child process of `tests/push_crash.rs`: a push job on a `RedbStore`
//! that is killed in the middle of its run, then resumed.
//!
//! ```text
//! herald-redb-push-crash-child setup  <dir> <log> <devices> <delay ms> <in flight>
//! herald-redb-push-crash-child resume <dir> <log> <devices> <delay ms> <in flight> <message id> <timeout s>
//! ```
//!
//! Both modes open the store in `<dir>` and build an engine on it (store,
//! device registry and templates) with two gateways, `apns` for `IOS` and
//! `fcm` for `ANDROID`, each allowed `<in flight>` batches at once. The
//! gateways are [`LogTransport`]s: each appends one line per notification
//! it is handed to `<log>`, a batch in one `write_all` + `flush`, *before*
//! it answers `Sent`, so every notification a gateway acknowledged is in
//! the log even if the process dies right after; each batch takes
//! `<delay ms>` (half before the write, half after, on tokio's timer), so
//! a kill can land in either window. A line is
//!
//! ```text
//! <device token> <notification id> <gateway>
//! ```
//!
//! `setup` registers `<devices>` devices (`dev-0000000`, ...; even ones
//! `IOS` with token `tok-0000000-i`, odd ones `ANDROID` with `-a`; all on
//! channel `crash`) from 1024 tasks at once (each register is a durable
//! commit; the store's group commit batches concurrent ones), then
//! publishes one immediate `PUSH` message to `crash` and prints
//!
//! ```text
//! REGISTERED <devices> <ms>
//! MESSAGE <id>
//! READY
//! ```
//!
//! then keeps running (its job sends to the whole audience) until it is
//! killed; it exits by itself after 10 minutes in case nobody kills it.
//!
//! `resume` reopens the directory (the engine re-claims the job at start-up
//! and resumes it from its last checkpoint), waits (polling, bounded by
//! `<timeout s>`) until the message's status says `pushPending` 0 and (at
//! least) `<devices>` queued, lets the job finish, shuts down cleanly and prints
//!
//! ```text
//! FINAL {"messageId":…,"status":…,"deliveries":{…},"pushQueued":…}
//! ```
//!
//! (exit 0), or `TIMEOUT` with the same JSON (exit 1).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald::{
    Delivery, DeliveryOptions, Engine, MessageStatus, Notification, Outcome, PublishOptions,
    PublishPolicy, PushBroadcast, PushFuture, PushTransport,
};
use herald_redb::RedbStore;

/// Registering tasks in `setup`.
const REGISTRARS: usize = 1024;
/// The channel of the devices and the message.
const CHANNEL: &str = "crash";

/// A gateway that logs what it is handed, then accepts it.
#[derive(Debug)]
struct LogTransport {
    name: &'static str,
    log: Arc<Mutex<File>>,
    delay: Duration,
}

impl PushTransport for LogTransport {
    fn name(&self) -> &str {
        self.name
    }

    fn send<'a>(&'a self, batch: &'a [Notification]) -> PushFuture<'a> {
        Box::pin(async move {
            let half = self.delay / 2;
            tokio::time::sleep(half).await;
            let mut lines = String::with_capacity(batch.len() * 64);
            for n in batch {
                lines.push_str(&format!("{} {} {}\n", n.device_token, n.id, self.name));
            }
            {
                let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
                // One write for the batch, before any outcome is answered.
                // A kill needs no fsync: the page cache survives it.
                if let Err(e) = log.write_all(lines.as_bytes()).and_then(|()| log.flush()) {
                    eprintln!("herald-redb-push-crash-child: log: {e}");
                    std::process::abort();
                }
            }
            tokio::time::sleep(self.delay - half).await;
            Delivery::all(batch.len(), Outcome::Sent)
        })
    }
}

struct Args {
    dir: String,
    log: String,
    devices: usize,
    delay: Duration,
    in_flight: usize,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: herald-redb-push-crash-child setup <dir> <log> <devices> <delay ms> <in flight>\n\
         \x20      herald-redb-push-crash-child resume <dir> <log> <devices> <delay ms> <in flight> <message id> <timeout s>"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(dir), Some(log), Some(devices), Some(delay), Some(in_flight)) = (
        args.first(),
        args.get(1),
        args.get(2),
        args.get(3).and_then(|s| s.parse::<usize>().ok()),
        args.get(4).and_then(|s| s.parse::<u64>().ok()),
        args.get(5).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        return usage();
    };
    let a = Args {
        dir: dir.clone(),
        log: log.clone(),
        devices,
        delay: Duration::from_millis(delay),
        in_flight,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald-redb-push-crash-child: runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match (
        mode.as_str(),
        args.get(6),
        args.get(7).and_then(|s| s.parse().ok()),
    ) {
        ("setup", None, None) => rt.block_on(setup(a)),
        ("resume", Some(id), Some(timeout)) => {
            rt.block_on(resume(a, id.clone(), Duration::from_secs(timeout)))
        }
        _ => usage(),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

fn fail(what: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("herald-redb-push-crash-child: {what}: {e}");
    ExitCode::from(1)
}

/// Opens the store and builds the engine with the two logging gateways.
fn engine(a: &Args) -> Result<Engine, ExitCode> {
    let store = RedbStore::open(&a.dir).map_err(|e| fail(&format!("open {}", a.dir), e))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&a.log)
        .map_err(|e| fail(&format!("open {}", a.log), e))?;
    let log = Arc::new(Mutex::new(log));
    let gateway = |name| LogTransport {
        name,
        log: log.clone(),
        delay: a.delay,
    };
    Ok(Engine::builder()
        .store(store.clone())
        .registry(store.clone())
        .templates(store)
        .push_gateway(PushBroadcast::IOS, gateway("apns"))
        .push_gateway(PushBroadcast::ANDROID, gateway("fcm"))
        .push_in_flight(a.in_flight)
        .build())
}

async fn setup(a: Args) -> ExitCode {
    let engine = match engine(&a) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..REGISTRARS {
        let engine = engine.clone();
        let devices = a.devices;
        tasks.spawn(async move {
            for i in (task..devices).step_by(REGISTRARS) {
                let (os, suffix) = if i % 2 == 0 {
                    ("IOS", "i")
                } else {
                    ("ANDROID", "a")
                };
                let body = serde_json::json!({
                    "deviceId": format!("dev-{i:07}"),
                    "deviceToken": format!("tok-{i:07}-{suffix}"),
                    "os": os,
                    "channels": [CHANNEL],
                });
                engine.register_device(&body).await?;
            }
            Ok::<(), herald::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return fail("register", e),
            Err(e) => return fail("registering task", e),
        }
    }
    say(&format!(
        "REGISTERED {} {}\n",
        a.devices,
        started.elapsed().as_millis()
    ));
    let delivery = DeliveryOptions {
        publish_policy: PublishPolicy::Push,
        ..DeliveryOptions::default()
    };
    let mut publish = PublishOptions::default();
    publish.headers.insert("title".into(), "crash".into());
    let status = match engine
        .publish(
            CHANNEL,
            serde_json::json!({ "text": "push crash ✓" }).into(),
            publish,
            delivery,
        )
        .await
    {
        Ok(s) => s,
        Err(e) => return fail("publish", e),
    };
    say(&format!("MESSAGE {}\nREADY\n", status.message_id));
    tokio::time::sleep(Duration::from_secs(600)).await;
    eprintln!("herald-redb-push-crash-child: not killed within 10 minutes");
    ExitCode::from(1)
}

fn final_json(s: &MessageStatus) -> String {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["pushQueued"] = s.deliveries.push_queued.into();
    v.to_string()
}

async fn resume(a: Args, id: String, timeout: Duration) -> ExitCode {
    let engine = match engine(&a) {
        Ok(e) => e,
        Err(code) => return code,
    };
    let deadline = Instant::now() + timeout;
    let want = a.devices as u64;
    let mut status;
    loop {
        // Settling waits for the job while it sends; bounded, then a look.
        let _ = tokio::time::timeout(Duration::from_millis(100), engine.settle()).await;
        status = match engine.message_status(&id).await {
            Ok(s) => s,
            Err(e) => return fail("status", e),
        };
        let d = &status.deliveries;
        // Counters only grow: more than wanted is final too (the test
        // says what is wrong).
        if d.push_pending() == 0 && d.push_queued >= want {
            break;
        }
        if Instant::now() >= deadline {
            say(&format!("TIMEOUT {}\n", final_json(&status)));
            engine.shutdown().await;
            return ExitCode::from(1);
        }
    }
    // The job's last checkpoint (finished) comes after its last batch's.
    let left = deadline.saturating_duration_since(Instant::now());
    if tokio::time::timeout(left, engine.settle()).await.is_err() {
        eprintln!("herald-redb-push-crash-child: the engine did not settle");
    }
    let status = match engine.message_status(&id).await {
        Ok(s) => s,
        Err(e) => return fail("status", e),
    };
    engine.shutdown().await;
    say(&format!("FINAL {}\n", final_json(&status)));
    ExitCode::SUCCESS
}
