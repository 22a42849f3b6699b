//! The driver task: sleeps until the wheel's next deadline, then claims,
//! delivers and completes every due run.

use std::sync::Arc;
use std::time::Duration;

use herald_core::{Key, Tick};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Command, Inflight, Run, Shared, deliver, recurrence_of};
use crate::store::{Claim, Completion, Next, RunState};
use crate::{DeliveryCounts, Envelope};

/// Runs taken from the wheel per store round trip.
const BATCH: usize = 1024;

/// Records read per page while reloading the store.
const RELOAD_PAGE: usize = 10_000;

/// How long to wait before retrying after a store failure.
const RETRY: Duration = Duration::from_millis(200);

pub(crate) async fn run(
    sh: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    single_node: bool,
) {
    reload(&sh, single_node).await;
    sh.ready.send_replace(true);
    let mut settles = Vec::new();
    let mut fired: Vec<(Key, Run)> = Vec::with_capacity(BATCH);
    loop {
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Command::Settle(tx) => settles.push(tx),
                Command::Shutdown(tx) => {
                    info!("engine driver stopped");
                    let _ = tx.send(());
                    return;
                }
            }
        }
        let now = sh.clock.now();
        pass(&sh, now, &mut fired).await;
        for tx in settles.drain(..) {
            let _ = tx.send(());
        }
        let next = {
            let mut st = sh.lock();
            let next = st.wheel.next_deadline();
            st.planned_wake = next;
            next
        };
        if next.is_some_and(|t| t <= sh.clock.now()) {
            // More came due while delivering: go again (commands first).
            continue;
        }
        let sleep = match next {
            Some(t) => sh.clock.sleep_until(t),
            None => Box::pin(std::future::pending()),
        };
        tokio::select! {
            () = sleep => {}
            () = sh.wake.notified() => {}
            cmd = rx.recv() => match cmd {
                Some(Command::Settle(tx)) => settles.push(tx),
                Some(Command::Shutdown(tx)) => {
                    info!("engine driver stopped");
                    let _ = tx.send(());
                    return;
                }
                // Every `Engine` clone is gone: nobody can ask for anything.
                None => return,
            },
        }
    }
}

/// Rebuilds the wheel from the store's unfinished records.
async fn reload(sh: &Shared, single_node: bool) {
    let now = sh.clock.now();
    // A single node's claims found at start-up are its own, from before a
    // crash: take them back now rather than waiting for the lease.
    let before = if single_node { Tick::MAX } else { now };
    let released = loop {
        match sh.store.release_expired(before).await {
            Ok(n) => break n,
            Err(e) => {
                warn!(error = %e, "store failed while releasing claims; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    let mut after = None;
    let mut loaded = 0u64;
    loop {
        let page = match sh.store.pending(after, RELOAD_PAGE).await {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "store failed while reloading; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let full = page.len() == RELOAD_PAGE;
        after = page.last().map(|r| r.envelope.id);
        {
            let mut st = sh.lock();
            for r in &page {
                if let RunState::Scheduled { due } = r.state {
                    sh.schedule(&mut st, r.envelope.id, due);
                    loaded += 1;
                }
            }
        }
        if !full {
            break;
        }
    }
    super::Counters::bump(&sh.counters.recovered_runs, released);
    super::Counters::bump(&sh.counters.reloaded, loaded);
    if loaded > 0 || released > 0 {
        info!(
            loaded,
            released, "reloaded scheduled messages from the store"
        );
    }
}

/// Fires everything due at `now`, a batch at a time.
async fn pass(sh: &Shared, now: Tick, fired: &mut Vec<(Key, Run)>) {
    loop {
        fired.clear();
        let n = {
            let mut st = sh.lock();
            let n = st.wheel.poll_expired(now, fired, BATCH);
            for (key, run) in fired.iter() {
                if st.keys.get(&run.id) == Some(key) {
                    st.keys.remove(&run.id);
                }
                st.inflight.insert(run.id, Inflight::default());
            }
            n
        };
        if fired.is_empty() {
            return;
        }
        fire(sh, now, fired).await;
        if n < BATCH {
            return;
        }
    }
}

/// One claimed run on its way through deliver and complete.
struct Firing {
    run: Run,
    envelope: Arc<Envelope>,
    next: Option<Tick>,
    repeating: bool,
    counts: Option<DeliveryCounts>,
}

async fn fire(sh: &Shared, now: Tick, fired: &[(Key, Run)]) {
    let claims = fired
        .iter()
        .map(|(_, r)| Claim {
            id: r.id,
            due: r.due,
        })
        .collect();
    let lease_until = now.saturating_add_millis(sh.lease_ms);
    let claimed = match sh.store.claim(claims, lease_until).await {
        Ok(c) => c,
        Err(e) => {
            // Nothing was claimed: put the runs back and try again shortly.
            warn!(error = %e, runs = fired.len(), "store failed to claim due runs; retrying");
            let retry = now.saturating_add_millis(RETRY.as_millis() as u64);
            let mut st = sh.lock();
            for (_, run) in fired {
                if st.inflight.remove(&run.id).is_some_and(|f| !f.cancelled) {
                    sh.schedule(&mut st, run.id, retry.max(run.due));
                }
            }
            return;
        }
    };

    // Work out each run's successor outside the lock (cron is not free).
    let mut runs = Vec::with_capacity(fired.len());
    let mut skipped = Vec::new();
    for ((_, run), envelope) in fired.iter().zip(claimed) {
        let Some(envelope) = envelope else {
            skipped.push(run.id);
            continue;
        };
        let (next, repeating) = match recurrence_of(&envelope.delivery) {
            Ok(Some(rule)) => match rule.next_after(run.due) {
                // On time: the next run keeps the rule's grid (no drift from
                // the ms this run was late).
                Some(next) if next > now => (Some(next), true),
                None => (None, true),
                // Late by a period or more (a busy driver, or a restart):
                // this run stands in for the missed ones and the rule
                // continues after now (`Recurrence::resume`).
                Some(_) => {
                    let resume = rule.resume(run.due, now);
                    info!(message_id = %run.id, missed = resume.missed, "missed runs collapsed into one");
                    (resume.next, true)
                }
            },
            Ok(None) => (None, false),
            Err(e) => {
                warn!(message_id = %run.id, error = %e, "stored repeat rule no longer valid; firing once");
                (None, false)
            }
        };
        runs.push(Firing {
            run: *run,
            envelope,
            next,
            repeating,
            counts: None,
        });
    }

    // Deliver, unless cancelled meanwhile. Under the lock each run is
    // marked `delivering`; a cancel that finds that mark waits until the
    // batch is delivered (then it sees `delivered`). So a cancel either
    // comes first (no delivery) or after the delivery, never during it, and
    // the lock is not held while fanning out.
    let mut go = Vec::with_capacity(runs.len());
    {
        let mut st = sh.lock();
        for (i, f) in runs.iter().enumerate() {
            let Some(state) = st.inflight.get_mut(&f.run.id) else {
                continue;
            };
            if state.cancelled {
                continue;
            }
            state.repeating = f.repeating;
            state.delivering = true;
            go.push(i);
        }
    }
    for &i in &go {
        let f = &mut runs[i];
        let counts = deliver(sh, &f.envelope, now);
        debug!(message_id = %f.run.id, channel = %f.envelope.channel, pubsub = counts.pubsub, "fired");
        f.counts = Some(counts);
    }
    if !go.is_empty() {
        let mut st = sh.lock();
        for &i in &go {
            if let Some(state) = st.inflight.get_mut(&runs[i].run.id) {
                state.delivering = false;
                state.delivered = true;
                state.counts = runs[i].counts;
            }
        }
        drop(st);
        sh.delivered.notify_waiters();
    }

    let completions: Vec<Completion> = runs
        .iter()
        .filter_map(|f| {
            Some(Completion {
                id: f.run.id,
                due: f.run.due,
                counts: f.counts?,
                next: f.next.map_or(Next::Done, Next::At),
            })
        })
        .collect();
    // On failure the claims stay in the store until their lease runs out;
    // the runs are then delivered again (at-least-once).
    if !completions.is_empty()
        && let Err(e) = sh.store.complete(completions).await
    {
        warn!(error = %e, "store failed to complete delivered runs");
    }

    let mut st = sh.lock();
    for id in skipped {
        st.inflight.remove(&id);
    }
    for f in runs {
        let state = st.inflight.remove(&f.run.id).unwrap_or_default();
        if let (Some(next), Some(_), false) = (f.next, f.counts, state.cancelled) {
            sh.schedule(&mut st, f.run.id, next);
        }
    }
}
