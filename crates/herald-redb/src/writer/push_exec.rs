//! What each push-job request does to the push-job tables (and a
//! checkpoint to its message's record), inside the writer's transaction.
//!
//! A job lives in two places: its record in `push_jobs` and one entry in
//! `push_job_leases` under its lease (0 until its first claim). A retry
//! too: its row in `push_retries` (the order they are listed in) and its
//! entry in `push_retry_index` (how a device's retry is found). Every
//! request changes both in the same transaction. A job record that does
//! not decode (or a lease entry that disagrees with its record) makes the
//! request that meets it answer `StoreError::Other` naming it, without
//! changing anything; the rest of the batch goes on.

use herald::{Checkpoint, DeliveryCounts, JobKey, MessageId, PushJob, StoreError};
use herald_core::Tick;
use redb::ReadableTable;

use super::exec::{self, Change, Ctx};
use crate::error::bad_row;
use crate::push::job::Job;
use crate::push::job_name;
use crate::tables::{JobRow, PushTables};

type R<T> = Result<T, redb::Error>;

/// A request's outcome: a redb error fails the transaction; an inner
/// error is the request's own answer.
type Outcome<T> = R<Result<T, StoreError>>;

fn row(key: &JobKey) -> JobRow {
    (key.message.as_u128(), key.run.as_millis())
}

/// The record of job `key`, decoded: `Ok(None)` if there is none, the
/// request's error if it is damaged.
fn load(p: &PushTables<'_>, key: JobRow) -> Outcome<Option<Job>> {
    let Some(bytes) = p.jobs.get(key)? else {
        return Ok(Ok(None));
    };
    Ok(Job::decode(bytes.value())
        .map(Some)
        .map_err(|e| bad_row("push_jobs", job_name(key), e)))
}

/// Writes `job`'s record and moves its lease entry from `old_lease` (none
/// for a new job).
fn put(p: &mut PushTables<'_>, key: JobRow, old_lease: Option<u64>, job: &Job) -> R<()> {
    p.jobs.insert(key, job.encode().as_slice())?;
    if old_lease != Some(job.lease_until) {
        if let Some(old) = old_lease {
            p.leases.remove((old, key.0, key.1))?;
        }
        p.leases.insert((job.lease_until, key.0, key.1), ())?;
    }
    Ok(())
}

/// Records the jobs not recorded yet, unclaimed (token 0, lease 0); a
/// finished message that gets a job is no longer final (see
/// [`exec::job_added`]).
pub(super) fn add(c: &mut Ctx<'_, '_>, keys: &[JobKey]) -> R<()> {
    for key in keys {
        let key = row(key);
        let p = c.t.push()?;
        if p.jobs.get(key)?.is_some() {
            continue;
        }
        put(p, key, None, &Job::default())?;
        exec::job_added(c.t, key.0)?;
    }
    Ok(())
}

/// Claims up to `limit` jobs whose lease ended at or before
/// `expired_before`: the first entries of `push_job_leases` (oldest lease
/// first, new jobs before any claimed one; ties in key order), so a claim
/// reads the jobs it takes and one more entry, never the jobs still
/// leased. Each gets a new token from the store's counter and the lease
/// `lease_until`; they are answered in key order. Every record is loaded
/// before anything changes.
pub(super) fn claim(
    c: &mut Ctx<'_, '_>,
    expired_before: u64,
    lease_until: u64,
    limit: usize,
) -> Outcome<Vec<PushJob>> {
    let tokens = &mut *c.tokens;
    let Some(p) = c.t.push_if_there()? else {
        return Ok(Ok(Vec::new()));
    };
    let mut due = Vec::with_capacity(limit.min(1024));
    for entry in p.leases.range(..=(expired_before, u128::MAX, u64::MAX))? {
        if due.len() >= limit {
            break;
        }
        let (k, _) = entry?;
        let (lease, message, run) = k.value();
        due.push((lease, (message, run)));
    }
    let mut jobs = Vec::with_capacity(due.len());
    for (lease, key) in due {
        let entry = || format!("entry ({lease}, {})", job_name(key));
        let job = match load(p, key)? {
            Ok(Some(job)) => job,
            Ok(None) => {
                return Ok(Err(bad_row(
                    "push_job_leases",
                    entry(),
                    "the job has no record",
                )));
            }
            Err(e) => return Ok(Err(e)),
        };
        if job.lease_until != lease {
            return Ok(Err(bad_row(
                "push_job_leases",
                entry(),
                format!("the job's record is leased until {}", job.lease_until),
            )));
        }
        jobs.push((key, job));
    }
    jobs.sort_unstable_by_key(|(key, _)| *key);
    let mut out = Vec::with_capacity(jobs.len());
    for (key, mut job) in jobs {
        let old = job.lease_until;
        let token = tokens.next();
        job.token = token.get();
        job.lease_until = lease_until;
        put(p, key, Some(old), &job)?;
        out.push(PushJob {
            key: JobKey {
                message: MessageId::from_u128(key.0),
                run: Tick::from_millis(key.1),
            },
            token,
            cursor: job.cursor,
            listed: job.listed,
            handed: job.handed,
        });
    }
    Ok(Ok(out))
}

/// Removes `device`'s retry of job `key`, if it has one.
fn remove_retry(p: &mut PushTables<'_>, (message, run): JobRow, device: &str) -> R<()> {
    let due = p
        .retry_index
        .remove((message, run, device))?
        .map(|g| g.value());
    if let Some(due) = due {
        p.retries.remove((message, run, due, device))?;
    }
    Ok(())
}

/// Removes every retry of job `key`: a range of `push_retry_index`.
fn remove_retries(p: &mut PushTables<'_>, (message, run): JobRow) -> R<()> {
    let mut left = Vec::new();
    for entry in p
        .retry_index
        .range::<(u128, u64, &str)>((message, run, "")..)?
    {
        let (k, v) = entry?;
        let (m, r, device) = k.value();
        if (m, r) != (message, run) {
            break;
        }
        left.push((device.to_owned(), v.value()));
    }
    for (device, due) in left {
        p.retry_index.remove((message, run, device.as_str()))?;
        p.retries.remove((message, run, due, device.as_str()))?;
    }
    Ok(())
}

/// Applies each checkpoint whose token is the job's current one, in
/// order: the job's lease, cursor, `listed` and `handed`; retries resolved
/// and recorded (a device's new retry replaces its old one); with
/// `finished`, the job and all its retries removed. Then, in the same
/// transaction, its counters, error and `fail` go to the message's record
/// as an amendment's do ([`exec::add_to_record`]), and a job that ended
/// may make the message final now. A stale token or an unknown job
/// changes nothing (`false`). Every job named is loaded before anything
/// changes, so a damaged one fails the request as a whole.
pub(super) fn checkpoint(c: &mut Ctx<'_, '_>, checkpoints: &[Checkpoint]) -> Outcome<Vec<bool>> {
    let Some(p) = c.t.push_if_there()? else {
        // No push-job tables: every job is unknown.
        return Ok(Ok(vec![false; checkpoints.len()]));
    };
    for cp in checkpoints {
        if let Err(e) = load(p, row(&cp.key))? {
            return Ok(Err(e));
        }
    }
    let now = c.now;
    let mut out = Vec::with_capacity(checkpoints.len());
    for cp in checkpoints {
        let key = row(&cp.key);
        let p = c.t.push()?;
        let job = match load(p, key)? {
            Ok(Some(job)) => job,
            Ok(None) => {
                out.push(false);
                continue;
            }
            // Decoded above, or written by an earlier checkpoint of this
            // request: never.
            Err(e) => return Ok(Err(e)),
        };
        if job.token == 0 || job.token != cp.token.get() {
            out.push(false);
            continue;
        }
        for device in &cp.resolved {
            remove_retry(p, key, device)?;
        }
        for r in &cp.retries {
            let device = r.device_id.as_str();
            remove_retry(p, key, device)?;
            let due = r.due.as_millis();
            p.retries.insert((key.0, key.1, due, device), r.attempts)?;
            p.retry_index.insert((key.0, key.1, device), due)?;
        }
        if cp.finished {
            p.jobs.remove(key)?;
            p.leases.remove((job.lease_until, key.0, key.1))?;
            remove_retries(p, key)?;
        } else {
            let next = Job {
                token: job.token,
                lease_until: cp.lease_until.as_millis(),
                cursor: cp.cursor.clone(),
                listed: cp.listed,
                handed: cp.handed,
            };
            put(p, key, Some(job.lease_until), &next)?;
        }
        let change = Change {
            counts: &cp.counts,
            error: cp.error.as_deref(),
            fail: cp.fail,
            job_ended: cp.finished,
        };
        let nothing = cp.counts == DeliveryCounts::default() && cp.error.is_none() && !cp.fail;
        if !nothing || cp.finished {
            // A checkpoint that only moves the cursor or the lease leaves
            // the message's record alone.
            exec::add_to_record(c.t, key.0, &change, now)?;
        }
        out.push(true);
    }
    Ok(Ok(out))
}
