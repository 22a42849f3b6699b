//! Two `PgStore`s on one schema, as two nodes: a run one schedules is
//! hinted to the other's `due_hints` (over `LISTEN`/`NOTIFY`), the
//! listener connects again by itself when its connection is killed, and
//! the two nodes' reservations are disjoint.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use herald::{DueHints, MessageId, Start, Store};
use herald_core::Tick;
use herald_postgres::PgStore;
use herald_testkit::store_conformance::small_envelope;
use support::{CloseNow, Scratch};

/// Bounds a broken store; the tests do not wait for it to pass.
const BOUND: Duration = Duration::from_secs(20);

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

async fn next_hint(hints: &mut DueHints, what: &str) -> Tick {
    tokio::time::timeout(BOUND, hints.recv())
        .await
        .unwrap_or_else(|_| panic!("no hint within {BOUND:?} after {what}"))
}

async fn listening(store: &PgStore, after: u64) -> u64 {
    tokio::time::timeout(BOUND, store.listening(after))
        .await
        .unwrap_or_else(|_| panic!("not listening within {BOUND:?}"))
}

async fn insert_at(store: &PgStore, n: u128, due: u64) {
    store
        .insert(small_envelope(n), Start::At(t(due)))
        .await
        .expect("insert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_scheduled_on_one_node_is_hinted_to_the_other() {
    let Some(a) = Scratch::new("hint2").await else {
        return;
    };
    let b = a.reconnect().await;
    let mut on_a = a.store.due_hints().expect("hints on A");
    let mut on_b = b.due_hints().expect("hints on B");
    assert_eq!(listening(&b, 0).await, 1, "B's first listening connection");

    insert_at(&a.store, 1, 500).await;
    assert_eq!(next_hint(&mut on_b, "an insert on A").await, t(500));
    assert_eq!(next_hint(&mut on_a, "its own insert").await, t(500));

    // Concurrent inserts (one batch or a few, one hint each): B is told
    // one of their due times.
    let mut batch = Vec::new();
    for (n, due) in [(2, 900), (3, 700), (4, 800)] {
        let store = a.store.clone();
        batch.push(tokio::spawn(async move { insert_at(&store, n, due).await }));
    }
    for i in batch {
        i.await.expect("insert");
    }
    let got = next_hint(&mut on_b, "inserts on A").await;
    assert!(
        [700, 800, 900].contains(&got.as_millis()),
        "a due time of the inserts: {got:?}"
    );

    // B's own writes reach B's subscribers directly, and its listener
    // skips their notifications: A's next insert (notified after B's) is
    // the next hint, not B's 300 again.
    insert_at(&b, 5, 300).await;
    assert_eq!(next_hint(&mut on_b, "B's own insert").await, t(300));
    insert_at(&a.store, 6, 1_000).await;
    assert_eq!(next_hint(&mut on_b, "A's insert after B's").await, t(1_000));
    b.close_now();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_connects_again_after_its_connection_is_killed() {
    let Some(a) = Scratch::new("relisten").await else {
        return;
    };
    let b = a.reconnect().await;
    let mut on_b = b.due_hints().expect("hints on B");
    assert_eq!(listening(&b, 0).await, 1);

    let (client, conn) = support::connect(&a.url).await;
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'herald-hints' AND query = $1",
            &[&format!("LISTEN \"herald_due_{}\"", a.schema)],
        )
        .await
        .unwrap()
        .get(0);
    drop(client);
    let _ = conn.await;
    assert_eq!(killed, 1, "B's listening connection");

    assert_eq!(listening(&b, 1).await, 2, "B listens again, by itself");
    assert_eq!(
        next_hint(&mut on_b, "a reconnect").await,
        t(0),
        "after a reconnect B is told to look now (its clock is at 0)"
    );
    insert_at(&a.store, 1, 700).await;
    assert_eq!(next_hint(&mut on_b, "an insert on A").await, t(700));
    b.close_now();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_reserve_disjoint_runs() {
    let Some(a) = Scratch::new("reserve2").await else {
        return;
    };
    let b = a.reconnect().await;
    const N: u128 = 400;
    let mut inserts = Vec::new();
    for n in 0..N {
        let store = a.store.clone();
        inserts.push(tokio::spawn(async move {
            insert_at(&store, n, 1_000 + (n as u64 % 13)).await
        }));
    }
    for i in inserts {
        i.await.expect("insert");
    }
    let mut nodes = Vec::new();
    for store in [a.store.clone(), b.clone()] {
        let store = Arc::new(store);
        for _ in 0..2 {
            let store = store.clone();
            nodes.push(tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let page = store
                        .reserve_due(t(0), t(5_000), 60_000, 9)
                        .await
                        .expect("reserve");
                    if page.is_empty() {
                        return got;
                    }
                    got.extend(page.into_iter().map(|r| r.id));
                }
            }));
        }
    }
    let mut seen: HashSet<MessageId> = HashSet::new();
    let mut per_reserver = Vec::new();
    for task in nodes {
        let got = task.await.expect("reserver");
        per_reserver.push(got.len());
        for id in got {
            assert!(seen.insert(id), "run {id} reserved twice");
        }
    }
    assert_eq!(
        seen.len(),
        N as usize,
        "every run reserved: {per_reserver:?}"
    );
    b.close_now();
}
