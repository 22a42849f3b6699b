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

/// A server on `dir` (kept across restarts), on the system clock.
async fn start_in(dir: &std::path::Path) -> support::TestServer {
    let config = herald_server::Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_owned(),
        apps: vec![herald_server::AppConfig::new(APP, support::KEY)],
        ..herald_server::Config::default()
    };
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .expect("bind");
    let server = herald_server::Server::with_listener(config, listener).expect("server starts");
    support::TestServer {
        base: server.base_url(),
        server: Some(server),
        http: reqwest::Client::new(),
        dir: dir.to_owned(),
    }
}

/// `Idempotency-Key` on `POST messaging/{channel}`: a retry gets the first
/// answer and publishes nothing, also after a restart; another body with
/// the key is 409 (5095); a malformed key is 400 (5096).
#[tokio::test]
async fn idempotency_key_makes_a_publish_safe_to_retry() {
    let dir = support::temp_dir();
    let s = start_in(&dir).await;
    let url = s.url("messaging/orders");
    let post = |s: &support::TestServer, key: &str, body: serde_json::Value| {
        s.http
            .post(s.url("messaging/orders"))
            .header("Idempotency-Key", key)
            .json(&body)
    };
    let (code, first) = s
        .send(post(&s, "order-42", json!({"message": "shipped"})))
        .await;
    assert_eq!(code, 200, "{first}");
    let (code, retry) = s
        .send(post(&s, "order-42", json!({"message": "shipped"})))
        .await;
    assert_eq!(code, 200, "{retry}");
    assert_eq!(retry["messageId"], first["messageId"]);
    assert_eq!(retry["status"], "published");
    let delayed = json!({"message": "later", "publishAt": support::now_ms() + 3_600_000});
    let (_, scheduled) = s.send(post(&s, "order-43", delayed.clone())).await;
    assert_eq!(scheduled["status"], "scheduled", "{scheduled}");

    let (code, body) = s
        .send(post(&s, "order-42", json!({"message": "lost"})))
        .await;
    assert_eq!(
        (code.as_u16(), &body["code"]),
        (409, &json!(5095)),
        "{body}"
    );
    let (code, body) = s
        .send(post(&s, &"k".repeat(256), json!({"message": 1})))
        .await;
    assert_eq!(
        (code.as_u16(), &body["code"]),
        (400, &json!(5096)),
        "{body}"
    );
    let not_ascii = reqwest::header::HeaderValue::from_bytes(b"caf\xe9").expect("obs-text");
    let req = s
        .http
        .post(url.clone())
        .header("Idempotency-Key", not_ascii)
        .json(&json!({"message": 1}));
    let (code, body) = s.send(req).await;
    assert_eq!(
        (code.as_u16(), &body["code"]),
        (400, &json!(5096)),
        "{body}"
    );
    let req = s
        .http
        .post(url.clone())
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b")
        .json(&json!({"message": 1}));
    let (code, body) = s.send(req).await;
    assert_eq!(
        (code.as_u16(), &body["code"]),
        (400, &json!(5096)),
        "two keys: {body}"
    );
    let published = format!("herald_publishes_total{{app=\"{APP}\"}}");
    assert_eq!(
        s.metric(&published).await,
        Some(2.0),
        "two publishes, no more"
    );
    s.server
        .expect("running")
        .shutdown()
        .await
        .expect("clean shutdown");

    // After a restart, the retries still get the first answers.
    let s = start_in(&dir).await;
    let (code, retry) = s
        .send(post(&s, "order-42", json!({"message": "shipped"})))
        .await;
    assert_eq!(
        (code.as_u16(), &retry["messageId"]),
        (200, &first["messageId"])
    );
    let (_, retry) = s.send(post(&s, "order-43", delayed)).await;
    assert_eq!(
        (&retry["messageId"], &retry["status"]),
        (&scheduled["messageId"], &json!("scheduled"))
    );
    assert_eq!(s.metric(&published).await, Some(0.0), "nothing new");
    s.stop().await;
}
