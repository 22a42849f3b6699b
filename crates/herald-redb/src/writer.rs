//! The writer thread: drains the queue of write requests and applies up to
//! [`MAX_BATCH`] of them in one redb write transaction with one durable
//! commit (group commit), then answers each.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use herald::{CancelOutcome, Claim, Completion, Envelope, Next, StoreError};
use redb::{Database, ReadableTable, Table};
use tokio::sync::oneshot;
use tracing::{error, warn};

use crate::format::{self, Header, HeaderState, Lease};
use crate::{FIRING, MESSAGES, OUTCOMES, UNFINISHED, failure};

/// Requests applied per transaction at most.
pub(crate) const MAX_BATCH: usize = 4096;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write request.
pub(crate) enum Op {
    Insert {
        id: u128,
        bytes: Vec<u8>,
        state: HeaderState,
        lease: Option<Lease>,
        reply: Reply<()>,
    },
    Claim {
        claims: Vec<Claim>,
        lease_until: u64,
        reply: Reply<Vec<Option<Arc<Envelope>>>>,
    },
    Complete {
        completions: Vec<Completion>,
        reply: Reply<()>,
    },
    Cancel {
        id: u128,
        reply: Reply<CancelOutcome>,
    },
    Release {
        before: u64,
        reply: Reply<u64>,
    },
    /// Drop ids of finished records from the `unfinished` index (found
    /// by `pending`; sorted). Nobody waits for it.
    Forget {
        ids: Vec<u128>,
    },
    /// Stop after everything queued before it; answered once the database
    /// is released.
    Close {
        reply: Reply<()>,
    },
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Insert { .. } => "Insert",
            Self::Claim { .. } => "Claim",
            Self::Complete { .. } => "Complete",
            Self::Cancel { .. } => "Cancel",
            Self::Release { .. } => "Release",
            Self::Forget { .. } => "Forget",
            Self::Close { .. } => "Close",
        })
    }
}

impl Op {
    /// Answers with `Closed` (or drops the reply: the caller maps that to
    /// `Closed` too).
    fn refuse(self) {
        match self {
            Self::Insert { reply, .. } | Self::Complete { reply, .. } => {
                let _ = reply.send(Err(StoreError::Closed));
            }
            Self::Claim { reply, .. } => {
                let _ = reply.send(Err(StoreError::Closed));
            }
            Self::Cancel { reply, .. } => {
                let _ = reply.send(Err(StoreError::Closed));
            }
            Self::Release { reply, .. } => {
                let _ = reply.send(Err(StoreError::Closed));
            }
            Self::Close { reply } => {
                let _ = reply.send(Ok(()));
            }
            Self::Forget { .. } => {}
        }
    }
}

/// An answer computed inside the transaction, sent after the commit.
enum Done {
    Nothing,
    Unit(Reply<()>, Result<(), StoreError>),
    Claim(
        Reply<Vec<Option<Arc<Envelope>>>>,
        Vec<Option<Arc<Envelope>>>,
    ),
    Cancel(Reply<CancelOutcome>, Result<CancelOutcome, StoreError>),
    Count(Reply<u64>, u64),
}

impl Done {
    fn send(self) {
        match self {
            Self::Nothing => {}
            Self::Unit(r, v) => drop(r.send(v)),
            Self::Claim(r, v) => drop(r.send(Ok(v))),
            Self::Cancel(r, v) => drop(r.send(v)),
            Self::Count(r, v) => drop(r.send(Ok(v))),
        }
    }

    fn fail(self, msg: &str) {
        match self {
            Self::Nothing => {}
            Self::Unit(r, _) => drop(r.send(fail_with(msg))),
            Self::Claim(r, _) => drop(r.send(fail_with(msg))),
            Self::Cancel(r, _) => drop(r.send(fail_with(msg))),
            Self::Count(r, _) => drop(r.send(fail_with(msg))),
        }
    }
}

/// Counters the writer keeps (see [`crate::WriterStats`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) transactions: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) commit_nanos: AtomicU64,
}

/// The longest a batch waits for more requests (see [`run`]).
const LINGER: Duration = Duration::from_micros(200);

/// How fast the expected batch size forgets a peak (per transaction).
const PEAK_DECAY: f64 = 0.9;

fn drain(rx: &Receiver<Op>, batch: &mut Vec<Op>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
}

/// The writer loop. Returns when every sender is gone or on `Close`.
pub(crate) fn run(db: Arc<Database>, rx: Receiver<Op>, counters: Arc<Counters>) {
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
        apply(&db, &mut batch, &counters);
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

struct Tables<'t> {
    messages: Table<'t, u128, &'static [u8]>,
    unfinished: Table<'t, u128, ()>,
    firing: Table<'t, u128, Lease>,
    outcomes: Table<'t, (u64, u128), &'static [u8]>,
}

/// Applies `ops` in one transaction; answers each after the commit (or
/// with the error if the transaction fails).
fn apply(db: &Database, ops: &mut Vec<Op>, counters: &Counters) {
    if ops.is_empty() {
        return;
    }
    let mut done = Vec::with_capacity(ops.len());
    let requests = ops.len() as u64;
    let mut pending = std::mem::take(ops).into_iter();
    let started = Instant::now();
    let result = transaction(db, &mut pending, &mut done);
    counters.transactions.fetch_add(1, Ordering::Relaxed);
    counters.requests.fetch_add(requests, Ordering::Relaxed);
    counters.commit_nanos.fetch_add(
        u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    match result {
        Ok(()) => done.into_iter().for_each(Done::send),
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            // Nothing of the batch is stored: everyone gets the error (the
            // request that hit it dropped its reply; its caller maps that
            // to an error too).
            let msg = format!("herald-redb: write transaction failed: {e}");
            error!("{msg}");
            done.into_iter().for_each(|d| d.fail(&msg));
            for op in pending {
                fail_op(op, &msg);
            }
        }
    }
}

fn transaction(
    db: &Database,
    pending: &mut impl Iterator<Item = Op>,
    done: &mut Vec<Done>,
) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut t = Tables {
            messages: txn.open_table(MESSAGES)?,
            unfinished: txn.open_table(UNFINISHED)?,
            firing: txn.open_table(FIRING)?,
            outcomes: txn.open_table(OUTCOMES)?,
        };
        for op in pending.by_ref() {
            done.push(exec(&mut t, op)?);
        }
    }
    // `Durability::Immediate` (redb's default): durable when this returns.
    txn.commit()?;
    Ok(())
}

fn fail_with<T>(msg: &str) -> Result<T, StoreError> {
    Err(failure(msg.to_owned()))
}

fn fail_op(op: Op, msg: &str) {
    match op {
        Op::Insert { reply, .. } | Op::Complete { reply, .. } | Op::Close { reply } => {
            drop(reply.send(fail_with(msg)));
        }
        Op::Claim { reply, .. } => drop(reply.send(fail_with(msg))),
        Op::Cancel { reply, .. } => drop(reply.send(fail_with(msg))),
        Op::Release { reply, .. } => drop(reply.send(fail_with(msg))),
        Op::Forget { .. } => {}
    }
}

fn exec(t: &mut Tables<'_>, op: Op) -> Result<Done, redb::Error> {
    Ok(match op {
        Op::Insert {
            id,
            bytes,
            state,
            lease,
            reply,
        } => {
            let old = t
                .messages
                .insert(id, bytes.as_slice())?
                .map(|g| g.value().to_vec());
            if let Some(old) = old {
                // Put the first record back: a duplicate changes nothing.
                t.messages.insert(id, old.as_slice())?;
                let mid = herald::MessageId::from_u128(id);
                return Ok(Done::Unit(reply, Err(StoreError::Duplicate(mid))));
            }
            if state.is_unfinished() {
                t.unfinished.insert(id, ())?;
            }
            if let Some(lease) = lease {
                t.firing.insert(id, lease)?;
            }
            Done::Unit(reply, Ok(()))
        }
        Op::Claim {
            claims,
            lease_until,
            reply,
        } => Done::Claim(reply, claim(t, &claims, lease_until)?),
        Op::Complete { completions, reply } => {
            complete(t, completions)?;
            Done::Unit(reply, Ok(()))
        }
        Op::Cancel { id, reply } => Done::Cancel(reply, cancel(t, id)?),
        Op::Release { before, reply } => Done::Count(reply, release(t, before)?),
        Op::Forget { ids } => {
            for id in ids {
                // Finished is final, so the record cannot have become
                // unfinished since `pending` saw it; check anyway.
                let state = match t.messages.get(id)? {
                    Some(g) => format::parse(id, g.value()).map(|p| p.header.state).ok(),
                    None => None,
                };
                let finished = match state {
                    Some(HeaderState::Scheduled { due }) => t.outcomes.get((due, id))?.is_some(),
                    // Finished in the record, gone, or unreadable (then
                    // `pending` has already reported it and not sent it).
                    Some(_) | None => true,
                };
                if finished {
                    t.unfinished.remove(id)?;
                }
            }
            Done::Nothing
        }
        Op::Close { reply } => Done::Unit(reply, Ok(())),
    })
}

fn lease_of(t: &Tables<'_>, id: u128) -> Result<Option<Lease>, redb::Error> {
    Ok(t.firing.get(id)?.map(|g| g.value()))
}

/// Claims touch only the `firing` table: the record stays `Scheduled` on
/// its page, so a batch of claims spread over a large store dirties a few
/// pages of a small table instead of one page per record.
fn claim(
    t: &mut Tables<'_>,
    claims: &[Claim],
    lease_until: u64,
) -> Result<Vec<Option<Arc<Envelope>>>, redb::Error> {
    let mut out = Vec::with_capacity(claims.len());
    for c in claims {
        let id = c.id.as_u128();
        let due = c.due.as_millis();
        // An id claimed twice in one batch: the second finds the first's
        // claim (a table read sees this transaction's writes).
        if lease_of(t, id)?.is_some_and(|(d, _)| d == due) {
            out.push(None);
            continue;
        }
        let envelope = {
            let Some(guard) = t.messages.get(id)? else {
                out.push(None);
                continue;
            };
            let bytes = guard.value();
            let p = match format::parse(id, bytes) {
                Ok(p) => p,
                Err(e) => {
                    // Not claimable, and left as it is: `get` reports it.
                    // An error here would fail the whole batch, on every
                    // retry.
                    warn!(error = %e, "skipping a corrupt record in claim");
                    out.push(None);
                    continue;
                }
            };
            if p.header.state != (HeaderState::Scheduled { due })
                || t.outcomes.get((due, id))?.is_some()
            {
                out.push(None);
                continue;
            }
            match format::decode_envelope(id, p.envelope) {
                Ok(e) => Arc::new(e),
                Err(e) => {
                    warn!(error = %e, "skipping a corrupt record in claim");
                    out.push(None);
                    continue;
                }
            }
        };
        t.firing.insert(id, (due, lease_until))?;
        out.push(Some(envelope));
    }
    Ok(out)
}

/// A one-off's last run (`Done`, `Failed`) writes its outcome into
/// `outcomes` under `(due, id)`: runs complete in due order, so a batch of
/// completions lands on a few neighbouring pages there instead of one
/// random page of `messages` each. A repeating run rewrites the record.
fn complete(t: &mut Tables<'_>, completions: Vec<Completion>) -> Result<(), redb::Error> {
    for c in completions {
        let id = c.id.as_u128();
        let Some(bytes) = t.messages.get(id)?.map(|g| g.value().to_vec()) else {
            continue;
        };
        let p = match format::parse(id, &bytes) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "skipping a completion of a corrupt record");
                continue;
            }
        };
        let stored = match p.header.state {
            HeaderState::Scheduled { due } => Some(due),
            _ => None,
        };
        let outcome = match stored {
            Some(due) => t.outcomes.get((due, id))?.map(|g| g.value().to_vec()),
            None => None,
        };
        if let (Some(stored), Some(outcome)) = (stored, outcome) {
            // Already finished: a stale completion adds its counters.
            let o = match format::parse_outcome(id, &outcome) {
                Ok(o) => o,
                Err(e) => {
                    warn!(error = %e, "skipping a completion of a corrupt record");
                    continue;
                }
            };
            let mut header = o.header.clone();
            header.counts.add(&c.counts);
            match format::build_outcome(&header, o.error) {
                Ok(b) => {
                    t.outcomes.insert((stored, id), b.as_slice())?;
                }
                Err(e) => warn!(message_id = %c.id, error = %e, "completion not recorded"),
            }
            continue;
        }
        let mut header = p.header.clone();
        header.counts.add(&c.counts);
        let due = c.due.as_millis();
        let firing = header.state == (HeaderState::Scheduled { due })
            && lease_of(t, id)?.is_some_and(|(d, _)| d == due);
        if firing {
            t.firing.remove(id)?;
            let (state, error) = match &c.next {
                Next::At(next) => (
                    HeaderState::Scheduled {
                        due: next.as_millis(),
                    },
                    "",
                ),
                Next::Done => (HeaderState::Published, ""),
                Next::Failed(e) => (HeaderState::Failed, e.as_str()),
            };
            header.state = state;
            if !state.is_unfinished() {
                // The record stays `Scheduled { due }`; the outcome wins.
                // Its id stays in `unfinished` (see `Op::Forget`).
                match format::build_outcome(&header, error) {
                    Ok(b) => {
                        t.outcomes.insert((due, id), b.as_slice())?;
                    }
                    Err(e) => warn!(message_id = %c.id, error = %e, "completion not recorded"),
                }
                continue;
            }
        }
        // Rescheduled, or counters only (cancelled while firing, or a
        // stale completion: the lease expired and the run was released).
        match format::build(&header, p.error, p.envelope) {
            Ok(b) => {
                t.messages.insert(id, b.as_slice())?;
            }
            Err(e) => warn!(message_id = %c.id, error = %e, "completion not recorded"),
        }
    }
    Ok(())
}

fn cancel(t: &mut Tables<'_>, id: u128) -> Result<Result<CancelOutcome, StoreError>, redb::Error> {
    let Some(bytes) = t.messages.get(id)?.map(|g| g.value().to_vec()) else {
        return Ok(Ok(CancelOutcome::NotFound));
    };
    let p = match format::parse(id, &bytes) {
        Ok(p) => p,
        Err(e) => return Ok(Err(StoreError::Other(Box::new(e)))),
    };
    let outcome = match p.header.state {
        HeaderState::Scheduled { due } => t.outcomes.get((due, id))?.map(|g| g.value().to_vec()),
        _ => None,
    };
    if outcome.is_some() || !p.header.state.is_unfinished() {
        return Ok(format::decode_record(id, &bytes, None, outcome.as_deref())
            .map(CancelOutcome::Finished)
            .map_err(|e| StoreError::Other(Box::new(e))));
    }
    let header = Header {
        state: HeaderState::Cancelled,
        counts: p.header.counts,
    };
    let new = match format::build(&header, "", p.envelope) {
        Ok(b) => b,
        Err(e) => return Ok(Err(failure(e))),
    };
    // Decode before writing: a record that cannot be read back is not
    // changed.
    let record = match format::decode_record(id, &new, None, None) {
        Ok(r) => r,
        Err(e) => return Ok(Err(StoreError::Other(Box::new(e)))),
    };
    t.messages.insert(id, new.as_slice())?;
    t.unfinished.remove(id)?;
    t.firing.remove(id)?;
    Ok(Ok(CancelOutcome::Cancelled(record)))
}

/// Drops expired claims from the `firing` table: their records are
/// `Scheduled` at the same due again without being rewritten.
fn release(t: &mut Tables<'_>, before: u64) -> Result<u64, redb::Error> {
    let mut expired = Vec::new();
    for entry in t.firing.iter()? {
        let (k, v) = entry?;
        let (due, lease_until) = v.value();
        if lease_until < before {
            expired.push((k.value(), due));
        }
    }
    let mut n = 0;
    for (id, due) in expired {
        t.firing.remove(id)?;
        // Count it only if the record agrees that this run was claimed.
        let claimed = match t.messages.get(id)? {
            Some(g) => format::parse(id, g.value())
                .is_ok_and(|p| p.header.state == (HeaderState::Scheduled { due })),
            None => false,
        } && t.outcomes.get((due, id))?.is_none();
        n += u64::from(claimed);
    }
    Ok(n)
}
