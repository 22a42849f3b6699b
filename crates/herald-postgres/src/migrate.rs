//! Versioned schema migrations, applied at connect.
//!
//! Each migration runs once per schema, in its own transaction, under a
//! transaction-scoped advisory lock named after the schema
//! (`pg_advisory_xact_lock`), and records its version in the schema's
//! `schema_migrations` table in the same transaction. So nodes that connect
//! at the same time wait for each other: one applies, the others find the
//! version recorded and skip it; a migration that fails leaves nothing.

use tokio_postgres::Client;

use crate::error::PgStoreError;

/// The migrations, in order: `(version, SQL)`. Never edit one that was
/// released; add a new version.
pub(crate) const MIGRATIONS: &[(i32, &str)] = &[(1, V1), (2, V2), (3, V3), (4, V4)];

/// Version 1: messages, idempotency keys, push jobs and their retries,
/// devices and their channels, templates.
///
/// * Times are `herald_core::Tick` milliseconds as `bigint`; ids are the
///   16 bytes of a `MessageId` (big-endian, so byte order is id order).
/// * `state`: 0 scheduled, 1 firing, 2 published, 3 failed, 4 cancelled.
///   A cancelled row keeps the token of the claim the cancel interrupted
///   (0 if none), so that claim's completion still applies once.
/// * Fencing tokens come from one sequence: unique across the schema, so
///   strictly increasing per message and per push job.
/// * Partial indexes keep the scans on live rows: scheduled rows by due
///   and by id, firing rows by lease end, finished rows by finish time.
/// * Text keys compare by bytes (`COLLATE "C"`), as the registry's order
///   and the push retries' order require.
const V1: &str = r#"
CREATE SEQUENCE fencing_tokens;

CREATE TABLE messages (
    id bytea PRIMARY KEY,
    envelope bytea NOT NULL,
    state smallint NOT NULL,
    due bigint NOT NULL,
    lease_until bigint NOT NULL DEFAULT 0,
    token bigint NOT NULL DEFAULT 0,
    runs bigint NOT NULL DEFAULT 0,
    pubsub bigint NOT NULL DEFAULT 0,
    push_sent bigint NOT NULL DEFAULT 0,
    push_failed bigint NOT NULL DEFAULT 0,
    push_invalid_tokens bigint NOT NULL DEFAULT 0,
    push_expired bigint NOT NULL DEFAULT 0,
    push_queued bigint NOT NULL DEFAULT 0,
    error text,
    finished_at bigint
);
CREATE INDEX messages_scheduled_due ON messages (due) WHERE state = 0;
CREATE INDEX messages_scheduled_id ON messages (id) WHERE state = 0;
CREATE INDEX messages_firing_lease ON messages (lease_until) WHERE state = 1;
CREATE INDEX messages_finished ON messages (finished_at) WHERE state >= 2;

CREATE TABLE idempotency_keys (
    key text COLLATE "C" PRIMARY KEY,
    id bytea NOT NULL,
    fingerprint bytea NOT NULL,
    status smallint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE push_jobs (
    message bytea NOT NULL,
    run bigint NOT NULL,
    token bigint NOT NULL DEFAULT 0,
    lease_until bigint NOT NULL DEFAULT 0,
    handed bigint NOT NULL DEFAULT 0,
    listed boolean NOT NULL DEFAULT false,
    cursor text COLLATE "C",
    PRIMARY KEY (message, run)
);
CREATE INDEX push_jobs_lease ON push_jobs (lease_until, message, run);

CREATE TABLE push_retries (
    message bytea NOT NULL,
    run bigint NOT NULL,
    device_id text COLLATE "C" NOT NULL,
    due bigint NOT NULL,
    attempts integer NOT NULL,
    PRIMARY KEY (message, run, device_id),
    FOREIGN KEY (message, run) REFERENCES push_jobs ON DELETE CASCADE
);
CREATE INDEX push_retries_due ON push_retries (message, run, due, device_id);

CREATE TABLE devices (
    device_id text COLLATE "C" PRIMARY KEY,
    registration_id text NOT NULL,
    device_token text NOT NULL,
    os text NOT NULL,
    os_version text NOT NULL,
    channels text[] NOT NULL,
    expiration bigint,
    properties jsonb NOT NULL,
    registered_at bigint NOT NULL
);
CREATE INDEX devices_expiration ON devices (expiration) WHERE expiration IS NOT NULL;

CREATE TABLE device_channels (
    channel text COLLATE "C" NOT NULL,
    device_id text COLLATE "C" NOT NULL REFERENCES devices ON DELETE CASCADE,
    PRIMARY KEY (channel, device_id)
);
CREATE INDEX device_channels_device ON device_channels (device_id);

CREATE TABLE templates (
    name text COLLATE "C" PRIMARY KEY,
    message text NOT NULL,
    title text NOT NULL,
    subtitle text NOT NULL,
    headers jsonb NOT NULL,
    os smallint NOT NULL,
    channel text NOT NULL,
    segment_query text
);
"#;

/// Version 2: reservations of scheduled runs by the nodes sharing the
/// schema (`Store::reserve_due`): the due time a reservation was made for
/// and when it ends (ms). A reservation whose `reserved_due` is not the
/// row's `due` is stale (the run was rescheduled). No index: reservations
/// are found through `messages_scheduled_due`.
const V2: &str = r#"
ALTER TABLE messages ADD COLUMN reserved_due bigint, ADD COLUMN reserved_until bigint;
"#;

/// Version 3: free room on every page of `messages` (fill factor 70 %),
/// so that the updates that change no indexed column, a reservation
/// (`reserved_due`, `reserved_until`) and the delivery counts the other
/// nodes add to a run (`amend`), write their new row version on the same
/// page without new index entries (HOT updates; measured by hand on 120k
/// rows: 450 count updates took 4-10 ms with the room, 10-47 ms without).
/// Pages written before the migration keep their old fill until they are
/// rewritten.
const V3: &str = r#"
ALTER TABLE messages SET (fillfactor = 70);
"#;

/// Version 4: the pub/sub deliveries other nodes make of a message's runs
/// (from the cluster bus), appended rather than added to the message's
/// row. Each node adds such a count to every run it receives over the
/// bus, right after the firing node completed it: as row updates these
/// were two of the five row versions a run made, with row locks that the
/// completions waited on (in `cluster-bench` at 10k runs/s they were the
/// largest PostgreSQL cost and their lock waits pushed claims late). A
/// record's `pubsub` count is its row's plus the sum of its rows here
/// (read through the index); retention deletes them with the message.
const V4: &str = r#"
CREATE TABLE bus_deliveries (
    id bytea NOT NULL,
    n bigint NOT NULL
);
CREATE INDEX bus_deliveries_id ON bus_deliveries (id);
"#;

/// Applies the migrations `schema` lacks (creating the schema if needed);
/// answers the versions this call applied (empty: it was up to date).
pub(crate) async fn run(client: &mut Client, schema: &str) -> Result<Vec<i32>, PgStoreError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let mut applied = Vec::new();
    for &(version, sql) in MIGRATIONS {
        let failed = |source| PgStoreError::Migration { version, source };
        let tx = client.transaction().await.map_err(failed)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("herald-postgres migrate {schema}")],
        )
        .await
        .map_err(failed)?;
        // `schema` is checked (lowercase letters, digits, `_`) and quoted.
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             SET LOCAL search_path TO \"{schema}\";
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await
        .map_err(failed)?;
        let newest: Option<i32> = tx
            .query_one("SELECT max(version) FROM schema_migrations", &[])
            .await
            .map_err(failed)?
            .get(0);
        if let Some(found) = newest.filter(|&v| v > known) {
            return Err(PgStoreError::TooNew {
                schema: schema.to_owned(),
                found,
                known,
            });
        }
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[&version],
            )
            .await
            .map_err(failed)?
            .is_some();
        if !done {
            tx.batch_execute(sql).await.map_err(failed)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(failed)?;
            applied.push(version);
        }
        tx.commit().await.map_err(failed)?;
    }
    Ok(applied)
}
