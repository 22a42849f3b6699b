//! The Backendless JS SDK's browser build (`backendless@8.0.0`) in headless
//! Chromium, on a page from another origin than the server's: runs
//! `compat/js-sdk/browser-test.mjs` (playwright-core) against two servers,
//! one with the default `cors_origins` (the SDK publishes and subscribes,
//! over REST and socket.io) and one whose `cors_origins` leaves the page out
//! (the browser refuses).
//!
//! Needs node and Chromium (Debian's `chromium`: `/usr/bin/chromium`, or
//! `HERALD_CHROMIUM`); the npm packages are installed with `npm ci` when
//! missing. Without node or Chromium the test prints one SKIPPED line and
//! passes, except when `CI` is set: there it fails.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Outer guard; the script has its own 60 s timeout.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn chromium() -> PathBuf {
    std::env::var_os("HERALD_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_sdk_in_headless_chromium_from_another_origin() {
    if !support::node::ready_or_skip("browser", "install node and npm to run the SDK in Chromium")
        .await
    {
        return;
    }
    let chromium = chromium();
    if !chromium.is_file() {
        support::node::skip(
            "browser",
            &format!("{} is missing", chromium.display()),
            "`apt-get install chromium`, or set HERALD_CHROMIUM",
        );
        return;
    }

    let open = support::start("").await;
    let denied = support::start(r#"cors_origins = ["https://allowed.example"]"#).await;
    let child = Command::new("node")
        .arg("browser-test.mjs")
        .current_dir(support::node::js_dir())
        .env("HERALD_URL", &open.base)
        .env("HERALD_DENIED_URL", &denied.base)
        .env("HERALD_APP", support::APP)
        .env("HERALD_KEY", support::KEY)
        .env("HERALD_CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("browser-test.mjs still running after {SCRIPT_TIMEOUT:?}"))
        .expect("browser-test.mjs output");
    open.stop().await;
    denied.stop().await;

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "browser-test.mjs failed ({}).\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("checks passed"),
        "browser-test.mjs exited 0 without finishing.\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );
}
