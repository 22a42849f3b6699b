//! Test support: the database from `DATABASE_URL` (without it, one loud
//! `SKIPPED:` line per test binary, and every test passes at once), and a
//! fresh schema per test, dropped when the test's [`Scratch`] goes.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{SystemTime, UNIX_EPOCH};

use herald::{ManualClock, Store};
use herald_core::Tick;
use herald_postgres::{PgOptions, PgStore};

/// `DATABASE_URL`, or `None` after printing (once per test binary) why
/// the tests of this binary do not run.
pub fn database_url() -> Option<String> {
    static SKIP: Once = Once::new();
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            SKIP.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: herald-postgres tests ({}): DATABASE_URL is not set; \
                     set it to a PostgreSQL database, e.g. \
                     DATABASE_URL=postgres://postgres@127.0.0.1:5432/test",
                    std::env::args().next().unwrap_or_default()
                );
            });
            None
        }
    }
}

/// A plain connection to `url`, for what a test inspects or breaks by hand
/// (plans, row counts, other sessions' backends), and its connection task:
/// drop the client, then await the task to know the session has ended.
pub async fn connect(
    url: &str,
) -> (
    tokio_postgres::Client,
    tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("a plain connection to DATABASE_URL");
    (client, tokio::spawn(conn))
}

/// A schema name unique to this test run: process, time and a counter.
pub fn fresh_schema(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "herald_test_{name}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Options for tests: the given clock, no background retention pass.
pub fn options(clock: &ManualClock) -> PgOptions {
    let mut o = PgOptions::default();
    o.clock = Arc::new(clock.clone());
    o.purge_every = None;
    o
}

/// Drops `schema` (and everything in it), on a runtime of its own so it
/// works from `Drop` inside any runtime.
pub fn drop_schema(url: &str, schema: &str) {
    let (url, schema) = (url.to_owned(), schema.to_owned());
    let done = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect to drop the test schema");
            let conn = tokio::spawn(conn);
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await
                .expect("drop the test schema");
            drop(client);
            let _ = conn.await;
        });
    });
    done.join().expect("dropping the schema");
}

/// A `PgStore` on a fresh schema, dropped with it. Derefs to the store.
#[derive(Debug)]
pub struct Scratch {
    pub store: PgStore,
    pub url: String,
    pub schema: String,
    pub clock: ManualClock,
}

impl Scratch {
    /// A store on a fresh schema, its clock at 0 ms (the suites' times are
    /// small numbers); `None` without `DATABASE_URL`.
    pub async fn new(name: &str) -> Option<Self> {
        Self::at(name, ManualClock::new(Tick::from_millis(0))).await
    }

    /// Likewise with the given clock.
    pub async fn at(name: &str, clock: ManualClock) -> Option<Self> {
        let url = database_url()?;
        let schema = fresh_schema(name);
        let store = PgStore::connect(&url, &schema, options(&clock))
            .await
            .expect("connect");
        Some(Self {
            store,
            url,
            schema,
            clock,
        })
    }

    /// Another store on the same schema (another node, or a restart).
    pub async fn reconnect(&self) -> PgStore {
        PgStore::connect(&self.url, &self.schema, options(&self.clock))
            .await
            .expect("reconnect")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.store.close_now();
        drop_schema(&self.url, &self.schema);
    }
}

/// Closing a store without awaiting (its `close` does all its work before
/// it returns its future).
pub trait CloseNow {
    fn close_now(&self);
}

impl CloseNow for PgStore {
    fn close_now(&self) {
        drop(Store::close(self));
    }
}

herald_testkit::forward_store!(Scratch => store);
herald_testkit::forward_registry!(Scratch => store);
