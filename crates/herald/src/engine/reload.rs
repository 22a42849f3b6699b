//! The start-up reload: the wheel is rebuilt from the store's scheduled
//! runs, reading only each run's id and due time.

use herald_core::Tick;
use tracing::{info, warn};

use super::driver::{RETRY, recovered};
use super::shared::Shared;
use super::stats::Counters;
use super::throttle::Failure;
use crate::StoreError;

/// Runs read per page (16 bytes of id and 8 of due each).
const PAGE: usize = 10_000;

/// Rebuilds the wheel from the store's scheduled runs (on a shared store:
/// releases expired claims only; the driver's reservations fill the
/// wheel).
pub(super) async fn reload(sh: &Shared) {
    let now = sh.clock.now();
    // The claims the only user of an exclusive store finds at start-up are
    // its own, from before a crash: take them back now rather than
    // waiting for the lease.
    let before = if sh.shared_store { now } else { Tick::MAX };
    let released = loop {
        match sh.store.release_expired(before).await {
            Ok(runs) => {
                if sh.shared_store {
                    // No page of `pending` follows: these go in now.
                    let mut st = sh.lock();
                    for r in &runs {
                        sh.schedule(&mut st, r.id, r.due);
                    }
                }
                break runs.len() as u64;
            }
            Err(e) => {
                failed(sh, &e, "releasing claims");
                retry_pause(sh).await;
            }
        }
    };
    let loaded = if sh.shared_store {
        0
    } else {
        load_pending(sh).await
    };
    recovered(&sh.store_failures.reload, "reloading");
    Counters::bump(&sh.counters.recovered_runs, released);
    Counters::bump(&sh.counters.reloaded, loaded);
    if loaded > 0 || released > 0 {
        info!(
            loaded,
            released, "reloaded scheduled messages from the store"
        );
    }
}

/// Puts every scheduled run of the (exclusive) store in the wheel, a page
/// at a time; how many.
async fn load_pending(sh: &Shared) -> u64 {
    let mut after = None;
    let mut loaded = 0u64;
    loop {
        let page = match sh.store.pending(after, PAGE).await {
            Ok(p) => p,
            Err(e) => {
                failed(sh, &e, "reloading");
                retry_pause(sh).await;
                continue;
            }
        };
        let full = page.len() == PAGE;
        after = page.last().map(|r| r.id);
        {
            let mut st = sh.lock();
            for r in &page {
                sh.schedule(&mut st, r.id, r.due);
            }
        }
        loaded += page.len() as u64;
        if !full {
            break;
        }
    }
    loaded
}

/// Logs a failed reload step at a bounded rate.
fn failed(sh: &Shared, e: &StoreError, what: &str) {
    match sh.store_failures.reload.failure(sh.clock.now()) {
        Failure::First => warn!(error = %e, "store failed while {what}; retrying every {RETRY:?}"),
        Failure::Again { left_out } => {
            warn!(error = %e, left_out, "store still fails while {what}; retrying")
        }
        Failure::Quiet => {}
    }
}

async fn retry_pause(sh: &Shared) {
    let at = sh
        .clock
        .now()
        .saturating_add_millis(RETRY.as_millis() as u64);
    sh.clock.sleep_until(at).await;
}
