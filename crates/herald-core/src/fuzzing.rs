//! Model-based checking of [`Scheduler`] against a `BTreeMap` oracle.
//!
//! Shared by the proptest in `tests/scheduler_model.rs` and the cargo-fuzz
//! target `fuzz/fuzz_targets/scheduler_ops.rs` (which derives `Arbitrary` for
//! [`Op`] under `cfg(fuzzing)`). Not part of the stable API.
//!
//! [`run`] applies each [`Op`] to a scheduler and to the oracle, a
//! `BTreeMap<(deadline, seq), (Key, value)>`, and panics on the first
//! difference: a different fired sequence (which covers "nothing early",
//! "nothing lost" and FIFO), a stale key accepted, a wrong
//! `next_deadline()`, `len()` or `deadline(key)`.
//!
//! [`selector`] and [`selector_bytes`] check message selectors the same way
//! for the `selector_parse` fuzz target and `tests/selector.rs`: no panic on
//! any input, consistent error positions, and a `Display` that round-trips.
//! [`like`] checks the `LIKE` matcher against [`like_reference`], a plain
//! dynamic program, and checks that its counted work stays within its
//! bound.

use std::collections::{BTreeMap, HashMap};

use crate::{Key, Scheduler, Tick};

/// One step of a model run. Numbers are raw material: [`run`] maps them onto
/// deadlines spread across every wheel level, the overflow tier and the past.
#[derive(Clone, Debug)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub enum Op {
    /// Insert a value due at `deadline(shape, raw)`.
    Insert {
        /// Which range the deadline falls in (see [`deadline`]).
        shape: u8,
        /// Position within that range.
        raw: u64,
    },
    /// Cancel the `which`-th key ever issued (live or stale).
    Cancel {
        /// Index into the issued keys, modulo their count.
        which: u32,
    },
    /// Reschedule the `which`-th key ever issued to `deadline(shape, raw)`.
    Reschedule {
        /// Index into the issued keys, modulo their count.
        which: u32,
        /// Deadline range.
        shape: u8,
        /// Position within it.
        raw: u64,
    },
    /// Poll at `now + advance(shape, raw)` (or a little in the past),
    /// moving at most `max_shape`-derived entries.
    Poll {
        /// Step range.
        shape: u8,
        /// Step within it.
        raw: u64,
        /// Batch limit selector.
        max_shape: u8,
    },
    /// Drop everything.
    Clear,
}

/// Maps `(shape, raw)` to a deadline relative to `now`: shapes 0 to 6 land in
/// wheel level 0 to 6, 7 in the overflow tier, 8 in the past, 9 anywhere.
pub fn deadline(now: u64, shape: u8, raw: u64) -> u64 {
    match shape % 10 {
        s @ 0..=6 => now.saturating_add(raw % (1_u64 << (6 * (u32::from(s) + 1)))),
        7 => now.saturating_add((1 << 42) + raw % (1 << 46)),
        8 => now.saturating_sub(raw % 5_000),
        _ => raw,
    }
}

fn step(shape: u8, raw: u64) -> i64 {
    match shape % 8 {
        0 | 1 => (raw % 3) as i64,
        2 => (raw % 70) as i64,
        3 => (raw % 5_000) as i64,
        4 => (raw % 300_000) as i64,
        5 => (raw % (1 << 43)) as i64,
        6 => -((raw % 100) as i64),
        _ => (raw % 20_000_000) as i64,
    }
}

fn batch(max_shape: u8) -> usize {
    match max_shape % 6 {
        0 => 1,
        1 => 2,
        2 => 7,
        3 => 64,
        _ => usize::MAX,
    }
}

/// The oracle: pending entries by `(deadline, seq)`.
#[derive(Default)]
struct Model {
    by_time: BTreeMap<(u64, u64), (Key, u64)>,
    by_key: HashMap<Key, (u64, u64)>,
    seq: u64,
}

impl Model {
    fn insert(&mut self, key: Key, when: u64, value: u64) {
        self.seq += 1;
        self.by_time.insert((when, self.seq), (key, value));
        self.by_key.insert(key, (when, self.seq));
    }

    fn remove(&mut self, key: Key) -> Option<u64> {
        let at = self.by_key.remove(&key)?;
        Some(self.by_time.remove(&at).expect("indexed").1)
    }
}

/// Runs `ops` from tick `start` and panics at the first divergence from the
/// oracle. `knobs` picks small internal thresholds (garbage slack before a
/// sweep, slot size worth pre-splitting, pre-split budget per poll) so that
/// short runs exercise sweeps, partial and complete splits. Returns the number of entries fired (so callers can check a run
/// did something).
///
/// # Panics
///
/// On any difference between the scheduler and the oracle.
pub fn run(start: u64, knobs: u8, ops: &[Op]) -> usize {
    let mut s = Scheduler::starting_at(Tick::from_millis(start));
    let k = usize::from(knobs);
    s.set_knobs_for_tests(
        k % 17,
        (k / 17 % 4) as u32,
        1 + k / 68 * 3,
        1 + (k % 7) as u32,
    );
    let mut m = Model::default();
    let mut keys: Vec<Key> = Vec::new();
    let mut now = start;
    let mut next_value = 0_u64;
    let mut total_fired = 0;
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Insert { shape, raw } => {
                let when = deadline(now, shape, raw);
                next_value += 1;
                let key = s.insert_at(Tick::from_millis(when), next_value);
                assert!(
                    !m.by_key.contains_key(&key),
                    "op {i}: key {key:?} reused while live"
                );
                m.insert(key, when, next_value);
                keys.push(key);
            }
            Op::Cancel { which } => {
                if keys.is_empty() {
                    continue;
                }
                let key = keys[which as usize % keys.len()];
                assert_eq!(s.cancel(key), m.remove(key), "op {i}: cancel {key:?}");
            }
            Op::Reschedule { which, shape, raw } => {
                if keys.is_empty() {
                    continue;
                }
                let key = keys[which as usize % keys.len()];
                let when = deadline(now, shape, raw);
                let live = m.remove(key);
                assert_eq!(
                    s.reschedule(key, Tick::from_millis(when)),
                    live.is_some(),
                    "op {i}: reschedule {key:?}"
                );
                if let Some(value) = live {
                    m.insert(key, when, value);
                }
            }
            Op::Poll {
                shape,
                raw,
                max_shape,
            } => {
                let d = step(shape, raw);
                now = if d < 0 {
                    now.saturating_sub(d.unsigned_abs())
                } else {
                    now.saturating_add(d as u64)
                };
                let max = batch(max_shape);
                out.clear();
                let n = s.poll_expired(Tick::from_millis(now), &mut out, max);
                assert_eq!(n, out.len(), "op {i}: returned count");
                let mut expected = Vec::new();
                while expected.len() < max {
                    match m.by_time.first_key_value() {
                        Some((&(when, _), _)) if when <= now => {
                            let ((_, _), (key, value)) = m.by_time.pop_first().expect("peeked");
                            m.by_key.remove(&key);
                            expected.push((key, value));
                        }
                        _ => break,
                    }
                }
                assert_eq!(out, expected, "op {i}: fired at now={now} max={max}");
                total_fired += n;
            }
            Op::Clear => {
                s.clear();
                m.by_time.clear();
                m.by_key.clear();
            }
        }
        assert_eq!(s.len(), m.by_key.len(), "op {i}: len");
        assert_eq!(
            s.next_deadline().map(Tick::as_millis),
            m.by_time.first_key_value().map(|(&(when, _), _)| when),
            "op {i} ({op:?}): next_deadline"
        );
        if let Some(&key) = keys.last() {
            assert_eq!(
                s.deadline(key).map(Tick::as_millis),
                m.by_key.get(&key).map(|&(when, _)| when),
                "op {i}: deadline of newest key"
            );
            let value = m.by_key.get(&key).map(|at| m.by_time[at].1);
            assert_eq!(s.get(key).copied(), value, "op {i}: get newest key");
        }
    }
    // Drain everything: nothing may be lost.
    out.clear();
    let n = s.poll_expired(Tick::MAX, &mut out, usize::MAX);
    let expected: Vec<(Key, u64)> = m.by_time.values().copied().collect();
    assert_eq!(out, expected, "final drain");
    assert!(s.is_empty() && s.next_deadline().is_none());
    total_fired + n
}

/// Header values the selector checks try: numbers in several spellings,
/// non-numbers, booleans, LIKE metacharacters, quotes, non-ASCII.
const SELECTOR_VALUES: [&str; 16] = [
    "",
    "0",
    "10",
    "10.0",
    "1e1",
    "-5",
    "2.5",
    "9223372036854775807",
    "abc",
    "true",
    "FALSE",
    "it's",
    "a%b_c",
    "é",
    " 10",
    "1e999",
];

/// Selector pieces for [`selector_bytes`]' token-soup mode.
const SELECTOR_TOKENS: [&str; 40] = [
    "a", "b", "ios-x", "\"q w\"", "=", "<>", "!=", "<", "<=", ">", ">=", "AND", "or", "NOT", "(",
    ")", "IN", "LIKE", "ESCAPE", "BETWEEN", "IS", "NULL", "TRUE", "false", ",", "'x'", "'%_'",
    "'!'", "''''", "1", "-2.5", "1e3", "'", "\"", "-", "!", "é", "10", "'10'", "$y.z",
];

/// Checks one selector text: parsing never panics; an error points at a
/// character boundary within the input with a consistent column; a parsed
/// selector evaluates over a few header maps built from the names it reads,
/// `matches` agrees with `evaluate`, its `Display` re-parses to an equal
/// selector that evaluates the same, and `NOT (display)` evaluates to the
/// negation.
///
/// # Panics
///
/// When any of those checks fails.
pub fn selector(input: &str) {
    use crate::selector::{Selector, SelectorError, Truth};

    let s = match Selector::parse(input) {
        Ok(s) => s,
        Err(e) => {
            assert_eq!(e.code(), SelectorError::CODE);
            assert!(
                e.position() <= input.len() && input.is_char_boundary(e.position()),
                "{e:?} for {input:?}"
            );
            assert_eq!(e.column(), input[..e.position()].chars().count() + 1);
            return;
        }
    };
    assert_eq!(s.source(), input);
    let names = s.header_names();
    let mut maps: Vec<Vec<(&str, &str)>> = vec![Vec::new()];
    for shift in 0..5 {
        maps.push(
            names
                .iter()
                .enumerate()
                // Every third name missing in some maps.
                .filter(|(i, _)| shift < 3 || (i + shift) % 3 != 0)
                .map(|(i, &n)| {
                    (
                        n,
                        SELECTOR_VALUES[(i * 7 + shift * 5) % SELECTOR_VALUES.len()],
                    )
                })
                .collect(),
        );
    }
    let results: Vec<Truth> = maps.iter().map(|m| s.evaluate(m.as_slice())).collect();
    for (m, &t) in maps.iter().zip(&results) {
        assert_eq!(s.matches(m.as_slice()), t == Truth::True);
    }
    let shown = s.to_string();
    if shown.len() + 6 > Selector::MAX_LEN {
        // The canonical form may spell numbers out at length.
        return;
    }
    let again = Selector::parse(&shown)
        .unwrap_or_else(|e| panic!("{input:?} displays as {shown:?}, which fails: {e}"));
    assert_eq!(again, s, "{input:?} -> {shown:?}");
    assert_eq!(again.to_string(), shown);
    let negated = Selector::parse(&format!("NOT ({shown})")).ok();
    for (m, &t) in maps.iter().zip(&results) {
        assert_eq!(again.evaluate(m.as_slice()), t, "{shown:?} over {m:?}");
        if let Some(n) = &negated {
            assert_eq!(n.evaluate(m.as_slice()), !t, "NOT ({shown}) over {m:?}");
        }
    }
}

/// Fuzzing entry point: a first byte that is 0 modulo 4 passes the rest as
/// text to [`selector`] (if it is UTF-8); 2 modulo 4 checks `LIKE` on a
/// pattern and a text made from the rest ([`like_bytes`]); an odd one builds
/// a "token soup" from the rest, one selector piece per byte, which parses
/// far more often than random text.
pub fn selector_bytes(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return selector("");
    };
    if mode % 4 == 2 {
        return like_bytes(rest);
    }
    if mode % 2 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            selector(text);
        }
        return;
    }
    let glue = if mode & 2 == 0 { " " } else { "" };
    let soup: Vec<&str> = rest
        .iter()
        .map(|&b| SELECTOR_TOKENS[usize::from(b) % SELECTOR_TOKENS.len()])
        .collect();
    selector(&soup.join(glue));
}

/// `text LIKE pattern [ESCAPE escape]` by dynamic programming over
/// characters: O(text × pattern) time, obviously right. `None` when the
/// pattern is invalid (its escape character ends it or is followed by
/// something other than `%`, `_` or itself).
pub fn like_reference(text: &str, pattern: &str, escape: Option<char>) -> Option<bool> {
    #[derive(Clone, Copy)]
    enum E {
        Char(char),
        One,
        Any,
    }
    let mut elems = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        elems.push(if Some(c) == escape {
            match chars.next() {
                Some(n) if n == '%' || n == '_' || Some(n) == escape => E::Char(n),
                _ => return None,
            }
        } else {
            match c {
                '%' => E::Any,
                '_' => E::One,
                c => E::Char(c),
            }
        });
    }
    // `row[j]`: the text read so far matches `elems[..j]`.
    let mut row = vec![false; elems.len() + 1];
    row[0] = true;
    for j in 1..=elems.len() {
        row[j] = row[j - 1] && matches!(elems[j - 1], E::Any);
    }
    for c in text.chars() {
        let mut next = vec![false; elems.len() + 1];
        for j in 1..=elems.len() {
            next[j] = match elems[j - 1] {
                E::Any => next[j - 1] || row[j],
                E::One => row[j - 1],
                E::Char(e) => row[j - 1] && e == c,
            };
        }
        row = next;
    }
    Some(row[elems.len()])
}

/// Checks `LIKE` on one input: the pattern compiles exactly when
/// [`like_reference`] accepts it, the match agrees with it, and the work the
/// matcher counts stays within its documented bound (linear in text plus
/// pattern, plus a word per 64 elements of a long `_` segment per text
/// character).
///
/// # Panics
///
/// When any of those checks fails.
pub fn like(text: &str, pattern: &str, escape: Option<char>) {
    use crate::selector::like::Pattern;

    let want = like_reference(text, pattern, escape);
    let compiled = Pattern::new(pattern.to_owned(), escape).ok();
    assert_eq!(
        compiled.is_some(),
        want.is_some(),
        "{pattern:?} ESCAPE {escape:?} compiles"
    );
    let (Some(p), Some(want)) = (compiled, want) else {
        return;
    };
    let (got, steps) = p.matches_counting(text);
    assert_eq!(got, want, "{text:?} LIKE {pattern:?} ESCAPE {escape:?}");
    assert_eq!(p.matches(text), got);
    let bound = p.work_bound(text);
    assert!(
        steps <= bound,
        "{text:?} LIKE {pattern:?}: {steps} steps, bound {bound}"
    );
}

/// Escape characters [`like_bytes`] tries, wildcards included.
const LIKE_ESCAPES: [Option<char>; 5] = [None, Some('!'), Some('%'), Some('_'), Some('é')];
/// Pattern characters for [`like_bytes`].
const LIKE_PATTERN: [char; 8] = ['a', 'b', 'é', '%', '_', '!', '日', 'a'];
/// Text characters for [`like_bytes`].
const LIKE_TEXT: [char; 8] = ['a', 'b', 'é', '%', '_', '!', '日', 'a'];

/// The longest pattern and text [`like_bytes`] makes, in characters (the
/// reference is quadratic).
const LIKE_MAX_CHARS: usize = 1_500;

/// [`like`] on an input made from bytes: the first picks the escape
/// character; the bytes up to the first 0xFF make the pattern, the rest the
/// text. Each byte's low 3 bits pick a character and its high 5 bits a
/// repeat count (1, or 9 to 72 for the top quarter, so that short inputs
/// reach long segments); each is cut at 1,500 characters (the reference is
/// quadratic).
pub fn like_bytes(data: &[u8]) {
    let Some((&e, rest)) = data.split_first() else {
        return like("", "", None);
    };
    let escape = LIKE_ESCAPES[usize::from(e) % LIKE_ESCAPES.len()];
    let split = rest.iter().position(|&b| b == 0xFF).unwrap_or(rest.len());
    let decode = |bytes: &[u8], alphabet: &[char; 8]| -> String {
        let (mut s, mut len) = (String::new(), 0);
        for &b in bytes {
            let reps = match b >> 3 {
                r @ 24.. => usize::from(r - 23) * 9,
                _ => 1,
            };
            let reps = reps.min(LIKE_MAX_CHARS - len);
            s.extend(std::iter::repeat_n(alphabet[usize::from(b & 7)], reps));
            len += reps;
        }
        s
    };
    let pattern = decode(&rest[..split], &LIKE_PATTERN);
    let text = decode(rest.get(split + 1..).unwrap_or_default(), &LIKE_TEXT);
    like(&text, &pattern, escape);
}
