//! The accept loop: TCP (or TLS) connections served by hyper's HTTP/1.1,
//! bounded so slow or idle clients cannot take the server down.
//!
//! * **At most `max_connections` at once.** Past that the loop stops
//!   accepting (new clients wait in the kernel's backlog) until one
//!   closes; the process never runs out of file descriptors, which would
//!   also fail its store.
//! * **A header-read timeout** (`header_read_timeout`, on the server's
//!   clock): a client that has not sent a whole request head that long
//!   after the connection opened, or after its previous response, is
//!   disconnected; a TLS handshake has the same budget. So half-sent
//!   requests and idle keep-alive connections free their slot.
//! * **A request timeout** (`request_timeout`): see [`crate::request`].
//!
//! A stop signal ends the loop; open connections then finish the request
//! they are serving and close (hyper's graceful shutdown), and [`serve`]
//! returns once all have.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::State;
use crate::metrics::Held;
use crate::request::{ConnPermit, Requests};
use crate::timer::ClockTimer;

/// How the listener serves its connections.
pub(crate) struct Listen {
    /// The bound listener.
    pub(crate) listener: TcpListener,
    /// TLS, if configured.
    pub(crate) tls: Option<TlsAcceptor>,
    /// `header_read_timeout`.
    pub(crate) header_read_timeout: Duration,
    /// `max_connections`.
    pub(crate) max_connections: usize,
}

/// Serves connections from `listen` through `router` until `stop` turns
/// true, then waits for the open connections to close.
pub(crate) async fn serve(
    listen: Listen,
    router: Router,
    state: Arc<State>,
    request_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let max = listen.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max));
    let conn = Arc::new(ConnConfig {
        requests: Requests::new(router, state.clone(), request_timeout),
        timer: ClockTimer::new(state.clock.clone()),
        header_read_timeout: listen.header_read_timeout,
        tls: listen.tls,
        state,
    });
    let mut accept_errors = 0u64;
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listen.listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or memory, or a connection
                    // reset before it was accepted: back off a little and
                    // go on (the first error and then every 1000th logged).
                    if accept_errors.is_multiple_of(1000) {
                        warn!(error = %e, errors = accept_errors + 1, "accepting a connection failed");
                    }
                    accept_errors += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        tokio::spawn(connection(conn.clone(), stream, peer, permit, stop.clone()));
    }
    drop(listen.listener);
    // Every connection holds a permit until it has closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

/// Completes once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What every connection shares.
struct ConnConfig {
    requests: Requests,
    timer: ClockTimer,
    header_read_timeout: Duration,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
}

/// One connection, from the TLS handshake (if any) to close.
async fn connection(
    conf: Arc<ConnConfig>,
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    // Held until the connection closes, or handed to the WebSocket session
    // that takes it over.
    let permit = ConnPermit::new(permit);
    match &conf.tls {
        None => http(&conf, stream, peer, permit, stop).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                r = acceptor.accept(stream) => r,
                () = conf.state.sleep(conf.header_read_timeout) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            match handshake {
                Ok(tls) => http(&conf, tls, peer, permit, stop).await,
                Err(e) => debug!(%peer, error = %e, "TLS handshake failed"),
            }
        }
    }
}

/// HTTP/1.1 on `io` (with upgrades, for socket.io's WebSocket).
async fn http<I>(
    conf: &ConnConfig,
    io: I,
    peer: SocketAddr,
    permit: ConnPermit,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = conf.requests.service(peer, permit);
    // Counted from before the connection's first poll, which starts its
    // header-read timer.
    let _open = Held::new(&conf.state.metrics.http_connections);
    let mut builder = http1::Builder::new();
    builder
        .timer(conf.timer.clone())
        .header_read_timeout(conf.header_read_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            conf.state
                .metrics
                .header_timeouts
                .fetch_add(1, Ordering::Relaxed);
        }
        debug!(%peer, error = %e, "connection closed with an error");
    }
}

/// Raises this process's open-files limit to its hard limit (servers hold
/// a descriptor per connection; the usual soft limit is 1024). Returns the
/// limit now in force, if the system tells it.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                limit = raised;
            }
        }
        limit.current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Warns once if `max_connections` (plus the descriptors the stores and
/// the process need) is over the open-files limit: past it, accepting
/// fails before the connection limit is reached.
pub(crate) fn warn_if_over_fd_limit(max_connections: usize) {
    #[cfg(unix)]
    {
        const RESERVE: u64 = 64;
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        if let Some(limit) = limit
            && (max_connections as u64).saturating_add(RESERVE) > limit
        {
            warn!(
                max_connections,
                open_files_limit = limit,
                "max_connections is over the open-files limit (ulimit -n) less {RESERVE}: \
                 raise the limit or lower max_connections"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = max_connections;
}
