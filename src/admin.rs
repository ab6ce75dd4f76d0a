//! The admin port: `/metrics` (Prometheus text, see `trellis_router::metrics`), `/healthz`, and
//! on every other path the VPC Lattice API (`trellis_control::rest`), so that
//! `aws vpc-lattice --endpoint-url http://127.0.0.1:9901` drives the running Trellis. It is
//! Trellis's own control surface, so it listens apart from the services' listeners (no host
//! matching, no access log) and on loopback unless told otherwise. `/export` writes the config
//! being served (the file layered with the API store) as `trellis export` does. `/ui/` is the
//! web console (`crate::console`), a prefix no API route uses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use trellis_control::rest::{self, Api};
use trellis_router::RoutingTable;
use trellis_router::accept::AcceptBackoff;

use crate::console::{Body, Console};

/// `--admin`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAddr {
    Off,
    At(SocketAddr),
}

impl FromStr for AdminAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<AdminAddr, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(AdminAddr::Off);
        }
        s.parse().map(AdminAddr::At).map_err(|_| {
            format!("expected ADDR:PORT (e.g. 127.0.0.1:9901, port 0 for any free port) or \"off\", not \"{s}\"")
        })
    }
}

/// Binds the admin port. A port in use is not fatal: the services matter more than their
/// metrics and API, so Trellis says so and serves without it (`--admin ADDR` picks another).
pub async fn bind(addr: AdminAddr) -> Option<TcpListener> {
    let AdminAddr::At(addr) = addr else {
        return None;
    };
    match TcpListener::bind(addr).await {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(
                target: crate::log::TARGET,
                address = %addr,
                error = %e,
                "cannot open the admin port {addr} ({e}); the API and /metrics are off (pass --admin ADDR, or --admin off)"
            );
            None
        }
    }
}

/// How long a request head may take on the admin port (and how long a connection may stay
/// idle between requests: hyper's timer runs then too).
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long an API request's body may take to arrive (a client that stops sending midway would
/// otherwise hold its connection open for ever).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the admin endpoints and the API until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    table: Arc<ArcSwap<RoutingTable>>,
    console: Arc<Console>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(console.clone().sample());
    let mut backoff = AcceptBackoff::new("admin port");
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, accept fails at once every time: wait.
                tokio::select! {
                    _ = backoff.failed(&e) => continue,
                    _ = stop.wait_for(|stopping| *stopping) => return,
                }
            }
        };
        backoff.succeeded();
        let api = api.clone();
        let table = table.clone();
        let console = console.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                answer(api.clone(), table.clone(), console.clone(), request)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    api: Arc<Api>,
    table: Arc<ArcSwap<RoutingTable>>,
    console: Arc<Console>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path();
    if path == "/ui" || path.starts_with("/ui/") {
        if let Some(response) = console.answer(request).await {
            return Ok(response);
        }
        return Ok(Response::new(BoxBody::new(Full::new(Bytes::new()))));
    }
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            trellis_router::metrics::CONTENT_TYPE,
            trellis_router::metrics::global().encode(),
        ),
        (&Method::GET | &Method::HEAD, "/healthz") => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ok\n".to_owned(),
        ),
        (_, "/metrics" | "/healthz") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n".to_owned(),
        ),
        (&Method::GET | &Method::HEAD, "/export") => export(&table, request.uri().query()),
        (_, "/export") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET /export?format=yaml or GET /export?format=cloudformation\n".to_owned(),
        ),
        _ => {
            return Ok(call_api(&api, request)
                .await
                .map(|b| BoxBody::new(Full::new(b))));
        }
    };
    let mut response = Response::new(BoxBody::new(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    Ok(response)
}

/// `GET /export?format=yaml|cloudformation` (yaml when not given): the config being served, as
/// `trellis export` writes it (relative paths made absolute against the working directory, which
/// is what Trellis resolved them against).
fn export(
    table: &ArcSwap<RoutingTable>,
    query: Option<&str>,
) -> (StatusCode, &'static str, String) {
    let format = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "format")
        .map(|(_, value)| value);
    let config = table.load().config.clone();
    let config = match std::env::current_dir() {
        Ok(cwd) => trellis_export::with_absolute_paths(&config, &cwd),
        Err(_) => (*config).clone(),
    };
    match format {
        None | Some("yaml") => (
            StatusCode::OK,
            "application/yaml; charset=utf-8",
            trellis_export::yaml(&config),
        ),
        Some("cloudformation") => (
            StatusCode::OK,
            "application/json",
            trellis_export::cloudformation(&config),
        ),
        Some(other) => (
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            format!(
                "unknown export format \"{other}\"; use format=yaml or format=cloudformation\n"
            ),
        ),
    }
}

/// Hands a request to the API with its body, read up to [`rest::MAX_BODY`] bytes: a body
/// declared or found larger is refused without reading the rest (the connection then closes).
async fn call_api(api: &Api, request: Request<hyper::body::Incoming>) -> Response<Bytes> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > rest::MAX_BODY as u64) {
        return rest::body_too_large();
    }
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, rest::MAX_BODY).collect());
    let body = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return rest::body_too_large(),
        Ok(Err(e)) => return rest::body_unreadable(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(_) => {
            return rest::body_unreadable(
                StatusCode::REQUEST_TIMEOUT,
                &format!("it did not arrive within {} s", BODY_TIMEOUT.as_secs()),
            );
        }
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
    api.handle(&parts.method, target, &parts.headers, body)
        .await
}
