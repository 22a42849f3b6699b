//! Several `PgStore`s on one schema (several nodes on one database):
//! concurrent claims hand each run to exactly one node, tokens keep
//! growing across nodes, and a claim made on one node completes on
//! another. Concurrent connects to a new schema both succeed and migrate
//! it once; a schema from a newer build and a bad schema name are refused.

mod support;

use std::sync::Arc;

use herald::{Claim, Completion, DeliveryCounts, MessageId, Next, RunState, Start, Store};
use herald_core::Tick;
use herald_postgres::{PgStore, PgStoreError};
use herald_testkit::ManualClock;
use herald_testkit::store_conformance::{id, small_envelope};
use support::{CloseNow, Scratch, database_url, drop_schema, fresh_schema, options};

fn t(ms: u64) -> Tick {
    Tick::from_millis(ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claim_each_run_once() {
    let Some(s) = Scratch::new("nodes").await else {
        return;
    };
    let a = Arc::new(s.reconnect().await);
    let b = Arc::new(s.reconnect().await);
    for n in 1..=300u128 {
        s.insert(small_envelope(n), Start::At(t(10))).await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            // Each task walks the runs in its own order, in batches.
            let mut order: Vec<u128> = (1..=300).collect();
            order.rotate_left(i * 37);
            if i % 3 == 0 {
                order.reverse();
            }
            let mut won = Vec::new();
            for chunk in order.chunks(50) {
                let claims = chunk
                    .iter()
                    .map(|&n| Claim {
                        id: id(n),
                        due: t(10),
                    })
                    .collect();
                let got = node.claim(claims, t(1_000)).await.expect("claim");
                won.extend(got.into_iter().flatten().map(|c| (c.envelope.id, c.token)));
            }
            (i % 2, won)
        }));
    }
    let mut all: Vec<MessageId> = Vec::new();
    let mut per_node = [0usize; 2];
    let mut tokens = Vec::new();
    for task in tasks {
        let (node, won) = task.await.unwrap();
        per_node[node] += won.len();
        all.extend(won.iter().map(|w| w.0));
        tokens.extend(won.iter().map(|w| w.1));
    }
    all.sort();
    assert_eq!(
        all,
        (1..=300).map(id).collect::<Vec<_>>(),
        "each run exactly once"
    );
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 300, "one token per claim");
    eprintln!("runs won: node A {}, node B {}", per_node[0], per_node[1]);
    a.close_now();
    b.close_now();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_moves_between_nodes_with_growing_tokens() {
    let Some(s) = Scratch::new("fencing").await else {
        return;
    };
    let a = s.reconnect().await;
    let b = s.reconnect().await;
    a.insert(small_envelope(1), Start::At(t(10))).await.unwrap();
    let first = a
        .claim(
            vec![Claim {
                id: id(1),
                due: t(10),
            }],
            t(100),
        )
        .await
        .unwrap()[0]
        .clone()
        .expect("claimed on A");
    // A stops renewing; B releases the expired lease and claims the run.
    assert_eq!(b.release_expired(t(101)).await.unwrap().len(), 1);
    let second = b
        .claim(
            vec![Claim {
                id: id(1),
                due: t(10),
            }],
            t(300),
        )
        .await
        .unwrap()[0]
        .clone()
        .expect("claimed on B");
    assert!(second.token > first.token, "tokens grow per message");
    let stale = Completion {
        id: id(1),
        token: first.token,
        counts: DeliveryCounts::default(),
        next: Next::Done,
    };
    assert_eq!(
        a.complete(vec![stale]).await.unwrap(),
        [false],
        "A is fenced off"
    );
    let current = Completion {
        id: id(1),
        token: second.token,
        counts: DeliveryCounts {
            runs: 1,
            ..DeliveryCounts::default()
        },
        next: Next::At(t(500)),
    };
    // The completion may come through any node.
    assert_eq!(a.complete(vec![current]).await.unwrap(), [true]);
    assert_eq!(
        b.get(id(1)).await.unwrap().unwrap().state,
        RunState::Scheduled { due: t(500) }
    );
    a.close_now();
    b.close_now();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_migrate_once() {
    let Some(url) = database_url() else {
        return;
    };
    let schema = fresh_schema("migrate");
    let clock = ManualClock::new(t(0));
    let mut connects = Vec::new();
    for _ in 0..4 {
        let (url, schema, o) = (url.clone(), schema.clone(), options(&clock));
        connects.push(tokio::spawn(async move {
            PgStore::connect(&url, &schema, o).await
        }));
    }
    let mut applied = Vec::new();
    let mut stores = Vec::new();
    for c in connects {
        let store = c.await.unwrap().expect("every concurrent connect succeeds");
        applied.push(store.migrations_applied().to_vec());
        stores.push(store);
    }
    // Each migration is applied once, by whichever connect took its lock
    // first (not necessarily the same one for every version).
    let mut all = applied.concat();
    all.sort();
    assert_eq!(
        all,
        [1, 2, 3, 4],
        "each migration applied once: {applied:?}"
    );
    let again = PgStore::connect(&url, &schema, options(&clock))
        .await
        .unwrap();
    assert!(
        again.migrations_applied().is_empty(),
        "a second run is a no-op"
    );
    stores[0]
        .insert(small_envelope(1), Start::At(t(5)))
        .await
        .unwrap();
    assert!(
        again.get(id(1)).await.unwrap().is_some(),
        "one schema, shared"
    );
    for s in stores.iter().chain([&again]) {
        s.close_now();
    }
    drop_schema(&url, &schema);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_and_bad_names_are_refused() {
    let Some(s) = Scratch::new("newer").await else {
        return;
    };
    let (client, conn) = support::connect(&s.url).await;
    client
        .batch_execute(&format!(
            "INSERT INTO \"{}\".schema_migrations (version) VALUES (99)",
            s.schema
        ))
        .await
        .unwrap();
    drop(client);
    let _ = conn.await;
    let err = PgStore::connect(&s.url, &s.schema, options(&s.clock))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PgStoreError::TooNew {
                found: 99,
                known: 4,
                ..
            }
        ),
        "{err}"
    );
    for bad in ["Public", "x; DROP TABLE y", "pg_catalog", ""] {
        let err = PgStore::connect(&s.url, bad, options(&s.clock))
            .await
            .unwrap_err();
        assert!(matches!(err, PgStoreError::Schema(_)), "{bad:?}: {err}");
    }
}
