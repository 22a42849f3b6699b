//! Engine-wide counters, for metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::StoreStats;

/// A snapshot of an engine's counters since it was built (see
/// [`Engine::stats`](crate::Engine::stats)). Counters only grow; gauges
/// (`pending`, `channels`, `subscriptions`, `quarantined`,
/// `store_unavailable`) are the values now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EngineStats {
    /// Publishes accepted (stored), immediate and scheduled.
    pub published: u64,
    /// Of those, delayed or repeating (went to the wheel).
    pub scheduled: u64,
    /// Runs delivered (immediate publishes and fired runs).
    pub runs: u64,
    /// Pub/sub deliveries: one per run per matching subscription.
    pub pubsub_deliveries: u64,
    /// Successful cancels.
    pub cancelled: u64,
    /// Runs waiting in the wheel right now.
    pub pending: u64,
    /// Runs found claimed with an expired lease (in flight at a crash, or
    /// whose completion failed) and handed out again: delivery is
    /// at-least-once, and this counts the "more than once" candidates.
    pub recovered_runs: u64,
    /// Unfinished messages loaded from the store at start-up.
    pub reloaded: u64,
    /// Delivered runs whose completion the store would not record (they
    /// are delivered again when their leases end).
    pub completion_failures: u64,
    /// Channels with subscriptions on this node right now.
    pub channels: u64,
    /// Live subscriptions on this node right now.
    pub subscriptions: u64,
    /// Whether the store cannot write right now (see
    /// [`Engine::store_stats`](crate::Engine::store_stats) for why).
    pub store_unavailable: bool,
    /// Damaged messages the store has set aside (quarantined), from
    /// [`StoreStats::quarantined`](crate::StoreStats::quarantined).
    pub quarantined: u64,
    /// Finished messages the store purged since it was opened, from
    /// [`StoreStats::purged`](crate::StoreStats::purged).
    pub purged: u64,
    /// Runs this engine claimed when they came due (and then delivered).
    pub claims_won: u64,
    /// Runs that came due in this engine's wheel but could not be claimed:
    /// cancelled, finished, or claimed by another node first (on a shared
    /// store the normal fate of a run that two nodes held).
    pub claims_lost: u64,
    /// On a shared store: runs this engine reserved ahead of their due
    /// time (published on another node, or beyond the horizon when
    /// published).
    pub reserved: u64,
    /// On a shared store: looks for runs to reserve this engine put off
    /// because it was behind (a run in its wheel overdue by more than a
    /// reservation's hold, not yet claimed): it claims its own late runs
    /// before taking more. Rising steadily: the node, or the store, cannot
    /// keep up.
    pub looks_deferred: u64,
    /// How far ahead of their due time this engine claims runs now, ms:
    /// twice the slowest claim round trip of the last 5-10 s (5 ms at
    /// least, as on a local store; 100 ms at most). Near 100 for long: the
    /// store's claims are slow.
    pub claim_lead_ms: u64,
    /// Runs this engine won whose claim answered after their due time:
    /// late by the rest of the store's round trip. Rising steadily: the
    /// store's claims take longer than the claim lead allows for.
    pub claimed_late: u64,
    /// Frames this node sent on its cluster bus (runs, and notices of
    /// runs it could not send).
    pub bus_sent: u64,
    /// Frames from other nodes this node received.
    pub bus_received: u64,
    /// Runs this node could not send to the other nodes (bus down, queue
    /// full, too large): their subscribers were told they missed runs.
    pub bus_lost: u64,
    /// Times this node's subscribers were told they may have missed runs
    /// from other nodes (a lagging or re-made bus subscription, or another
    /// node's notice).
    pub bus_lags: u64,
    /// Messages whose pub/sub counts from this node's deliveries of other
    /// nodes' runs were dropped: the store kept failing to add them (a
    /// failed write is retried with the next one, up to 65,536 messages)
    /// or the engine stopped meanwhile. Their `deliveries.pubsub`
    /// undercounts.
    pub bus_counts_dropped: u64,
    /// Whether this node's cluster bus can send now (`true` without a bus).
    pub bus_connected: bool,
}

/// The push pipeline's counters (see [`Engine::push_stats`](crate::Engine::push_stats)).
/// Counters only grow; `in_flight`, `paused` and `jobs_running` are the
/// values now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushStats {
    /// Per configured gateway, in the order they were added.
    pub gateways: Vec<GatewayStats>,
    /// Push jobs running on this node now.
    pub jobs_running: u64,
    /// Device registrations removed because a gateway refused their token.
    pub tokens_removed: u64,
    /// Notifications whose time to live ran out before a gateway took them.
    pub expired: u64,
    /// Notifications no gateway could take: no gateway for the device's
    /// OS, or a gateway paused for refused credentials.
    pub unroutable: u64,
}

/// One gateway's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayStats {
    /// The transport's name (`apns`, `fcm`).
    pub name: String,
    /// Notifications the gateway accepted.
    pub sent: u64,
    /// Notifications it failed for good.
    pub failed: u64,
    /// Notifications it answered with an invalid token.
    pub invalid_tokens: u64,
    /// Notifications it asked to retry (each attempt counts).
    pub retries: u64,
    /// Batches it refused as a whole (credentials, quota, misconfiguration).
    pub refusals: u64,
    /// Notifications handed to it and not answered yet.
    pub in_flight: u64,
    /// Whether it is paused now.
    pub paused: bool,
}

/// A gateway's live counters.
#[derive(Debug, Default)]
pub(crate) struct GatewayCounters {
    pub(crate) sent: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) invalid_tokens: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) refusals: AtomicU64,
    pub(crate) in_flight: AtomicU64,
}

impl GatewayCounters {
    pub(crate) fn snapshot(&self, name: &str, paused: bool) -> GatewayStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GatewayStats {
            name: name.to_owned(),
            sent: get(&self.sent),
            failed: get(&self.failed),
            invalid_tokens: get(&self.invalid_tokens),
            retries: get(&self.retries),
            refusals: get(&self.refusals),
            in_flight: get(&self.in_flight),
            paused,
        }
    }
}

/// The pipeline's live counters.
#[derive(Debug, Default)]
pub(crate) struct PipelineCounters {
    pub(crate) jobs_running: AtomicU64,
    pub(crate) tokens_removed: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) unroutable: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) scheduled: AtomicU64,
    pub(crate) runs: AtomicU64,
    pub(crate) pubsub_deliveries: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) recovered_runs: AtomicU64,
    pub(crate) reloaded: AtomicU64,
    pub(crate) completion_failures: AtomicU64,
    pub(crate) claims_won: AtomicU64,
    pub(crate) claims_lost: AtomicU64,
    pub(crate) reserved: AtomicU64,
    pub(crate) looks_deferred: AtomicU64,
    /// A gauge: set by the driver after each claim.
    pub(crate) claim_lead_ms: AtomicU64,
    pub(crate) claimed_late: AtomicU64,
    pub(crate) bus_counts_dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(
        &self,
        pending: u64,
        channels: u64,
        subscriptions: u64,
        store: &StoreStats,
    ) -> EngineStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EngineStats {
            published: get(&self.published),
            scheduled: get(&self.scheduled),
            runs: get(&self.runs),
            pubsub_deliveries: get(&self.pubsub_deliveries),
            cancelled: get(&self.cancelled),
            pending,
            recovered_runs: get(&self.recovered_runs),
            reloaded: get(&self.reloaded),
            completion_failures: get(&self.completion_failures),
            channels,
            subscriptions,
            store_unavailable: !store.is_writable(),
            quarantined: store.quarantined,
            purged: store.purged,
            claims_won: get(&self.claims_won),
            claims_lost: get(&self.claims_lost),
            reserved: get(&self.reserved),
            looks_deferred: get(&self.looks_deferred),
            claim_lead_ms: get(&self.claim_lead_ms),
            claimed_late: get(&self.claimed_late),
            bus_counts_dropped: get(&self.bus_counts_dropped),
            ..EngineStats::default()
        }
    }
}
