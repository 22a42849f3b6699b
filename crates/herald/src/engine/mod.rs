//! The `Engine`: publish, schedule, repeat, cancel, status and subscribe.
//!
//! | file | concept |
//! |---|---|
//! | `shared.rs` | what every part shares: boundaries, wheel, runs in flight |
//! | `publish.rs` | validate into a plan, store, schedule or deliver now |
//! | `idempotent.rs` | publishes with an idempotency key: the fingerprint, the retry's answer |
//! | `cancel.rs` | the cancel protocol |
//! | `pending.rs`, `id_index.rs` | the runs waiting in the wheel, found by id in a compact index |
//! | `inflight.rs` | a run between the wheel and its completion, and how a cancel meets it |
//! | `deliver.rs` | the one fan-out seam |
//! | `driver.rs` | the task that fires due runs and takes back expired leases |
//! | `completer.rs` | recording delivered runs in batches, scheduling the next ones |
//! | `reload.rs` | rebuilding the wheel at start-up |
//! | `devices.rs` | device registrations and push templates |
//! | `detached.rs` | futures that finish their work when their caller leaves |
//! | `throttle.rs` | logging a failure that repeats at a bounded rate |

mod builder;
mod bus;
mod cancel;
mod claim_lead;
mod completer;
mod deliver;
mod detached;
mod devices;
mod driver;
mod gateway;
mod id_index;
mod idempotent;
mod inflight;
mod jitter;
mod pending;
mod pipeline;
mod publish;
mod push_job;
mod reload;
mod shared;
mod stats;
mod throttle;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use herald_core::selector::Selector;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::store::RunState;
use crate::transport::{Inbox, Membership, Subscription};
use crate::{
    Body, Clock, DeliveryOptions, Error, MessageId, MessageStatus, PublishOptions, PublishRequest,
    PublishStatus, StoreStats, limits,
};

pub use builder::EngineBuilder;
use detached::RunToCompletion;
pub use idempotent::PublishExtras;
use shared::{Command, Shared};
pub use stats::{EngineStats, GatewayStats, PushStats};

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
/// assert_eq!(run.message().get(), r#""disk full""#);
/// assert_eq!(run.timestamp_millis(), 1_800_000_005_000);
/// engine.settle().await;
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
/// is claimed in the [`Store`](crate::Store) (so it fires at most once per
/// lease, even across nodes), delivered through the
/// [`PubSubTransport`](crate::PubSubTransport), and handed to a completer
/// task that records it in the store in batches and schedules the next
/// repetition. Immediate one-off publishes skip the wheel: they are stored
/// as claimed, delivered by the caller, and answered before their
/// completion is recorded.
///
/// # Cancellation safety
///
/// [`publish`](Self::publish) and [`cancel`](Self::cancel) finish their
/// work once validation has passed even if their future is dropped (the
/// rest runs in a task): a publish is then either not stored or fully
/// scheduled or delivered; a cancel is carried out.
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
    /// returns. The options are checked once, into a
    /// [`DeliveryPlan`](crate::DeliveryPlan).
    ///
    /// # Errors
    ///
    /// A validation error with its Backendless code (5003, 5007, 5008, 5009,
    /// 5010, 5011, 5012; see [`Error`]) and nothing stored; or
    /// [`Error::Store`] / [`Error::ShutDown`].
    pub fn publish(
        &self,
        channel: &str,
        message: Body,
        publish: PublishOptions,
        delivery: DeliveryOptions,
    ) -> impl Future<Output = Result<MessageStatus, Error>> + Send {
        // Not an `async fn`: each layer of `async fn` around the publish
        // future would hold the arguments again and copy the whole future
        // once more when it starts (see `publish::publish`).
        self.publish_with(
            channel,
            message,
            publish,
            delivery,
            PublishExtras::default(),
        )
    }

    /// [`publish`](Self::publish) with Herald's [`PublishExtras`]: an
    /// idempotency key, so that a client that lost an answer can retry.
    ///
    /// A publish whose key was used in the last 24 hours (on this engine's
    /// store; it survives a restart) by the same request (channel, options
    /// and message) answers what the first one answered: the same
    /// `messageId` and status kind (`published` or `scheduled`), with the
    /// message's counters now; nothing is validated or published again.
    /// The key is recorded with the message, atomically, so racing retries
    /// publish once.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), and
    /// [`Error::InvalidIdempotencyKey`] (5096) for a key that is not 1 to
    /// 255 printable ASCII characters, [`Error::IdempotencyKeyReused`]
    /// (5095) for a key a different request used. A store without
    /// idempotency keys fails with [`Error::Store`].
    ///
    /// # Examples
    ///
    /// ```
    /// use herald::{DeliveryOptions, Engine, PublishExtras, PublishOptions};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::Error> {
    /// let engine = Engine::builder().build();
    /// let publish = || {
    ///     engine.publish_with(
    ///         "orders",
    ///         "shipped".into(),
    ///         PublishOptions::default(),
    ///         DeliveryOptions::default(),
    ///         PublishExtras::default().with_idempotency_key("order-42-shipped"),
    ///     )
    /// };
    /// let first = publish().await?;
    /// let retry = publish().await?; // the answer was lost: try again
    /// assert_eq!(retry.message_id, first.message_id);
    /// assert_eq!(engine.stats().published, 1);
    /// # engine.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish_with(
        &self,
        channel: &str,
        message: Body,
        publish: PublishOptions,
        delivery: DeliveryOptions,
        extras: PublishExtras,
    ) -> impl Future<Output = Result<MessageStatus, Error>> + Send {
        publish::publish(
            &self.shared,
            channel,
            message,
            publish,
            delivery,
            extras,
            None,
        )
    }

    /// Publishes a decoded request body (see [`PublishRequest::from_slice`]).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    pub fn publish_request(
        &self,
        channel: &str,
        request: PublishRequest,
    ) -> impl Future<Output = Result<MessageStatus, Error>> + Send {
        self.publish(channel, request.message, request.publish, request.delivery)
    }

    /// The status of message `id`; `unknown` for an id this engine's store
    /// does not know (or has purged).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store fails.
    pub async fn message_status(&self, id: &str) -> Result<MessageStatus, Error> {
        self.message_status_where(id, |_| true).await
    }

    /// The status of message `id` if `visible` says its channel may be
    /// seen; a message on any other channel answers exactly as an unknown
    /// id does, so the answer tells nothing about messages the caller may
    /// not see (no oracle). A server calls it with its key's permissions.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if the store fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::Error> {
    /// use herald::{DeliveryOptions, Engine, PublishOptions};
    ///
    /// let engine = Engine::builder().build();
    /// let status = engine
    ///     .publish("orders", "hi".into(), PublishOptions::default(), DeliveryOptions::default())
    ///     .await?;
    /// let id = &status.message_id;
    /// engine.settle().await;
    /// let mine = engine.message_status_where(id, |channel| channel == "orders").await?;
    /// let theirs = engine.message_status_where(id, |channel| channel == "news").await?;
    /// assert_eq!(mine.status, herald::PublishStatus::Published);
    /// assert_eq!(theirs.status, herald::PublishStatus::Unknown);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn message_status_where(
        &self,
        id: &str,
        visible: impl FnOnce(&str) -> bool,
    ) -> Result<MessageStatus, Error> {
        let Ok(mid) = id.parse::<MessageId>() else {
            return Ok(MessageStatus::unknown(id));
        };
        // Not before the start-up reload: a run a crash left claimed is
        // released by then.
        self.shared.reloaded().await;
        let Some(record) = self.shared.store.get(mid).await? else {
            return Ok(MessageStatus::unknown(id));
        };
        if !visible(&record.envelope.channel) {
            return Ok(MessageStatus::unknown(id));
        }
        let mut status = record.status();
        // A run delivered but not yet recorded (its completion is on its way
        // to the store): report what subscribers already saw, so a status
        // read right after a delivery is not stale.
        if let RunState::Firing { token, .. } = record.state
            && let Some(run) = self.shared.lock().inflight.get(&mid)
            && run.token() == Some(token)
            && let Some(counts) = run.delivered()
        {
            status.deliveries.add(&counts);
            if !run.is_repeating() {
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
        let Ok(mid) = id.parse::<MessageId>() else {
            return Err(Error::NotCancellable);
        };
        RunToCompletion::new(cancel::cancel(self.shared.clone(), mid)).await
    }

    /// Cancels message `id` if `allowed` says its channel may be cancelled
    /// on; a message on any other channel fails exactly as an unknown id
    /// does ([`Error::NotCancellable`]), so the answer tells nothing about
    /// messages the caller may not touch. A server calls it with its key's
    /// publish permissions.
    ///
    /// # Errors
    ///
    /// As [`cancel`](Self::cancel).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), herald::Error> {
    /// use herald::{DeliveryOptions, Engine, PublishOptions};
    ///
    /// let engine = Engine::builder().build();
    /// let every_minute = DeliveryOptions {
    ///     repeat_every: Some(chrono::TimeDelta::seconds(60)),
    ///     ..DeliveryOptions::default()
    /// };
    /// let status = engine
    ///     .publish("orders", "hi".into(), PublishOptions::default(), every_minute)
    ///     .await?;
    /// let id = &status.message_id;
    /// let refused = engine.cancel_where(id, |channel| channel == "news").await;
    /// assert_eq!(refused.unwrap_err().code(), 5040);
    /// let done = engine.cancel_where(id, |channel| channel == "orders").await?;
    /// assert_eq!(done.status, herald::PublishStatus::Cancelled);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn cancel_where(
        &self,
        id: &str,
        allowed: impl FnOnce(&str) -> bool,
    ) -> Result<MessageStatus, Error> {
        let Ok(mid) = id.parse::<MessageId>() else {
            return Err(Error::NotCancellable);
        };
        // A message's channel never changes, so reading it first and
        // cancelling after is race-free.
        match self.shared.store.get(mid).await? {
            Some(record) if allowed(&record.envelope.channel) => {
                RunToCompletion::new(cancel::cancel(self.shared.clone(), mid)).await
            }
            _ => Err(Error::NotCancellable),
        }
    }

    /// Subscribes to `channel`, optionally filtered by a selector over the
    /// message headers (SQL-92 conditional expression; see
    /// [`herald_core::selector`]), on an inbox of its own (limits from
    /// [`EngineBuilder::subscription_limits`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidChannel`] (5010), [`Error::InvalidSelector`] (5012,
    /// with the position), [`Error::ShutDown`].
    pub fn subscribe(&self, channel: &str, selector: Option<&str>) -> Result<Subscription, Error> {
        let inbox = Inbox::new(self.shared.inbox_limits);
        let membership = self.subscribe_to(&inbox, channel, selector)?;
        Ok(Subscription::new(inbox, membership))
    }

    /// Subscribes `inbox` to `channel` (filtered by `selector`): one more
    /// subscription feeding a shared inbox, such as all the listeners of one
    /// real-time connection. Dropping the returned [`Membership`]
    /// unsubscribes at once.
    ///
    /// # Errors
    ///
    /// As [`subscribe`](Self::subscribe), and
    /// [`Error::TooManySubscriptions`] (5094) when the inbox has its
    /// [`max_subscriptions`](crate::InboxLimits::max_subscriptions) or is
    /// closed.
    pub fn subscribe_to(
        &self,
        inbox: &Inbox,
        channel: &str,
        selector: Option<&str>,
    ) -> Result<Membership, Error> {
        if self.shared.is_shut() {
            return Err(Error::ShutDown);
        }
        limits::check_channel(channel)?;
        let selector = selector
            .filter(|s| !s.trim().is_empty())
            .map(Selector::parse)
            .transpose()?;
        let subscriber = inbox.join().ok_or(Error::TooManySubscriptions {
            limit: inbox.limits().max_subscriptions,
        })?;
        let membership = self
            .shared
            .transport
            .subscribe(channel, selector, subscriber)?;
        debug!(channel, "subscribed");
        Ok(membership)
    }

    /// Deletes `channel`: its subscriptions end. Messages scheduled for it
    /// still fire (to whoever subscribes again). Returns whether it had
    /// subscriptions.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidChannel`] (5010).
    pub fn delete_channel(&self, channel: &str) -> Result<bool, Error> {
        limits::check_channel(channel)?;
        Ok(self.shared.transport.delete_channel(channel))
    }

    /// The channels with subscriptions on this engine, sorted. (Channels
    /// are names: one exists while someone subscribes to it; publishing to
    /// a channel nobody subscribes to keeps nothing.)
    pub fn channels(&self) -> Vec<String> {
        self.shared.transport.channels()
    }

    /// The engine's counters since it was built, the wheel's size, and the
    /// live channels and subscriptions.
    pub fn stats(&self) -> EngineStats {
        let pending = self.shared.lock().wheel.len() as u64;
        let t = &self.shared.transport;
        let mut stats = self.shared.counters.snapshot(
            pending,
            t.channels().len() as u64,
            t.subscriptions() as u64,
            &self.shared.store.stats(),
        );
        stats.bus_connected = true;
        if let Some(link) = &self.shared.bus {
            let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            stats.bus_sent = get(&link.counters.sent);
            stats.bus_received = get(&link.counters.received);
            stats.bus_lost = get(&link.counters.lost);
            stats.bus_lags = get(&link.counters.lags);
            stats.bus_connected = link.bus.is_connected();
        }
        stats
    }

    /// What the store reports about itself ([`Store::stats`](crate::Store::stats)):
    /// whether it can write (and why not), damaged messages set aside,
    /// finished messages purged.
    pub fn store_stats(&self) -> StoreStats {
        self.shared.store.stats()
    }

    /// How many runs are waiting for their due time in this engine: in
    /// its wheel, or claimed a few milliseconds ahead of their due time
    /// and held until then.
    pub fn scheduled_len(&self) -> usize {
        let st = self.shared.lock();
        st.wheel.len() + st.held
    }

    /// About how many bytes this engine holds for the runs waiting in its
    /// wheel: the wheel's entries (a message's id, in a 24-byte slab entry,
    /// and an 8-byte wheel element) and the id index (8 bytes a slot, 2/5
    /// to 4/5 full): 42 to 53 bytes per run once
    /// there are many (the slab grows 4,096 entries at a time).
    /// Nothing else of a scheduled message is in memory until it fires.
    pub fn scheduled_bytes(&self) -> usize {
        self.shared.lock().wheel.heap_bytes()
    }

    /// The push pipeline's counters: per gateway (sent, failed, invalid
    /// tokens, retries, refusals, in flight, paused) and overall (jobs
    /// running, tokens removed, expired, unroutable).
    pub fn push_stats(&self) -> PushStats {
        self.shared.pipeline.stats(self.shared.clock.now())
    }

    /// Waits until the driver has fired every run due at the clock's current
    /// time (and finished loading the store at start-up), and the store has
    /// recorded those runs, and until every push job has done what it can
    /// at the clock's current time (sent what is due, recorded it, and is
    /// waiting for a later time). With a cluster bus, it first waits until
    /// the engine is subscribed to it (runs other nodes send from then on
    /// reach this node's subscribers). With a [`ManualClock`](crate::ManualClock),
    /// `advance` then `settle` makes "nothing fired yet" assertions
    /// deterministic.
    pub async fn settle(&self) {
        if let Some(link) = &self.shared.bus {
            // Runs sent by other nodes from now on reach this node.
            let mut subscribed = link.subscribed.subscribe();
            let _ = subscribed.wait_for(|s| *s).await;
        }
        let (tx, rx) = oneshot::channel();
        if self.shared.commands.send(Command::Settle(tx)).is_ok() {
            let _ = rx.await;
        }
        let clock = self.shared.clock.clone();
        self.shared.pipeline.activity.settled(|| clock.now()).await;
    }

    /// Stops the driver, waits for the runs it is delivering and for their
    /// completions to be recorded, ends every subscription and closes the
    /// store ([`Store::close`](crate::Store::close): a durable store
    /// flushes). Later calls fail with [`Error::ShutDown`]. Scheduled
    /// messages stay in the store (a durable store keeps them for the next
    /// start).
    pub async fn shutdown(&self) {
        self.shared.shut.store(true, Ordering::Release);
        self.shared.stop.send_replace(true);
        let (tx, rx) = oneshot::channel();
        if self.shared.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        // Immediate publishes that were delivered after the driver stopped.
        self.shared.completer.stop().await;
        for ch in self.shared.transport.channels() {
            self.shared.transport.delete_channel(&ch);
        }
        if let Err(e) = self.shared.store.close().await {
            tracing::warn!(error = %e, "store failed to close cleanly");
        }
    }
}
