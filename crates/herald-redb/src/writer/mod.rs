//! The writer thread: drains the queue of write requests and applies up to
//! [`MAX_BATCH`] of them in one redb write transaction with one durable
//! commit (group commit), then answers each.

mod exec;
mod op;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use redb::Database;
use tracing::error;

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

/// Counters the writer keeps (see [`crate::WriterStats`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) transactions: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) commit_nanos: AtomicU64,
}

fn drain(rx: &Receiver<Op>, batch: &mut Vec<Op>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
}

/// The writer loop, starting from the last fencing token issued. Returns
/// when every sender is gone or on `Close`.
pub(crate) fn run(db: Arc<Database>, rx: Receiver<Op>, counters: Arc<Counters>, last_token: u64) {
    let mut tokens = Tokens::new(last_token);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // How many requests recent batches held: the concurrency to wait for.
    let mut peak = 0.0f64;
    loop {
        match rx.recv() {
            Ok(op) => batch.push(op),
            // Every `RedbStore` is gone.
            Err(_) => return,
        }
        drain(&rx, &mut batch);
        // Callers answered by the last commit are coming back: wait a
        // little for them rather than commit a fraction of them now and
        // the rest one commit later.
        let target = (peak as usize).min(MAX_BATCH);
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
        peak = (peak * PEAK_DECAY).max(batch.len() as f64);
        let close = batch.iter().position(|op| matches!(op, Op::Close { .. }));
        let rest = close.map(|at| batch.split_off(at));
        apply(&db, &mut batch, &counters, &mut tokens);
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
            drop(db);
            for r in replies {
                let _ = r.send(Ok(()));
            }
            return;
        }
    }
}

/// Applies `ops` in one transaction; answers each after the commit (or
/// with the error if the transaction fails: then nothing of it is stored).
fn apply(db: &Database, ops: &mut Vec<Op>, counters: &Counters, tokens: &mut Tokens) {
    if ops.is_empty() {
        return;
    }
    let mut done: Vec<Box<dyn Answer>> = Vec::with_capacity(ops.len());
    let requests = ops.len() as u64;
    let mut pending = std::mem::take(ops).into_iter();
    let started = Instant::now();
    let result = transaction(db, &mut pending, &mut done, tokens);
    counters.transactions.fetch_add(1, Ordering::Relaxed);
    counters.requests.fetch_add(requests, Ordering::Relaxed);
    counters.commit_nanos.fetch_add(
        u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    match result {
        Ok(()) => done.into_iter().for_each(Answer::send),
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

fn transaction(
    db: &Database,
    pending: &mut impl Iterator<Item = Op>,
    done: &mut Vec<Box<dyn Answer>>,
    tokens: &mut Tokens,
) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    tokens.issued = false;
    {
        let mut t = Tables::open(&txn)?;
        for op in pending.by_ref() {
            let (answer, result) = exec(
                &mut Ctx {
                    t: &mut t,
                    tokens: &mut *tokens,
                },
                op,
            );
            done.push(answer);
            result?;
        }
        if tokens.issued {
            t.meta.insert(LAST_TOKEN_KEY, tokens.last)?;
        }
    }
    // `Durability::Immediate` (redb's default): durable when this returns.
    txn.commit()?;
    Ok(())
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
            answer(reply, exec::complete(c.t, completions).map(Ok))
        }
        Op::Cancel { id, reply } => answer(reply, exec::cancel(c.t, id)),
        Op::Amend { amendments, reply } => answer(reply, exec::amend(c.t, amendments).map(Ok)),
        Op::Release { before, reply } => answer(reply, exec::release(c.t, before).map(Ok)),
        Op::Quarantine { damaged, reply } => {
            answer(reply, exec::quarantine_all(c.t, &damaged).map(Ok))
        }
        Op::Forget { runs } => (Box::new(Unanswered), exec::forget(c.t, &runs)),
        Op::Close { reply } => answer(reply, Ok(Ok(()))),
    }
}
