//! The HTTP side of the Runtime API: one listener per environment, serving exactly the runtime
//! endpoints of the Lambda Runtime API with the status codes, headers and error bodies of the AWS
//! runtime interface emulator (`aws-lambda-runtime-interface-emulator`, `lambda/rapi`):
//!
//! | request | answer |
//! |---|---|
//! | `GET  /2018-06-01/runtime/invocation/next` | 200, the event, `Lambda-Runtime-*` headers (long-polls) |
//! | `POST /2018-06-01/runtime/invocation/{id}/response` | 202 `{"status":"OK"}`; 413 over 6 MB |
//! | `POST /2018-06-01/runtime/invocation/{id}/error` | 202 `{"status":"OK"}` |
//! | `POST /2018-06-01/runtime/init/error` | 202 `{"status":"OK"}` |
//! | an `{id}` that is not the environment's current invocation | 400 `InvalidRequestID` |
//! | `/next` while an invocation is in flight, `/init/error` after init | 403 `InvalidStateTransition` |
//! | anything else | 404 (405 for a known path with another method) |

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use trellis_router::accept::AcceptBackoff;

use super::state::{Delivery, EnvironmentApi, Rejection};
use crate::{FunctionError, MAX_PAYLOAD, log};

type Reply = Response<Full<Bytes>>;

const PREFIX: &str = "/2018-06-01/runtime/";

/// Longest error message kept from an `/error` body that is not the usual JSON.
const MAX_RAW_ERROR: usize = 4096;

/// Serves one environment's endpoint until aborted (when the environment is gone). Connections
/// live in a `JoinSet`, so aborting this task closes them too, parked `/next` polls included.
pub(super) async fn serve(listener: TcpListener, api: EnvironmentApi) {
    let api = Arc::new(api);
    let mut connections = JoinSet::new();
    let mut backoff = AcceptBackoff::new(format!("{}'s Runtime API", api.function()));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning, and
                // warn once in a while rather than at every failure.
                backoff.failed(&e).await;
                continue;
            }
        };
        backoff.succeeded();
        while connections.try_join_next().is_some() {}
        let api = Arc::clone(&api);
        connections.spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&api), request));
            // A broken connection only concerns the runtime that broke it.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(api: Arc<EnvironmentApi>, request: Request<Incoming>) -> Result<Reply, Infallible> {
    let path = request.uri().path().to_owned();
    let reply = match route(request.method(), &path) {
        Route::Next => next(&api).await,
        Route::InitError => init_error(&api, request).await,
        Route::Response(id) => response(&api, id, request).await,
        Route::Error(id) => invocation_error(&api, id, request).await,
        Route::MethodNotAllowed => status_only(StatusCode::METHOD_NOT_ALLOWED),
        Route::NotFound => not_found(),
    };
    Ok(reply)
}

/// What a Runtime API request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route<'p> {
    Next,
    InitError,
    Response(&'p str),
    Error(&'p str),
    MethodNotAllowed,
    NotFound,
}

/// Reads a Runtime API request line: a pure function of the method and path, so that any path a
/// runtime may send is fuzzed without a server.
fn route<'p>(method: &Method, path: &'p str) -> Route<'p> {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Route::NotFound;
    };
    let post = method == Method::POST;
    match rest {
        "invocation/next" if method == Method::GET => Route::Next,
        "init/error" if post => Route::InitError,
        "invocation/next" | "init/error" => Route::MethodNotAllowed,
        _ => match rest
            .strip_prefix("invocation/")
            .and_then(|r| r.split_once('/'))
        {
            Some((id, "response")) if post && !id.is_empty() => Route::Response(id),
            Some((id, "error")) if post && !id.is_empty() => Route::Error(id),
            Some((id, "response" | "error")) if !id.is_empty() => Route::MethodNotAllowed,
            _ => Route::NotFound,
        },
    }
}

/// `GET …/invocation/next`: waits for an invocation and sends it with its headers.
async fn next(api: &EnvironmentApi) -> Reply {
    let delivery = match api.next() {
        Ok(rx) => match rx.await {
            Ok(delivery) => delivery,
            // The poll was superseded by a newer one or the environment is being stopped.
            // Lambda never answers `/next` then, and neither do we: the caller is about to
            // be killed, or already waits on its newer poll.
            Err(_) => std::future::pending().await,
        },
        Err(rejection) => return rejected(rejection),
    };
    log::start(api.function(), &delivery.request_id);
    event_reply(delivery)
}

fn event_reply(delivery: Delivery) -> Reply {
    let mut reply = Response::new(Full::new(delivery.payload));
    let headers = reply.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        // Values come from Trellis itself (uuids, ARNs, numbers); one that is not a valid
        // header value is left out rather than failing the delivery.
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("lambda-runtime-aws-request-id", &delivery.request_id);
    set(
        "lambda-runtime-deadline-ms",
        &delivery.deadline_ms.to_string(),
    );
    set(
        "lambda-runtime-invoked-function-arn",
        &delivery.function_arn,
    );
    set("lambda-runtime-trace-id", &delivery.trace_id);
    if let Some(context) = &delivery.client_context {
        set("lambda-runtime-client-context", context);
    }
    if let Some(identity) = &delivery.cognito_identity {
        set("lambda-runtime-cognito-identity", identity);
    }
    set("content-type", "application/json");
    reply
}

/// `POST …/invocation/{id}/response`.
async fn response(api: &EnvironmentApi, id: &str, request: Request<Incoming>) -> Reply {
    complete(api, id, request, Ok).await
}

/// `POST …/invocation/{id}/error`: the invocation fails with the runtime's error.
async fn invocation_error(api: &EnvironmentApi, id: &str, request: Request<Incoming>) -> Reply {
    let header_type = error_type_header(&request);
    complete(api, id, request, |body| {
        let (error_type, message) = parse_error(&body, header_type);
        Err(FunctionError::Unhandled {
            error_type,
            message,
        })
    })
    .await
}

/// Ends invocation `id` with what `outcome` makes of the posted body (read up to the response
/// limit): the one shape of the response and error routes.
async fn complete(
    api: &EnvironmentApi,
    id: &str,
    request: Request<Incoming>,
    outcome: impl FnOnce(Bytes) -> Result<Bytes, FunctionError>,
) -> Reply {
    if let Err(rejection) = api.holds(id) {
        return rejected(rejection);
    }
    match read_capped(request.into_body()).await {
        Ok(body) => match api.complete(id, outcome(body)) {
            Ok(()) => accepted(),
            Err(rejection) => rejected(rejection),
        },
        Err(BodyError::TooLarge(size)) => {
            let _ = api.complete(id, Err(FunctionError::ResponseTooLarge(size)));
            too_large()
        }
        Err(BodyError::Broken(reason)) => truncated(api.function(), &reason),
    }
}

/// `POST …/init/error`: the environment failed to initialize and is discarded.
async fn init_error(api: &EnvironmentApi, request: Request<Incoming>) -> Reply {
    let header_type = error_type_header(&request);
    let body = match read_capped(request.into_body()).await {
        Ok(body) => body,
        Err(BodyError::TooLarge(_)) => return too_large(),
        Err(BodyError::Broken(reason)) => return truncated(api.function(), &reason),
    };
    let (error_type, message) = parse_error(&body, header_type);
    let text = if message.is_empty() {
        error_type
    } else {
        format!("{error_type}: {message}")
    };
    match api.init_error(text) {
        Ok(()) => accepted(),
        Err(rejection) => rejected(rejection),
    }
}

fn error_type_header(request: &Request<Incoming>) -> Option<String> {
    request
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The error type and message of an `/error` or `/init/error` body. The body's `errorType` is
/// preferred to the header, which runtimes often fill with a generic `unhandled`; a body that is
/// not the usual JSON becomes the message as it is.
fn parse_error(body: &[u8], header_type: Option<String>) -> (String, String) {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let error_type = field("errorType")
        .or(header_type)
        .unwrap_or_else(|| "Unhandled".to_owned());
    let message = match (&json, field("errorMessage")) {
        (_, Some(message)) => message,
        (Some(_), None) => String::new(),
        (None, None) => {
            let text = String::from_utf8_lossy(body);
            let mut end = text.len().min(MAX_RAW_ERROR);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].trim().to_owned()
        }
    };
    (error_type, message)
}

enum BodyError {
    /// Over [`MAX_PAYLOAD`]; the whole size, counted while discarding the excess.
    TooLarge(usize),
    /// The connection broke before the body was complete.
    Broken(String),
}

/// Reads a request body, keeping at most [`MAX_PAYLOAD`] bytes in memory. The excess is read
/// and discarded rather than left unread, so the runtime gets its 413 instead of a broken pipe,
/// and the error names the real size.
async fn read_capped(mut body: Incoming) -> Result<Bytes, BodyError> {
    let mut kept = BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total <= MAX_PAYLOAD {
                kept.extend_from_slice(&data);
            } else if !kept.is_empty() {
                kept = BytesMut::new();
            }
        }
    }
    if total > MAX_PAYLOAD {
        Err(BodyError::TooLarge(total))
    } else {
        Ok(kept.freeze())
    }
}

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body.to_string())));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

fn error_reply(status: StatusCode, error_type: &str, message: &str) -> Reply {
    json_reply(
        status,
        &json!({"errorMessage": message, "errorType": error_type}),
    )
}

fn accepted() -> Reply {
    json_reply(StatusCode::ACCEPTED, &json!({"status": "OK"}))
}

fn rejected(rejection: Rejection) -> Reply {
    match rejection {
        Rejection::InvalidRequestId => error_reply(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "Invalid request ID",
        ),
        Rejection::InvalidState => error_reply(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "this call does not fit the environment's state: /next while an invocation is in \
             flight (answer it first), or /init/error after init",
        ),
    }
}

fn too_large() -> Reply {
    error_reply(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!("Exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes)."),
    )
}

fn truncated(function: &str, reason: &str) -> Reply {
    log::line(
        function,
        &format!("the runtime's request to the Runtime API broke off: {reason}"),
    );
    error_reply(
        StatusCode::BAD_REQUEST,
        "TruncatedHTTPRequest",
        "HTTP request detected as truncated",
    )
}

fn not_found() -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from_static(b"404 page not found\n")));
    *reply.status_mut() = StatusCode::NOT_FOUND;
    reply.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    reply
}

fn status_only(status: StatusCode) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = status;
    reply
}

#[cfg(test)]
mod tests {
    use super::{Method, PREFIX, Route, parse_error, route};
    use proptest::prelude::*;

    #[test]
    fn routes_of_the_runtime_api() {
        let at = |tail: &str| format!("{PREFIX}{tail}");
        assert_eq!(route(&Method::GET, &at("invocation/next")), Route::Next);
        assert_eq!(
            route(&Method::POST, &at("invocation/next")),
            Route::MethodNotAllowed
        );
        assert_eq!(route(&Method::POST, &at("init/error")), Route::InitError);
        assert_eq!(
            route(&Method::POST, &at("invocation/r-1/response")),
            Route::Response("r-1")
        );
        assert_eq!(
            route(&Method::POST, &at("invocation/r-1/error")),
            Route::Error("r-1")
        );
        assert_eq!(
            route(&Method::GET, &at("invocation/r-1/error")),
            Route::MethodNotAllowed
        );
        assert_eq!(
            route(&Method::POST, &at("invocation//response")),
            Route::NotFound
        );
        assert_eq!(
            route(&Method::POST, &at("invocation/r-1/other")),
            Route::NotFound
        );
        assert_eq!(route(&Method::GET, "/elsewhere"), Route::NotFound);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Any path and method: a route, never a panic; an id is a non-empty segment of the
        /// path as sent.
        #[test]
        fn any_request_line_gets_a_route(method in "[A-Z]{1,8}", tail in "[a-z/%.0-9-]{0,40}") {
            let Ok(method) = Method::from_bytes(method.as_bytes()) else { return Ok(()) };
            let path = format!("{PREFIX}{tail}");
            match route(&method, &path) {
                Route::Response(id) | Route::Error(id) => {
                    prop_assert!(!id.is_empty());
                    let segment = format!("/invocation/{id}/");
                    prop_assert!(path.contains(&segment));
                }
                _ => {}
            }
        }

        /// Any bytes a runtime posts as an error: a type and a bounded message, never a panic.
        #[test]
        fn any_error_body_is_read(body in proptest::collection::vec(any::<u8>(), 0..2048),
                                  header in proptest::option::of("[ -~]{0,40}")) {
            let named = header.as_deref().is_none_or(|h| !h.is_empty());
            let (error_type, message) = parse_error(&body, header);
            if named {
                prop_assert!(!error_type.is_empty());
            }
            prop_assert!(message.len() <= body.len().max(super::MAX_RAW_ERROR));
        }
    }

    #[test]
    fn error_bodies_prefer_the_json_type_and_keep_raw_text() {
        let body = br#"{"errorMessage":"boom","errorType":"MyError","stackTrace":["a"]}"#;
        assert_eq!(
            parse_error(body, Some("unhandled".into())),
            ("MyError".into(), "boom".into())
        );
        assert_eq!(
            parse_error(b"{}", Some("Runtime.Custom".into())),
            ("Runtime.Custom".into(), String::new())
        );
        assert_eq!(
            parse_error(b"  not json  ", None),
            ("Unhandled".into(), "not json".into())
        );
    }
}
