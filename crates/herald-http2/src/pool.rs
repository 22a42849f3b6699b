//! `Pool`: a few long-lived HTTP/2 connections to one host.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::{Builder, Connection, SendRequest};
use h2::{Ping, PingPong, Reason, RecvStream};
use herald::Clock;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::io::{Coalesced, READ_BUFFER};
use crate::{BadUrl, Response, SendError};

/// How many times a request the server did not process goes out again
/// (each time on a connection that is not closing).
const MAX_RESENDS: u32 = 8;

/// Flow-control windows we grant the server (what hyper's client granted):
/// answers are small, so these only spare WINDOW_UPDATE frames.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
/// The largest frame and header block we accept from the server.
const MAX_FRAME_SIZE: u32 = 16 * 1024;
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

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
    /// The h2 handle; each request opens its stream on a clone of it.
    sender: SendRequest<Bytes>,
    in_flight: AtomicUsize,
    /// The server refused a request on it (a GOAWAY): no new request goes
    /// to it; those in flight finish.
    draining: AtomicBool,
    /// Set by the connection's task when it ends (closed, broken, or its
    /// PING unanswered).
    closed: Arc<AtomicBool>,
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
        let (parts, body) = request.into_parts();
        let uri = self.inner.uri(parts.uri)?;
        let (method, headers) = (parts.method, parts.headers);
        self.send_with(|| {
            let mut request = Request::new(body.clone());
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers.clone();
            request
        })
        .await
    }

    /// Like [`send`](Self::send), the request made by `request` for each
    /// attempt (once, unless the server refused it unprocessed): h2 takes
    /// a request by value, so a caller holding a prepared request clones
    /// it here once instead of handing over a copy that the pool would
    /// copy again. A URI that already names this pool's scheme and host
    /// ([`Pool::uri`]) is used as it is.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_with<F>(&self, request: F) -> Result<Response, SendError>
    where
        F: Fn() -> Request<Bytes>,
    {
        let inner = &self.inner;
        let attempts = async {
            let mut resends = 0;
            loop {
                let conn = Inner::connection(inner).await?;
                let (mut head, body) = request().into_parts();
                if !inner.is_ours(&head.uri) {
                    head.uri = inner.uri(head.uri)?;
                }
                let head = Request::from_parts(head, ());
                let in_flight = InFlight::enter(&conn);
                let failure = match exchange(&conn.sender, head, body).await {
                    Ok(answer) => return Ok(answer),
                    Err(failure) => failure,
                };
                drop(in_flight);
                let refusal = match &failure {
                    // h2 did not take the request: the connection had ended
                    // or heard a GOAWAY (nothing went out), or the request
                    // itself cannot be sent (no point sending it again).
                    Failure::NotSent(e) if is_user(e) => {
                        return Err(SendError::Refused(format!(
                            "the request cannot be sent: {}",
                            describe(e)
                        )));
                    }
                    Failure::NotSent(_) => Some(Refusal::Closing),
                    Failure::Sent(e) => refusal(e),
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
                let why = describe(failure.error());
                return Err(if unprocessed {
                    SendError::Refused(why)
                } else {
                    SendError::Lost(why)
                });
            }
        };
        within(&*inner.clock, inner.options.request_timeout, attempts)
            .await
            .unwrap_or(Err(SendError::Timeout))
    }

    /// `path_and_query` (such as `/3/device/abcd`) on this pool's scheme
    /// and host: a URI that [`send_with`](Self::send_with) uses without
    /// rebuilding it (build it once, clone it per request).
    ///
    /// # Errors
    ///
    /// [`SendError::Refused`] when `path_and_query` is not a valid path.
    pub fn uri<T>(&self, path_and_query: T) -> Result<Uri, SendError>
    where
        PathAndQuery: TryFrom<T>,
        <PathAndQuery as TryFrom<T>>::Error: fmt::Display,
    {
        let path = PathAndQuery::try_from(path_and_query)
            .map_err(|e| SendError::Refused(format!("bad request path: {e}")))?;
        Uri::builder()
            .scheme(self.inner.scheme.clone())
            .authority(self.inner.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| SendError::Refused(format!("bad request URI: {e}")))
    }

    /// What the pool has done so far.
    pub fn stats(&self) -> PoolStats {
        let inner = &self.inner;
        PoolStats {
            connections_opened: inner.opened.load(Ordering::Relaxed),
            connections_open: inner.least_busy().1,
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
    /// Whether `uri` names this pool's scheme and host already.
    fn is_ours(&self, uri: &Uri) -> bool {
        uri.scheme() == Some(&self.scheme) && uri.authority() == Some(&self.authority)
    }

    fn uri(&self, path: Uri) -> Result<Uri, SendError> {
        let path = path
            .into_parts()
            .path_and_query
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| SendError::Connect(format!("bad request URI: {e}")))
    }

    /// The least busy open connection, and how many are open (closed and
    /// draining ones are dropped from the list first).
    fn least_busy(&self) -> (Option<Arc<Conn>>, usize) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|c| c.usable());
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
        // Checked again under the lock: a request that saw one connection
        // too few may get here after another background open finished
        // (the APNs connection test saw 3 connections with a limit of 2).
        if this.least_busy().1 >= this.options.max_connections {
            return;
        }
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
            let tcp = BufReader::with_capacity(READ_BUFFER, tcp);
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
            let (sender, connection) = Builder::new()
                // One stream until the server's SETTINGS say how many:
                // Apple allows one until a valid provider token.
                .initial_max_send_streams(1)
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .max_frame_size(MAX_FRAME_SIZE)
                .max_header_list_size(MAX_HEADER_LIST_SIZE)
                .enable_push(false)
                .handshake::<_, Bytes>(Coalesced(tls))
                .await
                .map_err(|e| SendError::Connect(format!("HTTP/2 with {host}:{port}: {e}")))?;
            let closed = Arc::new(AtomicBool::new(false));
            tokio::spawn(drive(
                connection,
                closed.clone(),
                self.options.ping_interval,
                self.options.ping_timeout,
                self.url.clone(),
            ));
            Ok((sender, closed))
        };
        let (sender, closed) = within(&*self.clock, self.options.connect_timeout, handshake)
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
            closed,
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

    /// Neither closed nor draining: it may take a new request.
    fn usable(&self) -> bool {
        !self.closed.load(Ordering::Relaxed) && !self.draining.load(Ordering::Relaxed)
    }
}

/// Drives one connection (its frames, both ways) until it ends, sending a
/// PING every `ping_interval` and dropping it when one is not answered
/// within `ping_timeout`. The PINGs run on tokio's timer (as hyper's did):
/// they check a real socket's liveness, and a test's jumps of the injected
/// clock must not count as a silent server.
async fn drive(
    connection: Connection<Coalesced, Bytes>,
    closed: Arc<AtomicBool>,
    ping_interval: Duration,
    ping_timeout: Duration,
    url: String,
) {
    let mut connection = std::pin::pin!(connection);
    let pings = connection.ping_pong();
    tokio::select! {
        ended = &mut connection => {
            if let Err(e) = ended {
                tracing::debug!(%url, error = %e, "a gateway connection closed");
            }
        }
        () = keep_alive(pings, ping_interval, ping_timeout) => {
            tracing::debug!(%url, "a gateway connection did not answer its PING: dropped");
        }
    }
    // No new request goes to it; dropping it (below) ends the streams still
    // open on it with an error, and any request sent to it meanwhile fails
    // before leaving (h2 remembers the connection ended).
    closed.store(true, Ordering::Relaxed);
}

/// Returns when a PING goes unanswered; runs forever otherwise (if the
/// connection ends, its own branch in [`drive`] reports why).
async fn keep_alive(pings: Option<PingPong>, every: Duration, timeout: Duration) {
    let Some(mut pings) = pings else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(timeout, pings.ping(Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}

/// How one attempt failed.
enum Failure {
    /// h2 refused to open the stream: nothing went out.
    NotSent(h2::Error),
    /// The stream was opened; the error came after.
    Sent(h2::Error),
}

impl Failure {
    fn error(&self) -> &h2::Error {
        match self {
            Self::NotSent(e) | Self::Sent(e) => e,
        }
    }
}

/// One request on `sender`'s connection: the head, the body (if any), then
/// the whole answer. No task, channel or oneshot: the stream is driven by
/// the connection's task and awaited here.
async fn exchange(
    sender: &SendRequest<Bytes>,
    head: Request<()>,
    body: Bytes,
) -> Result<Response, Failure> {
    let end_of_stream = body.is_empty();
    // A fresh handle has no stream of its own pending, so this does not
    // wait: a stream over the server's limit is queued by h2 and opens when
    // one ends (which is why `ready()` is not needed).
    let (answer, mut stream) = sender
        .clone()
        .send_request(head, end_of_stream)
        .map_err(Failure::NotSent)?;
    if !end_of_stream {
        // Without capacity reserved, h2 buffers the data and asks for
        // capacity itself, sending it as the server's windows allow; the
        // body is held in full anyway, so buffering costs nothing. This
        // fails only when the stream has closed already (a reset, a
        // GOAWAY, an early answer): then the answer below says how.
        let _ = stream.send_data(body, true);
    }
    let answer = answer.await.map_err(Failure::Sent)?;
    drop(stream);
    let (head, mut recv) = answer.into_parts();
    let body = read_body(&mut recv).await.map_err(Failure::Sent)?;
    Ok(Response {
        status: head.status,
        headers: head.headers,
        body,
    })
}

/// The whole body of an answer, each chunk's flow-control capacity given
/// back to the server as it is read.
async fn read_body(recv: &mut RecvStream) -> Result<Bytes, h2::Error> {
    let mut first = Bytes::new();
    let mut more: Option<BytesMut> = None;
    while !recv.is_end_stream() {
        let Some(chunk) = recv.data().await else {
            break;
        };
        let chunk = chunk?;
        // Fails only if the stream is gone, when there is nothing to give.
        let _ = recv.flow_control().release_capacity(chunk.len());
        if let Some(more) = &mut more {
            more.extend_from_slice(&chunk);
        } else if first.is_empty() {
            first = chunk;
        } else {
            let mut joined = BytesMut::with_capacity(first.len() + chunk.len());
            joined.extend_from_slice(&first);
            joined.extend_from_slice(&chunk);
            more = Some(joined);
        }
    }
    Ok(more.map_or(first, BytesMut::freeze))
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
    /// The connection is closing: h2 never opened the stream (the
    /// connection had ended or heard a GOAWAY), or the server's GOAWAY
    /// (graceful, `NO_ERROR`) named a last stream below it (as for
    /// requests queued behind the server's stream limit).
    Closing,
}

/// Whether, and how, the server refused the request whose stream failed
/// with `err` without processing it (`None`: it may have processed it).
fn refusal(err: &h2::Error) -> Option<Refusal> {
    if err.is_go_away() && err.is_remote() && err.reason() == Some(Reason::NO_ERROR) {
        Some(Refusal::Closing)
    } else if err.reason() == Some(Reason::REFUSED_STREAM) {
        Some(Refusal::Stream)
    } else {
        None
    }
}

/// Whether `err` is about the request itself (h2 could not encode it),
/// not about the connection or the server.
fn is_user(err: &h2::Error) -> bool {
    err.reason().is_none() && !err.is_io()
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use herald::ManualClock;
    use herald_core::Tick;
    use herald_testkit::h2_server::{Conn, H2Server, H2ServerOptions, Handler};
    use herald_testkit::tls::TestCa;

    use super::{Inner, Pool, PoolOptions};

    /// Found once in CI (the APNs connection test saw 3 connections with a
    /// limit of 2): a request counts the open connections, sees one too
    /// few, and reaches `open_in_background` after another background
    /// open finished. Here it arrives with the pool already full: it must
    /// not open a third.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_that_counted_too_few_does_not_open_past_the_limit() {
        let ca = TestCa::new();
        let ok: Handler =
            Arc::new(|_req, _conn: Conn| Box::pin(async { http::Response::new(Bytes::new()) }));
        let server = H2Server::start(ca.server_config(), H2ServerOptions::default(), ok)
            .await
            .unwrap();
        let tls = crate::client_tls_only(ca.ca_pem().as_bytes()).unwrap();
        let options = PoolOptions {
            max_connections: 2,
            ..PoolOptions::default()
        };
        let clock = Arc::new(ManualClock::new(Tick::from_millis(1_700_000_000_000)));
        let pool = Pool::new(&server.url(), tls, options, clock).unwrap();
        let inner = pool.inner.clone();
        for _ in 0..2 {
            inner.open().await.unwrap();
        }
        assert_eq!(inner.least_busy().1, 2);
        // The stale request's step, several times over.
        for _ in 0..5 {
            Inner::open_in_background(&inner);
            // A background open holds the opening lock until it ends.
            drop(inner.connecting.lock().await);
        }
        assert_eq!(
            pool.stats().connections_opened,
            2,
            "a connection was opened past the limit"
        );
        assert_eq!(inner.least_busy().1, 2);
    }
}
