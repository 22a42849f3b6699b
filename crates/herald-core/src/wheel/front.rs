//! The exact earliest deadline, for `next_deadline`.
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

use super::Wheel;
use super::blocks::{Blocks, NIL};
use super::level::{FIRST_SPLIT_LEVEL, LEVELS, slot_id, slot_start};
use super::split::{Split, SplitFront};
use crate::slab::Slab;

/// The next slot to process: `(level, digit, tick the slot starts at)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NextSlot {
    pub(crate) level: u32,
    pub(crate) digit: u32,
    pub(crate) start: u64,
}

/// The earliest live element: its deadline and slab index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Front {
    pub(super) when: u64,
    pub(super) index: u32,
}

impl Wheel {
    /// Finds the earliest live element, dropping garbage in front of it.
    pub(super) fn recompute_front<T>(&mut self, slab: &mut Slab<T>) {
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
            match self.split_front(n, slab) {
                SplitFront::Found(front) => break Some(front),
                SplitFront::Released => continue,
                SplitFront::NotSplit => {}
            }
            let s = self.slots[id as usize];
            if let Some(index) = self.live_at(s.min_pos, slab) {
                break Some(Front {
                    when: n.start + s.min_offset,
                    index,
                });
            }
            // The minimum is gone. A big slot is split now, in one pass, so
            // that this and every later rescan only reads its first non-empty
            // sub-list (cancelling a big slot's entries in deadline order
            // would otherwise rescan the whole slot each time).
            if n.level >= FIRST_SPLIT_LEVEL && s.total() >= self.split_min.max(1) {
                let a = (n.level - FIRST_SPLIT_LEVEL) as usize;
                let area = self.splits[a];
                if area.digit == NIL || area.digit == n.digit {
                    if area.digit == NIL {
                        self.splits[a] = Split {
                            digit: n.digit,
                            done: false,
                        };
                    }
                    let mut unbounded = usize::MAX;
                    self.split_level(n.level, &mut unbounded, slab);
                    continue;
                }
            }
            self.compact(id, slab);
            // Either the slot is gone or its minimum is now live: loop.
        };
        // Whatever ran above (a split, a release) is reflected in `front`.
        self.front_dirty = false;
    }

    /// Drops garbage at the head of level-0 slot `id` and returns the first
    /// live element's index; releases the slot if it held only garbage.
    fn first_live<T>(&mut self, id: u32, slab: &Slab<T>) -> Option<u32> {
        self.touch(id);
        let mut s = self.slots[id as usize];
        let mut found = None;
        while s.count > 0 {
            self.settle_head(&mut s);
            found = self.live_at(Blocks::pos(s.head, s.head_pos), slab);
            if found.is_some() {
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
}
