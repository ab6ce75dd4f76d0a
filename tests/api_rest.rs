//! The VPC Lattice API's REST layer end to end: the real `trellis up`, its admin port, and
//! clients nobody here wrote — boto3 and the AWS CLI v1 (scripts/pyenv.sh's virtualenv; `make
//! test` passes it as `TRELLIS_PYTHON` and requires it) — plus raw hostile HTTP.
//!
//! What the operations answer is tested with them; here: that SDKs reach the model's routes,
//! get the errors as AWS sends them (an operation Trellis does not implement, a request signed
//! for another region), and that garbage, oversized and slow requests are refused clearly while
//! the admin port keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Not the builder's default region, so that the tests see the config's region reach the API.
const REGION: &str = "eu-central-1";

fn start() -> Trellis {
    let port = free_port();
    Trellis::start(
        &Config::new()
            .region(REGION)
            .service(Service::new("svc").listener(Listener::http(port).action(fixed_response(404))))
            .yaml(),
        &[],
    )
}

/// Calls `method(**kwargs)` of a boto3 `vpc-lattice` client on ENDPOINT in REGION and prints
/// the outcome as JSON: `{"ok": response}` or `{"error": {code, message, status, body}}`.
const BOTO3_CALL: &str = r#"
import json, sys, boto3, botocore.exceptions
endpoint, region, method, kwargs = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
client = boto3.client("vpc-lattice", endpoint_url=endpoint, region_name=region)
try:
    response = getattr(client, method)(**kwargs)
    response.pop("ResponseMetadata", None)
    print(json.dumps({"ok": response}, default=str))
except botocore.exceptions.ClientError as e:
    print(json.dumps({"error": {
        "code": e.response["Error"]["Code"],
        "message": e.response["Error"]["Message"],
        "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        "modeled": type(e).__name__,
    }}))
"#;

fn boto3(
    python: &std::path::Path,
    t: &Trellis,
    region: &str,
    method: &str,
    kwargs: Value,
) -> Value {
    let endpoint = format!("http://{}", t.admin_addr());
    let ran = run_python(
        python,
        BOTO3_CALL,
        &[&endpoint, region, method, &kwargs.to_string()],
    );
    assert_eq!(ran.code, Some(0), "boto3 {method} failed: {ran:?}");
    serde_json::from_str(ran.stdout.trim())
        .unwrap_or_else(|e| panic!("boto3 printed no JSON ({e}): {ran:?}"))
}

#[test]
fn boto3_gets_a_validation_exception_naming_an_unsupported_operation() {
    let Some(python) =
        api_oracles("boto3_gets_a_validation_exception_naming_an_unsupported_operation")
    else {
        return;
    };
    let t = start();
    let out = boto3(
        &python,
        &t,
        REGION,
        "create_resource_gateway",
        serde_json::json!({"name": "gateway", "vpcIdentifier": "vpc-12345678", "subnetIds": ["subnet-1"]}),
    );
    let e = &out["error"];
    assert_eq!(e["code"], "ValidationException", "{out}");
    // boto3 raised the model's own exception class, found by the x-amzn-ErrorType code.
    assert_eq!(e["modeled"], "ValidationException", "{out}");
    assert_eq!(e["status"], 400, "{out}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("CreateResourceGateway is not supported by Trellis")),
        "{out}"
    );
}

#[test]
fn a_request_signed_for_another_region_is_refused_naming_both() {
    let Some(python) = api_oracles("a_request_signed_for_another_region_is_refused_naming_both")
    else {
        return;
    };
    let t = start();
    let out = boto3(
        &python,
        &t,
        "ap-south-1",
        "list_services",
        serde_json::json!({}),
    );
    let e = &out["error"];
    assert_eq!(e["code"], "InvalidSignatureException", "{out}");
    assert_eq!(e["status"], 403, "{out}");
    let message = e["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("'ap-south-1'") && message.contains(&format!("'{REGION}'")),
        "{out}"
    );

    let ran = aws_cli(&python, &t, "ap-south-1", &["list-target-groups"]);
    assert_ne!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stderr.contains("(InvalidSignatureException)")
            && ran.stderr.contains("'ap-south-1'")
            && ran.stderr.contains(&format!("'{REGION}'")),
        "{ran:?}"
    );
}

#[test]
fn the_aws_cli_reaches_the_api() {
    let Some(python) = api_oracles("the_aws_cli_reaches_the_api") else {
        return;
    };
    let t = start();
    // An operation Trellis will never implement: the CLI shows the error as AWS's.
    let ran = aws_cli(&python, &t, REGION, &["list-resource-gateways"]);
    assert_eq!(ran.code, Some(255), "{ran:?}");
    assert!(
        ran.stderr.contains(
            "An error occurred (ValidationException) when calling the ListResourceGateways operation: ListResourceGateways is not supported by Trellis"
        ),
        "{ran:?}"
    );
    // ListServices: a list once the operations are in, else the same clear error.
    let ran = aws_cli(&python, &t, REGION, &["list-services"]);
    if ran.code == Some(0) {
        let out: Value = serde_json::from_str(&ran.stdout).expect("the CLI prints JSON");
        assert!(out["items"].is_array(), "{ran:?}");
    } else {
        assert!(
            ran.stderr
                .contains("(ValidationException) when calling the ListServices operation: ListServices is not supported by Trellis"),
            "{ran:?}"
        );
    }
}

/// Sends `request` (raw bytes) to the admin port and reads the answer until the server closes
/// the connection or `wait` passes.
fn raw(addr: &str, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the admin port");
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.set_write_timeout(Some(wait)).unwrap();
    let _ = stream.write_all(request);
    read_answer(&mut stream, wait)
}

/// Reads one HTTP/1.1 answer (head and a `content-length` body), or what arrives before the
/// server closes or `wait` passes.
fn read_answer(stream: &mut TcpStream, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The admin port still answers `/metrics` and `/healthz`, and the API.
fn still_serving(addr: &str) {
    let metrics = raw(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(
        metrics.starts_with("HTTP/1.1 200") && metrics.contains("trellis_requests"),
        "{metrics}"
    );
    let health = raw(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let api = raw(
        addr,
        b"GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(
        api.starts_with("HTTP/1.1 404") && api.contains("UnknownOperationException"),
        "{api}"
    );
}

fn assert_refused(answer: &str, status: &str, code: &str, words: &str) {
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "{answer}"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("x-amzn-errortype: {}", code.to_ascii_lowercase())),
        "{answer}"
    );
    assert!(answer.contains(words), "{answer}");
}

#[test]
fn hostile_requests_get_clear_errors_and_the_admin_port_keeps_serving() {
    let t = start();
    let addr = t.admin_addr();
    let wait = Duration::from_secs(5);

    // A declared body over 1 MiB: refused at once, nothing read.
    let answer = raw(
        &addr,
        b"POST /services HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n",
        wait,
    );
    assert_refused(&answer, "413", "ValidationException", "1048576 bytes");

    // A chunked body that grows past 1 MiB: refused when it crosses the bound.
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.set_write_timeout(Some(wait)).unwrap();
    let _ = stream
        .write_all(b"POST /services HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
    for _ in 0..20 {
        if stream.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let answer = read_answer(&mut stream, wait);
    assert_refused(&answer, "413", "ValidationException", "1 MiB");
    drop(stream);

    // Bodies that are not JSON objects.
    let bad = b"POST /servicenetworks HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{\"a\": 1,";
    let answer = raw(&addr, bad, wait);
    assert_refused(&answer, "400", "ValidationException", "not valid JSON");
    assert!(
        answer.contains("line 1, column 8") && answer.contains("cannotParse"),
        "{answer}"
    );
    let array = b"POST /servicenetworks HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]";
    let answer = raw(&addr, array, wait);
    assert_refused(
        &answer,
        "400",
        "ValidationException",
        "must be a JSON object, not an array",
    );

    // Garbage instead of HTTP: hyper's 400, or a closed connection.
    let answer = raw(&addr, b"\x00\xff\xfeGARBAGE\r\n\r\n", wait);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // Bad percent-encoding and path tricks.
    let answer = raw(
        &addr,
        b"GET /services/../servicenetworks HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        wait,
    );
    assert_refused(
        &answer,
        "404",
        "UnknownOperationException",
        "Unknown operation",
    );
    // A very long path.
    let long = format!(
        "GET /services/{} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "a".repeat(60_000)
    );
    let answer = raw(&addr, long.as_bytes(), wait);
    assert!(
        answer.starts_with("HTTP/1.1 4"),
        "{}",
        &answer[..answer.len().min(300)]
    );
    assert!(
        answer.len() < 4_000,
        "the answer does not echo the path back in full"
    );

    // A slow client: half a body, then nothing. Others are served meanwhile, and it is
    // answered 408 once the body timeout passes.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    slow.write_all(b"POST /services HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{\"name\":")
        .unwrap();
    let started = Instant::now();
    still_serving(&addr);
    let answer = read_answer(&mut slow, Duration::from_secs(20));
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "answered after {:?}",
        started.elapsed()
    );
    assert_refused(
        &answer,
        "408",
        "ValidationException",
        "did not arrive within 10 s",
    );

    still_serving(&addr);
    // No panic reached the log.
    assert!(!t.stderr().contains("panicked"), "{}", t.stderr());
}

#[test]
fn up_help_says_the_admin_port_serves_the_api() {
    let (code, out, _) = run_cli(
        &["up", "--help"],
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    assert_eq!(code, 0);
    assert!(out.contains("VPC Lattice API"), "{out}");
}
