//! Benchmarks for Herald: the comparison harness behind the `timer-compare`
//! binary and the criterion benches.
//!
//! Herald's core, [`herald_core::Scheduler`], is a hierarchical timing wheel
//! meant to beat tokio-util's `DelayQueue` on every phase of a timer's life.
//! This crate holds what the binary and the benches share:
//!
//! * [`Workload`]: a seeded, reproducible set of timers (deadlines uniform
//!   over an hour, half of them cancelled in random order) and a checker for
//!   what a structure fired ([`Workload::check`]).
//! * [`TimerQueue`]: one interface over Herald ([`HeraldQueue`]) and the
//!   baselines: [`DelayQueueQueue`] (tokio-util `DelayQueue` on a paused
//!   runtime), [`HeapQueue`] (`BinaryHeap` with tombstones) and
//!   [`PriorityQueueQueue`] (the `priority-queue` crate).
//! * [`CountingAlloc`]: a counting global allocator for bytes per timer and
//!   peak-vs-steady memory.
//!
//! # Running
//!
//! ```text
//! cargo run --release -p herald-benches --bin timer-compare -- 1M
//! cargo bench -p herald-benches --bench scheduler -- '/1000000$'
//! cargo bench -p herald-benches --bench overflow_tier
//! HERALD_BENCH_MAX_N=1M cargo bench -p herald-benches --bench scheduler
//! cargo run --release -p herald-benches --bin engine-bench -- --quick
//! cargo bench -p herald-benches --bench engine
//! cargo run --release -p herald-benches --bin push-bench -- --quick
//! ```
//!
//! `engine-bench` and the `engine` bench run the `herald` engine itself
//! (publish, fan-out, firing lateness on the real clock); `push-bench` its
//! push side on the durable store (registrations, audience, the pipeline);
//! see `docs/benchmarks.md`.
//!
//! # Example
//!
//! ```
//! use herald_benches::{HeapQueue, Workload, run_checked};
//!
//! let w = Workload::new(10_000, 1);
//! let fired = run_checked::<HeapQueue>(&w); // panics on a wrong result
//! assert_eq!(fired.len(), 5_000);
//! ```
#![doc(test(attr(deny(warnings))))]

mod alloc;
pub mod durable;
pub mod http1;
pub mod push_gateways;
mod queues;
pub mod raw_baseline;
pub mod rt_clients;
mod workload;

pub use alloc::{AllocDelta, AllocSnapshot, CountingAlloc};
pub use queues::{
    DRAIN_BATCH, DelayQueueQueue, HeapQueue, HeraldQueue, Phase, PriorityQueueQueue, TimerQueue,
    run_checked, run_checked_each_deadline,
};
pub use workload::{CheckError, DEFAULT_SEED, HOUR_MS, SplitMix64, Workload, parse_count};

/// The largest benchmark size, from the `HERALD_BENCH_MAX_N` environment
/// variable (any [`parse_count`] form, e.g. `1M`), defaulting to 10 million.
///
/// # Panics
///
/// If the variable is set but not a count.
pub fn bench_max_n() -> usize {
    match std::env::var("HERALD_BENCH_MAX_N") {
        Ok(s) => parse_count(&s)
            .unwrap_or_else(|| panic!("HERALD_BENCH_MAX_N={s:?} is not a count like 1M")),
        Err(_) => 10_000_000,
    }
}
