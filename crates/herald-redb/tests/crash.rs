//! A crash that really kills: `herald-redb-crash-child` publishes through
//! an `Engine` on a `RedbStore` from 32 tasks (every other publish with an
//! idempotency key) and prints `ACK` for every publish that returned `Ok`;
//! this test SIGKILLs it at a random moment, reopens the directory and
//! checks that every acknowledged message is there, intact, with its key,
//! that no key was kept without its message, and that every message fires
//! once the clock has moved on.
//!
//! Seeded: set `HERALD_CRASH_SEED` to replay a run (the seed is printed).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald::{Engine, ManualClock, PublishStatus, RunState, Store};
use herald_core::Tick;
use herald_redb::RedbStore;
use herald_testkit::TempDir;

const CHILD: &str = env!("CARGO_BIN_EXE_herald-redb-crash-child");
const ROUNDS: usize = 6;
const PUBLISHERS: usize = 32;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Once,
    Repeat,
}

#[derive(Debug, Default)]
struct Acked {
    kinds: HashMap<String, (Kind, u64)>,
    /// Idempotency keys of acknowledged publishes, by message id.
    keys: HashMap<String, String>,
    /// Cancels that returned `Ok`.
    cancelled: HashSet<String>,
    /// Cancels that were started (the kill may have come before or after
    /// the commit).
    cancelling: HashSet<String>,
}

impl Acked {
    /// Whether `id` may be cancelled, must be, or must not be.
    fn cancel_state(&self, id: &str) -> Option<bool> {
        if self.cancelled.contains(id) {
            Some(true)
        } else if self.cancelling.contains(id) {
            None
        } else {
            Some(false)
        }
    }
}

/// Parses the child's stdout; a line cut short by the kill is ignored
/// (its publish was acknowledged to nobody).
fn parse(lines: &[String]) -> Acked {
    let mut a = Acked::default();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["ACK", id, kind, at, key] if id.len() == 36 => {
                let kind = match *kind {
                    "once" => Kind::Once,
                    "repeat" => Kind::Repeat,
                    _ => continue,
                };
                let Ok(at) = at.parse() else { continue };
                a.kinds.insert((*id).to_owned(), (kind, at));
                if *key != "-" {
                    a.keys.insert((*id).to_owned(), (*key).to_owned());
                }
            }
            ["CANCELLED", id] if id.len() == 36 => {
                a.cancelled.insert((*id).to_owned());
            }
            ["CANCELLING", id] if id.len() == 36 => {
                a.cancelling.insert((*id).to_owned());
            }
            _ => {}
        }
    }
    a
}

/// Runs the child until `kill_after`, then SIGKILLs it; its stdout lines.
fn run_child(dir: &TempDir, seed: u64, kill_after: Duration) -> Vec<String> {
    let mut child = Command::new(CHILD)
        .arg(&dir.0)
        .arg(seed.to_string())
        .arg(PUBLISHERS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    // The child's real-time life: it publishes until this moment.
    std::thread::sleep(kill_after);
    // SIGKILL on Unix: no destructor, no flush, no close.
    child.kill().expect("kill");
    let status = child.wait().expect("wait");
    assert!(
        !status.success(),
        "the child was killed, not finished: {status}"
    );
    reader.join().expect("reader")
}

/// Reopens the killed child's directory and checks every acknowledged
/// message; returns (acknowledged, records in the file).
async fn verify(dir: &TempDir, acked: &Acked, round: usize) -> (usize, u64) {
    let store = RedbStore::open(&dir.0).expect("reopen after the kill");
    // No record is damaged and the indexes agree with the records.
    let check = store.check_records().expect("every record decodes");
    assert_eq!(check.quarantined, 0, "round {round}: {check:?}");
    let records = check.records;
    assert!(
        records as usize >= acked.kinds.len(),
        "round {round}: {records} records for {} acknowledged",
        acked.kinds.len()
    );
    for (id, (kind, _)) in &acked.kinds {
        let mid = id.parse().expect("an id");
        let r = store
            .get(mid)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("round {round}: acknowledged {id} ({kind:?}) was lost"));
        let cancel = acked.cancel_state(id);
        if cancel == Some(true) || (cancel.is_none() && r.state == RunState::Cancelled) {
            assert_eq!(r.state, RunState::Cancelled, "round {round}: {id}");
        } else {
            // Scheduled, or firing / published if the child fired it
            // before it died (publishAt is at least 1 s ahead).
            let ok = match kind {
                Kind::Once => !matches!(r.state, RunState::Failed | RunState::Cancelled),
                Kind::Repeat => !r.state.is_finished(),
            };
            assert!(ok, "round {round}: {id} ({kind:?}) is {:?}", r.state);
        }
    }

    // Every acknowledged key names its message; and no key was recorded
    // without its message (one transaction holds both).
    for (id, key) in &acked.keys {
        let found = store
            .idempotency_key(key)
            .await
            .expect("read a key")
            .unwrap_or_else(|| panic!("round {round}: the key of {id} was lost"));
        assert_eq!(found.id.to_string(), *id, "round {round}: key {key}");
    }
    let keys = store.raw_tables().expect("tables")["idempotency"].clone();
    assert!(keys.len() >= acked.keys.len(), "round {round}");
    for (key, row) in &keys {
        let mut raw = [0u8; 16];
        raw.copy_from_slice(&row[..16]);
        let id = herald::MessageId::from_u128(u128::from_le_bytes(raw));
        assert!(
            store.get(id).await.expect("get").is_some(),
            "round {round}: key {} without its message {id}",
            String::from_utf8_lossy(key)
        );
    }

    // An hour later every one-off has been published and every repeating
    // message has fired (its missed runs collapsed into one).
    let clock = ManualClock::new(Tick::from_millis(wall_ms() + 3_600_000));
    let engine = Engine::builder().clock(clock).store(store.clone()).build();
    engine.settle().await;
    for (id, (kind, _)) in &acked.kinds {
        let s = engine.message_status(id).await.expect("status");
        // A cancel cut short by the kill: whichever the store says, as
        // long as it is consistent from here on.
        let cancelled = acked
            .cancel_state(id)
            .unwrap_or(s.status == PublishStatus::Cancelled);
        let want = match (cancelled, kind) {
            (true, _) => PublishStatus::Cancelled,
            (false, Kind::Once) => PublishStatus::Published,
            (false, Kind::Repeat) => PublishStatus::Scheduled,
        };
        assert_eq!(s.status, want, "round {round}: {id} ({kind:?}): {s:?}");
        if !cancelled {
            assert!(
                s.deliveries.runs >= 1,
                "round {round}: {id} never ran: {s:?}"
            );
        }
    }
    engine.shutdown().await;
    let store = RedbStore::open(&dir.0).expect("reopen after the hour");
    store.check_records().expect("still intact");
    store.close().await.expect("close");
    (acked.kinds.len(), records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_publishes_survive_sigkill() {
    let seed = std::env::var("HERALD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(wall_ms);
    println!("HERALD_CRASH_SEED={seed}");
    let mut rng = seed;
    let started = Instant::now();
    let mut total_acked = 0;
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(200 + next(&mut rng) % 1_300);
        let dir = TempDir::new(&format!("crash-{round}"));
        let lines = run_child(&dir, next(&mut rng), kill_after);
        let acked = parse(&lines);
        let (n, records) = verify(&dir, &acked, round).await;
        println!(
            "round {round}: killed after {kill_after:?}: {n} acknowledged ({} cancelled, {} \
             cancels cut short), {records} records in the file",
            acked.cancelled.len(),
            acked.cancelling.len() - acked.cancelled.len()
        );
        total_acked += n;
    }
    assert!(
        total_acked >= ROUNDS,
        "the child acknowledged too little to test anything ({total_acked})"
    );
    println!("{ROUNDS} rounds in {:.1?}", started.elapsed());
}
