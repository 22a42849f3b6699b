//! Damaged files: headers and envelopes overwritten on disk (every
//! truncation, every byte flipped) read back as errors naming the message,
//! never as panics; a claim (or a write) that meets a damaged message moves
//! it to quarantine and the rest of its batch goes on, and so does an
//! engine's start-up. A file that is not a database is refused.

use std::collections::BTreeMap;
use std::time::Duration;

use herald::{
    Amendment, CancelOutcome, Claim, Completion, DeliveryCounts, Engine, ManualClock, MessageId,
    Next, RunState, Start, Store, StoreError,
};
use herald_core::Tick;
use herald_redb::{FILE_NAME, RedbStore, RedbStoreError};
use herald_testkit::TempDir;
use herald_testkit::store_conformance::{envelope, id, small_envelope};
use redb::{Database, TableDefinition};

type ById = TableDefinition<'static, u128, &'static [u8]>;
const HEADERS: ById = TableDefinition::new("headers");
const ENVELOPES: ById = TableDefinition::new("envelopes");

const DUE: u64 = 10;

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

/// Overwrites rows behind the store's back (it must be closed): `(table,
/// message, bytes)`.
fn overwrite(dir: &TempDir, rows: &[(ById, u128, Vec<u8>)]) {
    let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
    let txn = db.begin_write().expect("write");
    for (table, n, bytes) in rows {
        txn.open_table(*table)
            .expect("table")
            .insert(id(*n).as_u128(), bytes.as_slice())
            .expect("insert");
    }
    txn.commit().expect("commit");
}

/// Inserts messages `ns` (the fully populated envelope), scheduled at
/// `DUE`, concurrently (a few group commits); returns each one's stored
/// header and envelope bytes.
async fn insert_all(
    store: &RedbStore,
    ns: impl Iterator<Item = u128>,
) -> BTreeMap<u128, (Vec<u8>, Vec<u8>)> {
    let mut tasks = tokio::task::JoinSet::new();
    let ns: Vec<u128> = ns.collect();
    for &n in &ns {
        let store = store.clone();
        tasks.spawn(async move { store.insert(envelope(n), Start::At(t(DUE))).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("insert");
    }
    let raw = store.raw_tables().expect("raw");
    let find = |table: &str, n: u128| {
        let key = id(n).as_u128().to_be_bytes();
        raw[table]
            .iter()
            .find(|(k, _)| k.as_slice() == key)
            .map(|(_, v)| v.clone())
            .expect("stored")
    };
    ns.into_iter()
        .map(|n| (n, (find("headers", n), find("envelopes", n))))
        .collect()
}

async fn claim_all(store: &RedbStore, ns: &[u128]) -> Vec<bool> {
    let claims = ns
        .iter()
        .map(|&n| Claim {
            id: id(n),
            due: t(DUE),
        })
        .collect();
    store
        .claim(claims, t(1_000))
        .await
        .expect("a batch with damaged messages still answers")
        .iter()
        .map(Option::is_some)
        .collect()
}

fn is_quarantine(e: &StoreError, n: u128) -> bool {
    matches!(e, StoreError::Other(_))
        && e.to_string().contains("quarantine")
        && e.to_string().contains(&id(n).to_string())
}

/// Every truncation of a header and of an envelope (its body too: the body
/// has a length) is an error at `get`, and quarantined by a claim, which
/// claims the rest of the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_truncation_is_an_error_and_quarantined_by_a_claim() {
    let dir = TempDir::new("truncated");
    let store = RedbStore::open(&dir.0).expect("open");
    let stored = insert_all(&store, 0..600).await;
    store.close().await.expect("close");
    let (header_len, envelope_len) = (stored[&0].0.len(), stored[&0].1.len());
    assert!(envelope_len < 600, "{envelope_len}");
    // Message n: header cut to n bytes (n < header_len), else envelope
    // cut to n - header_len bytes.
    let mut rows = Vec::new();
    let mut cut = Vec::new();
    for (&n, (h, e)) in &stored {
        let n_ = n as usize;
        if n_ < header_len {
            rows.push((HEADERS, n, h[..n_].to_vec()));
        } else if n_ - header_len < e.len() {
            rows.push((ENVELOPES, n, e[..n_ - header_len].to_vec()));
        } else {
            continue;
        }
        cut.push(n);
    }
    overwrite(&dir, &rows);

    let store = RedbStore::open(&dir.0).expect("reopen");
    let mut failed = Vec::new();
    for &n in &cut {
        let got = store.get(id(n)).await;
        match got {
            Ok(_) => panic!("message {n}: a truncated record decoded"),
            Err(e) => {
                assert!(matches!(e, StoreError::Other(_)), "{e}");
                assert!(e.to_string().contains(&id(n).to_string()), "names it: {e}");
                failed.push(n);
            }
        }
    }
    assert_eq!(failed, cut, "every cut is an error");
    // One batch: the damaged ones are quarantined, the rest claimed.
    let mut ns = cut.clone();
    ns.push(599);
    let claimed = claim_all(&store, &ns).await;
    for (&n, &ok) in ns.iter().zip(&claimed) {
        assert_eq!(ok, !failed.contains(&n), "message {n}");
        if !ok {
            let e = store.get(id(n)).await.expect_err("quarantined");
            assert!(is_quarantine(&e, n), "{e}");
        }
    }
    let check = store.check_records().expect("consistent once quarantined");
    assert_eq!(check.quarantined, failed.len() as u64, "{check:?}");
    store.close().await.expect("close");
}

/// Every byte of a header and of an envelope flipped: `get` answers an
/// error or a record (never panics), and a claim batch over all of them
/// answers; whatever did not decode is in quarantine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flipped_byte_is_an_error_or_a_record_never_a_panic() {
    let dir = TempDir::new("flipped");
    let store = RedbStore::open(&dir.0).expect("open");
    let stored = insert_all(&store, 0..600).await;
    store.close().await.expect("close");
    let header_len = stored[&0].0.len();
    let mut rows = Vec::new();
    let mut flipped = Vec::new();
    for (&n, (h, e)) in &stored {
        let at = n as usize;
        if at < header_len {
            let mut h = h.clone();
            h[at] ^= 0xFF;
            rows.push((HEADERS, n, h));
        } else if at - header_len < e.len() {
            let mut e = e.clone();
            e[at - header_len] ^= 0xFF;
            rows.push((ENVELOPES, n, e));
        } else {
            continue;
        }
        flipped.push(n);
    }
    overwrite(&dir, &rows);

    let store = RedbStore::open(&dir.0).expect("reopen");
    let mut errors = Vec::new();
    for &n in &flipped {
        match store.get(id(n)).await {
            Ok(r) => assert_eq!(r.expect("stored").envelope.id, id(n)),
            Err(e) => {
                assert!(matches!(e, StoreError::Other(_)), "{e}");
                errors.push(n);
            }
        }
    }
    // The version, the state tag and the id never decode.
    for n in [0, 1, header_len as u128 + 1, header_len as u128 + 5] {
        assert!(errors.contains(&n), "byte {n} flipped decoded");
    }
    let claimed = claim_all(&store, &flipped).await;
    for (&n, &ok) in flipped.iter().zip(&claimed) {
        if errors.contains(&n) {
            assert!(!ok, "message {n} does not decode, yet was claimed");
            let e = store.get(id(n)).await.expect_err("quarantined");
            assert!(is_quarantine(&e, n), "{e}");
        }
    }
    let raw = store.raw_tables().expect("raw");
    assert_eq!(raw["quarantine"].len(), errors.len());
    store.close().await.expect("close");
}

/// Writes that meet a damaged header quarantine it and go on with the rest
/// of their request.
#[tokio::test]
async fn writes_that_meet_a_damaged_header_quarantine_it() {
    let dir = TempDir::new("writes");
    let store = RedbStore::open(&dir.0).expect("open");
    for n in 1..=5 {
        store
            .insert(small_envelope(n), Start::At(t(DUE)))
            .await
            .expect("insert");
    }
    let claims = claim_all(&store, &[1, 2, 5]).await;
    assert_eq!(claims, vec![true; 3]);
    let tokens: Vec<_> = store.raw_tables().expect("raw")["claims"]
        .iter()
        .map(|(_, v)| u64::from_le_bytes(v[16..24].try_into().expect("8 bytes")))
        .collect();
    store.close().await.expect("close");
    let garbage = b"\x02\x00 not a header".to_vec();
    overwrite(
        &dir,
        &[
            (HEADERS, 2, garbage.clone()),
            (HEADERS, 3, garbage.clone()),
            (HEADERS, 4, garbage.clone()),
            (HEADERS, 5, garbage),
        ],
    );
    let store = RedbStore::open(&dir.0).expect("reopen");
    let done = |n: u128, token: u64| Completion {
        id: id(n),
        token: herald::FencingToken::new(token),
        counts: DeliveryCounts {
            runs: 1,
            ..DeliveryCounts::default()
        },
        next: Next::Done,
    };
    let applied = store
        .complete(vec![done(2, tokens[1]), done(1, tokens[0])])
        .await
        .expect("complete");
    assert_eq!(applied, vec![false, true]);
    store
        .amend(vec![Amendment {
            id: id(3),
            counts: DeliveryCounts::default(),
            error: Some("x".into()),
            fail: true,
        }])
        .await
        .expect("amend skips it");
    let e = store.cancel(id(4)).await.expect_err("cancel");
    assert!(is_quarantine(&e, 4), "{e}");
    assert!(
        store
            .release_expired(Tick::MAX)
            .await
            .expect("release")
            .is_empty(),
        "5 was claimed, but its header is damaged: quarantined, not released"
    );
    assert_eq!(
        store.get(id(1)).await.expect("get").map(|r| r.state),
        Some(RunState::Published)
    );
    assert!(matches!(
        store.cancel(id(1)).await.expect("cancel"),
        CancelOutcome::Finished(_)
    ));
    for n in 2..=5 {
        let e = store.get(id(n)).await.expect_err("quarantined");
        assert!(is_quarantine(&e, n), "{e}");
    }
    let check = store.check_records().expect("consistent");
    assert_eq!((check.records, check.quarantined), (1, 4), "{check:?}");
    store.close().await.expect("close");
}

/// An engine starts on a store with damaged messages: the others fire, the
/// damaged ones are quarantined when their run is claimed.
#[tokio::test]
async fn an_engine_starts_and_fires_around_damaged_messages() {
    let dir = TempDir::new("engine");
    let store = RedbStore::open(&dir.0).expect("open");
    for n in 1..=20 {
        store
            .insert(small_envelope(n), Start::At(t(DUE + 1_000 + n as u64)))
            .await
            .expect("insert");
    }
    store.close().await.expect("close");
    let other_id = herald::codec::encode_envelope(&small_envelope(99)).expect("encode");
    overwrite(
        &dir,
        &[
            (HEADERS, 3, b"garbage".to_vec()),
            (ENVELOPES, 7, b"\x02 garbage".to_vec()),
            (ENVELOPES, 11, other_id),
        ],
    );
    let store = RedbStore::open(&dir.0).expect("reopen");
    // The runs are due a second after the engine starts: it claims runs a
    // few ms ahead of their due time, and a claim is what finds a damaged
    // envelope.
    let clock = ManualClock::new(t(DUE));
    let engine = Engine::builder()
        .clock(clock.clone())
        .store(store.clone())
        .build();
    let mut sub = engine.subscribe("default", None).expect("subscribe");
    engine.settle().await;
    assert_eq!(
        engine.scheduled_len(),
        20,
        "all reloaded: pending reads no header"
    );
    clock.advance(Duration::from_secs(2));
    engine.settle().await;
    let mut fired = Vec::new();
    while let Some(run) = sub.try_recv() {
        fired.push(run.expect("no lag").message_id());
    }
    fired.sort();
    let want: Vec<MessageId> = (1..=20)
        .filter(|n| ![3, 7, 11].contains(n))
        .map(id)
        .collect();
    assert_eq!(fired, want);
    for n in [3, 7, 11] {
        let e = store.get(id(n)).await.expect_err("quarantined");
        assert!(is_quarantine(&e, n), "{e}");
        assert!(engine.message_status(&id(n).to_string()).await.is_err());
    }
    let e = store.get(id(11)).await.expect_err("quarantined");
    assert!(e.to_string().contains("stored under"), "{e}");
    engine.shutdown().await;
    let store = RedbStore::open(&dir.0).expect("reopen");
    let check = store.check_records().expect("consistent");
    assert_eq!(
        (check.records, check.quarantined, check.unfinished),
        (17, 3, 0)
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = TempDir::new("garbage");
    std::fs::create_dir_all(&dir.0).expect("dir");
    std::fs::write(dir.0.join(FILE_NAME), vec![0x5A; 10_000]).expect("write");
    let e = RedbStore::open(&dir.0).expect_err("not redb");
    assert!(matches!(e, RedbStoreError::Redb(_)), "{e}");
}
