//! Herald's main job until the server lands: schedule a few thousand
//! deliveries on the real clock and print them as they fire.
//!
//! * 3 000 one-off deliveries spread over the next 8 seconds, a third of them
//!   cancelled before they fire;
//! * 5 repeating messages (`repeatEvery` 1-3 s, expiring after 9 s);
//! * 1 cron message (`*/2 * * * * *`, every 2 s in Europe/Berlin) expiring
//!   after 9 s.
//!
//! This is the shape of Herald's engine loop: sleep until
//! `next_deadline()`, `poll_expired(now)` in bounded batches, re-insert the
//! next run of repeating messages. Run it with
//! `cargo run --release -p herald-core --example deliveries`
//! (add `-- --quiet` to print only the summary).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_core::{Key, Recurrence, Scheduler, Tick};

/// What a timer carries: which message, and its rule if it repeats.
#[derive(Debug)]
struct Delivery {
    id: u32,
    /// When this run was scheduled (to measure lateness and avoid drift).
    at: Tick,
    rule: Option<usize>,
}

fn now() -> Tick {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    Tick::from_millis(u64::try_from(since.as_millis()).expect("ms fit in u64"))
}

fn main() {
    let quiet = std::env::args().any(|a| a == "--quiet");
    let start = now();
    let mut scheduler: Scheduler<Delivery> = Scheduler::starting_at(start);
    let mut rules: Vec<Recurrence> = Vec::new();
    let mut rng = 0x853C_49E6_748F_EA9B_u64;
    let mut next_random = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };

    // One-off deliveries, and cancel every third one.
    let mut one_off: Vec<Key> = Vec::new();
    for id in 0..3_000 {
        let at = start.saturating_add_millis(next_random(8_000));
        one_off.push(scheduler.insert_at(at, Delivery { id, at, rule: None }));
    }
    let mut cancelled = 0;
    for key in one_off.iter().step_by(3) {
        if scheduler.cancel(*key).is_some() {
            cancelled += 1;
        }
    }

    // Repeating deliveries.
    let expires = Some(start.saturating_add_millis(9_000));
    for (n, every_ms) in [1_000, 1_500, 2_000, 2_500, 3_000].into_iter().enumerate() {
        let rule = Recurrence::every(every_ms, expires).expect("valid interval");
        let first = rule.next_after(start).expect("runs before expiry");
        rules.push(rule);
        let delivery = Delivery {
            id: 10_000 + n as u32,
            at: first,
            rule: Some(n),
        };
        scheduler.insert_at(first, delivery);
    }
    let cron = Recurrence::cron("*/2 * * * * *", chrono_tz::Europe::Berlin, expires)
        .expect("valid cron expression");
    let first = cron.next_after(start).expect("fires within 9 s");
    rules.push(cron);
    let delivery = Delivery {
        id: 20_000,
        at: first,
        rule: Some(rules.len() - 1),
    };
    scheduler.insert_at(first, delivery);

    println!(
        "scheduled {} deliveries ({} cancelled), {} repeating; next at +{} ms",
        scheduler.len(),
        cancelled,
        rules.len(),
        scheduler
            .next_deadline()
            .map_or(0, |t| t.millis_since(start))
    );

    let mut due = Vec::with_capacity(256);
    let (mut fired, mut repeats, mut worst_late) = (0_u64, 0_u64, 0_u64);
    while let Some(deadline) = scheduler.next_deadline() {
        let wait = deadline.millis_since(now());
        if wait > 0 {
            std::thread::sleep(Duration::from_millis(wait));
        }
        let t = now();
        loop {
            due.clear();
            let n = scheduler.poll_expired(t, &mut due, 256);
            for (key, mut delivery) in due.drain(..) {
                fired += 1;
                let late = t.millis_since(delivery.at);
                worst_late = worst_late.max(late);
                if !quiet {
                    println!(
                        "+{:>5} ms  delivery {:>5}  key {:?}  late {late} ms{}",
                        t.millis_since(start),
                        delivery.id,
                        key,
                        if delivery.rule.is_some() {
                            "  (repeating)"
                        } else {
                            ""
                        }
                    );
                }
                if let Some(r) = delivery.rule {
                    // Next run after the one that was due: no drift.
                    if let Some(next) = rules[r].next_after(delivery.at) {
                        repeats += 1;
                        delivery.at = next;
                        scheduler.insert_at(next, delivery);
                    }
                }
            }
            if n < 256 {
                break;
            }
        }
    }
    println!(
        "done: {fired} deliveries fired ({repeats} re-scheduled repeats), {cancelled} cancelled, \
         worst lateness {worst_late} ms, elapsed {} ms",
        now().millis_since(start)
    );
}
