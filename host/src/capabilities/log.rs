//! `vidpipe:plugin/log`: guest messages into the host's `tracing` logs, tagged with the stage,
//! and progress reports to the run's progress sink.
//!
//! Everything a stage makes the host print (log lines, progress lines, its own stdout and
//! stderr) is charged to one [`OutputBudget`] per run, by the bytes of the line as printed,
//! prefix and all, so that a million empty messages cost what they print. Progress reports are
//! forwarded at most every [`PROGRESS_INTERVAL`]; the latest one held back is forwarded when
//! the run ends. That bounds both the plain lines
//! and the redraws of a progress bar, whatever the stage calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::StageContext;
use super::bindings::log::{Host, Level};

/// Longest message logged as is; longer ones are cut, so a guest cannot flood the host's log
/// with one call.
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// Most bytes one run may make the host print on its behalf (log and progress lines, its
/// stdout and stderr), counted as printed; beyond it lines are counted and dropped.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// What a printed line costs on top of its message and stage name: the level, the field
/// names, colour codes on a terminal and the newline. More than any of them takes.
pub const LINE_OVERHEAD: usize = 96;
/// Least time between two progress reports that reach the sink.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// How much a run may still print on its behalf; shared by the log interface and the capture of
/// its stdout and stderr.
#[derive(Debug)]
pub struct OutputBudget {
    stage: String,
    used: AtomicUsize,
    dropped_lines: AtomicU64,
    warned: AtomicBool,
}

impl OutputBudget {
    /// A fresh budget of [`MAX_OUTPUT_BYTES`] for a run of `stage`.
    pub fn new(stage: &str) -> Self {
        OutputBudget {
            stage: stage.to_owned(),
            used: AtomicUsize::new(0),
            dropped_lines: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// Charges one printed line holding `message_bytes` bytes of message; false (and the line
    /// must be dropped) once the run has used its budget. The first refusal is said once.
    pub fn charge(&self, message_bytes: usize) -> bool {
        let cost = LINE_OVERHEAD
            .saturating_add(self.stage.len())
            .saturating_add(message_bytes);
        let granted = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                let after = used.saturating_add(cost);
                (after <= MAX_OUTPUT_BYTES).then_some(after)
            })
            .is_ok();
        if !granted {
            self.dropped_lines.fetch_add(1, Ordering::Relaxed);
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    stage = %self.stage,
                    "the stage's output reached its limit of {MAX_OUTPUT_BYTES} bytes; the rest is dropped"
                );
            }
        }
        granted
    }

    /// Bytes charged so far.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Says how many lines were dropped, if any; call once when the run ends.
    pub fn finish(&self) {
        let dropped = self.dropped_lines.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(stage = %self.stage, "dropped {dropped} lines of the stage's output beyond its limit");
        }
    }
}

/// The per-run state of this room.
pub struct LogState {
    /// Where progress goes.
    pub(crate) progress: super::ProgressSink,
    /// What the stage may still make the host print (shared with the capture of its stdout
    /// and stderr).
    pub(crate) output: Arc<OutputBudget>,
    /// Progress reports held back between sends.
    pub(crate) progress_throttle: ProgressThrottle,
}

impl LogState {
    /// A fresh budget for a run of `stage`, its progress going to `progress`.
    pub fn new(stage: &str, progress: super::ProgressSink) -> Self {
        LogState {
            progress,
            output: Arc::new(OutputBudget::new(stage)),
            progress_throttle: ProgressThrottle::default(),
        }
    }

    /// The run's output budget, for whatever else prints on its behalf (its stdout, stderr).
    pub fn output(&self) -> Arc<OutputBudget> {
        Arc::clone(&self.output)
    }
}

/// The progress reports of one run, held back so that at most one reaches the sink per
/// [`PROGRESS_INTERVAL`].
#[derive(Debug, Default)]
pub struct ProgressThrottle {
    last_sent: Option<Instant>,
    pending: Option<(u64, u64, String)>,
}

fn clip(message: &str) -> String {
    crate::text::printable(message, MAX_MESSAGE_CHARS)
}

impl Host for StageContext {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        // A line nobody will see costs nothing, and cannot use up the budget of those that
        // will be seen.
        let shown = match level {
            Level::Trace => tracing::enabled!(target: "vidpipe::guest", tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(target: "vidpipe::guest", tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: "vidpipe::guest", tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: "vidpipe::guest", tracing::Level::WARN),
            Level::Error => tracing::enabled!(target: "vidpipe::guest", tracing::Level::ERROR),
        };
        if !shown {
            return Ok(());
        }
        let message = clip(&message);
        if !self.log.output.charge(message.len()) {
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
        let now = Instant::now();
        let due = self
            .log
            .progress_throttle
            .last_sent
            .is_none_or(|last| now.duration_since(last) >= PROGRESS_INTERVAL);
        // Cheap until it is sent: a flood of reports costs a comparison each. A report that
        // says the stage is done waits too (it is sent when the run ends), or a flood of
        // "done" reports would bypass the interval.
        if !due {
            self.log.progress_throttle.pending = Some((done, total, message));
            return Ok(());
        }
        self.log.progress_throttle.pending = None;
        self.log.progress_throttle.last_sent = Some(now);
        self.send_progress(done, total, &message);
        Ok(())
    }
}

impl StageContext {
    fn send_progress(&mut self, done: u64, total: u64, message: &str) {
        let message = clip(message);
        // Two numbers of up to 20 digits and the separators, as a plain line prints them.
        if self.log.output.charge(message.len() + 48) {
            (self.log.progress)(&self.stage, done, total, &message);
        }
    }

    /// Forwards the last progress report held back, and says what was dropped. Call once
    /// when the run ends.
    pub fn finish_output(&mut self) {
        if let Some((done, total, message)) = self.log.progress_throttle.pending.take() {
            self.send_progress(done, total, &message);
        }
        self.log.output.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_charges_each_line_as_printed_so_empty_lines_are_not_free() {
        let budget = OutputBudget::new("s");
        let mut lines = 0usize;
        while budget.charge(0) {
            lines += 1;
        }
        assert_eq!(lines, MAX_OUTPUT_BYTES / (LINE_OVERHEAD + 1));
        assert!(budget.used() <= MAX_OUTPUT_BYTES);
        assert!(!budget.charge(0), "stays refused");
    }
}
