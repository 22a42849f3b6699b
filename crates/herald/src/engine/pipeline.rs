//! The push pipeline: claims push jobs from the store and runs each on its
//! own task, a bounded number at once; never on the driver's or a cancel's
//! path.
//!
//! A job is recorded by the completer with its run's completion (see
//! `completer.rs`), which wakes this loop. The loop also claims jobs whose
//! lease ran out (another node's, or this node's after a crash) every half
//! lease. At start-up a single node takes back every job at once: they are
//! its own, from before a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use herald_core::Tick;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::warn;

use super::gateway::Gateway;
use super::push_job;
use super::shared::Shared;
use super::stats::{PipelineCounters, PushStats};
use crate::{MessageId, RetryPolicy};

/// Jobs running at once at most (each holds at most its in-flight batches
/// and one audience page).
pub(crate) const MAX_JOBS: usize = 64;

/// The pipeline's shared state.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) gateways: Vec<Gateway>,
    /// Pages of a job sent and not yet checkpointed, at most (also each
    /// gateway's batches in flight across jobs).
    pub(crate) in_flight: usize,
    pub(crate) policy: RetryPolicy,
    wake: Notify,
    woken: AtomicUsize,
    pub(crate) activity: Activity,
    pub(crate) counters: PipelineCounters,
    started: AtomicBool,
}

impl Pipeline {
    pub(crate) fn new(gateways: Vec<Gateway>, in_flight: usize, policy: RetryPolicy) -> Self {
        Self {
            gateways,
            in_flight: in_flight.max(1),
            policy,
            wake: Notify::new(),
            woken: AtomicUsize::new(0),
            activity: Activity::default(),
            counters: PipelineCounters::default(),
            started: AtomicBool::new(false),
        }
    }

    /// The counters now.
    pub(crate) fn stats(&self, now: Tick) -> PushStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PushStats {
            gateways: self
                .gateways
                .iter()
                .map(|g| g.counters.snapshot(g.transport.name(), g.is_paused(now)))
                .collect(),
            jobs_running: get(&self.counters.jobs_running),
            tokens_removed: get(&self.counters.tokens_removed),
            expired: get(&self.counters.expired),
            unroutable: get(&self.counters.unroutable),
        }
    }

    /// Whether any gateway is configured.
    pub(crate) fn is_configured(&self) -> bool {
        !self.gateways.is_empty()
    }

    /// `message` was cancelled: its job, if asleep on the clock (for a
    /// retry, a throttle slot or to renew its lease), looks at the message
    /// again now, so its waiting retries end at once (as failed), not at
    /// their due time; other jobs sleep on. `Engine::settle` waits until
    /// the job has looked.
    pub(crate) fn cancelled(&self, message: MessageId) {
        if self.is_configured() {
            self.activity.nudge(message);
        }
    }

    /// New jobs were recorded: claim them. Counts as activity until the
    /// loop has claimed them (so `Engine::settle` waits for them).
    pub(crate) fn wake(&self) {
        if !self.is_configured() {
            return;
        }
        self.activity.enter();
        self.woken.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Starts the loop (once), if a gateway is configured.
    pub(crate) fn start(sh: &Arc<Shared>) {
        if sh.pipeline.is_configured() && !sh.pipeline.started.swap(true, Ordering::AcqRel) {
            // The loop is busy until its first claim is done.
            sh.pipeline.activity.enter();
            tokio::spawn(run(sh.clone()));
        }
    }
}

async fn run(sh: Arc<Shared>) {
    let p = &sh.pipeline;
    let lease = sh.lease_ms;
    let mut running = JoinSet::new();
    // At start-up the only user of an exclusive store owns every job it
    // finds.
    let mut expired_before = if !sh.shared_store {
        Tick::from_millis(u64::MAX)
    } else {
        sh.clock.now()
    };
    loop {
        if sh.is_shut() {
            running.abort_all();
            p.activity.leave();
            return;
        }
        let now = sh.clock.now();
        let free = MAX_JOBS.saturating_sub(running.len());
        if free > 0 {
            match sh
                .store
                .claim_push_jobs(expired_before, now.saturating_add_millis(lease), free)
                .await
            {
                Ok(jobs) => {
                    for job in jobs {
                        p.activity.enter();
                        p.counters.jobs_running.fetch_add(1, Ordering::Relaxed);
                        running.spawn(push_job::run(sh.clone(), job));
                    }
                }
                Err(e) => warn!(error = %e, "store failed to hand out push jobs; trying again"),
            }
        }
        for _ in 0..p.woken.swap(0, Ordering::AcqRel) {
            p.activity.leave();
        }
        expired_before = now;
        let next_claim = now.saturating_add_millis((lease / 2).max(1));
        let sleep = sh.clock.sleep_until(next_claim);
        let _asleep = p.activity.sleep(next_claim);
        tokio::select! {
            () = p.wake.notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            () = sleep => {}
            () = sh.stopping() => {}
        }
    }
}

/// What the pipeline is doing, so `Engine::settle` can wait until every
/// job has done what it can at the clock's current time.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    state: Mutex<ActivityState>,
    changed: Notify,
    /// Wakes the tasks asleep with [`Activity::sleep_nudged`].
    nudged: Notify,
}

#[derive(Debug, Default)]
struct ActivityState {
    busy: usize,
    /// Wake-up times of the tasks asleep on the clock.
    sleepers: BTreeMap<Tick, usize>,
    /// The tasks asleep with [`Activity::sleep_nudged`], by the message
    /// they wait on.
    nudgeable: HashMap<MessageId, Nudgeable>,
}

/// The tasks asleep on one message's nudges.
#[derive(Debug, Default)]
struct Nudgeable {
    sleepers: usize,
    /// The message's nudges so far.
    nudges: u64,
    /// Sleepers nudged that have not woken yet.
    unwoken: usize,
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn enter(&self) {
        self.lock().busy += 1;
    }

    pub(crate) fn leave(&self) {
        let mut st = self.lock();
        st.busy = st.busy.saturating_sub(1);
        drop(st);
        self.changed.notify_waiters();
    }

    /// A task goes to sleep until `until`: not busy meanwhile, busy again
    /// when the guard drops.
    pub(crate) fn sleep(&self, until: Tick) -> Asleep<'_> {
        self.register(until, None)
    }

    /// As [`sleep`](Self::sleep), for a task that also wakes at a
    /// [`nudge`](Self::nudge) of `message`: it waits on the returned future
    /// as well as on the clock. A nudge of `message` after this call wakes
    /// it, and the activity is unsettled until it has (dropped the guard).
    pub(crate) fn sleep_nudged(
        &self,
        until: Tick,
        message: MessageId,
    ) -> (Asleep<'_>, impl Future<Output = ()> + '_) {
        let asleep = self.register(until, Some(message));
        let nudges = asleep.nudged_at.map_or(0, |(_, n)| n);
        let nudged = async move {
            loop {
                // Enabled before looking: a nudge after the look wakes it.
                let woken = self.nudged.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                if self
                    .lock()
                    .nudgeable
                    .get(&message)
                    .is_some_and(|n| n.nudges != nudges)
                {
                    return;
                }
                // Another message's nudge: wait again.
                woken.await;
            }
        };
        (asleep, nudged)
    }

    fn register(&self, until: Tick, message: Option<MessageId>) -> Asleep<'_> {
        let mut st = self.lock();
        *st.sleepers.entry(until).or_default() += 1;
        let nudged_at = message.map(|m| {
            let n = st.nudgeable.entry(m).or_default();
            n.sleepers += 1;
            (m, n.nudges)
        });
        st.busy = st.busy.saturating_sub(1);
        drop(st);
        self.changed.notify_waiters();
        Asleep {
            activity: self,
            until,
            nudged_at,
        }
    }

    /// Wakes the tasks asleep on `message`'s nudges
    /// ([`sleep_nudged`](Self::sleep_nudged)); until each has woken, the
    /// activity is not settled.
    pub(crate) fn nudge(&self, message: MessageId) {
        {
            let mut st = self.lock();
            let Some(n) = st.nudgeable.get_mut(&message) else {
                return;
            };
            n.nudges += 1;
            n.unwoken = n.sleepers;
        }
        self.nudged.notify_waiters();
        self.changed.notify_waiters();
    }

    /// Waits until no task is busy and none sleeps until a time at or
    /// before `now()`.
    pub(crate) async fn settled(&self, now: impl Fn() -> Tick) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let st = self.lock();
                let next = st.sleepers.keys().next().copied();
                let stale = st.nudgeable.values().any(|n| n.unwoken > 0);
                if st.busy == 0 && !stale && next.is_none_or(|t| t > now()) {
                    return;
                }
            }
            changed.await;
        }
    }
}

/// A sleeping task's registration; busy again on drop.
#[derive(Debug)]
pub(crate) struct Asleep<'a> {
    activity: &'a Activity,
    until: Tick,
    /// The message whose nudge wakes it, and that message's nudge count
    /// when it went to sleep.
    nudged_at: Option<(MessageId, u64)>,
}

impl Drop for Asleep<'_> {
    fn drop(&mut self) {
        let mut st = self.activity.lock();
        if let Some(n) = st.sleepers.get_mut(&self.until) {
            *n -= 1;
            if *n == 0 {
                st.sleepers.remove(&self.until);
            }
        }
        if let Some((message, at)) = self.nudged_at
            && let Some(n) = st.nudgeable.get_mut(&message)
        {
            n.sleepers -= 1;
            if n.nudges != at {
                // Nudged since it went to sleep: it has woken now.
                n.unwoken = n.unwoken.saturating_sub(1);
            }
            if n.sleepers == 0 {
                st.nudgeable.remove(&message);
            }
        }
        st.busy += 1;
        drop(st);
        self.activity.changed.notify_waiters();
    }
}
