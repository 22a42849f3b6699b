//! Random scheduler operations checked against the `BTreeMap` oracle in
//! `herald_core::fuzzing` (the same model the proptest uses).
#![no_main]

use herald_core::fuzzing::{Op, run};
use libfuzzer_sys::fuzz_target;

const STARTS: [u64; 4] = [0, 1_763_800_000_000, (1 << 42) - 100, u64::MAX - 1_000_000];

fuzz_target!(|input: (u8, u8, Vec<Op>)| {
    run(STARTS[usize::from(input.0) % STARTS.len()], input.1, &input.2);
});
