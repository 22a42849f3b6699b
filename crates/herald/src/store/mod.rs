//! The `Store` boundary: where accepted messages, their schedules and their
//! statuses live.
//!
//! The engine keeps its timing wheel in memory and treats the store as the
//! source of truth: every transition a message makes goes through one of
//! the store's atomic operations, so a durable store (redb) survives a crash
//! and a shared one (PostgreSQL) lets several nodes claim runs without
//! firing any twice.

mod memory;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use herald_core::Tick;

use crate::{DeliveryCounts, Envelope, MessageId, MessageStatus, PublishStatus};

pub use memory::MemoryStore;

/// The future a [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A message's place in its life, as the store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Waiting for its next run at `due`.
    Scheduled {
        /// When the next run is due.
        due: Tick,
    },
    /// The run due at `due` has been claimed by a node and is being
    /// delivered; if `lease_until` passes without a completion the run is
    /// handed out again (at-least-once).
    Firing {
        /// The run being delivered.
        due: Tick,
        /// Until when the claim holds.
        lease_until: Tick,
    },
    /// The last run was delivered.
    Published,
    /// Delivery failed for good.
    Failed {
        /// Why.
        error: String,
    },
    /// Cancelled before its last run.
    Cancelled,
}

impl RunState {
    /// The status clients see for this state.
    pub fn status(&self) -> PublishStatus {
        match self {
            Self::Scheduled { .. } | Self::Firing { .. } => PublishStatus::Scheduled,
            Self::Published => PublishStatus::Published,
            Self::Failed { .. } => PublishStatus::Failed,
            Self::Cancelled => PublishStatus::Cancelled,
        }
    }

    /// Whether no more runs will happen (published, failed or cancelled).
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            Self::Published | Self::Failed { .. } | Self::Cancelled
        )
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
}

impl Record {
    /// The client-facing status of this record.
    pub fn status(&self) -> MessageStatus {
        MessageStatus {
            message_id: self.envelope.id.to_string(),
            status: self.state.status(),
            error_message: match &self.state {
                RunState::Failed { error } => Some(error.clone()),
                _ => None,
            },
            deliveries: self.counts,
        }
    }
}

/// A request to claim the run of message `id` that is due at `due`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The message.
    pub id: MessageId,
    /// The run's due time, as the engine scheduled it.
    pub due: Tick,
}

/// What to record after a claimed run was delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The message.
    pub id: MessageId,
    /// The run that was delivered (as claimed).
    pub due: Tick,
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
    /// Delivery failed for good: the state becomes `Failed`.
    Failed(String),
}

/// The result of [`Store::cancel`].
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

/// Why a store operation failed. Errors are the store's, never the caller's:
/// the engine reports them as [`Error::Store`](crate::Error::Store) and
/// acknowledges nothing that was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// [`Store::insert`] of an id that is already stored.
    #[error("message {0} is already stored")]
    Duplicate(MessageId),
    /// The store is closed.
    #[error("the store is closed")]
    Closed,
    /// Anything else the backend reports (I/O, corruption, connection).
    #[error(transparent)]
    Other(Box<dyn StdError + Send + Sync>),
}

/// Persists messages, their schedules and their statuses.
///
/// # Contract
///
/// Every method is atomic with respect to every other, per message. When a
/// method's future resolves `Ok`, its effect is as durable as the store
/// promises (the in-memory store: until the process exits; redb: on disk;
/// PostgreSQL: committed). The engine may call methods concurrently.
///
/// * [`insert`](Self::insert) stores a new record. The engine inserts
///   one-off messages due now as `Firing` (it claims them itself) and the
///   rest as `Scheduled`. An id that exists already is
///   [`StoreError::Duplicate`] and changes nothing.
/// * [`get`](Self::get) returns the record, or `None` if the id was never
///   stored or its finished record has been purged (a store may forget
///   finished messages after a retention period; unfinished ones never).
/// * [`claim`](Self::claim) moves each `Scheduled { due }` whose `due`
///   equals the claim's to `Firing { due, lease_until }` and returns its
///   envelope; any other state (cancelled, finished, claimed by another
///   node, rescheduled to a different due) yields `None` at that position.
///   So each run is claimed at most once, across any number of nodes.
/// * [`complete`](Self::complete) applies a completion to a record that is
///   `Firing` the completion's `due` (or that expired and was re-claimed):
///   counters are added, and the state becomes `Scheduled { next }`,
///   `Published` or `Failed`. A record cancelled while firing stays
///   `Cancelled` (counters are still added). Completions for unknown ids
///   are ignored.
/// * [`cancel`](Self::cancel) moves `Scheduled` or `Firing` to `Cancelled`;
///   a cancelled message is never claimed again.
/// * [`pending`](Self::pending) lists unfinished records (`Scheduled` and
///   `Firing`), ordered by id, after the given id, at most `limit` of them:
///   the engine pages through it at start-up to rebuild its wheel.
/// * [`close`](Self::close) is called once, by `Engine::shutdown`, after
///   the driver stopped: flush what is buffered and release resources.
///   Calls after it may fail with [`StoreError::Closed`]. The default does
///   nothing.
/// * [`release_expired`](Self::release_expired) moves every `Firing` whose
///   lease ends before `before` back to `Scheduled` at the same `due`, so
///   the run is delivered again (at-least-once), and returns how many.
///
/// `herald-testkit`'s `store_conformance` suite checks all of this; every
/// implementation must pass it.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Stores a new record.
    fn insert(&self, record: Record) -> StoreFuture<'_, ()>;

    /// The record of `id`, if known.
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>>;

    /// Claims the given runs; one result per claim, in order.
    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Arc<Envelope>>>>;

    /// Records delivered runs.
    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, ()>;

    /// Cancels a scheduled message.
    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome>;

    /// Unfinished records after `after` in id order, at most `limit`.
    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<Record>>;

    /// Returns expired claims to `Scheduled`; how many.
    fn release_expired(&self, before: Tick) -> StoreFuture<'_, u64>;

    /// Flushes and releases resources at shutdown.
    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

impl<S: Store + ?Sized> Store for Arc<S> {
    fn insert(&self, record: Record) -> StoreFuture<'_, ()> {
        (**self).insert(record)
    }
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        (**self).get(id)
    }
    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Arc<Envelope>>>> {
        (**self).claim(claims, lease_until)
    }
    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, ()> {
        (**self).complete(completions)
    }
    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome> {
        (**self).cancel(id)
    }
    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<Record>> {
        (**self).pending(after, limit)
    }
    fn release_expired(&self, before: Tick) -> StoreFuture<'_, u64> {
        (**self).release_expired(before)
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        (**self).close()
    }
}
