//! Model-based property test: random operation sequences against a
//! `BTreeMap<(Tick, seq), T>` oracle (see `herald_core::fuzzing`).
//!
//! Covers deadlines at every wheel level, in the overflow tier and in the
//! past; live and stale keys; reschedules; clears; polls with random
//! (mostly increasing, sometimes decreasing) `now` and random batch limits.
//! After every operation the oracle checks the fired sequence, `len()`,
//! `next_deadline()` and `deadline(key)`: the lost-wakeup class of bugs
//! (tokio#854, #1700, #2217, #3270, #4161, #6751, #8320) shows up as a
//! `next_deadline()` mismatch here.

use herald_core::fuzzing::{Op, run};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), any::<u64>()).prop_map(|(shape, raw)| Op::Insert { shape, raw }),
        3 => any::<u32>().prop_map(|which| Op::Cancel { which }),
        2 => (any::<u32>(), any::<u8>(), any::<u64>())
            .prop_map(|(which, shape, raw)| Op::Reschedule { which, shape, raw }),
        4 => (any::<u8>(), any::<u64>(), any::<u8>())
            .prop_map(|(shape, raw, max_shape)| Op::Poll { shape, raw, max_shape }),
        1 => Just(Op::Clear).prop_filter("rare", |_| true),
    ]
}

fn start() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0_u64),
        // Wall-clock-like ticks (ms since the Unix epoch).
        1_700_000_000_000_u64..1_900_000_000_000,
        // Just before a 2^42 ms epoch boundary, and near the end of time.
        Just((1_u64 << 42) - 100),
        Just(u64::MAX - 1_000_000),
    ]
}

proptest! {
    // 512 cases by default; `PROPTEST_CASES=20000` for a longer soak.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn matches_btreemap_oracle(
        start in start(),
        slack in any::<u8>(),
        ops in prop::collection::vec(op(), 1..400),
    ) {
        run(start, slack, &ops);
    }

    /// Dense same-ms inserts exercise FIFO through cascades and compaction.
    #[test]
    fn fifo_under_heavy_collisions(
        start in start(),
        slack in any::<u8>(),
        ops in prop::collection::vec(
            prop_oneof![
                4 => (0_u8..7, 0_u64..8).prop_map(|(shape, raw)| Op::Insert { shape, raw: raw * 4_099 }),
                3 => any::<u32>().prop_map(|which| Op::Cancel { which }),
                1 => (any::<u32>(), 0_u8..7, 0_u64..8)
                    .prop_map(|(which, shape, raw)| Op::Reschedule { which, shape, raw: raw * 4_099 }),
                2 => (0_u8..5, any::<u64>(), any::<u8>())
                    .prop_map(|(shape, raw, max_shape)| Op::Poll { shape, raw, max_shape }),
            ],
            1..600,
        ),
    ) {
        run(start, slack, &ops);
    }
}

/// A fixed, long scenario that must fire something (guards against a model
/// run that silently does nothing).
#[test]
fn long_mixed_run_fires() {
    let mut ops = Vec::new();
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    for i in 0..20_000_u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ops.push(match i % 5 {
            0 | 1 => Op::Insert {
                shape: (x % 10) as u8,
                raw: x >> 8,
            },
            2 => Op::Cancel {
                which: (x >> 3) as u32,
            },
            3 => Op::Reschedule {
                which: (x >> 5) as u32,
                shape: (x % 7) as u8,
                raw: x >> 11,
            },
            _ => Op::Poll {
                shape: (x % 5) as u8,
                raw: x >> 9,
                max_shape: (x >> 40) as u8,
            },
        });
    }
    let fired = run(1_763_800_000_000, 3, &ops);
    assert!(fired > 5_000, "only {fired} fired");
}
