//! The driver task: sleeps until the wheel's next deadline, then claims and
//! delivers every due run and hands it to the completer; takes back the
//! runs whose leases expired.

use std::sync::Arc;
use std::time::Duration;

use herald_core::Tick;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::claim_lead::ClaimLead;
use super::completer::Done;
use super::deliver::fan_out;
use super::inflight::Inflight;
use super::jitter::Jitter;
use super::reload::reload;
use super::shared::{Command, Run, Shared};
use super::stats::Counters;
use super::throttle::{Failure, Throttle};
use crate::store::{Claim, Claimed, Completion, JobKey, Next};

/// Runs taken from the wheel per store round trip.
const BATCH: usize = 1024;

/// Runs are claimed ahead of their due time, so that the claim's round
/// trip (a durable commit on redb, a PostgreSQL transaction) is not on the
/// path from the due time to the subscribers: once the wheel's earliest
/// run is due within the claim lead ([`ClaimLead`], learnt from the
/// claims' round trips: 5 ms on a local store, up to 100 ms on a busy
/// shared one), every run due within the lead plus `CLAIM_STEP_MS` is
/// claimed in one batch and held until its due time: one claim per
/// `CLAIM_STEP_MS` of runs at most, not one per due millisecond. A run is
/// in flight from its claim: a cancel on this node still stops it (it is
/// not delivered), a cancel on another node of a shared store may come too
/// late for it, as for a run being delivered.
pub(crate) const CLAIM_STEP_MS: u64 = 10;

/// How long to wait before retrying after a store failure.
pub(super) const RETRY: Duration = Duration::from_millis(200);

pub(crate) async fn run(sh: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Command>) {
    reload(&sh).await;
    // On a shared store: the runs due within the horizon that no other
    // node holds are reserved at every look (reserve_every), and at once when a hint
    // names a run due within it.
    let mut hints = if sh.shared_store {
        sh.store.due_hints()
    } else {
        None
    };
    let reserve_every = reserve_every(sh.horizon_ms);
    // Jittered periods spread the moments the nodes look: a look takes the
    // runs that entered the reservation window since the last look by any
    // node, so the shares follow the gaps between the nodes' looks; hints
    // make every node look at once, after which nodes on a fixed period
    // kept looking nearly together and the first to query took nearly
    // everything (cluster-bench: one node of three claimed 77 % of the
    // runs). Periods uniform in [every / 2, every * 3 / 2) give every node
    // the same expected share.
    let mut jitter = Jitter::from_entropy();
    let mut next_reserve = if sh.shared_store {
        match reserve(&sh, sh.clock.now()).await {
            Look::Done => sh.clock.now().saturating_add_millis(reserve_every),
            Look::Backlog => sh.clock.now(),
        }
    } else {
        Tick::MAX
    };
    sh.ready.send_replace(true);
    let mut settles = Vec::new();
    let mut fired: Vec<Run> = Vec::with_capacity(BATCH);
    // Claimed runs waiting for their due time, earliest first.
    let mut held: Vec<Held> = Vec::new();
    // Expired leases are taken back every half lease (a completion that
    // failed without a crash, a node that died holding claims); on a
    // shared store at least every second, so another node's claims come
    // back within a second of their lease's end.
    let release_every = if sh.shared_store {
        (sh.lease_ms / 2).clamp(10, 1_000)
    } else {
        (sh.lease_ms / 2).max(10)
    };
    let mut next_release = sh.clock.now().saturating_add_millis(release_every);
    // A look is being put off (counted once) while this node is behind.
    let mut deferred = false;
    let mut lead = ClaimLead::default();
    sh.counters
        .claim_lead_ms
        .store(lead.lead_ms(), std::sync::atomic::Ordering::Relaxed);
    loop {
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Command::Settle(tx) => settles.push(tx),
                Command::Shutdown(tx) => return stop(&sh, tx).await,
            }
        }
        let now = sh.clock.now();
        if now >= next_release {
            while_serving(&sh, &mut lead, &mut fired, &mut held, release(&sh, now)).await;
            next_release = now.saturating_add_millis(release_every);
        }
        if now >= next_reserve {
            if behind(&sh, now) {
                // Its own late runs first; the look comes once they are
                // claimed (`next_reserve` stays due).
                if !deferred {
                    Counters::bump(&sh.counters.looks_deferred, 1);
                    deferred = true;
                }
            } else {
                deferred = false;
                let look = reserve(&sh, now);
                next_reserve =
                    match while_serving(&sh, &mut lead, &mut fired, &mut held, look).await {
                        Look::Done => now.saturating_add_millis(jitter.around(reserve_every)),
                        // More late runs: the next page once these are claimed.
                        Look::Backlog => now,
                    };
            }
        }
        deliver_due(&sh, &mut held).await;
        let claim_now = {
            let st = sh.lock();
            st.wheel
                .next_deadline()
                .is_some_and(|t| t <= now.saturating_add_millis(lead.lead_ms()))
        };
        if claim_now {
            pass(&sh, now, &mut lead, &mut fired, &mut held).await;
            deliver_due(&sh, &mut held).await;
        }
        if !settles.is_empty() {
            // A settle waits until what fired is recorded (and the next
            // runs of repeating messages are in the wheel).
            sh.completer.flush().await;
            for tx in settles.drain(..) {
                let _ = tx.send(());
            }
        }
        let Wake {
            claim_at,
            deliver_at,
        } = wake(&sh, &lead, &held);
        let now = sh.clock.now();
        if claim_at.is_some_and(|t| t <= now) || deliver_at.is_some_and(|t| t <= now) {
            // More came due while delivering: go again (commands first).
            continue;
        }
        let wake_at = [claim_at, deliver_at, Some(next_release), Some(next_reserve)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Tick::MAX);
        let sleep = sh.clock.sleep_until(wake_at);
        let hint = async {
            match hints.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = sh.wake.notified() => {}
            due = hint => {
                // A run within the horizon that this wheel may not hold:
                // look now (a later one waits for the periodic look).
                if due < sh.clock.now().saturating_add_millis(sh.horizon_ms) {
                    next_reserve = Tick::ZERO;
                }
            }
            cmd = rx.recv() => match cmd {
                Some(Command::Settle(tx)) => settles.push(tx),
                Some(Command::Shutdown(tx)) => return stop(&sh, tx).await,
                // Every `Engine` clone is gone: nobody can ask for anything.
                None => return stop(&sh, tokio::sync::oneshot::channel().0).await,
            },
        }
    }
}

/// Records what was delivered, then answers the shutdown.
async fn stop(sh: &Shared, tx: tokio::sync::oneshot::Sender<()>) {
    sh.completer.stop().await;
    info!("engine driver stopped");
    let _ = tx.send(());
}

/// Expired device registrations purged per half lease at most.
const PURGE_DEVICES: usize = 10_000;

/// Takes back the runs whose leases ended before `now` and puts them in
/// the wheel again; purges expired device registrations.
async fn release(sh: &Shared, now: Tick) {
    // Expired device registrations go too, a bounded number at a time.
    match sh.registry.purge_expired(now, PURGE_DEVICES).await {
        Ok(0) => {}
        Ok(n) => debug!(devices = n, "expired device registrations purged"),
        Err(e) => debug!(error = %e, "registry failed to purge expired registrations"),
    }
    match sh.store.release_expired(now).await {
        Ok(runs) if runs.is_empty() => {
            recovered(&sh.store_failures.release, "releasing expired leases")
        }
        Ok(runs) => {
            recovered(&sh.store_failures.release, "releasing expired leases");
            warn!(
                runs = runs.len(),
                "leases expired; delivering those runs again"
            );
            Counters::bump(&sh.counters.recovered_runs, runs.len() as u64);
            let mut st = sh.lock();
            for r in runs {
                sh.schedule(&mut st, r.id, r.due);
            }
        }
        Err(e) => match sh.store_failures.release.failure(now) {
            Failure::First => warn!(error = %e, "store failed to release expired leases"),
            Failure::Again { left_out } => {
                warn!(error = %e, left_out, "store still fails to release expired leases")
            }
            Failure::Quiet => {}
        },
    }
}

/// Runs reserved per store round trip: one claim's worth ([`BATCH`]), so
/// that a page of late runs is claimed in one round trip, well within a
/// reservation's hold.
const RESERVE_PAGE: usize = BATCH;

/// How long a reservation outlives its run's due time: the slack its
/// holder has to claim the run. Short, because a node that dies holding
/// reservations delays those runs by this plus one look
/// ([`reserve_every`]); a holder that is later than this merely races
/// another node for the claim, which one of them wins.
pub(super) fn reserve_hold(horizon_ms: u64) -> u64 {
    (horizon_ms / 8).clamp(5, 250)
}

/// How far ahead a look reserves: four looks' worth (1 s by default), at
/// most the horizon. Each look then takes mostly the runs that came into
/// this window since the last look by any node, so nodes that look at
/// different moments share the runs; reserving the whole horizon at once
/// let the first node to look take nearly everything (cluster-bench: one
/// node of three claimed 82 % of the runs).
pub(super) fn reserve_window(horizon_ms: u64) -> u64 {
    horizon_ms.min(4 * reserve_every(horizon_ms))
}

/// How often an engine on a shared store looks for unreserved runs: every
/// half horizon, and at least as often as a reservation's hold, so a dead
/// node's reservations are taken over within one hold of their end.
pub(super) fn reserve_every(horizon_ms: u64) -> u64 {
    (horizon_ms / 2).min(reserve_hold(horizon_ms)).max(5)
}

/// Whether this node is behind: its wheel holds a run overdue by more
/// than a reservation's hold and not yet claimed. Such a run's reservation
/// has ended, so other nodes may take it over; a look now would take over
/// theirs in turn. So a node that is behind claims its own late runs first
/// and looks once it has; the nodes that keep up take over the runs of a
/// node that stays behind (or died), as before.
fn behind(sh: &Shared, now: Tick) -> bool {
    let hold = reserve_hold(sh.horizon_ms);
    sh.lock()
        .wheel
        .next_deadline()
        .is_some_and(|t| t.saturating_add_millis(hold) < now)
}

/// How a look ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// It reserved every run it could (or failed: retried at the next look).
    Done,
    /// It stopped after a full page of runs already due: late runs (another
    /// node's, whose reservations ended, or a backlog after a stop). Look
    /// again once they are claimed, a page at a time. Taking a whole backlog
    /// at once (pages of 4,096 until none was full) let a node hold more
    /// late runs than it could claim within a hold, so the others took
    /// them over in turn: in `cluster-bench` at 10k runs/s on two cores,
    /// where PostgreSQL could not keep up, the nodes reserved 1.6-2.7 rows
    /// and lost 0.7-1.25 claims per run racing each other for the same late
    /// runs (p99 4.8-9.7 s); a page at a time, 1.0 and 0.1 (p99 3.6-4.6 s).
    Backlog,
}

/// On a shared store: reserves the runs due within the horizon that no
/// node holds and puts them in the wheel (a run this wheel holds already
/// is simply put in again; its claim at the due time decides who fires),
/// a page at a time: runs not yet due to the end, late runs one page per
/// look ([`Look::Backlog`]).
async fn reserve(sh: &Shared, now: Tick) -> Look {
    let before = now.saturating_add_millis(reserve_window(sh.horizon_ms));
    loop {
        match sh
            .store
            .reserve_due(now, before, reserve_hold(sh.horizon_ms), RESERVE_PAGE)
            .await
        {
            Ok(runs) => {
                recovered(&sh.store_failures.reserve, "reserving due runs");
                Counters::bump(&sh.counters.reserved, runs.len() as u64);
                {
                    let mut st = sh.lock();
                    for r in &runs {
                        // A message in flight here (its run claimed while
                        // this look was under way, or its completion not
                        // yet answered) is left to that flight: its
                        // completion schedules the next run.
                        if !st.inflight.contains_key(&r.id) {
                            sh.schedule(&mut st, r.id, r.due);
                        }
                    }
                }
                if runs.len() < RESERVE_PAGE {
                    return Look::Done;
                }
                // A full page, earliest first: late up to its last run.
                if runs.last().is_some_and(|last| last.due <= now) {
                    return Look::Backlog;
                }
            }
            Err(e) => {
                match sh.store_failures.reserve.failure(now) {
                    Failure::First => warn!(error = %e, "store failed to reserve due runs"),
                    Failure::Again { left_out } => {
                        warn!(error = %e, left_out, "store still fails to reserve due runs")
                    }
                    Failure::Quiet => {}
                }
                return Look::Done;
            }
        }
    }
}

/// Logs, once, that a write that kept failing works again.
pub(super) fn recovered(throttle: &Throttle, what: &str) {
    if let Some(failures) = throttle.success() {
        info!(failures, "store works again ({what})");
    }
}

/// Claims everything the wheel holds due within the claim lead plus
/// [`CLAIM_STEP_MS`] of `now`, a batch at a time, adding the claimed runs
/// to `held` (earliest first).
async fn pass(
    sh: &Shared,
    now: Tick,
    lead: &mut ClaimLead,
    fired: &mut Vec<Run>,
    held: &mut Vec<Held>,
) {
    let until = now.saturating_add_millis(lead.lead_ms() + CLAIM_STEP_MS);
    loop {
        fired.clear();
        let n = {
            let mut st = sh.lock();
            let n = st.wheel.poll_expired(until, fired, BATCH);
            for run in fired.iter() {
                st.inflight.insert(run.id, Inflight::claiming());
            }
            n
        };
        if fired.is_empty() {
            break;
        }
        claim(sh, now, lead, fired, held).await;
        if n < BATCH {
            break;
        }
    }
}

/// A run claimed ahead of its due time, held until then.
#[derive(Debug)]
struct Held {
    run: Run,
    claimed: Claimed,
    /// When the claim ends: a run still held then (the engine stalled
    /// longer than a lease) is not delivered; the store gives it back.
    lease_until: Tick,
}

/// Claims `fired` and adds what this node won to `held`; learns the claim
/// lead from the round trip.
async fn claim(sh: &Shared, now: Tick, lead: &mut ClaimLead, fired: &[Run], held: &mut Vec<Held>) {
    let claims = fired
        .iter()
        .map(|r| Claim {
            id: r.id,
            due: r.due,
        })
        .collect();
    let lease_until = now.saturating_add_millis(sh.lease_ms);
    let asked = sh.clock.now();
    let claimed = match while_delivering(sh, held, sh.store.claim(claims, lease_until)).await {
        Ok(c) => {
            recovered(&sh.store_failures.claim, "claiming due runs");
            c
        }
        Err(e) => {
            // Nothing was claimed: put the runs back and try again shortly
            // (logged at a bounded rate: the store may be down a while).
            match sh.store_failures.claim.failure(now) {
                Failure::First => {
                    warn!(error = %e, runs = fired.len(), "store failed to claim due runs; retrying every {RETRY:?}")
                }
                Failure::Again { left_out } => {
                    warn!(error = %e, runs = fired.len(), left_out, "store still fails to claim due runs; retrying")
                }
                Failure::Quiet => {}
            }
            let retry = now.saturating_add_millis(RETRY.as_millis() as u64);
            let mut st = sh.lock();
            for run in fired {
                if st
                    .inflight
                    .remove(&run.id)
                    .is_some_and(|f| f.may_reschedule())
                {
                    // Still the run due at `run.due`: the store's claim
                    // needs it, and the runs missed by then collapse.
                    sh.schedule_at(&mut st, run.id, run.due, retry.max(run.due));
                }
            }
            return;
        }
    };
    let answered = sh.clock.now();
    lead.observe(answered.millis_since(asked), answered);
    sh.counters
        .claim_lead_ms
        .store(lead.lead_ms(), std::sync::atomic::Ordering::Relaxed);
    let mut late = 0;
    let mut st = sh.lock();
    for (run, claimed) in fired.iter().zip(claimed) {
        let Some(claimed) = claimed else {
            // Cancelled, finished or re-scheduled meanwhile, or
            // claimed by another node.
            Counters::bump(&sh.counters.claims_lost, 1);
            if st
                .inflight
                .get(&run.id)
                .is_some_and(|f| f.token().is_none())
            {
                st.inflight.remove(&run.id);
            }
            continue;
        };
        let Some(state) = st.inflight.get_mut(&run.id) else {
            continue;
        };
        Counters::bump(&sh.counters.claims_won, 1);
        if run.due < answered {
            late += 1;
        }
        state.claimed(claimed.token, claimed.envelope.plan.is_repeating());
        if state.is_held_and_cancelled() {
            // Cancelled while the claim was under way: never delivered (the
            // store's cancel has the last word; this claim is never
            // completed), and not counted as scheduled.
            st.inflight.remove(&run.id);
            continue;
        }
        held.push(Held {
            run: *run,
            claimed,
            lease_until,
        });
        st.held += 1;
    }
    drop(st);
    Counters::bump(&sh.counters.claimed_late, late);
    // Earliest first, as the deliveries between store calls expect; stable:
    // runs due at the same time keep their claim order.
    held.sort_by_key(|h| h.run.due);
}

/// Awaits `work` (a store round trip) while delivering the held runs that
/// come due meanwhile, each at its due time: the driver's store calls
/// (claims, looks, releases) are not on the path from a held run's due
/// time to its subscribers. Delivering only between store calls made every
/// held run wait for whatever round trip was under way at its due time
/// (with PostgreSQL under load, tens of ms; test:
/// `a_held_run_is_delivered_on_time_while_the_store_is_slow`).
async fn while_delivering<T>(
    sh: &Shared,
    held: &mut Vec<Held>,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    loop {
        let deliver = sleep_until(sh, held.first().map(|h| h.run.due));
        tokio::select! {
            biased;
            out = &mut work => return out,
            () = deliver => deliver_due(sh, held).await,
        }
    }
}

/// Sleeps until `at` on the engine's clock; for `None`, for ever.
async fn sleep_until(sh: &Shared, at: Option<Tick>) {
    match at {
        Some(t) => sh.clock.sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Awaits `work` (a look or a release: a store round trip that may take
/// tens of ms under load) while claiming and delivering as if it were not
/// under way: runs come due for their claim (a lead ahead) and for their
/// delivery meanwhile. Claims that waited for a look to end were claimed
/// after their due time whenever the look and the claim together took
/// longer than the lead (cluster-bench, 3 nodes at 10k runs/s: 1-2.5 % of
/// the runs claimed late).
async fn while_serving<T>(
    sh: &Shared,
    lead: &mut ClaimLead,
    fired: &mut Vec<Run>,
    held: &mut Vec<Held>,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    loop {
        let Wake {
            claim_at,
            deliver_at,
        } = wake(sh, lead, held);
        let timer = sleep_until(sh, claim_at.into_iter().chain(deliver_at).min());
        tokio::select! {
            biased;
            out = &mut work => return out,
            () = timer => {
                deliver_due(sh, held).await;
                let now = sh.clock.now();
                if claim_at.is_some_and(|t| t <= now) {
                    pass(sh, now, lead, fired, held).await;
                    deliver_due(sh, held).await;
                }
            }
            // A run earlier than the wheel's first came in: look again.
            () = sh.wake.notified() => {}
        }
    }
}

/// When the driver has work next (see [`wake`]).
struct Wake {
    /// The wheel's first run is to be claimed (a lead ahead of its due
    /// time).
    claim_at: Option<Tick>,
    /// The first held run is due for delivery.
    deliver_at: Option<Tick>,
}

/// When the driver has work next; records the wheel's first deadline as
/// the planned wake (a publish of an earlier run wakes the driver).
fn wake(sh: &Shared, lead: &ClaimLead, held: &[Held]) -> Wake {
    let next = {
        let mut st = sh.lock();
        let next = st.wheel.next_deadline();
        st.planned_wake = next;
        next
    };
    Wake {
        // Claims are made a lead ahead; held runs are delivered at their
        // due time.
        claim_at: next.map(|t| t.saturating_sub_millis(lead.lead_ms())),
        deliver_at: held.first().map(|h| h.run.due),
    }
}

/// Delivers the held runs that are due now and hands them to the
/// completer.
async fn deliver_due(sh: &Shared, held: &mut Vec<Held>) {
    let now = sh.clock.now();
    let due = held.partition_point(|h| h.run.due <= now);
    if due == 0 {
        return;
    }
    // Mark each run delivering, unless a cancel came first. A cancel that
    // meets a delivering run waits until the batch has been delivered, so
    // it comes before a delivery or after it, never during, and the lock
    // is not held while fanning out.
    let mut go: Vec<(Run, Claimed)> = Vec::with_capacity(due);
    {
        let mut st = sh.lock();
        // Held runs leaving the count; a cancel that stopped one already
        // took it off.
        let mut leaving = due;
        for Held {
            run,
            claimed,
            lease_until,
        } in held.drain(..due)
        {
            let Some(state) = st.inflight.get_mut(&run.id) else {
                continue;
            };
            if state.token() != Some(claimed.token) {
                continue;
            }
            if state.is_held_and_cancelled() {
                leaving -= 1;
            }
            if now >= lease_until {
                // The claim ran out before its run was due: another claim
                // (after the store releases it) delivers the run.
                st.inflight.remove(&run.id);
                continue;
            }
            if state.begin_delivery() {
                go.push((run, claimed));
            } else {
                // Cancelled before delivery: the store's cancel has the
                // last word; this claim is simply never completed.
                st.inflight.remove(&run.id);
            }
        }
        st.held -= leaving;
    }
    if go.is_empty() {
        return;
    }
    let mut done = Vec::with_capacity(go.len());
    for (run, claimed) in &go {
        let counts = fan_out(sh, &claimed.envelope, now);
        debug!(message_id = %run.id, channel = %claimed.envelope.channel.escape_debug(), pubsub = counts.pubsub, "fired");
        done.push(counts);
    }
    {
        let mut st = sh.lock();
        for ((run, _), counts) in go.iter().zip(&done) {
            if let Some(state) = st.inflight.get_mut(&run.id) {
                state.finish(*counts);
            }
        }
    }
    sh.delivered.notify_waiters();
    for ((run, claimed), counts) in go.into_iter().zip(done) {
        let after = claimed.envelope.plan.after_run(run.due, now);
        if after.missed > 0 {
            if after.missed_is_exact {
                info!(message_id = %run.id, missed = after.missed, "missed runs collapsed into one");
            } else {
                info!(message_id = %run.id, at_least = after.missed, "missed runs collapsed into one");
            }
        }
        sh.completer.submit(Done {
            completion: Completion {
                id: run.id,
                token: claimed.token,
                counts,
                next: after.next.map_or(Next::Done, Next::At),
            },
            next: after.next,
            // Without a gateway (a message stored by an engine that had
            // one) the push side has nowhere to go: no job.
            push: (claimed.envelope.plan.policy().includes_push() && sh.pipeline.is_configured())
                .then_some(JobKey {
                    message: run.id,
                    run: run.due,
                }),
        });
    }
}
