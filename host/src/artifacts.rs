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

use std::fmt;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cap_fs_ext::{
    DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt, OpenOptionsSyncExt,
};
use cap_std::fs::{Dir, File, OpenOptions};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Longest artifact name, in bytes of UTF-8 (the usual file-system limit for one component).
pub const MAX_NAME_BYTES: usize = 255;

/// Prefix of the host's staged files. Artifact names may not start with a dot, so no artifact
/// name can have this prefix.
pub const STAGED_PREFIX: &str = ".stage-";

/// How many characters of a rejected name an error message shows.
const SHOWN_NAME_CHARS: usize = 64;

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

/// Checks that `name` is a valid artifact name: a single, plain path component.
///
/// A valid name is 1 to [`MAX_NAME_BYTES`] bytes of UTF-8; is not `.` or `..`; does not start with
/// `.` (a leading dot is reserved for the host's staged files); contains no `/`, `\`, NUL or
/// control character; and has no leading or trailing whitespace.
///
/// This check exists for clear errors. The store's safety comes from cap-std, not from it.
pub fn validate_name(name: &str) -> Result<(), ArtifactError> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("is longer than 255 bytes")
    } else if name == "." || name == ".." {
        Some("is `.` or `..`, which name a directory")
    } else if name.contains('/') {
        Some("contains a path separator `/`")
    } else if name.contains('\\') {
        Some("contains a backslash `\\`")
    } else if name.contains('\0') {
        Some("contains a NUL byte")
    } else if name.chars().any(crate::text::is_unsafe) {
        Some("contains a control character or an invisible format character (a bidi override, say)")
    } else if name.starts_with('.') {
        Some("starts with `.`, which is reserved for the host's staged files")
    } else if name.trim() != name {
        Some("has leading or trailing whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ArtifactError::InvalidName {
            name: shown(name),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks that `staged` is a name [`ProjectStore::begin_write`] could have produced.
fn validate_staged_name(staged: &str) -> Result<(), ArtifactError> {
    let invalid = || ArtifactError::InvalidName {
        name: shown(staged),
        reason: "is not a staged file name (`.stage-` followed by a plain name)",
    };
    let rest = staged.strip_prefix(STAGED_PREFIX).ok_or_else(invalid)?;
    if staged.len() > MAX_NAME_BYTES || validate_name(rest).is_err() {
        return Err(invalid());
    }
    Ok(())
}

/// Checks a name that may be either an artifact name or a staged file name.
fn validate_file_name(file: &str) -> Result<(), ArtifactError> {
    if file.starts_with(STAGED_PREFIX) {
        validate_staged_name(file)
    } else {
        validate_name(file)
    }
}

/// `name` cut to [`SHOWN_NAME_CHARS`] characters, so a 4 KiB name does not flood a message.
fn shown(name: &str) -> String {
    match name.char_indices().nth(SHOWN_NAME_CHARS) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_owned(),
    }
}

/// `kind-folder/name` for error messages, with the name escaped and truncated.
fn display_path(kind: ArtifactKind, name: &str) -> String {
    let escaped: String = name.escape_debug().take(SHOWN_NAME_CHARS).collect();
    let ellipsis = if name.escape_debug().nth(SHOWN_NAME_CHARS).is_some() {
        "…"
    } else {
        ""
    };
    format!("{}/{escaped}{ellipsis}", kind.dir_name())
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

/// One project's artifact folders.
#[derive(Debug)]
pub struct ProjectStore {
    keyframes: Dir,
    clips: Dir,
    output: Dir,
    /// Set when a staged file could not be removed (see [`ProjectStore::left_staged_files`]).
    left_behind: Arc<AtomicBool>,
}

impl ProjectStore {
    /// Opens (creating if missing) the three kind folders of the open project folder `project`,
    /// and fsyncs `project` if it had to create any.
    fn open_kinds(project: &Dir, path: &str) -> Result<Self, ArtifactError> {
        let mut created = false;
        let mut open = |kind: ArtifactKind| -> Result<Dir, ArtifactError> {
            // Open first: the folder is almost always there, and a stage run opens all three.
            match project.open_dir_nofollow(kind.dir_name()) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                opened => {
                    return opened.map_err(io_error(
                        "open directory",
                        format!("{path}/{}", kind.dir_name()),
                    ));
                }
            }
            let kind_path = format!("{path}/{}", kind.dir_name());
            created |= ensure_dir(project, kind.dir_name(), &kind_path)?;
            project
                .open_dir_nofollow(kind.dir_name())
                .map_err(io_error("open directory", kind_path))
        };
        let store = Self {
            keyframes: open(ArtifactKind::Keyframe)?,
            clips: open(ArtifactKind::Clip)?,
            output: open(ArtifactKind::Output)?,
            left_behind: Arc::default(),
        };
        if created {
            sync_dir(project, path)?;
        }
        Ok(store)
    }

    /// Whether a staged file of this store, or of a writer it began, could not be removed
    /// (discarded, or dropped unfinished) and may still be on disk: nobody would find it again
    /// but a sweep. The flag is shared by the writers this store began.
    pub fn left_staged_files(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.left_behind)
    }

    /// The folder of `kind`.
    fn dir(&self, kind: ArtifactKind) -> &Dir {
        match kind {
            ArtifactKind::Keyframe => &self.keyframes,
            ArtifactKind::Clip => &self.clips,
            ArtifactKind::Output => &self.output,
        }
    }

    /// Creates a new staged file `.stage-<uuid>` (create_new) in the kind folder and returns a
    /// writer that accepts at most `max_size` bytes.
    pub fn begin_write(
        &self,
        kind: ArtifactKind,
        max_size: u64,
    ) -> Result<StagedWriter, ArtifactError> {
        // The writer keeps its own handle on the folder so it can remove the file when dropped.
        let dir = self
            .dir(kind)
            .try_clone()
            .map_err(io_error("clone directory handle", kind.dir_name()))?;
        let staged_name = format!("{STAGED_PREFIX}{}", Uuid::new_v4().simple());
        let file = dir
            .open_with(
                &staged_name,
                OpenOptions::new().write(true).create_new(true),
            )
            .map_err(io_error("create", display_path(kind, &staged_name)))?;
        Ok(StagedWriter {
            file: Some(BufWriter::with_capacity(IO_BUFFER_BYTES, file)),
            dir,
            hasher: Sha256::new(),
            size: 0,
            max_size,
            staged_name,
            kind,
            failed: None,
            finished: false,
            unsynced: 0,
            left_behind: Arc::clone(&self.left_behind),
        })
    }

    /// Atomically renames staged file `staged` onto `name` in the same kind folder (replacing any
    /// old file), then fsyncs the folder.
    ///
    /// If `name` is a symbolic link, the link itself is replaced; nothing is written through it.
    pub fn publish(
        &self,
        kind: ArtifactKind,
        staged: &str,
        name: &str,
    ) -> Result<(), ArtifactError> {
        validate_staged_name(staged)?;
        validate_name(name)?;
        self.publish_unvalidated(kind, staged, name)
    }

    /// [`publish`](Self::publish) without the folder fsync: the rename is atomic but not yet
    /// durable. For moving many files at once, followed by one [`sync`](Self::sync) per folder.
    pub fn move_into_place(
        &self,
        kind: ArtifactKind,
        staged: &str,
        name: &str,
    ) -> Result<(), ArtifactError> {
        validate_staged_name(staged)?;
        validate_name(name)?;
        self.rename_unvalidated(kind, staged, name)
    }

    /// [`publish`](Self::publish) without the name checks: safety rests on cap-std alone.
    fn publish_unvalidated(
        &self,
        kind: ArtifactKind,
        staged: &str,
        name: &str,
    ) -> Result<(), ArtifactError> {
        self.rename_unvalidated(kind, staged, name)?;
        sync_dir(self.dir(kind), kind.dir_name())
    }

    /// Renames a staged regular file onto `name`, without the name checks or a folder fsync.
    fn rename_unvalidated(
        &self,
        kind: ArtifactKind,
        staged: &str,
        name: &str,
    ) -> Result<(), ArtifactError> {
        let dir = self.dir(kind);
        let staged_path = display_path(kind, staged);
        // Only a regular file may be published: a staged name that became a link or a
        // directory is refused rather than moved into place.
        let meta = dir.symlink_metadata(staged).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ArtifactError::NotFound {
                    kind,
                    name: shown(staged),
                }
            } else {
                io_error("inspect", staged_path.clone())(e)
            }
        })?;
        if !meta.is_file() {
            return Err(ArtifactError::Unsafe {
                kind,
                name: shown(staged),
                reason: describe_non_file(&meta.file_type()),
            });
        }
        dir.rename(staged, dir, name).map_err(io_error(
            "rename",
            format!("{staged_path} to {}", display_path(kind, name)),
        ))
    }

    /// Fsyncs a kind folder, making every rename and removal in it durable.
    pub fn sync(&self, kind: ArtifactKind) -> Result<(), ArtifactError> {
        sync_dir(self.dir(kind), kind.dir_name())
    }

    /// Removes a staged file; a missing file is not an error.
    pub fn discard(&self, kind: ArtifactKind, staged: &str) -> Result<(), ArtifactError> {
        validate_staged_name(staged)?;
        self.discard_unvalidated(kind, staged)
    }

    /// [`discard`](Self::discard) without the name check: safety rests on cap-std alone.
    fn discard_unvalidated(&self, kind: ArtifactKind, staged: &str) -> Result<(), ArtifactError> {
        match self.dir(kind).remove_file_or_symlink(staged) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                self.left_behind.store(true, Ordering::Relaxed);
                Err(io_error("remove", display_path(kind, staged))(e))
            }
        }
    }

    /// Removes a published file (the directory entry only; never follows a symlink), fsyncs the
    /// folder; missing is not an error.
    pub fn remove(&self, kind: ArtifactKind, name: &str) -> Result<(), ArtifactError> {
        validate_name(name)?;
        self.remove_unvalidated(kind, name)
    }

    /// [`remove`](Self::remove) without the folder fsync; follow it with [`sync`](Self::sync).
    pub fn remove_entry(&self, kind: ArtifactKind, name: &str) -> Result<(), ArtifactError> {
        validate_name(name)?;
        match self.dir(kind).remove_file_or_symlink(name) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", display_path(kind, name))(e)),
        }
    }

    /// [`remove`](Self::remove) without the name check: safety rests on cap-std alone.
    fn remove_unvalidated(&self, kind: ArtifactKind, name: &str) -> Result<(), ArtifactError> {
        let dir = self.dir(kind);
        match dir.remove_file_or_symlink(name) {
            Ok(()) => sync_dir(dir, kind.dir_name()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", display_path(kind, name))(e)),
        }
    }

    /// Reads up to `len` bytes at `offset` from file `file` (a published name or a staged name) of
    /// the kind folder. Returns fewer bytes at the end of the file and none past it.
    ///
    /// Opens with `O_NOFOLLOW` semantics on the final component, refuses anything that is not a
    /// regular file, and refuses a file with more than one hard link: cap-std cannot stop a hard
    /// link planted in the tree that points outside, and published files, which the host always
    /// creates fresh and renames, have exactly one link.
    pub fn read_at(
        &self,
        kind: ArtifactKind,
        file: &str,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, ArtifactError> {
        validate_file_name(file)?;
        self.read_at_unvalidated(kind, file, offset, len)
    }

    /// [`read_at`](Self::read_at) without the name check: safety rests on cap-std alone.
    fn read_at_unvalidated(
        &self,
        kind: ArtifactKind,
        file: &str,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, ArtifactError> {
        let (mut handle, size) = self.open_checked(kind, file)?;
        let path = display_path(kind, file);
        let available = size.saturating_sub(offset);
        if available == 0 || len == 0 {
            return Ok(Vec::new());
        }
        handle
            .seek(SeekFrom::Start(offset))
            .map_err(io_error("seek", path.clone()))?;
        let wanted = u64::try_from(len).unwrap_or(u64::MAX).min(available);
        let mut out = Vec::with_capacity(usize::try_from(wanted).unwrap_or(len));
        handle
            .take(wanted)
            .read_to_end(&mut out)
            .map_err(io_error("read", path))?;
        Ok(out)
    }

    /// Size and sha256 (lowercase hex) of a file, streaming, with the same safety checks as
    /// [`read_at`](Self::read_at).
    pub fn hash_file(
        &self,
        kind: ArtifactKind,
        file: &str,
    ) -> Result<(u64, String), ArtifactError> {
        validate_file_name(file)?;
        self.hash_file_unvalidated(kind, file)
    }

    /// [`hash_file`](Self::hash_file) without the name check: safety rests on cap-std alone.
    fn hash_file_unvalidated(
        &self,
        kind: ArtifactKind,
        file: &str,
    ) -> Result<(u64, String), ArtifactError> {
        let (mut handle, _) = self.open_checked(kind, file)?;
        let path = display_path(kind, file);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; IO_BUFFER_BYTES];
        let mut size = 0u64;
        loop {
            let n = match handle.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error("read", path)(e)),
            };
            let chunk = buf.get(..n).unwrap_or_default();
            hasher.update(chunk);
            size += u64::try_from(n).unwrap_or(u64::MAX);
        }
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Opens `file` for reading without following a final symlink, and checks that it is a
    /// regular file with one link. Returns the handle and the file's size.
    fn open_checked(&self, kind: ArtifactKind, file: &str) -> Result<(File, u64), ArtifactError> {
        let dir = self.dir(kind);
        let path = display_path(kind, file);
        let unsafe_entry = |reason: String| ArtifactError::Unsafe {
            kind,
            name: shown(file),
            reason,
        };
        // `nonblock` keeps a planted FIFO from blocking the open; it is refused below.
        let opened = dir.open_with(
            file,
            OpenOptions::new()
                .read(true)
                .follow(FollowSymlinks::No)
                .nonblock(true),
        );
        let handle = match opened {
            Ok(handle) => handle,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ArtifactError::NotFound {
                    kind,
                    name: shown(file),
                });
            }
            Err(e) => {
                // A final symlink makes the open fail (ELOOP); name the real reason.
                return Err(match dir.symlink_metadata(file) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        unsafe_entry("is a symbolic link".to_owned())
                    }
                    _ => io_error("open", path)(e),
                });
            }
        };
        let meta = handle.metadata().map_err(io_error("inspect", path))?;
        if !meta.is_file() {
            return Err(unsafe_entry(describe_non_file(&meta.file_type())));
        }
        let links = cap_fs_ext::MetadataExt::nlink(&meta);
        if links != 1 {
            return Err(unsafe_entry(format!("has {links} hard links")));
        }
        Ok((handle, meta.len()))
    }

    /// Removes every `.stage-*` entry in all three kind folders (crash leftovers); returns how
    /// many were removed. Directories are left alone (the host never creates one).
    pub fn sweep_staged(&self) -> Result<usize, ArtifactError> {
        let mut removed = 0;
        for kind in ArtifactKind::ALL {
            let dir = self.dir(kind);
            let mut removed_here = 0;
            for entry in dir.entries().map_err(io_error("list", kind.dir_name()))? {
                let entry = entry.map_err(io_error("list", kind.dir_name()))?;
                let name = entry.file_name();
                if !name
                    .as_encoded_bytes()
                    .starts_with(STAGED_PREFIX.as_bytes())
                {
                    continue;
                }
                let shown_name = name.to_string_lossy();
                let file_type = entry
                    .file_type()
                    .map_err(io_error("inspect", display_path(kind, &shown_name)))?;
                if file_type.is_dir() {
                    tracing::warn!(%kind, name = %shown_name, "leaving a staged-looking directory alone");
                    continue;
                }
                match dir.remove_file_or_symlink(&name) {
                    Ok(()) => removed_here += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("remove", display_path(kind, &shown_name))(e)),
                }
            }
            if removed_here > 0 {
                sync_dir(dir, kind.dir_name())?;
            }
            removed += removed_here;
        }
        Ok(removed)
    }

    /// Names of the regular files in a kind folder that are not staged files, sorted.
    ///
    /// Entries that are not valid artifact names (staged files, other dot files, names that are
    /// not UTF-8, …) are left out, as are links and directories: everything listed can be read.
    pub fn list_files(&self, kind: ArtifactKind) -> Result<Vec<String>, ArtifactError> {
        let dir = self.dir(kind);
        let mut names = Vec::new();
        for entry in dir.entries().map_err(io_error("list", kind.dir_name()))? {
            let entry = entry.map_err(io_error("list", kind.dir_name()))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if validate_name(&name).is_err() {
                continue;
            }
            let file_type = entry
                .file_type()
                .map_err(io_error("inspect", display_path(kind, &name)))?;
            if file_type.is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

/// The reason a non-regular file is refused.
fn describe_non_file(file_type: &cap_std::fs::FileType) -> String {
    if file_type.is_symlink() {
        "is a symbolic link"
    } else if file_type.is_dir() {
        "is a directory, not a regular file"
    } else {
        "is not a regular file"
    }
    .to_owned()
}

/// Why a writer stopped accepting bytes.
#[derive(Debug, Clone, Copy)]
enum WriteFailure {
    TooLarge,
    Io,
}

/// A file being written: bytes go to `.stage-<uuid>`, hashed as they are written.
///
/// Dropped without [`finish`](Self::finish), the staged file is removed (best effort; a failure
/// is logged with `tracing::warn`). After a failed write (too large, or an I/O error) the
/// writer accepts nothing more and cannot be finished, so a truncated artifact is never
/// published.
pub struct StagedWriter {
    /// The staged file; `None` once finished or dropped.
    file: Option<BufWriter<File>>,
    /// The kind folder, kept to remove the staged file on drop.
    dir: Dir,
    hasher: Sha256,
    size: u64,
    max_size: u64,
    staged_name: String,
    kind: ArtifactKind,
    failed: Option<WriteFailure>,
    finished: bool,
    /// Bytes written since the file was last synced.
    unsynced: u64,
    /// Its store's flag, set if the file cannot be removed on drop.
    left_behind: Arc<AtomicBool>,
}

impl fmt::Debug for StagedWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StagedWriter")
            .field("kind", &self.kind)
            .field("staged_name", &self.staged_name)
            .field("size", &self.size)
            .field("max_size", &self.max_size)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl StagedWriter {
    /// The staged file's name in its kind folder, `.stage-<uuid>`.
    pub fn staged_name(&self) -> &str {
        &self.staged_name
    }

    /// The folder being written to.
    pub fn kind(&self) -> ArtifactKind {
        self.kind
    }

    /// Bytes accepted so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn path(&self) -> String {
        display_path(self.kind, &self.staged_name)
    }

    /// The error for a call after a failed write.
    fn failure_error(&self, failure: WriteFailure) -> ArtifactError {
        match failure {
            WriteFailure::TooLarge => ArtifactError::TooLarge {
                limit: self.max_size,
            },
            WriteFailure::Io => io_error("write", self.path())(io::Error::other(
                "an earlier write to this artifact failed",
            )),
        }
    }

    /// Appends `chunk`. If the artifact would exceed its size limit, fails with
    /// [`ArtifactError::TooLarge`] and nothing of `chunk`, nor of any later chunk, is written.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), ArtifactError> {
        if let Some(failure) = self.failed {
            return Err(self.failure_error(failure));
        }
        let new_size = u64::try_from(chunk.len())
            .ok()
            .and_then(|len| self.size.checked_add(len))
            .filter(|&size| size <= self.max_size);
        let Some(new_size) = new_size else {
            self.failed = Some(WriteFailure::TooLarge);
            return Err(self.failure_error(WriteFailure::TooLarge));
        };
        let path = self.path();
        let Some(file) = self.file.as_mut() else {
            return Err(io_error("write", path)(io::Error::other(
                "writer is closed",
            )));
        };
        if let Err(e) = file.write_all(chunk) {
            self.failed = Some(WriteFailure::Io);
            return Err(io_error("write", path)(e));
        }
        self.hasher.update(chunk);
        self.size = new_size;
        // Make what is written durable as it goes, so that `finish` has at most this much left
        // to flush: a host call, which a stage's deadline cannot cut short, then waits on at
        // most that many bytes reaching the disk, however large the artifact.
        self.unsynced = self.unsynced.saturating_add(chunk.len() as u64);
        if self.unsynced >= SYNC_EVERY {
            let synced = file.flush().and_then(|()| file.get_ref().sync_data());
            if let Err(e) = synced {
                self.failed = Some(WriteFailure::Io);
                return Err(io_error("sync", path)(e));
            }
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Flushes and `fsync`s the staged file, making its bytes durable, and returns what was
    /// written. After this the staged file is the caller's: pass its name to
    /// [`ProjectStore::publish`] or [`ProjectStore::discard`].
    ///
    /// On error the staged file is removed.
    pub fn finish(mut self) -> Result<StagedArtifact, ArtifactError> {
        if let Some(failure) = self.failed {
            return Err(self.failure_error(failure));
        }
        let path = self.path();
        let Some(buffered) = self.file.take() else {
            return Err(io_error("finish", path)(io::Error::other(
                "writer is closed",
            )));
        };
        let file = buffered
            .into_inner()
            .map_err(|e| io_error("write", path.clone())(e.into_error()))?;
        file.sync_all().map_err(io_error("sync", path))?;
        self.finished = true;
        Ok(StagedArtifact {
            kind: self.kind,
            staged_name: std::mem::take(&mut self.staged_name),
            size: self.size,
            sha256: hex::encode(std::mem::take(&mut self.hasher).finalize()),
        })
    }
}

impl Drop for StagedWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Close the file without flushing its buffer: the bytes are being thrown away.
        if let Some(buffered) = self.file.take() {
            drop(buffered.into_parts());
        }
        match self.dir.remove_file(&self.staged_name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                self.left_behind.store(true, Ordering::Relaxed);
                tracing::warn!(
                    kind = %self.kind,
                    staged = %self.staged_name,
                    error = %e,
                    "could not remove an unfinished staged artifact",
                );
            }
        }
    }
}

/// A staged file whose bytes are durable, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedArtifact {
    /// Its folder.
    pub kind: ArtifactKind,
    /// The staged file's name in that folder, `.stage-<uuid>`.
    pub staged_name: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its contents, in lowercase hex.
    pub sha256: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// A temporary HOME laid out like the real one, with things worth stealing around the
    /// project under test.
    struct Home {
        tmp: tempfile::TempDir,
        root: ArtifactRoot,
        id: Uuid,
        store: ProjectStore,
    }

    const DB_BYTES: &[u8] = b"SQLite format 3\0the real database";
    const SIBLING_BYTES: &[u8] = b"another project's keyframe";
    const OUTSIDE_BYTES: &[u8] = b"TOP SECRET outside the home";
    const HOME_SECRET_BYTES: &[u8] = b"secret in home";

    impl Home {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let home = tmp.path().join("home");
            std::fs::create_dir(&home).unwrap();
            std::fs::write(home.join("vidpipe.db"), DB_BYTES).unwrap();
            std::fs::write(home.join("secret"), HOME_SECRET_BYTES).unwrap();
            std::fs::write(tmp.path().join("outside.txt"), OUTSIDE_BYTES).unwrap();
            let root = ArtifactRoot::open(&home.join("projects")).unwrap();
            let sibling = Uuid::new_v4();
            root.create_project(sibling).unwrap();
            std::fs::write(
                home.join("projects")
                    .join(sibling.to_string())
                    .join("keyframes/secret.png"),
                SIBLING_BYTES,
            )
            .unwrap();
            let id = Uuid::new_v4();
            let store = root.create_project(id).unwrap();
            Self {
                tmp,
                root,
                id,
                store,
            }
        }

        fn home(&self) -> PathBuf {
            self.tmp.path().join("home")
        }

        fn project_path(&self) -> PathBuf {
            self.home().join("projects").join(self.id.to_string())
        }

        fn kind_path(&self, kind: ArtifactKind) -> PathBuf {
            self.project_path().join(kind.dir_name())
        }

        /// Every entry under the temp dir except the `keyframes` folder of the project under
        /// test: files with their bytes, links with their targets, directories as empty.
        fn snapshot_outside_keyframes(&self) -> BTreeMap<PathBuf, Vec<u8>> {
            let skip = self.kind_path(ArtifactKind::Keyframe);
            let mut out = BTreeMap::new();
            let mut stack = vec![self.tmp.path().to_path_buf()];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path == skip {
                        continue;
                    }
                    let meta = std::fs::symlink_metadata(&path).unwrap();
                    let value = if meta.is_symlink() {
                        std::fs::read_link(&path)
                            .unwrap()
                            .into_os_string()
                            .into_encoded_bytes()
                    } else if meta.is_dir() {
                        stack.push(path.clone());
                        Vec::new()
                    } else {
                        std::fs::read(&path).unwrap()
                    };
                    out.insert(path, value);
                }
            }
            out
        }

        fn staged_entries(&self, kind: ArtifactKind) -> Vec<String> {
            std::fs::read_dir(self.kind_path(kind))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with(STAGED_PREFIX))
                .collect()
        }

        fn write_staged(&self, kind: ArtifactKind, bytes: &[u8]) -> StagedArtifact {
            let mut writer = self.store.begin_write(kind, 1 << 20).unwrap();
            writer.write(bytes).unwrap();
            writer.finish().unwrap()
        }

        fn write_published(&self, kind: ArtifactKind, name: &str, bytes: &[u8]) {
            let staged = self.write_staged(kind, bytes);
            self.store.publish(kind, &staged.staged_name, name).unwrap();
        }
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Names a guest might pass to reach outside its kind folder.
    fn hostile_names() -> Vec<String> {
        vec![
            "../x".into(),
            "../../vidpipe.db".into(),
            "../../../vidpipe.db".into(),
            "../../../secret".into(),
            "../../../../outside.txt".into(),
            "/etc/passwd".into(),
            "//x".into(),
            "a/../../x".into(),
            "./../../../vidpipe.db".into(),
        ]
    }

    #[test]
    fn artifact_kinds_round_trip_through_their_database_names() {
        for kind in ArtifactKind::ALL {
            assert_eq!(ArtifactKind::parse(kind.as_str()), Some(kind));
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(ArtifactKind::Keyframe.dir_name(), "keyframes");
        assert_eq!(ArtifactKind::Clip.dir_name(), "clips");
        assert_eq!(ArtifactKind::Output.dir_name(), "output");
        assert_eq!(ArtifactKind::parse("keyframes"), None);
        assert_eq!(ArtifactKind::parse(""), None);
    }

    #[test]
    fn validate_name_accepts_ordinary_names() {
        let long = format!("{}.png", "a".repeat(MAX_NAME_BYTES - 4));
        assert_eq!(long.len(), 255);
        // 255 bytes made of two-byte characters.
        let long_unicode = format!("{}x", "é".repeat(127));
        assert_eq!(long_unicode.len(), 255);
        for name in [
            "a.png",
            "scene-01_start.png",
            "café.png",
            "動画 01.mp4",
            "a..b",
            "x.",
            long.as_str(),
            long_unicode.as_str(),
        ] {
            assert!(validate_name(name).is_ok(), "{name:?} should be valid");
        }
    }

    #[test]
    fn validate_name_rejects_the_escape_corpus_and_names_the_reason() {
        let huge = "a".repeat(4096);
        let just_too_long = "a".repeat(256);
        let cases: &[(&str, &str)] = &[
            ("../x", "`/`"),
            ("a/../../x", "`/`"),
            ("/etc/passwd", "`/`"),
            ("//x", "`/`"),
            ("x\0y", "NUL"),
            (".", "`.` or `..`"),
            ("..", "`.` or `..`"),
            ("", "empty"),
            (&huge, "longer than 255 bytes"),
            (&just_too_long, "longer than 255 bytes"),
            ("..\\x", "backslash"),
            ("a\\b", "backslash"),
            (".hidden", "reserved for the host's staged files"),
            (".stage-0123", "reserved for the host's staged files"),
            (" lead", "whitespace"),
            ("trail ", "whitespace"),
            ("trail\u{a0}", "whitespace"),
            ("a\nb", "control character"),
            ("a\u{7f}b", "control character"),
        ];
        for (name, reason) in cases {
            let err = validate_name(name).unwrap_err();
            assert!(
                matches!(err, ArtifactError::InvalidName { .. }),
                "{name:?}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(reason), "{name:?}: {message}");
            assert!(message.len() < 200, "message too long: {message}");
        }
    }

    #[test]
    fn invalid_name_errors_escape_and_truncate_the_name() {
        let message = validate_name(&format!("{}\n", "b".repeat(4096)))
            .unwrap_err()
            .to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(message.contains('…'), "{message}");
        assert!(message.len() < 200, "{message}");
    }

    #[test]
    fn the_public_methods_reject_invalid_names_before_touching_the_disk() {
        let h = Home::new();
        let kind = ArtifactKind::Keyframe;
        let staged = h.write_staged(kind, b"bytes");
        for name in hostile_names() {
            assert!(matches!(
                h.store.read_at(kind, &name, 0, 10),
                Err(ArtifactError::InvalidName { .. })
            ));
            assert!(matches!(
                h.store.hash_file(kind, &name),
                Err(ArtifactError::InvalidName { .. })
            ));
            assert!(matches!(
                h.store.remove(kind, &name),
                Err(ArtifactError::InvalidName { .. })
            ));
            assert!(matches!(
                h.store.discard(kind, &name),
                Err(ArtifactError::InvalidName { .. })
            ));
            assert!(matches!(
                h.store.publish(kind, &staged.staged_name, &name),
                Err(ArtifactError::InvalidName { .. })
            ));
            assert!(matches!(
                h.store.publish(kind, &name, "x.png"),
                Err(ArtifactError::InvalidName { .. })
            ));
        }
        // A staged name must look like one, even with a dot: `publish` takes no other files.
        assert!(matches!(
            h.store.publish(kind, ".hidden", "x.png"),
            Err(ArtifactError::InvalidName { .. })
        ));
        assert!(matches!(
            h.store.publish(kind, ".stage-../../x", "x.png"),
            Err(ArtifactError::InvalidName { .. })
        ));
    }

    #[test]
    fn safety_does_not_depend_on_validate_name() {
        let h = Home::new();
        let kind = ArtifactKind::Keyframe;
        let staged = h.write_staged(kind, b"staged bytes");
        // Targets for every hostile name exist, so "missing is not an error" cannot hide a
        // successful escape: `../x` and `a/../../x` both mean the project folder's `x`.
        std::fs::write(h.project_path().join("x"), b"project-level file").unwrap();
        std::fs::create_dir(h.kind_path(kind).join("a")).unwrap();
        let before = h.snapshot_outside_keyframes();
        for name in hostile_names() {
            let read = h.store.read_at_unvalidated(kind, &name, 0, 1 << 16);
            assert!(read.is_err(), "read_at {name:?} returned {read:?}");
            let hashed = h.store.hash_file_unvalidated(kind, &name);
            assert!(hashed.is_err(), "hash_file {name:?} returned {hashed:?}");
            let removed = h.store.remove_unvalidated(kind, &name);
            assert!(removed.is_err(), "remove {name:?} succeeded");
            let discarded = h.store.discard_unvalidated(kind, &name);
            assert!(discarded.is_err(), "discard {name:?} succeeded");
            let published = h
                .store
                .publish_unvalidated(kind, &staged.staged_name, &name);
            assert!(published.is_err(), "publish onto {name:?} succeeded");
            let stolen = h.store.publish_unvalidated(kind, &name, "stolen.png");
            assert!(stolen.is_err(), "publish from {name:?} succeeded");
        }
        assert_eq!(h.snapshot_outside_keyframes(), before);
        // Inside the folder nothing moved either: the staged file is still there, untouched.
        assert_eq!(
            h.store.hash_file(kind, &staged.staged_name).unwrap(),
            (staged.size, staged.sha256.clone())
        );
        assert!(h.store.list_files(kind).unwrap().is_empty());
        assert_eq!(
            std::fs::read(h.home().join("vidpipe.db")).unwrap(),
            DB_BYTES
        );
    }

    #[cfg(unix)]
    #[test]
    fn planted_symlinks_pointing_outside_are_not_followed() {
        use std::os::unix::fs::symlink;
        let h = Home::new();
        let kind = ArtifactKind::Keyframe;
        let kf = h.kind_path(kind);
        let outside = h.tmp.path().join("outside.txt");
        symlink(&outside, kf.join("abs.png")).unwrap();
        symlink("../../../secret", kf.join("rel.png")).unwrap();
        symlink("../../../vidpipe.db", kf.join("db.png")).unwrap();
        // A relative link that stays inside the folder is refused too: links are never followed.
        h.write_published(kind, "real.png", b"real");
        symlink("real.png", kf.join("inside.png")).unwrap();
        for name in ["abs.png", "rel.png", "db.png", "inside.png"] {
            for result in [
                h.store.read_at(kind, name, 0, 1 << 16).map(|_| ()),
                h.store.hash_file(kind, name).map(|_| ()),
                h.store
                    .read_at_unvalidated(kind, name, 0, 1 << 16)
                    .map(|_| ()),
            ] {
                let err = result.unwrap_err();
                assert!(
                    matches!(&err, ArtifactError::Unsafe { reason, .. } if reason == "is a symbolic link"),
                    "{name}: {err:?}"
                );
                assert!(err.to_string().contains("symbolic link"), "{err}");
            }
        }
        assert_eq!(h.store.list_files(kind).unwrap(), vec!["real.png"]);
        // Removing a link removes the link, not its target.
        h.store.remove(kind, "abs.png").unwrap();
        h.store.remove(kind, "db.png").unwrap();
        assert!(std::fs::symlink_metadata(kf.join("abs.png")).is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), OUTSIDE_BYTES);
        assert_eq!(
            std::fs::read(h.home().join("vidpipe.db")).unwrap(),
            DB_BYTES
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_refused() {
        use std::os::unix::fs::symlink;
        let h = Home::new();
        let kind = ArtifactKind::Clip;
        let clips = h.kind_path(kind);
        symlink("loop.mp4", clips.join("loop.mp4")).unwrap();
        symlink("pong.mp4", clips.join("ping.mp4")).unwrap();
        symlink("ping.mp4", clips.join("pong.mp4")).unwrap();
        for name in ["loop.mp4", "ping.mp4"] {
            assert!(matches!(
                h.store.read_at(kind, name, 0, 10),
                Err(ArtifactError::Unsafe { .. })
            ));
            assert!(matches!(
                h.store.hash_file(kind, name),
                Err(ArtifactError::Unsafe { .. })
            ));
        }
    }

    #[cfg(unix)]
    #[test]
    fn publishing_onto_a_planted_symlink_replaces_the_link_not_its_target() {
        use std::os::unix::fs::symlink;
        let h = Home::new();
        let kind = ArtifactKind::Output;
        let target = h.kind_path(kind).join("final.mp4");
        let outside = h.tmp.path().join("outside.txt");
        symlink(&outside, &target).unwrap();
        let db_link = h.kind_path(kind).join("db.mp4");
        symlink("../../../vidpipe.db", &db_link).unwrap();

        h.write_published(kind, "final.mp4", b"new artifact bytes");
        h.write_published(kind, "db.mp4", b"not a database");

        assert_eq!(std::fs::read(&outside).unwrap(), OUTSIDE_BYTES);
        assert_eq!(
            std::fs::read(h.home().join("vidpipe.db")).unwrap(),
            DB_BYTES
        );
        assert!(std::fs::symlink_metadata(&target).unwrap().is_file());
        assert!(std::fs::symlink_metadata(&db_link).unwrap().is_file());
        assert_eq!(
            h.store.read_at(kind, "final.mp4", 0, 1 << 10).unwrap(),
            b"new artifact bytes"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_hard_link_to_a_file_outside_the_project_is_refused() {
        let h = Home::new();
        let kind = ArtifactKind::Keyframe;
        let kf = h.kind_path(kind);
        std::fs::hard_link(h.tmp.path().join("outside.txt"), kf.join("hard.png")).unwrap();
        std::fs::hard_link(h.home().join("vidpipe.db"), kf.join("db.png")).unwrap();
        for name in ["hard.png", "db.png"] {
            for result in [
                h.store.read_at(kind, name, 0, 1 << 16).map(|_| ()),
                h.store.hash_file(kind, name).map(|_| ()),
            ] {
                let err = result.unwrap_err();
                assert!(
                    matches!(&err, ArtifactError::Unsafe { reason, .. } if reason == "has 2 hard links"),
                    "{name}: {err:?}"
                );
                assert!(err.to_string().contains("hard links"), "{err}");
            }
        }
    }

    #[test]
    fn entries_that_are_not_regular_files_are_refused() {
        let h = Home::new();
        let kind = ArtifactKind::Keyframe;
        std::fs::create_dir(h.kind_path(kind).join("dir.png")).unwrap();
        let err = h.store.read_at(kind, "dir.png", 0, 10).unwrap_err();
        assert!(
            matches!(&err, ArtifactError::Unsafe { reason, .. } if reason.contains("directory")),
            "{err:?}"
        );
        assert!(matches!(
            h.store.hash_file(kind, "dir.png"),
            Err(ArtifactError::Unsafe { .. })
        ));
        assert!(h.store.list_files(kind).unwrap().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_fifo_is_refused_without_blocking() {
        let h = Home::new();
        let kind = ArtifactKind::Clip;
        let fifo = h.kind_path(kind).join("pipe.mp4");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = h.store.read_at(kind, "pipe.mp4", 0, 10).unwrap_err();
        assert!(
            matches!(&err, ArtifactError::Unsafe { reason, .. } if reason == "is not a regular file"),
            "{err:?}"
        );
    }

    #[test]
    fn write_finish_publish_round_trips_bytes_size_and_sha256() {
        let h = Home::new();
        let kind = ArtifactKind::Keyframe;
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();

        let mut writer = h.store.begin_write(kind, 1 << 20).unwrap();
        assert!(writer.staged_name().starts_with(STAGED_PREFIX));
        assert_eq!(writer.kind(), kind);
        for chunk in bytes.chunks(7_000) {
            writer.write(chunk).unwrap();
        }
        writer.write(&[]).unwrap();
        assert_eq!(writer.size(), bytes.len() as u64);
        let staged = writer.finish().unwrap();
        assert_eq!(
            staged,
            StagedArtifact {
                kind,
                staged_name: staged.staged_name.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
            }
        );

        // Before publish: the name does not exist and the staged file is not listed.
        assert!(matches!(
            h.store.read_at(kind, "frame.png", 0, 10),
            Err(ArtifactError::NotFound { .. })
        ));
        assert!(h.store.list_files(kind).unwrap().is_empty());
        assert_eq!(
            h.store.hash_file(kind, &staged.staged_name).unwrap(),
            (staged.size, staged.sha256.clone())
        );

        h.store
            .publish(kind, &staged.staged_name, "frame.png")
            .unwrap();
        assert_eq!(h.store.list_files(kind).unwrap(), vec!["frame.png"]);
        assert!(h.staged_entries(kind).is_empty());
        assert_eq!(
            h.store.hash_file(kind, "frame.png").unwrap(),
            (bytes.len() as u64, sha256_hex(&bytes))
        );
        assert_eq!(
            h.store.read_at(kind, "frame.png", 0, usize::MAX).unwrap(),
            bytes
        );
        assert_eq!(
            h.store.read_at(kind, "frame.png", 3, 4).unwrap(),
            &bytes[3..7]
        );
        let end = bytes.len() as u64;
        assert_eq!(
            h.store.read_at(kind, "frame.png", end - 5, 100).unwrap(),
            &bytes[bytes.len() - 5..]
        );
        assert!(
            h.store
                .read_at(kind, "frame.png", end, 100)
                .unwrap()
                .is_empty()
        );
        assert!(
            h.store
                .read_at(kind, "frame.png", u64::MAX, 100)
                .unwrap()
                .is_empty()
        );
        assert!(h.store.read_at(kind, "frame.png", 0, 0).unwrap().is_empty());
        // The same name in another folder is a different artifact.
        assert!(matches!(
            h.store.read_at(ArtifactKind::Clip, "frame.png", 0, 10),
            Err(ArtifactError::NotFound { .. })
        ));

        // Publishing again replaces the old artifact.
        h.write_published(kind, "frame.png", b"second version");
        assert_eq!(
            h.store.read_at(kind, "frame.png", 0, 1 << 10).unwrap(),
            b"second version"
        );
        assert_eq!(h.store.list_files(kind).unwrap(), vec!["frame.png"]);
    }

    #[test]
    fn an_empty_artifact_can_be_published() {
        let h = Home::new();
        let kind = ArtifactKind::Output;
        let staged = h.store.begin_write(kind, 0).unwrap().finish().unwrap();
        assert_eq!(staged.size, 0);
        assert_eq!(staged.sha256, sha256_hex(b""));
        h.store.publish(kind, &staged.staged_name, "empty").unwrap();
        assert_eq!(
            h.store.hash_file(kind, "empty").unwrap(),
            (0, sha256_hex(b""))
        );
    }

    #[test]
    fn a_writer_dropped_without_finish_leaves_no_staged_file() {
        let h = Home::new();
        let kind = ArtifactKind::Clip;
        let mut writer = h.store.begin_write(kind, 1 << 20).unwrap();
        writer.write(b"half an artifact").unwrap();
        assert_eq!(h.staged_entries(kind).len(), 1);
        drop(writer);
        assert!(h.staged_entries(kind).is_empty());
        assert!(h.store.list_files(kind).unwrap().is_empty());
    }

    #[test]
    fn max_size_is_enforced_and_a_failed_writer_cannot_be_finished() {
        let h = Home::new();
        let kind = ArtifactKind::Output;

        let mut exact = h.store.begin_write(kind, 10).unwrap();
        exact.write(b"0123456789").unwrap();
        assert_eq!(exact.finish().unwrap().size, 10);

        let mut writer = h.store.begin_write(kind, 10).unwrap();
        writer.write(b"012345").unwrap();
        let err = writer.write(b"67890").unwrap_err();
        assert!(
            matches!(err, ArtifactError::TooLarge { limit: 10 }),
            "{err:?}"
        );
        assert!(err.to_string().contains("10 bytes"), "{err}");
        assert_eq!(writer.size(), 6);
        // Nothing more is accepted, even a chunk that would fit.
        assert!(matches!(
            writer.write(b"6"),
            Err(ArtifactError::TooLarge { limit: 10 })
        ));
        assert_eq!(writer.size(), 6);
        let staged_name = writer.staged_name().to_owned();
        assert!(matches!(
            writer.finish(),
            Err(ArtifactError::TooLarge { limit: 10 })
        ));
        assert!(!h.staged_entries(kind).contains(&staged_name));
    }

    #[test]
    fn sweep_staged_removes_leftovers_and_only_those() {
        let h = Home::new();
        for kind in ArtifactKind::ALL {
            h.write_published(kind, "kept.bin", kind.as_str().as_bytes());
            // A finished but never published file, as a crash would leave it.
            h.write_staged(kind, b"leftover");
        }
        std::fs::write(h.kind_path(ArtifactKind::Clip).join(".other"), b"x").unwrap();
        assert_eq!(h.store.sweep_staged().unwrap(), 3);
        for kind in ArtifactKind::ALL {
            assert!(h.staged_entries(kind).is_empty());
            assert_eq!(h.store.list_files(kind).unwrap(), vec!["kept.bin"]);
            assert_eq!(
                h.store.read_at(kind, "kept.bin", 0, 100).unwrap(),
                kind.as_str().as_bytes()
            );
        }
        assert!(h.kind_path(ArtifactKind::Clip).join(".other").exists());
        assert_eq!(h.store.sweep_staged().unwrap(), 0);
    }

    #[test]
    fn discard_removes_a_staged_file_and_ignores_a_missing_one() {
        let h = Home::new();
        let kind = ArtifactKind::Keyframe;
        let staged = h.write_staged(kind, b"unwanted");
        h.store.discard(kind, &staged.staged_name).unwrap();
        assert!(h.staged_entries(kind).is_empty());
        h.store.discard(kind, &staged.staged_name).unwrap();
        assert!(matches!(
            h.store.publish(kind, &staged.staged_name, "x.png"),
            Err(ArtifactError::NotFound { .. })
        ));
    }

    #[test]
    fn remove_deletes_a_published_file_and_ignores_a_missing_one() {
        let h = Home::new();
        let kind = ArtifactKind::Clip;
        h.write_published(kind, "a.mp4", b"clip");
        h.store.remove(kind, "a.mp4").unwrap();
        assert!(h.store.list_files(kind).unwrap().is_empty());
        h.store.remove(kind, "a.mp4").unwrap();
    }

    #[test]
    fn list_files_is_sorted_and_hides_staged_files_links_and_folders() {
        let h = Home::new();
        let kind = ArtifactKind::Keyframe;
        for name in ["b.png", "a.png", "c.png"] {
            h.write_published(kind, name, name.as_bytes());
        }
        let _pending = h.store.begin_write(kind, 100).unwrap();
        h.write_staged(kind, b"finished, unpublished");
        std::fs::create_dir(h.kind_path(kind).join("folder")).unwrap();
        assert_eq!(
            h.store.list_files(kind).unwrap(),
            vec!["a.png", "b.png", "c.png"]
        );
    }

    #[test]
    fn create_project_is_idempotent_and_creates_the_three_folders() {
        let h = Home::new();
        for kind in ArtifactKind::ALL {
            assert!(h.kind_path(kind).is_dir(), "{kind}");
        }
        h.write_published(ArtifactKind::Clip, "kept.mp4", b"survives");
        let again = h.root.create_project(h.id).unwrap();
        for kind in ArtifactKind::ALL {
            assert!(h.kind_path(kind).is_dir(), "{kind}");
        }
        assert_eq!(
            again
                .read_at(ArtifactKind::Clip, "kept.mp4", 0, 100)
                .unwrap(),
            b"survives"
        );
        let mut entries: Vec<String> = std::fs::read_dir(h.project_path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        entries.sort();
        assert_eq!(entries, vec!["clips", "keyframes", "output"]);
    }

    #[test]
    fn project_opens_an_existing_project_and_recreates_a_missing_folder() {
        let h = Home::new();
        h.write_published(ArtifactKind::Output, "out.mp4", b"out");
        std::fs::remove_dir(h.kind_path(ArtifactKind::Keyframe)).unwrap();
        let store = h.root.project(h.id).unwrap();
        assert!(h.kind_path(ArtifactKind::Keyframe).is_dir());
        assert_eq!(
            store
                .read_at(ArtifactKind::Output, "out.mp4", 0, 10)
                .unwrap(),
            b"out"
        );
        let err = h.root.project(Uuid::new_v4()).unwrap_err();
        assert!(
            matches!(&err, ArtifactError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{err:?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_project_folder_that_is_a_symlink_is_not_opened() {
        let h = Home::new();
        let alias = Uuid::new_v4();
        std::os::unix::fs::symlink(
            h.id.to_string(),
            h.home().join("projects").join(alias.to_string()),
        )
        .unwrap();
        assert!(h.root.project(alias).is_err());
        assert!(h.root.create_project(alias).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn remove_project_deletes_the_tree_without_following_links_out() {
        let h = Home::new();
        h.write_published(ArtifactKind::Keyframe, "a.png", b"a");
        let kf = h.kind_path(ArtifactKind::Keyframe);
        std::os::unix::fs::symlink(h.home(), kf.join("home-link")).unwrap();
        std::os::unix::fs::symlink(h.home().join("vidpipe.db"), kf.join("db.png")).unwrap();
        std::fs::hard_link(h.home().join("secret"), kf.join("hard.png")).unwrap();
        let before: BTreeMap<PathBuf, Vec<u8>> = h
            .snapshot_outside_keyframes()
            .into_iter()
            .filter(|(path, _)| !path.starts_with(h.project_path()))
            .collect();

        h.root.remove_project(h.id).unwrap();
        assert!(!h.project_path().exists());
        assert_eq!(h.snapshot_outside_keyframes(), before);
        // Removing it again is not an error.
        h.root.remove_project(h.id).unwrap();
    }

    #[test]
    fn io_errors_name_the_operation_and_the_relative_path() {
        let err = io_error("open", display_path(ArtifactKind::Keyframe, "x.png"))(io::Error::from(
            io::ErrorKind::PermissionDenied,
        ));
        let message = err.to_string();
        assert!(
            message.starts_with("could not open keyframes/x.png: "),
            "{message}"
        );
        let escaped = display_path(ArtifactKind::Clip, &format!("a\nb{}", "c".repeat(500)));
        assert!(escaped.starts_with("clips/a\\nb"), "{escaped}");
        assert!(escaped.ends_with('…') && escaped.len() < 100, "{escaped}");
    }
}

/// Property tests of name handling: no input panics, and whatever is accepted stays one entry
/// of its folder.
#[cfg(test)]
mod name_properties {
    use proptest::prelude::*;

    use super::*;

    fn hostile_name() -> impl Strategy<Value = String> {
        let parts = prop_oneof![
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("/".to_owned()),
            Just("\\".to_owned()),
            Just("\0".to_owned()),
            Just("~".to_owned()),
            "[a-z]{1,5}",
            ".{1,4}",
        ];
        proptest::collection::vec(parts, 0..6).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_name_is_either_refused_or_lands_as_one_file_in_its_folder(name in hostile_name()) {
            let tmp = tempfile::tempdir().expect("tempdir");
            let root = ArtifactRoot::open(&tmp.path().join("projects")).expect("root");
            let id = uuid::Uuid::new_v4();
            let store = root.create_project(id).expect("project");
            match validate_name(&name) {
                Err(ArtifactError::InvalidName { .. }) => {
                    // Refused names are refused by every entry point too.
                    prop_assert!(store.read_at(ArtifactKind::Output, &name, 0, 1).is_err());
                    prop_assert!(store.remove(ArtifactKind::Output, &name).is_err());
                }
                Err(other) => prop_assert!(false, "validate_name returned {other}"),
                Ok(()) => {
                    prop_assert!(!name.contains('/') && name != "." && name != "..");
                    let mut w = store.begin_write(ArtifactKind::Output, 1 << 20).expect("writer");
                    w.write(b"x").expect("write");
                    let staged = w.finish().expect("finish");
                    store.publish(ArtifactKind::Output, &staged.staged_name, &name).expect("publish");
                    let folder = tmp.path().join("projects").join(id.to_string()).join("output");
                    let entries: Vec<_> = std::fs::read_dir(&folder).expect("list")
                        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
                    prop_assert_eq!(entries, vec![name.clone()]);
                    prop_assert_eq!(store.read_at(ArtifactKind::Output, &name, 0, 10).expect("read"), b"x".to_vec());
                }
            }
        }
    }
}
