//! Once capacity is reserved, insert / cancel / reschedule / expire allocate
//! nothing: counted by a global allocator that tallies allocations made on
//! the measuring thread only (other test threads may allocate freely).

use herald_core::{Key, Scheduler, Tick};

mod alloc_counter;

use alloc_counter::allocations_in;

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
