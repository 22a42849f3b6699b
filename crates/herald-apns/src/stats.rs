//! [`ApnsStats`]: what a gateway has done, for metrics and benchmarks.

use herald_http2::PoolStats;

/// What an [`ApnsGateway`](crate::ApnsGateway) has done since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApnsStats {
    /// Provider tokens signed (the first one, made when the gateway was
    /// built, included). About one per 50 minutes when all is well.
    pub provider_tokens_signed: u64,
    /// Requests handed to the connection pool (a resend after
    /// `ExpiredProviderToken` included).
    pub requests: u64,
    /// Notifications sent again with a new provider token after APNs
    /// answered `ExpiredProviderToken`.
    pub token_resends: u64,
    /// Notifications answered without a request: expired, an invalid
    /// token, a payload over the size limit.
    pub not_sent: u64,
    /// The connection pool's numbers.
    pub pool: PoolStats,
}
