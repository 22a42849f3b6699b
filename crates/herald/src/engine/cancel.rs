//! The cancel path: take the message out of the wheel, settle with a run in
//! flight, then cancel in the store (which has the last word).

use std::sync::Arc;

use tracing::info;

use super::inflight::CancelDecision;
use super::shared::Shared;
use super::stats::Counters;
use crate::store::CancelOutcome;
use crate::{Error, MessageId, MessageStatus};

/// Cancels `id`. Once it has taken the message out of the wheel it runs
/// to completion even if the caller stops waiting (the caller wraps it in
/// `RunToCompletion`), so a message is never left out of the wheel and not
/// cancelled.
pub(super) async fn cancel(sh: Arc<Shared>, mid: MessageId) -> Result<MessageStatus, Error> {
    sh.admit().await?;
    loop {
        // Registered before looking, so a delivery finishing in between
        // is not missed.
        let delivered = sh.delivered.notified();
        tokio::pin!(delivered);
        delivered.as_mut().enable();
        {
            let mut st = sh.lock();
            st.wheel.remove(mid);
            match st.inflight.get_mut(&mid).map(|run| run.try_cancel()) {
                None | Some(CancelDecision::Proceed) => break,
                Some(CancelDecision::ProceedHeld) => {
                    // A run claimed ahead and held for its due time: no
                    // longer scheduled (`scheduled_len`).
                    st.held -= 1;
                    break;
                }
                Some(CancelDecision::AlreadyPublished) => return Err(Error::NotCancellable),
                Some(CancelDecision::Wait) => {}
            }
        }
        // A run of this message is being handed to subscribers right now
        // (synchronous and bounded): wait for it, then decide again.
        delivered.await;
    }
    match sh.store.cancel(mid).await? {
        CancelOutcome::Cancelled(record) => {
            info!(message_id = %mid, channel = %record.envelope.channel.escape_debug(), "cancelled");
            Counters::bump(&sh.counters.cancelled, 1);
            // Its push job, if one waits for retries, ends them now.
            sh.pipeline.cancelled(mid);
            Ok(record.status())
        }
        CancelOutcome::Finished(_) | CancelOutcome::NotFound => Err(Error::NotCancellable),
    }
}
