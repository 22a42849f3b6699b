//! The hierarchical timing wheel (Varghese & Lauck, SOSP 1987).
//!
//! Seven levels of 64 slots. Level `n` slots span `64^n` ms, so a level
//! covers `64^(n+1)` ms and the whole wheel covers one aligned *epoch* of
//! 2⁴² ms (139 years; the current one, counting from the Unix epoch, ends in
//! May 2109).
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

pub(crate) use blocks::INDEX_BITS;
use blocks::{BLOCK, Blocks, Elem, NIL};

use crate::slab::Slab;

/// Bits per level.
const BITS: u32 = 6;
/// Slots per level.
const SLOTS: u32 = 1 << BITS;
/// Levels in the wheel.
pub(crate) const LEVELS: u32 = 7;
/// Bits covered by the whole wheel: deadlines in another 2^EPOCH_BITS ms
/// epoch than `elapsed` go to the overflow tier.
pub(crate) const EPOCH_BITS: u32 = BITS * LEVELS;
const NUM_SLOTS: usize = (SLOTS * LEVELS) as usize;
/// The lowest level whose slots are pre-split (level-1 slots hold 64 ms:
/// small enough to cascade at once).
const FIRST_SPLIT_LEVEL: u32 = 2;
const SPLIT_AREAS: usize = (LEVELS - FIRST_SPLIT_LEVEL) as usize;
/// Slot ids of sub-lists start after the wheel's own slots.
const SUB_BASE: u32 = NUM_SLOTS as u32;
const NUM_SUBS: usize = SPLIT_AREAS * SLOTS as usize;
const NUM_LISTS: usize = NUM_SLOTS + NUM_SUBS;

/// How many elements ahead slot walks prefetch slab entries.
const AHEAD: u32 = 8;
/// Garbage allowed beyond the number of live elements before a sweep.
pub(crate) const SWEEP_SLACK: usize = 4_096;
/// Elements the garbage sweep examines per `refresh` while it runs.
pub(crate) const SWEEP_STEP: u32 = 256;
/// Slots with at least this many elements are pre-split.
pub(crate) const SPLIT_MIN: u32 = 2_048;
/// Elements moved into sub-lists per poll.
pub(crate) const SPLIT_BUDGET: usize = 4_096;

/// The offset bits that matter at `level` (level 0 has none).
#[inline]
const fn mask(level: u32) -> u64 {
    (1_u64 << (BITS * level)) - 1
}

/// A FIFO list of elements in blocks: a wheel slot or a sub-list.
#[derive(Clone, Copy, Debug)]
struct Slot {
    head: u32,
    tail: u32,
    /// Read position in the head block.
    head_pos: u32,
    /// Elements written into the tail block.
    tail_len: u32,
    /// Elements in this list, live or garbage.
    count: u32,
    /// Elements of this slot already moved into its split area's sub-lists.
    in_subs: u32,
    /// Smallest offset (masked to the list's level) among the slot's
    /// elements since the last rescan, sub-lists included...
    min_offset: u64,
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
        in_subs: 0,
        min_offset: 0,
        min_pos: NIL,
    };

    #[inline]
    const fn total(&self) -> u32 {
        self.count + self.in_subs
    }

    /// Notes a new element for the minimum; `was_empty` if it is the first.
    #[inline]
    fn note_min(&mut self, was_empty: bool, key: u64, pos: u32) {
        if was_empty || key < self.min_offset {
            self.min_offset = key;
            self.min_pos = pos;
        }
    }

    /// Detaches the list's (now element-free) blocks and returns the chain's
    /// head for release; counts and minimum are left to the caller.
    #[inline]
    fn take_chain(&mut self) -> u32 {
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
fn push_into(blocks: &mut Blocks, s: &mut Slot, ident: u32, elem: Elem) -> u32 {
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

/// Pre-splitting of one slot of a level into 64 sub-lists by the next digit.
#[derive(Clone, Copy, Debug)]
struct Split {
    /// The slot being split, or `NIL`.
    digit: u32,
    /// Whether the slot's own list has been emptied into the sub-lists (new
    /// elements then go straight to a sub-list).
    done: bool,
}

impl Split {
    const IDLE: Self = Self {
        digit: NIL,
        done: false,
    };
}

/// What [`Wheel::split_front`] found.
enum SplitFront {
    /// The slot's earliest live element.
    Found(Front),
    /// The slot held only garbage and has been released.
    Released,
    /// The slot is not fully split; use its own minimum.
    NotSplit,
}

/// An in-progress compaction of one list by the garbage sweep: live
/// elements from the read position `(rb, ri)` on are copied down to the
/// write position `(wb, wi)`. Interrupting it at any step leaves the list
/// valid: an element's old copy is garbage once its entry links to the new
/// position, so the list's counts stay exact throughout.
#[derive(Clone, Copy, Debug)]
struct Sweep {
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
    subs: Box<[Slot; NUM_SUBS]>,
    splits: [Split; SPLIT_AREAS],
    blocks: Blocks,
    /// Blocks record the *identity* of the list owning them, not the list
    /// id, so that a splice can hand a whole chain to another list in O(1)
    /// by swapping identities. `ident[list]` and `owner[ident]` are inverse
    /// permutations.
    ident: Box<[u32; NUM_LISTS]>,
    owner: Box<[u32; NUM_LISTS]>,
    /// Elements in all lists, live or garbage.
    count: usize,
    /// Garbage elements (their entries were cancelled or moved).
    garbage: usize,
    /// The exact earliest live element, valid unless `front_dirty`.
    front: Option<Front>,
    front_dirty: bool,
    /// Tuning knobs ([`SWEEP_SLACK`], [`SPLIT_MIN`], [`SPLIT_BUDGET`]),
    /// lowered by model tests to exercise every path with few entries.
    sweep_slack: usize,
    split_min: u32,
    split_budget: usize,
    sweep_step: u32,
    /// The garbage sweep in progress, if any, and where the next one starts.
    sweep: Option<Sweep>,
    sweep_next: u32,
}

#[inline]
const fn slot_id(level: u32, digit: u32) -> u32 {
    level * SLOTS + digit
}

#[inline]
const fn sub_id(level: u32, digit: u32) -> u32 {
    SUB_BASE + (level - FIRST_SPLIT_LEVEL) * SLOTS + digit
}

/// The level a deadline `when >= elapsed` belongs to (may be >= LEVELS).
#[inline]
pub(crate) const fn level_for(elapsed: u64, when: u64) -> u32 {
    let masked = (elapsed ^ when) | (SLOTS as u64 - 1);
    (63 - masked.leading_zeros()) / BITS
}

/// The digit of `when` (a tick or an offset) at `level`: its slot there.
#[inline]
const fn digit_of(when: u64, level: u32) -> u32 {
    ((when >> (BITS * level)) & (SLOTS as u64 - 1)) as u32
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
            subs: Box::new([Slot::EMPTY; NUM_SUBS]),
            splits: [Split::IDLE; SPLIT_AREAS],
            blocks: Blocks::new(),
            ident: Box::new(std::array::from_fn(|i| i as u32)),
            owner: Box::new(std::array::from_fn(|i| i as u32)),
            count: 0,
            garbage: 0,
            front: None,
            front_dirty: false,
            sweep_slack: SWEEP_SLACK,
            split_min: SPLIT_MIN,
            split_budget: SPLIT_BUDGET,
            sweep_step: SWEEP_STEP,
            sweep: None,
            sweep_next: 0,
        }
    }

    /// Sets the tuning knobs (model tests only).
    pub(crate) fn set_knobs(
        &mut self,
        sweep_slack: usize,
        split_min: u32,
        split_budget: usize,
        sweep_step: u32,
    ) {
        self.sweep_slack = sweep_slack;
        self.split_min = split_min;
        self.split_budget = split_budget;
        self.sweep_step = sweep_step.max(1);
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
    /// allocating, allowing for garbage and partially filled blocks.
    pub(crate) fn reserve(&mut self, pending: usize) {
        let elems = pending
            .saturating_mul(2)
            .saturating_add(self.sweep_slack + 1);
        let blocks = elems / BLOCK as usize + 2 * (NUM_SLOTS + NUM_SUBS);
        let in_use = self.count / BLOCK as usize;
        self.blocks.reserve_free(blocks.saturating_sub(in_use));
    }

    #[inline]
    fn list(&self, id: u32) -> &Slot {
        if id < SUB_BASE {
            &self.slots[id as usize]
        } else {
            &self.subs[(id - SUB_BASE) as usize]
        }
    }

    #[inline]
    fn list_mut(&mut self, id: u32) -> &mut Slot {
        if id < SUB_BASE {
            &mut self.slots[id as usize]
        } else {
            &mut self.subs[(id - SUB_BASE) as usize]
        }
    }

    /// Appends to list `id` and returns the position; maintains only the
    /// list's blocks and `count` (callers keep minimums and totals).
    #[inline]
    fn push(&mut self, id: u32, elem: Elem) -> u32 {
        let ident = self.ident[id as usize];
        let s = if id < SUB_BASE {
            &mut self.slots[id as usize]
        } else {
            &mut self.subs[(id - SUB_BASE) as usize]
        };
        push_into(&mut self.blocks, s, ident, elem)
    }

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
    fn append(&mut self, level: u32, digit: u32, elem: Elem) -> u32 {
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

    /// Prefetches the slab entry of the element `AHEAD` places after
    /// position `(block, i)` of list `s`, following the block chain.
    #[inline]
    fn prefetch_ahead<T>(&self, slab: &Slab<T>, s: &Slot, block: u32, i: u32) {
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
    fn live_at<T>(&self, pos: u32, slab: &Slab<T>) -> Option<u32> {
        if pos == NIL {
            return None;
        }
        let index = self.blocks.get(pos).index();
        slab.is_linked(index, pos).then_some(index)
    }

    /// Abandons a sweep of list `id` (it is about to be consumed or moved).
    #[inline]
    fn touch(&mut self, id: u32) {
        if self.sweep.is_some_and(|c| c.list == id) {
            self.sweep = None;
        }
    }

    /// [`Self::touch`] for slot `id` and, if it is split, its sub-lists.
    #[inline]
    fn touch_slot(&mut self, id: u32) {
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

    /// Takes the element at the head of list `s` (a working copy of a slot,
    /// with `s.count > 0`), releasing blocks it has emptied and prefetching
    /// the slab entries ahead. Returns the element and where it was.
    #[inline(always)]
    fn pop_front<T>(&mut self, s: &mut Slot, slab: &Slab<T>) -> (u32, Elem) {
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
    fn settle_head(&mut self, s: &mut Slot) {
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
    fn release_slot(&mut self, id: u32) {
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

    /// Rewrites list `id` without garbage, preserving order. Recomputes the
    /// list's own minimum (offsets masked to `own_level`) and feeds every
    /// kept element to `parent_min` (masked to `parent_level`). Updates the
    /// counts and returns how many elements were dropped.
    fn compact_list<T>(
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
    fn compact<T>(&mut self, id: u32, slab: &mut Slab<T>) {
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

    /// Finds the earliest live element, dropping garbage in front of it.
    fn recompute_front<T>(&mut self, slab: &mut Slab<T>) {
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

    /// The earliest live element of slot `n` if it is fully split: the
    /// minimum of its first non-empty sub-list (sub-lists are ordered by
    /// the next digit), so at most one sub-list (1/64 of the slot) is
    /// rescanned.
    fn split_front<T>(&mut self, n: NextSlot, slab: &mut Slab<T>) -> SplitFront {
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

    fn split_level<T>(&mut self, level: u32, budget: &mut usize, slab: &mut Slab<T>) {
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
        self.subs.fill(Slot::EMPTY);
        self.splits = [Split::IDLE; SPLIT_AREAS];
        self.blocks.clear();
        self.count = 0;
        self.garbage = 0;
        self.front = None;
        self.front_dirty = false;
        self.sweep = None;
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
        assert_eq!(level_for(0, (1 << 42) - 1), 6);
        assert_eq!(level_for(0, 1 << 42), 7);
        assert_eq!(level_for(100, 127), 0);
        assert_eq!(level_for(100, 128), 1);
        assert_eq!(slot_start(100, 0, 40), 104);
        assert_eq!(slot_start(100, 1, 3), 192);
        assert_eq!(slot_start(5000, 2, 1), 4096);
    }
}
