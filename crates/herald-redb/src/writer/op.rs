//! The write requests the writer thread takes, and their answers.

use std::fmt;

use herald::{Amendment, Claim, Completion, DueRun, FencingToken, Inserted, Lease, StoreError};
use tokio::sync::oneshot;

use super::push_op::PushOp;
use super::registry_op::RegistryOp;
use crate::header::Header;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A new message, encoded by the caller.
#[derive(Debug)]
pub(crate) struct Insert {
    pub(crate) id: u128,
    /// `Header::scheduled(due)`, encoded.
    pub(crate) header: Vec<u8>,
    /// The `herald::codec` envelope.
    pub(crate) envelope: Vec<u8>,
    pub(crate) due: u64,
    /// `Some` for a claimed start: the claim's lease.
    pub(crate) lease_until: Option<u64>,
    /// The message's accept time (ms): a recorded key holds if it expires
    /// later.
    pub(crate) accepted_at: u64,
    /// The idempotency key to record with it (boxed: most inserts have
    /// none, and every request in the writer's channel takes the size of
    /// the largest).
    pub(crate) key: Option<Box<KeyInsert>>,
}

/// An idempotency key to record with an insert.
#[derive(Debug)]
pub(crate) struct KeyInsert {
    pub(crate) key: String,
    pub(crate) fingerprint: u128,
    pub(crate) expires_at: u64,
}

/// What [`Op::Cancel`] found: the header after the cancel (or the one that
/// was there, or the final one), for the caller to pair with the envelope.
#[derive(Debug)]
pub(crate) enum CancelAnswer {
    Cancelled(Header),
    Finished(Header),
    NotFound,
}

/// One write request.
pub(crate) enum Op {
    /// Answers the request back with the outcome, so that its buffers are
    /// freed by the caller's thread, which allocated them: freed on the
    /// writer's thread, glibc's `free` of another thread's memory cost the
    /// store 2-5 % of its publishes per second (docs/benchmarks.md).
    Insert(Insert, Reply<(Inserted, Insert)>),
    /// Answers the id and token of each claim taken, in order.
    Claim {
        claims: Vec<Claim>,
        lease_until: u64,
        reply: Reply<Vec<Option<(u128, FencingToken)>>>,
    },
    Renew {
        leases: Vec<Lease>,
        lease_until: u64,
        reply: Reply<Vec<bool>>,
    },
    Complete {
        completions: Vec<Completion>,
        reply: Reply<Vec<bool>>,
    },
    Cancel {
        id: u128,
        reply: Reply<CancelAnswer>,
    },
    Amend {
        amendments: Vec<Amendment>,
        reply: Reply<()>,
    },
    Release {
        before: u64,
        reply: Reply<Vec<DueRun>>,
    },
    /// Moves damaged messages (id, reason) to `quarantine`.
    Quarantine {
        damaged: Vec<(u128, String)>,
        reply: Reply<()>,
    },
    /// Drops the `schedule` entries of finished messages `pending` met:
    /// `(id, due)` with a `finals` entry under `(due, id)`. Nobody waits for
    /// it.
    Forget { runs: Vec<(u128, u64)> },
    /// Purges what retention allows now, to the end (the writer also does
    /// it by itself when idle); answers how many messages.
    Purge { reply: Reply<u64> },
    /// Stop after everything queued before it; answered once the database
    /// is released.
    Close { reply: Reply<()> },
    /// A device registry or template store write.
    Registry(RegistryOp),
    /// A push-job write.
    Push(PushOp),
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Insert(..) => "Insert",
            Self::Claim { .. } => "Claim",
            Self::Renew { .. } => "Renew",
            Self::Complete { .. } => "Complete",
            Self::Cancel { .. } => "Cancel",
            Self::Amend { .. } => "Amend",
            Self::Release { .. } => "Release",
            Self::Quarantine { .. } => "Quarantine",
            Self::Forget { .. } => "Forget",
            Self::Purge { .. } => "Purge",
            Self::Close { .. } => "Close",
            Self::Registry(op) => op.name(),
            Self::Push(op) => op.name(),
        })
    }
}

fn closed<T>(reply: Reply<T>) {
    let _ = reply.send(Err(StoreError::Closed));
}

impl Op {
    /// Answers with `Closed` (a close answers `Ok`).
    pub(crate) fn refuse(self) {
        match self {
            Self::Insert(_, reply) => closed(reply),
            Self::Claim { reply, .. } => closed(reply),
            Self::Renew { reply, .. } | Self::Complete { reply, .. } => closed(reply),
            Self::Cancel { reply, .. } => closed(reply),
            Self::Amend { reply, .. } | Self::Quarantine { reply, .. } => closed(reply),
            Self::Release { reply, .. } => closed(reply),
            Self::Purge { reply } => closed(reply),
            Self::Close { reply } => drop(reply.send(Ok(()))),
            Self::Forget { .. } => {}
            Self::Registry(op) => op.unapplied().fail(StoreError::Closed),
            Self::Push(op) => op.unapplied().fail(StoreError::Closed),
        }
    }
}

/// An answer computed inside the transaction, sent after the commit, or
/// replaced by the transaction's error.
pub(crate) trait Answer: Send {
    /// Sends the answer (the transaction committed).
    fn send(self: Box<Self>);
    /// Sends `error` instead (the transaction failed).
    fn fail(self: Box<Self>, error: StoreError);
}

/// The answer of one request.
pub(crate) struct Answered<T> {
    pub(crate) reply: Reply<T>,
    pub(crate) value: Result<T, StoreError>,
}

impl<T: Send> Answer for Answered<T> {
    fn send(self: Box<Self>) {
        let _ = self.reply.send(self.value);
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// A request nobody waits for.
pub(crate) struct Unanswered;

impl Answer for Unanswered {
    fn send(self: Box<Self>) {}
    fn fail(self: Box<Self>, _: StoreError) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request in the writer's channel takes the size of the largest
    /// (and the channel zeroes a block of 31 of them at a time): the large
    /// rare payloads are boxed. A device registration inline made every
    /// request 208 bytes.
    #[test]
    fn a_request_is_at_most_128_bytes() {
        let bytes = std::mem::size_of::<Op>();
        assert!(bytes <= 128, "Op is {bytes} bytes");
    }
}
