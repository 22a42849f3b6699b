//! What each write request does to the tables, inside the writer's
//! transaction. Only headers are decoded here; envelopes are copied in at
//! insert and read by the callers after the commit.
//!
//! A header that does not decode is quarantined where it is met (claim,
//! renew excepted: it reads only `claims`), so one bad record never fails
//! a batch.

use herald::{
    Amendment, Claim, Completion, DeliveryCounts, DueRun, FencingToken, Inserted, KeyRecord, Lease,
    MessageId, Next, PublishStatus, StoreError,
};
use herald_core::Tick;
use redb::ReadableTable;
use tracing::error;

use super::op::{CancelAnswer, Insert};
use crate::error::quarantined;
use crate::header::{Header, HeaderError, State};
use crate::quarantine::quarantine;
use crate::tables::Tables;

/// The store's fencing tokens: the last one issued, kept in memory by the
/// writer and written to `meta` once per transaction that issued any.
#[derive(Debug)]
pub(crate) struct Tokens {
    pub(crate) last: u64,
    pub(crate) issued: bool,
}

impl Tokens {
    pub(crate) fn new(last: u64) -> Self {
        Self {
            last,
            issued: false,
        }
    }

    /// A token never issued before in this store.
    pub(crate) fn next(&mut self) -> FencingToken {
        debug_assert!(self.last < u64::MAX, "fencing tokens ran out");
        self.last = self.last.saturating_add(1);
        self.issued = true;
        FencingToken::new(self.last)
    }
}

/// The tables, the token counter and the time of one transaction.
pub(crate) struct Ctx<'a, 't> {
    pub(crate) t: &'a mut Tables<'t>,
    pub(crate) tokens: &'a mut Tokens,
    /// The store's clock when the transaction began (ms): the finish time
    /// of what it finishes.
    pub(crate) now: u64,
    /// The earliest expiry of the idempotency keys it recorded.
    pub(crate) keys_expire: Option<u64>,
}

const SCHEDULED: u8 = 0;
const PUBLISHED: u8 = 1;

/// A `KEYS` row as a [`KeyRecord`].
pub(crate) fn key_record(
    (id, fingerprint, expires_at, status): crate::tables::KeyRow,
) -> KeyRecord {
    KeyRecord {
        id: MessageId::from_u128(id),
        fingerprint,
        status: if status == PUBLISHED {
            PublishStatus::Published
        } else {
            PublishStatus::Scheduled
        },
        expires_at: Tick::from_millis(expires_at),
    }
}

type R<T> = Result<T, redb::Error>;

/// The header of `id`: `None` if there is none, and a damaged one
/// quarantined (also `None`).
fn header(t: &mut Tables<'_>, id: u128) -> R<Option<Header>> {
    let decoded: Option<Result<Header, HeaderError>> =
        t.headers.get(id)?.map(|g| Header::decode(g.value()));
    match decoded {
        None => Ok(None),
        Some(Ok(h)) => Ok(Some(h)),
        Some(Err(e)) => {
            quarantine(t, id, &e.to_string())?;
            Ok(None)
        }
    }
}

/// The final header of a message stored as `Scheduled { due }`, if a
/// completion finished it; a damaged one quarantines the message (`Err`).
fn final_header(t: &mut Tables<'_>, id: u128, due: u64) -> R<Result<Option<Header>, ()>> {
    let decoded = t
        .finals
        .get((due, id))?
        .map(|g| Header::decode_final(g.value()));
    match decoded {
        None => Ok(Ok(None)),
        Some(Ok(h)) => Ok(Ok(Some(h))),
        Some(Err(e)) => {
            quarantine(t, id, &format!("final {e}"))?;
            Ok(Err(()))
        }
    }
}

fn put_header(t: &mut Tables<'_>, id: u128, h: &Header) -> R<()> {
    t.headers.insert(id, h.encode().as_slice())?;
    Ok(())
}

/// A message just finished at `now`: its finish time, and its `finished`
/// entry if it is final (no push notification pending, no push job open).
fn finish(t: &mut Tables<'_>, id: u128, h: &mut Header, now: u64) -> R<()> {
    h.finished_at = now;
    if h.is_final() && !t.has_push_job(id)? {
        t.finished.insert((now, id), ())?;
    }
    Ok(())
}

/// The counters of a message changed (an amendment, a late completion, a
/// push checkpoint) from a header that was final (`was_final`: finished,
/// no push pending) to `h`, or one of its push jobs just ended (`ended`):
/// keeps its `finished` entry in step. A message has one while it is final
/// and has no push job open. One that loses it (push notifications pending
/// again) keeps its finish time; one that gets it (the last pending
/// notification got its outcome, or its last push job ended) is finished
/// again now, so retention counts from there.
fn recounted(
    t: &mut Tables<'_>,
    id: u128,
    was_final: bool,
    h: &mut Header,
    now: u64,
    ended: bool,
) -> R<()> {
    let is_final = h.is_final();
    if !(was_final || is_final) || (was_final == is_final && !ended) {
        // Not final before or after, or as final as before.
        return Ok(());
    }
    // Open after the change; a job that ended was open before it.
    let open = t.has_push_job(id)?;
    let was_indexed = was_final && !open && !ended;
    match (was_indexed, is_final && !open) {
        (true, false) => {
            t.finished.remove((h.finished_at, id))?;
        }
        (false, true) => {
            h.finished_at = now;
            t.finished.insert((now, id), ())?;
        }
        _ => {}
    }
    Ok(())
}

/// Stores a new message: header, envelope and schedule entry, and for a
/// claimed start a `claims` entry with a fresh token. An id already stored
/// (or quarantined) is a duplicate and changes nothing. With an
/// idempotency key: a key recorded already that expires after the
/// message's accept time stores nothing and answers its record; else the
/// key is recorded (`idempotency` and `idempotency_expiry`), replacing an
/// expired one.
pub(crate) fn insert(c: &mut Ctx<'_, '_>, req: &Insert) -> R<Result<Inserted, StoreError>> {
    let t = &mut *c.t;
    let id = req.id;
    if let Some(k) = &req.key
        && let Some(row) = t.keys.get(k.key.as_str())?.map(|g| g.value())
        && row.2 > req.accepted_at
    {
        return Ok(Ok(Inserted::Existing(key_record(row))));
    }
    // An expired key is replaced below (if the insert happens).
    let duplicate = || Ok(Err(StoreError::Duplicate(MessageId::from_u128(id))));
    if t.quarantine.get(id)?.is_some() {
        return duplicate();
    }
    let old = t
        .headers
        .insert(id, req.header.as_slice())?
        .map(|g| g.value().to_vec());
    if let Some(old) = old {
        // Put the first header back: a duplicate changes nothing.
        t.headers.insert(id, old.as_slice())?;
        return duplicate();
    }
    t.envelopes.insert(id, req.envelope.as_slice())?;
    t.schedule.insert(id, req.due)?;
    let token = match req.lease_until {
        Some(lease_until) => {
            let token = c.tokens.next();
            t.claims.insert(id, (req.due, lease_until, token.get()))?;
            Some(token)
        }
        None => None,
    };
    if let Some(k) = &req.key {
        let status = if token.is_some() {
            PUBLISHED
        } else {
            SCHEDULED
        };
        let replaced = t
            .keys
            .insert(k.key.as_str(), (id, k.fingerprint, k.expires_at, status))?
            .map(|g| g.value().2);
        if let Some(expired) = replaced {
            t.key_expiry.remove((expired, k.key.as_str()))?;
        }
        t.key_expiry.insert((k.expires_at, k.key.as_str()), ())?;
        c.keys_expire = Some(c.keys_expire.map_or(k.expires_at, |e| e.min(k.expires_at)));
    }
    Ok(Ok(Inserted::New(token)))
}

/// Claims touch only `claims`: the header is read (a `Scheduled` one at
/// the claim's due, not finished, not claimed) but not rewritten, so a
/// batch of claims spread over a large store dirties a few pages of a
/// small table instead of one page per message.
pub(crate) fn claim(
    c: &mut Ctx<'_, '_>,
    claims: &[Claim],
    lease_until: u64,
) -> R<Vec<Option<(u128, FencingToken)>>> {
    let mut out = Vec::with_capacity(claims.len());
    for claim in claims {
        let id = claim.id.as_u128();
        let due = claim.due.as_millis();
        // An id claimed twice in one batch: the second finds the first's
        // claim (a table read sees this transaction's writes).
        if c.t.claims.get(id)?.is_some() {
            out.push(None);
            continue;
        }
        let claimable = match header(c.t, id)? {
            Some(h) if h.state == (State::Scheduled { due }) => {
                matches!(final_header(c.t, id, due)?, Ok(None))
            }
            _ => false,
        };
        if !claimable {
            out.push(None);
            continue;
        }
        let token = c.tokens.next();
        c.t.claims.insert(id, (due, lease_until, token.get()))?;
        out.push(Some((id, token)));
    }
    Ok(out)
}

/// Extends the leases whose token is the `claims` entry's.
pub(crate) fn renew(t: &mut Tables<'_>, leases: &[Lease], lease_until: u64) -> R<Vec<bool>> {
    let mut out = Vec::with_capacity(leases.len());
    for l in leases {
        let id = l.id.as_u128();
        let held = t.claims.get(id)?.map(|g| g.value());
        let current = matches!(held, Some((_, _, token)) if token == l.token.get());
        if let (true, Some((due, _, token))) = (current, held) {
            t.claims.insert(id, (due, lease_until, token))?;
        }
        out.push(current);
    }
    Ok(out)
}

/// Applies completions whose token is current. A one-off's last run
/// (`Done`, `Failed`) writes its final header into `finals` under
/// `(due, id)`: runs complete in due order, so a batch of completions lands
/// on a few neighbouring pages there instead of one random `headers` page
/// each. A repeating run rewrites the header (due, counters) and its
/// `schedule` entry, never the envelope. A message cancelled while firing
/// keeps the interrupted claim's token in its header: that completion adds
/// its counters and clears it.
pub(crate) fn complete(c: &mut Ctx<'_, '_>, completions: Vec<Completion>) -> R<Vec<bool>> {
    let (t, now) = (&mut *c.t, c.now);
    let mut out = Vec::with_capacity(completions.len());
    for c in completions {
        let id = c.id.as_u128();
        let token = c.token.get();
        let held = t.claims.get(id)?.map(|g| g.value());
        let applied = match held {
            Some((due, _, held)) if held == token => complete_claimed(t, id, due, c, now)?,
            _ => match header(t, id)? {
                Some(mut h) if h.state == State::Cancelled && h.token != 0 && h.token == token => {
                    let was_final = h.is_final();
                    h.counts.add(&c.counts);
                    h.token = 0;
                    recounted(t, id, was_final, &mut h, now, false)?;
                    put_header(t, id, &h)?;
                    true
                }
                _ => false,
            },
        };
        out.push(applied);
    }
    Ok(out)
}

fn complete_claimed(t: &mut Tables<'_>, id: u128, due: u64, c: Completion, now: u64) -> R<bool> {
    let Some(mut h) = header(t, id)? else {
        return Ok(false);
    };
    if h.state != (State::Scheduled { due }) {
        // Never written: a claim is removed whenever its header moves on.
        error!(
            message_id = %c.id,
            claim_due = due,
            state = ?h.state,
            "herald-redb: a claim that does not match its header; completion not applied"
        );
        return Ok(false);
    }
    t.claims.remove(id)?;
    h.counts.add(&c.counts);
    match c.next {
        Next::At(next) => {
            let next = next.as_millis();
            h.state = State::Scheduled { due: next };
            put_header(t, id, &h)?;
            t.schedule.insert(id, next)?;
        }
        Next::Done | Next::Failed(_) => {
            if let Next::Failed(e) = c.next {
                h.state = State::Failed;
                h.error = Some(e);
            } else {
                h.state = State::Published;
            }
            finish(t, id, &mut h, now)?;
            // The header stays `Scheduled { due }`; the final one wins, and
            // the `schedule` entry stays until `pending` meets it.
            t.finals.insert((due, id), h.encode().as_slice())?;
        }
    }
    Ok(true)
}

/// Cancels a scheduled or firing message: the header becomes `Cancelled`
/// (with the interrupted claim's token, finished now), its `schedule` and
/// `claims` entries go. A finished one is reported as it is.
pub(crate) fn cancel(c: &mut Ctx<'_, '_>, id: u128) -> R<Result<CancelAnswer, StoreError>> {
    let (t, now) = (&mut *c.t, c.now);
    let Some(mut h) = header(t, id)? else {
        return Ok(match t.quarantine.get(id)?.map(|g| reason_of(g.value())) {
            Some(reason) => Err(quarantined(id, reason)),
            None => Ok(CancelAnswer::NotFound),
        });
    };
    let State::Scheduled { due } = h.state else {
        return Ok(Ok(CancelAnswer::Finished(h)));
    };
    match final_header(t, id, due)? {
        Ok(Some(f)) => return Ok(Ok(CancelAnswer::Finished(f))),
        Ok(None) => {}
        Err(()) => return Ok(Err(quarantined(id, "its final header is damaged"))),
    }
    let claim = t.claims.remove(id)?.map(|g| g.value());
    h.state = State::Cancelled;
    h.token = match claim {
        Some((d, _, token)) if d == due => token,
        _ => 0,
    };
    finish(t, id, &mut h, now)?;
    put_header(t, id, &h)?;
    t.schedule.remove(id)?;
    Ok(Ok(CancelAnswer::Cancelled(h)))
}

fn reason_of(value: &[u8]) -> String {
    crate::quarantine::decode(value).map_or_else(|e| e, |q| q.reason.to_owned())
}

/// Adds counters and errors: to the final header of a message finished by
/// a completion, else to its header. `fail` moves `Published` to `Failed`.
/// A finished message whose push notifications are all accounted for
/// becomes final now (see [`recounted`]).
pub(crate) fn amend(c: &mut Ctx<'_, '_>, amendments: Vec<Amendment>) -> R<()> {
    let now = c.now;
    for a in amendments {
        let change = Change {
            counts: &a.counts,
            error: a.error.as_deref(),
            fail: a.fail,
            job_ended: false,
        };
        add_to_record(c.t, a.id.as_u128(), &change, now)?;
    }
    Ok(())
}

/// What an amendment or a push checkpoint does to a message's record.
pub(super) struct Change<'a> {
    pub(super) counts: &'a DeliveryCounts,
    /// The error text to set.
    pub(super) error: Option<&'a str>,
    /// Move `Published` to `Failed`.
    pub(super) fail: bool,
    /// A push job of the message just ended (its rows are gone already):
    /// the message may become final now.
    pub(super) job_ended: bool,
}

/// Applies `change` to message `id`'s final header if a completion
/// finished it, else to its header, and keeps its `finished` entry in
/// step. An unknown id is ignored; a damaged header is quarantined (and
/// the change dropped).
pub(super) fn add_to_record(t: &mut Tables<'_>, id: u128, change: &Change<'_>, now: u64) -> R<()> {
    let apply = |h: &mut Header| {
        h.counts.add(change.counts);
        if let Some(e) = change.error {
            h.error = Some(e.to_owned());
        }
        if change.fail && h.state == State::Published {
            h.state = State::Failed;
        }
    };
    let Some(mut h) = header(t, id)? else {
        return Ok(());
    };
    if let State::Scheduled { due } = h.state {
        match final_header(t, id, due)? {
            Ok(Some(mut f)) => {
                let was_final = f.is_final();
                apply(&mut f);
                recounted(t, id, was_final, &mut f, now, change.job_ended)?;
                t.finals.insert((due, id), f.encode().as_slice())?;
                return Ok(());
            }
            Ok(None) => {}
            Err(()) => return Ok(()),
        }
    }
    let was_final = h.is_final();
    apply(&mut h);
    recounted(t, id, was_final, &mut h, now, change.job_ended)?;
    put_header(t, id, &h)
}

/// A push job of message `id` was just added: a final message loses its
/// `finished` entry (retention must not purge it while the job is open;
/// it gets one again, finished anew, when its last job ends). A damaged
/// header is quarantined.
pub(super) fn job_added(t: &mut Tables<'_>, id: u128) -> R<()> {
    let Some(h) = header(t, id)? else {
        return Ok(());
    };
    let effective = match h.state {
        State::Scheduled { due } => match final_header(t, id, due)? {
            Ok(Some(f)) => f,
            _ => return Ok(()),
        },
        _ => h,
    };
    if effective.is_final() {
        t.finished.remove((effective.finished_at, id))?;
    }
    Ok(())
}

/// Drops the claims whose lease ends before `before`; answers those whose
/// header still is `Scheduled` at the claim's due and not finished. Only
/// `claims` is written.
pub(crate) fn release(t: &mut Tables<'_>, before: u64) -> R<Vec<DueRun>> {
    let mut expired = Vec::new();
    for entry in t
        .claims
        .extract_if(|_, (_, lease_until, _)| lease_until < before)?
    {
        let (k, v) = entry?;
        expired.push((k.value(), v.value().0));
    }
    let mut out = Vec::with_capacity(expired.len());
    for (id, due) in expired {
        let scheduled = match header(t, id)? {
            Some(h) => h.state == (State::Scheduled { due }),
            None => false,
        };
        if scheduled && matches!(final_header(t, id, due)?, Ok(None)) {
            out.push(DueRun {
                id: MessageId::from_u128(id),
                due: herald_core::Tick::from_millis(due),
            });
        }
    }
    Ok(out)
}

/// Drops the `schedule` entries of finished messages (see `Op::Forget`).
pub(crate) fn forget(t: &mut Tables<'_>, runs: &[(u128, u64)]) -> R<()> {
    for &(id, due) in runs {
        // Finished is final; check anyway that nothing moved since.
        let same = t.schedule.get(id)?.is_some_and(|g| g.value() == due);
        if same && t.finals.get((due, id))?.is_some() {
            t.schedule.remove(id)?;
        }
    }
    Ok(())
}

/// Quarantines messages whose envelope a caller could not decode (if they
/// are still there).
pub(crate) fn quarantine_all(t: &mut Tables<'_>, damaged: &[(u128, String)]) -> R<()> {
    for (id, reason) in damaged {
        if t.headers.get(*id)?.is_some() || t.envelopes.get(*id)?.is_some() {
            quarantine(t, *id, reason)?;
        }
    }
    Ok(())
}

/// What a purge pass did (see [`purge`] and [`purge_keys`]).
#[derive(Debug, Default)]
pub(crate) struct Purged {
    /// Messages (or keys) removed.
    pub(crate) messages: u64,
    /// Whether more entries were due than the pass took.
    pub(crate) more: bool,
    /// The time of the first entry left (a finish time, or an expiry), if
    /// any.
    pub(crate) next: Option<u64>,
}

/// Removes at most `max` idempotency keys that expired at or before
/// `now`, oldest first.
pub(crate) fn purge_keys(t: &mut Tables<'_>, now: u64, max: usize) -> R<Purged> {
    let mut due: Vec<(u64, String)> = Vec::with_capacity(max.min(1024));
    for entry in t.key_expiry.range(..(now.saturating_add(1), ""))? {
        let (k, _) = entry?;
        let (at, key) = k.value();
        due.push((at, key.to_owned()));
        if due.len() > max {
            break;
        }
    }
    let mut out = Purged {
        more: due.len() > max,
        ..Purged::default()
    };
    due.truncate(max);
    for (at, key) in due {
        t.key_expiry.remove((at, key.as_str()))?;
        let held = t.keys.get(key.as_str())?.map(|g| g.value().2);
        if held == Some(at) {
            t.keys.remove(key.as_str())?;
            out.messages += 1;
        }
    }
    out.next = t.key_expiry.first()?.map(|(k, _)| k.value().0);
    Ok(out)
}

/// Removes at most `max` final messages whose finish time is at or before
/// `cutoff`, oldest first: header, envelope, final header, a lingering
/// `schedule` entry and the `finished` entry. An entry whose message is
/// not (or no longer) final, or is gone, is dropped without removing
/// anything else.
pub(crate) fn purge(t: &mut Tables<'_>, cutoff: u64, max: usize) -> R<Purged> {
    let mut due = Vec::with_capacity(max.min(1024));
    for entry in t.finished.range(..=(cutoff, u128::MAX))? {
        let (k, _) = entry?;
        due.push(k.value());
        if due.len() > max {
            break;
        }
    }
    let more = due.len() > max;
    due.truncate(max);
    let mut out = Purged {
        more,
        ..Purged::default()
    };
    for (at, id) in due {
        if purge_one(t, at, id)? {
            out.messages += 1;
        }
    }
    out.next = t.finished.first()?.map(|(k, _)| k.value().0);
    Ok(out)
}

fn purge_one(t: &mut Tables<'_>, at: u64, id: u128) -> R<bool> {
    t.finished.remove((at, id))?;
    let Some(h) = header(t, id)? else {
        return Ok(false);
    };
    let (effective, due) = match h.state {
        State::Scheduled { due } => match final_header(t, id, due)? {
            Ok(Some(f)) => (f, Some(due)),
            // Unfinished (a stale entry), or its final header was damaged
            // (quarantined just now).
            _ => return Ok(false),
        },
        _ => (h, None),
    };
    if !effective.is_final() || t.has_push_job(id)? {
        // Not final, or a push job is open (never written: adding a job
        // drops the entry; its end finishes the message anew).
        return Ok(false);
    }
    t.headers.remove(id)?;
    t.envelopes.remove(id)?;
    t.claims.remove(id)?;
    if let Some(due) = due {
        t.finals.remove((due, id))?;
        if t.schedule.get(id)?.is_some_and(|g| g.value() == due) {
            t.schedule.remove(id)?;
        }
    }
    if effective.finished_at != at {
        // Never written: the header and its entry agree.
        t.finished.remove((effective.finished_at, id))?;
    }
    Ok(true)
}
