//! Legacy REST polling subscriptions (`POST messaging/{channel}/subscribe`,
//! `GET messaging/{channel}/{subscriptionId}`), one registry per app.
//!
//! Each subscription is an engine subscription on an [`Inbox`] of its own,
//! bounded in bytes (`connection_buffer`: past it the oldest runs are
//! dropped and counted as lag). A poll returns what arrived since the last
//! poll, less anything older than [`WINDOW`] (Backendless returns "messages
//! from the last 60 s"), each once, at most `poll_max_bytes` per answer
//! (the rest stays queued for the next poll). A subscription not polled for
//! the TTL (default 5 min, on the server's clock) is dropped, which
//! unsubscribes it at once. An app has at most `max_polling_subscriptions`;
//! the slot is taken before the engine subscription is made, so a refused
//! subscribe (429) costs nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use herald::{Engine, Inbox, InboxItem, InboxLimits, Membership};
use herald_core::Tick;
use tracing::{debug, warn};

use crate::State;
use crate::config::random_uuid;
use crate::error::ApiError;

/// How old a message may be and still be returned by a poll.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct PollSub {
    channel: String,
    inbox: Inbox,
    _membership: Membership,
    last_poll: Tick,
}

#[derive(Debug, Default)]
struct Registry {
    subs: HashMap<String, Arc<Mutex<PollSub>>>,
    /// Slots taken by subscribes in progress.
    reserved: usize,
}

/// One app's live polling subscriptions, by id.
#[derive(Debug)]
pub(crate) struct Polling {
    registry: Mutex<Registry>,
    ttl_ms: u64,
    max: usize,
    buffer: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Polling {
    pub(crate) fn new(ttl: Duration, max: usize, buffer: usize) -> Self {
        Self {
            registry: Mutex::default(),
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            max,
            buffer,
        }
    }

    /// How many subscriptions are live.
    pub(crate) fn len(&self) -> usize {
        lock(&self.registry).subs.len()
    }

    /// Subscribes to `channel` through `engine` and returns the new
    /// subscription's random id; 429 (8008) when the app has its maximum.
    pub(crate) fn subscribe(
        &self,
        engine: &Engine,
        channel: &str,
        selector: Option<&str>,
        now: Tick,
    ) -> Result<String, ApiError> {
        {
            let mut r = lock(&self.registry);
            if r.subs.len() + r.reserved >= self.max {
                return Err(ApiError::too_many_subscriptions());
            }
            r.reserved += 1;
        }
        let made = self.make(engine, channel, selector, now);
        let mut r = lock(&self.registry);
        r.reserved -= 1;
        let (id, sub) = made?;
        r.subs.insert(id.clone(), Arc::new(Mutex::new(sub)));
        debug!(channel, "polling subscription created");
        Ok(id)
    }

    fn make(
        &self,
        engine: &Engine,
        channel: &str,
        selector: Option<&str>,
        now: Tick,
    ) -> Result<(String, PollSub), ApiError> {
        let inbox = Inbox::new(InboxLimits {
            max_messages: usize::MAX,
            max_bytes: self.buffer,
            max_subscriptions: 1,
        });
        let membership = engine.subscribe_to(&inbox, channel, selector)?;
        let id = random_uuid().map_err(|e| {
            warn!(error = %e, "no randomness for a subscription id");
            ApiError::too_many_subscriptions()
        })?;
        Ok((
            id,
            PollSub {
                channel: channel.to_owned(),
                inbox,
                _membership: membership,
                last_poll: now,
            },
        ))
    }

    /// The answer to a poll of subscription `id` of `channel` at `now`: the
    /// JSON `{"messages": [...]}` with what arrived since the last poll (at
    /// most [`WINDOW`] old), at most `max_bytes` of runs; 404 (8006) if
    /// there is no such subscription on this channel. Runs the inbox had to
    /// drop are counted in `lagged`.
    pub(crate) fn poll(
        &self,
        channel: &str,
        id: &str,
        now: Tick,
        max_bytes: usize,
        lagged: &mut u64,
    ) -> Result<String, ApiError> {
        let entry = lock(&self.registry)
            .subs
            .get(id)
            .cloned()
            .ok_or_else(ApiError::unknown_subscription)?;
        let mut entry = lock(&entry);
        if entry.channel != channel {
            return Err(ApiError::unknown_subscription());
        }
        entry.last_poll = now;
        let oldest = now.as_millis().saturating_sub(WINDOW.as_millis() as u64);
        let mut out = String::from("{\"messages\":[");
        let mut first = true;
        for item in entry.inbox.drain_bytes(max_bytes) {
            match item {
                InboxItem::Message { message, .. } if message.timestamp_millis() >= oldest => {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    write_message(&mut out, &message);
                }
                InboxItem::Message { .. } | InboxItem::Ended { .. } => {}
                InboxItem::Lagged { missed, .. } => {
                    *lagged += missed;
                    warn!(channel, missed, "polling subscription lagged");
                }
            }
        }
        out.push_str("]}");
        Ok(out)
    }

    /// Drops the subscriptions not polled within the TTL before `now`;
    /// returns how many.
    pub(crate) fn reap(&self, now: Tick) -> usize {
        let mut r = lock(&self.registry);
        let before = r.subs.len();
        r.subs
            .retain(|_, s| now.millis_since(lock(s).last_poll) < self.ttl_ms);
        before - r.subs.len()
    }

    /// Drops every subscription (at shutdown).
    pub(crate) fn clear(&self) {
        lock(&self.registry).subs.clear();
    }

    /// How often the reaper should look.
    pub(crate) fn reap_period(&self) -> Duration {
        Duration::from_millis(self.ttl_ms / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(30))
    }
}

/// One message of a poll's answer: `{messageId, data, publishedAt,
/// publisherId, headers}`, with the body's bytes copied in as they are.
fn write_message(out: &mut String, m: &herald::DeliveredMessage) {
    let _ = write!(
        out,
        "{{\"messageId\":\"{}\",\"data\":{},\"publishedAt\":{},\"publisherId\":{},\"headers\":{}}}",
        m.message_id(),
        m.message().get(),
        m.timestamp_millis(),
        json(&m.publisher_id()),
        json(m.headers()),
    );
}

/// JSON text of a small value.
fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    // Strings and string maps always serialize.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

/// Reaps every app's expired subscriptions, forever (on the server's
/// clock).
pub(crate) async fn reap_forever(state: Arc<State>) {
    let period = state
        .apps
        .values()
        .map(|a| a.polling.reap_period())
        .min()
        .unwrap_or(Duration::from_secs(30));
    loop {
        state.sleep(period).await;
        let now = state.clock.now();
        for app in state.apps.values() {
            let n = app.polling.reap(now);
            if n > 0 {
                debug!(app = %app.id, expired = n, "polling subscriptions expired");
            }
        }
    }
}
