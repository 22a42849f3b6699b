//! One bus subscription: a dedicated Redis pub/sub connection, read by a
//! task that forwards each message to the subscription's [`Queue`], and
//! that connects and subscribes again when the connection is lost.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_core::Stream;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::ConnectError;
use crate::backoff::Backoff;
use crate::queue::{Closed, Queue};

/// How long connecting and subscribing may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A subscription silent for this long pings the server, so a connection
/// lost without a word (a network partition, a half-open socket) is
/// noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long the server may take to answer that ping.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// A subscribed pub/sub connection.
pub(crate) type Connection = (PubSubSink, PubSubStream);

/// What a subscription task needs to make its connection again.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) client: redis::Client,
    pub(crate) channel: Arc<str>,
    /// Subscriptions currently without a connection (for
    /// [`RedisBus::is_connected`](crate::RedisBus::is_connected)).
    pub(crate) down: AtomicUsize,
}

/// Opens a pub/sub connection and subscribes to the channel; resolves
/// once the server confirmed the `SUBSCRIBE`.
pub(crate) async fn open(target: &Target) -> Result<Connection, ConnectError> {
    let subscribe = async {
        let mut pubsub = target.client.get_async_pubsub().await?;
        pubsub.subscribe(&*target.channel).await?;
        Ok(pubsub.split())
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, subscribe).await {
        Ok(result) => result.map_err(ConnectError::Connect),
        Err(_) => Err(ConnectError::Timeout(CONNECT_TIMEOUT)),
    }
}

/// Why reading a connection stopped.
enum Ended {
    /// The receiver or the bus is gone: the task ends.
    Done,
    /// The connection was lost: connect again.
    Lost(String),
}

/// The subscription task: forwards messages from `conn` into `queue`
/// until the receiver is dropped or the bus is closed (`closed` sees its
/// sender dropped), making the connection again whenever it is lost.
pub(crate) async fn run(
    target: Arc<Target>,
    mut conn: Connection,
    mut queue: Queue,
    mut closed: watch::Receiver<()>,
) {
    loop {
        let why = match read(&mut conn, &mut queue, &mut closed).await {
            Ended::Done => return,
            Ended::Lost(why) => why,
        };
        drop(conn);
        warn!(channel = %target.channel, reason = %why, "redis bus subscription lost its connection; reconnecting");
        conn = match reconnect(&target, &queue, &mut closed).await {
            Some(conn) => conn,
            None => return,
        };
        info!(channel = %target.channel, "redis bus subscription connected again; its receiver is told it may have missed frames");
        if queue.interrupted() == Err(Closed) {
            return;
        }
    }
}

/// Reads messages into the queue; pings the server when it has been
/// quiet for [`KEEPALIVE`].
async fn read(conn: &mut Connection, queue: &mut Queue, closed: &mut watch::Receiver<()>) -> Ended {
    let (sink, stream) = conn;
    loop {
        let next = tokio::select! {
            biased;
            _ = closed.changed() => return Ended::Done,
            () = queue.sender().closed() => return Ended::Done,
            next = tokio::time::timeout(KEEPALIVE, next_message(stream)) => next,
        };
        match next {
            Ok(Some(msg)) => {
                if queue.frame(Arc::from(msg.get_payload_bytes())) == Err(Closed) {
                    return Ended::Done;
                }
            }
            Ok(None) => return Ended::Lost("the connection closed".into()),
            Err(_quiet) => match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>())
                .await
            {
                Ok(Ok(_)) => debug!("redis bus subscription: quiet, but the server answers"),
                Ok(Err(e)) => return Ended::Lost(format!("PING failed: {e}")),
                Err(_) => return Ended::Lost(format!("no answer to PING within {PING_TIMEOUT:?}")),
            },
        }
    }
}

async fn next_message(stream: &mut PubSubStream) -> Option<redis::Msg> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// Connects and subscribes again, with [`Backoff`]; `None` if the
/// receiver or the bus went away meanwhile.
async fn reconnect(
    target: &Target,
    queue: &Queue,
    closed: &mut watch::Receiver<()>,
) -> Option<Connection> {
    let _down = Down::new(&target.down);
    let mut backoff = Backoff::default();
    let mut failures = 0u64;
    loop {
        let attempt = async {
            tokio::time::sleep(backoff.next_delay()).await;
            open(target).await
        };
        let result = tokio::select! {
            biased;
            _ = closed.changed() => return None,
            () = queue.sender().closed() => return None,
            result = attempt => result,
        };
        match result {
            Ok(conn) => return Some(conn),
            Err(e) => {
                failures += 1;
                // The first failures, then every hundredth: an outage of
                // minutes does not flood the log.
                if failures <= 3 || failures.is_multiple_of(100) {
                    warn!(channel = %target.channel, error = %e, failures, "redis bus subscription cannot reconnect yet");
                }
            }
        }
    }
}

/// Counts a subscription as down while it lives.
struct Down<'a>(&'a AtomicUsize);

impl<'a> Down<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
