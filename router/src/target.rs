//! The one interface the router calls: a [`Target`] turns a request into a response.
//!
//! The router never knows what is behind a target (an HTTP server, a wasm function, a
//! container); compute backends in `trellis-invokers` implement this trait.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

/// Errors that bodies on the data path may carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed HTTP body, as the router passes it between client and target.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A boxed, sendable future, so that [`Target`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Wraps any body into a [`Body`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// An empty [`Body`].
pub fn empty() -> Body {
    boxed(http_body_util::Empty::new())
}

/// A [`Body`] holding `bytes` in full.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    boxed(http_body_util::Full::new(bytes.into()))
}

/// What a target may want to know about the request besides the request itself. It borrows
/// from the request's handler and the routing table, so an HTTP target, which reads none of
/// it, costs nothing here; a function target copies what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// The `x-amzn-requestid` of this request.
    pub request_id: &'a str,
    /// The host the client asked for, as the router resolved it to find the service: its
    /// request target's authority (absolute form, HTTP/2 `:authority`), else its `Host`
    /// header, else the TLS SNI. Empty when it named none.
    pub host: &'a str,
    /// The client's address.
    pub client: SocketAddr,
    /// The listener port the request arrived on.
    pub listener_port: u16,
    /// `http` or `https`: the scheme the client used.
    pub scheme: &'static str,
    /// ARN of the target group that was picked.
    pub target_group_arn: &'a str,
    /// ARN of the service.
    pub service_arn: &'a str,
    /// ARN of the service network the client came through, if any.
    pub service_network_arn: Option<&'a str>,
    /// ARN of the client's VPC, if its address belongs to one.
    pub source_vpc_arn: Option<&'a str>,
    /// Who signed the request, when it was signed (and verified).
    pub caller: Option<&'a trellis_auth::Caller>,
}

/// A request a target gave back without sending any of it. (Behind a mutex only so that
/// `TargetError` stays `Sync`, as errors that are boxed must be: a body is not.)
pub struct Unsent(std::sync::Mutex<Box<http::Request<Body>>>);

impl Unsent {
    pub fn new(request: Box<http::Request<Body>>) -> Unsent {
        Unsent(std::sync::Mutex::new(request))
    }

    /// The request, to send elsewhere.
    pub fn into_request(self) -> http::Request<Body> {
        *self
            .0
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Unsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unsent(..)")
    }
}

/// Why a target did not produce a response. The router maps each kind to a status code in one
/// place (`rescue`), so targets only say what happened.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The target could not be reached (connection refused, no route, DNS failure).
    #[error("cannot connect to target {target}: {reason}")]
    Connect {
        target: String,
        reason: String,
        /// The request, when none of it was sent: the router may send it to another target.
        unsent: Option<Unsent>,
    },
    /// The connection was closed or reset before a complete response arrived.
    #[error("target {target} closed the connection: {reason}")]
    Closed { target: String, reason: String },
    /// The target answered with something that is not a valid response.
    #[error("target {target} sent an invalid response: {reason}")]
    Protocol { target: String, reason: String },
    /// The target did not answer in time.
    #[error("target {target} did not answer within {timeout:?}")]
    Timeout { target: String, timeout: Duration },
    /// A function failed or answered with something that is not a valid response (Lambda
    /// targets). `reason` is also written to the function log.
    #[error("function {target} failed: {reason}")]
    Function { target: String, reason: String },
    /// The request body is larger than the target accepts.
    #[error("request body too large: {reason}")]
    PayloadTooLarge { reason: String },
}

impl TargetError {
    /// The access-log `failureReason` Lattice records for this kind of failure.
    pub fn failure_reason(&self) -> &'static str {
        match self {
            TargetError::Connect { .. } => "TargetConnectionError",
            TargetError::Closed { .. } => "TargetConnectionClosed",
            TargetError::Protocol { .. } | TargetError::Function { .. } => "TargetProtocolError",
            TargetError::Timeout { .. } => "TargetDataTimeout",
            TargetError::PayloadTooLarge { .. } => "ClientProtocolError",
        }
    }
}

/// How to probe a target's health: the resolved health-check settings of its target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Use HTTP/2 (prior knowledge on `http`, ALPN on `https`) instead of HTTP/1.1.
    pub http2: bool,
    /// Port to probe; `None` means the target's traffic port.
    pub port: Option<u16>,
    /// Path and query to request.
    pub path: String,
    /// How long one probe may take.
    pub timeout: Duration,
}

/// The outcome of one health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The target answered with this status code.
    Status(u16),
    /// The target could not be reached or did not answer in time.
    Failed(String),
}

/// A destination for requests: one registered target of a target group.
pub trait Target: Send + Sync + 'static {
    /// Sends `request` to the target and returns its (streamed) response.
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        request: http::Request<Body>,
    ) -> BoxFuture<'a, Result<http::Response<Body>, TargetError>>;

    /// Probes the target's health once. Targets that cannot be probed return `None`.
    fn probe(&self, _spec: &ProbeSpec) -> Option<BoxFuture<'_, ProbeOutcome>> {
        None
    }

    /// The `ip:port` of the target as the access log's `targetIpPort` shows it.
    fn address(&self) -> String;
}
