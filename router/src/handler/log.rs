//! What the metrics and the access logs keep of a request, and the body wrapper that counts it
//! and writes its record when the last byte has gone out.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use http::{Response, Version};

use super::Connection;
use crate::accesslog::{LogSink, Record, format_time, or_dash};
use crate::body::Finished;
use crate::metrics::RouteMetrics;
use crate::table::ServiceRoute;
use crate::target::{Body, boxed};

/// What the metrics and the access logs keep of a request as it goes through the phases. The
/// access-log record (some fifteen strings, formatted times and addresses) is only made when an
/// access log will receive it: without one, a request carries no more than where it is counted.
pub(super) struct Log {
    /// Where the request is counted: its route once known, else the unrouted series.
    pub metrics: Option<Arc<RouteMetrics>>,
    /// The access logs that receive the record.
    sinks: Vec<Arc<LogSink>>,
    pub record: Option<Box<Record>>,
    /// The request's tracing span, entered again for the line written when the response ends
    /// (which is after the phases have returned). Disabled, it is a no-op.
    pub span: tracing::Span,
}

impl Log {
    pub fn new(span: tracing::Span) -> Log {
        Log {
            metrics: None,
            sinks: Vec::new(),
            record: None,
            span,
        }
    }

    /// Sends the record to `sinks`, making it with `record` when there are any or when the
    /// console's live tail is watched.
    pub fn open(&mut self, sinks: Vec<Arc<LogSink>>, record: impl FnOnce() -> Record) {
        if !sinks.is_empty() || crate::accesslog::tapped() {
            self.record = Some(Box::new(record()));
        }
        self.sinks = sinks;
    }

    /// Fills in record fields, when there is a record.
    pub fn edit(&mut self, fill: impl FnOnce(&mut Record)) {
        if let Some(record) = self.record.as_deref_mut() {
            fill(record);
        }
    }

    /// Wraps the body so the request is counted, and its record written, when the last byte
    /// has been sent. `head_at` is when a target's response head arrived.
    pub fn finish(
        self,
        response: Response<Body>,
        start: Instant,
        head_at: Option<Instant>,
    ) -> Response<Body> {
        let Log {
            metrics,
            sinks,
            mut record,
            span,
        } = self;
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
            r.bytes_sent = header_bytes(&parts.headers);
        }
        let body = Finished::new(body, move |bytes| {
            let elapsed = start.elapsed();
            metrics
                .as_deref()
                .unwrap_or_else(|| crate::metrics::global().unrouted())
                .request(status, elapsed.as_secs_f64());
            span.in_scope(|| {
                tracing::debug!(target: "trellis::request", "{status} {}ms", elapsed.as_millis());
            });
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
                    // No watcher is not an error; a full watcher drops its oldest records.
                    let _ = crate::accesslog::tap().send(line);
                }
                Err(e) => {
                    tracing::warn!(target: "trellis::accesslog", "cannot encode access-log record: {e}")
                }
            }
        });
        Response::from_parts(parts, boxed(body))
    }
}

/// The access logs of a service and of the network the client came through, each once.
pub(super) fn log_sinks(
    service: &ServiceRoute,
    network_logs: &[Arc<LogSink>],
) -> Vec<Arc<LogSink>> {
    let mut sinks: Vec<Arc<LogSink>> = service.access_logs.clone();
    for sink in network_logs {
        if !sinks.iter().any(|s| Arc::ptr_eq(s, sink)) {
            sinks.push(sink.clone());
        }
    }
    sinks
}

/// The record's fields known when the request arrives.
pub(super) fn start_record(
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
    record.bytes_received = header_bytes(&parts.headers);
    if let Some(tls) = &conn.tls {
        record.server_name_indication = or_dash(tls.sni.clone().unwrap_or_default());
        record.tls_version = or_dash(tls.version.clone());
        record.ssl_cipher = or_dash(tls.cipher.clone());
    }
    record
}

/// The size of `headers` as the access log counts it: `name: value\r\n` each.
fn header_bytes(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum()
}
