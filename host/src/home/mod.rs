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

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::artifacts::{ArtifactError, ArtifactRoot, ProjectStore};
use crate::db::stage::Recycled;
use crate::db::{self, DbError};

mod recovery;

/// Why a home could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// A database failure.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A database failure while doing something worth naming.
    #[error("could not {action}: {source}")]
    Database {
        /// What was being done, e.g. "record the start of the stage run".
        action: &'static str,
        /// Why it failed.
        source: DbError,
    },
    /// An artifact store failure.
    #[error(transparent)]
    Artifacts(#[from] ArtifactError),
    /// The home folder, or its database file, could not be created.
    #[error("could not create {path}: {source}")]
    Create {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process is running stages on the project.
    #[error(
        "project {0} is busy: another vidpipe process is running a stage or pipeline on it \
         (wait for it to finish, or pass --wait)"
    )]
    Busy(String),
    /// The project lock file could not be opened or locked.
    #[error("could not lock project {project}: {source}")]
    Lock {
        /// The project.
        project: String,
        /// Why.
        source: std::io::Error,
    },
    /// A stage's commit failed and recording the run as failed failed too, so whether its
    /// work committed is not known; its staged files are kept for recovery to settle it.
    #[error(
        "could not tell whether run {run} committed (the commit failed: {commit}; recording the \
         run as failed then failed too: {settle}); its files are kept, and the next vidpipe \
         command settles it by what the database then says"
    )]
    Unsettled {
        /// The run.
        run: String,
        /// Why the commit failed.
        commit: String,
        /// Why recording the failure failed.
        settle: String,
    },
    /// Files of committed runs that can never be moved into place (recorded in the journal as
    /// damaged).
    #[error(
        "{count} artifact file(s) of committed runs are damaged and cannot be put in place, the \
         first {first}; rerun the stages that made them"
    )]
    Damaged {
        /// How many.
        count: usize,
        /// The first, with why.
        first: String,
    },
    /// The home does not exist and creating it was not asked for.
    #[error("{0} is not a vidpipe home (no vidpipe.db); run `vidpipe init` first")]
    Missing(PathBuf),
    /// The home's path names something other than a directory.
    #[error("the home {path} is {kind}, not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The home's path cannot be looked at (a symlink loop, a folder this user may not enter).
    #[error("cannot use the home {path}: {source}")]
    Inaccessible {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The home can be read but not written by this process, and the command would write.
    #[error(
        "the home {path} cannot be written ({reason}); only commands that read it \
         (`project list`, `project show`, `runs list`, `runs show`) can run on it"
    )]
    ReadOnly {
        /// The path.
        path: PathBuf,
        /// Why it cannot be written.
        reason: String,
    },
}

/// Wraps a database error with what was being done (see [`HomeError::Database`]).
pub fn doing(action: &'static str) -> impl FnOnce(DbError) -> HomeError {
    move |source| HomeError::Database { action, source }
}

impl HomeError {
    /// The database error inside, if this is one.
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            HomeError::Db(e) | HomeError::Database { source: e, .. } => Some(e),
            _ => None,
        }
    }

    /// Whether the error is about the home the user named rather than a failure of the host:
    /// it does not exist, is not a folder, or cannot be used as asked. Nothing was written.
    pub fn is_bad_input(&self) -> bool {
        match self {
            HomeError::Missing(_)
            | HomeError::NotADirectory { .. }
            | HomeError::Inaccessible { .. }
            | HomeError::ReadOnly { .. } => true,
            // A place no home can be made (no such parent, no permission, a read-only or
            // pseudo file system) is the user's to change; a full or failing disk is not.
            HomeError::Create { source, .. } => {
                use std::io::ErrorKind as K;
                matches!(
                    source.kind(),
                    K::NotFound
                        | K::PermissionDenied
                        | K::ReadOnlyFilesystem
                        | K::NotADirectory
                        | K::AlreadyExists
                        | K::InvalidInput
                        | K::InvalidFilename
                )
            }
            _ => false,
        }
    }
}

/// Checks that `path` is a directory (creating it when `create`), with errors that say what it
/// is instead.
fn check_directory(path: &Path, create: bool) -> Result<(), HomeError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) => Err(HomeError::NotADirectory {
            path: path.to_owned(),
            kind: describe(&meta.file_type()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            std::fs::create_dir_all(path).map_err(|source| HomeError::Create {
                path: path.to_owned(),
                source,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(HomeError::Missing(path.to_owned()))
        }
        Err(source) => Err(HomeError::Inaccessible {
            path: path.to_owned(),
            source,
        }),
    }
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_file() {
        "a regular file"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a directory"
    }
}

/// Why this process cannot write the home at `path` (its folder, its database, or the folders
/// in it that exist), if it cannot.
fn unwritable(path: &Path) -> Option<String> {
    use rustix::fs::{Access, access};
    let db = path.join("vidpipe.db");
    let folder = Access::WRITE_OK | Access::EXEC_OK;
    let checks = [
        (path.to_owned(), folder),
        (db, Access::READ_OK | Access::WRITE_OK),
        (path.join("projects"), folder),
        (path.join("locks"), folder),
        (path.join("cache"), folder),
    ];
    checks
        .into_iter()
        .find_map(|(file, mode)| match access(&file, mode) {
            Ok(()) => None,
            Err(rustix::io::Errno::NOENT) => None,
            Err(e) => Some(format!("{}: {}", file.display(), std::io::Error::from(e))),
        })
}

/// How long taking a project's lock without `--wait` keeps trying before the project is
/// reported busy: longer than any moment another process holds it for without running a stage
/// (recovery on open gives up rather than wait on the database while it holds a lock).
pub const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The lock of one project, held while stages run on it; released on drop.
///
/// The lock file also records the boot of the machine in which the project's leftover staged
/// files were last swept (see [`ProjectLock::swept_this_boot`]).
#[derive(Debug)]
pub struct ProjectLock {
    file: std::fs::File,
}

impl ProjectLock {
    /// Whether the project's staged files were swept since the machine last started. A run's start
    /// record is written without an fsync of its own (see [`db::with_normal_sync`]), so a
    /// power cut can lose it while keeping the staged files the run had synced: such files
    /// belong to no run that recovery could find, and only a restart can orphan them. So the
    /// first holder of the lock in each boot sweeps them. Without a boot id (not Linux) every
    /// holder does.
    pub(super) fn swept_this_boot(&self) -> bool {
        use std::os::unix::fs::FileExt;
        let Some(boot) = boot_id() else {
            return false;
        };
        let mut recorded = [0u8; 64];
        match self.file.read_at(&mut recorded, 0) {
            Ok(n) => recorded[..n] == *boot.as_bytes(),
            Err(_) => false,
        }
    }

    /// Records that the project's staged files were swept in this boot. Best effort: losing
    /// the record costs one more sweep.
    pub(super) fn mark_swept(&self) {
        use std::os::unix::fs::FileExt;
        if let Some(boot) = boot_id() {
            let written = self
                .file
                .set_len(0)
                .and_then(|()| self.file.write_all_at(boot.as_bytes(), 0));
            if let Err(e) = written {
                tracing::debug!("could not record the sweep in the lock file: {e}");
            }
        }
    }
}

/// This boot of the machine, as Linux names it (a random UUID made at startup).
fn boot_id() -> Option<&'static str> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (!id.is_empty() && id.len() <= 64).then(|| id.to_owned())
    })
    .as_deref()
}

/// An open home: the database connection of this process and the artifact root.
pub struct Home {
    path: PathBuf,
    conn: Connection,
    artifacts: ArtifactRoot,
    /// Why the home is open read-only, when it is.
    read_only: Option<String>,
    /// The last stage session's connection, for the next stage run of this process.
    spare_session: Option<Recycled>,
}

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
            spare_session: None,
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
            spare_session: None,
        };
        home.recover()?;
        Ok(home)
    }

    fn lock_path(&self, project_id: &str) -> Result<PathBuf, HomeError> {
        // A canonical UUID is a safe file name; anything else never reaches the filesystem.
        let id = db::parse_id("project", project_id)?;
        Ok(self.path.join("locks").join(format!("{id}.lock")))
    }

    fn open_lock(&self, project_id: &str) -> Result<std::fs::File, HomeError> {
        let path = self.lock_path(project_id)?;
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| HomeError::Lock {
                project: project_id.to_owned(),
                source,
            })
    }

    pub(super) fn try_lock(&self, project_id: &str) -> Result<Option<ProjectLock>, HomeError> {
        let file = self.open_lock(project_id)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ProjectLock { file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(HomeError::Lock {
                project: project_id.to_owned(),
                source,
            }),
        }
    }

    /// Says that staged files of the project may have been left behind (a commit whose outcome
    /// is not settled yet, a staged file that could not be removed), by creating
    /// `locks/<project>.leftovers`: the next process to open the home or take the project's
    /// lock sweeps them, whatever the database says. Call it holding the project's lock. Best
    /// effort: if even this fails, the files are swept after the machine next restarts.
    pub fn leave_staged_files(&self, project_id: &str) {
        let marked = self.leftovers_path(project_id).and_then(|path| {
            std::fs::write(&path, b"").map_err(|source| HomeError::Lock {
                project: project_id.to_owned(),
                source,
            })
        });
        if let Err(e) = marked {
            tracing::warn!(
                project = project_id,
                "staged files may stay behind until the machine restarts: {e}"
            );
        }
    }

    /// See [`Home::leave_staged_files`].
    fn leftovers_path(&self, project_id: &str) -> Result<PathBuf, HomeError> {
        Ok(self.lock_path(project_id)?.with_extension("leftovers"))
    }

    /// Takes the project's lock, which every stage run on it holds. Without `wait`, a project
    /// somebody else holds is [`HomeError::Busy`]; with it, this blocks until they finish.
    /// The lock is released when the returned guard is dropped, or when the process dies.
    /// Whoever held it before may have died holding it, so the project is recovered (as
    /// [`Home::open`] does) before the lock is handed out.
    pub fn lock_project(&mut self, project_id: &str, wait: bool) -> Result<ProjectLock, HomeError> {
        let lock = match self.try_lock_for_a_while(project_id)? {
            Some(lock) => lock,
            None if !wait => return Err(HomeError::Busy(project_id.to_owned())),
            None => {
                tracing::info!(
                    project = project_id,
                    "waiting for another vidpipe process to finish with the project"
                );
                let file = self.open_lock(project_id)?;
                file.lock().map_err(|source| HomeError::Lock {
                    project: project_id.to_owned(),
                    source,
                })?;
                ProjectLock { file }
            }
        };
        self.recover_locked(project_id, &lock)?;
        Ok(lock)
    }

    /// [`Home::try_lock`], trying again for up to [`LOCK_GRACE`]: another process may hold
    /// the lock only for a moment (finishing a run), and for as long as a live process says it
    /// is recovering the project (which can take longer: moving many files into place).
    fn try_lock_for_a_while(&self, project_id: &str) -> Result<Option<ProjectLock>, HomeError> {
        let started = std::time::Instant::now();
        loop {
            if let Some(lock) = self.try_lock(project_id)? {
                return Ok(Some(lock));
            }
            if started.elapsed() >= LOCK_GRACE && !self.being_recovered(project_id)? {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The file a process recovering a project on opening the home keeps while it holds the
    /// project's lock for that: `locks/<project>.recovering`, holding its pid.
    fn recovering_path(&self, project_id: &str) -> Result<PathBuf, HomeError> {
        Ok(self.lock_path(project_id)?.with_extension("recovering"))
    }

    /// Whether a live process says it is recovering the project.
    fn being_recovered(&self, project_id: &str) -> Result<bool, HomeError> {
        let Ok(text) = std::fs::read_to_string(self.recovering_path(project_id)?) else {
            return Ok(false);
        };
        Ok(text
            .trim()
            .parse::<u32>()
            .is_ok_and(|pid| pid != std::process::id() && recovery::alive(pid)))
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

    /// The connection a finished stage session gave back, if any, for the next session.
    pub fn take_spare_session(&mut self) -> Option<Recycled> {
        self.spare_session.take()
    }

    /// Keeps a finished stage session's connection for the next session (or forgets the last
    /// one, given `None`).
    pub fn keep_spare_session(&mut self, spare: Option<Recycled>) {
        self.spare_session = spare;
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
