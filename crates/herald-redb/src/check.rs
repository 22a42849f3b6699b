//! `RedbStore::check_records`: every record decodes and the tables agree
//! with each other (the invariants of format v2; the registry's are
//! `crate::registry::check`, the push jobs' `crate::push::check`).

use std::collections::HashSet;

use herald::MessageId;
use herald::codec::{PlanCache, decode_envelope};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::error::RedbStoreError;
use crate::header::{Header, State};
use crate::store::RedbStore;
use crate::tables::{
    CLAIMS, ENVELOPES, FINALS, FINISHED, FORMAT_VERSION, HEADERS, KEY_EXPIRY, KEYS, LAST_TOKEN_KEY,
    META, QUARANTINE, SCHEDULE, VERSION_KEY,
};

/// What [`RedbStore::check_records`] found (all of it consistent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordCheck {
    /// Messages (headers), finished ones included.
    pub records: u64,
    /// Of those, scheduled or firing.
    pub unfinished: u64,
    /// Entries in `schedule`: the unfinished messages plus finished ones
    /// the next `pending` scan will tidy away.
    pub indexed: u64,
    /// Claimed runs (firing messages).
    pub claims: u64,
    /// Messages finished by a completion (their final header is kept in
    /// `finals`).
    pub finals: u64,
    /// Damaged messages moved to `quarantine`.
    pub quarantined: u64,
    /// Entries in `finished`: final messages (finished, no push
    /// notification pending, no push job open), which retention purges in
    /// this order.
    pub retained: u64,
    /// Idempotency keys recorded (expired ones not purged yet included).
    pub keys: u64,
    /// Registered devices (expired ones not purged yet included).
    pub devices: u64,
    /// Push templates.
    pub templates: u64,
    /// Push jobs (open: not finished yet).
    pub push_jobs: u64,
    /// Notifications of push jobs waiting for a retry.
    pub push_retries: u64,
}

impl RedbStore {
    /// Decodes every header, final header, envelope and quarantine entry
    /// and checks the tables against each other:
    ///
    /// * every header and envelope decodes and belongs to its key, and
    ///   every envelope has a header;
    /// * every unfinished message has a `schedule` entry with its due, and
    ///   every `schedule` entry belongs to a `Scheduled` header with that
    ///   due;
    /// * every `claims` entry belongs to a `Scheduled` header with the same
    ///   due and no final header, with a token not above the last issued;
    /// * every `finals` entry belongs to a `Scheduled` header with the same
    ///   due and holds `Published` or `Failed`;
    /// * every final message (its header, or its final header, finished
    ///   with no push notification pending, and no push job open) has a
    ///   `finished` entry under its finish time, and every `finished`
    ///   entry belongs to one (or to a quarantined message whose finish
    ///   time was damaged: retention drops it);
    /// * every idempotency key has one `idempotency_expiry` entry under its
    ///   expiry, and every such entry belongs to a key;
    /// * a quarantined id has no row anywhere else;
    /// * every device and template record decodes, every channel of a
    ///   registration has its `device_channels` entry and an expiring one
    ///   its `device_expiry` entry, and those tables hold nothing else;
    /// * every push job record decodes, with a token not above the last
    ///   issued, and has its `push_job_leases` entry under its lease; every
    ///   push retry belongs to a job and has its `push_retry_index` entry;
    ///   those two tables hold nothing else.
    ///
    /// # Errors
    ///
    /// [`RedbStoreError::Check`] naming the first problem;
    /// [`RedbStoreError::Redb`] if redb fails; [`RedbStoreError::Closed`]
    /// after `close`.
    pub fn check_records(&self) -> Result<RecordCheck, RedbStoreError> {
        let db = self.db().map_err(|e| match e {
            herald::StoreError::Closed => RedbStoreError::Closed,
            other => RedbStoreError::Check(other.to_string()),
        })?;
        check(&db)
    }
}

fn fail<T>(id: u128, what: impl std::fmt::Display) -> Result<T, RedbStoreError> {
    Err(RedbStoreError::Check(format!(
        "message {}: {what}",
        MessageId::from_u128(id)
    )))
}

fn check(db: &Database) -> Result<RecordCheck, RedbStoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let headers = txn.open_table(HEADERS)?;
    let envelopes = txn.open_table(ENVELOPES)?;
    let claims = txn.open_table(CLAIMS)?;
    let finals = txn.open_table(FINALS)?;
    let schedule = txn.open_table(SCHEDULE)?;
    let finished = txn.open_table(FINISHED)?;
    let quarantine = txn.open_table(QUARANTINE)?;
    let version = meta.get(VERSION_KEY)?.map(|g| g.value());
    if version != Some(FORMAT_VERSION) {
        return Err(RedbStoreError::Check(format!(
            "format_version is {version:?}"
        )));
    }
    let last_token = meta.get(LAST_TOKEN_KEY)?.map_or(0, |g| g.value());
    let plans = PlanCache::new(0);
    let mut c = RecordCheck::default();
    // Messages with a push job open: never final.
    let open_jobs = crate::push::check::check(&txn, last_token, &mut c)?;

    let mut quarantined = HashSet::new();
    for entry in quarantine.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        if let Err(e) = crate::quarantine::decode(v.value()) {
            return fail(id, e);
        }
        quarantined.insert(id);
        c.quarantined += 1;
    }
    let clean = |id: u128, table: &str| {
        if quarantined.contains(&id) {
            fail(id, format!("quarantined, yet in `{table}`"))
        } else {
            Ok(())
        }
    };

    for entry in headers.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        clean(id, "headers")?;
        let h = match Header::decode(v.value()) {
            Ok(h) => h,
            Err(e) => return fail(id, e),
        };
        let Some(e) = envelopes.get(id)? else {
            return fail(id, "a header without an envelope");
        };
        if let Err(e) = decode_envelope(MessageId::from_u128(id), e.value(), &plans) {
            return fail(id, e);
        }
        let claim = claims.get(id)?.map(|g| g.value());
        let due_of = schedule.get(id)?.map(|g| g.value());
        let mut effective = h.clone();
        match h.state {
            State::Scheduled { due } => {
                let fin = match finals.get((due, id))? {
                    Some(f) => match Header::decode_final(f.value()) {
                        Ok(f) => Some(f),
                        Err(e) => return fail(id, format!("final {e}")),
                    },
                    None => None,
                };
                if let Some(f) = &fin {
                    effective = f.clone();
                }
                if fin.is_none() {
                    c.unfinished += 1;
                    if due_of != Some(due) {
                        return fail(id, format!("scheduled at {due}, schedule has {due_of:?}"));
                    }
                } else if claim.is_some() {
                    return fail(id, "finished, yet claimed");
                }
                if let Some((d, _, token)) = claim
                    && (d != due || token == 0 || token > last_token)
                {
                    return fail(
                        id,
                        format!(
                            "scheduled at {due}, claimed at {d} with token {token} \
                             (last issued {last_token})"
                        ),
                    );
                }
            }
            state => {
                if claim.is_some() || due_of.is_some() {
                    return fail(
                        id,
                        format!("{state:?}, yet claims {claim:?} and schedule {due_of:?}"),
                    );
                }
                if h.token > last_token {
                    return fail(id, format!("token {} above {last_token}", h.token));
                }
            }
        }
        let indexed = finished.get((effective.finished_at, id))?.is_some();
        let job = open_jobs.contains(&id);
        if (effective.is_final() && !job) != indexed {
            return fail(
                id,
                format!(
                    "{:?} with {} push notifications pending and {} push job open, \
                     finished at {}: {} `finished` entry",
                    effective.state,
                    effective.counts.push_pending(),
                    if job { "a" } else { "no" },
                    effective.finished_at,
                    if indexed { "a" } else { "no" }
                ),
            );
        }
        c.records += 1;
    }

    let scheduled_at = |id: u128| -> Result<Option<u64>, RedbStoreError> {
        Ok(match headers.get(id)? {
            Some(h) => match Header::decode(h.value()) {
                Ok(Header {
                    state: State::Scheduled { due },
                    ..
                }) => Some(due),
                _ => None,
            },
            None => None,
        })
    };
    for entry in claims.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        clean(id, "claims")?;
        let (due, _, _) = v.value();
        if scheduled_at(id)? != Some(due) {
            return fail(
                id,
                format!("a claim at {due} without a header scheduled then"),
            );
        }
        c.claims += 1;
    }
    for entry in finals.iter()? {
        let (k, _) = entry?;
        let (due, id) = k.value();
        clean(id, "finals")?;
        if scheduled_at(id)? != Some(due) {
            return fail(
                id,
                format!("a final header at {due} without a header scheduled then"),
            );
        }
        c.finals += 1;
    }
    for entry in finished.iter()? {
        let (k, _) = entry?;
        let (at, id) = k.value();
        c.retained += 1;
        if quarantined.contains(&id) {
            continue;
        }
        let Some(h) = headers.get(id)? else {
            return fail(id, format!("a `finished` entry at {at} without a header"));
        };
        let h = Header::decode(h.value()).map_err(|e| RedbStoreError::Check(e.to_string()))?;
        let effective = match h.state {
            State::Scheduled { due } => match finals.get((due, id))? {
                Some(f) => Header::decode_final(f.value())
                    .map_err(|e| RedbStoreError::Check(e.to_string()))?,
                None => h,
            },
            _ => h,
        };
        if !effective.is_final() || effective.finished_at != at || open_jobs.contains(&id) {
            return fail(
                id,
                format!(
                    "a `finished` entry at {at} for {:?} finished at {}{}",
                    effective.state,
                    effective.finished_at,
                    if open_jobs.contains(&id) {
                        ", with a push job open"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    for entry in schedule.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        clean(id, "schedule")?;
        let due = v.value();
        if scheduled_at(id)? != Some(due) {
            return fail(
                id,
                format!("scheduled at {due} without a header scheduled then"),
            );
        }
        c.indexed += 1;
    }
    let keys = txn.open_table(KEYS)?;
    let key_expiry = txn.open_table(KEY_EXPIRY)?;
    for entry in keys.iter()? {
        let (k, v) = entry?;
        let (_, _, expires_at, status) = v.value();
        if status > 1 || key_expiry.get((expires_at, k.value()))?.is_none() {
            return Err(RedbStoreError::Check(format!(
                "idempotency key {:?}: status {status}, expiry {expires_at} not indexed",
                k.value()
            )));
        }
        c.keys += 1;
    }
    if key_expiry.len()? != c.keys {
        return Err(RedbStoreError::Check(format!(
            "{} idempotency_expiry entries for {} keys",
            key_expiry.len()?,
            c.keys
        )));
    }
    let n = envelopes.len()?;
    if n != c.records {
        return Err(RedbStoreError::Check(format!(
            "{n} envelopes for {} headers",
            c.records
        )));
    }
    crate::registry::check::check(&txn, &mut c)?;
    Ok(c)
}
