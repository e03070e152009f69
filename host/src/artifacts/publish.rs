//! Moving staged files onto their names (atomic renames that never write through a link),
//! discarding and removing files, and the folder fsyncs that make those durable.

use std::io;
use std::sync::atomic::Ordering;

use cap_fs_ext::DirExt;

use super::names::{display_path, shown, validate_staged_name};
use super::store::describe_non_file;
use super::{ArtifactError, ArtifactKind, ProjectStore, io_error, sync_dir, validate_name};

impl ProjectStore {
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
    pub(super) fn publish_unvalidated(
        &self,
        kind: ArtifactKind,
        staged: &str,
        name: &str,
    ) -> Result<(), ArtifactError> {
        self.rename_unvalidated(kind, staged, name)?;
        sync_dir(self.dir(kind), kind.dir_name())
    }

    /// Renames a staged regular file onto `name`, without the name checks or a folder fsync.
    pub(super) fn rename_unvalidated(
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
    pub(super) fn discard_unvalidated(
        &self,
        kind: ArtifactKind,
        staged: &str,
    ) -> Result<(), ArtifactError> {
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
    pub(super) fn remove_unvalidated(
        &self,
        kind: ArtifactKind,
        name: &str,
    ) -> Result<(), ArtifactError> {
        let dir = self.dir(kind);
        match dir.remove_file_or_symlink(name) {
            Ok(()) => sync_dir(dir, kind.dir_name()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", display_path(kind, name))(e)),
        }
    }
}
