//! The host side of each WIT interface, one file per interface, over one per-run context.
//!
//! [`StageContext`] is everything a running stage can reach: its project's database session and
//! artifact folders, and its stage name for logs. It is built by the runner for one run and
//! project and handed to the store; nothing in it can name another project.

pub mod artifacts;
mod db;
pub mod log;

use crate::artifacts::{ArtifactError, ProjectStore};
use crate::bindings::types::{Error, ErrorCode};
use crate::db::DbError;
use crate::db::stage::StageSession;

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
    fn default() -> Self {
        StoreLimits {
            max_artifact_bytes: 4 << 30,
            max_read_bytes: 4 << 20,
            max_open_writers: 64,
            project_quota_bytes: 20 << 30,
        }
    }
}

/// Receives a stage's progress reports.
pub type ProgressSink = Box<dyn FnMut(&str, u64, u64, &str) + Send>;

/// Everything one running stage can reach.
pub struct StageContext {
    /// The stage's name, for logs.
    pub stage: String,
    /// Its database session (bound to its project and run).
    pub db: StageSession,
    /// Its project's artifact folders.
    pub files: ProjectStore,
    /// What it may store.
    pub limits: StoreLimits,
    /// Where progress goes.
    pub progress: ProgressSink,
    /// Host state behind the guest's resource handles (open writers).
    pub(crate) table: wasmtime::component::ResourceTable,
    /// How many writers are open now (bounded by `limits.max_open_writers`).
    pub(crate) open_writers: usize,
    /// What the stage may still make the host print (shared with the capture of its stdout
    /// and stderr).
    pub(crate) output: std::sync::Arc<log::OutputBudget>,
    /// Progress reports held back between sends.
    pub(crate) progress_throttle: log::ProgressThrottle,
    /// Bytes on disk of the files of writers not yet finished (in blocks).
    pub(crate) open_disk_bytes: u64,
    /// Bytes on disk of the project's committed artifacts, once first needed; they do not
    /// change while the run holds the project's lock.
    pub(crate) committed_disk_bytes: Option<u64>,
}

impl StageContext {
    /// Binds a context to one run's database session and project folders.
    pub fn new(
        stage: String,
        db: StageSession,
        files: ProjectStore,
        limits: StoreLimits,
        progress: ProgressSink,
    ) -> Self {
        let output = std::sync::Arc::new(log::OutputBudget::new(&stage));
        StageContext {
            stage,
            db,
            files,
            limits,
            progress,
            table: wasmtime::component::ResourceTable::new(),
            open_writers: 0,
            output,
            progress_throttle: log::ProgressThrottle::default(),
            open_disk_bytes: 0,
            committed_disk_bytes: None,
        }
    }
}

/// The trap of a stage whose deadline passed while the host was working for it; the runtime
/// reports it like the epoch deadline, with the limit's value.
#[derive(Debug, thiserror::Error)]
#[error("the stage exceeded its time limit during a database call")]
pub struct DeadlineInHost;

/// What a host function returns on failure: an error the guest sees, or a trap that ends it.
#[derive(Debug)]
pub enum HostError {
    /// A WIT `error` returned to the guest.
    Guest(Error),
    /// A trap: the stage ends at once with this reason.
    Trap(wasmtime::Error),
}

impl HostError {
    /// A guest-visible error with `code` and `message`.
    pub fn guest(code: ErrorCode, message: impl Into<String>) -> Self {
        HostError::Guest(Error {
            code,
            message: message.into(),
        })
    }
}

impl From<DbError> for HostError {
    fn from(e: DbError) -> Self {
        if matches!(e, DbError::Interrupted) {
            // The deadline passed inside the host: end the stage as the epoch deadline would.
            return HostError::Trap(wasmtime::Error::new(DeadlineInHost));
        }
        let code = match &e {
            DbError::CommitFailed(_) => ErrorCode::Io,
            DbError::NotFound(_) => ErrorCode::NotFound,
            DbError::InvalidInput(_) => ErrorCode::InvalidInput,
            DbError::Conflict(_) => ErrorCode::Conflict,
            DbError::LimitExceeded(_) => ErrorCode::LimitExceeded,
            DbError::Busy { .. } | DbError::HeldByStopped { .. } => ErrorCode::Busy,
            DbError::Sqlite(_)
            | DbError::TooNew { .. }
            | DbError::Setup(_)
            | DbError::Interrupted => ErrorCode::Io,
        };
        HostError::guest(code, e.to_string())
    }
}

impl From<ArtifactError> for HostError {
    fn from(e: ArtifactError) -> Self {
        let code = match &e {
            ArtifactError::InvalidName { .. } => ErrorCode::InvalidInput,
            ArtifactError::NotFound { .. } => ErrorCode::NotFound,
            ArtifactError::TooLarge { .. } => ErrorCode::LimitExceeded,
            ArtifactError::Unsafe { .. } => ErrorCode::InvalidInput,
            ArtifactError::Io { .. } => ErrorCode::Io,
        };
        HostError::guest(code, e.to_string())
    }
}

impl crate::bindings::types::Host for StageContext {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<Error> {
        match err {
            HostError::Guest(e) => Ok(e),
            HostError::Trap(t) => Err(t),
        }
    }
}
