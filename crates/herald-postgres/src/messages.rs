//! The message half of the `Store` contract: inserts (batched by the
//! writer), reads, claims, renewals, completions, cancels, amendments and
//! releases, each one statement (batches as arrays, `UNNEST`ed).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use herald::codec::{decode_envelope, encode_envelope};
use herald::{
    Amendment, CancelOutcome, Claim, Claimed, Completion, DeliveryCounts, DueRun, Envelope,
    FencingToken, IdempotencyKey, Inserted, KeyRecord, Lease, MessageId, Next, PublishStatus,
    Record, Start, StoreError,
};
use herald_core::Tick;
use tokio::sync::oneshot;
use tokio_postgres::Row;

use crate::error::{damaged, is_conflict, pg};
use crate::open::Inner;
use crate::rows::{
    CountColumns, FAILED, FIRING, RECORD_COLUMNS, SCHEDULED, col, count, counts_of, due_runs,
    fingerprint, fingerprint_bytes, id_bytes, id_of, ms, state_of, tick, token, token_value,
};
use crate::writer::{INSERT_BATCH, InsertRequest};

/// Rows of `$1` locked in id order before a batch statement changes them:
/// two batches that touch the same rows (a completion on one node, the
/// bus amendments of two others) then wait for each other instead of
/// deadlocking. An `UPDATE … FROM UNNEST(…)` alone locks rows in whatever
/// order its join reads them, which is not the array's: the cluster test
/// saw deadlocks, each costing `deadlock_timeout` (1 s) of delay.
/// Referenced by the statements as `m.id IN (SELECT id FROM l)`; a CTE
/// with a locking clause is never inlined, and its rows are locked as
/// they leave its sort.
macro_rules! locked_in_order {
    () => {
        "l AS (SELECT id FROM messages WHERE id = ANY($1::bytea[]) ORDER BY id FOR UPDATE)"
    };
}

const CLAIM: &str = concat!(
    "WITH ",
    locked_in_order!(),
    " UPDATE messages m SET state = 1, lease_until = $3, token = nextval('fencing_tokens') \
    FROM UNNEST($1::bytea[], $2::int8[]) AS c(id, due) \
    WHERE m.id = c.id AND m.state = 0 AND m.due = c.due AND m.id IN (SELECT id FROM l) \
    RETURNING m.id, m.due, m.token, m.envelope"
);

const RENEW: &str = concat!(
    "WITH ",
    locked_in_order!(),
    " UPDATE messages m SET lease_until = $3 \
    FROM UNNEST($1::bytea[], $2::int8[]) AS c(id, token) \
    WHERE m.id = c.id AND m.token = c.token AND m.state = 1 AND m.id IN (SELECT id FROM l) \
    RETURNING m.id, m.token"
);

/// A completion applies to a firing run under its token, or to a message
/// cancelled while that run was firing (which keeps the token until this
/// completion, then forgets it: the completion applies once). Runs it
/// schedules are hinted with one `pg_notify($14, '<earliest due> ' || $15)`.
/// Answers `id, token, state, due`.
const COMPLETE: &str = concat!(
    "WITH ",
    locked_in_order!(),
    ", u AS ( \
    UPDATE messages m SET \
      state = CASE WHEN m.state = 4 THEN 4::int2 ELSE c.next END, \
      due = CASE WHEN m.state = 1 AND c.next = 0 THEN c.due ELSE m.due END, \
      token = CASE WHEN m.state = 4 THEN 0 ELSE m.token END, \
      error = CASE WHEN m.state = 1 AND c.next = 3 THEN c.err ELSE m.error END, \
      finished_at = CASE WHEN m.state = 4 OR c.next >= 2 THEN $13 ELSE m.finished_at END, \
      runs = m.runs + c.runs, pubsub = m.pubsub + c.pubsub, \
      push_sent = m.push_sent + c.sent, push_failed = m.push_failed + c.failed, \
      push_invalid_tokens = m.push_invalid_tokens + c.invalid, \
      push_expired = m.push_expired + c.expired, push_queued = m.push_queued + c.queued \
    FROM UNNEST($1::bytea[], $2::int8[], $3::int2[], $4::int8[], $5::text[], \
                $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[]) \
      AS c(id, token, next, due, err, runs, pubsub, sent, failed, invalid, expired, queued) \
    WHERE m.id = c.id AND m.token = c.token AND m.state IN (1, 4) \
      AND m.id IN (SELECT id FROM l) \
    RETURNING m.id, c.token, m.state, m.due), \
    n AS MATERIALIZED ( \
      SELECT pg_notify($14, min(due)::text || ' ' || $15) FROM u WHERE state = 0 \
      HAVING count(*) > 0) \
    SELECT id, token, state, due, (SELECT count(*) FROM n) FROM u"
);

/// Claims whose lease ended go back to `Scheduled` (their reservations
/// too: the run is anyone's); hinted with one `pg_notify($2, …)`. Rows
/// another statement holds (a late completion) are skipped, the others
/// locked in id order, as every batch statement locks.
pub(crate) const RELEASE: &str = "\
    WITH l AS ( \
      SELECT id FROM messages WHERE state = 1 AND lease_until < $1 \
      ORDER BY id FOR UPDATE SKIP LOCKED), \
    r AS ( \
      UPDATE messages SET state = 0, reserved_until = NULL \
      WHERE state = 1 AND lease_until < $1 AND id IN (SELECT id FROM l) RETURNING id, due), \
    n AS MATERIALIZED ( \
      SELECT pg_notify($2, min(due)::text || ' ' || $3) FROM r HAVING count(*) > 0) \
    SELECT id, due, (SELECT count(*) FROM n) FROM r";

/// Scheduled rows after id `$1`, in id order, at most `$2`.
pub(crate) const PENDING: &str =
    "SELECT id, due FROM messages WHERE state = 0 AND id > $1 ORDER BY id LIMIT $2";

/// A record by id, its appended deliveries summed.
pub(crate) fn read_record() -> String {
    format!("SELECT {RECORD_COLUMNS} FROM messages WHERE id = $1")
}

/// Counters (and an error, and `fail`) added to records in any state; a
/// finished record's retention clock restarts (its last change) when it
/// would move by at least `$12` ms ([`restart_grain`]). So the amendments
/// that come right after a completion (the other nodes' deliveries of the
/// run) change no indexed column (`finished_at` is in `messages_finished`)
/// and are HOT updates: measured in `cluster-bench`, 4.4 WAL records and
/// 21 buffer reads per amended row before, when every amendment moved
/// `finished_at` by a few ms.
pub(crate) const AMEND: &str = concat!(
    "WITH ",
    locked_in_order!(),
    " UPDATE messages m SET \
      state = CASE WHEN a.fail AND m.state = 2 THEN 3::int2 ELSE m.state END, \
      error = COALESCE(a.err, m.error), \
      finished_at = CASE WHEN m.state >= 2 AND m.finished_at <= $11::int8 - $12::int8 THEN $11 \
                         ELSE m.finished_at END, \
      runs = m.runs + a.runs, pubsub = m.pubsub + a.pubsub, \
      push_sent = m.push_sent + a.sent, push_failed = m.push_failed + a.failed, \
      push_invalid_tokens = m.push_invalid_tokens + a.invalid, \
      push_expired = m.push_expired + a.expired, push_queued = m.push_queued + a.queued \
    FROM UNNEST($1::bytea[], $2::bool[], $3::text[], \
                $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[]) \
      AS a(id, fail, err, runs, pubsub, sent, failed, invalid, expired, queued) \
    WHERE m.id = a.id AND m.id IN (SELECT id FROM l)"
);

/// Other nodes' pub/sub deliveries of runs (amendments with nothing else),
/// appended to `bus_deliveries` (migration 4) for messages that exist (an
/// amendment of an unknown id is ignored, as the contract says). Unlike a
/// counter update, this does not restart a finished record's retention
/// clock: such counts come within moments of the completion.
const APPEND_PUBSUB: &str = "\
    INSERT INTO bus_deliveries (id, n) \
    SELECT a.id, a.n FROM UNNEST($1::bytea[], $2::int8[]) AS a(id, n) \
    WHERE a.n <> 0 AND EXISTS (SELECT 1 FROM messages m WHERE m.id = a.id)";

/// How far (ms) an amendment must move a finished record's last change
/// before it does ([`AMEND`]): a sixty-fourth of the retention, at most a
/// minute, so a record is kept at least 98 % of the retention after its
/// last change (a minute without retention: nothing is purged then).
pub(crate) fn restart_grain(retention: Option<std::time::Duration>) -> i64 {
    retention.map_or(60_000, |r| {
        i64::try_from((r.as_millis() / 64).min(60_000)).map_or(60_000, |g| g.max(1))
    })
}

/// Records a key, or replaces it if it expired by the new message's
/// accept time (`$6`); no row: the key holds.
const KEY_CLAIM: &str = "\
    INSERT INTO idempotency_keys AS k (key, id, fingerprint, status, expires_at) \
    VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (key) DO UPDATE SET id = EXCLUDED.id, fingerprint = EXCLUDED.fingerprint, \
      status = EXCLUDED.status, expires_at = EXCLUDED.expires_at \
    WHERE k.expires_at <= $6 \
    RETURNING 1";

const KEY_READ: &str =
    "SELECT id, fingerprint, status, expires_at FROM idempotency_keys WHERE key = $1";

/// A start's `(state, due, lease_until)` columns.
fn start_columns(start: Start) -> (i16, i64, i64) {
    match start {
        Start::At(due) => (SCHEDULED, ms(due), 0),
        Start::Claimed { due, lease_until } => (FIRING, ms(due), ms(lease_until)),
    }
}

fn encode(envelope: &Envelope) -> Result<Vec<u8>, StoreError> {
    encode_envelope(envelope).map_err(|e| StoreError::Other(Box::new(e)))
}

fn key_record(row: &Row) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        id: id_of(col(row, 0)?)?,
        fingerprint: fingerprint(col(row, 1)?)?,
        status: if col::<i16>(row, 2)? == 1 {
            PublishStatus::Published
        } else {
            PublishStatus::Scheduled
        },
        expires_at: tick(col(row, 3)?),
    })
}

/// Runs `op` again (up to 3 more times) while PostgreSQL aborts it for a
/// deadlock or a serialization failure with a concurrent statement.
pub(crate) async fn retry_conflicts<T, F, Fut>(
    health: &crate::open::Health,
    mut op: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Err(e) if is_conflict(&e) && tries < 3 => {
                tries += 1;
                health
                    .conflicts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            other => return other,
        }
    }
}

impl Inner {
    /// The record in `row` (read with [`RECORD_COLUMNS`]).
    pub(crate) fn record(&self, row: &Row) -> Result<Record, StoreError> {
        let id = id_of(col(row, 0)?)?;
        let envelope = self.envelope(id, col(row, 1)?)?;
        Ok(Record {
            envelope,
            state: state_of(row, id)?,
            counts: counts_of(row)?,
            error: col(row, 13)?,
        })
    }

    fn envelope(&self, id: MessageId, bytes: &[u8]) -> Result<Arc<Envelope>, StoreError> {
        decode_envelope(id, bytes, &self.plans)
            .map(Arc::new)
            .map_err(|e| damaged(format!("message {id}: {e}")))
    }

    pub(crate) async fn insert(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
    ) -> Result<Option<FencingToken>, StoreError> {
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Closed);
        }
        let bytes = encode(&envelope)?;
        let (state, due, lease_until) = start_columns(start);
        let (reply, answer) = oneshot::channel();
        self.inserts
            .send(InsertRequest {
                id: envelope.id,
                envelope: bytes,
                state,
                due,
                lease_until,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        let got = answer.await.map_err(|_| StoreError::Closed)?;
        if got.is_ok() && envelope.plan.is_repeating() {
            self.plans.insert(envelope.id, envelope.plan.clone());
        }
        got
    }

    pub(crate) async fn insert_idempotent(
        &self,
        envelope: Arc<Envelope>,
        start: Start,
        key: IdempotencyKey,
    ) -> Result<Inserted, StoreError> {
        let bytes = encode(&envelope)?;
        let (state, due, lease_until) = start_columns(start);
        let status: i16 = if state == FIRING { 1 } else { 0 };
        let id = id_bytes(envelope.id);
        let mut client = self.client().await?;
        let r = async {
            let tx = client.transaction().await.map_err(pg)?;
            let claim = tx.prepare_cached(KEY_CLAIM).await.map_err(pg)?;
            let fresh = tx
                .query_opt(
                    &claim,
                    &[
                        &key.key,
                        &id,
                        &fingerprint_bytes(key.fingerprint),
                        &status,
                        &ms(key.expires_at),
                        &ms(envelope.accepted_at),
                    ],
                )
                .await
                .map_err(pg)?;
            if fresh.is_none() {
                let row = tx.query_one(KEY_READ, &[&key.key]).await.map_err(pg)?;
                let record = key_record(&row)?;
                tx.rollback().await.map_err(pg)?;
                return Ok(Inserted::Existing(record));
            }
            let insert = tx.prepare_cached(INSERT_BATCH).await.map_err(pg)?;
            let stored = tx
                .query_opt(
                    &insert,
                    &[
                        &vec![id.clone()],
                        &vec![bytes.as_slice()],
                        &vec![state],
                        &vec![due],
                        &vec![lease_until],
                        &self.hints.channel,
                        &self.hints.tag,
                    ],
                )
                .await
                .map_err(pg)?;
            let Some(row) = stored else {
                tx.rollback().await.map_err(pg)?;
                return Err(StoreError::Duplicate(envelope.id));
            };
            let t: i64 = col(&row, 1)?;
            tx.commit().await.map_err(pg)?;
            if state == SCHEDULED {
                self.hints.scheduled(Some(due));
            }
            Ok(Inserted::New((t != 0).then(|| token(t))))
        }
        .await;
        self.health.note(r)
    }

    pub(crate) async fn idempotency_key(&self, key: &str) -> Result<Option<KeyRecord>, StoreError> {
        read!(self, |client| {
            let stmt = client.prepare_cached(KEY_READ).await.map_err(pg)?;
            match client.query_opt(&stmt, &[&key]).await.map_err(pg)? {
                Some(row) => key_record(&row).map(Some),
                None => Ok(None),
            }
        })
    }

    pub(crate) async fn get(&self, id: MessageId) -> Result<Option<Record>, StoreError> {
        let sql = read_record();
        read!(self, |client| {
            let stmt = client.prepare_cached(&sql).await.map_err(pg)?;
            match client
                .query_opt(&stmt, &[&id_bytes(id)])
                .await
                .map_err(pg)?
            {
                Some(row) => self.record(&row).map(Some),
                None => Ok(None),
            }
        })
    }

    pub(crate) async fn claim(
        &self,
        claims: Vec<Claim>,
        lease_until: Tick,
    ) -> Result<Vec<Option<Claimed>>, StoreError> {
        // Each distinct (id, due) once, in id order (so concurrent claims
        // lock rows in the same order).
        let mut wanted: Vec<Claim> = claims.clone();
        wanted.sort_unstable_by_key(|c| (c.id, c.due));
        wanted.dedup();
        let ids: Vec<Vec<u8>> = wanted.iter().map(|c| id_bytes(c.id)).collect();
        let dues: Vec<i64> = wanted.iter().map(|c| ms(c.due)).collect();
        let lease = ms(lease_until);
        let client = self.client().await?;
        let rows = retry_conflicts(&self.health, || async {
            let stmt = client.prepare_cached(CLAIM).await.map_err(pg)?;
            client
                .query(&stmt, &[&ids, &dues, &lease])
                .await
                .map_err(pg)
        })
        .await;
        let rows = self.health.note(rows)?;
        let mut got: HashMap<Claim, Claimed> = HashMap::with_capacity(rows.len());
        let mut damaged_ids = Vec::new();
        for row in &rows {
            let id = id_of(col(row, 0)?)?;
            let due = tick(col(row, 1)?);
            match self.envelope(id, col(row, 3)?) {
                Ok(envelope) => {
                    got.insert(
                        Claim { id, due },
                        Claimed {
                            token: token(col(row, 2)?),
                            envelope,
                        },
                    );
                }
                Err(e) => damaged_ids.push((id, e.to_string())),
            }
        }
        for (id, why) in damaged_ids {
            self.set_aside(&client, id, &why).await;
        }
        Ok(claims.iter().map(|c| got.remove(c)).collect())
    }

    /// A claimed message whose envelope does not decode is never
    /// delivered: it is marked failed with the reason (and logged), so no
    /// node claims it again.
    async fn set_aside(&self, client: &tokio_postgres::Client, id: MessageId, why: &str) {
        tracing::error!(message = %id, schema = %self.schema, "{why}; marked failed");
        let now = ms(self.clock.now());
        let r = client
            .execute(
                "UPDATE messages SET state = 3, error = $2, finished_at = $3 WHERE id = $1",
                &[&id_bytes(id), &why, &now],
            )
            .await;
        if let Err(e) = r {
            tracing::warn!(message = %id, "could not mark a damaged message failed: {e}");
        }
        self.health
            .quarantined
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) async fn renew(
        &self,
        leases: Vec<Lease>,
        lease_until: Tick,
    ) -> Result<Vec<bool>, StoreError> {
        let ids: Vec<Vec<u8>> = leases.iter().map(|l| id_bytes(l.id)).collect();
        let tokens: Vec<i64> = leases.iter().map(|l| token_value(l.token)).collect();
        let lease = ms(lease_until);
        let client = self.client().await?;
        let rows = retry_conflicts(&self.health, || async {
            let stmt = client.prepare_cached(RENEW).await.map_err(pg)?;
            client
                .query(&stmt, &[&ids, &tokens, &lease])
                .await
                .map_err(pg)
        })
        .await;
        let rows = self.health.note(rows)?;
        let mut renewed = HashSet::with_capacity(rows.len());
        for row in &rows {
            renewed.insert((id_of(col(row, 0)?)?, col::<i64>(row, 1)?));
        }
        Ok(leases
            .iter()
            .map(|l| renewed.contains(&(l.id, token_value(l.token))))
            .collect())
    }

    pub(crate) async fn complete(
        &self,
        completions: Vec<Completion>,
    ) -> Result<Vec<bool>, StoreError> {
        // A completion applies once: a second one in the batch under the
        // same claim is `false`.
        let mut first = HashSet::with_capacity(completions.len());
        let unique: Vec<bool> = completions
            .iter()
            .map(|c| first.insert((c.id, c.token)))
            .collect();
        let mut ids = Vec::new();
        let mut tokens = Vec::new();
        let mut nexts = Vec::new();
        let mut dues = Vec::new();
        let mut errs: Vec<Option<&str>> = Vec::new();
        let mut counts = CountColumns::default();
        // In id order, as claims lock rows, so concurrent batches do not
        // deadlock.
        let mut order: Vec<&Completion> = completions
            .iter()
            .zip(&unique)
            .filter(|(_, u)| **u)
            .map(|(c, _)| c)
            .collect();
        order.sort_unstable_by_key(|c| c.id);
        for c in order {
            ids.push(id_bytes(c.id));
            tokens.push(token_value(c.token));
            let (next, due, err) = match &c.next {
                Next::At(due) => (SCHEDULED, ms(*due), None),
                Next::Done => (crate::rows::PUBLISHED, 0, None),
                Next::Failed(e) => (FAILED, 0, Some(e.as_str())),
            };
            nexts.push(next);
            dues.push(due);
            errs.push(err);
            counts.push(&c.counts);
        }
        let now = ms(self.clock.now());
        let client = self.client().await?;
        let rows = retry_conflicts(&self.health, || async {
            let stmt = client.prepare_cached(COMPLETE).await.map_err(pg)?;
            let [runs, pubsub, sent, failed, invalid, expired, queued] = &counts.0;
            client
                .query(
                    &stmt,
                    &[
                        &ids,
                        &tokens,
                        &nexts,
                        &dues,
                        &errs,
                        runs,
                        pubsub,
                        sent,
                        failed,
                        invalid,
                        expired,
                        queued,
                        &now,
                        &self.hints.channel,
                        &self.hints.tag,
                    ],
                )
                .await
                .map_err(pg)
        })
        .await;
        let rows = self.health.note(rows)?;
        let mut applied = HashSet::with_capacity(rows.len());
        let mut earliest: Option<i64> = None;
        for row in &rows {
            applied.insert((id_of(col(row, 0)?)?, col::<i64>(row, 1)?));
            if col::<i16>(row, 2)? == SCHEDULED {
                let due: i64 = col(row, 3)?;
                earliest = Some(earliest.map_or(due, |e| e.min(due)));
            }
        }
        self.hints.scheduled(earliest);
        for c in &completions {
            if !matches!(c.next, Next::At(_)) && applied.contains(&(c.id, token_value(c.token))) {
                self.plans.remove(c.id);
            }
        }
        Ok(completions
            .iter()
            .zip(unique)
            .map(|(c, u)| u && applied.contains(&(c.id, token_value(c.token))))
            .collect())
    }

    pub(crate) async fn cancel(&self, id: MessageId) -> Result<CancelOutcome, StoreError> {
        let client = self.client().await?;
        let now = ms(self.clock.now());
        let cancel = format!(
            "UPDATE messages SET state = 4, finished_at = $2, \
               token = CASE WHEN state = 1 THEN token ELSE 0 END \
             WHERE id = $1 AND state IN (0, 1) RETURNING {RECORD_COLUMNS}"
        );
        let read = read_record();
        let key = id_bytes(id);
        let r = async {
            let stmt = client.prepare_cached(&cancel).await.map_err(pg)?;
            if let Some(row) = client.query_opt(&stmt, &[&key, &now]).await.map_err(pg)? {
                self.plans.remove(id);
                return Ok(CancelOutcome::Cancelled(self.record(&row)?));
            }
            let stmt = client.prepare_cached(&read).await.map_err(pg)?;
            Ok(match client.query_opt(&stmt, &[&key]).await.map_err(pg)? {
                Some(row) => CancelOutcome::Finished(self.record(&row)?),
                None => CancelOutcome::NotFound,
            })
        }
        .await;
        self.health.note(r)
    }

    pub(crate) async fn amend(&self, amendments: Vec<Amendment>) -> Result<(), StoreError> {
        if amendments.is_empty() {
            return Ok(());
        }
        // One row per message: counters summed, the last error, any fail.
        let mut merged: Vec<(MessageId, DeliveryCounts, Option<String>, bool)> = Vec::new();
        let mut at: HashMap<MessageId, usize> = HashMap::new();
        for a in amendments {
            match at.get(&a.id) {
                Some(&i) => {
                    let m = &mut merged[i];
                    m.1.add(&a.counts);
                    if a.error.is_some() {
                        m.2 = a.error;
                    }
                    m.3 |= a.fail;
                }
                None => {
                    at.insert(a.id, merged.len());
                    merged.push((a.id, a.counts, a.error, a.fail));
                }
            }
        }
        merged.sort_unstable_by_key(|m| m.0);
        // Pub/sub deliveries alone (what nodes add to runs from the bus)
        // are appended (migration 4): no row lock, no row version.
        let (appends, merged): (Vec<_>, Vec<_>) = merged.into_iter().partition(|m| {
            m.2.is_none()
                && !m.3
                && m.1
                    == DeliveryCounts {
                        pubsub: m.1.pubsub,
                        ..DeliveryCounts::default()
                    }
        });
        let client = self.client().await?;
        if !appends.is_empty() {
            let ids: Vec<Vec<u8>> = appends.iter().map(|m| id_bytes(m.0)).collect();
            let ns: Vec<i64> = appends.iter().map(|m| count(m.1.pubsub)).collect();
            let r = async {
                let stmt = client.prepare_cached(APPEND_PUBSUB).await.map_err(pg)?;
                client.execute(&stmt, &[&ids, &ns]).await.map_err(pg)
            }
            .await;
            self.health.note(r)?;
        }
        if merged.is_empty() {
            return Ok(());
        }
        let ids: Vec<Vec<u8>> = merged.iter().map(|m| id_bytes(m.0)).collect();
        let fails: Vec<bool> = merged.iter().map(|m| m.3).collect();
        let errs: Vec<Option<&str>> = merged.iter().map(|m| m.2.as_deref()).collect();
        let mut counts = CountColumns::default();
        for m in &merged {
            counts.push(&m.1);
        }
        let now = ms(self.clock.now());
        let grain = restart_grain(self.retention);
        let r = retry_conflicts(&self.health, || async {
            let stmt = client.prepare_cached(AMEND).await.map_err(pg)?;
            let [runs, pubsub, sent, failed, invalid, expired, queued] = &counts.0;
            client
                .execute(
                    &stmt,
                    &[
                        &ids, &fails, &errs, runs, pubsub, sent, failed, invalid, expired, queued,
                        &now, &grain,
                    ],
                )
                .await
                .map_err(pg)
        })
        .await;
        self.health.note(r).map(|_| ())
    }

    pub(crate) async fn pending(
        &self,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<DueRun>, StoreError> {
        let after = after.map(id_bytes).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        read!(self, |client| {
            let stmt = client.prepare_cached(PENDING).await.map_err(pg)?;
            let rows = client.query(&stmt, &[&after, &limit]).await.map_err(pg)?;
            due_runs(&rows)
        })
    }

    pub(crate) async fn release_expired(&self, before: Tick) -> Result<Vec<DueRun>, StoreError> {
        let before = ms(before);
        let client = self.client().await?;
        let r = retry_conflicts(&self.health, || async {
            let stmt = client.prepare_cached(RELEASE).await.map_err(pg)?;
            client
                .query(&stmt, &[&before, &self.hints.channel, &self.hints.tag])
                .await
                .map_err(pg)
        })
        .await;
        let rows = self.health.note(r)?;
        let mut runs = due_runs(&rows)?;
        runs.sort_unstable_by_key(|r| r.id);
        self.hints.scheduled(runs.iter().map(|r| ms(r.due)).min());
        Ok(runs)
    }
}
