//! The values of push jobs that cross the [`Store`](super::Store)
//! boundary: a fired run's push side, durable, resumable.

use herald_core::Tick;

use super::FencingToken;
use crate::{DeliveryCounts, MessageId};

/// Names one push job: the push side of one run of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobKey {
    /// The message.
    pub message: MessageId,
    /// When the run was due.
    pub run: Tick,
}

/// A claimed push job: where its walk over the audience stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushJob {
    /// Which job.
    pub key: JobKey,
    /// The claim: checkpoints must present it.
    pub token: FencingToken,
    /// The last device id whose notification was handed out and
    /// checkpointed; `None` before the first checkpoint.
    pub cursor: Option<String>,
    /// Whether the audience has been walked to its end.
    pub listed: bool,
    /// How many notifications have been handed out (for the throttle).
    pub handed: u64,
}

/// A notification waiting to be tried again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRetry {
    /// The device.
    pub device_id: String,
    /// How many attempts failed so far.
    pub attempts: u32,
    /// When to try again.
    pub due: Tick,
}

/// What a push job records after a batch: one atomic step (see
/// [`Store::checkpoint_push`](super::Store::checkpoint_push)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Which job.
    pub key: JobKey,
    /// The claim it holds.
    pub token: FencingToken,
    /// The claim's new end.
    pub lease_until: Tick,
    /// The job's cursor from now on.
    pub cursor: Option<String>,
    /// The audience has been walked to its end.
    pub listed: bool,
    /// Notifications handed out so far.
    pub handed: u64,
    /// Retries to record (replacing a device's earlier one).
    pub retries: Vec<PushRetry>,
    /// Devices whose retry is resolved (removed).
    pub resolved: Vec<String>,
    /// Counters to add to the message's record.
    pub counts: DeliveryCounts,
    /// The message's error text to set, if any.
    pub error: Option<String>,
    /// Move a `Published` message to `Failed` (its push was impossible).
    pub fail: bool,
    /// The job is done: remove it and its retries.
    pub finished: bool,
}

impl Checkpoint {
    /// A checkpoint of `job` that changes nothing but the lease.
    pub fn of(job: &PushJob, lease_until: Tick) -> Self {
        Self {
            key: job.key,
            token: job.token,
            lease_until,
            cursor: job.cursor.clone(),
            listed: job.listed,
            handed: job.handed,
            retries: Vec::new(),
            resolved: Vec::new(),
            counts: DeliveryCounts::default(),
            error: None,
            fail: false,
            finished: false,
        }
    }
}
