//! The push-job write requests (`Op::Push`): what each carries, and how it
//! is answered when it is applied, refused or never applied.

use herald::{Checkpoint, JobKey, PushJob, StoreError};

use super::exec::Ctx;
use super::op::{Answer, Answered, Reply};
use super::push_exec as exec;

/// One push-job write request.
pub(crate) enum PushOp {
    /// Records new jobs, unclaimed (existing keys are left as they are).
    Add { keys: Vec<JobKey>, reply: Reply<()> },
    /// Claims up to `limit` jobs whose lease ended at or before
    /// `expired_before` (ms), each with a new token and the lease
    /// `lease_until` (ms).
    Claim {
        expired_before: u64,
        lease_until: u64,
        limit: usize,
        reply: Reply<Vec<PushJob>>,
    },
    /// Applies checkpoints whose token is current; one answer each.
    Checkpoint {
        checkpoints: Vec<Checkpoint>,
        reply: Reply<Vec<bool>>,
    },
}

/// The answer slot of a request, holding `Closed` until replaced.
fn slot<T: Send + 'static>(reply: Reply<T>) -> Box<dyn Answer> {
    Box::new(Answered {
        reply,
        value: Err(StoreError::Closed),
    })
}

impl PushOp {
    /// The request's name, for `Op`'s `Debug`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Add { .. } => "AddPushJobs",
            Self::Claim { .. } => "ClaimPushJobs",
            Self::Checkpoint { .. } => "CheckpointPush",
        }
    }

    /// The answer slot of a request that is not applied: it is failed
    /// with the error of the moment (`Unavailable` during an outage, the
    /// transaction's error, `Closed`).
    pub(crate) fn unapplied(self) -> Box<dyn Answer> {
        match self {
            Self::Add { reply, .. } => slot(reply),
            Self::Claim { reply, .. } => slot(reply),
            Self::Checkpoint { reply, .. } => slot(reply),
        }
    }

    /// Applies the request in the writer's transaction: its answer (sent
    /// after the commit), and the redb error that fails the transaction,
    /// if any.
    pub(crate) fn apply(self, c: &mut Ctx<'_, '_>) -> (Box<dyn Answer>, Result<(), redb::Error>) {
        use super::answer;
        match self {
            Self::Add { keys, reply } => answer(reply, exec::add(c, &keys).map(Ok)),
            Self::Claim {
                expired_before,
                lease_until,
                limit,
                reply,
            } => answer(reply, exec::claim(c, expired_before, lease_until, limit)),
            Self::Checkpoint { checkpoints, reply } => {
                answer(reply, exec::checkpoint(c, &checkpoints))
            }
        }
    }
}
