use super::*;
use crate::fuzzing::like_reference;

fn like(text: &str, pattern: &str) -> bool {
    Pattern::new(pattern.to_owned(), Some('\\'))
        .expect("valid")
        .matches(text)
}

#[test]
fn wildcards() {
    assert!(like("", ""));
    assert!(like("", "%"));
    assert!(like("", "%%"));
    assert!(!like("", "_"));
    assert!(like("abc", "abc"));
    assert!(!like("abc", "ab"));
    assert!(like("abc", "a%"));
    assert!(like("abc", "%c"));
    assert!(like("abc", "%b%"));
    assert!(like("abc", "a_c"));
    assert!(!like("abc", "a_"));
    assert!(like("ébc", "_bc"));
    assert!(like("a%c", "a\\%c"));
    assert!(!like("abc", "a\\%c"));
    assert!(like("a_c", "a\\_c"));
    assert!(like("a\\c", "a\\\\c"));
    assert!(like("mississippi", "%iss%ppi"));
    assert!(like("mississippi", "m%is%is%"));
    assert!(!like("mississippi", "m%is%is%x"));
    assert!(like("aaa", "%a%a%a%"));
    assert!(!like("aa", "%a%a%a%"));
}

#[test]
fn anchored_segments_do_not_overlap() {
    assert!(!like("aba", "ab%ba"));
    assert!(like("abba", "ab%ba"));
    assert!(!like("a", "a%a"));
    assert!(like("aa", "a%a"));
    assert!(!like("ab", "a_%_b"));
    assert!(like("axyb", "a_%_b"));
    assert!(!like("abc", "%b%c%b"));
    assert!(like("abcb", "%b%c%b"));
}

#[test]
fn underscore_segments() {
    // Leading and trailing `_`s of a floating segment.
    assert!(like("xxabyy", "%__ab__%"));
    assert!(!like("xabyy", "%__ab__%"));
    assert!(!like("xxaby", "%__ab__%"));
    // A segment of `_`s only.
    assert!(like("abc", "a%__"));
    assert!(!like("ab", "a%__"));
    assert!(like("aébc", "%b%_"));
    // `_` is one character, whatever its UTF-8 length, also inside a core.
    assert!(like("x日y", "%x_y%"));
    assert!(like("z日本y", "%z__y"));
    assert!(!like("z日本y", "%z_y"));
    assert!(like("ééé", "%é_é%"));
    // The leftmost occurrence of a core is not the first start tried.
    assert!(like("aaab", "%a_b"));
    assert!(like("abacab", "%a_a_a%"));
    assert!(!like("abacab", "%a_a_a_a%"));
}

#[test]
fn cores_longer_than_a_word() {
    // A core of 65..200 elements, found after decoys that fail at every
    // word boundary.
    for len in [63, 64, 65, 127, 128, 129, 200] {
        let core: String = (0..len)
            .map(|i| if i % 3 == 1 { '_' } else { 'a' })
            .collect();
        let core = format!("b{}c", &core[1..len - 1]);
        let occurrence: String = core.replace('_', "é");
        let decoy = |cut: usize| {
            format!(
                "{}x",
                &occurrence[..occurrence.char_indices().nth(cut).unwrap().0]
            )
        };
        let mut text = String::new();
        for cut in [1, 63, 64, 65, 128, len - 1] {
            if cut < len {
                text.push_str(&decoy(cut));
            }
        }
        let pattern = format!("%{core}%");
        assert!(!like(&text, &pattern), "{len}: decoys only");
        text.push_str(&occurrence);
        text.push('z');
        assert!(like(&text, &pattern), "{len}");
        assert!(like(&text, &format!("%{core}_")), "{len}");
        assert!(!like(&text, &format!("%{core}__")), "{len}");
    }
}

#[test]
fn escape_errors() {
    assert_eq!(
        Pattern::new("ab!".into(), Some('!')).err(),
        Some(PatternError::DanglingEscape)
    );
    assert_eq!(
        Pattern::new("a!b".into(), Some('!')).err(),
        Some(PatternError::BadEscape('b'))
    );
    assert!(
        Pattern::new("a!!".into(), Some('!'))
            .expect("ok")
            .matches("a!")
    );
}

#[test]
fn wildcards_as_escape_characters() {
    // With ESCAPE '%', `%%` is a literal `%` and a lone `%` an error.
    let p = Pattern::new("a%%b".into(), Some('%')).expect("valid");
    assert!(p.matches("a%b"));
    assert!(!p.matches("axb"));
    assert_eq!(
        Pattern::new("a%b".into(), Some('%')).err(),
        Some(PatternError::BadEscape('b'))
    );
    let p = Pattern::new("_%__%".into(), Some('_')).expect("valid");
    assert!(p.matches("%_x"));
    assert!(p.matches("%_"));
    assert!(!p.matches("_%"));
}

#[test]
fn equality_and_debug_follow_the_source() {
    let p = |s: &str| Pattern::new(s.to_owned(), None).expect("valid");
    assert_eq!(p("a%b"), p("a%b"));
    assert_ne!(p("a%b"), p("a%%b"));
    assert_ne!(
        p("a"),
        Pattern::new("a".to_owned(), Some('!')).expect("valid")
    );
    assert!(format!("{:?}", p("a%b")).contains("\"a%b\""));
}

/// Every pattern over `a`, `b`, `_`, `%` and `\` (escape) up to 5
/// characters, against every text over `a`, `b`, `é` up to 5 characters,
/// agrees with the dynamic-programming reference.
#[test]
fn agrees_with_the_reference_exhaustively() {
    fn all(alphabet: &[char], max: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |&c| format!("{s}{c}")))
                .collect();
            out.extend(last.iter().cloned());
        }
        out
    }
    let texts = all(&['a', 'b', 'é'], 5);
    let mut checked = 0;
    for pattern in all(&['a', 'b', '_', '%', '\\'], 5) {
        let Ok(p) = Pattern::new(pattern.clone(), Some('\\')) else {
            assert_eq!(like_reference("", &pattern, Some('\\')), None);
            continue;
        };
        for text in &texts {
            let want = like_reference(text, &pattern, Some('\\')).expect("valid");
            let (got, steps) = p.matches_counting(text);
            assert_eq!(got, want, "{text:?} LIKE {pattern:?}");
            assert!(steps <= p.work_bound(text));
            checked += 1;
        }
    }
    assert!(checked > 300_000, "{checked}");
}

/// Inputs on which a backtracking matcher does O(text × pattern) work:
/// `(name, text, pattern, expected)`, at `scale` (1 is a 60 KB text and a
/// pattern of about 30,000 characters).
fn adversarial(scale: usize) -> Vec<(&'static str, String, String, bool)> {
    let n = 60_000 / scale;
    let m = 30_000 / scale;
    let a = |k: usize| "a".repeat(k);
    vec![
        (
            "%a%a%…%b",
            a(n),
            format!("{}%b", "%a".repeat(m / 2 - 1)),
            false,
        ),
        (
            "%a%a%…%b%",
            a(n),
            format!("{}%b%", "%a".repeat(m / 2 - 2)),
            false,
        ),
        ("%aaaa…ab%", a(n), format!("%{}b%", a(m - 3)), false),
        (
            "%aaaa…a%aaaa…ab%",
            a(n),
            format!("%{}%{}b%", a(m / 2), a(m / 2 - 4)),
            false,
        ),
        (
            "%a_a_…a_%b",
            a(n),
            format!("{}%b", "%a_a".repeat(m / 4)),
            false,
        ),
        (
            "a_a_…a_ (anchored)",
            "ab".repeat(n / 2),
            "a_".repeat(m / 2),
            false,
        ),
        (
            "%a_a%a_a%…%c",
            "ab".repeat(n / 2),
            format!("{}%c", "%a_a".repeat(m / 4)),
            false,
        ),
        (
            "%a_a%a_a%…%",
            "ab".repeat(n / 2),
            format!("{}%", "%a_a".repeat(m / 4)),
            true,
        ),
        (
            "%_a_b_a_b…%",
            "ab".repeat(n / 2),
            format!("%{}%", "_a_b".repeat(m / 4)),
            false,
        ),
        (
            "%a_a_…ab% (63-element core)",
            a(n),
            format!("%{}b%", "a_".repeat(31)),
            false,
        ),
        (
            "long pattern, short text",
            a(100),
            format!("%{}%", "a_".repeat(m / 2)),
            false,
        ),
        (
            "long pattern, short text, anchored",
            a(n / 3),
            format!("{}%b", a(m)),
            false,
        ),
    ]
}

/// The one case whose bound is not linear: a single segment with `_` and
/// a 30,000-element core, O(text × core / 64).
fn adversarial_long_core(scale: usize) -> (String, String) {
    (
        "a".repeat(60_000 / scale),
        format!("%{}b%", "a_".repeat(30_000 / scale / 2 - 2)),
    )
}

#[test]
fn work_is_linear_on_adversarial_inputs() {
    for (name, text, pattern, expected) in adversarial(1) {
        let p = Pattern::new(pattern.clone(), Some('\\')).expect("valid");
        let (matched, steps) = p.matches_counting(&text);
        assert_eq!(matched, expected, "{name}");
        let size = (text.len() + pattern.len()) as u64;
        assert!(steps <= 4 * size, "{name}: {steps} steps for {size} bytes");
        assert!(steps <= p.work_bound(&text), "{name}");
    }
}

#[test]
fn a_long_core_costs_a_word_per_64_elements_per_character() {
    let (text, pattern) = adversarial_long_core(1);
    let p = Pattern::new(pattern.clone(), None).expect("valid");
    let (matched, steps) = p.matches_counting(&text);
    assert!(!matched);
    let words = (pattern.chars().count() - 2).div_ceil(64) as u64;
    assert!(steps <= p.work_bound(&text));
    assert!(steps <= (words + 2) * text.len() as u64, "{steps}");
    // Not linear, but 64 times less than a backtracking matcher's
    // text × pattern.
    assert!(steps > 100 * (text.len() + pattern.len()) as u64);
    assert!(steps * 50 < (text.len() * pattern.len()) as u64);
}

/// The matcher this module replaced: the classic two-pointer wildcard
/// match that backtracks to the last `%`, counting the characters it
/// compares. Kept to show that the inputs above are adversarial and the
/// step bound has teeth.
fn backtracking_steps(text: &str, pattern: &str) -> u64 {
    #[derive(Clone, Copy, PartialEq)]
    enum E {
        Char(char),
        One,
        Any,
    }
    let elems: Vec<E> = pattern
        .chars()
        .map(|c| match c {
            '%' => E::Any,
            '_' => E::One,
            c => E::Char(c),
        })
        .collect();
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p, mut steps) = (0, 0, 0_u64);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        steps += 1;
        match elems.get(p) {
            Some(E::Any) => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            Some(E::One) => {
                (t, p) = (t + 1, p + 1);
                continue;
            }
            Some(&E::Char(e)) if e == text[t] => {
                (t, p) = (t + 1, p + 1);
                continue;
            }
            _ => {}
        }
        let Some((star_p, star_t)) = star else {
            return steps;
        };
        star = Some((star_p, star_t + 1));
        (p, t) = (star_p, star_t + 1);
    }
    steps
}

#[test]
fn the_backtracking_matcher_fails_the_bound() {
    // At a tenth of the size (a 6 KB text), to keep the test quick: the old
    // matcher already takes 20 to 100 times the linear budget. (At full
    // size, 900 million steps for `%aaaa…ab%`.)
    let mut failing = Vec::new();
    for (name, text, pattern, _) in adversarial(10) {
        let size = (text.len() + pattern.len()) as u64;
        let new = Pattern::new(pattern.clone(), Some('\\'))
            .expect("valid")
            .matches_counting(&text)
            .1;
        assert!(new <= 4 * size, "{name}");
        if backtracking_steps(&text, &pattern) > 4 * size {
            failing.push(name);
        }
    }
    assert_eq!(
        failing,
        [
            "%aaaa…ab%",
            "%aaaa…a%aaaa…ab%",
            "%a_a_…ab% (63-element core)"
        ]
    );
    let (text, pattern) = adversarial_long_core(10);
    let old = backtracking_steps(&text, &pattern);
    let new = Pattern::new(pattern.clone(), None)
        .expect("valid")
        .matches_counting(&text)
        .1;
    assert!(old > 20 * new, "old {old}, new {new}");
}

#[test]
fn no_blowup() {
    let text = "a".repeat(5_000);
    let pattern = format!("{}b", "%a".repeat(500));
    assert!(!like(&text, &pattern));
}
