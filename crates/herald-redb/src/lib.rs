//! Herald's embedded durable [`Store`](herald::Store): messages, schedules
//! and statuses in a [redb](https://docs.rs/redb) file, so a restart (or a
//! crash) loses nothing that was acknowledged. The same store is Herald's
//! durable [`DeviceRegistry`](herald::DeviceRegistry) and
//! [`TemplateStore`](herald::TemplateStore) (push registrations and
//! templates), and keeps the push jobs (the push side of fired runs), in
//! the same file.
//!
//! * **Durable acknowledgements.** Every write (`insert`, `claim`, `renew`,
//!   `complete`, `cancel`, `amend`, `release_expired`; `add_push_jobs`,
//!   `claim_push_jobs`, `checkpoint_push`; `register`, `unregister`,
//!   `remove_invalid`, `purge_expired`, `put_template`, `delete_template`)
//!   resolves only after its redb transaction has committed with
//!   `Durability::Immediate` (one `fsync`).
//! * **Group commit.** One writer thread drains a queue of write requests
//!   and applies up to 4096 of them in one transaction with one commit, so
//!   concurrent publishes share an `fsync`.
//! * **Fencing.** Every claim (of a run or of a push job) gets a token
//!   unique across the store; a completion, renewal or push checkpoint
//!   under a stale token changes nothing.
//! * **Reads** (`get`, `pending`, `push_retries`) use read transactions
//!   and see every acknowledged write; `pending` reads only the small index
//!   tables.
//! * **Restart.** [`Engine::builder`](herald::Engine::builder) with a
//!   reopened store reloads every unfinished message: scheduled runs fire
//!   at their time, repeating messages resume (missed runs collapse into
//!   one), and a run that was being delivered at a crash is delivered again
//!   (at-least-once).
//! * **Damage is contained.** A message whose header or envelope does not
//!   decode is moved to a `quarantine` table when a claim (or a write)
//!   meets it, and logged; the rest of its batch goes on.
//! * **Migration.** A data directory of format version 1 is migrated in
//!   place when it is opened ([`RedbStore::migration`] says what was done).
//! * **Retention.** A final message (finished, no push notification
//!   pending, no push job open) is purged [`RedbOptions::retention`] after
//!   it became final, on the store's injected clock, by the writer in its
//!   idle time (see [`RedbStore`]); expired idempotency keys too.
//! * **Idempotency keys** are recorded with their message in one
//!   transaction ([`Store::insert_idempotent`](herald::Store::insert_idempotent)).
//! * **Outages.** After an I/O error (a full disk) the writer reopens the
//!   database and answers writes (registry and push-job writes too)
//!   `Unavailable` at once, trying again with backoff, until a write commits;
//!   [`Store::stats`](herald::Store::stats) reports it meanwhile. Nothing
//!   acknowledged is lost.
//! * **Device registry and templates.** Registry writes are writer
//!   requests like the message writes (same batches, same commit); reads
//!   are read transactions. A channel's devices are an index ordered by
//!   `(channel, device id)`, so
//!   [`channel_devices`](herald::DeviceRegistry::channel_devices) reads one
//!   page, not the channel. A record that does not decode is
//!   `StoreError::Other` naming its table and key, never a panic; a write
//!   that meets one changes nothing.
//! * **Push jobs.** Adds, claims and checkpoints are writer requests too
//!   (a claim writes a token from the store's counter and a lease; a
//!   checkpoint updates the job, its retries and the message's counters
//!   in one transaction). A claim reads the first entries of a lease index,
//!   never the jobs still leased; a job's retries are one range. A job
//!   record that does not decode is `StoreError::Other` naming the job;
//!   the request that meets it changes nothing.
//!
//! # Format (version 2)
//!
//! One redb file, `<data dir>/herald.redb`, with these tables (Herald's
//! `docs/design.md`, "Store format: herald-redb", has the reasoning):
//!
//! | table | key → value | holds |
//! |---|---|---|
//! | `meta` | `&str` → `u64` | `format_version` = 2; `last_token`: the last fencing token issued |
//! | `headers` | `u128` id → bytes | the header: state, due, token, counters, error (below) |
//! | `envelopes` | `u128` id → bytes | the `herald::codec` envelope, written once at insert |
//! | `claims` | `u128` id → `(u64 due, u64 lease_until, u64 token)` | claimed runs: a `Scheduled { due }` header with an entry here for that due is `Firing` |
//! | `finals` | `(u64 due, u128 id)` → header bytes | the final header (`Published`/`Failed`) of a message finished by a completion at `due`; its header stays `Scheduled { due }` |
//! | `schedule` | `u128` id → `u64` due | every unfinished message with its due (finished ones linger until `pending` meets them) |
//! | `finished` | `(u64 finished_at, u128 id)` → `()` | every final message (finished, no push pending, no push job open), in the order retention purges |
//! | `idempotency` | `&str` key → `(u128 id, u128 fingerprint, u64 expires_at, u8 status)` | idempotency keys and the first answer (status 0 `scheduled`, 1 `published`) |
//! | `idempotency_expiry` | `(u64 expires_at, &str key)` → `()` | the order expired keys are purged in |
//! | `quarantine` | `u128` id → bytes | a damaged message moved aside: `u32` reason length, reason, `u32` header length, header, envelope to the end |
//! | `devices` | `&str` device id → bytes | a device's registration: the device record (below) |
//! | `device_channels` | `(&str channel, &str device id)` → `()` | one entry per channel of every registration: a channel's devices in id order |
//! | `device_expiry` | `(u64 expiration, &str device id)` → `()` | one entry per registration that expires: the order `purge_expired` removes them in |
//! | `templates` | `&str` name → bytes | a push template: the template record (below) |
//! | `push_jobs` | `(u128 message, u64 run)` → bytes | an open push job: the job record (below) |
//! | `push_job_leases` | `(u64 lease_until, u128 message, u64 run)` → `()` | one entry per job under its lease (0 until its first claim): the order claims take jobs in |
//! | `push_retries` | `(u128 message, u64 run, u64 due, &str device id)` → `u32` attempts | the notifications of a job waiting for a retry, in the order they are listed |
//! | `push_retry_index` | `(u128 message, u64 run, &str device id)` → `u64` due | one entry per retry: a device's retry, found without a scan |
//!
//! The four registry tables and the four push-job tables came later within
//! format 2, without a version change: a file that lacks them (written
//! before, or never given a registration or a push job) reads as an empty
//! registry and no push jobs, and the first registry write (the first
//! `add_push_jobs`) creates them. A build from before them ignores them
//! (and does not know that a push job keeps its message from retention).
//!
//! A header (little-endian):
//!
//! ```text
//! offset  size  field
//!      0     1  header version (2)
//!      1     1  state: 0 Scheduled, 2 Published, 3 Failed, 4 Cancelled
//!      2     8  due, ms (Scheduled; else 0)
//!     10     8  token: 0, or (Cancelled only) the claim the cancel interrupted
//!     18    56  7 counters in `DeliveryCounts::to_array` order
//!     74     8  finished_at, ms (finished states; 0 on Scheduled)
//!     82     4  E = error length (0: no error)
//!     86     E  error text, UTF-8 (Failed's reason, or a note)
//! ```
//!
//! A device record (the device id is its key; a *string* is a LEB128
//! varint byte length and UTF-8, a *count* a varint):
//!
//! ```text
//! offset  size  field
//!      0     1  record version (1)
//!      1     1  os: Os::code (1 IOS, 2 ANDROID, 4 WP, 8 OSX)
//!      2     1  flags: bit 0 = has an expiration
//!      3     8  registered_at, ms
//!     11     8  expiration, ms (0 without one)
//!     19        registration_id, device_token, os_version (strings);
//!               channels (a count, strings strictly ascending);
//!               properties (a count, name and value strings, names
//!               strictly ascending)
//! ```
//!
//! A template record (the name is its key): record version (1), the
//! audience's `PushBroadcast` bits, flags (bit 0 = has a segment query),
//! then `message`, `title`, `subtitle`, `channel`, the segment query if
//! flagged (strings), and the headers (a count, name and value strings,
//! names strictly ascending).
//!
//! A push-job record (its `(message, run)` is its key):
//!
//! ```text
//! offset  size  field
//!      0     1  record version (1)
//!      1     1  flags: bit 0 = listed, bit 1 = has a cursor
//!      2     8  token of the current claim (0: never claimed)
//!     10     8  lease_until, ms (0: never claimed)
//!     18     8  handed: notifications handed out
//!     26        cursor (a string), if flagged
//! ```
//!
//! # Example
//!
//! ```
//! use herald::{DeliveryOptions, Engine, ManualClock, PublishOptions, PublishStatus};
//! use herald_core::Tick;
//! use herald_redb::RedbStore;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("herald-redb-doc-{}", std::process::id()));
//! let clock = ManualClock::new(Tick::from_millis(1_800_000_000_000));
//!
//! // Schedule a message 5 s ahead, then stop.
//! let engine = Engine::builder()
//!     .clock(clock.clone())
//!     .store(RedbStore::open(&dir)?)
//!     .build();
//! let delivery = DeliveryOptions {
//!     publish_at: chrono::DateTime::from_timestamp_millis(1_800_000_005_000),
//!     ..DeliveryOptions::default()
//! };
//! let status = engine
//!     .publish("news", "hello".into(), PublishOptions::default(), delivery)
//!     .await?;
//! engine.shutdown().await;
//!
//! // A new engine on the same directory still has it, and fires it.
//! let engine = Engine::builder()
//!     .clock(clock.clone())
//!     .store(RedbStore::open(&dir)?)
//!     .build();
//! let mut sub = engine.subscribe("news", None)?;
//! assert_eq!(engine.message_status(&status.message_id).await?.status, PublishStatus::Scheduled);
//! clock.advance(Duration::from_secs(5));
//! let run = sub.recv().await.expect("subscribed")?;
//! assert_eq!(run.message().get(), r#""hello""#);
//! engine.settle().await;
//! assert_eq!(engine.message_status(&status.message_id).await?.status, PublishStatus::Published);
//! engine.shutdown().await;
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod check;
mod error;
mod header;
mod migrate;
mod open;
mod push;
mod quarantine;
mod raw;
mod read;
mod registry;
mod store;
mod tables;
mod writer;

pub use check::RecordCheck;
pub use error::RedbStoreError;
pub use migrate::Migration;
#[doc(hidden)]
pub use open::migrate_partly;
pub use open::{DEFAULT_CACHE_BYTES, DEFAULT_RETENTION, FILE_NAME, RedbOptions};
#[doc(hidden)]
pub use raw::Rows;
pub use store::{RedbStore, WriterStats};
pub use tables::FORMAT_VERSION;
