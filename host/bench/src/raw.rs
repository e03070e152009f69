//! The raw floor: the same work done with rusqlite directly, no vidpipe layer in between.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use rusqlite::{TransactionBehavior, params};
use vidpipe_host::db;

/// How raw SQLite is set up for a floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// As vidpipe configured its connections before issue #12: random (v4) UUID keys and
    /// SQLite's default page cache.
    Plain,
    /// Time-ordered (v7) UUID keys, so new rows append to the right edge of each index, and a
    /// 64 MiB page cache.
    Tuned,
}

/// Inserts `rows` scenes into a fresh database with vidpipe's schema and pragmas, in one
/// `BEGIN IMMEDIATE` transaction, checking each row's index is free first (as a stage does);
/// returns rows per second, commit included.
pub fn rows(dir: &Path, rows: u32, setup: Setup) -> Result<f64> {
    let path = dir.join(format!("raw-{}.db", uuid::Uuid::new_v4()));
    let mut conn = db::open(&path)?;
    db::migrate(&mut conn)?;
    if setup == Setup::Tuned {
        conn.pragma_update(None, "cache_size", -65536)?;
    }
    let project = db::create_project(&mut conn, "raw", "", &db::KeyValues::new())?.id;
    let start = Instant::now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut taken =
            tx.prepare("SELECT EXISTS (SELECT 1 FROM scenes WHERE project_id = ?1 AND idx = ?2)")?;
        let mut insert = tx.prepare(
            "INSERT INTO scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        )?;
        for index in 0..rows {
            let exists: bool = taken.query_row(params![project, index], |r| r.get(0))?;
            anyhow::ensure!(!exists, "index {index} taken");
            let id = match setup {
                Setup::Plain => uuid::Uuid::new_v4(),
                Setup::Tuned => uuid::Uuid::now_v7(),
            };
            insert.execute(params![
                id.hyphenated().to_string(),
                project,
                index,
                format!("Scene {index}"),
                "",
                1000,
                db::now_ms()
            ])?;
        }
    }
    tx.commit()?;
    let seconds = start.elapsed().as_secs_f64();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(f64::from(rows) / seconds)
}

/// The floor a durable commit cannot beat on this disk: appending 64 bytes to a file and
/// `fdatasync`ing it. Sampled one operation at a time, so that a benchmark can alternate it
/// with what it measures and both see the disk in the same state.
pub(crate) struct FsyncFloor {
    file: fs::File,
    path: PathBuf,
}

impl FsyncFloor {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("fsync-floor.bin");
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(FsyncFloor { file, path })
    }

    /// The seconds of one append and `fdatasync`.
    pub(crate) fn sample(&mut self) -> Result<f64> {
        let start = Instant::now();
        self.file.write_all(&[7u8; 64])?;
        self.file.sync_data()?;
        Ok(start.elapsed().as_secs_f64())
    }
}

impl Drop for FsyncFloor {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// One-row durable commits with rusqlite directly: vidpipe's schema and pragmas (WAL,
/// `synchronous=FULL`), one scene per `BEGIN IMMEDIATE` transaction, its index checked first
/// as a stage does, with a time-ordered key. What SQLite itself needs to commit the row a
/// one-row stage writes, without the run record, staging or sandbox around it.
pub(crate) struct RawCommits {
    conn: rusqlite::Connection,
    path: PathBuf,
    project: String,
    next: u32,
}

impl RawCommits {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(format!("raw-commits-{}.db", uuid::Uuid::new_v4()));
        let mut conn = db::open(&path)?;
        db::migrate(&mut conn)?;
        let project = db::create_project(&mut conn, "raw", "", &db::KeyValues::new())?.id;
        Ok(RawCommits {
            conn,
            path,
            project,
            next: 0,
        })
    }

    /// The seconds of committing one more scene.
    pub(crate) fn sample(&mut self) -> Result<f64> {
        let index = self.next;
        self.next += 1;
        let start = Instant::now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let exists: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM scenes WHERE project_id = ?1 AND idx = ?2)",
                )?
                .query_row(params![self.project, index], |r| r.get(0))?;
            anyhow::ensure!(!exists, "index {index} taken");
            tx.prepare_cached(
                "INSERT INTO scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, '', 1000, ?5, ?5)",
            )?
            .execute(params![
                uuid::Uuid::now_v7().hyphenated().to_string(),
                self.project,
                index,
                format!("Scene {index}"),
                db::now_ms()
            ])?;
        }
        tx.commit()?;
        Ok(start.elapsed().as_secs_f64())
    }
}

impl Drop for RawCommits {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

pub(crate) fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}
