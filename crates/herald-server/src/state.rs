//! What the handlers share: one map of apps (each its keys, its engine and
//! its polling subscriptions), the metrics and the limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald::{Clock, Engine};

use crate::auth::{Key, Keys};
use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::{DeviceCounters, Metrics};
use crate::polling::Polling;
use crate::timer::ClockSleep;

/// One application: its keys, its engine (on its own store), its legacy
/// polling subscriptions, and its device registration counters. Apps
/// share nothing.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) id: Arc<str>,
    pub(crate) keys: Keys,
    pub(crate) engine: Engine,
    pub(crate) polling: Polling,
    pub(crate) devices: DeviceCounters,
}

/// The per-client bounds, from the configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_body: usize,
    pub(crate) connection_buffer: usize,
    pub(crate) max_subscriptions_per_connection: usize,
    pub(crate) poll_max_bytes: usize,
    /// The real-time heartbeat: ping interval and timeout.
    pub(crate) ping_interval: std::time::Duration,
    pub(crate) ping_timeout: std::time::Duration,
    /// `realtime_direct`.
    pub(crate) realtime_direct: bool,
}

impl Limits {
    pub(crate) fn from_config(config: &Config) -> Self {
        Self {
            max_body: config.max_body,
            connection_buffer: config.connection_buffer,
            max_subscriptions_per_connection: config.max_subscriptions_per_connection,
            poll_max_bytes: config.poll_max_bytes,
            ping_interval: config.ping_interval,
            ping_timeout: config.ping_timeout,
            realtime_direct: config.realtime_direct,
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) apps: HashMap<String, App>,
    pub(crate) metrics: Metrics,
    pub(crate) limits: Limits,
    /// The time source of every engine and every server timeout.
    pub(crate) clock: Arc<dyn Clock>,
    /// The listener's address, for `rtURL` when a request has no usable
    /// `Host` header.
    pub(crate) local_addr: SocketAddr,
    /// The origins browsers may call the API from (`cors_origins`).
    pub(crate) cors_origins: Vec<String>,
    /// The bearer token `/metrics` requires (`metrics_token`); without one
    /// it answers loopback clients only.
    pub(crate) metrics_token: Option<String>,
    /// Whether the server speaks TLS (`rtURL` is then `https://`).
    pub(crate) tls: bool,
}

impl State {
    /// Builds the apps, each with an engine on the store `open_store`
    /// gives for its data directory.
    pub(crate) fn new(
        config: &Config,
        clock: Arc<dyn Clock>,
        local_addr: SocketAddr,
        mut engine_for: impl FnMut(&str) -> anyhow::Result<Engine>,
    ) -> anyhow::Result<Self> {
        let mut apps = HashMap::new();
        for app in &config.apps {
            let engine = engine_for(&app.id)?;
            apps.insert(
                app.id.clone(),
                App {
                    id: app.id.as_str().into(),
                    keys: Keys::from_config(app),
                    engine,
                    polling: Polling::new(
                        config.poll_ttl,
                        config.max_polling_subscriptions,
                        config.connection_buffer,
                    ),
                    devices: DeviceCounters::default(),
                },
            );
        }
        Ok(Self {
            apps,
            metrics: Metrics::default(),
            limits: Limits::from_config(config),
            clock,
            local_addr,
            cors_origins: config.cors_origins.clone(),
            metrics_token: config.metrics_token.as_ref().map(|t| t.0.clone()),
            tls: config.tls_cert.is_some(),
        })
    }

    /// App `app` and its key `key`, or 401 (8002).
    pub(crate) fn authenticate(&self, app: &str, key: &str) -> Result<(&App, Arc<Key>), ApiError> {
        let app = self.apps.get(app).ok_or_else(ApiError::bad_credentials)?;
        Ok((app, app.keys.authenticate(key)?))
    }

    /// The app `app` (known to exist: it was authenticated).
    pub(crate) fn app(&self, app: &str) -> Result<&App, ApiError> {
        self.apps.get(app).ok_or_else(ApiError::bad_credentials)
    }

    /// Live polling subscriptions across apps.
    pub(crate) fn polling_subscriptions(&self) -> usize {
        self.apps.values().map(|a| a.polling.len()).sum()
    }

    /// Sleeps `d` on the server's clock (the whole of it: the system
    /// clock's sleeps wake every second).
    pub(crate) fn sleep(&self, d: Duration) -> ClockSleep {
        ClockSleep::after(self.clock.clone(), d)
    }
}
