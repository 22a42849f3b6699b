//! Once capacity is reserved, insert / cancel / reschedule / expire allocate
//! nothing: counted by a global allocator that tallies allocations made on
//! the measuring thread only (other test threads may allocate freely).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use herald_core::{Key, Scheduler, Tick};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note_alloc() {
    // `try_with`: the allocator may run while thread locals are torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards every call to `System` unchanged; the bookkeeping only
// touches const-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while running `f`.
fn allocations_in(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    f();
    COUNTING.with(|on| on.set(false));
    ALLOCS.with(Cell::get)
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn the_counter_counts() {
    let mut v: Vec<u64> = Vec::with_capacity(1);
    let n = allocations_in(|| v.extend([1, 2, 3]));
    assert!(n >= 1, "a growing Vec must be seen allocating");
}

#[test]
fn no_allocation_per_operation_once_reserved() {
    const N: usize = 200_000;
    let start = 1_763_800_000_000_u64;
    let mut s: Scheduler<u64> = Scheduler::starting_at(Tick::from_millis(start));
    s.reserve(N);
    let mut keys: Vec<Key> = Vec::with_capacity(N);
    let mut out: Vec<(Key, u64)> = Vec::with_capacity(N);
    let mut rng = 0x2545_F491_4F6C_DD1D_u64;
    let mut now = start;
    let mut total_fired = 0;
    for round in 0..4 {
        keys.clear();
        out.clear();
        let fired = allocations_in(|| {
            // Deadlines over ~2 hours: every level up to 3 and plenty of
            // same-ms collisions.
            for i in 0..N as u64 {
                let when = now + xorshift(&mut rng) % 7_200_000;
                keys.push(s.insert_at(Tick::from_millis(when), i));
            }
            // Cancel half (random order, some twice), reschedule a tenth.
            for _ in 0..N / 2 {
                let k = keys[(xorshift(&mut rng) % N as u64) as usize];
                let _ = s.cancel(k);
            }
            for _ in 0..N / 10 {
                let k = keys[(xorshift(&mut rng) % N as u64) as usize];
                let when = now + xorshift(&mut rng) % 3_600_000;
                let _ = s.reschedule(k, Tick::from_millis(when));
            }
            // Expire everything in bounded batches while time advances.
            while !s.is_empty() {
                now += 997;
                while s.poll_expired(Tick::from_millis(now), &mut out, 4_096) == 4_096 {}
            }
        });
        assert_eq!(fired, 0, "round {round}: allocated during operations");
        assert!(out.len() > N / 3, "round {round}: only {} fired", out.len());
        total_fired += out.len();
    }
    assert!(total_fired > N);
}
