//! [`Scheduler`]: the public face of the timing wheel.

use std::cmp::Reverse;
use std::fmt;

use priority_queue::PriorityQueue;

use crate::slab::Slab;
use crate::wheel::Wheel;
use crate::{Key, Tick};

/// Link value of an entry waiting in the due tier.
const LINK_DUE: u32 = u32::MAX - 1;
/// Link value of an entry waiting in the overflow tier.
const LINK_OVERFLOW: u32 = u32::MAX - 2;

/// A tier outside the wheel: entries ordered by `(deadline, sequence)`, with
/// removal by slab index. Used for deadlines before the wheel's `elapsed`
/// (due now) and for deadlines in a later 2^42 ms epoch (overflow). Both are
/// rare, so a hashed priority queue's O(log n) is fine here.
type Tier = PriorityQueue<u32, Reverse<(u64, u64)>>;

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
/// Timing Wheels", SOSP 1987) of 7 levels × 64 slots at 1 ms resolution: level
/// `n` slots span 64ⁿ ms, so the wheel covers an aligned epoch of 2⁴² ms (139
/// years; with Unix-epoch ticks the current one ends in 2109). Deadlines past
/// it go to an overflow priority queue and move into the wheel when time
/// reaches their epoch. Entries live in a
/// chunked slab addressed by `u32` indices; each wheel slot is a FIFO list of
/// fixed-size blocks of `(index, offset)` pairs, so inserting and expiring are
/// sequential memory operations and nothing allocates per operation once
/// capacity is reserved. See `docs/design.md` for the slot math.
///
/// Memory: 16 bytes per slab entry for a `u64` payload plus 8 bytes per wheel
/// element, so about 24 bytes per pending timer, allocated in fixed-size
/// chunks (no `Vec` doubling spikes).
pub struct Scheduler<T> {
    slab: Slab<T>,
    wheel: Wheel,
    /// Entries whose deadline was already before `elapsed` when inserted.
    due: Tier,
    /// Entries whose deadline lies in a later wheel epoch.
    overflow: Tier,
    /// Insertion sequence for the tiers' FIFO tie-break.
    seq: u64,
}

impl<T> Scheduler<T> {
    /// An empty scheduler whose clock starts at [`Tick::ZERO`]. Allocates
    /// nothing until the first insert.
    ///
    /// Any tick works as a deadline; with wall-clock ticks,
    /// [`starting_at`](Self::starting_at) spares the first poll a walk through
    /// the empty years since the epoch.
    pub fn new() -> Self {
        Self::starting_at(Tick::ZERO)
    }

    /// An empty scheduler whose clock starts at `now`: nothing is considered
    /// due before `now` has been passed to [`poll_expired`](Self::poll_expired),
    /// but deadlines before `now` still fire on the first poll.
    pub fn starting_at(now: Tick) -> Self {
        Self {
            slab: Slab::new(),
            wheel: Wheel::new(now.as_millis()),
            due: Tier::new(),
            overflow: Tier::new(),
            seq: 0,
        }
    }

    /// An empty scheduler with room for `capacity` pending entries, so that
    /// up to that many can be inserted, cancelled and expired without any
    /// further allocation (the `out` collection of
    /// [`poll_expired`](Self::poll_expired) is the caller's).
    ///
    /// # Panics
    ///
    /// If `capacity` exceeds 2²⁸ − 16 entries.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut s = Self::new();
        s.reserve(capacity);
        s
    }

    /// Schedules `value` to expire at `deadline` and returns its key.
    ///
    /// A deadline at or before the last polled `now` fires on the next
    /// [`poll_expired`](Self::poll_expired).
    ///
    /// # Panics
    ///
    /// If more than 2²⁸ − 16 (about 268 million) entries would be pending at
    /// once.
    #[inline]
    pub fn insert_at(&mut self, deadline: Tick, value: T) -> Key {
        // `vacant` panics at the entry limit (the slab never grows past it).
        // Place first, then write the entry once, link included.
        let index = self.slab.vacant();
        let link = self.position(index, deadline.as_millis());
        let generation = self.slab.occupy(index, value, link);
        Key { index, generation }
    }

    /// Puts slab entry `index` where `when` belongs and links it there.
    #[inline]
    fn place(&mut self, index: u32, when: u64) {
        let link = self.position(index, when);
        self.slab.set_link(index, link);
    }

    /// Puts slab entry `index` where `when` belongs and returns the link the
    /// entry must carry (the slab entry itself is not touched).
    #[inline]
    fn position(&mut self, index: u32, when: u64) -> u32 {
        if when < self.wheel.elapsed() {
            self.due.push(index, Reverse((when, self.seq)));
            self.seq += 1;
            LINK_DUE
        } else if self.wheel.fits(when) {
            self.wheel.insert(when, index)
        } else {
            self.overflow.push(index, Reverse((when, self.seq)));
            self.seq += 1;
            LINK_OVERFLOW
        }
    }

    /// Takes slab entry `index` out of wherever it waits. For the wheel this
    /// is O(1): its element becomes garbage once the entry's link changes
    /// (see the wheel's module docs); call `wheel.refresh` afterwards.
    #[inline]
    fn unplace(&mut self, index: u32) {
        match self.slab.link(index) {
            LINK_DUE => {
                self.due.remove(&index);
            }
            LINK_OVERFLOW => {
                self.overflow.remove(&index);
            }
            _ => self.wheel.forget(index),
        }
    }

    /// Removes the entry for `key` and returns its value, or `None` if the key
    /// is stale (the entry already expired or was cancelled). O(1): one slab
    /// lookup; the wheel drops the entry's element when it next passes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use herald_core::{Scheduler, Tick};
    ///
    /// let mut s = Scheduler::new();
    /// let k = s.insert_at(Tick::from_millis(100), "reminder");
    /// assert_eq!(s.cancel(k), Some("reminder"));
    /// assert_eq!(s.cancel(k), None); // stale now
    /// assert_eq!(s.next_deadline(), None);
    /// ```
    #[inline]
    pub fn cancel(&mut self, key: Key) -> Option<T> {
        let (link, value) = self.slab.take(key.index, key.generation)?;
        match link {
            LINK_DUE => {
                self.due.remove(&key.index);
            }
            LINK_OVERFLOW => {
                self.overflow.remove(&key.index);
            }
            _ => {
                self.wheel.forget(key.index);
                self.wheel.refresh(&mut self.slab);
            }
        }
        Some(value)
    }

    /// Moves the entry for `key` to a new deadline, keeping its key. Returns
    /// `false` (and changes nothing) if the key is stale. For ordering, a
    /// rescheduled entry counts as newly inserted.
    ///
    /// # Examples
    ///
    /// ```
    /// use herald_core::{Scheduler, Tick};
    ///
    /// let mut s = Scheduler::new();
    /// let a = s.insert_at(Tick::from_millis(10), "a");
    /// let b = s.insert_at(Tick::from_millis(10), "b");
    /// assert!(s.reschedule(a, Tick::from_millis(10))); // same ms, now after "b"
    /// let mut out = Vec::new();
    /// s.poll_expired(Tick::from_millis(10), &mut out, 8);
    /// assert_eq!(out, [(b, "b"), (a, "a")]);
    /// assert!(!s.reschedule(a, Tick::from_millis(20))); // expired: stale
    /// ```
    pub fn reschedule(&mut self, key: Key, deadline: Tick) -> bool {
        if !self.slab.contains(key.index, key.generation) {
            return false;
        }
        self.unplace(key.index);
        self.place(key.index, deadline.as_millis());
        self.wheel.refresh(&mut self.slab);
        true
    }

    /// The deadline of the entry for `key`, or `None` if the key is stale.
    pub fn deadline(&self, key: Key) -> Option<Tick> {
        if !self.slab.contains(key.index, key.generation) {
            return None;
        }
        let when = match self.slab.link(key.index) {
            LINK_DUE => self.due.get_priority(&key.index)?.0.0,
            LINK_OVERFLOW => self.overflow.get_priority(&key.index)?.0.0,
            pos => self.wheel.deadline_at(pos),
        };
        Some(Tick::from_millis(when))
    }

    /// A reference to the value for `key`, or `None` if the key is stale.
    pub fn get(&self, key: Key) -> Option<&T> {
        self.slab.get(key.index, key.generation)
    }

    /// The key and value of the pending entry in slab slot `index` (see
    /// [`Key::index`]), or `None` if that slot holds no pending entry. Lets
    /// a side table keep only the 4-byte index of each entry and still
    /// reach its value and current key.
    ///
    /// # Examples
    ///
    /// ```
    /// use herald_core::{Scheduler, Tick};
    ///
    /// let mut s = Scheduler::new();
    /// let k = s.insert_at(Tick::from_millis(100), "reminder");
    /// assert_eq!(s.entry_at(k.index()), Some((k, &"reminder")));
    /// s.cancel(k);
    /// assert_eq!(s.entry_at(k.index()), None);
    /// ```
    pub fn entry_at(&self, index: u32) -> Option<(Key, &T)> {
        self.slab
            .occupant(index)
            .map(|(generation, value)| (Key { index, generation }, value))
    }

    /// A mutable reference to the value for `key`, or `None` if the key is stale.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.slab.get_mut(key.index, key.generation)
    }

    /// Whether `key` names a pending entry.
    pub fn contains(&self, key: Key) -> bool {
        self.slab.contains(key.index, key.generation)
    }

    /// The earliest pending deadline, or `None` when empty. Exact after every
    /// operation: an engine can sleep until exactly this tick.
    ///
    /// # Examples
    ///
    /// ```
    /// use herald_core::{Scheduler, Tick};
    ///
    /// let mut s = Scheduler::new();
    /// let soon = s.insert_at(Tick::from_millis(5), ());
    /// s.insert_at(Tick::from_millis(90_000), ());
    /// assert_eq!(s.next_deadline(), Some(Tick::from_millis(5)));
    /// s.cancel(soon);
    /// assert_eq!(s.next_deadline(), Some(Tick::from_millis(90_000)));
    /// ```
    #[inline]
    pub fn next_deadline(&self) -> Option<Tick> {
        // Due-tier deadlines are before `elapsed`, the wheel's are at or
        // after it, and the overflow's are in a later epoch.
        let when = if let Some((_, Reverse((when, _)))) = self.due.peek() {
            *when
        } else if let Some(when) = self.wheel.next_deadline() {
            when
        } else {
            self.overflow.peek()?.1.0.0
        };
        Some(Tick::from_millis(when))
    }

    /// Moves up to `max` entries whose deadline is at or before `now` into
    /// `out`, in `(deadline, insertion order)` order, and returns how many it
    /// moved. If it returns less than `max`, nothing more is due at `now`.
    ///
    /// Work is proportional to what fires plus the wheel slots it passes
    /// (cascades move each entry at most once per level over its lifetime).
    /// `now` may go backwards between calls: nothing ever fires early, and
    /// time as the wheel sees it never moves backwards.
    ///
    /// # Examples
    ///
    /// Drain in bounded batches, as an engine loop would:
    ///
    /// ```
    /// use herald_core::{Scheduler, Tick};
    ///
    /// let mut s = Scheduler::new();
    /// for i in 0..10_u32 {
    ///     s.insert_at(Tick::from_millis(u64::from(i % 3)), i);
    /// }
    /// let mut batch = Vec::with_capacity(4);
    /// let mut fired = Vec::new();
    /// loop {
    ///     batch.clear();
    ///     let n = s.poll_expired(Tick::from_millis(2), &mut batch, 4);
    ///     fired.extend(batch.iter().map(|&(_, v)| v));
    ///     if n < 4 {
    ///         break; // nothing more is due at this `now`
    ///     }
    /// }
    /// assert_eq!(fired, [0, 3, 6, 9, 1, 4, 7, 2, 5, 8]);
    /// ```
    pub fn poll_expired<E>(&mut self, now: Tick, out: &mut E, max: usize) -> usize
    where
        E: Extend<(Key, T)>,
    {
        self.poll_with(now, max, |key, _, value| out.extend(Some((key, value))))
    }

    /// [`poll_expired`](Self::poll_expired), handing out each entry's
    /// deadline too (the tick it was inserted or rescheduled for), so the
    /// value need not carry it.
    ///
    /// # Examples
    ///
    /// ```
    /// use herald_core::{Scheduler, Tick};
    ///
    /// let mut s = Scheduler::new();
    /// let k = s.insert_at(Tick::from_millis(7), 'a');
    /// let mut due = Vec::new();
    /// s.poll_expired_with_deadline(Tick::from_millis(100), &mut due, 8);
    /// assert_eq!(due, [(k, Tick::from_millis(7), 'a')]);
    /// ```
    pub fn poll_expired_with_deadline<E>(&mut self, now: Tick, out: &mut E, max: usize) -> usize
    where
        E: Extend<(Key, Tick, T)>,
    {
        self.poll_with(now, max, |key, when, value| {
            out.extend(Some((key, Tick::from_millis(when), value)));
        })
    }

    /// The body of both polls: `emit(key, deadline, value)` per entry.
    #[inline]
    fn poll_with(&mut self, now: Tick, max: usize, mut emit: impl FnMut(Key, u64, T)) -> usize {
        let now = now.as_millis();
        let mut fired = 0;
        // Bounded work that keeps later cascades of big slots cheap.
        self.wheel.split_ahead(&mut self.slab);
        // 1. Entries inserted with a deadline before `elapsed`: all earlier
        //    than anything in the wheel.
        let mut wheel_may_be_due = true;
        while fired < max {
            match self.due.peek() {
                Some((_, Reverse((when, _)))) if *when <= now => {}
                Some(_) => {
                    // `now` went back before a due-tier entry: the wheel,
                    // later still, has nothing due either.
                    wheel_may_be_due = false;
                    break;
                }
                None => break,
            }
            let (index, Reverse((when, _))) = self.due.pop().expect("peeked");
            let (generation, value) = self.slab.take_occupied(index);
            emit(Key { index, generation }, when, value);
            fired += 1;
        }
        // 2. The wheel, slot by slot; the overflow tier when it is empty.
        let mut drained = false;
        while wheel_may_be_due && fired < max {
            match self.wheel.next_slot() {
                Some(n) if n.start <= now => {
                    if n.level == 0 {
                        let budget = max - fired;
                        let slab = &mut self.slab;
                        // A level-0 slot is one millisecond: its start is
                        // every entry's deadline.
                        let when = n.start;
                        fired += self.wheel.fire_slot(
                            n.digit,
                            budget,
                            slab,
                            |index, generation, value| {
                                emit(Key { index, generation }, when, value);
                            },
                        );
                    } else {
                        self.wheel.cascade(n.level, n.digit, &mut self.slab);
                    }
                }
                Some(_) => {
                    drained = true;
                    break;
                }
                None => match self.overflow.peek() {
                    Some((_, Reverse((when, _)))) if *when <= now => {
                        let when = *when;
                        self.enter_epoch(when);
                    }
                    _ => {
                        drained = true;
                        break;
                    }
                },
            }
        }
        if drained && now > self.wheel.elapsed() {
            if self.wheel.is_empty() && !self.wheel.fits(now) {
                self.enter_epoch(now);
            } else {
                self.wheel.advance(now);
            }
        }
        self.wheel.refresh(&mut self.slab);
        fired
    }

    /// Moves the (empty) wheel to `to`, in a later epoch, and pulls the
    /// overflow entries of that epoch into it, in order.
    fn enter_epoch(&mut self, to: u64) {
        debug_assert!(self.wheel.is_empty());
        self.wheel.advance_empty(to);
        while let Some((_, Reverse((when, _)))) = self.overflow.peek() {
            if !self.wheel.fits(*when) {
                break;
            }
            let when = *when;
            let (index, _) = self.overflow.pop().expect("peeked");
            let pos = self.wheel.insert(when, index);
            self.slab.set_link(index, pos);
        }
    }

    /// Number of pending entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Whether nothing is pending.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries can be pending before the slab allocates again.
    pub fn capacity(&self) -> usize {
        self.slab.capacity()
    }

    /// Reserves room for at least `additional` more pending entries, in the
    /// slab and in the wheel's element pool.
    ///
    /// # Panics
    ///
    /// If the total would exceed 2²⁸ − 16 entries.
    pub fn reserve(&mut self, additional: usize) {
        self.slab.reserve(additional);
        self.wheel
            .reserve(self.slab.len().saturating_add(additional));
    }

    /// Lowers the wheel's internal thresholds (garbage slack before a sweep,
    /// default 4096; slot size worth pre-splitting, default 2048; elements
    /// pre-split per poll, default 4096; elements swept per operation,
    /// default 256) so that model tests exercise those paths with a few
    /// entries. Not part of the API.
    #[doc(hidden)]
    pub fn set_knobs_for_tests(
        &mut self,
        sweep_slack: usize,
        split_min: u32,
        split_budget: usize,
        sweep_step: u32,
    ) {
        self.wheel
            .set_knobs(sweep_slack, split_min, split_budget, sweep_step);
    }

    /// Drops every pending entry (all keys become stale) but keeps the
    /// allocated capacity. The wheel's clock is unchanged.
    pub fn clear(&mut self) {
        self.wheel.clear();
        self.due.clear();
        self.overflow.clear();
        self.slab.clear();
    }

    /// Returns unused memory to the allocator, as far as the chunked layout
    /// allows: trailing chunks with no live entry are freed.
    pub fn shrink_to_fit(&mut self) {
        self.slab.shrink_to_fit();
        self.wheel.shrink_to_fit();
        self.due.shrink_to_fit();
        self.overflow.shrink_to_fit();
    }
}

impl<T> Default for Scheduler<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Scheduler<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("len", &self.len())
            .field("elapsed", &Tick::from_millis(self.wheel.elapsed()))
            .field("next_deadline", &self.next_deadline())
            .field("due_tier", &self.due.len())
            .field("overflow_tier", &self.overflow.len())
            .field("free_blocks", &self.wheel.free_blocks())
            .field("garbage", &self.wheel.garbage())
            .finish()
    }
}
