//! The one place where every failure becomes a status code (and a gRPC status for gRPC callers).

use http::{HeaderValue, Response, StatusCode};

use crate::path::PathError;
use crate::target::{Body, TargetError, full};

/// Everything that can stop a request before a target answers it.
#[derive(Debug)]
pub enum Failure {
    /// No service on this port answers to the request's host. `closest` are the host names
    /// served here (of services the client may reach) nearest to it, `more` how many others
    /// there are: a few suggestions, never the whole list.
    UnknownHost {
        host: String,
        closest: Vec<String>,
        more: usize,
    },
    /// The request names its host more than once (two `Host` headers): which one would pick
    /// the service is ambiguous, so neither does.
    AmbiguousHost { count: usize },
    /// A method a proxy of HTTP services does not forward (`CONNECT`: a tunnel, not a request).
    MethodNotAllowed(http::Method),
    /// The client's request body broke off or was malformed (bad chunk framing, a reset HTTP/2
    /// stream) while it was being sent on to the target: the client's fault, not the target's.
    ClientBody(String),
    /// The client's VPC is not associated with a network the service is in.
    NotAdmitted { host: String },
    /// The request is signed, and its signature does not verify.
    Unauthenticated(trellis_auth::sigv4::SignatureError),
    /// A policy (the caller's identity policy, the network's or the service's auth policy) does
    /// not allow the caller.
    AccessDenied {
        /// Lattice's `AccessDeniedException: User: … is not authorized …` text.
        message: String,
        /// The access log's `authDeniedReason`: `Identity`, `Network` or `Service`.
        layer: &'static str,
    },
    /// The request path has no normal form (malformed percent-encoding).
    BadPath(PathError),
    /// The chosen target group has no targets.
    NoTarget { group: String },
    /// The target failed.
    Target(TargetError),
}

/// The status a client gets for a target's failure (the router answers it as
/// [`Failure::Target`]); the function runtime records it with the invocation that failed.
pub fn target_status(error: &TargetError) -> StatusCode {
    match error {
        TargetError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        TargetError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl Failure {
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::UnknownHost { .. } | Failure::NotAdmitted { .. } => StatusCode::NOT_FOUND,
            Failure::Unauthenticated(_) | Failure::AccessDenied { .. } => StatusCode::FORBIDDEN,
            Failure::BadPath(_) | Failure::AmbiguousHost { .. } | Failure::ClientBody(_) => {
                StatusCode::BAD_REQUEST
            }
            Failure::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Failure::NoTarget { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Target(e) => target_status(e),
        }
    }

    /// The access log's `failureReason`.
    pub fn failure_reason(&self) -> &'static str {
        match self {
            Failure::UnknownHost { .. } => "-",
            Failure::NotAdmitted { .. }
            | Failure::Unauthenticated(_)
            | Failure::AccessDenied { .. } => "ClientAccessDenied",
            Failure::BadPath(_)
            | Failure::AmbiguousHost { .. }
            | Failure::MethodNotAllowed(_)
            | Failure::ClientBody(_) => "ClientProtocolError",
            Failure::NoTarget { .. } => "TargetConnectionError",
            Failure::Target(e) => e.failure_reason(),
        }
    }

    /// The body: a one-line explanation a person can act on.
    pub fn message(&self) -> String {
        match self {
            Failure::UnknownHost {
                host,
                closest,
                more,
            } => unknown_host_message(host, closest, *more),
            Failure::AmbiguousHost { count } => format!(
                "Bad Request: the request names its host {count} times (Host headers); send exactly one\n"
            ),
            Failure::MethodNotAllowed(method) => format!(
                "Method Not Allowed: {method} is not forwarded; VPC Lattice services answer HTTP requests, not tunnels\n"
            ),
            Failure::ClientBody(reason) => {
                format!("Bad Request: the request body could not be read: {reason}\n")
            }
            Failure::NotAdmitted { host } => format!(
                "Non Existent Service: \"{host}\" is not reachable from the client's VPC (no service network associates both)\n"
            ),
            Failure::Unauthenticated(e) => format!(
                "AccessDeniedException: the request signature could not be verified ({}): {e}\n",
                e.reason()
            ),
            Failure::AccessDenied { message, .. } => format!("{message}\n"),
            Failure::BadPath(e) => format!("Bad Request: {e}\n"),
            Failure::NoTarget { group } => {
                format!("Service Unavailable: target group \"{group}\" has no targets\n")
            }
            Failure::Target(e) => format!(
                "{}: {e}\n",
                self.status().canonical_reason().unwrap_or("Error")
            ),
        }
    }

    /// The gRPC status a gRPC caller gets: UNAUTHENTICATED for a bad signature (its HTTP
    /// status, 403, would say PERMISSION_DENIED), else the one of the HTTP status.
    pub fn grpc_status(&self) -> u8 {
        match self {
            Failure::Unauthenticated(_) => 16,
            _ => grpc_status(self.status()),
        }
    }
}

/// The unknown-host body: the closest host names, and how many others there are.
fn unknown_host_message(host: &str, closest: &[String], more: usize) -> String {
    let mut text =
        format!("Non Existent Service: no service answers to host \"{host}\" on this port.\n");
    if !closest.is_empty() {
        text.push_str("Closest host names served here:\n");
        for name in closest {
            text.push_str("  ");
            text.push_str(name);
            text.push('\n');
        }
    }
    if more > 0 {
        text.push_str(&format!("  ... and {more} more\n"));
    }
    text
}

/// The gRPC status code for an HTTP status Trellis produced itself.
pub fn grpc_status(status: StatusCode) -> u8 {
    match status.as_u16() {
        200 => 0,
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        413 => 8,
        429 | 502 | 503 => 14,
        504 => 4,
        _ => 2,
    }
}

/// A response Trellis makes itself: a fixed response or a failure. `grpc` is the gRPC status
/// for a gRPC caller (which then gets the message in `grpc-message`, not a body).
pub fn local_response(status: StatusCode, message: String, grpc: Option<u8>) -> Response<Body> {
    let mut builder = Response::builder().status(status);
    if let Some(code) = grpc {
        builder = builder
            .header("content-type", "application/grpc")
            .header("grpc-status", code.to_string());
        if let Ok(v) = HeaderValue::from_str(&percent_encode(message.trim_end())) {
            builder = builder.header("grpc-message", v);
        }
    } else if !message.is_empty() {
        builder = builder.header("content-type", "text/plain; charset=utf-8");
    }
    let body = if grpc.is_some() || message.is_empty() {
        crate::target::empty()
    } else {
        full(message)
    };
    builder
        .body(body)
        .unwrap_or_else(|_| Response::new(crate::target::empty()))
}

/// gRPC's percent-encoding of `grpc-message`.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if (0x20..0x7f).contains(&b) && b != b'%' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
