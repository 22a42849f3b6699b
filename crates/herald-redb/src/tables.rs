//! The tables of format v2 (see the crate docs and `docs/design.md`,
//! "Store format: herald-redb"), and the set of them a write transaction
//! works on.
//!
//! The registry tables (`devices`, `device_channels`, `device_expiry`,
//! `templates`) and the push-job tables (`push_jobs`, `push_job_leases`,
//! `push_retries`, `push_retry_index`) came later within format v2: a file
//! without them has no registrations, no templates and no push jobs. A
//! write transaction creates them the first time it writes to them
//! ([`Tables::registry`], [`Tables::push`]); a read transaction reads a
//! missing one as empty, and so does a write transaction that only looks
//! ([`Tables::push_if_there`]).

use redb::{ReadableTable, Table, TableDefinition, TableError, TableHandle, WriteTransaction};

/// The format version this build writes, kept in the `meta` table. Version
/// 1 is migrated at open; any other is refused.
pub const FORMAT_VERSION: u64 = 2;

/// `meta`: [`VERSION_KEY`] and [`LAST_TOKEN_KEY`].
pub(crate) const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
/// The store's format version ([`FORMAT_VERSION`]).
pub(crate) const VERSION_KEY: &str = "format_version";
/// Present (the old version) while a migration to [`FORMAT_VERSION`] is
/// under way: the version is already the new one, so an older build
/// refuses a half-migrated file instead of seeing only what is left of it.
pub(crate) const MIGRATING_KEY: &str = "migrating_from";
/// The last fencing token issued (tokens are unique across the store).
pub(crate) const LAST_TOKEN_KEY: &str = "last_token";

/// `headers`: id → the header (see [`crate::header`]): the small mutable
/// part of a message.
pub(crate) const HEADERS: TableDefinition<'static, u128, &'static [u8]> =
    TableDefinition::new("headers");
/// `envelopes`: id → the `herald::codec` envelope, written once at insert.
pub(crate) const ENVELOPES: TableDefinition<'static, u128, &'static [u8]> =
    TableDefinition::new("envelopes");
/// `claims`: id → `(due, lease_until, token)` of a claimed run: a
/// `Scheduled { due }` header with an entry here for the same due is
/// `Firing`.
pub(crate) const CLAIMS: TableDefinition<'static, u128, ClaimRow> = TableDefinition::new("claims");
/// `finals`: `(due, id)` → the final header of a message finished by a
/// completion at `due` (its header stays `Scheduled { due }`).
pub(crate) const FINALS: TableDefinition<'static, (u64, u128), &'static [u8]> =
    TableDefinition::new("finals");
/// `schedule`: id → due of every unfinished message (and of finished ones
/// `pending` has not yet met: see [`crate::writer`]'s `Forget`).
pub(crate) const SCHEDULE: TableDefinition<'static, u128, u64> = TableDefinition::new("schedule");
/// `finished`: `(finished_at, id)` → `()` of every final message (finished,
/// no push notification pending, no push job open), at its header's
/// `finished_at`: the order retention purges in.
pub(crate) const FINISHED: TableDefinition<'static, (u64, u128), ()> =
    TableDefinition::new("finished");
/// `idempotency`: an idempotency key → `(id, fingerprint, expires_at,
/// status)` (status 0: the first answer was `scheduled`, 1: `published`).
pub(crate) const KEYS: TableDefinition<'static, &'static str, KeyRow> =
    TableDefinition::new("idempotency");
/// `idempotency_expiry`: `(expires_at, key)` → `()` of every `idempotency`
/// row: the order expired keys are purged in.
pub(crate) const KEY_EXPIRY: TableDefinition<'static, (u64, &'static str), ()> =
    TableDefinition::new("idempotency_expiry");
/// `quarantine`: id → a damaged message moved aside (see
/// [`crate::quarantine`]).
pub(crate) const QUARANTINE: TableDefinition<'static, u128, &'static [u8]> =
    TableDefinition::new("quarantine");

/// `devices`: device id → its registration (see
/// [`crate::registry::device`]).
pub(crate) const DEVICES: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("devices");
/// `device_channels`: `(channel, device id)` → `()` for every channel of
/// every registration: a channel's devices are one range, in id order.
pub(crate) const DEVICE_CHANNELS: TableDefinition<'static, (&'static str, &'static str), ()> =
    TableDefinition::new("device_channels");
/// `device_expiry`: `(expiration ms, device id)` → `()` for every
/// registration that expires: the order `purge_expired` removes them in.
pub(crate) const DEVICE_EXPIRY: TableDefinition<'static, (u64, &'static str), ()> =
    TableDefinition::new("device_expiry");
/// `templates`: template name → the template (see
/// [`crate::registry::template`]).
pub(crate) const TEMPLATES: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("templates");

/// `push_jobs`: `(message id, run ms)` → the job record (see
/// [`crate::push::job`]): token, lease, cursor, `listed`, `handed`.
pub(crate) const PUSH_JOBS: TableDefinition<'static, JobRow, &'static [u8]> =
    TableDefinition::new("push_jobs");
/// `push_job_leases`: `(lease_until ms, message id, run ms)` → `()`, one
/// entry per job (a new job's lease is 0): the jobs a claim may take are
/// one range from the start, oldest lease first.
pub(crate) const PUSH_JOB_LEASES: TableDefinition<'static, (u64, u128, u64), ()> =
    TableDefinition::new("push_job_leases");
/// `push_retries`: `(message id, run ms, due ms, device id)` → attempts:
/// a job's retries are one range, in `(due, device)` order.
pub(crate) const PUSH_RETRIES: TableDefinition<'static, (u128, u64, u64, &'static str), u32> =
    TableDefinition::new("push_retries");
/// `push_retry_index`: `(message id, run ms, device id)` → due ms, one
/// entry per `push_retries` row: a device's retry is found (replaced,
/// resolved) without a scan.
pub(crate) const PUSH_RETRY_INDEX: TableDefinition<'static, (u128, u64, &'static str), u64> =
    TableDefinition::new("push_retry_index");

/// A `push_jobs` key: `(message id, run ms)`.
pub(crate) type JobRow = (u128, u64);

/// A `claims` value: `(due, lease_until, token)`.
pub(crate) type ClaimRow = (u64, u64, u64);

/// An `idempotency` value: `(id, fingerprint, expires_at, status)`.
pub(crate) type KeyRow = (u128, u128, u64, u8);

/// Every v2 message table, open in one write transaction, and the registry
/// tables on demand.
pub(crate) struct Tables<'t> {
    pub(crate) meta: Table<'t, &'static str, u64>,
    pub(crate) headers: Table<'t, u128, &'static [u8]>,
    pub(crate) envelopes: Table<'t, u128, &'static [u8]>,
    pub(crate) claims: Table<'t, u128, ClaimRow>,
    pub(crate) finals: Table<'t, (u64, u128), &'static [u8]>,
    pub(crate) schedule: Table<'t, u128, u64>,
    pub(crate) finished: Table<'t, (u64, u128), ()>,
    pub(crate) keys: Table<'t, &'static str, KeyRow>,
    pub(crate) key_expiry: Table<'t, (u64, &'static str), ()>,
    pub(crate) quarantine: Table<'t, u128, &'static [u8]>,
    /// Messages moved to `quarantine` in this transaction.
    pub(crate) quarantined: u64,
    /// The transaction, to open the registry tables in.
    txn: &'t WriteTransaction,
    /// The registry tables, once a request of this transaction needed them.
    registry: Option<RegistryTables<'t>>,
    /// The push-job tables, once a request of this transaction needed them.
    push: Option<PushTables<'t>>,
    /// Whether this transaction looked for the push-job tables already
    /// (see [`Tables::push_if_there`]).
    push_looked: bool,
}

/// The push-job tables, open in one write transaction.
pub(crate) struct PushTables<'t> {
    pub(crate) jobs: Table<'t, JobRow, &'static [u8]>,
    pub(crate) leases: Table<'t, (u64, u128, u64), ()>,
    pub(crate) retries: Table<'t, (u128, u64, u64, &'static str), u32>,
    pub(crate) retry_index: Table<'t, (u128, u64, &'static str), u64>,
}

impl<'t> PushTables<'t> {
    /// Opens (creating them if missing) the push-job tables in `txn`.
    fn open(txn: &'t WriteTransaction) -> Result<Self, TableError> {
        Ok(Self {
            jobs: txn.open_table(PUSH_JOBS)?,
            leases: txn.open_table(PUSH_JOB_LEASES)?,
            retries: txn.open_table(PUSH_RETRIES)?,
            retry_index: txn.open_table(PUSH_RETRY_INDEX)?,
        })
    }

    /// Whether message `id` has a push job: one range seek.
    pub(crate) fn has_job(&self, id: u128) -> Result<bool, redb::StorageError> {
        Ok(self.jobs.range((id, 0)..=(id, u64::MAX))?.next().is_some())
    }
}

/// The registry tables, open in one write transaction.
pub(crate) struct RegistryTables<'t> {
    pub(crate) devices: Table<'t, &'static str, &'static [u8]>,
    pub(crate) channels: Table<'t, (&'static str, &'static str), ()>,
    pub(crate) expiry: Table<'t, (u64, &'static str), ()>,
    pub(crate) templates: Table<'t, &'static str, &'static [u8]>,
}

impl<'t> RegistryTables<'t> {
    /// Opens (creating them if missing) the registry tables in `txn`.
    fn open(txn: &'t WriteTransaction) -> Result<Self, TableError> {
        Ok(Self {
            devices: txn.open_table(DEVICES)?,
            channels: txn.open_table(DEVICE_CHANNELS)?,
            expiry: txn.open_table(DEVICE_EXPIRY)?,
            templates: txn.open_table(TEMPLATES)?,
        })
    }
}

impl<'t> Tables<'t> {
    /// Opens (creating them if missing) every v2 message table in `txn`.
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self, TableError> {
        Ok(Self {
            meta: txn.open_table(META)?,
            headers: txn.open_table(HEADERS)?,
            envelopes: txn.open_table(ENVELOPES)?,
            claims: txn.open_table(CLAIMS)?,
            finals: txn.open_table(FINALS)?,
            schedule: txn.open_table(SCHEDULE)?,
            finished: txn.open_table(FINISHED)?,
            keys: txn.open_table(KEYS)?,
            key_expiry: txn.open_table(KEY_EXPIRY)?,
            quarantine: txn.open_table(QUARANTINE)?,
            quarantined: 0,
            txn,
            registry: None,
            push: None,
            push_looked: false,
        })
    }

    /// The registry tables, opened (and created, in a file that lacks
    /// them) the first time a transaction asks: a transaction of messages
    /// only does not touch them.
    pub(crate) fn registry(&mut self) -> Result<&mut RegistryTables<'t>, TableError> {
        let tables = match self.registry.take() {
            Some(tables) => tables,
            None => RegistryTables::open(self.txn)?,
        };
        Ok(self.registry.insert(tables))
    }

    /// The push-job tables, opened (and created, in a file that lacks
    /// them) the first time a transaction asks: a transaction of messages
    /// only does not create them.
    pub(crate) fn push(&mut self) -> Result<&mut PushTables<'t>, TableError> {
        let tables = match self.push.take() {
            Some(tables) => tables,
            None => PushTables::open(self.txn)?,
        };
        Ok(self.push.insert(tables))
    }

    /// The push-job tables if the file has them (else `None`, creating
    /// nothing): for the writes that only need to know whether a message
    /// has a push job. Looks at the file's table list once per
    /// transaction.
    pub(crate) fn push_if_there(&mut self) -> Result<Option<&mut PushTables<'t>>, redb::Error> {
        if self.push.is_none() && !self.push_looked {
            self.push_looked = true;
            let there = self
                .txn
                .list_tables()?
                .any(|t| t.name() == PUSH_JOBS.name());
            if there {
                self.push = Some(PushTables::open(self.txn)?);
            }
        }
        Ok(self.push.as_mut())
    }

    /// Whether message `id` has a push job open (no push-job tables: no).
    pub(crate) fn has_push_job(&mut self, id: u128) -> Result<bool, redb::Error> {
        match self.push_if_there()? {
            Some(p) => Ok(p.has_job(id)?),
            None => Ok(false),
        }
    }
}
