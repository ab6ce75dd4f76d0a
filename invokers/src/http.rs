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
    Body, BoxError, BoxFuture, CallContext, ProbeOutcome, ProbeSpec, Target, TargetError, Unsent,
};
use trellis_router::tls::AcceptAnyCertificate;

use crate::http::multiplex::Http2Pool;
use crate::http::pool::{Http1Pool, SendError};
use crate::one_line;

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
    /// request: the method, path, query, headers and `host`, the client's host as the router
    /// resolved it (as `Host` over HTTP/1.1, as `:authority` over HTTP/2).
    fn rewrite(&self, host: &str, request: Request<Body>) -> Result<Request<Body>, TargetError> {
        let (mut parts, body) = request.into_parts();
        match self.version {
            UpstreamVersion::Http1 => {
                // The origin form (`/path?query`), as the request line carries it; HTTP/1.1
                // clients send it already, HTTP/2 clients an absolute URI.
                if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
                    parts.uri = Uri::from(path_and_query(&parts.uri));
                }
                parts.version = Version::HTTP_11;
                // The `Host` the router set (the host it routed by) stays.
                if !parts.headers.contains_key(header::HOST) {
                    let host = HeaderValue::from_str(host)
                        .ok()
                        .filter(|host| !host.is_empty())
                        .unwrap_or_else(|| self.host_header.clone());
                    parts.headers.insert(header::HOST, host);
                }
            }
            UpstreamVersion::Http2 => {
                // hyper sends the URI's authority as `:authority`, and a `Host` header beside
                // it must not differ (RFC 9113, 8.3.1): the host goes in the URI alone. The
                // connection is the target's own, whatever the URI names.
                // A host that is no valid authority (the router routed by SNI then) leaves
                // the target's own address, as for a client that named no host.
                let authority =
                    Authority::try_from(host).unwrap_or_else(|_| self.authority.clone());
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
                reason: one_line(&*err),
                unsent: None,
            },
            SendError::Refused(err, request) => TargetError::Connect {
                target: self.address(),
                reason: one_line(&*err),
                unsent: Some(Unsent::new(request)),
            },
            SendError::Request(err) => self.classify_sent(&err),
        }
    }

    /// Maps the failure of a request on an open connection.
    fn classify_sent(&self, err: &(dyn StdError + 'static)) -> TargetError {
        let target = self.address();
        let reason = one_line(err);
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

    async fn forward(
        &self,
        host: &str,
        request: Request<Body>,
    ) -> Result<Response<Body>, TargetError> {
        let request = self.rewrite(host, request)?;
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
            .map_err(|err| format!("cannot connect to {authority}: {}", one_line(&*err)))?;
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
        ctx: CallContext<'a>,
        request: Request<Body>,
    ) -> BoxFuture<'a, Result<Response<Body>, TargetError>> {
        Box::pin(self.forward(ctx.host, request))
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
        .map_err(|err| format!("HTTP/1.1 handshake failed: {}", one_line(&err)))?;
    drive(sender.send_request(request), conn).await
}

/// Sends a probe over HTTP/2, driving the connection only as long as the probe lasts.
async fn probe_http2(
    io: MaybeTlsStream,
    request: Request<Empty<Bytes>>,
) -> Result<Response<Incoming>, String> {
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .map_err(|err| format!("HTTP/2 handshake failed: {}", one_line(&err)))?;
    drive(sender.send_request(request), conn).await
}

/// Polls a request and its connection together. When this returns (or is dropped on timeout)
/// the connection is dropped, which closes the socket: probes never leave connections behind.
async fn drive<R, C>(request: R, conn: C) -> Result<Response<Incoming>, String>
where
    R: Future<Output = hyper::Result<Response<Incoming>>>,
    C: Future<Output = hyper::Result<()>>,
{
    tokio::pin!(conn, request);
    tokio::select! {
        response = &mut request => response.map_err(|err| one_line(&err)),
        ended = &mut conn => match ended {
            // A target that answers with `Connection: close` ends the connection in the same
            // poll that hands over its answer: the answer, if there is one, is ready now.
            Ok(()) => request
                .await
                .map_err(|_| "the target closed the connection before answering".to_owned()),
            Err(err) => Err(one_line(&err)),
        },
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
mod tests;
