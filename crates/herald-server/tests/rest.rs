//! The REST API end to end: a real server on an ephemeral port, reqwest.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{APP, KEY, WAIT, now_ms, start};

#[tokio::test]
async fn health_and_info() {
    let s = start("").await;
    let (status, body) = s.get(&format!("{}/health", s.base)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));

    let (status, body) = s.get(&s.url("info")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"rtURL": s.base, "loggers": []}));

    // rtURL follows the Host header the client used.
    let (status, body) = s
        .send(
            s.http
                .get(s.url("info"))
                .header("host", "herald.example:9000"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rtURL"], "http://herald.example:9000");
    s.stop().await;
}

#[tokio::test]
async fn bad_credentials_are_401_on_every_endpoint() {
    let s = start("").await;
    for (app, key) in [
        ("NOPE", KEY),
        (APP, "wrong-key"),
        (APP, ""),
        (APP, "test-ke"),
    ] {
        for (method, path) in [
            ("GET", "info"),
            ("POST", "messaging/chan"),
            ("GET", "messaging/some-id"),
            ("DELETE", "messaging/some-id"),
            ("DELETE", "messaging/channels/chan"),
            ("POST", "messaging/chan/subscribe"),
            ("GET", "messaging/chan/some-sub"),
        ] {
            let url = s.url_as(app, key, path);
            let req = s
                .http
                .request(method.parse().unwrap(), &url)
                .json(&json!({"message": 1}));
            let (status, body) = s.send(req).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {url}: {body}");
            assert_eq!(
                body,
                json!({"code": 8002, "message": "Invalid application id or API key."})
            );
        }
    }
    // The right key, percent-encoded, is the same key.
    let (status, _) = s.get(&s.url_as(APP, "test%2Dkey", "info")).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let s = start("").await;
    for url in [
        format!("{}/nope", s.base),
        format!("{}/", s.base),
        format!("{}/{APP}/{KEY}", s.base),
        s.url("nothing/here"),
        s.url("messaging"),
        s.url("messaging/a/b/c"),
    ] {
        let (status, body) = s.get(&url).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
        assert_eq!(body["code"], 8001, "{url}: {body}");
    }
    // Backendless's e-mail endpoint and a push without a template are not
    // served (template sends are: `push_send.rs`).
    for (method, path) in [
        ("POST", "messaging/push"),
        ("POST", "messaging/email"),
        ("POST", "messaging/channels"),
    ] {
        let req = s.http.request(method.parse().unwrap(), s.url(path));
        let (status, body) = s.send(req.json(&json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["code"], 8001);
        assert!(body["message"].as_str().unwrap().contains("Not supported"));
    }
    for (method, url) in [
        ("PUT", s.url("messaging/chan")),
        ("PATCH", s.url("info")),
        ("GET", s.url("messaging/channels/chan")),
        ("DELETE", s.url("messaging/chan/subscribe")),
        ("POST", format!("{}/health", s.base)),
        ("DELETE", format!("{}/metrics", s.base)),
    ] {
        let (status, body) = s.send(s.http.request(method.parse().unwrap(), &url)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {url}");
        assert_eq!(body["code"], 8009);
    }
    s.stop().await;
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let s = start("max_body = 1024").await;
    let big = json!({"message": "x".repeat(2_000)});
    let (status, body) = s.post(&s.url("messaging/chan"), &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], 8003);
    let (status, _) = s.post(&s.url("messaging/chan/subscribe"), &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is fine.
    let ok = json!({"message": "x".repeat(900)});
    let (status, _) = s.post(&s.url("messaging/chan"), &ok).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn malformed_bodies_and_content_types() {
    let s = start("").await;
    let url = s.url("messaging/chan");
    let raw = |body: &'static str, ct: Option<&'static str>| {
        let mut req = s.http.post(&url).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req
    };
    for body in ["{not json", "", "   ", "{\"message\": 1", "[1,", "nul"] {
        let (status, res) = s.send(raw(body, Some("application/json"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {res}");
        assert_eq!(res["code"], 8004, "{body:?}");
    }
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let (status, res) = s.send(raw("{\"message\": 1}", Some(ct))).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        assert_eq!(res["code"], 8005);
    }
    // No content type, or JSON with parameters: accepted.
    let (status, _) = s.send(raw("{\"message\": 1}", None)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .send(raw(
            "{\"message\": 1}",
            Some("application/json; charset=UTF-8"),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    // A body with no `message` key is refused (a non-object has none).
    for body in ["\"just text\"", "{}", "{\"publishAt\": 1}", "[1]", "null"] {
        let (status, res) = s.send(raw(body, Some("application/json"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            res,
            json!({"code": 5013, "message": "message is required"}),
            "{body}"
        );
    }
    let (status, _) = s.send(raw("{\"message\": null}", None)).await;
    assert_eq!(status, StatusCode::OK, "a null message is a message");
    s.stop().await;
}

#[tokio::test]
async fn wrongly_typed_options_get_their_codes() {
    let s = start("").await;
    let url = s.url("messaging/chan");
    let past = now_ms() - 60_000;
    let cases = [
        (json!({"message": 1, "publishAt": "soon"}), 5003),
        (json!({"message": 1, "publishAt": -5}), 5003),
        (json!({"message": 1, "publishAt": past}), 5003),
        (json!({"message": 1, "repeatExpiresAt": "x"}), 5007),
        (json!({"message": 1, "repeatEvery": 0}), 5008),
        (json!({"message": 1, "repeatEvery": 1.5}), 5008),
        (json!({"message": 1, "repeatEvery": "60"}), 5008),
        (json!({"message": 1, "repeatCron": "not cron"}), 5009),
        (json!({"message": 1, "repeatCron": 5}), 5009),
        (json!({"message": 1, "publishPolicy": "SOMETIMES"}), 5011),
        (json!({"message": 1, "pushBroadcast": "FOR_TOASTERS"}), 5011),
        (json!({"message": 1, "pushSinglecast": 5}), 5011),
        (json!({"message": 1, "segmentQuery": "a >"}), 5012),
        (json!({"message": 1, "headers": 5}), 5013),
        (json!({"message": 1, "headers": ["a"]}), 5013),
        (json!({"message": 1, "publisherId": {"x": 1}}), 5013),
    ];
    for (body, code) in cases {
        let (status, res) = s.post(&url, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {res}");
        assert_eq!(res["code"], code, "{body}: {res}");
        // Backendless's text, then what was wrong.
        let message = res["message"].as_str().unwrap_or_default();
        assert!(
            message.len() > 40 && (message.contains(". ") || message.contains(": ")),
            "{body}: {message:?} does not say why"
        );
    }
    // The example from the issue, word for word.
    let (_, res) = s
        .post(&url, &json!({"message": 1, "publishAt": 1_700_000_000}))
        .await;
    assert_eq!(
        res["message"],
        "Invalid publishAt date in the delivery options. \
         1700000000 is in the past: publishAt is in epoch milliseconds."
    );
    // Unknown keys are ignored (the JS SDK merges all options flat).
    let (status, _) = s.post(&url, &json!({"message": 1, "foo": "bar"})).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn publish_status_cancel() {
    let s = start("").await;
    // Immediate: published.
    let st = s.publish("orders", json!({"message": {"n": 1}})).await;
    assert_eq!(st["status"], "published");
    let id = st["messageId"].as_str().unwrap().to_owned();
    let (status, got) = s.get(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["status"], "published");
    assert_eq!(got["messageId"], id.as_str());
    // Cancelling a published message: 5040.
    let (status, res) = s.delete(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        res,
        json!({"code": 5040, "message": "Message has already been canceled or does not exist."})
    );

    // Delayed: scheduled, then cancelled, then 5040.
    let st = s
        .publish(
            "orders",
            json!({"message": 2, "publishAt": now_ms() + 3_600_000}),
        )
        .await;
    assert_eq!(st["status"], "scheduled");
    let id = st["messageId"].as_str().unwrap().to_owned();
    let (_, got) = s.get(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(got["status"], "scheduled");
    let (status, got) = s.delete(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["status"], "cancelled");
    let (_, got) = s.get(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(got["status"], "cancelled");
    let (status, res) = s.delete(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(5040))
    );

    // Unknown ids.
    let (status, got) = s.get(&s.url("messaging/no-such-id")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["status"], "unknown");
    assert_eq!(got["messageId"], "no-such-id");
    let (status, res) = s.delete(&s.url("messaging/no-such-id")).await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(5040))
    );
    s.stop().await;
}

#[tokio::test]
async fn repeating_publish_can_be_cancelled() {
    let s = start("").await;
    let st = s
        .publish(
            "ticks",
            json!({"message": "tick", "repeatEvery": 1, "repeatExpiresAt": now_ms() + 3_600_000}),
        )
        .await;
    assert_eq!(st["status"], "scheduled");
    let id = st["messageId"].as_str().unwrap();
    let (status, got) = s.delete(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(
        (status, got["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    s.stop().await;
}

#[tokio::test]
async fn delete_channel() {
    let s = start("").await;
    let (status, sub) = s
        .post(&s.url("messaging/doomed/subscribe"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(sub["subscriptionId"].is_string());
    let (status, res) = s.delete(&s.url("messaging/channels/doomed")).await;
    assert_eq!((status, res), (StatusCode::OK, json!({"result": true})));
    let (status, res) = s.delete(&s.url("messaging/channels/never-used")).await;
    assert_eq!((status, res), (StatusCode::OK, json!({"result": false})));
    let (status, res) = s.delete(&s.url("messaging/channels/a%2Fb")).await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(5010))
    );
    s.stop().await;
}

/// Subscribes (legacy polling) to `channel_path` and returns the poll URL.
async fn poll_subscribe(s: &support::TestServer, channel_path: &str, body: Value) -> String {
    let (status, res) = s
        .post(
            &s.url(&format!("messaging/{channel_path}/subscribe")),
            &body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
    let id = res["subscriptionId"].as_str().expect("subscriptionId");
    s.url(&format!("messaging/{channel_path}/{id}"))
}

async fn poll(s: &support::TestServer, url: &str) -> Vec<Value> {
    let (status, res) = s.get(url).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    res["messages"].as_array().expect("messages").clone()
}

#[tokio::test]
async fn legacy_polling_round_trip() {
    let s = start("").await;
    let poll_url = poll_subscribe(&s, "feed", json!({"selector": "level > 2"})).await;
    let all_url = poll_subscribe(&s, "feed", json!({"subscriberId": "me"})).await;
    // No body at all is fine too.
    let (status, _) = s.send(s.http.post(s.url("messaging/feed/subscribe"))).await;
    assert_eq!(status, StatusCode::OK);

    assert!(poll(&s, &poll_url).await.is_empty());
    let low = s
        .publish("feed", json!({"message": "low", "headers": {"level": 1}}))
        .await;
    let high = s
        .publish(
            "feed",
            json!({"message": {"t": "high"}, "headers": {"level": 5}, "publisherId": "svc"}),
        )
        .await;
    let got = poll(&s, &poll_url).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(m["messageId"], high["messageId"]);
    assert_eq!(m["data"], json!({"t": "high"}));
    assert_eq!(m["publisherId"], "svc");
    assert_eq!(m["headers"], json!({"level": "5"}));
    let at = m["publishedAt"].as_u64().unwrap();
    assert!(at.abs_diff(now_ms()) < 60_000, "{at}");
    // Each message is returned once.
    assert!(poll(&s, &poll_url).await.is_empty());

    let got = poll(&s, &all_url).await;
    let ids: Vec<_> = got.iter().map(|m| m["messageId"].clone()).collect();
    assert_eq!(ids, [low["messageId"].clone(), high["messageId"].clone()]);
    assert_eq!(got[0]["publisherId"], Value::Null);

    // Unknown subscription, or the right id under another channel: 8006.
    let (status, res) = s.get(&s.url("messaging/feed/no-such-sub")).await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(8006))
    );
    let other = poll_url.replace("/feed/", "/other/");
    let (status, res) = s.get(&other).await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(8006))
    );

    // Bad selectors.
    for sel in [json!("level >"), json!(5)] {
        let (status, res) = s
            .post(
                &s.url("messaging/feed/subscribe"),
                &json!({"selector": sel}),
            )
            .await;
        assert_eq!(
            (status, res["code"].as_u64()),
            (StatusCode::BAD_REQUEST, Some(5012))
        );
    }
    let (status, res) = s
        .post(&s.url("messaging/feed/subscribe"), &json!([1]))
        .await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(8004))
    );
    s.stop().await;
}

#[tokio::test]
async fn polling_subscriptions_expire() {
    // The TTL runs on the server's clock: no real waiting.
    let clock = herald::ManualClock::new(herald_core::Tick::from_millis(support::now_ms()));
    let s = support::start_on("poll_ttl_secs = 300", std::sync::Arc::new(clock.clone())).await;
    let url = poll_subscribe(&s, "feed", json!({})).await;
    assert!(poll(&s, &url).await.is_empty());
    assert_eq!(s.metric("herald_polling_subscriptions").await, Some(1.0));
    assert_eq!(
        s.metric("herald_subscriptions{app=\"TEST-APP\"}").await,
        Some(1.0)
    );
    clock.advance(std::time::Duration::from_secs(299));
    assert!(poll(&s, &url).await.is_empty(), "polled in time: kept");
    clock.advance(std::time::Duration::from_secs(301));
    // Not polled for the TTL (the metrics endpoint does not touch it): gone,
    // and its engine subscription with it.
    s.wait_metric("herald_polling_subscriptions", 0.0).await;
    s.wait_metric("herald_subscriptions{app=\"TEST-APP\"}", 0.0)
        .await;
    let (status, res) = s.get(&url).await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::NOT_FOUND, Some(8006))
    );
    s.stop().await;
}

#[tokio::test]
async fn odd_channel_names() {
    let s = start("").await;
    // `my chan` (sent as my%20chan), unicode (sent UTF-8 percent-encoded),
    // and punctuation are channels like any other.
    for (path, name) in [
        ("my%20chan", "my chan"),
        ("caf%C3%A9", "café"),
        ("%E6%97%A5%E6%9C%AC%E8%AA%9E", "日本語"),
        ("a+b:c@d,e;f=g", "a+b:c@d,e;f=g"),
        ("%F0%9F%93%AE", "📮"),
    ] {
        let poll_url = poll_subscribe(&s, path, json!({})).await;
        // Publish with reqwest encoding the decoded name itself.
        let st = s.publish(name, json!({"message": name})).await;
        assert_eq!(st["deliveries"]["pubsub"], 1, "{name}: {st}");
        let got = poll(&s, &poll_url).await;
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0]["data"], name);
    }
    // Invalid names: 5010.
    let long = "x".repeat(256);
    for path in [
        "a%2Fb",
        "%FF",
        "%E6%97",
        "bad%zz",
        "%",
        long.as_str(),
        "",
        // Control characters: a channel name can never break a log line.
        "x%0A2026-12-03T00:00:00Z%20ERROR%20forged",
        "x%0D",
        "%1B%5B31mred",
        "nul%00",
        "x%E2%80%A8y",
        "del%7F",
    ] {
        let (status, res) = s
            .post(&s.url(&format!("messaging/{path}")), &json!({"message": 1}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path:?}: {res}");
        assert_eq!(res["code"], 5010, "{path:?}");
    }
    let (status, res) = s.post(&s.url("messaging/%FF/subscribe"), &json!({})).await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(5010))
    );
    s.stop().await;
}

const PERMISSIONS: &str = r#"
[[apps]]
id = "TEST-APP"

[[apps.keys]]
key = "narrow"
publish = ["out.*", "chat-?"]
subscribe = ["in.*"]
"#;

#[tokio::test]
async fn permission_denials_from_toml() {
    let s = start(PERMISSIONS).await;
    let narrow = |path: &str| s.url_as(APP, "narrow", path);
    let body = json!({"message": 1});

    for ch in ["out.x", "out.", "chat-1"] {
        let (status, res) = s.post(&narrow(&format!("messaging/{ch}")), &body).await;
        assert_eq!(status, StatusCode::OK, "{ch}: {res}");
    }
    for ch in ["in.x", "chat-12", "other", "out"] {
        let (status, res) = s.post(&narrow(&format!("messaging/{ch}")), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ch}");
        assert_eq!(
            res,
            json!({"code": 5030, "message": "User does not have the permission to publish messages"})
        );
    }
    let (status, res) = s.delete(&narrow("messaging/channels/in.x")).await;
    assert_eq!(
        (status, res["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(5030))
    );

    let (status, _) = s
        .post(&narrow("messaging/in.x/subscribe"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, res) = s
        .post(&narrow("messaging/out.x/subscribe"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        res,
        json!({"code": 5031, "message": "User does not have the permission to subscribe"})
    );
    // The full key of the same app is unaffected.
    let (status, _) = s.post(&s.url("messaging/in.x"), &body).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

/// The security test's finding: any key of the app could read and cancel
/// any message. Status needs publish or subscribe rights on the message's
/// channel, cancel needs publish rights; anything else answers exactly as
/// an unknown id does.
#[tokio::test]
async fn status_and_cancel_check_the_channel() {
    let s = start(
        r#"
        [[apps]]
        id = "TEST-APP"
        [[apps.keys]]
        key = "orders-pub"
        publish = ["orders"]
        subscribe = []
        [[apps.keys]]
        key = "orders-sub"
        publish = []
        subscribe = ["orders"]
        [[apps.keys]]
        key = "news"
        publish = ["news"]
        subscribe = ["news"]
        "#,
    )
    .await;
    let st = s
        .publish(
            "orders",
            json!({"message": 1, "publishAt": now_ms() + 3_600_000}),
        )
        .await;
    let id = st["messageId"].as_str().unwrap().to_owned();
    let unknown = "0190B2E4-5A1C-7D3E-8F00-1234567890AB";
    let url = |key: &str, id: &str| s.url_as(APP, key, &format!("messaging/{id}"));
    // What an unknown id answers, with the id swapped in.
    let as_unknown =
        |(status, body): (StatusCode, Value)| (status, body.to_string().replace(unknown, "<id>"));
    let as_asked =
        |(status, body): (StatusCode, Value)| (status, body.to_string().replace(&id, "<id>"));
    let unknown_get = as_unknown(s.get(&url("news", unknown)).await);
    assert_eq!(unknown_get.0, StatusCode::OK);
    assert!(
        unknown_get.1.contains(r#""status":"unknown""#),
        "{unknown_get:?}"
    );
    let unknown_delete = as_unknown(s.delete(&url("news", unknown)).await);
    assert_eq!(unknown_delete.0, StatusCode::BAD_REQUEST);

    // No rights on the channel: exactly the unknown answers.
    assert_eq!(as_asked(s.get(&url("news", &id)).await), unknown_get);
    assert_eq!(as_asked(s.delete(&url("news", &id)).await), unknown_delete);
    // Subscribe rights: may read, may not cancel.
    let (status, body) = s.get(&url("orders-sub", &id)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("scheduled"))
    );
    assert_eq!(
        as_asked(s.delete(&url("orders-sub", &id)).await),
        unknown_delete
    );
    // Nothing was cancelled by the refused attempts.
    let (_, body) = s.get(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(body["status"], "scheduled");
    // Publish rights: may read and cancel.
    let (status, body) = s.get(&url("orders-pub", &id)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("scheduled"))
    );
    let (status, body) = s.delete(&url("orders-pub", &id)).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{body}"
    );
    s.stop().await;
}

#[tokio::test]
async fn apps_are_isolated() {
    let s = start(
        r#"
        [[apps]]
        id = "OTHER"
        [[apps.keys]]
        key = "other-key"
        "#,
    )
    .await;
    // A key of one app is not a key of another.
    let (status, _) = s.get(&s.url_as("OTHER", KEY, "info")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Same channel name, different apps: no cross-delivery, no shared ids.
    let (_, sub) = s
        .post(
            &s.url_as("OTHER", "other-key", "messaging/shared/subscribe"),
            &json!({}),
        )
        .await;
    let st = s
        .publish(
            "shared",
            json!({"message": 1, "publishAt": now_ms() + 3_600_000}),
        )
        .await;
    let id = st["messageId"].as_str().unwrap();
    let (_, got) = s
        .get(&s.url_as("OTHER", "other-key", &format!("messaging/{id}")))
        .await;
    assert_eq!(got["status"], "unknown");
    let (status, _) = s
        .delete(&s.url_as("OTHER", "other-key", &format!("messaging/{id}")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let st = s.publish("shared", json!({"message": 2})).await;
    assert_eq!(st["deliveries"]["pubsub"], 0);
    let sub_id = sub["subscriptionId"].as_str().unwrap();
    let (_, polled) = s
        .get(&s.url_as("OTHER", "other-key", &format!("messaging/shared/{sub_id}")))
        .await;
    assert_eq!(polled["messages"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn metrics_move() {
    let s = start("").await;
    let publishes = format!("herald_publishes_total{{app=\"{APP}\"}}");
    let cancels = format!("herald_cancels_total{{app=\"{APP}\"}}");
    let pending = format!("herald_scheduled_pending{{app=\"{APP}\"}}");
    assert_eq!(s.metric(&publishes).await, Some(0.0));
    let count_before = s
        .metric("herald_http_request_duration_seconds_count")
        .await
        .unwrap();

    s.publish("m", json!({"message": 1})).await;
    let st = s
        .publish(
            "m",
            json!({"message": 2, "publishAt": now_ms() + 3_600_000}),
        )
        .await;
    assert_eq!(s.metric(&publishes).await, Some(2.0));
    assert_eq!(s.metric(&pending).await, Some(1.0));
    let id = st["messageId"].as_str().unwrap();
    s.delete(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(s.metric(&cancels).await, Some(1.0));
    assert_eq!(s.metric(&pending).await, Some(0.0));

    s.get(&s.url_as(APP, "bad", "info")).await;
    s.get(&s.url_as(APP, "bad", "info")).await;
    s.delete(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(
        s.metric("herald_errors_total{code=\"8002\"}").await,
        Some(2.0)
    );
    assert_eq!(
        s.metric("herald_errors_total{code=\"5040\"}").await,
        Some(1.0)
    );
    assert!(s.metric("herald_http_requests_total{status=\"4xx\"}").await >= Some(3.0));
    let count_after = s
        .metric("herald_http_request_duration_seconds_count")
        .await
        .unwrap();
    assert!(
        count_after >= count_before + 6.0,
        "{count_before} -> {count_after}"
    );
    let text = s.metrics().await;
    assert!(text.contains("# TYPE herald_http_request_duration_seconds histogram"));
    assert!(text.contains("herald_http_request_duration_seconds_bucket{le=\"+Inf\"}"));
    // No API key ever appears in the metrics.
    assert!(!text.contains(KEY));
    s.stop().await;
}

#[tokio::test]
async fn shutdown_is_graceful() {
    let s = start("").await;
    let base = s.base.clone();
    let http = s.http.clone();
    let st = s
        .publish(
            "c",
            json!({"message": 1, "publishAt": now_ms() + 3_600_000}),
        )
        .await;
    assert_eq!(st["status"], "scheduled");
    tokio::time::timeout(WAIT, s.stop())
        .await
        .expect("shutdown in time");
    assert!(http.get(format!("{base}/health")).send().await.is_err());
}

#[tokio::test]
async fn metrics_with_a_token_need_it() {
    let s = start("metrics_token = \"s3cret-token\"").await;
    let url = format!("{}/metrics", s.base);
    for auth in [None, Some("Bearer wrong"), Some("s3cret-token")] {
        let mut req = s.http.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let (status, body) = s.send(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(body["code"], 8011);
    }
    let res = s
        .http
        .get(&url)
        .header("authorization", "Bearer s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("herald_publishes_total"));
    s.stop().await;
}
