//! What bounds a client connection, for HTTP/1.1 and HTTP/2 alike:
//!
//! - **request-head timeout** (`--header-timeout`, default 10 s): a connection must deliver a
//!   complete request head this long after it opens, and (HTTP/1.1) after the first byte of
//!   each following request; else it is closed at once, without an answer (slowloris). For
//!   HTTP/2 the clock stops once the connection preface has arrived: HTTP/2 clients open
//!   connections ahead of their requests, and frames after the preface are bounded by h2;
//! - **idle timeout** (Lattice's `idleTimeoutSeconds`, default 60 s, capped by
//!   `--max-idle-timeout`): with no request in flight for this long, the connection is closed
//!   gracefully (HTTP/1.1: closed; HTTP/2: GOAWAY). A port serves several services, and a
//!   connection may carry requests for any of them, so a port's idle timeout is the longest of
//!   its services' (see [`crate::table::Port::idle_timeout`]);
//! - **lifetime** (`--max-connection-age`, default 10 minutes as in Lattice): then the
//!   connection is closed gracefully: HTTP/1.1 answers the request in flight with
//!   `Connection: close`, HTTP/2 sends GOAWAY and finishes its open streams;
//! - **header limits** (Lattice's: at most 100 headers and 60 KB of them): 400. hyper's own
//!   parser limits sit above them ([`HYPER_MAX_HEADERS`], [`HYPER_MAX_BUF`],
//!   [`H2_MAX_HEADER_LIST`]), so requests a little over Lattice's get the handler's 400;
//!   requests past hyper's limits get hyper's 431 (HTTP/1.1) or h2's 431.
//!
//! The watchdog is one timer per connection, woken at least every `min(header, idle)`; a
//! request marks itself in flight until its response body has been sent (or dropped).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use crate::handler::{Connection, handle};
use crate::rescue::local_response;
use crate::table::RoutingTable;

/// Lattice's limit on the number of request headers.
pub const MAX_HEADERS: usize = 100;
/// Lattice's limit on the request headers' total size (60 KB), counted as HTTP/1.1 sends
/// them: each `name: value` line with its CRLF.
pub const MAX_HEADER_BYTES: usize = 60 * 1024;
/// hyper's HTTP/1.1 limit on header count, above [`MAX_HEADERS`]. hyper allocates room for
/// this many per request head parsed, so it is not much higher.
pub const HYPER_MAX_HEADERS: usize = 256;
/// hyper's HTTP/1.1 read buffer, which a request head must fit in (its default is ~400 KB):
/// above [`MAX_HEADER_BYTES`], and small enough that a connection with an unfinished head
/// holds little memory until the head timeout closes it.
pub const HYPER_MAX_BUF: usize = 128 * 1024;
/// h2's `SETTINGS_MAX_HEADER_LIST_SIZE` (hyper's default is 16 KB, below Lattice's 60 KB).
pub const H2_MAX_HEADER_LIST: u32 = 128 * 1024;
/// HTTP/2 keep-alive pings while a connection is open, so that a peer that has gone away
/// without closing (a half-open connection) is noticed even while a stream waits.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// The idle timeout of a port no longer in the table (after a reload): Lattice's default.
const DEFAULT_IDLE: Duration = Duration::from_secs(60);

/// The limits of the listeners' connections (`trellis up` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a request head may take to arrive.
    pub header_timeout: Duration,
    /// Caps the services' `idleTimeoutSeconds` (none by default).
    pub max_idle_timeout: Option<Duration>,
    /// How long a connection may live before it is closed gracefully.
    pub max_connection_age: Duration,
    /// Open connections per listener port; more are closed as soon as they are accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_idle_timeout: None,
            max_connection_age: Duration::from_secs(600),
            max_connections: 10_000,
        }
    }
}

/// What the watchdog found.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Close at once: the client is too slow to send a request head.
    Abort,
    /// Close gracefully, for this reason.
    Close(&'static str),
    /// Look again then.
    WakeAt(Instant),
}

/// How long a graceful close (idle timeout, lifetime, shutdown) may take once nothing is in
/// flight: enough for a GOAWAY or a `Connection: close` to reach the client.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Marks a time as "none" in the atomics below.
const NONE: u64 = u64::MAX;

/// What the watchdog knows of one connection. Times are milliseconds since `opened`.
struct ConnState {
    opened: Instant,
    /// Requests whose response has not been sent yet.
    in_flight: AtomicUsize,
    /// When the last request finished (or the connection opened, or HTTP/2 started).
    last_done: AtomicU64,
    /// When the request head now arriving began, or [`NONE`].
    head_since: AtomicU64,
    /// The connection speaks HTTP/2 (its preface has arrived).
    h2: AtomicBool,
}

impl ConnState {
    fn new(opened: Instant) -> ConnState {
        ConnState {
            opened,
            in_flight: AtomicUsize::new(0),
            last_done: AtomicU64::new(0),
            // The first request head is due from the moment the connection opens.
            head_since: AtomicU64::new(0),
            h2: AtomicBool::new(false),
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.opened).as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    /// Bytes arrived from the client. With no request in flight on HTTP/1.1, they begin a
    /// request head, which is now due within the head timeout.
    fn bytes_read(&self) {
        if !self.h2.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since
                .store(self.ms(Instant::now()), Ordering::Relaxed);
        }
    }

    /// The HTTP/2 preface has arrived: from now on the connection is idle until a request.
    fn h2_started(&self) {
        self.h2.store(true, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        self.last_done
            .store(self.ms(Instant::now()), Ordering::Relaxed);
    }

    /// A request head has arrived; the returned guard marks the request in flight until it
    /// is dropped.
    fn request_started(self: &Arc<ConnState>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// What to do at `now`, given the timeouts; `closing` once a graceful close has begun.
    fn check(&self, now: Instant, t: &Timeouts, closing: bool) -> Verdict {
        let step = t.header.min(t.idle);
        let head_since = self.head_since.load(Ordering::Relaxed);
        let mut next = if head_since != NONE {
            let due = self.at(head_since) + t.header;
            if now >= due {
                return Verdict::Abort;
            }
            // The head may arrive, and its request finish, well before then: the idle clock
            // then runs, and may be the shorter one.
            due.min(now + step)
        } else if self.in_flight.load(Ordering::Relaxed) == 0 && !closing {
            let due = self.at(self.last_done.load(Ordering::Relaxed)) + t.idle;
            if now >= due {
                return Verdict::Close("idle timeout");
            }
            // A request head may begin before then; it is due no sooner than `now + header`.
            due.min(now + t.header)
        } else {
            // Whatever starts after now ends no sooner than `now + step`.
            now + step
        };
        if !closing {
            let due = self.opened + t.age;
            if now >= due {
                return Verdict::Close("connection lifetime over");
            }
            next = next.min(due);
        }
        Verdict::WakeAt(next)
    }
}

/// The timeouts of one connection, as they stand at one check.
struct Timeouts {
    header: Duration,
    idle: Duration,
    age: Duration,
}

/// A request in flight on a connection, until dropped (with its response body).
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        state
            .last_done
            .store(state.ms(Instant::now()), Ordering::Relaxed);
        state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until it has been sent.
pub struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The client's stream, telling the watchdog when bytes arrive and whether they open with
/// the HTTP/2 preface.
struct Watched<S> {
    inner: S,
    state: Arc<ConnState>,
    /// How many bytes of the preface have been seen; `None` once decided.
    preface: Option<usize>,
}

impl<S> Watched<S> {
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(seen) = self.preface {
            let take = bytes.len().min(H2_PREFACE.len() - seen);
            let (part, want) = (
                bytes.get(..take).unwrap_or_default(),
                H2_PREFACE.get(seen..seen + take).unwrap_or_default(),
            );
            if part != want {
                self.preface = None;
            } else if seen + take == H2_PREFACE.len() {
                self.preface = None;
                self.state.h2_started();
                return;
            } else {
                self.preface = Some(seen + take);
            }
        }
        self.state.bytes_read();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let filled = buf.filled();
            if filled.len() > before {
                let new = filled.get(before..).unwrap_or_default();
                self.saw(new);
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Why a request's headers are over Lattice's limits, if they are.
fn over_header_limits(headers: &HeaderMap) -> Option<String> {
    if headers.len() > MAX_HEADERS {
        return Some(format!(
            "{} request headers; at most {MAX_HEADERS} are allowed\n",
            headers.len()
        ));
    }
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (size > MAX_HEADER_BYTES).then(|| {
        format!("{size} bytes of request headers; at most {MAX_HEADER_BYTES} are allowed\n")
    })
}

/// The auto (HTTP/1.1, h2c, h2) server with the limits above.
fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_headers(HYPER_MAX_HEADERS)
        .max_buf_size(HYPER_MAX_BUF);
    builder
        .http2()
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_PING_INTERVAL))
        .keep_alive_timeout(H2_PING_TIMEOUT);
    builder
}

/// Serves one client connection until it ends, the limits close it, or `shutdown` turns
/// true (then it is closed gracefully and left to finish).
pub(super) async fn serve_connection<I>(
    io: I,
    conn: Arc<Connection>,
    table: Arc<ArcSwap<RoutingTable>>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::new(ConnState::new(Instant::now()));
    let port = conn.port;
    let client = conn.client;
    let service = {
        let (state, table) = (state.clone(), table.clone());
        service_fn(move |request: Request<hyper::body::Incoming>| {
            let in_flight = state.request_started();
            let (table, conn) = (table.clone(), conn.clone());
            async move {
                let response = match over_header_limits(request.headers()) {
                    Some(message) => local_response(StatusCode::BAD_REQUEST, message, None),
                    None => match handle(table, conn, request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                };
                Ok::<_, Infallible>(response.map(|inner| Tracked {
                    inner,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let io = Watched {
        inner: io,
        state: state.clone(),
        preface: Some(0),
    };
    let builder = builder();
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let timeouts = || {
        let idle = table
            .load()
            .ports
            .get(&port)
            .map_or(DEFAULT_IDLE, |p| p.idle_timeout);
        Timeouts {
            header: limits.header_timeout,
            idle: limits.max_idle_timeout.map_or(idle, |cap| idle.min(cap)),
            age: limits.max_connection_age,
        }
    };
    // The first check, at once, sets the first wake-up.
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    let mut closing = false;
    // When a graceful close began plus its grace: then a connection with nothing in flight is
    // dropped.
    let mut close_by: Option<Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(target: "trellis::listener", "connection from {client} ended: {e}");
                }
                return;
            }
            _ = shutdown.wait_for(|stop| *stop), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
                let by = Instant::now() + CLOSE_GRACE;
                close_by = Some(by);
                sleep.as_mut().reset(by.into());
            }
            _ = &mut sleep => match state.check(Instant::now(), &timeouts(), closing) {
                // A graceful close that has not ended within its grace with nothing in flight
                // (an HTTP/2 client that never finishes the GOAWAY exchange, say) ends here.
                _ if close_by.is_some_and(|by| Instant::now() >= by)
                    && state.in_flight.load(Ordering::Relaxed) == 0 =>
                {
                    tracing::debug!(target: "trellis::listener", "connection from {client}: still open {CLOSE_GRACE:?} after a graceful close, with nothing in flight; closed");
                    return;
                }
                Verdict::Abort => {
                    tracing::debug!(target: "trellis::listener", "connection from {client}: no complete request head within {:?}; closed", limits.header_timeout);
                    return;
                }
                Verdict::Close(why) => {
                    tracing::debug!(target: "trellis::listener", "connection from {client}: {why}; closing");
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                    let by = Instant::now() + CLOSE_GRACE;
                    close_by = Some(by);
                    sleep.as_mut().reset(by.into());
                }
                Verdict::WakeAt(at) => {
                    let at = close_by.map_or(at, |by| at.min(by.max(Instant::now())));
                    sleep.as_mut().reset(at.into());
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        age: Duration::from_secs(600),
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_connection_that_sends_no_request_head_is_aborted_after_the_header_timeout() {
        let t0 = Instant::now();
        let state = ConnState::new(t0);
        assert_eq!(state.check(t0, &T, false), Verdict::WakeAt(t0 + secs(10)));
        assert_eq!(state.check(t0 + secs(10), &T, false), Verdict::Abort);
    }

    #[test]
    fn an_idle_connection_closes_after_the_idle_timeout_and_a_busy_one_does_not() {
        let t0 = Instant::now();
        let state = Arc::new(ConnState::new(t0));
        let in_flight = state.request_started();
        // In flight: neither the head clock nor the idle clock runs.
        assert_eq!(
            state.check(t0 + secs(100), &T, false),
            Verdict::WakeAt(t0 + secs(110))
        );
        drop(in_flight);
        let done = state.at(state.last_done.load(Ordering::Relaxed));
        assert!(matches!(
            state.check(done + secs(59), &T, false),
            Verdict::WakeAt(_)
        ));
        assert_eq!(
            state.check(done + secs(60), &T, false),
            Verdict::Close("idle timeout")
        );
        // Once closing, the idle clock no longer closes it again.
        assert!(matches!(
            state.check(done + secs(60), &T, true),
            Verdict::WakeAt(_)
        ));
    }

    #[test]
    fn an_idle_timeout_shorter_than_the_header_timeout_is_kept_after_the_first_request() {
        // Checked before the first request head arrives, the watchdog must not sleep until
        // the head is due (10 s): the request may be over and the connection idle long
        // before then.
        let t = Timeouts { idle: secs(1), ..T };
        let t0 = Instant::now();
        let state = Arc::new(ConnState::new(t0));
        let Verdict::WakeAt(next) = state.check(t0, &t, false) else {
            panic!("a new connection is not closed at once");
        };
        assert!(next <= t0 + secs(1), "woke {:?} after opening", next - t0);
        drop(state.request_started());
        let done = state.at(state.last_done.load(Ordering::Relaxed));
        assert_eq!(
            state.check(done + secs(1), &t, false),
            Verdict::Close("idle timeout")
        );
    }

    #[test]
    fn a_second_request_head_has_the_header_timeout_from_its_first_byte() {
        let t0 = Instant::now();
        let state = Arc::new(ConnState::new(t0));
        drop(state.request_started());
        state.bytes_read();
        let since = state.at(state.head_since.load(Ordering::Relaxed));
        assert_eq!(state.check(since + secs(10), &T, false), Verdict::Abort);
    }

    #[test]
    fn http2_bytes_after_the_preface_do_not_start_the_head_clock() {
        let t0 = Instant::now();
        let state = Arc::new(ConnState::new(t0));
        let mut io = Watched {
            inner: (),
            state: state.clone(),
            preface: Some(0),
        };
        io.saw(&H2_PREFACE[..10]);
        io.saw(&H2_PREFACE[10..]);
        assert!(state.h2.load(Ordering::Relaxed));
        io.saw(b"\0\0\0\x04\0\0\0\0\0");
        assert_eq!(state.head_since.load(Ordering::Relaxed), NONE);
    }

    #[test]
    fn the_lifetime_closes_even_a_busy_connection() {
        let t0 = Instant::now();
        let state = Arc::new(ConnState::new(t0));
        let _in_flight = state.request_started();
        assert_eq!(
            state.check(t0 + secs(600), &T, false),
            Verdict::Close("connection lifetime over")
        );
    }

    #[test]
    fn header_limits_are_lattices() {
        let mut headers = HeaderMap::new();
        for i in 0..MAX_HEADERS {
            headers.append("x-h", i.to_string().parse().unwrap());
        }
        assert_eq!(over_header_limits(&headers), None);
        headers.append("x-h", "one more".parse().unwrap());
        assert!(over_header_limits(&headers).is_some());
        let mut big = HeaderMap::new();
        big.insert("x-big", "a".repeat(MAX_HEADER_BYTES).parse().unwrap());
        assert!(over_header_limits(&big).is_some());
        let mut fits = HeaderMap::new();
        fits.insert("x-big", "a".repeat(MAX_HEADER_BYTES - 20).parse().unwrap());
        assert_eq!(over_header_limits(&fits), None);
    }
}
