//! `RecordingTransport`: a scriptable in-process gateway for tests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::{Delivery, Notification, Outcome, PushFuture, PushTransport, Refusal};

/// A [`PushTransport`] that records every notification it is handed and
/// answers from a script: per device token, a queue of outcomes (one per
/// attempt; [`Outcome::Sent`] once the queue is empty, or the
/// [`default`](Self::set_default)). It can refuse as a whole gateway
/// ([`refuse`](Self::refuse)) and hold every send until released
/// ([`hold`](Self::hold)), to test what happens while batches are in
/// flight.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use herald::{MessageId, Notification, NotificationId, Os, Outcome, PushContent, PushTransport, RecordingTransport};
/// use herald_core::Tick;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let gw = RecordingTransport::new("apns");
/// gw.script("bad-token", [Outcome::InvalidToken { at: None }]);
/// let note = |token: &str| Notification {
///     id: NotificationId::of(MessageId::from_u128(1), Tick::from_millis(0), token),
///     message_id: MessageId::from_u128(1),
///     device_id: token.into(),
///     device_token: token.into(),
///     os: Os::Ios,
///     content: Arc::new(PushContent::default()),
///     expires_at: Tick::from_millis(1_000),
///     collapse_key: None,
/// };
/// let batch = [note("good-token"), note("bad-token")];
/// let delivery = gw.send(&batch).await;
/// assert_eq!(delivery.outcomes, [Outcome::Sent, Outcome::InvalidToken { at: None }]);
/// assert_eq!(gw.attempts("bad-token"), 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RecordingTransport {
    name: Arc<str>,
    state: Arc<Mutex<State>>,
    held: watch::Sender<bool>,
}

#[derive(Debug)]
struct State {
    script: HashMap<String, VecDeque<Outcome>>,
    default: Outcome,
    refusal: Option<Refusal>,
    sent: Vec<Notification>,
    attempts: HashMap<String, usize>,
    batches: usize,
    in_flight: usize,
    max_in_flight: usize,
}

impl RecordingTransport {
    /// A gateway called `name` that accepts everything.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            state: Arc::new(Mutex::new(State {
                script: HashMap::new(),
                default: Outcome::Sent,
                refusal: None,
                sent: Vec::new(),
                attempts: HashMap::new(),
                batches: 0,
                in_flight: 0,
                max_in_flight: 0,
            })),
            held: watch::Sender::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends outcomes for `token`'s next attempts.
    pub fn script(&self, token: &str, outcomes: impl IntoIterator<Item = Outcome>) {
        self.lock()
            .script
            .entry(token.to_owned())
            .or_default()
            .extend(outcomes);
    }

    /// The outcome of every attempt without a scripted one (default
    /// [`Outcome::Sent`]).
    pub fn set_default(&self, outcome: Outcome) {
        self.lock().default = outcome;
    }

    /// Refuse every batch as a whole (`Some`) or stop refusing (`None`).
    /// A refused batch attempts nothing: every outcome is
    /// [`Outcome::Retry`] and nothing is recorded.
    pub fn refuse(&self, refusal: Option<Refusal>) {
        self.lock().refusal = refusal;
    }

    /// While `true`, every `send` waits (after counting itself in flight)
    /// until it is set back to `false`.
    pub fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }

    /// Every notification attempted, in order (refused batches excluded).
    pub fn sent(&self) -> Vec<Notification> {
        self.lock().sent.clone()
    }

    /// How many times `token` was attempted.
    pub fn attempts(&self, token: &str) -> usize {
        self.lock().attempts.get(token).copied().unwrap_or(0)
    }

    /// How many `send` calls were made (refused ones included).
    pub fn batches(&self) -> usize {
        self.lock().batches
    }

    /// How many `send` calls are running now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// The most `send` calls that ran at once.
    pub fn max_in_flight(&self) -> usize {
        self.lock().max_in_flight
    }
}

/// Counts a send out of flight when it ends or is dropped.
struct InFlight<'a>(&'a RecordingTransport);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
    }
}

impl PushTransport for RecordingTransport {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a self, batch: &'a [Notification]) -> PushFuture<'a> {
        Box::pin(async move {
            {
                let mut s = self.lock();
                s.batches += 1;
                s.in_flight += 1;
                s.max_in_flight = s.max_in_flight.max(s.in_flight);
            }
            let _flight = InFlight(self);
            let mut held = self.held.subscribe();
            // The sender lives in `self`, so this only ends when released.
            let _ = held.wait_for(|h| !*h).await;
            let mut s = self.lock();
            if let Some(refusal) = s.refusal.clone() {
                return Delivery {
                    outcomes: vec![Outcome::Retry { after: None }; batch.len()],
                    refused: Some(refusal),
                };
            }
            let outcomes = batch
                .iter()
                .map(|n| {
                    *s.attempts.entry(n.device_token.clone()).or_default() += 1;
                    s.sent.push(n.clone());
                    let scripted = s
                        .script
                        .get_mut(&n.device_token)
                        .and_then(VecDeque::pop_front);
                    scripted.unwrap_or_else(|| s.default.clone())
                })
                .collect();
            Delivery {
                outcomes,
                refused: None,
            }
        })
    }
}
