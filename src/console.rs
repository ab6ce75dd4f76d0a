//! The web console on the admin port (issue 17): a few pages of HTML, CSS and JavaScript embedded
//! in the binary (no Node toolchain, no CDN: it works offline), and the JSON and server-sent
//! events they read. Everything lives under `/ui/`, a prefix no VPC Lattice API route uses, so
//! the console never shadows the API served on the same port.
//!
//! The console only reads: the routing table being served (the config it was built from, and
//! the targets' health cells), the process's metrics (sampled once a second into a short
//! history for the charts), the function runtime's activity (environments, last invocations)
//! and two taps: the access log's (`trellis_router::accesslog::tap`) and the function log's
//! (`trellis_runtime::log::tap`), which a slow browser falls behind on, losing lines, without
//! ever slowing a request or a function. The one thing it does is `POST /ui/api/send`, which
//! sends a request to a service's listener as any client would.
//!
//! The parts, by responsibility: `views` (the JSON of the directory and a service's routing),
//! `functions` (the functions' JSON and their log tail), `sample` (the metrics sampled into the
//! charts' history), `tail` (the live tails as server-sent events), `send` (the
//! send-a-request form).

mod functions;
mod sample;
mod send;
mod tail;
mod views;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{Full, combinators::BoxBody};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;
use trellis_router::RoutingTable;
use trellis_router::server::Listeners;

use sample::{HISTORY, Sample};

/// The body of every admin response: whole, or streamed (the live tail).
pub type Body = BoxBody<Bytes, Infallible>;

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_CSS: &str = include_str!("console/console.css");
const CONSOLE_JS: &str = include_str!("console/console.js");

/// The longest filter value kept from a query string (names are at most 63 characters).
const MAX_FILTER: usize = 128;

/// What the console reads, shared by every admin connection.
pub struct Console {
    table: Arc<ArcSwap<RoutingTable>>,
    listeners: Option<Arc<Listeners>>,
    /// Browsers watching the access-log tail, and the function-log tail.
    watchers: Arc<AtomicUsize>,
    function_watchers: Arc<AtomicUsize>,
    history: Mutex<VecDeque<Sample>>,
    stop: watch::Receiver<bool>,
}

impl Console {
    pub fn new(
        table: Arc<ArcSwap<RoutingTable>>,
        listeners: Option<Arc<Listeners>>,
        stop: watch::Receiver<bool>,
    ) -> Arc<Console> {
        Arc::new(Console {
            table,
            listeners,
            watchers: Arc::new(AtomicUsize::new(0)),
            function_watchers: Arc::new(AtomicUsize::new(0)),
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            stop,
        })
    }

    /// Answers a request under `/ui`; `None` for a path that is not the console's.
    pub async fn answer(&self, request: Request<hyper::body::Incoming>) -> Option<Response<Body>> {
        let path = request.uri().path().to_owned();
        if path != "/ui" && !path.starts_with("/ui/") {
            return None;
        }
        let method = request.method().clone();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let get = method == Method::GET || method == Method::HEAD;
        let response = match path.as_str() {
            "/ui" => redirect("/ui/"),
            "/ui/api/send" if method == Method::POST => self.send(request).await,
            "/ui/api/send" => plain(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
            _ if !get => plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
            "/ui/" | "/ui/logs" | "/ui/functions" | "/ui/send" => {
                whole(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML)
            }
            "/ui/console.css" => whole(StatusCode::OK, "text/css; charset=utf-8", CONSOLE_CSS),
            "/ui/console.js" => whole(StatusCode::OK, "text/javascript; charset=utf-8", CONSOLE_JS),
            "/ui/api/directory" => json_response(StatusCode::OK, &self.directory()),
            "/ui/api/target-groups" => json_response(StatusCode::OK, &self.target_groups()),
            "/ui/api/functions" => json_response(StatusCode::OK, &self.functions()),
            "/ui/api/traffic" => json_response(
                StatusCode::OK,
                &self.traffic(query_value(&query, "service").as_deref()),
            ),
            "/ui/api/logs" => self.tail(&query),
            "/ui/api/function-logs" => self.function_tail(&query),
            p if p.starts_with("/ui/services/") && !p["/ui/services/".len()..].contains('/') => {
                whole(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML)
            }
            p if p.starts_with("/ui/api/functions/") => {
                let name = percent_decode(&p["/ui/api/functions/".len()..]);
                match self.function(&name) {
                    Some(v) => json_response(StatusCode::OK, &v),
                    None => json_response(
                        StatusCode::NOT_FOUND,
                        &json!({"error": format!("no function named {:?}", truncate(&name, MAX_FILTER))}),
                    ),
                }
            }
            p if p.starts_with("/ui/api/services/") => {
                let name = percent_decode(&p["/ui/api/services/".len()..]);
                match self.service(&name) {
                    Some(v) => json_response(StatusCode::OK, &v),
                    None => json_response(
                        StatusCode::NOT_FOUND,
                        &json!({"error": format!("no service named {:?}", truncate(&name, MAX_FILTER))}),
                    ),
                }
            }
            _ => plain(StatusCode::NOT_FOUND, "no such console page\n"),
        };
        Some(response)
    }
}

/// The first value of `key` in a query string, percent-decoded and cut to [`MAX_FILTER`].
fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .take(64)
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| truncate(&percent_decode(&v.replace('+', " ")), MAX_FILTER).to_owned())
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `%xx` escapes undone (invalid ones kept as they are); invalid UTF-8 is replaced.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn whole(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(BoxBody::new(Full::new(body.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    whole(status, "text/plain; charset=utf-8", text)
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    whole(status, "application/json", value.to_string())
}

fn redirect(to: &'static str) -> Response<Body> {
    let mut response = plain(StatusCode::MOVED_PERMANENTLY, "");
    response.headers_mut().insert(
        hyper::header::LOCATION,
        hyper::header::HeaderValue::from_static(to),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded_and_bounded() {
        assert_eq!(
            query_value("a=1&service=lattice%2Dsvc", "service").as_deref(),
            Some("lattice-svc")
        );
        assert_eq!(
            query_value("service=%ff%", "service").as_deref(),
            Some("\u{fffd}%")
        );
        let long = format!("service={}", "x".repeat(10_000));
        assert_eq!(
            query_value(&long, "service").map(|v| v.len()),
            Some(MAX_FILTER)
        );
        assert_eq!(query_value("status", "status"), None);
    }
}
