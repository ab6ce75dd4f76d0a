//! [`LambdaTarget`]: a LAMBDA target group's one function, as a router [`Target`].
//!
//! It does what Lattice does in front of a Lambda function: buffer the request body (at most
//! 6 MB), encode the V1/V2 event, invoke synchronously, and decode the function's JSON answer.
//! Every failure becomes a [`TargetError`] the router maps to a status (`rescue`), and its
//! reason is also written to the function log, where a developer watching the function looks.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http_body_util::BodyExt;
use trellis_config::EventVersion;
use trellis_router::target::{Body, BoxFuture, CallContext, Target, TargetError, full};

use crate::event::{EventRequest, decode_response, encode};
use crate::{Function, FunctionError, InvokeContext, MAX_PAYLOAD};

/// How long past the function's own timeout Trellis waits before answering 504 itself. Backends
/// enforce the deadline; this only guards against one that does not, so the client never hangs.
const DEADLINE_GRACE: Duration = Duration::from_secs(2);

/// Init time a backend may add to the deadline: loading changed code (compiling a rebuilt wasm
/// file) is init, which Lambda does not count against the invocation's timeout, so a backend
/// moves its deadline by it. Lambda gives init 10 s; the guard allows as much, so that an
/// invocation waiting for a compile is not answered 504 while its own deadline has not passed.
const INIT_ALLOWANCE: Duration = Duration::from_secs(10);

/// The `identity.type` of an unauthenticated caller. Powertools' examples show `"NONE"`; the
/// user guide only documents `"AWS_IAM"` [infer].
const IDENTITY_NONE: &str = "NONE";
/// The `identity.type` of a caller whose SigV4 or SigV4A signature verified.
const IDENTITY_IAM: &str = "AWS_IAM";

/// A function registered in a LAMBDA target group.
pub struct LambdaTarget {
    function: Arc<dyn Function>,
    version: EventVersion,
    region: String,
    timeout: Duration,
    arn: String,
    metrics: Arc<trellis_router::metrics::FunctionMetrics>,
    /// Where the console reads the function's last invocations.
    activity: Arc<crate::activity::FunctionActivity>,
}

impl LambdaTarget {
    /// Wraps `function` (whose ARN is `arn`; may be empty) for a target group whose events have
    /// structure `version`, in `region`, with the function's configured `timeout`.
    pub fn new(
        function: Arc<dyn Function>,
        version: EventVersion,
        region: impl Into<String>,
        timeout: Duration,
        arn: impl Into<String>,
    ) -> LambdaTarget {
        LambdaTarget {
            metrics: trellis_router::metrics::global().function(function.name()),
            activity: crate::activity::global().function(function.name()),
            function,
            version,
            region: region.into(),
            timeout,
            arn: arn.into(),
        }
    }

    /// Wraps `function`, taking its timeout and ARN from its configuration and the event
    /// structure from the target group it is registered in.
    pub fn from_config(
        function: Arc<dyn Function>,
        config: &trellis_config::Function,
        group: &trellis_config::TargetGroup,
        region: impl Into<String>,
    ) -> LambdaTarget {
        LambdaTarget::new(
            function,
            group.lambda_event_structure_version,
            region,
            Duration::from_secs(u64::from(config.timeout_seconds)),
            config.arn.clone(),
        )
    }

    fn name(&self) -> &str {
        self.function.name()
    }

    /// Writes `reason` to the function log, in the form Lambda uses for invocation failures
    /// (`RequestId: … Error: …`), and returns the error unchanged.
    fn logged(&self, request_id: &str, error: TargetError) -> TargetError {
        let reason = match &error {
            TargetError::Function { reason, .. } | TargetError::PayloadTooLarge { reason } => {
                reason.clone()
            }
            TargetError::Timeout { timeout, .. } => {
                format!("Task timed out after {:.2} seconds", timeout.as_secs_f64())
            }
            other => other.to_string(),
        };
        crate::log::line(
            self.name(),
            &format!("RequestId: {request_id} Error: {reason}"),
        );
        error
    }

    fn function_error(&self, reason: impl Into<String>) -> TargetError {
        TargetError::Function {
            target: self.name().to_string(),
            reason: reason.into(),
        }
    }

    async fn run(
        &self,
        ctx: CallContext<'_>,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, TargetError> {
        let (parts, body) = request.into_parts();
        let body = read_body(&parts.headers, body).await.map_err(|e| match e {
            ReadError::TooLarge(reason) => TargetError::PayloadTooLarge { reason },
            ReadError::Failed(reason) => self.function_error(reason),
        })?;

        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        let event = encode(
            &EventRequest {
                method: parts.method.as_str(),
                path_and_query,
                headers: &parts.headers,
                body: &body,
                service_network_arn: ctx.service_network_arn,
                service_arn: ctx.service_arn,
                target_group_arn: ctx.target_group_arn,
                source_vpc_arn: ctx.source_vpc_arn,
                region: &self.region,
                identity_type: if ctx.caller.is_some() {
                    IDENTITY_IAM
                } else {
                    IDENTITY_NONE
                },
                principal: ctx.caller.map(|c| c.arn.as_str()),
                principal_org_id: ctx.caller.and_then(|c| c.org_id.as_deref()),
                session_name: ctx.caller.and_then(|c| c.session_name.as_deref()),
                time: SystemTime::now(),
            },
            self.version,
        );
        drop(body);

        let invocation = self.function.invoke(
            Bytes::from(event),
            InvokeContext::new(ctx.request_id, self.timeout),
        );
        let guard = self.timeout + INIT_ALLOWANCE + DEADLINE_GRACE;
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(guard, invocation)
            .await
            .unwrap_or(Err(FunctionError::Timeout(self.timeout)));
        let (metric, result) = match outcome {
            Ok(payload) if payload.len() > MAX_PAYLOAD => (
                "too_large",
                Err(self.function_error(format!(
                    "response over 6 MB: the function returned {} bytes, Lambda allows {MAX_PAYLOAD}",
                    payload.len()
                ))),
            ),
            Ok(payload) => match decode_response(&payload) {
                Ok(response) => ("success", Ok(response.map(full))),
                Err(e) => ("invalid_response", Err(self.function_error(e.to_string()))),
            },
            Err(FunctionError::Timeout(timeout)) => (
                "timeout",
                Err(TargetError::Timeout {
                    target: self.name().to_string(),
                    timeout,
                }),
            ),
            Err(e) => {
                let metric = match e {
                    FunctionError::Unhandled { .. } => "error",
                    FunctionError::Crashed(_) => "crashed",
                    FunctionError::Init(_) => "init_error",
                    FunctionError::ResponseTooLarge(_) => "too_large",
                    FunctionError::Timeout(_) => "timeout",
                };
                (metric, Err(self.function_error(e.to_string())))
            }
        };
        let total = started.elapsed();
        self.metrics.invocation(metric, total.as_secs_f64());
        let (status, error) = match &result {
            Ok(response) => (response.status().as_u16(), None),
            Err(e) => (
                trellis_router::rescue::target_status(e).as_u16(),
                Some(e.to_string()),
            ),
        };
        self.activity
            .answered(ctx.request_id, total, metric, status, error.as_deref());
        result
    }
}

impl Target for LambdaTarget {
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        request: http::Request<Body>,
    ) -> BoxFuture<'a, Result<http::Response<Body>, TargetError>> {
        Box::pin(async move {
            self.run(ctx, request)
                .await
                .map_err(|e| self.logged(ctx.request_id, e))
        })
    }

    /// The access log's `targetIpPort`. A function has no address; its ARN is what Lattice
    /// registers as the target id of a LAMBDA group, so it names the target unambiguously
    /// (the function's name when no ARN is known).
    fn address(&self) -> String {
        if self.arn.is_empty() {
            self.name().to_string()
        } else {
            self.arn.clone()
        }
    }
}

/// Why the request body was not read.
enum ReadError {
    /// Over [`MAX_PAYLOAD`].
    TooLarge(String),
    /// The client's body failed (reset, malformed chunking) before it was complete.
    Failed(String),
}

/// The largest refused body [`discard`] reads, and how long it may take.
const DISCARD_LIMIT: u64 = 64 * 1024 * 1024;
const DISCARD_TIME: Duration = Duration::from_secs(10);

/// Reads and drops, in the background, a refused body the client declared `declared` bytes
/// long (at most [`DISCARD_LIMIT`]), so that a client still sending it gets to read the 413: a
/// connection closed with request bytes unread is reset, and the reset can destroy the answer
/// before the client reads it. Nothing is kept, so the 6 MB memory bound still holds.
fn discard(mut body: Body, declared: u64) {
    if declared > DISCARD_LIMIT {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let drain = async { while let Some(Ok(_)) = body.frame().await {} };
        let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
    });
}

/// Reads the whole request body, refusing (without reading on) one larger than Lambda's 6 MB:
/// a `content-length` over the limit is refused before any byte is read (then [`discard`]ed,
/// unbuffered, so the client can read the 413), and a body without one is read only up to the
/// limit.
async fn read_body(headers: &http::HeaderMap, body: Body) -> Result<Bytes, ReadError> {
    let too_large = |size: String| {
        ReadError::TooLarge(format!(
            "the request body is {size} bytes; a Lambda target accepts at most {MAX_PAYLOAD} (6 MB)"
        ))
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > MAX_PAYLOAD as u64) {
        discard(body, len);
        return Err(too_large(len.to_string()));
    }
    // A manual loop rather than `http_body_util::Limited`: its boxed error type makes the
    // future fail the `Send` check of `Target::call` (a higher-ranked lifetime limitation).
    let mut body = body;
    let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ReadError::Failed(format!("the request body could not be read: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_PAYLOAD {
                return Err(too_large(format!("more than {MAX_PAYLOAD}")));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_lambda_events::event::vpc_lattice::VpcLatticeRequestV2;
    use http::StatusCode;

    type Handler = dyn Fn(&[u8]) -> Result<Bytes, FunctionError> + Send + Sync;

    /// A function whose answer is a closure over the event; it counts its invocations.
    struct Fake {
        handler: Box<Handler>,
        calls: AtomicUsize,
        last_event: Mutex<Option<Bytes>>,
    }

    impl Fake {
        fn new(
            handler: impl Fn(&[u8]) -> Result<Bytes, FunctionError> + Send + Sync + 'static,
        ) -> Arc<Fake> {
            Arc::new(Fake {
                handler: Box::new(handler),
                calls: AtomicUsize::new(0),
                last_event: Mutex::new(None),
            })
        }

        fn answering(json: &'static str) -> Arc<Fake> {
            Fake::new(move |_| Ok(Bytes::from_static(json.as_bytes())))
        }
    }

    impl Function for Fake {
        fn name(&self) -> &str {
            "fake-fn"
        }

        fn invoke(
            &self,
            payload: Bytes,
            _ctx: InvokeContext,
        ) -> BoxFuture<'_, Result<Bytes, FunctionError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = (self.handler)(&payload);
            if let Ok(mut last) = self.last_event.lock() {
                *last = Some(payload);
            }
            Box::pin(async move { answer })
        }
    }

    fn target(function: Arc<Fake>, version: EventVersion) -> LambdaTarget {
        LambdaTarget::new(
            function,
            version,
            "us-west-2",
            Duration::from_secs(3),
            "arn:aws:lambda:us-west-2:123456789012:function:fake-fn",
        )
    }

    fn ctx() -> CallContext<'static> {
        CallContext {
            request_id: "req-1",
            host: "svc.trellis.localhost",
            client: "127.0.0.1:50000".parse().expect("address"),
            listener_port: 8080,
            scheme: "http",
            target_group_arn: "arn:aws:vpc-lattice:us-west-2:123456789012:targetgroup/tg-0123456789abcdef0",
            service_arn: "arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0123456789abcdef0",
            service_network_arn: Some(
                "arn:aws:vpc-lattice:us-west-2:123456789012:servicenetwork/sn-0123456789abcdef0",
            ),
            source_vpc_arn: Some("arn:aws:ec2:us-west-2:123456789012:vpc/vpc-0123456789abcdef0"),
            caller: None,
        }
    }

    fn request(body: impl Into<Bytes>) -> http::Request<Body> {
        http::Request::builder()
            .method("POST")
            .uri("/orders?id=7")
            .header("content-type", "application/json")
            .body(full(body.into()))
            .expect("request")
    }

    async fn body_of(response: http::Response<Body>) -> Bytes {
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
    }

    #[tokio::test]
    async fn answers_with_the_function_status_headers_and_body() {
        let f = Fake::answering(
            r#"{"statusCode": 201, "headers": {"content-type": "text/plain", "x-id": "9"}, "body": "made", "isBase64Encoded": false}"#,
        );
        let response = target(f.clone(), EventVersion::V2)
            .call(ctx(), request(r#"{"n":1}"#))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["content-type"], "text/plain");
        assert_eq!(response.headers()["x-id"], "9");
        assert_eq!(response.headers()["content-length"], "4");
        assert_eq!(body_of(response).await, "made");

        // The function saw a V2 event built from the request and the call context.
        let event = f.last_event.lock().expect("lock").clone().expect("event");
        let parsed: VpcLatticeRequestV2 = serde_json::from_slice(&event).expect("V2 event");
        assert_eq!(parsed.path.as_deref(), Some("/orders?id=7"));
        assert_eq!(parsed.body.as_deref(), Some(r#"{"n":1}"#));
        assert_eq!(parsed.query_string_parameters.first("id"), Some("7"));
        let rc = &parsed.request_context;
        assert_eq!(rc.service_arn, ctx().service_arn);
        assert_eq!(rc.target_group_arn, ctx().target_group_arn);
        assert_eq!(
            Some(rc.service_network_arn.as_str()),
            ctx().service_network_arn
        );
        assert_eq!(rc.region, "us-west-2");
        let identity = rc.identity.as_ref().expect("identity");
        assert_eq!(identity.source_vpc_arn.as_deref(), ctx().source_vpc_arn);
        assert_eq!(identity.identity_type.as_deref(), Some("NONE"));
    }

    #[tokio::test]
    async fn decodes_a_base64_response_body() {
        let f = Fake::answering(
            r#"{"statusCode": 200, "headers": {"content-type": "image/png"}, "body": "AAECAw==", "isBase64Encoded": true}"#,
        );
        let response = target(f, EventVersion::V1)
            .call(ctx(), request(""))
            .await
            .expect("response");
        assert_eq!(response.headers()["content-length"], "4");
        assert_eq!(body_of(response).await.as_ref(), &[0u8, 1, 2, 3]);
    }

    #[tokio::test]
    async fn oversized_request_is_413_without_invoking() {
        let f = Fake::answering(r#"{"statusCode": 200}"#);
        let t = target(f.clone(), EventVersion::V1);

        // Declared too large: refused before reading.
        let declared = http::Request::builder()
            .method("POST")
            .uri("/")
            .header("content-length", (MAX_PAYLOAD + 1).to_string())
            .body(full(Bytes::new()))
            .expect("request");
        let err = t.call(ctx(), declared).await.expect_err("413");
        assert!(
            matches!(err, TargetError::PayloadTooLarge { .. }),
            "{err:?}"
        );

        // Undeclared, streamed: refused once the limit is passed, without reading on.
        let polled = Arc::new(AtomicUsize::new(0));
        let streamed = http::Request::builder()
            .method("POST")
            .uri("/")
            .body(trellis_router::target::boxed(Chunks {
                left: 100,
                polled: polled.clone(),
            }))
            .expect("request");
        let err = t.call(ctx(), streamed).await.expect_err("413");
        assert!(
            matches!(err, TargetError::PayloadTooLarge { .. }),
            "{err:?}"
        );
        assert_eq!(
            polled.load(Ordering::SeqCst),
            7,
            "stops at the first MB over the limit"
        );
        assert_eq!(f.calls.load(Ordering::SeqCst), 0);

        // Exactly 6 MB is allowed.
        let ok = t
            .call(ctx(), request(vec![b'a'; MAX_PAYLOAD]))
            .await
            .expect("6 MB body is accepted");
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    }

    /// A body of `left` 1 MB chunks without a length, counting how many were polled.
    struct Chunks {
        left: usize,
        polled: Arc<AtomicUsize>,
    }

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return std::task::Poll::Ready(None);
            }
            self.left -= 1;
            self.polled.fetch_add(1, Ordering::SeqCst);
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(vec![
                b'x';
                1024 * 1024
            ])))))
        }
    }

    #[tokio::test]
    async fn function_error_is_502() {
        let f = Fake::new(|_| {
            Err(FunctionError::Unhandled {
                error_type: "Runtime.Panic".into(),
                message: "boom".into(),
            })
        });
        let err = target(f, EventVersion::V2)
            .call(ctx(), request("{}"))
            .await
            .expect_err("error");
        match err {
            TargetError::Function { target, reason } => {
                assert_eq!(target, "fake-fn");
                assert!(reason.contains("boom"), "{reason}");
            }
            other => panic!("expected a function error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn timeout_is_504() {
        let f = Fake::new(|_| Err(FunctionError::Timeout(Duration::from_secs(3))));
        let err = target(f, EventVersion::V2)
            .call(ctx(), request("{}"))
            .await
            .expect_err("timeout");
        assert!(
            matches!(err, TargetError::Timeout { timeout, .. } if timeout == Duration::from_secs(3)),
            "{err:?}"
        );
    }

    // Paused time: the guard (timeout + init allowance + grace) elapses at once.
    #[tokio::test(start_paused = true)]
    async fn a_function_ignoring_its_deadline_is_still_504() {
        struct Stuck;
        impl Function for Stuck {
            fn name(&self) -> &str {
                "stuck"
            }
            fn invoke(
                &self,
                _payload: Bytes,
                _ctx: InvokeContext,
            ) -> BoxFuture<'_, Result<Bytes, FunctionError>> {
                Box::pin(std::future::pending())
            }
        }
        let t = LambdaTarget::new(
            Arc::new(Stuck),
            EventVersion::V1,
            "us-west-2",
            Duration::ZERO,
            "",
        );
        let err = t.call(ctx(), request("")).await.expect_err("timeout");
        assert!(matches!(err, TargetError::Timeout { .. }), "{err:?}");
        assert_eq!(t.address(), "stuck");
    }

    #[tokio::test]
    async fn garbage_output_is_502() {
        let f = Fake::answering("Hello, not JSON");
        let err = target(f, EventVersion::V1)
            .call(ctx(), request(""))
            .await
            .expect_err("error");
        match err {
            TargetError::Function { reason, .. } => {
                assert_eq!(reason, r#"function output is not JSON: "Hello, not JSON""#)
            }
            other => panic!("expected a function error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn missing_status_code_is_502() {
        let f = Fake::answering(r#"{"body": "hi"}"#);
        let err = target(f, EventVersion::V1)
            .call(ctx(), request(""))
            .await
            .expect_err("error");
        match err {
            TargetError::Function { reason, .. } => {
                assert_eq!(reason, "function response has no statusCode")
            }
            other => panic!("expected a function error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn oversized_response_is_502() {
        let f = Fake::new(|_| {
            let body = "a".repeat(MAX_PAYLOAD);
            Ok(Bytes::from(format!(
                r#"{{"statusCode": 200, "body": "{body}"}}"#
            )))
        });
        let err = target(f, EventVersion::V1)
            .call(ctx(), request(""))
            .await
            .expect_err("error");
        match err {
            TargetError::Function { reason, .. } => {
                assert!(reason.starts_with("response over 6 MB"), "{reason}")
            }
            other => panic!("expected a function error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn response_too_large_from_the_backend_is_502() {
        let f = Fake::new(|_| Err(FunctionError::ResponseTooLarge(7_000_000)));
        let err = target(f, EventVersion::V1)
            .call(ctx(), request(""))
            .await
            .expect_err("error");
        assert!(matches!(err, TargetError::Function { .. }), "{err:?}");
    }

    #[test]
    fn address_is_the_function_arn() {
        let t = target(Fake::answering("{}"), EventVersion::V1);
        assert_eq!(
            t.address(),
            "arn:aws:lambda:us-west-2:123456789012:function:fake-fn"
        );
    }
}
