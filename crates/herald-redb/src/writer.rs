//! The writer thread: drains the queue of write requests and applies up to
//! [`MAX_BATCH`] of them in one redb write transaction with one durable
//! commit (group commit), then answers each.

use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use herald::{CancelOutcome, Claim, Completion, Envelope, Next, StoreError};
use redb::{Database, ReadableTable, Table};
use tokio::sync::oneshot;
use tracing::{error, warn};

use crate::format::{self, Header, HeaderState};
use crate::{FIRING, MESSAGES, UNFINISHED, failure};

/// Requests applied per transaction at most.
pub(crate) const MAX_BATCH: usize = 4096;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write request.
pub(crate) enum Op {
    Insert {
        id: u128,
        bytes: Vec<u8>,
        state: HeaderState,
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
        }
    }
}

/// An answer computed inside the transaction, sent after the commit.
enum Done {
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
            Self::Unit(r, v) => drop(r.send(v)),
            Self::Claim(r, v) => drop(r.send(Ok(v))),
            Self::Cancel(r, v) => drop(r.send(v)),
            Self::Count(r, v) => drop(r.send(Ok(v))),
        }
    }

    fn fail(self, msg: &str) {
        match self {
            Self::Unit(r, _) => drop(r.send(fail_with(msg))),
            Self::Claim(r, _) => drop(r.send(fail_with(msg))),
            Self::Cancel(r, _) => drop(r.send(fail_with(msg))),
            Self::Count(r, _) => drop(r.send(fail_with(msg))),
        }
    }
}

/// The writer loop. Returns when every sender is gone or on `Close`.
pub(crate) fn run(db: Arc<Database>, rx: Receiver<Op>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        match rx.recv() {
            Ok(op) => batch.push(op),
            // Every `RedbStore` is gone.
            Err(_) => return,
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let close = batch.iter().position(|op| matches!(op, Op::Close { .. }));
        let rest = close.map(|at| batch.split_off(at));
        apply(&db, &mut batch);
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
    firing: Table<'t, u128, u64>,
}

/// Applies `ops` in one transaction; answers each after the commit (or
/// with the error if the transaction fails).
fn apply(db: &Database, ops: &mut Vec<Op>) {
    if ops.is_empty() {
        return;
    }
    let mut done = Vec::with_capacity(ops.len());
    let mut pending = std::mem::take(ops).into_iter();
    match transaction(db, &mut pending, &mut done) {
        Ok(()) => done.into_iter().for_each(Done::send),
        Err(e) => {
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
    }
}

fn exec(t: &mut Tables<'_>, op: Op) -> Result<Done, redb::Error> {
    Ok(match op {
        Op::Insert {
            id,
            bytes,
            state,
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
            set_indexes(t, id, state)?;
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
        Op::Close { reply } => Done::Unit(reply, Ok(())),
    })
}

/// Makes the index tables agree with a record's new state.
fn set_indexes(t: &mut Tables<'_>, id: u128, state: HeaderState) -> Result<(), redb::Error> {
    if state.is_unfinished() {
        t.unfinished.insert(id, ())?;
    } else {
        t.unfinished.remove(id)?;
    }
    if let HeaderState::Firing { lease_until, .. } = state {
        t.firing.insert(id, lease_until)?;
    } else {
        t.firing.remove(id)?;
    }
    Ok(())
}

fn read(t: &Tables<'_>, id: u128) -> Result<Option<Vec<u8>>, redb::Error> {
    Ok(t.messages.get(id)?.map(|g| g.value().to_vec()))
}

fn claim(
    t: &mut Tables<'_>,
    claims: &[Claim],
    lease_until: u64,
) -> Result<Vec<Option<Arc<Envelope>>>, redb::Error> {
    let mut out = Vec::with_capacity(claims.len());
    // An id claimed twice in one batch: the second finds it firing (the
    // table read sees this transaction's writes).
    for c in claims {
        let id = c.id.as_u128();
        let Some(mut bytes) = read(t, id)? else {
            out.push(None);
            continue;
        };
        let p = match format::parse(id, &bytes) {
            Ok(p) => p,
            Err(e) => {
                // Not claimable, and left as it is: `get` reports it. An
                // error here would fail the whole batch on every retry.
                warn!(error = %e, "skipping a corrupt record in claim");
                out.push(None);
                continue;
            }
        };
        match p.header.state {
            HeaderState::Scheduled { due } if due == c.due.as_millis() => {}
            _ => {
                out.push(None);
                continue;
            }
        }
        let envelope = match format::decode_envelope(id, p.envelope) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                warn!(error = %e, "skipping a corrupt record in claim");
                out.push(None);
                continue;
            }
        };
        let state = HeaderState::Firing {
            due: c.due.as_millis(),
            lease_until,
        };
        // Patch the state in place: the header is fixed-size and the error
        // text of a scheduled record is empty.
        bytes[1] = 1;
        bytes[10..18].copy_from_slice(&lease_until.to_le_bytes());
        debug_assert_eq!(format::parse(id, &bytes).map(|p| p.header.state), Ok(state));
        t.messages.insert(id, bytes.as_slice())?;
        set_indexes(t, id, state)?;
        out.push(Some(envelope));
    }
    Ok(out)
}

fn complete(t: &mut Tables<'_>, completions: Vec<Completion>) -> Result<(), redb::Error> {
    for c in completions {
        let id = c.id.as_u128();
        let Some(bytes) = read(t, id)? else {
            continue;
        };
        let p = match format::parse(id, &bytes) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "skipping a completion of a corrupt record");
                continue;
            }
        };
        let mut header = p.header.clone();
        header.counts.add(&c.counts);
        let mut error = p.error;
        match header.state {
            HeaderState::Firing { due, .. } if due == c.due.as_millis() => {
                header.state = match &c.next {
                    Next::At(next) => HeaderState::Scheduled {
                        due: next.as_millis(),
                    },
                    Next::Done => HeaderState::Published,
                    Next::Failed(e) => {
                        error = e;
                        HeaderState::Failed
                    }
                };
            }
            // Cancelled while firing, or a stale completion (the lease
            // expired and the run went to someone else): counters only.
            _ => {}
        }
        let new = match format::build(&header, error, p.envelope) {
            Ok(b) => b,
            Err(e) => {
                warn!(message_id = %c.id, error = %e, "completion not recorded");
                continue;
            }
        };
        t.messages.insert(id, new.as_slice())?;
        if header.state != p.header.state {
            set_indexes(t, id, header.state)?;
        }
    }
    Ok(())
}

fn cancel(t: &mut Tables<'_>, id: u128) -> Result<Result<CancelOutcome, StoreError>, redb::Error> {
    let Some(bytes) = read(t, id)? else {
        return Ok(Ok(CancelOutcome::NotFound));
    };
    let p = match format::parse(id, &bytes) {
        Ok(p) => p,
        Err(e) => return Ok(Err(StoreError::Other(Box::new(e)))),
    };
    if !p.header.state.is_unfinished() {
        return Ok(format::decode_record(id, &bytes)
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
    let record = match format::decode_record(id, &new) {
        Ok(r) => r,
        Err(e) => return Ok(Err(StoreError::Other(Box::new(e)))),
    };
    t.messages.insert(id, new.as_slice())?;
    set_indexes(t, id, HeaderState::Cancelled)?;
    Ok(Ok(CancelOutcome::Cancelled(record)))
}

fn release(t: &mut Tables<'_>, before: u64) -> Result<u64, redb::Error> {
    let mut expired = Vec::new();
    for entry in t.firing.iter()? {
        let (k, v) = entry?;
        if v.value() < before {
            expired.push(k.value());
        }
    }
    let mut n = 0;
    for id in expired {
        let Some(mut bytes) = read(t, id)? else {
            // An index entry without a record: drop it.
            t.firing.remove(id)?;
            t.unfinished.remove(id)?;
            continue;
        };
        let state = match format::parse(id, &bytes) {
            Ok(p) => p.header.state,
            Err(e) => {
                warn!(error = %e, "not releasing a corrupt record");
                continue;
            }
        };
        let HeaderState::Firing { due, .. } = state else {
            // The index was stale; make it agree with the record.
            set_indexes(t, id, state)?;
            continue;
        };
        bytes[1] = 0;
        bytes[10..18].copy_from_slice(&0u64.to_le_bytes());
        t.messages.insert(id, bytes.as_slice())?;
        set_indexes(t, id, HeaderState::Scheduled { due })?;
        n += 1;
    }
    Ok(n)
}
