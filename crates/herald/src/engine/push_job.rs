//! One push job: the push side of one fired run, walked through its
//! audience in pages, sent in batches, checkpointed after each, then its
//! retries until each notification has a final outcome.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use herald_core::Tick;
use tracing::{debug, warn};

use super::gateway::Access;
use super::jitter::Jitter;
use super::shared::Shared;
use crate::store::{Checkpoint, PushJob, RunState, StoreError};
use crate::{
    Audience, CompiledSend, Delivery, DeliveryCounts, DeviceRegistration, InvalidToken, MAX_BATCH,
    Notification, NotificationId, Os, Outcome, PushBroadcast, PushContent, PushRetry, Refusal,
    limits,
};

/// Runs `job` until it is done, stale, or the engine shuts down; then
/// leaves the pipeline's activity.
pub(crate) async fn run(sh: Arc<Shared>, job: PushJob) {
    let key = job.key;
    match Runner::load(sh.clone(), job).await {
        Ok(Some(mut runner)) => match runner.drive().await {
            Ok(()) | Err(Stop::ShutDown) => {}
            Err(e) => {
                warn!(message_id = %key.message, error = %e, "push job stopped; it resumes when its lease ends")
            }
        },
        Ok(None) => {}
        Err(e) => {
            warn!(message_id = %key.message, error = %e, "push job could not start; it resumes when its lease ends")
        }
    }
    sh.pipeline
        .counters
        .jobs_running
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    sh.pipeline.activity.leave();
}

/// Why a job stops early.
#[derive(Debug)]
enum Stop {
    /// Another claim holds the job now.
    Stale,
    /// The engine is shutting down (the job resumes at the next start).
    ShutDown,
    Store(StoreError),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stale => f.write_str("another claim holds the job"),
            Self::ShutDown => f.write_str("the engine is shutting down"),
            Self::Store(e) => e.fmt(f),
        }
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// A batch on its way to a gateway.
struct Send {
    gateway: usize,
    batch: Vec<(Notification, u32)>,
    task: tokio::task::JoinHandle<Delivery>,
}

/// A page whose batches are on their way; checkpointed once they answer.
struct PageInFlight {
    sends: Vec<Send>,
    tally: Tally,
    cursor: Option<String>,
    listed: bool,
    handed: u64,
}

/// What one batch did, to checkpoint.
#[derive(Debug, Default)]
struct Tally {
    counts: DeliveryCounts,
    retries: Vec<PushRetry>,
    resolved: Vec<String>,
}

struct Runner {
    sh: Arc<Shared>,
    job: PushJob,
    audience: Audience,
    expires_at: Tick,
    collapse_key: Option<String>,
    throttle: Option<u32>,
    apple: Arc<PushContent>,
    android: Arc<PushContent>,
    /// A template send whose content differs per device.
    per_device: Option<CompiledSend>,
    lease_until: Tick,
    /// Notifications handed out when this claim started.
    handed_before: u64,
    /// This claim's final outcomes that were not configuration failures.
    delivered_outcomes: u64,
    config_failures: u64,
    config_error: Option<String>,
    rng: Jitter,
}

impl Runner {
    /// The job's runner, or `None` when its message is gone or no longer
    /// wants it (the job is finished then).
    async fn load(sh: Arc<Shared>, job: PushJob) -> Result<Option<Self>, Stop> {
        let Some(record) = sh.store.get(job.key.message).await? else {
            finish_gone(&sh, &job).await?;
            return Ok(None);
        };
        let envelope = record.envelope.clone();
        let options = envelope.plan.options();
        let audience = Audience {
            channel: envelope.channel.clone(),
            os: options.push_broadcast.unwrap_or(PushBroadcast::ALL),
            devices: (!options.push_singlecast.is_empty()).then(|| {
                options
                    .push_singlecast
                    .iter()
                    .cloned()
                    .collect::<BTreeSet<_>>()
            }),
            segment: envelope.plan.segment().cloned(),
        };
        let ttl_ms = u64::from(
            options
                .push_time_to_live
                .unwrap_or(limits::DEFAULT_PUSH_TTL_SECONDS),
        ) * 1000;
        let headers = &envelope.publish.headers;
        let compiled = envelope.template.as_ref().map(|t| t.compile());
        let (apple, android, per_device) = match compiled {
            Some(t) if !t.is_constant() => (Arc::default(), Arc::default(), Some(t)),
            Some(t) => (
                Arc::new(t.content(Os::Ios, &())),
                Arc::new(t.content(Os::Android, &())),
                None,
            ),
            None => (
                Arc::new(PushContent::for_os(Os::Ios, headers, &envelope.body)),
                Arc::new(PushContent::for_os(Os::Android, headers, &envelope.body)),
                None,
            ),
        };
        let now = sh.clock.now();
        let seed = job.token.get() ^ job.key.message.as_u128() as u64 ^ now.as_millis();
        Ok(Some(Self {
            expires_at: job.key.run.saturating_add_millis(ttl_ms),
            collapse_key: options.push_collapse_key.clone(),
            throttle: options.push_throttle_per_minute,
            lease_until: now.saturating_add_millis(sh.lease_ms),
            handed_before: job.handed,
            delivered_outcomes: 0,
            config_failures: 0,
            config_error: None,
            rng: Jitter::new(seed),
            sh,
            job,
            audience,
            apple,
            android,
            per_device,
        }))
    }

    async fn drive(&mut self) -> Result<(), Stop> {
        if self.throttle.is_none() && !self.list_pipelined().await? {
            return self.stop_cancelled().await;
        }
        while !self.job.listed {
            if self.cancelled().await? {
                return self.stop_cancelled().await;
            }
            self.next_page().await?;
        }
        loop {
            let retries = self.sh.store.push_retries(self.job.key, MAX_BATCH).await?;
            let Some(first) = retries.first() else { break };
            if self.cancelled().await? {
                return self.stop_cancelled().await;
            }
            let now = self.sh.clock.now();
            if first.due > now {
                self.sleep_until(first.due).await?;
                continue;
            }
            let due: Vec<PushRetry> = retries.into_iter().take_while(|r| r.due <= now).collect();
            let mut tally = Tally::default();
            let mut items = Vec::with_capacity(due.len());
            for r in due {
                match self.sh.registry.device(&r.device_id).await? {
                    Some(d) if !d.is_expired(now) && self.audience.admits(&d, now) => {
                        items.push((d, r.attempts));
                    }
                    _ => {
                        // Unregistered (or moved out of the audience) since.
                        tally.counts.push_failed += 1;
                        self.delivered_outcomes += 1;
                        tally.resolved.push(r.device_id);
                    }
                }
            }
            self.send(items, &mut tally).await;
            self.checkpoint(tally, false).await?;
        }
        self.finish().await
    }

    /// Reads, sends and checkpoints the next page of the audience.
    async fn next_page(&mut self) -> Result<(), Stop> {
        let now = self.sh.clock.now();
        let page = self
            .audience
            .page(
                &*self.sh.registry,
                self.job.cursor.as_deref(),
                MAX_BATCH,
                now,
            )
            .await?;
        let devices = page.devices;
        let mut at = 0;
        while at < devices.len() {
            // The throttle: notification `i` of the run goes no earlier
            // than `run + i × 60 s / per_minute`.
            let now = self.sh.clock.now();
            let mut end = at;
            while end < devices.len() && self.slot(self.job.handed + (end - at) as u64) <= now {
                end += 1;
            }
            if end == at {
                let slot = self.slot(self.job.handed);
                self.sleep_until(slot).await?;
                continue;
            }
            let chunk: Vec<(Arc<DeviceRegistration>, u32)> =
                devices[at..end].iter().map(|d| (d.clone(), 0)).collect();
            let mut tally = Tally::default();
            tally.counts.push_queued = chunk.len() as u64;
            self.job.handed += chunk.len() as u64;
            self.send(chunk, &mut tally).await;
            // First attempts have no retry row to resolve.
            tally.resolved.clear();
            at = end;
            if at < devices.len() {
                self.job.cursor = Some(devices[at - 1].device_id.clone());
                self.checkpoint(tally, false).await?;
            } else {
                self.job.cursor.clone_from(&page.cursor);
                self.job.listed = page.done;
                self.checkpoint(tally, false).await?;
            }
        }
        if devices.is_empty() {
            self.job.cursor.clone_from(&page.cursor);
            self.job.listed = page.done;
            self.checkpoint(Tally::default(), false).await?;
        }
        Ok(())
    }

    /// The earliest time notification `i` of the run may go.
    fn slot(&self, i: u64) -> Tick {
        match self.throttle {
            Some(per_minute) => self
                .job
                .key
                .run
                .saturating_add_millis(i.saturating_mul(60_000) / u64::from(per_minute)),
            None => self.job.key.run,
        }
    }

    /// Walks the audience with up to `in_flight` pages sent and not yet
    /// checkpointed (their batches run on their own tasks); checkpoints
    /// pages in order, so a crash resends at most those pages. `false`
    /// when a cancel stopped the walk.
    async fn list_pipelined(&mut self) -> Result<bool, Stop> {
        let in_flight = self.sh.pipeline.in_flight;
        let mut pages: VecDeque<PageInFlight> = VecDeque::new();
        let mut cursor = self.job.cursor.clone();
        let mut done = self.job.listed;
        let mut handed = self.job.handed;
        while !done || !pages.is_empty() {
            if done || pages.len() >= in_flight {
                if let Some(page) = pages.pop_front() {
                    self.complete(page).await?;
                }
                continue;
            }
            if self.cancelled().await? {
                while let Some(page) = pages.pop_front() {
                    self.complete(page).await?;
                }
                return Ok(false);
            }
            let now = self.sh.clock.now();
            let page = self
                .audience
                .page(&*self.sh.registry, cursor.as_deref(), MAX_BATCH, now)
                .await?;
            cursor.clone_from(&page.cursor);
            done = page.done;
            let mut tally = Tally::default();
            tally.counts.push_queued = page.devices.len() as u64;
            handed += page.devices.len() as u64;
            let items = page.devices.into_iter().map(|d| (d, 0)).collect();
            let prepared = self.prepare(items, &mut tally);
            pages.push_back(PageInFlight {
                sends: self.dispatch(prepared),
                tally,
                cursor: cursor.clone(),
                listed: done,
                handed,
            });
        }
        Ok(true)
    }

    /// Waits for a page's batches, tallies them and checkpoints the page.
    async fn complete(&mut self, page: PageInFlight) -> Result<(), Stop> {
        let mut tally = page.tally;
        self.await_sends(page.sends, &mut tally).await;
        // First attempts have no retry row to resolve.
        tally.resolved.clear();
        self.job.cursor = page.cursor;
        self.job.listed = page.listed;
        self.job.handed = page.handed;
        self.checkpoint(tally, false).await
    }

    /// Sends `items` (device, failed attempts so far) through their
    /// gateways and tallies the outcomes.
    async fn send(&mut self, items: Vec<(Arc<DeviceRegistration>, u32)>, tally: &mut Tally) {
        let prepared = self.prepare(items, tally);
        let sends = self.dispatch(prepared);
        self.await_sends(sends, tally).await;
    }

    /// Waits for each batch's answer, in order, and tallies it.
    async fn await_sends(&mut self, sends: Vec<Send>, tally: &mut Tally) {
        for send in sends {
            let delivery = match send.task.await {
                Ok(d) => d,
                // The send task died: nothing is known of its batch.
                Err(_) => Delivery::all(send.batch.len(), Outcome::Retry { after: None }),
            };
            self.absorb(send.gateway, &send.batch, delivery, tally)
                .await;
        }
    }

    /// Sorts `items` by gateway: what can be sent, per gateway; what
    /// cannot (expired, no gateway, a paused gateway) is tallied at once.
    fn prepare(
        &mut self,
        items: Vec<(Arc<DeviceRegistration>, u32)>,
        tally: &mut Tally,
    ) -> Vec<Vec<(Notification, u32)>> {
        let now = self.sh.clock.now();
        let sh = self.sh.clone();
        let mut per_gateway: Vec<Vec<(Notification, u32)>> =
            sh.pipeline.gateways.iter().map(|_| Vec::new()).collect();
        for (device, attempts) in items {
            if now >= self.expires_at {
                self.expired(tally, &device.device_id);
                continue;
            }
            let Some(g) = sh
                .pipeline
                .gateways
                .iter()
                .position(|g| g.serves(device.os))
            else {
                let why = match device.os {
                    Os::Wp => {
                        "Windows Phone devices cannot receive push notifications (no gateway)."
                            .to_owned()
                    }
                    os => format!("No push gateway is configured for {os} devices."),
                };
                self.config_failure(tally, &device.device_id, why);
                continue;
            };
            match sh.pipeline.gateways[g].access(now) {
                Access::Open => per_gateway[g].push((self.notification(&device), attempts)),
                Access::Refused(why) => self.config_failure(tally, &device.device_id, why),
                Access::WaitUntil(at) => {
                    self.retry_at(tally, &device.device_id, attempts, Some(at))
                }
            }
        }
        per_gateway
    }

    /// Starts one task per batch (each waits for its gateway's permit).
    fn dispatch(&self, per_gateway: Vec<Vec<(Notification, u32)>>) -> Vec<Send> {
        let mut sends = Vec::new();
        for (g, notes) in per_gateway.into_iter().enumerate() {
            for chunk in notes.chunks(MAX_BATCH) {
                let batch: Vec<(Notification, u32)> = chunk.to_vec();
                let notes: Vec<Notification> = batch.iter().map(|(n, _)| n.clone()).collect();
                let sh = self.sh.clone();
                let task = tokio::spawn(async move {
                    let gateway = &sh.pipeline.gateways[g];
                    let n = notes.len() as u64;
                    bump(&gateway.counters.in_flight, n);
                    let delivery = {
                        let _permit = gateway.permits.acquire().await;
                        gateway.transport.send(&notes).await
                    };
                    gateway
                        .counters
                        .in_flight
                        .fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
                    delivery
                });
                sends.push(Send {
                    gateway: g,
                    batch,
                    task,
                });
            }
        }
        sends
    }

    /// Tallies a gateway's answer to a batch.
    async fn absorb(
        &mut self,
        g: usize,
        batch: &[(Notification, u32)],
        delivery: Delivery,
        tally: &mut Tally,
    ) {
        let sh = self.sh.clone();
        let gateway = &sh.pipeline.gateways[g];
        let now = self.sh.clock.now();
        let refused = delivery.refused;
        // What was not attempted fails (credentials) or waits for the
        // pause's end (quota), below.
        let paused_until = match &refused {
            Some(r) => {
                bump(&gateway.counters.refusals, 1);
                warn!(gateway = gateway.transport.name(), refusal = %r, "push gateway paused");
                Some(gateway.pause(r.clone(), now))
            }
            None => {
                gateway.resume();
                None
            }
        };
        let mut invalid = Vec::new();
        let c = &gateway.counters;
        for ((note, attempts), outcome) in batch.iter().zip(delivery.outcomes) {
            let device = &note.device_id;
            bump(
                match &outcome {
                    Outcome::Sent => &c.sent,
                    Outcome::Failed { .. } => &c.failed,
                    Outcome::InvalidToken { .. } => &c.invalid_tokens,
                    Outcome::Retry { .. } => &c.retries,
                },
                1,
            );
            match (outcome, &refused) {
                (
                    Outcome::Retry { .. },
                    Some(r @ (Refusal::Credentials { .. } | Refusal::Misconfigured { .. })),
                ) => {
                    let why = gateway.describe(r);
                    self.config_failure(tally, device, why);
                }
                (Outcome::Retry { .. }, Some(Refusal::Quota { .. })) => {
                    self.retry_at(tally, device, *attempts + 1, paused_until);
                }
                (Outcome::Sent, _) => {
                    tally.counts.push_sent += 1;
                    self.delivered_outcomes += 1;
                    tally.resolved.push(device.clone());
                }
                (Outcome::Failed { reason }, _) => {
                    debug!(device = %device.escape_debug(), reason = %reason.escape_debug(), "push notification failed");
                    tally.counts.push_failed += 1;
                    self.delivered_outcomes += 1;
                    tally.resolved.push(device.clone());
                }
                (Outcome::InvalidToken { at }, _) => {
                    invalid.push(InvalidToken {
                        device_id: device.clone(),
                        device_token: note.device_token.clone(),
                        seen_at: at.unwrap_or(now),
                    });
                }
                (Outcome::Retry { after }, None) => {
                    let attempts = *attempts + 1;
                    let unit = self.rng.unit();
                    match self.sh.pipeline.policy.next_attempt(
                        now,
                        attempts,
                        after,
                        self.expires_at,
                        unit,
                    ) {
                        Some(due) => tally.retries.push(PushRetry {
                            device_id: device.clone(),
                            attempts,
                            due,
                        }),
                        None => self.expired(tally, device),
                    }
                }
            }
        }
        if !invalid.is_empty() {
            let removed = match self.sh.registry.remove_invalid(invalid.clone()).await {
                Ok(r) => r.into_iter().map(Some).collect(),
                Err(e) => {
                    warn!(error = %e, "registry failed to remove invalid tokens");
                    vec![None; invalid.len()]
                }
            };
            for (t, removed) in invalid.into_iter().zip(removed) {
                // A device registered again since keeps its registration,
                // and this notification counts as failed.
                match removed {
                    Some(false) => tally.counts.push_failed += 1,
                    Some(true) => {
                        bump(&self.sh.pipeline.counters.tokens_removed, 1);
                        tally.counts.push_invalid_tokens += 1;
                    }
                    None => tally.counts.push_invalid_tokens += 1,
                }
                self.delivered_outcomes += 1;
                tally.resolved.push(t.device_id);
            }
        }
    }

    fn notification(&self, device: &DeviceRegistration) -> Notification {
        let content = match (&self.per_device, device.os) {
            (Some(t), os) => Arc::new(t.content(os, device)),
            (None, Os::Ios | Os::Osx) => self.apple.clone(),
            (None, Os::Android | Os::Wp) => self.android.clone(),
        };
        Notification {
            id: NotificationId::of(self.job.key.message, self.job.key.run, &device.device_id),
            message_id: self.job.key.message,
            device_id: device.device_id.clone(),
            device_token: device.device_token.clone(),
            os: device.os,
            content,
            expires_at: self.expires_at,
            collapse_key: self.collapse_key.clone(),
        }
    }

    fn config_failure(&mut self, tally: &mut Tally, device: &str, why: String) {
        bump(&self.sh.pipeline.counters.unroutable, 1);
        tally.counts.push_failed += 1;
        self.config_failures += 1;
        self.config_error.get_or_insert(why);
        tally.resolved.push(device.to_owned());
    }

    fn retry_at(&mut self, tally: &mut Tally, device: &str, attempts: u32, at: Option<Tick>) {
        let now = self.sh.clock.now();
        match at.filter(|t| *t < self.expires_at) {
            Some(due) => tally.retries.push(PushRetry {
                device_id: device.to_owned(),
                attempts,
                due: due.max(now),
            }),
            None => self.expired(tally, device),
        }
    }

    fn expired(&mut self, tally: &mut Tally, device: &str) {
        bump(&self.sh.pipeline.counters.expired, 1);
        tally.counts.push_expired += 1;
        self.delivered_outcomes += 1;
        tally.resolved.push(device.to_owned());
    }

    async fn cancelled(&self) -> Result<bool, Stop> {
        Ok(match self.sh.store.get(self.job.key.message).await? {
            Some(r) => r.state == RunState::Cancelled,
            None => true,
        })
    }

    /// Sleeps on the engine's clock until `until` (renewing the lease on
    /// the way when the sleep is long), or until its message is cancelled
    /// (see `Pipeline::cancelled`).
    async fn sleep_until(&mut self, until: Tick) -> Result<(), Stop> {
        let renew_at = self.lease_until.saturating_sub_millis(self.sh.lease_ms / 2);
        let wake = until.min(renew_at);
        {
            // A cancel wakes it: the caller's loop looks at the message
            // again (a cancelled message's waiting retries end at once).
            let (_asleep, nudged) = self
                .sh
                .pipeline
                .activity
                .sleep_nudged(wake, self.job.key.message);
            tokio::select! {
                () = self.sh.clock.sleep_until(wake) => {}
                () = nudged => {}
                () = self.sh.stopping() => return Err(Stop::ShutDown),
            }
        }
        if self.sh.clock.now() >= renew_at {
            self.checkpoint(Tally::default(), false).await?;
        }
        Ok(())
    }

    /// A cancel stops the job: the retries still waiting count as failed.
    async fn stop_cancelled(&mut self) -> Result<(), Stop> {
        loop {
            let left = self.sh.store.push_retries(self.job.key, MAX_BATCH).await?;
            if left.is_empty() {
                break;
            }
            let mut t = Tally {
                resolved: left.into_iter().map(|r| r.device_id).collect(),
                ..Tally::default()
            };
            t.counts.push_failed = t.resolved.len() as u64;
            self.checkpoint(t, false).await?;
        }
        debug!(message_id = %self.job.key.message, "push job stopped by a cancel");
        self.checkpoint(Tally::default(), true).await
    }

    async fn finish(&mut self) -> Result<(), Stop> {
        debug!(message_id = %self.job.key.message, "push job done");
        self.checkpoint(Tally::default(), true).await
    }

    /// Records `tally` and the job's position; `finished` ends the job.
    async fn checkpoint(&mut self, tally: Tally, finished: bool) -> Result<(), Stop> {
        let now = self.sh.clock.now();
        self.lease_until = now.saturating_add_millis(self.sh.lease_ms);
        let mut cp = Checkpoint::of(&self.job, self.lease_until);
        cp.counts = tally.counts;
        cp.retries = tally.retries;
        cp.resolved = tally.resolved;
        cp.finished = finished;
        if finished && let Some(why) = &self.config_error {
            cp.error = Some(why.clone());
            // Nothing could be sent because of the configuration: failed.
            cp.fail =
                self.handed_before == 0 && self.delivered_outcomes == 0 && self.config_failures > 0;
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.sh.store.checkpoint_push(vec![cp.clone()]).await {
                Ok(applied) if applied.first() == Some(&true) => return Ok(()),
                Ok(_) => return Err(Stop::Stale),
                Err(e) if e.is_retryable() && !self.sh.is_shut() => {
                    let at = self
                        .sh
                        .clock
                        .now()
                        .saturating_add_millis(backoff.as_millis() as u64);
                    let _asleep = self.sh.pipeline.activity.sleep(at);
                    self.sh.clock.sleep_until(at).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(Stop::Store(e)),
            }
        }
    }
}

fn bump(counter: &std::sync::atomic::AtomicU64, by: u64) {
    counter.fetch_add(by, std::sync::atomic::Ordering::Relaxed);
}

/// The job of a message that is gone: ends it.
async fn finish_gone(sh: &Shared, job: &PushJob) -> Result<(), Stop> {
    let mut cp = Checkpoint::of(job, sh.clock.now());
    cp.finished = true;
    sh.store.checkpoint_push(vec![cp]).await?;
    Ok(())
}
