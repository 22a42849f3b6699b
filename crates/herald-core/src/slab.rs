//! The entry slab: generational slots holding the scheduled values.
//!
//! Values live in fixed-size chunks (`CHUNK` entries each) so that growing
//! never copies or doubles an existing allocation: memory grows by one chunk
//! at a time and peak usage stays within one chunk of steady state.
//!
//! Each entry is `{ generation, link, value }`. The generation is odd while
//! the entry is occupied and even while it is vacant; `value` is initialised
//! exactly when the generation is odd. That invariant is what makes the
//! `unsafe` blocks below sound, and every path that changes a generation also
//! writes or moves the value out in the same step. `link` is the free-list
//! successor while vacant and, while occupied, whatever the wheel stores there
//! (the position of the entry's wheel element, or a tier marker).
//!
//! This is the only module of the crate with `unsafe` code: using
//! `MaybeUninit<T>` instead of `Option<T>` keeps an entry at 16 bytes for a
//! `u64` payload instead of 24.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;

/// Entries per chunk (a power of two).
const CHUNK_BITS: u32 = 12;
const CHUNK: u32 = 1 << CHUNK_BITS;
const CHUNK_MASK: u32 = CHUNK - 1;

/// "No entry" in the free list.
const NIL: u32 = u32::MAX;

/// The largest number of entries the slab can hold (about 268 million):
/// wheel elements keep 28 bits of slab index.
pub(crate) const MAX_ENTRIES: u32 = (1 << crate::wheel::INDEX_BITS) - 16;

struct Entry<T> {
    generation: u32,
    link: u32,
    value: MaybeUninit<T>,
}

impl<T> Entry<T> {
    #[inline]
    fn occupied(&self) -> bool {
        self.generation & 1 == 1
    }

    /// Frees this entry: moves the value out, bumps the generation (making
    /// it even, vacant) and links it to `next_free`. Returns the generation
    /// it had (its key's) and the value.
    ///
    /// # Panics
    ///
    /// If the entry is vacant (a bug in the caller, never user input).
    #[inline]
    fn vacate(&mut self, next_free: u32) -> (u32, T) {
        assert!(self.occupied(), "slab: vacating a vacant entry");
        let generation = self.generation;
        self.generation = generation.wrapping_add(1);
        self.link = next_free;
        // SAFETY: the entry was occupied (asserted above), so its value is
        // initialised; its generation is now even, so the value is never read
        // again before `occupy` writes a new one.
        let value = unsafe { self.value.assume_init_read() };
        (generation, value)
    }
}

/// A chunked, generational slab. See the module docs for the invariant.
///
/// Vacant entries are either on the free list (used before) or at or above
/// `fresh` (never used since the last `clear`): chunks are allocated zeroed,
/// and all-zero bytes are a vacant entry, so growing writes nothing.
pub(crate) struct Slab<T> {
    /// Fixed-size chunks: the masked in-chunk index needs no bounds check.
    chunks: Vec<Box<[Entry<T>; CHUNK as usize]>>,
    free_head: u32,
    fresh: u32,
    len: u32,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Self {
            chunks: Vec::new(),
            free_head: NIL,
            fresh: 0,
            len: 0,
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK as usize
    }

    /// Makes room for `additional` more occupied entries.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let want = self
            .len()
            .saturating_add(additional)
            .min(MAX_ENTRIES as usize);
        while self.capacity() < want {
            self.grow();
        }
    }

    /// Appends one chunk of vacant entries (zeroed: nothing is written).
    #[cold]
    fn grow(&mut self) {
        let fits = u32::try_from(self.capacity())
            .ok()
            .and_then(|base| base.checked_add(CHUNK))
            .is_some_and(|end| end <= MAX_ENTRIES);
        assert!(
            fits,
            "herald-core scheduler: more than 2^28 - 16 pending entries"
        );
        let chunk = Box::<[Entry<T>; CHUNK as usize]>::new_zeroed();
        // SAFETY: all-zero bytes are a valid `Entry<T>`: `generation` and
        // `link` are plain integers and `value` is a `MaybeUninit`, valid for
        // any bytes. Generation 0 is even, so every entry starts vacant and
        // its value is never read before `occupy` writes one.
        self.chunks.push(unsafe { chunk.assume_init() });
    }

    #[inline]
    fn entry(&self, index: u32) -> Option<&Entry<T>> {
        self.chunks
            .get((index >> CHUNK_BITS) as usize)
            .map(|c| &c[(index & CHUNK_MASK) as usize])
    }

    #[inline]
    fn entry_mut(&mut self, index: u32) -> &mut Entry<T> {
        &mut self.chunks[(index >> CHUNK_BITS) as usize][(index & CHUNK_MASK) as usize]
    }

    /// The index the next [`occupy`](Self::occupy) must use, growing the
    /// slab if it is full. Does not claim it.
    #[inline]
    pub(crate) fn vacant(&mut self) -> u32 {
        if self.free_head != NIL {
            return self.free_head;
        }
        if self.fresh as usize == self.capacity() {
            self.grow();
        }
        self.fresh
    }

    /// Stores `value` with `link` in entry `index`, which must be what
    /// [`vacant`](Self::vacant) just returned, and returns its generation.
    #[inline]
    pub(crate) fn occupy(&mut self, index: u32, value: T, link: u32) -> u32 {
        let from_free_list = index == self.free_head;
        debug_assert!(from_free_list || index == self.fresh);
        let e = self.entry_mut(index);
        debug_assert!(!e.occupied());
        let next = e.link;
        e.generation = e.generation.wrapping_add(1);
        e.link = link;
        e.value.write(value);
        let generation = e.generation;
        if from_free_list {
            self.free_head = next;
        } else {
            self.fresh += 1;
        }
        self.len += 1;
        generation
    }

    /// Stores `value` in a vacant entry and returns `(index, generation)`.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, value: T) -> (u32, u32) {
        let index = self.vacant();
        (index, self.occupy(index, value, 0))
    }

    /// Whether `(index, generation)` names an occupied entry.
    #[inline]
    pub(crate) fn contains(&self, index: u32, generation: u32) -> bool {
        // Key generations are always odd, so equality implies occupancy.
        self.entry(index)
            .is_some_and(|e| e.generation == generation)
    }

    #[inline]
    pub(crate) fn get(&self, index: u32, generation: u32) -> Option<&T> {
        let e = self.entry(index)?;
        if e.generation != generation {
            return None;
        }
        debug_assert!(e.occupied());
        // SAFETY: key generations are odd, so `e` is occupied, and occupied
        // entries hold an initialised value (module invariant).
        Some(unsafe { e.value.assume_init_ref() })
    }

    /// The key generation and value of entry `index` if it is occupied.
    #[inline]
    pub(crate) fn occupant(&self, index: u32) -> Option<(u32, &T)> {
        let e = self.entry(index)?;
        if !e.occupied() {
            return None;
        }
        // SAFETY: `e` is occupied (checked above), and occupied entries
        // hold an initialised value (module invariant).
        Some((e.generation, unsafe { e.value.assume_init_ref() }))
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        if !self.contains(index, generation) {
            return None;
        }
        let e = self.entry_mut(index);
        // SAFETY: as in `get`: the generation matched an odd key generation.
        Some(unsafe { e.value.assume_init_mut() })
    }

    /// The link of an occupied entry.
    #[inline]
    pub(crate) fn link(&self, index: u32) -> u32 {
        let e = self.entry(index).expect("index in range");
        debug_assert!(e.occupied());
        e.link
    }

    /// Whether entry `index` is occupied and linked to `link`: the wheel's
    /// liveness test for the element at position `link`.
    #[inline]
    pub(crate) fn is_linked(&self, index: u32, link: u32) -> bool {
        self.entry(index)
            .is_some_and(|e| e.occupied() && e.link == link)
    }

    /// The link of entry `index` if it is occupied and linked to `link`
    /// (the wheel's liveness test), for rewriting in the same lookup.
    #[inline]
    pub(crate) fn linked_mut(&mut self, index: u32, link: u32) -> Option<&mut u32> {
        let e = self
            .chunks
            .get_mut((index >> CHUNK_BITS) as usize)
            .map(|c| &mut c[(index & CHUNK_MASK) as usize])?;
        (e.occupied() && e.link == link).then_some(&mut e.link)
    }

    /// Hints the CPU to load entry `index` into cache. The wheel calls this a
    /// few elements ahead when it walks a slot, turning one cache miss per
    /// element into overlapping ones. No effect on correctness.
    #[inline]
    pub(crate) fn prefetch(&self, index: u32) {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
        if let Some(e) = self.entry(index) {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let p: *const Entry<T> = e;
            // SAFETY: `_mm_prefetch` needs SSE, which the cfg above
            // guarantees; a prefetch never faults and reads nothing
            // observable, and `p` points into a live allocation anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
        }
        #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
        let _ = index;
    }

    /// Sets the link of an occupied entry.
    #[inline]
    pub(crate) fn set_link(&mut self, index: u32, link: u32) {
        let e = self.entry_mut(index);
        debug_assert!(e.occupied());
        e.link = link;
    }

    /// Frees entry `index` if it is occupied and `keep` accepts it, returning
    /// its link, key generation and value. The one place entries are freed.
    #[inline]
    fn free_if(
        &mut self,
        index: u32,
        keep: impl FnOnce(&Entry<T>) -> bool,
    ) -> Option<(u32, u32, T)> {
        let free_head = self.free_head;
        let e = self
            .chunks
            .get_mut((index >> CHUNK_BITS) as usize)
            .map(|c| &mut c[(index & CHUNK_MASK) as usize])?;
        if !(e.occupied() && keep(e)) {
            return None;
        }
        let link = e.link;
        let (generation, value) = e.vacate(free_head);
        self.free_head = index;
        self.len -= 1;
        Some((link, generation, value))
    }

    /// Moves the value out of an occupied entry and frees it.
    ///
    /// # Panics
    ///
    /// If the entry is vacant (a bug in the caller, never user input).
    #[cfg(test)]
    pub(crate) fn remove(&mut self, index: u32) -> T {
        self.free_if(index, |_| true)
            .expect("slab: removing a vacant entry")
            .2
    }

    /// Removes the entry for `(index, generation)` if that key is current,
    /// returning its link and value: one lookup for the cancel path.
    #[inline]
    pub(crate) fn take(&mut self, index: u32, generation: u32) -> Option<(u32, T)> {
        self.free_if(index, |e| e.generation == generation)
            .map(|(link, _, value)| (link, value))
    }

    /// Removes an occupied entry, returning its key generation and value.
    ///
    /// # Panics
    ///
    /// If the entry is vacant (a bug in the caller, never user input).
    #[inline]
    pub(crate) fn take_occupied(&mut self, index: u32) -> (u32, T) {
        let (_, generation, value) = self
            .free_if(index, |_| true)
            .expect("slab: taking a vacant entry");
        (generation, value)
    }

    /// Removes entry `index` if it is occupied and linked to `link` (the
    /// wheel's liveness test), returning its key generation and value: one
    /// lookup for expiry.
    #[inline]
    pub(crate) fn take_linked(&mut self, index: u32, link: u32) -> Option<(u32, T)> {
        self.free_if(index, |e| e.link == link)
            .map(|(_, generation, value)| (generation, value))
    }

    /// Drops every value and keeps the chunks; indices are handed out from
    /// 0 again (generations keep counting up, so old keys stay stale).
    pub(crate) fn clear(&mut self) {
        self.drop_values();
        self.free_head = NIL;
        self.fresh = 0;
    }

    fn drop_values(&mut self) {
        if self.len == 0 {
            return;
        }
        for chunk in &mut self.chunks {
            for e in chunk.iter_mut() {
                if e.occupied() {
                    e.generation = e.generation.wrapping_add(1);
                    // SAFETY: occupied entries hold an initialised value; the
                    // generation is now even so it is never read again.
                    unsafe { e.value.assume_init_drop() };
                }
            }
        }
        self.len = 0;
    }

    /// Threads every vacant entry below `fresh` onto the free list, lowest
    /// index first.
    fn rebuild_free_list(&mut self) {
        self.fresh = self.fresh.min(self.capacity() as u32);
        let fresh = self.fresh as usize;
        let mut head = NIL;
        for (c, chunk) in self.chunks.iter_mut().enumerate().rev() {
            for (i, e) in chunk.iter_mut().enumerate().rev() {
                let index = (c << CHUNK_BITS as usize) | i;
                if index < fresh && !e.occupied() {
                    e.link = head;
                    head = index as u32;
                }
            }
        }
        self.free_head = head;
    }

    /// Frees trailing chunks that hold no occupied entry.
    pub(crate) fn shrink_to_fit(&mut self) {
        while self
            .chunks
            .last()
            .is_some_and(|c| c.iter().all(|e| !e.occupied()))
        {
            self.chunks.pop();
        }
        self.chunks.shrink_to_fit();
        self.rebuild_free_list();
    }
}

impl<T> Drop for Slab<T> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<T>() {
            self.drop_values();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn entry_is_16_bytes_for_u64() {
        assert_eq!(std::mem::size_of::<Entry<u64>>(), 16);
    }

    #[test]
    fn insert_remove_generations() {
        let mut s = Slab::new();
        let (i, g) = s.insert(7_u64);
        assert_eq!(g % 2, 1);
        assert_eq!(s.get(i, g), Some(&7));
        assert_eq!(s.remove(i), 7);
        assert_eq!(s.get(i, g), None);
        let (i2, g2) = s.insert(8);
        assert_eq!(i2, i, "LIFO reuse");
        assert_ne!(g2, g);
        assert_eq!(s.get(i, g), None, "stale generation never aliases");
        assert_eq!(s.get(i2, g2), Some(&8));
    }

    #[test]
    fn drops_values_exactly_once() {
        let token = Rc::new(());
        {
            let mut s = Slab::new();
            let mut keys = Vec::new();
            for _ in 0..10_000 {
                keys.push(s.insert(Rc::clone(&token)));
            }
            assert_eq!(Rc::strong_count(&token), 10_001);
            for (i, _) in keys.iter().step_by(2) {
                drop(s.remove(*i));
            }
            assert_eq!(Rc::strong_count(&token), 5_001);
            s.clear();
            assert_eq!(Rc::strong_count(&token), 1);
            assert_eq!(s.len(), 0);
            for _ in 0..100 {
                s.insert(Rc::clone(&token));
            }
            s.shrink_to_fit();
            assert_eq!(s.capacity(), CHUNK as usize);
        }
        assert_eq!(Rc::strong_count(&token), 1, "Drop drops the rest");
    }

    #[test]
    fn shrink_keeps_live_entries_and_free_list() {
        let mut s = Slab::new();
        let keys: Vec<_> = (0..3 * CHUNK).map(|v| s.insert(v)).collect();
        for &(i, _) in &keys[CHUNK as usize..] {
            s.remove(i);
        }
        s.shrink_to_fit();
        assert_eq!(s.capacity(), CHUNK as usize);
        for &(i, g) in &keys[..CHUNK as usize] {
            assert_eq!(s.get(i, g), Some(&i));
        }
        // Free list is consistent: filling up allocates exactly one chunk more.
        for v in 0..CHUNK {
            s.insert(v);
        }
        assert_eq!(s.capacity(), 2 * CHUNK as usize);
    }
}
