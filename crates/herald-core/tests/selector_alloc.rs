//! Evaluating a parsed selector allocates nothing: counted by a global
//! allocator that tallies allocations made on the measuring thread only
//! (`alloc_counter`, shared with `scheduler_alloc.rs`).

use std::collections::{BTreeMap, HashMap};

use herald_core::selector::{Selector, Truth};

mod alloc_counter;

use alloc_counter::allocations_in;

#[test]
fn the_counter_counts() {
    let n = allocations_in(|| {
        let _ = Selector::parse("a = 1").expect("parses");
    });
    assert!(n >= 1, "parsing must be seen allocating");
}

#[test]
fn evaluation_allocates_nothing() {
    // Every kind of node, numbers in both representations, a LIKE that
    // backtracks over non-ASCII text, header-against-header comparison.
    let selector = Selector::parse(
        "(n > 10 AND n <= 1e3 AND n <> 15.5 OR n BETWEEN -5 AND 5) \
         AND s IN ('x', 'it''s', 3, TRUE) AND NOT s IN ('y') \
         AND t LIKE '%é_%!%%' ESCAPE '!' AND t NOT LIKE 'z%' \
         AND missing IS NULL AND n IS NOT NULL AND (flag OR flag = FALSE) \
         AND a = b AND a < 'zzz' AND NOT NOT TRUE",
    )
    .expect("parses");
    let map: HashMap<String, String> = [
        ("n", "20"),
        ("s", "it's"),
        ("t", "aéb%c"),
        ("flag", "true"),
        ("a", "10.0"),
        ("b", "1e1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let tree: BTreeMap<String, String> = map.clone().into_iter().collect();
    let slice: Vec<(&str, &str)> = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(selector.evaluate(&map), Truth::True);
    let mut results = Vec::with_capacity(3_000);
    let n = allocations_in(|| {
        for _ in 0..1_000 {
            results.push(selector.evaluate(&map));
            results.push(selector.evaluate(&tree));
            results.push(selector.evaluate(slice.as_slice()));
        }
    });
    assert_eq!(n, 0, "evaluation allocated");
    assert!(results.iter().all(|&t| t == Truth::True));
    // Results other than TRUE take other paths; they must not allocate
    // either.
    let other: Vec<(&str, &str)> = vec![("n", "abc"), ("t", "日本")];
    let n = allocations_in(|| {
        for _ in 0..100 {
            assert_ne!(selector.evaluate(other.as_slice()), Truth::True);
            assert_ne!(selector.evaluate(&()), Truth::True);
        }
    });
    assert_eq!(n, 0, "evaluation allocated");
}
