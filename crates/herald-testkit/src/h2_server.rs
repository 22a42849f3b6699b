//! `H2Server`: an HTTP/2-over-TLS test server on 127.0.0.1, the base of
//! the mock gateways. It counts connections and streams and can shut a
//! connection down with GOAWAY.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How an [`H2Server`] sets up its connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct H2ServerOptions {
    /// The `SETTINGS_MAX_CONCURRENT_STREAMS` it announces (`None`: h2's
    /// default, unlimited).
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
            // A client that does not trust the certificate fails here.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let id = counts.connections.fetch_add(1, Ordering::SeqCst);
            let goaway = Arc::new(Notify::new());
            let streams = Arc::new(AtomicU64::new(0));
            let service = {
                let goaway = goaway.clone();
                service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    let counts = counts.clone();
                    let conn = Conn {
                        id,
                        stream: streams.fetch_add(1, Ordering::SeqCst) + 1,
                        goaway: goaway.clone(),
                    };
                    async move {
                        counts.streams.fetch_add(1, Ordering::SeqCst);
                        let (head, body) = request.into_parts();
                        let body = match body.collect().await {
                            Ok(b) => b.to_bytes(),
                            Err(_) => Bytes::new(),
                        };
                        let answer = handler(http::Request::from_parts(head, body), conn).await;
                        Ok::<_, Infallible>(answer.map(Full::new))
                    }
                })
            };
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder.timer(TokioTimer::new());
            if let Some(n) = options.max_concurrent_streams {
                builder.max_concurrent_streams(n);
            }
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            tokio::pin!(connection);
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    () = goaway.notified(), if !shutting_down => {
                        shutting_down = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
}
