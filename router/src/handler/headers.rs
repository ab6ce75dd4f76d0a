//! The headers the router reads and writes on the way through: the request id, the gRPC mark,
//! hop-by-hop headers, and what the target is told about the client and Lattice.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::Connection;
use crate::table::Admission;

// The headers the router writes on every request, parsed once rather than per request.
static X_AMZN_REQUESTID: HeaderName = HeaderName::from_static("x-amzn-requestid");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_AMZN_LATTICE_NETWORK: HeaderName = HeaderName::from_static("x-amzn-lattice-network");
static X_AMZN_LATTICE_TARGET: HeaderName = HeaderName::from_static("x-amzn-lattice-target");

/// Longest client-supplied `x-amzn-requestid` Lattice keeps.
const MAX_REQUEST_ID: usize = 512;

/// A request's id: the client's `x-amzn-requestid`, else a new UUID. The header value is made
/// once and shared by the request to the target and the response.
pub(super) struct RequestId {
    /// For the access log and the function's event.
    pub text: String,
    header: Option<HeaderValue>,
}

impl RequestId {
    pub fn of(headers: &HeaderMap) -> RequestId {
        let text = request_id(headers);
        let header = HeaderValue::from_str(&text).ok().map(|mut v| {
            // Sent as a literal that HTTP/2's HPACK never indexes. Every value is new, so
            // indexing it only churns the dynamic table: the encoder would compare each new
            // id with every id still in the table (a `memcmp` each), insert it and evict an
            // older entry, for nothing. HTTP/1.1 ignores the mark.
            v.set_sensitive(true);
            v
        });
        RequestId { text, header }
    }

    /// Sets `x-amzn-requestid` in `headers`.
    pub fn set(&self, headers: &mut HeaderMap) {
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

/// Whether the request is a gRPC call, whose failures are answered with gRPC statuses.
pub(super) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The host the client asked for: the request target's authority (an HTTP/1.1 absolute-form
/// `GET http://host/path`, HTTP/2's `:authority`), else `Host`, else the TLS SNI. The
/// authority wins over a `Host` that differs (RFC 9112, section 3.2.2: a server ignores `Host`
/// then; RFC 9113, section 8.3.1: `:authority` is the host of an HTTP/2 request). The one host
/// found here picks the service and is the `Host` (or `:authority`) the target receives, so
/// the router and the target never see two different hosts.
pub(super) fn host_of(parts: &http::request::Parts, conn: &Connection) -> String {
    parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .or_else(|| conn.tls.as_ref().and_then(|t| t.sni.clone()))
        .unwrap_or_default()
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

/// Makes the client's headers the target's: without hop-by-hop headers or claimed Lattice
/// identity, with `Host` (the host the router resolved, whatever the client's `Host` said: see
/// [`host_of`]), the `x-forwarded-*` headers and the request id.
pub(super) fn prepare_request_headers(
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
    if let Ok(v) = HeaderValue::from_str(host)
        && !host.is_empty()
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
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    headers.insert(X_FORWARDED_PORT.clone(), forwarded.port.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), forwarded.proto.clone());
    request_id.set(headers);
}

/// Lattice's `x-amzn-lattice-network` and `x-amzn-lattice-target` headers, both made when the
/// routing table was built: formatting ARNs into header values per request is measurable work
/// on every request.
pub(super) fn add_lattice_headers(
    headers: &mut HeaderMap,
    admission: &Admission,
    lattice_target: Option<&HeaderValue>,
) {
    if let Some(network) = admission.network_header() {
        headers.insert(X_AMZN_LATTICE_NETWORK.clone(), network.clone());
    }
    if let Some(target) = lattice_target {
        headers.insert(X_AMZN_LATTICE_TARGET.clone(), target.clone());
    }
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
