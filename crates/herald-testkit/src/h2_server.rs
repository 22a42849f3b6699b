//! `H2Server`: an HTTP/2-over-TLS test server on 127.0.0.1, the base of
//! the mock gateways. It counts connections and streams and can shut a
//! connection down with GOAWAY.
//!
//! It serves with `h2` directly: each connection's task reads the streams'
//! bodies, runs the handler and sends the answers itself (no task per
//! stream, no body task), so a benchmark's mocks spend their CPU on the
//! checks and the protocol, not on scheduling.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use h2::RecvStream;
use h2::server::SendResponse;
use http::HeaderValue;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How an [`H2Server`] sets up its connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct H2ServerOptions {
    /// The `SETTINGS_MAX_CONCURRENT_STREAMS` it announces (`None`: 200,
    /// hyper's server default, which the mocks announced before they used
    /// h2 directly).
    pub max_concurrent_streams: Option<u32>,
}

/// Where a request arrived: its connection, the stream's number on it, and
/// a way to shut that connection down.
#[derive(Clone)]
pub struct Conn {
    /// The connection (0, 1, ... in accept order).
    pub id: u64,
    /// The request's number on its connection (1, 2, ...).
    pub stream: u64,
    goaway: Arc<Notify>,
}

impl Conn {
    /// Starts a graceful shutdown of this connection: GOAWAY now; streams
    /// already received finish, later ones are refused, and the
    /// connection closes when the last one is answered.
    pub fn goaway(&self) {
        self.goaway.notify_one();
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// The future a [`Handler`] returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = http::Response<Bytes>> + Send>>;

/// Answers one request (its body read in full).
pub type Handler = Arc<dyn Fn(http::Request<Bytes>, Conn) -> HandlerFuture + Send + Sync>;

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    streams: AtomicU64,
}

/// An HTTP/2-over-TLS server on an ephemeral port of 127.0.0.1, answering
/// with a [`Handler`]. Stops when dropped or [`stop`](Self::stop)ped.
pub struct H2Server {
    addr: SocketAddr,
    counts: Arc<Counts>,
    accept: tokio::task::JoinHandle<()>,
}

impl H2Server {
    /// Starts a server presenting `tls`'s certificate.
    ///
    /// # Errors
    ///
    /// If it cannot bind 127.0.0.1:0.
    pub async fn start(
        tls: Arc<ServerConfig>,
        options: H2ServerOptions,
        handler: Handler,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Counts::default());
        let acceptor = TlsAcceptor::from(tls);
        let accept = tokio::spawn(accept_loop(
            listener,
            acceptor,
            options,
            handler,
            counts.clone(),
        ));
        Ok(Self {
            addr,
            counts,
            accept,
        })
    }

    /// `https://localhost:PORT`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far (TLS done).
    pub fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn streams(&self) -> u64 {
        self.counts.streams.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes every connection.
    pub async fn stop(self) {
        self.accept.abort();
        let _ = (&mut { self }.accept).await;
    }
}

impl Drop for H2Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl fmt::Debug for H2Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H2Server")
            .field("addr", &self.addr)
            .field("connections", &self.connections())
            .field("streams", &self.streams())
            .finish_non_exhaustive()
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    options: H2ServerOptions,
    handler: Handler,
    counts: Arc<Counts>,
) {
    // Dropped (aborting every connection) when this task is aborted.
    let mut connections = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let counts = counts.clone();
        connections.spawn(async move {
            // Reads through a buffer: rustls asks for 4 KB at a time, so a
            // 16 KB TLS record would otherwise take four reads from the
            // socket.
            let tcp = BufReader::with_capacity(READ_BUFFER, tcp);
            // A client that does not trust the certificate fails here.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let id = counts.connections.fetch_add(1, Ordering::SeqCst);
            serve_connection(tls, id, options, handler, counts).await;
        });
    }
}

/// How much of the socket is read at once, below TLS.
const READ_BUFFER: usize = 64 * 1024;

/// Serves one connection: its streams are answered from this task (no
/// task per stream), their answers written together with the frames the
/// connection has to send anyway.
async fn serve_connection<T>(
    io: T,
    id: u64,
    options: H2ServerOptions,
    handler: Handler,
    counts: Arc<Counts>,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    // hyper's server settings (what the mocks announced before they used
    // h2 directly), 200 concurrent streams unless told otherwise.
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_concurrent_streams(
            options
                .max_concurrent_streams
                .unwrap_or(DEFAULT_MAX_CONCURRENT_STREAMS),
        );
    let Ok(mut connection) = builder.handshake::<_, Bytes>(io).await else {
        return;
    };
    let goaway = Arc::new(Notify::new());
    let mut goaway_asked = std::pin::pin!(goaway.notified());
    let mut shutting_down = false;
    let mut next_stream = 0;
    let mut streams = FuturesUnordered::new();
    std::future::poll_fn(|cx| {
        if !shutting_down && goaway_asked.as_mut().poll(cx).is_ready() {
            shutting_down = true;
            connection.graceful_shutdown();
        }
        loop {
            // Answer what can be answered now...
            while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
            // ...then let the connection write those answers and read
            // what came meanwhile.
            let mut accepted = false;
            loop {
                match connection.poll_accept(cx) {
                    Poll::Ready(Some(Ok((request, respond)))) => {
                        next_stream += 1;
                        counts.streams.fetch_add(1, Ordering::SeqCst);
                        let conn = Conn {
                            id,
                            stream: next_stream,
                            goaway: goaway.clone(),
                        };
                        streams.push(serve_stream(request, respond, handler.clone(), conn));
                        accepted = true;
                    }
                    // Closed (a GOAWAY's last stream answered, the client
                    // gone, or a protocol error): the streams left are
                    // dropped with it.
                    Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
            }
            if !accepted {
                return Poll::Pending;
            }
        }
    })
    .await;
}

/// hyper's defaults, kept.
const WINDOW: u32 = 1024 * 1024;
const MAX_FRAME_SIZE: u32 = 16 * 1024;
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 400 * 1024;
const MAX_LOCAL_ERROR_RESETS: usize = 1024;
const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 200;

/// One stream: its body read in full, the handler's answer (dropped if the
/// client resets the stream first), the answer sent.
async fn serve_stream(
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    handler: Handler,
    conn: Conn,
) {
    let (head, mut body) = request.into_parts();
    let body = read_body(&mut body).await.unwrap_or_default();
    let mut answer = handler(http::Request::from_parts(head, body), conn);
    let answer = std::future::poll_fn(|cx| {
        if let Poll::Ready(answer) = answer.as_mut().poll(cx) {
            return Poll::Ready(Some(answer));
        }
        // The client gave up on it (or the connection ended).
        respond.poll_reset(cx).map(|_| None)
    })
    .await;
    let Some(answer) = answer else {
        return;
    };
    let (mut parts, body) = answer.into_parts();
    if !body.is_empty() {
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, content_length(body.len()));
    }
    let end_of_stream = body.is_empty();
    // Fails only when the stream is gone already (reset, connection over).
    if let Ok(mut stream) =
        respond.send_response(http::Response::from_parts(parts, ()), end_of_stream)
        && !end_of_stream
    {
        let _ = stream.send_data(body, true);
    }
}

/// `content-length: n`, the small values made once and shared.
fn content_length(n: usize) -> HeaderValue {
    const CACHED: usize = 1024;
    static SMALL: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    if n < CACHED {
        SMALL.get_or_init(|| (0..CACHED).map(HeaderValue::from).collect())[n].clone()
    } else {
        HeaderValue::from(n)
    }
}

/// The whole body of a request, each chunk's flow-control capacity given
/// back as it is read.
async fn read_body(recv: &mut RecvStream) -> Result<Bytes, h2::Error> {
    let mut first = Bytes::new();
    let mut more: Option<BytesMut> = None;
    while !recv.is_end_stream() {
        let Some(chunk) = recv.data().await else {
            break;
        };
        let chunk = chunk?;
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
