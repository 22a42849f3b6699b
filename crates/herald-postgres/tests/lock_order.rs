//! Batch statements on nodes sharing a schema lock rows in one order, so
//! they wait for each other rather than deadlock: three stores amend and
//! claim overlapping sets of rows, each batch in its own order, and none
//! of their statements is aborted for a deadlock (each would cost the
//! server's `deadlock_timeout`, 1 s, before PostgreSQL notices). The
//! cluster test saw those seconds as cross-node deliveries a second late.

mod support;

use herald::{Amendment, Claim, DeliveryCounts, MessageId, Start, Store};
use herald_core::Tick;
use herald_testkit::store_conformance::{id, small_envelope};
use support::Scratch;

const MESSAGES: u128 = 3_000;
const ROUNDS: usize = 30;

/// xorshift64*: each node's batches from its own seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Most of the messages or a few, in a random order: the planner reads
/// the rows of a small batch through the index (in id order) and those
/// of a large one by scanning the table (in the order the rows happen to
/// be on disk), which is what made concurrent batches deadlock.
fn batch(rng: &mut Rng) -> Vec<MessageId> {
    let keep = if rng.next().is_multiple_of(2) { 9 } else { 1 };
    let mut ids: Vec<MessageId> = (1..=MESSAGES)
        .filter(|_| rng.next() % 10 < keep)
        .map(id)
        .collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_batches_on_three_nodes_never_deadlock() {
    let Some(a) = Scratch::new("lockorder").await else {
        return;
    };
    let nodes = [a.store.clone(), a.reconnect().await, a.reconnect().await];
    // Inserted in a scrambled order, so the table's order is not the ids'.
    let mut order: Vec<u128> = (1..=MESSAGES).collect();
    let mut rng = Rng(0x2545_f491);
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    let mut inserts = tokio::task::JoinSet::new();
    for chunk in order.chunks(MESSAGES as usize / 16) {
        let (store, chunk) = (a.store.clone(), chunk.to_vec());
        inserts.spawn(async move {
            for n in chunk {
                let due = Tick::from_millis(60_000 + n as u64);
                store
                    .insert(small_envelope(n), Start::At(due))
                    .await
                    .expect("insert");
            }
        });
    }
    while let Some(r) = inserts.join_next().await {
        r.expect("insert task");
    }
    let (client, _conn) = support::connect(&a.url).await;
    client
        .batch_execute(&format!("ANALYZE \"{}\".messages", a.schema))
        .await
        .expect("analyze");
    let mut tasks = tokio::task::JoinSet::new();
    for (k, store) in nodes.iter().cloned().enumerate() {
        tasks.spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (k as u64 + 1));
            let mut added = 0u64;
            for round in 0..ROUNDS {
                let ids = batch(&mut rng);
                if round % 4 == 3 {
                    // Claims of runs that are not due (nothing changes):
                    // they lock the same rows all the same.
                    let claims = ids
                        .iter()
                        .map(|&id| Claim {
                            id,
                            due: Tick::from_millis(1),
                        })
                        .collect();
                    let got = store
                        .claim(claims, Tick::from_millis(90_000))
                        .await
                        .expect("claim");
                    assert!(got.iter().all(Option::is_none), "wrong due: no claim");
                    continue;
                }
                added += ids.len() as u64;
                let amendments = ids
                    .into_iter()
                    .map(|id| Amendment {
                        id,
                        counts: DeliveryCounts {
                            pubsub: 1,
                            ..DeliveryCounts::default()
                        },
                        error: None,
                        fail: false,
                    })
                    .collect();
                store.amend(amendments).await.expect("amend");
            }
            added
        });
    }
    let mut added = 0;
    while let Some(r) = tasks.join_next().await {
        added += r.expect("node task");
    }
    let mut counted = 0;
    for n in 1..=MESSAGES {
        let rec = a.store.get(id(n)).await.expect("get").expect("record");
        counted += rec.counts.pubsub;
    }
    assert_eq!(counted, added, "every amendment counted once");
    let conflicts: Vec<u64> = nodes.iter().map(|s| s.conflicts_retried()).collect();
    assert_eq!(
        conflicts,
        vec![0, 0, 0],
        "statements aborted for deadlocks (and tried again) on each node"
    );
}
