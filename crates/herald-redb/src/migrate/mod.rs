//! The migration of a format v1 file to v2, in place, at open.
//!
//! Records move in chunks (10,000 messages per write transaction): each
//! chunk converts the first messages left in v1's `messages` table into v2
//! rows and deletes them (and their `unfinished`, `firing` and `outcomes`
//! rows) in the same transaction, so a crash mid-migration resumes where
//! it stopped. A record that does not convert goes to `quarantine` with the
//! reason. The chunk that empties `messages` also deletes the v1 tables and
//! sets `format_version` to 2.
//!
//! Conversion (see [`v1`] for the old layout): the message's JSON text
//! becomes the body as it is (`Body::from_json`), the options are read back
//! with `PublishOptions::from_json` / `DeliveryOptions::from_json` and
//! checked into a `DeliveryPlan`, and the envelope is encoded with
//! `herald::codec`. The header keeps the state, the 5 v1 counters (the 2
//! new ones start at 0) and the error text, with v1's overlays applied: a
//! v1 claim becomes a `claims` entry with a fresh token, and a record
//! finished by a completion gets its final header directly (no `finals`
//! entry). v1 kept no finish times: a finished record finishes at the
//! migration (its `finished` entry too), so retention counts from there.

pub(crate) mod v1;

use std::time::{Duration, Instant};

use herald::MessageId;
use herald::codec::encode_envelope;
use redb::{Database, ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use tracing::{error, info};

use crate::error::RedbStoreError;
use crate::header::{Header, State};
use crate::quarantine;
use crate::tables::{FORMAT_VERSION, LAST_TOKEN_KEY, META, MIGRATING_KEY, Tables, VERSION_KEY};

/// Messages per migration transaction.
pub(crate) const CHUNK: usize = 10_000;

/// What a migration to the current format did (see
/// [`RedbStore::migration`](crate::RedbStore::migration)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migration {
    /// The format version migrated from.
    pub from_version: u64,
    /// Records converted.
    pub records: u64,
    /// Of those, unfinished (scheduled or claimed).
    pub unfinished: u64,
    /// Of those, claimed (each got a new fencing token).
    pub claims: u64,
    /// Records that did not convert, moved to quarantine.
    pub quarantined: u64,
    /// Transactions committed.
    pub chunks: u64,
    /// Whether the migration finished (the file is at the current format).
    pub done: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// The v1 tables, open in one write transaction.
struct V1Tables<'t> {
    messages: Table<'t, u128, &'static [u8]>,
    unfinished: Table<'t, u128, ()>,
    firing: Table<'t, u128, (u64, u64)>,
    outcomes: Table<'t, (u64, u128), &'static [u8]>,
}

impl<'t> V1Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Self {
            messages: txn.open_table(v1::MESSAGES)?,
            unfinished: txn.open_table(v1::UNFINISHED)?,
            firing: txn.open_table(v1::FIRING)?,
            outcomes: txn.open_table(v1::OUTCOMES)?,
        })
    }
}

/// Migrates a v1 file in chunks of `chunk` messages, at most `max_chunks`
/// of them (`None`: to the end). v1 kept no finish times: finished
/// messages finish `now` (retention counts from the migration).
pub(crate) fn run(
    db: &Database,
    chunk: usize,
    max_chunks: Option<usize>,
    now: u64,
) -> Result<Migration, RedbStoreError> {
    let chunk = chunk.max(1);
    let started = Instant::now();
    let mut m = Migration {
        from_version: 1,
        ..Migration::default()
    };
    info!("herald-redb: migrating the store from format version 1 to {FORMAT_VERSION}");
    loop {
        let txn = db.begin_write()?;
        let done = {
            let mut t = Tables::open(&txn)?;
            let mut old = V1Tables::open(&txn)?;
            let mut last_token = t.meta.get(LAST_TOKEN_KEY)?.map_or(0, |g| g.value());
            let ids = old
                .messages
                .iter()?
                .take(chunk)
                .map(|e| e.map(|(k, _)| k.value()))
                .collect::<Result<Vec<u128>, _>>()?;
            for id in ids {
                one(&mut t, &mut old, id, &mut last_token, &mut m, now)?;
            }
            t.meta.insert(LAST_TOKEN_KEY, last_token)?;
            // From the first chunk on, the file is version 2 (being
            // migrated), so a v1 build refuses it.
            t.meta.insert(VERSION_KEY, FORMAT_VERSION)?;
            t.meta.insert(MIGRATING_KEY, 1)?;
            old.messages.len()? == 0
        };
        if done {
            txn.delete_table(v1::MESSAGES)?;
            txn.delete_table(v1::UNFINISHED)?;
            txn.delete_table(v1::FIRING)?;
            txn.delete_table(v1::OUTCOMES)?;
            txn.open_table(META)?.remove(MIGRATING_KEY)?;
        }
        txn.commit()?;
        m.chunks += 1;
        if done {
            m.done = true;
            break;
        }
        if max_chunks.is_some_and(|n| m.chunks >= n as u64) {
            break;
        }
    }
    m.elapsed = started.elapsed();
    info!(
        records = m.records,
        unfinished = m.unfinished,
        claims = m.claims,
        quarantined = m.quarantined,
        chunks = m.chunks,
        done = m.done,
        elapsed_ms = m.elapsed.as_millis() as u64,
        "herald-redb: migrated the store from format version 1"
    );
    Ok(m)
}

/// A v1 record as v2 rows.
struct Converted {
    header: Header,
    envelope: Vec<u8>,
    /// The `schedule` entry (unfinished).
    due: Option<u64>,
    /// The claim's lease (v1 `firing` for the record's due).
    lease_until: Option<u64>,
}

fn text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn convert(
    id: u128,
    bytes: &[u8],
    firing: Option<(u64, u64)>,
    outcome: Option<&[u8]>,
) -> Result<Converted, String> {
    let p = v1::parse(bytes)?;
    let envelope = v1::envelope(id, p.envelope)?;
    let envelope = encode_envelope(&envelope).map_err(|e| e.to_string())?;
    let mut header = Header {
        state: p.state,
        token: 0,
        counts: p.counts,
        finished_at: 0,
        error: text(p.error),
    };
    let (mut due, mut lease_until) = (None, None);
    if let State::Scheduled { due: d } = p.state {
        match outcome {
            Some(o) => {
                let o = v1::parse(o).map_err(|e| format!("its outcome: {e}"))?;
                if !o.state.is_finished() || !o.envelope.is_empty() {
                    return Err("its outcome is not a finished state".to_owned());
                }
                header = Header {
                    state: o.state,
                    token: 0,
                    counts: o.counts,
                    finished_at: 0,
                    error: text(o.error),
                };
            }
            None => {
                due = Some(d);
                lease_until = firing.filter(|&(fd, _)| fd == d).map(|(_, l)| l);
            }
        }
    }
    Ok(Converted {
        header,
        envelope,
        due,
        lease_until,
    })
}

/// Moves message `id` from the v1 tables to the v2 ones (or quarantine).
fn one(
    t: &mut Tables<'_>,
    old: &mut V1Tables<'_>,
    id: u128,
    last_token: &mut u64,
    m: &mut Migration,
    now: u64,
) -> Result<(), redb::Error> {
    let bytes = old
        .messages
        .remove(id)?
        .map(|g| g.value().to_vec())
        .unwrap_or_default();
    let firing = old.firing.remove(id)?.map(|g| g.value());
    old.unfinished.remove(id)?;
    let parsed = v1::parse(&bytes);
    let outcome = match &parsed {
        Ok(v1::Parsed {
            state: State::Scheduled { due },
            ..
        }) => old.outcomes.remove((*due, id))?.map(|g| g.value().to_vec()),
        _ => None,
    };
    match convert(id, &bytes, firing, outcome.as_deref()) {
        Ok(mut c) => {
            if c.header.state.is_finished() {
                c.header.finished_at = now;
                if c.header.is_final() {
                    t.finished.insert((now, id), ())?;
                }
            }
            t.headers.insert(id, c.header.encode().as_slice())?;
            t.envelopes.insert(id, c.envelope.as_slice())?;
            if let Some(due) = c.due {
                t.schedule.insert(id, due)?;
                m.unfinished += 1;
                if let Some(lease_until) = c.lease_until {
                    *last_token += 1;
                    t.claims.insert(id, (due, lease_until, *last_token))?;
                    m.claims += 1;
                }
            }
            m.records += 1;
        }
        Err(why) => {
            let mut reason = format!("v1 record: {why}");
            if let Some(o) = &outcome {
                let hex: String = o.iter().map(|b| format!("{b:02x}")).collect();
                reason.push_str(&format!(" (its v1 outcome: {hex})"));
            }
            let (head, envelope) = match &parsed {
                Ok(p) => (p.head, p.envelope),
                Err(_) => (bytes.as_slice(), &[][..]),
            };
            t.quarantine
                .insert(id, quarantine::encode(&reason, head, envelope).as_slice())?;
            m.quarantined += 1;
            error!(
                message_id = %MessageId::from_u128(id),
                reason,
                "herald-redb: a v1 record did not migrate; moved to quarantine"
            );
        }
    }
    Ok(())
}
