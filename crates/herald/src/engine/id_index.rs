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

use std::hash::{BuildHasher, RandomState};

use crate::MessageId;

/// An empty slot.
const EMPTY: u64 = 0;
/// The smallest table allocated.
const MIN_SLOTS: usize = 16;

/// Message id → slab index (see the module docs).
#[derive(Debug)]
pub(crate) struct IdIndex {
    /// A power of two in length, or empty.
    slots: Box<[u64]>,
    len: usize,
    hasher: RandomState,
}

impl IdIndex {
    /// An empty index; allocates nothing until the first insert.
    pub(crate) fn new() -> Self {
        Self {
            slots: Box::default(),
            len: 0,
            hasher: RandomState::new(),
        }
    }

    /// How many ids are indexed.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes the table holds.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.len() * size_of::<u64>()
    }

    /// The slab index stored for `id`, if any; `id_at` names the id the
    /// slab holds at an index (`None` if vacant).
    pub(crate) fn get(
        &self,
        id: MessageId,
        id_at: impl Fn(u32) -> Option<MessageId>,
    ) -> Option<u32> {
        self.get_tagged(id, self.tag(id), id_at)
    }

    fn get_tagged(
        &self,
        id: MessageId,
        tag: u64,
        id_at: impl Fn(u32) -> Option<MessageId>,
    ) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let mask = self.mask();
        let mut at = home(tag, mask);
        loop {
            let slot = self.slots[at];
            if slot == EMPTY {
                return None;
            }
            if slot & TAG_MASK == tag && id_at(index_of(slot)) == Some(id) {
                return Some(index_of(slot));
            }
            at = (at + 1) & mask;
        }
    }

    /// Indexes `id` at slab index `index`. The caller makes sure `id` is
    /// not indexed yet (one entry per id).
    ///
    /// # Panics
    ///
    /// If `index` is `u32::MAX` (the slab never issues it).
    pub(crate) fn insert(&mut self, id: MessageId, index: u32) {
        self.insert_tagged(self.tag(id), index);
    }

    fn insert_tagged(&mut self, tag: u64, index: u32) {
        assert!(index < u32::MAX, "IdIndex: slab index out of range");
        if (self.len + 1) * 5 > self.slots.len() * 4 {
            self.grow();
        }
        self.place(tag | (u64::from(index) + 1));
        self.len += 1;
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
        let mask = self.mask();
        let mut at = home(want, mask);
        loop {
            match self.slots[at] {
                EMPTY => return false,
                slot if slot == want => break,
                _ => at = (at + 1) & mask,
            }
        }
        // Shift back every later entry of the cluster whose home is not
        // between the hole and itself (cyclically).
        let mut hole = at;
        let mut next = at;
        loop {
            next = (next + 1) & mask;
            let slot = self.slots[next];
            if slot == EMPTY {
                break;
            }
            let from_home = next.wrapping_sub(home(slot, mask)) & mask;
            let from_hole = next.wrapping_sub(hole) & mask;
            if from_home >= from_hole {
                self.slots[hole] = slot;
                hole = next;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        true
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The hash bits kept in a slot: the upper 32 of the id's hash.
    fn tag(&self, id: MessageId) -> u64 {
        self.hasher.hash_one(id.as_u128()) & TAG_MASK
    }

    /// Puts `slot` in the first empty slot from its home (there is one:
    /// the table is never full).
    fn place(&mut self, slot: u64) {
        let mask = self.mask();
        let mut at = home(slot, mask);
        while self.slots[at] != EMPTY {
            at = (at + 1) & mask;
        }
        self.slots[at] = slot;
    }

    /// Doubles the table (or allocates the first), moving every slot by its
    /// stored hash bits.
    #[cold]
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        assert!(
            size <= 1 << 32,
            "IdIndex: more than 2^32 slots (the hash bits a slot keeps)"
        );
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; size].into_boxed_slice());
        for slot in old.iter().copied().filter(|&s| s != EMPTY) {
            self.place(slot);
        }
    }
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
        // 1000 / 0.8 = 1250 -> 2048 slots.
        assert_eq!(index.heap_bytes(), 2048 * 8);
        for (i, &id) in slab.iter().enumerate() {
            assert_eq!(
                index.get(id, |at| slab.get(at as usize).copied()),
                Some(i as u32)
            );
        }
    }
}
