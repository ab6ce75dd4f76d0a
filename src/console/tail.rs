//! The console's live tails as server-sent events: `GET /ui/api/logs` (the access log's
//! records, from the router's tap) and, through the same [`Tail`], `GET /ui/api/function-logs`
//! (the function log, from the runtime's tap; see `functions.rs`). A tap is a broadcast channel
//! a slow browser falls behind on, losing the oldest items (and told how many), without ever
//! slowing a request or a function; each kind of tail admits at most [`MAX_WATCHERS`] browsers.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use super::{Body, Console, plain, query_value};

/// How many browsers may watch one kind of live tail at once; more are refused with 503, so
/// that watchers cannot pile up tasks and buffers without bound.
pub(super) const MAX_WATCHERS: usize = 64;

/// How long a tail stays silent before it sends a comment, so that proxies and browsers keep
/// the connection open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

impl Console {
    /// `GET /ui/api/logs?service=NAME&status=CLASS|CODE`: the access-log records from now on,
    /// as server-sent events. A watcher that falls behind gets a `dropped` event saying how
    /// many records it lost.
    pub(super) fn tail(&self, query: &str) -> Response<Body> {
        let Some(guard) = Watcher::enter(&self.watchers) else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many live-tail watchers; close one\n",
            );
        };
        let filter = Filter {
            service_arn: query_value(query, "service").map(|name| {
                // An unknown name matches nothing (rather than everything).
                self.table
                    .load()
                    .config
                    .services
                    .iter()
                    .find(|s| s.name == name)
                    .map_or_else(|| "\u{0}".to_owned(), |s| s.arn.clone())
            }),
            status: query_value(query, "status").filter(|s| !s.is_empty()),
        };
        let tail = Tail {
            receiver: trellis_router::accesslog::tap().subscribe(),
            render: Box::new(move |line: &Arc<String>| {
                let record = serde_json::from_str::<Value>(line).ok()?;
                filter
                    .keeps(&record)
                    .then(|| format!("event: record\ndata: {line}\n\n"))
            }),
            items: "records",
            stop: self.stop.clone(),
            _guard: guard,
            first: true,
        };
        tail.response()
    }
}

/// Counts a live-tail watcher while it lives.
pub(super) struct Watcher(Arc<AtomicUsize>);

impl Watcher {
    /// A place among the watchers `count` counts, or `None` when [`MAX_WATCHERS`] are taken.
    pub(super) fn enter(count: &Arc<AtomicUsize>) -> Option<Watcher> {
        let taken = count.fetch_add(1, Ordering::SeqCst);
        let guard = Watcher(Arc::clone(count));
        (taken < MAX_WATCHERS).then_some(guard)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Filter {
    /// Only this service's records.
    service_arn: Option<String>,
    /// `2XX`-style class or an exact code.
    status: Option<String>,
}

impl Filter {
    fn keeps(&self, record: &Value) -> bool {
        if let Some(arn) = &self.service_arn
            && record.get("serviceArn").and_then(Value::as_str) != Some(arn.as_str())
        {
            return false;
        }
        if let Some(want) = &self.status {
            let code = record
                .get("responseCode")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let text = code.to_string();
            let class = format!("{}XX", code / 100);
            if !want.eq_ignore_ascii_case(&class) && *want != text {
                return false;
            }
        }
        true
    }
}

/// What a server-sent event renders an item as; `None` leaves it out (filtered).
pub(super) type Render<T> = Box<dyn Fn(&T) -> Option<String> + Send + Sync>;

/// One browser's live tail of a tap.
pub(super) struct Tail<T> {
    pub(super) receiver: broadcast::Receiver<T>,
    pub(super) render: Render<T>,
    /// What the items are called in the `dropped` event (`records`, `lines`).
    pub(super) items: &'static str,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) _guard: Watcher,
    pub(super) first: bool,
}

impl<T: Clone + Send + Sync + 'static> Tail<T> {
    /// The next event to send; `None` ends the stream (Trellis stopping).
    async fn next(&mut self) -> Option<String> {
        if self.first {
            self.first = false;
            // Sent at once so the browser knows it is connected (and a test can wait for it).
            return Some(": connected\nretry: 1000\n\n".to_owned());
        }
        // Bounded: each turn either sends an event or waits; filtered-out items loop only as
        // long as items keep coming.
        loop {
            let received = tokio::select! {
                r = self.receiver.recv() => r,
                _ = tokio::time::sleep(KEEP_ALIVE) => return Some(": keep-alive\n\n".to_owned()),
                _ = self.stop.wait_for(|s| *s) => return None,
            };
            match received {
                Ok(item) => {
                    if let Some(event) = (self.render)(&item) {
                        return Some(event);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some(format!(
                        "event: dropped\ndata: {{\"dropped\":{n},\"why\":\"this browser fell behind; the oldest {} were skipped\"}}\n\n",
                        self.items
                    ));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The `text/event-stream` response that sends this tail's events.
    pub(super) fn response(self) -> Response<Body> {
        let stream = futures_util::stream::unfold(self, |mut tail| async move {
            let frame = tail.next().await?;
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(frame))), tail))
        });
        let mut response = Response::new(BoxBody::new(StreamBody::new(stream)));
        let headers = response.headers_mut();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("no-cache"),
        );
        response
    }
}
