//! Finding a `LIKE` segment that contains `_`: the Shift-And algorithm
//! (R. Baeza-Yates and G. Gonnet, *A new approach to text searching*, CACM
//! 35(10), 1992), over characters.
//!
//! A segment's *core* runs from its first to its last literal character
//! (leading and trailing `_`s are handled by the caller, as a number of
//! characters to skip). Shift-And keeps one bit per core element: bit `i` is
//! set after reading a text character when the last `i + 1` characters
//! match elements `0..=i`. Reading `c` shifts the state up by one, sets bit 0
//! and keeps the bits of the elements that accept `c` (the `_`s and the
//! elements equal to `c`). An occurrence ends where the top bit is set.
//!
//! A core of up to 64 elements fits one `u64`, so the search is one shift,
//! one table lookup and one `and` per text character. A longer core takes
//! ⌈len / 64⌉ words, of which only those up to the highest one holding a live
//! partial match are updated (a carry can reach only one word further per
//! character): O(text × len / 64) in the worst case, as when every element
//! accepts almost every character (`%a_a_a…a_b%` against `aaaa…`). Whenever
//! no partial match is alive, the search skips to the next occurrence of the
//! core's first character with `str::find`.

use super::like::Meter;

/// State words kept on the stack by [`with_scratch`]: enough for any core
/// of a pattern that fits in a selector ([`Selector::MAX_LEN`] bytes, so at
/// most 65,536 elements).
///
/// [`Selector::MAX_LEN`]: super::Selector::MAX_LEN
const STACK_WORDS: usize = 1_024;

/// The Shift-And tables of every core of one pattern, each table in one
/// array shared by all cores (few allocations whatever the segment count).
#[derive(Clone, Debug, Default)]
pub(super) struct Cores {
    cores: Vec<Core>,
    /// Per core, per word: the bits of its `_` elements.
    wild: Vec<u64>,
    /// Per core, its distinct literal characters in increasing order, each
    /// with the range of `masks` that holds its bits.
    chars: Vec<CharMasks>,
    /// `(word, bits)`: the elements equal to a character, by word, in
    /// increasing word order, words without such elements left out.
    masks: Vec<(u32, u64)>,
}

/// One core: its length and where its tables are.
#[derive(Clone, Copy, Debug)]
struct Core {
    /// Elements; the first and the last are literal characters.
    len: u32,
    /// The first element, where every occurrence starts.
    first: char,
    /// Its words start at `wild[wild]`.
    wild: u32,
    /// Its characters are `chars[chars.0..chars.1]`.
    chars: (u32, u32),
}

#[derive(Clone, Copy, Debug)]
struct CharMasks {
    c: char,
    /// Its masks are `masks[start..end]`.
    start: u32,
    end: u32,
}

impl Cores {
    /// Adds the tables of `core` (`Some(c)` a character, `None` a `_`, the
    /// first and last elements characters) and returns its id.
    pub(super) fn add(&mut self, core: &[Option<char>]) -> u32 {
        let (Some(&Some(first)), Some(Some(_))) = (core.first(), core.last()) else {
            unreachable!("a core starts and ends with a literal character");
        };
        let words = core.len().div_ceil(64);
        let wild = self.wild.len();
        self.wild.resize(wild + words, 0);
        let mut literal: Vec<(char, u32, u32)> = Vec::new();
        for (i, e) in core.iter().enumerate() {
            let (w, bit) = (i / 64, 1_u64 << (i % 64));
            match e {
                None => self.wild[wild + w] |= bit,
                Some(c) => literal.push((*c, w as u32, i as u32 % 64)),
            }
        }
        literal.sort_unstable();
        let chars_start = self.chars.len();
        for &(c, w, bit) in &literal {
            let new_char = self.chars.len() == chars_start || self.chars.last().unwrap().c != c;
            if new_char {
                let at = self.masks.len() as u32;
                self.chars.push(CharMasks {
                    c,
                    start: at,
                    end: at,
                });
            }
            let entry = self.chars.last_mut().expect("pushed");
            match self.masks.last_mut() {
                Some((last_w, bits)) if !new_char && *last_w == w => *bits |= 1 << bit,
                _ => {
                    self.masks.push((w, 1 << bit));
                    entry.end += 1;
                }
            }
        }
        self.cores.push(Core {
            len: core.len() as u32,
            first,
            wild: wild as u32,
            chars: (chars_start as u32, self.chars.len() as u32),
        });
        (self.cores.len() - 1) as u32
    }

    /// Frees spare capacity once every core is added.
    pub(super) fn shrink_to_fit(&mut self) {
        self.cores.shrink_to_fit();
        self.wild.shrink_to_fit();
        self.chars.shrink_to_fit();
        self.masks.shrink_to_fit();
    }

    /// State words the longest core needs (0 without cores).
    pub(super) fn max_words(&self) -> usize {
        self.cores
            .iter()
            .map(|c| (c.len as usize).div_ceil(64))
            .max()
            .unwrap_or(0)
    }

    /// The byte just after the leftmost occurrence of core `id` in `text`
    /// that starts at or after byte `at` (a character boundary), if any.
    /// `scratch` holds at least [`Self::max_words`] words.
    pub(super) fn find<M: Meter>(
        &self,
        id: u32,
        text: &str,
        at: usize,
        scratch: &mut [u64],
        m: &mut M,
    ) -> Option<usize> {
        let core = self.cores[id as usize];
        if core.len <= 64 {
            self.find_in_word(core, text, at, m)
        } else {
            self.find_in_words(core, text, at, scratch, m)
        }
    }

    /// The masks of `c` in `core`: `(word, bits)` in increasing word order.
    #[inline]
    fn masks_of(&self, core: Core, c: char) -> &[(u32, u64)] {
        let chars = &self.chars[core.chars.0 as usize..core.chars.1 as usize];
        match chars.binary_search_by(|e| e.c.cmp(&c)) {
            Ok(k) => &self.masks[chars[k].start as usize..chars[k].end as usize],
            Err(_) => &[],
        }
    }

    /// [`Self::find`] for a core of at most 64 elements.
    fn find_in_word<M: Meter>(
        &self,
        core: Core,
        text: &str,
        at: usize,
        m: &mut M,
    ) -> Option<usize> {
        let wild = self.wild[core.wild as usize];
        let top = 1_u64 << (core.len - 1);
        let mut state = 0_u64;
        let mut i = at;
        loop {
            if state == 0 {
                i = skip_to(text, i, core.first, m)?;
            }
            let c = char_at(text, i)?;
            m.add(1);
            i += c.len_utf8();
            let accept = wild | self.masks_of(core, c).first().map_or(0, |&(_, bits)| bits);
            state = ((state << 1) | 1) & accept;
            if state & top != 0 {
                return Some(i);
            }
        }
    }

    /// [`Self::find`] for a core longer than 64 elements.
    fn find_in_words<M: Meter>(
        &self,
        core: Core,
        text: &str,
        at: usize,
        scratch: &mut [u64],
        m: &mut M,
    ) -> Option<usize> {
        let words = (core.len as usize).div_ceil(64);
        let wild = &self.wild[core.wild as usize..core.wild as usize + words];
        let state = &mut scratch[..words];
        state.fill(0);
        m.add(words);
        let last = words - 1;
        let top = 1_u64 << ((core.len - 1) % 64);
        // Words above `high` are zero.
        let mut high = 0;
        let mut i = at;
        loop {
            if state[high] == 0 {
                i = skip_to(text, i, core.first, m)?;
            }
            let c = char_at(text, i)?;
            i += c.len_utf8();
            let upto = (high + 1).min(last);
            let masks = self.masks_of(core, c);
            let mut k = masks.partition_point(|&(w, _)| w as usize <= upto);
            m.add(upto + 1);
            // High to low, so that each word's carry comes from the old
            // value of the word below.
            for w in (0..=upto).rev() {
                let carry = if w == 0 { 1 } else { state[w - 1] >> 63 };
                let mut accept = wild[w];
                if k > 0 && masks[k - 1].0 as usize == w {
                    k -= 1;
                    accept |= masks[k].1;
                }
                state[w] = ((state[w] << 1) | carry) & accept;
            }
            if state[last] & top != 0 {
                return Some(i);
            }
            high = upto;
            while high > 0 && state[high] == 0 {
                high -= 1;
            }
        }
    }
}

/// The character at byte `i` (a character boundary) of `text`, if any.
#[inline(always)]
fn char_at(text: &str, i: usize) -> Option<char> {
    match text.as_bytes().get(i) {
        Some(&b) if b.is_ascii() => Some(char::from(b)),
        Some(_) => text[i..].chars().next(),
        None => None,
    }
}

/// The first position at or after `at` where `first` occurs in `text`.
#[inline]
fn skip_to<M: Meter>(text: &str, at: usize, first: char, m: &mut M) -> Option<usize> {
    let rest = &text[at..];
    if first.is_ascii() {
        // Most skips are short: look at a few bytes before setting up a
        // `memchr`-style search.
        // (A miss reads 16 bytes twice; the search then skips them.)
        let head = &rest.as_bytes()[..rest.len().min(16)];
        if let Some(j) = head.iter().position(|&x| x == first as u8) {
            m.add(j);
            return Some(at + j);
        }
        m.add(head.len());
    }
    match rest.find(first) {
        Some(j) => {
            m.add(j);
            Some(at + j)
        }
        None => {
            m.add(rest.len());
            None
        }
    }
}

/// Runs `f` with a zeroed scratch buffer of at least `words` words: on the
/// stack for any pattern a selector can hold, on the heap beyond (only a
/// pattern over 64 KiB, which the parser never builds, would get there).
#[inline(never)]
pub(super) fn with_scratch<R>(words: usize, f: impl FnOnce(&mut [u64]) -> R) -> R {
    if words <= STACK_WORDS {
        let mut scratch = [0_u64; STACK_WORDS];
        f(&mut scratch)
    } else {
        f(&mut vec![0; words])
    }
}
