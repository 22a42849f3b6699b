//! The overflow-tier workload: timers due in a later 2⁴² ms epoch than the
//! scheduler's start (beyond Herald's wheel, which covers one epoch, about
//! 139 years). Insert 100k, cancel 10% in random order, pop the rest in order.
//!
//! Herald keeps such timers in a `priority-queue` (`PriorityQueue` keyed by
//! entry, with real removal) until their epoch comes into range. This bench
//! is the measurement behind that choice: a `BinaryHeap` with tombstone
//! cancels against `priority-queue`, plus Herald's scheduler end to end on
//! the same timers. (`DelayQueue` cannot hold deadlines this far out.)
//!
//! ```text
//! cargo bench -p herald-benches --bench overflow_tier
//! ```

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use herald_benches::{
    DEFAULT_SEED, HeapQueue, HeraldQueue, Phase, PriorityQueueQueue, TimerQueue, Workload,
};

const N: usize = 100_000;
const YEAR_MS: u64 = 31_557_600_000; // 365.25 days

fn overflow_tier(c: &mut Criterion) {
    // The harness starts Herald's scheduler at tick 0, so these deadlines, 3
    // to 5 years into the next 2^42 ms epoch, all wait in the overflow tier.
    const EPOCH: u64 = 1 << 42;
    let w = Workload::custom(
        N,
        DEFAULT_SEED,
        EPOCH + 3 * YEAR_MS..EPOCH + 5 * YEAR_MS,
        N / 10,
    );
    assert!(w.deadlines().iter().all(|&d| d >= EPOCH));
    for phase in Phase::ALL {
        let mut g = c.benchmark_group(format!("overflow_tier/{}", phase.name()));
        g.throughput(Throughput::Elements(phase.elements(&w) as u64))
            .sample_size(30)
            .measurement_time(Duration::from_secs(3));
        bench::<HeapQueue>(&mut g, phase, &w);
        bench::<PriorityQueueQueue>(&mut g, phase, &w);
        bench::<HeraldQueue>(&mut g, phase, &w);
        g.finish();
    }
}

fn bench<Q: TimerQueue>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    phase: Phase,
    w: &Workload,
) {
    g.bench_with_input(BenchmarkId::from_parameter(Q::NAME), w, |b, w| {
        b.iter_custom(|iters| (0..iters).map(|_| phase.time::<Q>(w)).sum());
    });
}

criterion_group!(benches, overflow_tier);
criterion_main!(benches);
