//! Entry points for the fuzz targets `server_request`, `server_config` and
//! `ws_frames` (not a public API).

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::config::{AppConfig, Config, KeyConfig};
use crate::{Glob, State};

const METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::DELETE,
    Method::PUT,
    Method::PATCH,
    Method::OPTIONS,
    Method::HEAD,
];
const PREFIXES: [&str; 5] = [
    "/app/key/",
    "/app/ro/",
    "/app/bad/",
    "/",
    "/app/key/messaging/",
];
const CONTENT_TYPES: [Option<&str>; 5] = [
    None,
    Some("application/json"),
    Some("text/plain"),
    Some("application/json; charset=utf-8"),
    Some("application/vnd.x+json"),
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// A fresh server state: app `app` with key `key` (everything) and `ro`
/// (subscribe only), an in-memory engine, a 4 KiB body limit.
fn state() -> Arc<State> {
    let config = Config {
        max_body: 4096,
        apps: vec![AppConfig {
            id: "app".into(),
            keys: vec![
                KeyConfig::full("key"),
                KeyConfig {
                    subscribe: vec![Glob::new("*")],
                    ..KeyConfig::none("ro")
                },
            ],
            apns: None,
            fcm: None,
        }],
        ..Config::default()
    };
    Arc::new(
        State::new(
            &config,
            Arc::new(herald::SystemClock),
            ([127, 0, 0, 1], 0).into(),
            |_| Ok(herald::Engine::builder().build()),
        )
        .expect("in-memory apps"),
    )
}

/// Decodes `data` as (method, path prefix, content type, path suffix, body)
/// and sends it through the server's router in-process. Asserts the server
/// neither panics nor answers 5xx, and that every error body is
/// `{"code", "message"}` JSON.
///
/// Layout: byte 0 picks the method, byte 1 the prefix (low nibble) and the
/// content type (high nibble); the path suffix runs to the first `\n`, the
/// body is the rest. Inputs that are not a valid URI are skipped, and so are
/// the socket.io paths (`/app`, `/app/`), whose long polls would wait for
/// a ping interval.
pub fn server_request(data: &[u8]) {
    let [m, sel, rest @ ..] = data else {
        return;
    };
    let method = METHODS[usize::from(*m) % METHODS.len()].clone();
    let prefix = PREFIXES[usize::from(sel & 0x0f) % PREFIXES.len()];
    let content_type = CONTENT_TYPES[usize::from(sel >> 4) % CONTENT_TYPES.len()];
    let (suffix, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(suffix) = std::str::from_utf8(suffix) else {
        return;
    };
    let uri = format!("{prefix}{suffix}");
    let path = uri.split(['?', '#']).next().unwrap_or("");
    if path == "/app" || path == "/app/" {
        return;
    }
    let mut builder = Request::builder().method(method.clone()).uri(&uri);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    let Ok(request) = builder.body(Body::from(body.to_vec())) else {
        return;
    };
    runtime().block_on(async move {
        let state = state();
        let (router, _ios) = crate::router(&state);
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a readable body")
            .to_bytes();
        assert!(
            !status.is_server_error(),
            "{method} {uri:?} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        if !status.is_success() && method != Method::HEAD {
            let v: serde_json::Value =
                serde_json::from_slice(&bytes).expect("error bodies are JSON");
            assert!(v["code"].is_u64() && v["message"].is_string(), "{v}");
        }
        for app in state.apps.values() {
            app.engine.shutdown().await;
        }
    });
}

/// The fuzz target `server_config`: arbitrary configuration input must give
/// a configuration or an error, never a panic. The first byte picks the
/// source: even, the rest is a TOML file's text (read, then validated);
/// odd, the rest's lines are command-line arguments, except lines
/// `HERALD_NAME=value`, which are environment variables (`--config` and
/// `HERALD_CONFIG` are left out: they would read a file named by the
/// input).
pub fn server_config(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if mode % 2 == 0 {
        let mut config = Config::default();
        if config.apply_toml(&text).is_ok() {
            let _ = config.validate();
        }
        return;
    }
    let mut args = Vec::new();
    let mut env = std::collections::HashMap::new();
    for line in text.lines() {
        if line.contains("config") || line.contains("CONFIG") {
            continue;
        }
        match line.split_once('=') {
            Some((name, value)) if name.starts_with("HERALD_") => {
                env.insert(name.to_owned(), value.to_owned());
            }
            _ => args.push(line.to_owned()),
        }
    }
    let _ = Config::from_args(args, |name| env.get(name).cloned());
}

/// The fuzz target `ws_frames`: arbitrary client bytes through the
/// WebSocket decoder (`realtime::ws::Decoder`), fed in chunks as a
/// socket would deliver them, must give messages or an error, never a
/// panic, an overrun or a stall.
///
/// Layout: byte 0's low nibble picks the message limit (16 bytes shifted
/// left by 0 to 12: 16 B to 64 KiB), its high nibble the chunk size
/// (1 + n²: 1 to 226 bytes); the rest is the client's bytes. Each chunk is
/// appended to a buffer and decoded until the decoder needs more bytes
/// (`(0, None)`) or fails. Asserts that a call never consumes more than the
/// buffer holds, that a message always consumes bytes, that the decoder
/// never holds more than the limit, that messages are within their limits
/// (a text's UTF-8 is guaranteed by its type), that close codes are ones a
/// peer may send, and that the replies a server would send (echo, pong,
/// close) are well-formed frames.
pub fn ws_frames(data: &[u8]) {
    use crate::realtime::ws::{self, Decoder};

    let Some((&knob, input)) = data.split_first() else {
        return;
    };
    let max = 16usize << ((knob & 0x0f) % 13);
    let chunk = 1 + usize::from(knob >> 4).pow(2);
    let key = &input[..input.len().min(24)];
    assert_eq!(ws::accept_key(key).len(), 28, "base64 of a 20-byte digest");

    let mut decoder = Decoder::new(max);
    let mut buf = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let (used, incoming) = match decoder.decode(&buf) {
                Ok(step) => step,
                Err(e) => {
                    let mut reply = Vec::new();
                    ws::close_frame(&mut reply, e.close_code());
                    assert!(matches!(e.close_code(), 1002 | 1007 | 1009), "{e}");
                    assert_eq!(reply.len(), 4, "{e}: close frame {reply:?}");
                    return;
                }
            };
            assert!(used <= buf.len(), "consumed {used} of {} bytes", buf.len());
            assert!(
                decoder.held() <= max,
                "holds {} bytes, limit {max}",
                decoder.held()
            );
            buf.drain(..used);
            match incoming {
                Some(incoming) => {
                    assert!(used > 0, "{incoming:?} without consuming bytes");
                    ws_reply(incoming, max);
                }
                None if used == 0 => break,
                None => {}
            }
        }
    }
}

/// Checks `incoming` against its limits and writes the reply a server
/// would send (the message echoed, a pong, a close frame), checking that
/// reply's header.
fn ws_reply(incoming: crate::realtime::ws::Incoming, max: usize) {
    use crate::realtime::ws::{self, Incoming};

    let mut reply = Vec::new();
    let (opcode, len) = match incoming {
        Incoming::Text(text) => {
            assert!(text.len() <= max, "a {}-byte text, limit {max}", text.len());
            ws::frame(&mut reply, ws::TEXT, text.as_bytes());
            (ws::TEXT, text.len())
        }
        Incoming::Binary(bytes) => {
            assert!(
                bytes.len() <= max,
                "a {}-byte binary, limit {max}",
                bytes.len()
            );
            ws::frame(&mut reply, ws::BINARY, &bytes);
            (ws::BINARY, bytes.len())
        }
        Incoming::Ping(payload) => {
            assert!(payload.len() <= 125, "a {}-byte ping", payload.len());
            ws::frame(&mut reply, ws::PONG, &payload);
            (ws::PONG, payload.len())
        }
        Incoming::Pong(payload) => {
            assert!(payload.len() <= 125, "a {}-byte pong", payload.len());
            return;
        }
        Incoming::Close(code, reason) => {
            assert!(
                matches!(code, Some(1000..=1003 | 1007..=1011 | 3000..=4999))
                    || (code.is_none() && reason.is_empty()),
                "close {code:?} {reason:?}"
            );
            assert!(reason.len() <= 123, "a {}-byte close reason", reason.len());
            ws::close_frame(&mut reply, code.unwrap_or(1000));
            (ws::CLOSE, 2)
        }
    };
    let header_len = match len {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    };
    assert_eq!(reply[0], 0x80 | opcode, "FIN and the opcode");
    assert_eq!(reply[1] & 0x80, 0, "server frames are not masked");
    assert_eq!(reply.len(), header_len + len, "the shortest header");
}

/// Entry point of the fuzz target `eio_packets`: arbitrary text through
/// the direct WebSocket path's Engine.IO / socket.io packet parser: a
/// packet or an error, never a panic; an event written back by the
/// server's encoder parses again, to the same namespace and name (the
/// argument too, but for floats: serde_json's default float parsing is
/// not exact).
///
/// Layout: the bytes as text (invalid UTF-8 replaced).
pub fn eio_packets(data: &[u8]) {
    use crate::realtime::eio::{self, ClientPacket};

    let text = String::from_utf8_lossy(data);
    let Ok(ClientPacket::Event { nsp, name, arg }) = eio::parse(&text) else {
        return;
    };
    let mut out = vec![b'4'];
    eio::event(&mut out, nsp, &name, &arg);
    // `4` + `42...`: drop the server's own message-type digit.
    out.remove(1);
    let again = String::from_utf8(out).expect("the encoder writes UTF-8");
    match eio::parse(&again) {
        Ok(ClientPacket::Event {
            nsp: n2,
            name: name2,
            arg: arg2,
        }) => {
            assert_eq!((n2, &name2), (nsp, &name), "{again}");
            if !has_float(&arg) {
                assert_eq!(arg2, arg, "{again}");
            }
        }
        other => panic!("{again} parsed as {other:?}"),
    }
}

/// Whether `v` holds a floating-point number anywhere.
fn has_float(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::server_request;

    #[test]
    fn sample_inputs_do_not_fail() {
        let inputs: [&[u8]; 17] = [
            b"",
            b"\x01\x10messaging/chan\n{\"message\": 1}",
            b"\x01\x10messaging/chan\n{\"message\": 1, \"publishAt\": \"soon\"}",
            b"\x01\x20messaging/chan\n{}",
            b"\x01\x10messaging/chan\n{not json",
            b"\x01\x11messaging/chan\n{\"message\": 1}",
            b"\x00\x00messaging/123\n",
            b"\x02\x00messaging/%FF\n",
            b"\x01\x04caf%C3%A9/subscribe\n{\"selector\": \"a >\"}",
            b"\x00\x03health\n",
            b"\x03\x03metrics\n",
            b"\x00\x00info\n",
            b"\x01\x10messaging/registrations\n{\"deviceId\":\"d\",\"deviceToken\":\"t\",\"os\":\"IOS\"}",
            b"\x00\x00messaging/registrations/d\n",
            b"\x02\x01messaging/registrations/d\n",
            b"\x01\x10messaging/pushtemplates\n{\"name\":\"n\",\"message\":\"{x\"}",
            b"\x00\x00messaging/pushtemplates/%FF\n",
        ];
        for input in inputs {
            server_request(input);
        }
        let big = [b"\x01\x10messaging/c\n".as_slice(), &[b' '; 10_000]].concat();
        server_request(&big);
    }
}
