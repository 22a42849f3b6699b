//! The direct WebSocket path: sessions opened straight on a WebSocket are
//! served without socketioxide, by shared writer tasks. The protocol
//! rules a WebSocket server must keep (RFC 6455), Engine.IO's and
//! socket.io's answers, fan-out over many connections, and the shutdown.

mod support;

use std::sync::Arc;
use std::time::Duration;

use herald::ManualClock;
use herald_core::Tick;

use serde_json::json;
use support::{APP, KEY, RawWs, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DIRECT: &str = "herald_realtime_direct_sessions";

async fn connect(s: &support::TestServer) -> RawWs {
    let addr = s.server.as_ref().unwrap().local_addr();
    let (mut ws, open) = RawWs::open(addr, APP, KEY).await;
    assert_eq!(open["upgrades"], json!([]), "{open}");
    assert!(open["pingInterval"].is_u64(), "{open}");
    let answer = ws.connect_nsp().await;
    assert!(answer.starts_with(&format!("40/{APP},")), "{answer}");
    ws
}

async fn subscribe(ws: &mut RawWs, id: u64, channel: &str) {
    ws.emit(
        "SUB_ON",
        &json!({"id": id, "name": "PUB_SUB_MESSAGES", "options": {"channel": channel}}),
    )
    .await;
    assert_eq!(
        ws.next_event().await,
        ("SUB_READY".to_owned(), json!({ "id": id.to_string() }))
    );
}

/// The raw HTTP answer to a handshake request with `headers`.
async fn handshake(addr: std::net::SocketAddr, headers: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /{APP}/?EIO=4&transport=websocket&apiKey={KEY} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn a_websocket_session_is_served_by_the_direct_path() {
    let s = start("").await;
    assert_eq!(s.metric(DIRECT).await, Some(0.0));
    let mut ws = connect(&s).await;
    assert_eq!(s.metric(DIRECT).await, Some(1.0));
    assert_eq!(s.metric("herald_realtime_connections").await, Some(1.0));
    subscribe(&mut ws, 1, "news").await;
    s.publish("news", json!({"message": "héllo \"quoted\""}))
        .await;
    let (name, res) = ws.next_event().await;
    assert_eq!(name, "SUB_RES");
    assert_eq!(res["id"], "1");
    assert_eq!(res["data"]["message"], "héllo \"quoted\"");
    drop(ws);
    s.wait_metric(DIRECT, 0.0).await;
    s.wait_metric("herald_realtime_connections", 0.0).await;
    s.stop().await;
}

#[tokio::test]
async fn the_handshake_is_checked_and_answered_as_rfc_6455_says() {
    let s = start("").await;
    let addr = s.server.as_ref().unwrap().local_addr();
    let good = "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let head = handshake(addr, good).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head}"
    );
    for bad in [
        // Another version.
        "Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n",
        // No key.
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
        // A key that is not 16 bytes.
        "Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n",
        // Not an upgrade.
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    ] {
        let head = handshake(addr, bad).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{bad}: {head}");
    }
    s.wait_metric(DIRECT, 0.0).await;
    s.stop().await;
}

#[tokio::test]
async fn fragmented_messages_and_pings_between_them_are_understood() {
    let s = start("").await;
    let mut ws = connect(&s).await;
    let packet = format!(
        "42/{APP},{}",
        json!(["SUB_ON", {"id": 7, "name": "PUB_SUB_MESSAGES", "options": {"channel": "frag"}}])
    );
    let (a, b) = packet.as_bytes().split_at(10);
    let (b, c) = b.split_at(20);
    ws.send_frame(false, 0x1, a, true).await;
    ws.send_frame(false, 0x0, b, true).await;
    // A ping between fragments is answered with its payload.
    ws.send_frame(true, 0x9, b"are you there", true).await;
    ws.send_frame(true, 0x0, c, true).await;
    assert_eq!(
        ws.recv_frame().await,
        Some((0xA, b"are you there".to_vec()))
    );
    assert_eq!(
        ws.next_event().await,
        ("SUB_READY".to_owned(), json!({"id": "7"}))
    );
    s.stop().await;
}

#[tokio::test]
async fn a_protocol_error_closes_with_its_code_and_frees_everything() {
    let s = start("").await;
    // What the client does wrong: (fin, opcode, payload, masked), and
    // the close code it must get.
    let cases = [
        (
            "an unmasked frame",
            (true, 0x1, b"3".to_vec(), false),
            1002u16,
        ),
        ("a reserved opcode", (true, 0x3, b"x".to_vec(), true), 1002),
        (
            "text that is not UTF-8",
            (true, 0x1, vec![0x34, 0xff], true),
            1007,
        ),
        ("a binary message", (true, 0x2, vec![1, 2, 3], true), 1003),
    ];
    for (what, frame, code) in cases {
        let mut ws = connect(&s).await;
        subscribe(&mut ws, 1, "gone").await;
        let (fin, opcode, payload, masked) = frame;
        ws.send_frame(fin, opcode, &payload, masked).await;
        assert_eq!(ws.until_close().await.0, Some(code), "{what}");
        assert_eq!(ws.recv_frame().await, None, "{what}: the socket closes");
        s.wait_metric(DIRECT, 0.0).await;
        s.wait_metric("herald_realtime_subscriptions", 0.0).await;
        s.wait_metric("herald_realtime_connections", 0.0).await;
    }
    // A message over Engine.IO's maxPayload: 1009, before it is read whole.
    let mut ws = connect(&s).await;
    let big = "4".repeat(200_000);
    ws.send_frame(true, 0x1, big.as_bytes(), true).await;
    assert_eq!(ws.until_close().await.0, Some(1009));
    s.wait_metric(DIRECT, 0.0).await;
    s.stop().await;
}

#[tokio::test]
async fn socket_io_answers_a_wrong_namespace_and_a_disconnect() {
    let s = start("").await;
    let addr = s.server.as_ref().unwrap().local_addr();
    let (mut ws, _) = RawWs::open(addr, APP, KEY).await;
    ws.send_text("40/elsewhere,").await;
    let answer = ws.recv_text().await.unwrap();
    assert_eq!(answer, "44/elsewhere,{\"message\":\"Invalid namespace\"}");
    // Events before the namespace connection are ignored, not answered.
    ws.emit("MET_REQ", &json!({"id": "m", "name": "SET_USER_TOKEN"}))
        .await;
    let answer = ws.connect_nsp().await;
    assert!(
        answer.starts_with(&format!("40/{APP},{{\"sid\":")),
        "{answer}"
    );
    ws.emit("MET_REQ", &json!({"id": "m", "name": "SET_USER_TOKEN"}))
        .await;
    assert_eq!(
        ws.next_event().await,
        ("MET_RES".to_owned(), json!({"id": "m", "result": null}))
    );
    subscribe(&mut ws, 1, "bye").await;
    ws.send_text(&format!("41/{APP},")).await;
    s.wait_metric("herald_realtime_subscriptions", 0.0).await;
    s.wait_metric(DIRECT, 0.0).await;
    s.stop().await;
}

/// Many connections share a few writer tasks: every subscriber of every
/// connection gets every run, in publish order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_get_every_run_in_order() {
    let s = start("").await;
    let mut clients = Vec::new();
    for i in 0..100u64 {
        let mut ws = connect(&s).await;
        subscribe(&mut ws, i, "fan").await;
        if i % 10 == 0 {
            // A second listener on the same connection.
            subscribe(&mut ws, 1_000 + i, "fan").await;
        }
        clients.push(ws);
    }
    assert_eq!(s.metric(DIRECT).await, Some(100.0));
    for n in 0..20 {
        s.publish("fan", json!({ "message": n })).await;
    }
    for (i, ws) in clients.iter_mut().enumerate() {
        let listeners = if i % 10 == 0 { 2 } else { 1 };
        let mut next = vec![0; listeners];
        for _ in 0..20 * listeners {
            let (name, res) = ws.next_event().await;
            assert_eq!(name, "SUB_RES");
            let which = usize::from(res["id"].as_str().unwrap().parse::<u64>().unwrap() >= 1_000);
            assert_eq!(res["data"]["message"], next[which], "client {i}: {res}");
            next[which] += 1;
        }
    }
    drop(clients);
    s.wait_metric(DIRECT, 0.0).await;
    s.stop().await;
}

#[tokio::test]
async fn a_shutdown_tells_each_client_and_closes() {
    let s = start("").await;
    let mut ws = connect(&s).await;
    subscribe(&mut ws, 1, "down").await;
    let stopping = tokio::spawn(s.stop());
    let (close, texts) = ws.until_close().await;
    assert_eq!(close, Some(1001), "going away; saw {texts:?}");
    assert!(texts.contains(&format!("41/{APP},")), "{texts:?}");
    // The client answers the close; the server is done with it.
    ws.send_frame(true, 0x8, &1000u16.to_be_bytes(), true).await;
    tokio::time::timeout(support::WAIT, stopping)
        .await
        .expect("the server stops")
        .unwrap();
}

/// Engine.IO's heartbeat on the server's clock: a ping every
/// `ping_interval`; a pong keeps the session, silence past `ping_timeout`
/// closes it and frees what it held.
#[tokio::test]
async fn the_heartbeat_keeps_an_answering_client_and_drops_a_silent_one() {
    let clock = Arc::new(ManualClock::new(Tick::from_millis(support::now_ms())));
    let s = support::start_on("", clock.clone()).await;
    let mut ws = connect(&s).await;
    subscribe(&mut ws, 1, "beat").await;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(25));
        assert_eq!(ws.recv_frame().await, Some((0x1, b"2".to_vec())), "a ping");
        ws.send_text("3").await;
        // A round trip: the server has read the pong when it answers.
        ws.emit("MET_REQ", &json!({"id": "sync", "name": "SET_USER_TOKEN"}))
            .await;
        assert_eq!(ws.next_event().await.0, "MET_RES");
        // Nearly the whole timeout and more: the pong counted.
        clock.advance(Duration::from_secs(20));
    }
    s.publish("beat", json!({"message": "still here"})).await;
    let (_, res) = ws.next_event().await;
    assert_eq!(res["data"]["message"], "still here");
    assert_eq!(s.metric(DIRECT).await, Some(1.0));
    // The next ping goes unanswered.
    clock.advance(Duration::from_secs(5));
    assert_eq!(ws.recv_frame().await, Some((0x1, b"2".to_vec())));
    clock.advance(Duration::from_secs(20));
    assert_eq!(ws.until_close().await.0, Some(1000));
    s.wait_metric(DIRECT, 0.0).await;
    s.wait_metric("herald_realtime_subscriptions", 0.0).await;
    s.wait_metric("herald_realtime_connections", 0.0).await;
    s.stop().await;
}

/// A session that never connects to the app's namespace is closed after
/// socket.io's 45 s `connectTimeout` (on the server's clock).
#[tokio::test]
async fn a_session_that_never_connects_is_closed() {
    let clock = Arc::new(ManualClock::new(Tick::from_millis(support::now_ms())));
    let s = support::start_on("ping_interval = \"1h\"", clock.clone()).await;
    let addr = s.server.as_ref().unwrap().local_addr();
    let (mut ws, _) = RawWs::open(addr, APP, KEY).await;
    // A round trip: the session is up (a wrong namespace is answered).
    ws.send_text("40/elsewhere,").await;
    assert!(ws.recv_text().await.unwrap().starts_with("44/elsewhere,"));
    assert_eq!(s.metric(DIRECT).await, Some(1.0));
    clock.advance(Duration::from_secs(44));
    ws.send_text("40/elsewhere,").await;
    assert!(
        ws.recv_text().await.unwrap().starts_with("44/elsewhere,"),
        "still open at 44 s"
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(ws.until_close().await.0, Some(1000), "a close frame");
    s.wait_metric(DIRECT, 0.0).await;
    s.stop().await;
}

/// A WebSocket session keeps its connection's `max_connections` slot for
/// as long as it is open (hyper's connection ends at the upgrade): with
/// the limit reached by sessions, a new connection waits until one
/// closes.
#[tokio::test]
async fn direct_sessions_count_against_max_connections() {
    let s = start("max_connections = 2").await;
    let addr = s.server.as_ref().unwrap().local_addr();
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(connect(&s).await);
    }
    // A third connection is not served while both sessions are open (a
    // bounded check that nothing comes: it has not been accepted)...
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    waiting
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut buf))
            .await
            .is_err(),
        "served past max_connections"
    );
    // ...and is once a session closes.
    drop(open.pop());
    let n = tokio::time::timeout(support::WAIT, waiting.read(&mut buf))
        .await
        .expect("served once a session closed")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    drop(open);
    s.wait_metric(DIRECT, 0.0).await;
    s.stop().await;
}

/// A long-polling session outlives the requests that serve it, so it takes
/// a `max_connections` slot of its own while it lasts: with every slot
/// taken a handshake is answered `503` (and holds nothing), and once a
/// session ends its slot serves the next one. Without the slot a flood of
/// handshakes (a valid key each) would keep a session per handshake alive
/// until its connect timeout.
#[tokio::test]
async fn long_polling_sessions_count_against_max_connections() {
    let s = start("max_connections = 4").await;
    // The test client's one keep-alive connection holds a slot, the
    // listener one for the next connection it accepts, the two sessions
    // the other two.
    let (first, _) = open_polling(&s).await;
    let (_second, _) = open_polling(&s).await;
    assert_eq!(s.metric(DIRECT).await, Some(2.0));
    let full = s.http.get(eio_url(&s, None)).send().await.unwrap();
    assert_eq!(full.status(), 503, "a third session past max_connections");
    assert_eq!(full.headers()["retry-after"], "1");
    assert_eq!(s.metric(DIRECT).await, Some(2.0), "no session for it");
    // The first session ends (Engine.IO's close packet): its slot is free.
    assert_eq!(post(&s, &first, &["1"]).await, 200);
    s.wait_metric(DIRECT, 1.0).await;
    let (_third, _) = open_polling(&s).await;
    assert_eq!(s.metric(DIRECT).await, Some(2.0));
    s.stop().await;
}

// ---------------------------------------------------------------------------
// Long polling and the upgrade (the JS SDK's way), raw.

/// The Engine.IO URL of session `sid` (or a handshake without one).
fn eio_url(s: &support::TestServer, sid: Option<&str>) -> String {
    match sid {
        Some(sid) => format!("{}/{APP}/?EIO=4&transport=polling&sid={sid}", s.base),
        None => format!("{}/{APP}/?EIO=4&transport=polling&apiKey={KEY}", s.base),
    }
}

/// Opens a long-polling session; its sid and open packet.
async fn open_polling(s: &support::TestServer) -> (String, serde_json::Value) {
    let res = s.http.get(eio_url(s, None)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain; charset=UTF-8");
    let text = res.text().await.unwrap();
    let open: serde_json::Value =
        serde_json::from_str(text.strip_prefix('0').expect("an open packet")).unwrap();
    (open["sid"].as_str().unwrap().to_owned(), open)
}

/// One long poll: the packets it brings.
async fn poll(s: &support::TestServer, sid: &str) -> Vec<String> {
    let res = tokio::time::timeout(support::WAIT, s.http.get(eio_url(s, Some(sid))).send())
        .await
        .expect("the poll answers")
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    text.split('\u{1e}').map(str::to_owned).collect()
}

/// A long poll running on its own task: its answer's text.
fn spawn_poll(s: &support::TestServer, sid: &str) -> tokio::task::JoinHandle<String> {
    let (http, url) = (s.http.clone(), eio_url(s, Some(sid)));
    tokio::spawn(async move { http.get(url).send().await.unwrap().text().await.unwrap() })
}

/// POSTs `packets`.
async fn post(s: &support::TestServer, sid: &str, packets: &[&str]) -> reqwest::StatusCode {
    s.http
        .post(eio_url(s, Some(sid)))
        .body(packets.join("\u{1e}"))
        .send()
        .await
        .unwrap()
        .status()
}

fn sub_on_packet(id: u64, channel: &str) -> String {
    format!(
        "42/{APP},{}",
        json!(["SUB_ON", {"id": id, "name": "PUB_SUB_MESSAGES", "options": {"channel": channel}}])
    )
}

#[tokio::test]
async fn a_long_polling_session_connects_subscribes_and_receives() {
    let s = start("").await;
    let (sid, open) = open_polling(&s).await;
    assert_eq!(open["upgrades"], json!(["websocket"]), "{open}");
    assert_eq!(s.metric(DIRECT).await, Some(1.0));
    // Two packets in one POST: the namespace connection and a SUB_ON.
    let connect = format!("40/{APP},");
    assert_eq!(
        post(&s, &sid, &[&connect, &sub_on_packet(1, "lp")]).await,
        200
    );
    let packets = poll(&s, &sid).await;
    assert!(
        packets[0].starts_with(&format!("40/{APP},{{\"sid\":")),
        "{packets:?}"
    );
    assert_eq!(
        packets[1],
        format!("42/{APP},[\"SUB_READY\",{{\"id\":\"1\"}}]")
    );
    // Runs published while nobody polls wait for the next poll, in order.
    for n in 0..3 {
        s.publish("lp", json!({ "message": n })).await;
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        for p in poll(&s, &sid).await {
            let v: serde_json::Value =
                serde_json::from_str(p.strip_prefix(&format!("42/{APP},")).unwrap()).unwrap();
            assert_eq!(v[0], "SUB_RES");
            got.push(v[1]["data"]["message"].clone());
        }
    }
    assert_eq!(got, [json!(0), json!(1), json!(2)]);
    // The client closes its session.
    assert_eq!(post(&s, &sid, &["1"]).await, 200);
    s.wait_metric(DIRECT, 0.0).await;
    s.wait_metric("herald_realtime_subscriptions", 0.0).await;
    let res = s.http.get(eio_url(&s, Some(&sid))).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"code": 1, "message": "Session ID unknown"})
    );
    s.stop().await;
}

#[tokio::test]
async fn engine_io_errors_are_engine_io_s() {
    let s = start("").await;
    let url = |q: &str| format!("{}/{APP}/?{q}", s.base);
    for (query, method, code) in [
        (format!("EIO=3&transport=polling&apiKey={KEY}"), "GET", 5),
        (
            format!("EIO=4&transport=carrier-pigeon&apiKey={KEY}"),
            "GET",
            0,
        ),
        (format!("EIO=4&transport=polling&apiKey={KEY}"), "POST", 2),
        ("EIO=4&transport=polling&sid=nope".to_owned(), "GET", 1),
    ] {
        let req = if method == "GET" {
            s.http.get(url(&query))
        } else {
            s.http.post(url(&query)).body("x")
        };
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 400, "{query}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], code, "{query}: {body}");
    }
    assert_eq!(s.metric(DIRECT).await, Some(0.0));
    s.stop().await;
}

/// One poll at a time: a second concurrent poll is refused and ends the
/// session (Engine.IO's rule).
#[tokio::test]
async fn a_second_concurrent_poll_ends_the_session() {
    let s = start("").await;
    let (sid, _) = open_polling(&s).await;
    let first = spawn_poll(&s, &sid);
    // The first is being served (with this metrics request).
    s.wait_metric("herald_requests_in_flight", 2.0).await;
    let second = s.http.get(eio_url(&s, Some(&sid))).send().await.unwrap();
    assert_eq!(second.status(), 400);
    // The first ends with the session's close packet.
    assert_eq!(first.await.unwrap(), "1");
    s.wait_metric(DIRECT, 0.0).await;
    s.stop().await;
}

/// The upgrade, step by step: `2probe` → `3probe`, the waiting poll
/// returns a noop, `5`, then the runs the client had not polled yet and
/// the new ones arrive over the WebSocket, in order; polls are over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_polling_session_upgrades_to_a_websocket() {
    let s = start("").await;
    let addr = s.server.as_ref().unwrap().local_addr();
    let (sid, _) = open_polling(&s).await;
    let connect = format!("40/{APP},");
    assert_eq!(
        post(&s, &sid, &[&connect, &sub_on_packet(1, "up")]).await,
        200
    );
    let packets = poll(&s, &sid).await;
    assert_eq!(packets.len(), 2, "{packets:?}");
    s.publish("up", json!({"message": "polled"})).await;
    assert!(poll(&s, &sid).await[0].contains("polled"));
    // A poll waits; two runs wait for whoever takes them.
    let waiting = spawn_poll(&s, &sid);
    s.wait_metric("herald_requests_in_flight", 2.0).await;

    let mut ws = support::RawWs::upgrade(addr, APP, &sid).await;
    ws.send_text("2probe").await;
    assert_eq!(ws.recv_text().await.as_deref(), Some("3probe"));
    // The waiting poll returns: a noop (nothing else was waiting).
    assert_eq!(waiting.await.unwrap(), "6");
    // Runs published now, before the `5`, are polled or go over the
    // WebSocket: nobody polls, so the WebSocket.
    s.publish("up", json!({"message": "before"})).await;
    ws.send_text("5").await;
    s.publish("up", json!({"message": "after"})).await;
    for expected in ["before", "after"] {
        let (name, res) = ws.next_event().await;
        assert_eq!(name, "SUB_RES");
        assert_eq!(res["data"]["message"], expected);
    }
    s.wait_metric("herald_realtime_upgrades_total", 1.0).await;
    // Polls are over.
    let res = s.http.get(eio_url(&s, Some(&sid))).send().await.unwrap();
    assert_eq!(res.status(), 400);
    // The session goes on over the WebSocket: requests too.
    ws.emit("MET_REQ", &json!({"id": "m", "name": "SET_USER_TOKEN"}))
        .await;
    assert_eq!(ws.next_event().await.0, "MET_RES");
    drop(ws);
    s.wait_metric(DIRECT, 0.0).await;
    s.wait_metric("herald_realtime_subscriptions", 0.0).await;
    s.stop().await;
}

/// The heartbeat of a long-polling session, on the server's clock: the
/// ping comes in a poll; without a pong the session ends and its poll
/// gets Engine.IO's close.
#[tokio::test]
async fn a_long_polling_session_without_pongs_ends() {
    let clock = Arc::new(ManualClock::new(Tick::from_millis(support::now_ms())));
    let s = support::start_on("", clock.clone()).await;
    let (sid, _) = open_polling(&s).await;
    assert_eq!(post(&s, &sid, &[&format!("40/{APP},")]).await, 200);
    assert_eq!(poll(&s, &sid).await.len(), 1, "the connect answer");
    let waiting = spawn_poll(&s, &sid);
    s.wait_metric("herald_requests_in_flight", 2.0).await;
    clock.advance(Duration::from_secs(25));
    assert_eq!(waiting.await.unwrap(), "2", "the ping");
    // A pong keeps it...
    assert_eq!(post(&s, &sid, &["3"]).await, 200);
    clock.advance(Duration::from_secs(24));
    assert_eq!(s.metric("herald_realtime_connections").await, Some(1.0));
    // ...the next ping goes unanswered.
    let waiting = spawn_poll(&s, &sid);
    s.wait_metric("herald_requests_in_flight", 2.0).await;
    clock.advance(Duration::from_secs(1));
    assert_eq!(waiting.await.unwrap(), "2", "the next ping");
    let last = spawn_poll(&s, &sid);
    s.wait_metric("herald_requests_in_flight", 2.0).await;
    clock.advance(Duration::from_secs(20));
    assert_eq!(last.await.unwrap(), "1", "Engine.IO's close");
    s.wait_metric(DIRECT, 0.0).await;
    s.wait_metric("herald_realtime_connections", 0.0).await;
    s.stop().await;
}

/// A batch that turns out to hold nothing to send (here the end of a
/// deleted channel's subscription) must leave the session listening: the
/// writer polls its inbox again (else no waker is registered and the
/// session sleeps until its next heartbeat, here an hour away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_nothing_to_send_does_not_put_the_session_to_sleep() {
    let s = start("ping_interval = \"1h\"").await;
    let mut ws = connect(&s).await;
    subscribe(&mut ws, 1, "x").await;
    subscribe(&mut ws, 3, "z").await;
    let (status, _) = s.delete(&s.url("messaging/channels/x")).await;
    assert_eq!(status, 200);
    s.wait_metric("herald_realtime_subscriptions", 1.0).await;
    s.publish("z", json!({"message": "still listening"})).await;
    let (name, res) = ws.next_event().await;
    assert_eq!(name, "SUB_RES");
    assert_eq!(res["id"], "3", "{res}");
    assert_eq!(res["data"]["message"], "still listening");
    drop(ws);
    s.wait_metric(DIRECT, 0.0).await;
    s.stop().await;
}
