//! The one fan-out seam: where a run goes to its receivers.
//!
//! [`fan_out`] is synchronous and bounded: the pub/sub half hands the run to
//! the transport, which never blocks (every inbox drops its oldest runs
//! rather than wait). It is the only part of a run a cancel ever waits for
//! (the run is `Delivering` meanwhile; see [`inflight`](super::inflight)).
//!
//! Push plugs in here: for a `PUSH`/`BOTH` run, the fan-out will only hand
//! the run to the push pipeline (a durable push job recorded after the run
//! is marked delivered), and the pipeline talks to the gateways on its own
//! tasks. A cancel therefore never waits on gateway I/O; cancelling a
//! repeating message stops its current push job through a flag the job
//! checks between batches.

use std::sync::Arc;

use herald_core::Tick;
use tracing::{debug, warn};

use super::shared::Shared;
use super::stats::Counters;
use crate::{DeliveredMessage, DeliveryCounts, Envelope};

/// Delivers the run of `envelope` due at `now` and returns the counters it
/// adds (`runs: 1` plus the deliveries).
pub(crate) fn fan_out(sh: &Shared, envelope: &Arc<Envelope>, now: Tick) -> DeliveryCounts {
    let mut counts = DeliveryCounts {
        runs: 1,
        ..DeliveryCounts::default()
    };
    Counters::bump(&sh.counters.runs, 1);
    if envelope.plan.policy().includes_pubsub() {
        let run = DeliveredMessage::new(envelope.clone(), now);
        match sh.transport.publish(&run) {
            Ok(n) => {
                if let Some(link) = &sh.bus {
                    link.enqueue(envelope, now);
                }
                counts.pubsub = n;
                Counters::bump(&sh.counters.pubsub_deliveries, n);
                debug!(message_id = %envelope.id, channel = %envelope.channel.escape_debug(), subscriptions = n, "delivered");
            }
            Err(e) => {
                warn!(message_id = %envelope.id, error = %e, "pub/sub delivery failed");
            }
        }
    }
    counts
}
