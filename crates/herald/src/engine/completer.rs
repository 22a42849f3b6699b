//! The completer: records delivered runs in the store in batches, off the
//! paths that answer publishes and fire runs, and schedules each repeating
//! message's next run once its completion is durable.
//!
//! An immediate publish answers as soon as its message is durable and
//! delivered; its completion joins the next batch here (one commit for
//! many publishes, none on the answer's path). The driver hands its runs
//! over too, so it goes on to the next due batch while the store commits.
//! A completion that fails with a retryable error (the store cannot write
//! for now: a full disk) is retried with backoff on the engine's clock
//! until the store takes it or the engine shuts down, logged at a bounded
//! rate; one that fails for good is given up: the run's claim stays in the
//! store until its lease ends and the run is delivered again
//! (at-least-once) — never turned into an error answer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::Tick;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{error, warn};

use super::driver::recovered;
use super::shared::Shared;
use super::stats::Counters;
use super::throttle::Failure;
use crate::store::{Completion, JobKey, StoreError};

/// Completions per store call at most.
const BATCH: usize = 1024;

/// The first retry's delay; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long a batch of completions waits for the cluster bus to take its
/// runs' frames (a bus that answers slower than this is logged and no
/// longer waited for).
const BUS_WAIT: Duration = Duration::from_secs(5);

/// A delivered run to record.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) completion: Completion,
    /// The message's next run, scheduled once the completion is stored.
    pub(crate) next: Option<Tick>,
    /// The run's push job, recorded before the completion (a `PUSH`/`BOTH`
    /// run).
    pub(crate) push: Option<JobKey>,
}

#[derive(Debug)]
enum Job {
    Complete(Done),
    /// Answer once everything submitted before has been recorded.
    Flush(oneshot::Sender<()>),
    /// Record what was submitted before, then stop.
    Stop(oneshot::Sender<()>),
}

/// The handle the engine submits completions through.
#[derive(Debug)]
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<Job>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Completer {
    pub(crate) fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            task: Mutex::new(None),
        }
    }

    /// Spawns the task (once).
    pub(crate) fn start(sh: &Arc<Shared>) {
        let rx = sh
            .completer
            .rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rx) = rx {
            let task = tokio::spawn(run(sh.clone(), rx));
            *sh.completer.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
    }

    /// Queues a delivered run for recording.
    pub(crate) fn submit(&self, done: Done) {
        // After a stop nobody records it: the claim's lease brings the run
        // back (at-least-once), as after a crash.
        let _ = self.tx.send(Job::Complete(done));
    }

    /// Waits until everything submitted so far has been recorded (or given
    /// up on).
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Records what was submitted, then stops the task.
    pub(crate) async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(sh: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::with_capacity(BATCH);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        jobs.clear();
        if rx.recv_many(&mut jobs, BATCH).await == 0 {
            return;
        }
        let mut answers = Vec::new();
        let mut stop = None;
        for job in jobs.drain(..) {
            match job {
                Job::Complete(done) => batch.push(done),
                Job::Flush(tx) => answers.push(tx),
                Job::Stop(tx) => stop = Some(tx),
            }
        }
        if !batch.is_empty() {
            record(&sh, &mut batch).await;
        }
        for tx in answers {
            let _ = tx.send(());
        }
        if let Some(tx) = stop {
            let _ = tx.send(());
            return;
        }
    }
}

/// Stores a batch of completions (retrying), then lets go of the runs and
/// schedules the next ones.
async fn record(sh: &Shared, batch: &mut Vec<Done>) {
    // Their frames are on the bus first (see `BusLink::handed_over`).
    if let Some(link) = &sh.bus {
        link.handed_over(sh, BUS_WAIT).await;
    }
    let completions: Vec<Completion> = batch.iter().map(|d| d.completion.clone()).collect();
    let jobs: Vec<JobKey> = batch.iter().filter_map(|d| d.push).collect();
    let mut backoff = FIRST_BACKOFF;
    let throttle = &sh.store_failures.complete;
    let mut jobs_recorded = jobs.is_empty();
    let applied = loop {
        // A run's push job first: a crash between the two fires the run
        // again, and adding its job again changes nothing.
        let attempt = async {
            if !jobs_recorded {
                sh.store.add_push_jobs(jobs.clone()).await?;
                jobs_recorded = true;
            }
            sh.store.complete(completions.clone()).await
        };
        let result: Result<Vec<bool>, StoreError> = attempt.await;
        match result {
            Ok(applied) => {
                recovered(throttle, "recording delivered runs");
                break applied;
            }
            // The store cannot write for now: again until it can. Shutting
            // down: one attempt, no waiting (the leases bring the runs
            // back at the next start).
            Err(e) if e.is_retryable() && !sh.is_shut() => {
                let now = sh.clock.now();
                match throttle.failure(now) {
                    Failure::First => {
                        warn!(error = %e, runs = batch.len(), "store failed to record delivered runs; retrying until it can")
                    }
                    Failure::Again { left_out } => {
                        warn!(error = %e, runs = batch.len(), left_out, "store still fails to record delivered runs; retrying")
                    }
                    Failure::Quiet => {}
                }
                sh.clock
                    .sleep_until(now.saturating_add_millis(backoff.as_millis() as u64))
                    .await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                error!(
                    error = %e,
                    runs = batch.len(),
                    "store failed to record delivered runs; they will be delivered again when their leases end"
                );
                Counters::bump(&sh.counters.completion_failures, batch.len() as u64);
                break vec![false; batch.len()];
            }
        }
    };
    if !jobs.is_empty() && jobs_recorded {
        sh.pipeline.wake();
    }
    let mut st = sh.lock();
    for (i, done) in batch.drain(..).enumerate() {
        let id = done.completion.id;
        let Some(run) = st.inflight.get(&id) else {
            continue;
        };
        if run.token() != Some(done.completion.token) {
            // Released meanwhile and claimed again: that claim is in charge.
            continue;
        }
        let reschedule = applied.get(i).copied().unwrap_or(false) && run.may_reschedule();
        st.inflight.remove(&id);
        if reschedule && let Some(next) = done.next {
            sh.schedule(&mut st, id, next);
        }
    }
}
