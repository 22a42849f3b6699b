//! The push jobs of a [`MemoryStore`](super::MemoryStore).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use herald_core::Tick;

use super::{Checkpoint, FencingToken, JobKey, PushJob, PushRetry};

/// Push jobs and their retries, under one lock.
#[derive(Debug, Default)]
pub(super) struct PushJobs {
    jobs: BTreeMap<JobKey, Job>,
    /// `(job, due, device)` of every retry, in the order they are listed.
    retries: BTreeSet<(JobKey, Tick, String)>,
    /// Each retry's due and attempts, by `(job, device)`.
    by_device: HashMap<(JobKey, String), (Tick, u32)>,
}

#[derive(Debug)]
struct Job {
    token: Option<FencingToken>,
    lease_until: Tick,
    cursor: Option<String>,
    listed: bool,
    handed: u64,
}

impl PushJobs {
    /// Adds the jobs not recorded yet; the keys it added.
    pub(super) fn add(&mut self, keys: Vec<JobKey>) -> Vec<JobKey> {
        let mut added = Vec::new();
        for key in keys {
            if let std::collections::btree_map::Entry::Vacant(v) = self.jobs.entry(key) {
                v.insert(Job {
                    token: None,
                    lease_until: Tick::from_millis(0),
                    cursor: None,
                    listed: false,
                    handed: 0,
                });
                added.push(key);
            }
        }
        added
    }

    pub(super) fn claim(
        &mut self,
        expired_before: Tick,
        lease_until: Tick,
        limit: usize,
        mut token: impl FnMut() -> FencingToken,
    ) -> Vec<PushJob> {
        self.jobs
            .iter_mut()
            .filter(|(_, j)| j.token.is_none() || j.lease_until <= expired_before)
            .take(limit)
            .map(|(key, j)| {
                let t = token();
                j.token = Some(t);
                j.lease_until = lease_until;
                PushJob {
                    key: *key,
                    token: t,
                    cursor: j.cursor.clone(),
                    listed: j.listed,
                    handed: j.handed,
                }
            })
            .collect()
    }

    pub(super) fn retries(&self, key: JobKey, limit: usize) -> Vec<PushRetry> {
        let from = (key, Tick::from_millis(0), String::new());
        self.retries
            .range(from..)
            .take_while(|(k, _, _)| *k == key)
            .take(limit)
            .map(|(k, due, device)| PushRetry {
                device_id: device.clone(),
                attempts: self.by_device[&(*k, device.clone())].1,
                due: *due,
            })
            .collect()
    }

    fn remove_retry(&mut self, key: JobKey, device: &str) {
        if let Some((due, _)) = self.by_device.remove(&(key, device.to_owned())) {
            self.retries.remove(&(key, due, device.to_owned()));
        }
    }

    /// Applies `cp` if its token is current: `Some(finished)`, else `None`.
    pub(super) fn checkpoint(&mut self, cp: &Checkpoint) -> Option<bool> {
        let job = self.jobs.get_mut(&cp.key)?;
        if job.token != Some(cp.token) {
            return None;
        }
        job.lease_until = cp.lease_until;
        job.cursor.clone_from(&cp.cursor);
        job.listed = cp.listed;
        job.handed = cp.handed;
        for device in &cp.resolved {
            self.remove_retry(cp.key, device);
        }
        for r in &cp.retries {
            self.remove_retry(cp.key, &r.device_id);
            self.retries.insert((cp.key, r.due, r.device_id.clone()));
            self.by_device
                .insert((cp.key, r.device_id.clone()), (r.due, r.attempts));
        }
        if cp.finished {
            self.jobs.remove(&cp.key);
            let left: Vec<String> = self
                .retries
                .range((cp.key, Tick::from_millis(0), String::new())..)
                .take_while(|(k, _, _)| *k == cp.key)
                .map(|(_, _, d)| d.clone())
                .collect();
            for device in left {
                self.remove_retry(cp.key, &device);
            }
        }
        Some(cp.finished)
    }
}
