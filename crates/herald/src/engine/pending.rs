//! `Pending`: the runs waiting in the wheel, one per message, found by id.
//!
//! All the engine keeps in memory for a scheduled message: its wheel entry
//! (the id's 16 bytes: a 24-byte slab entry and an 8-byte wheel element;
//! the run's due time is the entry's deadline) and one slot of the
//! [`IdIndex`] (8 bytes at 2/5 to 4/5 load). Channel, headers and body stay
//! in the store until the run fires. About 42 to 53 bytes per pending
//! message (`docs/benchmarks.md`, "Memory per pending message").
//!
//! A run that fires later than it is due (a claim the store refused, put
//! back for a retry) keeps its due time in a side map, `late`: rare, and
//! emptied as those runs fire.

use std::collections::HashMap;

use herald_core::{Key, Scheduler, Tick};

use super::id_index::IdIndex;
use super::shared::Run;
use crate::MessageId;

/// A wheel entry: a message id without `MessageId`'s 16-byte alignment
/// (16 bytes; a [`Run`] is 32); the run's due time is the entry's deadline
/// (or in `late`).
#[derive(Clone, Copy, Debug)]
struct Entry([u8; 16]);

impl Entry {
    fn id(&self) -> MessageId {
        MessageId::from_bytes(self.0)
    }
}

/// The wheel and its id index (see the module docs).
///
/// Invariant: the index holds exactly the wheel's entries, each under its
/// entry's id, so a message has at most one entry.
#[derive(Debug)]
pub(crate) struct Pending {
    wheel: Scheduler<Entry>,
    index: IdIndex,
    /// The due time of each pending run that fires at another time.
    late: HashMap<MessageId, Tick>,
    /// What `poll_expired` took from the wheel (kept for its capacity).
    expired: Vec<(Key, Tick, Entry)>,
}

impl Pending {
    /// Nothing pending; the wheel's clock starts at `now`.
    pub(crate) fn new(now: Tick) -> Self {
        Self {
            wheel: Scheduler::starting_at(now),
            index: IdIndex::new(),
            late: HashMap::new(),
            expired: Vec::new(),
        }
    }

    /// How many runs are pending.
    pub(crate) fn len(&self) -> usize {
        debug_assert_eq!(self.wheel.len(), self.index.len());
        self.wheel.len()
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&self) -> Option<Tick> {
        self.wheel.next_deadline()
    }

    /// The bytes of the id index.
    pub(crate) fn index_bytes(&self) -> usize {
        self.index.heap_bytes()
    }

    /// The bytes held for the pending runs: the index, the wheel's slab (a
    /// 24-byte entry per slot of its capacity) and one 8-byte wheel element
    /// per run (an estimate: the wheel's element blocks and its garbage
    /// slack after cancels are not counted).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.index_bytes()
            + self.wheel.capacity() * (size_of::<Entry>() + 2 * size_of::<u32>())
            + self.wheel.len() * size_of::<u64>()
    }

    /// The wheel key of `id`'s run, if one is pending.
    fn key_of(&self, id: MessageId) -> Option<Key> {
        self.key_tagged(id, self.index.tag(id))
    }

    /// [`key_of`](Self::key_of) with `id`'s index tag already computed.
    fn key_tagged(&self, id: MessageId, tag: u64) -> Option<Key> {
        let wheel = &self.wheel;
        let index = self
            .index
            .get_tagged(id, tag, |i| wheel.entry_at(i).map(|(_, e)| e.id()))?;
        wheel.entry_at(index).map(|(key, _)| key)
    }

    /// Schedules `id`'s run due at `due` to fire at `at`, replacing its
    /// pending run if it has one (a replaced run counts as newly inserted
    /// for the order of runs due in the same millisecond).
    pub(crate) fn insert(&mut self, id: MessageId, due: Tick, at: Tick) {
        if at == due {
            if !self.late.is_empty() {
                self.late.remove(&id);
            }
        } else {
            self.late.insert(id, due);
        }
        // Hashed once for the look-up and the insert.
        let tag = self.index.tag(id);
        if let Some(key) = self.key_tagged(id, tag) {
            // Same slab slot, same key: the index stays as it is.
            self.wheel.reschedule(key, at);
            return;
        }
        let key = self.wheel.insert_at(at, Entry(id.to_bytes()));
        self.index.insert_tagged(tag, key.index());
    }

    /// Takes `id`'s pending run out; whether it had one.
    pub(crate) fn remove(&mut self, id: MessageId) -> bool {
        let Some(key) = self.key_of(id) else {
            return false;
        };
        self.wheel.cancel(key);
        let removed = self.index.remove(id, key.index());
        debug_assert!(removed, "a wheel entry missing from the index");
        if !self.late.is_empty() {
            self.late.remove(&id);
        }
        true
    }

    /// Takes at most `max` runs due at `now` out, into `out` (in firing
    /// order); how many. Fewer than `max`: nothing more is due at `now`.
    pub(crate) fn poll_expired(&mut self, now: Tick, out: &mut Vec<Run>, max: usize) -> usize {
        self.expired.clear();
        let n = self
            .wheel
            .poll_expired_with_deadline(now, &mut self.expired, max);
        for (key, at, entry) in self.expired.drain(..) {
            let id = entry.id();
            let removed = self.index.remove(id, key.index());
            debug_assert!(removed, "a wheel entry missing from the index");
            let due = if self.late.is_empty() {
                at
            } else {
                self.late.remove(&id).unwrap_or(at)
            };
            out.push(Run { id, due });
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_entry_is_16_bytes_not_32() {
        assert_eq!(size_of::<Entry>(), 16);
        assert_eq!(size_of::<Run>(), 32, "what the wheel held before");
    }

    /// What the model test does.
    #[derive(Clone, Debug)]
    enum Op {
        /// Schedule message `n` due at `due`, firing at `due + delay`.
        Insert { n: u8, due: u16, delay: u8 },
        /// Take message `n` out.
        Remove(u8),
        /// Poll at `now`, at most `max`.
        Poll { now: u16, max: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..40u8, any::<u16>(), 0..3u8).prop_map(|(n, due, delay)| Op::Insert { n, due, delay }),
            2 => (0..40u8).prop_map(Op::Remove),
            2 => (any::<u16>(), 1..20u8).prop_map(|(now, max)| Op::Poll { now, max }),
        ]
    }

    fn mid(n: u8) -> MessageId {
        MessageId::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | u128::from(n))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Against a model (`BTreeMap` of (fire at, insertion sequence) →
        /// message, and message → (due, fire at)): one run per message, a
        /// re-insert replaces, a remove answers whether there was one,
        /// polls fire exactly what is due, in (time, insertion) order, with
        /// the stored `due`, nothing early, at most `max`.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec(op(), 1..300)) {
            let mut p = Pending::new(Tick::ZERO);
            let mut queue: BTreeMap<(u64, u64), u8> = BTreeMap::new();
            let mut runs: BTreeMap<u8, (u64, u64, u64)> = BTreeMap::new(); // n -> (due, at, seq)
            let mut seq = 0u64;
            let mut polled = 0u64;
            for op in ops {
                match op {
                    Op::Insert { n, due, delay } => {
                        let (due, at) = (u64::from(due), u64::from(due) + u64::from(delay));
                        if let Some((_, old_at, old_seq)) = runs.remove(&n) {
                            queue.remove(&(old_at, old_seq));
                        }
                        // A deadline before the last poll fires at the next one.
                        queue.insert((at, seq), n);
                        runs.insert(n, (due, at, seq));
                        seq += 1;
                        p.insert(mid(n), Tick::from_millis(due), Tick::from_millis(at));
                    }
                    Op::Remove(n) => {
                        let had = runs.remove(&n).map(|(_, at, s)| queue.remove(&(at, s)));
                        prop_assert_eq!(p.remove(mid(n)), had.is_some());
                    }
                    Op::Poll { now, max } => {
                        let now = u64::from(now).max(polled);
                        polled = now;
                        let mut out = Vec::new();
                        let n = p.poll_expired(Tick::from_millis(now), &mut out, usize::from(max));
                        prop_assert_eq!(n, out.len());
                        // In (fire at, insertion) order, at most `max`.
                        let due_now: Vec<_> = queue
                            .iter()
                            .filter(|((at, _), _)| *at <= now)
                            .map(|(k, v)| (*k, *v))
                            .collect();
                        let want: Vec<MessageId> = due_now
                            .iter()
                            .take(usize::from(max))
                            .map(|(_, n)| mid(*n))
                            .collect();
                        let got: Vec<MessageId> = out.iter().map(|r| r.id).collect();
                        prop_assert_eq!(got, want, "what fires, in order");
                        for run in &out {
                            let n = (run.id.as_u128() & 0xFF) as u8;
                            let (due, at, s) = runs.remove(&n).expect("fired a run that is not pending");
                            prop_assert!(at <= now, "fired early");
                            prop_assert_eq!(run.due.as_millis(), due);
                            queue.remove(&(at, s));
                        }
                    }
                }
                prop_assert_eq!(p.len(), runs.len());
                for n in 0..40u8 {
                    prop_assert_eq!(p.key_of(mid(n)).is_some(), runs.contains_key(&n));
                }
            }
        }
    }

    #[test]
    fn the_index_grows_by_doubling_and_empties_as_runs_fire() {
        let mut p = Pending::new(Tick::ZERO);
        let n = 100_000u64;
        for i in 0..n {
            p.insert(mid(0), Tick::ZERO, Tick::from_millis(i)); // replaced each time
            let at = Tick::from_millis(3_600_000 + i % 60_000);
            p.insert(MessageId::from_u128(u128::from(i) << 64 | 1), at, at);
        }
        assert_eq!(p.len() as u64, n + 1);
        // 100,001 / 0.8 -> 2^17 slots of 8 bytes.
        assert_eq!(p.index_bytes(), 8 << 17);
        let per_run = p.heap_bytes() as f64 / (n + 1) as f64;
        assert!(
            (32.0..=52.0).contains(&per_run),
            "{per_run} B per pending run"
        );
        let mut out = Vec::new();
        while p.poll_expired(Tick::from_millis(4_000_000), &mut out, 4096) > 0 {}
        assert_eq!(out.len() as u64, n + 1);
        assert_eq!(out[0].id, mid(0), "the earliest");
        assert_eq!(out[0].due, Tick::ZERO, "fired late, under its due");
        assert!(out[1..].iter().all(|r| r.due.as_millis() >= 3_600_000));
        assert!(p.late.is_empty(), "the late run's due is forgotten");
        assert_eq!(p.len(), 0);
        assert_eq!(p.index.len(), 0);
    }
}
