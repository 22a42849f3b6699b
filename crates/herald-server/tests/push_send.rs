//! Push sends end to end: a publish with `PUSH`/`BOTH` and a template send
//! (`POST messaging/push/{name}`) reach a recording gateway injected through
//! the server's library API; the keys' push rights; registrations and
//! templates survive a restart (they live in the app's redb file).

mod support;

use std::sync::Arc;
use std::time::Duration;

use herald::{PushBroadcast, PushTransport, RecordingTransport};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{APP, TestServer, WAIT, start_with, temp_dir};

const KEYS: &str = r#"
    [[apps]]
    id = "TEST-APP"

    [[apps.keys]]
    key = "no-push"
    publish = ["*"]
    templates = true

    [[apps]]
    id = "QUIET-APP"
    [[apps.keys]]
    key = "quiet-key"
    push = ["*"]
"#;

async fn server(dir: std::path::PathBuf) -> (TestServer, RecordingTransport, RecordingTransport) {
    let apns = RecordingTransport::new("apns");
    let fcm = RecordingTransport::new("fcm");
    let gateways: Vec<(String, PushBroadcast, Arc<dyn PushTransport>)> = vec![
        (
            APP.into(),
            PushBroadcast::IOS | PushBroadcast::OSX,
            Arc::new(apns.clone()),
        ),
        (APP.into(), PushBroadcast::ANDROID, Arc::new(fcm.clone())),
    ];
    let s = start_with(KEYS, Arc::new(herald::SystemClock), gateways, dir).await;
    (s, apns, fcm)
}

impl TestServer {
    /// Polls the message's status until `done` holds (bounded).
    async fn wait_status(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, body) = self.get(&self.url(&format!("messaging/{id}"))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "status stayed {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn register(&self, id: &str, os: &str, props: Value) {
        let body = json!({"deviceId": id, "deviceToken": format!("tok-{id}"), "os": os,
                          "channels": ["news"], "properties": props});
        let (status, res) = self.post(&self.url("messaging/registrations"), &body).await;
        assert_eq!(status, StatusCode::OK, "{res}");
    }
}

fn pushed(body: &Value, n: u64) -> bool {
    body["deliveries"]["pushSent"].as_u64() == Some(n) && body["deliveries"]["pushPending"] == 0
}

#[tokio::test]
async fn a_push_publish_reaches_the_gateways() {
    let (s, apns, fcm) = server(temp_dir()).await;
    s.register("a", "IOS", json!({})).await;
    s.register("b", "ANDROID", json!({})).await;
    let res = s
        .publish(
            "news",
            json!({"message": "hello", "publishPolicy": "BOTH", "headers": {"ios-badge": 2}}),
        )
        .await;
    assert_eq!(res["status"], "published");
    let id = res["messageId"].as_str().unwrap();
    let status = s.wait_status(id, |b| pushed(b, 2)).await;
    assert_eq!(status["deliveries"]["pushFailed"], 0);
    assert_eq!(apns.sent()[0].content.body.as_deref(), Some("hello"));
    assert_eq!(apns.sent()[0].content.badge, Some(2));
    assert_eq!(fcm.sent()[0].device_token, "tok-b");
    s.stop().await;
}

#[tokio::test]
async fn a_template_send_renders_per_device() {
    let (s, apns, _fcm) = server(temp_dir()).await;
    s.register("a", "IOS", json!({"name": "Ada"})).await;
    let tpl = json!({"name": "hello", "message": "Hi {name|you}, {what}",
                     "audience": {"os": ["IOS"], "channel": "news"}});
    let (status, res) = s.post(&s.url("messaging/pushtemplates"), &tpl).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let (status, res) = s
        .post(
            &s.url("messaging/push/hello"),
            &json!({"templateValues": {"what": "welcome"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let id = res["messageId"].as_str().unwrap().to_owned();
    s.wait_status(&id, |b| pushed(b, 1)).await;
    assert_eq!(
        apns.sent()[0].content.body.as_deref(),
        Some("Hi Ada, welcome")
    );
    // An empty body is a send without values (the JS SDK sends `{}`).
    let (status, _) = s.send(s.http.post(s.url("messaging/push/hello"))).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn sends_need_the_push_right_a_template_and_a_gateway() {
    let (s, apns, _fcm) = server(temp_dir()).await;
    let tpl = json!({"name": "t", "audience": {"channel": "news"}});
    let (status, _) = s
        .post(&s.url_as(APP, "no-push", "messaging/pushtemplates"), &tpl)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, res) = s
        .post(&s.url_as(APP, "no-push", "messaging/push/t"), &json!({}))
        .await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(5033))
    );
    let (status, res) = s
        .post(
            &s.url_as(APP, "no-push", "messaging/news"),
            &json!({"message": 1, "publishPolicy": "PUSH"}),
        )
        .await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(5033))
    );
    let (status, _) = s
        .post(
            &s.url_as(APP, "no-push", "messaging/news"),
            &json!({"message": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "pub/sub needs no push right");
    let (status, res) = s.post(&s.url("messaging/push/nope"), &json!({})).await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(5050))
    );
    let (status, res) = s
        .post(&s.url("messaging/push/t"), &json!({"templateValues": 3}))
        .await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(5013))
    );
    let (status, res) = s.send(s.http.get(s.url("messaging/push/t"))).await;
    assert_eq!(
        (status, res["code"].as_u64().is_some()),
        (StatusCode::METHOD_NOT_ALLOWED, true)
    );
    let (status, res) = s
        .post(
            &s.url_as("QUIET-APP", "quiet-key", "messaging/news"),
            &json!({"message": 1, "publishPolicy": "BOTH"}),
        )
        .await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(5014))
    );
    assert_eq!(
        res["message"],
        "Push notifications are not configured for this application."
    );
    assert!(apns.sent().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn registrations_and_templates_survive_a_restart() {
    let (s, _apns, _fcm) = server(temp_dir()).await;
    s.register("a", "IOS", json!({"lang": "de"})).await;
    let (status, _) = s
        .post(&s.url("messaging/pushtemplates"), &json!({"name": "kept"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let dir = s.stop_keeping_data().await;
    let (s, apns, _fcm) = server(dir).await;
    let (status, res) = s.get(&s.url("messaging/registrations/a")).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res[0]["properties"]["lang"], "de");
    let (status, res) = s.get(&s.url("messaging/pushtemplates/ALL")).await;
    assert_eq!(
        (status, res[0]["name"].as_str()),
        (StatusCode::OK, Some("kept"))
    );
    let res = s
        .publish("news", json!({"message": "x", "publishPolicy": "PUSH"}))
        .await;
    s.wait_status(res["messageId"].as_str().unwrap(), |b| pushed(b, 1))
        .await;
    assert_eq!(apns.sent()[0].device_token, "tok-a");
    s.stop().await;
}

#[tokio::test]
async fn metrics_count_notifications_by_gateway_and_outcome() {
    let (s, apns, _fcm) = server(temp_dir()).await;
    s.register("a", "IOS", json!({})).await;
    s.register("b", "IOS", json!({})).await;
    apns.script("tok-b", [herald::Outcome::InvalidToken { at: None }]);
    let res = s
        .publish("news", json!({"message": "x", "publishPolicy": "PUSH"}))
        .await;
    s.wait_status(res["messageId"].as_str().unwrap(), |b| {
        b["deliveries"]["pushSent"] == 1 && b["deliveries"]["pushInvalidTokens"] == 1
    })
    .await;
    let sample = |outcome: &str| {
        format!(
            "herald_push_notifications_total{{app=\"{APP}\",gateway=\"apns\",outcome=\"{outcome}\"}}"
        )
    };
    s.wait_metric(&sample("sent"), 1.0).await;
    assert_eq!(s.metric(&sample("invalid_token")).await, Some(1.0));
    assert_eq!(
        s.metric(&format!(
            "herald_push_tokens_removed_total{{app=\"{APP}\"}}"
        ))
        .await,
        Some(1.0)
    );
    assert_eq!(
        s.metric(&format!(
            "herald_push_gateway_paused{{app=\"{APP}\",gateway=\"fcm\"}}"
        ))
        .await,
        Some(0.0)
    );
    assert_eq!(
        s.metric("herald_push_jobs_running{app=\"QUIET-APP\"}")
            .await,
        Some(0.0),
        "apps without gateways report zero"
    );
    s.stop().await;
}
