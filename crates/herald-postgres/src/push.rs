//! The push-job half of the `Store` contract: jobs, their leases and
//! tokens, their retries, and checkpoints (one transaction each call).

use std::collections::BTreeMap;

use herald::{Checkpoint, JobKey, PushJob, PushRetry, StoreError};
use herald_core::Tick;

use crate::error::pg;
use crate::messages::{AMEND, restart_grain, retry_conflicts};
use crate::open::Inner;
use crate::rows::{CountColumns, col, id_bytes, id_of, ms, tick, token, token_value};

const ADD: &str = "\
    INSERT INTO push_jobs (message, run) \
    SELECT * FROM UNNEST($1::bytea[], $2::int8[]) \
    ON CONFLICT DO NOTHING";

/// Takes the first jobs (in key order) whose lease ended, skipping rows
/// another node is claiming right now.
const CLAIM: &str = "\
    WITH c AS ( \
      SELECT message, run FROM push_jobs WHERE lease_until <= $1 \
      ORDER BY message, run LIMIT $3 FOR UPDATE SKIP LOCKED) \
    UPDATE push_jobs j SET token = nextval('fencing_tokens'), lease_until = $2 \
    FROM c WHERE j.message = c.message AND j.run = c.run \
    RETURNING j.message, j.run, j.token, j.cursor, j.listed, j.handed";

const RETRIES: &str = "\
    SELECT device_id, attempts, due FROM push_retries \
    WHERE message = $1 AND run = $2 ORDER BY due, device_id LIMIT $3";

const MOVE: &str = "\
    UPDATE push_jobs SET cursor = $4, listed = $5, handed = $6, lease_until = $7 \
    WHERE message = $1 AND run = $2 AND token = $3";

const REMOVE_JOB: &str = "DELETE FROM push_jobs WHERE message = $1 AND run = $2";

const RESOLVE: &str = "\
    DELETE FROM push_retries WHERE message = $1 AND run = $2 AND device_id = ANY($3)";

const RETRY: &str = "\
    INSERT INTO push_retries (message, run, device_id, due, attempts) \
    SELECT $1, $2, d, w, a FROM UNNEST($3::text[], $4::int8[], $5::int4[]) AS r(d, w, a) \
    ON CONFLICT (message, run, device_id) DO UPDATE SET due = EXCLUDED.due, attempts = EXCLUDED.attempts";

impl Inner {
    pub(crate) async fn add_push_jobs(&self, keys: Vec<JobKey>) -> Result<(), StoreError> {
        let mut keys = keys;
        keys.sort_unstable();
        keys.dedup();
        let messages: Vec<Vec<u8>> = keys.iter().map(|k| id_bytes(k.message)).collect();
        let runs: Vec<i64> = keys.iter().map(|k| ms(k.run)).collect();
        let client = self.client().await?;
        let r = retry_conflicts(&self.health, || async {
            let stmt = client.prepare_cached(ADD).await.map_err(pg)?;
            client.execute(&stmt, &[&messages, &runs]).await.map_err(pg)
        })
        .await;
        self.health.note(r).map(|_| ())
    }

    pub(crate) async fn claim_push_jobs(
        &self,
        expired_before: Tick,
        lease_until: Tick,
        limit: usize,
    ) -> Result<Vec<PushJob>, StoreError> {
        let (before, lease) = (ms(expired_before), ms(lease_until));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let r = retry_conflicts(&self.health, || async {
            let stmt = client.prepare_cached(CLAIM).await.map_err(pg)?;
            client
                .query(&stmt, &[&before, &lease, &limit])
                .await
                .map_err(pg)
        })
        .await;
        let rows = self.health.note(r)?;
        let mut jobs = rows
            .iter()
            .map(|row| {
                Ok(PushJob {
                    key: JobKey {
                        message: id_of(col(row, 0)?)?,
                        run: tick(col(row, 1)?),
                    },
                    token: token(col(row, 2)?),
                    cursor: col(row, 3)?,
                    listed: col(row, 4)?,
                    handed: u64::try_from(col::<i64>(row, 5)?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        jobs.sort_unstable_by_key(|j| j.key);
        Ok(jobs)
    }

    pub(crate) async fn push_retries(
        &self,
        key: JobKey,
        limit: usize,
    ) -> Result<Vec<PushRetry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        read!(self, |client| {
            let stmt = client.prepare_cached(RETRIES).await.map_err(pg)?;
            let rows = client
                .query(&stmt, &[&id_bytes(key.message), &ms(key.run), &limit])
                .await
                .map_err(pg)?;
            rows.iter()
                .map(|row| {
                    Ok(PushRetry {
                        device_id: col(row, 0)?,
                        attempts: u32::try_from(col::<i32>(row, 1)?).unwrap_or(0),
                        due: tick(col(row, 2)?),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
    }

    pub(crate) async fn checkpoint_push(
        &self,
        checkpoints: Vec<Checkpoint>,
    ) -> Result<Vec<bool>, StoreError> {
        let now = ms(self.clock.now());
        let mut client = self.client().await?;
        let r = async {
            let tx = client.transaction().await.map_err(pg)?;
            let mut applied = Vec::with_capacity(checkpoints.len());
            for cp in &checkpoints {
                let message = id_bytes(cp.key.message);
                let run = ms(cp.key.run);
                let moved = tx.prepare_cached(MOVE).await.map_err(pg)?;
                let n = tx
                    .execute(
                        &moved,
                        &[
                            &message,
                            &run,
                            &token_value(cp.token),
                            &cp.cursor,
                            &cp.listed,
                            &count(cp.handed),
                            &ms(cp.lease_until),
                        ],
                    )
                    .await
                    .map_err(pg)?;
                if n == 0 {
                    applied.push(false);
                    continue;
                }
                if cp.finished {
                    // Its retries go with it (ON DELETE CASCADE).
                    let stmt = tx.prepare_cached(REMOVE_JOB).await.map_err(pg)?;
                    tx.execute(&stmt, &[&message, &run]).await.map_err(pg)?;
                } else {
                    if !cp.resolved.is_empty() {
                        let stmt = tx.prepare_cached(RESOLVE).await.map_err(pg)?;
                        tx.execute(&stmt, &[&message, &run, &cp.resolved])
                            .await
                            .map_err(pg)?;
                    }
                    if !cp.retries.is_empty() {
                        // One row per device: a later retry replaces an earlier one.
                        let mut last: BTreeMap<&str, &PushRetry> = BTreeMap::new();
                        for r in &cp.retries {
                            last.insert(r.device_id.as_str(), r);
                        }
                        let devices: Vec<&str> = last.keys().copied().collect();
                        let dues: Vec<i64> = last.values().map(|r| ms(r.due)).collect();
                        let attempts: Vec<i32> = last
                            .values()
                            .map(|r| i32::try_from(r.attempts).unwrap_or(i32::MAX))
                            .collect();
                        let stmt = tx.prepare_cached(RETRY).await.map_err(pg)?;
                        tx.execute(&stmt, &[&message, &run, &devices, &dues, &attempts])
                            .await
                            .map_err(pg)?;
                    }
                }
                if cp.counts != herald::DeliveryCounts::default()
                    || cp.error.is_some()
                    || cp.fail
                    || cp.finished
                {
                    let mut counts = CountColumns::default();
                    counts.push(&cp.counts);
                    let [runs, pubsub, sent, failed, invalid, expired, queued] = &counts.0;
                    let stmt = tx.prepare_cached(AMEND).await.map_err(pg)?;
                    tx.execute(
                        &stmt,
                        &[
                            &vec![message.clone()],
                            &vec![cp.fail],
                            &vec![cp.error.as_deref()],
                            runs,
                            pubsub,
                            sent,
                            failed,
                            invalid,
                            expired,
                            queued,
                            &now,
                            &restart_grain(self.retention),
                        ],
                    )
                    .await
                    .map_err(pg)?;
                }
                applied.push(true);
            }
            tx.commit().await.map_err(pg)?;
            Ok(applied)
        }
        .await;
        self.health.note(r)
    }
}

fn count(v: u64) -> i64 {
    crate::rows::count(v)
}
