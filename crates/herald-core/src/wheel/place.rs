//! Inserting: an element goes to the slot its deadline's highest differing
//! digit names (see `level.rs`), or straight to a sub-list of a slot that is
//! fully split (see `split.rs`).
//!
//! Lists are FIFO and fire and cascade read them front to back, so elements
//! due in the same ms keep insertion order: a later insert can only land in
//! the same level-0 slot after the cascade that brought the earlier ones
//! down.

use super::Wheel;
use super::blocks::Elem;
use super::front::Front;
use super::level::{
    FIRST_SPLIT_LEVEL, SLOTS, SUB_BASE, digit_of, level_for, mask, slot_id, slot_start, sub_id,
};
use super::list::push_into;

impl Wheel {
    /// Inserts slab entry `index` due at `when` (`elapsed <= when`, same
    /// epoch) and returns the element position for the entry's link.
    #[inline]
    pub(crate) fn insert(&mut self, when: u64, index: u32) -> u32 {
        debug_assert!(when >= self.elapsed && self.fits(when));
        let level = level_for(self.elapsed, when);
        let digit = digit_of(when, level);
        if !self.front_dirty && self.front.is_none_or(|f| when < f.when) {
            self.front = Some(Front { when, index });
        }
        self.append(level, digit, Elem::new(index, when & mask(level)))
    }

    /// Appends an element (offset masked to `level`) to slot `digit` of
    /// `level`, or to the right sub-list if that slot is fully split.
    #[inline]
    pub(super) fn append(&mut self, level: u32, digit: u32, elem: Elem) -> u32 {
        if level == 0 {
            return self.append0(digit, elem);
        }
        if level >= FIRST_SPLIT_LEVEL {
            let area = self.splits[(level - FIRST_SPLIT_LEVEL) as usize];
            if area.digit == digit && area.done {
                return self.append_split(level, digit, elem);
            }
        }
        let id = slot_id(level, digit);
        let ident = self.ident[id as usize];
        let s = &mut self.slots[id as usize];
        let was_empty = s.total() == 0;
        let pos = push_into(&mut self.blocks, s, ident, elem);
        s.note_min(was_empty, elem.offset(), pos);
        self.count += 1;
        if was_empty {
            self.occupied[level as usize] |= 1 << digit;
        }
        pos
    }

    /// [`Self::append`] at level 0: every element of a slot has the same
    /// deadline, so there is no minimum to track and no split.
    #[inline]
    fn append0(&mut self, digit: u32, elem: Elem) -> u32 {
        let ident = self.ident[digit as usize];
        let s = &mut self.slots[digit as usize];
        if s.count == 0 {
            self.occupied[0] |= 1 << digit;
        }
        self.count += 1;
        push_into(&mut self.blocks, s, ident, elem)
    }

    /// [`Self::append`] into a fully split slot: straight to its sub-list.
    #[cold]
    fn append_split(&mut self, level: u32, digit: u32, elem: Elem) -> u32 {
        let id = slot_id(level, digit);
        debug_assert!(
            self.slots[id as usize].total() > 0,
            "a split slot is never empty"
        );
        let sub = sub_id(level, digit_of(elem.offset(), level - 1));
        let sub_was_empty = self.list(sub).count == 0;
        let pos = self.push(sub, elem);
        self.list_mut(sub)
            .note_min(sub_was_empty, elem.offset() & mask(level - 1), pos);
        let parent = &mut self.slots[id as usize];
        parent.in_subs += 1;
        parent.note_min(false, elem.offset(), pos);
        self.count += 1;
        pos
    }

    /// The deadline of the live element at `pos`.
    pub(crate) fn deadline_at(&self, pos: u32) -> u64 {
        let id = self.owner[self.blocks.slot_of(pos) as usize];
        let (level, digit) = if id < SUB_BASE {
            (id / SLOTS, id % SLOTS)
        } else {
            let area = (id - SUB_BASE) / SLOTS;
            (FIRST_SPLIT_LEVEL + area, self.splits[area as usize].digit)
        };
        let elem = self.blocks.get(pos);
        slot_start(self.elapsed, level, digit) + (elem.offset() & mask(level))
    }
}
