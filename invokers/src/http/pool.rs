//! Keep-alive HTTP/1.1 connections to one target, pooled per thread.
//!
//! Each target owns its pools, one per thread: a checkout is a thread-local lookup and a scan
//! from the end of a short `Vec`, with no map shared by every target, no race between a
//! checkout and a new connection, and no task per request to put the connection back: the
//! response body hands the connection back itself as soon as it has been read to the end. On a
//! proxy whose upstream is one keep-alive connection away, that bookkeeping is what a request
//! costs.
//!
//! A connection's task closes it after [`Http1Pool::new`]'s `idle_timeout` without a request, so idle
//! connections do not outlive a burst of traffic by more than that.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use thread_local::ThreadLocal;
use trellis_router::target::{Body, BoxError};

use super::Connector;

/// The idle connections of one thread; shared with the response bodies that will return
/// connections to it, which may be dropped on another thread.
type Shelf = Arc<Mutex<Vec<Pooled>>>;

/// The HTTP/1.1 connections of one target, one shelf of idle connections per thread. A
/// connection's task runs on the runtime of the thread that opened it, so a request served on
/// that thread wakes no other.
pub(super) struct Http1Pool {
    shelves: ThreadLocal<Shelf>,
    idle_timeout: Duration,
}

/// A connection: the handle requests are sent on and the clock its task reads.
pub(super) struct Pooled {
    sender: SendRequest<Body>,
    clock: Arc<IdleClock>,
}

/// What [`Http1Pool::send`] could not do.
pub(super) enum SendError {
    /// Opening a new connection failed (TLS or HTTP handshake).
    Connect(BoxError),
    /// The target could not be connected to, so nothing of the request was sent: it comes
    /// back with the error.
    Refused(BoxError, Box<Request<Body>>),
    /// The request failed on a connection.
    Request(hyper::Error),
}

impl Http1Pool {
    pub(super) fn new(idle_timeout: Duration) -> Http1Pool {
        Http1Pool {
            shelves: ThreadLocal::new(),
            idle_timeout,
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) on an idle connection of this thread, or
    /// on a new one that `connector` opens to `target` (the target's scheme and authority). A
    /// request that a pooled connection closed before sending is sent again on the next one: a
    /// target closing an idle keep-alive connection is not a failure of the request.
    pub(super) async fn send(
        &self,
        mut request: Request<Body>,
        connector: &Connector,
        target: &Uri,
    ) -> Result<Response<Body>, SendError> {
        let shelf = self.shelves.get_or(Shelf::default);
        while let Some(mut pooled) = checkout(shelf) {
            match pooled.sender.try_send_request(request).await {
                Ok(response) => return Ok(lend(response, pooled, shelf)),
                Err(mut err) => match err.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Request(err.into_error())),
                },
            }
        }
        let io = match tower_service::Service::call(&mut connector.clone(), target.clone()).await {
            Ok(io) => io,
            // Nothing was sent: the request goes back to the caller, who may try elsewhere.
            Err(err) => return Err(SendError::Refused(err, Box::new(request))),
        };
        let (mut sender, conn) = http1::handshake(io)
            .await
            .map_err(|err| SendError::Connect(err.into()))?;
        let clock = Arc::new(IdleClock::new());
        let idle = Arc::clone(&clock);
        tokio::spawn(drive(conn, move || idle.idle_for(), self.idle_timeout));
        let response = sender
            .send_request(request)
            .await
            .map_err(SendError::Request)?;
        Ok(lend(response, Pooled { sender, clock }, shelf))
    }

    /// How many connections this thread has idle (tests).
    #[cfg(test)]
    pub(super) fn idle_here(&self) -> usize {
        self.shelves
            .get()
            .and_then(|shelf| shelf.lock().ok().map(|idle| idle.len()))
            .unwrap_or(0)
    }
}

/// The most recently used idle connection that is ready for a request. Closed connections are
/// dropped on the way; one still finishing its last exchange (its task has not yet seen the
/// end of the response, or is still sending a request body the target did not wait for) stays.
fn checkout(shelf: &Shelf) -> Option<Pooled> {
    let mut idle = shelf.lock().ok()?;
    let mut at = idle.len();
    while at > 0 {
        at -= 1;
        if idle[at].sender.is_closed() {
            idle.remove(at);
        } else if idle[at].sender.is_ready() {
            let pooled = idle.remove(at);
            pooled.clock.lend();
            return Some(pooled);
        }
    }
    None
}

/// Puts a connection back on its shelf.
fn put_back(pooled: Pooled, shelf: &Shelf) {
    pooled.clock.rest();
    // A poisoned shelf only loses this connection; its task then closes it.
    if let Ok(mut idle) = shelf.lock() {
        idle.push(pooled);
    }
}

/// Wraps the response body so that reading it to the end returns the connection.
fn lend(response: Response<Incoming>, pooled: Pooled, shelf: &Shelf) -> Response<Body> {
    response.map(|body| {
        trellis_router::target::boxed(Returning {
            body,
            lease: Some((pooled, Arc::clone(shelf))),
        })
    })
}

/// Runs a connection (HTTP/1.1 or HTTP/2) until the target closes it, it fails, or it has
/// been idle for `idle_timeout` (then dropping it closes the socket). `idle_for` tells how long
/// it has been idle, `None` while it is in use.
pub(super) async fn drive<C>(
    conn: C,
    idle_for: impl Fn() -> Option<Duration>,
    idle_timeout: Duration,
) where
    C: Future<Output = hyper::Result<()>>,
{
    tokio::pin!(conn);
    loop {
        let wait = match idle_for() {
            None => idle_timeout,
            Some(idle) if idle >= idle_timeout => return,
            Some(idle) => idle_timeout - idle,
        };
        tokio::select! {
            biased;
            ended = &mut conn => {
                if let Err(err) = ended {
                    tracing::debug!("upstream connection ended: {err}");
                }
                return;
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// When a connection went idle, for its task's timeout. Written by the thread that lends and
/// returns the connection, read by the connection's task.
struct IdleClock {
    epoch: Instant,
    /// Milliseconds from `epoch` to the moment the connection went idle; [`IN_USE`] while a
    /// request has it.
    idle_since: AtomicU64,
}

const IN_USE: u64 = u64::MAX;

impl IdleClock {
    fn new() -> IdleClock {
        IdleClock {
            epoch: Instant::now(),
            idle_since: AtomicU64::new(IN_USE),
        }
    }

    fn lend(&self) {
        self.idle_since.store(IN_USE, Ordering::Relaxed);
    }

    fn rest(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(IN_USE - 1);
        self.idle_since.store(now, Ordering::Relaxed);
    }

    /// How long the connection has been idle; `None` while it is in use.
    fn idle_for(&self) -> Option<Duration> {
        let since = self.idle_since.load(Ordering::Relaxed);
        if since == IN_USE {
            return None;
        }
        let now = self.epoch.elapsed();
        Some(now.saturating_sub(Duration::from_millis(since)))
    }
}

/// A response body that returns its connection to the pool once it has been read to the end.
/// Dropped before the end, it drops the connection too: what is left of the response is still
/// on the socket, so hyper closes it.
struct Returning {
    body: Incoming,
    lease: Option<(Pooled, Shelf)>,
}

impl Returning {
    fn give_back(&mut self) {
        if let Some((pooled, shelf)) = self.lease.take() {
            put_back(pooled, &shelf);
        }
    }
}

impl hyper::body::Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            None => this.give_back(),
            Some(Ok(_)) if this.body.is_end_stream() => this.give_back(),
            Some(Ok(_)) => {}
            Some(Err(_)) => drop(this.lease.take()),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        // An empty body (HEAD, 204, 304, `content-length: 0`) is never polled.
        if self.body.is_end_stream() {
            self.give_back();
        }
    }
}
