//! Push jobs on the same redb file: the push side of fired runs, durable
//! and resumable ([`Store`](herald::Store)'s `# Push jobs`).
//!
//! | file | concept |
//! |---|---|
//! | `job.rs` | the job record (`push_jobs` value) |
//! | `read.rs` | the read: a job's retries |
//! | `check.rs` | the push jobs' part of `check_records` |
//!
//! The writes are `crate::writer`'s `push_op.rs` (the requests) and
//! `push_exec.rs` (what they do to the tables).

pub(crate) mod check;
pub(crate) mod job;
pub(crate) mod read;

use herald::MessageId;

/// How a job is named in errors: `job (<message id>, run <ms>)`.
pub(crate) fn job_name((message, run): (u128, u64)) -> String {
    format!("job ({}, run {run})", MessageId::from_u128(message))
}
