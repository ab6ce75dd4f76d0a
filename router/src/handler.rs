//! The path of one request, as named phases with one exit: snapshot, screen, find service,
//! normalise the path, admit, refuse tunnels, authenticate, authorize, route, select, call
//! target; then `Exchange::finish`, the one place where the
//! outcome (a target's response, a fixed response or a [`Failure`]) becomes the response, the
//! metrics and the access-log record. Read top to bottom.
//!
//! A phase is a function that takes the [`Exchange`] (what is known of the request so far) and
//! returns what the next phase needs, or the `Failure` that ends the request. A new phase
//! (authorizing a request with SigV4 and IAM policies, between admit and route) is one more
//! function called from `proxy` and, if it can refuse, one more `Failure` kind in `rescue`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use tracing::Instrument;

use crate::accesslog::or_dash;
use crate::body::{Counted, Progress};
use crate::path;
use crate::rescue::{Failure, grpc_status, local_response};
use crate::table::EJECTION_PERIOD;
use crate::table::{
    ActionRoute, Admission, Choice, Forward, ListenerRoute, RoutingTable, ServiceRoute, TargetRoute,
};
use crate::target::{Body, CallContext, TargetError, Unsent, boxed};

use auth::{add_identity_headers, authenticate, authorize, log_caller};
pub use connection::{Connection, TlsInfo};
pub use headers::strip_hop_by_hop;
use headers::{RequestId, add_lattice_headers, host_of, is_grpc, prepare_request_headers};
use log::{Log, log_sinks, start_record};

mod auth;
mod connection;
mod headers;
mod log;

/// Handles one request. Never fails: every outcome becomes a response in `Exchange::finish`.
pub async fn handle<B>(
    table: Arc<ArcSwap<RoutingTable>>,
    conn: Arc<Connection>,
    request: Request<B>,
) -> Result<Response<Body>, Infallible>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<crate::target::BoxError>,
{
    let start = Instant::now();
    // Phase: snapshot. One consistent table for the whole request, even across a reload.
    let table = table.load_full();
    let (parts, body) = request.into_parts();
    let mut exchange = Exchange::new(&parts, &conn, start);
    let span = exchange.log.span.clone();
    let outcome = proxy(&table, &mut exchange, parts, body)
        .instrument(span)
        .await;
    Ok(exchange.finish(outcome))
}

/// The phases, in order. Each one either hands the next what it needs or ends the request
/// with a [`Failure`]; either way the request leaves through `Exchange::finish`.
async fn proxy<B>(
    table: &RoutingTable,
    ex: &mut Exchange<'_>,
    mut parts: Parts,
    body: B,
) -> Result<Answer, Failure>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<crate::target::BoxError>,
{
    screen(&parts)?;
    let (service, listener) = find_service(table, ex)?;
    // Normalised before admit opens the access-log record, so that the record shows the path
    // the rules and the target see; a path with no normal form is refused only once the record
    // is open, so that the refusal is logged (with the path as sent).
    let normalized = normalize_path(&mut parts);
    let admission = admit(table, ex, &parts, service, listener)?;
    // Refused once the record is open, so that the service's access log shows the 405.
    refuse_tunnels(&parts)?;
    // The signature covers the path as sent; the policies see the normalised one.
    let as_sent = normalized?;
    ex.caller = authenticate(table, ex, &mut parts, as_sent.as_ref(), service)?;
    if let Some(caller) = &ex.caller {
        log_caller(&mut ex.log, caller);
    }
    authorize(table, ex, &parts, service, &admission)?;
    let forward = match route(listener, &parts) {
        ActionRoute::Fixed(code) => return Ok(Answer::Fixed(fixed_status(*code))),
        ActionRoute::Forward(forward) => forward,
    };
    let selected = select(ex, forward)?;
    call_target(table, ex, parts, body, service, &admission, selected).await
}

/// How a request that no phase refused ends.
#[derive(Debug)]
enum Answer {
    /// The target answered; its response head arrived at `head_at`.
    Target {
        response: Response<Body>,
        head_at: Instant,
    },
    /// A fixed-response action answered with this status.
    Fixed(StatusCode),
}

/// One request on its way through the phases: what every phase may read, and what the last
/// one needs to answer and log it.
struct Exchange<'c> {
    conn: &'c Connection,
    request_id: RequestId,
    /// Failures are answered with gRPC statuses.
    grpc: bool,
    /// The host as the router resolved it: the URI's authority (absolute form, `:authority`),
    /// else `Host`, else the TLS SNI.
    host: String,
    start: Instant,
    started: SystemTime,
    log: Log,
    /// Who signed the request, once the authenticate phase has verified it.
    caller: Option<std::sync::Arc<trellis_auth::Caller>>,
}

impl<'c> Exchange<'c> {
    fn new(parts: &Parts, conn: &'c Connection, start: Instant) -> Exchange<'c> {
        let request_id = RequestId::of(&parts.headers);
        let host = host_of(parts, conn);
        // Disabled (the default filter), the span costs a check of its call site: its fields
        // are formatted only by a subscriber that wants them.
        let span = tracing::debug_span!(
            target: "trellis::request",
            "request",
            id = %request_id.text,
            method = %parts.method,
            path = parts.uri.path(),
            host = %host,
            service = tracing::field::Empty,
        );
        Exchange {
            conn,
            grpc: is_grpc(&parts.headers),
            request_id,
            host,
            start,
            started: SystemTime::now(),
            log: Log::new(span),
            caller: None,
        }
    }

    /// The one exit: turns the outcome of the phases into the response, and arranges for the
    /// metrics and the access-log record to be written when its last byte has gone out.
    fn finish(self, outcome: Result<Answer, Failure>) -> Response<Body> {
        let Exchange {
            request_id,
            grpc,
            mut log,
            start,
            ..
        } = self;
        let (mut response, head_at) = match outcome {
            Ok(Answer::Target { response, head_at }) => (response, Some(head_at)),
            Ok(Answer::Fixed(status)) => {
                let grpc = grpc.then(|| grpc_status(status));
                (local_response(status, String::new(), grpc), None)
            }
            Err(failure) => {
                log.edit(|r| r.failure_reason = failure.failure_reason().to_string());
                let grpc = grpc.then(|| failure.grpc_status());
                let response = local_response(failure.status(), failure.message(), grpc);
                (response, None)
            }
        };
        request_id.set(response.headers_mut());
        log.finish(response, start, head_at)
    }
}

/// Phase: screen. A request naming its host twice is refused before any service is looked
/// up (RFC 9112, section 3.2: 400), as which `Host` picks the service would be a guess, and
/// a proxy and its target could guess differently.
fn screen(parts: &Parts) -> Result<(), Failure> {
    let hosts = parts.headers.get_all(http::header::HOST).iter().count();
    if hosts > 1 {
        return Err(Failure::AmbiguousHost { count: hosts });
    }
    Ok(())
}

/// `CONNECT` asks for a tunnel rather than an HTTP exchange: forwarded, it would reach the
/// target as `CONNECT /` and leave the client waiting on a tunnel nobody opened.
fn refuse_tunnels(parts: &Parts) -> Result<(), Failure> {
    if parts.method == http::Method::CONNECT {
        return Err(Failure::MethodNotAllowed(parts.method.clone()));
    }
    Ok(())
}

/// How many host names the unknown-host answer suggests at most.
const SUGGESTED_HOSTS: usize = 5;

/// Phase: find service. The service and listener that answer to the host on this port.
fn find_service<'t>(
    table: &'t RoutingTable,
    ex: &mut Exchange<'_>,
) -> Result<(&'t ServiceRoute, &'t ListenerRoute), Failure> {
    let port = ex.conn.port;
    let Some((service, listener)) = table.find(port, &ex.host) else {
        tracing::debug!(target: "trellis::request", "unknown host");
        let client = ex.conn.client.ip();
        let (closest, more) = table.closest_hosts(port, &ex.host, client, SUGGESTED_HOSTS);
        return Err(Failure::UnknownHost {
            host: ex.host.clone(),
            closest,
            more,
        });
    };
    ex.log.span.record("service", service.name.as_str());
    ex.log.metrics = Some(service.metrics.clone());
    Ok((service, listener))
}

/// Phase: normalise the path. From here on the rules, the authorize phase, the access log and
/// the target all see one path, its normal form (`crate::path` says which, and why).
fn normalize_path(parts: &mut Parts) -> Result<Option<http::Uri>, Failure> {
    match path::normalize_uri(&parts.uri).map_err(Failure::BadPath)? {
        Some(uri) => {
            tracing::debug!(target: "trellis::request", "path normalised to {}", uri.path());
            Ok(Some(std::mem::replace(&mut parts.uri, uri)))
        }
        None => Ok(None),
    }
}

/// Phase: admit. The client's VPC must be associated with a network the service is in. The
/// access-log record starts here: the network decides which access logs receive it.
fn admit<'t>(
    table: &'t RoutingTable,
    ex: &mut Exchange<'_>,
    parts: &Parts,
    service: &'t ServiceRoute,
    listener: &ListenerRoute,
) -> Result<Admission<'t>, Failure> {
    let admission = table.admit(service, ex.conn.client.ip());
    let sinks = match &admission {
        Some(admission) => log_sinks(service, admission.network_logs()),
        None => service.access_logs.clone(),
    };
    let (conn, request_id, host, started) = (ex.conn, &ex.request_id, &ex.host, ex.started);
    ex.log.open(sinks, || {
        let mut record = start_record(parts, conn, &request_id.text, host, started);
        record.service_arn = service.arn.clone();
        record.listener_type = listener.protocol.as_str().to_string();
        record
    });
    let Some(admission) = admission else {
        return Err(Failure::NotAdmitted {
            host: ex.host.clone(),
        });
    };
    ex.log.edit(|r| {
        r.service_network_arn = or_dash(admission.network_arn().unwrap_or_default());
        r.source_vpc_id = or_dash(admission.vpc_id().unwrap_or_default());
        r.source_vpc_arn = or_dash(admission.vpc_arn().unwrap_or_default());
    });
    Ok(admission)
}

/// Phase: route. The action of the first rule that matches, else the listener's default.
fn route<'t>(listener: &'t ListenerRoute, parts: &Parts) -> &'t ActionRoute {
    let (action, _rule) = listener.route(parts.method.as_str(), parts.uri.path(), &parts.headers);
    action
}

/// The status of a fixed-response action; the config allows only valid ones.
fn fixed_status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::NOT_FOUND)
}

/// Where a forwarded request goes: a target group of the action, and a target in it.
struct Selected<'t> {
    choice: &'t Choice,
    target: &'t TargetRoute,
}

/// Phase: select. A target group by weight, then a target in it by round robin.
fn select<'t>(ex: &mut Exchange<'_>, forward: &'t Forward) -> Result<Selected<'t>, Failure> {
    let Some(choice) = forward.pick() else {
        return Err(Failure::NoTarget { group: "-".into() });
    };
    let group = &choice.group;
    ex.log.edit(|r| r.target_group_arn = group.arn.clone());
    ex.log.metrics = Some(choice.metrics.clone());
    let Some(target) = group.pick() else {
        return Err(Failure::NoTarget {
            group: group.name.clone(),
        });
    };
    ex.log.edit(|r| r.target_ip_port = target.target.address());
    Ok(Selected { choice, target })
}

/// Phase: call target. Sends the request on with the headers a Lattice target sees, and
/// returns the target's response head; its body streams on after the phases are done.
async fn call_target<B>(
    table: &RoutingTable,
    ex: &mut Exchange<'_>,
    mut parts: Parts,
    body: B,
    service: &ServiceRoute,
    admission: &Admission<'_>,
    Selected { choice, target }: Selected<'_>,
) -> Result<Answer, Failure>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<crate::target::BoxError>,
{
    prepare_request_headers(&mut parts.headers, ex.conn, &ex.request_id, &ex.host);
    add_lattice_headers(
        &mut parts.headers,
        admission,
        choice.lattice_target(admission),
    );
    if let Some(caller) = &ex.caller {
        add_identity_headers(table, &mut parts.headers, caller);
    }
    // The body is counted for the access-log record, and watched for a failure of the
    // client's: the target call fails then too, but it is not the target's failure.
    let progress = Arc::new(Progress::default());
    let body = boxed(Counted::new(boxed(body), progress.clone(), ex.start));
    let ctx = CallContext {
        request_id: &ex.request_id.text,
        host: &ex.host,
        client: ex.conn.client,
        listener_port: ex.conn.port,
        scheme: ex.conn.scheme(),
        target_group_arn: &choice.group.arn,
        service_arn: &service.arn,
        service_network_arn: admission.network_arn(),
        source_vpc_arn: admission.vpc_arn(),
        caller: ex.caller.as_deref(),
    };
    let method = parts.method.clone();
    let uri = parts.uri.clone();
    let mut result = target
        .target
        .call(ctx, Request::from_parts(parts, body))
        .await;
    // A target that refused the connection got nothing of the request: out of rotation it
    // goes, and the request goes once to another target of the group.
    if let Err(TargetError::Connect { unsent, reason, .. }) = &mut result
        && let Some(request) = unsent.take().map(Unsent::into_request)
    {
        target.health.eject(EJECTION_PERIOD);
        tracing::warn!(target: "trellis::request", "{}: connection refused ({reason}); out of rotation for up to {}s", target.label, EJECTION_PERIOD.as_secs());
        if let Some(other) = choice.group.pick_other(target) {
            ex.log.edit(|r| {
                r.refused_by_target_ip_port = target.target.address();
                r.target_ip_port = other.target.address();
            });
            result = other.target.call(ctx, request).await;
        }
    }
    let head_at = Instant::now();
    if ex.log.record.is_some() {
        ex.log.edit(|r| {
            r.bytes_received += progress.bytes.load(Ordering::Relaxed);
            let sent_us = progress.done_after_us.load(Ordering::Relaxed);
            if sent_us > 0 {
                r.request_to_target_duration = (sent_us / 1000).to_string();
            }
        });
    }
    match result {
        // No request is forwarded with an `Upgrade` (it is hop-by-hop), so a 101 (or any 1xx
        // the target's client library passes on) answers nothing that was asked: passed on,
        // it would leave the client's connection in a protocol nobody agreed to.
        Ok(response) if response.status().is_informational() => {
            let status = response.status();
            tracing::warn!(target: "trellis::request", "{method} {}{}: unsolicited {status} from the target", ex.host, uri.path());
            Err(Failure::Target(TargetError::Protocol {
                target: target.target.address(),
                reason: format!("unsolicited {status} (the request asked for no upgrade)"),
            }))
        }
        Ok(mut response) => {
            strip_hop_by_hop(response.headers_mut());
            Ok(Answer::Target { response, head_at })
        }
        Err(_) if progress.client_error.get().is_some() => {
            let reason = progress.client_error.get().cloned().unwrap_or_default();
            tracing::info!(target: "trellis::request", "{method} {}{}: the client's request body failed: {reason}", ex.host, uri.path());
            Err(Failure::ClientBody(reason))
        }
        Err(e) => {
            tracing::warn!(target: "trellis::request", "{method} {}{}: {e}", ex.host, uri.path());
            Err(Failure::Target(e))
        }
    }
}

#[cfg(test)]
mod tests;
