//! An `herald::Engine` on a `PgStore` end to end, on a `ManualClock`:
//! it publishes (immediate, scheduled, repeating), cancels and fires; then
//! a new engine on a new connection to the same schema (a restart, or
//! another node taking over) reloads the pending runs and fires them at
//! their time, with statuses and counters intact.
//!
//! Each phase runs on its own current-thread runtime, so the driver runs
//! only when the test awaits, and dropping the runtime drops the engine
//! as a process exit would.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::DateTime;
use herald::{
    DeliveryCounts, DeliveryOptions, Engine, ManualClock, PublishOptions, PublishStatus,
    Subscription,
};
use herald_core::Tick;
use herald_postgres::PgStore;
use serde_json::json;
use support::Scratch;

/// 2027-01-15T08:00:00Z.
const T0: u64 = 1_800_000_000_000;
const SEC: u64 = 1_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn engine(store: PgStore, clock: &ManualClock) -> Engine {
    Engine::builder()
        .clock(clock.clone())
        .store(store.clone())
        .registry(store.clone())
        .templates(store)
        .build()
}

fn at(ms: u64) -> DeliveryOptions {
    DeliveryOptions {
        publish_at: DateTime::from_timestamp_millis(ms as i64),
        ..DeliveryOptions::default()
    }
}

async fn publish(engine: &Engine, name: &str, delivery: DeliveryOptions) -> String {
    let mut publish = PublishOptions::default();
    publish.headers.insert("name".into(), name.into());
    engine
        .publish("ch", json!({ "name": name }).into(), publish, delivery)
        .await
        .unwrap_or_else(|e| panic!("publish {name}: {e}"))
        .message_id
}

fn drain(sub: &mut Subscription) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = sub.try_recv() {
        out.push(m.expect("no lag").headers()["name"].clone());
    }
    out.sort();
    out
}

fn names(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

fn counts(runs: u64, pubsub: u64) -> DeliveryCounts {
    DeliveryCounts {
        runs,
        pubsub,
        ..DeliveryCounts::default()
    }
}

async fn state(engine: &Engine, id: &str) -> (PublishStatus, DeliveryCounts) {
    let s = engine.message_status(id).await.expect("status");
    (s.status, s.deliveries)
}

#[test]
fn an_engine_on_postgres_publishes_cancels_fires_and_reloads() {
    let setup = runtime();
    let clock = ManualClock::new(Tick::from_millis(T0));
    let Some(scratch) = setup.block_on(Scratch::at("engine", clock.clone())) else {
        return;
    };

    // Phase one: publish every kind, cancel one, let the first runs fire.
    let rt = runtime();
    let ids: BTreeMap<&str, String> = rt.block_on(async {
        let engine = engine(scratch.reconnect().await, &clock);
        let mut sub = engine.subscribe("ch", None).expect("subscribe");
        let mut ids = BTreeMap::new();
        ids.insert(
            "now",
            publish(&engine, "now", DeliveryOptions::default()).await,
        );
        ids.insert("soon", publish(&engine, "soon", at(T0 + 5 * SEC)).await);
        ids.insert("later", publish(&engine, "later", at(T0 + 60 * SEC)).await);
        ids.insert(
            "cancelled",
            publish(&engine, "cancelled", at(T0 + 5 * SEC)).await,
        );
        let every = DeliveryOptions {
            repeat_every: Some(chrono::TimeDelta::seconds(10)),
            ..at(T0 + 3 * SEC)
        };
        ids.insert("every", publish(&engine, "every", every).await);
        let cancelled = engine.cancel(&ids["cancelled"]).await.expect("cancel");
        assert_eq!(cancelled.status, PublishStatus::Cancelled);
        engine.settle().await;
        assert_eq!(drain(&mut sub), names(&["now"]));

        clock.advance(Duration::from_secs(5));
        engine.settle().await;
        assert_eq!(drain(&mut sub), names(&["soon", "every"]));
        assert_eq!(
            state(&engine, &ids["now"]).await,
            (PublishStatus::Published, counts(1, 1))
        );
        assert_eq!(
            state(&engine, &ids["soon"]).await,
            (PublishStatus::Published, counts(1, 1))
        );
        assert_eq!(
            state(&engine, &ids["cancelled"]).await,
            (PublishStatus::Cancelled, counts(0, 0))
        );
        assert_eq!(
            state(&engine, &ids["every"]).await,
            (PublishStatus::Scheduled, counts(1, 1))
        );
        assert_eq!(
            state(&engine, &ids["later"]).await,
            (PublishStatus::Scheduled, counts(0, 0))
        );
        engine.shutdown().await;
        ids
    });
    drop(rt);

    // Phase two: a new engine on a new connection (a restart) at +5 s.
    let rt = runtime();
    rt.block_on(async {
        let engine = engine(scratch.reconnect().await, &clock);
        let mut sub = engine.subscribe("ch", None).expect("subscribe");
        engine.settle().await;
        assert_eq!(drain(&mut sub), Vec::<String>::new(), "nothing is due yet");
        // A shared store: the runs (at +13 s and +60 s) are beyond the
        // engine's horizon (2 s), so they stay in the store until the
        // engine reserves them shortly before they are due.
        assert_eq!(
            engine.scheduled_len(),
            0,
            "every and later left to the store"
        );
        assert_eq!(
            state(&engine, &ids["soon"]).await,
            (PublishStatus::Published, counts(1, 1))
        );

        // `every` at +13 s, not a ms before.
        clock.set(Tick::from_millis(T0 + 13 * SEC - 1));
        engine.settle().await;
        assert_eq!(drain(&mut sub), Vec::<String>::new());
        clock.advance(Duration::from_millis(1));
        engine.settle().await;
        assert_eq!(drain(&mut sub), names(&["every"]));
        assert_eq!(
            state(&engine, &ids["every"]).await,
            (PublishStatus::Scheduled, counts(2, 2))
        );

        // `later` at +60 s; `every`'s missed runs collapse into one.
        clock.set(Tick::from_millis(T0 + 60 * SEC));
        engine.settle().await;
        assert_eq!(drain(&mut sub), names(&["every", "later"]));
        assert_eq!(
            state(&engine, &ids["later"]).await,
            (PublishStatus::Published, counts(1, 1))
        );
        assert_eq!(
            state(&engine, &ids["cancelled"]).await,
            (PublishStatus::Cancelled, counts(0, 0)),
            "a cancelled message never fires"
        );
        assert!(engine.store_stats().is_writable());
        engine.shutdown().await;
    });
    drop(rt);
    setup.block_on(async { drop(scratch) });
}
