//! The official Backendless JS SDK (`backendless@8.0.0`) against a real
//! server: runs `compat/js-sdk/sdk-test.mjs` under node.
//!
//! Needs node; the packages of `compat/js-sdk` are installed with `npm ci`
//! when they are missing. Without node the test prints one SKIPPED line and
//! passes, except when `CI` is set: CI must run the real SDK, so there a
//! missing node fails.

mod support;

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Outer guard; the script has its own 30 s timeout.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_backendless_js_sdk_against_the_server() {
    let ready = tokio::task::spawn_blocking(support::node::packages)
        .await
        .expect("npm check");
    if let Err(why) = ready {
        support::node::skip(
            "js_sdk",
            &why,
            "install node and npm to test the real Backendless JS SDK",
        );
        return;
    }

    // An APNs gateway that records what it is handed, so the template
    // send's rendered notification can be checked here.
    let apns = herald::RecordingTransport::new("apns");
    let gateway: std::sync::Arc<dyn herald::PushTransport> = std::sync::Arc::new(apns.clone());
    let server = support::start_with(
        "",
        std::sync::Arc::new(herald::SystemClock),
        vec![(support::APP.into(), herald::PushBroadcast::IOS, gateway)],
        support::temp_dir(),
    )
    .await;
    let child = Command::new("node")
        .arg("sdk-test.mjs")
        .current_dir(support::node::js_dir())
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
    let sent: Vec<_> = apns
        .sent()
        .into_iter()
        .filter(|n| n.device_token.starts_with("sdk-token-"))
        .collect();
    assert_eq!(sent.len(), 1, "pushWithTemplate reached the gateway once");
    assert_eq!(
        sent[0].content.body.as_deref(),
        Some("Hello Ada, welcome"),
        "rendered from the send's values and the device's properties"
    );
}
