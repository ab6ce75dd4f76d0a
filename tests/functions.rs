//! LAMBDA target groups end to end: the real `trellis` binary runs the sample functions
//! (`sample-functions/dist/`, built by `make sample-functions`) as WebAssembly and as native
//! processes, over real sockets. The events Trellis sends are checked with `aws_lambda_events`,
//! a decoder nobody here wrote.
mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::vpc_lattice::{VpcLatticeRequestV1, VpcLatticeRequestV2};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use serde_json::Value;

const REGION: &str = "us-west-2";
const ACCOUNT: &str = "123456789012";
const HOST: &str = "fnsvc.trellis.localhost";

/// How long `trellis up` may take to get ready: loading functions comes first, and a debug
/// build compiles a module it has not cached in several seconds (more with tests in parallel).
const READY: Duration = Duration::from_secs(120);

/// One LAMBDA target group `<function>-tg` per function, reached by sending `x-fn: <function>`.
struct Group<'a> {
    function: &'a str,
    /// `V1` or `V2`.
    version: &'a str,
}

/// A config with one service `fnsvc` (in service network `fn-network`, reached from VPC
/// `client-vpc` = loopback, access log on stdout) whose listener on `port` forwards requests
/// carrying `x-fn: NAME` to NAME's target group, plus `rules` (YAML rule items) before those,
/// and the `functions` section given as YAML items.
fn config(port: u16, groups: &[Group], rules: &str, functions: &str) -> String {
    let mut rule_items = String::from(rules);
    let mut tgs = String::new();
    for (i, g) in groups.iter().enumerate() {
        rule_items.push_str(&format!(
            "          - {{name: to-{f}, priority: {p}, match: {{httpMatch: {{headerMatches: [{{name: x-fn, match: {{exact: {f}}}}}]}}}}, action: {{forward: {{targetGroups: [{{targetGroupIdentifier: {f}-tg}}]}}}}}}\n",
            f = g.function,
            p = 100 + i
        ));
        tgs.push_str(&format!(
            "  - {{name: {f}-tg, type: LAMBDA, config: {{lambdaEventStructureVersion: {v}}}, targets: [{{id: {f}}}]}}\n",
            f = g.function,
            v = g.version
        ));
    }
    format!(
        r#"region: {REGION}
vpcs:
  - name: client-vpc
    cidrs: [127.0.0.0/8]
serviceNetworks:
  - name: fn-network
    services: [fnsvc]
    vpcs: [client-vpc]
services:
  - name: fnsvc
    accessLogs: [{{destination: stdout}}]
    listeners:
      - name: http
        protocol: HTTP
        port: {port}
        defaultAction: {{fixedResponse: {{statusCode: 404}}}}
        rules:
{rule_items}targetGroups:
{tgs}functions:
{functions}"#
    )
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Starts trellis on `yaml` with the shared state dir (compiled wasm cache).
fn start(yaml: &str) -> Trellis {
    Trellis::start_with_state(yaml, &shared_state_dir(), &[], READY)
}

/// A request to function `function` (by its `x-fn` header).
async fn call(
    client: &Client,
    port: u16,
    function: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let mut all = vec![("x-fn", function)];
    all.extend_from_slice(headers);
    send_bytes(client, port, HOST, method, path, &all, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} to {function} failed: {e}"))
}

async fn get_fn(client: &Client, port: u16, function: &str, path: &str) -> Answer {
    call(client, port, function, "GET", path, &[], Vec::new()).await
}

type Client = Plain;

/// The greeting hello-wasm and hello-lambda answer with.
fn greeting(path: &str, method: &str) -> String {
    format!("Hello from the function at path \"{path}\" (method {method})\n")
}

/// Lines of the function log of `function` (`[function] …`) in `text`.
fn fn_lines<'a>(text: &'a str, function: &str) -> Vec<&'a str> {
    let prefix = format!("[{function}] ");
    text.lines().filter(|l| l.starts_with(&prefix)).collect()
}

/// Waits until trellis's stderr after byte `mark` has a line of `function`'s log containing
/// every one of `needles` (case-insensitive); returns that line.
fn wait_fn_line(t: &Trellis, mark: usize, function: &str, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = t.stderr();
        let found = fn_lines(&err[mark..], function)
            .into_iter()
            .find(|l| {
                let l = l.to_lowercase();
                needles.iter().all(|n| l.contains(&n.to_lowercase()))
            })
            .map(str::to_string);
        if let Some(line) = found {
            return line;
        }
        if Instant::now() > deadline {
            panic!(
                "no [{function}] log line containing {needles:?}; stderr since the request:\n{}",
                &err[mark..]
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count_starts(t: &Trellis, function: &str) -> usize {
    fn_lines(&t.stderr(), function)
        .iter()
        .filter(|l| l.contains("START RequestId:"))
        .count()
}

/// The service's id (`svc-…`), as `trellis services -f FILE` prints it.
fn service_id(config_file: &Path, service: &str) -> String {
    let (code, out, err) = run_cli(
        &["services", "-f", &path_str(config_file)],
        config_file.parent().unwrap(),
    );
    assert_eq!(code, 0, "trellis services failed:\n{out}\n{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(service))
        .unwrap_or_else(|| panic!("no service {service} in:\n{out}"));
    let start = line.find("(svc-").expect("service id") + 1;
    line[start..]
        .split([',', ')'])
        .next()
        .expect("id")
        .to_string()
}

/// The access-log record (trellis's stdout) of the request whose path contains `marker`.
fn access_record(t: &Trellis, marker: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = t.stdout();
        let found = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| {
                r["requestPath"]
                    .as_str()
                    .is_some_and(|p| p.contains(marker))
            });
        if let Some(r) = found {
            return r;
        }
        if Instant::now() > deadline {
            panic!("no access-log record for {marker}; stdout:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `arn` is a Lattice ARN of `kind` with a well-formed id (`prefix` + 17 [0-9a-z]).
fn is_lattice_arn(arn: &str, kind: &str, prefix: &str) -> bool {
    let head = format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:{kind}/{prefix}");
    arn.strip_prefix(&head).is_some_and(|id| {
        id.len() == 17
            && id
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    })
}

fn now_micros() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i128
}

// ---- 1. Three kinds of function -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn wasm_wasi_http_and_process_functions_answer_over_http() {
    let port = free_port();
    let functions = format!(
        "  - {{name: hello-wasm, runtime: wasm, code: \"{}\", environment: {{GREETING: hi-there}}}}\n  - {{name: hello-http, runtime: wasm, code: \"{}\"}}\n  - {{name: hello-lambda, runtime: process, command: [\"{}\"], timeout: 10, environment: {{GREETING: howdy}}}}\n",
        path_str(&sample("hello-wasm.wasm")),
        path_str(&sample("hello-http.wasm")),
        path_str(&sample("hello-lambda")),
    );
    let yaml = config(
        port,
        &[
            Group {
                function: "hello-wasm",
                version: "V2",
            },
            Group {
                function: "hello-http",
                version: "V1",
            },
            Group {
                function: "hello-lambda",
                version: "V2",
            },
        ],
        "",
        &functions,
    );
    let t = start(&yaml);
    let err = t.stderr();
    // The start-up output says which kind each function is.
    let kind_line = |name: &str| -> String {
        err.lines()
            .find(|l| l.contains(&format!("trellis: function {name}:")))
            .unwrap_or_else(|| panic!("no start-up line for {name}; stderr:\n{err}"))
            .to_string()
    };
    assert!(
        kind_line("hello-wasm").contains("wasm command module"),
        "{}",
        kind_line("hello-wasm")
    );
    assert!(
        kind_line("hello-http").contains("wasi:http proxy component"),
        "{}",
        kind_line("hello-http")
    );
    assert!(
        kind_line("hello-lambda").contains("process"),
        "{}",
        kind_line("hello-lambda")
    );

    let client = http1_client();
    let a = get_fn(&client, port, "hello-wasm", "/wasm/hi").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, greeting("/wasm/hi", "GET"));
    assert_eq!(a.headers["content-type"], "text/plain");
    // The function's environment: Lambda's variables plus its own.
    let a = get_fn(&client, port, "hello-wasm", "/env").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.body,
        "AWS_LAMBDA_FUNCTION_NAME=hello-wasm\nGREETING=hi-there\n"
    );

    let a = get_fn(&client, port, "hello-http", "/http/hi").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.body,
        "Hello from the wasi:http function at path \"/http/hi\"\n"
    );
    // A wasi:http component gets the request itself, body included.
    let a = call(
        &client,
        port,
        "hello-http",
        "POST",
        "/echo",
        &[("content-type", "text/plain")],
        b"echo me, please".to_vec(),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, "echo me, please");
    // Counted and timed as every function's invocations are.
    let text = metrics_text(&client, &t).await;
    for sample in [
        r#"trellis_function_invocations_total{function="hello-http",outcome="success"}"#,
        r#"trellis_function_duration_seconds_count{function="hello-http"}"#,
    ] {
        assert_eq!(
            sample_value(&text, sample),
            Some(2.0),
            "{sample} in\n{text}"
        );
    }

    let a = call(
        &client,
        port,
        "hello-lambda",
        "POST",
        "/lambda/hi",
        &[],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, greeting("/lambda/hi", "POST"));
    let a = get_fn(&client, port, "hello-lambda", "/env").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, "hello-lambda howdy\n");

    // Lambda's START/END/REPORT lines, the first REPORT of the process with its init time.
    let err = t.stderr();
    let lambda = fn_lines(&err, "hello-lambda");
    assert!(
        lambda.iter().any(|l| l.contains("START RequestId:")),
        "{err}"
    );
    assert!(
        lambda
            .iter()
            .any(|l| l.contains("REPORT RequestId:") && l.contains("Init Duration:")),
        "{err}"
    );
    assert!(
        fn_lines(&err, "hello-wasm")
            .iter()
            .any(|l| l.contains("END RequestId:")),
        "{err}"
    );
}

// ---- 2. The events, read by aws_lambda_events -------------------------------------------------

/// Sends a request to hello-wasm's `/event` in the group of `function` and returns the event it
/// received (its response body) as raw JSON.
async fn event_of(
    client: &Client,
    port: u16,
    function: &str,
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Value {
    let path = format!("/event{query}");
    let a = call(client, port, function, method, &path, headers, body).await;
    assert_eq!(a.status, 200, "{method} {path}: {a:?}");
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("event is not JSON ({e}): {}", a.body))
}

fn v2(raw: &Value) -> VpcLatticeRequestV2 {
    serde_json::from_value(raw.clone())
        .unwrap_or_else(|e| panic!("not a VpcLatticeRequestV2 ({e}): {raw}"))
}

fn v1(raw: &Value) -> VpcLatticeRequestV1 {
    serde_json::from_value(raw.clone())
        .unwrap_or_else(|e| panic!("not a VpcLatticeRequestV1 ({e}): {raw}"))
}

fn header_values(headers: &http::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("header text").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_deserialize_as_lattice_v2_and_v1() {
    let port = free_port();
    let wasm = path_str(&sample("hello-wasm.wasm"));
    let functions = format!(
        "  - {{name: event-v2, runtime: wasm, code: \"{wasm}\"}}\n  - {{name: event-v1, runtime: wasm, code: \"{wasm}\"}}\n"
    );
    let yaml = config(
        port,
        &[
            Group {
                function: "event-v2",
                version: "V2",
            },
            Group {
                function: "event-v1",
                version: "V1",
            },
        ],
        "",
        &functions,
    );
    let t = start(&yaml);
    let service_arn = format!(
        "arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/{}",
        service_id(&t.config_path(), "fnsvc")
    );
    let client = http1_client();
    let binary: Vec<u8> = vec![0xff, 0xfe, 0x00, 0x01, 0x80, b'a', 0xc3];

    // V2: repeated headers and query keys, a percent-encoded non-ASCII query value, no body.
    let query = "?multi=a&multi=b&name=caf%C3%A9&marker=v2-get";
    let before = now_micros();
    let raw = event_of(
        &client,
        port,
        "event-v2",
        "GET",
        query,
        &[("x-multi", "one"), ("x-multi", "two"), ("x-single", "s")],
        Vec::new(),
    )
    .await;
    let after = now_micros();
    let e = v2(&raw);
    assert_eq!(e.version, "2.0");
    assert_eq!(e.method, Some(http::Method::GET));
    assert_eq!(e.path.as_deref(), Some(format!("/event{query}").as_str()));
    assert_eq!(
        header_values(&e.headers, "x-multi"),
        ["one", "two"],
        "{raw}"
    );
    assert_eq!(header_values(&e.headers, "x-single"), ["s"]);
    assert_eq!(header_values(&e.headers, "x-fn"), ["event-v2"]);
    let xff = header_values(&e.headers, "x-forwarded-for");
    assert!(
        xff.len() == 1 && xff[0].contains("127.0.0.1"),
        "x-forwarded-for: {xff:?} in {raw}"
    );
    assert_eq!(
        e.query_string_parameters.all("multi"),
        Some(vec!["a", "b"]),
        "{raw}"
    );
    assert_eq!(e.query_string_parameters.first("name"), Some("café"));
    assert_eq!(e.body, None, "an empty V2 body is absent: {raw}");
    assert!(!e.is_base64_encoded);
    // The request context names what Trellis serves: the same ARNs as its access log.
    let rc = &e.request_context;
    let record = access_record(&t, "v2-get");
    assert_eq!(rc.service_arn, service_arn, "{raw}");
    assert_eq!(record["serviceArn"], service_arn.as_str());
    assert!(
        is_lattice_arn(&rc.target_group_arn, "targetgroup", "tg-"),
        "{}",
        rc.target_group_arn
    );
    assert_eq!(record["targetGroupArn"], rc.target_group_arn.as_str());
    assert!(
        is_lattice_arn(&rc.service_network_arn, "servicenetwork", "sn-"),
        "{}",
        rc.service_network_arn
    );
    assert_eq!(record["serviceNetworkArn"], rc.service_network_arn.as_str());
    assert_eq!(rc.region, REGION);
    let identity = rc.identity.as_ref().expect("identity");
    let vpc = identity.source_vpc_arn.as_deref().expect("sourceVpcArn");
    assert!(
        vpc.starts_with(&format!("arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/vpc-")),
        "{vpc}"
    );
    assert_eq!(record["sourceVpcArn"], vpc);
    assert!(identity.identity_type.is_some(), "{raw}");
    // timeEpoch: microseconds, as a string, taken while the request was served.
    let epoch: i128 = rc.time_epoch.parse().expect("timeEpoch is a number");
    assert!(
        epoch >= before - 1_000_000 && epoch <= after + 1_000_000,
        "timeEpoch {epoch} not within [{before}, {after}] µs"
    );
    assert!(raw["requestContext"]["timeEpoch"].is_string());

    // V2, a JSON body: sent as text.
    let json = r#"{"order": 7, "items": ["a", "b"]}"#;
    let raw = event_of(
        &client,
        port,
        "event-v2",
        "POST",
        "",
        &[("content-type", "application/json")],
        json.as_bytes().to_vec(),
    )
    .await;
    let e = v2(&raw);
    assert_eq!(e.method, Some(http::Method::POST));
    assert_eq!(e.body.as_deref(), Some(json));
    assert!(!e.is_base64_encoded, "{raw}");

    // V2, a binary body: base64.
    let raw = event_of(
        &client,
        port,
        "event-v2",
        "PUT",
        "",
        &[("content-type", "application/octet-stream")],
        binary.clone(),
    )
    .await;
    let e = v2(&raw);
    assert!(e.is_base64_encoded, "{raw}");
    let decoded = STANDARD
        .decode(e.body.as_deref().expect("body"))
        .expect("base64 body");
    assert_eq!(decoded, binary);

    // V2, a compressed text body: base64 too (compressed bytes cannot go into a JSON string).
    let gz = vec![0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad];
    let raw = event_of(
        &client,
        port,
        "event-v2",
        "POST",
        "",
        &[("content-type", "text/plain"), ("content-encoding", "gzip")],
        gz.clone(),
    )
    .await;
    let e = v2(&raw);
    assert!(e.is_base64_encoded, "{raw}");
    assert_eq!(
        STANDARD.decode(e.body.as_deref().expect("body")).unwrap(),
        gz
    );

    // V2, an explicitly empty POST body.
    let raw = event_of(
        &client,
        port,
        "event-v2",
        "POST",
        "",
        &[
            ("content-type", "application/json"),
            ("content-length", "0"),
        ],
        Vec::new(),
    )
    .await;
    let e = v2(&raw);
    assert_eq!(e.body, None, "{raw}");
    assert!(!e.is_base64_encoded);

    // A non-ASCII (percent-encoded) path reaches the function intact.
    let a = get_fn(&client, port, "event-v2", "/caf%C3%A9/%E2%9C%93").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, greeting("/caf%C3%A9/%E2%9C%93", "GET"));

    // V1: repeated headers joined with ", ", the last value of a repeated query key, no
    // request context.
    let query = "?multi=a&multi=b&name=caf%C3%A9";
    let raw = event_of(
        &client,
        port,
        "event-v1",
        "GET",
        query,
        &[("x-multi", "one"), ("x-multi", "two")],
        Vec::new(),
    )
    .await;
    let e = v1(&raw);
    assert_eq!(
        e.raw_path.as_deref(),
        Some(format!("/event{query}").as_str())
    );
    assert_eq!(e.method, Some(http::Method::GET));
    assert_eq!(raw["headers"]["x-multi"], "one, two", "{raw}");
    assert_eq!(header_values(&e.headers, "x-multi"), ["one", "two"]);
    assert_eq!(e.query_string_parameters.all("multi"), Some(vec!["b"]));
    assert_eq!(e.query_string_parameters.first("name"), Some("café"));
    assert!(
        header_values(&e.headers, "x-forwarded-for")
            .first()
            .is_some_and(|v| v.contains("127.0.0.1")),
        "{raw}"
    );
    assert!(!e.is_base64_encoded);
    assert!(
        raw.get("requestContext").is_none() && raw.get("version").is_none(),
        "V1 has neither requestContext nor version: {raw}"
    );
    assert!(
        matches!(&e.body, None | Some(Body::Empty)) || e.body == Some(Body::Text(String::new())),
        "empty V1 body: {raw}"
    );

    // V1, JSON and binary bodies.
    let raw = event_of(
        &client,
        port,
        "event-v1",
        "POST",
        "",
        &[("content-type", "application/json")],
        json.as_bytes().to_vec(),
    )
    .await;
    let e = v1(&raw);
    assert_eq!(e.body, Some(Body::Text(json.to_string())), "{raw}");
    assert!(!e.is_base64_encoded);
    let raw = event_of(
        &client,
        port,
        "event-v1",
        "POST",
        "",
        &[("content-type", "application/octet-stream")],
        binary.clone(),
    )
    .await;
    let e = v1(&raw);
    assert!(e.is_base64_encoded, "{raw}");
    assert_eq!(
        STANDARD
            .decode(raw["body"].as_str().expect("body string"))
            .unwrap(),
        binary
    );
}

// ---- 3. Failures -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn wasm_failures_get_the_right_status_and_a_log_line() {
    let port = free_port();
    let functions = format!(
        "  - {{name: fail-wasm, runtime: wasm, code: \"{}\", timeout: 1, memorySize: 128}}\n",
        path_str(&sample("hello-wasm.wasm"))
    );
    let yaml = config(
        port,
        &[Group {
            function: "fail-wasm",
            version: "V2",
        }],
        "",
        &functions,
    );
    let t = start(&yaml);
    let client = http1_client();
    let f = "fail-wasm";

    // Each failure: its status, a clear line in the function log, and then the same function
    // answers a good request.
    let cases: &[(&str, u16, &[&str])] = &[
        ("/panic", 502, &["boom: the function panicked on purpose"]),
        ("/oom", 502, &["out of memory"]),
        ("/garbage", 502, &["not JSON"]),
        ("/exit", 502, &["exit status 3"]),
        ("/big", 502, &["6 MB"]),
        ("/loop", 504, &["Task timed out"]),
    ];
    for (path, status, needles) in cases {
        let mark = t.stderr().len();
        let started = Instant::now();
        let a = get_fn(&client, port, f, path).await;
        let took = started.elapsed();
        assert_eq!(a.status, *status, "{path}: {a:?}\n{}", t.stderr());
        // Trellis's own line about the invocation (`RequestId: … Error: …`), not just what
        // the function printed.
        let mut needles = needles.to_vec();
        needles.push("RequestId:");
        wait_fn_line(&t, mark, f, &needles);
        if *path == "/loop" {
            assert!(
                took >= Duration::from_millis(900) && took < Duration::from_secs(4),
                "/loop with timeout 1 answered after {took:?}"
            );
        }
        let ok = get_fn(&client, port, f, "/after").await;
        assert_eq!(ok.status, 200, "after {path}: {ok:?}");
        assert_eq!(ok.body, greeting("/after", "GET"));
    }

    // A request body over 6 MB: 413, and the function does not run. The client is still
    // sending the body when the answer comes; it must get to read it (several times, as a
    // reset connection instead of the answer is a race).
    let starts = count_starts(&t, f);
    let mark = t.stderr().len();
    for _ in 0..3 {
        let a = send_bytes(
            &http1_client(),
            port,
            HOST,
            "POST",
            "/upload",
            &[("x-fn", f), ("content-type", "application/octet-stream")],
            vec![b'x'; 7 * 1024 * 1024],
        )
        .await
        .expect("the 413 answer");
        assert_eq!(a.status, 413, "{a:?}");
    }
    wait_fn_line(&t, mark, f, &["6 MB"]);
    let ok = get_fn(&client, port, f, "/after-413").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    // The answer can reach the client before Trellis's stderr reaches this test: wait for the
    // line the good invocation prints (its START line, and any a 413 wrongly caused, are older).
    wait_fn_line(&t, mark, f, &["GET /after-413"]);
    assert_eq!(
        count_starts(&t, f),
        starts + 1,
        "only the good request after the 413 ran the function:\n{}",
        &t.stderr()[mark..]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn process_function_failures_get_the_right_status_and_a_log_line() {
    let port = free_port();
    let lambda = path_str(&sample("hello-lambda"));
    let functions = format!(
        "  - {{name: lam, runtime: process, command: [\"{lambda}\"], timeout: 10}}\n  - {{name: lam-short, runtime: process, command: [\"{lambda}\"], timeout: 2}}\n"
    );
    let yaml = config(
        port,
        &[
            Group {
                function: "lam",
                version: "V2",
            },
            Group {
                function: "lam-short",
                version: "V2",
            },
        ],
        "",
        &functions,
    );
    let t = start(&yaml);
    let client = http1_client();

    // The handler returns an error: 502, the error in the log.
    let mark = t.stderr().len();
    let a = get_fn(&client, port, "lam", "/error").await;
    assert_eq!(a.status, 502, "{a:?}");
    wait_fn_line(&t, mark, "lam", &["the handler failed on purpose"]);
    let ok = get_fn(&client, port, "lam", "/fine").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body, greeting("/fine", "GET"));

    // The process exits mid-invocation: 502 at once, not at the 10 s timeout.
    let mark = t.stderr().len();
    let started = Instant::now();
    let a = get_fn(&client, port, "lam", "/exit").await;
    let took = started.elapsed();
    assert_eq!(a.status, 502, "{a:?}");
    assert!(
        took < Duration::from_secs(3),
        "/exit answered after {took:?}"
    );
    wait_fn_line(&t, mark, "lam", &["RequestId:", "exit"]);
    let ok = get_fn(&client, port, "lam", "/fine-again").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body, greeting("/fine-again", "GET"));

    // The handler sleeps past the 2 s timeout: 504, and a new environment serves the next one.
    let mark = t.stderr().len();
    let started = Instant::now();
    let a = get_fn(&client, port, "lam-short", "/sleep").await;
    let took = started.elapsed();
    assert_eq!(a.status, 504, "{a:?}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(4500),
        "/sleep with timeout 2 answered after {took:?}"
    );
    wait_fn_line(&t, mark, "lam-short", &["Task timed out"]);
    let ok = get_fn(&client, port, "lam-short", "/awake").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body, greeting("/awake", "GET"));
}

// ---- 4. Concurrency ------------------------------------------------------------------------

/// A Lambda custom runtime in bash: every invocation takes 0.5 s and answers with the pid of
/// its environment.
const SLOW_RUNTIME: &str = r#"#!/usr/bin/env bash
set -euo pipefail
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
echo "environment $$ started" >&2
headers=$(mktemp)
trap 'rm -f "$headers"' EXIT
while true; do
  curl -sS -o /dev/null -D "$headers" "$api/invocation/next"
  id=$(awk 'tolower($1) == "lambda-runtime-aws-request-id:" {print $2}' "$headers" | tr -d '\r')
  sleep 0.5
  curl -sS -o /dev/null -X POST -H 'content-type: application/json' \
    --data "{\"statusCode\": 200, \"body\": \"pid $$\"}" "$api/invocation/$id/response"
done
"#;

#[tokio::test(flavor = "multi_thread")]
async fn process_function_scales_up_to_its_concurrency_and_no_further() {
    let dir = scratch_dir("slow-runtime");
    let script = dir.join("slow.sh");
    std::fs::write(&script, SLOW_RUNTIME).unwrap();
    let port = free_port();
    let functions = format!(
        "  - {{name: slow, runtime: process, command: [bash, \"{}\"], timeout: 20, concurrency: 3}}\n",
        path_str(&script)
    );
    let yaml = config(
        port,
        &[Group {
            function: "slow",
            version: "V2",
        }],
        "",
        &functions,
    );
    let t = start(&yaml);
    let client = http1_client();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            get_fn(&client, port, "slow", &format!("/work/{i}")).await
        }));
    }
    let mut pids = HashSet::new();
    for task in tasks {
        let a = task.await.unwrap();
        assert_eq!(a.status, 200, "{a:?}");
        let pid = a.body.strip_prefix("pid ").expect("pid answer").to_string();
        pids.insert(pid);
    }
    let err = t.stderr();
    let started = fn_lines(&err, "slow")
        .iter()
        .filter(|l| l.contains("environment") && l.contains("started"))
        .count();
    let inits = fn_lines(&err, "slow")
        .iter()
        .filter(|l| l.contains("REPORT RequestId:") && l.contains("Init Duration:"))
        .count();
    assert!(
        (2..=3).contains(&pids.len()),
        "12 concurrent requests to a function of concurrency 3 were served by {} environments ({pids:?})",
        pids.len()
    );
    assert!(
        started <= 3 && started >= pids.len(),
        "{started} environments started:\n{err}"
    );
    assert!(
        (2..=3).contains(&inits),
        "{inits} REPORT lines with an Init Duration:\n{err}"
    );
}

/// A Lambda custom runtime in bash that answers every invocation with `version VERSION`.
fn versioned_runtime(version: &str) -> String {
    format!(
        r#"#!/usr/bin/env bash
set -euo pipefail
api="http://${{AWS_LAMBDA_RUNTIME_API}}/2018-06-01/runtime"
headers=$(mktemp)
trap 'rm -f "$headers"' EXIT
while true; do
  curl -sS -o /dev/null -D "$headers" "$api/invocation/next"
  id=$(awk 'tolower($1) == "lambda-runtime-aws-request-id:" {{print $2}}' "$headers" | tr -d '\r')
  curl -sS -o /dev/null -X POST -H 'content-type: application/json' \
    --data '{{"statusCode": 200, "body": "version {version}"}}' "$api/invocation/$id/response"
done
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_function_reloads_when_the_script_its_command_runs_changes() {
    let dir = scratch_dir("script-reload");
    let script = dir.join("runtime.sh");
    std::fs::write(&script, versioned_runtime("one")).unwrap();
    let port = free_port();
    let functions = format!(
        "  - {{name: scripted, runtime: process, command: [bash, \"{}\"], timeout: 10}}\n",
        path_str(&script)
    );
    let yaml = config(
        port,
        &[Group {
            function: "scripted",
            version: "V2",
        }],
        "",
        &functions,
    );
    let t = start(&yaml);
    let client = http1_client();
    let a = get_fn(&client, port, "scripted", "/").await;
    assert_eq!((a.status, a.body.as_str()), (200, "version one"), "{a:?}");

    // Edited in place, as an editor saves it; `bash` itself is unchanged.
    std::fs::write(&script, versioned_runtime("two, edited")).unwrap();
    let mark = t.stderr().len();
    let a = get_fn(&client, port, "scripted", "/").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (200, "version two, edited"),
        "the next invocation runs the new script: {a:?}\n{}",
        t.stderr()
    );
    wait_fn_line(
        &t,
        mark,
        "scripted",
        &["runtime.sh changed: replacing warm environments"],
    );
    let a = get_fn(&client, port, "scripted", "/").await;
    assert_eq!(a.body, "version two, edited");
    assert_eq!(count_starts(&t, "scripted"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioned_environments_start_with_trellis_and_idle_ones_stop() {
    let dir = scratch_dir("provisioned-runtime");
    let script = dir.join("slow.sh");
    std::fs::write(&script, SLOW_RUNTIME).unwrap();
    let port = free_port();
    let functions = format!(
        "  - {{name: warm, runtime: process, command: [bash, \"{}\"], timeout: 20, concurrency: 3, provisioned: 2, idleTimeout: 1}}\n",
        path_str(&script)
    );
    let yaml = config(
        port,
        &[Group {
            function: "warm",
            version: "V2",
        }],
        "",
        &functions,
    );
    let t = start(&yaml);
    assert!(
        t.stderr().contains("concurrency 3, 2 provisioned"),
        "the start-up line says so:\n{}",
        t.stderr()
    );
    // Before any request: two environments, ready.
    wait_fn_line(&t, 0, "warm", &["provisioned environment 0 ready"]);
    wait_fn_line(&t, 0, "warm", &["provisioned environment 1 ready"]);
    let ready = |t: &Trellis| {
        fn_lines(&t.stderr(), "warm")
            .iter()
            .filter(|l| l.contains("environment") && l.contains("started"))
            .count()
    };
    // The scripts' own lines come through the stderr relay, not in step with the "ready" lines.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ready(&t) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ready(&t), 2, "{}", t.stderr());

    // The first request runs warm: no Init Duration in its REPORT.
    let mark = t.stderr().len();
    let client = http1_client();
    let a = get_fn(&client, port, "warm", "/first").await;
    assert_eq!(a.status, 200, "{a:?}");
    let report = wait_fn_line(&t, mark, "warm", &["REPORT RequestId:"]);
    assert!(!report.contains("Init Duration"), "{report}");

    // A burst scales to 3; once idle for a second, the extra one stops and two stay.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            get_fn(&client, port, "warm", &format!("/burst/{i}")).await
        }));
    }
    for task in tasks {
        let a = task.await.unwrap();
        assert_eq!(a.status, 200, "{a:?}");
    }
    assert_eq!(ready(&t), 3, "{}", t.stderr());
    let idle = |t: &Trellis| {
        fn_lines(&t.stderr(), "warm")
            .iter()
            .filter(|l| l.contains("without an invocation (idle timeout)"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while idle(&t) < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(idle(&t), 1, "{}", t.stderr());
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(idle(&t), 1, "the provisioned two are kept:\n{}", t.stderr());
    assert_eq!(ready(&t), 3, "and not replaced:\n{}", t.stderr());
}

#[test]
fn a_signal_during_start_up_stops_trellis_once_started_with_its_clean_up() {
    // A fresh state dir: both wasm modules are compiled, which takes seconds in a debug build;
    // the signal comes once the first is done.
    let dir = scratch_dir("signal-at-start-up");
    let script = dir.join("slow.sh");
    std::fs::write(&script, SLOW_RUNTIME).unwrap();
    let functions = format!(
        "  - {{name: hello-wasm, runtime: wasm, code: \"{}\"}}\n  - {{name: hello-http, runtime: wasm, code: \"{}\"}}\n  - {{name: warm, runtime: process, command: [bash, \"{}\"], provisioned: 1}}\n",
        path_str(&sample("hello-wasm.wasm")),
        path_str(&sample("hello-http.wasm")),
        path_str(&script),
    );
    let groups = ["hello-wasm", "hello-http", "warm"].map(|function| Group {
        function,
        version: "V2",
    });
    let yaml = config(free_port(), &groups, "", &functions);
    let mut t = Trellis::spawn_with_state(&yaml, &dir.join("state"), &[]);
    t.wait_for_stderr(READY, "the first function's start-up line", |e| {
        e.contains("trellis: function ")
    });
    let during_start_up = !t.stderr().contains("trellis: ready");
    t.signal("TERM");
    let code = t.wait(READY);
    let err = t.stderr();
    assert_eq!(code, Some(0), "not a clean exit:\n{err}");
    assert!(err.contains("SIGTERM received"), "{err}");
    assert!(err.contains("INFO trellis: stopped"), "{err}");
    // Every environment started is gone with it.
    for line in fn_lines(&err, "warm") {
        if let Some(pid) = line
            .strip_prefix("[warm] environment ")
            .and_then(|rest| rest.strip_suffix(" started"))
        {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "environment {pid} outlived Trellis"
            );
        }
    }
    if !during_start_up {
        eprintln!(
            "note: start-up was over before the signal went, so this run checked a signal after \"ready\" only"
        );
    }
}

/// The port of `t`'s admin address.
fn admin_port(t: &Trellis) -> u16 {
    let addr = t.admin_addr();
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in the admin address {addr}"))
}

/// `t`'s `/metrics` text.
async fn metrics_text(client: &Client, t: &Trellis) -> String {
    let metrics = get(client, admin_port(t), "127.0.0.1", "/metrics").await;
    assert_eq!(metrics.status, 200, "{metrics:?}");
    metrics.body
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_invocations_and_cold_starts() {
    let port = free_port();
    let functions = format!(
        "  - {{name: counted, runtime: process, command: [\"{}\"], timeout: 10}}\n",
        path_str(&sample("hello-lambda")),
    );
    let yaml = config(
        port,
        &[Group {
            function: "counted",
            version: "V2",
        }],
        "",
        &functions,
    );
    let t = start(&yaml);
    let admin = admin_port(&t);
    let client = http1_client();
    for path in ["/a", "/b", "/c"] {
        assert_eq!(get_fn(&client, port, "counted", path).await.status, 200);
    }
    assert_eq!(get_fn(&client, port, "counted", "/error").await.status, 502);
    // No rule matches without x-fn: the listener's fixed 404, with no target group.
    assert_eq!(get(&client, port, HOST, "/nowhere").await.status, 404);

    let metrics = get(&client, admin, "127.0.0.1", "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        metrics.headers
    );
    let text = metrics.body;
    let value = |sample: &str| {
        sample_value(&text, sample).unwrap_or_else(|| panic!("no {sample} in\n{text}"))
    };
    assert_eq!(
        value(r#"trellis_requests_total{service="fnsvc",target_group="counted-tg",code="2XX"}"#),
        3.0
    );
    assert_eq!(
        value(r#"trellis_requests_total{service="fnsvc",target_group="counted-tg",code="5XX"}"#),
        1.0
    );
    assert_eq!(
        value(r#"trellis_requests_total{service="fnsvc",target_group="-",code="4XX"}"#),
        1.0
    );
    assert_eq!(
        value(r#"trellis_request_time_seconds_count{service="fnsvc",target_group="counted-tg"}"#),
        4.0
    );
    assert_eq!(
        value(r#"trellis_function_invocations_total{function="counted",outcome="success"}"#),
        3.0
    );
    assert_eq!(
        value(r#"trellis_function_invocations_total{function="counted",outcome="error"}"#),
        1.0
    );
    assert_eq!(
        value(r#"trellis_function_cold_starts_total{function="counted"}"#),
        1.0,
        "one environment served all four in turn"
    );
    assert_eq!(
        value(r#"trellis_function_init_duration_seconds_count{function="counted"}"#),
        1.0
    );
    let init = value(r#"trellis_function_init_duration_seconds_sum{function="counted"}"#);
    assert!(init > 0.0 && init < 10.0, "init took {init} s");
    assert_eq!(
        value(r#"trellis_function_duration_seconds_count{function="counted"}"#),
        4.0
    );
    assert_eq!(
        value(r#"trellis_function_environments{function="counted"}"#),
        1.0
    );
    assert_eq!(
        value(r#"trellis_function_busy_environments{function="counted"}"#),
        0.0
    );
    assert_eq!(
        get(&client, admin, "127.0.0.1", "/healthz").await.body,
        "ok\n"
    );
    assert_eq!(get(&client, admin, "127.0.0.1", "/other").await.status, 404);
}

// ---- 5. Developer loop -------------------------------------------------------------------------

/// `module` with a custom section named `name` holding `payload` appended: the same program,
/// different bytes.
fn with_custom_section(module: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    let mut out = module.to_vec();
    out.push(0);
    leb(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

/// Runs `workers` loops of requests until `stop`, each answer checked by `check` (which
/// returns an error text for a bad one); returns (answers, failures).
fn request_stream(
    port: u16,
    workers: usize,
    stop: Arc<AtomicBool>,
    requests: impl Fn(usize) -> (String, Vec<(String, String)>) + Send + Sync + 'static,
    check: impl Fn(&str, &Answer) -> Option<String> + Send + Sync + 'static,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    let requests = Arc::new(requests);
    let check = Arc::new(check);
    tokio::spawn(async move {
        let done = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for w in 0..workers {
            let (stop, requests, check, done, failures) = (
                stop.clone(),
                requests.clone(),
                check.clone(),
                done.clone(),
                failures.clone(),
            );
            handles.push(tokio::spawn(async move {
                let client = http1_client();
                let mut n = w;
                while !stop.load(Ordering::SeqCst) {
                    let (path, headers) = requests(n);
                    n += workers;
                    let headers: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let result =
                        send_bytes(&client, port, HOST, "GET", &path, &headers, Vec::new()).await;
                    done.fetch_add(1, Ordering::SeqCst);
                    let problem = match result {
                        Ok(a) => check(&path, &a),
                        Err(e) => Some(format!("{path}: connection error {e}")),
                    };
                    if let Some(p) = problem {
                        failures.lock().unwrap().push(p);
                    }
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let failures = failures.lock().unwrap().clone();
        (done.load(Ordering::SeqCst), failures)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_the_wasm_file_while_requests_run_loses_none() {
    let dir = scratch_dir("live-wasm");
    let code = dir.join("live.wasm");
    let original = std::fs::read(sample("hello-wasm.wasm")).unwrap();
    std::fs::write(&code, &original).unwrap();
    let port = free_port();
    let functions = format!(
        "  - {{name: live-fn, runtime: wasm, code: \"{}\", timeout: 10}}\n",
        path_str(&code)
    );
    let yaml = config(
        port,
        &[Group {
            function: "live-fn",
            version: "V2",
        }],
        "",
        &functions,
    );
    let t = start(&yaml);

    let stop = Arc::new(AtomicBool::new(false));
    let stream = request_stream(
        port,
        6,
        stop.clone(),
        |n| {
            (
                format!("/live/{n}"),
                vec![("x-fn".to_string(), "live-fn".to_string())],
            )
        },
        |path, a| {
            (a.status != 200 || a.body != greeting(path, "GET"))
                .then(|| format!("{path}: {} {}", a.status, a.body))
        },
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A rebuild: new bytes (a fresh custom section, so this run compiles it anew), same
    // behaviour, written in place as a compiler does.
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string();
    let rebuilt = with_custom_section(&original, "trellis-test-build", stamp.as_bytes());
    let cache = shared_state_dir().join("wasm-cache");
    let cached_before = cache_entries(&cache);
    std::fs::write(&code, &rebuilt).unwrap();
    // Keep the requests flowing until the new code serves, and a little longer.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !t
        .stderr()
        .contains("[live-fn] code changed: now running the new")
    {
        assert!(
            Instant::now() < deadline,
            "the function never reloaded; stderr:\n{}",
            t.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    let (done, failures) = stream.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} of {done} requests failed while the wasm file changed: {:#?}\nstderr:\n{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        t.stderr()
    );
    assert!(done >= 50, "only {done} requests ran");
    assert!(!t.stderr().contains("cannot be loaded"), "{}", t.stderr());
    // The shared cache keeps the sample's artifact, not one per run of this test.
    for entry in cache_entries(&cache).difference(&cached_before) {
        let _ = std::fs::remove_file(entry);
    }
}

fn cache_entries(dir: &Path) -> HashSet<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_the_config_while_requests_run_loses_none_and_a_bad_edit_keeps_serving() {
    let port = free_port();
    let functions = format!(
        "  - {{name: cfg-fn, runtime: wasm, code: \"{}\"}}\n",
        path_str(&sample("hello-wasm.wasm"))
    );
    let rules = |status: u16| {
        format!(
            "          - {{name: fixed, priority: 5, match: {{httpMatch: {{pathMatch: {{match: {{exact: /fixed}}}}}}}}, action: {{fixedResponse: {{statusCode: {status}}}}}}}\n"
        )
    };
    let groups = [Group {
        function: "cfg-fn",
        version: "V2",
    }];
    let t = start(&config(port, &groups, &rules(201), &functions));
    let file = t.config_path();

    let stop = Arc::new(AtomicBool::new(false));
    let stream = request_stream(
        port,
        6,
        stop.clone(),
        |n| {
            let path = if n % 2 == 0 {
                "/fixed".to_string()
            } else {
                format!("/via-fn/{n}")
            };
            (path, vec![("x-fn".to_string(), "cfg-fn".to_string())])
        },
        |path, a| {
            if path == "/fixed" {
                // The old status or the new one, never anything else.
                (a.status != 201 && a.status != 202)
                    .then(|| format!("{path}: {} (expected 201 or 202)", a.status))
            } else {
                (a.status != 200 || a.body != greeting(path, "GET"))
                    .then(|| format!("{path}: {} {}", a.status, a.body))
            }
        },
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // (b) A good edit while requests run.
    std::fs::write(&file, config(port, &groups, &rules(202), &functions)).unwrap();
    t.wait_for_stderr(Duration::from_secs(10), "the reload", |e| {
        e.contains("trellis: reloaded")
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);
    let (done, failures) = stream.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} of {done} requests failed during the config reload: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(done >= 50, "only {done} requests ran");
    let client = http1_client();
    assert_eq!(get(&client, port, HOST, "/fixed").await.status, 202);
    // The function was kept, not reloaded (same settings).
    assert!(
        !t.stderr().contains("function cfg-fn changed"),
        "{}",
        t.stderr()
    );

    // (c) A bad edit: an unknown key. The old config keeps serving and the problem is printed
    // with its line:column.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let good = config(port, &groups, &rules(203), &functions);
    let bad = good.replacen("  - name: fnsvc\n", "  - name: fnsvc\n    bogusKey: 1\n", 1);
    let line = bad
        .lines()
        .position(|l| l.contains("bogusKey"))
        .expect("edited")
        + 1;
    let mark = t.stderr().len();
    std::fs::write(&file, &bad).unwrap();
    t.wait_for_stderr(Duration::from_secs(20), "the bad edit's report", |e| {
        e[mark..].contains("still serving the previous config")
    });
    let report = t.stderr()[mark..].to_string();
    assert!(
        report.contains(&format!("trellis.yaml:{line}:5")) && report.contains("bogusKey"),
        "the problem with its line:column:\n{report}"
    );
    for _ in 0..5 {
        assert_eq!(get(&client, port, HOST, "/fixed").await.status, 202);
        let a = send(
            &client,
            port,
            HOST,
            "GET",
            "/still",
            &[("x-fn", "cfg-fn")],
            "",
        )
        .await;
        assert_eq!(a.status, 200, "{a:?}");
    }

    // An empty file (what an editor saving in place leaves for a moment) is not a config
    // with no services: the old one keeps serving.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mark = t.stderr().len();
    std::fs::write(&file, "").unwrap();
    t.wait_for_stderr(Duration::from_secs(20), "the empty file's report", |e| {
        e[mark..].contains("still serving the previous config")
    });
    assert!(!t.stderr()[mark..].contains("reloaded"), "{}", t.stderr());
    assert_eq!(get(&client, port, HOST, "/fixed").await.status, 202);

    // Fixing it reloads.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mark = t.stderr().len();
    std::fs::write(&file, &good).unwrap();
    t.wait_for_stderr(Duration::from_secs(20), "the reload of the fix", |e| {
        e[mark..].contains("trellis: reloaded")
    });
    let a = get(&client, port, HOST, "/fixed").await;
    assert_eq!(a.status, 203, "{a:?}\nstderr:\n{}", t.stderr());
}

// ---- 6. CLI: generate-event and invoke -----------------------------------------------------

#[test]
fn generate_event_prints_events_aws_lambda_events_reads() {
    let cwd = std::env::temp_dir();
    let args = |version: &'static str| {
        vec![
            "generate-event",
            "--version",
            version,
            "--method",
            "POST",
            "--path",
            "/x?a=1&a=2",
            "--header",
            "x-test: yes",
            "--body",
            "hi",
        ]
    };
    let (code, out, err) = run_cli(&args("V2"), &cwd);
    assert_eq!(code, 0, "{err}");
    let raw: Value = serde_json::from_str(&out).expect("JSON");
    let e = v2(&raw);
    assert_eq!(e.version, "2.0");
    assert_eq!(e.method, Some(http::Method::POST));
    assert_eq!(e.path.as_deref(), Some("/x?a=1&a=2"));
    assert_eq!(e.query_string_parameters.all("a"), Some(vec!["1", "2"]));
    assert_eq!(header_values(&e.headers, "x-test"), ["yes"]);
    assert_eq!(e.body.as_deref(), Some("hi"));
    assert!(!e.is_base64_encoded);
    assert!(e.request_context.service_arn.contains(":service/svc-"));

    let (code, out, err) = run_cli(&args("V1"), &cwd);
    assert_eq!(code, 0, "{err}");
    let raw: Value = serde_json::from_str(&out).expect("JSON");
    let e = v1(&raw);
    assert_eq!(e.method, Some(http::Method::POST));
    assert_eq!(e.raw_path.as_deref(), Some("/x?a=1&a=2"));
    assert_eq!(e.query_string_parameters.first("a"), Some("2"));
    assert_eq!(header_values(&e.headers, "x-test"), ["yes"]);
    assert_eq!(e.body, Some(Body::Text("hi".to_string())));

    let (code, _, err) = run_cli(&["generate-event", "--version", "V3"], &cwd);
    assert_ne!(code, 0, "V3 is not a version: {err}");
}

/// A config with one function `hello-fn` (hello-wasm) for `trellis invoke`.
fn invoke_config(dir: &Path) -> PathBuf {
    let file = dir.join("trellis.yaml");
    let yaml = config(
        free_port(),
        &[Group {
            function: "hello-fn",
            version: "V2",
        }],
        "",
        &format!(
            "  - {{name: hello-fn, runtime: wasm, code: \"{}\"}}\n  - {{name: other-fn, runtime: wasm, code: \"{}\"}}\n",
            path_str(&sample("hello-wasm.wasm")),
            path_str(&sample("hello-wasm.wasm"))
        ),
    );
    std::fs::write(&file, yaml).unwrap();
    file
}

/// `trellis invoke FUNCTION ARGS… -f DIR/trellis.yaml --state-dir (shared)` in `dir`:
/// (exit code, stdout, stderr).
fn invoke_cli(dir: &Path, function: &str, args: &[&str]) -> (i32, String, String) {
    let file = path_str(&dir.join("trellis.yaml"));
    let state = path_str(&shared_state_dir());
    let mut all = vec!["invoke", function];
    all.extend_from_slice(args);
    all.extend(["-f", file.as_str(), "--state-dir", state.as_str()]);
    run_cli(&all, dir)
}

fn generate(path: &str) -> String {
    let (code, out, err) = run_cli(&["generate-event", "--path", path], &std::env::temp_dir());
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn invoke_runs_a_function_with_an_event_file_or_stdin() {
    let dir = scratch_dir("invoke");
    let file = invoke_config(&dir);
    let state = path_str(&shared_state_dir());
    let event = dir.join("event.json");
    std::fs::write(&event, generate("/from-file")).unwrap();
    let (code, out, err) = invoke_cli(&dir, "hello-fn", &["--event", &path_str(&event)]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let response: Value = serde_json::from_str(out.trim()).expect("response JSON");
    assert_eq!(response["statusCode"], 200, "{out}");
    assert_eq!(response["body"], greeting("/from-file", "GET"));
    // The function's log: what it printed and Lambda's lines.
    assert!(err.contains("[hello-fn] GET /from-file"), "{err}");
    assert!(err.contains("[hello-fn] START RequestId:"), "{err}");
    assert!(err.contains("[hello-fn] REPORT RequestId:"), "{err}");

    // `--event -`: the event on stdin, straight from generate-event.
    let mut child = Command::new(TRELLIS)
        .args([
            "invoke",
            "hello-fn",
            "--event",
            "-",
            "-f",
            &path_str(&file),
            "--state-dir",
            &state,
        ])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(generate("/from-stdin").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let response: Value = serde_json::from_str(out.trim()).expect("response JSON");
    assert_eq!(response["statusCode"], 200);
    assert_eq!(response["body"], greeting("/from-stdin", "GET"));
}

#[test]
fn with_log_format_json_the_function_log_is_json_events_too() {
    let dir = scratch_dir("invoke-json");
    invoke_config(&dir);
    let event = dir.join("event.json");
    std::fs::write(&event, generate("/json-log")).unwrap();
    let (code, out, err) = invoke_cli(
        &dir,
        "hello-fn",
        &["--log-format", "json", "--event", &path_str(&event)],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // Every stderr line parses; the function's lines carry its name as a field.
    let function_lines: Vec<String> = err
        .lines()
        .filter_map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nstderr:\n{err}"));
            (event["target"] == "function").then(|| {
                assert_eq!(event["fields"]["function"], "hello-fn", "{line}");
                event["fields"]["message"].as_str().unwrap_or("").to_owned()
            })
        })
        .collect();
    for wanted in ["START RequestId:", "GET /json-log", "REPORT RequestId:"] {
        assert!(
            function_lines.iter().any(|l| l.starts_with(wanted)),
            "no function line {wanted:?} in:\n{err}"
        );
    }
    assert!(!err.contains("[hello-fn]"), "{err}");
}

#[test]
fn invoke_reports_failures_and_unknown_functions() {
    let dir = scratch_dir("invoke-fail");
    invoke_config(&dir);
    let event = dir.join("panic.json");
    std::fs::write(&event, generate("/panic")).unwrap();
    let (code, out, err) = invoke_cli(&dir, "hello-fn", &["--event", &path_str(&event)]);
    assert_eq!(
        code, 2,
        "a panicking function: stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        err.contains("boom: the function panicked on purpose"),
        "{err}"
    );

    let (code, out, err) = invoke_cli(&dir, "no-such-fn", &[]);
    assert_eq!(code, 1, "an unknown function: {out}\n{err}");
    assert!(
        err.contains("no-such-fn") && err.contains("hello-fn") && err.contains("other-fn"),
        "lists the functions: {err}"
    );

    // An event that is not JSON is refused before anything runs.
    std::fs::write(&event, "not json").unwrap();
    let (code, _, err) = invoke_cli(&dir, "hello-fn", &["--event", &path_str(&event)]);
    assert_eq!(code, 1, "{err}");
}
