//! [`RedisBus`]: the [`ClusterBus`] on Redis pub/sub.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use herald::bus::{BusError, BusEvent, BusFuture, ClusterBus};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::{Mutex, mpsc, watch};

use crate::queue::Queue;
use crate::subscription::{self, CONNECT_TIMEOUT, Target};
use crate::{ConnectError, validate_channel};

/// The largest frame a [`RedisBus`] carries: 1 MiB.
///
/// Redis takes values up to 512 MB, but every subscriber's connection
/// buffers what it has not read yet, and Redis disconnects a pub/sub
/// client whose buffer passes `client-output-buffer-limit pubsub` (32 MB
/// at once, or 8 MB for a minute, by default). A run whose frame is
/// larger is delivered on its own node only, and counted as lost for the
/// others (see [`ClusterBus::max_frame`]).
pub const MAX_FRAME: usize = 1 << 20;

/// Events each subscription queues before it drops frames (and says so
/// with [`BusEvent::Lagged`]).
pub const QUEUE_CAPACITY: usize = 4096;

/// How long the server may take to answer a batch of `PUBLISH`es.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`ClusterBus`] on Redis pub/sub: every node connects to one Redis
/// server with the same channel name, and each frame is one `PUBLISH` of
/// its raw bytes on that channel.
///
/// # Usage
///
/// [`connect`](Self::connect) once per node and hand the bus to
/// [`EngineBuilder::bus`](herald::EngineBuilder::bus); clones share the
/// connections. Use one channel per cluster and app, for example
/// `herald:{cluster}:{app}`: nodes on the same channel receive each
/// other's runs, so two clusters on one Redis need two channel names.
///
/// # Implementation
///
/// * **Sending.** One multiplexed connection per bus (made by `connect`),
///   shared by concurrent [`send`](ClusterBus::send)s; a batch of frames
///   goes out as one pipeline of `PUBLISH`es, in order. `send` resolves
///   once Redis has accepted every `PUBLISH` (Redis then writes to each
///   subscriber's socket buffer; it does not wait for them). If the
///   connection fails, `send` returns a [`BusError`] and drops it; the
///   next `send` connects again.
/// * **Subscribing.** Each [`subscribe`](ClusterBus::subscribe) opens a
///   dedicated pub/sub connection and returns once the server confirmed
///   the `SUBSCRIBE`, so every frame published after it returns arrives.
///   A task reads the connection into a queue of [`QUEUE_CAPACITY`]
///   events; a subscription that falls behind loses the frames that do
///   not fit and gets [`BusEvent::Lagged`] with their count before the
///   next frame.
/// * **Reconnecting.** When a subscription's connection is lost (closed,
///   killed with `CLIENT KILL`, dropped by Redis for a full output buffer,
///   or silent: a quiet connection is pinged every 15 s and must answer
///   within 5 s), its task connects and subscribes again, at once and
///   then with exponential backoff (100 ms doubling to 5 s), and queues
///   [`BusEvent::Lagged`] `{ missed: 0 }` (count unknown) before the next
///   frame. Timeouts and backoff run on tokio's timer: they are about
///   network I/O, not the engine's schedule.
/// * **Closing.** When the last clone of the bus is dropped, every
///   subscription task ends and its receiver yields `None`.
/// * [`is_connected`](ClusterBus::is_connected) is true when the sending
///   connection is up (the last connect or send succeeded) and no
///   subscription is reconnecting.
///
/// # Cancellation safety
///
/// Dropping a `send` future part way may leave some of its frames
/// published and the rest not (as a failed `send` may). Dropping a
/// `subscribe` future closes the connection it was making.
///
/// # Example
///
/// ```no_run
/// use std::sync::Arc;
/// use herald::bus::{BusEvent, ClusterBus};
/// use herald_redis::RedisBus;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = RedisBus::connect("redis://127.0.0.1:6379", "herald:prod:news")
///     .await
///     .expect("redis is up");
/// let mut rx = bus.subscribe().await.unwrap();
/// bus.send(vec![Arc::from(&b"hello"[..])]).await.unwrap();
/// assert_eq!(rx.recv().await, Some(BusEvent::Frame(Arc::from(&b"hello"[..]))));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    target: Arc<Target>,
    publisher: Mutex<Publisher>,
    /// Whether the sending connection is up, as of the last connect or
    /// send.
    connected: AtomicBool,
    /// Dropped with the bus: the subscription tasks see it and end.
    _closed: watch::Sender<()>,
    closed: watch::Receiver<()>,
}

#[derive(Debug)]
struct Publisher {
    conn: Option<MultiplexedConnection>,
    /// Bumped on every new connection, so a failed send drops only the
    /// connection it failed on.
    generation: u64,
}

impl RedisBus {
    /// Connects to the Redis server at `url` (`redis://[user:password@]host[:port][/db]`
    /// or `unix:///path`) for a bus on the channel `channel`.
    ///
    /// The channel name must be 1 to 256 bytes of printable ASCII without
    /// spaces ([`validate_channel`]). The database number in the URL does
    /// not matter: Redis pub/sub channels are server-wide.
    ///
    /// # Errors
    ///
    /// [`ConnectError`]: the channel name or URL is invalid, or the server
    /// cannot be reached within 5 s or refuses the connection.
    pub async fn connect(url: &str, channel: &str) -> Result<Self, ConnectError> {
        validate_channel(channel)?;
        let client = redis::Client::open(url).map_err(ConnectError::Url)?;
        let conn = connect_publisher(&client).await?;
        let (closed_tx, closed) = watch::channel(());
        Ok(Self {
            inner: Arc::new(Inner {
                target: Arc::new(Target {
                    client,
                    channel: Arc::from(channel),
                    down: AtomicUsize::new(0),
                }),
                publisher: Mutex::new(Publisher {
                    conn: Some(conn),
                    generation: 0,
                }),
                connected: AtomicBool::new(true),
                _closed: closed_tx,
                closed,
            }),
        })
    }

    /// The Redis channel this bus publishes and subscribes on.
    pub fn channel(&self) -> &str {
        &self.inner.target.channel
    }

    /// The sending connection, made first if there is none.
    async fn publisher(&self) -> Result<(u64, MultiplexedConnection), BusError> {
        let mut p = self.inner.publisher.lock().await;
        if let Some(conn) = &p.conn {
            return Ok((p.generation, conn.clone()));
        }
        match connect_publisher(&self.inner.target.client).await {
            Ok(conn) => {
                p.generation += 1;
                p.conn = Some(conn.clone());
                self.inner.connected.store(true, Ordering::Relaxed);
                Ok((p.generation, conn))
            }
            Err(e) => {
                self.inner.connected.store(false, Ordering::Relaxed);
                Err(BusError::new(format!(
                    "redis channel {}: {e}",
                    self.channel()
                )))
            }
        }
    }

    /// Drops the sending connection of `generation` after it failed.
    async fn publisher_failed(&self, generation: u64) {
        let mut p = self.inner.publisher.lock().await;
        if p.generation == generation {
            p.conn = None;
            self.inner.connected.store(false, Ordering::Relaxed);
        }
    }
}

async fn connect_publisher(client: &redis::Client) -> Result<MultiplexedConnection, ConnectError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| {
            if e.is_timeout() {
                ConnectError::Timeout(CONNECT_TIMEOUT)
            } else {
                ConnectError::Connect(e)
            }
        })
}

impl ClusterBus for RedisBus {
    fn send(&self, frames: Vec<Arc<[u8]>>) -> BusFuture<'_, ()> {
        Box::pin(async move {
            if frames.is_empty() {
                return Ok(());
            }
            if let Some(big) = frames.iter().find(|f| f.len() > MAX_FRAME) {
                return Err(BusError::new(format!(
                    "a frame of {} bytes is over the redis bus limit of {MAX_FRAME} bytes",
                    big.len()
                )));
            }
            let (generation, mut conn) = self.publisher().await?;
            let mut pipe = redis::pipe();
            for frame in &frames {
                pipe.cmd("PUBLISH")
                    .arg(self.channel())
                    .arg(&frame[..])
                    .ignore();
            }
            match pipe.query_async::<()>(&mut conn).await {
                Ok(()) => {
                    self.inner.connected.store(true, Ordering::Relaxed);
                    Ok(())
                }
                Err(e) => {
                    self.publisher_failed(generation).await;
                    Err(BusError::new(format!(
                        "publishing {} frames on redis channel {}: {e}",
                        frames.len(),
                        self.channel()
                    )))
                }
            }
        })
    }

    fn subscribe(&self) -> BusFuture<'_, mpsc::Receiver<BusEvent>> {
        Box::pin(async move {
            let target = self.inner.target.clone();
            let conn = subscription::open(&target).await.map_err(|e| {
                BusError::new(format!(
                    "subscribing to redis channel {}: {e}",
                    target.channel
                ))
            })?;
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            tokio::spawn(subscription::run(
                target,
                conn,
                Queue::new(tx),
                self.inner.closed.clone(),
            ));
            Ok(rx)
        })
    }

    fn max_frame(&self) -> usize {
        MAX_FRAME
    }

    fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
            && self.inner.target.down.load(Ordering::Relaxed) == 0
    }
}
