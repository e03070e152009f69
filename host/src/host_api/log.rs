//! `vidpipe:plugin/log`: guest messages into the host's `tracing` logs, tagged with the stage.

use super::StageContext;
use crate::bindings::log::{Host, Level};

/// Longest message logged as is; longer ones are cut, so a guest cannot flood the host's log
/// with one call.
const MAX_MESSAGE_CHARS: usize = 4096;

fn clip(message: &str) -> &str {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => &message[..at],
        None => message,
    }
}

impl Host for StageContext {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let stage = self.stage.as_str();
        let message = clip(&message);
        match level {
            Level::Trace => tracing::trace!(target: "vidpipe::guest", stage, "{message}"),
            Level::Debug => tracing::debug!(target: "vidpipe::guest", stage, "{message}"),
            Level::Info => tracing::info!(target: "vidpipe::guest", stage, "{message}"),
            Level::Warn => tracing::warn!(target: "vidpipe::guest", stage, "{message}"),
            Level::Error => tracing::error!(target: "vidpipe::guest", stage, "{message}"),
        }
        Ok(())
    }

    fn progress(&mut self, done: u64, total: u64, message: String) -> wasmtime::Result<()> {
        (self.progress)(&self.stage, done, total, clip(&message));
        Ok(())
    }
}
