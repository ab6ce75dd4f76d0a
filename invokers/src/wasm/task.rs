//! A spawned tokio task that dies with its handle.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::{JoinError, JoinHandle};

/// Runs `future` on its own task (so that concurrent invocations spread over all worker
/// threads) and aborts it when the returned handle is dropped, so that an abandoned invocation
/// (timeout, client gone) does not keep its instance running.
pub(crate) fn spawn_abort_on_drop<F>(future: F) -> AbortOnDrop<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    AbortOnDrop(Some(tokio::spawn(future)))
}

/// See [`spawn_abort_on_drop`]. Resolves to the task's output, or to the [`JoinError`] of a
/// task that panicked (a bug in the host, reported instead of propagated).
pub(crate) struct AbortOnDrop<T>(Option<JoinHandle<T>>);

impl<T> AbortOnDrop<T> {
    /// Lets the task run on when the handle is dropped: for a wasi:http handler that keeps
    /// writing the response body after the response head was sent (the deadline still bounds
    /// it).
    pub fn detach(mut self) {
        self.0.take();
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0.as_mut() {
            Some(handle) => Pin::new(handle).poll(cx),
            // Only reachable by polling after `detach`, which consumes the handle.
            None => Poll::Pending,
        }
    }
}
