//! The database: connection setup, schema migrations and typed queries.
//!
//! One SQLite file, `HOME/vidpipe.db`. Every connection is opened by [`open`], which sets the
//! pragmas that make it crash-safe (`journal_mode=WAL`, `synchronous=FULL`) and correct
//! (`foreign_keys=ON`), plus a `busy_timeout` so concurrent processes wait instead of failing.
//! Every write transaction is `BEGIN IMMEDIATE`: a deferred transaction that reads and then writes
//! fails at once with `SQLITE_BUSY` when another writer got there first, whatever the timeout.
//!
//! [`projects`] holds the host's own operations (projects, run records, the publish journal);
//! [`stage`] holds the per-run session through which a plugin reads and writes its project.

pub mod projects;
mod schema;
pub mod stage;
pub mod wait;

pub use wait::write_transaction;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

pub use projects::*;

/// How long SQLite itself retries a lock before a call sees `SQLITE_BUSY`: what readers wait
/// (in WAL mode they wait only on a recovery or a checkpoint) before they give up. Writers
/// wait in [`wait::write_transaction`] instead, which can tell a live lock holder from a
/// stopped one.
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Why a database operation failed. The variants map one-to-one onto the WIT `error-code` cases
/// that a plugin sees.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The id or name does not exist (in this project).
    #[error("{0}")]
    NotFound(String),
    /// An argument is malformed.
    #[error("{0}")]
    InvalidInput(String),
    /// The operation contradicts existing rows (a duplicate, a reference still in use).
    #[error("{0}")]
    Conflict(String),
    /// A per-run limit was reached.
    #[error("{0}")]
    LimitExceeded(String),
    /// Another process held a lock on the database for longer than this one waits.
    #[error(
        "the database stayed locked by {} for {:.1} s",
        holder.map_or_else(|| "another process".to_owned(), |pid| format!("process {pid}")),
        waited.as_secs_f64()
    )]
    Busy {
        /// How long this process waited.
        waited: Duration,
        /// The process holding the lock, if it could be told.
        holder: Option<u32>,
    },
    /// The process holding the database's write lock is stopped, and would never let go.
    #[error(
        "the database's write lock is held by process {pid} ({command}), which is stopped \
         (SIGSTOP or Ctrl-Z); resume it (`kill -CONT {pid}`) or end it, then try again"
    )]
    HeldByStopped {
        /// The stopped process.
        pid: u32,
        /// Its command line.
        command: String,
    },
    /// Any other SQLite failure (I/O error, corruption, full disk).
    #[error("database error: {}", describe_sqlite(.0))]
    Sqlite(rusqlite::Error),
    /// The run's deadline passed while the database was working for it.
    #[error("the stage's time limit passed during a database call")]
    Interrupted,
    /// A connection could not be given the settings vidpipe relies on.
    #[error("{0}")]
    Setup(String),
    /// The database was written by a newer vidpipe.
    #[error(
        "the database has schema version {found}, newer than this vidpipe understands ({known})"
    )]
    TooNew {
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// The `COMMIT` itself failed. SQLite may have written the whole transaction, commit
    /// frame included, before the error (a failed fsync), so the next reader may find it
    /// durable: whether it committed is known only by reading the database again. Every other
    /// error of [`wait::write_transaction`] means the transaction did not commit.
    #[error("{0}")]
    CommitFailed(Box<DbError>),
}

impl DbError {
    /// Whether the transaction that failed with this error may nevertheless have committed.
    pub fn may_have_committed(&self) -> bool {
        matches!(self, DbError::CommitFailed(_))
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => DbError::Busy {
                waited: BUSY_TIMEOUT,
                holder: None,
            },
            Some(ErrorCode::OperationInterrupted) => DbError::Interrupted,
            Some(ErrorCode::ConstraintViolation) => {
                DbError::Conflict(format!("refused by the database: {e}"))
            }
            _ => DbError::Sqlite(e),
        }
    }
}

/// A SQLite error with what failed spelled out: SQLite's own message ("disk I/O error") says
/// what kind of thing went wrong, its extended code says which operation.
pub fn describe_sqlite(e: &rusqlite::Error) -> String {
    let rusqlite::Error::SqliteFailure(failure, message) = e else {
        return e.to_string();
    };
    let text = message.clone().unwrap_or_else(|| failure.to_string());
    use rusqlite::ffi;
    let operation = match failure.extended_code {
        ffi::SQLITE_IOERR_READ => "a read of the database failed",
        ffi::SQLITE_IOERR_SHORT_READ => "a read of the database came back short",
        ffi::SQLITE_IOERR_WRITE => "a write to the database failed",
        ffi::SQLITE_IOERR_FSYNC => "an fsync of the database or its log failed",
        ffi::SQLITE_IOERR_DIR_FSYNC => "an fsync of the database's folder failed",
        ffi::SQLITE_IOERR_TRUNCATE => "truncating the database's log failed",
        ffi::SQLITE_IOERR_FSTAT => "reading the database file's size failed",
        ffi::SQLITE_IOERR_DELETE => "deleting a journal file failed",
        ffi::SQLITE_IOERR_SHMOPEN => "opening the shared-memory index (-shm) failed",
        ffi::SQLITE_IOERR_SHMSIZE => "growing the shared-memory index (-shm) failed",
        ffi::SQLITE_IOERR_SHMMAP => "mapping the shared-memory index (-shm) failed",
        ffi::SQLITE_IOERR_LOCK | ffi::SQLITE_IOERR_RDLOCK | ffi::SQLITE_IOERR_UNLOCK => {
            "taking or releasing a file lock failed"
        }
        ffi::SQLITE_IOERR_NOMEM => "the system ran out of memory",
        ffi::SQLITE_FULL => "the disk is full",
        ffi::SQLITE_CANTOPEN_ISDIR => "the database path is a directory",
        ffi::SQLITE_CANTOPEN_NOTEMPDIR => "there is no folder for temporary files",
        ffi::SQLITE_CANTOPEN => {
            "the file or its folder cannot be opened (missing, or no permission)"
        }
        ffi::SQLITE_READONLY_DIRECTORY => "the database's folder cannot be written",
        ffi::SQLITE_READONLY_RECOVERY => {
            "the log needs recovery, which a read-only connection cannot do"
        }
        ffi::SQLITE_READONLY | ffi::SQLITE_READONLY_DBMOVED => "the database cannot be written",
        ffi::SQLITE_CORRUPT | ffi::SQLITE_CORRUPT_INDEX | ffi::SQLITE_CORRUPT_SEQUENCE => {
            "the database file is damaged"
        }
        ffi::SQLITE_NOTADB => "the file is not a SQLite database",
        _ => return text,
    };
    format!("{text} ({operation})")
}

/// Result alias for this module.
pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// Statements each connection keeps prepared (SQLite parses a statement in tens of
/// microseconds; a stage run issues a dozen): more than any connection uses.
const STATEMENT_CACHE: usize = 128;

/// `conn.execute(sql, params)` with the statement parsed once per connection and then reused.
pub(crate) fn execute_cached<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `conn.query_row(sql, params, f)` with the statement parsed once per connection.
pub(crate) fn query_row_cached<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

/// Opens (creating if needed) the database at `path` and applies the connection pragmas.
///
/// Does not migrate: call [`migrate`] once per process (the CLI does it when it opens the home).
pub fn open(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    configure(&conn)?;
    Ok(conn)
}

/// Opens the database at `path` for reading only, for a home this process cannot write.
///
/// Nothing is created or changed. In WAL mode a reader needs the `-shm` index: when it is
/// missing and cannot be created (a read-only mount after a clean shutdown, when SQLite has
/// removed the `-wal` and `-shm` files), the file is opened as immutable, which is then exact:
/// everything committed is in the main file and nobody can be writing it.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(path, flags).and_then(|c| {
        c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
        Ok(c)
    }) {
        Ok(conn) => conn,
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly)
            ) =>
        {
            let wal = path.with_file_name(format!(
                "{}-wal",
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            ));
            if wal.exists() {
                return Err(e.into());
            }
            let uri = format!("file:{}?immutable=1", uri_path(path));
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)?
        }
        Err(e) => return Err(e.into()),
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let (found, known) = (schema_version(&conn)?, schema::MIGRATIONS.len() as i64);
    if found > known {
        return Err(DbError::TooNew { found, known });
    }
    if found < known {
        return Err(DbError::Setup(format!(
            "the database has schema version {found} and needs migrating to {known}, which \
             takes a vidpipe that can write it (`vidpipe init`)"
        )));
    }
    Ok(conn)
}

/// `path` percent-encoded for a `file:` URI.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs `f` with `conn` at `synchronous = NORMAL`, then puts it back to `FULL` (whatever `f`
/// returned). For the few records whose loss in a power cut leaves nothing inconsistent: a
/// transaction committed at `NORMAL` is in the write-ahead log, where a process crash does not
/// lose it, and the next `FULL` commit on the database makes it durable along with itself; only
/// a power cut before that can lose it. The start record of a stage run is such a record: a run
/// whose start is lost never committed anything (its staged files are swept the first time the
/// project's lock is taken after the machine restarts), and a run that commits or fails makes
/// its start durable with its end.
pub fn with_normal_sync<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T>,
) -> Result<T> {
    // Cached statements: this runs twice per stage run.
    conn.prepare_cached("PRAGMA synchronous = NORMAL")?
        .execute([])?;
    let value = f(conn);
    let restored = conn
        .prepare_cached("PRAGMA synchronous = FULL")
        .and_then(|mut st| st.execute([]));
    let value = value?;
    restored?;
    Ok(value)
}

/// Applies the pragmas every vidpipe connection must have.
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // journal_mode answers with the mode actually in force; an in-memory database says "memory".
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        return Err(DbError::Setup(format!(
            "the database refused WAL mode (journal_mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The schema is ours; never run functions named in it with elevated trust.
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    Ok(())
}

/// Brings the schema up to date. Idempotent; safe to run from several processes at once.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let known = schema::MIGRATIONS.len() as i64;
    // Up to date, the common case: no need to queue for the write lock behind other writers.
    if schema_version(conn)? == known {
        return Ok(());
    }
    write_transaction(conn, |tx| {
        let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if found > known {
            return Err(DbError::TooNew { found, known });
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        Ok(())
    })
}

/// The schema version a database is at.
pub fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Milliseconds since the Unix epoch, the unit of every timestamp column.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Key/value pairs stored as a JSON object (project settings, stage configuration).
pub type KeyValues = BTreeMap<String, String>;

pub(crate) fn kv_to_json(kv: &KeyValues) -> String {
    serde_json::to_string(kv).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn kv_from_json(text: &str) -> KeyValues {
    // Written by us as an object of strings; anything else (a hand-edited row) reads as empty
    // rather than failing every read of the project.
    serde_json::from_str(text).unwrap_or_default()
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The text stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// Parses the stored text.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let s = v.as_str()?;
                $name::parse(s).ok_or_else(|| rusqlite::types::FromSqlError::Other(
                    format!("unknown {} {s:?}", stringify!($name)).into()))
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }
    };
}

text_enum! {
    /// Where a project stands.
    ProjectStatus {
        /// Created; no stage has run.
        Draft = "draft",
        /// A stage is running on it.
        Running = "running",
        /// The last stage run succeeded.
        Ready = "ready",
        /// The last stage run failed.
        Failed = "failed",
    }
}

text_enum! {
    /// Where a stage run stands.
    RunStatus {
        /// Recorded, not started.
        Queued = "queued",
        /// Running now.
        Running = "running",
        /// Finished and committed.
        Succeeded = "succeeded",
        /// Finished with an error; nothing it wrote is kept.
        Failed = "failed",
        /// Its process died while it ran.
        Interrupted = "interrupted",
    }
}

text_enum! {
    /// Which end of a scene a keyframe shows.
    KeyframePosition {
        /// The first frame of the scene.
        Start = "start",
        /// The last frame of the scene.
        End = "end",
    }
}

text_enum! {
    /// The folder of an artifact, as stored in the database.
    Kind {
        /// `keyframes/`.
        Keyframe = "keyframe",
        /// `clips/`.
        Clip = "clip",
        /// `output/`.
        Output = "output",
    }
}

impl From<crate::artifacts::ArtifactKind> for Kind {
    fn from(k: crate::artifacts::ArtifactKind) -> Self {
        use crate::artifacts::ArtifactKind as A;
        match k {
            A::Keyframe => Kind::Keyframe,
            A::Clip => Kind::Clip,
            A::Output => Kind::Output,
        }
    }
}

impl From<Kind> for crate::artifacts::ArtifactKind {
    fn from(k: Kind) -> Self {
        use crate::artifacts::ArtifactKind as A;
        match k {
            Kind::Keyframe => A::Keyframe,
            Kind::Clip => A::Clip,
            Kind::Output => A::Output,
        }
    }
}

/// A project row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Project {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The script the video is made from.
    pub script: String,
    /// Project-wide settings.
    pub settings: KeyValues,
    /// Where it stands.
    pub status: ProjectStatus,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
}

/// A scene row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scene {
    /// Its id.
    pub id: String,
    /// Position within the project, from 0.
    pub index: u32,
    /// Short title.
    pub title: String,
    /// What happens.
    pub description: String,
    /// Length in milliseconds.
    pub duration_ms: u32,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A reference from a row to an artifact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArtifactRef {
    /// Its folder.
    pub kind: Kind,
    /// Its name.
    pub name: String,
}

/// A keyframe row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Keyframe {
    /// Its id.
    pub id: String,
    /// Its scene.
    pub scene_id: String,
    /// Start or end.
    pub position: KeyframePosition,
    /// What the image shows.
    pub prompt: String,
    /// The image file.
    pub image: ArtifactRef,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A video clip row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoClip {
    /// Its id.
    pub id: String,
    /// Its scene.
    pub scene_id: String,
    /// The video file.
    pub video: ArtifactRef,
    /// Length in milliseconds.
    pub duration_ms: u32,
    /// Frames per second.
    pub frame_rate: u32,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// An artifact row: a published file and what the store knows of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Artifact {
    /// Its folder.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// The run that published it, if that run's record still exists.
    pub run_id: Option<String>,
    /// Publication time.
    pub created_at: i64,
}

/// A stage run record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Run {
    /// Its id.
    pub id: String,
    /// The project it ran on.
    pub project_id: String,
    /// The stage's name.
    pub stage: String,
    /// SHA-256 of the plugin, lowercase hex.
    pub plugin_sha256: String,
    /// The configuration it was given.
    pub config: KeyValues,
    /// Where it stands.
    pub status: RunStatus,
    /// What it reported on success.
    pub summary: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Start time.
    pub started_at: i64,
    /// End time.
    pub finished_at: Option<i64>,
    /// The pipeline run it was part of, if any.
    pub pipeline_id: Option<String>,
    /// Its position in that pipeline's manifest.
    pub stage_index: Option<u32>,
    /// Its place in the order runs were recorded (increasing; unlike times, never goes back).
    pub seq: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(&dir.path().join("vidpipe.db")).expect("open");
        migrate(&mut conn).expect("migrate");
        (dir, conn)
    }

    #[test]
    fn every_connection_reads_back_wal_full_foreign_keys_and_busy_timeout() {
        let (dir, _first) = fresh();
        let conn = open(&dir.path().join("vidpipe.db")).expect("second connection");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("sync");
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .expect("fk");
        let busy: i64 = conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .expect("busy");
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL is 2");
        assert_eq!(fk, 1);
        assert_eq!(busy, BUSY_TIMEOUT.as_millis() as i64);
    }

    #[test]
    fn migrating_twice_changes_nothing_and_records_the_version() {
        let (_dir, mut conn) = fresh();
        let tables = |c: &Connection| -> Vec<String> {
            let mut st = c
                .prepare("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
                .expect("prepare");
            st.query_map([], |r| r.get(0))
                .expect("query")
                .map(|r| r.expect("row"))
                .collect()
        };
        let before = tables(&conn);
        migrate(&mut conn).expect("second migrate");
        assert_eq!(tables(&conn), before);
        assert_eq!(
            schema_version(&conn).expect("version"),
            schema::MIGRATIONS.len() as i64
        );
        for table in [
            "projects",
            "scenes",
            "keyframes",
            "video_clips",
            "pipeline_runs",
            "artifacts",
        ] {
            assert!(
                before
                    .iter()
                    .any(|s| s.contains(&format!("CREATE TABLE {table} "))),
                "{table}"
            );
        }
    }

    #[test]
    fn a_database_from_a_newer_vidpipe_is_refused() {
        let (_dir, mut conn) = fresh();
        conn.pragma_update(None, "user_version", 99).expect("set");
        let err = migrate(&mut conn).expect_err("too new");
        assert!(matches!(err, DbError::TooNew { found: 99, .. }), "{err}");
    }

    #[test]
    fn foreign_key_and_check_violations_are_refused() {
        let (_dir, mut conn) = fresh();
        let orphan = conn.execute(
            "INSERT INTO scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
             VALUES ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000009', 0, 't', 'd', 1, 0, 0)",
            [],
        );
        assert!(matches!(
            DbError::from(orphan.expect_err("fk")),
            DbError::Conflict(_)
        ));
        let project = create_project(&mut conn, "p", "", &KeyValues::new()).expect("project");
        let bad_status = conn.execute(
            "UPDATE projects SET status = 'exploded' WHERE id = ?1",
            [&project.id],
        );
        assert!(bad_status.expect_err("check").to_string().contains("CHECK"));
        let bad_duration = conn.execute(
            "INSERT INTO scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
             VALUES ('00000000-0000-0000-0000-000000000001', ?1, 0, 't', 'd', 0, 0, 0)",
            [&project.id],
        );
        assert!(
            bad_duration
                .expect_err("check")
                .to_string()
                .contains("CHECK")
        );
        let mut fk_check = conn.prepare("PRAGMA foreign_key_check").expect("prepare");
        assert!(!fk_check.exists([]).expect("fk check"), "no orphan rows");
    }

    #[test]
    fn deleting_a_project_cascades_to_its_rows() {
        let (_dir, mut conn) = fresh();
        let project = create_project(&mut conn, "p", "", &KeyValues::new()).expect("project");
        conn.execute(
            "INSERT INTO scenes (id, project_id, idx, title, description, duration_ms, created_at, updated_at)
             VALUES ('00000000-0000-0000-0000-000000000001', ?1, 0, 't', 'd', 1, 0, 0)",
            [&project.id],
        )
        .expect("scene");
        delete_project(&mut conn, &project.id).expect("delete");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM scenes", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 0);
    }
}
