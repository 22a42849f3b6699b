//! Herald's shared store on PostgreSQL: the [`Store`](herald::Store)
//! (messages, idempotency keys, push jobs), the
//! [`DeviceRegistry`](herald::DeviceRegistry) and the
//! [`TemplateStore`](herald::TemplateStore), so several Herald nodes can
//! serve the same apps from one database.
//!
//! * **One schema per app.** [`PgStore::connect`]`(url, schema, options)`
//!   works in one PostgreSQL schema, as the server has one engine (and one
//!   store) per app: an app's tables, indexes and sequence stay small and
//!   its own, dropping an app is `DROP SCHEMA … CASCADE`, and no query
//!   needs an app column. Schema names are checked ([`check_schema`]:
//!   lowercase letters, digits, `_`) and quoted; connections use
//!   `search_path` set to the schema, so the SQL names no schema.
//! * **Migrations.** Versioned, recorded in the schema's
//!   `schema_migrations` table, each applied once in its own transaction
//!   at connect under `pg_advisory_xact_lock`, so nodes that start
//!   together do not race ([`PgStore::migrations_applied`]).
//! * **Claims.** A claim is one `UPDATE … FROM UNNEST(ids, dues)` that
//!   takes only rows still `scheduled` at that due; PostgreSQL's row locks
//!   and its re-check of the `WHERE` after a concurrent update hand each
//!   run to exactly one claimer across any number of nodes. Each claim
//!   draws a fencing token from one sequence (unique in the schema, so
//!   strictly increasing per message); renewals and completions present
//!   it. Push jobs are claimed with `FOR UPDATE SKIP LOCKED`.
//! * **Shared** ([`Store::is_shared`](herald::Store::is_shared) is
//!   `true`): several engines, each on its own `PgStore`, work on one
//!   schema. [`Store::reserve_due`](herald::Store::reserve_due) is one
//!   `WITH … FOR UPDATE SKIP LOCKED … UPDATE` over the scheduled rows by
//!   due (concurrent reservers get disjoint runs), recording
//!   `reserved_due` and `reserved_until` (migration 2).
//! * **Hints** ([`Store::due_hints`](herald::Store::due_hints)) travel by
//!   `LISTEN`/`NOTIFY` on the channel `herald_due_<schema>`: every write
//!   that schedules runs (inserts of `Start::At`, completions with
//!   `Next::At`, releases) sends one `pg_notify` with the batch's earliest
//!   due, in the same statement; a store's own writes reach its
//!   subscribers directly. The first `due_hints` call starts a listener on
//!   a dedicated connection that reconnects by itself (then hints "now",
//!   as notifications sent meanwhile are lost); [`PgStore::listening`]
//!   waits for it.
//! * **The cluster's development app** ([`shared_dev_app`]): the first
//!   node's proposal, recorded in `herald_cluster.dev_app`, for all.
//! * **Group commit.** Inserts go to a few writer tasks that store what
//!   is queued with one multi-row `INSERT … SELECT FROM UNNEST(…)` and one
//!   commit, so concurrent publishes share a round trip. Claims,
//!   completions, renewals and amendments arrive batched from the engine
//!   and are one statement per batch.
//! * **Partial indexes.** Scheduled rows by due and by id, firing rows by
//!   lease end, finished rows by finish time: the scans touch live rows
//!   only, however many finished rows wait for retention.
//! * **Retention.** A final message (finished, no push notification
//!   pending, no push job open) is deleted [`PgOptions::retention`] after
//!   its last change, on the store's injected clock, every
//!   [`PgOptions::purge_every`] (or by [`PgStore::purge_final`]); expired
//!   idempotency keys too.
//! * **Outages.** A lost connection, a refused one, or an error PostgreSQL
//!   marks as transient (SQLSTATE classes 08, 53, 57P, 58; serialization
//!   failures and deadlocks) is [`StoreError::Unavailable`](herald::StoreError::Unavailable)
//!   (retryable), reported by [`Store::stats`](herald::Store::stats) until
//!   a call succeeds again. The pool drops broken connections and opens
//!   new ones, so the store reconnects by itself; a read whose connection
//!   the server ended (a restart, a failover) runs again on another one,
//!   while a write is not repeated (it may have committed) and fails
//!   retryably. Deadlocks between concurrent batches are retried inside
//!   the store first.
//! * **Cancellation.** A store future dropped after its statement was sent
//!   may still have committed it (as with any networked database).
//! * **Damage.** A claimed message whose envelope does not decode is
//!   marked failed with the reason (counted as quarantined) and never
//!   delivered; a read of one is a non-retryable error naming it.
//!
//! # Why `tokio-postgres` and `deadpool-postgres`
//!
//! The plain asynchronous client: small (no query macros, no compile-time
//! database, no runtime abstraction), prepared statements cached per
//! connection by the pool, and the server's notifications delivered as
//! `AsyncMessage`s, which `LISTEN/NOTIFY` wake-ups and the cluster bus
//! will use. `deadpool-postgres` adds a pool of a few hundred lines that
//! recycles broken connections. `sqlx` would bring its macros, its own
//! pool and driver layers and a higher minimum Rust version for features
//! this crate does not use.
//!
//! **No TLS to PostgreSQL yet** (`NoTls`): run the database on a trusted
//! network or a local socket until a TLS connector is added.
//!
//! # Tables (migrations 1 and 2)
//!
//! | table | holds |
//! |---|---|
//! | `messages` | one row per message: `id` (16 bytes), `envelope` (`herald::codec` bytes), `state` (0 scheduled, 1 firing, 2 published, 3 failed, 4 cancelled), `due`, `lease_until`, `token`, the seven counters, `error`, `finished_at` (ms) |
//! | `idempotency_keys` | key → message id, fingerprint, first answer's status, `expires_at` |
//! | `push_jobs` | `(message, run)` → token, lease, cursor, `listed`, `handed` |
//! | `push_retries` | `(message, run, device_id)` → due, attempts |
//! | `devices` | one row per registration: token, os, os version, channels (`text[]`), expiration, properties (`jsonb`), registration time |
//! | `device_channels` | `(channel, device_id)`: a channel's devices in id order |
//! | `templates` | one row per push template |
//! | `schema_migrations` | the migrations applied |
//!
//! Migration 2 adds `reserved_due` and `reserved_until` (ms) to
//! `messages`: a node's reservation of the scheduled run due at
//! `reserved_due` (stale once `due` differs), until `reserved_until`.
//!
//! Times are `herald_core::Tick` milliseconds in `bigint` columns (ticks
//! beyond `i64::MAX` are clamped); text keys compare by bytes
//! (`COLLATE "C"`).
//!
//! # Example
//!
//! ```no_run
//! use herald::Engine;
//! use herald_postgres::{PgOptions, PgStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PgStore::connect(
//!     "postgres://postgres@127.0.0.1:5432/test",
//!     "app_news",
//!     PgOptions::default(),
//! )
//! .await?;
//! let engine = Engine::builder()
//!     .store(store.clone())
//!     .registry(store.clone())
//!     .templates(store)
//!     .build();
//! // … publish, subscribe …
//! engine.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

#[macro_use]
mod open;
mod bus;
mod dev_app;
mod error;
mod hints;
mod messages;
mod migrate;
mod push;
mod registry;
mod reserve;
mod retention;
mod rows;
pub mod statements;
mod store;
mod writer;

pub use bus::{DEFAULT_BUS_CAPACITY, PgBus};
pub use dev_app::{CLUSTER_SCHEMA, shared_dev_app};
pub use error::PgStoreError;
pub use open::{DEFAULT_RETENTION, PgOptions, PgStore, check_schema};
