//! Subscription selectors over real subscriptions: SQL-92 conditional
//! expressions over the headers, with SQL's three-valued logic (a
//! comparison with a missing header is UNKNOWN and UNKNOWN is not
//! delivered).
//!
//! Headers are published as JSON through `PublishRequest::from_json`, as a
//! client sends them, so numbers arrive as strings (`5` becomes `"5"`).

mod common;

use common::*;
use herald::{Engine, PublishRequest};
use serde_json::{Value, json};

/// Subscribes with `selector`, publishes one message per entry of
/// `headers` (its body is its index), and returns the indices delivered, in
/// order.
async fn delivered(engine: &Engine, selector: &str, headers: &[Value]) -> Vec<usize> {
    let mut sub = engine
        .subscribe("sel", Some(selector))
        .unwrap_or_else(|e| panic!("selector {selector:?} rejected: {e}"));
    for (i, h) in headers.iter().enumerate() {
        let body = if h.is_null() {
            json!({"message": i})
        } else {
            json!({"message": i, "headers": h})
        };
        let req = PublishRequest::from_json(&body).unwrap();
        engine.publish_request("sel", req).await.unwrap();
    }
    drain_messages(&mut sub)
        .iter()
        .map(|m| m.as_u64().unwrap() as usize)
        .collect()
}

/// Checks each `(selector, expected indices)` against `headers`.
async fn table(headers: &[Value], cases: &[(&str, &[usize])]) {
    let (engine, _clock) = engine();
    let mut failures = Vec::new();
    for &(selector, want) in cases {
        let got = delivered(&engine, selector, headers).await;
        if got != want {
            failures.push(format!("{selector:?}: delivered {got:?}, want {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "selector mismatches:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn greater_than_over_numeric_headers_the_backendless_observation() {
    // Observed on Backendless: `foo > 10` over foo = 5, 10, 20, 50 and a
    // message without headers delivers exactly 20 and 50, in order.
    let (engine, _clock) = engine();
    let headers = [
        json!({"foo": 5}),
        json!({"foo": 10}),
        json!({"foo": 20}),
        json!({"foo": 50}),
        Value::Null,
    ];
    let got = delivered(&engine, "foo > 10", &headers).await;
    assert_eq!(got, [2, 3]);
}

#[tokio::test]
async fn comparison_operators() {
    let headers = [
        json!({"foo": 5}),
        json!({"foo": 10}),
        json!({"foo": 20}),
        json!({"foo": 50}),
        Value::Null,
        json!({"foo": "10.0"}),
        json!({"bar": 10}),
    ];
    table(
        &headers,
        &[
            ("foo = 10", &[1, 5]), // "10.0" compares numerically with 10
            ("foo <> 10", &[0, 2, 3]),
            ("foo != 10", &[0, 2, 3]),
            ("foo < 20", &[0, 1, 5]),
            ("foo <= 20", &[0, 1, 2, 5]),
            ("foo >= 20", &[2, 3]),
            ("foo > 10.5", &[2, 3]),
            ("foo BETWEEN 10 AND 20", &[1, 2, 5]),
            ("foo NOT BETWEEN 10 AND 20", &[0, 3]),
            ("(foo > 5) AND (foo < 50)", &[1, 2, 5]),
        ],
    )
    .await;
}

#[tokio::test]
async fn string_equality_and_in() {
    let headers = [
        json!({"region": "EU"}),
        json!({"region": "UK"}),
        json!({"region": "US"}),
        Value::Null,
        json!({"region": "eu"}),
        json!({"region": "O'Neil"}),
    ];
    table(
        &headers,
        &[
            ("region = 'EU'", &[0]), // case-sensitive values
            ("region <> 'EU'", &[1, 2, 4, 5]),
            ("region IN ('EU', 'UK')", &[0, 1]),
            ("region NOT IN ('EU', 'UK')", &[2, 4, 5]),
            ("region = 'O''Neil'", &[5]),
            ("region in ('US') or REGION = 'x'", &[2]), // keywords any case, names are not
        ],
    )
    .await;
}

#[tokio::test]
async fn like_patterns() {
    let headers = [
        json!({"city": "Berlin"}),
        json!({"city": "Bern"}),
        json!({"city": "Bonn"}),
        json!({"city": "Ber"}),
        json!({"city": "100%"}),
        json!({"city": "1000"}),
        Value::Null,
    ];
    table(
        &headers,
        &[
            ("city LIKE 'Ber%'", &[0, 1, 3]),
            ("city LIKE 'B_nn'", &[2]),
            ("city LIKE 'Be__'", &[1]),
            ("city NOT LIKE 'Ber%'", &[2, 4, 5]),
            ("city LIKE '100\\%' ESCAPE '\\'", &[4]),
            ("city LIKE '100%'", &[4, 5]),
        ],
    )
    .await;
}

#[tokio::test]
async fn is_null_and_is_not_null() {
    let headers = [
        json!({"a": 1}),
        json!({"b": 1}),
        Value::Null,
        json!({"a": ""}),
    ];
    table(
        &headers,
        &[
            ("a IS NULL", &[1, 2]),
            ("a IS NOT NULL", &[0, 3]),
            ("NOT (a IS NULL)", &[0, 3]),
        ],
    )
    .await;
}

#[tokio::test]
async fn three_valued_logic_with_missing_headers() {
    // 0: a=1 b=2   1: a=1   2: b=2   3: none   4: a=2
    let headers = [
        json!({"a": 1, "b": 2}),
        json!({"a": 1}),
        json!({"b": 2}),
        Value::Null,
        json!({"a": 2}),
    ];
    table(
        &headers,
        &[
            ("a = 1 AND b = 2", &[0]),       // TRUE AND UNKNOWN is UNKNOWN
            ("a = 1 OR b = 2", &[0, 1, 2]),  // UNKNOWN OR TRUE is TRUE
            ("NOT (a = 1)", &[4]),           // NOT UNKNOWN is UNKNOWN
            ("NOT (a = 1 AND b = 2)", &[4]), // a=2: FALSE AND UNKNOWN is FALSE, NOT FALSE is TRUE
            ("NOT (a = 1 OR b = 2)", &[]),   // a=2: FALSE OR UNKNOWN is UNKNOWN, and so is NOT
            ("a IS NULL OR a = 1", &[0, 1, 2, 3]),
            ("a <> 1", &[4]), // a missing: UNKNOWN, not TRUE
            ("b = 2 AND a IS NULL", &[2]),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_non_numeric_header_compared_with_a_number_is_unknown() {
    let headers = [
        json!({"foo": "abc"}),
        json!({"foo": 20}),
        json!({"foo": "20"}),
    ];
    table(
        &headers,
        &[
            ("foo > 10", &[1, 2]),
            ("NOT (foo > 10)", &[]), // "abc" > 10 is UNKNOWN, and so is its NOT
            ("foo = 'abc'", &[0]),
            ("foo > 10 OR foo = 'abc'", &[0, 1, 2]),
        ],
    )
    .await;
}

#[tokio::test]
async fn selectors_filter_scheduled_runs_too() {
    let (engine, clock) = engine();
    let mut hot = engine.subscribe("sel", Some("level >= 3")).unwrap();
    let mut all = engine.subscribe("sel", None).unwrap();
    engine.settle().await; // driver up: same-ms runs keep publish order
    for level in [1, 3, 5] {
        let body = json!({"message": level, "headers": {"level": level}, "publishAt": T0 + 1_000});
        engine
            .publish_request("sel", PublishRequest::from_json(&body).unwrap())
            .await
            .unwrap();
    }
    step(&engine, &clock, 1_000).await;
    assert_eq!(drain_messages(&mut all), [json!(1), json!(3), json!(5)]);
    assert_eq!(drain_messages(&mut hot), [json!(3), json!(5)]);
}

#[tokio::test]
async fn pubsub_count_counts_only_matching_subscriptions() {
    let (engine, _clock) = engine();
    let _a = engine.subscribe("sel", Some("foo > 10")).unwrap();
    let _b = engine.subscribe("sel", Some("foo > 100")).unwrap();
    let _c = engine.subscribe("sel", None).unwrap();
    let body = json!({"message": 1, "headers": {"foo": 50}});
    let s = engine
        .publish_request("sel", PublishRequest::from_json(&body).unwrap())
        .await
        .unwrap();
    assert_eq!(s.deliveries.pubsub, 2);
}

#[tokio::test]
async fn malformed_selectors_are_rejected_with_5012() {
    let (engine, _clock) = engine();
    for bad in [
        "foo >",
        "foo = = 1",
        "(foo = 1",
        "foo IN ()",
        "foo = 'unterminated",
        "foo LIKE",
        "AND",
        "foo = 1 bar",
    ] {
        match engine.subscribe("sel", Some(bad)) {
            Ok(_) => panic!("selector {bad:?} accepted"),
            Err(e) => {
                assert_eq!(e.code(), 5012, "{bad:?}");
                // The parser's message with the position (contract).
                let text = e.to_string();
                assert!(text.starts_with("Invalid selector"), "{bad:?}: {text}");
                assert!(
                    text.chars().any(|c| c.is_ascii_digit()),
                    "{bad:?}: no position in {text}"
                );
            }
        }
    }
}
