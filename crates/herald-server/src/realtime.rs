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
//! channel, 8007 for a subscription kind Herald does not implement:
//! commands, user status, data changes). A bad API key refuses the
//! namespace connection (`CONNECT_ERROR`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use herald::{DeliveredMessage, Lagged};
use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::extract::{Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::{SendError, SocketError, SocketIo};
use tokio::task::AbortHandle;
use tracing::{debug, warn};

use crate::State;
use crate::auth::Key;
use crate::error::ApiError;
use crate::percent::query_param;

/// How many packets may wait for a slow client before emits back off.
const SOCKET_BUFFER: usize = 1024;

/// Adds app `app`'s socket.io service to `router` (at `/{app}` and
/// `/{app}/` exactly: engine.io matches its path as a prefix, and
/// `/{app}/{key}/...` is the REST API) and returns its handle.
pub(crate) fn register(
    router: Router<Arc<State>>,
    app: &str,
    state: Arc<State>,
) -> (Router<Arc<State>>, SocketIo) {
    let path = format!("/{app}");
    let (svc, io) = SocketIo::builder()
        .req_path(path.clone())
        .max_buffer_size(SOCKET_BUFFER)
        .build_svc();
    let app: Arc<str> = app.into();

    // Everything happens in the middleware, which socketioxide awaits
    // before it acknowledges the namespace connection: the connect handler
    // runs in a task spawned after the acknowledgement, so event handlers
    // registered there could miss a `SUB_ON` sent right after it (the JS
    // SDK subscribes as soon as it is connected).
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
    let handler = async |_: SocketRef| {};
    io.ns(path.clone(), handler.with(middleware));
    let router = router
        .route_service(&path, svc.clone())
        .route_service(&format!("{path}/"), svc);
    (router, io)
}

fn authenticate(state: &State, app: &str, s: &SocketRef) -> Result<Arc<Key>, ApiError> {
    let key = query_param(s.req_parts().uri.query(), "apiKey").unwrap_or_default();
    state.auth.authenticate(app, &key)
}

/// One connection's state: its key and its message listeners.
struct Conn {
    state: Arc<State>,
    app: Arc<str>,
    key: Arc<Key>,
    listeners: Mutex<HashMap<String, AbortHandle>>,
}

impl Conn {
    fn listeners(&self) -> MutexGuard<'_, HashMap<String, AbortHandle>> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stop_all(&self) {
        for (_, h) in self.listeners().drain() {
            h.abort();
        }
    }
}

/// Sets up an authenticated connection: its state and event handlers.
fn on_connect(state: Arc<State>, app: Arc<str>, key: Arc<Key>, s: &SocketRef) {
    state
        .metrics
        .realtime_connections
        .fetch_add(1, Ordering::Relaxed);
    debug!(app = %app, sid = %s.id, "real-time client connected");
    let conn = Arc::new(Conn {
        state,
        app,
        key,
        listeners: Mutex::new(HashMap::new()),
    });

    let c = conn.clone();
    s.on("SUB_ON", move |s: SocketRef, Data(v): Data<Value>| {
        let c = c.clone();
        async move {
            wait_connected(&s).await;
            sub_on(&c, &s, &v);
        }
    });
    let c = conn.clone();
    s.on("SUB_OFF", move |Data(v): Data<Value>| {
        let c = c.clone();
        async move {
            if let Some(id) = request_id(&v)
                && let Some(h) = c.listeners().remove(&id)
            {
                h.abort();
            }
        }
    });
    let c = conn.clone();
    s.on("MET_REQ", move |s: SocketRef, Data(v): Data<Value>| {
        let c = c.clone();
        async move {
            wait_connected(&s).await;
            met_req(&c, &s, &v);
        }
    });
    s.on_disconnect(move |s: SocketRef| {
        let c = conn.clone();
        async move {
            c.stop_all();
            c.state
                .metrics
                .realtime_connections
                .fetch_sub(1, Ordering::Relaxed);
            debug!(app = %c.app, sid = %s.id, "real-time client disconnected");
        }
    });
}

/// socketioxide sends the namespace acknowledgement before it marks the
/// socket connected, and `emit` fails (`Closed`) until then, so an event
/// the client sends right after the acknowledgement can be handled, on
/// another worker, while its answer would be dropped. Waits for the mark
/// (microseconds; gives up after ~100 ms: then the socket is gone).
async fn wait_connected(s: &SocketRef) {
    for _ in 0..100 {
        if s.connected() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
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

fn reply_error(c: &Conn, s: &SocketRef, event: &str, id: &str, e: &ApiError) {
    c.state.metrics.count_error(e.code);
    let _ = s.emit(event, &json!({"id": id, "error": e.to_json()}));
}

fn sub_on(c: &Arc<Conn>, s: &SocketRef, v: &Value) {
    let Some(id) = request_id(v) else {
        debug!("SUB_ON without an id: ignored");
        return;
    };
    let name = v.get("name").and_then(Value::as_str).unwrap_or("");
    let options = v.get("options").unwrap_or(&Value::Null);
    let result = match name {
        "PUB_SUB_CONNECT" => channel_of(options)
            .and_then(|ch| c.key.check_subscribe(&ch))
            .map(drop),
        "PUB_SUB_MESSAGES" => listen(c, s, &id, options),
        other => Err(ApiError::subscription_not_supported(other)),
    };
    match result {
        Ok(()) => {
            let _ = s.emit("SUB_READY", &json!({ "id": id }));
        }
        Err(e) => reply_error(c, s, "SUB_RES", &id, &e),
    }
}

fn channel_of(options: &Value) -> Result<String, ApiError> {
    match options.get("channel") {
        Some(Value::String(ch)) => Ok(ch.clone()),
        _ => Err(herald::Error::InvalidChannel.into()),
    }
}

/// `PUB_SUB_MESSAGES`: subscribes through the engine and streams each run
/// as `SUB_RES {id, data}` until `SUB_OFF`, disconnect, or the channel's end.
fn listen(c: &Arc<Conn>, s: &SocketRef, id: &str, options: &Value) -> Result<(), ApiError> {
    let channel = channel_of(options)?;
    let selector = match options.get("selector") {
        None | Some(Value::Null) => None,
        Some(Value::String(sel)) => Some(sel.as_str()),
        Some(_) => {
            return Err(ApiError::selector_not_a_string());
        }
    };
    c.key.check_subscribe(&channel)?;
    let mut sub = c.state.engine(&c.app)?.subscribe(&channel, selector)?;

    let (s, conn, id_owned) = (s.clone(), c.clone(), id.to_owned());
    let gauge = ListenerGauge::new(c.state.clone());
    let task = tokio::spawn(async move {
        let _gauge = gauge;
        while let Some(item) = sub.recv().await {
            match item {
                Ok(msg) => {
                    if !emit_message(&s, &id_owned, &msg).await {
                        break;
                    }
                }
                Err(Lagged(n)) => {
                    warn!(app = %conn.app, channel = %sub.channel(), missed = n, "real-time listener lagged");
                }
            }
        }
        conn.listeners().remove(&id_owned);
    });
    if let Some(old) = c.listeners().insert(id.to_owned(), task.abort_handle()) {
        old.abort();
    }
    Ok(())
}

#[derive(Serialize)]
struct SubRes<'a> {
    id: &'a str,
    data: &'a DeliveredMessage,
}

/// Emits one message; waits while the client's buffer is full. False when
/// the socket is gone.
async fn emit_message(s: &SocketRef, id: &str, msg: &DeliveredMessage) -> bool {
    loop {
        match s.emit("SUB_RES", &SubRes { id, data: msg }) {
            Ok(()) => return true,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(SendError::Socket(SocketError::Closed)) => return false,
            Err(e) => {
                warn!(error = %e, "real-time message not sent");
                return true;
            }
        }
    }
}

fn met_req(c: &Conn, s: &SocketRef, v: &Value) {
    let Some(id) = request_id(v) else {
        return;
    };
    match v.get("name").and_then(Value::as_str).unwrap_or("") {
        // Herald has no users: the token is accepted and ignored.
        "SET_USER_TOKEN" => {
            let _ = s.emit("MET_RES", &json!({"id": id, "result": null}));
        }
        other => {
            let e = ApiError::method_not_supported(other);
            reply_error(c, s, "MET_RES", &id, &e);
        }
    }
}

/// Counts a live listener in the metrics while it exists.
struct ListenerGauge(Arc<State>);

impl ListenerGauge {
    fn new(state: Arc<State>) -> Self {
        state
            .metrics
            .realtime_subscriptions
            .fetch_add(1, Ordering::Relaxed);
        Self(state)
    }
}

impl Drop for ListenerGauge {
    fn drop(&mut self) {
        self.0
            .metrics
            .realtime_subscriptions
            .fetch_sub(1, Ordering::Relaxed);
    }
}
