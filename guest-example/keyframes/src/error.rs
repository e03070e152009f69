//! The stage's error type, shared by the example stages (see `vidpipe-stage-kit`).

pub use vidpipe_stage_kit::{ErrorCode, StageError};
