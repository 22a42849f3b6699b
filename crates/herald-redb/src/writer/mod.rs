//! The writer thread: drains the queue of write requests and applies up to
//! [`MAX_BATCH`] of them in one redb write transaction with one durable
//! commit (group commit), then answers each. In its idle time it purges
//! what retention allows, in small non-durable transactions.

mod exec;
mod op;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use herald::Clock;
use redb::{Database, Durability};
use tracing::{debug, error};

pub(crate) use exec::Tokens;
pub(crate) use op::{CancelAnswer, Insert, Op, Reply};

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

/// Counters the writer keeps (see [`crate::WriterStats`] and
/// [`herald::StoreStats`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) transactions: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) commit_nanos: AtomicU64,
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
    /// The database for reads; `None` once closed.
    pub(crate) db: RwLock<Option<Arc<Database>>>,
    pub(crate) counters: Counters,
    /// The purged count, for whoever waits for a purge (tests).
    pub(crate) purged: tokio::sync::watch::Sender<u64>,
}

/// How the writer runs: the store's clock and its retention.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) clock: Arc<dyn Clock>,
    /// How long a final message is kept (ms); `None`: forever.
    pub(crate) retention_ms: Option<u64>,
}

fn drain(rx: &Receiver<Op>, batch: &mut Vec<Op>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
}

/// The writer's state.
struct Writer {
    db: Arc<Database>,
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
        db,
        shared,
        tokens: Tokens::new(last_token),
        peak: 0.0,
        // Look at once: the file may hold messages due for purging.
        purge_next: settings.retention_ms.map(|_| 0),
        settings,
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = match w.idle_wait() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(wait) => rx.recv_timeout(wait),
        };
        match first {
            Ok(op) => batch.push(op),
            Err(RecvTimeoutError::Timeout) => {
                w.idle();
                continue;
            }
            // Every `RedbStore` is gone.
            Err(RecvTimeoutError::Disconnected) => return,
        }
        drain(&rx, &mut batch);
        // Callers answered by the last commit are coming back: wait a
        // little for them rather than commit a fraction of them now and
        // the rest one commit later.
        let target = (w.peak as usize).min(MAX_BATCH);
        if batch.len() < target {
            let deadline = Instant::now() + LINGER;
            while batch.len() < target {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(op) => {
                        batch.push(op);
                        drain(&rx, &mut batch);
                    }
                    Err(_) => break,
                }
            }
        }
        w.peak = (w.peak * PEAK_DECAY).max(batch.len() as f64);
        let close = batch.iter().position(|op| matches!(op, Op::Close { .. }));
        let rest = close.map(|at| batch.split_off(at));
        let mut purges = Vec::new();
        batch.retain_mut(|op| match op {
            Op::Purge { .. } => {
                purges.push(std::mem::replace(op, Op::Forget { runs: Vec::new() }));
                false
            }
            _ => true,
        });
        w.apply(&mut batch);
        for op in purges {
            if let Op::Purge { reply } = op {
                let _ = reply.send(w.purge_all());
            }
        }
        if let Some(rest) = rest {
            // Everything queued after the close is refused; so is anything
            // still in the channel. Then the database is released before
            // the close is answered, so the file can be reopened at once.
            let mut replies = Vec::new();
            for op in rest
                .into_iter()
                .chain(std::iter::from_fn(|| rx.try_recv().ok()))
            {
                match op {
                    Op::Close { reply } => replies.push(reply),
                    other => other.refuse(),
                }
            }
            drop(rx);
            drop(w);
            for r in replies {
                let _ = r.send(Ok(()));
            }
            return;
        }
    }
}

impl Writer {
    fn now(&self) -> u64 {
        self.settings.clock.now().as_millis()
    }

    /// How long to wait for a request before doing idle work (`None`:
    /// there is none; wait for requests only).
    fn idle_wait(&self) -> Option<Duration> {
        let next = self.purge_next?;
        Some(if self.now() >= next {
            Duration::ZERO
        } else {
            PURGE_POLL
        })
    }

    /// Idle work: one small purge transaction, if something is due.
    fn idle(&mut self) {
        if self.purge_next.is_some_and(|next| self.now() >= next) {
            let _ = self.purge_once();
        }
    }

    /// Applies `ops` in one transaction; answers each after the commit (or
    /// with the error if the transaction fails: then nothing of it is
    /// stored).
    fn apply(&mut self, ops: &mut Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        let counters = &self.shared.counters;
        let mut done: Vec<Box<dyn Answer>> = Vec::with_capacity(ops.len());
        let requests = ops.len() as u64;
        let mut pending = std::mem::take(ops).into_iter();
        let started = Instant::now();
        let now = self.now();
        let result = transaction(&self.db, &mut pending, &mut done, &mut self.tokens, now);
        counters.transactions.fetch_add(1, Ordering::Relaxed);
        counters.requests.fetch_add(requests, Ordering::Relaxed);
        counters.commit_nanos.fetch_add(
            u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match result {
            Ok(quarantined) => {
                counters
                    .quarantined
                    .fetch_add(quarantined, Ordering::Relaxed);
                if let Some(retention) = self.settings.retention_ms {
                    // What this transaction finished is due then at the
                    // earliest.
                    let due = now.saturating_add(retention);
                    self.purge_next = Some(self.purge_next.map_or(due, |n| n.min(due)));
                }
                done.into_iter().for_each(Answer::send);
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                let why = Classified::new(&e);
                error!(error = %e, "herald-redb: write transaction failed");
                done.into_iter().for_each(|d| d.fail(why.error()));
                for op in pending {
                    op_answer(op).fail(why.error());
                }
            }
        }
    }

    /// One purge transaction (non-durable: a purge lost in a crash is done
    /// again); updates when to look next.
    fn purge_once(&mut self) -> Result<exec::Purged, redb::Error> {
        let Some(retention) = self.settings.retention_ms else {
            self.purge_next = None;
            return Ok(exec::Purged::default());
        };
        let now = self.now();
        let cutoff = now.saturating_sub(retention);
        let result = (|| {
            let mut txn = self.db.begin_write()?;
            // Refused only with persistent savepoints or several writer
            // processes, neither of which this store uses; the commit is
            // then durable, which is merely slower.
            let _ = txn.set_durability(Durability::None);
            let (purged, quarantined) = {
                let mut t = Tables::open(&txn)?;
                let purged = exec::purge(&mut t, cutoff, PURGE_BATCH)?;
                (purged, t.quarantined)
            };
            txn.commit()?;
            Ok::<_, redb::Error>((purged, quarantined))
        })();
        match result {
            Ok((purged, quarantined)) => {
                let c = &self.shared.counters;
                let total =
                    c.purged.fetch_add(purged.messages, Ordering::Relaxed) + purged.messages;
                if purged.messages > 0 {
                    self.shared.purged.send_replace(total);
                }
                c.quarantined.fetch_add(quarantined, Ordering::Relaxed);
                if purged.messages > 0 {
                    debug!(
                        messages = purged.messages,
                        "herald-redb: purged finished messages"
                    );
                }
                self.purge_next = if purged.more {
                    Some(now)
                } else {
                    purged.next.map(|at| at.saturating_add(retention))
                };
                Ok(purged)
            }
            Err(e) => {
                // Tried again at the next look.
                error!(error = %e, "herald-redb: purge failed");
                self.purge_next = Some(now.saturating_add(PURGE_POLL.as_millis() as u64));
                Err(e)
            }
        }
    }

    /// Purges everything due now (`Op::Purge`): how many messages.
    fn purge_all(&mut self) -> Result<u64, herald::StoreError> {
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
fn transaction(
    db: &Database,
    pending: &mut impl Iterator<Item = Op>,
    done: &mut Vec<Box<dyn Answer>>,
    tokens: &mut Tokens,
    now: u64,
) -> Result<u64, redb::Error> {
    let txn = db.begin_write()?;
    tokens.issued = false;
    let quarantined = {
        let mut t = Tables::open(&txn)?;
        for op in pending.by_ref() {
            let (answer, result) = exec(
                &mut Ctx {
                    t: &mut t,
                    tokens: &mut *tokens,
                    now,
                },
                op,
            );
            done.push(answer);
            result?;
        }
        if tokens.issued {
            t.meta.insert(LAST_TOKEN_KEY, tokens.last)?;
        }
        t.quarantined
    };
    // `Durability::Immediate` (redb's default): durable when this returns.
    txn.commit()?;
    Ok(quarantined)
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
        Op::Insert(req, reply) => answer(reply, exec::insert(c, req)),
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
    }
}
