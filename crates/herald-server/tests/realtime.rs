//! The socket.io real-time API end to end: `rust_socketio` (long-polling)
//! and a raw WebSocket client against a real server, publishing over REST.

mod support;

use serde_json::{Value, json};
use support::{APP, KEY, RawWs, Rt, now_ms, start};

/// Collects `SUB_RES` data for listener `id` until one whose message is
/// `until`; panics on anything else (errors, other listeners' messages).
async fn messages_until(rt: &mut Rt, id: &str, until: &Value) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let (res, before) = rt.expect("SUB_RES").await;
        assert!(before.is_empty(), "unexpected events {before:?}");
        assert_eq!(res["id"], id, "{res}");
        let data = res["data"].clone();
        assert!(data.is_object(), "{res}");
        let done = data["message"] == *until;
        got.push(data);
        if done {
            return got;
        }
    }
}

#[tokio::test]
async fn selector_filters_and_header_values_are_strings() {
    let s = start("").await;
    let mut rt = Rt::connect(&s.base, APP, KEY).await;

    rt.sub_on("c1", "PUB_SUB_CONNECT", json!({"channel": "sensors"}))
        .await;
    let (ready, _) = rt.expect("SUB_READY").await;
    assert_eq!(ready, json!({"id": "c1"}));

    rt.sub_on(
        "m1",
        "PUB_SUB_MESSAGES",
        json!({"channel": "sensors", "selector": "foo > 10"}),
    )
    .await;
    let (ready, _) = rt.expect("SUB_READY").await;
    assert_eq!(ready, json!({"id": "m1"}));

    for foo in [5, 10, 20, 50] {
        s.publish(
            "sensors",
            json!({"message": format!("foo={foo}"), "headers": {"foo": foo}}),
        )
        .await;
    }
    s.publish("sensors", json!({"message": "no headers"})).await;
    s.publish(
        "sensors",
        json!({"message": "empty headers", "headers": {}}),
    )
    .await;
    // A last matching message: everything before it has been delivered
    // (one listener sees runs in publish order), so nothing else came.
    let last = json!("marker");
    s.publish(
        "sensors",
        json!({"message": last, "headers": {"foo": 1000, "kind": "end"}}),
    )
    .await;

    let got = messages_until(&mut rt, "m1", &last).await;
    let bodies: Vec<&Value> = got.iter().map(|d| &d["message"]).collect();
    assert_eq!(bodies, [&json!("foo=20"), &json!("foo=50"), &last]);
    // Header values arrive as strings; the Backendless delivered shape.
    assert_eq!(got[0]["headers"], json!({"foo": "20"}));
    assert_eq!(got[2]["headers"], json!({"foo": "1000", "kind": "end"}));
    let m = &got[0];
    assert!(m["messageId"].is_string());
    assert!(m["timestamp"].as_u64().unwrap().abs_diff(now_ms()) < 60_000);
    for (k, v) in [
        ("publisherId", Value::Null),
        ("publishAt", json!(0)),
        ("repeatEvery", json!(0)),
        ("repeatExpiresAt", json!(0)),
    ] {
        assert_eq!(m[k], v, "{k}");
    }
    rt.disconnect().await;
    s.stop().await;
}

#[tokio::test]
async fn delayed_publish_is_delivered() {
    let s = start("").await;
    let mut rt = Rt::connect(&s.base, APP, KEY).await;
    rt.sub_on("m", "PUB_SUB_MESSAGES", json!({"channel": "later"}))
        .await;
    rt.expect("SUB_READY").await;

    let at = now_ms() + 300;
    let st = s
        .publish("later", json!({"message": "delayed", "publishAt": at}))
        .await;
    assert_eq!(st["status"], "scheduled");
    // Generous timeout, no fixed sleep.
    let (res, _) = rt.expect("SUB_RES").await;
    assert_eq!(res["id"], "m");
    let data = &res["data"];
    assert_eq!(data["message"], "delayed");
    assert_eq!(data["messageId"], st["messageId"]);
    assert_eq!(data["publishAt"], at);
    assert!(data["timestamp"].as_u64().unwrap() >= at, "{data}");
    let id = st["messageId"].as_str().unwrap();
    let (_, status) = s.get(&s.url(&format!("messaging/{id}"))).await;
    assert_eq!(status["status"], "published");
    rt.disconnect().await;
    s.stop().await;
}

#[tokio::test]
async fn sub_off_stops_delivery() {
    let s = start("").await;
    let mut rt = Rt::connect(&s.base, APP, KEY).await;
    rt.sub_on("a", "PUB_SUB_MESSAGES", json!({"channel": "ch"}))
        .await;
    rt.expect("SUB_READY").await;
    rt.sub_on("b", "PUB_SUB_MESSAGES", json!({"channel": "ch"}))
        .await;
    rt.expect("SUB_READY").await;
    s.wait_metric("herald_realtime_subscriptions", 2.0).await;

    let st = s.publish("ch", json!({"message": "both"})).await;
    assert_eq!(st["deliveries"]["pubsub"], 2);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (res, _) = rt.expect("SUB_RES").await;
        assert_eq!(res["data"]["message"], "both");
        ids.push(res["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    assert_eq!(ids, ["a", "b"]);

    rt.emit("SUB_OFF", json!({"id": "a"})).await;
    // Once the listener is gone (its engine subscription dropped) ...
    s.wait_metric("herald_realtime_subscriptions", 1.0).await;
    // ... a publish reaches only "b", and "a" receives nothing at all.
    let st = s.publish("ch", json!({"message": "only b"})).await;
    assert_eq!(st["deliveries"]["pubsub"], 1);
    let got = messages_until(&mut rt, "b", &json!("only b")).await;
    assert_eq!(got.len(), 1);
    rt.disconnect().await;
    s.stop().await;
}

#[tokio::test]
async fn disconnect_stops_everything() {
    let s = start("").await;
    let mut rt = Rt::connect(&s.base, APP, KEY).await;
    rt.sub_on("a", "PUB_SUB_MESSAGES", json!({"channel": "ch"}))
        .await;
    rt.expect("SUB_READY").await;
    s.wait_metric("herald_realtime_connections", 1.0).await;
    s.wait_metric("herald_realtime_subscriptions", 1.0).await;
    rt.disconnect().await;
    s.wait_metric("herald_realtime_connections", 0.0).await;
    s.wait_metric("herald_realtime_subscriptions", 0.0).await;
    let st = s.publish("ch", json!({"message": 1})).await;
    assert_eq!(st["deliveries"]["pubsub"], 0);
    s.stop().await;
}

#[tokio::test]
async fn bad_selector_is_5012() {
    let s = start("").await;
    let mut rt = Rt::connect(&s.base, APP, KEY).await;
    rt.sub_on(
        "bad",
        "PUB_SUB_MESSAGES",
        json!({"channel": "ch", "selector": "foo >"}),
    )
    .await;
    let (res, before) = rt.expect("SUB_RES").await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(res["id"], "bad");
    assert_eq!(res["error"]["code"], 5012, "{res}");
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid selector at column"),
        "{res}"
    );
    assert!(res.get("data").is_none());

    rt.sub_on(
        "typed",
        "PUB_SUB_MESSAGES",
        json!({"channel": "ch", "selector": 7}),
    )
    .await;
    let (res, _) = rt.expect("SUB_RES").await;
    assert_eq!(
        (res["id"].as_str(), res["error"]["code"].as_u64()),
        (Some("typed"), Some(5012))
    );

    // A bad channel: 5010.
    for (id, options) in [("slash", json!({"channel": "a/b"})), ("none", json!({}))] {
        rt.sub_on(id, "PUB_SUB_MESSAGES", options).await;
        let (res, _) = rt.expect("SUB_RES").await;
        assert_eq!(
            (res["id"].as_str(), res["error"]["code"].as_u64()),
            (Some(id), Some(5010))
        );
    }
    // The connection still works afterwards.
    rt.sub_on("ok", "PUB_SUB_MESSAGES", json!({"channel": "ch"}))
        .await;
    let (ready, _) = rt.expect("SUB_READY").await;
    assert_eq!(ready["id"], "ok");
    assert!(s.metric("herald_errors_total{code=\"5012\"}").await >= Some(2.0));
    rt.disconnect().await;
    s.stop().await;
}

#[tokio::test]
async fn denied_subscribe_is_5031() {
    let s = start(
        r#"
        [[apps]]
        id = "TEST-APP"
        [[apps.keys]]
        key = "reader"
        publish = []
        subscribe = ["public.*"]
        "#,
    )
    .await;
    let mut rt = Rt::connect(&s.base, APP, "reader").await;
    for name in ["PUB_SUB_CONNECT", "PUB_SUB_MESSAGES"] {
        rt.sub_on(name, name, json!({"channel": "private"})).await;
        let (res, _) = rt.expect("SUB_RES").await;
        assert_eq!(res["id"], name);
        assert_eq!(
            res["error"],
            json!({"code": 5031, "message": "User does not have the permission to subscribe"})
        );
    }
    rt.sub_on("ok", "PUB_SUB_MESSAGES", json!({"channel": "public.news"}))
        .await;
    let (ready, _) = rt.expect("SUB_READY").await;
    assert_eq!(ready["id"], "ok");
    s.publish("public.news", json!({"message": "hi"})).await;
    let (res, _) = rt.expect("SUB_RES").await;
    assert_eq!(
        (res["id"].as_str(), res["data"]["message"].as_str()),
        (Some("ok"), Some("hi"))
    );
    rt.disconnect().await;
    s.stop().await;
}

#[tokio::test]
async fn unsupported_requests_are_answered() {
    let s = start("").await;
    let mut rt = Rt::connect(&s.base, APP, KEY).await;
    rt.emit(
        "MET_REQ",
        json!({"id": "t", "name": "SET_USER_TOKEN", "options": {"userToken": null}}),
    )
    .await;
    let (res, _) = rt.expect("MET_RES").await;
    assert_eq!(res, json!({"id": "t", "result": null}));
    rt.emit(
        "MET_REQ",
        json!({"id": "c", "name": "PUB_SUB_COMMAND", "options": {"channel": "x", "type": "t", "data": 1}}),
    )
    .await;
    let (res, _) = rt.expect("MET_RES").await;
    assert_eq!(
        (res["id"].as_str(), res["error"]["code"].as_u64()),
        (Some("c"), Some(8007))
    );
    rt.sub_on("u", "PUB_SUB_USERS", json!({"channel": "x"}))
        .await;
    let (res, _) = rt.expect("SUB_RES").await;
    assert_eq!(
        (res["id"].as_str(), res["error"]["code"].as_u64()),
        (Some("u"), Some(8007))
    );
    rt.disconnect().await;
    s.stop().await;
}

#[tokio::test]
async fn websocket_transport_and_bad_keys() {
    let s = start("").await;
    let addr = s.server.as_ref().unwrap().local_addr();

    let (mut ws, open) = RawWs::open(addr, APP, KEY).await;
    assert!(open["sid"].is_string(), "{open}");
    let answer = ws.connect_nsp().await;
    assert!(answer.starts_with(&format!("40/{APP},")), "{answer}");
    ws.emit(
        "SUB_ON",
        &json!({"id": 1, "name": "PUB_SUB_MESSAGES", "options": {"channel": "ws", "selector": "n >= 2"}}),
    )
    .await;
    assert_eq!(
        ws.next_event().await,
        ("SUB_READY".to_owned(), json!({"id": "1"}))
    );
    for n in 1..=3 {
        s.publish("ws", json!({"message": n, "headers": {"n": n}}))
            .await;
    }
    for n in 2..=3 {
        let (name, res) = ws.next_event().await;
        assert_eq!(name, "SUB_RES");
        assert_eq!(res["data"]["message"], n);
        assert_eq!(res["data"]["headers"]["n"], n.to_string());
    }

    // A wrong or missing key: refused before socketioxide opens a session
    // (401 on the handshake, long polling and WebSocket alike).
    for query in [
        "EIO=4&transport=polling&apiKey=wrong",
        "EIO=4&transport=polling",
        "EIO=4&transport=websocket&apiKey=wrong",
        "EIO=4&transport=websocket&apiKey=",
    ] {
        let res = s
            .http
            .get(format!("{}/{APP}/?{query}", s.base))
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{query}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body,
            json!({"code": 8002, "message": "Invalid application id or API key."})
        );
    }
    assert_eq!(
        s.metric("herald_realtime_connections").await,
        Some(1.0),
        "only the good connection"
    );
    // An unknown app has no socket.io endpoint at all.
    let res = s
        .http
        .get(format!("{}/NO-APP/?EIO=4&transport=polling", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    s.stop().await;
}

/// A client may subscribe the moment its namespace connection is
/// acknowledged (the JS SDK does): the server must already listen for
/// `SUB_ON` then, even while it is busy with other connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sub_on_right_after_connect_is_not_lost() {
    let s = start("").await;
    let addr = s.server.as_ref().unwrap().local_addr();
    let clients: Vec<_> = (0..200)
        .map(|i| {
            tokio::spawn(async move {
                let (mut ws, _) = RawWs::open(addr, APP, KEY).await;
                let answer = ws.connect_nsp().await;
                assert!(answer.starts_with(&format!("40/{APP},")), "{answer}");
                ws.emit(
                    "SUB_ON",
                    &json!({"id": i, "name": "PUB_SUB_MESSAGES", "options": {"channel": "busy"}}),
                )
                .await;
                let got = ws.next_event().await;
                assert_eq!(got, ("SUB_READY".to_owned(), json!({"id": i.to_string()})));
                ws
            })
        })
        .collect();
    let mut sockets = Vec::new();
    for c in clients {
        sockets.push(c.await.expect("client subscribed"));
    }
    s.wait_metric("herald_realtime_subscriptions", 200.0).await;
    // Closed by the clients first: these raw sockets would not answer the
    // server's close handshake, and shutdown would wait its grace period.
    drop(sockets);
    s.wait_metric("herald_realtime_connections", 0.0).await;
    s.stop().await;
}
