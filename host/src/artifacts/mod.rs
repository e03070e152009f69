//! The artifact store: the files that stages write, one folder tree per project.
//!
//! # Layout
//!
//! ```text
//! HOME/vidpipe.db                         the database, outside every project Dir
//! HOME/projects/<project-uuid>/keyframes/ ArtifactKind::Keyframe
//! HOME/projects/<project-uuid>/clips/     ArtifactKind::Clip
//! HOME/projects/<project-uuid>/output/    ArtifactKind::Output
//! ```
//!
//! # Capabilities, not path checks
//!
//! `projects/` is opened once with ambient authority ([`ArtifactRoot::open`], the only ambient call
//! in this module). Everything below it is reached through `cap_std::fs::Dir` handles: a
//! [`ProjectStore`] holds one `Dir` per kind folder, and every file operation is relative to one of
//! them. cap-std refuses any path that would leave the `Dir` (`..`, absolute paths, symlinks that
//! point out), so a hostile name cannot reach the database, another project or anything else on
//! the machine. Names are still checked by [`validate_name`] so a caller gets a clear error, but
//! safety does not depend on that check; the tests call the unvalidated inner functions with
//! hostile names to prove it.
//!
//! Two things cap-std does not cover, and how this module handles them:
//!
//! - **Symbolic links inside a kind folder.** Files are opened with `O_NOFOLLOW` semantics on the
//!   final component ([`FollowSymlinks::No`]); a link is refused, never followed. Publishing onto a
//!   name that is a link replaces the link itself (rename never writes through it), and removal
//!   unlinks the entry only.
//! - **Hard links planted in the tree.** A hard link to a file outside the project is
//!   indistinguishable from a regular file by path. The host only ever creates artifacts fresh and
//!   renames them into place, so a genuine artifact has exactly one link; any file with more than
//!   one is refused by the read paths ([`ProjectStore::read_at`], [`ProjectStore::hash_file`]).
//!
//! # Staged writes and durable publish
//!
//! A new artifact is written to a staged file `.stage-<uuid>` in its target folder
//! ([`ProjectStore::begin_write`]). Names starting with a dot are reserved for these files, so a
//! staged file can never collide with, or be mistaken for, an artifact. [`StagedWriter::finish`]
//! `fsync`s the file; [`ProjectStore::publish`] renames it onto its name (atomically replacing any
//! older artifact) and then `fsync`s the folder, so after `publish` returns the artifact survives a
//! crash. Only then should the caller commit the database row that points at it. Any `fsync`
//! failure fails the operation. A writer dropped without `finish` removes its staged file, and
//! [`ProjectStore::sweep_staged`] removes the leftovers of a crash.

//! # Rooms
//!
//! | module | owns |
//! |---|---|
//! | this one | [`ArtifactKind`], [`ArtifactError`], the root capability [`ArtifactRoot`] |
//! | `names` | what an artifact name may be, and how one is shown in an error |
//! | `store` | [`ProjectStore`]: a project's three folders, opening writers, reads, sweeps |
//! | `publish` | moving staged files onto their names, removals, folder fsyncs |
//! | `writer` | [`StagedWriter`]: streaming into a staged file, its size limit, `finish` |

mod names;
mod publish;
mod store;
mod writer;

use std::fmt;
use std::io;
use std::path::Path;

use cap_fs_ext::{DirExt, OpenOptionsMaybeDirExt};
use cap_std::fs::{Dir, OpenOptions};
use uuid::Uuid;

pub use names::{MAX_NAME_BYTES, STAGED_PREFIX, validate_name};
pub use store::ProjectStore;
pub use writer::{StagedArtifact, StagedWriter};

/// Buffer size for streaming reads and for buffering writes.
const IO_BUFFER_BYTES: usize = 64 * 1024;

/// Bytes a staged file takes in before they are synced (see [`StagedWriter::write`]).
pub const SYNC_EVERY: u64 = 32 << 20;

/// Size of the blocks a file's bytes are counted in for quotas: what a file takes on disk.
pub const BLOCK_BYTES: u64 = 4096;

/// The bytes a file of `size` bytes takes on disk, as quotas count them: whole blocks, and at
/// least one (so a million empty files are not free).
pub fn disk_bytes(size: u64) -> u64 {
    size.div_ceil(BLOCK_BYTES)
        .max(1)
        .saturating_mul(BLOCK_BYTES)
}

/// The folder an artifact lives in.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArtifactKind {
    /// A still image picked from a video (`keyframes/`).
    Keyframe,
    /// A cut of a video (`clips/`).
    Clip,
    /// A final product of a pipeline (`output/`).
    Output,
}

impl ArtifactKind {
    /// Every kind, in folder order.
    pub const ALL: [ArtifactKind; 3] = [Self::Keyframe, Self::Clip, Self::Output];

    /// The name stored in the database: `keyframe`, `clip` or `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keyframe => "keyframe",
            Self::Clip => "clip",
            Self::Output => "output",
        }
    }

    /// The folder on disk: `keyframes`, `clips` or `output`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Keyframe => "keyframes",
            Self::Clip => "clips",
            Self::Output => "output",
        }
    }

    /// The kind whose [`as_str`](Self::as_str) is `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s)
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an artifact operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The name is not a valid artifact name (see [`validate_name`]).
    #[error("invalid artifact name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name, truncated to about 64 characters.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No artifact of that name exists in that folder.
    #[error("no {kind} artifact named {name:?}")]
    NotFound {
        /// The folder looked in.
        kind: ArtifactKind,
        /// The name looked for, truncated to about 64 characters.
        name: String,
    },
    /// A write would make the artifact larger than its limit.
    #[error("artifact is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The entry exists but the store refuses to touch it (a symbolic link, a directory, a file
    /// with more than one hard link, …).
    #[error("refusing {kind} artifact {name:?}: it {reason}")]
    Unsafe {
        /// The folder it is in.
        kind: ArtifactKind,
        /// Its name, truncated to about 64 characters.
        name: String,
        /// Why it is refused, e.g. "is a symbolic link".
        reason: String,
    },
    /// The file system failed.
    #[error("could not {op} {path}: {source}")]
    Io {
        /// What was being done, e.g. "open" or "sync directory".
        op: &'static str,
        /// The path relative to the projects root or a project, e.g. `keyframes/x.png`.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// An [`ArtifactError::Io`] for an operation on `path`.
fn io_error(op: &'static str, path: impl Into<String>) -> impl FnOnce(io::Error) -> ArtifactError {
    let path = path.into();
    move |source| ArtifactError::Io { op, path, source }
}

/// `fsync`s the directory `dir` itself, making renames, creations and removals in it durable.
///
/// cap-std opens `Dir`s with `O_PATH` where it can, and an `O_PATH` descriptor cannot be synced,
/// so this opens `.` again for reading.
fn sync_dir(dir: &Dir, path: impl Into<String>) -> Result<(), ArtifactError> {
    let path = path.into();
    let handle = dir
        .open_with(".", OpenOptions::new().read(true).maybe_dir(true))
        .map_err(io_error("open directory", path.clone()))?;
    handle.sync_all().map_err(io_error("sync directory", path))
}

/// Creates directory `name` in `parent` unless it exists; says whether it created it.
fn ensure_dir(parent: &Dir, name: &str, path: &str) -> Result<bool, ArtifactError> {
    match parent.create_dir(name) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_error("create directory", path)(e)),
    }
}

/// The `projects/` folder: the root capability of the artifact store.
#[derive(Debug)]
pub struct ArtifactRoot {
    /// `projects/` itself.
    dir: Dir,
}

impl ArtifactRoot {
    /// Creates `path` (and parents) if missing, then opens it: the only ambient-authority call in
    /// the module.
    pub fn open(path: &Path) -> Result<Self, ArtifactError> {
        let shown_path = path.display().to_string();
        let authority = cap_std::ambient_authority();
        Dir::create_ambient_dir_all(path, authority)
            .map_err(io_error("create directory", shown_path.clone()))?;
        let dir = Dir::open_ambient_dir(path, authority)
            .map_err(io_error("open directory", shown_path))?;
        Ok(Self { dir })
    }

    /// Opens `path`, which must exist, without creating anything: for a home opened read-only.
    pub fn open_existing(path: &Path) -> Result<Self, ArtifactError> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .map_err(io_error("open directory", path.display().to_string()))?;
        Ok(Self { dir })
    }

    /// Creates `projects/<id>/` and its three kind folders (idempotent), fsyncs the new dirs and
    /// their parents, and opens it.
    ///
    /// The syncs run on every call, so a call after a crash that interrupted an earlier one
    /// still leaves the tree durable.
    pub fn create_project(&self, id: Uuid) -> Result<ProjectStore, ArtifactError> {
        let name = id.to_string();
        let path = format!("projects/{name}");
        ensure_dir(&self.dir, &name, &path)?;
        let project = self
            .dir
            .open_dir_nofollow(&name)
            .map_err(io_error("open directory", path.clone()))?;
        let store = ProjectStore::open_kinds(&project, &path)?;
        for kind in ArtifactKind::ALL {
            sync_dir(store.dir(kind), format!("{path}/{}", kind.dir_name()))?;
        }
        sync_dir(&project, path)?;
        sync_dir(&self.dir, "projects")?;
        Ok(store)
    }

    /// Opens an existing project folder (an [`ArtifactError::Io`] whose source is `NotFound` if
    /// it is missing). Kind folders that are missing are re-created.
    pub fn project(&self, id: Uuid) -> Result<ProjectStore, ArtifactError> {
        let name = id.to_string();
        let path = format!("projects/{name}");
        let project = self
            .dir
            .open_dir_nofollow(&name)
            .map_err(io_error("open directory", path.clone()))?;
        ProjectStore::open_kinds(&project, &path)
    }

    /// Removes `projects/<id>/` recursively, for project deletion, and fsyncs `projects/`.
    ///
    /// Symbolic links inside are removed, never followed. A project that does not exist is not
    /// an error, so deletion can be retried after a crash.
    pub fn remove_project(&self, id: Uuid) -> Result<(), ArtifactError> {
        let name = id.to_string();
        let path = format!("projects/{name}");
        match self.dir.remove_dir_all(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("remove directory", path)(e)),
        }
        sync_dir(&self.dir, "projects")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;
