//! What the example stages share that does not depend on their WIT bindings: the stage error
//! type, mirroring the WIT `error` record, so stage logic can be written and tested natively.

use std::fmt;

/// Why the stage failed; maps one to one onto the WIT `error-code` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// An id or name does not exist in the project.
    NotFound,
    /// The configuration, the script or the project's rows are unusable.
    InvalidInput,
    /// The project's existing state contradicts what the stage would write.
    Conflict,
    /// A limit of the run was reached.
    LimitExceeded,
    /// The host's storage failed.
    Io,
    /// The host's database was busy.
    Busy,
}

impl ErrorCode {
    /// The WIT spelling of the code, as shown in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not-found",
            Self::InvalidInput => "invalid-input",
            Self::Conflict => "conflict",
            Self::LimitExceeded => "limit-exceeded",
            Self::Io => "io",
            Self::Busy => "busy",
        }
    }
}

/// A failure of the stage: a machine-readable code plus a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// What went wrong, naming the offending value.
    pub message: String,
}

impl StageError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// An `invalid-input` error.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// The same error with `context` put in front of its message, keeping the code.
    pub fn context(self, context: &str) -> Self {
        Self {
            code: self.code,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for StageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_shows_its_wit_code_and_keeps_it_through_context() {
        let e = StageError::invalid_input("no scenes").context("keyframes");
        assert_eq!(e.code, ErrorCode::InvalidInput);
        assert_eq!(e.to_string(), "invalid-input: keyframes: no scenes");
    }
}
