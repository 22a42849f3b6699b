//! Herald's cluster bus on Redis pub/sub: [`RedisBus`], a
//! [`ClusterBus`](herald::bus::ClusterBus) that carries each pub/sub run
//! a node delivers to the subscribers of every other node, through one
//! Redis channel per cluster and app.
//!
//! * **Frames are binary.** Each frame is one `PUBLISH` of its raw bytes;
//!   a batch goes out as one pipeline. Frames are at most [`MAX_FRAME`]
//!   (1 MiB).
//! * **Subscriptions are confirmed.** [`subscribe`](herald::bus::ClusterBus::subscribe)
//!   returns only after Redis confirmed the `SUBSCRIBE`, so it sees every
//!   frame sent after it returns.
//! * **Nothing is lost silently.** A subscription that falls behind (its
//!   queue of [`QUEUE_CAPACITY`] events is full) or whose connection was
//!   lost and made again gets [`BusEvent::Lagged`](herald::bus::BusEvent::Lagged)
//!   before the next frame; the engine then tells its subscribers. Redis
//!   pub/sub is fire-and-forget: frames published while a subscription
//!   is reconnecting are gone, which is what that notice says.
//! * **Reconnects by itself**: subscriptions at once and then with
//!   backoff; the sending connection on the next `send` after a failure.
//!
//! # Example
//!
//! ```no_run
//! use herald::{Engine, MemoryStore};
//! use herald_redis::RedisBus;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let bus = RedisBus::connect("redis://127.0.0.1:6379", "herald:prod:news")
//!     .await
//!     .expect("redis is up");
//! let engine = Engine::builder()
//!     .store(MemoryStore::new_shared())
//!     .bus(bus)
//!     .node_id("node-1")
//!     .build();
//! # drop(engine);
//! # }
//! ```
//!
//! # Features of the `redis` crate
//!
//! Only `tokio-comp` (async connections on tokio, which brings `aio`:
//! multiplexed connections, pipelines and pub/sub). None of the default
//! command families (`acl`, `streams`, `geospatial`, `script`,
//! `num-bigint`): the bus only publishes, subscribes and pings.
//!
//! No TLS (`rediss://` URLs are refused): the `redis` crate's rustls
//! feature also loads the platform's root certificates
//! (`rustls-native-certs`) and needs a process-wide rustls crypto
//! provider chosen before the first connection, more than this bus
//! should decide alone. Run Redis on a private network or behind a TLS
//! tunnel; adding `tokio-rustls-comp` later is a change of features and
//! of the URL, not of this code.
//!
//! # Testing
//!
//! The tests read `REDIS_URL` (for example `redis://127.0.0.1:6379`) and,
//! without it, print one `SKIPPED: REDIS_URL not set` line per test
//! binary and pass.

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod backoff;
mod bus;
mod channel;
mod error;
mod queue;
mod subscription;

pub use bus::{MAX_FRAME, QUEUE_CAPACITY, RedisBus};
pub use channel::{MAX_CHANNEL_LEN, validate_channel};
pub use error::ConnectError;
