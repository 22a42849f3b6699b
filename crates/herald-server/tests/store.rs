//! The server and its stores: retention on the server's clock, damaged
//! records counted in `/metrics`, the store's state in `/health`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use herald::ManualClock;
use herald_core::Tick;
use serde_json::json;
use support::{APP, start_on};

/// The status (`published`, `unknown`, ...) of message `id`.
async fn status_of(s: &support::TestServer, id: &str) -> String {
    let (code, body) = s.get(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(code, 200, "{body}");
    body["status"].as_str().expect("status").to_owned()
}

/// `retention` reaches the store, which runs on the server's clock: a
/// finished message is purged `retention` after it finished, and its
/// status then answers `unknown`.
#[tokio::test]
async fn retention_purges_finished_messages_on_the_servers_clock() {
    let now = support::now_ms();
    let clock = ManualClock::new(Tick::from_millis(now));
    let s = start_on("retention = \"1h\"", Arc::new(clock.clone())).await;
    // A cancel finishes the message when its answer comes (an immediate
    // publish's completion is recorded a little after its answer).
    let scheduled = s
        .publish(
            "news",
            json!({"message": "hello", "publishAt": now + 86_400_000}),
        )
        .await;
    let id = scheduled["messageId"].as_str().expect("an id").to_owned();
    let (code, body) = s.delete(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(
        (code.as_u16(), body["status"].as_str()),
        (200, Some("cancelled"))
    );
    let purged = format!("herald_store_purged_total{{app=\"{APP}\"}}");
    assert_eq!(s.metric(&purged).await, Some(0.0));
    assert_eq!(status_of(&s, &id).await, "cancelled");

    clock.advance(Duration::from_secs(3600));
    // The writer looks at the clock when idle, within a second.
    s.wait_metric(&purged, 1.0).await;
    assert_eq!(status_of(&s, &id).await, "unknown");
    s.stop().await;
}
