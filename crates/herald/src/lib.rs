//! Herald's messaging engine: Backendless Messaging semantics — publish now,
//! at a time, or repeatedly; cancel; message status; subscribe with SQL-92
//! selectors — on `herald-core`'s timing wheel.
//!
//! * [`Engine`]: the API ([`publish`](Engine::publish),
//!   [`message_status`](Engine::message_status), [`cancel`](Engine::cancel),
//!   [`subscribe`](Engine::subscribe), [`delete_channel`](Engine::delete_channel),
//!   [`channels`](Engine::channels)), built with [`Engine::builder`].
//! * The model: [`PublishOptions`], [`DeliveryOptions`], [`MessageStatus`],
//!   [`PublishStatus`], [`DeliveredMessage`], with serde in Backendless's JSON
//!   names and units, and [`Error`] with Backendless's codes. Message bodies
//!   are raw JSON ([`Body`]), validated once and never parsed again; the
//!   options are checked once into a [`DeliveryPlan`]; every rule and limit
//!   is in [`limits`].
//! * Push notifications: device registrations ([`DeviceRegistration`],
//!   [`DeviceRegistry`], [`MemoryRegistry`]), templates with smart text
//!   ([`PushTemplate`], [`SmartText`], [`TemplateStore`]), the
//!   [`Audience`] of a run, and a durable pipeline that sends through
//!   [`PushTransport`]s ([`RecordingTransport`] for tests) with retries
//!   ([`RetryPolicy`]); [`Engine::push_template`] sends a template.
//! * The boundaries: [`Clock`] ([`SystemClock`], [`ManualClock`]), [`Store`]
//!   ([`MemoryStore`]; durable stores share the stored form in [`codec`])
//!   and [`PubSubTransport`] ([`InProcessTransport`], delivering into
//!   bounded [`Inbox`]es, through a [`FanOut`] per run).
//! * Receiving at scale: many subscriptions in one [`Inbox`]
//!   ([`Engine::subscribe_to`]), drained by one task with
//!   [`Inbox::recv_batch`] (each run once, with the subscriptions it
//!   reached) rather than a task per [`Subscription`].
//!
//! # Example
//!
//! ```
//! use herald::{DeliveryOptions, Engine, PublishOptions, PublishStatus};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), herald::Error> {
//! let engine = Engine::builder().build();
//! let mut orders = engine.subscribe("orders", Some("total > 100 AND region IN ('EU', 'UK')"))?;
//!
//! let mut publish = PublishOptions::default();
//! publish.headers.insert("total".into(), "250".into());
//! publish.headers.insert("region".into(), "EU".into());
//! let status = engine
//!     .publish("orders", serde_json::json!({"order": 42}).into(), publish, DeliveryOptions::default())
//!     .await?;
//! assert_eq!(status.status, PublishStatus::Published);
//!
//! let run = orders.recv().await.expect("subscribed").expect("not lagging");
//! assert_eq!(run.message().to_value().unwrap()["order"], 42);
//! engine.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod body;
pub mod bus;
mod clock;
pub mod codec;
mod delivered;
mod engine;
mod envelope;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod id;
pub mod limits;
mod options;
mod plan;
mod push;
mod status;
mod store;
mod transport;

pub use body::Body;
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use delivered::DeliveredMessage;
pub use engine::{Engine, EngineBuilder, EngineStats, GatewayStats, PublishExtras, PushStats};
pub use envelope::Envelope;
pub use error::Error;
pub use id::{MessageId, ParseIdError};
pub use options::{
    DeliveryOptions, PublishOptions, PublishPolicy, PublishRequest, PushBroadcast, RequestError,
};
pub use plan::{AfterRun, DeliveryPlan};
pub use push::{
    Audience, AudiencePage, CompiledSend, Delivery, DeviceRegistration, DeviceRegistry,
    InvalidToken, Lookup, MAX_BATCH, MemoryRegistry, Notification, NotificationId, Os, Outcome,
    PushContent, PushFuture, PushTemplate, PushTransport, RESERVED_PROPERTY_NAMES,
    RecordingTransport, Refusal, RetryPolicy, SmartText, SmartTextError, TemplateSend,
    TemplateStore,
};
pub use status::{DeliveryCounts, MessageStatus, PublishStatus};
pub use store::{
    Amendment, CancelOutcome, Checkpoint, Claim, Claimed, Completion, DueHints, DueRun,
    FencingToken, HintHub, IdempotencyKey, Inserted, JobKey, KeyRecord, Lease, MemoryStore, Next,
    PushJob, PushRetry, Record, RunState, Start, Store, StoreError, StoreFuture, StoreStats,
};
pub use transport::{
    FanOut, InProcessTransport, Inbox, InboxBatchItem, InboxItem, InboxLimits, Lagged, Membership,
    PubSubTransport, Subscriber, Subscription, SubscriptionId, TransportError,
};

/// The README's embedding examples (engine and scheduler), compiled and run
/// as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
