//! Everything `vidpipe` writes to stderr: log lines, status notes, errors and progress (a bar
//! per running stage on a terminal, plain lines otherwise).
//!
//! One printer thread owns stderr and the bars. Everyone else hands it lines through a bounded
//! queue, so that nothing a stage makes the host print can block the stage: if stderr is not
//! being read (a pipe nobody drains, a terminal paused with Ctrl-S), the thread running the
//! stage would otherwise block inside a host call, and its deadline could not stop it. Lines
//! from a running stage (its log, its progress, and any log line written while it runs) are
//! dropped, and counted, when the queue is full; the command's own notes and errors wait for
//! room. Lines go out in the order they were queued, above the bars, which are redrawn after
//! each, so no stale bar is left on screen as a line of its own.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use vidpipe_host::capabilities::ProgressSink;

/// Lines (and bar updates) the queue holds before lines from a stage are dropped.
const QUEUE: usize = 4096;
/// How long the command waits at its end for the printer to write what is queued.
const DRAIN: Duration = Duration::from_secs(2);

enum Event {
    Line(String),
    /// A line for stdout, written with the bars out of the way (they share the terminal).
    Stdout(String),
    Bar {
        id: u64,
        label: String,
    },
    Progress {
        id: u64,
        done: u64,
        total: u64,
        message: String,
    },
    EndBar(u64),
    Drained(SyncSender<()>),
}

struct Printer {
    /// `None` if the printer thread could not be started: lines are then written directly.
    queue: Option<SyncSender<Event>>,
    dropped: AtomicU64,
    next_bar: AtomicU64,
    terminal: bool,
}

fn the_printer() -> &'static Printer {
    static PRINTER: OnceLock<Printer> = OnceLock::new();
    PRINTER.get_or_init(|| {
        let terminal = std::io::stderr().is_terminal();
        let (queue, events) = sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("vidpipe-stderr".into())
            .spawn(move || print(events, terminal));
        Printer {
            queue: spawned.is_ok().then_some(queue),
            dropped: AtomicU64::new(0),
            next_bar: AtomicU64::new(0),
            terminal: terminal && spawned.is_ok(),
        }
    })
}

/// The printer thread: writes lines and draws bars until every sender is gone.
fn print(events: Receiver<Event>, terminal: bool) {
    let bars = terminal.then(|| {
        indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
    });
    let mut open: std::collections::HashMap<u64, Bar> = std::collections::HashMap::new();
    for event in events {
        match event {
            Event::Line(text) => {
                let write = || {
                    let _ = writeln!(std::io::stderr().lock(), "{text}");
                };
                match &bars {
                    Some(bars) => bars.suspend(write),
                    None => write(),
                }
            }
            Event::Stdout(text) => {
                let write = || write_stdout(&text);
                match &bars {
                    Some(bars) => bars.suspend(write),
                    None => write(),
                }
            }
            Event::Bar { id, label } => {
                if let Some(bars) = &bars {
                    open.insert(id, Bar::new(bars, label));
                }
            }
            Event::Progress {
                id,
                done,
                total,
                message,
            } => {
                if let Some(bar) = open.get_mut(&id) {
                    bar.set(done, total, &message);
                }
            }
            Event::EndBar(id) => {
                if let (Some(bar), Some(bars)) = (open.remove(&id), &bars) {
                    bar.0.finish_and_clear();
                    bars.remove(&bar.0);
                }
            }
            Event::Drained(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// One stage's bar: a spinner until the stage says how much there is to do.
struct Bar(indicatif::ProgressBar, bool);

impl Bar {
    fn new(bars: &indicatif::MultiProgress, label: String) -> Self {
        let bar = bars.add(indicatif::ProgressBar::new(0));
        bar.set_style(Self::style(false));
        bar.set_prefix(label);
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar(bar, false)
    }

    fn style(counting: bool) -> indicatif::ProgressStyle {
        if counting {
            indicatif::ProgressStyle::with_template(
                "{prefix:.bold} [{bar:32.cyan/blue}] {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ")
        } else {
            indicatif::ProgressStyle::with_template("{prefix:.bold} {spinner} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
        }
    }

    fn set(&mut self, done: u64, total: u64, message: &str) {
        if (total > 0) != self.1 {
            self.1 = total > 0;
            self.0.set_style(Self::style(self.1));
        }
        self.0.set_length(total);
        self.0.set_position(done);
        self.0
            .set_message(vidpipe_host::text::printable(message, 200));
    }
}

/// Queues `event`, waiting for room (the command's own lines) up to [`DRAIN`]: a stderr
/// nobody reads must not keep the command from ending either. A line for stdout that finds
/// no room is written directly instead: the command's results are never dropped.
fn send(event: Event) {
    let p = the_printer();
    let Some(queue) = &p.queue else {
        return write_directly(event);
    };
    let started = std::time::Instant::now();
    let mut event = event;
    loop {
        match queue.try_send(event) {
            Ok(()) => return,
            Err(TrySendError::Full(back)) if started.elapsed() < DRAIN => {
                event = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(TrySendError::Full(Event::Stdout(text)))
            | Err(TrySendError::Disconnected(Event::Stdout(text))) => {
                return write_stdout(&text);
            }
            Err(_) => {
                p.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

fn write_stdout(text: &str) {
    // A closed stdout (`vidpipe … | head`) is not the command's failure.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Queues `event` unless the queue is full, then it is dropped and counted (lines a running
/// stage makes the host print).
fn offer(event: Event) {
    let p = the_printer();
    match &p.queue {
        Some(queue) => match queue.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                p.dropped.fetch_add(1, Ordering::Relaxed);
            }
        },
        None => write_directly(event),
    }
}

/// Without a printer thread: lines straight to stderr (or stdout), no bars.
fn write_directly(event: Event) {
    match event {
        Event::Line(text) => {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
        Event::Stdout(text) => write_stdout(&text),
        _ => {}
    }
}

/// Writes `text` as a line on stderr, above the progress bars, waiting for room in the queue.
pub fn above_bars(text: &str) {
    send(Event::Line(text.to_owned()));
}

/// Writes `text` as one safe line on stdout now. While bars are drawn (stderr is a terminal,
/// which stdout usually shares), the line goes through the printer, after every line and bar
/// change queued before it, so that it neither lands inside a bar nor overtakes a note.
pub fn stdout_line(text: &str) {
    let text = crate::output::safe_line(text);
    if the_printer().terminal {
        send(Event::Stdout(text));
    } else {
        write_stdout(&text);
    }
}

/// Waits (at most [`DRAIN`]) for everything queued to be written; says how many lines were
/// dropped, if any. Call once, at the end of the command.
pub fn drain() {
    let p = the_printer();
    let Some(queue) = &p.queue else {
        return;
    };
    let dropped = p.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        let _ = queue.try_send(Event::Line(format!(
            "vidpipe: {dropped} lines of output were dropped: stderr was not being read fast enough"
        )));
    }
    let (done, drained) = sync_channel(1);
    if queue.try_send(Event::Drained(done)).is_ok() {
        let _ = drained.recv_timeout(DRAIN);
    }
}

/// Where `tracing` writes: each event is gathered whole, then queued (dropped when the queue is
/// full: see the module docs). The text is already made safe by [`crate::output::SafeFields`].
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
            offer(Event::Line(text.to_owned()));
        }
    }
}

/// The progress sink of one stage, labelled `label`: a bar on a terminal, plain
/// `[label] done/total message` lines otherwise. The host already bounds how often a stage's
/// progress reaches it; updates that find the queue full are dropped.
pub fn sink(label: String) -> ProgressSink {
    let p = the_printer();
    if !p.terminal {
        return Box::new(move |_stage, done, total, message| {
            let line = if message.is_empty() {
                format!("[{label}] {done}/{total}")
            } else {
                format!("[{label}] {done}/{total} {message}")
            };
            offer(Event::Line(vidpipe_host::text::printable(&line, 8192)));
        });
    }
    /// Ends the bar when the stage ends and its sink is dropped.
    struct Guard(u64);
    impl Drop for Guard {
        fn drop(&mut self) {
            send(Event::EndBar(self.0));
        }
    }
    let id = p.next_bar.fetch_add(1, Ordering::Relaxed);
    send(Event::Bar { id, label });
    let bar = Guard(id);
    Box::new(move |_stage, done, total, message| {
        offer(Event::Progress {
            id: bar.0,
            done,
            total,
            message: message.to_owned(),
        });
    })
}
