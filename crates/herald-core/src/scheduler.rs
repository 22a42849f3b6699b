//! [`Scheduler`]: the public face of the timing wheel.

use std::fmt;

use crate::{Key, Tick};

/// A queue of values, each due at a [`Tick`], that says what has expired.
///
/// # Usage
///
/// Insert values with a deadline, keep the returned [`Key`] if you may want to
/// [`cancel`](Self::cancel) or [`reschedule`](Self::reschedule), sleep until
/// [`next_deadline`](Self::next_deadline), then drain what is due with
/// [`poll_expired`](Self::poll_expired). The scheduler never reads a clock:
/// `now` is always an argument, so tests drive it with any sequence of ticks.
///
/// ```
/// use herald_core::{Scheduler, Tick};
///
/// let mut s = Scheduler::with_capacity(1024);
/// let k = s.insert_at(Tick::from_millis(5_000), 42_u64);
/// assert!(s.reschedule(k, Tick::from_millis(10)));
/// assert_eq!(s.next_deadline(), Some(Tick::from_millis(10)));
///
/// let mut due = Vec::new();
/// assert_eq!(s.poll_expired(Tick::from_millis(9), &mut due, 16), 0);
/// assert_eq!(s.poll_expired(Tick::from_millis(10), &mut due, 16), 1);
/// assert_eq!(due, [(k, 42)]);
/// assert_eq!(s.cancel(k), None); // expired keys are stale
/// ```
///
/// # Guarantees
///
/// * Nothing fires before its deadline, and an entry due at `t` fires in the
///   first poll with `now >= t` that has room for it (`max`), so lateness is
///   bounded by how often you poll: at most 1 ms given a poll every ms.
/// * Entries fire in `(deadline, insertion order)` order. Entries due in the
///   same millisecond fire first-in first-out; a reschedule counts as a new
///   insertion.
/// * Any `u64` deadline is accepted. A deadline at or before the last `now`
///   passed to `poll_expired` fires on the next poll, in order.
/// * [`next_deadline`](Self::next_deadline) is exact: the smallest pending
///   deadline, after every operation.
///
/// # Implementation
///
/// A hierarchical timing wheel (Varghese & Lauck, "Hashed and Hierarchical
/// Timing Wheels", SOSP 1987) of 6 levels × 64 slots at 1 ms resolution: level
/// `n` slots span 64ⁿ ms, so the wheel covers 2³⁶ ms (about 2.2 years) around
/// the current time. Deadlines past that go to an overflow priority queue and
/// move into the wheel when time reaches their 2³⁶ ms epoch. Entries live in a
/// chunked slab addressed by `u32` indices; each wheel slot is a FIFO list of
/// fixed-size blocks of `(index, offset)` pairs, so inserting and expiring are
/// sequential memory operations and nothing allocates per operation once
/// capacity is reserved. See `docs/design.md` for the slot math.
///
/// Memory: 16 bytes per slab entry for a `u64` payload plus 8 bytes per wheel
/// element, so about 24 bytes per pending timer, allocated in fixed-size
/// chunks (no `Vec` doubling spikes).
pub struct Scheduler<T> {
    _marker: std::marker::PhantomData<T>,
}

impl<T> Scheduler<T> {
    /// An empty scheduler. Allocates nothing until the first insert.
    pub fn new() -> Self {
        todo!()
    }

    /// An empty scheduler with room for `capacity` pending entries, so that
    /// up to that many can be pending without any further allocation.
    pub fn with_capacity(capacity: usize) -> Self {
        let _ = capacity;
        todo!()
    }

    /// Schedules `value` to expire at `deadline` and returns its key.
    ///
    /// A deadline in the past fires on the next [`poll_expired`](Self::poll_expired).
    ///
    /// # Panics
    ///
    /// If more than `u32::MAX - 16` entries would be pending at once.
    pub fn insert_at(&mut self, deadline: Tick, value: T) -> Key {
        let _ = (deadline, value);
        todo!()
    }

    /// Removes the entry for `key` and returns its value, or `None` if the key
    /// is stale (the entry already expired or was cancelled).
    pub fn cancel(&mut self, key: Key) -> Option<T> {
        let _ = key;
        todo!()
    }

    /// Moves the entry for `key` to a new deadline, keeping its key. Returns
    /// `false` (and changes nothing) if the key is stale. For ordering, a
    /// rescheduled entry counts as newly inserted.
    pub fn reschedule(&mut self, key: Key, deadline: Tick) -> bool {
        let _ = (key, deadline);
        todo!()
    }

    /// The deadline of the entry for `key`, or `None` if the key is stale.
    pub fn deadline(&self, key: Key) -> Option<Tick> {
        let _ = key;
        todo!()
    }

    /// A reference to the value for `key`, or `None` if the key is stale.
    pub fn get(&self, key: Key) -> Option<&T> {
        let _ = key;
        todo!()
    }

    /// A mutable reference to the value for `key`, or `None` if the key is stale.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let _ = key;
        todo!()
    }

    /// Whether `key` names a pending entry.
    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// The earliest pending deadline, or `None` when empty. Exact: an engine
    /// can sleep until exactly this tick.
    pub fn next_deadline(&self) -> Option<Tick> {
        todo!()
    }

    /// Moves up to `max` entries whose deadline is at or before `now` into
    /// `out`, in `(deadline, insertion order)` order, and returns how many it
    /// moved. If it returns less than `max`, nothing more is due at `now`.
    ///
    /// `now` may go backwards between calls; nothing is fired early either
    /// way, and time as the wheel sees it never moves backwards.
    pub fn poll_expired<E>(&mut self, now: Tick, out: &mut E, max: usize) -> usize
    where
        E: Extend<(Key, T)>,
    {
        let _ = (now, out, max);
        todo!()
    }

    /// Number of pending entries.
    pub fn len(&self) -> usize {
        todo!()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries can be pending before the next allocation.
    pub fn capacity(&self) -> usize {
        todo!()
    }

    /// Reserves room for at least `additional` more pending entries.
    pub fn reserve(&mut self, additional: usize) {
        let _ = additional;
        todo!()
    }

    /// Drops every pending entry (all keys become stale) but keeps the
    /// allocated capacity.
    pub fn clear(&mut self) {
        todo!()
    }

    /// Returns unused memory to the allocator, as far as the chunked layout
    /// allows: trailing chunks with no live entry are freed.
    pub fn shrink_to_fit(&mut self) {
        todo!()
    }
}

impl<T> Default for Scheduler<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Scheduler<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler").finish_non_exhaustive()
    }
}
