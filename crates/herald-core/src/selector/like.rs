//! `LIKE` patterns: compiled once at parse time, matched without allocating
//! in O(text × pattern) time at worst.

use std::fmt;

/// One element of a compiled pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    /// A character that must match itself.
    Char(char),
    /// `_`: exactly one character (Unicode scalar value).
    One,
    /// `%`: any run of characters, including none. Never two in a row.
    Any,
}

/// A compiled `LIKE` pattern, remembering how it was written (for
/// `Display`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    source: String,
    escape: Option<char>,
    elems: Vec<Elem>,
}

/// Why a pattern was rejected.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PatternError {
    /// The escape character is the last character of the pattern.
    DanglingEscape,
    /// The escape character is followed by something other than `%`, `_`
    /// or itself.
    BadEscape(char),
}

impl Pattern {
    /// Compiles `source` with an optional escape character.
    pub(crate) fn new(source: String, escape: Option<char>) -> Result<Self, PatternError> {
        let mut elems = Vec::with_capacity(source.len());
        let mut chars = source.chars();
        while let Some(c) = chars.next() {
            let elem = if Some(c) == escape {
                match chars.next() {
                    None => return Err(PatternError::DanglingEscape),
                    Some(n) if n == '%' || n == '_' || Some(n) == escape => Elem::Char(n),
                    Some(n) => return Err(PatternError::BadEscape(n)),
                }
            } else {
                match c {
                    '%' => Elem::Any,
                    '_' => Elem::One,
                    c => Elem::Char(c),
                }
            };
            if !(elem == Elem::Any && elems.last() == Some(&Elem::Any)) {
                elems.push(elem);
            }
        }
        Ok(Self {
            source,
            escape,
            elems,
        })
    }

    /// Whether `text` matches the whole pattern.
    ///
    /// The classic two-pointer wildcard match: walk text and pattern
    /// together; at a `%`, remember where it was and let it match nothing;
    /// on a mismatch, go back to the last `%` and let it swallow one more
    /// character. Only the last `%` needs remembering (an earlier one could
    /// not do better), so this is O(text × pattern) and allocates nothing.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let elems = &self.elems;
        let (mut t, mut p) = (0_usize, 0_usize);
        // (pattern index just after the last `%`, text index it resumes at)
        let mut star: Option<(usize, usize)> = None;
        while let Some(c) = text[t..].chars().next() {
            match elems.get(p) {
                Some(Elem::Any) => {
                    p += 1;
                    star = Some((p, t));
                    continue;
                }
                Some(Elem::One) => {
                    t += c.len_utf8();
                    p += 1;
                    continue;
                }
                Some(&Elem::Char(e)) if e == c => {
                    t += c.len_utf8();
                    p += 1;
                    continue;
                }
                _ => {}
            }
            let Some((star_p, star_t)) = star else {
                return false;
            };
            // The last `%` takes one more character; retry after it.
            let swallowed = text[star_t..].chars().next().map_or(0, char::len_utf8);
            let resume = star_t + swallowed;
            star = Some((star_p, resume));
            p = star_p;
            t = resume;
        }
        elems[p.min(elems.len())..].iter().all(|&e| e == Elem::Any)
    }
}

impl fmt::Display for Pattern {
    /// `'pattern'` or `'pattern' ESCAPE 'c'`, quotes doubled.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::ast::write_string(f, &self.source)?;
        if let Some(e) = self.escape {
            f.write_str(" ESCAPE ")?;
            let mut buf = [0_u8; 4];
            super::ast::write_string(f, e.encode_utf8(&mut buf))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn escape_errors() {
        assert_eq!(
            Pattern::new("ab!".into(), Some('!')),
            Err(PatternError::DanglingEscape)
        );
        assert_eq!(
            Pattern::new("a!b".into(), Some('!')),
            Err(PatternError::BadEscape('b'))
        );
        assert!(
            Pattern::new("a!!".into(), Some('!'))
                .expect("ok")
                .matches("a!")
        );
    }

    #[test]
    fn no_blowup() {
        let text = "a".repeat(5_000);
        let pattern = format!("{}b", "%a".repeat(500));
        assert!(!like(&text, &pattern));
    }
}
