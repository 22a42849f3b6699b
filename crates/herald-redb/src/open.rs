//! Opening a data directory: the file, its format version (a v1 file is
//! migrated first), the last fencing token, and the writer thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use herald::codec::PlanCache;
use herald::{Clock, SystemClock};

use redb::{Database, ReadableTable, ReadableTableMetadata};

use crate::error::RedbStoreError;
use crate::migrate::{self, Migration};
use crate::store::{Inner, RedbStore};
use crate::tables::{FORMAT_VERSION, LAST_TOKEN_KEY, META, MIGRATING_KEY, Tables, VERSION_KEY};
use crate::writer;

/// The file inside the data directory.
pub const FILE_NAME: &str = "herald.redb";

/// redb's page cache by default: 1 GiB (redb's own default).
///
/// The cache holds pages of the file read or written recently, up to this
/// many bytes whatever the number of messages; it is the store's only
/// memory that grows with use, and it stops growing here. A scheduled
/// message costs the engine about 60 bytes more (see `Engine::scheduled_bytes`).
pub const DEFAULT_CACHE_BYTES: usize = 1 << 30;

/// How long a final message is kept by default: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// How [`RedbStore::open_with`] opens a store.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use herald::ManualClock;
/// use herald_core::Tick;
/// use herald_redb::{RedbOptions, RedbStore};
///
/// # fn main() -> Result<(), herald_redb::RedbStoreError> {
/// let dir = std::env::temp_dir().join(format!("herald-redb-options-{}", std::process::id()));
/// let clock = ManualClock::new(Tick::from_millis(1_800_000_000_000));
/// let store = RedbStore::open_with(
///     &dir,
///     RedbOptions {
///         retention: Some(Duration::from_secs(3600)),
///         clock: Arc::new(clock),
///         ..RedbOptions::default()
///     },
/// )?;
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RedbOptions {
    /// How long a final message (finished, no push notification pending,
    /// no push job open) is kept before it is purged (see [`RedbStore`]'s
    /// "Retention"); `None` keeps everything. Default
    /// [`DEFAULT_RETENTION`] (7 days).
    pub retention: Option<Duration>,
    /// The store's clock: when messages finish, and so when they are
    /// purged. Give the engine's clock. Default [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// The most memory redb's page cache holds, bytes (pages read and
    /// written recently; see [`DEFAULT_CACHE_BYTES`]). Fixed: it does not
    /// grow with the number of messages. A smaller cache costs reads from
    /// the file (the kernel's page cache may still have them). Default
    /// [`DEFAULT_CACHE_BYTES`] (1 GiB).
    pub cache_bytes: usize,
    /// Messages per transaction of a migration from format version 1
    /// (for tests). Default 10,000.
    #[doc(hidden)]
    pub migration_chunk: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            retention: Some(DEFAULT_RETENTION),
            clock: Arc::new(SystemClock),
            cache_bytes: DEFAULT_CACHE_BYTES,
            migration_chunk: migrate::CHUNK,
        }
    }
}

impl RedbStore {
    /// Opens (or creates) the store in the data directory `dir`: the
    /// directory and its parents are created if missing, the database is
    /// the file [`FILE_NAME`] inside it. A file of format version 1 is
    /// migrated to version 2 in place first (in chunks of 10,000 messages,
    /// each its own transaction, so an interrupted migration resumes at the
    /// next open; see [`migration`](Self::migration)). After a crash, redb
    /// repairs the file while opening it (this reads the whole file).
    ///
    /// # Errors
    ///
    /// [`RedbStoreError::Dir`] if the directory cannot be created;
    /// [`RedbStoreError::InUse`] if the file is open already (another
    /// process, or another store in this one);
    /// [`RedbStoreError::Redb`] if the file cannot be opened (it is not a
    /// redb file) or the migration fails; [`RedbStoreError::Version`] if it holds a store format this
    /// build neither reads nor migrates.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, RedbStoreError> {
        Self::open_with(dir, RedbOptions::default())
    }

    /// [`open`](Self::open) with a retention and a clock (see
    /// [`RedbOptions`]).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with(dir: impl AsRef<Path>, options: RedbOptions) -> Result<Self, RedbStoreError> {
        let (path, db) = database(dir.as_ref(), options.cache_bytes)?;
        let now = options.clock.now().as_millis();
        let opened = prepare(&db, &path, options.migration_chunk, now)?;
        if opened.quarantined > 0 {
            tracing::warn!(
                path = %path.display(),
                messages = opened.quarantined,
                "herald-redb: damaged messages are set aside in quarantine"
            );
        }
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(writer::Shared::new(path, db.clone(), opened.quarantined));
        let settings = writer::Settings {
            clock: options.clock,
            retention_ms: options
                .retention
                .map(|r| u64::try_from(r.as_millis()).unwrap_or(u64::MAX)),
            cache_bytes: options.cache_bytes,
        };
        let writer_shared = shared.clone();
        let last_token = opened.last_token;
        let writer = std::thread::Builder::new()
            .name("herald-redb-writer".into())
            .spawn(move || writer::run(db, rx, writer_shared, last_token, settings))
            .map_err(RedbStoreError::Thread)?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                tx,
                closed: AtomicBool::new(false),
                writer: Mutex::new(Some(writer)),
                plans: PlanCache::default(),
                migration: opened.migration,
            }),
        })
    }
}

/// Runs at most `chunks` chunks of `chunk` messages of the v1 migration
/// of the store in `dir` (which must be a v1 or v2 file), with finished
/// messages finishing at `now_ms`, then closes it: a migration interrupted
/// on purpose (for tests).
///
/// # Errors
///
/// As [`RedbStore::open`].
#[doc(hidden)]
pub fn migrate_partly(
    dir: impl AsRef<Path>,
    chunk: usize,
    chunks: usize,
    now_ms: u64,
) -> Result<Migration, RedbStoreError> {
    let (path, db) = database(dir.as_ref(), DEFAULT_CACHE_BYTES)?;
    match version(&db)? {
        Some(1) | Some(MIGRATING) => migrate::run(&db, chunk, Some(chunks), now_ms),
        Some(FORMAT_VERSION) => Ok(Migration::default()),
        found => Err(RedbStoreError::Version {
            path,
            found: found.unwrap_or(0),
        }),
    }
}

/// Opens (or creates) the database file at `path` with a page cache of
/// `cache_bytes`.
pub(crate) fn create(path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(cache_bytes).create(path)
}

fn database(dir: &Path, cache_bytes: usize) -> Result<(PathBuf, Database), RedbStoreError> {
    std::fs::create_dir_all(dir).map_err(|source| RedbStoreError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    let path = dir.join(FILE_NAME);
    let db = match create(&path, cache_bytes) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(RedbStoreError::InUse { path });
        }
        Err(e) => return Err(e.into()),
    };
    Ok((path, db))
}

/// What [`version`] reports for a file being migrated from version 1.
const MIGRATING: u64 = u64::MAX;

/// The format version in `meta` (`None`: a new file; [`MIGRATING`]: a
/// migration from version 1 under way).
fn version(db: &Database) -> Result<Option<u64>, RedbStoreError> {
    let txn = db.begin_write()?;
    let (found, migrating) = {
        let meta = txn.open_table(META)?;
        let found = meta.get(VERSION_KEY)?.map(|g| g.value());
        let migrating = meta.get(MIGRATING_KEY)?.map(|g| g.value());
        (found, migrating)
    };
    txn.abort()?;
    Ok(match (found, migrating) {
        (Some(FORMAT_VERSION), Some(1)) => Some(MIGRATING),
        _ => found,
    })
}

/// What [`prepare`] found.
struct Opened {
    last_token: u64,
    migration: Option<Migration>,
    /// Messages in `quarantine`.
    quarantined: u64,
}

/// Brings the file to format v2 (a new file: the tables; a v1 file: the
/// migration, whose finished messages finish `now`) and reads the last
/// fencing token issued and the size of the quarantine.
fn prepare(db: &Database, path: &Path, chunk: usize, now: u64) -> Result<Opened, RedbStoreError> {
    let migration = match version(db)? {
        Some(FORMAT_VERSION) | None => None,
        Some(1) | Some(MIGRATING) => Some(migrate::run(db, chunk, None, now)?),
        Some(found) => {
            return Err(RedbStoreError::Version {
                path: path.to_owned(),
                found,
            });
        }
    };
    let txn = db.begin_write()?;
    let (last_token, quarantined) = {
        // Creates what a new file lacks; a v2 file has it all.
        let mut t = Tables::open(&txn)?;
        if t.meta.get(VERSION_KEY)?.is_none() {
            t.meta.insert(VERSION_KEY, FORMAT_VERSION)?;
        }
        (
            t.meta.get(LAST_TOKEN_KEY)?.map_or(0, |g| g.value()),
            t.quarantine.len()?,
        )
    };
    txn.commit()?;
    Ok(Opened {
        last_token,
        migration,
        quarantined,
    })
}
