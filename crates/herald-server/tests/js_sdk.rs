//! The official Backendless JS SDK (`backendless@8.0.0`) against a real
//! server: runs `compat/js-sdk/sdk-test.mjs` under node; and socket.io's
//! own client over a WebSocket from its first request (the direct
//! WebSocket path): `compat/js-sdk/ws-test.mjs`.
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
    let Some(upgrades) = js_sdk("").await else {
        return;
    };
    // The SDK opens its sessions long polling, then upgrades them (on the
    // direct path).
    assert!(upgrades >= Some(1.0), "upgrades: {upgrades:?}");
}

/// The same on socketioxide's path (`realtime_direct = false`), the
/// fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_backendless_js_sdk_on_socketioxide() {
    let Some(upgrades) = js_sdk("realtime_direct = false").await else {
        return;
    };
    assert_eq!(upgrades, Some(0.0), "socketioxide upgraded them");
}

/// Runs `sdk-test.mjs` against a server configured with `toml`; the
/// upgrades the direct path counted (`None`: skipped, without node).
async fn js_sdk(toml: &str) -> Option<Option<f64>> {
    if !support::node::ready_or_skip(
        "js_sdk",
        "install node and npm to test the real Backendless JS SDK",
    )
    .await
    {
        return None;
    }

    // An APNs gateway that records what it is handed, so the template
    // send's rendered notification can be checked here.
    let apns = herald::RecordingTransport::new("apns");
    let gateway: std::sync::Arc<dyn herald::PushTransport> = std::sync::Arc::new(apns.clone());
    let server = support::start_with(
        toml,
        std::sync::Arc::new(herald::SystemClock),
        vec![(support::APP.into(), herald::PushBroadcast::IOS, gateway)],
        support::temp_dir(),
    )
    .await;
    run_script("sdk-test.mjs", &server).await;
    let upgrades = server.metric("herald_realtime_upgrades_total").await;
    server.stop().await;
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
    Some(upgrades)
}

/// socket.io-client with `transports: ['websocket']`: the session is a
/// WebSocket from its first request, which the direct path serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_client_over_a_websocket_on_the_direct_path() {
    if !support::node::ready_or_skip(
        "js_sdk",
        "install node and npm to test socket.io's own client",
    )
    .await
    {
        return;
    }
    let server = support::start("").await;
    let metric = "herald_realtime_direct_sessions";
    // Read the gauge while the script runs (its socket is open for most
    // of it).
    let mut seen = 0.0f64;
    {
        let script = run_script("ws-test.mjs", &server);
        tokio::pin!(script);
        loop {
            tokio::select! {
                () = &mut script => break,
                m = server.metric(metric) => seen = seen.max(m.unwrap_or(0.0)),
            }
        }
    }
    assert!(seen >= 1.0, "no direct session seen while the client ran");
    server.wait_metric(metric, 0.0).await;
    server.stop().await;
}

/// Runs `compat/js-sdk/{script}` under node against `server`; panics
/// unless it passes all its checks.
async fn run_script(script: &str, server: &support::TestServer) {
    let child = Command::new("node")
        .arg(script)
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
        .unwrap_or_else(|_| panic!("{script} still running after {SCRIPT_TIMEOUT:?}"))
        .expect("script output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "{script} failed ({}).\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("checks passed"),
        "{script} exited 0 without finishing.\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );
}
