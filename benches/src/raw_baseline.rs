//! Raw redb as the ceiling for durable publishes: the rows the store's
//! writer wrote, inserted again by one thread straight into redb, in the
//! same group sizes, with nothing else (no encoding, no queues, no
//! callers, no answers).
//!
//! [`interleaved`] pairs them in time: the publishes in K segments, each
//! followed at once by raw redb writing that segment's rows at that
//! segment's group size, both files growing alike; the figure is the
//! median of the K paired ratios. On a VM whose fsync and CPU vary by 2x
//! from one second to the next, a store run and a baseline run seconds
//! apart measure the neighbours as much as the store (the earlier
//! whole-run comparison swung 0.65-0.88 with one binary); pairs a fraction
//! of a second apart do not.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use herald::Engine;
use herald_redb::RedbStore;
use herald_redb::Rows;
use redb::TableDefinition;

use crate::durable::{Plan, publish_range};
use crate::{DEFAULT_SEED, SplitMix64};

/// One message's rows: (table name, value bytes).
type MessageRows = Vec<(&'static str, Vec<u8>)>;

/// In which order the baseline inserts each commit's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawOrder {
    /// By id: the order the store's writer gets them in (one engine's ids
    /// increase in the order they are made).
    Id,
    /// Shuffled within each commit: the order the writer got them in
    /// while ids were random within their millisecond (redb then splits
    /// leaves evenly and strands half-full pages, where keys above every
    /// other start a new leaf).
    Shuffled,
}

/// The tables a scheduled publish writes, and so the baseline.
const BYTES_TABLES: [&str; 2] = ["headers", "envelopes"];
const SCHEDULE: TableDefinition<'static, u128, u64> = TableDefinition::new("schedule");

/// Every message's rows from `tables` (`RedbStore::raw_tables` or
/// `raw_message_rows_after`), by id.
fn message_rows(tables: BTreeMap<&'static str, Rows>) -> Result<Vec<(u128, MessageRows)>, String> {
    let mut by_id: BTreeMap<u128, MessageRows> = BTreeMap::new();
    for (name, table) in tables {
        if table.is_empty() || name == "meta" {
            continue;
        }
        if !BYTES_TABLES.contains(&name) && name != "schedule" {
            return Err(format!(
                "raw: the publishes wrote table {name:?}, which this baseline does not write"
            ));
        }
        for (k, v) in table {
            let key: [u8; 16] = k
                .as_slice()
                .try_into()
                .map_err(|_| format!("raw: {name}: a key of {} bytes", k.len()))?;
            by_id
                .entry(u128::from_be_bytes(key))
                .or_default()
                .push((name, v));
        }
    }
    Ok(by_id.into_iter().collect())
}

/// What one [`insert_groups`] call took.
#[derive(Clone, Copy, Debug, Default)]
struct Inserted {
    elapsed: Duration,
    committing: Duration,
    commits: usize,
    rows: usize,
}

/// Inserts `messages` into `db`, `per_commit` messages per durable commit,
/// each commit's messages in `rows_order` (`rng`: the shuffle's).
fn insert_groups(
    db: &redb::Database,
    messages: &[(u128, MessageRows)],
    per_commit: usize,
    rows_order: RawOrder,
    rng: &mut SplitMix64,
) -> Result<Inserted, String> {
    let per_commit = per_commit.max(1);
    let mut out = Inserted::default();
    let mut order: Vec<usize> = Vec::with_capacity(per_commit);
    let start = Instant::now();
    for group in messages.chunks(per_commit) {
        order.clear();
        order.extend(0..group.len());
        if rows_order == RawOrder::Shuffled {
            // Fisher-Yates (a few ns per message).
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut headers = txn
                .open_table(TableDefinition::<u128, &[u8]>::new("headers"))
                .map_err(|e| e.to_string())?;
            let mut envelopes = txn
                .open_table(TableDefinition::<u128, &[u8]>::new("envelopes"))
                .map_err(|e| e.to_string())?;
            let mut schedule = txn.open_table(SCHEDULE).map_err(|e| e.to_string())?;
            for (id, rows) in order.iter().map(|&i| &group[i]) {
                for (name, value) in rows {
                    match *name {
                        "headers" => headers.insert(*id, value.as_slice()).map(|_| ()),
                        "envelopes" => envelopes.insert(*id, value.as_slice()).map(|_| ()),
                        _ => {
                            let v: [u8; 8] = value
                                .as_slice()
                                .try_into()
                                .map_err(|_| "raw: schedule value not 8 bytes".to_owned())?;
                            schedule.insert(*id, u64::from_le_bytes(v)).map(|_| ())
                        }
                    }
                    .map_err(|e| e.to_string())?;
                    out.rows += 1;
                }
            }
        }
        let commit = Instant::now();
        txn.commit().map_err(|e| e.to_string())?;
        out.committing += commit.elapsed();
        out.commits += 1;
    }
    out.elapsed = start.elapsed();
    Ok(out)
}

/// A fresh redb file `raw.redb` in `scratch` (created if missing).
fn fresh_file(scratch: &Path) -> Result<redb::Database, String> {
    std::fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
    let path = scratch.join("raw.redb");
    let _ = std::fs::remove_file(&path);
    redb::Database::create(&path).map_err(|e| format!("raw: create: {e}"))
}

/// One segment of [`interleaved`]: the store's publishes, then raw redb
/// writing the same rows.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    /// The store's durable publishes per second over the segment.
    pub herald_rate: f64,
    /// Publishes per commit of the store's writer in the segment (the raw
    /// group size, rounded).
    pub per_commit: f64,
    /// Raw redb's messages per second, same rows, same group size.
    pub raw_rate: f64,
}

impl Segment {
    /// `herald_rate / raw_rate`.
    pub fn ratio(&self) -> f64 {
        self.herald_rate / self.raw_rate
    }
}

/// What [`interleaved`] measured.
#[derive(Clone, Debug, Default)]
pub struct Interleaved {
    /// Each segment, in order.
    pub segments: Vec<Segment>,
    /// The whole: all messages over the summed publish time.
    pub herald_rate: f64,
    /// The whole: all messages over the summed raw time.
    pub raw_rate: f64,
    /// Raw redb per commit, over every segment: opening the tables and
    /// inserting the rows, µs.
    pub raw_inserting_us: f64,
    /// Raw redb per commit, over every segment: the durable commit, µs.
    pub raw_committing_us: f64,
}

impl Interleaved {
    /// The segments' ratios, smallest first.
    pub fn sorted_ratios(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self.segments.iter().map(Segment::ratio).collect();
        r.sort_by(f64::total_cmp);
        r
    }

    /// The median of the segments' ratios (the goal's figure).
    pub fn median_ratio(&self) -> f64 {
        let r = self.sorted_ratios();
        match r.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => r[n / 2],
            n => (r[n / 2 - 1] + r[n / 2]) / 2.0,
        }
    }
}

/// The store against raw redb, paired in time: `plan`'s messages
/// published into a fresh `RedbStore` in `dir` in `segments` equal
/// segments (each by `plan.publishers` tasks, timed first publish to last
/// answer); after each, its rows (read back, ids above the last segment's)
/// inserted by one thread into a raw redb file in `dir/raw-interleaved` at
/// that segment's group size (timed). Both files grow alike. Prints the
/// segments' ratios in order and the summary.
///
/// # Errors
///
/// A publish fails or is not `scheduled`; a segment's rows are not its
/// messages; a redb error.
pub async fn interleaved(
    dir: &Path,
    plan: &Plan,
    segments: usize,
    cache_bytes: usize,
    rows_order: RawOrder,
) -> Result<Interleaved, String> {
    let options = herald_redb::RedbOptions {
        cache_bytes,
        ..herald_redb::RedbOptions::default()
    };
    let store =
        RedbStore::open_with(dir, options).map_err(|e| format!("interleaved: open: {e}"))?;
    let engine = Engine::builder().store(store.clone()).build();
    engine.settle().await;
    let scratch = dir.join("raw-interleaved");
    let db = fresh_file(&scratch)?;
    let segments = segments.clamp(1, plan.n.max(1));
    let mut out = Interleaved::default();
    let mut last_id = None;
    let mut rng = SplitMix64::new(DEFAULT_SEED);
    let (mut herald_time, mut raw) = (Duration::ZERO, Inserted::default());
    for k in 0..segments {
        let range: Range<usize> = plan.n * k / segments..plan.n * (k + 1) / segments;
        let messages = range.len();
        let ws0 = store.writer_stats();
        let start = Instant::now();
        publish_range(&engine, &plan.due, range, plan.publishers).await?;
        let elapsed = start.elapsed();
        let ws = store.writer_stats();
        let per_commit = ws.requests.saturating_sub(ws0.requests) as f64
            / ws.transactions.saturating_sub(ws0.transactions).max(1) as f64;
        let tables = match last_id {
            // The whole file once: it must hold no table the baseline
            // does not write.
            None => store.raw_tables(),
            Some(id) => store.raw_message_rows_after(id),
        }
        .map_err(|e| format!("interleaved: read: {e}"))?;
        let rows = message_rows(tables)?;
        if rows.len() != messages {
            return Err(format!(
                "interleaved: segment {k}: {} new messages in the file, {messages} published",
                rows.len()
            ));
        }
        last_id = rows.last().map(|(id, _)| *id);
        let done = insert_groups(
            &db,
            &rows,
            per_commit.round() as usize,
            rows_order,
            &mut rng,
        )?;
        let segment = Segment {
            herald_rate: messages as f64 / elapsed.as_secs_f64(),
            per_commit,
            raw_rate: messages as f64 / done.elapsed.as_secs_f64(),
        };
        herald_time += elapsed;
        raw.elapsed += done.elapsed;
        raw.committing += done.committing;
        raw.commits += done.commits;
        out.segments.push(segment);
    }
    engine.shutdown().await;
    drop(engine);
    drop(store);
    drop(db);
    let _ = std::fs::remove_dir_all(&scratch);
    out.herald_rate = plan.n as f64 / herald_time.as_secs_f64();
    out.raw_rate = plan.n as f64 / raw.elapsed.as_secs_f64();
    let commits = raw.commits.max(1) as f64;
    out.raw_committing_us = raw.committing.as_secs_f64() * 1e6 / commits;
    out.raw_inserting_us = raw.elapsed.saturating_sub(raw.committing).as_secs_f64() * 1e6 / commits;
    let per_commit =
        out.segments.iter().map(|s| s.per_commit).sum::<f64>() / out.segments.len().max(1) as f64;
    let list: Vec<String> = out
        .segments
        .iter()
        .map(|s| format!("{:.2}", s.ratio()))
        .collect();
    println!(
        "segments (herald / raw redb, in order; {per_commit:.1} publishes per commit on \
         average{}): {}",
        match rows_order {
            RawOrder::Id => "",
            RawOrder::Shuffled => "; raw redb inserts each commit's in random order",
        },
        list.join(" ")
    );
    let ratios = out.sorted_ratios();
    println!(
        "## herald / raw redb, interleaved ({segments} segments of ~{} messages, each followed by \
         raw redb writing its rows): median {:.2} (range {:.2}-{:.2}); whole: {:.0} / {:.0} = {:.2}",
        plan.n / segments,
        out.median_ratio(),
        ratios.first().copied().unwrap_or(f64::NAN),
        ratios.last().copied().unwrap_or(f64::NAN),
        out.herald_rate,
        out.raw_rate,
        out.herald_rate / out.raw_rate
    );
    Ok(out)
}
