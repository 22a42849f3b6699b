//! The push jobs' part of `RedbStore::check_records`: every job record
//! decodes, and the lease and retry indexes hold exactly the entries the
//! jobs and retries call for.

use std::collections::HashSet;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::job::Job;
use super::job_name;
use crate::check::RecordCheck;
use crate::error::RedbStoreError;
use crate::registry::open_if_there;
use crate::tables::{PUSH_JOB_LEASES, PUSH_JOBS, PUSH_RETRIES, PUSH_RETRY_INDEX};

fn fail<T>(what: String) -> Result<T, RedbStoreError> {
    Err(RedbStoreError::Check(what))
}

/// Checks the push-job tables in `txn`, counts jobs and retries into `c`,
/// and answers the messages that have a job open:
///
/// * every `push_jobs` record decodes, with a token not above
///   `last_token`, and has its `push_job_leases` entry under its lease;
/// * every `push_retries` row belongs to a job and has its
///   `push_retry_index` entry with its due;
/// * the two index tables hold no other entry (their sizes are the
///   counts).
pub(crate) fn check(
    txn: &ReadTransaction,
    last_token: u64,
    c: &mut RecordCheck,
) -> Result<HashSet<u128>, RedbStoreError> {
    let jobs = open_if_there(txn, PUSH_JOBS)?;
    let leases = open_if_there(txn, PUSH_JOB_LEASES)?;
    let retries = open_if_there(txn, PUSH_RETRIES)?;
    let index = open_if_there(txn, PUSH_RETRY_INDEX)?;
    let mut open = HashSet::new();
    if let Some(jobs) = &jobs {
        for entry in jobs.iter()? {
            let (k, v) = entry?;
            let key = k.value();
            let job = match Job::decode(v.value()) {
                Ok(job) => job,
                Err(e) => return fail(format!("{} in `push_jobs`: {e}", job_name(key))),
            };
            if job.token > last_token {
                return fail(format!(
                    "{}: token {} above the last issued {last_token}",
                    job_name(key),
                    job.token
                ));
            }
            let indexed = match &leases {
                Some(t) => t.get((job.lease_until, key.0, key.1))?.is_some(),
                None => false,
            };
            if !indexed {
                return fail(format!(
                    "{}: its lease {} has no `push_job_leases` entry",
                    job_name(key),
                    job.lease_until
                ));
            }
            open.insert(key.0);
            c.push_jobs += 1;
        }
    }
    let n = match &leases {
        Some(t) => t.len()?,
        None => 0,
    };
    if n != c.push_jobs {
        return fail(format!(
            "{n} `push_job_leases` entries for {} push jobs",
            c.push_jobs
        ));
    }
    if let Some(retries) = &retries {
        for entry in retries.iter()? {
            let (k, _) = entry?;
            let (message, run, due, device) = k.value();
            let row = || {
                format!(
                    "retry of {device:?} due {due} of {}",
                    job_name((message, run))
                )
            };
            let has_job = match &jobs {
                Some(t) => t.get((message, run))?.is_some(),
                None => false,
            };
            if !has_job {
                return fail(format!("{}: no such job", row()));
            }
            let indexed = match &index {
                Some(t) => t.get((message, run, device))?.map(|g| g.value()),
                None => None,
            };
            if indexed != Some(due) {
                return fail(format!("{}: `push_retry_index` has {indexed:?}", row()));
            }
            c.push_retries += 1;
        }
    }
    let n = match &index {
        Some(t) => t.len()?,
        None => 0,
    };
    if n != c.push_retries {
        return fail(format!(
            "{n} `push_retry_index` entries for {} push retries",
            c.push_retries
        ));
    }
    Ok(open)
}
