//! HTTP/2 connections to one target: one per thread, carrying all of that thread's requests to
//! the target side by side.
//!
//! The connection is the target's own, whatever the request's URI names, so the URI carries
//! the client's host: the target sees it as `:authority`, the way an HTTP/2 server expects the
//! host, and no `Host` header beside it (RFC 9113, 8.3.1, forbids the two to differ). A pool
//! keyed by the URI's scheme and authority could not do that.
//!
//! A connection's task closes it after [`Http2Pool::new`]'s `idle_timeout` with no stream open
//! and no new request.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use thread_local::ThreadLocal;
use trellis_router::target::{Body, BoxError};

use super::Connector;
use super::pool::{SendError, drive};

/// This thread's connection to the target.
#[derive(Default)]
struct Slot {
    /// The connection, if one was opened.
    conn: Mutex<Option<Multiplexed>>,
    /// Held while a connection is being opened: requests that find none wait for that one
    /// rather than each opening its own (a burst of gRPC calls on a cold thread would
    /// otherwise dial the target once per call).
    opening: tokio::sync::Mutex<()>,
}

/// The HTTP/2 connections of one target, one per thread.
pub(super) struct Http2Pool {
    slots: ThreadLocal<Slot>,
    idle_timeout: Duration,
}

/// A connection: the handle requests are sent on, and what its task reads to tell it is idle.
#[derive(Clone)]
struct Multiplexed {
    sender: SendRequest<Body>,
    activity: Arc<Activity>,
}

/// Why a connection could not be opened.
enum Opening {
    /// No connection at all (refused, unreachable): nothing was sent.
    Unreachable(BoxError),
    /// Connected, but the TLS or HTTP/2 handshake failed.
    Handshake(BoxError),
}

impl Http2Pool {
    pub(super) fn new(idle_timeout: Duration) -> Http2Pool {
        Http2Pool {
            slots: ThreadLocal::new(),
            idle_timeout,
        }
    }

    /// Sends `request` (absolute-form URI naming the host the client addressed, no `Host`
    /// header) on this thread's connection to `target` (the target's scheme and authority),
    /// opening one when there is none or the last one closed. A request that the connection
    /// gave back unsent (the target had just closed it) goes on a new connection.
    pub(super) async fn send(
        &self,
        request: Request<Body>,
        connector: &Connector,
        target: &Uri,
    ) -> Result<Response<Body>, SendError> {
        let slot = self.slots.get_or_default();
        let request = match slot.current() {
            None => request,
            Some(mut conn) => {
                let activity = conn.activity.open();
                match conn.sender.try_send_request(request).await {
                    Ok(response) => return Ok(counted(response, activity)),
                    Err(mut err) => match err.take_message() {
                        Some(unsent) => unsent,
                        None => return Err(SendError::Request(err.into_error())),
                    },
                }
            }
        };
        let mut conn = {
            let _opening = slot.opening.lock().await;
            match slot.current() {
                // Opened while this request waited.
                Some(conn) => conn,
                None => {
                    let conn = match self.connect(connector, target).await {
                        Ok(conn) => conn,
                        // Nothing was sent: the request goes back to the caller.
                        Err(Opening::Unreachable(err)) => {
                            return Err(SendError::Refused(err, Box::new(request)));
                        }
                        Err(Opening::Handshake(err)) => return Err(SendError::Connect(err)),
                    };
                    if let Ok(mut current) = slot.conn.lock() {
                        *current = Some(conn.clone());
                    }
                    conn
                }
            }
        };
        let activity = conn.activity.open();
        let response = conn
            .sender
            .send_request(request)
            .await
            .map_err(SendError::Request)?;
        Ok(counted(response, activity))
    }

    async fn connect(&self, connector: &Connector, target: &Uri) -> Result<Multiplexed, Opening> {
        let io = tower_service::Service::call(&mut connector.clone(), target.clone())
            .await
            .map_err(Opening::Unreachable)?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|err| Opening::Handshake(err.into()))?;
        let activity = Arc::new(Activity::new());
        let idle = Arc::clone(&activity);
        tokio::spawn(drive(conn, move || idle.idle_for(), self.idle_timeout));
        Ok(Multiplexed { sender, activity })
    }

    /// Whether this thread holds an open connection (tests).
    #[cfg(test)]
    pub(super) fn open_here(&self) -> bool {
        self.slots.get().and_then(Slot::current).is_some()
    }
}

impl Slot {
    /// This thread's connection, unless it has closed.
    fn current(&self) -> Option<Multiplexed> {
        let mut conn = self.conn.lock().ok()?;
        if conn.as_ref().is_some_and(|conn| conn.sender.is_closed()) {
            *conn = None;
        }
        conn.clone()
    }
}

/// How many streams a connection has open, and when the last one ended. Written by the
/// requests and response bodies (on any thread), read by the connection's task.
struct Activity {
    epoch: Instant,
    open: AtomicUsize,
    /// Milliseconds from `epoch` to the end of the last stream (or the connection's start).
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            open: AtomicUsize::new(0),
            last: AtomicU64::new(0),
        }
    }

    /// Counts a stream as open until the returned guard is dropped.
    fn open(self: &Arc<Self>) -> OpenStream {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenStream(Arc::clone(self))
    }

    /// How long the connection has had no open stream; `None` while it has one.
    fn idle_for(&self) -> Option<Duration> {
        // Acquire: seeing the count the last stream left also shows the time it ended.
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.last.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(since))
    }
}

/// An open stream: from sending the request until the response body has ended or is dropped.
struct OpenStream(Arc<Activity>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last.store(now, Ordering::Relaxed);
        self.0.open.fetch_sub(1, Ordering::Release);
    }
}

/// Wraps the response body so that the stream counts as open until the body ends.
fn counted(response: Response<Incoming>, stream: OpenStream) -> Response<Body> {
    response.map(|body| {
        trellis_router::target::boxed(Counted {
            body,
            stream: Some(stream),
        })
    })
}

struct Counted {
    body: Incoming,
    stream: Option<OpenStream>,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if frame.is_none() || this.body.is_end_stream() {
            this.stream = None;
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
