//! A push job killed mid-run resumes from its last checkpoint:
//! `herald-redb-push-crash-child setup` registers N devices (half `IOS`,
//! half `ANDROID`) in a `RedbStore`, publishes one immediate `PUSH`
//! message and prints `READY`; its two gateways (`apns`, `fcm`) append
//! every notification they are handed to a log *before* answering `Sent`.
//! This test SIGKILLs it at a seeded random moment while the job is
//! sending, then runs `herald-redb-push-crash-child resume` on the same
//! directory (the engine re-claims the job at start-up and resumes it)
//! until the message says `pushPending` 0, and checks:
//!
//! * every device's token is in the logs (both runs together) at least
//!   once, with the gateway of its OS, and nothing else is;
//! * every resend of a token carries the notification id of its first
//!   send (`NotificationId::of(message, run, device)`, so a receiver can
//!   spot the duplicate), and the N devices have N distinct ids;
//! * duplicates (lines beyond the first per token) are at most K × 1000
//!   *per gateway*, K being `EngineBuilder::push_in_flight`: a crash
//!   resends only what was handed to a gateway after the last checkpoint,
//!   and each gateway has at most K batches of at most `MAX_BATCH` (1000)
//!   in flight (the design's bound, "Push notifications" in
//!   `docs/design.md`; the pipeline as it is sends one job's batches one
//!   at a time, so the count observed here is at most one page, which the
//!   test prints);
//! * the final status is `published`, `runs` 1, `pushSent` = `pushQueued`
//!   = N, `pushPending` 0 and nothing failed, expired or invalid;
//! * the reopened file has no damaged record and no open push job left.
//!
//! Rounds kill at one of three kinds of moments (seeded): right after
//! `READY` (0-30 ms: the run's push job and completion are being
//! recorded), at a random time within the run's expected length, or once
//! the log has reached a random size plus a random part of a batch's
//! delay (surely mid-run). At least one round must have been killed
//! mid-run (some but not all devices in the first log).
//!
//! Sizes: `push_job_resumes_after_sigkill` is 5,000 devices, 12 rounds
//! (15-25 s in a debug build on 2 cores); the issue's 100,000 devices is
//! `push_job_resumes_after_sigkill_100k`, ignored by default (2 rounds,
//! about 45 s in a debug build, registering the devices 11-15 s of each
//! round):
//!
//! ```text
//! cargo test -p herald-redb --test push_crash -- --ignored
//! ```
//!
//! Seeded: the seed is printed; `HERALD_CRASH_SEED=<seed>` replays its
//! choices (the kill moments are real time, so the exact cut may differ).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald::Store;
use herald_core::Tick;
use herald_redb::RedbStore;
use herald_testkit::TempDir;

const CHILD: &str = env!("CARGO_BIN_EXE_herald-redb-push-crash-child");
/// `EngineBuilder::push_in_flight` in the child (the default).
const IN_FLIGHT: usize = 4;
/// `herald::MAX_BATCH`.
const BATCH: usize = 1000;

/// One configuration of the test.
struct Size {
    devices: usize,
    rounds: usize,
    /// The gateways' time per batch.
    delay_ms: u64,
    /// How long `setup` and `resume` may take at most.
    setup_timeout: Duration,
    resume_timeout: Duration,
}

impl Size {
    /// A lower bound of the run's length: its batches (about two per page,
    /// one per gateway) one after the other, each `delay_ms`.
    fn run_ms(&self) -> u64 {
        (self.devices.div_ceil(BATCH) * 2) as u64 * self.delay_ms
    }
}

fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// When a round kills the child.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// This long after `READY`.
    After(Duration),
    /// Once the first log holds at least this many bytes, then this long.
    AtLog(u64, Duration),
}

fn kill_moment(rng: &mut u64, size: &Size) -> Kill {
    match next(rng) % 4 {
        0 => Kill::After(Duration::from_millis(next(rng) % 30)),
        1 => Kill::After(Duration::from_millis(next(rng) % size.run_ms())),
        _ => {
            // A log line is 55 or 56 bytes: this is inside the run.
            let bytes = 1 + next(rng) % (size.devices as u64 * 53 - 1);
            Kill::AtLog(bytes, Duration::from_millis(next(rng) % size.delay_ms))
        }
    }
}

fn spawn(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(CHILD)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Waits (bounded) for the child's line starting with `word`; panics
/// with the lines so far if it exits or takes too long.
fn wait_for(
    rx: &mpsc::Receiver<String>,
    child: &mut Child,
    word: &str,
    deadline: Instant,
    seen: &mut Vec<String>,
) -> String {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                seen.push(line.clone());
                if line.split(' ').next() == Some(word) {
                    return line;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait");
                panic!("the child exited ({status}) before {word}; it said {seen:?}");
            }
            Err(mpsc::RecvTimeoutError::Timeout) if left.is_zero() => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no {word} from the child in time; it said {seen:?}");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// One log line: `<token> <notification id> <gateway>`.
#[derive(Debug)]
struct Line {
    device: usize,
    id: String,
    gateway: String,
}

/// The complete lines of a log and whether its last line was cut short
/// (by the kill, in the middle of the batch's write: that batch was not
/// answered, so it counts for nothing).
fn read_log(path: &Path, devices: usize, tag: &str) -> (Vec<Line>, bool) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let cut = !text.is_empty() && !text.ends_with('\n');
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    let mut lines = Vec::new();
    for raw in complete.lines() {
        let f: Vec<&str> = raw.split(' ').collect();
        let [token, id, gateway] = f.as_slice() else {
            panic!("{tag}: a malformed log line {raw:?}");
        };
        let device = token
            .strip_prefix("tok-")
            .and_then(|t| t.get(..7))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&i| {
                let os = if i % 2 == 0 { "i" } else { "a" };
                *token == format!("tok-{i:07}-{os}")
            })
            .unwrap_or_else(|| panic!("{tag}: a token nobody registered: {raw:?}"));
        assert!(
            device < devices,
            "{tag}: a token beyond the audience: {raw:?}"
        );
        assert_eq!(id.len(), 36, "{tag}: not a notification id: {raw:?}");
        let want = if device % 2 == 0 { "apns" } else { "fcm" };
        assert_eq!(
            *gateway, want,
            "{tag}: a device sent through the wrong gateway: {raw:?}"
        );
        lines.push(Line {
            device,
            id: (*id).to_owned(),
            gateway: (*gateway).to_owned(),
        });
    }
    (lines, cut)
}

/// What a round saw, for the summary.
#[derive(Debug, Default)]
struct Round {
    registered_ms: u64,
    before_kill: usize,
    distinct_before_kill: usize,
    resent: usize,
    duplicates_apns: usize,
    duplicates_fcm: usize,
    resume: Duration,
}

fn round(size: &Size, seed: u64, round: usize, rng: &mut u64) -> Round {
    let tag = format!("HERALD_CRASH_SEED={seed} round {round}");
    let kill = kill_moment(rng, size);
    let tmp = TempDir::new(&format!("push-crash-{round}"));
    std::fs::create_dir_all(&tmp.0).expect("temp dir");
    let data: PathBuf = tmp.0.join("data");
    let log1 = tmp.0.join("push-1.log");
    let log2 = tmp.0.join("push-2.log");
    let (devices, delay, in_flight) = (
        size.devices.to_string(),
        size.delay_ms.to_string(),
        IN_FLIGHT.to_string(),
    );
    let path = |p: &Path| p.to_str().expect("a UTF-8 temp path").to_owned();
    let (data_s, log1_s, log2_s) = (path(&data), path(&log1), path(&log2));
    let mut out = Round::default();

    // Phase 1: register, publish, and die mid-run.
    let (mut child, rx) = spawn(&["setup", &data_s, &log1_s, &devices, &delay, &in_flight]);
    let mut said = Vec::new();
    let deadline = Instant::now() + size.setup_timeout;
    let registered = wait_for(&rx, &mut child, "REGISTERED", deadline, &mut said);
    out.registered_ms = registered
        .split(' ')
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let message = wait_for(&rx, &mut child, "MESSAGE", deadline, &mut said);
    let message = message.split(' ').nth(1).expect("an id").to_owned();
    wait_for(&rx, &mut child, "READY", deadline, &mut said);
    match kill {
        Kill::After(d) => std::thread::sleep(d),
        Kill::AtLog(bytes, then) => {
            // Bounded polling of the child's output.
            let until = Instant::now() + size.resume_timeout;
            while log_len(&log1) < bytes && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(then);
        }
    }
    // SIGKILL: no destructor, no flush, no close.
    child.kill().expect("kill");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "{tag}: the child was killed: {status}");

    let (first, cut) = read_log(&log1, size.devices, &tag);
    out.before_kill = first.len();
    let mut before: Vec<bool> = vec![false; size.devices];
    for l in &first {
        before[l.device] = true;
    }
    out.distinct_before_kill = before.iter().filter(|b| **b).count();
    let phase = if out.distinct_before_kill == 0 {
        "before the first batch was logged"
    } else if out.distinct_before_kill == size.devices {
        "after every device was logged (the job may not have checkpointed all of it)"
    } else {
        "mid-run"
    };
    println!(
        "{tag}: killed ({kill:?}) {phase}: {} lines, {} devices in the log{}",
        out.before_kill,
        out.distinct_before_kill,
        if cut { ", its last line cut short" } else { "" }
    );

    // Phase 2: resume to the end.
    let started = Instant::now();
    let timeout = size.resume_timeout.as_secs().to_string();
    let (mut child, rx) = spawn(&[
        "resume", &data_s, &log2_s, &devices, &delay, &in_flight, &message, &timeout,
    ]);
    let mut said = Vec::new();
    let deadline = Instant::now() + size.resume_timeout + Duration::from_secs(30);
    let fin = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("FINAL ") || line.starts_with("TIMEOUT ") => break line,
            Ok(line) => said.push(line),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().expect("wait");
                panic!("{tag}: the resumed child said nothing final ({status}): {said:?}");
            }
        }
    };
    let status = child.wait().expect("wait");
    out.resume = started.elapsed();
    // ENGINE BUG if this fails: the resumed job did not bring the message
    // to pushPending 0 with every device queued in time.
    assert!(
        fin.starts_with("FINAL ") && status.success(),
        "{tag}: the resumed job did not finish ({status}): {fin}"
    );
    let fin: serde_json::Value =
        serde_json::from_str(fin.trim_start_matches("FINAL ")).expect("the final JSON");
    println!("{tag}: resumed in {:.1?}: {fin}", out.resume);

    // The counters (ENGINE BUG if any of these fail: counters after resume).
    let n = size.devices as u64;
    let d = &fin["deliveries"];
    assert_eq!(fin["messageId"], message.as_str(), "{tag}: {fin}");
    assert_eq!(fin["status"], "published", "{tag}: {fin}");
    assert_eq!(d["runs"], 1, "{tag}: the one-off ran once: {fin}");
    assert_eq!(d["pushSent"], n, "{tag}: pushSent: {fin}");
    assert_eq!(fin["pushQueued"], n, "{tag}: pushQueued: {fin}");
    assert_eq!(d["pushPending"], 0, "{tag}: pushPending: {fin}");
    for k in ["pushFailed", "pushExpired", "pushInvalidTokens"] {
        assert_eq!(d[k], 0, "{tag}: {k}: {fin}");
    }

    // The logs (ENGINE BUG if these fail: a skipped device, a resend with
    // another id, more resent than was in flight).
    let (second, cut2) = read_log(&log2, size.devices, &tag);
    assert!(!cut2, "{tag}: the resumed child's log ends mid-line");
    out.resent = second.len();
    let mut first_id: Vec<Option<&str>> = vec![None; size.devices];
    let mut duplicates: HashMap<&str, usize> = HashMap::new();
    for l in first.iter().chain(&second) {
        match first_id[l.device] {
            None => first_id[l.device] = Some(&l.id),
            Some(id) => {
                assert_eq!(
                    id, l.id,
                    "{tag}: device {} was resent with another notification id",
                    l.device
                );
                *duplicates.entry(&l.gateway).or_default() += 1;
            }
        }
    }
    let missing: Vec<usize> = (0..size.devices)
        .filter(|&i| first_id[i].is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "{tag}: {} devices never got the notification (first: {:?})",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let ids: std::collections::HashSet<&str> = first_id.iter().flatten().copied().collect();
    assert_eq!(ids.len(), size.devices, "{tag}: one id per device");
    out.duplicates_apns = duplicates.get("apns").copied().unwrap_or(0);
    out.duplicates_fcm = duplicates.get("fcm").copied().unwrap_or(0);
    for (gateway, dups) in [("apns", out.duplicates_apns), ("fcm", out.duplicates_fcm)] {
        assert!(
            dups <= IN_FLIGHT * BATCH,
            "{tag}: {dups} duplicates through {gateway}, more than K × MAX_BATCH = {}",
            IN_FLIGHT * BATCH
        );
    }

    // The file: intact, and the job is over.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = RedbStore::open(&data).expect("reopen after the resume");
        let check = store.check_records().expect("every record decodes");
        assert_eq!(check.quarantined, 0, "{tag}: {check:?}");
        let open = store
            .claim_push_jobs(
                Tick::from_millis(u64::MAX),
                Tick::from_millis(u64::MAX),
                100,
            )
            .await
            .expect("claim push jobs");
        assert!(open.is_empty(), "{tag}: push jobs left open: {open:?}");
        store.close().await.expect("close");
    });
    println!(
        "{tag}: {} devices registered in {} ms; {} lines before the kill, {} after; duplicates: \
         {} apns, {} fcm (bound {} per gateway)",
        size.devices,
        out.registered_ms,
        out.before_kill,
        out.resent,
        out.duplicates_apns,
        out.duplicates_fcm,
        IN_FLIGHT * BATCH
    );
    out
}

fn run(size: &Size) {
    let seed = std::env::var("HERALD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(wall_ms);
    println!("HERALD_CRASH_SEED={seed}");
    let mut rng = seed;
    let started = Instant::now();
    let mut mid_run = 0;
    let mut max_duplicates = 0;
    for r in 0..size.rounds {
        let seen = round(size, seed, r, &mut rng);
        if seen.distinct_before_kill > 0 && seen.distinct_before_kill < size.devices {
            mid_run += 1;
        }
        max_duplicates = max_duplicates.max(seen.duplicates_apns + seen.duplicates_fcm);
    }
    println!(
        "{} rounds of {} devices in {:.1?}: {mid_run} killed mid-run; at most {max_duplicates} \
         duplicates in a round",
        size.rounds,
        size.devices,
        started.elapsed()
    );
    assert!(
        mid_run > 0,
        "HERALD_CRASH_SEED={seed}: no round was killed mid-run, so nothing was tested"
    );
}

#[test]
fn push_job_resumes_after_sigkill() {
    run(&Size {
        devices: 5_000,
        rounds: 12,
        delay_ms: 100,
        setup_timeout: Duration::from_secs(120),
        resume_timeout: Duration::from_secs(60),
    });
}

#[test]
#[ignore = "100,000 devices: about 45 s; run with --ignored"]
fn push_job_resumes_after_sigkill_100k() {
    run(&Size {
        devices: 100_000,
        rounds: 2,
        delay_ms: 10,
        setup_timeout: Duration::from_secs(600),
        resume_timeout: Duration::from_secs(300),
    });
}
