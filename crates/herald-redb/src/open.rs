//! Opening a data directory: the file, its format version (a v1 file is
//! migrated first), the last fencing token, and the writer thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock, mpsc};

use herald::codec::PlanCache;
use redb::{Database, ReadableTable};

use crate::error::RedbStoreError;
use crate::migrate::{self, Migration};
use crate::store::{Inner, RedbStore};
use crate::tables::{FORMAT_VERSION, LAST_TOKEN_KEY, META, MIGRATING_KEY, Tables, VERSION_KEY};
use crate::writer;

/// The file inside the data directory.
pub const FILE_NAME: &str = "herald.redb";

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
        Self::open_with_migration_chunk(dir, migrate::CHUNK)
    }

    /// [`open`](Self::open), migrating `chunk` messages per transaction
    /// (for tests).
    #[doc(hidden)]
    pub fn open_with_migration_chunk(
        dir: impl AsRef<Path>,
        chunk: usize,
    ) -> Result<Self, RedbStoreError> {
        let (path, db) = database(dir.as_ref())?;
        let (last_token, migration) = prepare(&db, &path, chunk)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let writer_db = db.clone();
        let counters = Arc::new(writer::Counters::default());
        let writer_counters = counters.clone();
        let writer = std::thread::Builder::new()
            .name("herald-redb-writer".into())
            .spawn(move || writer::run(writer_db, rx, writer_counters, last_token))
            .map_err(RedbStoreError::Thread)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                db: RwLock::new(Some(db)),
                tx,
                closed: AtomicBool::new(false),
                writer: Mutex::new(Some(writer)),
                counters,
                plans: PlanCache::default(),
                migration,
            }),
        })
    }
}

/// Runs at most `chunks` chunks of `chunk` messages of the v1 migration
/// of the store in `dir` (which must be a v1 or v2 file), then closes it:
/// a migration interrupted on purpose (for tests).
///
/// # Errors
///
/// As [`RedbStore::open`].
#[doc(hidden)]
pub fn migrate_partly(
    dir: impl AsRef<Path>,
    chunk: usize,
    chunks: usize,
) -> Result<Migration, RedbStoreError> {
    let (path, db) = database(dir.as_ref())?;
    match version(&db)? {
        Some(1) | Some(MIGRATING) => migrate::run(&db, chunk, Some(chunks)),
        Some(FORMAT_VERSION) => Ok(Migration::default()),
        found => Err(RedbStoreError::Version {
            path,
            found: found.unwrap_or(0),
        }),
    }
}

fn database(dir: &Path) -> Result<(PathBuf, Database), RedbStoreError> {
    std::fs::create_dir_all(dir).map_err(|source| RedbStoreError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    let path = dir.join(FILE_NAME);
    let db = match Database::create(&path) {
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

/// Brings the file to format v2 (a new file: the tables; a v1 file: the
/// migration) and reads the last fencing token issued.
fn prepare(
    db: &Database,
    path: &Path,
    chunk: usize,
) -> Result<(u64, Option<Migration>), RedbStoreError> {
    let migration = match version(db)? {
        Some(FORMAT_VERSION) | None => None,
        Some(1) | Some(MIGRATING) => Some(migrate::run(db, chunk, None)?),
        Some(found) => {
            return Err(RedbStoreError::Version {
                path: path.to_owned(),
                found,
            });
        }
    };
    let txn = db.begin_write()?;
    let last_token = {
        // Creates what a new file lacks; a v2 file has it all.
        let mut t = Tables::open(&txn)?;
        if t.meta.get(VERSION_KEY)?.is_none() {
            t.meta.insert(VERSION_KEY, FORMAT_VERSION)?;
        }
        t.meta.get(LAST_TOKEN_KEY)?.map_or(0, |g| g.value())
    };
    txn.commit()?;
    Ok((last_token, migration))
}
