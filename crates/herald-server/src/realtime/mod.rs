//! The socket.io real-time API of the Backendless JS SDK (`backendless-rt-client`).
//!
//! One socket.io server per app: engine.io path `/{appId}/`, namespace
//! `/{appId}`, the API key in the handshake query (`apiKey`; `clientId` and
//! `userToken` are ignored). Events (all payloads one JSON object):
//!
//! | client → server | server → client |
//! |---|---|
//! | `SUB_ON {id, name: "PUB_SUB_CONNECT", options: {channel}}` | `SUB_READY {id}` |
//! | `SUB_ON {id, name: "PUB_SUB_MESSAGES", options: {channel, selector?}}` | `SUB_READY {id}`, then `SUB_RES {id, data: <message>}` per message |
//! | `SUB_OFF {id}` | (delivery stops) |
//! | `MET_REQ {id, name, options}` | `MET_RES {id, result}` for `SET_USER_TOKEN`, else `MET_RES {id, error}` |
//!
//! A refused subscription is `SUB_RES {id, error: {code, message}}` (5031
//! without subscribe permission, 5012 for a bad selector, 5010 for a bad
//! channel, 5094 (429) past `max_subscriptions_per_connection`, 8007 for a
//! subscription kind Herald does not implement: commands, user status,
//! data changes). A request that would open an Engine.IO session without
//! a key of the app is refused with `401` (8002) before a session opens;
//! a bad key in the namespace connection is refused with `CONNECT_ERROR`.
//!
//! Two implementations serve it. [`direct`] (`realtime_direct`, the
//! default): Engine.IO and socket.io of Herald's own, long polling and
//! WebSocket, a control task per session and a few writer tasks serving
//! every session. socketioxide (`realtime_direct = false`): a drain task
//! per connection ([`drain`]) feeding socketioxide's queue. Either way,
//! every listener of a connection delivers into one
//! [`Inbox`](herald::Inbox) bounded by `connection_buffer` bytes, replies
//! and runs go out in order (a listener's `SUB_READY` always before its
//! first run), and listeners die with their connection: a disconnect
//! unsubscribes them at once.

mod conn;
mod direct;
mod drain;
pub(crate) mod eio;
mod session;
mod wire;
mod writer;
pub(crate) mod ws;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::any;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use tower::ServiceExt;
use tracing::debug;

use crate::State;
use crate::auth::Key;
use crate::error::ApiError;
use crate::percent::query_param;
use conn::Conn;

/// One app's real-time service: the direct path ([`direct`]) and
/// socketioxide's (the fallback).
pub(crate) struct Realtime {
    io: SocketIo,
    direct: Arc<direct::Direct>,
}

impl Realtime {
    /// Closes every real-time connection of the app (each client is told)
    /// and waits until they are gone.
    pub(crate) async fn close(&self) {
        tokio::join!(self.io.close(), self.direct.close());
    }
}

/// Adds app `app`'s socket.io service to `router` (at `/{app}` and
/// `/{app}/` exactly: engine.io matches its path as a prefix, and
/// `/{app}/{key}/...` is the REST API) and returns its handle.
pub(crate) fn register(
    router: Router<Arc<State>>,
    app: &str,
    state: Arc<State>,
) -> (Router<Arc<State>>, Realtime) {
    let path = format!("/{app}");
    let (svc, io) = SocketIo::builder()
        .req_path(path.clone())
        .max_buffer_size(drain::SOCKET_BUFFER)
        .ws_read_buffer_size(WS_READ_BUFFER)
        .ping_interval(state.limits.ping_interval)
        .ping_timeout(state.limits.ping_timeout)
        .build_svc();
    let app: Arc<str> = app.into();
    let (guard_state, guard_app) = (state.clone(), app.clone());
    let direct = direct::Direct::new(state.clone(), app.clone());
    let guard_direct = direct.clone();

    // The connection and its event handlers are set up in the middleware,
    // which socketioxide awaits before it acknowledges the namespace
    // connection: the connect handler runs in a task spawned after the
    // acknowledgement, so handlers registered there could miss a `SUB_ON`
    // sent right after it (the JS SDK subscribes as soon as it is
    // connected). Event handlers only queue replies; the drain task, started
    // by the connect handler once the socket is marked connected (emits
    // fail before that), sends them.
    let middleware = move |s: SocketRef| {
        let (state, app) = (state.clone(), app.clone());
        async move {
            match authenticate(&state, &app, &s) {
                Ok(key) => {
                    on_connect(state, app, key, &s);
                    Ok(())
                }
                Err(e) => {
                    state.metrics.count_error(e.code);
                    Err(e.message)
                }
            }
        }
    };
    let handler = async |s: SocketRef| {
        if let Some(conn) = s.extensions.get::<Arc<Conn>>() {
            tokio::spawn(drain::run(conn, s));
        }
    };
    io.ns(path.clone(), handler.with(middleware));

    // A request that would open an Engine.IO session (it has no `sid`)
    // needs the app's key first: no session, no socket, no buffers for a
    // client without a key. Then the direct path serves every Engine.IO
    // request (`realtime_direct`), or socketioxide does.
    let guarded = move |req: Request| {
        let (svc, state, app) = (svc.clone(), guard_state.clone(), guard_app.clone());
        let direct = guard_direct.clone();
        async move {
            let opens = opens_session(req.uri().query());
            if opens && let Err(e) = handshake_key(&state, &app, req.uri().query()) {
                state.metrics.count_error(e.code);
                return e.into_response();
            }
            if direct.enabled() {
                return direct.serve(req).await;
            }
            let req = if opens { detached(req) } else { req };
            match svc.oneshot(req).await {
                Ok(res) => res.into_response(),
                Err(never) => match never {},
            }
        }
    };
    let router = router
        .route(&path, any(guarded.clone()))
        .route(&format!("{path}/"), any(guarded));
    (router, Realtime { io, direct })
}

/// The WebSocket read buffer per connection (engine.io's default: 4 KiB).
/// Clients send small packets (pongs, `SUB_ON`, `MET_REQ`); a larger frame
/// grows the buffer as it needs.
const WS_READ_BUFFER: usize = 512;

/// `req` with its URI and header values copied out of hyper's read buffer,
/// and without the connection's `max_connections` slot. Engine.IO keeps
/// the request that opened a session (its parts) for the session's life,
/// and hyper's URI and header values are slices of the connection's read
/// buffer (8 KiB or more), which would stay allocated as long: a quarter
/// of an idle real-time connection's memory.
fn detached(req: Request) -> Request {
    let (mut parts, body) = req.into_parts();
    // Nor does the session keep the connection's `max_connections` slot: a
    // polling session outlives the connection that opened it.
    parts.extensions.remove::<crate::request::ConnPermit>();
    if let Ok(uri) = axum::http::Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    let mut headers = axum::http::HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let mut copy =
            axum::http::HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        headers.append(name.clone(), copy);
    }
    parts.headers = headers;
    Request::from_parts(parts, body)
}

/// Whether an Engine.IO request opens a session: it carries no `sid`.
fn opens_session(query: Option<&str>) -> bool {
    query_param(query, "sid").is_none()
}

/// The handshake's `apiKey` is a key of `app`, or 401 (8002).
fn handshake_key(state: &State, app: &str, query: Option<&str>) -> Result<(), ApiError> {
    let key = query_param(query, "apiKey").unwrap_or_default();
    state.authenticate(app, &key).map(|_| ())
}

fn authenticate(state: &State, app: &str, s: &SocketRef) -> Result<Arc<Key>, ApiError> {
    let key = query_param(s.req_parts().uri.query(), "apiKey").unwrap_or_default();
    state.authenticate(app, &key).map(|(_, key)| key)
}

/// Sets up an authenticated connection: its state and event handlers.
fn on_connect(state: Arc<State>, app: Arc<str>, key: Arc<Key>, s: &SocketRef) {
    state
        .metrics
        .realtime_connections
        .fetch_add(1, Ordering::Relaxed);
    debug!(app = %app, sid = %s.id, "real-time client connected");
    let conn = Arc::new(Conn::new(state, app, key));
    s.extensions.insert(conn.clone());

    let c = conn.clone();
    s.on("SUB_ON", move |s: SocketRef, Data(v): Data<Value>| {
        let c = c.clone();
        async move {
            sub_on(&c, &v);
            close_if_flooded(&c, s);
        }
    });
    let c = conn.clone();
    s.on("SUB_OFF", move |Data(v): Data<Value>| {
        let c = c.clone();
        async move {
            if let Some(id) = request_id(&v) {
                c.unlisten(&id);
            }
        }
    });
    let c = conn.clone();
    s.on("MET_REQ", move |s: SocketRef, Data(v): Data<Value>| {
        let c = c.clone();
        async move {
            met_req(&c, &v);
            close_if_flooded(&c, s);
        }
    });
    s.on_disconnect(move |s: SocketRef| {
        let c = conn.clone();
        async move {
            c.close();
            c.state
                .metrics
                .realtime_connections
                .fetch_sub(1, Ordering::Relaxed);
            debug!(app = %c.app, sid = %s.id, "real-time client disconnected");
        }
    });
}

/// Disconnects a client that asks faster than it reads its answers
/// ([`Conn::flooded`]).
fn close_if_flooded(c: &Conn, s: SocketRef) {
    if c.flooded() {
        debug!(app = %c.app, sid = %s.id, "real-time client does not read its answers");
        let _ = s.disconnect();
    }
}

/// The `id` of a request: a string, or a number taken as its text.
fn request_id(v: &Value) -> Option<String> {
    match v.get("id")? {
        Value::String(s) => Some(s.clone()),
        n @ Value::Number(_) => Some(n.to_string()),
        _ => None,
    }
}

fn reply_error(c: &Conn, event: &'static str, id: &str, e: &ApiError) {
    c.state.metrics.count_error(e.code);
    c.reply(event, json!({"id": id, "error": e.to_json()}));
}

fn sub_on(c: &Arc<Conn>, v: &Value) {
    let Some(id) = request_id(v) else {
        debug!("SUB_ON without an id: ignored");
        return;
    };
    let name = v.get("name").and_then(Value::as_str).unwrap_or("");
    let options = v.get("options").unwrap_or(&Value::Null);
    let result = match name {
        "PUB_SUB_CONNECT" => channel_of(options)
            .and_then(|ch| c.key.check_subscribe(&ch))
            .map(|()| c.reply("SUB_READY", json!({ "id": id }))),
        "PUB_SUB_MESSAGES" => listen(c, &id, options),
        other => Err(ApiError::subscription_not_supported(other)),
    };
    if let Err(e) = result {
        reply_error(c, "SUB_RES", &id, &e);
    }
}

fn channel_of(options: &Value) -> Result<String, ApiError> {
    match options.get("channel") {
        Some(Value::String(ch)) => Ok(ch.clone()),
        _ => Err(herald::Error::InvalidChannel {
            reason: "The channel option is a string.".into(),
        }
        .into()),
    }
}

/// `PUB_SUB_MESSAGES`: subscribes the connection's inbox; each run goes out
/// as `SUB_RES {id, data}` until `SUB_OFF`, disconnect, or the channel's
/// end.
fn listen(c: &Arc<Conn>, id: &str, options: &Value) -> Result<(), ApiError> {
    let channel = channel_of(options)?;
    let selector = match options.get("selector") {
        None | Some(Value::Null) => None,
        Some(Value::String(sel)) => Some(sel.as_str()),
        Some(_) => return Err(ApiError::selector_not_a_string()),
    };
    c.key.check_subscribe(&channel)?;
    let engine = &c.state.app(&c.app)?.engine;
    c.listen(id, |inbox| {
        engine
            .subscribe_to(inbox, &channel, selector)
            .map_err(ApiError::from)
    })
}

fn met_req(c: &Conn, v: &Value) {
    let Some(id) = request_id(v) else {
        return;
    };
    match v.get("name").and_then(Value::as_str).unwrap_or("") {
        // Herald has no users: the token is accepted and ignored.
        "SET_USER_TOKEN" => c.reply("MET_RES", json!({"id": id, "result": null})),
        other => reply_error(c, "MET_RES", &id, &ApiError::method_not_supported(other)),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, Bytes};
    use axum::http::{HeaderValue, Uri};

    use super::*;

    /// Whether `part` lies inside `buf`'s bytes.
    fn inside(buf: &Bytes, part: &[u8]) -> bool {
        let range = buf.as_ptr_range();
        range.contains(&part.as_ptr())
    }

    #[test]
    fn a_detached_request_shares_no_bytes_with_the_read_buffer() {
        // What hyper hands over: the URI and header values are slices of
        // the connection's read buffer.
        let buf = Bytes::copy_from_slice(
            b"/APP/?EIO=4&transport=websocket&apiKey=k websocket secret one two",
        );
        let uri = Uri::from_maybe_shared(buf.slice(0..40)).unwrap();
        let value =
            |r: std::ops::Range<usize>| HeaderValue::from_maybe_shared(buf.slice(r)).unwrap();
        let mut secret = value(51..57);
        secret.set_sensitive(true);
        let mut req = Request::builder()
            .uri(uri)
            .header("upgrade", value(41..50))
            .header("x-multi", value(58..61))
            .header("x-multi", value(62..65))
            .body(Body::empty())
            .unwrap();
        req.headers_mut().insert("authorization", secret);
        req.extensions_mut().insert(7u32);
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let slot = crate::request::ConnPermit::new(slots.clone().try_acquire_owned().unwrap());
        req.extensions_mut().insert(slot.clone());
        drop(slot);
        assert!(
            inside(&buf, req.uri().path().as_bytes()),
            "the test's premise"
        );
        assert!(
            inside(&buf, req.headers()["upgrade"].as_bytes()),
            "the test's premise"
        );

        let req = detached(req);
        assert_eq!(req.uri(), "/APP/?EIO=4&transport=websocket&apiKey=k");
        assert_eq!(
            req.uri().query(),
            Some("EIO=4&transport=websocket&apiKey=k")
        );
        assert!(!inside(&buf, req.uri().path().as_bytes()));
        assert!(!inside(&buf, req.uri().query().unwrap().as_bytes()));
        assert_eq!(req.headers()["upgrade"], "websocket");
        let multi: Vec<_> = req.headers().get_all("x-multi").iter().collect();
        assert_eq!(multi, ["one", "two"], "every value, in order");
        assert!(req.headers()["authorization"].is_sensitive());
        for (_, v) in req.headers() {
            assert!(
                !inside(&buf, v.as_bytes()),
                "{v:?} still points into the buffer"
            );
        }
        assert_eq!(
            req.extensions().get::<u32>(),
            Some(&7),
            "extensions (the upgrade) kept"
        );
        assert!(
            req.extensions()
                .get::<crate::request::ConnPermit>()
                .is_none(),
            "but not the connection's slot"
        );
        assert_eq!(slots.available_permits(), 1, "the slot is free again");
    }
}
