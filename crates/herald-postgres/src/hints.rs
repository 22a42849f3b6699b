//! Wake-up hints between the nodes sharing a schema
//! ([`Store::due_hints`](herald::Store::due_hints)), over PostgreSQL's
//! `LISTEN`/`NOTIFY`.
//!
//! * **Sending.** Every write that schedules runs (an insert of a
//!   `Start::At`, a completion with `Next::At`, a `release_expired` that
//!   returned runs) sends one `pg_notify(channel, '<min due> <tag>')` per
//!   batch, in the same statement (so in the same transaction: a rolled
//!   back write hints nothing). The channel is named after the schema
//!   ([`channel_name`]); the tag names the sending store.
//! * **This store's own writes** are hinted to its subscribers directly,
//!   after the commit, so they never wait for the database; the listener
//!   skips notifications carrying this store's tag.
//! * **Receiving.** The first `due_hints` call starts one task holding a
//!   dedicated connection (not from the pool) that `LISTEN`s on the
//!   channel and hands each other store's due time to the [`HintHub`].
//!   When the connection ends, the task connects again after a backoff
//!   (100 ms doubling to 5 s, on tokio's time), and then hints "now"
//!   once: notifications sent while it was away are lost, so the engines
//!   look at the store at once instead of at their next periodic look.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::{Clock, DueHints, HintHub};
use herald_core::Tick;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

/// The first wait before connecting again, doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait before connecting again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The `NOTIFY` channel of `schema`: `herald_due_<schema>`, or, when that
/// is longer than PostgreSQL's 63-byte names, the schema's first 35 bytes
/// and a hash of all of it (the same on every node).
pub(crate) fn channel_name(schema: &str) -> String {
    let plain = format!("herald_due_{schema}");
    if plain.len() <= 63 {
        return plain;
    }
    // FNV-1a: fixed, so every node derives the same name.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in schema.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Schema names are ASCII (`check_schema`), so any byte is a boundary.
    format!("herald_due_{}_{h:016x}", &schema[..35])
}

/// Whether the listener is connected, and how many times it connected.
#[derive(Clone, Copy, Debug, Default)]
struct Listening {
    up: bool,
    sessions: u64,
}

/// A store's hints: its hub, its channel and tag, and its listener.
pub(crate) struct Hints {
    hub: Arc<HintHub>,
    pub(crate) channel: String,
    /// Sent with every notification of this store, so its listener can
    /// skip its own (hinted directly).
    pub(crate) tag: String,
    config: tokio_postgres::Config,
    clock: Arc<dyn Clock>,
    state: watch::Sender<Listening>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Hints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hints")
            .field("channel", &self.channel)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Hints {
    /// Hints for `schema`; the listener connects with `config` once
    /// [`subscribe`](Self::subscribe) is first called.
    pub(crate) fn new(schema: &str, config: tokio_postgres::Config, clock: Arc<dyn Clock>) -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let mut config = config;
        config.application_name("herald-hints");
        Self {
            hub: Arc::new(HintHub::new()),
            channel: channel_name(schema),
            tag: format!("{:016x}", h.finish()),
            config,
            clock,
            state: watch::Sender::new(Listening::default()),
            listener: Mutex::new(None),
        }
    }

    /// A new subscription; starts the listener if it is not running (and
    /// a tokio runtime is at hand).
    pub(crate) fn subscribe(self: &Arc<Self>) -> DueHints {
        let sub = self.hub.subscribe();
        let mut listener = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        if listener.is_none()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            *listener = Some(rt.spawn(listen(self.clone())));
        }
        sub
    }

    /// Tells this store's subscribers that its own write scheduled a run
    /// due at `due` (the earliest of the batch), if any.
    pub(crate) fn scheduled(&self, due: Option<i64>) {
        if let Some(due) = due {
            self.hub
                .hint(Tick::from_millis(u64::try_from(due).unwrap_or(0)));
        }
    }

    /// Stops the listener (its connection closes).
    pub(crate) fn stop(&self) {
        if let Some(task) = self
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
        self.state.send_modify(|s| s.up = false);
    }

    /// Waits until the listener is connected in a session numbered above
    /// `after`; that session's number.
    pub(crate) async fn listening(&self, after: u64) -> u64 {
        let mut rx = self.state.subscribe();
        let s = *rx
            .wait_for(|s| s.up && s.sessions > after)
            .await
            .expect("the sender lives in self");
        s.sessions
    }

    /// The due time in a notification's payload, unless this store sent it.
    fn parse(&self, payload: &str) -> Option<Tick> {
        let (due, tag) = payload.split_once(' ')?;
        if tag == self.tag {
            return None;
        }
        due.parse().ok().map(Tick::from_millis)
    }
}

/// The listener: one session after another, until aborted.
async fn listen(hints: Arc<Hints>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match session(&hints).await {
            Ok(()) => backoff = MIN_BACKOFF,
            Err(e) => {
                tracing::warn!(
                    channel = %hints.channel,
                    "hint listener: {e}; connecting again in {backoff:?}"
                );
            }
        }
        hints.state.send_modify(|s| s.up = false);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Connects, listens, and hands notifications to the hub until the
/// connection ends; `Ok` if it was listening before it ended.
async fn session(hints: &Arc<Hints>) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = hints.config.connect(NoTls).await?;
    let h = hints.clone();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Some(due) = h.parse(n.payload()) {
                        h.hub.hint(due);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    // The channel name is built from a checked schema name; quoted.
    if let Err(e) = client
        .batch_execute(&format!("LISTEN \"{}\"", hints.channel))
        .await
    {
        driver.abort();
        return Err(e);
    }
    let mut again = false;
    hints.state.send_modify(|s| {
        s.up = true;
        s.sessions += 1;
        again = s.sessions > 1;
    });
    if again {
        // Notifications sent while disconnected are lost: look now.
        hints.hub.hint(hints.clock.now());
    }
    let ended = driver.await;
    drop(client);
    match ended {
        Ok(Err(e)) => {
            tracing::warn!(channel = %hints.channel, "hint listener connection lost: {e}");
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_fit_and_differ() {
        assert_eq!(channel_name("app_news"), "herald_due_app_news");
        let long_a = format!("{}a", "x".repeat(62));
        let long_b = format!("{}b", "x".repeat(62));
        let (a, b) = (channel_name(&long_a), channel_name(&long_b));
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(
            a, b,
            "long names that share a prefix get different channels"
        );
        assert_eq!(a, channel_name(&long_a), "the same on every node");
    }

    #[test]
    fn own_notifications_are_skipped() {
        let config: tokio_postgres::Config = "host=localhost".parse().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(herald::ManualClock::new(Tick::from_millis(0)));
        let a = Hints::new("app", config.clone(), clock.clone());
        let b = Hints::new("app", config, clock);
        assert_ne!(a.tag, b.tag, "each store has its own tag");
        let payload = format!("1234 {}", b.tag);
        assert_eq!(a.parse(&payload), Some(Tick::from_millis(1234)));
        assert_eq!(b.parse(&payload), None, "its own");
        assert_eq!(a.parse("garbage"), None);
    }
}
