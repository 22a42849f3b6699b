//! The scans over live rows stay on the partial indexes when most rows are
//! finished (as after months of traffic): the plans of the store's own
//! statements (`herald_postgres::statements`) for its scans
//! (`pending` by id, the due order and `reserve_due`, `release_expired` by
//! lease end, the retention scan by finish time) use them, the purges
//! delete through the primary keys (messages with their appended
//! deliveries, expired devices), a record read sums its appended
//! deliveries through their index, and the store answers the live rows
//! only.

mod support;

use herald::{Claim, Start, Store};
use herald_core::Tick;
use herald_postgres::statements;
use herald_testkit::store_conformance::{id, small_envelope};
use support::Scratch;

const FINISHED: i64 = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_scans_use_the_partial_indexes_among_many_finished_rows() {
    let Some(s) = Scratch::new("indexes").await else {
        return;
    };
    for n in 1..=20 {
        s.insert(small_envelope(n), Start::At(Tick::from_millis(10)))
            .await
            .unwrap();
    }
    let claimed = s
        .claim(
            (1..=5)
                .map(|n| Claim {
                    id: id(n),
                    due: Tick::from_millis(10),
                })
                .collect(),
            Tick::from_millis(100),
        )
        .await
        .unwrap();
    assert!(claimed.iter().all(Option::is_some));

    let (client, conn) = support::connect(&s.url).await;
    client
        .batch_execute(&format!(
            "SET search_path TO \"{schema}\";
             INSERT INTO messages (id, envelope, state, due, finished_at)
             SELECT decode(lpad(to_hex(g), 32, '0'), 'hex'), '\\x00', 2, g, g
             FROM generate_series(1, {FINISHED}) AS g;
             INSERT INTO bus_deliveries (id, n)
             SELECT decode(lpad(to_hex(g), 32, '0'), 'hex'), 1
             FROM generate_series(1, {FINISHED}) AS g, generate_series(1, 2);
             INSERT INTO devices (device_id, registration_id, device_token, os,
               os_version, channels, expiration, properties, registered_at)
             SELECT 'd' || g, 'r' || g, 't' || g, 'IOS', '17', '{{default}}', g, '{{}}', 0
             FROM generate_series(1, {FINISHED}) AS g;
             ANALYZE messages;
             ANALYZE bus_deliveries;
             ANALYZE devices;",
            schema = s.schema
        ))
        .await
        .unwrap();
    // The store's own statements (`herald_postgres::statements`), prepared
    // and explained with values: the plans PostgreSQL picks for them.
    let mut prepared = 0;
    let mut plan = async |sql: &str, args: &str| {
        prepared += 1;
        client
            .batch_execute(&format!("PREPARE s{prepared} AS {sql}"))
            .await
            .unwrap_or_else(|e| panic!("prepare {sql}: {e}"));
        let rows = client
            .query(&format!("EXPLAIN EXECUTE s{prepared}({args})"), &[])
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (what, sql, args, index) in [
        (
            "pending",
            statements::PENDING,
            "'\\x', 1000",
            "messages_scheduled_id",
        ),
        (
            "reserve_due",
            statements::RESERVE,
            "0, 50, 10, 1000",
            "messages_scheduled_due",
        ),
        (
            "release_expired",
            statements::RELEASE,
            "1000, 'herald_hints', 'n'",
            "messages_firing_lease",
        ),
    ] {
        let p = plan(sql, args).await;
        assert!(p.contains(index), "{what} should use {index}:\n{p}");
        assert!(!p.contains("Seq Scan"), "{what} scans the table:\n{p}");
    }
    // The retention purge finds a chunk by finish time and deletes it, and
    // its appended deliveries, through the primary key and
    // `bus_deliveries_id`: no table scan (`push_jobs` is empty here, so its
    // scan costs nothing).
    let purge = plan(statements::PURGE_MESSAGES, "100000, 5000").await;
    for index in ["messages_finished", "messages_pkey", "bus_deliveries_id"] {
        assert!(
            purge.contains(index),
            "the purge should use {index}:\n{purge}"
        );
    }
    for table in ["messages", "bus_deliveries"] {
        assert!(
            !purge.contains(&format!("Seq Scan on {table}")),
            "the purge scans {table}:\n{purge}"
        );
    }
    // Expired devices likewise.
    let devices = plan(statements::PURGE_DEVICES, "100000, 5000").await;
    for index in ["devices_expiration", "devices_pkey"] {
        assert!(devices.contains(index), "should use {index}:\n{devices}");
    }
    assert!(!devices.contains("Seq Scan"), "{devices}");
    // The record read sums the appended deliveries through their index.
    let read = plan(
        &statements::read_record(),
        "'\\x0000000000000000000000000000004d'",
    )
    .await;
    assert!(read.contains("bus_deliveries_id"), "{read}");
    assert!(!read.contains("Seq Scan"), "{read}");
    client.batch_execute("RESET search_path").await.unwrap();
    drop(client);
    let _ = conn.await;

    // The store's answers: only the live rows.
    assert_eq!(s.pending(None, 1_000).await.unwrap().len(), 15);
    assert_eq!(
        s.reserve_due(Tick::from_millis(0), Tick::from_millis(50), 10, 1_000)
            .await
            .unwrap()
            .len(),
        15,
        "the scheduled runs, none of the finished rows"
    );
    assert_eq!(
        s.release_expired(Tick::from_millis(101))
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(s.pending(None, 1_000).await.unwrap().len(), 20);
}
