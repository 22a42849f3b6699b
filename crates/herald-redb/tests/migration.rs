//! Format v1 → v2 at open, on the committed v1 fixture
//! (`tests/fixtures/v1`, written by the last v1 build; see its README),
//! always on a copy in a temporary directory.
//!
//! Every record of `expected.jsonl` must read back through `Store::get`
//! with the same state, due, lease, counters, error, channel, accept time,
//! message and options; the store must check clean and list exactly the
//! scheduled runs; an engine on it must fire them (and the run that was
//! claimed); a second open must not migrate again; and a migration cut
//! short after one small chunk must complete at the next open with the
//! same result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use herald::{DeliveryCounts, Engine, ManualClock, MessageId, PublishStatus, RunState, Store};
use herald_core::Tick;
use herald_redb::{FILE_NAME, RedbOptions, RedbStore, RedbStoreError};
use herald_testkit::TempDir;
use redb::ReadableTable;
use serde_json::Value;

fn fixture() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1"))
}

/// A copy of the fixture's database in a fresh directory.
fn copy_of_fixture(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    std::fs::create_dir_all(&dir.0).expect("dir");
    std::fs::copy(fixture().join(FILE_NAME), dir.0.join(FILE_NAME)).expect("copy the fixture");
    dir
}

/// The fixture's manifest: one JSON object per record.
fn expected() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture().join("expected.jsonl")).expect("manifest");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn id_of(e: &Value) -> MessageId {
    e["id"].as_str().expect("id").parse().expect("an id")
}

fn ms(v: &Value) -> Option<Tick> {
    v.as_u64().map(Tick::from_millis)
}

/// Checks that `store` reads every record of the manifest back as v1 did.
async fn reads_back_as_v1_did(store: &RedbStore, manifest: &[Value]) {
    for e in manifest {
        let id = id_of(e);
        let r = store
            .get(id)
            .await
            .unwrap_or_else(|err| panic!("{id}: {err}"))
            .unwrap_or_else(|| panic!("{id} was lost"));
        let due = ms(&e["due"]);
        let lease = ms(&e["lease_until"]);
        match (e["state"].as_str().expect("state"), &r.state) {
            ("scheduled", RunState::Scheduled { due: d }) => assert_eq!(Some(*d), due, "{id}"),
            (
                "firing",
                RunState::Firing {
                    due: d,
                    lease_until,
                    ..
                },
            ) => assert_eq!((Some(*d), Some(*lease_until)), (due, lease), "{id}"),
            ("published", RunState::Published)
            | ("failed", RunState::Failed)
            | ("cancelled", RunState::Cancelled) => {}
            (want, got) => panic!("{id}: v1 said {want}, v2 says {got:?}"),
        }
        assert_eq!(
            r.error.as_deref(),
            e["error"].as_str(),
            "{id}: the error text"
        );
        let c = &e["counts"];
        let n = |k: &str| c[k].as_u64().expect("a counter");
        assert_eq!(
            r.counts,
            DeliveryCounts::from_array([
                n("runs"),
                n("pubsub"),
                n("push_sent"),
                n("push_failed"),
                n("push_invalid_tokens"),
                0,
                0,
            ]),
            "{id}: the 5 v1 counters, the 2 new ones 0"
        );
        let env = &r.envelope;
        assert_eq!(env.id, id);
        assert_eq!(env.channel, e["channel"].as_str().expect("channel"), "{id}");
        assert_eq!(Some(env.accepted_at), ms(&e["accepted_at"]), "{id}");
        assert_eq!(
            env.body.to_value().expect("the body is JSON"),
            e["message"],
            "{id}: the message"
        );
        assert_eq!(
            Value::Object(env.publish.to_json()),
            e["publish"],
            "{id}: the publish options"
        );
        assert_eq!(
            Value::Object(env.delivery().to_json()),
            e["delivery"],
            "{id}: the delivery options"
        );
    }
}

/// The scheduled runs of the manifest (not the claimed one), by id.
fn scheduled(manifest: &[Value]) -> Vec<(MessageId, Tick)> {
    let mut out: Vec<_> = manifest
        .iter()
        .filter(|e| e["state"] == "scheduled")
        .map(|e| (id_of(e), ms(&e["due"]).expect("due")))
        .collect();
    out.sort();
    out
}

async fn all_pending(store: &RedbStore) -> Vec<(MessageId, Tick)> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store.pending(after, 100).await.expect("pending");
        if page.is_empty() {
            return out;
        }
        after = page.last().map(|r| r.id);
        out.extend(page.into_iter().map(|r| (r.id, r.due)));
    }
}

#[tokio::test]
async fn every_v1_record_reads_back_the_same() {
    let manifest = expected();
    assert_eq!(manifest.len(), 311, "the fixture's records");
    let dir = copy_of_fixture("migrate");
    let store = RedbStore::open(&dir.0).expect("open migrates");
    let m = *store.migration().expect("a v1 file is migrated");
    println!("{m:?}");
    assert_eq!(
        (m.from_version, m.records, m.quarantined, m.claims, m.done),
        (1, 311, 0, 1, true),
        "{m:?}"
    );
    let unfinished = manifest
        .iter()
        .filter(|e| e["state"] == "scheduled" || e["state"] == "firing")
        .count() as u64;
    assert_eq!(m.unfinished, unfinished);
    reads_back_as_v1_did(&store, &manifest).await;
    let check = store
        .check_records()
        .expect("the migrated store checks clean");
    assert_eq!(
        (check.records, check.unfinished, check.indexed, check.claims),
        (311, unfinished, unfinished, 1),
        "{check:?}"
    );
    assert_eq!((check.finals, check.quarantined), (0, 0), "{check:?}");
    assert_eq!(
        all_pending(&store).await,
        scheduled(&manifest),
        "pending lists exactly the scheduled runs"
    );
    // The v1 tables are gone.
    let tables = store.raw_tables().expect("tables");
    assert!(!tables.contains_key("messages"));
    store.close().await.expect("close");

    // A second open finds format 2: nothing to migrate, nothing changed.
    let store = RedbStore::open(&dir.0).expect("reopen");
    assert_eq!(store.migration(), None, "migrated once");
    reads_back_as_v1_did(&store, &manifest).await;
    assert_eq!(store.check_records().expect("clean"), check);
    store.close().await.expect("close");
}

/// An engine on the migrated store fires every scheduled run and the run
/// that was claimed (a single node takes its old claims back at start-up).
#[tokio::test]
async fn an_engine_fires_the_migrated_runs() {
    let manifest = expected();
    let dir = copy_of_fixture("migrate-engine");
    let store = RedbStore::open(&dir.0).expect("open migrates");
    // Past every due in the fixture.
    let now = 1_900_000_300_000;
    let clock = ManualClock::new(Tick::from_millis(now));
    let engine = Engine::builder()
        .clock(clock.clone())
        .store(store.clone())
        .build();
    let mut subs: BTreeMap<String, _> = BTreeMap::new();
    for e in &manifest {
        let ch = e["channel"].as_str().expect("channel").to_owned();
        if let std::collections::btree_map::Entry::Vacant(v) = subs.entry(ch) {
            let sub = engine.subscribe(v.key(), None).expect("subscribe");
            v.insert(sub);
        }
    }
    // The driver first runs here (a current-thread runtime): reload, fire.
    engine.settle().await;
    let mut fired = BTreeSet::new();
    for sub in subs.values_mut() {
        while let Some(run) = sub.try_recv() {
            assert!(fired.insert(run.expect("no lag").message_id()), "once");
        }
    }
    let due: BTreeSet<MessageId> = manifest
        .iter()
        .filter(|e| e["state"] == "scheduled" || e["state"] == "firing")
        .map(id_of)
        .collect();
    assert_eq!(fired, due, "every scheduled run and the claimed one fired");
    for e in &manifest {
        let id = id_of(e);
        let s = engine
            .message_status(&id.to_string())
            .await
            .expect("status");
        let runs = e["counts"]["runs"].as_u64().expect("runs");
        if due.contains(&id) {
            assert_eq!(s.deliveries.runs, runs + 1, "{id}: {s:?}");
            // `repeatEvery` 60 s until an hour later: scheduled again.
            // The cron ones (09:30 on weekdays in Berlin) would next run
            // on Monday, after their `repeatExpiresAt`: done.
            let repeats = !e["delivery"]["repeatEvery"].is_null();
            let want = if repeats {
                PublishStatus::Scheduled
            } else {
                PublishStatus::Published
            };
            assert_eq!(s.status, want, "{id}: {s:?}");
        } else {
            assert_eq!(s.deliveries.runs, runs, "{id}: untouched");
        }
    }
    engine.shutdown().await;
    let store = RedbStore::open(&dir.0).expect("reopen");
    let check = store.check_records().expect("clean after the runs");
    assert_eq!((check.records, check.quarantined), (311, 0), "{check:?}");
}

/// A migration cut short after one chunk of 7 messages (as a crash between
/// two chunks would) completes at the next open, and the file ends up with
/// the same rows as a migration in one go.
#[tokio::test]
async fn an_interrupted_migration_resumes_and_ends_the_same() {
    let manifest = expected();
    // One clock for both: finished records finish at the migration.
    let at = 1_800_000_000_000;
    let options = |chunk| RedbOptions {
        clock: Arc::new(ManualClock::new(Tick::from_millis(at))),
        migration_chunk: chunk,
        ..RedbOptions::default()
    };
    let whole = copy_of_fixture("migrate-whole");
    let store = RedbStore::open_with(&whole.0, options(10_000)).expect("open migrates");
    let want = store.raw_tables().expect("tables");
    store.close().await.expect("close");

    let cut = copy_of_fixture("migrate-cut");
    let first = herald_redb::migrate_partly(&cut.0, 7, 1, at).expect("one chunk");
    assert_eq!(
        (first.records, first.chunks, first.done),
        (7, 1, false),
        "{first:?}"
    );
    // Half migrated, the file already says version 2 (and that it is being
    // migrated), so a v1 build refuses it rather than see only what is left.
    {
        use redb::{ReadableDatabase, TableDefinition};
        const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
        let db = redb::Database::create(cut.0.join(FILE_NAME)).expect("raw open");
        let txn = db.begin_read().expect("read");
        let meta = txn.open_table(META).expect("meta");
        let get = |k: &str| meta.get(k).expect("get").map(|g| g.value());
        assert_eq!(get("format_version"), Some(2));
        assert_eq!(get("migrating_from"), Some(1));
    }
    // The rest, in chunks of 50, at the next open.
    let store = RedbStore::open_with(&cut.0, options(50)).expect("open resumes");
    let rest = *store.migration().expect("resumed");
    assert_eq!(
        (rest.records, rest.chunks, rest.done),
        (304, 7, true),
        "{rest:?}"
    );
    reads_back_as_v1_did(&store, &manifest).await;
    store.check_records().expect("clean");
    let got = store.raw_tables().expect("tables");
    // Compared table by table: a failure names the table, not 300 KB of rows.
    for (table, rows) in &want {
        assert!(
            got.get(table) == Some(rows),
            "table {table}: not the same rows as a migration in one go"
        );
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the same tables (no marker left)"
    );
    store.close().await.expect("close");
}

/// A v1 record that does not convert is quarantined with the reason; the
/// others migrate, and the engine's start-up is not held up by it.
#[tokio::test]
async fn a_v1_record_that_does_not_convert_is_quarantined() {
    let dir = copy_of_fixture("migrate-bad");
    let bad = id_of(&expected()[9]); // #10, scheduled, a large body
    {
        let db = redb::Database::create(dir.0.join(FILE_NAME)).expect("raw open");
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn
                .open_table(redb::TableDefinition::<u128, &[u8]>::new("messages"))
                .expect("v1 messages");
            let mut v = t
                .get(bad.as_u128())
                .expect("get")
                .expect("stored")
                .value()
                .to_vec();
            let n = v.len();
            v[n - 3] = b'{'; // the delivery options are no JSON any more
            t.insert(bad.as_u128(), v.as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(&dir.0).expect("open migrates the rest");
    let m = *store.migration().expect("migrated");
    assert_eq!((m.records, m.quarantined, m.done), (310, 1, true), "{m:?}");
    let e = store.get(bad).await.expect_err("quarantined");
    assert!(e.to_string().contains("quarantine"), "{e}");
    assert!(e.to_string().contains("delivery options"), "{e}");
    let check = store.check_records().expect("clean");
    assert_eq!((check.records, check.quarantined), (310, 1), "{check:?}");
    assert!(!all_pending(&store).await.iter().any(|(id, _)| *id == bad));
    store.close().await.expect("close");
}

#[tokio::test]
async fn other_versions_are_refused() {
    let dir = copy_of_fixture("migrate-version");
    {
        let db = redb::Database::create(dir.0.join(FILE_NAME)).expect("raw open");
        let txn = db.begin_write().expect("write");
        txn.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .expect("meta")
            .insert("format_version", 3)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let e = RedbStore::open(&dir.0).expect_err("version 3");
    assert!(matches!(e, RedbStoreError::Version { found: 3, .. }), "{e}");
    assert!(e.to_string().contains("version 3"), "{e}");
}
