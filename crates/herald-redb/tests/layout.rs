//! Behaviour that depends on how `RedbStore` lays messages out in format
//! v2, checked on the raw tables (`raw_tables`, test-only): a claim writes
//! only `claims` (and the token counter in `meta`); a one-off's completion
//! writes `finals`, not `headers`; a repeating run's completion rewrites
//! the header and the `schedule` entry, never the envelope; `pending`
//! reads no header; finished ids stay in `schedule` until `pending` meets
//! them.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;

use herald::{
    Amendment, CancelOutcome, Claim, Completion, DeliveryCounts, FencingToken, Lease, ManualClock,
    Next, RunState, Start, Store,
};
use herald_core::Tick;
use herald_redb::{FILE_NAME, RedbOptions, RedbStore, Rows};
use herald_testkit::TempDir;
use herald_testkit::store_conformance::{id, small_envelope};
use redb::{Database, TableDefinition};

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

fn runs(n: u64) -> DeliveryCounts {
    DeliveryCounts {
        runs: n,
        pubsub: 2 * n,
        ..DeliveryCounts::default()
    }
}

async fn insert(store: &RedbStore, n: u128, due: u64) {
    store
        .insert(small_envelope(n), Start::At(t(due)))
        .await
        .expect("insert");
}

async fn claim(store: &RedbStore, n: u128, due: u64, lease: u64) -> Option<FencingToken> {
    store
        .claim(
            vec![Claim {
                id: id(n),
                due: t(due),
            }],
            t(lease),
        )
        .await
        .expect("claim")[0]
        .as_ref()
        .map(|c| c.token)
}

async fn complete(store: &RedbStore, n: u128, token: FencingToken, next: Next) -> bool {
    store
        .complete(vec![Completion {
            id: id(n),
            token,
            counts: runs(1),
            next,
        }])
        .await
        .expect("complete")[0]
}

async fn state(store: &RedbStore, n: u128) -> (RunState, DeliveryCounts) {
    let r = store.get(id(n)).await.expect("get").expect("stored");
    (r.state, r.counts)
}

type Dump = BTreeMap<&'static str, Rows>;

fn dump(store: &RedbStore) -> Dump {
    store.raw_tables().expect("raw tables")
}

/// The tables whose rows differ.
fn changed(before: &Dump, after: &Dump) -> BTreeSet<&'static str> {
    before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .copied()
        .collect()
}

/// The row of message `n` in a table keyed by id.
fn row(d: &Dump, table: &str, n: u128) -> Option<Vec<u8>> {
    let key = id(n).as_u128().to_be_bytes();
    d[table]
        .iter()
        .find(|(k, _)| k.as_slice() == key)
        .map(|(_, v)| v.clone())
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

#[tokio::test]
async fn claims_renewals_and_releases_write_only_claims() {
    let dir = TempDir::new("layout-claim");
    let store = RedbStore::open(&dir.0).expect("open");
    for n in 1..=50 {
        insert(&store, n, 10).await;
    }
    let before = dump(&store);
    let token = claim(&store, 25, 10, 100).await.expect("claimed");
    let after = dump(&store);
    assert_eq!(
        changed(&before, &after),
        set(&["claims", "meta"]),
        "a claim writes its claims entry and the token counter"
    );
    assert_eq!(after["claims"].len(), 1);
    let held = &after["claims"][0].1;
    assert_eq!(
        &held[16..24],
        &token.get().to_le_bytes(),
        "(due, lease, token)"
    );

    let before = after;
    let renewed = store
        .renew(vec![Lease { id: id(25), token }], t(200))
        .await
        .expect("renew");
    assert_eq!(renewed, vec![true]);
    let after = dump(&store);
    assert_eq!(changed(&before, &after), set(&["claims"]));

    let before = after;
    let released = store.release_expired(Tick::MAX).await.expect("release");
    assert_eq!(released.len(), 1);
    let after = dump(&store);
    assert_eq!(changed(&before, &after), set(&["claims"]));
    assert!(after["claims"].is_empty());
    store.close().await.expect("close");
}

/// A store on a manual clock showing `now` ms.
fn open_at(dir: &TempDir, now: u64) -> (RedbStore, ManualClock) {
    let clock = ManualClock::new(t(now));
    let store = RedbStore::open_with(
        &dir.0,
        RedbOptions {
            clock: Arc::new(clock.clone()),
            ..RedbOptions::default()
        },
    )
    .expect("open");
    (store, clock)
}

/// The `finished` key of message `n` finished at `at`.
fn finished_key(at: u64, n: u128) -> Vec<u8> {
    let mut key = at.to_be_bytes().to_vec();
    key.extend_from_slice(&id(n).as_u128().to_be_bytes());
    key
}

#[tokio::test]
async fn a_one_off_completion_writes_finals_not_headers() {
    let dir = TempDir::new("layout-final");
    let (store, _clock) = open_at(&dir, 5_000);
    for n in 1..=50 {
        insert(&store, n, 10).await;
    }
    let token = claim(&store, 7, 10, 100).await.expect("claimed");
    let before = dump(&store);
    assert!(complete(&store, 7, token, Next::Done).await);
    let after = dump(&store);
    assert_eq!(
        changed(&before, &after),
        set(&["claims", "finals", "finished"]),
        "the final header goes to finals under (due, id), and its finish time to \
         finished; the header, the envelope and the schedule entry stay"
    );
    let (key, value) = &after["finals"][0];
    assert_eq!(&key[..8], &10u64.to_be_bytes(), "keyed by due first");
    assert_eq!(&key[8..], &id(7).as_u128().to_be_bytes());
    assert_eq!(&value[74..82], &5_000u64.to_le_bytes(), "finished at 5000");
    assert_eq!(
        after["finished"],
        vec![(finished_key(5_000, 7), Vec::new())]
    );
    assert_eq!(state(&store, 7).await, (RunState::Published, runs(1)));
    let check = store.check_records().expect("consistent");
    assert_eq!(
        (
            check.finals,
            check.unfinished,
            check.indexed,
            check.retained
        ),
        (1, 49, 50, 1)
    );
    store.close().await.expect("close");
}

/// A cancel finishes the header at the store's clock; a one-off whose push
/// notifications are pending when it completes is not final (no
/// `finished` entry) until an amendment accounts for the last of them,
/// which makes it final at that moment.
#[tokio::test]
async fn finish_times_and_the_finished_index() {
    let dir = TempDir::new("layout-finished");
    let (store, clock) = open_at(&dir, 1_000);
    for n in 1..=3 {
        insert(&store, n, 10).await;
    }
    clock.set(t(2_000));
    store.cancel(id(1)).await.expect("cancel");
    let d = dump(&store);
    let header = row(&d, "headers", 1).expect("header");
    assert_eq!(&header[74..82], &2_000u64.to_le_bytes());
    assert_eq!(d["finished"], vec![(finished_key(2_000, 1), Vec::new())]);

    clock.set(t(3_000));
    let token = claim(&store, 2, 10, 100).await.expect("claimed");
    let pushing = DeliveryCounts {
        runs: 1,
        push_queued: 3,
        ..DeliveryCounts::default()
    };
    let done = store
        .complete(vec![Completion {
            id: id(2),
            token,
            counts: pushing,
            next: Next::Done,
        }])
        .await
        .expect("complete");
    assert_eq!(done, vec![true]);
    let before = dump(&store);
    assert_eq!(before["finished"].len(), 1, "pending pushes: not final");
    clock.set(t(4_000));
    let amend = |sent| Amendment {
        id: id(2),
        counts: DeliveryCounts {
            push_sent: sent,
            ..DeliveryCounts::default()
        },
        error: None,
        fail: false,
    };
    store.amend(vec![amend(2)]).await.expect("amend");
    assert_eq!(dump(&store)["finished"].len(), 1, "one still pending");
    clock.set(t(6_000));
    store.amend(vec![amend(1)]).await.expect("amend");
    let after = dump(&store);
    assert_eq!(
        after["finished"],
        vec![
            (finished_key(2_000, 1), Vec::new()),
            (finished_key(6_000, 2), Vec::new())
        ],
        "final when the last notification got its outcome"
    );
    let (_, fin) = &after["finals"][0];
    assert_eq!(&fin[74..82], &6_000u64.to_le_bytes());
    assert_eq!(
        store.check_records().expect("consistent").retained,
        2,
        "message 3 is unfinished"
    );
    store.close().await.expect("close");
}

#[tokio::test]
async fn a_repeating_completion_rewrites_the_header_and_schedule_not_the_envelope() {
    let dir = TempDir::new("layout-repeat");
    let store = RedbStore::open(&dir.0).expect("open");
    for n in 1..=3 {
        insert(&store, n, 10).await;
    }
    let token = claim(&store, 2, 10, 100).await.expect("claimed");
    let before = dump(&store);
    assert!(complete(&store, 2, token, Next::At(t(70))).await);
    let after = dump(&store);
    assert_eq!(
        changed(&before, &after),
        set(&["claims", "headers", "schedule"])
    );
    assert_eq!(
        row(&before, "envelopes", 2),
        row(&after, "envelopes", 2),
        "the envelope's bytes are untouched"
    );
    assert_eq!(
        row(&after, "schedule", 2),
        Some(70u64.to_le_bytes().to_vec())
    );
    let header = row(&after, "headers", 2).expect("header");
    assert_eq!(&header[..2], &[2, 0], "version 2, Scheduled");
    assert_eq!(&header[2..10], &70u64.to_le_bytes(), "the new due");
    assert_eq!(&header[18..26], &1u64.to_le_bytes(), "one run");
    for n in [1, 3] {
        assert_eq!(row(&before, "headers", n), row(&after, "headers", n));
    }
    store.close().await.expect("close");
}

/// A cancel of a firing message keeps the claim's token in the header, so
/// that claim's completion still counts, once; then the token is cleared.
#[tokio::test]
async fn a_cancel_while_firing_keeps_the_claims_token_in_the_header() {
    let dir = TempDir::new("layout-cancel");
    let store = RedbStore::open(&dir.0).expect("open");
    insert(&store, 1, 10).await;
    let token = claim(&store, 1, 10, 100).await.expect("claimed");
    assert!(matches!(
        store.cancel(id(1)).await.expect("cancel"),
        CancelOutcome::Cancelled(_)
    ));
    let d = dump(&store);
    let header = row(&d, "headers", 1).expect("header");
    assert_eq!(header[1], 4, "Cancelled");
    assert_eq!(&header[10..18], &token.get().to_le_bytes());
    assert!(d["claims"].is_empty() && d["schedule"].is_empty());
    assert!(complete(&store, 1, token, Next::Done).await);
    let header = row(&dump(&store), "headers", 1).expect("header");
    assert_eq!(&header[10..18], &[0; 8], "cleared");
    assert_eq!(state(&store, 1).await, (RunState::Cancelled, runs(1)));
    assert!(!complete(&store, 1, token, Next::Done).await, "once");
    store.close().await.expect("close");
}

/// Overwrites message `n`'s header on disk (the store closed).
fn overwrite_header(dir: &TempDir, n: u128, bytes: &[u8]) {
    let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
    let txn = db.begin_write().expect("write");
    txn.open_table(TableDefinition::<u128, &[u8]>::new("headers"))
        .expect("headers")
        .insert(id(n).as_u128(), bytes)
        .expect("insert");
    txn.commit().expect("commit");
}

/// `pending` reads only `schedule`, `claims` and `finals`: a message with
/// a damaged header is still listed; claiming it quarantines it.
#[tokio::test]
async fn pending_reads_no_header_and_a_claim_quarantines_a_damaged_one() {
    let dir = TempDir::new("layout-pending");
    let store = RedbStore::open(&dir.0).expect("open");
    for n in 1..=3 {
        insert(&store, n, 10 + n as u64).await;
    }
    let d = dump(&store);
    let envelope = row(&d, "envelopes", 2).expect("envelope");
    let mut damaged = row(&d, "headers", 2).expect("header");
    damaged[1] = 9; // no such state
    store.close().await.expect("close");
    overwrite_header(&dir, 2, &damaged);

    let store = RedbStore::open(&dir.0).expect("reopen");
    let listed: Vec<_> = store
        .pending(None, 10)
        .await
        .expect("pending")
        .into_iter()
        .map(|r| (r.id, r.due))
        .collect();
    assert_eq!(
        listed,
        (1..=3)
            .map(|n| (id(n), t(10 + n as u64)))
            .collect::<Vec<_>>(),
        "listed without reading its header"
    );
    assert!(store.check_records().is_err(), "the damage is found");
    let got = store
        .claim(
            (1..=3)
                .map(|n| Claim {
                    id: id(n),
                    due: t(10 + n as u64),
                })
                .collect(),
            t(100),
        )
        .await
        .expect("the batch goes on");
    let claimed: Vec<bool> = got.iter().map(Option::is_some).collect();
    assert_eq!(claimed, vec![true, false, true]);
    let e = store.get(id(2)).await.expect_err("quarantined");
    assert!(
        e.to_string().contains("quarantine") && e.to_string().contains("state tag 9"),
        "{e}"
    );
    let check = store.check_records().expect("consistent once quarantined");
    assert_eq!((check.records, check.quarantined), (2, 1), "{check:?}");
    let d = dump(&store);
    assert!(row(&d, "schedule", 2).is_none() && row(&d, "envelopes", 2).is_none());
    let q = row(&d, "quarantine", 2).expect("quarantined");
    let reason_len = u32::from_le_bytes(q[..4].try_into().expect("4 bytes")) as usize;
    let reason = std::str::from_utf8(&q[4..4 + reason_len]).expect("UTF-8");
    assert!(reason.contains("unknown state tag 9"), "{reason}");
    let at = 4 + reason_len;
    let header_len = u32::from_le_bytes(q[at..at + 4].try_into().expect("4 bytes")) as usize;
    assert_eq!(&q[at + 4..at + 4 + header_len], damaged.as_slice());
    assert_eq!(
        &q[at + 4 + header_len..],
        envelope.as_slice(),
        "kept as found"
    );
    // A quarantined id is taken.
    let dup = store
        .insert(small_envelope(2), Start::At(t(10)))
        .await
        .expect_err("duplicate");
    assert!(matches!(dup, herald::StoreError::Duplicate(_)), "{dup}");
    store.close().await.expect("close");
}

/// Finished one-offs stay finished for every operation and across a
/// reopen; stale completions change nothing.
#[tokio::test]
async fn finished_one_offs_stay_finished() {
    let dir = TempDir::new("layout-finished");
    let store = RedbStore::open(&dir.0).expect("open");
    for n in 1..=4 {
        insert(&store, n, 10).await;
    }
    let mut tokens = Vec::new();
    for n in 1..=4 {
        tokens.push(claim(&store, n, 10, 100).await.expect("claimed"));
    }
    assert!(complete(&store, 1, tokens[0], Next::Done).await);
    assert!(complete(&store, 2, tokens[1], Next::Failed("no route".into())).await);
    assert!(complete(&store, 3, tokens[2], Next::At(t(20))).await);
    // 4: the lease runs out, the run is released and claimed again; the
    // old claim's completion is stale, the new one's counts.
    assert_eq!(
        store.release_expired(t(101)).await.expect("release").len(),
        1
    );
    let again = claim(&store, 4, 10, 200).await.expect("claimed again");
    assert!(!complete(&store, 4, tokens[3], Next::Done).await);
    assert!(complete(&store, 4, again, Next::Done).await);
    assert!(!complete(&store, 1, tokens[0], Next::Done).await);

    for reopen in [false, true] {
        let store = if reopen {
            store.close().await.expect("close");
            RedbStore::open(&dir.0).expect("reopen")
        } else {
            store.clone()
        };
        assert_eq!(state(&store, 1).await, (RunState::Published, runs(1)));
        let r2 = store.get(id(2)).await.expect("get").expect("stored");
        assert_eq!(
            (r2.state, r2.error.as_deref()),
            (RunState::Failed, Some("no route"))
        );
        assert_eq!(
            state(&store, 3).await,
            (RunState::Scheduled { due: t(20) }, runs(1))
        );
        assert_eq!(state(&store, 4).await, (RunState::Published, runs(1)));
        assert!(claim(&store, 1, 10, 300).await.is_none());
        assert!(claim(&store, 2, 10, 300).await.is_none());
        assert!(
            store
                .release_expired(Tick::MAX)
                .await
                .expect("release")
                .is_empty()
        );
        assert!(matches!(
            store.cancel(id(1)).await.expect("cancel"),
            CancelOutcome::Finished(r) if r.state == RunState::Published
        ));
        let pending: Vec<_> = store
            .pending(None, 10)
            .await
            .expect("pending")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(pending, vec![id(3)]);
        let check = store.check_records().expect("consistent");
        assert_eq!((check.records, check.unfinished, check.claims), (4, 1, 0));
        assert_eq!(check.finals, 3, "1, 2 and 4 finished by a completion");
    }
}

/// `pending` pages by id over a `schedule` that still holds finished ids:
/// the limit counts scheduled runs only, each comes exactly once, and the
/// finished ids it met are dropped from `schedule` behind it.
#[tokio::test]
async fn pending_skips_finished_ids_left_in_schedule() {
    let dir = TempDir::new("layout-tidy");
    let store = RedbStore::open(&dir.0).expect("open");
    for n in 1..=40 {
        insert(&store, n, 10).await;
    }
    // Finish every id divisible by 3 or 4; claim (and keep) those by 5.
    let finished: Vec<u128> = (1..=40).filter(|n| n % 3 == 0 || n % 4 == 0).collect();
    let claimed: Vec<u128> = (1..=40)
        .filter(|n| n % 5 == 0 && !finished.contains(n))
        .collect();
    let all: Vec<Claim> = finished
        .iter()
        .chain(&claimed)
        .map(|&n| Claim {
            id: id(n),
            due: t(10),
        })
        .collect();
    let got = store.claim(all, t(100)).await.expect("claim");
    let completions = finished
        .iter()
        .zip(&got)
        .map(|(&n, c)| Completion {
            id: id(n),
            token: c.as_ref().expect("claimed").token,
            counts: runs(1),
            next: Next::Done,
        })
        .collect();
    store.complete(completions).await.expect("complete");
    let check = store.check_records().expect("consistent");
    assert_eq!(
        (check.records, check.unfinished, check.indexed),
        (40, 40 - finished.len() as u64, 40),
        "finished ids stay in schedule until pending meets them"
    );
    let want: Vec<_> = (1..=40)
        .filter(|n| !finished.contains(n) && !claimed.contains(n))
        .map(id)
        .collect();
    for _ in 0..2 {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store.pending(after, 4).await.expect("pending");
            assert!(page.len() <= 4);
            if page.is_empty() {
                break;
            }
            after = page.last().map(|r| r.id);
            seen.extend(page.into_iter().map(|r| r.id));
        }
        assert_eq!(seen, want);
        // `pending` had the finished ids it met removed; any write after
        // it is applied after that.
        store.release_expired(t(0)).await.expect("a write");
        let check = store.check_records().expect("consistent");
        assert_eq!(check.records, 40);
        assert_eq!(check.indexed, check.unfinished, "schedule was tidied");
    }
    store.close().await.expect("close");
}

/// Claims of a repeating message decode its envelope with the store's plan
/// cache: what a claim returns is the stored message, even after a
/// duplicate insert of the same id with other options was refused.
#[tokio::test]
async fn a_claim_returns_the_stored_plan_after_a_refused_duplicate() {
    let dir = TempDir::new("layout-plans");
    let store = RedbStore::open(&dir.0).expect("open");
    let stored = herald_testkit::store_conformance::envelope(1);
    assert!(stored.plan.is_repeating());
    store
        .insert(stored.clone(), Start::At(t(10)))
        .await
        .expect("insert");
    let mut other = (*stored).clone();
    other.plan = std::sync::Arc::new(
        herald::DeliveryPlan::new(herald::DeliveryOptions {
            repeat_cron: Some("0 0 * * * *".into()),
            ..herald::DeliveryOptions::default()
        })
        .expect("plan"),
    );
    let dup = store
        .insert(other.into(), Start::At(t(10)))
        .await
        .expect_err("duplicate");
    assert!(matches!(dup, herald::StoreError::Duplicate(_)), "{dup}");
    for round in 0..2u64 {
        let c = store
            .claim(
                vec![Claim {
                    id: id(1),
                    due: t(10 + round),
                }],
                t(100),
            )
            .await
            .expect("claim")
            .pop()
            .flatten()
            .expect("claimed");
        assert_eq!(c.envelope, stored, "round {round}");
        assert!(complete(&store, 1, c.token, Next::At(t(11))).await);
    }
    store.close().await.expect("close");
}

/// `RedbStore` is a cheap, shareable handle.
#[test]
fn the_store_is_clone_debug_send_sync() {
    fn check<T: Clone + std::fmt::Debug + Send + Sync + 'static>() {}
    check::<RedbStore>();
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    error::<herald_redb::RedbStoreError>();
    let dir = TempDir::new("debug");
    let store = RedbStore::open(&dir.0).expect("open");
    let text = format!("{store:?}");
    assert!(
        text.contains("herald.redb") && text.contains("closed: false"),
        "{text}"
    );
}

#[tokio::test]
async fn message_rows_after_an_id_are_the_raw_tables_rows_above_it() {
    let dir = TempDir::new("layout-rows-after");
    let store = RedbStore::open(&dir.0).expect("open");
    for n in 1..=40 {
        insert(&store, n, 10 + n as u64).await;
    }
    let all = dump(&store);
    let above = |table: &str, from: u128| -> Rows {
        let cut = id(from).as_u128();
        all[table]
            .iter()
            .filter(|(k, _)| u128::from_be_bytes(k.as_slice().try_into().expect("16 B")) > cut)
            .cloned()
            .collect()
    };
    for from in [0, 1, 17, 39, 40] {
        let after = id(from).as_u128();
        let rows = store.raw_message_rows_after(after).expect("rows after");
        assert_eq!(
            rows.keys().copied().collect::<BTreeSet<_>>(),
            set(&["envelopes", "headers", "schedule"]),
            "a message's own tables"
        );
        for table in ["headers", "envelopes", "schedule"] {
            assert_eq!(
                rows[table],
                above(table, from),
                "{table}: the rows above message {from}, encoded as raw_tables does"
            );
        }
        assert_eq!(rows["headers"].len(), 40 - from as usize);
    }
    // Above the largest id there is nothing (and no overflow).
    let none = store
        .raw_message_rows_after(u128::MAX)
        .expect("rows after max");
    assert_eq!(none.len(), 3, "the same three tables");
    assert!(none.values().all(Vec::is_empty));
}
