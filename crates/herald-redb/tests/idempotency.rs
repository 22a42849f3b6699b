//! Idempotency keys in the durable store: a retry after a restart gets
//! the first answer (the key is recorded with the message, in the same
//! transaction), and an expired key is purged and publishes anew. The
//! crash test (`tests/crash.rs`) checks the same across SIGKILL: every
//! acknowledged key names its message, and no key outlives a lost insert.

use std::sync::Arc;
use std::time::Duration;

use herald::{
    DeliveryOptions, Engine, ManualClock, PublishExtras, PublishOptions, PublishStatus, Store,
};
use herald_core::Tick;
use herald_redb::{RedbOptions, RedbStore};
use herald_testkit::TempDir;

const T0: u64 = 1_800_000_000_000;

fn open(dir: &TempDir, clock: &ManualClock) -> RedbStore {
    RedbStore::open_with(
        &dir.0,
        RedbOptions {
            // Keys expire whatever the retention of messages.
            retention: None,
            clock: Arc::new(clock.clone()),
            ..RedbOptions::default()
        },
    )
    .expect("open")
}

async fn publish(
    engine: &Engine,
    message: &str,
    key: &str,
) -> Result<herald::MessageStatus, herald::Error> {
    engine
        .publish_with(
            "orders",
            serde_json::json!({ "text": message }).into(),
            PublishOptions::default(),
            DeliveryOptions::default(),
            PublishExtras::default().with_idempotency_key(key),
        )
        .await
}

#[tokio::test]
async fn a_key_outlives_a_restart_then_expires() {
    let dir = TempDir::new("idempotency");
    let clock = ManualClock::new(Tick::from_millis(T0));
    let store = open(&dir, &clock);
    let engine = Engine::builder()
        .clock(clock.clone())
        .store(store.clone())
        .build();
    let first = publish(&engine, "shipped", "order-42")
        .await
        .expect("publish");
    assert_eq!(first.status, PublishStatus::Published);
    engine.shutdown().await;

    // A new process: the retry gets the first answer, nothing is published.
    let store = open(&dir, &clock);
    let engine = Engine::builder()
        .clock(clock.clone())
        .store(store.clone())
        .build();
    let mut sub = engine.subscribe("orders", None).expect("subscribe");
    clock.advance(Duration::from_secs(3_600));
    let retry = publish(&engine, "shipped", "order-42")
        .await
        .expect("retry");
    assert_eq!(
        (
            retry.message_id.as_str(),
            retry.status,
            retry.deliveries.runs
        ),
        (first.message_id.as_str(), PublishStatus::Published, 1)
    );
    assert_eq!(engine.stats().published, 0, "nothing new");
    assert!(sub.try_recv().is_none(), "nothing delivered again");
    let other = publish(&engine, "cancelled", "order-42")
        .await
        .expect_err("another request with the key");
    assert_eq!(other.code(), 5095, "{other}");

    // 24 h after the first publish the key is gone, and the same request
    // is a new publish.
    clock.set(Tick::from_millis(T0 + 24 * 3_600_000));
    store.purge().await.expect("purge");
    assert_eq!(store.idempotency_key("order-42").await.expect("read"), None);
    let raw = store.raw_tables().expect("tables");
    assert!(raw["idempotency"].is_empty() && raw["idempotency_expiry"].is_empty());
    let again = publish(&engine, "shipped", "order-42")
        .await
        .expect("publish");
    assert_ne!(again.message_id, first.message_id);
    assert_eq!(engine.stats().published, 1);
    let check = store.check_records().expect("consistent");
    assert_eq!((check.records, check.keys), (2, 1), "{check:?}");
    engine.shutdown().await;
}
