//! The admin port: `/metrics` (Prometheus text, see `trellis_router::metrics`) and `/healthz`.
//! It is Trellis's own control surface, so it listens apart from the services' listeners (no
//! host matching, no access log) and on loopback unless told otherwise.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use trellis_router::accept::AcceptBackoff;

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
/// metrics, so Trellis says so and serves without it (`--admin ADDR` picks another).
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
                "cannot open the admin port {addr} ({e}); /metrics is off (pass --admin ADDR, or --admin off)"
            );
            None
        }
    }
}

/// How long a request head may take on the admin port (and how long a connection may stay
/// idle between requests: hyper's timer runs then too).
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the admin endpoints until `stop` turns true.
pub async fn serve(listener: TcpListener, mut stop: watch::Receiver<bool>) {
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
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}

async fn answer(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
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
        (_, path) => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            format!("no {path} here; the admin port serves /metrics and /healthz\n"),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    Ok(response)
}
