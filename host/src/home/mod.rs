//! A vidpipe home: the folder holding `vidpipe.db` and `projects/<uuid>/…`.
//!
//! ```text
//! HOME/
//!   vidpipe.db (+ -wal, -shm)     the database; outside every plugin-reachable folder
//!   projects/<project uuid>/
//!     keyframes/  clips/  output/ artifacts, reached only through cap-std Dirs
//! ```
//!
//! ```text
//!   locks/<project uuid>.lock     one advisory lock per project: held by whoever runs stages on it
//! ```
//!
//! Opening a home migrates the schema and recovers from crashes: for every project with a run
//! still recorded as `running` (or file moves still journaled) whose lock nobody holds — so the
//! process that ran it is gone — it finishes the journaled file moves of committed runs, marks
//! the unfinished runs `interrupted`, and removes their staged files. The operating system
//! releases a dead process's lock, so "lock free" is exactly "nobody is running this project".
//!
//! | module | owns |
//! |---|---|
//! | this one | [`Home`]: opening (and creating) a home, its connection, its artifact root, new projects |
//! | `errors` | [`HomeError`] and the folder checks behind it |
//! | `lock` | [`ProjectLock`], the marker files beside it, the boot id |
//! | `recovery` | crash roll-forward: journaled moves, interrupted runs, staged files swept |

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::artifacts::{ArtifactRoot, ProjectStore};
use crate::db::stage::Recycled;
use crate::db::{self, DbError};

mod errors;
mod lock;
mod recovery;

pub use errors::{HomeError, doing};
use errors::{check_directory, unwritable};
pub use lock::{LOCK_GRACE, ProjectLock};

/// An open home: the database connection of this process and the artifact root.
pub struct Home {
    path: PathBuf,
    conn: Connection,
    artifacts: ArtifactRoot,
    /// Why the home is open read-only, when it is.
    read_only: Option<String>,
    /// Finished stage sessions' connections, for the next stage runs of this process (as many
    /// as shards ran at once, up to [`MAX_SPARE_SESSIONS`]).
    spare_sessions: Vec<Recycled>,
}

/// Most finished sessions' connections a home keeps for reuse.
const MAX_SPARE_SESSIONS: usize = 16;

impl std::fmt::Debug for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Home")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Home {
    /// Creates the home if needed, migrates it and finishes interrupted publishes. Idempotent.
    /// A home this process cannot write is refused ([`HomeError::ReadOnly`]).
    pub fn init(path: &Path) -> Result<Self, HomeError> {
        check_directory(path, true)?;
        Self::open_writable(path)
    }

    /// Opens an existing home to change it; refuses a folder without a database rather than
    /// creating one, and a home this process cannot write ([`HomeError::ReadOnly`]).
    pub fn open(path: &Path) -> Result<Self, HomeError> {
        Self::check_exists(path)?;
        Self::open_writable(path)
    }

    /// Opens an existing home to read it. When this process cannot write it (a read-only mount,
    /// another user's home) it is opened read-only, without migrating or recovering it;
    /// [`Home::read_only`] then says why.
    pub fn open_for_reading(path: &Path) -> Result<Self, HomeError> {
        Self::check_exists(path)?;
        let Some(reason) = unwritable(path) else {
            return Self::open_existing(path);
        };
        let conn = db::open_read_only(&path.join("vidpipe.db"))?;
        Ok(Home {
            path: path.to_owned(),
            conn,
            artifacts: ArtifactRoot::open_existing(&path.join("projects"))?,
            read_only: Some(reason),
            spare_sessions: Vec::new(),
        })
    }

    fn check_exists(path: &Path) -> Result<(), HomeError> {
        check_directory(path, false)?;
        match std::fs::metadata(path.join("vidpipe.db")) {
            Ok(meta) if meta.is_file() => Ok(()),
            Ok(_) => Err(HomeError::Missing(path.to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(HomeError::Missing(path.to_owned()))
            }
            Err(source) => Err(HomeError::Inaccessible {
                path: path.join("vidpipe.db"),
                source,
            }),
        }
    }

    fn open_writable(path: &Path) -> Result<Self, HomeError> {
        if let Some(reason) = unwritable(path) {
            return Err(HomeError::ReadOnly {
                path: path.to_owned(),
                reason,
            });
        }
        // Create the database file here rather than let SQLite do it: SQLite's "unable to open
        // database file" does not say why, the operating system's error does.
        let db = path.join("vidpipe.db");
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&db)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(HomeError::Create { path: db, source }),
        }
        Self::open_existing(path)
    }

    /// Checks, without opening it, that the home at `path` exists and this process can write
    /// it: what a command that will change it checks before doing anything else.
    pub fn check_writable(path: &Path) -> Result<(), HomeError> {
        Self::check_exists(path)?;
        match unwritable(path) {
            None => Ok(()),
            Some(reason) => Err(HomeError::ReadOnly {
                path: path.to_owned(),
                reason,
            }),
        }
    }

    /// Why the home is open read-only, if it is (see [`Home::open_for_reading`]).
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    fn open_existing(path: &Path) -> Result<Self, HomeError> {
        std::fs::create_dir_all(path.join("locks")).map_err(|source| HomeError::Create {
            path: path.join("locks"),
            source,
        })?;
        let mut conn =
            db::open(&path.join("vidpipe.db")).map_err(doing("open the home's database"))?;
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            // SQLite opens a file it may not write read-only rather than failing.
            return Err(HomeError::ReadOnly {
                path: path.to_owned(),
                reason: format!("{} is read-only", path.join("vidpipe.db").display()),
            });
        }
        db::migrate(&mut conn).map_err(doing("bring the database's schema up to date"))?;
        let artifacts = ArtifactRoot::open(&path.join("projects"))?;
        let mut home = Home {
            path: path.to_owned(),
            conn,
            artifacts,
            read_only: None,
            spare_sessions: Vec::new(),
        };
        home.recover()?;
        Ok(home)
    }

    /// The home folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.path.join("vidpipe.db")
    }

    /// This process's connection.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// This process's connection, mutably (for transactions).
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// A connection a finished stage session gave back, if any, for the next session.
    pub fn take_spare_session(&mut self) -> Option<Recycled> {
        self.spare_sessions.pop()
    }

    /// Keeps a finished stage session's connection for the next session (`None`: there is
    /// none to keep). Beyond [`MAX_SPARE_SESSIONS`], the connection is closed.
    pub fn keep_spare_session(&mut self, spare: Option<Recycled>) {
        if let Some(spare) = spare
            && self.spare_sessions.len() < MAX_SPARE_SESSIONS
        {
            self.spare_sessions.push(spare);
        }
    }

    /// The artifact root.
    pub fn artifacts(&self) -> &ArtifactRoot {
        &self.artifacts
    }

    /// Creates a project row and its folders. The folders come first: a crash in between leaves
    /// an empty folder no row points at, never a row without its folders.
    pub fn create_project(
        &mut self,
        name: &str,
        script: &str,
        settings: &db::KeyValues,
    ) -> Result<db::Project, HomeError> {
        // Validate before touching the disk, so bad input writes nothing.
        let probe_id = uuid::Uuid::now_v7();
        db::projects::check_new_project(name, script)?;
        self.artifacts.create_project(probe_id)?;
        match db::create_project_with_id(
            &mut self.conn,
            &probe_id.hyphenated().to_string(),
            name,
            script,
            settings,
        ) {
            Ok(p) => Ok(p),
            Err(e) => {
                // Best effort: the folder is empty and unreferenced.
                let _ = self.artifacts.remove_project(probe_id);
                Err(e.into())
            }
        }
    }

    /// Opens the artifact folders of a project.
    pub fn project_store(&self, project_id: &str) -> Result<ProjectStore, HomeError> {
        let id = uuid::Uuid::parse_str(project_id).map_err(|_| {
            DbError::InvalidInput(format!("project id {project_id:?} is not a UUID"))
        })?;
        Ok(self.artifacts.project(id)?)
    }
}
