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

use std::process::Command;
use std::time::{Duration, Instant};

use herald::{DeviceRegistry, InvalidToken, Store, StoreError, TemplateStore};
use herald_core::Tick;
use herald_redb::RedbStore;
use herald_testkit::TempDir;
use herald_testkit::registry_conformance::{device, template};

/// How long the store may take to write again once the limit is back
/// (its backoff is at most 5 s).
const BACK_WITHIN: Duration = Duration::from_secs(30);

#[test]
fn registry_writes_during_an_outage_answer_unavailable_then_work_again() {
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; exec \"$0\" \"$@\"")
        .arg(exe)
        .args(["outage_child", "--exact", "--ignored", "--nocapture"])
        .output()
        .expect("spawn the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("test outage_child ... ok") && stdout.contains("1 passed"),
        "the child ran the scenario:\n{stdout}"
    );
}

/// Whether this process ignores SIGXFSZ (`SigIgn` in /proc/self/status).
fn xfsz_ignored() -> bool {
    const SIGXFSZ: u32 = 25;
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (SIGXFSZ - 1)) != 0)
}

/// `prlimit` (util-linux) on this process: the soft file-size limit.
fn prlimit(args: &[&str]) -> String {
    let out = Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .args(args)
        .output()
        .expect("prlimit (util-linux) runs");
    assert!(
        out.status.success(),
        "prlimit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    match r {
        Err(StoreError::Unavailable(e)) => {
            assert!(e.to_string().starts_with("herald-redb: "), "{what}: {e}")
        }
        other => panic!("{what}: {other:?}, not Unavailable"),
    }
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
