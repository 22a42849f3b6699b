//! Herald's HTTP/2 client for push gateways (APNs, FCM and an OAuth token
//! endpoint): a small [`Pool`] of long-lived TLS connections to one host.
//!
//! What Apple and Google ask of a sender, and what a connection per request
//! would break:
//!
//! * **Few, long-lived connections.** The pool opens its first connection
//!   on the first request and another one only when every open connection
//!   already carries [`PoolOptions::streams_before_next`] requests, one at a
//!   time (staggered), up to [`PoolOptions::max_connections`]. Idle
//!   connections stay open; HTTP/2 PINGs every
//!   [`PoolOptions::ping_interval`] notice a dead one.
//! * **The server's stream limit.** Requests beyond the
//!   `SETTINGS_MAX_CONCURRENT_STREAMS` a server announces (APNs may
//!   announce 1) wait in the connection's queue instead of failing.
//! * **GOAWAY.** A request the server provably did not process (a stream
//!   above the GOAWAY's last stream id, a `REFUSED_STREAM` reset, a
//!   connection that closed before the request left) goes out again on
//!   another connection; that is not a retry (nothing reached the
//!   application), and [`PoolStats::requests_resent`] counts it. A request
//!   the server may have processed is never sent again here:
//!   [`SendError::maybe_processed`] tells the caller.
//! * **Timeouts on an injected clock.** Connecting and each request are
//!   bounded by [`herald::Clock`] sleeps, so tests drive them with a
//!   [`ManualClock`](herald::ManualClock) and never wait.
//!
//! TLS is rustls on the `ring` provider, ALPN `h2` only; [`client_tls`]
//! trusts Mozilla's roots plus an optional PEM file of extra roots (a
//! proxy's or a test server's CA).
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use herald_http2::{client_tls, Pool, PoolOptions};
//!
//! let tls = client_tls(None)?;
//! let clock = Arc::new(herald::SystemClock);
//! let pool = Pool::new("https://api.push.apple.com", tls, PoolOptions::default(), clock)?;
//! let request = http::Request::post("/3/device/00fc13adff78")
//!     .header("apns-topic", "com.example.app")
//!     .body(bytes::Bytes::from_static(br#"{"aps":{"alert":"hi"}}"#))?;
//! let answer = pool.send(request).await?;
//! println!("{} {:?}", answer.status, answer.body);
//! # Ok(()) }
//! ```

mod error;
mod io;
mod pool;
mod response;
mod retry_after;
mod tls;

pub use error::{BadUrl, SendError, TlsError};
pub use pool::{Pool, PoolOptions, PoolStats};
pub use response::Response;
pub use retry_after::retry_after;
pub use tls::{client_tls, client_tls_only};
