//! The REST API: routing under `/{appId}/{apiKey}/`, request bodies, and
//! the handlers (info, publish, status, cancel, delete channel, polling;
//! the push routes' are in [`crate::push`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald::{PublishRequest, RequestError};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tracing::warn;

use crate::State;
use crate::auth::{Key, redact_path};
use crate::body::{read_bytes, read_json};
use crate::error::{ApiError, json_response, json_text_response};
use crate::metrics::DeviceCounts;
use crate::percent::{decode_segment, decode_segment_lenient};
use crate::state::App;

type Shared = Arc<State>;

/// `GET /health`: 200 `{"status": "ok"}` while every app's store can
/// write; 503 `{"status": "unavailable", "stores": [{"app", "error"}]}`
/// naming each app whose store cannot (a full disk), while it cannot.
pub(crate) async fn health(AxState(state): AxState<Shared>) -> Response {
    let mut down: Vec<(&str, String)> = state
        .apps
        .iter()
        .filter_map(|(id, a)| Some((id.as_str(), a.engine.store_stats().unavailable?)))
        .collect();
    let mut buses: Vec<&str> = state
        .apps
        .iter()
        .filter(|(_, a)| !a.engine.stats().bus_connected)
        .map(|(id, _)| id.as_str())
        .collect();
    if down.is_empty() && buses.is_empty() {
        return json_response(StatusCode::OK, &json!({"status": "ok"}));
    }
    down.sort_unstable();
    buses.sort_unstable();
    let stores: Vec<Value> = down
        .into_iter()
        .map(|(app, error)| json!({"app": app, "error": error}))
        .collect();
    let buses: Vec<Value> = buses
        .into_iter()
        .map(|app| json!({"app": app, "error": "the cluster bus is disconnected (reconnecting)"}))
        .collect();
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"status": "unavailable", "stores": stores, "buses": buses}),
    )
}

/// `GET /metrics`: with `metrics_token` set, for `Authorization: Bearer
/// <token>` only (compared in constant time); without it, for loopback
/// clients only (a reverse proxy on the same host counts as loopback:
/// do not forward `/metrics` through it).
pub(crate) async fn metrics(
    AxState(state): AxState<Shared>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let token = state.metrics_token.as_deref();
    if let Err(e) = metrics_allowed(token, peer.map(|p| p.0.0), &headers) {
        state.metrics.count_error(e.code);
        return e.into_response();
    }
    let mut apps: Vec<(&str, herald::EngineStats, DeviceCounts)> = state
        .apps
        .iter()
        .map(|(id, a)| (id.as_str(), a.engine.stats(), a.devices.read()))
        .collect();
    apps.sort_unstable_by_key(|(id, _, _)| *id);
    let mut text = state.metrics.render(&apps, state.polling_subscriptions());
    let mut push: Vec<(&str, herald::PushStats)> = state
        .apps
        .iter()
        .map(|(id, a)| (id.as_str(), a.engine.push_stats()))
        .collect();
    push.sort_unstable_by(|a, b| a.0.cmp(b.0));
    text.push_str(&crate::metrics::render_push(&push));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Whether this client may read the metrics.
fn metrics_allowed(
    token: Option<&str>,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    match token {
        Some(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                Ok(())
            } else {
                Err(ApiError::metrics_token_required())
            }
        }
        None if peer.is_some_and(|p| p.ip().to_canonical().is_loopback()) => Ok(()),
        None => Err(ApiError::metrics_loopback_only()),
    }
}

/// A known route with a method it does not take (`/health`, `/metrics`).
pub(crate) async fn method_not_allowed(
    AxState(state): AxState<Shared>,
    method: Method,
) -> Response {
    let e = ApiError::method_not_allowed(method.as_str());
    state.metrics.count_error(e.code);
    e.into_response()
}

/// Every request the router did not match: the REST API (routed here by
/// hand, so that odd encodings, reserved names and wrong methods all get a
/// JSON error) and unknown paths. Records metrics, and logs server
/// errors with the API key redacted (every request's line is
/// [`crate::request`]'s).
pub(crate) async fn dispatch(AxState(state): AxState<Shared>, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = match route(&state, req).await {
        Ok(res) => res,
        Err(e) => {
            state.metrics.count_error(e.code);
            if e.status.is_server_error() {
                warn!(method = %method, path = %redact_path(&path).escape_debug(), code = e.code, error = %e.message.escape_debug(), "request failed");
            }
            e.into_response()
        }
    };
    let elapsed = start.elapsed();
    state
        .metrics
        .observe_request(response.status().as_u16(), elapsed);
    response
}

/// The first segments after `messaging/` that are Backendless endpoints
/// this server does not serve (beyond `DELETE messaging/channels/{name}`),
/// rather than channel names: push sends and e-mail. (`registrations` and
/// `pushtemplates` are routed above them.)
const RESERVED: [&str; 3] = ["channels", "push", "email"];

async fn route(state: &Shared, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let segs: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let method = parts.method.as_str();
    let [app, key, rest @ ..] = segs.as_slice() else {
        return Err(ApiError::unknown_route(method));
    };
    if rest.is_empty() {
        return Err(ApiError::unknown_route(method));
    }
    let app = decode_segment(app).ok_or_else(ApiError::bad_credentials)?;
    let api_key = decode_segment(key).ok_or_else(ApiError::bad_credentials)?;
    let (app, key) = state.authenticate(&app, &api_key)?;
    drop(api_key);
    let engine = &app.engine;
    let m = &parts.method;

    match rest {
        ["info"] if m == Method::GET => Ok(info(state, &parts.headers)),
        ["info"] => Err(ApiError::method_not_allowed(method)),

        ["messaging", "channels", channel] if m == Method::DELETE => {
            let channel = channel_name(channel)?;
            key.check_publish(&channel)?;
            let existed = engine.delete_channel(&channel)?;
            Ok(json_response(StatusCode::OK, &json!({"result": existed})))
        }
        ["messaging", "channels", _] => Err(ApiError::method_not_allowed(method)),

        ["messaging", "registrations"] if m == Method::POST => {
            crate::push::register(state, app, &key, &parts.headers, body).await
        }
        ["messaging", "registrations"] => Err(ApiError::method_not_allowed(method)),
        ["messaging", "registrations", device] if m == Method::GET => {
            crate::push::registration(app, &key, device).await
        }
        ["messaging", "registrations", device] if m == Method::DELETE => {
            crate::push::unregister(app, &key, device).await
        }
        ["messaging", "registrations", _] => Err(ApiError::method_not_allowed(method)),
        ["messaging", "pushtemplates"] if m == Method::POST => {
            crate::push::put_template(state, app, &key, &parts.headers, body).await
        }
        // The Swift SDK asks without a device type.
        ["messaging", "pushtemplates"] if m == Method::GET => {
            crate::push::templates(app, &key, None).await
        }
        ["messaging", "pushtemplates"] => Err(ApiError::method_not_allowed(method)),
        ["messaging", "pushtemplates", device_type] if m == Method::GET => {
            crate::push::templates(app, &key, Some(device_type)).await
        }
        ["messaging", "pushtemplates", name] if m == Method::DELETE => {
            crate::push::delete_template(app, &key, name).await
        }
        ["messaging", "pushtemplates", _] => Err(ApiError::method_not_allowed(method)),
        ["messaging", "push", name] if m == Method::POST => {
            crate::push::send_template(state, app, &key, &parts.headers, body, name).await
        }
        ["messaging", "push", _] => Err(ApiError::method_not_allowed(method)),
        ["messaging", "registrations" | "pushtemplates", ..] => {
            Err(ApiError::unknown_route(method))
        }
        ["messaging", reserved, ..] if RESERVED.contains(reserved) => Err(
            ApiError::not_supported_endpoint(&format!("messaging/{reserved}")),
        ),

        ["messaging", x] if m == Method::POST => {
            let channel = channel_name(x)?;
            key.check_publish(&channel)?;
            let bytes = read_bytes(&parts.headers, body, state.limits.max_body)
                .await?
                .ok_or_else(|| ApiError::malformed_json("the body is empty"))?;
            // The message is kept as its raw JSON bytes: only the options
            // are parsed.
            let request = PublishRequest::from_slice(&bytes).map_err(|e| match e {
                RequestError::Json(e) => ApiError::malformed_json(e),
                RequestError::Invalid(e) => e.into(),
                other => ApiError::malformed_json(other),
            })?;
            if request.delivery.publish_policy.includes_push() {
                key.check_push(&channel)?;
            }
            let extras = idempotency(&parts.headers)?;
            let status = match engine
                .publish_with(
                    &channel,
                    request.message,
                    request.publish,
                    request.delivery,
                    extras,
                )
                .await
            {
                Ok(status) => status,
                // 5093: the store logs its outage itself, at a bounded
                // rate; a refused publish is counted, not logged once per
                // request.
                Err(e @ herald::Error::StoreUnavailable(_)) => {
                    let e = ApiError::from(e);
                    state.metrics.count_error(e.code);
                    return Ok(e.into_response());
                }
                Err(e) => return Err(e.into()),
            };
            Ok(json_response(StatusCode::OK, &status))
        }
        // A message on a channel the key may not see answers as an
        // unknown id does: status needs publish or subscribe rights on
        // the message's channel, cancel needs publish rights.
        ["messaging", id] if m == Method::GET => {
            let id = decode_segment_lenient(id);
            let status = engine
                .message_status_where(&id, |ch| key.can_publish(ch) || key.can_subscribe(ch))
                .await?;
            Ok(json_response(StatusCode::OK, &status))
        }
        ["messaging", id] if m == Method::DELETE => {
            let id = decode_segment_lenient(id);
            let status = engine.cancel_where(&id, |ch| key.can_publish(ch)).await?;
            Ok(json_response(StatusCode::OK, &status))
        }
        ["messaging", _] => Err(ApiError::method_not_allowed(method)),

        ["messaging", channel, "subscribe"] if m == Method::POST => {
            let channel = channel_name(channel)?;
            polling_subscribe(state, app, &key, channel, &parts.headers, body).await
        }
        ["messaging", _, "subscribe"] => Err(ApiError::method_not_allowed(method)),
        ["messaging", channel, subscription] if m == Method::GET => {
            let channel = channel_name(channel)?;
            key.check_subscribe(&channel)?;
            let id = decode_segment(subscription).ok_or_else(ApiError::unknown_subscription)?;
            let mut lagged = 0;
            let answer = app.polling.poll(
                &channel,
                &id,
                state.clock.now(),
                state.limits.poll_max_bytes,
                &mut lagged,
            )?;
            state.metrics.count_lagged(lagged);
            Ok(json_text_response(StatusCode::OK, answer))
        }
        ["messaging", _, _] => Err(ApiError::method_not_allowed(method)),

        _ => Err(ApiError::unknown_route(method)),
    }
}

/// The `Idempotency-Key` header of a publish, if any. One only, of
/// printable ASCII (the engine checks the rest: 5096).
pub(crate) fn idempotency(headers: &HeaderMap) -> Result<herald::PublishExtras, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let extras = herald::PublishExtras::default();
    let Some(value) = values.next() else {
        return Ok(extras);
    };
    if values.next().is_some() {
        return Err(herald::Error::InvalidIdempotencyKey.into());
    }
    let key = value
        .to_str()
        .map_err(|_| ApiError::from(herald::Error::InvalidIdempotencyKey))?;
    Ok(extras.with_idempotency_key(key))
}

/// A channel name from its path segment; undecodable is 5010.
fn channel_name(raw: &str) -> Result<String, ApiError> {
    decode_segment(raw).ok_or_else(|| {
        herald::Error::InvalidChannel {
            reason: "The name is not percent-encoded UTF-8.".into(),
        }
        .into()
    })
}

/// `GET info`: `rtURL` is this server as the client reached it.
fn info(state: &State, headers: &HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_plain_host(h))
        .map_or_else(|| state.local_addr.to_string(), str::to_owned);
    let scheme = if state.tls { "https" } else { "http" };
    json_response(
        StatusCode::OK,
        &json!({"rtURL": format!("{scheme}://{host}"), "loggers": []}),
    )
}

/// A `Host` value we are willing to echo: a host name or address and an
/// optional port, nothing else.
fn is_plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// `POST messaging/{channel}/subscribe`.
async fn polling_subscribe(
    state: &Shared,
    app: &App,
    key: &Key,
    channel: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    key.check_subscribe(&channel)?;
    let body = read_json(headers, body, state.limits.max_body, true).await?;
    let selector = match &body {
        Value::Null => None,
        Value::Object(obj) => match obj.get("selector") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ApiError::selector_not_a_string()),
        },
        _ => return Err(ApiError::malformed_json("expected a JSON object")),
    };
    let id = app.polling.subscribe(
        &app.engine,
        &channel,
        selector.as_deref(),
        state.clock.now(),
    )?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "subscriptionId": id }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_read_the_metrics() {
        let peer = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        let none = HeaderMap::new();
        let bearer = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, t.parse().unwrap());
            h
        };
        // No token: loopback clients only.
        for ok in [
            "127.0.0.1:5",
            "127.9.9.9:5",
            "[::1]:5",
            "[::ffff:127.0.0.1]:5",
        ] {
            assert!(metrics_allowed(None, peer(ok), &none).is_ok(), "{ok}");
        }
        for remote in ["10.0.0.2:5", "[2001:db8::1]:5", "[::ffff:10.0.0.2]:5"] {
            let e = metrics_allowed(None, peer(remote), &none).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (403, 8011), "{remote}");
        }
        assert!(metrics_allowed(None, None, &none).is_err(), "unknown peer");
        // A token: the bearer token, from anywhere; nothing else.
        let t = Some("s3cret-token");
        assert!(metrics_allowed(t, peer("10.0.0.2:5"), &bearer("Bearer s3cret-token")).is_ok());
        for wrong in [
            none.clone(),
            bearer("Bearer s3cret-tokeN"),
            bearer("Bearer s3cret-token "),
            bearer("Basic s3cret-token"),
            bearer("s3cret-token"),
        ] {
            let e = metrics_allowed(t, peer("127.0.0.1:5"), &wrong).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (401, 8011), "{wrong:?}");
        }
    }

    #[test]
    fn hosts() {
        assert!(is_plain_host("localhost:8080"));
        assert!(is_plain_host("[::1]:80"));
        assert!(!is_plain_host("evil.com/path"));
        assert!(!is_plain_host("a b"));
        assert!(!is_plain_host(""));
    }
}
