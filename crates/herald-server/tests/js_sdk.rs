//! The official Backendless JS SDK (`backendless@8.0.0`) against a real
//! server: runs `compat/js-sdk/sdk-test.mjs` under node.
//!
//! Needs node and `npm ci --prefix compat/js-sdk`. Without them the test
//! prints one SKIPPED line and passes, except when `CI` is set: CI must run
//! the real SDK, so there a missing node or `node_modules` fails.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Outer guard; the script has its own 30 s timeout.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

const SKIPPED: &str = "SKIPPED: js_sdk: run `npm ci --prefix compat/js-sdk` (needs node) to test the real Backendless JS SDK";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/herald-server is two levels below the repository root")
        .to_path_buf()
}

async fn node_version() -> Option<String> {
    let out = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Why the SDK cannot run here, if it cannot.
async fn missing(js_dir: &Path) -> Option<String> {
    if node_version().await.is_none() {
        return Some("`node` is not installed (or not on PATH)".into());
    }
    let sdk = js_dir.join("node_modules/backendless/package.json");
    if !sdk.is_file() {
        return Some(format!("{} is missing", sdk.display()));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_backendless_js_sdk_against_the_server() {
    let js_dir = repo_root().join("compat/js-sdk");
    if let Some(why) = missing(&js_dir).await {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set, so the real JS SDK must run, but {why}: run `npm ci --prefix compat/js-sdk`"
        );
        // Straight to the stderr handle, which the test harness does not
        // capture: the skip must be seen.
        let _ = writeln!(std::io::stderr(), "{SKIPPED}");
        return;
    }

    let server = support::start("").await;
    let child = Command::new("node")
        .arg("sdk-test.mjs")
        .current_dir(&js_dir)
        .env("HERALD_URL", &server.base)
        .env("HERALD_APP", support::APP)
        .env("HERALD_KEY", support::KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("sdk-test.mjs still running after {SCRIPT_TIMEOUT:?}"))
        .expect("sdk-test.mjs output");
    server.stop().await;

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "sdk-test.mjs failed ({}).\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("checks passed"),
        "sdk-test.mjs exited 0 without finishing.\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );
}
