//! Every request, whatever its route: the client's address for the
//! handlers, the request timeout, and one log line.
//!
//! * The peer address goes in as axum's [`ConnectInfo`] (`/metrics` trusts
//!   loopback clients).
//! * A request that has not been answered `request_timeout` after its head
//!   arrived (on the server's clock) gets `408` with code 8010; its
//!   handler is dropped (a publish already on its way to the store still
//!   completes: the engine runs it to completion). Long polls are exempt:
//!   Engine.IO's polling `GET`s (socket.io holds them open until it has
//!   packets) and the legacy polling API's `GET`s.
//! * One `info` line per request: method, path with the API key replaced
//!   by `***` and every control character escaped, status, the error
//!   code of an error answer, and the duration.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;
use tracing::info;

use crate::State;
use crate::auth::redact_path;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Held;

/// The shared part of every connection's request service.
#[derive(Clone)]
pub(crate) struct Requests {
    router: Router,
    state: Arc<State>,
    timeout: Duration,
}

impl Requests {
    /// Requests through `router`, each bounded by `timeout`.
    pub(crate) fn new(router: Router, state: Arc<State>, timeout: Duration) -> Self {
        Self {
            router,
            state,
            timeout,
        }
    }

    /// The service of one connection from `peer`.
    pub(crate) fn service(&self, peer: SocketAddr, permit: ConnPermit) -> PeerService {
        PeerService {
            requests: self.clone(),
            peer,
            permit,
        }
    }
}

/// hyper's service for one connection.
#[derive(Clone)]
pub(crate) struct PeerService {
    requests: Requests,
    peer: SocketAddr,
    permit: ConnPermit,
}

/// The connection's slot under `max_connections`, in every request's
/// extensions: a request that takes the connection over (a WebSocket on
/// the direct path) takes the slot with it, so the connection counts as
/// long as it is open, not just until its upgrade. A long-polling session
/// takes a slot of its own from the same limit ([`ConnPermit::another`]):
/// it outlives the requests (and connections) that serve it.
#[derive(Clone, Debug)]
pub(crate) struct ConnPermit {
    slot: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
    /// The limit the slot was taken from.
    limit: Arc<Semaphore>,
}

impl ConnPermit {
    /// A connection's slot.
    pub(crate) fn new(permit: OwnedSemaphorePermit) -> Self {
        Self {
            limit: permit.semaphore().clone(),
            slot: Arc::new(Mutex::new(Some(permit))),
        }
    }

    /// Takes the slot (`None`: taken already, or a connection not from
    /// the accept loop).
    pub(crate) fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Another slot under the same limit, if one is free now (`None`: the
    /// limit is reached).
    pub(crate) fn another(&self) -> Option<OwnedSemaphorePermit> {
        self.limit.clone().try_acquire_owned().ok()
    }
}

impl Service<Request<Incoming>> for PeerService {
    type Response = Response;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send + 'static>,
    >;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let Requests {
            router,
            state,
            timeout,
        } = self.requests.clone();
        req.extensions_mut().insert(ConnectInfo(self.peer));
        req.extensions_mut().insert(self.permit.clone());
        Box::pin(async move {
            let start = Instant::now();
            let method = req.method().clone();
            let path = redact_path(req.uri().path());
            let long_poll = is_long_poll(&req);
            // The deadline is read before the request counts as in flight.
            let deadline = state.sleep(timeout);
            let _in_flight = Held::new(&state.metrics.requests_in_flight);
            let answer = router.oneshot(req);
            let response = if long_poll {
                answer.await
            } else {
                tokio::select! {
                    r = answer => r,
                    () = deadline => {
                        state.metrics.request_timeouts.fetch_add(1, Ordering::Relaxed);
                        let e = ApiError::request_timeout(timeout);
                        state.metrics.count_error(e.code);
                        Ok(e.into_response())
                    }
                }
            };
            let response = match response {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
            info!(
                method = %method,
                path = %path.escape_debug(),
                status = response.status().as_u16(),
                code,
                micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
                "request"
            );
            Ok(response)
        })
    }
}

/// Whether `req` is a long poll, exempt from the request timeout:
/// Engine.IO (its query names the protocol version, `EIO=`) and the legacy
/// polling API (`GET /{app}/{key}/messaging/{channel}/{subscription}`).
fn is_long_poll<B>(req: &Request<B>) -> bool {
    if req.method() != Method::GET {
        return false;
    }
    if req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("EIO=")))
    {
        return true;
    }
    let segments: Vec<&str> = req.uri().path().split('/').skip(1).collect();
    matches!(segments.as_slice(), [_, _, "messaging", channel, sub]
        if !channel.is_empty() && !sub.is_empty() && *channel != "channels" && *sub != "subscribe")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str) -> Request<()> {
        Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    #[test]
    fn long_polls_are_engine_io_and_legacy_polling_gets() {
        for (method, uri, long) in [
            ("GET", "/APP/?EIO=4&transport=polling&apiKey=k", true),
            ("GET", "/APP?EIO=4&transport=polling&sid=abc", true),
            ("POST", "/APP/?EIO=4&transport=polling&sid=abc", false),
            ("GET", "/APP/KEY/messaging/news/SUB-ID", true),
            ("POST", "/APP/KEY/messaging/news/subscribe", false),
            ("GET", "/APP/KEY/messaging/news/subscribe", false),
            ("GET", "/APP/KEY/messaging/01A2-ID", false),
            ("GET", "/APP/KEY/info", false),
            ("GET", "/health", false),
            ("GET", "/health?NOTEIO=4", false),
        ] {
            assert_eq!(is_long_poll(&req(method, uri)), long, "{method} {uri}");
        }
    }
}
