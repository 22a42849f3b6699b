//! `IdIndex`: which wheel slot holds each pending message, 8 bytes a slot.
//!
//! The engine must find a pending message's wheel entry by id (a cancel, a
//! reschedule) but the wheel's slab already holds the id. So the index
//! keeps no id: each slot is one `u64`, the upper 32 bits of the id's hash
//! and the 32-bit slab index plus one (0 is an empty slot). A lookup probes
//! for the hash bits and checks the id in the slab (a caller-supplied
//! `id_at`), almost always once; removing and growing need only the slot,
//! never the slab (so an entry that just left the slab can still be
//! removed, and growing reads nothing but the table).
//!
//! # Implementation
//!
//! Open addressing with linear probing (Knuth, TAOCP vol. 3, 6.4,
//! algorithm L) in a power-of-two table, the home slot taken from the
//! stored hash bits; deletion shifts the rest of the cluster back
//! (Knuth's algorithm R), so there are no tombstones. The table doubles when
//! more than 4/5 full: 8 B / load = 10 to 20 B per pending message (std's
//! `HashMap<MessageId, Key>` took 32 B a bucket at 7/16 to 7/8 load: 37 to
//! 75 B). Hashes are keyed per index (`RandomState`), so no one can choose
//! ids that collide.
//!
//! # Growing a few slots at a time
//!
//! Doubling moves every entry; at 50M pending messages that is a 512 MB
//! table read and a 1 GB one written in one go, under the engine's lock
//! (every publish, cancel and delivery waiting for it). So the old table
//! is kept after a doubling and its entries move over a few at a time:
//! each insert moves at least [`MOVE_PER_INSERT`] positions of the old
//! table, whole clusters at a time (a cluster, delimited by empty slots,
//! holds every entry whose probe passes through it, so moving all of it
//! leaves the old table's other lookups intact). Lookups and removals look
//! in the new table, then the old. The move is over long before the next
//! doubling: that comes after at least 4/5 of the old table's size in
//! inserts, which move more than its size.

use std::hash::{BuildHasher, RandomState};

use crate::MessageId;

/// An empty slot.
const EMPTY: u64 = 0;
/// The smallest table allocated.
const MIN_SLOTS: usize = 16;
/// Positions of the old table moved (looked at) per insert while growing.
const MOVE_PER_INSERT: usize = 4;

/// Message id → slab index (see the module docs).
#[derive(Debug)]
pub(crate) struct IdIndex {
    /// A power of two in length, or empty.
    slots: Box<[u64]>,
    /// The table before the last doubling while its entries move to
    /// `slots`; empty otherwise.
    old: Box<[u64]>,
    /// The next position of `old` to move: an empty slot or the first of
    /// a cluster (the position before it is empty or moved).
    cursor: usize,
    /// Positions of `old` not yet moved.
    left: usize,
    /// Entries in both tables.
    len: usize,
    hasher: RandomState,
    /// Entries moved by the last insert (for the tests' bound).
    #[cfg(test)]
    moved: usize,
}

impl IdIndex {
    /// An empty index; allocates nothing until the first insert.
    pub(crate) fn new() -> Self {
        Self {
            slots: Box::default(),
            old: Box::default(),
            cursor: 0,
            left: 0,
            len: 0,
            hasher: RandomState::new(),
            #[cfg(test)]
            moved: 0,
        }
    }

    /// How many ids are indexed.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes the table holds.
    pub(crate) fn heap_bytes(&self) -> usize {
        (self.slots.len() + self.old.len()) * size_of::<u64>()
    }

    /// The slab index stored for `id`, if any; `id_at` names the id the
    /// slab holds at an index (`None` if vacant). (The engine computes the
    /// tag once and uses [`get_tagged`](Self::get_tagged).)
    #[cfg(test)]
    pub(crate) fn get(
        &self,
        id: MessageId,
        id_at: impl Fn(u32) -> Option<MessageId>,
    ) -> Option<u32> {
        self.get_tagged(id, self.tag(id), id_at)
    }

    /// [`get`](Self::get) with `id`'s [`tag`](Self::tag) already computed.
    pub(crate) fn get_tagged(
        &self,
        id: MessageId,
        tag: u64,
        id_at: impl Fn(u32) -> Option<MessageId>,
    ) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let is = |slot| id_at(index_of(slot)) == Some(id);
        find(&self.slots, tag, &is)
            .or_else(|| find(&self.old, tag, &is))
            .map(|(_, slot)| index_of(slot))
    }

    /// Indexes `id` at slab index `index`. The caller makes sure `id` is
    /// not indexed yet (one entry per id).
    ///
    /// # Panics
    ///
    /// If `index` is `u32::MAX` (the slab never issues it).
    #[cfg(test)]
    pub(crate) fn insert(&mut self, id: MessageId, index: u32) {
        self.insert_tagged(self.tag(id), index);
    }

    /// [`insert`](Self::insert) with the id's [`tag`](Self::tag) already
    /// computed.
    pub(crate) fn insert_tagged(&mut self, tag: u64, index: u32) {
        assert!(index < u32::MAX, "IdIndex: slab index out of range");
        #[cfg(test)]
        {
            self.moved = 0;
        }
        if (self.len + 1) * 5 > self.slots.len() * 4 {
            self.grow();
        }
        place(&mut self.slots, tag | (u64::from(index) + 1));
        self.len += 1;
        self.move_some(MOVE_PER_INSERT);
    }

    /// Removes the entry of `id` at slab index `index` (which need not be
    /// in the slab any more); whether there was one.
    pub(crate) fn remove(&mut self, id: MessageId, index: u32) -> bool {
        self.remove_tagged(self.tag(id), index)
    }

    fn remove_tagged(&mut self, tag: u64, index: u32) -> bool {
        if self.len == 0 {
            return false;
        }
        let want = tag | (u64::from(index) + 1);
        let removed = take(&mut self.slots, want) || take(&mut self.old, want);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// The hash bits kept in a slot: the upper 32 of the id's hash.
    pub(crate) fn tag(&self, id: MessageId) -> u64 {
        self.hasher.hash_one(id.as_u128()) & TAG_MASK
    }

    /// Doubles the table (or allocates the first); the entries of the one
    /// it replaces move over later ([`Self::move_some`]). A move still
    /// under way is finished first (it never is in practice: see the
    /// module docs).
    #[cold]
    fn grow(&mut self) {
        self.move_some(usize::MAX);
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        assert!(
            size <= 1 << 32,
            "IdIndex: more than 2^32 slots (the hash bits a slot keeps)"
        );
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; size].into_boxed_slice());
        // Start at an empty slot (there is one: a table is at most 4/5
        // full), so the move never begins inside a cluster.
        if let Some(start) = old.iter().position(|&s| s == EMPTY) {
            self.cursor = start;
            self.left = old.len();
            self.old = old;
        }
    }

    /// Moves whole clusters of the old table to the new one until at least
    /// `budget` positions were looked at or none is left (the old table is
    /// freed then).
    fn move_some(&mut self, budget: usize) {
        let mut looked = 0;
        while self.left > 0 && looked < budget {
            let mask = self.old.len() - 1;
            // The empty slot, or the whole cluster, at the cursor.
            loop {
                let slot = std::mem::replace(&mut self.old[self.cursor], EMPTY);
                self.cursor = (self.cursor + 1) & mask;
                self.left -= 1;
                looked += 1;
                if slot == EMPTY {
                    break;
                }
                place(&mut self.slots, slot);
                #[cfg(test)]
                {
                    self.moved += 1;
                }
                if self.left == 0 || self.old[self.cursor] == EMPTY {
                    break;
                }
            }
        }
        if self.left == 0 && !self.old.is_empty() {
            self.old = Box::default();
        }
    }
}

/// The position and slot of the first entry with hash bits `tag` that
/// `is` accepts in `table`, probing from its home.
fn find(table: &[u64], tag: u64, is: &impl Fn(u64) -> bool) -> Option<(usize, u64)> {
    if table.is_empty() {
        return None;
    }
    let mask = table.len() - 1;
    let mut at = home(tag, mask);
    loop {
        let slot = table[at];
        if slot == EMPTY {
            return None;
        }
        if slot & TAG_MASK == tag && is(slot) {
            return Some((at, slot));
        }
        at = (at + 1) & mask;
    }
}

/// Puts `slot` in the first empty slot of `table` from its home (there is
/// one: a table is never full).
fn place(table: &mut [u64], slot: u64) {
    let mask = table.len() - 1;
    let mut at = home(slot, mask);
    while table[at] != EMPTY {
        at = (at + 1) & mask;
    }
    table[at] = slot;
}

/// Removes `want` (a whole slot) from `table`; whether it was there. Every
/// later entry of its cluster whose home is not between the hole and
/// itself (cyclically) shifts back, so there are no tombstones.
fn take(table: &mut [u64], want: u64) -> bool {
    let Some((at, _)) = find(table, want & TAG_MASK, &|slot| slot == want) else {
        return false;
    };
    let mask = table.len() - 1;
    let mut hole = at;
    let mut next = at;
    loop {
        next = (next + 1) & mask;
        let slot = table[next];
        if slot == EMPTY {
            break;
        }
        let from_home = next.wrapping_sub(home(slot, mask)) & mask;
        let from_hole = next.wrapping_sub(hole) & mask;
        if from_home >= from_hole {
            table[hole] = slot;
            hole = next;
        }
    }
    table[hole] = EMPTY;
    true
}

/// The hash bits of a slot.
const TAG_MASK: u64 = 0xFFFF_FFFF_0000_0000;

/// The home of a slot (or tag) in a table of `mask + 1` slots: from the
/// stored hash bits, so growing needs no id.
fn home(slot: u64, mask: usize) -> usize {
    (slot >> 32) as usize & mask
}

/// The slab index a slot names.
fn index_of(slot: u64) -> u32 {
    ((slot & !TAG_MASK) - 1) as u32
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// What the model test does to an index and to a `HashMap` alike.
    #[derive(Clone, Debug)]
    enum Op {
        /// Index id `n` (if not indexed: one entry per id) at the next free
        /// slab index.
        Insert(u8),
        /// Remove id `n` by its slab index.
        Remove(u8),
        /// Remove id `n` under a slab index no id has.
        RemoveWrong(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u8>().prop_map(Op::Insert),
            2 => any::<u8>().prop_map(Op::Remove),
            1 => any::<u8>().prop_map(Op::RemoveWrong),
        ]
    }

    /// The id numbered `n`.
    fn id(n: u8) -> MessageId {
        MessageId::from_u128(u128::from(n) << 100 | u128::from(n))
    }

    /// A forced hash for id `n`: one of 3 (long colliding clusters).
    fn forced(n: u8) -> u64 {
        u64::from(n % 3) << 32
    }

    /// Runs `ops` on an index (with real hashes, or `colliding`: hashes
    /// forced into 3 values) and checks it against a `HashMap` after each.
    fn check(ops: &[Op], colliding: bool) {
        let mut index = IdIndex::new();
        let mut model: HashMap<MessageId, u32> = HashMap::new();
        // The "slab": index → id, `None` once removed.
        let mut slab: Vec<Option<MessageId>> = Vec::new();
        for op in ops {
            match *op {
                Op::Insert(n) => {
                    if model.contains_key(&id(n)) {
                        continue;
                    }
                    let at = slab.len() as u32;
                    slab.push(Some(id(n)));
                    if colliding {
                        index.insert_tagged(forced(n), at);
                    } else {
                        index.insert(id(n), at);
                    }
                    model.insert(id(n), at);
                }
                Op::Remove(n) => {
                    let Some(at) = model.remove(&id(n)) else {
                        continue;
                    };
                    // The slab forgets first, as at expiry.
                    slab[at as usize] = None;
                    let removed = if colliding {
                        index.remove_tagged(forced(n), at)
                    } else {
                        index.remove(id(n), at)
                    };
                    assert!(removed, "{n} was indexed at {at}");
                }
                Op::RemoveWrong(n) => {
                    // A slab index not issued yet: no id is there.
                    let wrong = slab.len() as u32;
                    let removed = if colliding {
                        index.remove_tagged(forced(n), wrong)
                    } else {
                        index.remove(id(n), wrong)
                    };
                    assert!(!removed, "{n} is not at {wrong}");
                }
            }
            // Every id, indexed or not, answers as the model does.
            let id_at = |i: u32| slab.get(i as usize).copied().flatten();
            for n in 0..=u8::MAX {
                let got = if colliding {
                    index.get_tagged(id(n), forced(n), id_at)
                } else {
                    index.get(id(n), id_at)
                };
                assert_eq!(got, model.get(&id(n)).copied(), "id {n} after {op:?}");
            }
            assert_eq!(index.len(), model.len());
            assert!(index.len() * 5 <= index.slots.len() * 4, "over 4/5 full");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Against a `HashMap`: inserts, removals (right and wrong slab
        /// index), lookups of every id, across growth.
        #[test]
        fn matches_a_hash_map(ops in proptest::collection::vec(op(), 1..400)) {
            check(&ops, false);
        }

        /// The same with every id's hash forced into one of 3 values: long
        /// clusters that wrap around the table, so removal's shifting and
        /// lookups past equal tags are exercised.
        #[test]
        fn matches_a_hash_map_when_hashes_collide(ops in proptest::collection::vec(op(), 1..200)) {
            check(&ops, true);
        }
    }

    /// No insert moves the whole table: at most a few clusters of the old
    /// one, and the old table is gone before the next doubling.
    #[test]
    fn growing_moves_a_few_entries_per_insert() {
        let mut index = IdIndex::new();
        let slab: Vec<MessageId> = (0..200_000u128)
            .map(|n| MessageId::from_u128(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            .collect();
        let mut most = 0;
        for (i, &id) in slab.iter().enumerate() {
            index.insert(id, i as u32);
            most = most.max(index.moved);
        }
        // A cluster at 4/5 load reaches a few hundred entries; a doubling
        // used to move all 104,858 in one insert.
        assert!(most <= 1_000, "an insert moved {most} entries");
        // The last doubling (to 2^18 slots at 104,858 entries) is over.
        assert!(index.old.is_empty());
        assert_eq!(index.heap_bytes(), (1 << 18) * 8);
        for (i, &id) in slab.iter().enumerate() {
            assert_eq!(
                index.get(id, |at| slab.get(at as usize).copied()),
                Some(i as u32)
            );
        }
    }

    #[test]
    fn grows_to_stay_at_most_four_fifths_full_and_costs_8_bytes_a_slot() {
        let mut index = IdIndex::new();
        assert_eq!(index.heap_bytes(), 0);
        let slab: Vec<MessageId> = (0..1000u128)
            .map(|n| MessageId::from_u128(n * 7919))
            .collect();
        for (i, &id) in slab.iter().enumerate() {
            index.insert(id, i as u32);
        }
        // 1000 / 0.8 = 1250 -> 2048 slots (and the 1024 before, while
        // their entries move).
        assert_eq!(index.slots.len(), 2048);
        assert_eq!(index.heap_bytes(), (2048 + index.old.len()) * 8);
        for (i, &id) in slab.iter().enumerate() {
            assert_eq!(
                index.get(id, |at| slab.get(at as usize).copied()),
                Some(i as u32)
            );
        }
    }
}
