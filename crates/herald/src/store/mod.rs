//! The `Store` boundary: where accepted messages, their schedules and their
//! statuses live.
//!
//! The engine keeps its timing wheel in memory and treats the store as the
//! source of truth: every transition a message makes goes through one of
//! the store's atomic operations, so a durable store (redb) survives a crash
//! and a shared one (PostgreSQL) lets several nodes claim runs without
//! firing any twice.

mod error;
mod hints;
mod memory;
mod memory_push;
mod push;
mod stats;
mod types;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use herald_core::Tick;

use crate::{Envelope, MessageId};

pub use error::StoreError;
pub use hints::{DueHints, HintHub};
pub use memory::MemoryStore;
pub use push::{Checkpoint, JobKey, PushJob, PushRetry};
pub use stats::StoreStats;
pub use types::{
    Amendment, CancelOutcome, Claim, Claimed, Completion, DueRun, FencingToken, IdempotencyKey,
    Inserted, KeyRecord, Lease, Next, Record, RunState, Start,
};

/// The future a [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Persists messages, their schedules and their statuses.
///
/// # Contract
///
/// Every method is atomic with respect to every other, per message. When a
/// method's future resolves `Ok`, its effect is as durable as the store
/// promises (the in-memory store: until the process exits; redb: on disk;
/// PostgreSQL: committed). The engine may call methods concurrently.
///
/// A message is `Scheduled { due }` (waiting for the run at `due`),
/// `Firing { due, lease_until, token }` (that run was claimed: someone is
/// delivering it), or finished: `Published`, `Failed` or `Cancelled`.
///
/// * [`insert`](Self::insert) stores a new message, either scheduled
///   ([`Start::At`]) or already claimed by the caller ([`Start::Claimed`]:
///   a one-off due now, which the publisher delivers itself); for a claimed
///   start it returns the claim's [`FencingToken`]. An id that exists
///   already is [`StoreError::Duplicate`] and changes nothing.
/// * [`insert_idempotent`](Self::insert_idempotent) is `insert` plus an
///   [`IdempotencyKey`], recorded in the same atomic step (so a crash
///   keeps both or neither): key → (the message's id, the fingerprint, the
///   answer's status: `Published` for a claimed start, else `Scheduled`,
///   and `expires_at`). If the key is recorded already and holds at the
///   envelope's `accepted_at` (its `expires_at` is later), nothing is
///   stored and [`Inserted::Existing`] gives the record, whatever the
///   fingerprints (the caller compares them); of racing inserts with one
///   key exactly one stores its message. An expired key is replaced. A
///   duplicate id is [`StoreError::Duplicate`] and records no key.
///   [`idempotency_key`](Self::idempotency_key) reads a recorded key (the
///   caller checks `expires_at`). Keys are kept at least until they
///   expire (by the store's clock, if it has one) and may be forgotten
///   after (purged like finished records).
///   The defaults refuse keys ([`StoreError::Other`]) and find none.
/// * [`get`](Self::get) returns the record, or `None` if the id was never
///   stored or its finished record has been purged (a store may forget
///   finished messages after a retention period; unfinished ones never).
/// * [`claim`](Self::claim) moves each `Scheduled { due }` whose `due`
///   equals the claim's to `Firing` with the lease and a new fencing token,
///   and returns the token and the envelope; any other state (cancelled,
///   finished, claimed by another node, rescheduled to a different due)
///   yields `None` at that position. So each run is claimed at most once
///   per lease, across any number of nodes.
/// * A fencing token names one claim. Tokens are never reused for the same
///   message: a claim released by [`release_expired`](Self::release_expired)
///   and claimed again gets a new one, and the old one is *stale*.
/// * [`renew`](Self::renew) extends the lease of each `Firing` run whose
///   token is current; a stale token changes nothing (`false`).
/// * [`complete`](Self::complete) applies a completion whose token is
///   current: counters are added, and the state becomes `Scheduled { next }`,
///   `Published` or `Failed` (with the completion's error as the record's
///   error). A message cancelled while its run was firing stays `Cancelled`,
///   but that run's token stays current for its completion, whose counters
///   are added. A stale token, or an unknown id, changes nothing (`false`).
/// * [`cancel`](Self::cancel) moves `Scheduled` or `Firing` to `Cancelled`;
///   a cancelled message is never claimed again. It reports a finished
///   message as [`CancelOutcome::Finished`] and changes nothing.
/// * [`amend`](Self::amend) adds counters to a record in any state (the
///   outcomes of a push run arrive after the run completed), sets its error
///   text when given, and with `fail` moves `Published` to `Failed` (a push
///   run the configuration made impossible). Unknown ids are ignored.
/// * [`pending`](Self::pending) lists the `Scheduled` runs (not the claimed
///   ones), ordered by id, after the given id, at most `limit`, as
///   `(id, due)` only: the engine pages through it at start-up to rebuild
///   its wheel, so a store must not read whole records for it.
/// * [`release_expired`](Self::release_expired) moves every `Firing` whose
///   lease ends before `before` back to `Scheduled` at the same `due` (its
///   token becomes stale) and returns those runs, which the engine puts
///   back in its wheel: delivery is at-least-once.
/// * [`is_shared`](Self::is_shared) says whether several engines (nodes)
///   may use the store at once. It is the store's property: an exclusive
///   store (the in-memory store, redb's, which locks its file) has one
///   user, so at start-up that engine takes back every claim it finds
///   (its own, from before a crash) and reloads every scheduled run; an
///   engine on a shared store waits for other nodes' leases to end and
///   holds only the runs due within its horizon (see below). The default
///   is exclusive.
/// * [`close`](Self::close) is called once, by `Engine::shutdown`, after
///   the driver stopped: flush what is buffered and release resources.
///   Calls after it may fail with [`StoreError::Closed`]. The default does
///   nothing.
/// * [`stats`](Self::stats) reports, without I/O, whether the store can
///   write and its counters ([`StoreStats`]); the engine passes them on
///   (`Engine::store_stats`, `EngineStats`). The default reports a
///   writable store and zero counters.
///
/// # Sharing: reservations and hints
///
/// A shared store holds runs that no node's wheel has: published by a node
/// that stopped, or due beyond every node's horizon. Each engine asks for
/// them a little before they are due:
///
/// * [`reserve_due`](Self::reserve_due)`(now, before, hold_ms, limit)`
///   returns up to `limit` `Scheduled` runs due before `before`, earliest
///   first, that no node holds a live reservation for (none, or one that
///   ended at or before `now`), and records for each a reservation until
///   `max(due, now) + hold_ms`. Concurrent callers get disjoint runs
///   (PostgreSQL: `FOR UPDATE SKIP LOCKED`). A reservation is advice, not
///   a claim: the run stays `Scheduled`, its holder claims it with
///   [`claim`](Self::claim) when it is due (which is what makes the run
///   fire once), a cancel cancels it as usual, and a run that is
///   rescheduled (a new `due`) is no longer reserved. A node that dies
///   holding reservations delays those runs by at most `hold_ms` (another
///   node reserves them once the reservations end).
/// * [`due_hints`](Self::due_hints) gives each engine its own subscription
///   to *hints*: the due times of runs scheduled (inserted, rescheduled by
///   a completion, or released by [`release_expired`](Self::release_expired))
///   by any user of the store, so an engine reserves a run published on
///   another node without waiting for its next periodic look. Hints may
///   be coalesced, delayed or lost (a lost hint delays a run until the
///   next look, nothing more); `None` means the store gives none.
///
/// Exclusive stores need neither: the defaults refuse `reserve_due`
/// ([`StoreError::Other`]) and give no hints. A shared store must
/// implement both; `herald-testkit`'s `shared_store_conformance` suite
/// checks them.
///
/// # Push jobs
///
/// The push side of a fired run is a job, named by its [`JobKey`]
/// (message id and the run's due time), with its own lease and fencing
/// token, a cursor over the audience (a device id) and the notifications
/// waiting for a retry. The defaults refuse push jobs
/// ([`StoreError::Other`]); `MemoryStore` and `herald-redb` keep them.
///
/// * [`add_push_jobs`](Self::add_push_jobs) records new jobs, unclaimed;
///   a key that exists already is left as it is (a run fired again after
///   a crash does not restart its job).
/// * [`claim_push_jobs`](Self::claim_push_jobs) claims up to `limit` jobs
///   whose lease ended at or before `expired_before` (new jobs have
///   none), in key order, each with a new fencing token (the old one is
///   stale) and the lease `lease_until`.
/// * [`push_retries`](Self::push_retries) lists a job's retries by
///   `(due, device id)`, at most `limit`.
/// * [`checkpoint_push`](Self::checkpoint_push) applies each checkpoint
///   whose token is current, atomically: the job's cursor, `listed`,
///   `handed` and lease; retries recorded (one per device: a new one
///   replaces the old) and resolved ones removed; the counters (and error,
///   and `fail` as in [`amend`](Self::amend)) added to the message's
///   record if it is still there; and with `finished`, the job and its
///   retries removed. A stale token, or an unknown job, changes nothing
///   (`false`).
///
/// # Retention
///
/// A store may forget a *final* message (finished, with no push job left
/// and no push notification pending:
/// [`DeliveryCounts::push_pending`](crate::DeliveryCounts::push_pending)
/// is 0) some time after it became final; [`get`](Self::get) then answers
/// `None`, like for an id never stored, and `amend` and `complete` ignore
/// it. A repeating message is final after its last run (or its cancel). An
/// unfinished message, or one with push notifications pending, is never
/// forgotten. Each store documents its rule (`MemoryStore`: a count of
/// finished records; `herald-redb`: a time after they became final).
///
/// # Outages
///
/// A store that cannot write for a while (a full disk) answers writes with
/// [`StoreError::Unavailable`] (nothing of the call happened), reports it
/// in [`stats`](Self::stats), and resumes by itself when it can write
/// again; what it acknowledged before is kept. The engine retries its own
/// writes (claims, completions) and answers publishes with
/// [`Error::StoreUnavailable`](crate::Error::StoreUnavailable) meanwhile.
///
/// Errors say whether a retry may help ([`StoreError::is_retryable`]).
/// `herald-testkit`'s `store_conformance` suite checks all of this; every
/// implementation must pass it.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Stores a new message; the fencing token of a claimed start.
    fn insert(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
    ) -> StoreFuture<'_, Option<FencingToken>>;

    /// Stores a new message and records its idempotency key with it; or,
    /// if the key holds already, stores nothing and answers its record.
    fn insert_idempotent(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
        key: IdempotencyKey,
    ) -> StoreFuture<'_, Inserted> {
        let _ = (envelope, start, key);
        Box::pin(std::future::ready(Err(StoreError::other(
            "this store does not record idempotency keys",
        ))))
    }

    /// The record of idempotency key `key`, if it is recorded (expired or
    /// not).
    fn idempotency_key(&self, key: &str) -> StoreFuture<'_, Option<KeyRecord>> {
        let _ = key;
        Box::pin(std::future::ready(Ok(None)))
    }

    /// The record of `id`, if known.
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>>;

    /// Claims the given runs; one result per claim, in order.
    fn claim(&self, claims: Vec<Claim>, lease_until: Tick)
    -> StoreFuture<'_, Vec<Option<Claimed>>>;

    /// Extends held leases to `lease_until`; one result per lease, in order.
    fn renew(&self, leases: Vec<Lease>, lease_until: Tick) -> StoreFuture<'_, Vec<bool>>;

    /// Records delivered runs; one result per completion, in order
    /// (`false`: stale, nothing changed).
    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, Vec<bool>>;

    /// Cancels a scheduled message.
    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome>;

    /// Adds counters (and errors) to records after their runs.
    fn amend(&self, amendments: Vec<Amendment>) -> StoreFuture<'_, ()>;

    /// Scheduled runs after `after` in id order, at most `limit`.
    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<DueRun>>;

    /// Returns expired claims to `Scheduled`; the runs released.
    fn release_expired(&self, before: Tick) -> StoreFuture<'_, Vec<DueRun>>;

    /// Flushes and releases resources at shutdown.
    fn close(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether several engines may use this store at once (default: no).
    fn is_shared(&self) -> bool {
        false
    }

    /// Reserves up to `limit` unreserved scheduled runs due before
    /// `before`, earliest first, each until `max(due, now) + hold_ms`.
    fn reserve_due(
        &self,
        now: Tick,
        before: Tick,
        hold_ms: u64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<DueRun>> {
        let _ = (now, before, hold_ms, limit);
        Box::pin(std::future::ready(Err(StoreError::other(
            "this store is not shared: it does not reserve runs by due time",
        ))))
    }

    /// A new subscription to the due times of runs scheduled by any user
    /// of the store (`None`: this store gives no hints).
    fn due_hints(&self) -> Option<DueHints> {
        None
    }

    /// Whether the store can write, and its counters; no I/O.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Records new push jobs (existing keys are left as they are).
    fn add_push_jobs(&self, keys: Vec<JobKey>) -> StoreFuture<'_, ()> {
        let _ = keys;
        Box::pin(std::future::ready(Err(no_push_jobs())))
    }

    /// Claims up to `limit` jobs whose lease ended at or before
    /// `expired_before`.
    fn claim_push_jobs(
        &self,
        expired_before: Tick,
        lease_until: Tick,
        limit: usize,
    ) -> StoreFuture<'_, Vec<PushJob>> {
        let _ = (expired_before, lease_until, limit);
        Box::pin(std::future::ready(Err(no_push_jobs())))
    }

    /// A job's retries by `(due, device id)`, at most `limit`.
    fn push_retries(&self, key: JobKey, limit: usize) -> StoreFuture<'_, Vec<PushRetry>> {
        let _ = (key, limit);
        Box::pin(std::future::ready(Err(no_push_jobs())))
    }

    /// Applies checkpoints; one result per checkpoint (`false`: stale).
    fn checkpoint_push(&self, checkpoints: Vec<Checkpoint>) -> StoreFuture<'_, Vec<bool>> {
        let _ = checkpoints;
        Box::pin(std::future::ready(Err(no_push_jobs())))
    }
}

fn no_push_jobs() -> StoreError {
    StoreError::other("this store does not keep push jobs")
}

impl<S: Store + ?Sized> Store for Arc<S> {
    fn insert(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
    ) -> StoreFuture<'_, Option<FencingToken>> {
        (**self).insert(envelope, start)
    }
    fn insert_idempotent(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
        key: IdempotencyKey,
    ) -> StoreFuture<'_, Inserted> {
        (**self).insert_idempotent(envelope, start, key)
    }
    fn idempotency_key(&self, key: &str) -> StoreFuture<'_, Option<KeyRecord>> {
        (**self).idempotency_key(key)
    }
    fn get(&self, id: MessageId) -> StoreFuture<'_, Option<Record>> {
        (**self).get(id)
    }
    fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> StoreFuture<'_, Vec<Option<Claimed>>> {
        (**self).claim(claims, lease_until)
    }
    fn renew(&self, leases: Vec<Lease>, lease_until: Tick) -> StoreFuture<'_, Vec<bool>> {
        (**self).renew(leases, lease_until)
    }
    fn complete(&self, completions: Vec<Completion>) -> StoreFuture<'_, Vec<bool>> {
        (**self).complete(completions)
    }
    fn cancel(&self, id: MessageId) -> StoreFuture<'_, CancelOutcome> {
        (**self).cancel(id)
    }
    fn amend(&self, amendments: Vec<Amendment>) -> StoreFuture<'_, ()> {
        (**self).amend(amendments)
    }
    fn pending(&self, after: Option<MessageId>, limit: usize) -> StoreFuture<'_, Vec<DueRun>> {
        (**self).pending(after, limit)
    }
    fn release_expired(&self, before: Tick) -> StoreFuture<'_, Vec<DueRun>> {
        (**self).release_expired(before)
    }
    fn close(&self) -> StoreFuture<'_, ()> {
        (**self).close()
    }
    fn is_shared(&self) -> bool {
        (**self).is_shared()
    }
    fn reserve_due(
        &self,
        now: Tick,
        before: Tick,
        hold_ms: u64,
        limit: usize,
    ) -> StoreFuture<'_, Vec<DueRun>> {
        (**self).reserve_due(now, before, hold_ms, limit)
    }
    fn due_hints(&self) -> Option<DueHints> {
        (**self).due_hints()
    }
    fn stats(&self) -> StoreStats {
        (**self).stats()
    }
    fn add_push_jobs(&self, keys: Vec<JobKey>) -> StoreFuture<'_, ()> {
        (**self).add_push_jobs(keys)
    }
    fn claim_push_jobs(
        &self,
        expired_before: Tick,
        lease_until: Tick,
        limit: usize,
    ) -> StoreFuture<'_, Vec<PushJob>> {
        (**self).claim_push_jobs(expired_before, lease_until, limit)
    }
    fn push_retries(&self, key: JobKey, limit: usize) -> StoreFuture<'_, Vec<PushRetry>> {
        (**self).push_retries(key, limit)
    }
    fn checkpoint_push(&self, checkpoints: Vec<Checkpoint>) -> StoreFuture<'_, Vec<bool>> {
        (**self).checkpoint_push(checkpoints)
    }
}
