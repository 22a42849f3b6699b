//! Polling: firing a due level-0 slot and cascading a higher one.
//!
//! # Expiry and cascade
//!
//! Polling finds the earliest occupied slot (see `front.rs`). At level 0 its
//! elements are due at the slot's tick and fire front to back (FIFO). At a
//! higher level, `elapsed` moves to the slot's start and its elements are
//! re-placed, in list order, into lower levels (a *cascade*). Every element
//! cascades at most once per level. A pre-split slot (see `split.rs`) hands
//! its sub-lists to the level below whole.

use super::Wheel;
use super::blocks::{BLOCK, Blocks, Elem, NIL};
use super::level::{
    FIRST_SPLIT_LEVEL, SLOTS, digit_of, level_for, mask, slot_id, slot_start, sub_id,
};
use super::list::Slot;
use super::split::Split;
use crate::slab::Slab;

impl Wheel {
    /// Fires up to `max` live elements of the level-0 slot `digit`, which is
    /// due, calling `fire(index)` for each in FIFO order (the callback takes
    /// the entry out of the slab). Moves `elapsed` to the slot's tick and
    /// marks the front for recomputation. Returns how many fired.
    pub(crate) fn fire_slot<T>(
        &mut self,
        digit: u32,
        max: usize,
        slab: &mut Slab<T>,
        mut fire: impl FnMut(u32, u32, T),
    ) -> usize {
        let id = slot_id(0, digit);
        self.touch(id);
        self.elapsed = slot_start(self.elapsed, 0, digit);
        self.front_dirty = true;
        let mut s = self.slots[id as usize];
        let mut fired = 0;
        let mut consumed = 0;
        while fired < max && s.count > 0 {
            let (pos, elem) = self.pop_front(&mut s, slab);
            consumed += 1;
            if let Some((generation, value)) = slab.take_linked(elem.index(), pos) {
                fired += 1;
                fire(elem.index(), generation, value);
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
    /// moves its live elements into lower levels, in order, dropping its
    /// garbage. Sub-lists 1..63 of a pre-split slot are handed to level
    /// `level - 1` whole; everything else is re-placed element by element.
    pub(crate) fn cascade<T>(&mut self, level: u32, digit: u32, slab: &mut Slab<T>) {
        debug_assert!(level >= 1);
        let id = slot_id(level, digit);
        self.touch_slot(id);
        let start = slot_start(self.elapsed, level, digit);
        self.elapsed = start;
        self.front_dirty = true;
        let s = std::mem::replace(&mut self.slots[id as usize], Slot::EMPTY);
        self.occupied[level as usize] &= !(1 << digit);
        let split = level >= FIRST_SPLIT_LEVEL
            && self.splits[(level - FIRST_SPLIT_LEVEL) as usize].digit == digit;
        if split {
            self.splits[(level - FIRST_SPLIT_LEVEL) as usize] = Split::IDLE;
            // Sub-lists hold a prefix of the slot in FIFO order: they go
            // first. Sub-list 0 shares digit `level - 1` with `start`, so its
            // elements belong further down: re-place them one by one.
            let sub0 = std::mem::replace(self.list_mut(sub_id(level, 0)), Slot::EMPTY);
            self.replace_list(sub0, level, start, slab);
            for e in 1..SLOTS {
                let sub = std::mem::replace(self.list_mut(sub_id(level, e)), Slot::EMPTY);
                if sub.count == 0 {
                    self.blocks.release_chain(sub.head);
                    continue;
                }
                let to = slot_id(level - 1, e);
                debug_assert_eq!(self.slots[to as usize].total(), 0);
                self.swap_identities(sub_id(level, e), to);
                self.slots[to as usize] = sub;
                self.occupied[(level - 1) as usize] |= 1 << e;
            }
        }
        self.replace_list(s, level, start, slab);
    }

    /// Swaps the identities of two lists: the blocks of each now belong to
    /// the other.
    fn swap_identities(&mut self, a: u32, b: u32) {
        let (ia, ib) = (self.ident[a as usize], self.ident[b as usize]);
        self.ident[a as usize] = ib;
        self.ident[b as usize] = ia;
        self.owner[ia as usize] = b;
        self.owner[ib as usize] = a;
    }

    /// Re-places every live element of list `s` (offsets masked to `level`,
    /// relative to `start`) into the levels below, and frees its blocks.
    fn replace_list<T>(&mut self, s: Slot, level: u32, start: u64, slab: &mut Slab<T>) {
        self.count -= s.count as usize;
        let mut dropped = 0;
        let mut b = s.head;
        let mut i = s.head_pos;
        while b != NIL {
            let limit = if b == s.tail { s.tail_len } else { BLOCK };
            while i < limit {
                self.prefetch_ahead(slab, &s, b, i);
                let from = Blocks::pos(b, i);
                let elem = self.blocks.get(from);
                i += 1;
                let Some(link) = slab.linked_mut(elem.index(), from) else {
                    dropped += 1;
                    continue;
                };
                let when = start + (elem.offset() & mask(level));
                let to_level = level_for(start, when);
                debug_assert!(to_level < level);
                let to_digit = digit_of(when, to_level);
                let moved = Elem::new(elem.index(), when & mask(to_level));
                *link = self.append(to_level, to_digit, moved);
            }
            let next = self.blocks.next(b);
            self.blocks.release(b);
            b = next;
            i = 0;
        }
        self.garbage -= dropped;
    }
}
