//! [`TimerQueue`]: one interface over Herald's scheduler and the baselines,
//! so the comparison binary and the criterion benches run the same code.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use herald_core::{Key, Scheduler, Tick};
use priority_queue::PriorityQueue;
use tokio::runtime::{Builder, Runtime};
use tokio_util::time::{DelayQueue, delay_queue};

use crate::{CheckError, Workload};

/// How many entries [`HeraldQueue::drain`] asks for per `poll_expired` call.
pub const DRAIN_BATCH: usize = 4096;

/// A timer structure driven through the workload's three phases: insert every
/// timer, cancel some, drain the rest in deadline order.
///
/// Each phase is one call looping over the whole workload, so a timed region
/// is a tight, monomorphic loop. Implementations start from the structure's
/// plain `new()` (no capacity hint), so growth is part of the insert cost.
pub trait TimerQueue {
    /// Short name used in tables and bench ids.
    const NAME: &'static str;

    /// Whether [`drain`](Self::drain) reports each timer's deadline as the
    /// structure knows it. If not, it reports 0 and the checker uses the
    /// workload's deadline (order is still checked).
    const REPORTS_DEADLINES: bool;

    /// An empty structure, plus room for `n` keys in the harness-side key
    /// table (allocated here, so it is not counted as structure memory).
    fn new(n: usize) -> Self;

    /// Inserts timer `id` at `w.deadline(id)` for every id, in id order.
    fn insert_all(&mut self, w: &Workload);

    /// Cancels `ids` in order; returns how many were actually pending.
    fn cancel_all(&mut self, ids: &[u64]) -> usize;

    /// Untimed set-up before [`drain`](Self::drain), such as moving a
    /// runtime's clock to `now`. Does nothing by default.
    fn prepare_drain(&mut self, now: u64) {
        let _ = now;
    }

    /// Fires everything due at `now` (milliseconds since the workload's
    /// start) into `out` as `(id, deadline)`, in firing order.
    fn drain(&mut self, now: u64, out: &mut Vec<(u64, u64)>);

    /// The earliest pending deadline (milliseconds since the workload's
    /// start), exactly, or `None` when empty. `&mut` so that a structure
    /// that cancels lazily can drop dead entries in front of it.
    fn next_deadline(&mut self) -> Option<u64>;

    /// Drains everything the way an engine polls: starting at `now = 0`,
    /// repeatedly `now = max(now + 1, next_deadline())` and fire everything
    /// due at `now`, until empty. Pushes `(id, now)` for each fired timer
    /// (the tick it fired at, so [`Workload::check`] also verifies that each
    /// fired exactly at its deadline) and returns how many polls it made.
    ///
    /// The default uses [`next_deadline`](Self::next_deadline),
    /// [`prepare_drain`](Self::prepare_drain) and [`drain`](Self::drain).
    fn drain_each_deadline(&mut self, out: &mut Vec<(u64, u64)>) -> u64 {
        let mut now = 0_u64;
        let mut polls = 0_u64;
        while let Some(next) = self.next_deadline() {
            now = if polls == 0 { next } else { next.max(now + 1) };
            polls += 1;
            let first = out.len();
            self.prepare_drain(now);
            self.drain(now, out);
            for fired in &mut out[first..] {
                fired.1 = now;
            }
        }
        polls
    }

    /// Checks what [`drain`](Self::drain) fired with [`Workload::check`].
    ///
    /// # Errors
    ///
    /// The first violation, as a [`CheckError`].
    fn check(w: &Workload, fired: &[(u64, u64)]) -> Result<(), CheckError> {
        if Self::REPORTS_DEADLINES {
            w.check(fired.iter().copied())
        } else {
            w.check(fired.iter().map(|&(id, _)| (id, w.deadline(id))))
        }
    }

    /// Number of pending timers.
    fn len(&self) -> usize;

    /// Whether no timer is pending.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Anything odd the run noticed, for the report.
    fn note(&self) -> Option<String> {
        None
    }
}

/// Herald's [`Scheduler<u64>`], with a `Vec<Key>` indexed by id for cancels.
#[derive(Debug)]
pub struct HeraldQueue {
    /// The scheduler under test.
    pub scheduler: Scheduler<u64>,
    keys: Vec<Key>,
}

impl TimerQueue for HeraldQueue {
    const NAME: &'static str = "herald";
    const REPORTS_DEADLINES: bool = false;

    fn new(n: usize) -> Self {
        Self {
            scheduler: Scheduler::new(),
            keys: Vec::with_capacity(n),
        }
    }

    fn insert_all(&mut self, w: &Workload) {
        for (id, &d) in w.deadlines().iter().enumerate() {
            let key = self.scheduler.insert_at(Tick::from_millis(d), id as u64);
            self.keys.push(key);
        }
    }

    fn cancel_all(&mut self, ids: &[u64]) -> usize {
        let mut n = 0;
        for &id in ids {
            n += usize::from(self.scheduler.cancel(self.keys[id as usize]).is_some());
        }
        n
    }

    fn next_deadline(&mut self) -> Option<u64> {
        self.scheduler.next_deadline().map(Tick::as_millis)
    }

    fn drain(&mut self, now: u64, out: &mut Vec<(u64, u64)>) {
        let now = Tick::from_millis(now);
        let mut sink = IdSink(out);
        while self.scheduler.poll_expired(now, &mut sink, DRAIN_BATCH) == DRAIN_BATCH {}
    }

    fn len(&self) -> usize {
        self.scheduler.len()
    }
}

/// Records `(id, 0)` for each `(key, id)` that `poll_expired` hands over.
struct IdSink<'a>(&'a mut Vec<(u64, u64)>);

impl Extend<(Key, u64)> for IdSink<'_> {
    #[inline]
    fn extend<I: IntoIterator<Item = (Key, u64)>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().map(|(_, id)| (id, 0)));
    }
}

/// tokio-util's [`DelayQueue<u64>`] on a paused current-thread runtime.
///
/// Every phase runs inside `block_on`. [`prepare_drain`](TimerQueue::prepare_drain)
/// advances the paused clock past `now`; [`drain`](TimerQueue::drain) then
/// calls `poll_expired` with a no-op waker until it returns `Ready(None)`,
/// yielding to the runtime on `Pending` so its time driver can catch up
/// (counted; see [`note`](TimerQueue::note)).
#[derive(Debug)]
pub struct DelayQueueQueue {
    queue: DelayQueue<u64>,
    keys: Vec<delay_queue::Key>,
    start: tokio::time::Instant,
    pending_polls: u64,
    // Last, so it is dropped after the queue's `Sleep`.
    rt: Runtime,
}

impl DelayQueueQueue {
    /// How many times `poll_expired` returned `Pending` during drains.
    pub fn pending_polls(&self) -> u64 {
        self.pending_polls
    }
}

impl TimerQueue for DelayQueueQueue {
    const NAME: &'static str = "DelayQueue";
    const REPORTS_DEADLINES: bool = true;

    fn new(n: usize) -> Self {
        let rt = Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("build a current-thread runtime");
        // Inside the runtime, so `start` and the queue's own start read the
        // paused clock, and are equal (it does not move by itself).
        let (queue, start) =
            rt.block_on(async { (DelayQueue::new(), tokio::time::Instant::now()) });
        Self {
            queue,
            keys: Vec::with_capacity(n),
            start,
            pending_polls: 0,
            rt,
        }
    }

    fn insert_all(&mut self, w: &Workload) {
        let Self {
            queue,
            keys,
            start,
            rt,
            ..
        } = self;
        rt.block_on(async {
            for (id, &d) in w.deadlines().iter().enumerate() {
                keys.push(queue.insert_at(id as u64, *start + Duration::from_millis(d)));
            }
        });
    }

    fn cancel_all(&mut self, ids: &[u64]) -> usize {
        let Self {
            queue, keys, rt, ..
        } = self;
        rt.block_on(async {
            for &id in ids {
                // `remove` panics on a stale key, so every call cancels one.
                std::hint::black_box(queue.remove(&keys[id as usize]));
            }
        });
        ids.len()
    }

    fn prepare_drain(&mut self, now: u64) {
        let target = self.start + Duration::from_millis(now);
        self.rt.block_on(async {
            let now = tokio::time::Instant::now();
            if target > now {
                tokio::time::advance(target - now).await;
            }
        });
    }

    fn drain(&mut self, now: u64, out: &mut Vec<(u64, u64)>) {
        let Self {
            queue,
            rt,
            start,
            pending_polls,
            ..
        } = self;
        let limit = *start + Duration::from_millis(now);
        let start = *start;
        rt.block_on(poll_due(queue, limit, pending_polls, |e| {
            let ms = e.deadline().duration_since(start).as_millis();
            out.push((e.into_inner(), ms as u64));
        }));
    }

    fn next_deadline(&mut self) -> Option<u64> {
        let d = self.queue.peek().map(|k| self.queue.deadline(&k))?;
        Some(d.duration_since(self.start).as_millis() as u64)
    }

    /// One `block_on` for the whole drain, as one task looping over the
    /// deadlines: `peek()` the earliest, advance the paused clock to it
    /// (which lets the time driver fire the queue's own `Sleep`), then
    /// `poll_expired` until nothing more is due at that tick. The clock
    /// advances are timed with the drain: waking at each deadline is part
    /// of what this pattern costs a `DelayQueue` user.
    fn drain_each_deadline(&mut self, out: &mut Vec<(u64, u64)>) -> u64 {
        let Self {
            queue,
            rt,
            start,
            pending_polls,
            ..
        } = self;
        let start = *start;
        rt.block_on(async {
            let mut now = 0_u64;
            let mut polls = 0_u64;
            while let Some(key) = queue.peek() {
                let next = queue.deadline(&key).duration_since(start).as_millis() as u64;
                now = if polls == 0 { next } else { next.max(now + 1) };
                polls += 1;
                let target = start + Duration::from_millis(now);
                let clock = tokio::time::Instant::now();
                if target > clock {
                    tokio::time::advance(target - clock).await;
                }
                poll_due(queue, target, pending_polls, |e| {
                    out.push((e.into_inner(), now));
                })
                .await;
            }
            polls
        })
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn note(&self) -> Option<String> {
        (self.pending_polls > 0).then(|| {
            format!(
                "poll_expired returned Pending {} times after the clock was advanced",
                self.pending_polls
            )
        })
    }
}

/// `std`'s [`BinaryHeap`] of `Reverse((deadline, seq, id))`, cancelling by
/// tombstone: a [`HashSet`] of cancelled ids, skipped (and forgotten) when
/// popped.
#[derive(Debug, Default)]
pub struct HeapQueue {
    heap: BinaryHeap<Reverse<(u64, u64, u64)>>,
    tombstones: HashSet<u64>,
    seq: u64,
}

impl TimerQueue for HeapQueue {
    const NAME: &'static str = "BinaryHeap+tombstones";
    const REPORTS_DEADLINES: bool = true;

    fn new(_n: usize) -> Self {
        Self::default()
    }

    fn insert_all(&mut self, w: &Workload) {
        for (id, &d) in w.deadlines().iter().enumerate() {
            self.heap.push(Reverse((d, self.seq, id as u64)));
            self.seq += 1;
        }
    }

    fn cancel_all(&mut self, ids: &[u64]) -> usize {
        let mut n = 0;
        for &id in ids {
            n += usize::from(self.tombstones.insert(id));
        }
        n
    }

    fn next_deadline(&mut self) -> Option<u64> {
        // Pop cancelled entries off the top, as an engine would before
        // sleeping until the top's deadline.
        while let Some(&Reverse((d, _, id))) = self.heap.peek() {
            if !self.tombstones.remove(&id) {
                return Some(d);
            }
            self.heap.pop();
        }
        None
    }

    fn drain(&mut self, now: u64, out: &mut Vec<(u64, u64)>) {
        while let Some(&Reverse((d, _, id))) = self.heap.peek() {
            if d > now {
                break;
            }
            self.heap.pop();
            if !self.tombstones.remove(&id) {
                out.push((id, d));
            }
        }
    }

    fn len(&self) -> usize {
        self.heap.len() - self.tombstones.len()
    }
}

/// [`priority_queue::PriorityQueue`] keyed by id with priority
/// `Reverse((deadline, seq))`, cancelling with a real `remove`.
#[derive(Debug, Default)]
pub struct PriorityQueueQueue {
    queue: PriorityQueue<u64, Reverse<(u64, u64)>>,
    seq: u64,
}

impl TimerQueue for PriorityQueueQueue {
    const NAME: &'static str = "priority-queue";
    const REPORTS_DEADLINES: bool = true;

    fn new(_n: usize) -> Self {
        Self::default()
    }

    fn insert_all(&mut self, w: &Workload) {
        for (id, &d) in w.deadlines().iter().enumerate() {
            self.queue.push(id as u64, Reverse((d, self.seq)));
            self.seq += 1;
        }
    }

    fn cancel_all(&mut self, ids: &[u64]) -> usize {
        let mut n = 0;
        for &id in ids {
            n += usize::from(self.queue.remove(&id).is_some());
        }
        n
    }

    fn next_deadline(&mut self) -> Option<u64> {
        self.queue.peek().map(|(_, &Reverse((d, _)))| d)
    }

    fn drain(&mut self, now: u64, out: &mut Vec<(u64, u64)>) {
        while let Some((_, &Reverse((d, _)))) = self.queue.peek() {
            if d > now {
                break;
            }
            let (id, _) = self.queue.pop().expect("peeked");
            out.push((id, d));
        }
    }

    fn len(&self) -> usize {
        self.queue.len()
    }
}

/// A part of a timer's life to time, for the criterion benches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Inserting every timer into an empty structure.
    Insert,
    /// Cancelling the workload's cancels, with every timer pending.
    Cancel,
    /// Draining the survivors, after the cancels.
    Expire,
    /// All three, back to back.
    Lifecycle,
    /// Draining the survivors, after the cancels, polling at each successive
    /// deadline ([`TimerQueue::drain_each_deadline`]).
    ExpireEachDeadline,
    /// Insert, cancel, then the per-deadline drain, back to back.
    LifecycleEachDeadline,
}

impl Phase {
    /// Every phase, in life order, the end-of-hour drain's before the
    /// per-deadline drain's.
    pub const ALL: [Self; 6] = [
        Self::Insert,
        Self::Cancel,
        Self::Expire,
        Self::Lifecycle,
        Self::ExpireEachDeadline,
        Self::LifecycleEachDeadline,
    ];

    /// Lower-case name, for bench group names.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Cancel => "cancel",
            Self::Expire => "expire",
            Self::Lifecycle => "lifecycle",
            Self::ExpireEachDeadline => "expire-each-deadline",
            Self::LifecycleEachDeadline => "lifecycle-each-deadline",
        }
    }

    /// Whether the phase drains with [`TimerQueue::drain_each_deadline`].
    pub const fn each_deadline(self) -> bool {
        matches!(self, Self::ExpireEachDeadline | Self::LifecycleEachDeadline)
    }

    /// How many timers the phase handles: the throughput unit.
    pub fn elements(self, w: &Workload) -> usize {
        match self {
            Self::Insert | Self::Lifecycle | Self::LifecycleEachDeadline => w.len(),
            Self::Cancel => w.cancels().len(),
            Self::Expire | Self::ExpireEachDeadline => w.expected_fires(),
        }
    }

    /// Runs one fresh `Q` through `w`, timing only this phase: the set-up
    /// before it, the phases after it and dropping the structure are not
    /// timed. Checks the fired timers in debug builds.
    pub fn time<Q: TimerQueue>(self, w: &Workload) -> Duration {
        let mut q = Q::new(w.len());
        let mut out = vec![(0_u64, 0_u64); w.expected_fires()];
        out.clear();
        let now = w.horizon();

        let start = Instant::now();
        q.insert_all(w);
        let inserted = Instant::now();
        if self == Self::Insert {
            drop(q);
            return inserted - start;
        }
        std::hint::black_box(q.cancel_all(w.cancels()));
        let cancelled = Instant::now();
        if self == Self::Cancel {
            drop(q);
            return cancelled - inserted;
        }
        if self.each_deadline() {
            let drain_start = Instant::now();
            std::hint::black_box(q.drain_each_deadline(&mut out));
            let drained = Instant::now();
            debug_assert_eq!(w.check(out.iter().copied()), Ok(()), "{}", Q::NAME);
            drop(q);
            return if self == Self::ExpireEachDeadline {
                drained - drain_start
            } else {
                drained - start
            };
        }
        q.prepare_drain(now);
        let prepared = Instant::now();
        q.drain(now, &mut out);
        let drained = Instant::now();
        debug_assert_eq!(Q::check(w, &out), Ok(()), "{}", Q::NAME);
        drop(q);
        if self == Self::Expire {
            drained - prepared
        } else {
            drained - start
        }
    }
}

/// Runs `Q` through a whole workload (insert, cancel, drain) and checks what
/// fired. Returns the fired records. Used by tests and as a smoke check.
///
/// # Panics
///
/// If the structure cancels or fires the wrong timers, or out of order.
#[track_caller]
pub fn run_checked<Q: TimerQueue>(w: &Workload) -> Vec<(u64, u64)> {
    let mut q = Q::new(w.len());
    q.insert_all(w);
    assert_eq!(q.len(), w.len(), "{}: len after inserts", Q::NAME);
    let cancelled = q.cancel_all(w.cancels());
    assert_eq!(cancelled, w.cancels().len(), "{}: cancels", Q::NAME);
    let mut out = Vec::with_capacity(w.expected_fires());
    let now = w.horizon();
    q.prepare_drain(now);
    q.drain(now, &mut out);
    if let Err(e) = Q::check(w, &out) {
        panic!("{}: {e}", Q::NAME);
    }
    assert!(q.is_empty(), "{}: {} left after drain", Q::NAME, q.len());
    out
}

/// Runs `Q` through insert, cancel and
/// [`drain_each_deadline`](TimerQueue::drain_each_deadline), and checks that
/// every survivor fired once, in order, exactly at its deadline. Returns the
/// fired `(id, tick fired at)` records and the number of polls.
///
/// # Panics
///
/// If the structure cancels or fires the wrong timers, out of order, or at
/// a tick other than their deadline.
#[track_caller]
pub fn run_checked_each_deadline<Q: TimerQueue>(w: &Workload) -> (Vec<(u64, u64)>, u64) {
    let mut q = Q::new(w.len());
    q.insert_all(w);
    let cancelled = q.cancel_all(w.cancels());
    assert_eq!(cancelled, w.cancels().len(), "{}: cancels", Q::NAME);
    let mut out = Vec::with_capacity(w.expected_fires());
    let polls = q.drain_each_deadline(&mut out);
    if let Err(e) = w.check(out.iter().copied()) {
        panic!("{} (each deadline): {e}", Q::NAME);
    }
    assert!(q.is_empty(), "{}: {} left after drain", Q::NAME, q.len());
    assert_eq!(
        q.next_deadline(),
        None,
        "{}: next_deadline when empty",
        Q::NAME
    );
    (out, polls)
}

/// Takes from `queue` every entry due at `limit` (the paused clock is
/// there already), handing each to `fired`. A `Pending` while an entry is
/// due means the time driver has not caught up with the clock yet: counted
/// in `pending_polls` and yielded on (at most 1,000 times in a row).
async fn poll_due(
    queue: &mut DelayQueue<u64>,
    limit: tokio::time::Instant,
    pending_polls: &mut u64,
    mut fired: impl FnMut(delay_queue::Expired<u64>),
) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut pending_in_a_row = 0_u32;
    loop {
        match queue.poll_expired(&mut cx) {
            Poll::Ready(Some(e)) => {
                pending_in_a_row = 0;
                fired(e);
            }
            Poll::Ready(None) => break,
            Poll::Pending => {
                let next = queue.peek().map(|k| queue.deadline(&k));
                if next.is_none_or(|d| d > limit) {
                    break;
                }
                *pending_polls += 1;
                pending_in_a_row += 1;
                assert!(
                    pending_in_a_row < 1_000,
                    "DelayQueue stays Pending with {} timers due",
                    queue.len()
                );
                tokio::task::yield_now().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HOUR_MS;

    #[test]
    fn herald_passes_the_checker() {
        run_checked::<HeraldQueue>(&Workload::new(20_000, 3));
        run_checked::<HeraldQueue>(&Workload::custom(5_000, 4, (1 << 36)..(1 << 37), 500));
    }

    #[test]
    fn every_phase_times_something() {
        let w = Workload::new(2_000, 6);
        for phase in Phase::ALL {
            assert!(phase.time::<HeraldQueue>(&w) > Duration::ZERO, "{phase:?}");
            assert!(phase.time::<HeapQueue>(&w) > Duration::ZERO, "{phase:?}");
            assert!(
                phase.time::<PriorityQueueQueue>(&w) > Duration::ZERO,
                "{phase:?}"
            );
            assert!(
                phase.time::<DelayQueueQueue>(&w) > Duration::ZERO,
                "{phase:?}"
            );
        }
    }

    #[test]
    fn baselines_pass_the_checker() {
        let w = Workload::new(20_000, 3);
        run_checked::<HeapQueue>(&w);
        run_checked::<PriorityQueueQueue>(&w);
        run_checked::<DelayQueueQueue>(&w);
    }

    #[test]
    fn baselines_handle_far_deadlines() {
        // The overflow-tier workload: more than 2^36 ms ahead.
        let w = Workload::custom(5_000, 4, (1 << 36)..(1 << 37), 500);
        run_checked::<HeapQueue>(&w);
        run_checked::<PriorityQueueQueue>(&w);
    }

    /// Distinct survivor deadlines: the polls a per-deadline drain makes.
    fn distinct_survivor_deadlines(w: &Workload) -> u64 {
        let mut d: Vec<u64> = (0..w.len() as u64)
            .filter(|&id| !w.is_cancelled(id))
            .map(|id| w.deadline(id))
            .collect();
        d.sort_unstable();
        d.dedup();
        d.len() as u64
    }

    #[test]
    fn every_structure_drains_each_deadline_exactly() {
        // Dense enough that many deadlines hold several timers.
        let w = Workload::custom(20_000, 11, 0..5_000, 10_000);
        let polls = distinct_survivor_deadlines(&w);
        let (a, pa) = run_checked_each_deadline::<HeraldQueue>(&w);
        let (b, pb) = run_checked_each_deadline::<DelayQueueQueue>(&w);
        let (c, pc) = run_checked_each_deadline::<HeapQueue>(&w);
        let (d, pd) = run_checked_each_deadline::<PriorityQueueQueue>(&w);
        assert_eq!([pa, pb, pc, pd], [polls; 4]);
        // Same `(deadline, insertion order)` order in Herald and the heaps;
        // `DelayQueue` fires a millisecond's timers last in, first out (its
        // slots are stacks), so only the same `(id, tick)` records.
        assert!(a == c && a == d, "herald and the heaps fire in one order");
        let mut sorted = b.clone();
        sorted.sort_by_key(|&(id, at)| (at, id));
        let mut expected = a.clone();
        expected.sort_by_key(|&(id, at)| (at, id));
        assert!(sorted == expected, "DelayQueue fires the same timers");
        // Sparse, over the hour, and deadlines in a later wheel epoch.
        let w = Workload::new(20_000, 12);
        let polls = distinct_survivor_deadlines(&w);
        assert_eq!(run_checked_each_deadline::<HeraldQueue>(&w).1, polls);
        assert_eq!(run_checked_each_deadline::<DelayQueueQueue>(&w).1, polls);
        let w = Workload::custom(5_000, 4, (1 << 36)..(1 << 37), 500);
        run_checked_each_deadline::<HeraldQueue>(&w);
        run_checked_each_deadline::<HeapQueue>(&w);
        run_checked_each_deadline::<PriorityQueueQueue>(&w);
    }

    #[test]
    fn delay_queue_drains_only_what_is_due() {
        let w = Workload::new(10_000, 5);
        let mut q = DelayQueueQueue::new(w.len());
        q.insert_all(&w);
        q.cancel_all(w.cancels());
        let mut out = Vec::new();
        q.prepare_drain(HOUR_MS / 2);
        q.drain(HOUR_MS / 2, &mut out);
        let due = (0..w.len() as u64)
            .filter(|&id| !w.is_cancelled(id) && w.deadline(id) <= HOUR_MS / 2)
            .count();
        assert_eq!(out.len(), due);
        assert_eq!(q.len(), w.expected_fires() - due);
        assert!(
            out.iter()
                .all(|&(id, d)| d <= HOUR_MS / 2 && d == w.deadline(id))
        );
    }
}
