//! A lost connection: every connection of a store is terminated by the
//! server (as in a restart or a failover). Reads run again on a live
//! connection; a write on a dead one fails with a retryable error (it may
//! or may not have committed, so the store does not repeat it); the store
//! replaces its connections by itself and nothing acknowledged is lost.

mod support;

use herald::{Start, Store};
use herald_core::Tick;
use herald_postgres::PgStore;
use herald_testkit::store_conformance::{id, small_envelope};
use support::{CloseNow, Scratch, options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_comes_back_after_its_connections_are_killed() {
    let Some(s) = Scratch::new("outage").await else {
        return;
    };
    let app = s.schema.clone();
    let sep = if s.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}application_name={app}", s.url);
    let store = PgStore::connect(&url, &s.schema, options(&s.clock))
        .await
        .unwrap();
    for n in 1..=20 {
        store
            .insert(small_envelope(n), Start::At(Tick::from_millis(10)))
            .await
            .unwrap();
    }
    // Open several pooled connections, then have the server kill them all.
    let reads: Vec<_> = (1..=8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.get(id(n)).await })
        })
        .collect();
    for r in reads {
        assert!(r.await.unwrap().unwrap().is_some());
    }
    let (admin, conn) = support::connect(&s.url).await;
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    assert!(!killed.is_empty(), "the store had connections");

    // Reads ride over it: one on a dead connection runs again on another
    // (the pool drops the dead ones and connects anew).
    for n in 1..=20 {
        let got = store.get(id(n)).await.expect("a read after the kill");
        assert!(got.is_some(), "acknowledged data is kept");
    }
    assert!(store.stats().is_writable());
    // Writes work again too: each dead connection fails at most one
    // (retryably) before the pool drops it.
    for n in 21..=25 {
        let mut done = false;
        for _ in 0..=killed.len() + 1 {
            match store
                .insert(small_envelope(n), Start::At(Tick::from_millis(10)))
                .await
            {
                Ok(_) => {
                    done = true;
                    break;
                }
                Err(e) => assert!(e.is_retryable(), "{e}"),
            }
        }
        assert!(done, "insert {n} after the outage");
    }
    assert_eq!(store.pending(None, 100).await.unwrap().len(), 25);
    drop(admin);
    let _ = conn.await;
    store.close_now();
}
