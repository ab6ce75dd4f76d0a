//! The proxy for Lattice INSTANCE and IP targets: plain HTTP servers reached over TCP or TLS.
//!
//! Connections are pooled, so keep-alive connections (HTTP/1.1) and multiplexed connections
//! (HTTP/2) survive across requests. Each thread has its own pools: a request served on one of
//! the router's serving threads reuses a connection whose task runs on that same thread, so
//! forwarding it wakes no other thread. HTTP/1.1 connections are pooled per target ([`pool`]);
//! HTTP/2 targets get one connection per thread, which multiplexes that thread's requests
//! ([`multiplex`]). The client side of a request (HTTP/1.1 or HTTP/2) is independent of the
//! upstream side: the target group's protocol version alone decides how the target is spoken
//! to.
//!
//! TLS to targets is not certificate-validated, as in VPC Lattice, so self-signed or expired
//! target certificates work.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version, header};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use trellis_router::target::{
    Body, BoxError, BoxFuture, CallContext, ProbeOutcome, ProbeSpec, Target, TargetError,
};
use trellis_router::tls::AcceptAnyCertificate;

use crate::http::multiplex::Http2Pool;
use crate::http::pool::{Http1Pool, SendError};

mod multiplex;
mod pool;

/// How long an idle pooled connection is kept before it is closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The `User-Agent` of health probes, so that target logs can tell probes from traffic.
const PROBE_USER_AGENT: &str = "Trellis-HealthChecker/1.0";

/// The HTTP version spoken to a target (the target group's `protocolVersion`; `GRPC` targets
/// are spoken to with [`UpstreamVersion::Http2`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamVersion {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2: prior knowledge (h2c) over TCP, ALPN `h2` over TLS.
    Http2,
}

/// Why an [`HttpClients`] or [`HttpTarget`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum HttpTargetError {
    /// rustls rejected the client configuration.
    #[error("cannot build the TLS client configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// The host and port do not form a valid URI authority.
    #[error("invalid target address {host:?} port {port}: {reason}")]
    InvalidAddress {
        host: String,
        port: u16,
        reason: String,
    },
}

/// What every HTTP target shares: the HTTP/2 clients and the connectors. Create one at
/// start-up and hand it to each [`HttpTarget::new`]. Cloning is cheap and shares the clients.
#[derive(Clone)]
pub struct HttpClients {
    /// Connectors for new connections and for health probes, which must not use the pools.
    http1_connector: Connector,
    http2_connector: Connector,
    /// How long an idle pooled connection is kept.
    idle_timeout: Duration,
}

impl fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClients").finish_non_exhaustive()
    }
}

impl HttpClients {
    /// Creates the clients, keeping idle connections for 90 seconds.
    pub fn new() -> Result<Self, HttpTargetError> {
        Self::with_idle_timeout(POOL_IDLE_TIMEOUT)
    }

    /// Creates the clients, closing connections idle for `idle_timeout`.
    pub fn with_idle_timeout(idle_timeout: Duration) -> Result<Self, HttpTargetError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(HttpClients {
            http1_connector: Connector::new(&provider, b"http/1.1")?,
            http2_connector: Connector::new(&provider, b"h2")?,
            idle_timeout,
        })
    }

    fn connector(&self, http2: bool) -> Connector {
        if http2 {
            self.http2_connector.clone()
        } else {
            self.http1_connector.clone()
        }
    }
}

/// One registered INSTANCE or IP target: `host:port`, spoken to over HTTP/1.1 or HTTP/2, in
/// clear text or TLS.
#[derive(Clone)]
pub struct HttpTarget {
    clients: HttpClients,
    /// This target's HTTP/1.1 connections (unused for HTTP/2 targets).
    http1: Arc<Http1Pool>,
    /// This target's HTTP/2 connections (unused for HTTP/1.1 targets).
    http2: Arc<Http2Pool>,
    host: String,
    port: u16,
    /// `host:port`, with brackets around IPv6 addresses.
    authority: Authority,
    /// `scheme://authority`: where new connections go.
    origin: Uri,
    /// `authority` as a `Host` header, for requests whose client named no host.
    host_header: HeaderValue,
    scheme: Scheme,
    version: UpstreamVersion,
    timeout: Duration,
}

impl fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTarget")
            .field("origin", &self.origin)
            .field("version", &self.version)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpTarget {
    /// A target at `host:port` using the shared `clients`. `tls` selects HTTPS; `timeout`
    /// bounds the wait for the response head (not the streaming of the body).
    pub fn new(
        clients: &HttpClients,
        host: &str,
        port: u16,
        tls: bool,
        version: UpstreamVersion,
        timeout: Duration,
    ) -> Result<Self, HttpTargetError> {
        let authority = authority(host, port)?;
        let scheme = if tls { Scheme::HTTPS } else { Scheme::HTTP };
        let invalid = |reason: String| HttpTargetError::InvalidAddress {
            host: host.to_owned(),
            port,
            reason,
        };
        let origin = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|err| invalid(err.to_string()))?;
        let host_header =
            HeaderValue::from_str(authority.as_str()).map_err(|err| invalid(err.to_string()))?;
        Ok(HttpTarget {
            clients: clients.clone(),
            http1: Arc::new(Http1Pool::new(clients.idle_timeout)),
            http2: Arc::new(Http2Pool::new(clients.idle_timeout)),
            host: host.to_owned(),
            port,
            authority,
            origin,
            host_header,
            scheme,
            version,
            timeout,
        })
    }

    /// Points `request` at this target while keeping what the target must see of the client's
    /// request: the method, path, query, headers and the client's host (as `Host` over
    /// HTTP/1.1, as `:authority` over HTTP/2).
    fn rewrite(&self, request: Request<Body>) -> Result<Request<Body>, TargetError> {
        let (mut parts, body) = request.into_parts();
        let client_host = client_host(&parts);
        match self.version {
            UpstreamVersion::Http1 => {
                // The origin form (`/path?query`), as the request line carries it; HTTP/1.1
                // clients send it already, HTTP/2 clients an absolute URI.
                if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
                    parts.uri = Uri::from(path_and_query(&parts.uri));
                }
                parts.version = Version::HTTP_11;
                let host = client_host.unwrap_or_else(|| self.host_header.clone());
                parts.headers.insert(header::HOST, host);
            }
            UpstreamVersion::Http2 => {
                // hyper sends the URI's authority as `:authority`, and a `Host` header beside
                // it must not differ (RFC 9113, 8.3.1): the host goes in the URI alone. The
                // connection is the target's own, whatever the URI names.
                // A `Host` that is no valid authority (the router routed by SNI then) leaves
                // the target's own address, as for a client that named no host.
                let authority = client_host
                    .and_then(|host| Authority::try_from(host.as_bytes()).ok())
                    .unwrap_or_else(|| self.authority.clone());
                parts.uri = Uri::builder()
                    .scheme(self.scheme.clone())
                    .authority(authority)
                    .path_and_query(path_and_query(&parts.uri))
                    .build()
                    .map_err(|err| {
                        self.protocol_error(format!("cannot build the target URI: {err}"))
                    })?;
                parts.version = Version::HTTP_2;
                parts.headers.remove(header::HOST);
            }
        }
        Ok(Request::from_parts(parts, body))
    }

    fn protocol_error(&self, reason: String) -> TargetError {
        TargetError::Protocol {
            target: self.address(),
            reason,
        }
    }

    /// Maps an error of a pool to the failure kind the router reports.
    fn classify(&self, err: SendError) -> TargetError {
        match err {
            SendError::Connect(err) => TargetError::Connect {
                target: self.address(),
                reason: describe(&*err),
            },
            SendError::Request(err) => self.classify_sent(&err),
        }
    }

    /// Maps the failure of a request on an open connection.
    fn classify_sent(&self, err: &(dyn StdError + 'static)) -> TargetError {
        let target = self.address();
        let reason = describe(err);
        match failure_kind(err) {
            FailureKind::Closed => TargetError::Closed { target, reason },
            FailureKind::Protocol => TargetError::Protocol { target, reason },
        }
    }

    async fn send(&self, request: Request<Body>) -> Result<Response<Body>, TargetError> {
        match self.version {
            UpstreamVersion::Http1 => self
                .http1
                .send(request, &self.clients.http1_connector, &self.origin)
                .await
                .map_err(|err| self.classify(err)),
            UpstreamVersion::Http2 => self
                .http2
                .send(request, &self.clients.http2_connector, &self.origin)
                .await
                .map_err(|err| self.classify(err)),
        }
    }

    async fn forward(&self, request: Request<Body>) -> Result<Response<Body>, TargetError> {
        let request = self.rewrite(request)?;
        tokio::time::timeout(self.timeout, self.send(request))
            .await
            .unwrap_or_else(|_| {
                Err(TargetError::Timeout {
                    target: self.address(),
                    timeout: self.timeout,
                })
            })
    }

    /// One health probe on a fresh connection, closed when this future ends.
    async fn probe_once(&self, spec: &ProbeSpec) -> Result<u16, String> {
        let port = spec.port.unwrap_or(self.port);
        let authority = authority(&self.host, port).map_err(|err| err.to_string())?;
        let scheme = if spec.scheme.eq_ignore_ascii_case("https") {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority.clone())
            .path_and_query(spec.path.as_str())
            .build()
            .map_err(|err| format!("invalid health check path {:?}: {err}", spec.path))?;
        let io = tower_service::Service::call(&mut self.clients.connector(spec.http2), uri.clone())
            .await
            .map_err(|err| format!("cannot connect to {authority}: {}", describe(&*err)))?;
        let request = Request::get(uri)
            .header(header::HOST, authority.as_str())
            .header(header::USER_AGENT, PROBE_USER_AGENT)
            .body(Empty::<Bytes>::new())
            .map_err(|err| format!("cannot build the probe request: {err}"))?;
        let response = if spec.http2 {
            probe_http2(io, request).await
        } else {
            probe_http1(io, request).await
        }?;
        Ok(response.status().as_u16())
    }
}

impl Target for HttpTarget {
    fn call<'a>(
        &'a self,
        _ctx: CallContext<'a>,
        request: Request<Body>,
    ) -> BoxFuture<'a, Result<Response<Body>, TargetError>> {
        Box::pin(self.forward(request))
    }

    fn probe(&self, spec: &ProbeSpec) -> Option<BoxFuture<'_, ProbeOutcome>> {
        let spec = spec.clone();
        Some(Box::pin(async move {
            match tokio::time::timeout(spec.timeout, self.probe_once(&spec)).await {
                Err(_) => ProbeOutcome::Failed(format!("no response within {:?}", spec.timeout)),
                Ok(Err(reason)) => ProbeOutcome::Failed(reason),
                Ok(Ok(status)) => ProbeOutcome::Status(status),
            }
        }))
    }

    fn address(&self) -> String {
        self.authority.to_string()
    }
}

/// `host:port` as a URI authority, bracketing IPv6 addresses.
fn authority(host: &str, port: u16) -> Result<Authority, HttpTargetError> {
    let text = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    text.parse().map_err(
        |err: http::uri::InvalidUri| HttpTargetError::InvalidAddress {
            host: host.to_owned(),
            port,
            reason: err.to_string(),
        },
    )
}

/// The path and query of `uri`; `/` when it has none.
fn path_and_query(uri: &Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// The host the client addressed: its `Host` header (HTTP/1.1) or its URI authority (HTTP/2).
fn client_host(parts: &http::request::Parts) -> Option<HeaderValue> {
    if let Some(host) = parts.headers.get(header::HOST) {
        return Some(host.clone());
    }
    let authority = parts.uri.authority()?;
    HeaderValue::from_str(authority.as_str()).ok()
}

/// Sends a probe over HTTP/1.1, driving the connection only as long as the probe lasts.
async fn probe_http1(
    io: MaybeTlsStream,
    mut request: Request<Empty<Bytes>>,
) -> Result<Response<Incoming>, String> {
    // HTTP/1.1 requests carry the origin form; the authority is in `Host`.
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|err| format!("HTTP/1.1 handshake failed: {}", describe(&err)))?;
    drive(sender.send_request(request), conn).await
}

/// Sends a probe over HTTP/2, driving the connection only as long as the probe lasts.
async fn probe_http2(
    io: MaybeTlsStream,
    request: Request<Empty<Bytes>>,
) -> Result<Response<Incoming>, String> {
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|err| format!("HTTP/2 handshake failed: {}", describe(&err)))?;
    drive(sender.send_request(request), conn).await
}

/// Polls a request and its connection together. When this returns (or is dropped on timeout)
/// the connection is dropped, which closes the socket: probes never leave connections behind.
async fn drive<R, C>(request: R, conn: C) -> Result<Response<Incoming>, String>
where
    R: Future<Output = hyper::Result<Response<Incoming>>>,
    C: Future<Output = hyper::Result<()>>,
{
    tokio::pin!(conn);
    tokio::select! {
        response = request => response.map_err(|err| describe(&err)),
        ended = &mut conn => Err(match ended {
            Ok(()) => "the target closed the connection before answering".to_owned(),
            Err(err) => describe(&err),
        }),
    }
}

/// Broad classes of non-connect failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// The connection went away (closed, reset, incomplete message).
    Closed,
    /// The target spoke something that is not valid HTTP.
    Protocol,
}

/// Walks the error chain for the first error that tells what happened.
fn failure_kind(err: &(dyn StdError + 'static)) -> FailureKind {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(kind) = hyper_kind(err).or_else(|| h2_kind(err)) {
            return kind;
        }
        if err.is::<io::Error>() {
            return FailureKind::Closed;
        }
        next = err.source();
    }
    FailureKind::Protocol
}

fn hyper_kind(err: &(dyn StdError + 'static)) -> Option<FailureKind> {
    let err = err.downcast_ref::<hyper::Error>()?;
    if err.is_parse() || err.is_parse_status() || err.is_parse_too_large() {
        Some(FailureKind::Protocol)
    } else if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
        Some(FailureKind::Closed)
    } else {
        None
    }
}

/// HTTP/2 errors: I/O failures and resets/GOAWAYs that are not protocol violations mean the
/// connection went away; everything else means the target broke the protocol.
fn h2_kind(err: &(dyn StdError + 'static)) -> Option<FailureKind> {
    let err = err.downcast_ref::<h2::Error>()?;
    let violation = matches!(
        err.reason(),
        Some(
            h2::Reason::PROTOCOL_ERROR
                | h2::Reason::COMPRESSION_ERROR
                | h2::Reason::FRAME_SIZE_ERROR
                | h2::Reason::FLOW_CONTROL_ERROR
        )
    );
    if err.is_io() || ((err.is_reset() || err.is_go_away()) && !violation) {
        Some(FailureKind::Closed)
    } else {
        Some(FailureKind::Protocol)
    }
}

/// An error and its sources on one line: hyper's top-level messages alone ("client error
/// (Connect)") do not say what went wrong.
fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(source) = next {
        let message = source.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        next = source.source();
    }
    text
}

/// Connects to `http://` URIs over TCP and `https://` URIs over TLS with a fixed ALPN
/// protocol. The pools and the health probes call it with the target's scheme and authority.
#[derive(Clone)]
struct Connector {
    tcp: HttpConnector,
    tls: TlsConnector,
}

impl Connector {
    fn new(provider: &Arc<CryptoProvider>, alpn: &[u8]) -> Result<Self, HttpTargetError> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let mut config = ClientConfig::builder_with_provider(Arc::clone(provider))
            .with_safe_default_protocol_versions()
            .map_err(HttpTargetError::Tls)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(Arc::clone(
                provider,
            ))))
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Connector {
            tcp,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = MaybeTlsStream;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<MaybeTlsStream, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let server_name = match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTPS => match server_name(&uri) {
                Ok(name) => Some(name),
                Err(err) => return Box::pin(std::future::ready(Err(err))),
            },
            _ => None,
        };
        let connecting = self.tcp.call(uri);
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await?;
            let Some(name) = server_name else {
                return Ok(MaybeTlsStream::Plain(tcp));
            };
            let stream = tls.connect(name, tcp.into_inner()).await?;
            Ok(MaybeTlsStream::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

/// The TLS server name (SNI) for a target URI; IP addresses are allowed and send no SNI.
fn server_name(uri: &Uri) -> Result<ServerName<'static>, BoxError> {
    let host = uri.host().ok_or("target URI has no host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(ServerName::try_from(host.to_owned())?)
}

/// A connection to a target, in clear text or TLS.
enum MaybeTlsStream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Read for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => Pin::new(io).poll_read(cx, buf),
            MaybeTlsStream::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => Pin::new(io).poll_write(cx, buf),
            MaybeTlsStream::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => Pin::new(io).poll_flush(cx),
            MaybeTlsStream::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => Pin::new(io).poll_shutdown(cx),
            MaybeTlsStream::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(io) => io.is_write_vectored(),
            MaybeTlsStream::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            MaybeTlsStream::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::convert::Infallible;
    use std::net::SocketAddr;

    use http::HeaderMap;
    use http_body_util::BodyExt;
    use http_body_util::channel::Channel;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use trellis_router::target::{boxed, empty, full};

    type TestResult = Result<(), BoxError>;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn ctx() -> CallContext<'static> {
        CallContext {
            request_id: "req-1",
            client: SocketAddr::from(([127, 0, 0, 1], 40000)),
            listener_port: 8080,
            scheme: "http",
            target_group_arn: "arn:tg",
            service_arn: "arn:svc",
            service_network_arn: None,
            source_vpc_arn: None,
        }
    }

    /// The test server: reports what it saw in `x-seen-*` headers and echoes the request body
    /// frame by frame; `/trailers` answers with a gRPC-style trailer; `/missing` is a 404.
    async fn handle(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let seen =
            |value: &str| HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("?"));
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let authority = request
            .uri()
            .authority()
            .map_or("-", |a| a.as_str())
            .to_owned();
        let version = format!("{:?}", request.version());
        let line = format!(
            "{} {}",
            request.method(),
            request.uri().path_and_query().map_or("", |pq| pq.as_str())
        );
        let path = request.uri().path().to_owned();
        let mut response = match path.as_str() {
            "/trailers" => Response::new(trailer_body()),
            "/missing" => {
                let mut response = Response::new(empty());
                *response.status_mut() = http::StatusCode::NOT_FOUND;
                response
            }
            _ => Response::new(boxed(request.into_body())),
        };
        let headers = response.headers_mut();
        headers.insert("x-seen-host", seen(&host));
        headers.insert("x-seen-authority", seen(&authority));
        headers.insert("x-seen-version", seen(&version));
        headers.insert("x-seen-line", seen(&line));
        Ok(response)
    }

    fn trailer_body() -> Body {
        let (mut sender, body) = Channel::<Bytes, BoxError>::new(2);
        tokio::spawn(async move {
            let _ = sender.send_data(Bytes::from_static(b"payload")).await;
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            let _ = sender.send_trailers(trailers).await;
        });
        boxed(body)
    }

    /// Serves [`handle`] with HTTP/1.1 and h2c (and h2 over TLS when `tls` is given).
    async fn server(tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let service = hyper::service::service_fn(handle);
                    let _ = match acceptor {
                        None => builder.serve_connection(TokioIo::new(tcp), service).await,
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Ok(addr)
    }

    /// A server that runs `behave` on every accepted connection.
    async fn raw_server<F, Fut>(behave: F) -> std::io::Result<SocketAddr>
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(behave(tcp));
            }
        });
        Ok(addr)
    }

    fn target(
        clients: &HttpClients,
        addr: SocketAddr,
        tls: bool,
        version: UpstreamVersion,
        timeout: Duration,
    ) -> Result<HttpTarget, HttpTargetError> {
        HttpTarget::new(clients, "127.0.0.1", addr.port(), tls, version, timeout)
    }

    fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    /// An HTTP/1.1-style client request with a `Host` header.
    fn http1_request(method: &str, path: &str, body: Body) -> Result<Request<Body>, http::Error> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "svc.trellis.localhost:8080")
            .body(body)
    }

    /// An HTTP/2-style client request: authority in the URI, no `Host` header.
    fn http2_request(path: &str) -> Result<Request<Body>, http::Error> {
        Request::get(format!("http://grpc.trellis.localhost:8443{path}"))
            .version(Version::HTTP_2)
            .body(empty())
    }

    async fn text(response: Response<Body>) -> Result<String, BoxError> {
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8(bytes.to_vec())?)
    }

    #[tokio::test]
    async fn proxies_get_to_http1_target_keeping_host() -> TestResult {
        let addr = server(None).await?;
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
        assert_eq!(target.address(), format!("127.0.0.1:{}", addr.port()));

        let response = target
            .call(ctx(), http1_request("GET", "/a/b?x=1", empty())?)
            .await?;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-seen-line"), "GET /a/b?x=1");
        assert_eq!(
            header(&response, "x-seen-host"),
            "svc.trellis.localhost:8080"
        );
        assert_eq!(header(&response, "x-seen-version"), "HTTP/1.1");

        // An HTTP/2 client request reaches an HTTP/1.1 target with the client's authority.
        let response = target.call(ctx(), http2_request("/from-h2")?).await?;
        assert_eq!(header(&response, "x-seen-version"), "HTTP/1.1");
        assert_eq!(
            header(&response, "x-seen-host"),
            "grpc.trellis.localhost:8443"
        );
        assert_eq!(header(&response, "x-seen-line"), "GET /from-h2");
        Ok(())
    }

    /// The request body is sent frame by frame and the echo comes back before the request
    /// body ends: neither direction is buffered.
    async fn streams_both_ways(version: UpstreamVersion) -> TestResult {
        let addr = server(None).await?;
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, false, version, TIMEOUT)?;
        let (mut sender, body) = Channel::<Bytes, BoxError>::new(1);
        let request = http1_request("POST", "/echo", boxed(body))?;

        sender.send_data(Bytes::from_static(b"first ")).await?;
        let response = target.call(ctx(), request).await?;
        assert_eq!(header(&response, "x-seen-line"), "POST /echo");
        let mut body = response.into_body();
        let frame = tokio::time::timeout(TIMEOUT, body.frame())
            .await?
            .ok_or("no frame")??;
        assert_eq!(frame.into_data().ok().as_deref(), Some(&b"first "[..]));

        sender.send_data(Bytes::from_static(b"second")).await?;
        drop(sender);
        let rest = tokio::time::timeout(TIMEOUT, body.collect())
            .await??
            .to_bytes();
        assert_eq!(&rest[..], b"second");
        Ok(())
    }

    #[tokio::test]
    async fn streams_post_body_over_http1() -> TestResult {
        streams_both_ways(UpstreamVersion::Http1).await
    }

    #[tokio::test]
    async fn streams_post_body_over_h2c() -> TestResult {
        streams_both_ways(UpstreamVersion::Http2).await
    }

    #[tokio::test]
    async fn proxies_to_h2c_target_with_trailers() -> TestResult {
        let addr = server(None).await?;
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, false, UpstreamVersion::Http2, TIMEOUT)?;

        // An HTTP/1.1 client request reaches an HTTP/2 target, its host as `:authority` and
        // no `Host` beside it (RFC 9113 8.3.1: the two must not differ).
        let response = target
            .call(ctx(), http1_request("GET", "/x", empty())?)
            .await?;
        assert_eq!(header(&response, "x-seen-version"), "HTTP/2.0");
        assert_eq!(
            header(&response, "x-seen-authority"),
            "svc.trellis.localhost:8080"
        );
        assert_eq!(header(&response, "x-seen-host"), "-");

        let response = target.call(ctx(), http2_request("/trailers")?).await?;
        assert_eq!(
            header(&response, "x-seen-authority"),
            "grpc.trellis.localhost:8443"
        );
        assert_eq!(header(&response, "x-seen-host"), "-");
        let collected = response.into_body().collect().await?;
        let trailers = collected.trailers().cloned().ok_or("no trailers")?;
        assert_eq!(
            trailers.get("grpc-status").map(HeaderValue::as_bytes),
            Some(&b"0"[..])
        );
        assert_eq!(&collected.to_bytes()[..], b"payload");
        Ok(())
    }

    #[tokio::test]
    async fn proxies_over_tls_with_http1_and_h2() -> TestResult {
        let cert = trellis_router::tls::self_signed(&["target.test".to_owned()])?;
        let resolver = trellis_router::tls::SniResolver::new(cert.certified_key);
        let addr = server(Some(trellis_router::tls::server_config(Arc::new(
            resolver,
        ))?))
        .await?;
        let clients = HttpClients::new()?;
        // The client's host: as `Host` over HTTP/1.1, as `:authority` over HTTP/2.
        let host = "svc.trellis.localhost:8080";
        for (version, seen, seen_host, seen_authority) in [
            (UpstreamVersion::Http1, "HTTP/1.1", host, "-"),
            (UpstreamVersion::Http2, "HTTP/2.0", "-", host),
        ] {
            let target = target(&clients, addr, true, version, TIMEOUT)?;
            let response = target
                .call(ctx(), http1_request("POST", "/tls", full("hi"))?)
                .await?;
            assert_eq!(header(&response, "x-seen-version"), seen);
            assert_eq!(header(&response, "x-seen-host"), seen_host);
            assert_eq!(header(&response, "x-seen-authority"), seen_authority);
            assert_eq!(text(response).await?, "hi");
        }
        Ok(())
    }

    #[tokio::test]
    async fn refused_connection_is_connect_error() -> TestResult {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        drop(listener);
        let clients = HttpClients::new()?;
        for version in [UpstreamVersion::Http1, UpstreamVersion::Http2] {
            let target = target(&clients, addr, false, version, TIMEOUT)?;
            let err = target
                .call(ctx(), http1_request("GET", "/", empty())?)
                .await
                .err();
            assert!(matches!(err, Some(TargetError::Connect { .. })), "{err:?}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn garbage_response_is_protocol_error() -> TestResult {
        let addr = raw_server(|mut tcp| async move {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp.write_all(b"this is not HTTP\r\n\r\n").await;
            let _ = tcp.shutdown().await;
        })
        .await?;
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
        let err = target
            .call(ctx(), http1_request("GET", "/", empty())?)
            .await
            .err();
        assert!(matches!(err, Some(TargetError::Protocol { .. })), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn garbage_to_h2c_client_is_protocol_error() -> TestResult {
        let addr = raw_server(|mut tcp| async move {
            let _ = tcp
                .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nnot a settings frame")
                .await;
            let mut buf = [0u8; 1024];
            while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await?;
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, false, UpstreamVersion::Http2, TIMEOUT)?;
        let err = target
            .call(ctx(), http1_request("GET", "/", empty())?)
            .await
            .err();
        assert!(matches!(err, Some(TargetError::Protocol { .. })), "{err:?}");
        Ok(())
    }

    #[tokio::test]
    async fn connection_closed_without_answer_is_closed() -> TestResult {
        let addr = raw_server(|mut tcp| async move {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
        })
        .await?;
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
        let err = target
            .call(ctx(), http1_request("GET", "/", empty())?)
            .await
            .err();
        assert!(matches!(err, Some(TargetError::Closed { .. })), "{err:?}");
        Ok(())
    }

    /// A keep-alive HTTP/1.1 server that answers every request on a connection with
    /// `hello` and tells `events` when it accepts a connection (`"open"`) and when the client
    /// closes one (`"closed"`). With `close_after_one`, it closes each connection itself after
    /// the first answer, without saying so in a `Connection: close` header.
    async fn counting_server(
        close_after_one: bool,
    ) -> std::io::Result<(
        SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<&'static str>,
    )> {
        let (events, seen) = tokio::sync::mpsc::unbounded_channel();
        let addr = raw_server(move |mut tcp| {
            let events = events.clone();
            async move {
                let _ = events.send("open");
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    // Requests here are GETs: each ends with its blank line.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
                        if tcp.write_all(answer).await.is_err() || close_after_one {
                            return;
                        }
                    }
                }
                let _ = events.send("closed");
            }
        })
        .await?;
        Ok((addr, seen))
    }

    /// What the counting server has reported so far.
    fn drain(seen: &mut tokio::sync::mpsc::UnboundedReceiver<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| seen.try_recv().ok()).collect()
    }

    /// `GET /` through `target`.
    async fn get(target: &HttpTarget) -> Result<Response<Body>, BoxError> {
        Ok(target
            .call(ctx(), http1_request("GET", "/", empty())?)
            .await?)
    }

    #[tokio::test]
    async fn http1_connection_is_reused_once_the_response_is_read() -> TestResult {
        let (addr, mut seen) = counting_server(false).await?;
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
        for _ in 0..5 {
            let response = get(&target).await?;
            assert_eq!(text(response).await?, "hello");
        }
        assert_eq!(target.http1.idle_here(), 1);
        assert_eq!(drain(&mut seen), ["open"]);

        // A response dropped before its body was read leaves the rest on the socket: that
        // connection is closed, not reused, and the next request opens a new one.
        let unread = get(&target).await?;
        drop(unread);
        assert_eq!(target.http1.idle_here(), 0);
        let response = get(&target).await?;
        assert_eq!(text(response).await?, "hello");
        // The old connection's close and the new one's accept race each other.
        let mut events = [seen.recv().await, seen.recv().await];
        events.sort();
        assert_eq!(events, [Some("closed"), Some("open")]);
        Ok(())
    }

    #[tokio::test]
    async fn http1_connection_the_target_closed_while_idle_is_not_used() -> TestResult {
        let (addr, mut seen) = counting_server(true).await?;
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
        for round in 1..=3 {
            let response = get(&target).await?;
            assert_eq!(response.status(), 200, "request {round}");
            assert_eq!(text(response).await?, "hello", "request {round}");
            // Let the pooled connection's task see the target's FIN.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(drain(&mut seen), ["open", "open", "open"]);
        Ok(())
    }

    #[tokio::test]
    async fn idle_http1_connections_are_closed_after_the_idle_timeout() -> TestResult {
        let (addr, mut seen) = counting_server(false).await?;
        // Kept: a minute-long timeout leaves the connection open well past a second.
        let clients = HttpClients::with_idle_timeout(Duration::from_secs(60))?;
        let kept = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
        let response = get(&kept).await?;
        assert_eq!(text(response).await?, "hello");
        assert_eq!(seen.recv().await, Some("open"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(drain(&mut seen), Vec::<&str>::new());

        // Closed: with a 200 ms timeout the client hangs up, twice in a row (the timer starts
        // again when the connection is used again).
        let clients = HttpClients::with_idle_timeout(Duration::from_millis(200))?;
        let closing = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
        for _ in 0..2 {
            let response = get(&closing).await?;
            assert_eq!(text(response).await?, "hello");
            let closed = tokio::time::timeout(Duration::from_secs(5), async {
                (seen.recv().await, seen.recv().await)
            });
            assert_eq!(closed.await?, (Some("open"), Some("closed")));
        }
        drop(kept);
        Ok(())
    }

    #[tokio::test]
    async fn http2_connections_close_after_the_idle_timeout_with_no_stream_open() -> TestResult {
        let addr = server(None).await?;
        let idle = Duration::from_millis(200);
        let clients = HttpClients::with_idle_timeout(idle)?;
        let closing = target(&clients, addr, false, UpstreamVersion::Http2, TIMEOUT)?;

        // A response still streaming keeps its connection open past the idle timeout.
        let (mut sender, body) = Channel::<Bytes, BoxError>::new(1);
        let response = closing
            .call(ctx(), http1_request("POST", "/echo", boxed(body))?)
            .await?;
        sender.send_data(Bytes::from_static(b"slow")).await?;
        tokio::time::sleep(idle * 3).await;
        assert!(closing.http2.open_here(), "closed with a stream open");
        drop(sender);
        assert_eq!(text(response).await?, "slow");

        // Once it has ended, the connection goes after the timeout; the next request opens
        // another.
        let closed = tokio::time::timeout(TIMEOUT, async {
            while closing.http2.open_here() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        closed.await?;
        let response = get(&closing).await?;
        assert_eq!(header(&response, "x-seen-version"), "HTTP/2.0");
        assert!(closing.http2.open_here());

        // With a minute-long timeout it stays.
        let clients = HttpClients::with_idle_timeout(Duration::from_secs(60))?;
        let kept = target(&clients, addr, false, UpstreamVersion::Http2, TIMEOUT)?;
        text(get(&kept).await?).await?;
        tokio::time::sleep(idle * 3).await;
        assert!(kept.http2.open_here());
        Ok(())
    }

    #[tokio::test]
    async fn concurrent_requests_on_a_cold_thread_share_one_http2_connection() -> TestResult {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let service = hyper::service::service_fn(handle);
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                });
            }
        });
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, false, UpstreamVersion::Http2, TIMEOUT)?;
        // Eight calls at once on this (single) thread, which has no connection yet.
        let calls = futures_util::future::join_all((0..8).map(|_| get(&target))).await;
        for response in calls {
            assert_eq!(header(&response?, "x-seen-version"), "HTTP/2.0");
        }
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "each call opened its own connection"
        );
        Ok(())
    }

    /// Accepts, reads the request, and holds the connection open without answering.
    async fn silent_server() -> std::io::Result<SocketAddr> {
        raw_server(|mut tcp| async move {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        })
        .await
    }

    #[tokio::test]
    async fn silent_target_times_out() -> TestResult {
        let addr = silent_server().await?;
        let clients = HttpClients::new()?;
        let timeout = Duration::from_millis(200);
        let target = target(&clients, addr, false, UpstreamVersion::Http1, timeout)?;
        let err = target
            .call(ctx(), http1_request("GET", "/", empty())?)
            .await
            .err();
        assert!(matches!(err, Some(TargetError::Timeout { .. })), "{err:?}");
        Ok(())
    }

    fn spec(path: &str, http2: bool, port: Option<u16>) -> ProbeSpec {
        ProbeSpec {
            scheme: "http",
            http2,
            port,
            path: path.to_owned(),
            timeout: Duration::from_millis(500),
        }
    }

    async fn probe(target: &HttpTarget, spec: &ProbeSpec) -> Result<ProbeOutcome, &'static str> {
        Ok(target.probe(spec).ok_or("probe not supported")?.await)
    }

    #[tokio::test]
    async fn probe_reports_status_codes() -> TestResult {
        let addr = server(None).await?;
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
        assert_eq!(
            probe(&target, &spec("/health", false, None)).await?,
            ProbeOutcome::Status(200)
        );
        assert_eq!(
            probe(&target, &spec("/missing?a=1", false, None)).await?,
            ProbeOutcome::Status(404)
        );
        assert_eq!(
            probe(&target, &spec("/health", true, None)).await?,
            ProbeOutcome::Status(200)
        );

        // The probe port overrides the traffic port.
        let other = target_with_port(&clients, 1)?;
        let explicit = spec("/health", false, Some(addr.port()));
        assert_eq!(probe(&other, &explicit).await?, ProbeOutcome::Status(200));
        Ok(())
    }

    fn target_with_port(clients: &HttpClients, port: u16) -> Result<HttpTarget, HttpTargetError> {
        HttpTarget::new(
            clients,
            "127.0.0.1",
            port,
            false,
            UpstreamVersion::Http1,
            TIMEOUT,
        )
    }

    #[tokio::test]
    async fn probe_over_tls() -> TestResult {
        let cert = trellis_router::tls::self_signed(&[])?;
        let resolver = trellis_router::tls::SniResolver::new(cert.certified_key);
        let addr = server(Some(trellis_router::tls::server_config(Arc::new(
            resolver,
        ))?))
        .await?;
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, true, UpstreamVersion::Http1, TIMEOUT)?;
        for http2 in [false, true] {
            let spec = ProbeSpec {
                scheme: "https",
                ..spec("/health", http2, None)
            };
            assert_eq!(probe(&target, &spec).await?, ProbeOutcome::Status(200));
        }
        Ok(())
    }

    /// Each probe uses its own connection and closes it: the server sees EOF after answering.
    #[tokio::test]
    async fn probe_closes_its_connection() -> TestResult {
        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = raw_server(move |mut tcp| {
            let closed_tx = closed_tx.clone();
            async move {
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = closed_tx.send(());
            }
        })
        .await?;
        let clients = HttpClients::new()?;
        let target = target(&clients, addr, false, UpstreamVersion::Http1, TIMEOUT)?;
        for _ in 0..2 {
            let outcome = probe(&target, &spec("/", false, None)).await?;
            assert_eq!(outcome, ProbeOutcome::Status(204));
            tokio::time::timeout(TIMEOUT, closed_rx.recv())
                .await?
                .ok_or("server gone")?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn probe_failures() -> TestResult {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let refused = listener.local_addr()?;
        drop(listener);
        let clients = HttpClients::new()?;
        let target = target(&clients, refused, false, UpstreamVersion::Http1, TIMEOUT)?;
        let outcome = probe(&target, &spec("/", false, None)).await?;
        assert!(
            matches!(&outcome, ProbeOutcome::Failed(reason) if reason.contains("connect")),
            "{outcome:?}"
        );

        let silent = silent_server().await?;
        let target = target_with_port(&clients, silent.port())?;
        let outcome = probe(&target, &spec("/", false, None)).await?;
        assert!(
            matches!(&outcome, ProbeOutcome::Failed(reason) if reason.contains("within")),
            "{outcome:?}"
        );
        Ok(())
    }

    #[test]
    fn ipv6_hosts_are_bracketed() -> TestResult {
        let bracketed = authority("::1", 8080)?;
        assert_eq!(bracketed.as_str(), "[::1]:8080");
        assert!(authority("bad host", 80).is_err());
        Ok(())
    }
}
