//! Where a guest's stdout and stderr go: a bounded capture buffer (the response of a command)
//! and the function log (everything a guest prints for humans).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much a guest may write per `check_write` permit. Writes are never refused, so this
/// only sizes the guest's chunks.
const WRITE_PERMIT: usize = 1024 * 1024;

/// A log line longer than this is cut and written out, so a guest printing without newlines
/// cannot grow the line buffer without bound.
const MAX_LINE: usize = 16 * 1024;

/// How many of the last stderr lines an error message quotes (a Rust panic prints its message
/// on the line after `thread 'main' panicked at …`).
const TAIL_LINES: usize = 4;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another write panicked mid-way; the buffer is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Captures up to `cap` bytes and counts the rest. Writes always succeed: a guest whose
/// response is too large must still finish normally, so that Trellis can answer
/// "response too large" (Lambda's behaviour) instead of a confusing write failure in the guest.
#[derive(Clone)]
pub(crate) struct Capture {
    inner: Arc<Mutex<Captured>>,
}

struct Captured {
    bytes: Vec<u8>,
    total: usize,
    cap: usize,
}

impl Capture {
    pub fn new(cap: usize) -> Capture {
        Capture {
            inner: Arc::new(Mutex::new(Captured {
                bytes: Vec::new(),
                total: 0,
                cap,
            })),
        }
    }

    fn push(&self, data: &[u8]) {
        let mut captured = lock(&self.inner);
        captured.total = captured.total.saturating_add(data.len());
        let room = captured.cap.saturating_sub(captured.bytes.len());
        let keep = data.len().min(room);
        captured.bytes.extend_from_slice(&data[..keep]);
    }

    /// The captured bytes (at most `cap`) and how many bytes the guest wrote in all.
    pub fn take(&self) -> (Bytes, usize) {
        let mut captured = lock(&self.inner);
        let total = captured.total;
        (Bytes::from(std::mem::take(&mut captured.bytes)), total)
    }
}

/// Writes what a guest prints to the function log, one log line per line of output, and
/// remembers the last few lines for error messages.
#[derive(Clone)]
pub(crate) struct LogLines {
    function: Arc<str>,
    inner: Arc<Mutex<Lines>>,
}

#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    tail: VecDeque<String>,
}

impl LogLines {
    pub fn new(function: Arc<str>) -> LogLines {
        LogLines {
            function,
            inner: Arc::new(Mutex::new(Lines::default())),
        }
    }

    fn push(&self, mut data: &[u8]) {
        let mut lines = lock(&self.inner);
        while let Some(newline) = data.iter().position(|b| *b == b'\n') {
            lines.partial.extend_from_slice(&data[..newline]);
            data = &data[newline + 1..];
            self.emit(&mut lines);
        }
        lines.partial.extend_from_slice(data);
        if lines.partial.len() >= MAX_LINE {
            self.emit(&mut lines);
        }
    }

    fn emit(&self, lines: &mut Lines) {
        let line = String::from_utf8_lossy(&lines.partial).into_owned();
        lines.partial.clear();
        trellis_runtime::log::line(&self.function, &line);
        if !line.trim().is_empty() {
            if lines.tail.len() == TAIL_LINES {
                lines.tail.pop_front();
            }
            lines.tail.push_back(line.trim_end().to_owned());
        }
    }

    /// Writes out an unfinished last line (a guest that died mid-line).
    pub fn finish(&self) {
        let mut lines = lock(&self.inner);
        if !lines.partial.is_empty() {
            self.emit(&mut lines);
        }
    }

    /// The last few non-empty lines, joined, for an error message; `None` if the guest printed
    /// nothing.
    pub fn tail(&self) -> Option<String> {
        let lines = lock(&self.inner);
        let useful: Vec<&str> = lines
            .tail
            .iter()
            .map(String::as_str)
            // Rust's hint about backtraces says nothing about this failure.
            .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE=1`"))
            .collect();
        (!useful.is_empty()).then(|| useful.join(" / "))
    }
}

/// Both sinks accept any amount of output; the difference is only where it goes.
trait Sink: Clone + Send + Sync + 'static {
    fn accept(&self, data: &[u8]);
}

impl Sink for Capture {
    fn accept(&self, data: &[u8]) {
        self.push(data);
    }
}

impl Sink for LogLines {
    fn accept(&self, data: &[u8]) {
        self.push(data);
    }
}

/// Adapts a [`Sink`] to the stream interfaces wasmtime-wasi asks for: the WASIp2
/// `OutputStream` (components, and preview 1 through its adapter) and tokio's `AsyncWrite`.
#[derive(Clone)]
pub(crate) struct Stream<S>(pub S);

impl<S: Sink> IsTerminal for Stream<S> {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl<S: Sink> StdoutStream for Stream<S> {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl<S: Sink> OutputStream for Stream<S> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl<S: Sink> Pollable for Stream<S> {
    async fn ready(&mut self) {}
}

impl<S: Sink> AsyncWrite for Stream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_cap_and_counts_everything() {
        let capture = Capture::new(4);
        capture.push(b"abc");
        capture.push(b"defgh");
        let (bytes, total) = capture.take();
        assert_eq!(&bytes[..], b"abcd");
        assert_eq!(total, 8);
    }

    #[test]
    fn log_lines_split_and_remember_the_tail() {
        let log = LogLines::new("t".into());
        log.push(b"one\ntw");
        log.push(b"o\n\nthree");
        log.finish();
        assert_eq!(log.tail().as_deref(), Some("one / two / three"));
    }
}
