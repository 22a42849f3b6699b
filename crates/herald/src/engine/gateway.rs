//! A configured push gateway and its state: how many batches it may have
//! in flight, and whether it is paused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::Tick;
use tokio::sync::Semaphore;

use super::stats::GatewayCounters;
use crate::{Os, PushBroadcast, PushTransport, Refusal};

/// How long a gateway that refused the credentials (or is misconfigured)
/// stays paused before the next batch probes it.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(300);

/// One gateway, as the pipeline drives it.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) os: PushBroadcast,
    pub(crate) transport: Arc<dyn PushTransport>,
    /// Batches in flight, across jobs.
    pub(crate) permits: Semaphore,
    pub(crate) counters: GatewayCounters,
    paused: Mutex<Option<Pause>>,
}

/// Why and until when a gateway is paused.
#[derive(Debug)]
pub(crate) struct Pause {
    pub(crate) refusal: Refusal,
    pub(crate) until: Tick,
}

/// What the pipeline may do with a gateway now.
#[derive(Clone, Debug)]
pub(crate) enum Access {
    /// Send (also a probe after a pause ended).
    Open,
    /// Refused credentials or misconfiguration: fail fast with this reason.
    Refused(String),
    /// Quota: try again at this time.
    WaitUntil(Tick),
}

impl Gateway {
    pub(crate) fn new(
        os: PushBroadcast,
        transport: Arc<dyn PushTransport>,
        in_flight: usize,
    ) -> Self {
        Self {
            os,
            transport,
            permits: Semaphore::new(in_flight.max(1)),
            counters: GatewayCounters::default(),
            paused: Mutex::new(None),
        }
    }

    /// Whether it serves devices of `os`.
    pub(crate) fn serves(&self, os: Os) -> bool {
        self.os.contains(os.mask())
    }

    pub(crate) fn access(&self, now: Tick) -> Access {
        let paused = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        match &*paused {
            Some(p) if now < p.until => match &p.refusal {
                Refusal::Quota { .. } => Access::WaitUntil(p.until),
                other => Access::Refused(self.describe(other)),
            },
            _ => Access::Open,
        }
    }

    /// Pauses it after `refusal` at `now`; answers the pause's end.
    pub(crate) fn pause(&self, refusal: Refusal, now: Tick) -> Tick {
        let wait = match &refusal {
            Refusal::Quota { after } => after.unwrap_or(Duration::from_secs(60)),
            Refusal::Credentials { .. } | Refusal::Misconfigured { .. } => PROBE_EVERY,
        };
        let until = now.saturating_add_millis(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        *self.paused.lock().unwrap_or_else(|p| p.into_inner()) = Some(Pause { refusal, until });
        until
    }

    /// A batch went through: the pause (if any) is over.
    pub(crate) fn resume(&self) {
        *self.paused.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether it is paused at `now`.
    pub(crate) fn is_paused(&self, now: Tick) -> bool {
        self.paused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|p| now < p.until)
    }

    /// `refusal` as a message's `errorMessage` says it.
    pub(crate) fn describe(&self, refusal: &Refusal) -> String {
        format!(
            "The push gateway {} refuses to send: {refusal}.",
            self.transport.name()
        )
    }
}
