//! Progress: a bar per running stage on a terminal, plain lines otherwise (logs, pipes, CI).
//!
//! Every other line written to stderr while bars are shown (log lines, status notes, errors)
//! goes through [`above_bars`], which prints it above the bars and redraws them, so no stale
//! bar is left on screen as a line of its own.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use vidpipe_host::host_api::ProgressSink;

/// The bars of this process, when stderr is a terminal.
fn bars() -> Option<&'static indicatif::MultiProgress> {
    static BARS: OnceLock<Option<indicatif::MultiProgress>> = OnceLock::new();
    BARS.get_or_init(|| {
        std::io::stderr().is_terminal().then(|| {
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
        })
    })
    .as_ref()
}

/// Writes `text` and a newline on stderr, above the progress bars if there are any.
pub fn above_bars(text: &str) {
    let write = || {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    };
    match bars() {
        Some(bars) => bars.suspend(write),
        None => write(),
    }
}

/// Where `tracing` writes: each event is gathered whole, then written above the bars.
pub fn log_writer() -> LogLine {
    LogLine(Vec::new())
}

/// One log event on its way to stderr (see [`log_writer`]).
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        if !text.is_empty() {
            above_bars(text);
        }
    }
}

/// The progress sink of one stage, labelled `label`: a bar on a terminal (a spinner until the
/// stage says how much there is to do), plain `[label] done/total message` lines otherwise.
/// The host already bounds how often a stage's progress reaches it.
pub fn printer(label: String) -> ProgressSink {
    let Some(multi) = bars() else {
        return Box::new(move |_stage, done, total, message| {
            let line = if message.is_empty() {
                format!("[{label}] {done}/{total}")
            } else {
                format!("[{label}] {done}/{total} {message}")
            };
            crate::output::note_line(&line);
        });
    };
    /// Removes the bar when the stage ends and its sink is dropped.
    struct Bar(indicatif::ProgressBar, &'static indicatif::MultiProgress);
    impl Drop for Bar {
        fn drop(&mut self) {
            self.0.finish_and_clear();
            self.1.remove(&self.0);
        }
    }
    let counting = indicatif::ProgressStyle::with_template(
        "{prefix:.bold} [{bar:32.cyan/blue}] {pos}/{len} {wide_msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    let waiting = indicatif::ProgressStyle::with_template("{prefix:.bold} {spinner} {wide_msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    let bar = multi.add(indicatif::ProgressBar::new(0));
    bar.set_style(waiting.clone());
    bar.set_prefix(label);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let bar = Bar(bar, multi);
    let mut has_total = false;
    Box::new(move |_stage, done, total, message| {
        let bar = &bar.0;
        if (total > 0) != has_total {
            has_total = total > 0;
            bar.set_style(if has_total {
                counting.clone()
            } else {
                waiting.clone()
            });
        }
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(vidpipe_host::text::printable(message, 200));
    })
}
