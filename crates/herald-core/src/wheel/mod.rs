//! The hierarchical timing wheel (Varghese & Lauck, SOSP 1987).
//!
//! Seven levels of 64 slots. Level `n` slots span `64^n` ms, so a level
//! covers `64^(n+1)` ms and the whole wheel covers one aligned *epoch* of
//! 2⁴² ms (139 years; the current one, counting from the Unix epoch, ends in
//! May 2109).
//! Everything is relative to `elapsed`, the wheel's notion of now, which only
//! moves forward and never past the `now` given to the last poll. The wheel
//! stores `(slab index, offset)` elements in FIFO lists of blocks; the values
//! stay in the [`Slab`](crate::slab::Slab), whose entries link back to their
//! elements.
//!
//! One concept per file:
//!
//! | file | what |
//! |---|---|
//! | `level.rs` | the geometry: levels, digits, slot ids, where a deadline goes |
//! | `list.rs` | a slot's FIFO list of blocks: append, pop, release |
//! | `blocks.rs` | the block pool behind the lists |
//! | `place.rs` | inserting: placement into a level, or a split slot's sub-list |
//! | `cascade.rs` | polling: firing a level-0 slot, cascading a higher one |
//! | `split.rs` | pre-splitting big slots so that their cascade is a splice |
//! | `sweep.rs` | lazy cancellation: garbage, compaction and the incremental sweep |
//! | `front.rs` | the exact earliest deadline (`next_deadline`) |
//!
//! The `Scheduler` (`scheduler.rs`) drives it: the due and overflow tiers
//! and the poll loop live there.

mod blocks;
mod cascade;
mod front;
mod level;
mod list;
mod place;
mod split;
mod sweep;

pub(crate) use blocks::INDEX_BITS;
use blocks::{BLOCK, Blocks};
use front::Front;
use level::{EPOCH_BITS, LEVELS, NUM_LISTS, NUM_SLOTS, NUM_SUBS, SPLIT_AREAS};
use list::Slot;
use split::Split;
use sweep::Sweep;

/// Garbage allowed beyond the number of live elements before a sweep.
pub(crate) const SWEEP_SLACK: usize = 4_096;
/// Elements the garbage sweep examines per `refresh` while it runs.
pub(crate) const SWEEP_STEP: u32 = 256;
/// Slots with at least this many elements are pre-split.
pub(crate) const SPLIT_MIN: u32 = 2_048;
/// Elements moved into sub-lists per poll.
pub(crate) const SPLIT_BUDGET: usize = 4_096;

/// The wheel. It stores only `(slab index, offset)` pairs; values stay in the
/// [`Slab`](crate::slab::Slab), whose links it keeps pointing at element
/// positions.
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
