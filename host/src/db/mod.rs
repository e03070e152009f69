//! The database: connection setup, schema migrations and typed queries.
//!
//! One SQLite file, `HOME/vidpipe.db`. Every connection is opened by [`open`], which sets the
//! pragmas that make it crash-safe (`journal_mode=WAL`, `synchronous=FULL`) and correct
//! (`foreign_keys=ON`), plus a `busy_timeout` so concurrent processes wait instead of failing.
//! Every write transaction is `BEGIN IMMEDIATE`: a deferred transaction that reads and then writes
//! fails at once with `SQLITE_BUSY` when another writer got there first, whatever the timeout.
//!
//! | module | owns |
//! |---|---|
//! | this one | [`DbError`], opening connections (pragmas), migrating, cached statements |
//! | `schema` | the migrations |
//! | `rows` | the row types and how each reads from a query |
//! | [`projects`] | projects: create, read, list, delete, the committed detail of one |
//! | `runs` | run records and pipeline runs, and the queries recovery uses |
//! | `journal` | the publish journal: moves a committed run still owes, damage |
//! | [`wait`] | write transactions that wait for a live lock holder, not for a stopped one |
//! | [`stage`] | the per-run session through which a plugin reads and writes its project |

mod journal;
pub mod projects;
pub mod reads;
mod rows;
mod runs;
mod schema;
pub mod stage;
pub mod wait;

pub use wait::write_transaction;

use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};

pub use journal::*;
pub use projects::*;
pub use reads::Read;
pub use rows::*;
pub use runs::*;

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
    /// A shard wrote outside its scene (see [`stage::StageSession::set_scope`]).
    #[error("{0}")]
    OutOfScope(String),
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
    // Plans never depend on bound values. Without this, SQLite marks a statement whose plan
    // looked at a parameter (an ORDER BY checked against a `col = ?` term is enough) to be
    // prepared again whenever that parameter is bound anew: every cached statement of that
    // kind was compiled again at every use (the journal lookup at every project lock, say).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
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

#[cfg(test)]
mod tests;
