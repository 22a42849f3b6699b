//! The publish path: validate once into a plan, store, then schedule or
//! deliver.

use std::sync::Arc;

use herald_core::Tick;
use tracing::{Instrument, debug};

use super::completer::Done;
use super::deliver::fan_out;
use super::detached::RunToCompletion;
use super::inflight::Inflight;
use super::shared::Shared;
use super::stats::Counters;
use crate::store::{Completion, Next, Start, StoreError};
use crate::{
    Body, DeliveryCounts, DeliveryOptions, DeliveryPlan, Envelope, Error, MessageStatus,
    PublishOptions, PublishStatus, limits,
};

/// Validates, then stores and schedules (or delivers) the message. The
/// part after validation runs to completion even if the caller drops the
/// returned future.
pub(super) async fn publish(
    sh: &Arc<Shared>,
    channel: &str,
    body: Body,
    publish: PublishOptions,
    delivery: DeliveryOptions,
) -> Result<MessageStatus, Error> {
    sh.admit().await?;
    limits::check_channel(channel)?;
    let plan = DeliveryPlan::new(delivery)?;
    let now = sh.clock.now();
    let first = plan.first_run(now)?;
    let id = sh.ids.next(now);
    let envelope = Arc::new(Envelope {
        id,
        channel: channel.to_owned(),
        accepted_at: now,
        publish,
        plan: Arc::new(plan),
        body,
    });
    let span = tracing::debug_span!("publish", message_id = %id, channel);
    RunToCompletion::new(accept(sh.clone(), envelope, first, now).instrument(span)).await
}

async fn accept(
    sh: Arc<Shared>,
    envelope: Arc<Envelope>,
    first: Option<Tick>,
    now: Tick,
) -> Result<MessageStatus, Error> {
    let id = envelope.id;
    let Some(due) = first else {
        return deliver_now(&sh, envelope, now).await;
    };
    sh.store.insert(envelope, Start::At(due)).await?;
    sh.schedule(&mut sh.lock(), id, due);
    debug!(due = due.as_millis(), "scheduled");
    Counters::bump(&sh.counters.published, 1);
    Counters::bump(&sh.counters.scheduled, 1);
    Ok(MessageStatus {
        message_id: id.to_string(),
        status: PublishStatus::Scheduled,
        error_message: None,
        deliveries: DeliveryCounts::default(),
    })
}

/// A one-off due now: stored as claimed by us (one durable write), then
/// delivered, then answered; the completion is recorded off this path.
async fn deliver_now(
    sh: &Arc<Shared>,
    envelope: Arc<Envelope>,
    now: Tick,
) -> Result<MessageStatus, Error> {
    let id = envelope.id;
    let lease_until = now.saturating_add_millis(sh.lease_ms);
    let token = sh
        .store
        .insert(
            envelope.clone(),
            Start::Claimed {
                due: now,
                lease_until,
            },
        )
        .await?
        .ok_or_else(|| StoreError::other("the store issued no token for a claimed insert"))?;
    sh.lock().inflight.insert(id, Inflight::delivering(token));
    let counts = fan_out(sh, &envelope, now);
    if let Some(run) = sh.lock().inflight.get_mut(&id) {
        run.finish(counts);
    }
    sh.delivered.notify_waiters();
    sh.completer.submit(Done {
        completion: Completion {
            id,
            token,
            counts,
            next: Next::Done,
        },
        next: None,
    });
    debug!(pubsub = counts.pubsub, "published");
    Counters::bump(&sh.counters.published, 1);
    Ok(MessageStatus {
        message_id: id.to_string(),
        status: PublishStatus::Published,
        error_message: None,
        deliveries: counts,
    })
}
