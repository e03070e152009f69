//! `vidpipe:plugin/artifacts`: the run's project folders, through its [`ProjectStore`] and the
//! staged artifact rows of its database session.
//!
//! A writer streams into a staged file (`.stage-…`, a name no guest can spell). `finish` makes it
//! durable and records it as staged in the session; the rename onto its real name happens only
//! when the whole stage commits. Reads see the run's own staged files first.
//!
//! [`ProjectStore`]: crate::artifacts::ProjectStore

use wasmtime::component::Resource;

use super::bindings::artifacts::{ArtifactInfo, ArtifactPage, Host, HostWriter};
use super::bindings::types::{ArtifactKind as WitKind, ErrorCode};
use super::{HostError, StageContext, kind, wit_kind};
use crate::artifacts::{BLOCK_BYTES, StagedWriter, disk_bytes, validate_name};
use crate::db;
use crate::limits::{Checked, LimitSpec, Unit};

/// `max-artifact-size`: the size of one artifact.
pub static MAX_ARTIFACT_SIZE: LimitSpec = LimitSpec {
    key: "max-artifact-size",
    unit: Unit::MiB,
    default: 4096,
    min: 1,
    max: 1 << 20,
    help: "Size of one artifact, in MiB",
};
/// `project-quota`: what all of the project's artifacts may take on disk while the stage runs
/// and after it commits.
pub static PROJECT_QUOTA: LimitSpec = LimitSpec {
    key: "project-quota",
    unit: Unit::MiB,
    default: 20 << 10,
    min: 1,
    max: 1 << 30,
    help: "All of the project's artifacts after the stage, in MiB",
};
/// `max-writers`: artifact writers open at once.
pub static MAX_WRITERS: LimitSpec = LimitSpec {
    key: "max-writers",
    unit: Unit::Count,
    default: 64,
    min: 1,
    max: 100_000,
    help: "Artifact writers open at once",
};

/// Most bytes one `read` call returns.
pub const MAX_READ: u32 = 4 << 20;

/// Limits on what one stage run may store.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Largest single artifact, in bytes.
    pub max_artifact_bytes: u64,
    /// Most bytes one `read` call returns.
    pub max_read_bytes: u32,
    /// Most writers open at once.
    pub max_open_writers: usize,
    /// Most bytes all of the project's artifacts may take once the stage commits.
    pub project_quota_bytes: u64,
}

impl Default for StoreLimits {
    /// Every limit at its declared default.
    fn default() -> Self {
        limits(&Checked::default())
    }
}

/// This room's limits, from checked settings.
pub fn limits(c: &Checked) -> StoreLimits {
    StoreLimits {
        max_artifact_bytes: c.bytes(&MAX_ARTIFACT_SIZE),
        max_read_bytes: MAX_READ,
        max_open_writers: c.count_usize(&MAX_WRITERS),
        project_quota_bytes: c.bytes(&PROJECT_QUOTA),
    }
}

/// The per-run state of this room.
pub struct ArtifactsState {
    /// What the stage may store.
    pub limits: StoreLimits,
    /// Host state behind the guest's resource handles (open writers).
    pub(crate) table: wasmtime::component::ResourceTable,
    /// How many writers are open now (bounded by `limits.max_open_writers`).
    pub(crate) open_writers: usize,
    /// Bytes on disk of the files of writers not yet finished (in blocks).
    pub(crate) open_disk_bytes: u64,
    /// Bytes on disk of the project's committed artifacts, once first needed; they do not
    /// change while the run holds the project's lock.
    pub(crate) committed_disk_bytes: Option<u64>,
}

impl ArtifactsState {
    /// Nothing open yet, within `limits`.
    pub fn new(limits: StoreLimits) -> Self {
        ArtifactsState {
            limits,
            table: wasmtime::component::ResourceTable::new(),
            open_writers: 0,
            open_disk_bytes: 0,
            committed_disk_bytes: None,
        }
    }
}

/// Largest chunk one `write` call accepts.
pub const MAX_CHUNK: usize = 16 << 20;

/// The host state behind a guest's `writer` handle.
pub struct WriterState {
    name: String,
    writer: StagedWriter,
    /// Its bytes on disk counted in [`StageContext::open_disk_bytes`], given back when it ends.
    counted: u64,
}

fn info(a: db::Artifact) -> ArtifactInfo {
    ArtifactInfo {
        kind: wit_kind(a.kind.into()),
        name: a.name,
        size: a.size,
        sha256: a.sha256,
        created_at: a.created_at,
    }
}

fn trap(e: impl Into<wasmtime::Error>) -> HostError {
    HostError::Trap(e.into())
}

impl StageContext {
    /// The artifact `name` of folder `k`, as this run sees it, noted as read (the guest asked).
    fn find(&mut self, k: WitKind, name: &str) -> Result<db::stage::ArtifactView, HostError> {
        validate_name(name)?;
        self.db
            .observe(db::Read::Artifact(kind(k).into(), name.to_owned()));
        self.lookup(k, name)
    }

    /// [`find`](Self::find) without noting a read: for what the host reports of the run's own
    /// writes.
    fn lookup(&self, k: WitKind, name: &str) -> Result<db::stage::ArtifactView, HostError> {
        let kind = kind(k);
        self.db.artifact(kind.into(), name)?.ok_or_else(|| {
            HostError::guest(ErrorCode::NotFound, format!("no artifact {kind}/{name}"))
        })
    }
}

impl StageContext {
    /// Refuses `extra` more bytes on disk if the project's committed artifacts, the run's
    /// staged files and its unfinished writers would then take more than the project quota.
    /// Everything counts while it is on disk, in whole blocks ([`disk_bytes`]): an artifact the
    /// run replaces or deletes keeps its bytes until the run commits, and every file takes at
    /// least a block. Checked before each writer is opened and each chunk is written, so a run
    /// alone never makes the project hold more than its quota. The committed bytes are summed
    /// once per run: runs of the project committing while this one runs (other shards) are not
    /// seen, so runs at once can pass it together (SECURITY.md says by how much).
    fn check_quota(&mut self, extra: u64) -> Result<(), HostError> {
        let committed = match self.artifacts.committed_disk_bytes {
            Some(bytes) => bytes,
            None => *self
                .artifacts
                .committed_disk_bytes
                .insert(self.db.committed_disk_bytes()?),
        };
        let quota = self.artifacts.limits.project_quota_bytes;
        let after = committed
            .saturating_add(self.db.staged_disk_bytes())
            .saturating_add(self.artifacts.open_disk_bytes)
            .saturating_add(extra);
        if after > quota {
            return Err(HostError::guest(
                ErrorCode::LimitExceeded,
                format!(
                    "writing {extra} more bytes would make the project take {after} bytes on disk \
                     (committed artifacts, this run's finished and unfinished ones, in {BLOCK_BYTES}-byte \
                     blocks); the project quota is {quota} bytes ({})",
                    PROJECT_QUOTA.key
                ),
            ));
        }
        Ok(())
    }
}

impl HostWriter for StageContext {
    fn write(&mut self, this: Resource<WriterState>, chunk: Vec<u8>) -> Result<(), HostError> {
        if chunk.len() > MAX_CHUNK {
            return Err(HostError::guest(
                ErrorCode::LimitExceeded,
                format!(
                    "a write chunk has {} bytes; the limit is {MAX_CHUNK}",
                    chunk.len()
                ),
            ));
        }
        let size = self.artifacts.table.get(&this).map_err(trap)?.writer.size();
        let grows = disk_bytes(size.saturating_add(chunk.len() as u64)) - disk_bytes(size);
        self.check_quota(grows)?;
        let state = self.artifacts.table.get_mut(&this).map_err(trap)?;
        let written = state.writer.write(&chunk);
        // Count what the file now holds, whether or not the write (or its sync) succeeded.
        let now = disk_bytes(state.writer.size()).max(state.counted);
        self.artifacts.open_disk_bytes += now - state.counted;
        state.counted = now;
        written?;
        Ok(())
    }

    fn finish(&mut self, this: Resource<WriterState>) -> Result<ArtifactInfo, HostError> {
        let WriterState {
            name,
            writer,
            counted,
        } = self.artifacts.table.delete(this).map_err(trap)?;
        self.artifacts.open_writers -= 1;
        // Its bytes were counted, chunk by chunk, as they were written; from here on the
        // session counts them as staged.
        self.artifacts.open_disk_bytes = self.artifacts.open_disk_bytes.saturating_sub(counted);
        let staged = writer.finish()?;
        let kind = staged.kind;
        let recorded = self.db.stage_artifact(
            kind.into(),
            &name,
            &staged.staged_name,
            staged.size,
            &staged.sha256,
        );
        let replaced = match recorded {
            Ok(replaced) => replaced,
            Err(e) => {
                self.files.discard(kind, &staged.staged_name)?;
                return Err(e.into());
            }
        };
        if let Some(old) = replaced {
            // The new artifact is staged either way; a leftover staged file is swept the next
            // time the project is locked.
            if let Err(e) = self.files.discard(kind, &old) {
                tracing::warn!(stage = %self.stage, "could not remove a superseded staged file {kind}/{old}: {e}");
            }
        }
        // Report what is recorded, so `finish` and a later `stat` agree.
        let view = self.lookup(wit_kind(kind), &name)?;
        Ok(info(view.info))
    }

    fn drop(&mut self, this: Resource<WriterState>) -> wasmtime::Result<()> {
        // Dropping the StagedWriter removes its staged file: nothing is published.
        let state = self.artifacts.table.delete(this)?;
        self.artifacts.open_writers -= 1;
        self.artifacts.open_disk_bytes =
            self.artifacts.open_disk_bytes.saturating_sub(state.counted);
        Ok(())
    }
}

impl Host for StageContext {
    fn create(&mut self, k: WitKind, name: String) -> Result<Resource<WriterState>, HostError> {
        validate_name(&name)?;
        if self.artifacts.open_writers >= self.artifacts.limits.max_open_writers {
            return Err(HostError::guest(
                ErrorCode::LimitExceeded,
                format!(
                    "at most {} artifact writers may be open at once ({})",
                    self.artifacts.limits.max_open_writers, MAX_WRITERS.key
                ),
            ));
        }
        // A shard may not replace another scene's file.
        self.db.touch_artifact(kind(k).into(), &name, "replacing")?;
        // A new file takes a block before anything is written to it.
        self.check_quota(disk_bytes(0))?;
        let writer = self
            .files
            .begin_write(kind(k), self.artifacts.limits.max_artifact_bytes)?;
        let handle = self
            .artifacts
            .table
            .push(WriterState {
                name,
                writer,
                counted: disk_bytes(0),
            })
            .map_err(trap)?;
        self.artifacts.open_writers += 1;
        self.artifacts.open_disk_bytes += disk_bytes(0);
        Ok(handle)
    }

    fn read(
        &mut self,
        k: WitKind,
        name: String,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>, HostError> {
        let view = self.find(k, &name)?;
        let file = view.staged.as_deref().unwrap_or(&name);
        let len = length.min(self.artifacts.limits.max_read_bytes) as usize;
        Ok(self.files.read_at(kind(k), file, offset, len)?)
    }

    fn stat(&mut self, k: WitKind, name: String) -> Result<ArtifactInfo, HostError> {
        Ok(info(self.find(k, &name)?.info))
    }

    fn list(
        &mut self,
        k: WitKind,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<ArtifactPage, HostError> {
        self.db.observe(db::Read::Artifacts(kind(k).into()));
        let page = self
            .db
            .list_artifacts(kind(k).into(), cursor.as_deref(), limit)?;
        Ok(ArtifactPage {
            items: page.items.into_iter().map(info).collect(),
            next_cursor: page.next_cursor,
        })
    }

    fn delete(&mut self, k: WitKind, name: String) -> Result<(), HostError> {
        validate_name(&name)?;
        let kind = kind(k);
        if let Some(staged) = self.db.stage_delete(kind.into(), &name)? {
            self.files.discard(kind, &staged)?;
        }
        Ok(())
    }
}
