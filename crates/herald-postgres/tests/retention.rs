//! Retention on the store's clock: a final message (finished, no push
//! notification pending, no push job open) is purged once it has been
//! final for the retention period; unfinished messages, ones with push
//! notifications pending and ones with an open push job stay. Expired
//! idempotency keys go too.

mod support;

use std::time::Duration;

use herald::{
    Amendment, Claim, Completion, DeliveryCounts, IdempotencyKey, JobKey, Next, Start, Store,
};
use herald_core::Tick;
use herald_postgres::PgStore;
use herald_testkit::ManualClock;
use herald_testkit::store_conformance::{id, small_envelope};
use support::{CloseNow, Scratch, options};

const T0: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

/// A scratch schema (clock at `T0`) and a store on it keeping final
/// messages an hour; `None` without `DATABASE_URL`.
async fn with_retention(name: &str) -> Option<(ManualClock, Scratch, PgStore)> {
    let clock = ManualClock::new(t(T0));
    let s = Scratch::at(name, clock.clone()).await?;
    let mut o = options(&clock);
    o.retention = Some(Duration::from_secs(3_600));
    let store = PgStore::connect(&s.url, &s.schema, o).await.unwrap();
    Some((clock, s, store))
}

async fn finish(store: &PgStore, n: u128, counts: DeliveryCounts) {
    store
        .insert(small_envelope(n), Start::At(t(T0)))
        .await
        .unwrap();
    let c = store
        .claim(
            vec![Claim {
                id: id(n),
                due: t(T0),
            }],
            t(T0 + 60_000),
        )
        .await
        .unwrap()[0]
        .clone()
        .expect("claimed");
    let done = store
        .complete(vec![Completion {
            id: id(n),
            token: c.token,
            counts,
            next: Next::Done,
        }])
        .await
        .unwrap();
    assert_eq!(done, [true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_messages_are_purged_after_the_retention_period() {
    let Some((clock, _scratch, store)) = with_retention("retention").await else {
        return;
    };

    let published = DeliveryCounts {
        runs: 1,
        ..DeliveryCounts::default()
    };
    finish(&store, 1, published).await; // final
    let pending_push = DeliveryCounts {
        runs: 1,
        push_queued: 3,
        push_sent: 1,
        ..DeliveryCounts::default()
    };
    finish(&store, 2, pending_push).await; // 2 notifications pending
    finish(&store, 3, published).await; // push job open
    store
        .add_push_jobs(vec![JobKey {
            message: id(3),
            run: t(T0),
        }])
        .await
        .unwrap();
    store
        .insert(small_envelope(4), Start::At(t(T0 + 10 * HOUR)))
        .await
        .unwrap(); // scheduled
    store
        .insert(small_envelope(5), Start::At(t(T0 + 10 * HOUR)))
        .await
        .unwrap();
    store.cancel(id(5)).await.unwrap(); // cancelled: final
    let key = IdempotencyKey {
        key: "k".into(),
        fingerprint: 1,
        expires_at: t(T0 + 2 * HOUR),
    };
    let mut e = (*small_envelope(6)).clone();
    e.accepted_at = t(T0);
    store
        .insert_idempotent(e.into(), Start::At(t(T0 + 10 * HOUR)), key)
        .await
        .unwrap();

    clock.advance(Duration::from_millis(HOUR - 1));
    assert_eq!(
        store.purge_final().await.unwrap(),
        0,
        "not yet: retention is 1 h"
    );
    // Message 2's last notifications resolve half an hour in: its
    // retention starts then.
    clock.advance(Duration::from_millis(HOUR / 2));
    store
        .amend(vec![Amendment {
            id: id(2),
            counts: DeliveryCounts {
                push_sent: 2,
                ..DeliveryCounts::default()
            },
            error: None,
            fail: false,
        }])
        .await
        .unwrap();
    assert_eq!(store.purge_final().await.unwrap(), 2, "messages 1 and 5");
    for (n, kept) in [
        (1, false),
        (2, true),
        (3, true),
        (4, true),
        (5, false),
        (6, true),
    ] {
        assert_eq!(
            store.get(id(n)).await.unwrap().is_some(),
            kept,
            "message {n}"
        );
    }
    assert_eq!(store.stats().purged, 2);
    assert!(
        store.idempotency_key("k").await.unwrap().is_some(),
        "the key holds until 2 h"
    );

    clock.advance(Duration::from_millis(HOUR));
    assert_eq!(
        store.purge_final().await.unwrap(),
        1,
        "message 2, an hour after it became final"
    );
    assert!(store.get(id(2)).await.unwrap().is_none());
    assert!(
        store.get(id(3)).await.unwrap().is_some(),
        "its push job is still open"
    );
    assert!(
        store.idempotency_key("k").await.unwrap().is_none(),
        "expired keys are purged"
    );
    assert!(
        store.get(id(6)).await.unwrap().is_some(),
        "its message is not final"
    );
    store.close_now();
}

/// Rows of `table` in the scratch schema.
async fn rows_of(s: &Scratch, table: &str) -> i64 {
    let (client, conn) = support::connect(&s.url).await;
    let n: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{}\".{table}", s.schema),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    drop(client);
    let _ = conn.await;
    n
}

fn pubsub_only(n: u128, pubsub: u64) -> Amendment {
    Amendment {
        id: id(n),
        counts: DeliveryCounts {
            pubsub,
            ..DeliveryCounts::default()
        },
        error: None,
        fail: false,
    }
}

/// Other nodes' pub/sub deliveries (amendments of `pubsub` alone) are
/// appended to `bus_deliveries` instead of updating the message's row:
/// a read sums them, an unknown id adds nothing, a pubsub-only amendment
/// does not restart the retention clock, and the purge takes the rows
/// with their message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_deliveries_are_appended_summed_and_purged_with_the_message() {
    let Some((clock, s, store)) = with_retention("busdeliveries").await else {
        return;
    };
    let delivered = DeliveryCounts {
        runs: 1,
        pubsub: 1,
        ..DeliveryCounts::default()
    };
    finish(&store, 1, delivered).await;
    finish(&store, 2, delivered).await;

    // Two nodes' deliveries of message 1 in one batch (merged: one row),
    // a third node's later; message 2 by one node; an unknown id.
    store
        .amend(vec![
            pubsub_only(1, 2),
            pubsub_only(1, 1),
            pubsub_only(2, 4),
        ])
        .await
        .unwrap();
    clock.advance(Duration::from_millis(HOUR / 2));
    store
        .amend(vec![pubsub_only(1, 3), pubsub_only(77, 5)])
        .await
        .unwrap();
    assert_eq!(rows_of(&s, "bus_deliveries").await, 3);
    let one = store.get(id(1)).await.unwrap().unwrap();
    assert_eq!(one.counts.pubsub, 1 + 2 + 1 + 3);
    assert_eq!(one.counts.runs, 1);
    assert_eq!(store.get(id(2)).await.unwrap().unwrap().counts.pubsub, 5);
    assert!(store.get(id(77)).await.unwrap().is_none());

    // A cancel's answer sums them too (message 3, still scheduled).
    store
        .insert(small_envelope(3), Start::At(t(T0 + 10 * HOUR)))
        .await
        .unwrap();
    store.amend(vec![pubsub_only(3, 6)]).await.unwrap();
    match store.cancel(id(3)).await.unwrap() {
        herald::CancelOutcome::Cancelled(r) => assert_eq!(r.counts.pubsub, 6),
        other => panic!("{other:?}"),
    }

    // An hour after they finished (the appended counts came later and did
    // not restart the clock), 1 and 2 go with their rows; 3 (cancelled
    // half an hour in) stays with its row.
    clock.advance(Duration::from_millis(HOUR / 2));
    assert_eq!(store.purge_final().await.unwrap(), 2);
    assert!(store.get(id(1)).await.unwrap().is_none());
    assert_eq!(rows_of(&s, "bus_deliveries").await, 1);
    assert_eq!(store.get(id(3)).await.unwrap().unwrap().counts.pubsub, 6);
    store.close_now();
}
