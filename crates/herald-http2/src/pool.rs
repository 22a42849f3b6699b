//! `Pool`: a few long-lived HTTP/2 connections to one host.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use herald::Clock;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::{BadUrl, Response, SendError};

/// How many times a request the server did not process goes out again
/// (each time on a connection that is not closing).
const MAX_RESENDS: u32 = 8;

/// How a [`Pool`] uses its connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections open at once (at least 1). Default 2.
    pub max_connections: usize,
    /// Another connection opens (one at a time, up to `max_connections`)
    /// when every open one carries this many requests. Default 100.
    pub streams_before_next: usize,
    /// The longest wait for a connection (TCP, TLS, HTTP/2 settings).
    /// Default 10 s.
    pub connect_timeout: Duration,
    /// The longest wait for a whole answer, connecting included. Default
    /// 10 s.
    pub request_timeout: Duration,
    /// HTTP/2 PINGs this often, idle or not, to notice a dead connection.
    /// Default 60 s.
    pub ping_interval: Duration,
    /// A connection whose PING is not answered within this is dropped.
    /// Default 20 s.
    pub ping_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 2,
            streams_before_next: 100,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(60),
            ping_timeout: Duration::from_secs(20),
        }
    }
}

/// What a [`Pool`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections opened since the pool was made.
    pub connections_opened: u64,
    /// Connections open now.
    pub connections_open: usize,
    /// Attempts to connect that failed (requests waiting for one attempt
    /// share its failure).
    pub connect_failures: u64,
    /// Requests sent again because the server did not process them (a
    /// GOAWAY, a refused stream).
    pub requests_resent: u64,
}

/// A few long-lived HTTP/2 connections over TLS to one host (see the
/// [crate docs](crate)). Cheap to share behind an `Arc`; every method takes
/// `&self`.
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    scheme: Scheme,
    authority: Authority,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    options: PoolOptions,
    clock: Arc<dyn Clock>,
    conns: Mutex<Vec<Arc<Conn>>>,
    /// Held while a connection is being opened: one at a time.
    connecting: Arc<tokio::sync::Mutex<()>>,
    /// The last failed attempt to connect: its number and why. Requests
    /// that waited for that attempt share its failure instead of each
    /// trying again in turn.
    failed: Mutex<(u64, Option<SendError>)>,
    /// Attempts to connect that ended so far.
    attempts: AtomicU64,
    connect_failures: AtomicU64,
    opened: AtomicU64,
    resent: AtomicU64,
}

struct Conn {
    sender: SendRequest<Full<Bytes>>,
    in_flight: AtomicUsize,
    /// The server refused a request on it (a GOAWAY): no new request goes
    /// to it; those in flight finish.
    draining: AtomicBool,
}

impl Pool {
    /// A pool for `base_url` (`https://host[:port]`, no path), trusting
    /// what `tls` trusts (see [`client_tls`](crate::client_tls)); its
    /// timeouts run on `clock`. No connection opens before the first
    /// request.
    ///
    /// # Errors
    ///
    /// [`BadUrl`] when `base_url` is not an `https` URL with a host and no
    /// path.
    pub fn new(
        base_url: &str,
        tls: Arc<ClientConfig>,
        options: PoolOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BadUrl> {
        let bad = |reason| BadUrl {
            url: base_url.to_owned(),
            reason,
        };
        let uri: Uri = base_url
            .trim_end_matches('/')
            .parse()
            .map_err(|_| bad("not a URL"))?;
        if uri.scheme() != Some(&Scheme::HTTPS) {
            return Err(bad("the scheme must be https"));
        }
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(bad("a gateway URL has no path"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?.clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let server_name =
            ServerName::try_from(host.clone()).map_err(|_| bad("the host is not a valid name"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: base_url.to_owned(),
                scheme: Scheme::HTTPS,
                port: authority.port_u16().unwrap_or(443),
                authority,
                host,
                server_name,
                connector: TlsConnector::from(tls),
                options: PoolOptions {
                    max_connections: options.max_connections.max(1),
                    streams_before_next: options.streams_before_next.max(1),
                    ..options
                },
                clock,
                conns: Mutex::new(Vec::new()),
                connecting: Arc::new(tokio::sync::Mutex::new(())),
                failed: Mutex::new((0, None)),
                attempts: AtomicU64::new(0),
                connect_failures: AtomicU64::new(0),
                opened: AtomicU64::new(0),
                resent: AtomicU64::new(0),
            }),
        })
    }

    /// Sends `request` (its URI a path and query, such as
    /// `/3/device/abcd`; the pool adds scheme and host) and reads the whole
    /// answer. A request the server provably did not process goes out again
    /// on another connection (see the [crate docs](crate)).
    ///
    /// # Errors
    ///
    /// [`SendError`]: [`Connect`](SendError::Connect) when no connection
    /// could be opened and [`Refused`](SendError::Refused) when every
    /// connection refused it (nothing was processed),
    /// [`Timeout`](SendError::Timeout) or [`Lost`](SendError::Lost) when
    /// the server may have processed it.
    pub async fn send(&self, request: Request<Bytes>) -> Result<Response, SendError> {
        let inner = &self.inner;
        let (parts, body) = request.into_parts();
        let uri = inner.uri(&parts.uri)?;
        let attempts = async {
            let mut resends = 0;
            loop {
                let conn = Inner::connection(inner).await?;
                let mut req = Request::new(Full::new(body.clone()));
                *req.method_mut() = parts.method.clone();
                *req.uri_mut() = uri.clone();
                *req.headers_mut() = parts.headers.clone();
                *req.version_mut() = Version::HTTP_2;
                let in_flight = InFlight::enter(&conn);
                let mut sender = conn.sender.clone();
                match sender.try_send_request(req).await {
                    Ok(answer) => {
                        let (head, body) = answer.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map_err(|e| SendError::Lost(describe(&e)))?
                            .to_bytes();
                        drop(in_flight);
                        return Ok(Response {
                            status: head.status,
                            headers: head.headers,
                            body,
                        });
                    }
                    Err(mut e) => {
                        drop(in_flight);
                        let refusal = if e.take_message().is_some() {
                            Some(Refusal::Closing)
                        } else {
                            refusal(e.error())
                        };
                        let unprocessed = refusal.is_some();
                        if refusal == Some(Refusal::Closing) {
                            conn.draining.store(true, Ordering::Relaxed);
                        }
                        if unprocessed && resends < MAX_RESENDS {
                            resends += 1;
                            inner.resent.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let why = describe(e.error());
                        return Err(if unprocessed {
                            SendError::Refused(why)
                        } else {
                            SendError::Lost(why)
                        });
                    }
                }
            }
        };
        within(&*inner.clock, inner.options.request_timeout, attempts)
            .await
            .unwrap_or(Err(SendError::Timeout))
    }

    /// What the pool has done so far.
    pub fn stats(&self) -> PoolStats {
        let inner = &self.inner;
        PoolStats {
            connections_opened: inner.opened.load(Ordering::Relaxed),
            connections_open: inner.prune().len(),
            connect_failures: inner.connect_failures.load(Ordering::Relaxed),
            requests_resent: inner.resent.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("url", &self.inner.url)
            .field("options", &self.inner.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn uri(&self, path: &Uri) -> Result<Uri, SendError> {
        let path = path
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| SendError::Connect(format!("bad request URI: {e}")))
    }

    /// The open connections, closed ones dropped.
    fn prune(&self) -> Vec<Arc<Conn>> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|c| !c.sender.is_closed() && !c.draining.load(Ordering::Relaxed));
        conns.clone()
    }

    /// The least busy open connection, and how many are open.
    fn least_busy(&self) -> (Option<Arc<Conn>>, usize) {
        let conns = self.prune();
        let best = conns.iter().min_by_key(|c| c.load()).cloned();
        (best, conns.len())
    }

    /// A connection for one request: the least busy open one (opening
    /// another in the background when all are busy), or a new one when
    /// none is open.
    async fn connection(this: &Arc<Self>) -> Result<Arc<Conn>, SendError> {
        if let (Some(conn), open) = this.least_busy() {
            if open < this.options.max_connections
                && conn.load() >= this.options.streams_before_next
            {
                Self::open_in_background(this);
            }
            return Ok(conn);
        }
        let attempts_before = this.attempts.load(Ordering::SeqCst);
        let _one_at_a_time = this.connecting.lock().await;
        if let (Some(conn), _) = this.least_busy() {
            return Ok(conn);
        }
        // An attempt made while this request waited failed: share it.
        if let (n, Some(e)) = &*this.failed.lock().unwrap_or_else(|e| e.into_inner())
            && *n > attempts_before
        {
            return Err(e.clone());
        }
        // Boxed: connecting (TCP, TLS, HTTP/2 handshakes) is a large future
        // every request's future would otherwise carry.
        Box::pin(this.open()).await
    }

    fn open_in_background(this: &Arc<Self>) {
        let Ok(guard) = this.connecting.clone().try_lock_owned() else {
            return; // one is being opened already
        };
        let inner = this.clone();
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(e) = inner.open().await {
                tracing::debug!(url = %inner.url, error = %e, "an extra gateway connection failed");
            }
        });
    }

    async fn open(&self) -> Result<Arc<Conn>, SendError> {
        let opened = self.try_open().await;
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if let Err(e) = &opened {
            self.connect_failures.fetch_add(1, Ordering::Relaxed);
            *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = (attempt, Some(e.clone()));
        }
        opened
    }

    async fn try_open(&self) -> Result<Arc<Conn>, SendError> {
        let host = &self.host;
        let port = self.port;
        let handshake = async {
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| SendError::Connect(format!("{host}:{port}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let tls = self
                .connector
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| SendError::Connect(format!("TLS with {host}:{port}: {e}")))?;
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(SendError::Connect(format!(
                    "{host}:{port} does not offer HTTP/2 (ALPN h2)"
                )));
            }
            let (sender, connection) = Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(self.options.ping_interval)
                .keep_alive_timeout(self.options.ping_timeout)
                .keep_alive_while_idle(true)
                // One stream until the server's SETTINGS say how many:
                // Apple allows one until a valid provider token.
                .initial_max_send_streams(1)
                .handshake(TokioIo::new(tls))
                .await
                .map_err(|e| SendError::Connect(format!("HTTP/2 with {host}:{port}: {e}")))?;
            let url = self.url.clone();
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%url, error = %e, "a gateway connection closed");
                }
            });
            Ok(sender)
        };
        let sender = within(&*self.clock, self.options.connect_timeout, handshake)
            .await
            .unwrap_or_else(|| {
                Err(SendError::Connect(format!(
                    "{host}:{port}: no connection within {} ms",
                    self.options.connect_timeout.as_millis()
                )))
            })?;
        let conn = Arc::new(Conn {
            sender,
            in_flight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        });
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn.clone());
        Ok(conn)
    }
}

impl Conn {
    fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Counts one request on a connection while it lives.
struct InFlight<'a>(&'a Conn);

impl<'a> InFlight<'a> {
    fn enter(conn: &'a Conn) -> Self {
        conn.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(conn)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How the server refused a request it provably did not process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// This stream only (`REFUSED_STREAM`, as for a stream over the
    /// server's limit): the connection is fine.
    Stream,
    /// The connection is closing: hyper never put the request on the wire
    /// (canceled, or its dispatch task ended while the request waited in
    /// its queue, as after a GOAWAY with requests queued behind the
    /// server's stream limit), or the server's GOAWAY (graceful,
    /// `NO_ERROR`) named a last stream below it.
    Closing,
}

/// Whether, and how, the server refused the request that failed with
/// `err` without processing it (`None`: it may have processed it).
fn refusal(err: &hyper::Error) -> Option<Refusal> {
    if err.is_canceled() || err.is_user() {
        return Some(Refusal::Closing);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return if h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR)
            {
                Some(Refusal::Closing)
            } else if h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                Some(Refusal::Stream)
            } else {
                None
            };
        }
        source = e.source();
    }
    None
}

/// An error and its causes, on one line.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Runs `work` until it finishes or `limit` passes on `clock` (`None`).
async fn within<T>(clock: &dyn Clock, limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    let deadline = clock
        .now()
        .saturating_add_millis(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX));
    let expired = async {
        // A clock's sleep may end early (SystemClock bounds its sleeps).
        while clock.now() < deadline {
            clock.sleep_until(deadline).await;
        }
    };
    tokio::select! {
        out = work => Some(out),
        () = expired => None,
    }
}
