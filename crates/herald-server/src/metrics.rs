//! Prometheus metrics, written by hand in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use herald::EngineStats;

/// Upper bounds (seconds) of the request latency histogram's buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The server's counters. Engine counters come from
/// [`Engine::stats`](herald::Engine::stats) at render time.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// REST requests by status class: index 1 = 1xx ... 5 = 5xx.
    requests: [AtomicU64; 6],
    /// Per-bucket (not cumulative) latency counts; the last is `+Inf`.
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
    errors: Mutex<BTreeMap<u32, u64>>,
    pub(crate) realtime_connections: AtomicI64,
    pub(crate) realtime_subscriptions: AtomicI64,
    /// Open WebSocket sessions served by the direct path (the rest are
    /// socketioxide's).
    pub(crate) realtime_direct_sessions: AtomicI64,
    /// Bytes real-time connections hold for their clients: queued in their
    /// inboxes plus handed to the socket.io layer and maybe still there.
    pub(crate) realtime_buffered_bytes: AtomicI64,
    /// Runs dropped for receivers that did not keep up (real-time and
    /// polling).
    lagged: AtomicU64,
    /// Long-polling sessions upgraded to a WebSocket (the direct path).
    pub(crate) realtime_upgrades: AtomicU64,
    /// Open HTTP connections (real-time ones included).
    pub(crate) http_connections: AtomicI64,
    /// Requests being served.
    pub(crate) requests_in_flight: AtomicI64,
    /// Connections closed for not sending a request head in time.
    pub(crate) header_timeouts: AtomicU64,
    /// Requests answered 408 for not finishing in time.
    pub(crate) request_timeouts: AtomicU64,
}

/// One app's device registration counters (the server counts them: the
/// engine's [`EngineStats`] has none).
#[derive(Debug, Default)]
pub(crate) struct DeviceCounters {
    registrations: AtomicU64,
    unregistrations: AtomicU64,
}

/// A reading of [`DeviceCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DeviceCounts {
    /// Registrations accepted (new devices and renewals).
    pub(crate) registrations: u64,
    /// Registrations removed through the API.
    pub(crate) unregistrations: u64,
}

impl DeviceCounters {
    /// Counts an accepted registration.
    pub(crate) fn registered(&self) {
        self.registrations.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a removed registration.
    pub(crate) fn unregistered(&self) {
        self.unregistrations.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn read(&self) -> DeviceCounts {
        DeviceCounts {
            registrations: self.registrations.load(Ordering::Relaxed),
            unregistrations: self.unregistrations.load(Ordering::Relaxed),
        }
    }
}

/// One unit of a gauge, held while it lives.
#[derive(Debug)]
pub(crate) struct Held<'a>(&'a AtomicI64);

impl<'a> Held<'a> {
    /// Adds one to `gauge` until the returned value is dropped.
    pub(crate) fn new(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records one REST request's status and latency.
    pub(crate) fn observe_request(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).min(5);
        self.requests[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts runs dropped for a slow receiver.
    pub(crate) fn count_lagged(&self, n: u64) {
        if n > 0 {
            self.lagged.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts an error answered with `code` (REST or real-time).
    pub(crate) fn count_error(&self, code: u32) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(code).or_default() += 1;
    }

    /// The exposition text: `apps` are each app's engine counters and
    /// device registration counts.
    pub(crate) fn render(
        &self,
        apps: &[(&str, EngineStats, DeviceCounts)],
        polling_subscriptions: usize,
    ) -> String {
        let mut out = String::with_capacity(4096);
        type Field = fn(&EngineStats) -> u64;
        let per_app: [(&str, &str, &str, Field); 26] = [
            (
                "herald_publishes_total",
                "counter",
                "Publishes accepted (immediate and scheduled).",
                |s| s.published,
            ),
            (
                "herald_scheduled_publishes_total",
                "counter",
                "Publishes that were delayed or repeating.",
                |s| s.scheduled,
            ),
            (
                "herald_runs_total",
                "counter",
                "Message runs delivered (immediate publishes and fired runs).",
                |s| s.runs,
            ),
            (
                "herald_deliveries_total",
                "counter",
                "Pub/sub deliveries: one per run per matching subscription.",
                |s| s.pubsub_deliveries,
            ),
            (
                "herald_cancels_total",
                "counter",
                "Successful cancels of scheduled messages.",
                |s| s.cancelled,
            ),
            (
                "herald_scheduled_pending",
                "gauge",
                "Runs waiting in the engine's timing wheel.",
                |s| s.pending,
            ),
            (
                "herald_recovered_runs_total",
                "counter",
                "Runs in flight at a crash, delivered again at start-up (at-least-once).",
                |s| s.recovered_runs,
            ),
            (
                "herald_reloaded_messages_total",
                "counter",
                "Unfinished messages reloaded from the store at start-up.",
                |s| s.reloaded,
            ),
            (
                "herald_completion_failures_total",
                "counter",
                "Delivered runs the store would not record (delivered again when their leases end).",
                |s| s.completion_failures,
            ),
            (
                "herald_channels",
                "gauge",
                "Channels with subscriptions (real-time and polling).",
                |s| s.channels,
            ),
            (
                "herald_subscriptions",
                "gauge",
                "Live engine subscriptions (real-time listeners and polling subscriptions).",
                |s| s.subscriptions,
            ),
            (
                "herald_store_writable",
                "gauge",
                "1 while the app's message store can write, 0 while it cannot (a full disk; see /health).",
                |s| u64::from(!s.store_unavailable),
            ),
            (
                "herald_store_quarantined_messages",
                "gauge",
                "Damaged messages the store has set aside (never delivered; logged when found).",
                |s| s.quarantined,
            ),
            (
                "herald_store_purged_total",
                "counter",
                "Finished messages purged by retention since the store was opened.",
                |s| s.purged,
            ),
            (
                "herald_claims_won_total",
                "counter",
                "Runs this node claimed when they came due (and delivered).",
                |s| s.claims_won,
            ),
            (
                "herald_claims_lost_total",
                "counter",
                "Runs due in this node's wheel it could not claim: cancelled, finished, or claimed by another node first.",
                |s| s.claims_lost,
            ),
            (
                "herald_runs_reserved_total",
                "counter",
                "Runs this node reserved ahead of their due time from the shared store (other nodes' publishes).",
                |s| s.reserved,
            ),
            (
                "herald_reserve_looks_deferred_total",
                "counter",
                "Looks for runs to reserve this node put off while it was behind (its own runs overdue by more than a reservation's hold): rising steadily, the node or the store cannot keep up.",
                |s| s.looks_deferred,
            ),
            (
                "herald_claim_lead_ms",
                "gauge",
                "How far ahead of their due time this node claims runs, ms: twice the slowest claim round trip of the last 5-10 s (5 on a local store; near 100 for long: the store's claims are slow).",
                |s| s.claim_lead_ms,
            ),
            (
                "herald_claimed_late_total",
                "counter",
                "Runs this node won whose claim answered after their due time (late by the store's round trip): rising steadily, the store's claims are slower than the claim lead allows for.",
                |s| s.claimed_late,
            ),
            (
                "herald_bus_frames_sent_total",
                "counter",
                "Frames this node sent on the cluster bus.",
                |s| s.bus_sent,
            ),
            (
                "herald_bus_frames_received_total",
                "counter",
                "Frames from other nodes this node received on the cluster bus.",
                |s| s.bus_received,
            ),
            (
                "herald_bus_lost_runs_total",
                "counter",
                "Runs this node could not send to the other nodes (their subscribers were told).",
                |s| s.bus_lost,
            ),
            (
                "herald_bus_lags_total",
                "counter",
                "Times this node's subscribers were told they may have missed runs from other nodes (bus lag).",
                |s| s.bus_lags,
            ),
            (
                "herald_bus_counts_dropped_total",
                "counter",
                "Messages whose pub/sub counts from this node's deliveries of other nodes' runs were dropped (the store kept failing to add them): their deliveries.pubsub undercounts.",
                |s| s.bus_counts_dropped,
            ),
            (
                "herald_bus_connected",
                "gauge",
                "1 while the cluster bus can send (or there is none), 0 while it cannot.",
                |s| u64::from(s.bus_connected),
            ),
        ];
        for (name, kind, help, field) in per_app {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
            for (app, stats, _) in apps {
                let _ = writeln!(out, "{name}{{app=\"{app}\"}} {}", field(stats));
            }
        }
        type DeviceField = fn(&DeviceCounts) -> u64;
        let per_app_devices: [(&str, &str, DeviceField); 2] = [
            (
                "herald_device_registrations_total",
                "Device registrations accepted (new devices and renewals).",
                |d| d.registrations,
            ),
            (
                "herald_device_unregistrations_total",
                "Device registrations removed through the API.",
                |d| d.unregistrations,
            ),
        ];
        for (name, help, field) in per_app_devices {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n");
            for (app, _, devices) in apps {
                let _ = writeln!(out, "{name}{{app=\"{app}\"}} {}", field(devices));
            }
        }

        let mut gauge = |name: &str, help: &str, value: i64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        };
        gauge(
            "herald_realtime_connections",
            "Open socket.io connections.",
            self.realtime_connections.load(Ordering::Relaxed),
        );
        gauge(
            "herald_realtime_direct_sessions",
            "Open real-time sessions served without socketioxide (long polling or WebSocket).",
            self.realtime_direct_sessions.load(Ordering::Relaxed),
        );
        gauge(
            "herald_realtime_subscriptions",
            "Active real-time message listeners.",
            self.realtime_subscriptions.load(Ordering::Relaxed),
        );
        gauge(
            "herald_polling_subscriptions",
            "Live legacy polling subscriptions.",
            i64::try_from(polling_subscriptions).unwrap_or(i64::MAX),
        );
        gauge(
            "herald_http_connections",
            "Open HTTP connections (real-time ones included).",
            self.http_connections.load(Ordering::Relaxed),
        );
        gauge(
            "herald_requests_in_flight",
            "Requests being served (long polls included).",
            self.requests_in_flight.load(Ordering::Relaxed),
        );
        gauge(
            "herald_realtime_buffered_bytes",
            "Bytes real-time connections hold for their clients (inboxes and the socket layer).",
            self.realtime_buffered_bytes.load(Ordering::Relaxed),
        );
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        };
        counter(
            "herald_realtime_upgrades_total",
            "Real-time sessions upgraded from long polling to a WebSocket.",
            self.realtime_upgrades.load(Ordering::Relaxed),
        );
        counter(
            "herald_lagged_messages_total",
            "Runs dropped for receivers that did not keep up.",
            self.lagged.load(Ordering::Relaxed),
        );
        counter(
            "herald_header_timeouts_total",
            "Connections closed for not sending a whole request head within header_read_timeout.",
            self.header_timeouts.load(Ordering::Relaxed),
        );
        counter(
            "herald_request_timeouts_total",
            "Requests answered 408 for not finishing within request_timeout.",
            self.request_timeouts.load(Ordering::Relaxed),
        );

        out.push_str(
            "# HELP herald_http_requests_total REST requests answered, by status class.\n\
             # TYPE herald_http_requests_total counter\n",
        );
        for (class, c) in self.requests.iter().enumerate().skip(1) {
            let _ = writeln!(
                out,
                "herald_http_requests_total{{status=\"{class}xx\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }

        out.push_str(
            "# HELP herald_errors_total Error responses (REST and real-time), by error code.\n\
             # TYPE herald_errors_total counter\n",
        );
        let errors = self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (code, n) in errors {
            let _ = writeln!(out, "herald_errors_total{{code=\"{code}\"}} {n}");
        }

        out.push_str(
            "# HELP herald_http_request_duration_seconds REST request latency.\n\
             # TYPE herald_http_request_duration_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.latency[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "herald_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.latency[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "herald_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "herald_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(
            out,
            "herald_http_request_duration_seconds_count {cumulative}"
        );
        out
    }
}

/// The push pipeline's samples of each app: per gateway, notifications
/// by outcome, refusals, in flight and paused; per app, jobs running,
/// tokens removed, expired and unroutable notifications.
pub(crate) fn render_push(apps: &[(&str, herald::PushStats)]) -> String {
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        "# HELP herald_push_notifications_total Push notifications answered by a gateway, by outcome (retry: each attempt asked to retry).\n\
         # TYPE herald_push_notifications_total counter\n"
    );
    for (app, p) in apps {
        for g in &p.gateways {
            for (outcome, n) in [
                ("sent", g.sent),
                ("failed", g.failed),
                ("invalid_token", g.invalid_tokens),
                ("retry", g.retries),
            ] {
                let _ = writeln!(
                    out,
                    "herald_push_notifications_total{{app=\"{app}\",gateway=\"{}\",outcome=\"{outcome}\"}} {n}",
                    g.name
                );
            }
        }
    }
    type GatewayField = fn(&herald::GatewayStats) -> u64;
    let per_gateway: [(&str, &str, &str, GatewayField); 3] = [
        (
            "herald_push_refusals_total",
            "counter",
            "Batches a gateway refused as a whole (credentials, quota, misconfiguration).",
            |g| g.refusals,
        ),
        (
            "herald_push_in_flight",
            "gauge",
            "Notifications handed to a gateway and not answered yet (the pipeline's queue at the gateway).",
            |g| g.in_flight,
        ),
        (
            "herald_push_gateway_paused",
            "gauge",
            "1 while a gateway is paused after a refusal.",
            |g| u64::from(g.paused),
        ),
    ];
    for (name, kind, help, field) in per_gateway {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (app, p) in apps {
            for g in &p.gateways {
                let _ = writeln!(
                    out,
                    "{name}{{app=\"{app}\",gateway=\"{}\"}} {}",
                    g.name,
                    field(g)
                );
            }
        }
    }
    type PushField = fn(&herald::PushStats) -> u64;
    let per_app: [(&str, &str, &str, PushField); 4] = [
        (
            "herald_push_jobs_running",
            "gauge",
            "Push jobs (the push side of fired runs) running on this node.",
            |p| p.jobs_running,
        ),
        (
            "herald_push_tokens_removed_total",
            "counter",
            "Device registrations removed because a gateway refused their token.",
            |p| p.tokens_removed,
        ),
        (
            "herald_push_expired_total",
            "counter",
            "Push notifications whose time to live ran out before a gateway took them.",
            |p| p.expired,
        ),
        (
            "herald_push_unroutable_total",
            "counter",
            "Push notifications no gateway could take (no gateway for the OS, or refused credentials).",
            |p| p.unroutable,
        ),
    ];
    for (name, kind, help, field) in per_app {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (app, p) in apps {
            let _ = writeln!(out, "{name}{{app=\"{app}\"}} {}", field(p));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.observe_request(200, Duration::from_micros(300));
        m.observe_request(400, Duration::from_millis(3));
        m.observe_request(404, Duration::from_secs(60));
        m.count_error(5030);
        m.count_error(5030);
        m.count_error(8002);
        let mut stats = EngineStats::default();
        stats.published = 4;
        stats.quarantined = 2;
        let mut down = EngineStats::default();
        down.store_unavailable = true;
        let devices = DeviceCounters::default();
        devices.registered();
        devices.registered();
        devices.unregistered();
        let text = m.render(
            &[
                ("A", stats, devices.read()),
                ("B", down, DeviceCounts::default()),
            ],
            3,
        );
        assert!(text.contains("# TYPE herald_device_registrations_total counter\n"));
        assert!(text.contains("herald_device_registrations_total{app=\"A\"} 2\n"));
        assert!(text.contains("herald_device_unregistrations_total{app=\"A\"} 1\n"));
        assert!(text.contains("herald_device_registrations_total{app=\"B\"} 0\n"));
        assert!(text.contains("herald_publishes_total{app=\"A\"} 4\n"));
        assert!(text.contains("herald_publishes_total{app=\"B\"} 0\n"));
        assert!(text.contains("# TYPE herald_scheduled_pending gauge\n"));
        assert!(text.contains("# TYPE herald_recovered_runs_total counter\n"));
        assert!(text.contains("# TYPE herald_claims_lost_total counter\n"));
        assert!(text.contains("# TYPE herald_bus_lags_total counter\n"));
        assert!(text.contains("herald_bus_connected{app=\"B\"} 0\n"));
        assert!(text.contains("herald_store_quarantined_messages{app=\"A\"} 2\n"));
        assert!(text.contains("herald_store_writable{app=\"A\"} 1\n"));
        assert!(text.contains("herald_store_writable{app=\"B\"} 0\n"));
        assert!(text.contains("herald_store_purged_total{app=\"B\"} 0\n"));
        assert!(text.contains("herald_http_requests_total{status=\"2xx\"} 1\n"));
        assert!(text.contains("herald_http_requests_total{status=\"4xx\"} 2\n"));
        assert!(text.contains("herald_errors_total{code=\"5030\"} 2\n"));
        assert!(text.contains("herald_errors_total{code=\"8002\"} 1\n"));
        assert!(text.contains("herald_http_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("herald_http_request_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("herald_http_request_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("herald_http_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("herald_http_request_duration_seconds_count 3\n"));
        assert!(text.contains("herald_polling_subscriptions 3\n"));
        // Every sample line is `name[{labels}] number`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
