//! The scans over live rows stay on the partial indexes when most rows are
//! finished (as after months of traffic): the plans of the store's scans
//! (`pending` by id, the due order and `reserve_due`, `release_expired` by
//! lease end, the retention scan by finish time) use them, the purges
//! delete through the primary keys (messages with their appended
//! deliveries, expired devices), a record read sums its appended
//! deliveries through their index, and the store answers the live rows
//! only.

mod support;

use herald::{Claim, Start, Store};
use herald_core::Tick;
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
    let plan = |sql: &'static str| {
        let client = &client;
        async move {
            let rows = client.query(&format!("EXPLAIN {sql}"), &[]).await.unwrap();
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    for (sql, index) in [
        (
            "SELECT id, due FROM messages WHERE state = 0 AND id > '\\x'::bytea ORDER BY id LIMIT 1000",
            "messages_scheduled_id",
        ),
        (
            "SELECT id, due FROM messages WHERE state = 0 AND due <= 50 ORDER BY due LIMIT 1000",
            "messages_scheduled_due",
        ),
        (
            // `reserve_due`'s statement (as in `src/reserve.rs`, with values).
            "WITH c AS (SELECT id FROM messages WHERE state = 0 AND due < 50 \
               AND (reserved_until IS NULL OR reserved_due <> due OR reserved_until <= 0) \
               ORDER BY due LIMIT 1000 FOR UPDATE SKIP LOCKED) \
             UPDATE messages m SET reserved_due = m.due, \
               reserved_until = LEAST(GREATEST(m.due, 0), 9223372036854775807 - 10) + 10 \
             FROM c WHERE m.id = c.id RETURNING m.id, m.due",
            "messages_scheduled_due",
        ),
        (
            "SELECT id, due FROM messages WHERE state = 1 AND lease_until < 1000",
            "messages_firing_lease",
        ),
        (
            "SELECT id FROM messages WHERE state >= 2 AND finished_at <= 10 ORDER BY finished_at LIMIT 100",
            "messages_finished",
        ),
    ] {
        let p = plan(sql).await;
        assert!(p.contains(index), "{sql}\nshould use {index}:\n{p}");
        assert!(!p.contains("Seq Scan"), "{sql}\nscans the table:\n{p}");
    }
    // The retention purge (as in `src/retention.rs`, with values) finds a
    // chunk by finish time and deletes it, and its appended deliveries,
    // through the primary key and `bus_deliveries_id`: no table scan
    // (`push_jobs` is empty here, so its scan costs nothing).
    let purge = plan(
        "WITH d AS ( \
           DELETE FROM messages WHERE id = ANY(ARRAY( \
             SELECT m.id FROM messages m \
             WHERE m.state >= 2 AND m.finished_at <= 100000 \
               AND m.push_queued <= m.push_sent + m.push_failed + m.push_invalid_tokens + m.push_expired \
               AND NOT EXISTS (SELECT 1 FROM push_jobs j WHERE j.message = m.id) \
             ORDER BY m.finished_at LIMIT 5000 FOR UPDATE SKIP LOCKED)) \
           RETURNING id), \
         b AS (DELETE FROM bus_deliveries WHERE id = ANY(ARRAY(SELECT id FROM d))) \
         SELECT count(*) FROM d",
    )
    .await;
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
    // Expired devices likewise (as in `src/registry.rs`).
    let devices = plan(
        "DELETE FROM devices WHERE device_id = ANY(ARRAY( \
           SELECT device_id FROM devices WHERE expiration <= 100000 \
           ORDER BY expiration LIMIT 5000 FOR UPDATE SKIP LOCKED))",
    )
    .await;
    for index in ["devices_expiration", "devices_pkey"] {
        assert!(devices.contains(index), "should use {index}:\n{devices}");
    }
    assert!(!devices.contains("Seq Scan"), "{devices}");
    // The record read sums the appended deliveries through their index.
    let read = plan(
        "SELECT pubsub + COALESCE((SELECT sum(b.n) FROM bus_deliveries b \
           WHERE b.id = messages.id), 0)::int8 FROM messages \
         WHERE id = '\\x0000000000000000000000000000004d'::bytea",
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
