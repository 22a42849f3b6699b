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
//! # Exact minimum
//!
//! Every slot above level 0 tracks the minimum offset of its live elements
//! and how many elements share it. Cancelling the last of those marks the
//! minimum stale; the scheduler rescans a stale slot only when it becomes
//! the earliest one (`ensure_front_fresh`), so `next_deadline` stays exact.
//!
//! # Cancellation
//!
//! A slab entry links to its element's position; cancelling overwrites the
//! element with a tombstone. Tombstones at a slot's tail are popped at once;
//! a slot whose tombstones outnumber half its live elements is compacted in
//! place (stable, so FIFO order holds), so dead elements never hold more than
//! about a third of a slot.

mod blocks;

use blocks::{BLOCK, Blocks, Elem, NIL, TOMB};

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

/// Compaction threshold: a slot is compacted once it has at least this many
/// tombstones and more tombstones than half its live elements.
const COMPACT_MIN_DEAD: u32 = 16;

#[derive(Clone, Copy, Debug)]
struct Slot {
    head: u32,
    tail: u32,
    /// Read position in the head block.
    head_pos: u32,
    /// Elements written into the tail block.
    tail_len: u32,
    live: u32,
    dead: u32,
    /// Minimum offset among live elements (levels >= 1), valid unless `stale`.
    min_offset: u32,
    /// How many live elements have `min_offset`.
    min_count: u32,
    stale: bool,
}

impl Slot {
    const EMPTY: Self = Self {
        head: NIL,
        tail: NIL,
        head_pos: 0,
        tail_len: 0,
        live: 0,
        dead: 0,
        min_offset: 0,
        min_count: 0,
        stale: false,
    };
}

/// The next slot to process: `(level, digit, tick the slot starts at)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NextSlot {
    pub(crate) level: u32,
    pub(crate) digit: u32,
    pub(crate) start: u64,
}

/// The wheel. It stores only `(slab index, offset)` pairs; values stay in the
/// [`Slab`], whose links it keeps pointing at element positions.
pub(crate) struct Wheel {
    elapsed: u64,
    occupied: [u64; LEVELS as usize],
    slots: Box<[Slot; NUM_SLOTS]>,
    blocks: Blocks,
    /// Live elements in the wheel.
    live: usize,
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
            live: 0,
        }
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

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Reserves pool space so that `pending` elements fit without allocating,
    /// allowing for tombstones and partially filled slot blocks.
    pub(crate) fn reserve(&mut self, pending: usize) {
        let with_dead = pending.saturating_add(pending / 2);
        let blocks = with_dead / BLOCK as usize + 2 * NUM_SLOTS;
        let in_use = self.live / BLOCK as usize;
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
        self.live += 1;
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
                min_offset: elem.offset,
                ..Slot::EMPTY
            };
            self.occupied[level as usize] |= 1 << digit;
        } else if s.tail_len == BLOCK {
            let b = self.blocks.alloc(id);
            self.blocks.set_next(s.tail, b);
            s.tail = b;
            s.tail_len = 0;
        }
        if s.live == 0 {
            s.min_offset = elem.offset;
            s.min_count = 1;
            s.stale = false;
        } else if !s.stale {
            if elem.offset < s.min_offset {
                s.min_offset = elem.offset;
                s.min_count = 1;
            } else if elem.offset == s.min_offset {
                s.min_count += 1;
            }
        }
        let pos = Blocks::pos(s.tail, s.tail_len);
        s.tail_len += 1;
        s.live += 1;
        self.blocks.set(pos, elem);
        pos
    }

    /// The deadline of the live element at `pos`.
    pub(crate) fn deadline_at(&self, pos: u32) -> u64 {
        let id = self.blocks.slot_of(pos);
        let elem = self.blocks.get(pos);
        debug_assert_ne!(elem.index, TOMB);
        slot_start(self.elapsed, id / SLOTS, id % SLOTS) + u64::from(elem.offset)
    }

    /// Removes the live element at `pos` (its slab entry is being cancelled
    /// or rescheduled). May compact the slot, updating links in `slab`.
    pub(crate) fn remove<T>(&mut self, pos: u32, slab: &mut Slab<T>) {
        let id = self.blocks.slot_of(pos);
        let elem = self.blocks.get(pos);
        debug_assert_ne!(elem.index, TOMB);
        self.blocks.set(
            pos,
            Elem {
                index: TOMB,
                offset: 0,
            },
        );
        self.live -= 1;
        let s = &mut self.slots[id as usize];
        s.live -= 1;
        if s.live == 0 {
            self.release_slot(id);
            return;
        }
        if !s.stale && elem.offset == s.min_offset {
            s.min_count -= 1;
            s.stale = s.min_count == 0;
        }
        if pos + 1 == Blocks::pos(s.tail, s.tail_len) {
            // The last element: drop it outright instead of leaving a
            // tombstone. (An emptied tail block is refilled by the next
            // append; live elements remain before it since `live > 0`.)
            s.tail_len -= 1;
            return;
        }
        s.dead += 1;
        if s.dead >= COMPACT_MIN_DEAD && s.dead * 2 > s.live {
            self.compact(id, slab);
        }
    }

    /// Frees all blocks of a slot and marks it empty.
    fn release_slot(&mut self, id: u32) {
        let s = std::mem::replace(&mut self.slots[id as usize], Slot::EMPTY);
        self.blocks.release_chain(s.head);
        self.occupied[(id / SLOTS) as usize] &= !(1 << (id % SLOTS));
    }

    /// Rewrites a slot without its tombstones, preserving order.
    fn compact<T>(&mut self, id: u32, slab: &mut Slab<T>) {
        let mut s = self.slots[id as usize];
        let (mut rb, mut ri) = (s.head, s.head_pos);
        let (mut wb, mut wi) = (s.head, 0);
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
            let from = Blocks::pos(rb, ri);
            ri += 1;
            let elem = self.blocks.get(from);
            if elem.index == TOMB {
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
        }
        let rest = self.blocks.next(wb);
        self.blocks.set_next(wb, NIL);
        self.blocks.release_chain(rest);
        s.tail = wb;
        s.tail_len = wi;
        s.head_pos = 0;
        s.dead = 0;
        self.slots[id as usize] = s;
    }

    /// The earliest occupied slot, if any.
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

    /// The exact earliest deadline in the wheel. Requires the front slot's
    /// minimum to be fresh (see [`Self::ensure_front_fresh`]).
    #[inline]
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let n = self.next_slot()?;
        if n.level == 0 {
            return Some(n.start);
        }
        let s = &self.slots[slot_id(n.level, n.digit) as usize];
        debug_assert!(!s.stale, "front slot minimum must be fresh");
        Some(n.start + u64::from(s.min_offset))
    }

    /// Recomputes the minimum of the front slot if it went stale.
    pub(crate) fn ensure_front_fresh(&mut self) {
        let Some(n) = self.next_slot() else { return };
        let id = slot_id(n.level, n.digit);
        if n.level == 0 || !self.slots[id as usize].stale {
            return;
        }
        let s = self.slots[id as usize];
        let (mut min, mut count) = (u32::MAX, 0);
        self.for_each_elem(s, |e| {
            if e.index != TOMB {
                if e.offset < min {
                    (min, count) = (e.offset, 1);
                } else if e.offset == min {
                    count += 1;
                }
            }
        });
        let s = &mut self.slots[id as usize];
        s.min_offset = min;
        s.min_count = count;
        s.stale = false;
    }

    fn for_each_elem(&self, s: Slot, mut f: impl FnMut(Elem)) {
        let mut b = s.head;
        let mut i = s.head_pos;
        while b != NIL {
            let limit = if b == s.tail { s.tail_len } else { BLOCK };
            while i < limit {
                f(self.blocks.get(Blocks::pos(b, i)));
                i += 1;
            }
            b = self.blocks.next(b);
            i = 0;
        }
    }

    /// Fires up to `max` live elements of the level-0 slot `digit`, which is
    /// due, calling `fire(index)` for each in FIFO order. Moves `elapsed` to
    /// the slot's tick. Returns how many fired.
    pub(crate) fn fire_slot(&mut self, digit: u32, max: usize, mut fire: impl FnMut(u32)) -> usize {
        let id = slot_id(0, digit);
        self.elapsed = slot_start(self.elapsed, 0, digit);
        let mut s = self.slots[id as usize];
        let mut fired = 0;
        while fired < max && s.live > 0 {
            let limit = if s.head == s.tail { s.tail_len } else { BLOCK };
            if s.head_pos == limit {
                let next = self.blocks.next(s.head);
                debug_assert_ne!(next, NIL, "live elements past the tail");
                self.blocks.release(s.head);
                s.head = next;
                s.head_pos = 0;
                continue;
            }
            let elem = self.blocks.get(Blocks::pos(s.head, s.head_pos));
            s.head_pos += 1;
            if elem.index == TOMB {
                s.dead -= 1;
                continue;
            }
            s.live -= 1;
            fired += 1;
            fire(elem.index);
        }
        self.live -= fired;
        self.slots[id as usize] = s;
        if s.live == 0 {
            self.release_slot(id);
        }
        fired
    }

    /// Moves `elapsed` to the start of slot `digit` of `level >= 1` and
    /// re-places its elements into lower levels, in order.
    pub(crate) fn cascade<T>(&mut self, level: u32, digit: u32, slab: &mut Slab<T>) {
        debug_assert!(level >= 1);
        let id = slot_id(level, digit);
        let start = slot_start(self.elapsed, level, digit);
        self.elapsed = start;
        let s = std::mem::replace(&mut self.slots[id as usize], Slot::EMPTY);
        self.occupied[level as usize] &= !(1 << digit);
        let mut b = s.head;
        let mut i = s.head_pos;
        while b != NIL {
            let limit = if b == s.tail { s.tail_len } else { BLOCK };
            while i < limit {
                let elem = self.blocks.get(Blocks::pos(b, i));
                i += 1;
                if elem.index == TOMB {
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
        self.live = 0;
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.blocks.shrink_to_fit();
    }

    /// Free blocks held for reuse.
    pub(crate) fn free_blocks(&self) -> usize {
        self.blocks.free_blocks()
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
