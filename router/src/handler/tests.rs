use std::net::SocketAddr;
use std::time::Duration;

use http::header::{self, HeaderMap};
use http_body_util::BodyExt;

use super::*;
use crate::accesslog::LogSink;
use crate::path::PathError;
use crate::target::{BoxError, TargetError, full};

type TestResult = Result<(), BoxError>;

/// What the client sees of a finished request, and the access-log record written for it.
struct Finished {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    record: serde_json::Value,
}

/// Runs `outcome` through the one exit, as the last phase of a request would, with an access
/// log open, and reads the record back once the body has been sent.
async fn finish(grpc: bool, outcome: Result<Answer, Failure>) -> Result<Finished, BoxError> {
    let conn = Connection::new(SocketAddr::from(([127, 0, 0, 1], 40000)), 8080, None);
    let mut request = Request::get("/orders?id=1").header(header::HOST, "svc.test");
    if grpc {
        request = request.header(header::CONTENT_TYPE, "application/grpc+proto");
    }
    let (parts, ()) = request.body(())?.into_parts();
    let mut exchange = Exchange::new(&parts, &conn, Instant::now());
    let (sink, mut lines) = LogSink::channel();
    let (id, host, started) = (&exchange.request_id.text, &exchange.host, exchange.started);
    exchange.log.open(vec![sink], || {
        start_record(&parts, &conn, id, host, started)
    });
    let (head, body) = exchange.finish(outcome).into_parts();
    let body = body.collect().await?.to_bytes();
    let line = lines.try_recv()?;
    Ok(Finished {
        status: head.status,
        headers: head.headers,
        body: String::from_utf8(body.to_vec())?,
        record: serde_json::from_str(&line)?,
    })
}

fn target_error(kind: &str) -> TargetError {
    let (target, reason) = ("10.0.0.1:80".to_owned(), "test".to_owned());
    match kind {
        "connect" => TargetError::Connect {
            target,
            reason,
            unsent: None,
        },
        "closed" => TargetError::Closed { target, reason },
        "protocol" => TargetError::Protocol { target, reason },
        "function" => TargetError::Function { target, reason },
        "timeout" => TargetError::Timeout {
            target,
            timeout: Duration::from_secs(1),
        },
        _ => TargetError::PayloadTooLarge { reason },
    }
}

/// A failure (made fresh for each caller kind), its status, `failureReason` and gRPC status.
type Case = (fn() -> Failure, u16, &'static str, &'static str);

/// Every failure kind leaves through the one exit: its status, its explanation (in the body,
/// or in `grpc-message` for gRPC callers), the request id, the record's `failureReason` and,
/// for gRPC callers, the gRPC status in the response and the record.
#[tokio::test]
async fn every_failure_leaves_through_the_one_exit() -> TestResult {
    let failures: [Case; 13] = [
        (
            || Failure::UnknownHost {
                host: "nope.test".into(),
                closest: vec!["svc.test".into()],
                more: 0,
            },
            404,
            "-",
            "12",
        ),
        (
            || Failure::NotAdmitted {
                host: "svc.test".into(),
            },
            404,
            "ClientAccessDenied",
            "12",
        ),
        (
            || {
                Failure::BadPath(PathError::BadPercent {
                    at: 1,
                    found: "%zz".into(),
                })
            },
            400,
            "ClientProtocolError",
            "13",
        ),
        (
            || Failure::AmbiguousHost { count: 2 },
            400,
            "ClientProtocolError",
            "13",
        ),
        (
            || Failure::MethodNotAllowed(http::Method::CONNECT),
            405,
            "ClientProtocolError",
            "2",
        ),
        (
            || Failure::ClientBody("invalid chunk size".into()),
            400,
            "ClientProtocolError",
            "13",
        ),
        (
            || Failure::NoTarget { group: "tg".into() },
            503,
            "TargetConnectionError",
            "14",
        ),
        (
            || Failure::Target(target_error("connect")),
            502,
            "TargetConnectionError",
            "14",
        ),
        (
            || Failure::Target(target_error("closed")),
            502,
            "TargetConnectionClosed",
            "14",
        ),
        (
            || Failure::Target(target_error("protocol")),
            502,
            "TargetProtocolError",
            "14",
        ),
        (
            || Failure::Target(target_error("function")),
            502,
            "TargetProtocolError",
            "14",
        ),
        (
            || Failure::Target(target_error("timeout")),
            504,
            "TargetDataTimeout",
            "4",
        ),
        (
            || Failure::Target(target_error("payload")),
            413,
            "ClientProtocolError",
            "8",
        ),
    ];
    for (failure, status, reason, grpc_status) in failures {
        let message = failure().message();
        let plain = finish(false, Err(failure())).await?;
        assert_eq!(plain.status, status, "{message}");
        assert_eq!(plain.body, message);
        assert_eq!(plain.record["responseCode"], status, "{message}");
        assert_eq!(plain.record["failureReason"], reason, "{message}");
        assert_eq!(plain.record["grpcResponseCode"], "-", "{message}");
        assert_eq!(
            plain.headers["x-amzn-requestid"].to_str()?,
            plain.record["requestId"],
        );

        let grpc = finish(true, Err(failure())).await?;
        assert_eq!(grpc.status, status, "{message}");
        assert_eq!(grpc.headers["grpc-status"], grpc_status, "{message}");
        assert!(grpc.headers.contains_key("grpc-message"), "{message}");
        assert_eq!(grpc.body, "");
        assert_eq!(grpc.record["failureReason"], reason, "{message}");
        assert_eq!(grpc.record["grpcResponseCode"], grpc_status, "{message}");
    }
    Ok(())
}

#[tokio::test]
async fn fixed_responses_and_answers_leave_through_the_one_exit() -> TestResult {
    let fixed = finish(true, Ok(Answer::Fixed(StatusCode::NOT_FOUND))).await?;
    assert_eq!(fixed.status, 404);
    assert_eq!(fixed.headers["grpc-status"], "12");
    assert_eq!(fixed.record["failureReason"], "-");
    assert_eq!(fixed.record["grpcResponseCode"], "12");
    assert_eq!(fixed.record["responseFromTargetDuration"], "-");

    let response = Response::builder()
        .status(201)
        .header("grpc-status", "0")
        .body(full("made"))?;
    let head_at = Instant::now();
    let answered = finish(true, Ok(Answer::Target { response, head_at })).await?;
    assert_eq!(answered.status, 201);
    assert_eq!(answered.body, "made");
    assert!(answered.headers.contains_key("x-amzn-requestid"));
    assert_eq!(answered.record["responseCode"], 201);
    assert_eq!(
        answered.record["bytesSent"],
        4 + header_bytes(&answered.headers)
    );
    assert_eq!(answered.record["grpcResponseCode"], "0");
    assert_eq!(answered.record["failureReason"], "-");
    assert_ne!(answered.record["responseFromTargetDuration"], "-");
    Ok(())
}

fn header_bytes(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum()
}
