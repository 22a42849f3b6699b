//! [`PgBus`]: the cluster bus on PostgreSQL `LISTEN/NOTIFY`, the default
//! bus of nodes that share a PostgreSQL store.
//!
//! * **Sending.** One statement per batch, `SELECT pg_notify(channel, p)
//!   FROM unnest($1::text[])`, on a connection of the bus's own: the frames
//!   are delivered to every listener when it commits, in order. A payload
//!   is a sequence number (PostgreSQL folds identical payloads sent in one
//!   transaction into one) and as many of the batch's frames as fit in
//!   `NOTIFY`'s 8000 bytes, each in base64, separated by spaces: every
//!   notification costs PostgreSQL work per listener, so a batch of 30
//!   small frames is one notification, not 30 (a node firing 3k runs/s
//!   sent 3k notifications/s to each of 3 listeners before). A frame too
//!   large for one payload goes into the schema's `bus_frames` table and
//!   the payload carries its row id. Rows older than a minute are deleted
//!   as new ones come.
//! * **Receiving.** One `LISTEN` connection per `PgBus`, started by the
//!   first [`subscribe`](ClusterBus::subscribe); its notifications are
//!   decoded once and offered to every subscription's bounded queue. A
//!   subscription that falls behind loses frames and gets
//!   [`BusEvent::Lagged`] with their count before its next frame; when the
//!   connection is lost, the bus connects again (backoff 50 ms doubling to
//!   5 s), listens again and gives every subscription `Lagged { missed: 0 }`
//!   (whatever was sent meanwhile is gone).
//! * **Throughput.** `NOTIFY` takes a database-wide lock at commit, so
//!   every node's sends are serialised: fine for moderate fan-out; for
//!   more, use Redis (`herald-redis`).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use herald::bus::{BusError, BusEvent, BusFuture, ClusterBus};
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Client, NoTls};
use tracing::{debug, warn};

use crate::PgStoreError;
use crate::open::check_schema;

/// Frames up to this many bytes travel in the `NOTIFY` payload (base64 of
/// 5,900 bytes and the header stay under PostgreSQL's 8,000).
const INLINE: usize = 5_900;
/// A payload is at most this many bytes (`NOTIFY` takes fewer than 8000).
const PAYLOAD: usize = 7_900;
/// The largest frame this bus carries.
const MAX_FRAME: usize = 16 << 20;
/// Events a subscription queues at most by default.
pub const DEFAULT_BUS_CAPACITY: usize = 4096;
/// How long a large frame's row is kept.
const FRAME_ROW_MS: u64 = 60_000;

/// The cluster bus on PostgreSQL `LISTEN/NOTIFY` (see the module docs).
/// Cloning it is cheap and shares the connections.
#[derive(Clone)]
pub struct PgBus {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    channel: String,
    capacity: usize,
    sender: tokio::sync::Mutex<Option<Client>>,
    send_ok: AtomicBool,
    seq: AtomicU64,
    subs: Mutex<Vec<Sub>>,
    /// Whether the listener is listening now.
    listening: watch::Sender<bool>,
    /// Wakes the listener at [`PgBus::close`].
    closing: tokio::sync::Notify,
    listener_started: AtomicBool,
    closed: AtomicBool,
}

impl fmt::Debug for PgBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBus")
            .field("channel", &self.inner.channel)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Sub {
    tx: mpsc::Sender<BusEvent>,
    lost: Option<u64>,
}

impl Sub {
    /// Offers `event` after the pending lag notice; false once the
    /// receiver is gone.
    fn offer(&mut self, event: BusEvent) -> bool {
        if let Some(missed) = self.lost {
            match self.tx.try_send(BusEvent::Lagged { missed }) {
                Ok(()) => self.lost = None,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.lost = Some(missed.saturating_add(1));
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lost = Some(1);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The `NOTIFY` channel of `schema`'s bus.
fn channel_of(schema: &str) -> String {
    if schema.len() <= 58 {
        format!("hbus_{schema}")
    } else {
        let h = schema.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("hbus_{h:016x}")
    }
}

fn bus_error(what: &str, e: impl fmt::Display) -> BusError {
    BusError::new(format!("PostgreSQL bus: {what}: {e}"))
}

impl PgBus {
    /// A bus for the nodes that share `schema` of the database at `url`
    /// (the schema of their [`PgStore`](crate::PgStore); created if
    /// missing, with the `bus_frames` table).
    ///
    /// # Errors
    ///
    /// A URL that does not parse, a schema name that is not accepted, or a
    /// server that cannot be reached.
    pub async fn connect(url: &str, schema: &str) -> Result<Self, PgStoreError> {
        Self::with_capacity(url, schema, DEFAULT_BUS_CAPACITY).await
    }

    /// As [`connect`](Self::connect), with subscriptions that queue at
    /// most `capacity` events (at least 2).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn with_capacity(
        url: &str,
        schema: &str,
        capacity: usize,
    ) -> Result<Self, PgStoreError> {
        check_schema(schema)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(PgStoreError::Url)?;
        let path = format!("-c search_path={schema}");
        let startup = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {path}"),
            _ => path,
        };
        config.options(&startup);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("herald-bus");
        }
        let client = connect(&config).await.map_err(PgStoreError::Connect)?;
        // The table for large frames, once, whoever comes first.
        client
            .batch_execute(&format!(
                "BEGIN;
                 SELECT pg_advisory_xact_lock(hashtext('herald-bus:' || '{schema}'));
                 CREATE SCHEMA IF NOT EXISTS \"{schema}\";
                 CREATE TABLE IF NOT EXISTS \"{schema}\".bus_frames (
                     id bigserial PRIMARY KEY, frame bytea NOT NULL, at bigint NOT NULL);
                 COMMIT;"
            ))
            .await
            .map_err(PgStoreError::Connect)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                channel: channel_of(schema),
                capacity: capacity.max(2),
                sender: tokio::sync::Mutex::new(Some(client)),
                send_ok: AtomicBool::new(true),
                seq: AtomicU64::new(0),
                subs: Mutex::new(Vec::new()),
                listening: watch::Sender::new(false),
                closing: tokio::sync::Notify::new(),
                listener_started: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The `NOTIFY` channel this bus uses.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    /// Stops the listener (subscriptions end) and drops the connections.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.subs().clear();
        self.inner.closing.notify_waiters();
    }

    async fn send_now(&self, frames: Vec<Arc<[u8]>>) -> Result<(), BusError> {
        let inner = &self.inner;
        let mut guard = inner.sender.lock().await;
        if guard.is_none() {
            *guard = Some(connect(&inner.config).await.map_err(|e| {
                inner.send_ok.store(false, Ordering::Relaxed);
                bus_error("cannot connect", e)
            })?);
        }
        let Some(client) = guard.as_ref() else {
            return Err(BusError::new("PostgreSQL bus: no connection"));
        };
        let result = send_on(inner, client, frames).await;
        match &result {
            Ok(()) => inner.send_ok.store(true, Ordering::Relaxed),
            Err(_) => {
                inner.send_ok.store(false, Ordering::Relaxed);
                *guard = None;
            }
        }
        result
    }

    fn start_listener(&self) {
        if !self.inner.listener_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(listen_forever(self.inner.clone()));
        }
    }
}

impl Inner {
    fn subs(&self) -> MutexGuard<'_, Vec<Sub>> {
        // Every update under the lock is complete before it is released.
        self.subs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn offer(&self, event: &BusEvent) {
        self.subs().retain_mut(|s| s.offer(event.clone()));
    }
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(error = %e, "bus connection ended");
        }
    });
    Ok(client)
}

async fn send_on(inner: &Inner, client: &Client, frames: Vec<Arc<[u8]>>) -> Result<(), BusError> {
    let now = now_ms();
    let mut items = Vec::with_capacity(frames.len());
    let mut stored = false;
    for frame in frames {
        if frame.len() > MAX_FRAME {
            return Err(BusError::new(format!(
                "PostgreSQL bus: a frame of {} bytes (at most {MAX_FRAME})",
                frame.len()
            )));
        }
        if frame.len() <= INLINE {
            items.push(format!("i{}", B64.encode(&frame)));
        } else {
            let row = client
                .query_one(
                    "INSERT INTO bus_frames (frame, at) VALUES ($1, $2) RETURNING id",
                    &[&&frame[..], &(now as i64)],
                )
                .await
                .map_err(|e| bus_error("storing a large frame", e))?;
            let id: i64 = row.get(0);
            items.push(format!("t{id}"));
            stored = true;
        }
    }
    let payloads = pack(&inner.seq, &items);
    if stored && inner.seq.load(Ordering::Relaxed) % 64 < 8 {
        // Now and then, forget old large frames (every listener had them).
        let _ = client
            .execute(
                "DELETE FROM bus_frames WHERE at < $1",
                &[&(now.saturating_sub(FRAME_ROW_MS) as i64)],
            )
            .await;
    }
    client
        .execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
            &[&inner.channel, &payloads],
        )
        .await
        .map_err(|e| bus_error("NOTIFY", e))?;
    Ok(())
}

/// The payloads carrying `items` in order: each a fresh sequence number,
/// `:`, then as many items as fit in [`PAYLOAD`] bytes, separated by
/// spaces (neither base64 nor a row id has one). An item is at most
/// `INLINE`'s base64 (7,868 bytes), so one always fits.
fn pack(seq: &AtomicU64, items: &[String]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for item in items {
        if !current.is_empty() && current.len() + 1 + item.len() > PAYLOAD {
            payloads.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current = format!("{:x}:", seq.fetch_add(1, Ordering::Relaxed));
        } else {
            current.push(' ');
        }
        current.push_str(item);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The listener: connects, listens, offers what arrives; again after a
/// loss, telling every subscription first.
async fn listen_forever(inner: Arc<Inner>) {
    let mut backoff = Duration::from_millis(50);
    let mut first = true;
    while !inner.closed.load(Ordering::Acquire) {
        match listen_once(&inner, &mut first).await {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                inner.listening.send_replace(false);
                warn!(error = %e, channel = %inner.channel, "PostgreSQL bus listener lost its connection; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn listen_once(inner: &Arc<Inner>, first: &mut bool) -> Result<(), String> {
    let (client, mut connection) = inner
        .config
        .connect(NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN \"{}\"", inner.channel))
        .await
        .map_err(|e| e.to_string())?;
    if !std::mem::replace(first, false) {
        // Whatever was sent while not listening is gone.
        for s in inner.subs().iter_mut() {
            s.lost = Some(s.lost.unwrap_or(0));
        }
    }
    inner.listening.send_replace(true);
    let result = loop {
        let closing = inner.closing.notified();
        if inner.closed.load(Ordering::Acquire) {
            break Ok(());
        }
        let payload = tokio::select! {
            p = rx.recv() => p,
            () = closing => break Ok(()),
        };
        let Some(payload) = payload else {
            break Err("connection closed".to_owned());
        };
        for frame in decode(&client, &payload).await {
            match frame {
                Ok(frame) => inner.offer(&BusEvent::Frame(frame)),
                Err(e) => {
                    warn!(error = %e, "PostgreSQL bus: a frame could not be read; subscribers told");
                    for s in inner.subs().iter_mut() {
                        s.lost = Some(s.lost.unwrap_or(0).saturating_add(1));
                    }
                }
            }
        }
    };
    driver.abort();
    result
}

/// The frames of one payload, in order; an item that cannot be read is
/// an error in its place (a payload without a sequence number: one error).
async fn decode(client: &Client, payload: &str) -> Vec<Result<Arc<[u8]>, String>> {
    let Some((_, body)) = payload.split_once(':') else {
        return vec![Err(format!(
            "payload without a sequence number: {payload:.40}"
        ))];
    };
    let mut frames = Vec::new();
    for item in body.split(' ') {
        frames.push(decode_item(client, item).await);
    }
    frames
}

async fn decode_item(client: &Client, item: &str) -> Result<Arc<[u8]>, String> {
    if let Some(b64) = item.strip_prefix('i') {
        return B64
            .decode(b64)
            .map(Arc::from)
            .map_err(|e| format!("payload: {e}"));
    }
    let id: i64 = item
        .strip_prefix('t')
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| format!("payload: {item:.40}"))?;
    let row = client
        .query_opt("SELECT frame FROM bus_frames WHERE id = $1", &[&id])
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("large frame {id} is gone"))?;
    let frame: Vec<u8> = row.get(0);
    Ok(frame.into())
}

impl ClusterBus for PgBus {
    fn send(&self, frames: Vec<Arc<[u8]>>) -> BusFuture<'_, ()> {
        Box::pin(self.send_now(frames))
    }

    fn subscribe(&self) -> BusFuture<'_, mpsc::Receiver<BusEvent>> {
        Box::pin(async move {
            let mut listening = self.inner.listening.subscribe();
            self.start_listener();
            // Until the listener has run LISTEN: frames sent after this
            // returns reach the subscription.
            tokio::time::timeout(Duration::from_secs(30), listening.wait_for(|on| *on))
                .await
                .map_err(|_| BusError::new("PostgreSQL bus: not listening within 30 s"))?
                .map_err(|_| BusError::new("PostgreSQL bus: closed"))?;
            let (tx, rx) = mpsc::channel(self.inner.capacity);
            self.inner.subs().push(Sub { tx, lost: None });
            Ok(rx)
        })
    }

    fn max_frame(&self) -> usize {
        MAX_FRAME
    }

    fn is_connected(&self) -> bool {
        self.inner.send_ok.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn channels_fit_postgres_identifiers() {
        assert_eq!(channel_of("herald_a_1234"), "hbus_herald_a_1234");
        let long = "x".repeat(63);
        let c = channel_of(&long);
        assert!(c.len() <= 63, "{c}");
        assert_ne!(c, channel_of(&"y".repeat(63)));
    }

    #[test]
    fn inline_payloads_fit_notify() {
        let payload = format!("{:x}:i{}", u64::MAX, B64.encode(vec![0u8; INLINE]));
        assert!(payload.len() < 8000, "{}", payload.len());
    }

    /// The items of `payloads`, in order, as a listener splits them.
    fn unpack(payloads: &[String]) -> Vec<String> {
        payloads
            .iter()
            .flat_map(|p| p.split_once(':').unwrap().1.split(' '))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn small_frames_share_a_payload_in_order() {
        let items: Vec<String> = (0..1000u32)
            .map(|i| format!("i{}", B64.encode(i.to_be_bytes().repeat(30))))
            .collect();
        let seq = AtomicU64::new(u64::MAX - 2_000);
        let payloads = pack(&seq, &items);
        assert_eq!(unpack(&payloads), items);
        // 1000 items of 161 bytes: 48 to a payload.
        assert_eq!(payloads.len(), 21, "{}", payloads.len());
        assert!(payloads.iter().all(|p| p.len() <= PAYLOAD));
        // Each payload its own sequence number (PostgreSQL folds equal
        // payloads of one transaction).
        let seqs: HashSet<&str> = payloads
            .iter()
            .map(|p| p.split_once(':').unwrap().0)
            .collect();
        assert_eq!(seqs.len(), payloads.len());
    }

    #[test]
    fn largest_inline_frames_go_one_to_a_payload() {
        let big = format!("i{}", B64.encode(vec![7u8; INLINE]));
        let items = vec![big.clone(), "t42".to_owned(), big.clone(), big];
        let payloads = pack(&AtomicU64::new(u64::MAX - 10), &items);
        assert_eq!(unpack(&payloads), items);
        // The row id rides with the first big frame.
        assert_eq!(payloads.len(), 3);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        assert!(pack(&AtomicU64::new(0), &[]).is_empty());
    }
}
