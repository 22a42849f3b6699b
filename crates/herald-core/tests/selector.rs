//! Message selectors: table tests of every operator, the three-valued logic,
//! numeric coercion and error reporting, then property tests against an
//! independent model (`PROPTEST_CASES` sets the number of cases).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, DefaultHasher};

use herald_core::selector::{Headers, Selector, SelectorError, Truth};
use proptest::prelude::*;

fn sel(src: &str) -> Selector {
    Selector::parse(src).unwrap_or_else(|e| panic!("{src:?} should parse: {e}"))
}

fn eval(src: &str, headers: &[(&str, &str)]) -> Truth {
    sel(src).evaluate(headers)
}

use Truth::{False as F, True as T, Unknown as U};

/// One table row: selector, headers, expected result.
type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], Truth);

/// Runs `(selector, headers, expected)` rows and reports every failure.
fn check_table(rows: &[Row<'_>]) {
    let mut failures = Vec::new();
    for &(src, headers, want) in rows {
        let got = eval(src, headers);
        if got != want {
            failures.push(format!(
                "{src:?} over {headers:?}: got {got:?}, want {want:?}"
            ));
        }
        // `matches` is exactly "evaluates to TRUE".
        assert_eq!(sel(src).matches(headers), want == T, "{src:?}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// The Backendless observation

#[test]
fn foo_greater_than_10_delivers_exactly_20_and_50() {
    let s = sel("foo > 10");
    let messages: [&[(&str, &str)]; 5] = [
        &[("foo", "5")],
        &[("foo", "10")],
        &[("foo", "20")],
        &[("foo", "50")],
        &[("bar", "20")],
    ];
    let delivered: Vec<_> = messages
        .iter()
        .filter(|h| s.matches(**h))
        .map(|h| h[0].1)
        .collect();
    assert_eq!(delivered, ["20", "50"]);
}

// ---------------------------------------------------------------------------
// Operators

#[test]
fn comparison_operators_on_numbers() {
    let h: &[(&str, &str)] = &[("n", "20")];
    check_table(&[
        ("n = 20", h, T),
        ("n = 21", h, F),
        ("n <> 20", h, F),
        ("n <> 21", h, T),
        ("n != 21", h, T),
        ("n != 20", h, F),
        ("n < 21", h, T),
        ("n < 20", h, F),
        ("n <= 20", h, T),
        ("n <= 19", h, F),
        ("n > 19", h, T),
        ("n > 20", h, F),
        ("n >= 20", h, T),
        ("n >= 21", h, F),
        // Literal on the left flips nothing but the sides.
        ("21 > n", h, T),
        ("20 > n", h, F),
        ("19 <= n", h, T),
        ("-5 < n", h, T),
        ("+20 = n", h, T),
    ]);
}

#[test]
fn comparison_operators_on_strings() {
    let h: &[(&str, &str)] = &[("s", "beta")];
    check_table(&[
        ("s = 'beta'", h, T),
        ("s = 'Beta'", h, F),
        ("s <> 'Beta'", h, T),
        ("s != 'beta'", h, F),
        ("s < 'gamma'", h, T),
        ("s < 'alpha'", h, F),
        ("s > 'alpha'", h, T),
        ("s >= 'beta'", h, T),
        ("s <= 'bet'", h, F),
        ("s > 'bet'", h, T),
        // Byte order: upper case sorts before lower case, 'é' after 'z'.
        ("s > 'Zeta'", h, T),
        ("'é' > 'z'", &[], T),
        ("'' < 'a'", &[], T),
        // A number in a string literal is still a string comparison.
        ("v = '20'", &[("v", "20")], T),
        ("v = '20'", &[("v", "20.0")], F),
        ("v < '9'", &[("v", "10")], T),
    ]);
}

#[test]
fn booleans() {
    check_table(&[
        ("b = TRUE", &[("b", "true")], T),
        ("b = TRUE", &[("b", "TRUE")], T),
        ("b = true", &[("b", "True")], T),
        ("b = FALSE", &[("b", "true")], F),
        ("b <> FALSE", &[("b", "true")], T),
        ("b = FALSE", &[("b", "FaLsE")], T),
        ("b = TRUE", &[("b", "yes")], U),
        ("b = TRUE", &[("b", "1")], U),
        ("b <> TRUE", &[("b", "")], U),
        ("b = TRUE", &[], U),
        ("TRUE", &[], T),
        ("FALSE", &[], F),
        ("NOT FALSE", &[], T),
        ("TRUE = TRUE", &[], T),
        ("TRUE <> FALSE", &[], T),
        // A bare header is a boolean condition.
        ("urgent", &[("urgent", "true")], T),
        ("urgent", &[("urgent", "false")], F),
        ("urgent", &[("urgent", "maybe")], U),
        ("urgent", &[], U),
        ("NOT urgent", &[("urgent", "False")], T),
        ("urgent AND a = 1", &[("urgent", "true"), ("a", "1")], T),
        ("b IN (TRUE)", &[("b", "TRUE")], T),
    ]);
}

#[test]
fn header_against_header() {
    check_table(&[
        ("a = b", &[("a", "10"), ("b", "10.0")], T),
        ("a = b", &[("a", "10"), ("b", "1e1")], T),
        ("a < b", &[("a", "9"), ("b", "10")], T),
        // Not both numbers: compared as strings.
        ("a < b", &[("a", "9"), ("b", "10x")], F),
        ("a = b", &[("a", "abc"), ("b", "abc")], T),
        ("a <> b", &[("a", "abc"), ("b", "abd")], T),
        ("a = b", &[("a", "true"), ("b", "TRUE")], F),
        ("a = b", &[("a", "abc")], U),
        ("a = b", &[("b", "abc")], U),
        ("a = a", &[("a", "")], T),
    ]);
}

#[test]
fn literal_against_literal() {
    check_table(&[
        ("1 = 1", &[], T),
        ("1 = 1.0", &[], T),
        ("1 < 2", &[], T),
        ("2.5 > 2", &[], T),
        ("1e3 = 1000", &[], T),
        ("'a' = 'a'", &[], T),
        ("'a' < 'b'", &[], T),
        ("'a' LIKE 'a%'", &[], T),
        ("1 IN (2, 1)", &[], T),
        ("3 BETWEEN 1 AND 5", &[], T),
        ("'x' IS NULL", &[], F),
        ("1 IS NOT NULL", &[], T),
    ]);
}

#[test]
fn numeric_coercion() {
    check_table(&[
        ("n > 10", &[("n", "20")], T),
        ("n > 10", &[("n", "abc")], U),
        ("n < 10", &[("n", "abc")], U),
        ("n <> 10", &[("n", "abc")], U),
        ("n = 10", &[("n", "")], U),
        ("n = 10", &[("n", " 10")], U),
        ("n = 10", &[("n", "10 ")], U),
        ("n = 10", &[("n", "10.0")], T),
        ("n = 10", &[("n", "1e1")], T),
        ("n = 10", &[("n", "1E1")], T),
        ("n = 10", &[("n", "+10")], T),
        ("n = 10", &[("n", "010")], T),
        ("n = 10.0", &[("n", "10")], T),
        ("n = 1.5e3", &[("n", "1500")], T),
        ("n = 2E-1", &[("n", "0.2")], T),
        ("n < -1", &[("n", "-1.5")], T),
        ("n > .5", &[("n", "0.6")], T),
        ("n = 5.", &[("n", "5")], T),
        ("n = 0", &[("n", "-0.0")], T),
        ("n > 10", &[("n", "10.000000001")], T),
        ("n > 10", &[("n", "1e999")], T),
        ("n < -10", &[("n", "-1e999")], T),
        ("n = 1", &[("n", "0x1")], U),
        ("n = 1", &[("n", "NaN")], U),
        ("n < 1", &[("n", "-inf")], U),
        // Integers compare exactly, beyond what a double can tell apart.
        ("n > 9007199254740992", &[("n", "9007199254740993")], T),
        ("n = 9007199254740992", &[("n", "9007199254740993")], F),
        ("n > 9007199254740992.0", &[("n", "9007199254740993")], T),
        (
            "n = 9223372036854775807",
            &[("n", "9223372036854775807")],
            T,
        ),
        (
            "n < 9223372036854775807",
            &[("n", "9223372036854775806")],
            T,
        ),
        (
            "n = -9223372036854775808",
            &[("n", "-9223372036854775808")],
            T,
        ),
        // Past i64: doubles.
        (
            "n > 9223372036854775807",
            &[("n", "9223372036854775808")],
            T,
        ),
        ("n > 9223372036854775807", &[("n", "1e19")], T),
        ("9223372036854775807 < 9223372036854775808", &[], T),
    ]);
}

#[test]
fn in_and_not_in() {
    check_table(&[
        ("c IN ('eu', 'us')", &[("c", "us")], T),
        ("c IN ('eu', 'us')", &[("c", "jp")], F),
        ("c IN ('eu', 'us')", &[], U),
        ("c NOT IN ('eu', 'us')", &[("c", "jp")], T),
        ("c NOT IN ('eu', 'us')", &[("c", "eu")], F),
        ("c NOT IN ('eu', 'us')", &[], U),
        ("c IN ('x')", &[("c", "x")], T),
        ("n IN (1, 2, 3)", &[("n", "2.0")], T),
        ("n IN (1, 2, 3)", &[("n", "4")], F),
        // One comparison unknown and none true: UNKNOWN.
        ("n IN (1, 2)", &[("n", "abc")], U),
        ("n IN (1, 'abc')", &[("n", "abc")], T),
        ("n IN (1, 'x')", &[("n", "abc")], U),
        ("n NOT IN (1, 'x')", &[("n", "abc")], U),
        ("n IN (1, 'x')", &[("n", "1")], T),
        ("n IN (TRUE, 2)", &[("n", "2")], T),
    ]);
}

#[test]
fn between_and_not_between() {
    check_table(&[
        ("n BETWEEN 1 AND 5", &[("n", "1")], T),
        ("n BETWEEN 1 AND 5", &[("n", "5")], T),
        ("n BETWEEN 1 AND 5", &[("n", "3.5")], T),
        ("n BETWEEN 1 AND 5", &[("n", "0")], F),
        ("n BETWEEN 1 AND 5", &[("n", "6")], F),
        ("n BETWEEN 5 AND 1", &[("n", "3")], F),
        ("n BETWEEN 1 AND 5", &[], U),
        ("n BETWEEN 1 AND 5", &[("n", "x")], U),
        ("n NOT BETWEEN 1 AND 5", &[("n", "6")], T),
        ("n NOT BETWEEN 1 AND 5", &[("n", "3")], F),
        ("n NOT BETWEEN 1 AND 5", &[], U),
        ("s BETWEEN 'b' AND 'd'", &[("s", "c")], T),
        ("s BETWEEN 'b' AND 'd'", &[("s", "da")], F),
        // Bounds from headers.
        (
            "n BETWEEN lo AND hi",
            &[("n", "5"), ("lo", "1"), ("hi", "10")],
            T,
        ),
        ("n BETWEEN lo AND hi", &[("n", "5"), ("lo", "1")], U),
        // One side decided FALSE makes the AND false even if the other is
        // unknown: 'x' is not a number, but 'x' >= 'zz' is FALSE by string.
        ("s BETWEEN 'zz' AND 5", &[("s", "x")], F),
        // BETWEEN's AND does not end the expression.
        ("n BETWEEN 1 AND 5 AND m = 1", &[("n", "3"), ("m", "1")], T),
        ("n BETWEEN 1 AND 5 AND m = 1", &[("n", "3"), ("m", "2")], F),
    ]);
}

#[test]
fn like_not_like_and_escape() {
    check_table(&[
        ("t LIKE 'Sale%'", &[("t", "Sale: 20%")], T),
        ("t LIKE 'Sale%'", &[("t", "sale")], F),
        ("t LIKE '%20\\%' ESCAPE '\\'", &[("t", "Sale: 20%")], T),
        ("t LIKE '%20\\%' ESCAPE '\\'", &[("t", "Sale: 200")], F),
        ("t LIKE '%20%'", &[("t", "Sale: 200")], T),
        ("t LIKE 'a_c'", &[("t", "abc")], T),
        ("t LIKE 'a_c'", &[("t", "ac")], F),
        ("t LIKE 'a_c'", &[("t", "aéc")], T),
        ("t LIKE '_'", &[("t", "日")], T),
        ("t LIKE '__'", &[("t", "日")], F),
        ("t LIKE 'a!_c' ESCAPE '!'", &[("t", "a_c")], T),
        ("t LIKE 'a!_c' ESCAPE '!'", &[("t", "abc")], F),
        ("t LIKE 'a!!c' ESCAPE '!'", &[("t", "a!c")], T),
        ("t LIKE '100!%' escape '!'", &[("t", "100%")], T),
        ("t LIKE '%'", &[("t", "")], T),
        ("t LIKE ''", &[("t", "")], T),
        ("t LIKE ''", &[("t", "x")], F),
        ("t LIKE 'it''s%'", &[("t", "it's here")], T),
        ("t LIKE '%'", &[], U),
        ("t NOT LIKE 'a%'", &[("t", "bcd")], T),
        ("t NOT LIKE 'a%'", &[("t", "abc")], F),
        ("t NOT LIKE 'a%'", &[], U),
        // Numbers in headers are matched as their text.
        ("n LIKE '1%'", &[("n", "10.5")], T),
        // Case-sensitive.
        ("t LIKE 'A%'", &[("t", "abc")], F),
    ]);
}

#[test]
fn is_null_and_is_not_null() {
    check_table(&[
        ("a IS NULL", &[], T),
        ("a IS NULL", &[("a", "")], F),
        ("a IS NULL", &[("a", "x")], F),
        ("a IS NOT NULL", &[], F),
        ("a IS NOT NULL", &[("a", "")], T),
        ("a is not null", &[("a", "x")], T),
        ("NOT a IS NULL", &[("a", "x")], T),
        ("a IS NULL OR a > 5", &[], T),
        ("a IS NULL OR a > 5", &[("a", "6")], T),
        ("a IS NULL OR a > 5", &[("a", "4")], F),
    ]);
}

// ---------------------------------------------------------------------------
// Three-valued logic

/// Conditions that are TRUE, FALSE and UNKNOWN over `LOGIC_HEADERS`.
const T_EXPR: &str = "t = 1";
const F_EXPR: &str = "f = 1";
const U_EXPR: &str = "u = 1";
const LOGIC_HEADERS: &[(&str, &str)] = &[("t", "1"), ("f", "0")];

fn expr_for(t: Truth) -> &'static str {
    match t {
        T => T_EXPR,
        F => F_EXPR,
        U => U_EXPR,
    }
}

#[test]
fn truth_tables_with_missing_headers() {
    let all = [T, F, U];
    // The SQL tables, written out rather than computed.
    let and = |a, b| match (a, b) {
        (T, T) => T,
        (F, _) | (_, F) => F,
        _ => U,
    };
    let or = |a, b| match (a, b) {
        (F, F) => F,
        (T, _) | (_, T) => T,
        _ => U,
    };
    for a in all {
        let not_a = format!("NOT {}", expr_for(a));
        let want_not = match a {
            T => F,
            F => T,
            U => U,
        };
        assert_eq!(eval(&not_a, LOGIC_HEADERS), want_not, "{not_a}");
        assert_eq!(!a, want_not);
        for b in all {
            let src = format!("{} AND {}", expr_for(a), expr_for(b));
            assert_eq!(eval(&src, LOGIC_HEADERS), and(a, b), "{src}");
            assert_eq!(a.and(b), and(a, b));
            let src = format!("{} OR {}", expr_for(a), expr_for(b));
            assert_eq!(eval(&src, LOGIC_HEADERS), or(a, b), "{src}");
            assert_eq!(a.or(b), or(a, b));
        }
    }
    // The spec's examples, literally.
    assert_eq!(eval("NOT u = 1", &[]), U);
    assert_eq!(eval("u = 1 AND FALSE", &[]), F);
    assert_eq!(eval("u = 1 OR TRUE", &[]), T);
    assert!(!sel("u = 1").matches(&()));
    assert!(!sel("NOT u = 1").matches(&()));
}

#[test]
fn not_equal_is_not_true_for_a_missing_header() {
    // A classic SQL surprise that must hold: neither `a = 'x'` nor
    // `NOT (a = 'x')` nor `a <> 'x'` matches a message without `a`.
    for src in ["a = 'x'", "NOT (a = 'x')", "a <> 'x'", "NOT a <> 'x'"] {
        assert_eq!(eval(src, &[("b", "x")]), U, "{src}");
    }
    assert!(sel("NOT (a = 'x')").matches(&[("a", "y")]));
}

#[test]
fn long_and_or_chains_evaluate_every_operand() {
    // 2 000 conjuncts: flat, so neither parsing nor evaluation nests.
    let many: Vec<String> = (0..2_000).map(|i| format!("h{i} = {i}")).collect();
    let headers: Vec<(String, String)> = (0..2_000)
        .map(|i| (format!("h{i}"), i.to_string()))
        .collect();
    let and = sel(&many.join(" AND "));
    assert_eq!(and.evaluate(&headers), T);
    assert_eq!(and.evaluate(&headers[1..]), U);
    let mut wrong = headers.clone();
    wrong[1_999].1 = "0".into();
    assert_eq!(and.evaluate(&wrong), F);
    let or = sel(&many.join(" OR "));
    assert_eq!(or.evaluate(&wrong), T);
    // Only the last header there (and false): the rest are UNKNOWN.
    assert_eq!(or.evaluate(&wrong[1_999..]), U);
    let all_wrong: Vec<(String, String)> = headers
        .iter()
        .map(|(k, _)| (k.clone(), "-1".to_string()))
        .collect();
    assert_eq!(or.evaluate(&all_wrong), F);
    assert_eq!(or.evaluate(&[("zz", "1")]), U);
}

// ---------------------------------------------------------------------------
// Syntax

#[test]
fn keywords_are_case_insensitive_and_names_are_not() {
    let h: &[(&str, &str)] = &[("region", "eu"), ("n", "3"), ("t", "abc")];
    for src in [
        "region in ('eu') and n between 1 and 5 or t is null",
        "REGION IN ('eu') AND N BETWEEN 1 AND 5 OR T IS NULL",
        "Region In ('eu') AnD n BeTwEeN 1 aNd 5 Or t Is NuLl",
    ] {
        // Same parse, whatever the keyword case...
        assert_eq!(
            sel(src).to_string().to_lowercase(),
            "region in ('eu') and n between 1 and 5 or t is null",
            "{src}"
        );
    }
    // ...but header names are case-sensitive.
    assert_eq!(eval("region in ('eu') and n between 1 and 5", h), T);
    assert_eq!(eval("REGION in ('eu')", h), U);
    assert_eq!(eval("t not like 'A%'", h), T);
    assert_eq!(eval("n is not null", h), T);
    assert_eq!(eval("t = 'abc' and true", h), T);
    assert_eq!(eval("not false", h), T);
    assert_eq!(eval("t LIKE 'a|%' escape '|'", &[("t", "a%")]), T);
}

#[test]
fn string_literal_quote_escapes() {
    check_table(&[
        ("s = 'it''s'", &[("s", "it's")], T),
        ("s = 'it''s'", &[("s", "it''s")], F),
        ("s = ''''", &[("s", "'")], T),
        ("s = ''''''", &[("s", "''")], T),
        ("s = ''", &[("s", "")], T),
        ("s = 'a\"b'", &[("s", "a\"b")], T),
        ("s = 'two\nlines'", &[("s", "two\nlines")], T),
        ("s IN ('x''', '''y')", &[("s", "'y")], T),
    ]);
    assert_eq!(sel("s = 'it''s'").to_string(), "s = 'it''s'");
}

#[test]
fn header_names() {
    check_table(&[
        ("ios-alert-title = 'hi'", &[("ios-alert-title", "hi")], T),
        ("ios-alert-title = 'hi'", &[("ios", "hi")], U),
        ("$x.y_z9 = 1", &[("$x.y_z9", "1")], T),
        ("_a = 1", &[("_a", "1")], T),
        ("straße = 1", &[("straße", "1")], T),
        ("a-é = 1", &[("a-é", "1")], T),
        ("\"weird name\" = 1", &[("weird name", "1")], T),
        ("\"and\" = 1", &[("and", "1")], T),
        ("\"a-1\" > 0", &[("a-1", "1")], T),
        ("\"say \"\"hi\"\"\" IS NOT NULL", &[("say \"hi\"", "")], T),
        ("\"1st\" = 1", &[("1st", "1")], T),
        // Keywords glued with `-letter` are names.
        ("not-me = 1", &[("not-me", "1")], T),
    ]);
    // `-` before a non-letter ends the name.
    let err = Selector::parse("a-1 = 2").unwrap_err();
    assert_eq!(err.position(), 1, "{err}");
    assert_eq!(err.message(), "expected an operator after 'a', found '-1'");
    assert!(Selector::parse("a- = 1").is_err());
}

#[test]
fn precedence_not_over_and_over_or() {
    // Each selector against its fully parenthesised reading, over every
    // combination of three headers being 1, 0 or missing.
    let pairs = [
        (
            "a = 1 OR b = 1 AND c = 1",
            "(a = 1) OR ((b = 1) AND (c = 1))",
        ),
        (
            "a = 1 AND b = 1 OR c = 1",
            "((a = 1) AND (b = 1)) OR (c = 1)",
        ),
        ("NOT a = 1 AND b = 1", "(NOT (a = 1)) AND (b = 1)"),
        ("NOT a = 1 OR b = 1", "(NOT (a = 1)) OR (b = 1)"),
        (
            "NOT NOT a = 1 AND NOT b = 1 OR c = 1",
            "((NOT (NOT (a = 1))) AND (NOT (b = 1))) OR (c = 1)",
        ),
        (
            "a = 1 OR NOT b = 1 AND c = 1",
            "(a = 1) OR ((NOT (b = 1)) AND (c = 1))",
        ),
    ];
    let values = [Some("1"), Some("0"), None];
    let mut distinguished = 0;
    for (plain, explicit) in pairs {
        let (p, e) = (sel(plain), sel(explicit));
        assert_eq!(p, e, "{plain} parses like {explicit}");
        for a in values {
            for b in values {
                for c in values {
                    let h: Vec<(&str, &str)> = [("a", a), ("b", b), ("c", c)]
                        .into_iter()
                        .filter_map(|(k, v)| v.map(|v| (k, v)))
                        .collect();
                    assert_eq!(p.evaluate(&h), e.evaluate(&h), "{plain} over {h:?}");
                    if p.evaluate(&h) != T {
                        distinguished += 1;
                    }
                }
            }
        }
    }
    assert!(distinguished > 0);
    // And the other readings really differ.
    let h: &[(&str, &str)] = &[("a", "1"), ("b", "0"), ("c", "0")];
    assert_eq!(eval("a = 1 OR b = 1 AND c = 1", h), T);
    assert_eq!(eval("(a = 1 OR b = 1) AND c = 1", h), F);
    assert_eq!(eval("NOT a = 1 AND b = 1", &[("a", "0"), ("b", "0")]), F);
    assert_eq!(eval("NOT (a = 1 AND b = 1)", &[("a", "0"), ("b", "0")]), T);
}

#[test]
fn parentheses() {
    check_table(&[
        ("(a = 1)", &[("a", "1")], T),
        ("((((a = 1))))", &[("a", "1")], T),
        (
            "(a = 1 OR a = 2) AND (b = 1 OR b = 2)",
            &[("a", "2"), ("b", "1")],
            T,
        ),
        (
            "(a = 1 OR a = 2) AND (b = 1 OR b = 2)",
            &[("a", "2"), ("b", "3")],
            F,
        ),
        ("NOT (a = 1 OR a = 2)", &[("a", "3")], T),
        ("NOT(a=1)", &[("a", "3")], T),
    ]);
    // A number glued to a word is an error, not a silent split.
    assert!(Selector::parse("a=1AND b=2").is_err());
    assert_eq!(eval("(a=1)AND(b=2)", &[("a", "1"), ("b", "2")]), T);
}

#[test]
fn display_is_canonical_and_round_trips() {
    let cases = [
        ("a != 1", "a <> 1"),
        ("a<>'x'", "a <> 'x'"),
        ("not (a = 1 and b = 2)", "NOT (a = 1 AND b = 2)"),
        ("(a = 1 or b = 2) and c = 3", "(a = 1 OR b = 2) AND c = 3"),
        ("a = 1 or (b = 2 and c = 3)", "a = 1 OR b = 2 AND c = 3"),
        ("(a = 1 and b = 2) and c = 3", "a = 1 AND b = 2 AND c = 3"),
        ("not (not (a is null))", "NOT NOT a IS NULL"),
        ("((a = 1))", "a = 1"),
        (
            "n not between -1.5 and 1e3",
            "n NOT BETWEEN -1.5 AND 1000.0",
        ),
        ("n in (1,'x' ,true)", "n IN (1, 'x', TRUE)"),
        ("t not like 'a!%' escape '!'", "t NOT LIKE 'a!%' ESCAPE '!'"),
        ("t like 'it''s'", "t LIKE 'it''s'"),
        ("\"weird name\" = 'x'", "\"weird name\" = 'x'"),
        ("\"plain\" = 'x'", "plain = 'x'"),
        ("\"AND\" is not null", "\"AND\" IS NOT NULL"),
        ("\"a\"\"b\" = 1", "\"a\"\"b\" = 1"),
        ("urgent", "urgent"),
        ("true", "TRUE"),
        ("n = +7", "n = 7"),
        ("n = 1.5E-10", "n = 1.5e-10"),
        ("n = 9223372036854775808", "n = 9.223372036854776e18"),
    ];
    for (src, canonical) in cases {
        let s = sel(src);
        assert_eq!(s.to_string(), canonical, "display of {src:?}");
        assert_eq!(s.source(), src);
        let again = sel(canonical);
        assert_eq!(again, s, "{canonical:?} re-parses equal");
        assert_eq!(again.to_string(), canonical);
    }
    assert_ne!(sel("a = 1"), sel("a = 2"));
    assert_eq!("a = 1".parse::<Selector>().unwrap(), sel("a=1"));
}

// ---------------------------------------------------------------------------
// Errors

#[test]
fn error_positions_and_messages() {
    // (source, byte position, column, message)
    let cases: &[(&str, usize, usize, &str)] = &[
        ("foo >", 5, 6, "expected a value after '>'"),
        ("foo > ", 6, 7, "expected a value after '>'"),
        ("foo = 'unterminated", 6, 7, "unterminated string literal"),
        ("(a = 1", 6, 7, "missing ')' to close the '(' at column 1"),
        (
            "(a = 1 b",
            7,
            8,
            "expected ')' to close the '(' at column 1, found 'b'",
        ),
        ("a IN ()", 6, 7, "expected a literal after '(', found ')'"),
        (
            "a IN ('x' 'y')",
            10,
            11,
            "expected ',' or ')' after 'x', found 'y'",
        ),
        ("a IN 'x'", 5, 6, "expected '(' after 'IN', found 'x'"),
        (
            "a IN (b)",
            6,
            7,
            "IN lists hold literals only; quote strings with '...'",
        ),
        (
            "a LIKE 5",
            7,
            8,
            "expected a string pattern after 'LIKE', found '5'",
        ),
        (
            "a = 1 b",
            6,
            7,
            "expected AND, OR or the end of the selector after '1', found 'b'",
        ),
        ("a = 1)", 5, 6, "unmatched ')'"),
        ("", 0, 1, "empty selector"),
        ("   ", 0, 1, "empty selector"),
        ("a = 1 AND", 9, 10, "expected a condition after 'AND'"),
        ("AND a = 1", 0, 1, "expected a condition, found 'AND'"),
        (
            "a NOT = 1",
            6,
            7,
            "expected BETWEEN, IN or LIKE after 'NOT', found '='",
        ),
        (
            "a IS 1",
            5,
            6,
            "expected NULL or NOT NULL after 'IS', found '1'",
        ),
        ("a IS NOT", 8, 9, "expected NULL after 'NOT'"),
        (
            "a BETWEEN 1 OR 2",
            12,
            13,
            "expected AND after '1', found 'OR'",
        ),
        (
            "a BETWEEN TRUE AND 2",
            10,
            11,
            "BETWEEN cannot be used with TRUE or FALSE",
        ),
        ("1 = 'a'", 0, 1, "cannot compare a number with a string"),
        ("1 IN ('a')", 6, 7, "cannot compare a number with a string"),
        (
            "a < TRUE",
            4,
            5,
            "TRUE and FALSE can only be compared with = or <>",
        ),
        (
            "5 LIKE 'x'",
            0,
            1,
            "LIKE needs a header or a string on its left, not a number",
        ),
        (
            "a LIKE 'x!' ESCAPE '!'",
            7,
            8,
            "the LIKE pattern ends with its escape character",
        ),
        (
            "a LIKE 'x!y' ESCAPE '!'",
            7,
            8,
            "in the LIKE pattern, the escape character must be followed by '%', '_' or itself, not 'y'",
        ),
        (
            "a LIKE 'x' ESCAPE 'ab'",
            18,
            19,
            "the ESCAPE string must be exactly one character",
        ),
        (
            "a LIKE 'x' ESCAPE ''",
            18,
            19,
            "the ESCAPE string must be exactly one character",
        ),
        (
            "a LIKE 'x' ESCAPE 1",
            18,
            19,
            "expected a one-character string after 'ESCAPE', found '1'",
        ),
        (
            "a - 1 = 2",
            2,
            3,
            "'-' must be directly followed by a number (arithmetic is not supported)",
        ),
        ("a = 10abc", 4, 5, "invalid number '10abc'"),
        ("a = 1e999", 4, 5, "number 1e999 is out of range"),
        ("5", 1, 2, "expected an operator after '5'"),
        (
            "foo bar",
            4,
            5,
            "expected an operator after 'foo', found 'bar'",
        ),
        ("\"\" = 1", 0, 1, "empty quoted header name"),
        ("a = \"x", 4, 5, "unterminated quoted header name"),
        ("a # 1", 2, 3, "unexpected character '#'"),
        ("a ! 1", 2, 3, "unexpected '!' (did you mean '<>'?)"),
        (
            "é = 1 x",
            7,
            7,
            "expected AND, OR or the end of the selector after '1', found 'x'",
        ),
    ];
    let mut failures = Vec::new();
    for &(src, position, column, message) in cases {
        let err = match Selector::parse(src) {
            Ok(s) => {
                failures.push(format!("{src:?} parsed as {s}"));
                continue;
            }
            Err(e) => e,
        };
        let got = (err.position(), err.column(), err.message());
        if got != (position, column, message) {
            failures.push(format!(
                "{src:?}: got {got:?}, want {:?}",
                (position, column, message)
            ));
        }
        assert_eq!(err.code(), 5012);
        assert_eq!(
            err.to_string(),
            format!("invalid selector at column {column}: {}", err.message())
        );
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn error_type_is_a_std_error_with_code_5012() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let err = Selector::parse("foo > ").unwrap_err();
    assert_error(&err);
    assert_eq!(SelectorError::CODE, 5012);
    assert_eq!(err.code(), SelectorError::CODE);
    assert_eq!(
        err.to_string(),
        "invalid selector at column 7: expected a value after '>'"
    );
}

#[test]
fn nesting_limit() {
    let depth = Selector::MAX_DEPTH;
    let parens = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
    let nots = |n: usize| format!("{}a = 1", "NOT ".repeat(n));
    let mixed = |n: usize| format!("{}a = 1{}", "NOT (".repeat(n / 2), ")".repeat(n / 2));
    let h: &[(&str, &str)] = &[("a", "1")];
    assert_eq!(sel(&parens(depth)).evaluate(h), T);
    assert_eq!(sel(&nots(depth)).evaluate(h), T); // 256 is even
    assert_eq!(sel(&nots(depth - 1)).evaluate(h), F);
    assert_eq!(sel(&mixed(depth)).evaluate(h), T);
    // Display of the deepest accepted selectors parses again.
    for s in [parens(depth), nots(depth), mixed(depth)] {
        let s = sel(&s);
        assert_eq!(sel(&s.to_string()), s);
    }
    for (src, at) in [
        (parens(depth + 1), depth),
        (nots(depth + 1), 4 * depth),
        (mixed(depth + 2), 5 * depth / 2),
    ] {
        let err = Selector::parse(&src).unwrap_err();
        assert_eq!(err.position(), at, "{err}");
        assert_eq!(
            err.message(),
            "nested more than 256 levels deep (parentheses and NOT)"
        );
    }
    // Far deeper input is rejected just the same (no stack overflow).
    assert!(Selector::parse(&parens(20_000)).is_err());
    assert!(Selector::parse(&"NOT ".repeat(10_000)).is_err());
}

#[test]
fn deepest_selectors_fit_a_small_stack() {
    // Parsing uses no recursion; evaluation, Display, Debug, equality and
    // drop recurse once or twice per level, bounded by MAX_DEPTH. 1 MiB is
    // twice what an unoptimised build needs (a release build needs about
    // 128 KiB).
    let half = Selector::MAX_DEPTH / 2;
    let shapes = [
        format!("{}a = 1{}", "(".repeat(2 * half), ")".repeat(2 * half)),
        format!("{}a = 1", "NOT ".repeat(2 * half)),
        format!("{}a = 1{}", "NOT (".repeat(half), ")".repeat(half)),
        format!(
            "{}a = 1{}",
            "(a = 1 OR (b = 1 AND ".repeat(half),
            "))".repeat(half)
        ),
        format!(
            "{}a = 1{}",
            "NOT (b = 1 AND ".repeat(half),
            ")".repeat(half)
        ),
    ];
    let worker = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            let mut results = Vec::new();
            for src in shapes {
                let s = sel(&src);
                results.push(s.evaluate(&[("a", "1"), ("b", "1")]));
                let again = sel(&s.to_string());
                assert_eq!(again, s.clone());
                assert!(format!("{s:?}").len() > src.len());
            }
            results
        })
        .expect("spawn");
    // The last shape alternates F, T, F... from the inside out: 128 levels
    // end on TRUE.
    assert_eq!(worker.join().expect("no overflow"), [T, T, T, T, T]);
}

#[test]
fn length_limit() {
    let filler = |n: usize| format!("a = '{}'", "x".repeat(n - 6));
    let at_limit = filler(Selector::MAX_LEN);
    assert_eq!(at_limit.len(), Selector::MAX_LEN);
    assert_eq!(sel(&at_limit).evaluate(&[("a", "x")]), F);
    let over = filler(Selector::MAX_LEN + 1);
    let err = Selector::parse(&over).unwrap_err();
    assert_eq!(err.position(), 0);
    assert_eq!(
        err.message(),
        "selector is 65537 bytes long; the limit is 65536"
    );
}

// ---------------------------------------------------------------------------
// API

#[test]
fn headers_implementations() {
    let s = sel("a = '1' AND b IS NULL");
    let map: HashMap<String, String> = HashMap::from([("a".into(), "1".into())]);
    assert!(s.matches(&map));
    let custom: HashMap<String, String, BuildHasherDefault<DefaultHasher>> =
        [("a".to_string(), "1".to_string())].into_iter().collect();
    assert!(s.matches(&custom));
    let strs: HashMap<&str, &str> = HashMap::from([("a", "1"), ("b", "2")]);
    assert!(!s.matches(&strs));
    let tree: BTreeMap<String, String> = BTreeMap::from([("a".into(), "1".into())]);
    assert!(s.matches(&tree));
    let slice: &[(&str, &str)] = &[("a", "1")];
    assert!(s.matches(slice));
    assert!(s.matches(&slice));
    assert!(s.matches(&[("a", "1")]));
    assert!(s.matches(&vec![("a".to_string(), "1".to_string())]));
    // Through `&T` and a trait object.
    let dynamic: &dyn Headers = &map;
    assert!(s.matches(dynamic));
    assert!(s.matches(&&map));
    // First pair wins in a list.
    assert!(s.matches(&[("a", "1"), ("a", "2")]));
    assert!(!s.matches(&[("a", "2"), ("a", "1")]));
}

#[test]
fn selector_is_clone_debug_send_sync() {
    fn assert_traits<T: Clone + std::fmt::Debug + Send + Sync + 'static>() {}
    assert_traits::<Selector>();
    assert_traits::<SelectorError>();
    let s = sel("a = 1");
    let shared = std::sync::Arc::new(s.clone());
    let handle = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.matches(&[("a", "1")]))
    };
    assert!(handle.join().unwrap());
    assert_eq!(*shared, s);
    assert!(format!("{s:?}").contains("Selector"));
}

// ---------------------------------------------------------------------------
// Property tests against an independent model.
//
// `G` is a generated selector: it renders itself as text (with random
// keyword case and spacing) and evaluates itself with its own, deliberately
// simple, semantics: numbers as f64 (exact for the small values used here),
// Option<bool> for three-valued logic, a recursive LIKE.

const NAMES: [&str; 5] = ["a", "b", "ios-alert", "weird name", "q\"t"];
const VALUES: [&str; 18] = [
    "", "0", "5", "10", "10.0", "1e1", "-5", "2.5", "20", "abc", "Abc", "true", "FALSE", "it's",
    "a%b", "é_x", " 10", "b",
];

#[derive(Clone, Debug)]
enum Lit {
    Num(&'static str),
    Str(&'static str),
    Bool(bool),
}

const NUMS: [&str; 9] = ["0", "5", "10", "-5", "2.5", "1e1", "10.0", "+3", "20"];

#[derive(Clone, Debug)]
enum Opd {
    Header(&'static str),
    Lit(Lit),
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Eq,
    Ne,
    Ne2,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
enum PatElem {
    Char(char),
    One,
    Any,
}

#[derive(Clone, Debug)]
enum G {
    Cmp(Opd, Op, Opd),
    Between(Opd, bool, Opd, Opd),
    In(Opd, bool, Vec<Lit>),
    Like(Opd, bool, Vec<PatElem>, Option<char>),
    IsNull(&'static str, bool),
    BoolHeader(&'static str),
    BoolLit(bool),
    Not(Box<Self>),
    And(Vec<Self>),
    Or(Vec<Self>),
    Paren(Box<Self>),
}

fn lit() -> impl Strategy<Value = Lit> {
    prop_oneof![
        4 => prop::sample::select(&NUMS[..]).prop_map(Lit::Num),
        4 => prop::sample::select(&VALUES[..]).prop_map(Lit::Str),
        1 => any::<bool>().prop_map(Lit::Bool),
    ]
}

fn header() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&NAMES[..])
}

fn opd() -> impl Strategy<Value = Opd> {
    prop_oneof![
        3 => header().prop_map(Opd::Header),
        2 => lit().prop_map(Opd::Lit),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(vec![
        Op::Eq,
        Op::Ne,
        Op::Ne2,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
    ])
}

const fn kind(l: &Lit) -> u8 {
    match l {
        Lit::Num(_) => 0,
        Lit::Str(_) => 1,
        Lit::Bool(_) => 2,
    }
}

/// Two constants of different kinds cannot be compared: make the left one a
/// header instead.
fn compatible(left: Opd, right: &Opd) -> Opd {
    match (&left, right) {
        (Opd::Lit(a), Opd::Lit(b)) if kind(a) != kind(b) => Opd::Header("a"),
        _ => left,
    }
}

fn no_bool(o: Opd) -> Opd {
    match o {
        Opd::Lit(Lit::Bool(_)) => Opd::Lit(Lit::Num("5")),
        o => o,
    }
}

fn pattern() -> impl Strategy<Value = (Vec<PatElem>, Option<char>)> {
    let elem = prop_oneof![
        4 => prop::sample::select(vec!['a', 'b', 'é', '\'', '%', '_', '!']).prop_map(PatElem::Char),
        2 => Just(PatElem::One),
        2 => Just(PatElem::Any),
    ];
    (
        prop::collection::vec(elem, 0..7),
        prop::option::of(Just('!')),
    )
}

fn leaf() -> impl Strategy<Value = G> {
    prop_oneof![
        6 => (opd(), op(), opd()).prop_map(|(l, op, r)| {
            let l = compatible(l, &r);
            let boolean = |o: &Opd| matches!(o, Opd::Lit(Lit::Bool(_)));
            let op = if (boolean(&l) || boolean(&r)) && !matches!(op, Op::Eq | Op::Ne | Op::Ne2) {
                Op::Eq
            } else {
                op
            };
            G::Cmp(l, op, r)
        }),
        2 => (opd(), any::<bool>(), opd(), opd()).prop_map(|(s, n, lo, hi)| {
            let (lo, hi) = (no_bool(lo), no_bool(hi));
            let s = compatible(compatible(no_bool(s), &lo), &hi);
            G::Between(s, n, lo, hi)
        }),
        2 => (opd(), any::<bool>(), prop::collection::vec(lit(), 1..4)).prop_map(|(s, n, list)| {
            let s = list.iter().fold(s, |s, l| compatible(s, &Opd::Lit(l.clone())));
            G::In(s, n, list)
        }),
        2 => (
            prop_oneof![3 => header().prop_map(Opd::Header), 1 => prop::sample::select(&VALUES[..]).prop_map(|v| Opd::Lit(Lit::Str(v)))],
            any::<bool>(),
            pattern(),
        )
            .prop_map(|(s, n, (p, e))| G::Like(s, n, p, e)),
        1 => (header(), any::<bool>()).prop_map(|(h, n)| G::IsNull(h, n)),
        1 => header().prop_map(G::BoolHeader),
        1 => any::<bool>().prop_map(G::BoolLit),
    ]
}

fn g() -> impl Strategy<Value = G> {
    leaf().prop_recursive(4, 40, 4, |inner| {
        prop_oneof![
            2 => inner.clone().prop_map(|g| G::Not(Box::new(g))),
            3 => prop::collection::vec(inner.clone(), 2..4).prop_map(G::And),
            3 => prop::collection::vec(inner.clone(), 2..4).prop_map(G::Or),
            1 => inner.prop_map(|g| G::Paren(Box::new(g))),
        ]
    })
}

/// Headers: each name present or not, with a value from `VALUES`.
fn headers() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::vec(
        prop::option::weighted(0.75, prop::sample::select(&VALUES[..])),
        NAMES.len(),
    )
    .prop_map(|vals| {
        NAMES
            .iter()
            .zip(vals)
            .filter_map(|(k, v)| v.map(|v| ((*k).to_string(), v.to_string())))
            .collect()
    })
}

/// Renders keywords in a case picked by `style` bits.
struct Render {
    style: u64,
    n: u32,
}

impl Render {
    fn kw(&mut self, k: &str) -> String {
        let bits = self.style.rotate_right(self.n * 2) & 3;
        self.n = (self.n + 1) % 32;
        match bits {
            0 => k.to_uppercase(),
            1 => k.to_lowercase(),
            2 => {
                let lower = k.to_lowercase();
                let mut c = lower.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            }
            _ => k
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_lowercase()
                    } else {
                        c
                    }
                })
                .collect(),
        }
    }

    fn sp(&mut self) -> &'static str {
        let bit = self.style.rotate_right(self.n + 7) & 1;
        self.n = (self.n + 1) % 32;
        if bit == 0 { " " } else { "  " }
    }

    fn name(&self, n: &str) -> String {
        let bare = n
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
            && !n.ends_with('-');
        if bare {
            n.to_string()
        } else {
            format!("\"{}\"", n.replace('"', "\"\""))
        }
    }

    fn lit(&mut self, l: &Lit) -> String {
        match l {
            Lit::Num(n) => (*n).to_string(),
            Lit::Str(s) => format!("'{}'", s.replace('\'', "''")),
            Lit::Bool(b) => self.kw(if *b { "TRUE" } else { "FALSE" }),
        }
    }

    fn opd(&mut self, o: &Opd) -> String {
        match o {
            Opd::Header(h) => self.name(h),
            Opd::Lit(l) => self.lit(l),
        }
    }

    fn not(&mut self, negated: bool) -> String {
        if negated {
            format!("{} ", self.kw("NOT"))
        } else {
            String::new()
        }
    }

    fn render(&mut self, g: &G) -> String {
        match g {
            G::Cmp(l, op, r) => {
                let op = match op {
                    Op::Eq => "=",
                    Op::Ne => "<>",
                    Op::Ne2 => "!=",
                    Op::Lt => "<",
                    Op::Le => "<=",
                    Op::Gt => ">",
                    Op::Ge => ">=",
                };
                let sp = self.sp();
                format!("{}{sp}{op}{sp}{}", self.opd(l), self.opd(r))
            }
            G::Between(s, n, lo, hi) => format!(
                "{} {}{} {} {} {}",
                self.opd(s),
                self.not(*n),
                self.kw("BETWEEN"),
                self.opd(lo),
                self.kw("AND"),
                self.opd(hi)
            ),
            G::In(s, n, list) => {
                let items: Vec<String> = list.iter().map(|l| self.lit(l)).collect();
                format!(
                    "{} {}{} ({})",
                    self.opd(s),
                    self.not(*n),
                    self.kw("IN"),
                    items.join(",")
                )
            }
            G::Like(s, n, pat, esc) => {
                let p = pattern_text(pat, *esc);
                let mut out = format!(
                    "{} {}{} '{}'",
                    self.opd(s),
                    self.not(*n),
                    self.kw("LIKE"),
                    p.replace('\'', "''")
                );
                if let Some(x) = esc {
                    out.push_str(&format!(" {} '{x}'", self.kw("ESCAPE")));
                }
                out
            }
            G::IsNull(h, n) => {
                format!(
                    "{} {} {}{}",
                    self.name(h),
                    self.kw("IS"),
                    self.not(*n),
                    self.kw("NULL")
                )
            }
            G::BoolHeader(h) => self.name(h),
            G::BoolLit(b) => self.lit(&Lit::Bool(*b)),
            G::Not(inner) => {
                let wrap = matches!(**inner, G::And(_) | G::Or(_));
                let body = self.render(inner);
                let not = self.kw("NOT");
                if wrap {
                    format!("{not} ({body})")
                } else {
                    format!("{not} {body}")
                }
            }
            G::And(children) | G::Or(children) => {
                let is_and = matches!(g, G::And(_));
                let sep = if is_and {
                    self.kw("AND")
                } else {
                    self.kw("OR")
                };
                let parts: Vec<String> = children
                    .iter()
                    .map(|c| {
                        let body = self.render(c);
                        if is_and && matches!(c, G::Or(_)) {
                            format!("({body})")
                        } else {
                            body
                        }
                    })
                    .collect();
                parts.join(&format!(" {sep} "))
            }
            G::Paren(inner) => format!("({})", self.render(inner)),
        }
    }
}

/// A generated LIKE pattern as written (before quoting).
fn pattern_text(pat: &[PatElem], esc: Option<char>) -> String {
    let mut p = String::new();
    for e in pat {
        match (e, esc) {
            (PatElem::One, _) => p.push('_'),
            (PatElem::Any, _) => p.push('%'),
            (PatElem::Char(c), Some(x)) if matches!(c, '%' | '_') || *c == x => {
                p.push(x);
                p.push(*c);
            }
            // Without ESCAPE a literal % or _ cannot be written.
            (PatElem::Char('%' | '_'), None) => p.push('a'),
            (PatElem::Char(c), _) => p.push(*c),
        }
    }
    p
}

fn render(g: &G, style: u64) -> String {
    Render { style, n: 0 }.render(g)
}

/// The model's view of an operand.
#[derive(Clone, Copy, Debug)]
enum MVal<'a> {
    Missing,
    Text(&'a str),
    Num(f64),
    Str(&'a str),
    Bool(bool),
}

fn mval<'a>(o: &'a Opd, h: &'a BTreeMap<String, String>) -> MVal<'a> {
    match o {
        Opd::Header(n) => h.get(*n).map_or(MVal::Missing, |v| MVal::Text(v)),
        Opd::Lit(Lit::Num(n)) => MVal::Num(n.parse().expect("number literal")),
        Opd::Lit(Lit::Str(s)) => MVal::Str(s),
        Opd::Lit(Lit::Bool(b)) => MVal::Bool(*b),
    }
}

fn mbool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// `f64` parse, but only for the plain decimal spellings selectors accept
/// (Rust also reads "inf" and "NaN", which none of `VALUES` are).
fn mnum(s: &str) -> Option<f64> {
    s.parse().ok()
}

fn mcmp(l: MVal<'_>, r: MVal<'_>) -> Option<std::cmp::Ordering> {
    use MVal::*;
    match (l, r) {
        (Missing, _) | (_, Missing) => None,
        (Text(a), Text(b)) => match (mnum(a), mnum(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => Some(a.cmp(b)),
        },
        (Text(t), Num(n)) => mnum(t)?.partial_cmp(&n),
        (Num(n), Text(t)) => n.partial_cmp(&mnum(t)?),
        (Text(t), Str(s)) => Some(t.cmp(s)),
        (Str(s), Text(t)) => Some(s.cmp(t)),
        (Text(t), Bool(b)) => Some(mbool(t)?.cmp(&b)),
        (Bool(b), Text(t)) => Some(b.cmp(&mbool(t)?)),
        (Num(a), Num(b)) => a.partial_cmp(&b),
        (Str(a), Str(b)) => Some(a.cmp(b)),
        (Bool(a), Bool(b)) => Some(a.cmp(&b)),
        _ => panic!("generator made an ill-typed comparison: {l:?} vs {r:?}"),
    }
}

fn m_and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn m_or(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn m_not(a: Option<bool>, negated: bool) -> Option<bool> {
    if negated { a.map(|b| !b) } else { a }
}

/// Reference LIKE: plain recursion over chars (exponential in the worst
/// case, fine for short inputs).
fn ref_like(text: &[char], pat: &[char], esc: Option<char>) -> bool {
    match pat.first() {
        None => text.is_empty(),
        Some(&c) if Some(c) == esc => {
            !text.is_empty()
                && pat.len() > 1
                && text[0] == pat[1]
                && ref_like(&text[1..], &pat[2..], esc)
        }
        Some('%') => (0..=text.len()).any(|k| ref_like(&text[k..], &pat[1..], esc)),
        Some('_') => !text.is_empty() && ref_like(&text[1..], &pat[1..], esc),
        Some(&c) => !text.is_empty() && text[0] == c && ref_like(&text[1..], &pat[1..], esc),
    }
}

fn model(g: &G, h: &BTreeMap<String, String>) -> Option<bool> {
    use std::cmp::Ordering::*;
    let cmp = |l: &Opd, op: Op, r: &Opd| {
        let o = mcmp(mval(l, h), mval(r, h))?;
        Some(match op {
            Op::Eq => o == Equal,
            Op::Ne | Op::Ne2 => o != Equal,
            Op::Lt => o == Less,
            Op::Le => o != Greater,
            Op::Gt => o == Greater,
            Op::Ge => o != Less,
        })
    };
    match g {
        G::Cmp(l, op, r) => cmp(l, *op, r),
        G::Between(s, n, lo, hi) => m_not(m_and(cmp(s, Op::Ge, lo), cmp(s, Op::Le, hi)), *n),
        G::In(s, n, list) => {
            let any = list
                .iter()
                .map(|l| cmp(s, Op::Eq, &Opd::Lit(l.clone())))
                .fold(Some(false), m_or);
            m_not(any, *n)
        }
        G::Like(s, n, pat, esc) => {
            let text: Vec<char> = match mval(s, h) {
                MVal::Text(t) | MVal::Str(t) => t.chars().collect(),
                _ => return None,
            };
            let pat: Vec<char> = pattern_text(pat, *esc).chars().collect();
            m_not(Some(ref_like(&text, &pat, *esc)), *n)
        }
        G::IsNull(name, n) => m_not(Some(!h.contains_key(*name)), *n),
        G::BoolHeader(name) => h.get(*name).and_then(|v| mbool(v)),
        G::BoolLit(b) => Some(*b),
        G::Not(inner) => m_not(model(inner, h), true),
        G::And(c) => c.iter().map(|c| model(c, h)).fold(Some(true), m_and),
        G::Or(c) => c.iter().map(|c| model(c, h)).fold(Some(false), m_or),
        G::Paren(inner) => model(inner, h),
    }
}

fn truth(b: Option<bool>) -> Truth {
    Truth::from(b)
}

/// A LIKE pattern, a text made from it, and the escape character: see
/// `like_agrees_with_dp_reference_on_longer_inputs`. Half the patterns
/// have `%` only at both ends, so their one segment is often longer than
/// 64 characters.
fn like_case() -> impl Strategy<Value = (String, String, Option<char>)> {
    const CHARS: [char; 7] = ['a', 'b', 'é', '日', '%', '_', '!'];
    let piece = prop_oneof![
        8 => prop::sample::select(vec!["a", "b", "é", "日"]),
        5 => Just("_"),
        1 => Just("%"),
        1 => prop::sample::select(vec!["!%", "!_", "!!"]),
    ];
    (
        prop::collection::vec(piece, 0..160),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(mut pieces, escape, fill, edits, perturb, one_segment)| {
            if one_segment {
                // `%` only around the whole: one long floating segment.
                pieces.retain(|p| !p.ends_with('%'));
                pieces.insert(0, "%");
                pieces.push("%");
            }
            let mut fill = fill.into_iter().cycle();
            let mut random = || CHARS[usize::from(fill.next().unwrap_or(0)) % CHARS.len()];
            let mut pattern = String::new();
            let mut text = String::new();
            for piece in pieces {
                match (piece, escape) {
                    ("%", _) | ("!%", false) => {
                        pattern.push('%');
                        let n = usize::from(random() as u8 % 4);
                        text.extend((0..n).map(|_| random()));
                    }
                    ("_", _) | ("!_", false) => {
                        pattern.push('_');
                        text.push(random());
                    }
                    ("!!", false) => {}
                    (escaped, true) if escaped.starts_with('!') => {
                        pattern.push_str(escaped);
                        text.push_str(&escaped[1..]);
                    }
                    (literal, _) => {
                        pattern.push_str(literal);
                        text.push_str(literal);
                    }
                }
            }
            if perturb {
                let mut chars: Vec<char> = text.chars().collect();
                for (at, c) in edits {
                    let c = CHARS[usize::from(c) % CHARS.len()];
                    match at % 3 {
                        _ if chars.is_empty() => chars.push(c),
                        0 => {
                            let i = at / 3 % chars.len();
                            chars[i] = c;
                        }
                        1 => chars.insert(at / 3 % (chars.len() + 1), c),
                        _ => {
                            chars.remove(at / 3 % chars.len());
                        }
                    }
                }
                text = chars.into_iter().collect();
            }
            (text, pattern, escape.then_some('!'))
        })
}

/// Tokens for "token soup" inputs: mostly valid pieces in random order.
const TOKENS: &[&str] = &[
    "a",
    "b",
    "ios-x",
    "\"q w\"",
    "=",
    "<>",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "AND",
    "or",
    "NOT",
    "(",
    ")",
    "IN",
    "LIKE",
    "ESCAPE",
    "BETWEEN",
    "IS",
    "NULL",
    "TRUE",
    "false",
    ",",
    "'x'",
    "'%_'",
    "'!'",
    "''''",
    "1",
    "-2.5",
    "1e3",
    "'",
    "\"",
    "-",
    "!",
    "é",
    "1e999",
    "9223372036854775808",
];

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    /// The implementation agrees with the model on random selectors and
    /// headers; `matches` is exactly "evaluates to TRUE".
    #[test]
    fn agrees_with_model(g in g(), style in any::<u64>(), hs in prop::collection::vec(headers(), 1..4)) {
        let src = render(&g, style);
        let s = Selector::parse(&src).map_err(|e| TestCaseError::fail(format!("{src:?}: {e}")))?;
        for h in &hs {
            let want = truth(model(&g, h));
            prop_assert_eq!(s.evaluate(h), want, "{} over {:?}", src, h);
            prop_assert_eq!(s.matches(h), want == Truth::True);
        }
    }

    /// Display prints something that parses back to an equal selector, with
    /// the same Display and the same results.
    #[test]
    fn display_round_trips(g in g(), style in any::<u64>(), hs in prop::collection::vec(headers(), 1..4)) {
        let src = render(&g, style);
        let s = sel(&src);
        let shown = s.to_string();
        let again = Selector::parse(&shown).map_err(|e| TestCaseError::fail(format!("{shown:?}: {e}")))?;
        prop_assert_eq!(&again, &s, "{} -> {}", src, shown);
        prop_assert_eq!(again.to_string(), shown.clone());
        for h in &hs {
            prop_assert_eq!(again.evaluate(h), s.evaluate(h), "{} vs {}", src, shown);
        }
    }

    /// `NOT (a = 'x')` matches exactly when `a` is there and is not 'x'.
    #[test]
    fn not_equal_matches_only_present_and_different(x in prop::sample::select(&VALUES[..]), h in headers()) {
        let s = sel(&format!("NOT (a = '{}')", x.replace('\'', "''")));
        let want = h.get("a").is_some_and(|v| v != x);
        prop_assert_eq!(s.matches(&h), want);
    }

    /// `a BETWEEN l AND h` is `a >= l AND a <= h`; NOT BETWEEN its negation.
    #[test]
    fn between_is_two_comparisons(lo in lit(), hi in lit(), h in headers(), negated in any::<bool>()) {
        let (lo, hi) = match (no_bool(Opd::Lit(lo)), no_bool(Opd::Lit(hi))) {
            (Opd::Lit(lo), Opd::Lit(hi)) => (lo, hi),
            _ => unreachable!(),
        };
        let mut r = Render { style: 0, n: 0 };
        let (l, u) = (r.lit(&lo), r.lit(&hi));
        let not = if negated { "NOT " } else { "" };
        let between = sel(&format!("a {not}BETWEEN {l} AND {u}"));
        let expanded = sel(&format!("{not}(a >= {l} AND a <= {u})"));
        prop_assert_eq!(between.evaluate(&h), expanded.evaluate(&h));
    }

    /// `x IN (..)` is the OR of equalities under three-valued logic, and
    /// NOT IN its negation.
    #[test]
    fn in_is_or_of_equalities(list in prop::collection::vec(lit(), 1..5), h in headers()) {
        let mut r = Render { style: 0, n: 0 };
        let items: Vec<String> = list.iter().map(|l| r.lit(l)).collect();
        let in_list = sel(&format!("a IN ({})", items.join(", ")));
        let not_in = sel(&format!("a NOT IN ({})", items.join(", ")));
        let ors: Vec<String> = items.iter().map(|i| format!("a = {i}")).collect();
        let or = sel(&ors.join(" OR "));
        prop_assert_eq!(in_list.evaluate(&h), or.evaluate(&h));
        prop_assert_eq!(not_in.evaluate(&h), !or.evaluate(&h));
    }

    /// `IS NULL` is exactly "header missing".
    #[test]
    fn is_null_is_missing(name in header(), h in headers()) {
        let r = Render { style: 0, n: 0 };
        let quoted = r.name(name);
        prop_assert_eq!(sel(&format!("{quoted} IS NULL")).matches(&h), !h.contains_key(name));
        prop_assert_eq!(sel(&format!("{quoted} IS NOT NULL")).matches(&h), h.contains_key(name));
    }

    /// De Morgan's laws and double negation hold under three-valued logic.
    #[test]
    fn de_morgan(a in g(), b in g(), h in headers()) {
        let (a, b) = (render(&a, 0), render(&b, 0));
        let pairs = [
            (format!("NOT (({a}) AND ({b}))"), format!("NOT ({a}) OR NOT ({b})")),
            (format!("NOT (({a}) OR ({b}))"), format!("NOT ({a}) AND NOT ({b})")),
            (format!("NOT NOT ({a})"), a.clone()),
        ];
        for (l, r) in pairs {
            prop_assert_eq!(sel(&l).evaluate(&h), sel(&r).evaluate(&h), "{} vs {}", l, r);
        }
    }

    /// LIKE agrees with a naive recursive matcher.
    #[test]
    fn like_agrees_with_reference(
        text in "[ab_%!é]{0,10}",
        pat in prop::collection::vec(prop::sample::select(vec!["a", "b", "é", "_", "%", "!%", "!_", "!!"]), 0..8),
        escape in any::<bool>(),
    ) {
        let pat: String = if escape { pat.concat() } else { pat.concat().replace('!', "") };
        let esc = escape.then_some('!');
        let src = match esc {
            Some(e) => format!("t LIKE '{pat}' ESCAPE '{e}'"),
            None => format!("t LIKE '{pat}'"),
        };
        let s = sel(&src);
        let t: Vec<char> = text.chars().collect();
        let p: Vec<char> = pat.chars().collect();
        prop_assert_eq!(s.matches(&[("t", text.as_str())]), ref_like(&t, &p, esc), "{}", src);
    }

    /// LIKE agrees with a dynamic-programming reference on longer inputs:
    /// patterns of up to 160 pieces (so `_` segments longer than 64
    /// characters occur), texts made by filling in the pattern and then
    /// perturbing it (so matches and near misses are common), and the
    /// matcher's counted work stays within its bound
    /// (`herald_core::fuzzing::like`).
    #[test]
    fn like_agrees_with_dp_reference_on_longer_inputs(
        (text, pattern, escape) in like_case(),
    ) {
        herald_core::fuzzing::like(&text, &pattern, escape);
    }

    /// No string makes parsing panic; whatever parses also displays,
    /// re-parses and evaluates.
    #[test]
    fn parse_never_panics(src in any::<String>()) {
        if let Ok(s) = Selector::parse(&src) {
            prop_assert_eq!(sel(&s.to_string()), s.clone());
            let _ = s.evaluate(&[("a", "1")]);
        }
    }

    /// The fuzz target's checks (evaluation, Display round trip, negation)
    /// on random bytes in both of its modes.
    #[test]
    fn fuzz_entry_point_holds(data in prop::collection::vec(any::<u8>(), 0..48)) {
        herald_core::fuzzing::selector_bytes(&data);
    }

    /// Same for soups of selector tokens, which parse far more often.
    #[test]
    fn token_soup_never_panics(
        toks in prop::collection::vec(prop::sample::select(TOKENS), 0..16),
        glue in any::<bool>(),
        h in headers(),
    ) {
        let src = toks.join(if glue { "" } else { " " });
        match Selector::parse(&src) {
            Ok(s) => {
                let again = sel(&s.to_string());
                prop_assert_eq!(&again, &s);
                prop_assert_eq!(again.evaluate(&h), s.evaluate(&h));
            }
            Err(e) => {
                prop_assert!(e.position() <= src.len());
                prop_assert!(src.is_char_boundary(e.position()));
                prop_assert_eq!(e.column(), src[..e.position()].chars().count() + 1);
            }
        }
    }
}

#[test]
fn model_is_not_trivial() {
    // Guard against a generator that only makes UNKNOWN or parse errors:
    // sample some cases and check all three outcomes occur.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = [0_u32; 3];
    for _ in 0..300 {
        let g = g().new_tree(&mut runner).unwrap().current();
        let h = headers().new_tree(&mut runner).unwrap().current();
        let t = sel(&render(&g, 0)).evaluate(&h);
        seen[match t {
            T => 0,
            F => 1,
            U => 2,
        }] += 1;
    }
    assert!(seen.iter().all(|&n| n > 20), "{seen:?}");
}
