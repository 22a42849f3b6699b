//! Channel-name patterns for key permissions: `*` and `?` wildcards.

use std::fmt;

/// A channel-name pattern: `*` matches any run of characters (also none),
/// `?` exactly one character; every other character matches itself
/// (case-sensitive). There is no escape: a channel name containing `*` or
/// `?` is matched by those wildcards.
///
/// Matching runs in `O(pattern × name)` time at worst, without recursion
/// (the classic two-pointer algorithm that backtracks only to the last `*`).
///
/// # Examples
///
/// ```
/// use herald_server::Glob;
///
/// let g = Glob::new("news.*");
/// assert!(g.matches("news.sport"));
/// assert!(g.matches("news."));
/// assert!(!g.matches("weather"));
/// assert!(Glob::new("chat-?").matches("chat-7"));
/// assert!(!Glob::new("chat-?").matches("chat-42"));
/// assert!(Glob::new("*").matches(""));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Glob {
    source: String,
    chars: Vec<char>,
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Self {
        Self {
            source: pattern.to_owned(),
            chars: pattern.chars().collect(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let p = &self.chars;
        let s: Vec<char> = name.chars().collect();
        let (mut pi, mut si) = (0, 0);
        // Where the last `*` was, and which name position it is taken to
        // end at so far.
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, si));
                    pi += 1;
                }
                Some(&c) if c == '?' || c == s[si] => {
                    pi += 1;
                    si += 1;
                }
                _ => match star {
                    // Let the last `*` swallow one more character.
                    Some((sp, ss)) => {
                        star = Some((sp, ss + 1));
                        pi = sp + 1;
                        si = ss + 1;
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).matches(s)
    }

    #[test]
    fn literals() {
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abd"));
        assert!(!m("abc", "ab"));
        assert!(!m("ab", "abc"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("Abc", "abc"), "case-sensitive");
    }

    #[test]
    fn stars() {
        assert!(m("*", ""));
        assert!(m("*", "anything at all"));
        assert!(m("a*", "a"));
        assert!(m("a*c", "abbbc"));
        assert!(m("a*c", "ac"));
        assert!(!m("a*c", "abcb"));
        assert!(m("*b*", "abc"));
        assert!(m("**", "x"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("*.log", "x.y.log"));
    }

    #[test]
    fn question_marks() {
        assert!(m("?", "x"));
        assert!(!m("?", ""));
        assert!(!m("?", "xy"));
        assert!(m("a?c", "abc"));
        assert!(m("?*", "x"));
        assert!(!m("?*", ""));
    }

    #[test]
    fn unicode_counts_characters_not_bytes() {
        assert!(m("caf?", "café"));
        assert!(m("??", "日本"));
        assert!(m("*語", "日本語"));
        assert!(!m("?", "日本"));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let name = "a".repeat(2_000);
        let pat = format!("{}b", "*a".repeat(50));
        let t = std::time::Instant::now();
        assert!(!m(&pat, &name));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    /// Against a naive recursive matcher on small inputs.
    #[test]
    fn agrees_with_a_reference() {
        fn reference(p: &[char], s: &[char]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some(('*', rest)) => (0..=s.len()).any(|i| reference(rest, &s[i..])),
                Some((&c, rest)) => {
                    !s.is_empty() && (c == '?' || c == s[0]) && reference(rest, &s[1..])
                }
            }
        }
        let alphabet = ['a', 'b', '*', '?'];
        let mut pats = vec![String::new()];
        for _ in 0..4 {
            let mut next = pats.clone();
            for p in &pats {
                for c in alphabet {
                    next.push(format!("{p}{c}"));
                }
            }
            pats = next;
        }
        let names = ["", "a", "b", "ab", "ba", "aab", "abab", "bbb", "a*", "?"];
        for p in &pats {
            let pc: Vec<char> = p.chars().collect();
            for s in names {
                let sc: Vec<char> = s.chars().collect();
                assert_eq!(m(p, s), reference(&pc, &sc), "{p:?} vs {s:?}");
            }
        }
    }
}
