//! The hierarchical timing wheel (Varghese & Lauck, SOSP 1987).
//!
//! Six levels of 64 slots. Level `n` slots span `64^n` ms, so a level covers
//! `64^(n+1)` ms and the whole wheel covers one aligned *epoch* of 2³⁶ ms.
//! Everything is relative to `elapsed`, the wheel's notion of now, which only
//! moves forward and never past the `now` given to the last poll.
//!
//! # Placement
//!
//! An element with deadline `d >= elapsed` goes to the level of the highest
//! 6-bit digit in which `d` and `elapsed` differ, `level = msb(d ^ elapsed | 63) / 6`,
//! into slot `digit(d, level)`, storing `offset = d mod 64^level`. Because
//! `d > elapsed` in that digit and equal above it, every element of level `n`
//! is later than every element of level `n - 1`, and the occupied slots of a
//! level are never before `elapsed`'s own digit. So the earliest element is
//! in the first occupied slot of the lowest occupied level.
//!
//! # Expiry and cascade
//!
//! Polling finds that slot. At level 0 its elements are due at the slot's
//! tick and fire front to back (FIFO). At a higher level, `elapsed` moves to
//! the slot's start and its elements are re-placed, in list order, into lower
//! levels (a *cascade*). Elements due in the same ms therefore keep insertion
//! order: a later insert can only land in the same level-0 slot after the
//! cascade that brought the earlier ones down.
//!
//! # Cancellation is lazy
//!
//! A slab entry links to its element's position, and an element is live
//! exactly when its entry is occupied and links back to it. Cancelling (or
//! rescheduling) therefore touches only the slab entry: the old element turns
//! into garbage in place. It cannot be mistaken for a newer entry that reuses
//! the slab slot, because it keeps its position occupied until its slot is
//! processed, so no other element can be linked to that position meanwhile.
//! Garbage is dropped whenever a slot is fired, cascaded or rescanned, and
//! once it outnumbers the live elements a sweep compacts every slot, so the
//! wheel never holds more than about twice as many elements as are pending.
//!
//! # Exact minimum
//!
//! The wheel caches the earliest live deadline and the slab index that holds
//! it (the FIFO-first one among equal deadlines). Inserting updates it in
//! O(1). Removing any other entry cannot change it; removing that entry, or
//! polling, recomputes it: the first occupied slot at the lowest level holds
//! the minimum. At level 0 that is the first live element of the slot;
//! above, every slot remembers the position of its smallest offset, and only
//! if that element is dead is the slot rescanned (and compacted on the way).

mod blocks;

use blocks::{BLOCK, Blocks, Elem, NIL};

use crate::slab::Slab;

/// Bits per level.
const BITS: u32 = 6;
/// Slots per level.
const SLOTS: u32 = 1 << BITS;
/// Levels in the wheel.
pub(crate) const LEVELS: u32 = 6;
/// Bits covered by the whole wheel: deadlines in another 2^EPOCH_BITS ms
/// epoch than `elapsed` go to the overflow tier.
pub(crate) const EPOCH_BITS: u32 = BITS * LEVELS;
const NUM_SLOTS: usize = (SLOTS * LEVELS) as usize;

/// How many elements ahead slot walks prefetch slab entries.
const AHEAD: u32 = 8;

/// Garbage allowed beyond the number of live elements before a sweep.
pub(crate) const SWEEP_SLACK: usize = 4_096;

#[derive(Clone, Copy, Debug)]
struct Slot {
    head: u32,
    tail: u32,
    /// Read position in the head block.
    head_pos: u32,
    /// Elements written into the tail block.
    tail_len: u32,
    /// Elements in the slot, live or garbage.
    count: u32,
    /// Smallest offset appended since the last rescan (levels >= 1)...
    min_offset: u32,
    /// ...and the position of the first element with it.
    min_pos: u32,
}

impl Slot {
    const EMPTY: Self = Self {
        head: NIL,
        tail: NIL,
        head_pos: 0,
        tail_len: 0,
        count: 0,
        min_offset: 0,
        min_pos: NIL,
    };
}

/// The next slot to process: `(level, digit, tick the slot starts at)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NextSlot {
    pub(crate) level: u32,
    pub(crate) digit: u32,
    pub(crate) start: u64,
}

/// The earliest live element: its deadline and slab index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Front {
    when: u64,
    index: u32,
}

/// The wheel. It stores only `(slab index, offset)` pairs; values stay in the
/// [`Slab`], whose links it keeps pointing at element positions.
pub(crate) struct Wheel {
    elapsed: u64,
    occupied: [u64; LEVELS as usize],
    slots: Box<[Slot; NUM_SLOTS]>,
    blocks: Blocks,
    /// Elements in all slots, live or garbage.
    count: usize,
    /// Garbage elements (their entries were cancelled or moved).
    garbage: usize,
    /// The exact earliest live element, valid unless `front_dirty`.
    front: Option<Front>,
    front_dirty: bool,
    /// [`SWEEP_SLACK`], lowered by model tests to make sweeps frequent.
    sweep_slack: usize,
}

#[inline]
const fn slot_id(level: u32, digit: u32) -> u32 {
    level * SLOTS + digit
}

/// The level a deadline `when >= elapsed` belongs to (may be >= LEVELS).
#[inline]
pub(crate) const fn level_for(elapsed: u64, when: u64) -> u32 {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    (63 - masked.leading_zeros()) / BITS
}

/// The tick at which slot `digit` of `level` starts, relative to `elapsed`.
#[inline]
const fn slot_start(elapsed: u64, level: u32, digit: u32) -> u64 {
    let level_span_bits = BITS * (level + 1);
    (elapsed & !((1_u64 << level_span_bits) - 1)) | ((digit as u64) << (BITS * level))
}

impl Wheel {
    pub(crate) fn new(elapsed: u64) -> Self {
        Self {
            elapsed,
            occupied: [0; LEVELS as usize],
            slots: Box::new([Slot::EMPTY; NUM_SLOTS]),
            blocks: Blocks::new(),
            count: 0,
            garbage: 0,
            front: None,
            front_dirty: false,
            sweep_slack: SWEEP_SLACK,
        }
    }

    /// Sets the garbage slack (model tests only).
    pub(crate) fn set_sweep_slack(&mut self, slack: usize) {
        self.sweep_slack = slack;
    }

    #[inline]
    pub(crate) fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Whether a deadline `when >= elapsed` fits in the wheel (same epoch).
    #[inline]
    pub(crate) fn fits(&self, when: u64) -> bool {
        (when ^ self.elapsed) >> EPOCH_BITS == 0
    }

    /// Whether the wheel holds no element at all (live or garbage).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Reserves pool space so that `pending` live elements fit without
    /// allocating, allowing for garbage and partially filled slot blocks.
    pub(crate) fn reserve(&mut self, pending: usize) {
        let elems = pending.saturating_mul(2).saturating_add(SWEEP_SLACK + 1);
        let blocks = elems / BLOCK as usize + 2 * NUM_SLOTS;
        let in_use = self.count / BLOCK as usize;
        self.blocks.reserve_free(blocks.saturating_sub(in_use));
    }

    /// Inserts slab entry `index` due at `when` (`elapsed <= when`, same
    /// epoch) and returns the element position for the entry's link.
    #[inline]
    pub(crate) fn insert(&mut self, when: u64, index: u32) -> u32 {
        debug_assert!(when >= self.elapsed && self.fits(when));
        let level = level_for(self.elapsed, when);
        let digit = ((when >> (BITS * level)) & (SLOTS as u64 - 1)) as u32;
        let offset = (when & ((1_u64 << (BITS * level)) - 1)) as u32;
        if !self.front_dirty && self.front.is_none_or(|f| when < f.when) {
            self.front = Some(Front { when, index });
        }
        self.append(level, digit, Elem { index, offset })
    }

    /// Appends an element to a slot and returns its position.
    #[inline]
    fn append(&mut self, level: u32, digit: u32, elem: Elem) -> u32 {
        let id = slot_id(level, digit);
        let s = &mut self.slots[id as usize];
        if s.head == NIL {
            let b = self.blocks.alloc(id);
            *s = Slot {
                head: b,
                tail: b,
                ..Slot::EMPTY
            };
            self.occupied[level as usize] |= 1 << digit;
        } else if s.tail_len == BLOCK {
            let b = self.blocks.alloc(id);
            self.blocks.set_next(s.tail, b);
            s.tail = b;
            s.tail_len = 0;
        }
        let pos = Blocks::pos(s.tail, s.tail_len);
        if s.count == 0 || elem.offset < s.min_offset {
            s.min_offset = elem.offset;
            s.min_pos = pos;
        }
        s.tail_len += 1;
        s.count += 1;
        self.count += 1;
        self.blocks.set(pos, elem);
        pos
    }

    /// The deadline of the live element at `pos`.
    pub(crate) fn deadline_at(&self, pos: u32) -> u64 {
        let id = self.blocks.slot_of(pos);
        let elem = self.blocks.get(pos);
        slot_start(self.elapsed, id / SLOTS, id % SLOTS) + u64::from(elem.offset)
    }

    /// Records that slab entry `index`, whose element is in the wheel, is
    /// being cancelled or moved: its element becomes garbage. O(1); the
    /// caller must call [`Self::refresh`] once the slab reflects the change.
    #[inline]
    pub(crate) fn forget(&mut self, index: u32) {
        self.garbage += 1;
        if self.front.is_some_and(|f| f.index == index) {
            self.front_dirty = true;
        }
    }

    /// Restores the invariants after [`Self::forget`] or a poll: sweeps
    /// garbage if it outnumbers live elements, and recomputes the front if
    /// it was removed.
    #[inline]
    pub(crate) fn refresh<T>(&mut self, slab: &mut Slab<T>) {
        if self.garbage > self.count - self.garbage + self.sweep_slack {
            self.sweep(slab);
        }
        if self.front_dirty {
            self.recompute_front(slab);
        }
    }

    /// Prefetches the slab entry of the element `AHEAD` places after
    /// position `(block, i)` of a slot, following the block chain.
    #[inline]
    fn prefetch_ahead<T>(&self, slab: &Slab<T>, block: u32, i: u32, tail: u32, tail_len: u32) {
        let j = i + AHEAD;
        let (b, j) = if j < BLOCK {
            (block, j)
        } else if block == tail {
            return;
        } else {
            (self.blocks.next(block), j - BLOCK)
        };
        if b != tail || j < tail_len {
            slab.prefetch(self.blocks.get(Blocks::pos(b, j)).index);
        }
    }

    /// Frees all blocks of a slot and marks it empty.
    fn release_slot(&mut self, id: u32) {
        let s = std::mem::replace(&mut self.slots[id as usize], Slot::EMPTY);
        self.blocks.release_chain(s.head);
        self.occupied[(id / SLOTS) as usize] &= !(1 << (id % SLOTS));
    }

    /// Rewrites a slot without its garbage, preserving order, and recomputes
    /// its minimum. Releases the slot if nothing live remains.
    fn compact<T>(&mut self, id: u32, slab: &mut Slab<T>) {
        let mut s = self.slots[id as usize];
        let (mut rb, mut ri) = (s.head, s.head_pos);
        let (mut wb, mut wi) = (s.head, 0);
        let mut kept = 0;
        loop {
            let limit = if rb == s.tail { s.tail_len } else { BLOCK };
            if ri == limit {
                if rb == s.tail {
                    break;
                }
                rb = self.blocks.next(rb);
                ri = 0;
                continue;
            }
            self.prefetch_ahead(slab, rb, ri, s.tail, s.tail_len);
            let from = Blocks::pos(rb, ri);
            ri += 1;
            let elem = self.blocks.get(from);
            if !slab.is_linked(elem.index, from) {
                continue;
            }
            if wi == BLOCK {
                wb = self.blocks.next(wb);
                wi = 0;
            }
            let to = Blocks::pos(wb, wi);
            wi += 1;
            if to != from {
                self.blocks.set(to, elem);
                slab.set_link(elem.index, to);
            }
            if kept == 0 || elem.offset < s.min_offset {
                s.min_offset = elem.offset;
                s.min_pos = to;
            }
            kept += 1;
        }
        self.garbage -= (s.count - kept) as usize;
        self.count -= (s.count - kept) as usize;
        if kept == 0 {
            self.release_slot(id);
            return;
        }
        let rest = self.blocks.next(wb);
        self.blocks.set_next(wb, NIL);
        self.blocks.release_chain(rest);
        s.tail = wb;
        s.tail_len = wi;
        s.head_pos = 0;
        s.count = kept;
        self.slots[id as usize] = s;
    }

    /// Compacts every occupied slot.
    #[cold]
    fn sweep<T>(&mut self, slab: &mut Slab<T>) {
        for level in 0..LEVELS {
            let mut occ = self.occupied[level as usize];
            while occ != 0 {
                let digit = occ.trailing_zeros();
                occ &= occ - 1;
                self.compact(slot_id(level, digit), slab);
            }
        }
        debug_assert_eq!(self.garbage, 0);
    }

    /// Finds the earliest live element, dropping garbage in front of it.
    fn recompute_front<T>(&mut self, slab: &mut Slab<T>) {
        self.front_dirty = false;
        self.front = loop {
            let Some(n) = self.next_slot() else {
                break None;
            };
            let id = slot_id(n.level, n.digit);
            if n.level == 0 {
                if let Some(index) = self.first_live(id, slab) {
                    break Some(Front {
                        when: n.start,
                        index,
                    });
                }
                continue; // the slot held only garbage and is released
            }
            let s = self.slots[id as usize];
            let elem = self.blocks.get(s.min_pos);
            if slab.is_linked(elem.index, s.min_pos) {
                break Some(Front {
                    when: n.start + u64::from(s.min_offset),
                    index: elem.index,
                });
            }
            self.compact(id, slab);
            // Either the slot is gone or its minimum is now live: loop.
        };
    }

    /// Drops garbage at the head of level-0 slot `id` and returns the first
    /// live element's index; releases the slot if it held only garbage.
    fn first_live<T>(&mut self, id: u32, slab: &Slab<T>) -> Option<u32> {
        let mut s = self.slots[id as usize];
        let mut found = None;
        while s.count > 0 {
            let limit = if s.head == s.tail { s.tail_len } else { BLOCK };
            if s.head_pos == limit {
                let next = self.blocks.next(s.head);
                self.blocks.release(s.head);
                s.head = next;
                s.head_pos = 0;
                continue;
            }
            let pos = Blocks::pos(s.head, s.head_pos);
            let elem = self.blocks.get(pos);
            if slab.is_linked(elem.index, pos) {
                found = Some(elem.index);
                break;
            }
            s.head_pos += 1;
            s.count -= 1;
            self.count -= 1;
            self.garbage -= 1;
        }
        self.slots[id as usize] = s;
        if found.is_none() {
            self.release_slot(id);
        }
        found
    }

    /// The earliest occupied slot, if any (it may hold only garbage).
    #[inline]
    pub(crate) fn next_slot(&self) -> Option<NextSlot> {
        for level in 0..LEVELS {
            let occ = self.occupied[level as usize];
            if occ != 0 {
                let digit = occ.trailing_zeros();
                return Some(NextSlot {
                    level,
                    digit,
                    start: slot_start(self.elapsed, level, digit),
                });
            }
        }
        None
    }

    /// The exact earliest live deadline in the wheel.
    #[inline]
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        debug_assert!(!self.front_dirty, "refresh() after every change");
        self.front.map(|f| f.when)
    }

    /// Fires up to `max` live elements of the level-0 slot `digit`, which is
    /// due, calling `fire(index)` for each in FIFO order (the callback takes
    /// the entry out of the slab). Moves `elapsed` to the slot's tick and
    /// marks the front for recomputation. Returns how many fired.
    pub(crate) fn fire_slot<T>(
        &mut self,
        digit: u32,
        max: usize,
        slab: &mut Slab<T>,
        mut fire: impl FnMut(&mut Slab<T>, u32),
    ) -> usize {
        let id = slot_id(0, digit);
        self.elapsed = slot_start(self.elapsed, 0, digit);
        self.front_dirty = true;
        let mut s = self.slots[id as usize];
        let mut fired = 0;
        let mut consumed = 0;
        while fired < max && s.count > 0 {
            let limit = if s.head == s.tail { s.tail_len } else { BLOCK };
            if s.head_pos == limit {
                let next = self.blocks.next(s.head);
                debug_assert_ne!(next, NIL, "elements counted past the tail");
                self.blocks.release(s.head);
                s.head = next;
                s.head_pos = 0;
                continue;
            }
            self.prefetch_ahead(slab, s.head, s.head_pos, s.tail, s.tail_len);
            let pos = Blocks::pos(s.head, s.head_pos);
            let elem = self.blocks.get(pos);
            s.head_pos += 1;
            s.count -= 1;
            consumed += 1;
            if slab.is_linked(elem.index, pos) {
                fired += 1;
                fire(slab, elem.index);
            }
        }
        self.count -= consumed;
        self.garbage -= consumed - fired;
        self.slots[id as usize] = s;
        if s.count == 0 {
            self.release_slot(id);
        }
        fired
    }

    /// Moves `elapsed` to the start of slot `digit` of `level >= 1` and
    /// re-places its live elements into lower levels, in order, dropping
    /// its garbage.
    pub(crate) fn cascade<T>(&mut self, level: u32, digit: u32, slab: &mut Slab<T>) {
        debug_assert!(level >= 1);
        let id = slot_id(level, digit);
        let start = slot_start(self.elapsed, level, digit);
        self.elapsed = start;
        self.front_dirty = true;
        let s = std::mem::replace(&mut self.slots[id as usize], Slot::EMPTY);
        self.occupied[level as usize] &= !(1 << digit);
        self.count -= s.count as usize;
        let mut dropped = 0;
        let mut b = s.head;
        let mut i = s.head_pos;
        while b != NIL {
            let limit = if b == s.tail { s.tail_len } else { BLOCK };
            while i < limit {
                self.prefetch_ahead(slab, b, i, s.tail, s.tail_len);
                let from = Blocks::pos(b, i);
                let elem = self.blocks.get(from);
                i += 1;
                if !slab.is_linked(elem.index, from) {
                    dropped += 1;
                    continue;
                }
                let when = start + u64::from(elem.offset);
                let to_level = level_for(start, when);
                debug_assert!(to_level < level);
                let to_digit = ((when >> (BITS * to_level)) & (SLOTS as u64 - 1)) as u32;
                let offset = (when & ((1_u64 << (BITS * to_level)) - 1)) as u32;
                let pos = self.append(
                    to_level,
                    to_digit,
                    Elem {
                        index: elem.index,
                        offset,
                    },
                );
                slab.set_link(elem.index, pos);
            }
            let next = self.blocks.next(b);
            self.blocks.release(b);
            b = next;
            i = 0;
        }
        self.garbage -= dropped;
    }

    /// Moves `elapsed` forward to `to`. Only valid when no occupied slot
    /// starts at or before `to` (the caller has processed them).
    #[inline]
    pub(crate) fn advance(&mut self, to: u64) {
        debug_assert!(self.next_slot().is_none_or(|n| n.start > to) || to <= self.elapsed);
        debug_assert!(self.is_empty() || self.fits(to));
        if to > self.elapsed {
            self.elapsed = to;
        }
    }

    /// Moves an empty wheel's `elapsed` forward to `to`, in any epoch.
    pub(crate) fn advance_empty(&mut self, to: u64) {
        debug_assert!(self.is_empty() && to >= self.elapsed);
        self.elapsed = to;
    }

    /// Drops every element (the slab is cleared by the caller).
    pub(crate) fn clear(&mut self) {
        self.occupied = [0; LEVELS as usize];
        self.slots.fill(Slot::EMPTY);
        self.blocks.clear();
        self.count = 0;
        self.garbage = 0;
        self.front = None;
        self.front_dirty = false;
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.blocks.shrink_to_fit();
    }

    /// Free blocks held for reuse.
    pub(crate) fn free_blocks(&self) -> usize {
        self.blocks.free_blocks()
    }

    /// Garbage elements awaiting removal.
    pub(crate) fn garbage(&self) -> usize {
        self.garbage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_slot_starts() {
        assert_eq!(level_for(0, 0), 0);
        assert_eq!(level_for(0, 63), 0);
        assert_eq!(level_for(0, 64), 1);
        assert_eq!(level_for(0, 4095), 1);
        assert_eq!(level_for(0, 4096), 2);
        assert_eq!(level_for(0, (1 << 36) - 1), 5);
        assert_eq!(level_for(0, 1 << 36), 6);
        assert_eq!(level_for(100, 127), 0);
        assert_eq!(level_for(100, 128), 1);
        assert_eq!(slot_start(100, 0, 40), 104);
        assert_eq!(slot_start(100, 1, 3), 192);
        assert_eq!(slot_start(5000, 2, 1), 4096);
    }
}
