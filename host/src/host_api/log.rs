//! `vidpipe:plugin/log`: guest messages into the host's `tracing` logs, tagged with the stage.

use super::StageContext;
use crate::bindings::log::{Host, Level};

/// Longest message logged as is; longer ones are cut, so a guest cannot flood the host's log
/// with one call.
const MAX_MESSAGE_CHARS: usize = 4096;
/// Most bytes of log messages one run may emit; beyond it messages are counted and dropped.
pub const MAX_LOG_BYTES: usize = 1 << 20;

fn clip(message: &str) -> String {
    crate::text::printable(message, MAX_MESSAGE_CHARS)
}

impl Host for StageContext {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let message = clip(&message);
        if !self.charge_log(message.len()) {
            return Ok(());
        }
        let stage = self.stage.as_str();
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
        let message = clip(&message);
        if !self.charge_log(message.len()) {
            return Ok(());
        }
        (self.progress)(&self.stage, done, total, &message);
        Ok(())
    }
}

impl StageContext {
    /// Counts `bytes` of log output; false once the run has used up [`MAX_LOG_BYTES`] (said
    /// once, then silent).
    fn charge_log(&mut self, bytes: usize) -> bool {
        if self.log_bytes >= MAX_LOG_BYTES {
            return false;
        }
        self.log_bytes += bytes.max(1);
        if self.log_bytes >= MAX_LOG_BYTES {
            tracing::warn!(stage = %self.stage, "the stage logged more than {MAX_LOG_BYTES} bytes; the rest is dropped");
        }
        true
    }
}
