//! `LIKE` patterns: compiled once at parse time, matched without allocating
//! in time linear in the text.
//!
//! # Matching
//!
//! A pattern is a sequence of *segments* separated by `%`s: runs of
//! characters and `_`s. A text matches when the segments occur in it in
//! order without overlapping, the first one at the very start unless the
//! pattern starts with `%`, the last one at the very end unless it ends with
//! `%`. Taking each floating segment at its *leftmost* occurrence after the
//! previous one is enough: ending earlier never leaves less room for the
//! segments after it. So [`Pattern::matches`] never backtracks:
//!
//! 1. A text shorter than the fewest bytes a match needs is rejected without
//!    being read (so a long pattern against a short value costs nothing).
//! 2. The anchored first and last segments are compared in place.
//! 3. The floating segments are found left to right between them, each
//!    search starting where the previous occurrence ended. A segment without
//!    `_` is found with `str::find`, std's two-way search (M. Crochemore and
//!    D. Perrin, *Two-way string-matching*, JACM 38(3), 1991), which reads
//!    the text up to the end of the occurrence once and the segment a
//!    bounded number of times. A segment with `_` skips its leading `_`s (a
//!    number of characters), finds its core with Shift-And (`shift_and.rs`),
//!    then skips its trailing `_`s.
//!
//! Every text character is read by one segment's search, so a match costs
//! O(text + pattern), with one exception: a segment with `_` whose core (from
//! its first to its last literal character) is longer than 64 elements costs
//! ⌈core / 64⌉ word operations per text character it reads, O(text × core /
//! 64). [`Pattern::work_bound`] states the bound; the tests and the fuzz
//! target count the work and check it.
//!
//! `_` matches one character (Unicode scalar value), so segments with `_` are
//! matched character by character; a segment without `_` is matched on bytes,
//! which is the same on UTF-8 (an occurrence of valid UTF-8 in valid UTF-8
//! always starts on a character boundary). Comparison is exact: no case
//! folding.

use std::fmt;
use std::ops::Range;

use super::shift_and::{self, Cores};

/// Counts the work a match does, for tests and fuzzing; `()` counts nothing
/// and compiles away.
pub(crate) trait Meter {
    /// Records `n` steps: characters compared, bytes searched or skipped,
    /// state words updated.
    fn add(&mut self, n: usize);
}

impl Meter for () {
    #[inline(always)]
    fn add(&mut self, _: usize) {}
}

impl Meter for u64 {
    #[inline]
    fn add(&mut self, n: usize) {
        *self += n as Self;
    }
}

/// One `%`-free run of a pattern: `Pattern::elems[elems]`.
#[derive(Clone, Copy, Debug)]
struct Segment {
    elems: (u32, u32),
    kind: Kind,
}

/// How a segment is found.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// No `_`: its characters are `Pattern::literals[start..end]`.
    Literal { start: u32, end: u32 },
    /// `lead` `_`s, then the core `core` of [`Cores`] (none when the
    /// segment is only `_`s), then `trail` `_`s.
    Masked {
        lead: u32,
        core: Option<u32>,
        trail: u32,
    },
}

/// A compiled `LIKE` pattern, remembering how it was written (for
/// `Display`). Two patterns are equal when they were written the same way.
#[derive(Clone)]
pub(crate) struct Pattern {
    source: String,
    escape: Option<char>,
    /// Whether the pattern starts (ends) with `%`, so that its first (last)
    /// segment floats.
    lead_any: bool,
    trail_any: bool,
    segments: Box<[Segment]>,
    /// Every segment's elements: `Some(c)` a character, `None` a `_`.
    elems: Box<[Option<char>]>,
    /// The characters of the `_`-free segments, one after the other.
    literals: Box<str>,
    cores: Cores,
    /// The fewest bytes a matching text has: a byte per `_`, the UTF-8
    /// length of each character.
    min_len: usize,
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

#[inline]
fn range((start, end): (u32, u32)) -> Range<usize> {
    start as usize..end as usize
}

impl Pattern {
    /// Compiles `source` with an optional escape character.
    pub(crate) fn new(source: String, escape: Option<char>) -> Result<Self, PatternError> {
        debug_assert!(u32::try_from(source.len()).is_ok(), "selectors are short");
        let mut p = Self {
            source: String::new(),
            escape,
            lead_any: false,
            trail_any: false,
            segments: Box::default(),
            elems: Box::default(),
            literals: Box::default(),
            cores: Cores::default(),
            min_len: 0,
        };
        let mut segments = Vec::new();
        let mut elems: Vec<Option<char>> = Vec::new();
        let mut literals = String::new();
        // Start of the current segment in `elems`.
        let mut seg_start = 0;
        let mut chars = source.chars();
        let mut first = true;
        while let Some(c) = chars.next() {
            // `None`: a `%`; `Some(e)`: an element.
            let elem = if Some(c) == escape {
                match chars.next() {
                    None => return Err(PatternError::DanglingEscape),
                    Some(n) if n == '%' || n == '_' || Some(n) == escape => Some(Some(n)),
                    Some(n) => return Err(PatternError::BadEscape(n)),
                }
            } else {
                match c {
                    '%' => None,
                    '_' => Some(None),
                    c => Some(Some(c)),
                }
            };
            match elem {
                None => {
                    p.lead_any |= first;
                    if elems.len() > seg_start {
                        segments.push(p.segment(&elems, seg_start, &mut literals));
                        seg_start = elems.len();
                    }
                    p.trail_any = true;
                }
                Some(e) => {
                    elems.push(e);
                    p.min_len += e.map_or(1, char::len_utf8);
                    p.trail_any = false;
                }
            }
            first = false;
        }
        if elems.len() > seg_start {
            segments.push(p.segment(&elems, seg_start, &mut literals));
        }
        p.cores.shrink_to_fit();
        p.source = source;
        p.segments = segments.into_boxed_slice();
        p.elems = elems.into_boxed_slice();
        p.literals = literals.into_boxed_str();
        Ok(p)
    }

    /// The segment `elems[start..]`, its text added to `literals` or its
    /// core to `self.cores`.
    fn segment(&mut self, elems: &[Option<char>], start: usize, literals: &mut String) -> Segment {
        let seg = &elems[start..];
        let kind = if seg.iter().all(Option::is_some) {
            let at = literals.len();
            literals.extend(seg.iter().flatten());
            Kind::Literal {
                start: at as u32,
                end: literals.len() as u32,
            }
        } else {
            let lead = seg.iter().take_while(|e| e.is_none()).count();
            let trail = seg[lead..].iter().rev().take_while(|e| e.is_none()).count();
            let core = &seg[lead..seg.len() - trail];
            Kind::Masked {
                lead: lead as u32,
                core: (!core.is_empty()).then(|| self.cores.add(core)),
                trail: trail as u32,
            }
        };
        Segment {
            elems: (start as u32, elems.len() as u32),
            kind,
        }
    }

    /// Whether `text` matches the whole pattern.
    ///
    /// Never backtracks (see the module documentation); allocates nothing
    /// for any pattern a selector can hold.
    pub(crate) fn matches(&self, text: &str) -> bool {
        self.run(text, &mut ())
    }

    /// [`Self::matches`], and the number of steps it took (characters
    /// compared, bytes searched or skipped, state words updated), which is
    /// at most [`Self::work_bound`].
    pub(crate) fn matches_counting(&self, text: &str) -> (bool, u64) {
        let mut steps = 0;
        let matched = self.run(text, &mut steps);
        (matched, steps)
    }

    /// The most steps [`Self::matches_counting`] takes for `text`:
    /// `4 × (text bytes + pattern bytes) + 8`, plus, if a core of a segment
    /// with `_` is longer than 64 elements, `⌈core / 64⌉ + 1` words per
    /// character of the text for the longest one (the Shift-And state it
    /// updates; see the module documentation).
    pub(crate) fn work_bound(&self, text: &str) -> u64 {
        let linear = 4 * (text.len() + self.source.len()) as u64 + 8;
        let words = self.cores.max_words() as u64;
        if words > 1 {
            linear + (words + 1) * (text.chars().count() as u64 + 1)
        } else {
            linear
        }
    }

    fn run<M: Meter>(&self, text: &str, m: &mut M) -> bool {
        m.add(1);
        if text.len() < self.min_len {
            return false;
        }
        match self.cores.max_words() {
            0 | 1 => self.run_with(text, &mut [], m),
            words => shift_and::with_scratch(words, |scratch| self.run_with(text, scratch, m)),
        }
    }

    fn run_with<M: Meter>(&self, text: &str, scratch: &mut [u64], m: &mut M) -> bool {
        let Some(first) = self.segments.first() else {
            // `''` or `%`.
            return self.lead_any || text.is_empty();
        };
        let mut floating = &self.segments[..];
        let mut at = 0;
        if !self.lead_any {
            let Some(end) = self.match_at_start(first, text, m) else {
                return false;
            };
            if floating.len() == 1 && !self.trail_any {
                return end == text.len();
            }
            at = end;
            floating = &floating[1..];
        }
        let mut end = text.len();
        if !self.trail_any {
            let Some((last, rest)) = floating.split_last() else {
                unreachable!("a pattern without `%` has one segment, handled above");
            };
            let Some(start) = self.match_at_end(last, &text[at..], m) else {
                return false;
            };
            end = at + start;
            floating = rest;
        }
        let window = &text[..end];
        for seg in floating {
            match self.find(seg, window, at, scratch, m) {
                Some(after) => at = after,
                None => return false,
            }
        }
        true
    }

    /// The byte after `seg` if `text` starts with it.
    fn match_at_start<M: Meter>(&self, seg: &Segment, text: &str, m: &mut M) -> Option<usize> {
        if let Kind::Literal { start, end } = seg.kind {
            let lit = &self.literals[range((start, end))];
            m.add(lit.len());
            return text.starts_with(lit).then_some(lit.len());
        }
        let mut chars = text.char_indices();
        for &e in &self.elems[range(seg.elems)] {
            m.add(1);
            let (_, c) = chars.next()?;
            if e.is_some_and(|e| e != c) {
                return None;
            }
        }
        Some(chars.offset())
    }

    /// Where `seg` starts if `text` ends with it.
    fn match_at_end<M: Meter>(&self, seg: &Segment, text: &str, m: &mut M) -> Option<usize> {
        if let Kind::Literal { start, end } = seg.kind {
            let lit = &self.literals[range((start, end))];
            m.add(lit.len());
            return text.ends_with(lit).then(|| text.len() - lit.len());
        }
        let mut chars = text.char_indices().rev();
        let mut start = text.len();
        for &e in self.elems[range(seg.elems)].iter().rev() {
            m.add(1);
            let (i, c) = chars.next()?;
            if e.is_some_and(|e| e != c) {
                return None;
            }
            start = i;
        }
        Some(start)
    }

    /// The byte after the leftmost occurrence of `seg` in `text` that starts
    /// at or after byte `at`.
    fn find<M: Meter>(
        &self,
        seg: &Segment,
        text: &str,
        at: usize,
        scratch: &mut [u64],
        m: &mut M,
    ) -> Option<usize> {
        match seg.kind {
            Kind::Literal { start, end } => {
                let lit = &self.literals[range((start, end))];
                let rest = &text[at..];
                // Adjacent occurrences (dense patterns like `%a%b%c%`) are
                // common enough to try before setting up a search.
                if rest.as_bytes().starts_with(lit.as_bytes()) {
                    m.add(lit.len());
                    return Some(at + lit.len());
                }
                match rest.find(lit) {
                    Some(i) => {
                        m.add(i + 2 * lit.len());
                        Some(at + i + lit.len())
                    }
                    None => {
                        m.add(rest.len() + lit.len());
                        None
                    }
                }
            }
            Kind::Masked { lead, core, trail } => {
                let at = skip_chars(text, at, lead, m)?;
                let at = match core {
                    Some(id) => self.cores.find(id, text, at, scratch, m)?,
                    None => at,
                };
                skip_chars(text, at, trail, m)
            }
        }
    }
}

/// The byte `n` characters after byte `at` of `text`, if there are that
/// many.
#[inline]
fn skip_chars<M: Meter>(text: &str, at: usize, n: u32, m: &mut M) -> Option<usize> {
    let mut chars = text[at..].char_indices();
    for _ in 0..n {
        m.add(1);
        chars.next()?;
    }
    Some(at + chars.offset())
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.escape == other.escape
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pattern")
            .field("source", &self.source)
            .field("escape", &self.escape)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
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
mod tests;
