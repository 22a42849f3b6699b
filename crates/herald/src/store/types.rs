//! The values that cross the [`Store`](super::Store) boundary.

use std::fmt;
use std::sync::Arc;

use herald_core::Tick;

use crate::{DeliveryCounts, Envelope, MessageId, MessageStatus, PublishStatus};

/// Names one claim of one run: completion and renewal must present it, and
/// once the claim is released it is stale and changes nothing. Stores issue
/// tokens and never reuse one for the same message.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(u64);

impl FencingToken {
    /// The token with this value (stores make them).
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// Its value (stores keep it).
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FencingToken({})", self.0)
    }
}

/// A message's place in its life, as the store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Waiting for its next run at `due`.
    Scheduled {
        /// When the next run is due.
        due: Tick,
    },
    /// The run due at `due` has been claimed by a node and is being
    /// delivered; if `lease_until` passes without a completion (or a
    /// renewal) the run is handed out again (at-least-once).
    Firing {
        /// The run being delivered.
        due: Tick,
        /// Until when the claim holds.
        lease_until: Tick,
        /// The claim.
        token: FencingToken,
    },
    /// The last run was delivered.
    Published,
    /// Delivery failed for good (see [`Record::error`]).
    Failed,
    /// Cancelled before its last run.
    Cancelled,
}

impl RunState {
    /// The status clients see for this state.
    pub fn status(&self) -> PublishStatus {
        match self {
            Self::Scheduled { .. } | Self::Firing { .. } => PublishStatus::Scheduled,
            Self::Published => PublishStatus::Published,
            Self::Failed => PublishStatus::Failed,
            Self::Cancelled => PublishStatus::Cancelled,
        }
    }

    /// Whether no more runs will happen (published, failed or cancelled).
    pub fn is_finished(&self) -> bool {
        matches!(self, Self::Published | Self::Failed | Self::Cancelled)
    }
}

/// Everything the store knows about one message.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The message as accepted (immutable).
    pub envelope: Arc<Envelope>,
    /// Where it is in its life.
    pub state: RunState,
    /// Deliveries so far.
    pub counts: DeliveryCounts,
    /// Why it failed (`Failed`), or what went wrong with part of its
    /// deliveries (a `Published` message whose push could not reach part
    /// of its audience).
    pub error: Option<String>,
}

impl Record {
    /// The client-facing status of this record.
    pub fn status(&self) -> MessageStatus {
        MessageStatus {
            message_id: String::from(self.envelope.id),
            status: self.state.status(),
            error_message: self.error.clone(),
            deliveries: self.counts,
        }
    }
}

/// How a new message starts (see [`Store::insert`](super::Store::insert)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Scheduled for a run at this time.
    At(Tick),
    /// A one-off due now, claimed by the inserter, who delivers it.
    Claimed {
        /// The run (the publish time).
        due: Tick,
        /// Until when the claim holds.
        lease_until: Tick,
    },
}

/// A request to claim the run of message `id` that is due at `due`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The message.
    pub id: MessageId,
    /// The run's due time, as the engine scheduled it.
    pub due: Tick,
}

/// A claimed run: its token and the message to deliver.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// The claim.
    pub token: FencingToken,
    /// The message.
    pub envelope: Arc<Envelope>,
}

/// A held claim, to renew.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The message.
    pub id: MessageId,
    /// The claim.
    pub token: FencingToken,
}

/// What to record after a claimed run was delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The message.
    pub id: MessageId,
    /// The claim the run was delivered under.
    pub token: FencingToken,
    /// Counters to add (normally `runs: 1` plus the deliveries).
    pub counts: DeliveryCounts,
    /// What happens next.
    pub next: Next,
}

/// A message's fate after a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run again at this time: the state becomes `Scheduled { due }`.
    At(Tick),
    /// That was the last run: the state becomes `Published`.
    Done,
    /// Delivery failed for good: the state becomes `Failed`, with this
    /// error.
    Failed(String),
}

/// What to add to a record after its run (see
/// [`Store::amend`](super::Store::amend)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Amendment {
    /// The message.
    pub id: MessageId,
    /// Counters to add.
    pub counts: DeliveryCounts,
    /// Sets the record's error text.
    pub error: Option<String>,
    /// Moves `Published` to `Failed`.
    pub fail: bool,
}

/// A run the engine should have in its wheel: message `id`, due at `due`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DueRun {
    /// The message.
    pub id: MessageId,
    /// When its run is due.
    pub due: Tick,
}

/// The result of [`Store::cancel`](super::Store::cancel).
#[derive(Clone, Debug, PartialEq)]
pub enum CancelOutcome {
    /// The message was scheduled (or firing) and is now cancelled; the
    /// record after the change.
    Cancelled(Record),
    /// The message exists but is already finished; its record.
    Finished(Record),
    /// No such message.
    NotFound,
}

/// An idempotency key to record with a new message, atomically (see
/// [`Store::insert_idempotent`](super::Store::insert_idempotent)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    /// The client's key (1 to 255 printable ASCII characters: see
    /// [`limits::check_idempotency_key`](crate::limits::check_idempotency_key)).
    pub key: String,
    /// What the request was (the engine hashes its channel, options and
    /// message): a retry must bring the same.
    pub fingerprint: u128,
    /// Until when the key holds (the engine: 24 h after the publish).
    pub expires_at: Tick,
}

/// A recorded idempotency key: the message its first request stored, and
/// how that request was answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyRecord {
    /// The message the key's first request stored.
    pub id: MessageId,
    /// The first request's fingerprint.
    pub fingerprint: u128,
    /// The first answer's status: [`PublishStatus::Published`] for a
    /// claimed start (an immediate publish), [`PublishStatus::Scheduled`]
    /// otherwise.
    pub status: PublishStatus,
    /// Until when the key holds.
    pub expires_at: Tick,
}

/// The result of [`Store::insert_idempotent`](super::Store::insert_idempotent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The message is stored and the key recorded with it; the fencing
    /// token of a claimed start.
    New(Option<FencingToken>),
    /// The key was recorded already (and holds at the message's accept
    /// time): nothing was stored. The caller compares the fingerprints.
    Existing(KeyRecord),
}
