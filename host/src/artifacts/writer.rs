//! Streaming a new artifact into its staged file: buffered writes, the size limit, periodic
//! syncs, `finish` (fsync, size and SHA-256), and removal of the file if the writer is dropped.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cap_std::fs::{Dir, File};
use sha2::{Digest, Sha256};

use cap_std::fs::OpenOptions;
use uuid::Uuid;

use super::names::display_path;
use super::{
    ArtifactError, ArtifactKind, IO_BUFFER_BYTES, ProjectStore, STAGED_PREFIX, SYNC_EVERY, io_error,
};

impl ProjectStore {
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
