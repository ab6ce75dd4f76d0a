//! The REST-JSON layer: an HTTP request → the [`Call`] the AWS model routes it to, and an
//! [`Outcome`] → the HTTP answer the SDKs expect.
//!
//! Everything here comes from the embedded AWS model: the routes (method + request URI
//! template), where each input member is found (URI label, query string, header, JSON body),
//! the members' types and constraints, and each operation's success code. So the AWS CLI,
//! boto3 and every other SDK pointed at Trellis with `--endpoint-url` work unchanged, and
//! `curl` users get the errors AWS would give them.
//!
//! Order of the checks, each answering before the next: the SigV4 credential scope's region
//! (a request signed for another region is refused, as AWS does), the route (an unknown one is
//! `UnknownOperationException`), the body (at most [`MAX_BODY`], JSON, an object), whether
//! Trellis implements the operation (else a `ValidationException` naming it), the input against
//! its shape
//! (`ValidationException` with a `fieldList`), and only then the call.

mod check;
mod model;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::{ApiError, Call, Operations};
use model::{Kind, Location, Segment};

/// The largest request body the API reads: far above any VPC Lattice input (an auth policy,
/// the largest member, is at most 10 000 characters; 100 targets are a few KiB).
pub const MAX_BODY: usize = 1 << 20;

/// The VPC Lattice API over an [`Operations`].
pub struct Api {
    operations: Arc<dyn Operations>,
}

impl Api {
    pub fn new(operations: Arc<dyn Operations>) -> Api {
        // Parse the model now, not on the first request.
        let _ = model::model();
        Api { operations }
    }

    /// Answers one request. `path_and_query` is the request target as sent (`/services?maxResults=5`),
    /// not normalised: `/services/../x` is not `/x`. `body` is the whole body, which the caller
    /// read with the [`MAX_BODY`] bound (see [`body_too_large`] for the answer when it is over).
    /// Never panics on any input; every refusal is an error as AWS sends it.
    pub async fn handle(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response<Bytes> {
        let region = self.operations.region();
        if let Err(message) = check_region(headers, path_and_query, &region) {
            return error_with(
                StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                json!({ "message": message }),
            );
        }
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let Some((op, labels)) = route(method, path) else {
            return unknown_route(method, path);
        };
        if body.len() > MAX_BODY {
            return body_too_large();
        }
        // A malformed body is refused before what it asks for is looked at.
        let members = match parse_body(&body) {
            Ok(members) => members,
            Err(e) => return error(&e),
        };
        if !self.operations.implements(&op.name) {
            return error(&ApiError::Validation {
                message: format!(
                    "{} is not supported by Trellis: it serves the VPC Lattice operations for service networks, services, their associations, listeners, rules, target groups and targets, auth policies, access-log subscriptions and tags (see the README, \"The AWS API\")",
                    op.name
                ),
                reason: "unknownOperation",
                fields: Vec::new(),
            });
        }
        match bind(op, &labels, query, headers, members) {
            Ok(input) => {
                let call = Call {
                    operation: op.name.clone(),
                    input,
                };
                match self.operations.call(call).await {
                    Ok(output) => success(op.success, output),
                    Err(e) => error(&e),
                }
            }
            Err(e) => error(&e),
        }
    }
}

/// Every operation of the model: its name, method and request URI template
/// (`("GetService", GET, "/services/{serviceIdentifier}")`), in name order. For the operations'
/// own tests (each name they implement is one of these) and for documentation.
pub fn operations() -> impl Iterator<Item = (&'static str, &'static Method, &'static str)> {
    model::model()
        .operations
        .iter()
        .map(|op| (op.name.as_str(), &op.method, op.template.as_str()))
}

/// The answer to a request whose body is over [`MAX_BODY`] (413, as a `ValidationException`
/// so that SDKs raise a known error class). The admin port sends it without reading further.
pub fn body_too_large() -> Response<Bytes> {
    error_with(
        StatusCode::PAYLOAD_TOO_LARGE,
        "ValidationException",
        json!({
            "message": format!("the request body is over {MAX_BODY} bytes (1 MiB), the largest the Trellis API reads"),
            "reason": "other",
        }),
    )
}

/// The answer to a request whose body could not be read (`reason` says why: the client
/// stopped sending, or took too long).
pub fn body_unreadable(status: StatusCode, reason: &str) -> Response<Bytes> {
    error_with(
        status,
        "ValidationException",
        json!({
            "message": format!("cannot read the request body: {reason}"),
            "reason": "cannotParse",
        }),
    )
}

/// The operation `method` + `path` routes to, and the URI labels (percent-encoded, as sent).
/// A route's literal segments must equal the path's; a label takes one non-empty segment. When
/// several routes match, the one whose first differing segment is literal wins (there is no such
/// pair in the model today; the tests check that every route reaches its own operation).
fn route(
    method: &Method,
    path: &str,
) -> Option<(&'static model::Operation, Vec<(String, String)>)> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let mut best: Option<(&model::Operation, Vec<bool>)> = None;
    for op in &model::model().operations {
        if op.method != method || !template_matches(op, &segments) {
            continue;
        }
        let literal: Vec<bool> = op
            .segments
            .iter()
            .map(|s| matches!(s, Segment::Literal(_)))
            .collect();
        if best.as_ref().is_none_or(|(_, b)| literal > *b) {
            best = Some((op, literal));
        }
    }
    let (op, _) = best?;
    let labels = op
        .segments
        .iter()
        .zip(&segments)
        .filter_map(|(s, value)| match s {
            Segment::Label(name) => Some((name.clone(), (*value).to_owned())),
            Segment::Literal(_) => None,
        })
        .collect();
    Some((op, labels))
}

fn template_matches(op: &model::Operation, segments: &[&str]) -> bool {
    op.segments.len() == segments.len()
        && op.segments.iter().zip(segments).all(|(s, value)| match s {
            Segment::Literal(l) => l == value,
            Segment::Label(_) => !value.is_empty(),
        })
}

/// AWS's answer to a request no operation serves; the message says which methods the path
/// takes, when some do.
fn unknown_route(method: &Method, path: &str) -> Response<Bytes> {
    let segments: Vec<&str> = path
        .strip_prefix('/')
        .map(|p| p.split('/').collect())
        .unwrap_or_default();
    let mut others: Vec<String> = model::model()
        .operations
        .iter()
        .filter(|op| template_matches(op, &segments))
        .map(|op| format!("{} ({})", op.method, op.name))
        .collect();
    others.sort();
    let shown: String = path.chars().take(200).collect();
    let hint = if others.is_empty() {
        "no VPC Lattice operation has this path (the admin port serves the VPC Lattice API, /metrics and /healthz)".to_owned()
    } else {
        format!("this path takes {}", others.join(", "))
    };
    error_with(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        json!({"message": format!("Unknown operation {method} {shown}: {hint}")}),
    )
}

/// The operation's input: URI labels, query-string members, headers and the JSON body's
/// members, checked against the input shape.
fn bind(
    op: &model::Operation,
    labels: &[(String, String)],
    query: &str,
    headers: &HeaderMap,
    mut body: Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    let model = model::model();
    let Some(Kind::Structure { members, .. }) = op
        .input
        .as_deref()
        .and_then(|i| model.shape(i))
        .map(|s| &s.kind)
    else {
        return Ok(Map::new());
    };
    let pairs = parse_query(query)?;
    let mut input = Map::new();
    for member in members {
        let raw: Vec<String> = match member.location {
            Location::Body => {
                if let Some(v) = body.remove(&member.location_name) {
                    input.insert(member.name.clone(), v);
                }
                continue;
            }
            Location::Uri => labels
                .iter()
                .filter(|(name, _)| *name == member.location_name)
                .map(|(_, value)| {
                    decode(value).map_err(|why| ApiError::Validation {
                        message: format!(
                            "the URI label {} is not valid percent-encoded UTF-8: {why}",
                            member.name
                        ),
                        reason: "cannotParse",
                        fields: vec![crate::FieldError {
                            name: member.name.clone(),
                            message: why,
                        }],
                    })
                })
                .collect::<Result<_, _>>()?,
            Location::Query => pairs
                .iter()
                .filter(|(name, _)| *name == member.location_name)
                .map(|(_, value)| value.clone())
                .collect(),
            Location::Header => headers
                .get_all(member.location_name.as_str())
                .iter()
                .map(|v| {
                    v.to_str().map(str::to_owned).map_err(|_| {
                        ApiError::field(
                            &member.name,
                            format!("the header {} is not text", member.location_name),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        if raw.is_empty() {
            continue;
        }
        input.insert(member.name.clone(), typed(model, member, raw)?);
    }
    let mut checker = check::Checker::new(model);
    let checked = checker.value(
        op.input.as_deref().unwrap_or_default(),
        Value::Object(input),
        "",
        0,
    );
    if !checker.errors.is_empty() {
        let n = checker.errors.len();
        let messages: Vec<&str> = checker.errors.iter().map(|e| e.message.as_str()).collect();
        return Err(ApiError::Validation {
            message: format!(
                "{n} validation error{} detected: {}",
                if n == 1 { "" } else { "s" },
                messages.join("; ")
            ),
            reason: "fieldValidationFailed",
            fields: checker.errors,
        });
    }
    match checked {
        Some(Value::Object(map)) => Ok(map),
        _ => Ok(Map::new()),
    }
}

/// The values of a non-body member, typed as its shape says: a number for an integer, a list
/// of the repeated values for a list (`?tagKeys=a&tagKeys=b`), else the one value as text.
fn typed(
    model: &model::Model,
    member: &model::Member,
    raw: Vec<String>,
) -> Result<Value, ApiError> {
    let kind = model.shape(&member.shape).map(|s| &s.kind);
    let one = |raw: Vec<String>| -> Result<String, ApiError> {
        if raw.len() > 1 {
            return Err(ApiError::field(
                &member.name,
                format!(
                    "{} is given {} times; it takes one value",
                    member.location_name,
                    raw.len()
                ),
            ));
        }
        Ok(raw.into_iter().next().unwrap_or_default())
    };
    Ok(match kind {
        Some(Kind::List { .. }) => Value::Array(raw.into_iter().map(Value::String).collect()),
        Some(Kind::Integer) => {
            let text = one(raw)?;
            match text.trim().parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    let shown: String = text.chars().take(64).collect();
                    return Err(ApiError::field(
                        &member.name,
                        format!(
                            "Value '{shown}' at '{}' failed to satisfy constraint: Member must be an integer",
                            member.name
                        ),
                    ));
                }
            }
        }
        Some(Kind::Boolean) => match one(raw)?.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => {
                let shown: String = other.chars().take(64).collect();
                return Err(ApiError::field(
                    &member.name,
                    format!(
                        "Value '{shown}' at '{}' failed to satisfy constraint: Member must be true or false",
                        member.name
                    ),
                ));
            }
        },
        _ => Value::String(one(raw)?),
    })
}

/// The body's members: an empty body is no members; anything else must be a JSON object.
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::Validation {
            message: format!(
                "the request body must be a JSON object, not {}",
                match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            ),
            reason: "cannotParse",
            fields: Vec::new(),
        }),
        Err(e) => Err(ApiError::Validation {
            message: format!(
                "the request body is not valid JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ),
            reason: "cannotParse",
            fields: Vec::new(),
        }),
    }
}

/// `a=1&b=2&b=3` → pairs, percent-decoded (`+` stays `+`: SDKs send a space as `%20`, and tag
/// keys may contain `+`).
fn parse_query(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = |why: String| ApiError::Validation {
                message: format!("the query string is not valid percent-encoded UTF-8: {why}"),
                reason: "cannotParse",
                fields: Vec::new(),
            };
            Ok((decode(k).map_err(bad)?, decode(v).map_err(bad)?))
        })
        .collect()
}

/// Percent-decodes `text`; the result must be UTF-8.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| {
                    u8::from_str_radix(h, 16)
                        .ok()
                        .filter(|_| h.bytes().all(|b| b.is_ascii_hexdigit()))
                });
            match hex {
                Some(b) => out.push(b),
                None => {
                    let shown: String = text[i..].chars().take(3).collect();
                    return Err(format!("\"{shown}\" is not a % followed by two hex digits"));
                }
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the decoded bytes are not UTF-8".to_owned())
}

/// Refuses a request signed (SigV4 or SigV4A) for another region or service. Signatures are not
/// verified — the control plane is local and any credentials work — but a region mismatch is
/// a real mistake (the SDK is configured for another region than the config's), which AWS too
/// answers with `InvalidSignatureException`. Unsigned requests pass.
fn check_region(headers: &HeaderMap, path_and_query: &str, region: &str) -> Result<(), String> {
    let credential = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| {
            let start = auth.find("Credential=")? + "Credential=".len();
            let rest = &auth[start..];
            Some(rest[..rest.find([',', ' ']).unwrap_or(rest.len())].to_owned())
        })
        .or_else(|| {
            let query = path_and_query.split_once('?')?.1;
            query.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.eq_ignore_ascii_case("X-Amz-Credential")
                    .then(|| decode(v).unwrap_or_default())
            })
        });
    let Some(credential) = credential else {
        return Ok(());
    };
    let refuse = Err::<(), String>;
    let parts: Vec<&str> = credential.split('/').collect();
    let (regions, service): (Vec<String>, &str) = match parts.as_slice() {
        // SigV4: KEY/DATE/REGION/SERVICE/aws4_request.
        [_, _, r, service, _] => (vec![(*r).to_owned()], service),
        // SigV4A: KEY/DATE/SERVICE/aws4_request; the regions are in X-Amz-Region-Set.
        [_, _, service, _] => (
            headers
                .get("x-amz-region-set")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("*")
                .split(',')
                .map(|r| r.trim().to_owned())
                .collect(),
            service,
        ),
        _ => {
            let shown: String = credential.chars().take(120).collect();
            return refuse(format!(
                "the SigV4 credential \"{shown}\" is not KEY/DATE/REGION/SERVICE/aws4_request"
            ));
        }
    };
    if service != "vpc-lattice" {
        let shown: String = service.chars().take(64).collect();
        return refuse(format!(
            "Credential should be scoped to correct service: 'vpc-lattice', not '{shown}' (the API's signing name is vpc-lattice; vpc-lattice-svcs is the services' own)"
        ));
    }
    if !regions.iter().any(|r| r == region || r == "*") {
        let shown: String = regions.join(",").chars().take(64).collect();
        return refuse(format!(
            "Credential should be scoped to a valid region: the request is signed for region '{shown}', but this Trellis serves region '{region}' (the config's `region`); pass --region {region} or set AWS_REGION={region}"
        ));
    }
    Ok(())
}

fn success(code: u16, output: Map<String, Value>) -> Response<Bytes> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let body = if status == StatusCode::NO_CONTENT {
        Bytes::new()
    } else {
        Bytes::from(Value::Object(output).to_string())
    };
    respond(status, None, body)
}

/// An [`ApiError`] as AWS sends it.
pub fn error(e: &ApiError) -> Response<Bytes> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(status, Some(e.code()), Bytes::from(e.body().to_string()))
}

/// An error outside [`ApiError`]'s shapes (codes the model does not list, such as
/// `UnknownOperationException` and `InvalidSignatureException`).
fn error_with(status: StatusCode, code: &'static str, mut body: Value) -> Response<Bytes> {
    if let Value::Object(map) = &mut body {
        map.insert("__type".into(), Value::String(code.to_owned()));
    }
    respond(status, Some(code), Bytes::from(body.to_string()))
}

fn respond(status: StatusCode, code: Option<&'static str>, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if !response_is_empty(status) {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(code) = code {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
    }
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

fn response_is_empty(status: StatusCode) -> bool {
    status == StatusCode::NO_CONTENT
}

/// A request id in AWS's UUID form, unique in this process (SDKs show it in their errors).
fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (start >> 32) as u32,
        (start >> 16) as u16,
        (start & 0xfff),
        (n >> 48) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests;
