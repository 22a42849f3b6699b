//! Reads, in read transactions (which see every commit that has returned,
//! so every acknowledged write): a record (`get`), a page of scheduled runs
//! (`pending`, which reads only `schedule`, `claims` and `finals`), and the
//! envelopes of claimed or cancelled messages, decoded after the writer's
//! commit with the store's [`PlanCache`].

use std::ops::Bound;
use std::sync::Arc;

use herald::codec::{PlanCache, decode_envelope};
use herald::{
    Claimed, DueRun, Envelope, FencingToken, KeyRecord, MessageId, Record, RunState, StoreError,
};
use herald_core::Tick;
use redb::{Database, ReadTransaction, ReadableDatabase};

use crate::error::{damaged, quarantined, redb_error};
use crate::header::{Header, State};
use crate::tables::{CLAIMS, ClaimRow, ENVELOPES, FINALS, HEADERS, KEYS, QUARANTINE, SCHEDULE};

/// The run state of a header with its `claims` entry. A claim for another
/// due than the header's (never written) is not a claim.
pub(crate) fn run_state(h: &Header, claim: Option<ClaimRow>) -> RunState {
    match h.state {
        State::Scheduled { due } => match claim {
            Some((d, lease_until, token)) if d == due => RunState::Firing {
                due: Tick::from_millis(due),
                lease_until: Tick::from_millis(lease_until),
                token: FencingToken::new(token),
            },
            _ => RunState::Scheduled {
                due: Tick::from_millis(due),
            },
        },
        State::Published => RunState::Published,
        State::Failed => RunState::Failed,
        State::Cancelled => RunState::Cancelled,
    }
}

/// A record from its effective header (the final one, if any).
pub(crate) fn record(envelope: Arc<Envelope>, h: Header, claim: Option<ClaimRow>) -> Record {
    Record {
        state: run_state(&h, claim),
        envelope,
        counts: h.counts,
        error: h.error,
    }
}

/// The envelope of `id`, decoded.
pub(crate) fn envelope(
    txn: &ReadTransaction,
    plans: &PlanCache,
    id: u128,
) -> Result<Result<Arc<Envelope>, String>, StoreError> {
    let envelopes = txn.open_table(ENVELOPES).map_err(redb_error)?;
    let Some(bytes) = envelopes.get(id).map_err(redb_error)? else {
        return Ok(Err("no envelope".to_owned()));
    };
    Ok(
        decode_envelope(MessageId::from_u128(id), bytes.value(), plans)
            .map(Arc::new)
            .map_err(|e| e.to_string()),
    )
}

/// `get`: the record of `id`. A damaged one is an error naming it; a
/// quarantined one an error naming the quarantine.
pub(crate) fn get(
    db: &Database,
    plans: &PlanCache,
    id: u128,
) -> Result<Option<Record>, StoreError> {
    let txn = db.begin_read().map_err(redb_error)?;
    let headers = txn.open_table(HEADERS).map_err(redb_error)?;
    let Some(bytes) = headers.get(id).map_err(redb_error)? else {
        let quarantine = txn.open_table(QUARANTINE).map_err(redb_error)?;
        return match quarantine.get(id).map_err(redb_error)? {
            Some(q) => Err(quarantined(
                id,
                crate::quarantine::decode(q.value()).map_or_else(|e| e, |q| q.reason.to_owned()),
            )),
            None => Ok(None),
        };
    };
    let mut h = Header::decode(bytes.value()).map_err(|e| damaged(id, e))?;
    let mut claim = None;
    if let State::Scheduled { due } = h.state {
        let finals = txn.open_table(FINALS).map_err(redb_error)?;
        if let Some(f) = finals.get((due, id)).map_err(redb_error)? {
            h = Header::decode_final(f.value()).map_err(|e| damaged(id, format!("final {e}")))?;
        } else {
            let claims = txn.open_table(CLAIMS).map_err(redb_error)?;
            claim = claims.get(id).map_err(redb_error)?.map(|g| g.value());
        }
    }
    // A finished message's plan is not worth caching.
    let no_cache;
    let plans = if h.state.is_finished() {
        no_cache = PlanCache::new(0);
        &no_cache
    } else {
        plans
    };
    let envelope = envelope(&txn, plans, id)?.map_err(|e| damaged(id, e))?;
    Ok(Some(record(envelope, h, claim)))
}

/// What [`pending`] read.
#[derive(Debug)]
pub(crate) struct PendingPage {
    /// The scheduled runs.
    pub(crate) runs: Vec<DueRun>,
    /// Finished messages met in `schedule`, `(id, due)`: for the writer to
    /// drop.
    pub(crate) finished: Vec<(u128, u64)>,
}

/// A page of `pending`: the scheduled runs after `after` in id order (at
/// most `limit`), from `schedule` alone minus the ids in `claims` and those
/// with a `finals` entry for their due (returned apart). No header or
/// envelope is read.
pub(crate) fn pending(
    db: &Database,
    after: Option<MessageId>,
    limit: usize,
) -> Result<PendingPage, StoreError> {
    let txn = db.begin_read().map_err(redb_error)?;
    let schedule = txn.open_table(SCHEDULE).map_err(redb_error)?;
    let claims = txn.open_table(CLAIMS).map_err(redb_error)?;
    let finals = txn.open_table(FINALS).map_err(redb_error)?;
    let lower = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.as_u128()));
    let range = schedule
        .range::<u128>((lower, Bound::Unbounded))
        .map_err(redb_error)?;
    let mut out = Vec::with_capacity(limit.min(16_384));
    let mut finished = Vec::new();
    for entry in range {
        if out.len() >= limit {
            break;
        }
        let (k, v) = entry.map_err(redb_error)?;
        let (id, due) = (k.value(), v.value());
        if claims.get(id).map_err(redb_error)?.is_some() {
            continue;
        }
        if finals.get((due, id)).map_err(redb_error)?.is_some() {
            finished.push((id, due));
            continue;
        }
        out.push(DueRun {
            id: MessageId::from_u128(id),
            due: Tick::from_millis(due),
        });
    }
    Ok(PendingPage {
        runs: out,
        finished,
    })
}

/// What [`claimed`] read.
#[derive(Debug)]
pub(crate) struct ClaimedPage {
    /// One answer per claim, in order.
    pub(crate) claimed: Vec<Option<Claimed>>,
    /// Claimed messages whose envelope does not decode (answered `None`),
    /// with the reason: to be quarantined.
    pub(crate) damaged: Vec<(u128, String)>,
}

/// The envelopes of the claims the writer took (`taken[i]` is claim `i`'s
/// id and token, if taken), in one read transaction.
pub(crate) fn claimed(
    db: &Database,
    plans: &PlanCache,
    taken: &[Option<(u128, FencingToken)>],
) -> Result<ClaimedPage, StoreError> {
    let txn = db.begin_read().map_err(redb_error)?;
    let mut page = ClaimedPage {
        claimed: Vec::with_capacity(taken.len()),
        damaged: Vec::new(),
    };
    for t in taken {
        let Some((id, token)) = *t else {
            page.claimed.push(None);
            continue;
        };
        match envelope(&txn, plans, id)? {
            Ok(envelope) => page.claimed.push(Some(Claimed { token, envelope })),
            Err(e) => {
                page.claimed.push(None);
                page.damaged.push((id, format!("envelope: {e}")));
            }
        }
    }
    Ok(page)
}

/// The envelope of a message the writer just cancelled (or found
/// finished), in a read transaction of its own.
pub(crate) fn cancelled(
    db: &Database,
    plans: &PlanCache,
    id: u128,
) -> Result<Result<Arc<Envelope>, String>, StoreError> {
    let txn = db.begin_read().map_err(redb_error)?;
    envelope(&txn, plans, id)
}

/// The record of idempotency key `key`, if it is recorded.
pub(crate) fn idempotency_key(db: &Database, key: &str) -> Result<Option<KeyRecord>, StoreError> {
    let txn = db.begin_read().map_err(redb_error)?;
    let keys = txn.open_table(KEYS).map_err(redb_error)?;
    Ok(keys
        .get(key)
        .map_err(redb_error)?
        .map(|g| crate::writer::key_record(g.value())))
}
