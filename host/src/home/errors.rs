//! Why a home could not be opened or used, and the checks of its folder that say so before
//! anything is written.

use std::path::{Path, PathBuf};

use crate::artifacts::ArtifactError;
use crate::db::DbError;

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
    /// The host itself panicked while running a unit of a pipeline (a bug in vidpipe): the
    /// pipeline stops, and the runs it had started are found interrupted by the next command.
    #[error("the host failed while running {unit}: {message} (a bug in vidpipe; please report it)")]
    Panicked {
        /// What it was running, e.g. "stage clips (3 of 4), scene 2".
        unit: String,
        /// The panic's message.
        message: String,
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
pub(super) fn check_directory(path: &Path, create: bool) -> Result<(), HomeError> {
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
pub(super) fn unwritable(path: &Path) -> Option<String> {
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
