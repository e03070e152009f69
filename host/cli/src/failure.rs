//! How a command failed, which decides the exit code, and the one line that says why.

use std::process::ExitCode;

use vidpipe_host::db::DbError;
use vidpipe_host::home::HomeError;
use vidpipe_host::input::InputError;
use vidpipe_host::pipeline::ManifestError;
use vidpipe_host::runtime::PluginError;

/// Longest error line printed, in characters: enough for a run's whole stored error (4096
/// characters) and what leads up to it, short enough that a hostile input (a 10 KB id, a
/// manifest nested 100,000 deep) cannot flood it.
const MAX_ERROR_CHARS: usize = 4600;

/// How a command failed.
pub enum Failure {
    /// Bad input or usage: nothing was written. Exit 2.
    BadInput(anyhow::Error),
    /// The stage ran and failed (recorded as such), or the host failed. Exit 1.
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let e = e.into();
        if is_bad_input(&e) {
            Failure::BadInput(e)
        } else {
            Failure::Failed(e)
        }
    }
}

impl Failure {
    /// Prints the error line on stderr and returns the exit code.
    pub fn report(self) -> ExitCode {
        let (code, e) = match self {
            Failure::BadInput(e) => (2, e),
            Failure::Failed(e) => (1, e),
        };
        crate::output::error_line(&one_line(&e));
        ExitCode::from(code)
    }
}

/// A failure of the stage or pipeline the user ran (exit 1), with its message.
pub fn failed(message: String) -> Failure {
    Failure::Failed(anyhow::Error::msg(message))
}

/// The cause chain of `e` on one line, each cause once: a cause whose text its parent already
/// shows (as many errors embed their source's message) is not repeated. Made printable and
/// cut to [`MAX_ERROR_CHARS`].
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    vidpipe_host::text::printable(&line, MAX_ERROR_CHARS)
}

/// Errors caused by what the user passed rather than by the host or the stage.
fn is_bad_input(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<PluginError>()
            || cause.is::<ManifestError>()
            || cause.is::<InputError>()
            || cause.is::<clap::Error>()
            || cause.downcast_ref::<DbError>().is_some_and(db_bad_input)
            || cause
                .downcast_ref::<HomeError>()
                .is_some_and(home_bad_input)
            || cause.is::<UsageError>()
    })
}

fn home_bad_input(e: &HomeError) -> bool {
    match e.db_error() {
        Some(e) => db_bad_input(e),
        None => e.is_bad_input(),
    }
}

/// A lookup or a value the user gave was wrong (as opposed to the database failing).
fn db_bad_input(e: &DbError) -> bool {
    matches!(e, DbError::NotFound(_) | DbError::InvalidInput(_))
}

/// A usage mistake the CLI itself detected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A [`UsageError`] (exit 2).
pub fn bad(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("could not create the home folder h: {source}")]
    struct Embeds {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_its_parent_already_shows_is_printed_once() {
        let io = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
        let text = io.to_string();
        let e = anyhow::Error::new(Embeds { source: io });
        let line = one_line(&e);
        assert_eq!(line.matches(&text).count(), 1, "{line}");
    }

    #[test]
    fn the_line_is_one_line_escaped_and_bounded() {
        let e = anyhow::anyhow!("a\nb\u{1b}[2J{}", "x".repeat(100_000)).context("outer");
        let line = one_line(&e);
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
        assert!(
            line.chars().count() <= MAX_ERROR_CHARS + 1,
            "{}",
            line.len()
        );
        assert!(line.starts_with("outer: a\\u{a}b"), "{line}");
    }
}
