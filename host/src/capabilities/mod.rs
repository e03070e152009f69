//! The capabilities a stage can reach: the host side of each WIT interface, one room per
//! interface, over one per-run context.
//!
//! Each room (`db`, `artifacts`, `log`) owns its interface's `Host` impl, the per-run state it
//! needs and the limits it enforces (declared there as [`crate::limits::LimitSpec`]s, composed by
//! `runtime::limits::ALL`); it reaches storage and nothing else. A new capability (outbound HTTP,
//! secrets) is a new room here, one line in `bindings` if it has a WIT interface, and one line
//! where the runtime links it.
//!
//! [`StageContext`] is everything a running stage can reach: its project's database session and
//! artifact folders, and its stage name for logs. It is built by the runner for one run and
//! project and handed to the store; nothing in it can name another project.
//!
//! `bindings` (the one `bindgen!`) lives here because the generated traits and this module name
//! each other: the WIT `error` and `writer` types map onto [`HostError`] and the artifacts
//! room's writer state, and the rooms implement the generated traits.

pub mod artifacts;
pub(crate) mod bindings;
pub mod db;
pub mod log;
pub mod v0_1;

pub use artifacts::StoreLimits;

use crate::artifacts::{ArtifactError, ArtifactKind, ProjectStore};
use crate::db::DbError;
use crate::db::stage::StageSession;
use bindings::types::{ArtifactKind as WitKind, Error, ErrorCode};

/// Receives a stage's progress reports.
pub type ProgressSink = Box<dyn FnMut(&str, u64, u64, &str) + Send>;

/// Everything one running stage can reach: its name, the storage handles bound to its project
/// and run, and each room's per-run state.
pub struct StageContext {
    /// The stage's name, for logs.
    pub stage: String,
    /// Its database session (bound to its project and run): the `db` room's state.
    pub db: StageSession,
    /// Its project's artifact folders.
    pub files: ProjectStore,
    /// The `artifacts` room's state: its limits, open writers, bytes counted against the quota.
    pub artifacts: artifacts::ArtifactsState,
    /// The `log` room's state: where progress goes, the output budget, held-back progress.
    pub log: log::LogState,
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
        let log = log::LogState::new(&stage, progress);
        StageContext {
            stage,
            db,
            files,
            artifacts: artifacts::ArtifactsState::new(limits),
            log,
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
            DbError::OutOfScope(_) => ErrorCode::OutOfScope,
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
        let message = match &e {
            ArtifactError::TooLarge { .. } => format!("{e} ({})", artifacts::MAX_ARTIFACT_SIZE.key),
            _ => e.to_string(),
        };
        HostError::guest(code, message)
    }
}

/// The artifact kind of the WIT contract as storage names it.
pub(crate) fn kind(k: WitKind) -> ArtifactKind {
    match k {
        WitKind::Keyframe => ArtifactKind::Keyframe,
        WitKind::Clip => ArtifactKind::Clip,
        WitKind::Output => ArtifactKind::Output,
    }
}

/// A storage artifact kind as the WIT contract names it.
pub(crate) fn wit_kind(k: ArtifactKind) -> WitKind {
    match k {
        ArtifactKind::Keyframe => WitKind::Keyframe,
        ArtifactKind::Clip => WitKind::Clip,
        ArtifactKind::Output => WitKind::Output,
    }
}

impl bindings::types::Host for StageContext {
    fn convert_error(&mut self, err: HostError) -> wasmtime::Result<Error> {
        match err {
            HostError::Guest(e) => Ok(e),
            HostError::Trap(t) => Err(t),
        }
    }
}
