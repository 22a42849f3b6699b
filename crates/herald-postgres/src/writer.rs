//! Group commit for inserts: publishers hand their inserts to a few
//! writer tasks, each of which takes what is queued (up to a batch) and
//! stores it with one multi-row statement (`UNNEST` of arrays), one round
//! trip and one commit. So concurrent publishes share a commit, as in
//! `herald-redb`'s writer, and a batch's cost grows with its rows, not
//! with round trips.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::Pool;
use herald::{FencingToken, MessageId, StoreError};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::{is_conflict, pg, replicate};
use crate::hints::Hints;
use crate::open::{Health, live_client};
use crate::rows::{col, id_bytes, id_of, token};

/// One insert, waiting for its batch.
#[derive(Debug)]
pub(crate) struct InsertRequest {
    pub(crate) id: MessageId,
    pub(crate) envelope: Vec<u8>,
    /// `SCHEDULED` or `FIRING` (a claimed start).
    pub(crate) state: i16,
    pub(crate) due: i64,
    pub(crate) lease_until: i64,
    /// The fencing token of a claimed start; `Duplicate` if the id is
    /// stored already.
    pub(crate) reply: oneshot::Sender<Result<Option<FencingToken>, StoreError>>,
}

/// Stores a batch of new messages; one statement. Rows whose id exists are
/// left alone (`ON CONFLICT DO NOTHING`) and reported by their absence; a
/// claimed start takes its token from the sequence. If scheduled rows were
/// stored, one `pg_notify($6, '<earliest due> ' || $7)` hints the other
/// nodes (in the same transaction). Answers `id, token, state, due`.
pub(crate) const INSERT_BATCH: &str = "\
    WITH ins AS ( \
      INSERT INTO messages (id, envelope, state, due, lease_until, token) \
      SELECT i, e, s, d, l, CASE WHEN s = 1 THEN nextval('fencing_tokens') ELSE 0 END \
      FROM UNNEST($1::bytea[], $2::bytea[], $3::int2[], $4::int8[], $5::int8[]) AS u(i, e, s, d, l) \
      ON CONFLICT (id) DO NOTHING \
      RETURNING id, token, state, due), \
    n AS MATERIALIZED ( \
      SELECT pg_notify($6, min(due)::text || ' ' || $7) FROM ins WHERE state = 0 \
      HAVING count(*) > 0) \
    SELECT id, token, state, due, (SELECT count(*) FROM n) FROM ins";

/// Starts `writers` tasks taking requests from `rx` (they end when every
/// sender is gone and the queue is empty).
pub(crate) fn spawn(
    pool: Pool,
    health: Arc<Health>,
    hints: Arc<Hints>,
    rx: mpsc::Receiver<InsertRequest>,
    writers: usize,
    max_batch: usize,
) {
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..writers {
        tokio::spawn(run(
            pool.clone(),
            health.clone(),
            hints.clone(),
            rx.clone(),
            max_batch,
        ));
    }
}

async fn run(
    pool: Pool,
    health: Arc<Health>,
    hints: Arc<Hints>,
    rx: Arc<Mutex<mpsc::Receiver<InsertRequest>>>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        {
            // One writer gathers at a time; the others are executing.
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
        }
        execute(&pool, &health, &hints, &mut batch).await;
    }
}

/// Runs one batch and answers each request.
async fn execute(pool: &Pool, health: &Health, hints: &Hints, batch: &mut Vec<InsertRequest>) {
    // A second request for an id in the same batch is a duplicate of the
    // first, whatever becomes of it.
    let mut seen = HashSet::with_capacity(batch.len());
    let mut rows = Vec::with_capacity(batch.len());
    for r in batch.drain(..) {
        if seen.insert(r.id) {
            rows.push(r);
        } else {
            let _ = r.reply.send(Err(StoreError::Duplicate(r.id)));
        }
    }
    let mut result = insert_rows(pool, hints, &rows).await;
    for _ in 0..3 {
        match &result {
            Err(e) if is_conflict(e) => result = insert_rows(pool, hints, &rows).await,
            _ => break,
        }
    }
    match health.note(result) {
        Ok((stored, earliest)) => {
            hints.scheduled(earliest);
            for r in rows {
                let answer = match stored.get(&r.id) {
                    Some(t) => Ok(*t),
                    None => Err(StoreError::Duplicate(r.id)),
                };
                let _ = r.reply.send(answer);
            }
        }
        Err(e) => {
            for r in rows {
                let _ = r.reply.send(Err(replicate(&e)));
            }
        }
    }
}

/// The ids stored (with the token of a claimed start), and the earliest
/// due time of the scheduled rows stored.
async fn insert_rows(
    pool: &Pool,
    hints: &Hints,
    rows: &[InsertRequest],
) -> Result<(HashMap<MessageId, Option<FencingToken>>, Option<i64>), StoreError> {
    let client = live_client(pool).await?;
    let ids: Vec<Vec<u8>> = rows.iter().map(|r| id_bytes(r.id)).collect();
    let envelopes: Vec<&[u8]> = rows.iter().map(|r| r.envelope.as_slice()).collect();
    let states: Vec<i16> = rows.iter().map(|r| r.state).collect();
    let dues: Vec<i64> = rows.iter().map(|r| r.due).collect();
    let leases: Vec<i64> = rows.iter().map(|r| r.lease_until).collect();
    let stmt = client.prepare_cached(INSERT_BATCH).await.map_err(pg)?;
    let got = client
        .query(
            &stmt,
            &[
                &ids,
                &envelopes,
                &states,
                &dues,
                &leases,
                &hints.channel,
                &hints.tag,
            ],
        )
        .await
        .map_err(pg)?;
    let mut stored = HashMap::with_capacity(got.len());
    let mut earliest: Option<i64> = None;
    for row in &got {
        let id = id_of(col(row, 0)?)?;
        let t: i64 = col(row, 1)?;
        stored.insert(id, (t != 0).then(|| token(t)));
        if col::<i16>(row, 2)? == crate::rows::SCHEDULED {
            let due: i64 = col(row, 3)?;
            earliest = Some(earliest.map_or(due, |e| e.min(due)));
        }
    }
    Ok((stored, earliest))
}
