//! The `Engine`: publish, schedule, repeat, cancel, status and subscribe.

mod builder;
mod driver;
mod stats;
mod validate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use herald_core::selector::Selector;
use herald_core::{Key, Scheduler, Tick};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{Instrument, debug, info};

use crate::id::IdGenerator;
use crate::store::{CancelOutcome, Completion, Next, Record, RunState, Store};
use crate::transport::{PubSubTransport, Subscription};
use crate::{
    Clock, DeliveredMessage, DeliveryCounts, DeliveryOptions, Envelope, Error, MessageId,
    MessageStatus, PublishOptions, PublishRequest, PublishStatus,
};

pub use builder::EngineBuilder;
use stats::Counters;
pub use stats::EngineStats;
pub(crate) use validate::recurrence_of;

/// Runs the publish-time validation (for the fuzz targets).
#[cfg_attr(not(fuzzing), allow(dead_code))]
pub(crate) fn plan_for_fuzzing(delivery: &DeliveryOptions, now: Tick) -> Result<(), Error> {
    validate::plan(delivery, now).map(drop)
}

/// Herald's messaging engine: Backendless Messaging semantics on a
/// `herald-core` scheduler.
///
/// Cheap to clone (all clones drive the same engine). Must be built inside
/// a tokio runtime: [`EngineBuilder::build`] spawns the driver task.
///
/// # Usage
///
/// ```
/// use herald::{DeliveryOptions, Engine, ManualClock, PublishOptions, PublishStatus};
/// use herald_core::Tick;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), herald::Error> {
/// let clock = ManualClock::new(Tick::from_millis(1_800_000_000_000));
/// let engine = Engine::builder().clock(clock.clone()).build();
/// let mut sub = engine.subscribe("alerts", Some("level > 2"))?;
///
/// let mut publish = PublishOptions::default();
/// publish.headers.insert("level".into(), "3".into());
/// let delivery = DeliveryOptions {
///     publish_at: Some(chrono::DateTime::from_timestamp_millis(1_800_000_005_000).unwrap()),
///     ..DeliveryOptions::default()
/// };
/// let status = engine.publish("alerts", "disk full".into(), publish, delivery).await?;
/// assert_eq!(status.status, PublishStatus::Scheduled);
///
/// clock.advance(Duration::from_secs(5));
/// let run = sub.recv().await.unwrap().unwrap();
/// assert_eq!(run.message(), "disk full");
/// assert_eq!(run.timestamp_millis(), 1_800_000_005_000);
/// assert_eq!(engine.message_status(&status.message_id).await?.status, PublishStatus::Published);
/// engine.shutdown().await;
/// # Ok(())
/// # }
/// ```
///
/// # Implementation
///
/// One driver task owns the timing wheel (behind a short lock that
/// `publish` and `cancel` also take). It sleeps until the wheel's next
/// deadline and is woken early when an earlier one is inserted. Each due run
/// is claimed in the [`Store`] (so it fires at most once, even across
/// nodes), delivered through the [`PubSubTransport`], and completed in the
/// store, which schedules the next repetition. Immediate one-off publishes
/// skip the wheel: they are stored, delivered and completed by the caller.
#[derive(Clone, Debug)]
pub struct Engine {
    shared: Arc<Shared>,
    _last_clone: Arc<StopOnDrop>,
}

/// Stops the driver when the last `Engine` clone is dropped without a
/// `shutdown` (the driver holds `Shared`, so it cannot notice by itself).
#[derive(Debug)]
struct StopOnDrop(mpsc::UnboundedSender<Command>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let (tx, _) = oneshot::channel();
        let _ = self.0.send(Command::Shutdown(tx));
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) transport: Arc<dyn PubSubTransport>,
    pub(crate) ids: IdGenerator,
    pub(crate) state: Mutex<WheelState>,
    pub(crate) wake: Notify,
    /// Notified after each batch of runs has been delivered (a cancel
    /// waiting for a run that is `delivering`).
    pub(crate) delivered: Notify,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) shut: AtomicBool,
    /// Becomes true once the driver has reloaded the store at start-up;
    /// `publish` and `cancel` wait for it (a reload racing them could
    /// release a claim in progress, undo a cancel, or reorder runs).
    pub(crate) ready: watch::Sender<bool>,
    pub(crate) counters: Counters,
    pub(crate) lease_ms: u64,
}

/// A run waiting in the wheel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    pub(crate) id: MessageId,
    pub(crate) due: Tick,
}

/// A run taken out of the wheel and not yet completed.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    /// The run is being handed to the transport (outside the lock).
    pub(crate) delivering: bool,
    /// The run has been handed to the transport.
    pub(crate) delivered: bool,
    /// What the delivery counted, once delivered (not yet in the store).
    pub(crate) counts: Option<DeliveryCounts>,
    /// A cancel came in: do not deliver (if not yet), do not reschedule.
    pub(crate) cancelled: bool,
    /// The message repeats (so a cancel after delivery still counts).
    pub(crate) repeating: bool,
}

#[derive(Debug)]
pub(crate) struct WheelState {
    pub(crate) wheel: Scheduler<Run>,
    pub(crate) keys: HashMap<MessageId, Key>,
    pub(crate) inflight: HashMap<MessageId, Inflight>,
    /// What the driver sleeps until (`None`: nothing scheduled).
    pub(crate) planned_wake: Option<Tick>,
}

#[derive(Debug)]
pub(crate) enum Command {
    /// Run a pass at the current time, then answer.
    Settle(oneshot::Sender<()>),
    /// Stop, then answer.
    Shutdown(oneshot::Sender<()>),
}

impl Shared {
    /// Waits for the start-up reload, then refuses if shut down.
    async fn admit(&self) -> Result<(), Error> {
        if !*self.ready.borrow() {
            let mut rx = self.ready.subscribe();
            // The sender lives in `self`, so this only ends when ready.
            let _ = rx.wait_for(|ready| *ready).await;
        }
        if self.shut.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        Ok(())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, WheelState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a run in the wheel and wakes the driver if it is now the first.
    pub(crate) fn schedule(&self, st: &mut WheelState, id: MessageId, due: Tick) {
        let key = st.wheel.insert_at(due, Run { id, due });
        if let Some(old) = st.keys.insert(id, key) {
            st.wheel.cancel(old);
        }
        if st.planned_wake.is_none_or(|w| due < w) {
            st.planned_wake = Some(due);
            self.wake.notify_one();
        }
    }
}

impl Engine {
    /// A builder with the defaults: [`SystemClock`](crate::SystemClock),
    /// [`MemoryStore`](crate::MemoryStore),
    /// [`InProcessTransport`](crate::InProcessTransport).
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The clock the engine runs on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// Publishes `message` to `channel`: now, at `publishAt`, or repeatedly.
    ///
    /// Returns `published` for an immediate one-off message (delivered to the
    /// channel's subscribers before this returns) and `scheduled` for a
    /// delayed or repeating one. The message is in the store before this
    /// returns.
    ///
    /// # Errors
    ///
    /// A validation error with its Backendless code (5003, 5007, 5008, 5009,
    /// 5010, 5011, 5012; see [`Error`]) and nothing stored; or
    /// [`Error::Store`] / [`Error::ShutDown`].
    pub async fn publish(
        &self,
        channel: &str,
        message: Value,
        publish: PublishOptions,
        delivery: DeliveryOptions,
    ) -> Result<MessageStatus, Error> {
        let sh = &*self.shared;
        sh.admit().await?;
        validate::check_channel(channel)?;
        if let Some(q) = &delivery.segment_query {
            Selector::parse(q)?;
        }
        let now = sh.clock.now();
        let plan = validate::plan(&delivery, now)?;
        let id = sh.ids.next(now);
        let envelope = Arc::new(Envelope {
            id,
            channel: channel.to_owned(),
            message,
            publish,
            delivery,
            accepted_at: now,
        });
        let span = tracing::debug_span!("publish", message_id = %id, channel);
        // Instrumented rather than `span.entered()`: an entered span held across
        // `.await` makes this future `!Send` (no `tokio::spawn`ing a publish).
        async move {
            match plan.first {
                None => {
                    sh.store
                        .insert(Record {
                            envelope: envelope.clone(),
                            state: RunState::Firing {
                                due: now,
                                lease_until: now.saturating_add_millis(sh.lease_ms),
                            },
                            counts: DeliveryCounts::default(),
                        })
                        .await?;
                    let counts = deliver(sh, &envelope, now);
                    sh.store
                        .complete(vec![Completion {
                            id,
                            due: now,
                            counts,
                            next: Next::Done,
                        }])
                        .await?;
                    debug!(pubsub = counts.pubsub, "published");
                    Counters::bump(&sh.counters.published, 1);
                    Ok(MessageStatus {
                        message_id: id.to_string(),
                        status: PublishStatus::Published,
                        error_message: None,
                        deliveries: counts,
                    })
                }
                Some(due) => {
                    sh.store
                        .insert(Record {
                            envelope,
                            state: RunState::Scheduled { due },
                            counts: DeliveryCounts::default(),
                        })
                        .await?;
                    sh.schedule(&mut sh.lock(), id, due);
                    debug!(due = due.as_millis(), "scheduled");
                    Counters::bump(&sh.counters.published, 1);
                    Counters::bump(&sh.counters.scheduled, 1);
                    Ok(MessageStatus {
                        message_id: id.to_string(),
                        status: PublishStatus::Scheduled,
                        error_message: None,
                        deliveries: DeliveryCounts::default(),
                    })
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Publishes a decoded request body (see [`PublishRequest::from_json`]).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub async fn publish_request(
        &self,
        channel: &str,
        request: PublishRequest,
    ) -> Result<MessageStatus, Error> {
        self.publish(channel, request.message, request.publish, request.delivery)
            .await
    }

    /// The status of message `id`; `unknown` for an id this engine's store
    /// does not know (or has purged).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store fails.
    pub async fn message_status(&self, id: &str) -> Result<MessageStatus, Error> {
        let Ok(mid) = id.parse::<MessageId>() else {
            return Ok(MessageStatus::unknown(id));
        };
        let Some(record) = self.shared.store.get(mid).await? else {
            return Ok(MessageStatus::unknown(id));
        };
        let mut status = record.status();
        // A run delivered but not yet completed in the store (a durable
        // store's commit is in progress): report what subscribers already
        // saw, so a status read right after a delivery is not stale.
        if status.status == PublishStatus::Scheduled
            && let Some(run) = self.shared.lock().inflight.get(&mid)
            && let Some(counts) = run.counts
        {
            status.deliveries.add(&counts);
            if !run.repeating {
                status.status = PublishStatus::Published;
            }
        }
        Ok(status)
    }

    /// Cancels a scheduled (delayed or repeating) message: it becomes
    /// `cancelled` and never fires again, even if a run is due in this very
    /// millisecond. Returns the status after the cancel.
    ///
    /// # Errors
    ///
    /// [`Error::NotCancellable`] (5040) if the message is unknown, already
    /// published, failed or cancelled; [`Error::ShutDown`] after
    /// [`shutdown`](Self::shutdown).
    pub async fn cancel(&self, id: &str) -> Result<MessageStatus, Error> {
        let sh = &*self.shared;
        sh.admit().await?;
        let Ok(mid) = id.parse::<MessageId>() else {
            return Err(Error::NotCancellable);
        };
        loop {
            // Registered before looking, so a delivery finishing in between
            // is not missed.
            let delivered = sh.delivered.notified();
            tokio::pin!(delivered);
            delivered.as_mut().enable();
            {
                let mut st = sh.lock();
                if let Some(key) = st.keys.remove(&mid) {
                    st.wheel.cancel(key);
                } else if let Some(run) = st.inflight.get_mut(&mid) {
                    if !run.delivering {
                        if run.delivered && !run.repeating {
                            return Err(Error::NotCancellable);
                        }
                        run.cancelled = true;
                    }
                } else {
                    break;
                }
                if !st.inflight.get(&mid).is_some_and(|r| r.delivering) {
                    break;
                }
            }
            // A run of this message is being delivered right now: wait for
            // it, then decide (delivered one-off: 5040; repeating: cancel
            // the rest).
            delivered.await;
        }
        match sh.store.cancel(mid).await? {
            CancelOutcome::Cancelled(record) => {
                info!(message_id = %mid, channel = %record.envelope.channel, "cancelled");
                Counters::bump(&sh.counters.cancelled, 1);
                Ok(record.status())
            }
            CancelOutcome::Finished(_) | CancelOutcome::NotFound => Err(Error::NotCancellable),
        }
    }

    /// Subscribes to `channel`, optionally filtered by a selector over the
    /// message headers (SQL-92 conditional expression; see
    /// [`herald_core::selector`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidChannel`] (5010), [`Error::InvalidSelector`] (5012,
    /// with the position), [`Error::ShutDown`].
    pub fn subscribe(&self, channel: &str, selector: Option<&str>) -> Result<Subscription, Error> {
        if self.shared.shut.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        validate::check_channel(channel)?;
        let selector = selector
            .filter(|s| !s.trim().is_empty())
            .map(Selector::parse)
            .transpose()?;
        let sub = self.shared.transport.subscribe(channel, selector)?;
        debug!(channel, "subscribed");
        Ok(sub)
    }

    /// Deletes `channel`: its subscriptions end. Messages scheduled for it
    /// still fire (to whoever subscribes again). Returns whether it existed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidChannel`] (5010).
    pub fn delete_channel(&self, channel: &str) -> Result<bool, Error> {
        validate::check_channel(channel)?;
        Ok(self.shared.transport.delete_channel(channel))
    }

    /// The channels in use (published or subscribed to), sorted.
    pub fn channels(&self) -> Vec<String> {
        self.shared.transport.channels()
    }

    /// The engine's counters since it was built, and the wheel's size.
    pub fn stats(&self) -> EngineStats {
        let pending = self.shared.lock().wheel.len() as u64;
        self.shared.counters.snapshot(pending)
    }

    /// How many runs are waiting in this engine's wheel.
    pub fn scheduled_len(&self) -> usize {
        self.shared.lock().wheel.len()
    }

    /// Waits until the driver has fired every run due at the clock's current
    /// time (and finished loading the store at start-up). With a
    /// [`ManualClock`](crate::ManualClock), `advance` then `settle` makes
    /// "nothing fired yet" assertions deterministic.
    pub async fn settle(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.commands.send(Command::Settle(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Stops the driver, waits for the run it is delivering (if any), ends
    /// every subscription and closes the store ([`Store::close`]: a durable
    /// store flushes). Later calls fail with [`Error::ShutDown`].
    /// Scheduled messages stay in the store (a durable store keeps them for
    /// the next start).
    pub async fn shutdown(&self) {
        self.shared.shut.store(true, Ordering::Release);
        let (tx, rx) = oneshot::channel();
        if self.shared.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        for ch in self.shared.transport.channels() {
            self.shared.transport.delete_channel(&ch);
        }
        if let Err(e) = self.shared.store.close().await {
            tracing::warn!(error = %e, "store failed to close cleanly");
        }
    }
}

/// Delivers one run of `envelope` and returns the counters to add.
pub(crate) fn deliver(sh: &Shared, envelope: &Arc<Envelope>, now: Tick) -> DeliveryCounts {
    let mut counts = DeliveryCounts {
        runs: 1,
        ..DeliveryCounts::default()
    };
    Counters::bump(&sh.counters.runs, 1);
    if envelope.delivery.publish_policy.includes_pubsub() {
        let msg = DeliveredMessage::new(envelope.clone(), now);
        match sh.transport.publish(&msg) {
            Ok(n) => {
                counts.pubsub = n;
                Counters::bump(&sh.counters.pubsub_deliveries, n);
                debug!(message_id = %envelope.id, channel = %envelope.channel, subscriptions = n, "delivered");
            }
            Err(e) => {
                tracing::warn!(message_id = %envelope.id, error = %e, "pub/sub delivery failed")
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>(t: T) -> T {
        t
    }

    /// The API's futures can be spawned on a multi-thread runtime.
    #[tokio::test]
    async fn api_futures_are_send() {
        let engine = Engine::builder().build();
        let st = send(engine.publish(
            "c",
            Value::Null,
            PublishOptions::default(),
            DeliveryOptions::default(),
        ))
        .await
        .expect("publish");
        send(engine.message_status(&st.message_id))
            .await
            .expect("status");
        assert!(send(engine.cancel(&st.message_id)).await.is_err());
        send(engine.publish_request("c", PublishRequest::default()))
            .await
            .expect("publish");
        send(engine.settle()).await;
        send(engine.shutdown()).await;
    }

    /// A `MemoryStore` whose `complete` lets other tasks run first (as any
    /// store doing I/O would).
    #[derive(Clone, Debug)]
    struct YieldingStore(crate::MemoryStore);

    impl Store for YieldingStore {
        fn insert(&self, record: Record) -> crate::StoreFuture<'_, ()> {
            self.0.insert(record)
        }
        fn get(&self, id: MessageId) -> crate::StoreFuture<'_, Option<Record>> {
            self.0.get(id)
        }
        fn claim(
            &self,
            claims: Vec<crate::Claim>,
            lease_until: Tick,
        ) -> crate::StoreFuture<'_, Vec<Option<Arc<Envelope>>>> {
            self.0.claim(claims, lease_until)
        }
        fn complete(&self, completions: Vec<Completion>) -> crate::StoreFuture<'_, ()> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                self.0.complete(completions).await
            })
        }
        fn cancel(&self, id: MessageId) -> crate::StoreFuture<'_, CancelOutcome> {
            self.0.cancel(id)
        }
        fn pending(
            &self,
            after: Option<MessageId>,
            limit: usize,
        ) -> crate::StoreFuture<'_, Vec<Record>> {
            self.0.pending(after, limit)
        }
        fn release_expired(&self, before: Tick) -> crate::StoreFuture<'_, u64> {
            self.0.release_expired(before)
        }
    }

    /// An immediate publish made while the driver is still reloading the
    /// store at start-up is delivered once.
    ///
    /// It used to fail: the single-node reload releases *every* claim
    /// (`release_expired(Tick::MAX)`), including the `Firing` record of an
    /// immediate publish between its delivery and its completion, and the
    /// driver fired it a second time. Publishes now wait for the reload.
    #[tokio::test]
    async fn a_publish_racing_the_start_up_reload_is_delivered_once() {
        let engine = Engine::builder()
            .clock(crate::ManualClock::new(Tick::from_millis(
                1_800_000_000_000,
            )))
            .store(YieldingStore(crate::MemoryStore::new()))
            .build();
        let mut sub = engine.subscribe("c", None).expect("subscribe");
        let st = engine
            .publish(
                "c",
                Value::from(1),
                PublishOptions::default(),
                DeliveryOptions::default(),
            )
            .await
            .expect("publish");
        engine.settle().await;
        assert!(sub.try_recv().is_some(), "delivered");
        let again = sub.try_recv();
        let status = engine.message_status(&st.message_id).await.expect("status");
        assert!(again.is_none(), "delivered twice; status now {status:?}");
        assert_eq!(status.deliveries.runs, 1);
        engine.shutdown().await;
    }
}
