//! `Recurrence::resume` after downtime: what catching up costs the engine's
//! driver per repeating message, for 1000 messages at once (a restart, or a
//! driver that fell behind).
//!
//! A cron rule firing every second, resumed 5.5 hours late (19,800 missed
//! runs each), against an `Every` rule with the same period (plain
//! arithmetic).
//!
//! ```text
//! cargo bench -p herald-benches --bench recurrence
//! ```

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use herald_core::{Recurrence, Tick};

/// Messages resumed per iteration.
const MESSAGES: u64 = 1_000;
/// 2026-06-01T00:00:00Z.
const SCHEDULED: u64 = 1_780_272_000_000;
/// 5.5 hours.
const DOWN_MS: u64 = 19_800_000;

fn resume(c: &mut Criterion) {
    let mut g = c.benchmark_group("resume_1000_after_5.5h");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(MESSAGES));
    let rules = [
        (
            "cron_every_second",
            Recurrence::cron("* * * * * *", "UTC".parse().expect("a zone"), None).expect("valid"),
        ),
        (
            "every_1000_ms",
            Recurrence::every(1_000, None).expect("valid"),
        ),
    ];
    for (name, rule) in rules {
        g.bench_with_input(BenchmarkId::from_parameter(name), &rule, |b, rule| {
            b.iter(|| {
                (0..MESSAGES)
                    .map(|i| {
                        // Messages stored a few ms apart, like a real backlog.
                        let scheduled = Tick::from_millis(SCHEDULED + i * 1_000);
                        let now = Tick::from_millis(SCHEDULED + DOWN_MS + i);
                        rule.resume(scheduled, now).missed
                    })
                    .sum::<u64>()
            });
        });
    }
    g.finish();
}

criterion_group!(benches, resume);
criterion_main!(benches);
