//! The VPC Lattice event codec: an HTTP request becomes the JSON event a Lambda function
//! receives (structure `V1` or `V2`), and the function's JSON answer becomes an HTTP response.
//!
//! The shapes follow the VPC Lattice user guide ("Lambda functions as targets"); the tests check
//! every event against `aws_lambda_events`' `VpcLatticeRequestV1`/`V2`, a parser nobody here
//! wrote. Where the guide is silent, the choice made is documented on the item that makes it.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use trellis_config::EventVersion;

/// Everything an event is made of: the HTTP request and what Lattice knows about it.
#[derive(Debug, Clone)]
pub struct EventRequest<'a> {
    /// The request method (`GET`, `POST`, custom methods too).
    pub method: &'a str,
    /// The path with its query string, exactly as the client sent it (`/a/b?x=1&x=2`):
    /// `raw_path` (V1) and `path` (V2) both include the query.
    pub path_and_query: &'a str,
    /// The request headers as the router forwards them (with `x-forwarded-for` added).
    pub headers: &'a HeaderMap,
    /// The whole request body.
    pub body: &'a [u8],
    /// ARN of the service network the client came through; `None` when there is none.
    pub service_network_arn: Option<&'a str>,
    /// ARN of the service.
    pub service_arn: &'a str,
    /// ARN of the target group.
    pub target_group_arn: &'a str,
    /// ARN of the client's VPC, when its address belongs to one.
    pub source_vpc_arn: Option<&'a str>,
    /// The Region (`requestContext.region`).
    pub region: &'a str,
    /// `requestContext.identity.type`: `"NONE"` for unauthenticated callers, `"AWS_IAM"` after
    /// SigV4 authentication.
    pub identity_type: &'a str,
    /// The verified caller's principal, organization and session (V2 `requestContext.identity`).
    pub principal: Option<&'a str>,
    pub principal_org_id: Option<&'a str>,
    pub session_name: Option<&'a str>,
    /// When Lattice received the request (`requestContext.timeEpoch`).
    pub time: SystemTime,
}

/// Encodes `req` as the Lambda event of structure `version`, as JSON bytes.
///
/// V1 is snake_case with one string per header (repeated headers joined with `", "`) and the
/// last value of a repeated query key; V2 is camelCase with arrays for both and a
/// `requestContext`. See [`body_field`] for when the body is base64-encoded and
/// [`parse_query`] for how query parameters are decoded.
pub fn encode(req: &EventRequest<'_>, version: EventVersion) -> Vec<u8> {
    // Serializing strings, booleans and maps with string keys into a Vec cannot fail.
    serde_json::to_vec(&Event::build(req, version)).unwrap_or_default()
}

/// The event, ready to serialize. Field order follows the user guide's examples, so that
/// events read like the documented ones.
#[derive(Serialize)]
#[serde(untagged)]
enum Event<'a> {
    V1(V1Event<'a>),
    V2(V2Event<'a>),
}

#[derive(Serialize)]
struct V1Event<'a> {
    raw_path: &'a str,
    method: &'a str,
    headers: Pairs<&'a str, String>,
    query_string_parameters: Pairs<String, String>,
    /// Always present: an empty body is `""`, because the published V1 schemas (Powertools'
    /// Zod and Pydantic models) require a string here.
    body: String,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2Event<'a> {
    version: &'static str,
    path: &'a str,
    method: &'a str,
    headers: Pairs<&'a str, Vec<String>>,
    query_string_parameters: Pairs<String, Vec<String>>,
    /// Absent for an empty body: the guide lists `body` as optional in V2, the published V2
    /// schemas mark it optional (and Zod's optional rejects `null`), and `aws_lambda_events`
    /// reads an absent body as `None`, as for its `"body": null` fixture.
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    is_base64_encoded: bool,
    request_context: V2Context<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2Context<'a> {
    /// `""` when the request came through no service network: `aws_lambda_events` requires
    /// the key to hold a string, and Powertools reads it unconditionally.
    service_network_arn: &'a str,
    service_arn: &'a str,
    target_group_arn: &'a str,
    identity: V2Identity<'a>,
    region: &'a str,
    /// Microseconds since the Unix epoch, as a string (as Lattice sends it).
    time_epoch: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct V2Identity<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    source_vpc_arn: Option<&'a str>,
    #[serde(rename = "type")]
    identity_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<&'a str>,
    #[serde(rename = "principalOrgID", skip_serializing_if = "Option::is_none")]
    principal_org_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_name: Option<&'a str>,
}

impl<'a> Event<'a> {
    fn build(req: &EventRequest<'a>, version: EventVersion) -> Event<'a> {
        let (body, is_base64_encoded) = body_field(req.headers, req.body);
        let query = parse_query(query_of(req.path_and_query));
        match version {
            EventVersion::V1 => Event::V1(V1Event {
                raw_path: req.path_and_query,
                method: req.method,
                headers: Pairs(
                    header_groups(req.headers)
                        .map(|(name, values)| (name, values.join(", ")))
                        .collect(),
                ),
                query_string_parameters: Pairs(
                    query
                        .into_iter()
                        .filter_map(|(key, mut values)| values.pop().map(|last| (key, last)))
                        .collect(),
                ),
                body: body.unwrap_or_default(),
                is_base64_encoded,
            }),
            EventVersion::V2 => Event::V2(V2Event {
                version: "2.0",
                path: req.path_and_query,
                method: req.method,
                headers: Pairs(header_groups(req.headers).collect()),
                query_string_parameters: Pairs(query),
                body,
                is_base64_encoded,
                request_context: V2Context {
                    service_network_arn: req.service_network_arn.unwrap_or(""),
                    service_arn: req.service_arn,
                    target_group_arn: req.target_group_arn,
                    identity: V2Identity {
                        source_vpc_arn: req.source_vpc_arn,
                        identity_type: req.identity_type,
                        principal: req.principal,
                        principal_org_id: req.principal_org_id,
                        session_name: req.session_name,
                    },
                    region: req.region,
                    time_epoch: req
                        .time
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_micros())
                        .unwrap_or(0)
                        .to_string(),
                },
            }),
        }
    }
}

/// A JSON object whose keys keep the order they were added in (first appearance in the
/// request), which a `HashMap` or `BTreeMap` would lose.
struct Pairs<K, V>(Vec<(K, V)>);

impl<K: Serialize, V: Serialize> Serialize for Pairs<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Each header name (lower-case, as `http` stores it) with all its values in order. A value
/// that is not UTF-8 (obs-text) is converted lossily: JSON strings must be Unicode.
fn header_groups(headers: &HeaderMap) -> impl Iterator<Item = (&str, Vec<String>)> {
    headers.keys().map(|name| {
        let values = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (name.as_str(), values)
    })
}

/// The query string of a path (after the first `?`), or `""`.
fn query_of(path_and_query: &str) -> &str {
    path_and_query.split_once('?').map(|(_, q)| q).unwrap_or("")
}

/// Splits a query string into keys, each with all its values in order of appearance.
///
/// Keys and values are decoded as `application/x-www-form-urlencoded` (`%XX` escapes and `+`
/// as a space), the way most HTTP frameworks present query parameters. The user guide does not
/// say whether Lattice decodes them (ALB, whose event shape Lattice's V1 resembles, passes them
/// undecoded) [infer]; the undecoded form is always available in `raw_path`/`path`. A `%` not
/// followed by two hex digits is kept as is; bytes that do not form UTF-8 are replaced by
/// U+FFFD. `a&b=` gives `a` and `b` the value `""`; empty segments (`a=1&&b=2`) are skipped.
pub fn parse_query(query: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for segment in query.split('&').filter(|s| !s.is_empty()) {
        let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
        let (key, value) = (form_decode(key), form_decode(value));
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value),
            None => out.push((key, vec![value])),
        }
    }
    out
}

/// `application/x-www-form-urlencoded` decoding of one key or value.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    u8::from_str_radix(h, 16).ok()
                });
                if let Some(b) = hex {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a `content-type` names a text type whose body Lattice sends as is: `text/*`,
/// `application/json`, `application/xml`, `application/javascript` (the user guide's list),
/// plus the structured-syntax suffixes `+json` and `+xml` (`application/problem+json`), which
/// are JSON and XML too [infer]. Parameters (`; charset=…`) and case are ignored.
pub fn is_text_like(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || matches!(
            media.as_str(),
            "application/json" | "application/xml" | "application/javascript"
        )
        || media.ends_with("+json")
        || media.ends_with("+xml")
}

/// The event's `body` and its base64 flag (`None` for an empty body).
///
/// The user guide's rule: with a `content-encoding` header and a non-text type, base64; without
/// `content-encoding`, text types go as is and others are base64-encoded. It does not cover
/// compressed text, so Trellis base64-encodes whenever `content-encoding` is present (gzip bytes
/// cannot go into a JSON string) [infer]. Two more cases it does not cover: a body without a
/// `content-type` is sent as is when it is valid UTF-8 and base64-encoded otherwise, and a body
/// with a text type that is not valid UTF-8 is base64-encoded too, so the event stays valid
/// JSON and no byte is lost.
pub fn body_field(headers: &HeaderMap, body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let declared_text = match headers.get(CONTENT_TYPE) {
        Some(ct) => ct.to_str().is_ok_and(is_text_like),
        None => true,
    };
    let as_text = !headers.contains_key(CONTENT_ENCODING) && declared_text;
    match std::str::from_utf8(body) {
        Ok(text) if as_text => (Some(text.to_string()), false),
        _ => (Some(STANDARD.encode(body)), true),
    }
}

/// Why a function's output is not a response Lattice could send. The message goes to the
/// function log and the client's 502 body, so it says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("function output is not JSON: {0}")]
    NotJson(String),
    #[error("function output is JSON {0}, not an object with a statusCode")]
    NotObject(&'static str),
    #[error("function response has no statusCode")]
    MissingStatusCode,
    #[error("function response statusCode {0} is invalid: expected an integer from 200 to 599")]
    InvalidStatusCode(String),
    #[error("function response headers must be an object, not {0}")]
    InvalidHeaders(&'static str),
    #[error("function response header name {0:?} is not a valid header name")]
    InvalidHeaderName(String),
    #[error("function response header {name:?} has an invalid value: {reason}")]
    InvalidHeaderValue { name: String, reason: String },
    #[error("function response body must be a string, not {0}")]
    InvalidBody(&'static str),
    #[error("function response isBase64Encoded must be true or false, not {0}")]
    InvalidBase64Flag(String),
    #[error("function response body is not valid base64: {0}")]
    BadBase64(String),
}

/// Base64 as functions write it: the standard alphabet, padding optional.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Turns a function's response JSON into the HTTP response Lattice would send.
///
/// Accepted: `statusCode` (required; a JSON integer from 200 to 599: a numeric string is
/// rejected, as ALB does, and a 1xx interim status cannot end an exchange), `headers` (an
/// object whose values are strings; an array of strings is accepted too and gives one header
/// line per element, e.g. several `set-cookie`), `body` (an optional string), `isBase64Encoded`
/// (the body is decoded; padding is optional and ASCII whitespace is ignored). `statusDescription`,
/// `multiValueHeaders` (an ALB field, not Lattice's) and unknown fields are ignored. Hop-by-hop
/// headers (and those `connection` names, and any `proxy-*`) are dropped and `content-length`
/// is set to the decoded body's length; a 204 or 304 response carries no body.
pub fn decode_response(bytes: &[u8]) -> Result<Response<Bytes>, ResponseError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|_| ResponseError::NotJson(preview(bytes)))?;
    let Value::Object(object) = value else {
        return Err(ResponseError::NotObject(json_kind(&value)));
    };

    let status = match object.get("statusCode") {
        None | Some(Value::Null) => return Err(ResponseError::MissingStatusCode),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|code| (200..=599).contains(code))
            .and_then(|code| StatusCode::from_u16(code as u16).ok())
            .ok_or_else(|| ResponseError::InvalidStatusCode(n.to_string()))?,
        Some(other) => return Err(ResponseError::InvalidStatusCode(other.to_string())),
    };

    let mut headers = HeaderMap::new();
    match object.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let header = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| ResponseError::InvalidHeaderName(name.clone()))?;
                let invalid = |reason: String| ResponseError::InvalidHeaderValue {
                    name: name.clone(),
                    reason,
                };
                let values: Vec<&str> = match value {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(items) => items
                        .iter()
                        .map(|item| match item {
                            Value::String(s) => Ok(s.as_str()),
                            other => Err(invalid(format!(
                                "expected a string, found {}",
                                json_kind(other)
                            ))),
                        })
                        .collect::<Result<_, _>>()?,
                    other => {
                        return Err(invalid(format!(
                            "expected a string, found {}",
                            json_kind(other)
                        )));
                    }
                };
                for v in values {
                    let v = HeaderValue::from_str(v).map_err(|_| {
                        invalid("contains a control character or a non-visible byte".into())
                    })?;
                    headers.append(header.clone(), v);
                }
            }
        }
        Some(other) => return Err(ResponseError::InvalidHeaders(json_kind(other))),
    }
    strip_hop_by_hop(&mut headers);

    let base64 = match object.get("isBase64Encoded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(ResponseError::InvalidBase64Flag(other.to_string())),
    };
    let body = match object.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if base64 => {
            let compact: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            Bytes::from(
                LENIENT_BASE64
                    .decode(compact)
                    .map_err(|e| ResponseError::BadBase64(e.to_string()))?,
            )
        }
        Some(Value::String(s)) => Bytes::from(s.clone().into_bytes()),
        Some(other) => return Err(ResponseError::InvalidBody(json_kind(other))),
    };

    let body = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        Bytes::new()
    } else {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        body
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// Removes what a function's response may not dictate: hop-by-hop headers (as the router
/// strips them from target responses), `proxy-*`, `te`, and `content-length` (Lattice frames
/// the body itself).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    trellis_router::handler::strip_hop_by_hop(headers);
    headers.remove(http::header::TE);
    headers.remove(http::header::CONTENT_LENGTH);
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// The first 100 characters of some output, quoted and escaped so that it stays on one line.
fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut cut: String = text.chars().take(100).collect();
    if text.chars().nth(100).is_some() {
        cut.push('…');
    }
    format!("{cut:?}")
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why `trellis generate-event` cannot build the event it was asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("path {0:?} must start with /")]
    Path(String),
    #[error("method {0:?} is not a valid HTTP method")]
    Method(String),
    #[error("header {0:?} is not a valid header name")]
    HeaderName(String),
    #[error("header {name:?} has an invalid value {value:?}")]
    HeaderValue { name: String, value: String },
}

/// The account and names the sample event's ARNs are made from.
const SAMPLE_ACCOUNT: &str = "123456789012";
const SAMPLE_SERVICE: &str = "my-service";

/// A sample event of structure `version`, pretty-printed, for `trellis generate-event`.
///
/// It looks like what a function behind Trellis receives: ARNs in the form Trellis generates
/// (ids derived from the names `my-service`, `my-network`, `my-targets`, `my-vpc`, account
/// `123456789012`), the service's generated DNS name as `host`, the headers Lattice adds
/// (`x-forwarded-for`, `x-forwarded-port`, `x-forwarded-proto`), then `headers` (which replace a
/// default of the same name). A body gets a `content-length`; the base64 rule applies as for
/// a real request.
pub fn sample_event(
    version: EventVersion,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
    region: &str,
) -> Result<String, SampleError> {
    if !path.starts_with('/') {
        return Err(SampleError::Path(path.to_string()));
    }
    if http::Method::from_bytes(method.as_bytes()).is_err() {
        return Err(SampleError::Method(method.to_string()));
    }
    let id =
        |kind: &str, name: &str| trellis_config::stable_id(&[kind, region, SAMPLE_ACCOUNT, name]);
    let service_id = id("service", SAMPLE_SERVICE);
    let lattice_arn =
        |resource: String| format!("arn:aws:vpc-lattice:{region}:{SAMPLE_ACCOUNT}:{resource}");
    let service_arn = lattice_arn(format!("service/svc-{service_id}"));
    let network_arn = lattice_arn(format!(
        "servicenetwork/sn-{}",
        id("servicenetwork", "my-network")
    ));
    let group_arn = lattice_arn(format!(
        "targetgroup/tg-{}",
        id("targetgroup", "my-targets")
    ));
    let vpc_arn = format!(
        "arn:aws:ec2:{region}:{SAMPLE_ACCOUNT}:vpc/vpc-{}",
        id("vpc", "my-vpc")
    );

    let mut map = HeaderMap::new();
    let defaults = [
        (
            "host",
            trellis_config::service_dns_name(SAMPLE_SERVICE, &service_id, region),
        ),
        ("user-agent", "curl/8.5.0".to_string()),
        ("accept", "*/*".to_string()),
        ("x-forwarded-for", "10.0.1.25".to_string()),
        ("x-forwarded-port", "80".to_string()),
        ("x-forwarded-proto", "http".to_string()),
    ];
    for (name, value) in defaults {
        if let Ok(value) = HeaderValue::from_str(&value) {
            map.insert(name, value);
        }
    }
    if let Some(body) = body {
        map.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let mut replaced: Vec<HeaderName> = Vec::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| SampleError::HeaderName(name.clone()))?;
        let value_ok =
            HeaderValue::from_str(value.trim()).map_err(|_| SampleError::HeaderValue {
                name: name.clone(),
                value: value.clone(),
            })?;
        if !replaced.contains(&header) {
            map.remove(&header);
            replaced.push(header.clone());
        }
        map.append(header, value_ok);
    }

    let req = EventRequest {
        method,
        path_and_query: path,
        headers: &map,
        body: body.map(str::as_bytes).unwrap_or_default(),
        service_network_arn: Some(&network_arn),
        service_arn: &service_arn,
        target_group_arn: &group_arn,
        source_vpc_arn: Some(&vpc_arn),
        region,
        identity_type: "NONE",
        principal: None,
        principal_org_id: None,
        session_name: None,
        time: SystemTime::now(),
    };
    let event = Event::build(&req, version);
    // Serializing strings, booleans and maps with string keys cannot fail.
    Ok(serde_json::to_string_pretty(&event).unwrap_or_default())
}

#[cfg(test)]
mod tests;
