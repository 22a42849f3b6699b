//! A lost connection: every connection of a store is terminated by the
//! server (as in a restart or a failover). Calls on a dead connection fail
//! with a retryable error, the store reports it, replaces its connections
//! by itself and works again, and nothing acknowledged is lost.

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
    let (admin, conn) = tokio_postgres::connect(&s.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    assert!(!killed.is_empty(), "the store had connections");

    // A dead connection fails a call or two (retryably) before the pool
    // sees it closed, drops it and connects anew.
    let mut errors = 0;
    let mut saw_unavailable = false;
    let mut recovered = false;
    for _ in 0..=2 * killed.len() + 1 {
        match store.get(id(1)).await {
            Ok(r) => {
                assert!(r.is_some(), "acknowledged data is kept");
                recovered = true;
                break;
            }
            Err(e) => {
                assert!(e.is_retryable(), "a lost connection is retryable: {e}");
                errors += 1;
                saw_unavailable |= store.stats().unavailable.is_some();
            }
        }
    }
    eprintln!(
        "{errors} failed calls after {} connections were killed",
        killed.len()
    );
    assert!(
        recovered,
        "the store reconnects by itself ({errors} errors)"
    );
    assert!(errors == 0 || saw_unavailable, "an outage shows in stats");
    assert!(
        store.stats().is_writable(),
        "and clears when a call succeeds"
    );
    // Writes work again too, through the writer's own connections.
    for n in 21..=25 {
        let mut done = false;
        for _ in 0..=2 * killed.len() + 1 {
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
