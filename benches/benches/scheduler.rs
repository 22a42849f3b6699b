//! Herald's scheduler against tokio-util's `DelayQueue` (and, draining at
//! each deadline, the heap baselines), phase by phase, at
//! 100k, 1M and 10M pending timers.
//!
//! Groups are named `<phase>/<N>` (`insert`, `cancel`, `expire`,
//! `lifecycle`, `expire-each-deadline`, `lifecycle-each-deadline`) with one
//! function per structure, so `'/1000000/'` selects the 1M groups. The
//! `*-each-deadline` groups drain the survivors as an engine does, polling at
//! each successive deadline ([`TimerQueue::drain_each_deadline`]), and run
//! every structure: Herald, `DelayQueue`, `BinaryHeap` with tombstones and
//! `priority-queue`. Each iteration builds a fresh structure from the same seeded
//! [`Workload`] and times only its phase (see [`Phase::time`]); throughput is
//! in timers handled by that phase. `HERALD_BENCH_MAX_N=1M` skips the 10M
//! groups.
//!
//! ```text
//! cargo bench -p herald-benches --bench scheduler -- '/1000000/'
//! HERALD_BENCH_MAX_N=100k cargo bench -p herald-benches --bench scheduler -- --quick
//! ```

use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use herald_benches::{
    DEFAULT_SEED, DelayQueueQueue, HeapQueue, HeraldQueue, Phase, PriorityQueueQueue, TimerQueue,
    Workload, bench_max_n,
};

const SIZES: [usize; 3] = [100_000, 1_000_000, 10_000_000];

fn scheduler(c: &mut Criterion) {
    let max = bench_max_n();
    for n in SIZES.into_iter().filter(|&n| n <= max) {
        let w = Workload::new(n, DEFAULT_SEED);
        for phase in Phase::ALL {
            let mut g = c.benchmark_group(format!("{}/{n}", phase.name()));
            g.throughput(Throughput::Elements(phase.elements(&w) as u64));
            if n >= 1_000_000 {
                // One iteration takes 10 ms to seconds: a few flat samples.
                g.sampling_mode(SamplingMode::Flat)
                    .sample_size(10)
                    .warm_up_time(Duration::from_secs(1))
                    .measurement_time(Duration::from_secs(if n >= 10_000_000 { 20 } else { 8 }));
            } else {
                g.sample_size(20).measurement_time(Duration::from_secs(3));
            }
            bench::<HeraldQueue>(&mut g, phase, &w);
            bench::<DelayQueueQueue>(&mut g, phase, &w);
            if phase.each_deadline() {
                bench::<HeapQueue>(&mut g, phase, &w);
                bench::<PriorityQueueQueue>(&mut g, phase, &w);
            }
            g.finish();
        }
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

criterion_group!(benches, scheduler);
criterion_main!(benches);
