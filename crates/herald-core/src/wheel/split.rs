//! Pre-splitting big slots, so that polls stay bounded.
//!
//! Cascading a slot of hundreds of thousands of elements at once would take
//! tens of milliseconds. Instead, each poll spends a budget moving the first
//! big slot of each level >= 2, front first, into 64 *sub-lists* by the next
//! digit down, exactly where the cascade would put them; new elements for a
//! fully split slot go straight to their sub-list. The cascade then splices
//! sub-lists 1 to 63 into the level below in O(1) each (see `cascade.rs`),
//! and the earliest element of a split slot is in its first non-empty
//! sub-list, so a rescan reads at most 1/64 of the slot (see `front.rs`).

use super::Wheel;
use super::blocks::NIL;
use super::front::{Front, NextSlot};
use super::level::{BITS, FIRST_SPLIT_LEVEL, LEVELS, SLOTS, digit_of, mask, slot_id, sub_id};
use crate::slab::Slab;

/// Pre-splitting of one slot of a level into 64 sub-lists by the next digit.
#[derive(Clone, Copy, Debug)]
pub(super) struct Split {
    /// The slot being split, or `NIL`.
    pub(super) digit: u32,
    /// Whether the slot's own list has been emptied into the sub-lists (new
    /// elements then go straight to a sub-list).
    pub(super) done: bool,
}

impl Split {
    pub(super) const IDLE: Self = Self {
        digit: NIL,
        done: false,
    };
}

/// What [`Wheel::split_front`] found.
pub(super) enum SplitFront {
    /// The slot's earliest live element.
    Found(Front),
    /// The slot held only garbage and has been released.
    Released,
    /// The slot is not fully split; use its own minimum.
    NotSplit,
}

impl Wheel {
    /// Spends up to the split budget moving elements of big upcoming slots
    /// into their sub-lists, so that their cascade is a splice later. Called
    /// once per poll; keeps every poll's work bounded.
    pub(crate) fn split_ahead<T>(&mut self, slab: &mut Slab<T>) {
        let mut budget = self.split_budget;
        for level in FIRST_SPLIT_LEVEL..LEVELS {
            if budget == 0 {
                break;
            }
            self.split_level(level, &mut budget, slab);
        }
    }

    pub(super) fn split_level<T>(&mut self, level: u32, budget: &mut usize, slab: &mut Slab<T>) {
        let a = (level - FIRST_SPLIT_LEVEL) as usize;
        if self.splits[a].digit == NIL {
            let mut occ = self.occupied[level as usize];
            while occ != 0 {
                let digit = occ.trailing_zeros();
                occ &= occ - 1;
                if self.slots[slot_id(level, digit) as usize].total() >= self.split_min.max(1) {
                    self.splits[a] = Split { digit, done: false };
                    break;
                }
            }
        }
        let area = self.splits[a];
        if area.digit == NIL || area.done {
            return;
        }
        let id = slot_id(level, area.digit);
        self.touch(id);
        let mut s = self.slots[id as usize];
        let mut dropped = 0_u32;
        while *budget > 0 && s.count > 0 {
            let (from, elem) = self.pop_front(&mut s, slab);
            *budget -= 1;
            let Some(link) = slab.linked_mut(elem.index(), from) else {
                dropped += 1;
                if from == s.min_pos {
                    // Its block may be reused: force a rescan instead.
                    s.min_pos = NIL;
                }
                continue;
            };
            let sub = sub_id(level, digit_of(elem.offset(), level - 1));
            let sub_was_empty = self.list(sub).count == 0;
            let to = self.push(sub, elem);
            *link = to;
            self.list_mut(sub)
                .note_min(sub_was_empty, elem.offset() & mask(level - 1), to);
            s.in_subs += 1;
            if from == s.min_pos {
                s.min_pos = to;
            }
        }
        if s.count == 0 {
            let head = s.take_chain();
            self.blocks.release_chain(head);
            self.splits[a].done = true;
        }
        self.slots[id as usize] = s;
        self.count -= dropped as usize;
        self.garbage -= dropped as usize;
        if s.total() == 0 {
            // Only garbage was left, so the front is unchanged.
            self.release_slot(id);
        }
    }

    /// The earliest live element of slot `n` if it is fully split: the
    /// minimum of its first non-empty sub-list (sub-lists are ordered by
    /// the next digit), so at most one sub-list (1/64 of the slot) is
    /// rescanned.
    pub(super) fn split_front<T>(&mut self, n: NextSlot, slab: &mut Slab<T>) -> SplitFront {
        if n.level < FIRST_SPLIT_LEVEL {
            return SplitFront::NotSplit;
        }
        let area = self.splits[(n.level - FIRST_SPLIT_LEVEL) as usize];
        if area.digit != n.digit || !area.done {
            return SplitFront::NotSplit;
        }
        let id = slot_id(n.level, n.digit);
        for e in 0..SLOTS {
            let sub = sub_id(n.level, e);
            let s = *self.list(sub);
            if s.count == 0 {
                continue;
            }
            if self.live_at(s.min_pos, slab).is_none() {
                let mut ignored = None;
                let dropped = self.compact_list(sub, n.level - 1, n.level, &mut ignored, slab);
                self.slots[id as usize].in_subs -= dropped;
                if self.list(sub).count == 0 {
                    continue;
                }
            }
            let s = *self.list(sub);
            let offset = (u64::from(e) << (BITS * (n.level - 1))) | s.min_offset;
            let parent = &mut self.slots[id as usize];
            parent.min_offset = offset;
            parent.min_pos = s.min_pos;
            return SplitFront::Found(Front {
                when: n.start + offset,
                index: self.blocks.get(s.min_pos).index(),
            });
        }
        // Only garbage was left: the slot is empty.
        debug_assert_eq!(self.slots[id as usize].total(), 0);
        self.release_slot(id);
        SplitFront::Released
    }
}
