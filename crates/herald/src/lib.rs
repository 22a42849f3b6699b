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
//!   names and units, and [`Error`] with Backendless's codes.
//! * The boundaries: [`Clock`] ([`SystemClock`], [`ManualClock`]), [`Store`]
//!   ([`MemoryStore`]) and [`PubSubTransport`] ([`InProcessTransport`]).
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
//!     .publish("orders", serde_json::json!({"order": 42}), publish, DeliveryOptions::default())
//!     .await?;
//! assert_eq!(status.status, PublishStatus::Published);
//!
//! let run = orders.recv().await.expect("subscribed").expect("not lagging");
//! assert_eq!(run.message()["order"], 42);
//! engine.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod clock;
mod engine;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod id;
mod message;
mod options;
mod status;
mod store;
mod transport;

pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use engine::{Engine, EngineBuilder, EngineStats};
pub use error::Error;
pub use id::{MessageId, ParseIdError};
pub use message::{DeliveredMessage, Envelope};
pub use options::{DeliveryOptions, PublishOptions, PublishPolicy, PublishRequest, PushBroadcast};
pub use status::{DeliveryCounts, MessageStatus, PublishStatus};
pub use store::{
    CancelOutcome, Claim, Completion, MemoryStore, Next, Record, RunState, Store, StoreError,
    StoreFuture,
};
pub use transport::{
    InProcessTransport, Lagged, PubSubTransport, Subscription, SubscriptionStream, TransportError,
};

/// The README's embedding examples (engine and scheduler), compiled and run
/// as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
