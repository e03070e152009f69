//! A project's artifact folders: opening them, beginning staged writes, reads that refuse
//! links and non-files, listing, and sweeping staged files a crash left behind.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsSyncExt};
use cap_std::fs::{Dir, File, OpenOptions};
use sha2::{Digest, Sha256};

use super::names::display_path;
use super::names::{shown, validate_file_name};
use super::{
    ArtifactError, ArtifactKind, IO_BUFFER_BYTES, STAGED_PREFIX, ensure_dir, io_error, sync_dir,
    validate_name,
};

/// One project's artifact folders.
#[derive(Debug)]
pub struct ProjectStore {
    keyframes: Dir,
    clips: Dir,
    output: Dir,
    /// Set when a staged file could not be removed (see [`ProjectStore::left_staged_files`]).
    pub(super) left_behind: Arc<AtomicBool>,
}

impl ProjectStore {
    /// Opens (creating if missing) the three kind folders of the open project folder `project`,
    /// and fsyncs `project` if it had to create any.
    pub(super) fn open_kinds(project: &Dir, path: &str) -> Result<Self, ArtifactError> {
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
    pub(super) fn dir(&self, kind: ArtifactKind) -> &Dir {
        match kind {
            ArtifactKind::Keyframe => &self.keyframes,
            ArtifactKind::Clip => &self.clips,
            ArtifactKind::Output => &self.output,
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
    pub(super) fn read_at_unvalidated(
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
    pub(super) fn hash_file_unvalidated(
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
    pub(super) fn open_checked(
        &self,
        kind: ArtifactKind,
        file: &str,
    ) -> Result<(File, u64), ArtifactError> {
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
pub(super) fn describe_non_file(file_type: &cap_std::fs::FileType) -> String {
    if file_type.is_symlink() {
        "is a symbolic link"
    } else if file_type.is_dir() {
        "is a directory, not a regular file"
    } else {
        "is not a regular file"
    }
    .to_owned()
}
