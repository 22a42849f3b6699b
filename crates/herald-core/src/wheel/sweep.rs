//! Lazy cancellation: garbage elements, list compaction and the
//! incremental garbage sweep.
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
//! once it outnumbers the live elements a sweep compacts every slot, a
//! bounded step per operation, so the wheel never holds more than about twice
//! as many elements as are pending.

use super::Wheel;
use super::blocks::{BLOCK, Blocks, NIL};
use super::level::{FIRST_SPLIT_LEVEL, NUM_LISTS, SLOTS, SUB_BASE, mask, slot_id, sub_id};
use super::list::Slot;
use crate::slab::Slab;

/// An in-progress compaction of one list by the garbage sweep: live
/// elements from the read position `(rb, ri)` on are copied down to the
/// write position `(wb, wi)`. Interrupting it at any step leaves the list
/// valid: an element's old copy is garbage once its entry links to the new
/// position, so the list's counts stay exact throughout.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sweep {
    list: u32,
    rb: u32,
    ri: u32,
    wb: u32,
    wi: u32,
    kept: u32,
}

impl Sweep {
    /// A compaction of list `list` (currently `s`) from its head.
    fn start(list: u32, s: &Slot) -> Self {
        Self {
            list,
            rb: s.head,
            ri: s.head_pos,
            wb: s.head,
            wi: s.head_pos,
            kept: 0,
        }
    }
}

impl Wheel {
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

    /// Restores the invariants after [`Self::forget`] or a poll: advances
    /// the garbage sweep a bounded step while garbage outnumbers live
    /// elements, and recomputes the front if it was removed.
    #[inline]
    pub(crate) fn refresh<T>(&mut self, slab: &mut Slab<T>) {
        if self.sweep.is_some() || self.garbage > self.count - self.garbage + self.sweep_slack {
            self.sweep_step(slab);
        }
        if self.front_dirty {
            self.recompute_front(slab);
        }
    }

    /// Abandons a sweep of list `id` (it is about to be consumed or moved).
    #[inline]
    pub(super) fn touch(&mut self, id: u32) {
        if self.sweep.is_some_and(|c| c.list == id) {
            self.sweep = None;
        }
    }

    /// [`Self::touch`] for slot `id` and, if it is split, its sub-lists.
    #[inline]
    pub(super) fn touch_slot(&mut self, id: u32) {
        let Some(c) = self.sweep else { return };
        let (level, digit) = (id / SLOTS, id % SLOTS);
        let in_subs = c.list >= SUB_BASE
            && level >= FIRST_SPLIT_LEVEL
            && self.splits[(level - FIRST_SPLIT_LEVEL) as usize].digit == digit
            && (c.list - SUB_BASE) / SLOTS == level - FIRST_SPLIT_LEVEL;
        if c.list == id || in_subs {
            self.sweep = None;
        }
    }

    /// The slot a sub-list belongs to.
    #[inline]
    fn parent_of(&self, sub: u32) -> u32 {
        let a = (sub - SUB_BASE) / SLOTS;
        slot_id(FIRST_SPLIT_LEVEL + a, self.splits[a as usize].digit)
    }

    /// Rewrites list `id` without garbage, preserving order. Recomputes the
    /// list's own minimum (offsets masked to `own_level`) and feeds every
    /// kept element to `parent_min` (masked to `parent_level`). Updates the
    /// counts and returns how many elements were dropped.
    pub(super) fn compact_list<T>(
        &mut self,
        id: u32,
        own_level: u32,
        parent_level: u32,
        parent_min: &mut Option<(u64, u32)>,
        slab: &mut Slab<T>,
    ) -> u32 {
        self.touch(id);
        let s = *self.list(id);
        if s.count == 0 {
            return 0;
        }
        let mut c = Sweep::start(id, &s);
        let mut unbounded = u32::MAX;
        let finished = self.compact_steps(&mut c, &mut unbounded, slab);
        debug_assert!(finished);
        let dropped = self.truncate(c);
        // The kept elements, in order, for the minimums.
        let s = *self.list(id);
        let (mut b, mut i, mut first) = (s.head, s.head_pos, true);
        while b != NIL {
            let limit = if b == s.tail { s.tail_len } else { BLOCK };
            while i < limit {
                let pos = Blocks::pos(b, i);
                let offset = self.blocks.get(pos).offset();
                self.list_mut(id)
                    .note_min(first, offset & mask(own_level), pos);
                first = false;
                let key = offset & mask(parent_level);
                if parent_min.is_none_or(|(m, _)| key < m) {
                    *parent_min = Some((key, pos));
                }
                i += 1;
            }
            b = self.blocks.next(b);
            i = 0;
        }
        dropped
    }

    /// Moves live elements of list `c.list` from the read position down to
    /// the write position, examining at most `budget` elements. Returns
    /// whether the whole list has been examined. Every step leaves the list
    /// valid (see [`Sweep`]); minimum positions follow moved elements.
    fn compact_steps<T>(&mut self, c: &mut Sweep, budget: &mut u32, slab: &mut Slab<T>) -> bool {
        let s = *self.list(c.list);
        loop {
            let limit = if c.rb == s.tail { s.tail_len } else { BLOCK };
            if c.ri == limit {
                if c.rb == s.tail {
                    return true;
                }
                c.rb = self.blocks.next(c.rb);
                c.ri = 0;
                continue;
            }
            if *budget == 0 {
                return false;
            }
            *budget -= 1;
            self.prefetch_ahead(slab, &s, c.rb, c.ri);
            let from = Blocks::pos(c.rb, c.ri);
            c.ri += 1;
            let elem = self.blocks.get(from);
            let Some(link) = slab.linked_mut(elem.index(), from) else {
                continue;
            };
            if c.wi == BLOCK {
                c.wb = self.blocks.next(c.wb);
                c.wi = 0;
            }
            let to = Blocks::pos(c.wb, c.wi);
            c.wi += 1;
            c.kept += 1;
            if to != from {
                *link = to;
                self.blocks.set(to, elem);
                self.relocate_min(c.list, from, to);
            }
        }
    }

    /// Ends a compaction whose every element was examined: cuts the list
    /// after the write position, updates the list's and the wheel's counts,
    /// and returns how many elements were dropped. A list left empty gives
    /// its blocks back but keeps its other fields (a split slot's own list
    /// can empty while its sub-lists remain).
    fn truncate(&mut self, c: Sweep) -> u32 {
        let dropped = self.list(c.list).count - c.kept;
        self.garbage -= dropped as usize;
        self.count -= dropped as usize;
        let rest = self.blocks.next(c.wb);
        self.blocks.set_next(c.wb, NIL);
        self.blocks.release_chain(rest);
        let s = self.list_mut(c.list);
        s.tail = c.wb;
        s.tail_len = c.wi;
        s.count = c.kept;
        if c.kept == 0 {
            let head = s.take_chain();
            self.blocks.release_chain(head);
        }
        dropped
    }

    /// Compacts slot `id` and its sub-lists, recomputing its minimum.
    /// Releases the slot if nothing live remains.
    pub(super) fn compact<T>(&mut self, id: u32, slab: &mut Slab<T>) {
        let (level, digit) = (id / SLOTS, id % SLOTS);
        let mut min = None;
        self.compact_list(id, level, level, &mut min, slab);
        if level >= FIRST_SPLIT_LEVEL
            && self.splits[(level - FIRST_SPLIT_LEVEL) as usize].digit == digit
        {
            let mut in_subs = 0;
            for e in 0..SLOTS {
                let sub = sub_id(level, e);
                self.compact_list(sub, level - 1, level, &mut min, slab);
                in_subs += self.list(sub).count;
            }
            self.slots[id as usize].in_subs = in_subs;
        }
        match min {
            None => self.release_slot(id),
            Some((offset, pos)) => {
                let s = &mut self.slots[id as usize];
                s.min_offset = offset;
                s.min_pos = pos;
            }
        }
    }

    /// Advances the garbage sweep by up to `sweep_step` elements: compacts
    /// lists one after another, round robin, while garbage outnumbers live
    /// elements. Bounded work per call, so no cancel or poll ever pays for a
    /// whole-wheel compaction.
    fn sweep_step<T>(&mut self, slab: &mut Slab<T>) {
        let mut budget = self.sweep_step;
        while budget > 0 {
            let mut c = match self.sweep {
                Some(c) => c,
                None => {
                    if self.garbage <= self.count - self.garbage + self.sweep_slack {
                        return;
                    }
                    let Some(list) = self.next_sweep_list() else {
                        return;
                    };
                    Sweep::start(list, self.list(list))
                }
            };
            if self.compact_steps(&mut c, &mut budget, slab) {
                self.sweep = None;
                self.finish_sweep(c, slab);
            } else {
                self.sweep = Some(c);
            }
        }
    }

    /// The next non-empty list after the last one swept.
    fn next_sweep_list(&mut self) -> Option<u32> {
        for _ in 0..NUM_LISTS {
            let id = self.sweep_next;
            self.sweep_next = (id + 1) % NUM_LISTS as u32;
            if self.list(id).count > 0 {
                return Some(id);
            }
        }
        None
    }

    /// Keeps a slot's and its parent's minimum position right when the
    /// element at `from` is copied over the garbage at `to`: a minimum at
    /// `from` follows it; a minimum at `to` pointed at that garbage and must
    /// not now name the copied element, so it is cleared (forcing a rescan).
    #[inline]
    fn relocate_min(&mut self, list: u32, from: u32, to: u32) {
        let fix = |pos: &mut u32| {
            if *pos == from {
                *pos = to;
            } else if *pos == to {
                *pos = NIL;
            }
        };
        fix(&mut self.list_mut(list).min_pos);
        if list >= SUB_BASE {
            let parent = self.parent_of(list);
            fix(&mut self.slots[parent as usize].min_pos);
        }
    }

    /// Ends a sweep of a list whose every element has been examined: cuts
    /// the garbage tail off and updates the counts.
    fn finish_sweep<T>(&mut self, c: Sweep, slab: &Slab<T>) {
        let parent = (c.list >= SUB_BASE).then(|| self.parent_of(c.list));
        // A minimum left pointing at garbage must not survive the cut: its
        // position may be reused. Force a rescan instead.
        for id in [Some(c.list), parent].into_iter().flatten() {
            if self.live_at(self.list(id).min_pos, slab).is_none() {
                self.list_mut(id).min_pos = NIL;
            }
        }
        let dropped = self.truncate(c);
        // Only garbage went, so the front (a live element) is unchanged.
        if let Some(parent) = parent {
            self.slots[parent as usize].in_subs -= dropped;
            if self.slots[parent as usize].total() == 0 {
                self.release_slot(parent);
            }
        } else if self.slots[c.list as usize].total() == 0 {
            self.release_slot(c.list);
        }
    }
}
