//! The writer thread: drains the queue of write requests (the messages',
//! the registry's and the push jobs') and applies up to [`MAX_BATCH`] of
//! them in one redb write transaction with one durable commit (group
//! commit), then answers each. In its idle time it purges what retention
//! allows and expired idempotency keys, in small non-durable transactions.
//!
//! **Outages.** redb refuses every operation after an I/O error (a full
//! disk) until the database is reopened. So after such a failure the
//! writer drops its `Database` and reopens the file at once (redb repairs
//! it from the last commit), so reads go on. Writes are tried again with
//! backoff, 50 ms doubling to 5 s over the whole outage; requests that
//! come before are answered `StoreError::Unavailable` at once, without
//! touching the file (each failed try costs a reopen). The outage
//! (reported by `Store::stats`) lasts until a request's commit succeeds.
//! Nothing committed is lost: an answer is only sent after its commit.
//! The outage is logged when it starts, at most every 30 s while it lasts,
//! and when it ends.

mod exec;
mod op;
mod push_exec;
mod push_op;
mod registry_exec;
mod registry_op;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use herald::{Clock, StoreError};
use redb::{Database, Durability, ReadableTable};
use tracing::{debug, error, info, warn};

pub(crate) use exec::{Tokens, key_record};
pub(crate) use op::{CancelAnswer, Insert, KeyInsert, Op, Reply};
pub(crate) use push_op::PushOp;
pub(crate) use registry_op::RegistryOp;

use crate::error::Classified;
use crate::tables::{LAST_TOKEN_KEY, Tables};
use exec::Ctx;
use op::{Answer, Answered, Unanswered};

/// Requests applied per transaction at most.
pub(crate) const MAX_BATCH: usize = 4096;

/// The longest a batch waits for more requests (see [`run`]).
const LINGER: Duration = Duration::from_micros(200);

/// How fast the expected batch size forgets a peak (per transaction).
const PEAK_DECAY: f64 = 0.9;

/// Messages one purge transaction removes at most: a few ms of work, so a
/// write that arrives meanwhile waits at most that long.
pub(crate) const PURGE_BATCH: usize = 128;

/// How often an idle writer looks at the store's clock to see whether
/// something became purgeable (the clock is injected, so the writer cannot
/// sleep on it; the look is a comparison, no I/O).
const PURGE_POLL: Duration = Duration::from_secs(1);

/// The first wait before reopening the database after a failure; doubled
/// up to [`MAX_REOPEN_BACKOFF`].
const FIRST_REOPEN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_REOPEN_BACKOFF: Duration = Duration::from_secs(5);

/// While the store cannot write, at most one log line per this.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(30);

/// Counters the writer keeps (see [`crate::WriterStats`] and
/// [`herald::StoreStats`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) transactions: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Applying and committing transactions.
    pub(crate) commit_nanos: AtomicU64,
    /// Of that, in redb's durable commit (its page writes and fsync).
    pub(crate) durable_nanos: AtomicU64,
    /// Answering the callers of committed transactions.
    pub(crate) answer_nanos: AtomicU64,
    /// Messages in the `quarantine` table.
    pub(crate) quarantined: AtomicU64,
    /// Messages purged by retention since the store was opened.
    pub(crate) purged: AtomicU64,
}

/// What the store's handles and its writer thread share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The database file.
    pub(crate) path: PathBuf,
    /// The database for reads.
    db: RwLock<Slot>,
    /// Why the store cannot write, while it cannot.
    unavailable: Mutex<Option<String>>,
    pub(crate) counters: Counters,
    /// The purged count, for whoever waits for a purge (tests).
    pub(crate) purged: tokio::sync::watch::Sender<u64>,
}

/// The database as readers find it.
#[derive(Debug)]
enum Slot {
    Open(Arc<Database>),
    /// The writer is reopening it, after this failure.
    Reopening(String),
    Closed,
}

impl Shared {
    pub(crate) fn new(path: PathBuf, db: Arc<Database>, quarantined: u64) -> Self {
        Self {
            path,
            db: RwLock::new(Slot::Open(db)),
            unavailable: Mutex::new(None),
            counters: Counters {
                quarantined: AtomicU64::new(quarantined),
                ..Counters::default()
            },
            purged: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The database for a read.
    pub(crate) fn read_db(&self) -> Result<Arc<Database>, StoreError> {
        match &*self.db.read().unwrap_or_else(|e| e.into_inner()) {
            Slot::Open(db) => Ok(db.clone()),
            Slot::Reopening(why) => Err(StoreError::unavailable(why.clone())),
            Slot::Closed => Err(StoreError::Closed),
        }
    }

    /// Readers find the store closed from now on; the handle is released.
    pub(crate) fn close_db(&self) {
        let old = std::mem::replace(
            &mut *self.db.write().unwrap_or_else(|e| e.into_inner()),
            Slot::Closed,
        );
        drop(old);
    }

    /// Readers find `slot` (unless the store was closed meanwhile).
    fn set_db(&self, slot: Slot) {
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        if !matches!(*db, Slot::Closed) {
            let old = std::mem::replace(&mut *db, slot);
            drop(db);
            drop(old);
        }
    }

    /// Why the store cannot write right now, if it cannot.
    pub(crate) fn unavailable(&self) -> Option<String> {
        self.unavailable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_unavailable(&self, why: Option<String>) {
        *self.unavailable.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }
}

/// An outage: since when the store cannot write, and what it refused.
#[derive(Debug)]
struct Outage {
    since: Instant,
    /// The last failure, as clients are told.
    reason: String,
    /// Requests answered `Unavailable`.
    refused: u64,
    /// Attempts that failed since (reopens and transactions).
    attempts: u64,
    last_line: Instant,
    /// Requests before this are refused without trying.
    write_at: Instant,
    /// The wait after the next failure: 50 ms doubling to 5 s over the
    /// whole outage.
    backoff: Duration,
}

/// How the writer runs: the store's clock and its retention.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) clock: Arc<dyn Clock>,
    /// How long a final message is kept (ms); `None`: forever.
    pub(crate) retention_ms: Option<u64>,
    /// redb's page cache, bytes (a reopened database gets the same).
    pub(crate) cache_bytes: usize,
}

/// The writer's state.
struct Writer {
    /// `None` while it cannot be used (after a failure, until reopened).
    db: Option<Arc<Database>>,
    /// When to try reopening the database next.
    reopen: Option<Instant>,
    /// Set from a failure until a request's commit succeeds.
    outage: Option<Outage>,
    shared: Arc<Shared>,
    settings: Settings,
    tokens: Tokens,
    /// How many requests recent batches held: the concurrency to wait for.
    peak: f64,
    /// When (store clock, ms) the first `finished` entry may be due for
    /// purging; `None`: nothing to purge that the writer knows of.
    purge_next: Option<u64>,
}

/// The writer loop, starting from the last fencing token issued. Returns
/// when every sender is gone or on `Close`.
pub(crate) fn run(
    db: Arc<Database>,
    rx: Receiver<Op>,
    shared: Arc<Shared>,
    last_token: u64,
    settings: Settings,
) {
    let mut w = Writer {
        db: Some(db),
        reopen: None,
        outage: None,
        shared,
        tokens: Tokens::new(last_token),
        peak: 0.0,
        // Look at once: the file may hold messages (or keys) due for
        // purging.
        purge_next: Some(0),
        settings,
    };
    loop {
        // Callers answered by the last commit come back within tens of µs;
        // sleeping on the channel would add a thread wake-up (on a VM, an
        // idle vCPU's: ~50-100 µs) to every round. So while recent
        // batches were concurrent, the next transaction is opened at once
        // (beginning it and opening its tables, ~15 µs, overlap the
        // callers' return) and the first request looked for without
        // sleeping for up to `LINGER`; if none comes, the transaction is
        // dropped unwritten and the writer waits as when idle.
        if w.peak >= 2.0 && w.reopen.is_none() && w.may_write() {
            let mut linger = Linger::new(&rx, w.peak, None);
            let applied = w.apply(&mut Vec::new(), &mut linger);
            if applied > 0 {
                w.peak = (w.peak * PEAK_DECAY).max(applied as f64);
            }
            let held_back = !linger.held_back.is_empty();
            if let Some(replies) = w.after_round(linger.held_back, &rx) {
                return close(rx, w, replies);
            }
            if applied > 0 || held_back {
                continue;
            }
        }
        let first = match w.idle_wait() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(wait) => rx.recv_timeout(wait),
        };
        let first = match first {
            Ok(op) => op,
            Err(RecvTimeoutError::Timeout) => {
                w.idle();
                continue;
            }
            // Every `RedbStore` is gone.
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Callers answered by the last commit are coming back: the
        // transaction waits a little for them (up to the recent peak, at
        // most `LINGER`) rather than commit a fraction of them now and the
        // rest one commit later, applying each as it comes.
        let mut linger = Linger::new(&rx, w.peak, Some(Instant::now()));
        let mut batch: Vec<Op> = linger.admit(first).into_iter().collect();
        w.reopen_if_due();
        let applied = if w.may_write() {
            w.apply(&mut batch, &mut linger)
        } else {
            // Refused: what is queued now, without waiting for more.
            linger.want = 0;
            batch.extend(std::iter::from_fn(|| linger.next()));
            let n = batch.len();
            w.refuse(&mut batch);
            n
        };
        w.peak = (w.peak * PEAK_DECAY).max(applied as f64);
        if let Some(replies) = w.after_round(linger.held_back, &rx) {
            return close(rx, w, replies);
        }
    }
}

/// Releases the database, then answers the close requests, so the file
/// can be reopened at once.
fn close(rx: Receiver<Op>, w: Writer, replies: Vec<Reply<()>>) {
    drop(rx);
    drop(w);
    for r in replies {
        let _ = r.send(Ok(()));
    }
}

impl Writer {
    /// Runs the purges held back from a round; on a close, refuses
    /// everything queued after it and still in the channel, and returns
    /// the close requests' replies (the caller releases the database, then
    /// answers them).
    fn after_round(&mut self, held_back: Vec<Op>, rx: &Receiver<Op>) -> Option<Vec<Reply<()>>> {
        let mut close = None;
        for op in held_back {
            match op {
                Op::Purge { reply } => {
                    let _ = reply.send(self.purge_all());
                }
                op => close = Some(op),
            }
        }
        let close = close?;
        let mut replies = Vec::new();
        for op in std::iter::once(close).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match op {
                Op::Close { reply } => replies.push(reply),
                other => other.refuse(),
            }
        }
        Some(replies)
    }

    fn now(&self) -> u64 {
        self.settings.clock.now().as_millis()
    }

    /// How long to wait for a request before doing idle work (`None`:
    /// there is none; wait for requests only).
    fn idle_wait(&self) -> Option<Duration> {
        if let Some(at) = self.reopen {
            return Some(at.saturating_duration_since(Instant::now()));
        }
        let next = self.purge_next?;
        Some(if self.now() >= next {
            Duration::ZERO
        } else {
            PURGE_POLL
        })
    }

    /// Idle work: reopen the database if that is due; else one small purge
    /// transaction, if something is due (not during an outage: it would
    /// only fail).
    fn idle(&mut self) {
        if self.reopen.is_some() {
            self.reopen_if_due();
        } else if self.outage.is_none() && self.purge_next.is_some_and(|next| self.now() >= next) {
            let _ = self.purge_once();
        }
    }

    /// Whether to try a batch now: the database is open, and during an
    /// outage, its backoff has passed (else the batch is refused at once).
    fn may_write(&self) -> bool {
        self.db.is_some()
            && self
                .outage
                .as_ref()
                .is_none_or(|o| Instant::now() >= o.write_at)
    }

    /// A failure: the store cannot write until a request's commit succeeds
    /// again; the next batch is tried after the outage's backoff. If the
    /// failure leaves redb unusable until reopened (an I/O error: a full or
    /// failing disk), the database is dropped and reopened at once, so
    /// reads work meanwhile.
    fn failed(&mut self, why: &Classified) {
        if !why.is_retryable() {
            return;
        }
        let reason = why.text().to_owned();
        self.shared.set_unavailable(Some(reason.clone()));
        let now = Instant::now();
        match &mut self.outage {
            None => {
                error!(
                    error = %reason,
                    "herald-redb: the store cannot write; requests are refused (unavailable) \
                     until it can again, which is tried by itself"
                );
                self.outage = Some(Outage {
                    since: now,
                    reason: reason.clone(),
                    refused: 0,
                    attempts: 0,
                    last_line: now,
                    write_at: now + FIRST_REOPEN_BACKOFF,
                    backoff: FIRST_REOPEN_BACKOFF * 2,
                });
            }
            Some(o) => {
                o.reason = reason.clone();
                o.attempts += 1;
                o.write_at = now + o.backoff;
                o.backoff = (o.backoff * 2).min(MAX_REOPEN_BACKOFF);
            }
        }
        if why.needs_reopen() && self.db.is_some() {
            // Reopened by the loop, once nothing holds this one any more.
            self.db = None;
            self.shared.set_db(Slot::Reopening(reason));
            self.reopen = Some(now);
        }
        self.still_down();
    }

    /// Tries to reopen the database if it is due.
    fn reopen_if_due(&mut self) {
        let Some(at) = self.reopen else {
            return;
        };
        if Instant::now() < at {
            return;
        }
        match crate::open::create(&self.shared.path, self.settings.cache_bytes) {
            Ok(db) => {
                debug!("herald-redb: reopened the database");
                let db = Arc::new(db);
                self.shared.set_db(Slot::Open(db.clone()));
                self.db = Some(db);
                self.reopen = None;
                // Look again at what is due for purging, once it writes.
                self.purge_next = Some(0);
            }
            Err(e) => {
                debug!(error = %e, "herald-redb: cannot reopen the database yet");
                let reason = format!("herald-redb: {e}");
                self.shared.set_unavailable(Some(reason.clone()));
                self.shared.set_db(Slot::Reopening(reason.clone()));
                let wait = match &mut self.outage {
                    Some(o) => {
                        o.attempts += 1;
                        o.reason = reason;
                        let wait = o.backoff;
                        o.backoff = (o.backoff * 2).min(MAX_REOPEN_BACKOFF);
                        o.write_at = Instant::now() + wait;
                        wait
                    }
                    None => MAX_REOPEN_BACKOFF,
                };
                self.reopen = Some(Instant::now() + wait);
                self.still_down();
            }
        }
    }

    /// Answers every request of `ops` with the outage's error, at once.
    fn refuse(&mut self, ops: &mut Vec<Op>) {
        let reason = self.outage.as_ref().map_or_else(
            || "herald-redb: the store cannot write".to_owned(),
            |o| o.reason.clone(),
        );
        let n = ops.len() as u64;
        for op in ops.drain(..) {
            op_answer(op).fail(StoreError::unavailable(reason.clone()));
        }
        if let Some(o) = &mut self.outage {
            o.refused += n;
        }
        self.still_down();
    }

    /// At most every 30 s while the store cannot write: a line saying so.
    fn still_down(&mut self) {
        if let Some(o) = &mut self.outage
            && o.last_line.elapsed() >= OUTAGE_LOG_EVERY
        {
            o.last_line = Instant::now();
            warn!(
                error = %o.reason,
                for_s = o.since.elapsed().as_secs(),
                refused = o.refused,
                failed_attempts = o.attempts,
                "herald-redb: the store still cannot write"
            );
        }
    }

    /// A request's commit succeeded: an outage is over.
    fn succeeded(&mut self) {
        self.shared.set_unavailable(None);
        if let Some(o) = self.outage.take() {
            info!(
                after_ms = o.since.elapsed().as_millis() as u64,
                refused = o.refused,
                failed_attempts = o.attempts,
                "herald-redb: the store writes again"
            );
        }
    }

    /// Applies `ops` and what `more` brings in one transaction; answers
    /// each after the commit (or with the error if the transaction fails:
    /// then nothing of it is stored). Returns how many requests it took.
    ///
    /// With no `ops`, the transaction is opened ahead: its first request is
    /// the first `more` brings; if none comes, it is dropped unwritten
    /// (nothing counted, nobody answered) and this returns 0.
    fn apply(&mut self, ops: &mut Vec<Op>, more: &mut Linger<'_>) -> usize {
        if ops.is_empty() && more.first_at.is_some() {
            return 0;
        }
        let Some(db) = self.db.clone() else {
            let n = ops.len();
            self.refuse(ops);
            return n;
        };
        let shared = self.shared.clone();
        let counters = &shared.counters;
        let mut done: Vec<Box<dyn Answer>> = Vec::with_capacity(ops.len());
        let mut pending = std::mem::take(ops).into_iter();
        let started = Instant::now();
        let now = self.now();
        let result = transaction(
            &db,
            &mut pending,
            more,
            &mut done,
            &mut self.tokens,
            now,
            &counters.durable_nanos,
        );
        let requests = done.len() + pending.len();
        if requests == 0 && result.is_ok() {
            // Opened ahead, and no request came: nothing was written.
            return 0;
        }
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        counters
            .requests
            .fetch_add(requests as u64, Ordering::Relaxed);
        // Busy from the first request (a transaction opened ahead waited
        // for it: that is the callers' time, not the writer's).
        add_nanos(&counters.commit_nanos, more.first_at.unwrap_or(started));
        match result {
            Ok(committed) => {
                counters
                    .quarantined
                    .fetch_add(committed.quarantined, Ordering::Relaxed);
                // What this transaction finished is due for purging then at
                // the earliest, and the keys it recorded when they expire.
                let finished = self.settings.retention_ms.map(|r| now.saturating_add(r));
                self.purge_next =
                    earliest(self.purge_next, earliest(finished, committed.keys_expire));
                self.succeeded();
                let answering = Instant::now();
                done.into_iter().for_each(Answer::send);
                add_nanos(&counters.answer_nanos, answering);
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                let why = Classified::new(&e);
                if !why.is_retryable() {
                    error!(error = %e, "herald-redb: write transaction failed");
                }
                // Logged once per outage (and every 30 s while it lasts).
                // Recorded before the answers, as `succeeded` is on a
                // commit: a caller answered `Unavailable` finds the outage
                // in `Store::stats`.
                self.failed(&why);
                done.into_iter().for_each(|d| d.fail(why.error()));
                for op in pending {
                    op_answer(op).fail(why.error());
                }
            }
        }
        requests
    }

    /// One purge transaction (non-durable: a purge lost in a crash is done
    /// again); updates when to look next.
    fn purge_once(&mut self) -> Result<exec::Purged, redb::Error> {
        let Some(db) = self.db.clone() else {
            return Ok(exec::Purged::default());
        };
        let retention = self.settings.retention_ms;
        let now = self.now();
        let result = (|| {
            let mut txn = db.begin_write()?;
            // Refused only with persistent savepoints or several writer
            // processes, neither of which this store uses; the commit is
            // then durable, which is merely slower.
            let _ = txn.set_durability(Durability::None);
            let (messages, keys, quarantined) = {
                let mut t = Tables::open(&txn)?;
                // Final at or before `now - retention` (none while the
                // clock reads less than the retention).
                let messages = match retention.and_then(|r| now.checked_sub(r)) {
                    Some(cutoff) => exec::purge(&mut t, cutoff, PURGE_BATCH)?,
                    None => exec::Purged {
                        next: t.finished.first()?.map(|(k, _)| k.value().0),
                        ..exec::Purged::default()
                    },
                };
                let keys = exec::purge_keys(&mut t, now, PURGE_BATCH)?;
                (messages, keys, t.quarantined)
            };
            txn.commit()?;
            Ok::<_, redb::Error>((messages, keys, quarantined))
        })();
        match result {
            Ok((purged, keys, quarantined)) => {
                let c = &self.shared.counters;
                let total =
                    c.purged.fetch_add(purged.messages, Ordering::Relaxed) + purged.messages;
                if purged.messages > 0 {
                    self.shared.purged.send_replace(total);
                }
                c.quarantined.fetch_add(quarantined, Ordering::Relaxed);
                if purged.messages + keys.messages > 0 {
                    debug!(
                        messages = purged.messages,
                        keys = keys.messages,
                        "herald-redb: purged finished messages and expired idempotency keys"
                    );
                }
                self.purge_next = if purged.more || keys.more {
                    Some(now)
                } else {
                    let messages =
                        retention.and_then(|r| purged.next.map(|at| at.saturating_add(r)));
                    earliest(messages, keys.next)
                };
                Ok(exec::Purged {
                    messages: purged.messages,
                    more: purged.more || keys.more,
                    next: self.purge_next,
                })
            }
            Err(e) => {
                // Tried again at the next look.
                let why = Classified::new(&e);
                if !why.is_retryable() {
                    error!(error = %e, "herald-redb: purge failed");
                }
                self.purge_next = Some(now.saturating_add(PURGE_POLL.as_millis() as u64));
                self.failed(&why);
                Err(e)
            }
        }
    }

    /// Purges everything due now (`Op::Purge`): how many messages.
    fn purge_all(&mut self) -> Result<u64, herald::StoreError> {
        if !self.may_write() {
            let reason = self.shared.unavailable().unwrap_or_default();
            return Err(StoreError::unavailable(reason));
        }
        let mut total = 0;
        loop {
            match self.purge_once() {
                Ok(p) => {
                    total += p.messages;
                    if !p.more {
                        return Ok(total);
                    }
                }
                Err(e) => return Err(Classified::new(&e).error()),
            }
        }
    }
}

/// Applies `pending` in one transaction and commits it durably; how many
/// messages it quarantined.
/// What a committed transaction reports back.
struct Committed {
    /// Messages it quarantined.
    quarantined: u64,
    /// The earliest expiry of the idempotency keys it recorded.
    keys_expire: Option<u64>,
}

/// The earlier of two optional times.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The requests of one transaction as they come in: up to the expected
/// batch (`want`) until `deadline`, then whatever is already queued, up to
/// `room` in all. A purge or a close is not part of a transaction: it is
/// held back for the writer loop (after a close nothing more is taken;
/// what is still queued is refused).
struct Linger<'a> {
    rx: &'a Receiver<Op>,
    want: usize,
    room: usize,
    deadline: Instant,
    /// When the transaction's first request came (`None`: a transaction
    /// opened ahead, waiting for it until `deadline`).
    first_at: Option<Instant>,
    held_back: Vec<Op>,
    closed: bool,
}

impl<'a> Linger<'a> {
    /// Waits for up to the recent `peak` requests, until `LINGER` after
    /// the first one (`first_at`; `None`: none yet, looked for until
    /// `LINGER` from now).
    fn new(rx: &'a Receiver<Op>, peak: f64, first_at: Option<Instant>) -> Self {
        Self {
            rx,
            want: (peak as usize).min(MAX_BATCH),
            room: MAX_BATCH,
            deadline: first_at.unwrap_or_else(Instant::now) + LINGER,
            first_at,
            held_back: Vec::new(),
            closed: false,
        }
    }

    /// The next request for the open transaction, if any comes in time.
    fn next(&mut self) -> Option<Op> {
        loop {
            if self.closed || self.room == 0 {
                return None;
            }
            let got = match self.rx.try_recv() {
                Ok(op) => op,
                Err(_) if self.want == 0 => return None,
                // Without sleeping, as for the first request (see `run`).
                Err(_) => match poll_until(self.rx, self.deadline) {
                    Ok(op) => op,
                    Err(_) => return None,
                },
            };
            if let Some(op) = self.admit(got) {
                return Some(op);
            }
        }
    }

    /// `op` if it belongs in the transaction; a purge or a close is held
    /// back.
    fn admit(&mut self, op: Op) -> Option<Op> {
        match op {
            Op::Close { .. } => {
                self.held_back.push(op);
                self.closed = true;
                None
            }
            Op::Purge { .. } => {
                self.held_back.push(op);
                None
            }
            op => {
                if self.first_at.is_none() {
                    // The transaction's first request: the linger for the
                    // rest starts now.
                    let now = Instant::now();
                    self.first_at = Some(now);
                    self.deadline = now + LINGER;
                }
                self.want = self.want.saturating_sub(1);
                self.room -= 1;
                Some(op)
            }
        }
    }
}

/// The next request, looked for until `until` without sleeping: the
/// thread yields its CPU between looks, so a runnable caller on the same
/// CPU is not kept waiting. `Empty` once `until` has passed.
fn poll_until(rx: &Receiver<Op>, until: Instant) -> Result<Op, TryRecvError> {
    loop {
        match rx.try_recv() {
            Err(TryRecvError::Empty) if Instant::now() < until => std::thread::yield_now(),
            got => return got,
        }
    }
}

fn transaction(
    db: &Database,
    pending: &mut impl Iterator<Item = Op>,
    more: &mut Linger<'_>,
    done: &mut Vec<Box<dyn Answer>>,
    tokens: &mut Tokens,
    now: u64,
    durable_nanos: &AtomicU64,
) -> Result<Committed, redb::Error> {
    let txn = db.begin_write()?;
    tokens.issued = false;
    let committed = {
        let mut t = Tables::open(&txn)?;
        let mut keys_expire = None;
        // The batch, then what comes in while it is being applied.
        while let Some(op) = pending.next().or_else(|| more.next()) {
            let mut c = Ctx {
                t: &mut t,
                tokens: &mut *tokens,
                now,
                keys_expire,
            };
            let (answer, result) = exec(&mut c, op);
            keys_expire = c.keys_expire;
            done.push(answer);
            result?;
        }
        if done.is_empty() {
            // Opened ahead and no request came: nothing to write.
            drop(t);
            txn.abort()?;
            return Ok(Committed {
                quarantined: 0,
                keys_expire: None,
            });
        }
        if tokens.issued {
            t.meta.insert(LAST_TOKEN_KEY, tokens.last)?;
        }
        Committed {
            quarantined: t.quarantined,
            keys_expire,
        }
    };
    // `Durability::Immediate` (redb's default): durable when this returns.
    let committing = Instant::now();
    let result = txn.commit();
    add_nanos(durable_nanos, committing);
    result?;
    Ok(committed)
}

/// Adds the time since `since` to `counter` (ns).
fn add_nanos(counter: &AtomicU64, since: Instant) {
    let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
    counter.fetch_add(nanos, Ordering::Relaxed);
}

/// The answer slot of a request that was never applied.
fn op_answer(op: Op) -> Box<dyn Answer> {
    fn boxed<T: Send + 'static>(reply: Reply<T>) -> Box<dyn Answer> {
        Box::new(Answered {
            reply,
            value: Err(herald::StoreError::Closed),
        })
    }
    match op {
        Op::Insert(_, reply) => boxed(reply),
        Op::Claim { reply, .. } => boxed(reply),
        Op::Renew { reply, .. } | Op::Complete { reply, .. } => boxed(reply),
        Op::Cancel { reply, .. } => boxed(reply),
        Op::Amend { reply, .. } | Op::Quarantine { reply, .. } | Op::Close { reply } => {
            boxed(reply)
        }
        Op::Release { reply, .. } => boxed(reply),
        Op::Purge { reply } => boxed(reply),
        Op::Forget { .. } => Box::new(Unanswered),
        Op::Registry(op) => op.unapplied(),
        Op::Push(op) => op.unapplied(),
    }
}

/// Pairs a reply with the operation's outcome: a redb error fails the
/// transaction (the answer is replaced then).
fn answer<T: Send + 'static>(
    reply: Reply<T>,
    r: Result<Result<T, herald::StoreError>, redb::Error>,
) -> (Box<dyn Answer>, Result<(), redb::Error>) {
    match r {
        Ok(value) => (Box::new(Answered { reply, value }), Ok(())),
        Err(e) => (
            Box::new(Answered {
                reply,
                value: Err(herald::StoreError::Closed),
            }),
            Err(e),
        ),
    }
}

fn exec(c: &mut Ctx<'_, '_>, op: Op) -> (Box<dyn Answer>, Result<(), redb::Error>) {
    match op {
        Op::Insert(req, reply) => {
            let inserted = exec::insert(c, &req);
            // The request goes back with the answer: its buffers are freed
            // by the caller's thread, which allocated them.
            answer(reply, inserted.map(|r| r.map(|i| (i, req))))
        }
        Op::Claim {
            claims,
            lease_until,
            reply,
        } => answer(reply, exec::claim(c, &claims, lease_until).map(Ok)),
        Op::Renew {
            leases,
            lease_until,
            reply,
        } => answer(reply, exec::renew(c.t, &leases, lease_until).map(Ok)),
        Op::Complete { completions, reply } => {
            answer(reply, exec::complete(c, completions).map(Ok))
        }
        Op::Cancel { id, reply } => answer(reply, exec::cancel(c, id)),
        Op::Amend { amendments, reply } => answer(reply, exec::amend(c, amendments).map(Ok)),
        Op::Release { before, reply } => answer(reply, exec::release(c.t, before).map(Ok)),
        Op::Quarantine { damaged, reply } => {
            answer(reply, exec::quarantine_all(c.t, &damaged).map(Ok))
        }
        Op::Forget { runs } => (Box::new(Unanswered), exec::forget(c.t, &runs)),
        // Taken out of the batch before it is applied.
        Op::Close { reply } => answer(reply, Ok(Ok(()))),
        Op::Purge { reply } => answer(reply, Ok(Ok(0))),
        Op::Registry(op) => op.apply(c.t),
        Op::Push(op) => op.apply(c),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use herald::Inserted;
    use herald_testkit::TempDir;
    use redb::ReadableDatabase;
    use tokio::sync::oneshot;

    use super::*;
    use crate::header::Header;
    use crate::tables::HEADERS;

    fn database(dir: &TempDir) -> Database {
        std::fs::create_dir_all(&dir.0).expect("dir");
        Database::create(dir.0.join("writer.redb")).expect("create")
    }

    type Answered = oneshot::Receiver<Result<(Inserted, Insert), StoreError>>;

    fn insert(id: u128) -> (Op, Answered) {
        let (reply, rx) = oneshot::channel();
        let req = Insert {
            id,
            header: Header::scheduled(5).encode(),
            envelope: b"envelope".to_vec(),
            due: 5,
            lease_until: None,
            accepted_at: 1,
            key: None,
        };
        (Op::Insert(req, reply), rx)
    }

    /// A transaction opened ahead, as the writer's loop does while it
    /// expects the last round's callers back: its first request is the
    /// first `rx` brings within `LINGER`.
    fn opened_ahead<'a>(db: &Database, rx: &'a Receiver<Op>) -> (Linger<'a>, Vec<Box<dyn Answer>>) {
        let mut linger = Linger::new(rx, 8.0, None);
        let mut done = Vec::new();
        let committed = transaction(
            db,
            &mut std::iter::empty(),
            &mut linger,
            &mut done,
            &mut Tokens::new(0),
            0,
            &AtomicU64::new(0),
        );
        assert!(committed.is_ok(), "{:?}", committed.err());
        (linger, done)
    }

    /// A transaction opened ahead (the writer expects the last round's
    /// callers back) that no request comes to is dropped, not committed:
    /// not even the tables it created in this new file are there.
    #[test]
    fn a_transaction_opened_ahead_that_no_request_uses_writes_nothing() {
        let dir = TempDir::new("writer-ahead-unused");
        let db = database(&dir);
        let (_tx, rx) = mpsc::channel::<Op>();
        let (linger, done) = opened_ahead(&db, &rx);
        assert!(done.is_empty());
        assert_eq!(linger.first_at, None, "no request came");
        let read = db.begin_read().expect("read");
        assert_eq!(
            read.list_tables().expect("tables").count(),
            0,
            "nothing committed"
        );
    }

    /// The first request to come while a transaction is open ahead is
    /// applied and committed in it; its answer hands the request back.
    #[test]
    fn a_request_that_comes_to_a_transaction_opened_ahead_is_committed_in_it() {
        let dir = TempDir::new("writer-ahead-used");
        let db = database(&dir);
        let (tx, rx) = mpsc::channel::<Op>();
        let (op, answered) = insert(42);
        tx.send(op).expect("send");
        let (linger, done) = opened_ahead(&db, &rx);
        assert_eq!(done.len(), 1);
        assert!(linger.first_at.is_some(), "its first request came");
        done.into_iter().for_each(Answer::send);
        let (inserted, back) = answered.blocking_recv().expect("answered").expect("stored");
        assert!(matches!(inserted, Inserted::New(None)), "{inserted:?}");
        assert_eq!(back.id, 42, "the request comes back to its caller");
        let read = db.begin_read().expect("read");
        let headers = read.open_table(HEADERS).expect("headers");
        let stored = headers.get(42).expect("get").expect("committed");
        assert_eq!(stored.value(), Header::scheduled(5).encode().as_slice());
    }
}
