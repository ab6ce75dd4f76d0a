//! Body wrappers that count bytes and note when a body ends, for the access log, and note why
//! a client's body failed, without buffering anything.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::target::{Body, BoxError};

/// Shared counters of a request body on its way to the target.
#[derive(Debug, Default)]
pub struct Progress {
    pub bytes: AtomicU64,
    /// Microseconds after the request started at which the last byte went out; 0 = not yet.
    pub done_after_us: AtomicU64,
    /// Why the client's body failed, if it did. A target call that fails after this was set
    /// failed because of the client (bad chunk framing, a reset stream), not the target: the
    /// invokers only see their request body break off, and cannot tell whose fault it was.
    pub client_error: OnceLock<String>,
}

/// Counts a request body's bytes, notes when it has been sent in full and why it failed.
pub struct Counted {
    inner: Body,
    progress: Arc<Progress>,
    start: Instant,
}

impl Counted {
    pub fn new(inner: Body, progress: Arc<Progress>, start: Instant) -> Counted {
        Counted {
            inner,
            progress,
            start,
        }
    }
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.progress
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            Poll::Ready(None) => {
                let us = self.start.elapsed().as_micros() as u64;
                self.progress
                    .done_after_us
                    .store(us.max(1), Ordering::Relaxed);
            }
            Poll::Ready(Some(Err(e))) => {
                self.progress.client_error.get_or_init(|| error_chain(&**e));
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An error and its sources on one line (hyper's own message is only its kind, such as "error
/// reading a body from connection"; the source says what was wrong).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

/// Runs `on_end(bytes sent)` once, when the response body ends or is dropped (the client went
/// away): the moment the access-log record is complete.
pub struct Finished<F: FnOnce(u64) + Send + 'static> {
    inner: Body,
    bytes: u64,
    on_end: Option<F>,
}

impl<F: FnOnce(u64) + Send + 'static> Finished<F> {
    pub fn new(inner: Body, on_end: F) -> Self {
        Finished {
            inner,
            bytes: 0,
            on_end: Some(on_end),
        }
    }

    fn finish(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(self.bytes);
        }
    }
}

impl<F: FnOnce(u64) + Send + 'static> Unpin for Finished<F> {}

impl<F: FnOnce(u64) + Send + 'static> HttpBody for Finished<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<F: FnOnce(u64) + Send + 'static> Drop for Finished<F> {
    fn drop(&mut self) {
        self.finish();
    }
}
