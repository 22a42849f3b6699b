//! Legacy REST polling subscriptions (`POST messaging/{channel}/subscribe`,
//! `GET messaging/{channel}/{subscriptionId}`).
//!
//! Each subscription is an engine [`Subscription`] whose runs wait in its
//! bounded buffer until polled. A poll returns what arrived since the last
//! poll, less anything older than [`WINDOW`] (Backendless returns "messages
//! from the last 60 s"), each once. A subscription not polled for the TTL
//! (default 5 min) is dropped, which unsubscribes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use herald::{Lagged, Subscription};
use serde_json::{Value, json};
use tracing::{debug, warn};

use crate::State;
use crate::config::random_uuid;
use crate::error::ApiError;

/// How old a message may be and still be returned by a poll.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// At most this many polling subscriptions at once (across apps).
const MAX_SUBSCRIPTIONS: usize = 10_000;

#[derive(Debug)]
struct PollSub {
    app: String,
    channel: String,
    sub: Subscription,
    last_poll: Instant,
}

/// The live polling subscriptions, by id.
#[derive(Debug)]
pub(crate) struct Polling {
    subs: Mutex<HashMap<String, Arc<Mutex<PollSub>>>>,
    ttl: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Polling {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            subs: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// How many subscriptions are live.
    pub(crate) fn len(&self) -> usize {
        lock(&self.subs).len()
    }

    /// Registers `sub` (already subscribed to `channel` of `app`) and
    /// returns its new random id.
    pub(crate) fn subscribe(
        &self,
        app: &str,
        channel: &str,
        sub: Subscription,
    ) -> Result<String, ApiError> {
        let id = random_uuid().map_err(|e| {
            warn!(error = %e, "no randomness for a subscription id");
            ApiError::too_many_subscriptions()
        })?;
        let mut subs = lock(&self.subs);
        if subs.len() >= MAX_SUBSCRIPTIONS {
            return Err(ApiError::too_many_subscriptions());
        }
        subs.insert(
            id.clone(),
            Arc::new(Mutex::new(PollSub {
                app: app.to_owned(),
                channel: channel.to_owned(),
                sub,
                last_poll: Instant::now(),
            })),
        );
        debug!(app, channel, "polling subscription created");
        Ok(id)
    }

    /// The messages of subscription `id` since its last poll (at most
    /// [`WINDOW`] old, by the engine clock `now_ms`). 8006 if there is no
    /// such subscription for this app and channel.
    pub(crate) fn poll(
        &self,
        app: &str,
        channel: &str,
        id: &str,
        now_ms: u64,
    ) -> Result<Vec<Value>, ApiError> {
        let entry = lock(&self.subs)
            .get(id)
            .cloned()
            .ok_or_else(ApiError::unknown_subscription)?;
        let mut entry = lock(&entry);
        if entry.app != app || entry.channel != channel {
            return Err(ApiError::unknown_subscription());
        }
        entry.last_poll = Instant::now();
        let oldest = now_ms.saturating_sub(WINDOW.as_millis() as u64);
        let mut out = Vec::new();
        while let Some(item) = entry.sub.try_recv() {
            match item {
                Ok(msg) if msg.timestamp_millis() >= oldest => out.push(json!({
                    "messageId": msg.message_id().to_string(),
                    "data": msg.message(),
                    "publishedAt": msg.timestamp_millis(),
                    "publisherId": msg.publisher_id(),
                    "headers": msg.headers(),
                })),
                Ok(_) => {}
                Err(Lagged(n)) => {
                    warn!(app, channel, missed = n, "polling subscription lagged");
                }
            }
        }
        Ok(out)
    }

    /// Drops the subscriptions not polled within the TTL; returns how many.
    pub(crate) fn reap(&self, now: Instant) -> usize {
        let mut subs = lock(&self.subs);
        let before = subs.len();
        subs.retain(|_, s| now.saturating_duration_since(lock(s).last_poll) < self.ttl);
        before - subs.len()
    }

    /// Drops every subscription (at shutdown).
    pub(crate) fn clear(&self) {
        lock(&self.subs).clear();
    }
}

/// Reaps expired subscriptions every `min(ttl / 4, 30 s)`, forever.
pub(crate) async fn reap_forever(state: Arc<State>) {
    let period = (state.polling.ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let n = state.polling.reap(Instant::now());
        if n > 0 {
            debug!(expired = n, "polling subscriptions expired");
        }
    }
}
