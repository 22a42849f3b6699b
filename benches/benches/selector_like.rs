//! `LIKE` on adversarial inputs: what one selector evaluation costs when a
//! header value and a pattern are both long (a subscriber controls the
//! pattern, a publisher the value, and the engine evaluates selectors while
//! it holds a channel's lock).
//!
//! Each function evaluates one parsed selector `h LIKE '<pattern>'` against
//! one header `h`; the time reported is per evaluation. The first case is the
//! one a black-box test found: a 60 KB value against a 30,000-character
//! pattern, 3.4 s per evaluation with the old backtracking matcher.
//!
//! ```text
//! cargo bench -p herald-benches --bench selector_like
//! ```

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use herald_core::selector::Selector;

/// The header value's length in bytes (all ASCII here).
const TEXT: usize = 60_000;
/// The pattern's length in characters.
const PATTERN: usize = 30_000;

/// `(name, pattern, text, expected result)`.
fn cases() -> Vec<(&'static str, String, String, bool)> {
    let a = "a".repeat(TEXT);
    vec![
        // `%aaaa…ab%`: a long segment that almost matches everywhere.
        (
            "percent_a_run_b_percent",
            format!("%{}b%", "a".repeat(PATTERN - 3)),
            a.clone(),
            false,
        ),
        // `%a%a%…%a%b`: many one-character segments, then one anchored at
        // the end that is not there.
        (
            "percent_a_repeated_then_b",
            format!("{}%b", "%a".repeat((PATTERN - 2) / 2)),
            a.clone(),
            false,
        ),
        // `%a%a%…%a%b%`: the same, with the last segment floating: found
        // nowhere after all the others.
        (
            "percent_a_repeated_then_b_percent",
            format!("{}%b%", "%a".repeat((PATTERN - 3) / 2)),
            a.clone(),
            false,
        ),
        // `%a_a_…_b%`: one long segment of `_` and literals (the bit-parallel
        // matcher's O(text × pattern / 64) case).
        (
            "underscore_segment_long",
            format!("%{}b%", "a_".repeat((PATTERN - 3) / 2)),
            a.clone(),
            false,
        ),
        // `%a_a%a_a%…%`: many short `_` segments, each found.
        (
            "underscore_segments_short",
            format!("{}%", "%a_a".repeat((PATTERN - 1) / 4)),
            "ab".repeat(TEXT / 2),
            true,
        ),
        // A long pattern against a short value.
        (
            "long_pattern_short_text",
            format!("%{}%", "a_".repeat((PATTERN - 2) / 2)),
            "a".repeat(100),
            false,
        ),
        // The everyday case, for scale.
        (
            "typical",
            "Sale%off%".to_owned(),
            "Sale: 20% off everything".to_owned(),
            true,
        ),
    ]
}

fn selector_like(c: &mut Criterion) {
    let mut g = c.benchmark_group("selector_like");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, pattern, text, expected) in cases() {
        let selector = Selector::parse(&format!("h LIKE '{pattern}'")).expect("parses");
        let headers = [("h", text.as_str())];
        assert_eq!(selector.matches(&headers), expected, "{name}");
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &headers, |b, h| {
            b.iter(|| selector.matches(h));
        });
    }
    g.finish();
}

criterion_group!(benches, selector_like);
criterion_main!(benches);
