//! Registrations and templates survive a restart: a store registers,
//! replaces, unregisters and stores templates, closes (or is dropped
//! without a close), and the reopened directory answers every device,
//! every channel page and every template as they were, a cursor taken
//! before the restart carries on after it, and expirations still purge.
//! A file written before the registry tables existed reads as an empty
//! registry and takes registrations (so the format version stays 2).

use std::collections::{BTreeMap, BTreeSet};

use herald::{DeviceRegistration, DeviceRegistry, Os, PushTemplate, Store, TemplateStore};
use herald_core::Tick;
use herald_redb::{FILE_NAME, RedbStore};
use herald_testkit::TempDir;
use herald_testkit::registry_conformance::{device, template};
use herald_testkit::store_conformance::small_envelope;
use redb::{Database, ReadableDatabase, TableHandle};

const CHANNELS: [&str; 3] = ["all", "even", "news"];

/// What the registry must hold: registrations by id, templates by name.
#[derive(Debug, Default)]
struct Model {
    devices: BTreeMap<String, DeviceRegistration>,
    templates: BTreeMap<String, PushTemplate>,
}

impl Model {
    /// The ids registered to `channel`, in byte order.
    fn channel(&self, channel: &str) -> Vec<String> {
        self.devices
            .values()
            .filter(|d| d.has_channel(channel))
            .map(|d| d.device_id.clone())
            .collect()
    }
}

/// Device `i`: every device in `all`, even ones in `even`, every third in
/// `news`; every fifth expires at `1_000 + i`.
fn numbered(i: u32) -> DeviceRegistration {
    let mut channels = vec!["all"];
    if i.is_multiple_of(2) {
        channels.push("even");
    }
    if i.is_multiple_of(3) {
        channels.push("news");
    }
    let mut d = device(&format!("dev-{i:04}"), &channels, u64::from(i));
    d.os = if i.is_multiple_of(2) {
        Os::Android
    } else {
        Os::Ios
    };
    d.expiration = i
        .is_multiple_of(5)
        .then(|| Tick::from_millis(1_000 + u64::from(i)));
    d
}

/// Registers concurrently (a few group commits).
async fn register_all(store: &RedbStore, model: &mut Model, regs: Vec<DeviceRegistration>) {
    let mut tasks = tokio::task::JoinSet::new();
    for d in regs {
        model.devices.insert(d.device_id.clone(), d.clone());
        let store = store.clone();
        tasks.spawn(async move { store.register(d).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("register");
    }
}

/// Every id of `channel`, in pages of 7 from after `after`.
async fn walk(store: &RedbStore, channel: &str, after: Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let page = store
            .channel_devices(channel, after.as_deref(), 7)
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.device_id.clone());
        out.extend(page.iter().map(|d| d.device_id.clone()));
    }
    out
}

/// The store answers exactly what the model holds.
async fn holds(store: &RedbStore, model: &Model) {
    for (id, want) in &model.devices {
        let got = store.device(id).await.expect("device");
        assert_eq!(got.as_deref(), Some(want), "{id}");
    }
    for c in CHANNELS {
        assert_eq!(walk(store, c, None).await, model.channel(c), "channel {c}");
    }
    let templates: Vec<PushTemplate> = store
        .list_templates(None)
        .await
        .expect("templates")
        .iter()
        .map(|t| (**t).clone())
        .collect();
    let want: Vec<PushTemplate> = model.templates.values().cloned().collect();
    assert_eq!(templates, want);
    let check = store.check_records().expect("consistent");
    assert_eq!(
        (check.devices, check.templates),
        (model.devices.len() as u64, model.templates.len() as u64),
        "{check:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_and_templates_survive_close_and_drop() {
    let dir = TempDir::new("registry-restart");
    let mut model = Model::default();

    // Phase 1: 200 devices, some replaced, some removed; templates.
    let store = RedbStore::open(&dir.0).expect("open");
    register_all(&store, &mut model, (0..200).map(numbered).collect()).await;
    let mut moved = device("dev-0003", &["even"], 500);
    moved.device_token = "rotated".into();
    register_all(&store, &mut model, vec![moved]).await;
    for id in ["dev-0010", "dev-0011"] {
        assert!(store.unregister(id).await.expect("unregister"));
        model.devices.remove(id);
    }
    for (name, os) in [("welcome", "IOS"), ("promo", "ANDROID"), ("all", "ALL")] {
        let t = template(name, &[os]);
        store.put_template(t.clone()).await.expect("put");
        model.templates.insert(name.into(), t);
    }
    holds(&store, &model).await;
    // A walk of `all` stopped after its first page.
    let first = store
        .channel_devices("all", None, 7)
        .await
        .expect("first page");
    let cursor = first.last().expect("a full page").device_id.clone();
    store.close().await.expect("close");

    // Phase 2: reopened after a close, it is all there, and the walk
    // carries on where it stopped.
    let store = RedbStore::open(&dir.0).expect("reopen");
    holds(&store, &model).await;
    let rest = walk(&store, "all", Some(cursor)).await;
    let mut whole: Vec<String> = first.iter().map(|d| d.device_id.clone()).collect();
    whole.extend(rest);
    assert_eq!(
        whole,
        model.channel("all"),
        "the cursor survived the restart"
    );
    // More changes, then the store is dropped without a close.
    assert!(store.delete_template("promo").await.expect("delete"));
    model.templates.remove("promo");
    register_all(&store, &mut model, vec![device("dev-0199", &["news"], 900)]).await;
    drop(store);

    // Phase 3: reopened after a drop, it is all there; expirations purge
    // (the `device_expiry` index came back with the rest).
    let store = RedbStore::open(&dir.0).expect("reopen after a drop");
    holds(&store, &model).await;
    let expiring: BTreeSet<String> = model
        .devices
        .values()
        .filter(|d| d.is_expired(Tick::from_millis(1_100)))
        .map(|d| d.device_id.clone())
        .collect();
    assert!(expiring.len() > 10, "{}", expiring.len());
    let purged = store
        .purge_expired(Tick::from_millis(1_100), 1_000)
        .await
        .expect("purge");
    assert_eq!(purged, expiring.len());
    model.devices.retain(|id, _| !expiring.contains(id));
    holds(&store, &model).await;
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_before_the_registry_reads_as_empty_and_takes_registrations() {
    let dir = TempDir::new("registry-old-file");
    let store = RedbStore::open(&dir.0).expect("open");
    store
        .insert(small_envelope(1), herald::Start::At(Tick::from_millis(10)))
        .await
        .expect("insert");
    store.close().await.expect("close");
    let tables = |dir: &TempDir| -> BTreeSet<String> {
        let db = Database::open(dir.0.join(FILE_NAME)).expect("raw open");
        let txn = db.begin_read().expect("read");
        txn.list_tables()
            .expect("tables")
            .map(|t| t.name().to_owned())
            .collect()
    };
    let before = tables(&dir);
    assert!(before.contains("headers"), "{before:?}");
    assert!(
        !before.contains("devices") && !before.contains("templates"),
        "a file with messages only has no registry tables: {before:?}"
    );

    let store = RedbStore::open(&dir.0).expect("reopen");
    assert!(store.device("d").await.expect("device").is_none());
    assert!(
        store
            .channel_devices("default", None, 10)
            .await
            .expect("page")
            .is_empty()
    );
    assert!(store.template("t").await.expect("template").is_none());
    assert!(store.list_templates(None).await.expect("list").is_empty());
    assert_eq!(
        store
            .purge_expired(Tick::from_millis(u64::MAX), 10)
            .await
            .expect("purge"),
        0
    );
    let check = store.check_records().expect("consistent");
    assert_eq!((check.records, check.devices), (1, 0), "{check:?}");

    store
        .register(device("d", &["default"], 1))
        .await
        .expect("register");
    store
        .put_template(template("t", &["ALL"]))
        .await
        .expect("put");
    assert_eq!(
        store
            .channel_devices("default", None, 10)
            .await
            .expect("page")[0]
            .device_id,
        "d"
    );
    assert!(store.template("t").await.expect("template").is_some());
    store.close().await.expect("close");
    let after = tables(&dir);
    for t in ["devices", "device_channels", "device_expiry", "templates"] {
        assert!(
            after.contains(t),
            "{t} created by the first write: {after:?}"
        );
    }
}
