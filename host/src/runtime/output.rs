//! The capture of a guest's stdout and stderr: forwarded line by line into the host's log under
//! the stage's name, each line charged to the run's output budget, the whole capped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::capabilities::log::OutputBudget;

/// Most bytes of a stage's stdout and stderr taken in; beyond it they are counted and dropped
/// (what is logged of them is bounded by the run's [`OutputBudget`] besides).
const MAX_CAPTURED_OUTPUT: usize = 1 << 20;
/// Longest line of guest output logged as one event.
const MAX_LINE: usize = 4096;

/// Guest stdout/stderr, forwarded line by line into the host's log, each line charged to the
/// run's output budget.
#[derive(Clone)]
pub(super) struct LogStream {
    stage: Arc<str>,
    stream: &'static str,
    state: Arc<std::sync::Mutex<LineBuffer>>,
    budget: Arc<OutputBudget>,
}

#[derive(Default)]
struct LineBuffer {
    line: Vec<u8>,
    total: usize,
    dropped: usize,
}

impl LogStream {
    pub(super) fn new(stage: &str, stream: &'static str, budget: Arc<OutputBudget>) -> Self {
        LogStream {
            stage: stage.into(),
            stream,
            state: Arc::default(),
            budget,
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = crate::text::printable(String::from_utf8_lossy(line).trim_end(), MAX_LINE);
        if self.budget.charge(text.len() + self.stream.len()) {
            tracing::info!(target: "vidpipe::guest", stage = &*self.stage, stream = self.stream, "{text}");
        }
    }

    fn accept(&self, bytes: &[u8]) {
        let Ok(mut buf) = self.state.lock() else {
            return;
        };
        let room = MAX_CAPTURED_OUTPUT.saturating_sub(buf.total);
        let (kept, dropped) = bytes.split_at(bytes.len().min(room));
        buf.total += kept.len();
        buf.dropped += dropped.len();
        for &b in kept {
            if b == b'\n' || buf.line.len() >= MAX_LINE {
                let line = std::mem::take(&mut buf.line);
                self.emit(&line);
                if b == b'\n' {
                    continue;
                }
            }
            buf.line.push(b);
        }
    }

    pub(super) fn finish(&self) {
        let Ok(mut buf) = self.state.lock() else {
            return;
        };
        let line = std::mem::take(&mut buf.line);
        if !line.is_empty() {
            self.emit(&line);
        }
        if buf.dropped > 0 {
            tracing::warn!(
                stage = &*self.stage,
                "dropped {} bytes of {} beyond the {} byte capture limit",
                buf.dropped,
                self.stream,
                MAX_CAPTURED_OUTPUT
            );
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// A stream that takes every write at once, on the guest's own thread (the default adapter
    /// would hand each write to a task on the executor: tens of microseconds per write).
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }
}

/// Most bytes one write to a stage's stdout or stderr may carry.
const MAX_WRITE: usize = 64 << 10;

impl wasmtime_wasi::p2::OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        self.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(MAX_WRITE)
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_output_is_split_into_lines_and_capped() {
        let s = LogStream::new("t", "stdout", Arc::new(OutputBudget::new("t")));
        s.accept(b"one\ntwo");
        s.accept(&vec![b'x'; MAX_CAPTURED_OUTPUT]);
        let buf = s.state.lock().expect("lock");
        assert_eq!(
            buf.total, MAX_CAPTURED_OUTPUT,
            "no more than the cap is kept"
        );
        assert_eq!(buf.dropped, 7, "the overflow is counted");
        assert!(buf.line.len() <= MAX_LINE, "long lines are split");
    }
}
