//! [`ConnectError`]: why [`RedisBus::connect`](crate::RedisBus::connect)
//! failed.

/// Why a [`RedisBus`](crate::RedisBus) could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The channel name breaks the rules of
    /// [`RedisBus::connect`](crate::RedisBus::connect).
    #[error("invalid redis bus channel name {name:?}: {why}")]
    Channel {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// The URL is not a Redis URL the client understands (`redis://` or
    /// `unix://`; `rediss://` needs TLS, which this crate leaves out).
    #[error("invalid redis url: {0}")]
    Url(#[source] redis::RedisError),
    /// The server could not be reached or refused the connection (wrong
    /// password, ...).
    #[error("cannot connect to redis: {0}")]
    Connect(#[source] redis::RedisError),
    /// The server did not answer within the connection timeout.
    #[error("cannot connect to redis: no answer within {0:?}")]
    Timeout(std::time::Duration),
}
