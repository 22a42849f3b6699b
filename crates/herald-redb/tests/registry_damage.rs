//! Damaged registry rows, written behind the store's back: every cut and
//! a newer record version of a device record, and a damaged template, read
//! back as `StoreError::Other` naming the table and the key, never as a
//! panic. A write that meets a damaged record answers the same error and
//! changes nothing (not even the parts of its request that would have
//! worked), while the other requests of its batch go on; `check_records`
//! finds the damage.

use herald::{DeviceRegistry, InvalidToken, Store, StoreError, TemplateStore};
use herald_core::Tick;
use herald_redb::{FILE_NAME, RedbStore, RedbStoreError};
use herald_testkit::TempDir;
use herald_testkit::registry_conformance::{device, template};
use redb::{Database, ReadableDatabase, TableDefinition};

type Records = TableDefinition<'static, &'static str, &'static [u8]>;
const DEVICES: Records = TableDefinition::new("devices");
const TEMPLATES: Records = TableDefinition::new("templates");

/// The stored bytes of `key` in `table` (the store must be closed).
fn read_row(dir: &TempDir, table: Records, key: &str) -> Vec<u8> {
    let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
    let txn = db.begin_read().expect("read");
    let t = txn.open_table(table).expect("table");
    t.get(key).expect("get").expect("stored").value().to_vec()
}

/// Overwrites rows of `table` (the store must be closed).
fn overwrite(dir: &TempDir, table: Records, rows: &[(String, Vec<u8>)]) {
    let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
    let txn = db.begin_write().expect("write");
    {
        let mut t = txn.open_table(table).expect("table");
        for (key, bytes) in rows {
            t.insert(key.as_str(), bytes.as_slice()).expect("insert");
        }
    }
    txn.commit().expect("commit");
}

/// A damaged-row error naming `table` and `key`.
fn names(e: &StoreError, table: &str, key: &str) -> bool {
    let text = e.to_string();
    matches!(e, StoreError::Other(_))
        && text.contains(&format!("table `{table}`"))
        && text.contains(key)
        && text.contains("damaged")
}

fn cut_id(n: usize) -> String {
    format!("cut-{n:03}")
}

/// Every cut of a device record is an error at `device`, at the channel
/// page that reaches it, and at `check_records`; pages before it work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cut_of_a_device_record_is_an_error_naming_it() {
    let dir = TempDir::new("registry-cuts");
    let store = RedbStore::open(&dir.0).expect("open");
    // Shaped like the devices below (ids and channel names of the same lengths),
    // so its record has their length.
    let mut probe = device("probe-0", &["c", "only-prb-000"], 1);
    probe.expiration = Some(Tick::from_millis(5));
    store.register(probe).await.expect("register");
    store.close().await.expect("close");
    let good = read_row(&dir, DEVICES, "probe-0");

    // One device per cut length, each in a channel of its own (and in
    // `c`).
    let store = RedbStore::open(&dir.0).expect("reopen");
    for n in 0..good.len() {
        let id = cut_id(n);
        let mut d = device(&id, &["c", &format!("only-{id}")], 1);
        d.expiration = Some(Tick::from_millis(5));
        store.register(d).await.expect("register");
    }
    store.close().await.expect("close");
    let rows: Vec<(String, Vec<u8>)> = (0..good.len())
        .map(|n| {
            let whole = read_row(&dir, DEVICES, &cut_id(n));
            assert_eq!(whole.len(), good.len(), "shaped like the probe");
            (cut_id(n), whole[..n].to_vec())
        })
        .collect();
    overwrite(&dir, DEVICES, &rows);

    let store = RedbStore::open(&dir.0).expect("reopen damaged");
    for n in 0..good.len() {
        let id = cut_id(n);
        let e = store.device(&id).await.expect_err("a cut record decoded");
        assert!(names(&e, "devices", &format!("{id:?}")), "{n}: {e}");
        let e = store
            .channel_devices(&format!("only-{id}"), None, 10)
            .await
            .expect_err("a page with a cut record");
        assert!(names(&e, "devices", &format!("{id:?}")), "{n}: {e}");
    }
    assert_eq!(
        store
            .device("probe-0")
            .await
            .expect("intact")
            .map(|d| d.device_id.clone()),
        Some("probe-0".to_owned())
    );
    let e = store.check_records().expect_err("the damage is found");
    assert!(
        matches!(&e, RedbStoreError::Check(what) if what.contains("cut-000")),
        "{e}"
    );
    store.close().await.expect("close");
}

/// A record of a newer version (a downgrade), and a damaged template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_meet_a_damaged_record_change_nothing() {
    let dir = TempDir::new("registry-newer");
    let store = RedbStore::open(&dir.0).expect("open");
    for id in ["bad", "good"] {
        let mut d = device(id, &["c"], 100);
        d.expiration = Some(Tick::from_millis(50));
        store.register(d).await.expect("register");
    }
    store
        .put_template(template("t", &["ALL"]))
        .await
        .expect("put");
    store
        .put_template(template("u", &["ALL"]))
        .await
        .expect("put");
    store.close().await.expect("close");
    let mut newer = read_row(&dir, DEVICES, "bad");
    newer[0] = 2;
    overwrite(&dir, DEVICES, &[("bad".to_owned(), newer.clone())]);
    let mut t = read_row(&dir, TEMPLATES, "t");
    t.truncate(t.len() - 1);
    overwrite(&dir, TEMPLATES, &[("t".to_owned(), t)]);

    let store = RedbStore::open(&dir.0).expect("reopen");
    let is_bad = |e: &StoreError| names(e, "devices", "\"bad\"");
    let e = store.device("bad").await.expect_err("newer version");
    assert!(is_bad(&e), "{e}");
    assert!(e.to_string().contains("record version 2"), "{e}");
    let e = store
        .channel_devices("c", None, 10)
        .await
        .expect_err("the page reaches it");
    assert!(is_bad(&e), "{e}");

    // Every write that needs the old record refuses; a write sent with
    // them (in their batch when the writer takes them at once) that does
    // not need it is applied.
    let (register, unregister, invalid, purge, other) = tokio::join!(
        store.register(device("bad", &["d"], 200)),
        store.unregister("bad"),
        store.remove_invalid(vec![
            InvalidToken {
                device_id: "good".into(),
                device_token: "token-good".into(),
                seen_at: Tick::from_millis(1_000),
            },
            InvalidToken {
                device_id: "bad".into(),
                device_token: "token-bad".into(),
                seen_at: Tick::from_millis(1_000),
            },
        ]),
        store.purge_expired(Tick::from_millis(1_000), 10),
        store.register(device("new", &["c"], 300)),
    );
    for e in [
        register.expect_err("register"),
        unregister.expect_err("unregister"),
        invalid.expect_err("remove_invalid"),
        purge.expect_err("purge_expired"),
    ] {
        assert!(is_bad(&e), "{e}");
    }
    other.expect("a write that meets no damage is applied");
    assert!(store.device("new").await.expect("read").is_some());
    assert!(
        store.device("good").await.expect("read").is_some(),
        "not removed or purged: its request failed as a whole"
    );
    let e = store.template("t").await.expect_err("a cut template");
    assert!(names(&e, "templates", "\"t\""), "{e}");
    let e = store
        .list_templates(None)
        .await
        .expect_err("the list reaches it");
    assert!(names(&e, "templates", "\"t\""), "{e}");
    assert!(store.template("u").await.expect("intact").is_some());
    let e = store.check_records().expect_err("found");
    assert!(e.to_string().contains("\"bad\""), "{e}");
    store.close().await.expect("close");

    assert_eq!(read_row(&dir, DEVICES, "bad"), newer, "left as it was");
}

/// An index entry whose registration is gone is an error naming the
/// entry, not a page with a hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_entry_without_its_registration_is_an_error() {
    let dir = TempDir::new("registry-orphan");
    let store = RedbStore::open(&dir.0).expect("open");
    store
        .register(device("gone", &["c"], 1))
        .await
        .expect("register");
    store.close().await.expect("close");
    {
        let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
        let txn = db.begin_write().expect("write");
        txn.open_table(DEVICES)
            .expect("table")
            .remove("gone")
            .expect("remove");
        txn.commit().expect("commit");
    }
    let store = RedbStore::open(&dir.0).expect("reopen");
    let e = store
        .channel_devices("c", None, 10)
        .await
        .expect_err("an orphan entry");
    assert!(names(&e, "device_channels", "(\"c\", \"gone\")"), "{e}");
    assert!(store.check_records().is_err());
    store.close().await.expect("close");
}
