//! Registry writes during a real outage: the store's file cannot be
//! written (the process's file-size limit, `RLIMIT_FSIZE`, is lowered to 0
//! with `prlimit`, so every write to the file fails with `EFBIG`, as on a
//! full disk; `herald-server/tests/full_disk.rs` does the same to the
//! server). Every registry write answers `StoreError::Unavailable` and
//! changes nothing, `Store::stats` reports the outage, and once the limit
//! is back the writes work again without a reopen by the caller, and
//! everything acknowledged is there after a restart.
//!
//! The limit applies to the whole process and a write past it raises
//! SIGXFSZ, which kills unless ignored; so the test runs the scenario in a
//! child process (this test binary, running the ignored test
//! `outage_child` alone) started through `sh` with SIGXFSZ ignored.
#![cfg(target_os = "linux")]

use std::time::Instant;

use herald::{DeviceRegistry, InvalidToken, Store, TemplateStore};
use herald_core::Tick;
use herald_redb::RedbStore;
use herald_testkit::TempDir;

#[path = "support/file_limit.rs"]
mod file_limit;
use file_limit::{BACK_WITHIN, prlimit, run_child, unavailable, xfsz_ignored};
use herald_testkit::registry_conformance::{device, template};

#[test]
fn registry_writes_during_an_outage_answer_unavailable_then_work_again() {
    run_child();
}

fn refused_token(id: &str) -> InvalidToken {
    InvalidToken {
        device_id: id.to_owned(),
        device_token: format!("token-{id}"),
        seen_at: Tick::from_millis(1_000),
    }
}

#[test]
#[ignore = "the child of registry_writes_during_an_outage_answer_unavailable_then_work_again"]
fn outage_child() {
    assert!(
        xfsz_ignored(),
        "run with SIGXFSZ ignored (the parent test does), or the limit kills the process"
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(scenario());
}

async fn scenario() {
    let dir = TempDir::new("registry-outage");
    let store = RedbStore::open(&dir.0).expect("open");
    let mut expiring = device("old", &["c"], 1);
    expiring.expiration = Some(Tick::from_millis(10));
    store.register(expiring).await.expect("register");
    store
        .register(device("kept", &["c"], 1))
        .await
        .expect("register");
    store
        .put_template(template("t", &["ALL"]))
        .await
        .expect("put");
    let soft = prlimit(&["--fsize", "--output=SOFT", "--noheadings"]);

    // The file cannot be written: every registry write is refused.
    prlimit(&["--fsize=0:"]);
    unavailable("register", store.register(device("new", &["c"], 2)).await);
    assert!(
        store.stats().unavailable.is_some(),
        "the outage is reported"
    );
    unavailable(
        "register again",
        store.register(device("kept", &["moved"], 2)).await,
    );
    unavailable("unregister", store.unregister("kept").await);
    unavailable(
        "remove_invalid",
        store.remove_invalid(vec![refused_token("kept")]).await,
    );
    unavailable(
        "purge_expired",
        store.purge_expired(Tick::from_millis(100), 10).await,
    );
    unavailable(
        "put_template",
        store.put_template(template("u", &["IOS"])).await,
    );
    unavailable("delete_template", store.delete_template("t").await);
    assert!(store.stats().unavailable.is_some(), "still reported");

    // Space is back: the store writes again by itself (after its backoff;
    // until then it refuses at once).
    prlimit(&[&format!("--fsize={soft}:")]);
    let deadline = Instant::now() + BACK_WITHIN;
    let mut refusals = 0;
    loop {
        match store.register(device("new", &["c"], 3)).await {
            Ok(()) => break,
            Err(e) => {
                unavailable("register while coming back", Err::<(), _>(e));
                refusals += 1;
                assert!(
                    Instant::now() < deadline,
                    "still refused after {refusals} tries"
                );
            }
        }
    }
    assert_eq!(store.stats().unavailable, None, "the outage is over");

    // Nothing refused happened.
    let kept = store.device("kept").await.expect("read").expect("kept");
    assert_eq!(kept.channels, ["c"], "the refused register changed nothing");
    assert!(
        store.device("old").await.expect("read").is_some(),
        "not purged"
    );
    assert!(
        store.template("t").await.expect("read").is_some(),
        "not deleted"
    );
    assert!(
        store.template("u").await.expect("read").is_none(),
        "not stored"
    );

    // Every kind of registry write works again.
    store
        .register(device("kept", &["moved"], 2_000))
        .await
        .expect("register");
    assert_eq!(
        store
            .remove_invalid(vec![refused_token("kept")])
            .await
            .expect("remove_invalid"),
        [false],
        "registered again at 2000, after the refusal at 1000"
    );
    assert_eq!(
        store
            .purge_expired(Tick::from_millis(100), 10)
            .await
            .expect("purge"),
        1
    );
    store
        .put_template(template("u", &["IOS"]))
        .await
        .expect("put");
    assert!(store.delete_template("t").await.expect("delete"));
    assert!(store.unregister("new").await.expect("unregister"));
    store
        .register(device("last", &["c"], 5))
        .await
        .expect("register");
    store.close().await.expect("close");

    // Everything acknowledged is on disk.
    let store = RedbStore::open(&dir.0).expect("reopen");
    let ids = |page: Vec<std::sync::Arc<herald::DeviceRegistration>>| {
        page.iter().map(|d| d.device_id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(store.channel_devices("c", None, 10).await.expect("page")),
        ["last"]
    );
    assert_eq!(
        ids(store
            .channel_devices("moved", None, 10)
            .await
            .expect("page")),
        ["kept"]
    );
    let names: Vec<String> = store
        .list_templates(None)
        .await
        .expect("list")
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(names, ["u"]);
    let check = store.check_records().expect("consistent");
    assert_eq!((check.devices, check.templates), (2, 1), "{check:?}");
    store.close().await.expect("close");
}
