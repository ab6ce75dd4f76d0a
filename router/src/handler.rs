//! The path of one request, phase by phase: snapshot, find service, admit, match rule, select,
//! call target, rescue, log. Read top to bottom.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};

use crate::accesslog::{LogSink, Record, format_time, or_dash};
use crate::body::{Counted, Finished, Progress};
use crate::metrics::RouteMetrics;
use crate::rescue::{Failure, grpc_status, local_response};
use crate::table::{ActionRoute, RoutingTable, ServiceRoute};
use crate::target::{Body, CallContext, boxed};

/// What the accepting side knows about a connection.
#[derive(Debug, Clone)]
pub struct Connection {
    pub client: SocketAddr,
    pub port: u16,
    pub tls: Option<TlsInfo>,
    /// The forwarded headers every request on this connection gets, made once per connection
    /// rather than per request.
    forwarded: Forwarded,
}

#[derive(Debug, Clone)]
struct Forwarded {
    /// The client's address, the `x-forwarded-for` of a request that brings none.
    client: String,
    client_header: HeaderValue,
    port: HeaderValue,
    proto: HeaderValue,
}

impl Connection {
    pub fn new(client: SocketAddr, port: u16, tls: Option<TlsInfo>) -> Connection {
        let ip = client.ip().to_canonical().to_string();
        let forwarded = Forwarded {
            // An IP address and a port number are always valid header values.
            client_header: HeaderValue::from_str(&ip).unwrap_or(HeaderValue::from_static("")),
            client: ip,
            port: HeaderValue::from(port),
            proto: HeaderValue::from_static(scheme(&tls)),
        };
        Connection {
            client,
            port,
            tls,
            forwarded,
        }
    }

    /// `https` or `http`: how the client reached Trellis.
    fn scheme(&self) -> &'static str {
        scheme(&self.tls)
    }
}

fn scheme(tls: &Option<TlsInfo>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}

/// The TLS parameters of a connection, for the access log.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    pub sni: Option<String>,
    pub version: String,
    pub cipher: String,
}

// The headers the router writes on every request, parsed once rather than per request.
static X_AMZN_REQUESTID: HeaderName = HeaderName::from_static("x-amzn-requestid");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_AMZN_LATTICE_NETWORK: HeaderName = HeaderName::from_static("x-amzn-lattice-network");
static X_AMZN_LATTICE_TARGET: HeaderName = HeaderName::from_static("x-amzn-lattice-target");

/// Longest client-supplied `x-amzn-requestid` Lattice keeps.
const MAX_REQUEST_ID: usize = 512;

/// Handles one request. Never fails: every error becomes a response (see `rescue`).
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
    let started = SystemTime::now();
    // Phase: snapshot. One consistent table for the whole request, even across a reload.
    let table = table.load_full();
    let (mut parts, body) = request.into_parts();
    let request_id = RequestId::of(&parts.headers);
    let grpc = is_grpc(&parts.headers);
    let host = host_of(&parts, &conn);
    let mut log = Log::new(&parts);

    // Phase: find service.
    let Some((service, listener)) = table.find(conn.port, &host) else {
        let served = table
            .ports
            .get(&conn.port)
            .map(|p| p.host_names.clone())
            .unwrap_or_default();
        let failure = Failure::UnknownHost {
            host: host.clone(),
            served,
        };
        tracing::debug!(target: "trellis::request", "{} {} host {host:?}: unknown host", parts.method, parts.uri);
        return Ok(fail(failure, grpc, &request_id, log, start));
    };
    log.metrics = Some(service.metrics.clone());
    let new_record = || {
        let mut record = start_record(&parts, &conn, &request_id.text, &host, started);
        record.service_arn = service.arn.clone();
        record.listener_type = listener.protocol.as_str().to_string();
        record
    };

    // Phase: admit.
    let Some(admission) = table.admit(service, conn.client.ip()) else {
        log.open(service.access_logs.clone(), new_record);
        log.edit(|r| r.failure_reason = "ClientAccessDenied".into());
        return Ok(fail(
            Failure::NotAdmitted { host },
            grpc,
            &request_id,
            log,
            start,
        ));
    };
    log.open(log_sinks(service, admission.network_logs()), new_record);
    log.edit(|r| {
        r.service_network_arn = or_dash(admission.network_arn().unwrap_or_default());
        r.source_vpc_id = or_dash(admission.vpc_id().unwrap_or_default());
        r.source_vpc_arn = or_dash(admission.vpc_arn().unwrap_or_default());
    });

    // Phase: match rule.
    let (action, _rule) = listener.route(parts.method.as_str(), parts.uri.path(), &parts.headers);

    // Phase: select.
    let forward = match action {
        ActionRoute::Fixed(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::NOT_FOUND);
            let response = local_response(status, String::new(), grpc);
            return Ok(finish(response, grpc, &request_id, log, start));
        }
        ActionRoute::Forward(forward) => forward,
    };
    let Some(choice) = forward.pick() else {
        return Ok(fail(
            Failure::NoTarget { group: "-".into() },
            grpc,
            &request_id,
            log,
            start,
        ));
    };
    let group = &choice.group;
    log.edit(|r| r.target_group_arn = group.arn.clone());
    log.metrics = Some(choice.metrics.clone());
    let Some(target) = group.pick() else {
        return Ok(fail(
            Failure::NoTarget {
                group: group.name.clone(),
            },
            grpc,
            &request_id,
            log,
            start,
        ));
    };
    log.edit(|r| r.target_ip_port = target.target.address());

    // Phase: call target.
    let scheme = conn.scheme();
    prepare_request_headers(&mut parts.headers, &conn, &request_id, &host);
    add_lattice_headers(
        &mut parts.headers,
        &admission,
        choice.lattice_target(&admission),
    );
    // The body is counted only for the access-log record.
    let progress = log.record.is_some().then(|| Arc::new(Progress::default()));
    let body = match &progress {
        Some(progress) => boxed(Counted::new(boxed(body), progress.clone(), start)),
        None => boxed(body),
    };
    let ctx = CallContext {
        request_id: &request_id.text,
        client: conn.client,
        listener_port: conn.port,
        scheme,
        target_group_arn: &group.arn,
        service_arn: &service.arn,
        service_network_arn: admission.network_arn(),
        source_vpc_arn: admission.vpc_arn(),
    };
    let method = parts.method.clone();
    let uri = parts.uri.clone();
    let result = target
        .target
        .call(ctx, Request::from_parts(parts, body))
        .await;
    let head_at = Instant::now();
    if let Some(progress) = progress {
        log.edit(|r| {
            r.bytes_received += progress.bytes.load(Ordering::Relaxed);
            let sent_us = progress.done_after_us.load(Ordering::Relaxed);
            if sent_us > 0 {
                r.request_to_target_duration = (sent_us / 1000).to_string();
            }
        });
    }

    // Phase: rescue.
    let mut response = match result {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(target: "trellis::request", "{method} {host}{}: {e}", uri.path());
            return Ok(fail(Failure::Target(e), grpc, &request_id, log, start));
        }
    };
    strip_hop_by_hop(response.headers_mut());

    // Phase: log, when the last byte has gone out.
    Ok(finish_from_target(
        response,
        &request_id,
        log,
        start,
        head_at,
    ))
}

/// What the metrics and the access logs keep of a request as it goes through the phases. The
/// access-log record (some fifteen strings, formatted times and addresses) is only made when an
/// access log will receive it: without one, a request carries no more than where it is counted.
struct Log {
    /// Where the request is counted: its route once known, else the unrouted series.
    metrics: Option<Arc<RouteMetrics>>,
    /// The access logs that receive the record.
    sinks: Vec<Arc<LogSink>>,
    record: Option<Box<Record>>,
    /// `METHOD path` for the debug line at the end, only when debug logging is on.
    trace: Option<String>,
}

impl Log {
    fn new(parts: &http::request::Parts) -> Log {
        let trace = tracing::enabled!(target: "trellis::request", tracing::Level::DEBUG)
            .then(|| format!("{} {}", parts.method, parts.uri.path()));
        Log {
            metrics: None,
            sinks: Vec::new(),
            record: None,
            trace,
        }
    }

    /// Sends the record to `sinks`, making it with `record` when there are any.
    fn open(&mut self, sinks: Vec<Arc<LogSink>>, record: impl FnOnce() -> Record) {
        if !sinks.is_empty() {
            self.record = Some(Box::new(record()));
        }
        self.sinks = sinks;
    }

    /// Fills in record fields, when there is a record.
    fn edit(&mut self, fill: impl FnOnce(&mut Record)) {
        if let Some(record) = self.record.as_deref_mut() {
            fill(record);
        }
    }
}

/// A request's id: the client's `x-amzn-requestid`, else a new UUID. The header value is made
/// once and shared by the request to the target and the response.
struct RequestId {
    /// For the access log and the function's event.
    text: String,
    header: Option<HeaderValue>,
}

impl RequestId {
    fn of(headers: &HeaderMap) -> RequestId {
        let text = request_id(headers);
        let header = HeaderValue::from_str(&text).ok().map(|mut v| {
            // Sent as a literal that HTTP/2's HPACK never indexes. Every value is new, so
            // indexing it only churns the dynamic table: the encoder would compare each new
            // id with every id still in the table (a `memcmp` each), insert it and evict an
            // older entry, about 4 % of Trellis's CPU per h2c request in a profile
            // (docs/BENCHMARKS.md). HTTP/1.1 ignores the mark.
            v.set_sensitive(true);
            v
        });
        RequestId { text, header }
    }

    /// Sets `x-amzn-requestid` in `headers`.
    fn set(&self, headers: &mut HeaderMap) {
        if let Some(v) = &self.header {
            headers.insert(X_AMZN_REQUESTID.clone(), v.clone());
        }
    }
}

fn request_id(headers: &HeaderMap) -> String {
    match headers
        .get(&X_AMZN_REQUESTID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        Some(id) => {
            let mut end = id.len().min(MAX_REQUEST_ID);
            while !id.is_char_boundary(end) {
                end -= 1;
            }
            id[..end].to_string()
        }
        None => uuid::Uuid::new_v4().to_string(),
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The host the client asked for: `Host`, else the HTTP/2 authority, else the TLS SNI.
fn host_of(parts: &http::request::Parts, conn: &Connection) -> String {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_string()))
        .or_else(|| conn.tls.as_ref().and_then(|t| t.sni.clone()))
        .unwrap_or_default()
}

fn start_record(
    parts: &http::request::Parts,
    conn: &Connection,
    request_id: &str,
    host: &str,
    started: SystemTime,
) -> Record {
    let mut record = Record::empty();
    let now = started.duration_since(UNIX_EPOCH).unwrap_or_default();
    record.start_time = format_time(now);
    record.request_id = request_id.to_string();
    record.request_method = parts.method.to_string();
    record.request_path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    record.protocol = match parts.version {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
    .to_string();
    record.host_header = or_dash(host);
    record.source_ip_port = conn.client.to_string();
    record.user_agent = or_dash(
        parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    record.bytes_received = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum();
    if let Some(tls) = &conn.tls {
        record.server_name_indication = or_dash(tls.sni.clone().unwrap_or_default());
        record.tls_version = or_dash(tls.version.clone());
        record.ssl_cipher = or_dash(tls.cipher.clone());
    }
    record
}

/// Whether `name` is a hop-by-hop header: meaningful for one connection only, never
/// forwarded. A `match` on the text, which tells most names apart by their length: comparing
/// with nine `HeaderName`s cost more than the hashing the check saves.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Removes hop-by-hop headers, including those the `Connection` header names. `te: trailers`
/// survives: gRPC over HTTP/2 requires it end to end.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them (`connection` included, which names the others): one
    // pass over the names tells, where removing each would hash all nine on every message.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let keep_te = headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    let present: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name))
        .cloned()
        .collect();
    for name in present {
        headers.remove(name);
    }
    if keep_te {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

fn prepare_request_headers(
    headers: &mut HeaderMap,
    conn: &Connection,
    request_id: &RequestId,
    host: &str,
) {
    strip_hop_by_hop(headers);
    // Room for the headers added below, so that the map grows (and rehashes) at most once.
    headers.reserve(6);
    // Clients may not claim Lattice's identity headers.
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-amzn-lattice-"))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
    if !headers.contains_key(header::HOST)
        && let Ok(v) = HeaderValue::from_str(host)
    {
        headers.insert(header::HOST, v);
    }
    let forwarded = &conn.forwarded;
    // Several x-forwarded-for lines are one comma-separated list: keep every hop, in order.
    let mut hops: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if hops.is_empty() {
        headers.insert(X_FORWARDED_FOR.clone(), forwarded.client_header.clone());
    } else {
        hops.push(&forwarded.client);
        let xff = hops.join(", ");
        set(headers, &X_FORWARDED_FOR, &xff);
    }
    headers.insert(X_FORWARDED_PORT.clone(), forwarded.port.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), forwarded.proto.clone());
    request_id.set(headers);
}

/// Lattice's `x-amzn-lattice-network` and `x-amzn-lattice-target` headers, both made when the
/// routing table was built (formatting them per request was ≈ 3 % of Trellis's user-space
/// instructions per request, `bench/instructions.sh`).
fn add_lattice_headers(
    headers: &mut HeaderMap,
    admission: &crate::table::Admission,
    lattice_target: Option<&HeaderValue>,
) {
    if let Some(network) = admission.network_header() {
        headers.insert(X_AMZN_LATTICE_NETWORK.clone(), network.clone());
    }
    if let Some(target) = lattice_target {
        headers.insert(X_AMZN_LATTICE_TARGET.clone(), target.clone());
    }
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name.clone(), v);
    }
}

fn log_sinks(service: &ServiceRoute, network_logs: &[Arc<LogSink>]) -> Vec<Arc<LogSink>> {
    let mut sinks: Vec<Arc<LogSink>> = service.access_logs.clone();
    for sink in network_logs {
        if !sinks.iter().any(|s| Arc::ptr_eq(s, sink)) {
            sinks.push(sink.clone());
        }
    }
    sinks
}

fn fail(
    failure: Failure,
    grpc: bool,
    request_id: &RequestId,
    mut log: Log,
    start: Instant,
) -> Response<Body> {
    log.edit(|r| {
        if r.failure_reason.is_empty() || r.failure_reason == "-" {
            r.failure_reason = failure.failure_reason().to_string();
        }
    });
    let response = local_response(failure.status(), failure.message(), grpc);
    finish(response, grpc, request_id, log, start)
}

/// Completes a response Trellis made itself.
fn finish(
    mut response: Response<Body>,
    grpc: bool,
    request_id: &RequestId,
    mut log: Log,
    start: Instant,
) -> Response<Body> {
    request_id.set(response.headers_mut());
    if grpc {
        log.edit(|r| r.grpc_response_code = grpc_status(response.status()).to_string());
    }
    with_log(response, log, start, None)
}

fn finish_from_target(
    mut response: Response<Body>,
    request_id: &RequestId,
    log: Log,
    start: Instant,
    head_at: Instant,
) -> Response<Body> {
    request_id.set(response.headers_mut());
    with_log(response, log, start, Some(head_at))
}

/// Wraps the body so the request is counted, and its record written, when the last byte has
/// been sent.
fn with_log(
    response: Response<Body>,
    log: Log,
    start: Instant,
    head_at: Option<Instant>,
) -> Response<Body> {
    let Log {
        metrics,
        sinks,
        mut record,
        trace,
    } = log;
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    if let Some(r) = record.as_deref_mut() {
        r.response_code = status;
        if let Some(g) = parts
            .headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
        {
            r.grpc_response_code = g.to_string();
        }
        r.bytes_sent = parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
            .sum();
    }
    let body = Finished::new(body, move |bytes| {
        let elapsed = start.elapsed();
        metrics
            .as_deref()
            .unwrap_or_else(|| crate::metrics::global().unrouted())
            .request(status, elapsed.as_secs_f64());
        if let Some(trace) = trace {
            tracing::debug!(target: "trellis::request", "{trace} {status} {}ms", elapsed.as_millis());
        }
        let Some(mut record) = record else {
            return;
        };
        record.duration = elapsed.as_millis() as u64;
        record.bytes_sent += bytes;
        if let Some(head_at) = head_at {
            record.response_from_target_duration = head_at.elapsed().as_millis().to_string();
        }
        match serde_json::to_string(&record) {
            Ok(line) => {
                let line = Arc::new(line);
                for sink in &sinks {
                    sink.write(line.clone());
                }
            }
            Err(e) => {
                tracing::warn!(target: "trellis::accesslog", "cannot encode access-log record: {e}")
            }
        }
    });
    Response::from_parts(parts, boxed(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn strip_hop_by_hop_leaves_end_to_end_headers_alone() {
        let end_to_end = [
            ("content-type", "text/plain"),
            ("content-length", "5"),
            ("x-custom-hop", "not named by a connection header"),
        ];
        let mut h = headers(&end_to_end);
        strip_hop_by_hop(&mut h);
        assert_eq!(h, headers(&end_to_end));
    }

    #[test]
    fn strip_hop_by_hop_removes_each_hop_header_even_alone() {
        // Each one on its own must take the slow path: none may hide behind the fast check.
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("x"),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            strip_hop_by_hop(&mut h);
            assert_eq!(h, headers(&[("content-length", "0")]), "{name}");
        }
        // ... and with a connection header naming another one, both go.
        let mut h = headers(&[
            ("connection", "x-custom-hop"),
            ("x-custom-hop", "1"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h, headers(&[("accept", "*/*")]));
        // `te: trailers` is end to end for gRPC.
        let mut h = headers(&[("te", "trailers"), ("upgrade", "h2c")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h, headers(&[("te", "trailers")]));
    }

    #[test]
    fn request_id_is_sent_never_indexed() {
        let mut client = HeaderMap::new();
        client.insert(
            X_AMZN_REQUESTID.clone(),
            HeaderValue::from_static("client-id"),
        );
        let id = RequestId::of(&client);
        assert_eq!(id.text, "client-id");

        let mut headers = HeaderMap::new();
        headers.insert(
            X_AMZN_REQUESTID.clone(),
            HeaderValue::from_static("spoofed"),
        );
        id.set(&mut headers);
        let sent: Vec<_> = headers.get_all(&X_AMZN_REQUESTID).iter().collect();
        assert_eq!(sent, ["client-id"]);
        // hyper hands the flag to HPACK, which then writes a never-indexed literal.
        assert!(sent[0].is_sensitive());

        let generated = RequestId::of(&HeaderMap::new());
        assert_eq!(generated.text.len(), 36, "{}", generated.text);
        assert!(generated.header.is_some_and(|v| v.is_sensitive()));
    }
}
