//! `GET /ui/api/logs`: the access log's records as server-sent events, read from the router's
//! tap, which a slow browser falls behind on (losing records, and told how many) without ever
//! slowing a request.

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

/// How many browsers may watch the live tail at once; more are refused with 503, so that
/// watchers cannot pile up tasks and buffers without bound.
const MAX_WATCHERS: usize = 64;

impl Console {
    /// `GET /ui/api/logs?service=NAME&status=CLASS|CODE`: the access-log records from now on,
    /// as server-sent events. A watcher that falls behind gets a `dropped` event saying how
    /// many records it lost.
    pub(super) fn tail(&self, query: &str) -> Response<Body> {
        let taken = self.watchers.fetch_add(1, Ordering::SeqCst);
        let guard = Watcher(self.watchers.clone());
        if taken >= MAX_WATCHERS {
            drop(guard);
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many live-tail watchers; close one\n",
            );
        }
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
        let receiver = trellis_router::accesslog::tap().subscribe();
        let state = TailState {
            receiver,
            filter,
            stop: self.stop.clone(),
            _guard: guard,
            first: true,
        };
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            let frame = state.next().await?;
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(frame))), state))
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

/// Counts a live-tail watcher while it lives.
struct Watcher(Arc<AtomicUsize>);

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

struct TailState {
    receiver: broadcast::Receiver<Arc<String>>,
    filter: Filter,
    stop: watch::Receiver<bool>,
    _guard: Watcher,
    first: bool,
}

impl TailState {
    /// The next event to send; `None` ends the stream (Trellis stopping).
    async fn next(&mut self) -> Option<String> {
        if self.first {
            self.first = false;
            // Sent at once so the browser knows it is connected (and a test can wait for it).
            return Some(": connected\nretry: 1000\n\n".to_owned());
        }
        // Bounded: each turn either sends an event or waits; filtered-out records loop only
        // as long as records keep coming.
        loop {
            let received = tokio::select! {
                r = self.receiver.recv() => r,
                _ = tokio::time::sleep(Duration::from_secs(15)) => return Some(": keep-alive\n\n".to_owned()),
                _ = self.stop.wait_for(|s| *s) => return None,
            };
            match received {
                Ok(line) => {
                    let Ok(record) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if self.filter.keeps(&record) {
                        return Some(format!("event: record\ndata: {line}\n\n"));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some(format!(
                        "event: dropped\ndata: {{\"dropped\":{n},\"why\":\"this browser fell behind; the oldest records were skipped\"}}\n\n"
                    ));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
