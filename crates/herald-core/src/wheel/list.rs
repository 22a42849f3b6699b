//! A FIFO list of elements in blocks: a wheel slot or a sub-list, and the
//! wheel's operations on one list (append, pop from the front, release).

use super::Wheel;
use super::blocks::{BLOCK, Blocks, Elem, NIL};
use super::level::{FIRST_SPLIT_LEVEL, SLOTS, SUB_BASE, sub_id};
use super::split::Split;
use crate::slab::Slab;

/// How many elements ahead slot walks prefetch slab entries.
const AHEAD: u32 = 8;

/// A FIFO list of elements in blocks: a wheel slot or a sub-list.
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub(super) head: u32,
    pub(super) tail: u32,
    /// Read position in the head block.
    pub(super) head_pos: u32,
    /// Elements written into the tail block.
    pub(super) tail_len: u32,
    /// Elements in this list, live or garbage.
    pub(super) count: u32,
    /// Elements of this slot already moved into its split area's sub-lists.
    pub(super) in_subs: u32,
    /// Smallest offset (masked to the list's level) among the slot's
    /// elements since the last rescan, sub-lists included...
    pub(super) min_offset: u64,
    /// ...and the position of the first element with it.
    pub(super) min_pos: u32,
}

impl Slot {
    pub(super) const EMPTY: Self = Self {
        head: NIL,
        tail: NIL,
        head_pos: 0,
        tail_len: 0,
        count: 0,
        in_subs: 0,
        min_offset: 0,
        min_pos: NIL,
    };

    #[inline]
    pub(super) const fn total(&self) -> u32 {
        self.count + self.in_subs
    }

    /// Notes a new element for the minimum; `was_empty` if it is the first.
    #[inline]
    pub(super) fn note_min(&mut self, was_empty: bool, key: u64, pos: u32) {
        if was_empty || key < self.min_offset {
            self.min_offset = key;
            self.min_pos = pos;
        }
    }

    /// Detaches the list's (now element-free) blocks and returns the chain's
    /// head for release; counts and minimum are left to the caller.
    #[inline]
    pub(super) fn take_chain(&mut self) -> u32 {
        self.tail = NIL;
        self.head_pos = 0;
        self.tail_len = 0;
        std::mem::replace(&mut self.head, NIL)
    }
}

/// Appends `elem` to list `s`, taking a block from `blocks` (recorded as
/// owned by `ident`) when the tail is full, and returns its position.
/// Maintains the list's blocks and `count` only.
#[inline(always)]
pub(super) fn push_into(blocks: &mut Blocks, s: &mut Slot, ident: u32, elem: Elem) -> u32 {
    if s.head == NIL {
        let b = blocks.alloc(ident);
        s.head = b;
        s.tail = b;
        s.head_pos = 0;
        s.tail_len = 0;
    } else if s.tail_len == BLOCK {
        let b = blocks.alloc(ident);
        blocks.set_next(s.tail, b);
        s.tail = b;
        s.tail_len = 0;
    }
    let pos = Blocks::pos(s.tail, s.tail_len);
    s.tail_len += 1;
    s.count += 1;
    blocks.set(pos, elem);
    pos
}

impl Wheel {
    #[inline]
    pub(super) fn list(&self, id: u32) -> &Slot {
        if id < SUB_BASE {
            &self.slots[id as usize]
        } else {
            &self.subs[(id - SUB_BASE) as usize]
        }
    }

    #[inline]
    pub(super) fn list_mut(&mut self, id: u32) -> &mut Slot {
        if id < SUB_BASE {
            &mut self.slots[id as usize]
        } else {
            &mut self.subs[(id - SUB_BASE) as usize]
        }
    }

    /// Appends to list `id` and returns the position; maintains only the
    /// list's blocks and `count` (callers keep minimums and totals).
    #[inline]
    pub(super) fn push(&mut self, id: u32, elem: Elem) -> u32 {
        let ident = self.ident[id as usize];
        let s = if id < SUB_BASE {
            &mut self.slots[id as usize]
        } else {
            &mut self.subs[(id - SUB_BASE) as usize]
        };
        push_into(&mut self.blocks, s, ident, elem)
    }

    /// Prefetches the slab entry of the element `AHEAD` places after
    /// position `(block, i)` of list `s`, following the block chain.
    #[inline]
    pub(super) fn prefetch_ahead<T>(&self, slab: &Slab<T>, s: &Slot, block: u32, i: u32) {
        let j = i + AHEAD;
        let (b, j) = if j < BLOCK {
            (block, j)
        } else if block == s.tail {
            return;
        } else {
            (self.blocks.next(block), j - BLOCK)
        };
        if b != s.tail || j < s.tail_len {
            slab.prefetch(self.blocks.get(Blocks::pos(b, j)).index());
        }
    }

    /// The slab index of the element at `pos` if it is live (`NIL` is never).
    #[inline]
    pub(super) fn live_at<T>(&self, pos: u32, slab: &Slab<T>) -> Option<u32> {
        if pos == NIL {
            return None;
        }
        let index = self.blocks.get(pos).index();
        slab.is_linked(index, pos).then_some(index)
    }

    /// Takes the element at the head of list `s` (a working copy of a slot,
    /// with `s.count > 0`), releasing blocks it has emptied and prefetching
    /// the slab entries ahead. Returns the element and where it was.
    #[inline(always)]
    pub(super) fn pop_front<T>(&mut self, s: &mut Slot, slab: &Slab<T>) -> (u32, Elem) {
        self.settle_head(s);
        self.prefetch_ahead(slab, s, s.head, s.head_pos);
        let pos = Blocks::pos(s.head, s.head_pos);
        s.head_pos += 1;
        s.count -= 1;
        (pos, self.blocks.get(pos))
    }

    /// Releases the head blocks list `s` (with `s.count > 0`) has read past,
    /// so that `(head, head_pos)` names its first element.
    #[inline(always)]
    pub(super) fn settle_head(&mut self, s: &mut Slot) {
        debug_assert!(s.count > 0);
        loop {
            let limit = if s.head == s.tail { s.tail_len } else { BLOCK };
            if s.head_pos < limit {
                return;
            }
            let next = self.blocks.next(s.head);
            debug_assert_ne!(next, NIL, "elements counted past the tail");
            self.blocks.release(s.head);
            s.head = next;
            s.head_pos = 0;
        }
    }

    /// Frees a list's blocks.
    fn release_list(&mut self, id: u32) {
        self.touch(id);
        let s = std::mem::replace(self.list_mut(id), Slot::EMPTY);
        self.blocks.release_chain(s.head);
    }

    /// Frees all blocks of a slot (and its sub-lists) and marks it empty.
    pub(super) fn release_slot(&mut self, id: u32) {
        let (level, digit) = (id / SLOTS, id % SLOTS);
        self.release_list(id);
        if level >= FIRST_SPLIT_LEVEL {
            let a = (level - FIRST_SPLIT_LEVEL) as usize;
            if self.splits[a].digit == digit {
                for e in 0..SLOTS {
                    self.release_list(sub_id(level, e));
                }
                self.splits[a] = Split::IDLE;
            }
        }
        self.occupied[level as usize] &= !(1 << digit);
    }
}
