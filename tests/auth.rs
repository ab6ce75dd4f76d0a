//! IAM auth end to end: requests signed by signers nobody here wrote (botocore's SigV4, the
//! AWS CRT's SigV4A through botocore, curl's `--aws-sigv4`) reach `trellis up` over real
//! sockets; auth policies of networks and services allow or refuse them with Lattice's texts;
//! tampered signatures are refused with their reason; the caller's identity reaches HTTP
//! targets as headers and functions in their events.
//!
//! The signers run in the Python virtualenv `scripts/pyenv.sh` makes (`make test` passes its
//! interpreter as `TRELLIS_PYTHON` and sets `TRELLIS_REQUIRE_ORACLES`, so that there the tests
//! cannot skip); without it, each test says it is skipped and why.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::Request;
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";
const ROLE: &str = "arn:aws:iam::123456789012:role/ordering";
const SESSION_ARN: &str = "arn:aws:sts::123456789012:assumed-role/ordering/checkout";
const AUDITOR: &str = "arn:aws:iam::123456789012:user/auditor";

/// The Python that has botocore and awscrt, or `None` (with the reason printed) when the
/// oracles are not installed and the run does not require them.
fn python(test: &str) -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidate = std::env::var_os("TRELLIS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo.join("target"));
            repo.join(target).join("pyenv/bin/python")
        });
    let works = Command::new(&candidate)
        .args(["-c", "import botocore.crt.auth, awscrt"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return Some(candidate);
    }
    let why = format!(
        "{test}: SKIPPED: no Python with botocore and awscrt at {} (run `make test`, or scripts/pyenv.sh and set TRELLIS_PYTHON)",
        candidate.display()
    );
    assert!(
        std::env::var_os("TRELLIS_REQUIRE_ORACLES").is_none(),
        "{why}, and TRELLIS_REQUIRE_ORACLES is set"
    );
    eprintln!("{why}");
    None
}

/// A request as a client will send it: method, path with query, headers in order.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, name: &str, value: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
    }

    fn remove(&mut self, name: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }
}

/// Signs a request with the oracle: `spec` is tests/oracles/sign.py's input (mode, method,
/// url, key, secret, …).
fn sign(python: &Path, spec: Value) -> Req {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(python)
        .arg(repo.join("tests/oracles/sign.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sign.py");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(spec.to_string().as_bytes())
        .expect("write spec");
    let out = child.wait_with_output().expect("sign.py");
    assert!(
        out.status.success(),
        "sign.py failed for {spec}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed: Value = serde_json::from_slice(&out.stdout).expect("sign.py output");
    let url = signed["url"].as_str().expect("url");
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (authority, path) = match after_scheme.find('/') {
        Some(at) => after_scheme.split_at(at),
        None => (after_scheme, "/"),
    };
    let mut headers: Vec<(String, String)> = signed["headers"]
        .as_object()
        .expect("headers")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        headers.insert(0, ("host".into(), authority.to_string()));
    }
    Req {
        method: spec["method"].as_str().unwrap_or("GET").to_string(),
        path: path.to_string(),
        headers,
    }
}

/// The spec of a request to `url` signed by `key`/`secret` in `mode`, in us-west-2.
fn spec(mode: &str, method: &str, url: &str, key: &str, secret: &str) -> Value {
    json!({
        "mode": mode, "method": method, "url": url, "key": key, "secret": secret,
        "region": if mode.ends_with("-a") || mode == "sigv4a" { "*" } else { "us-west-2" },
    })
}

/// Sends `req` to Trellis on `port` exactly as given (over HTTP/1.1, or h2c with `h2`).
async fn send_req(client: &Plain, port: u16, req: &Req) -> Answer {
    let mut builder = Request::builder()
        .method(req.method.as_str())
        .uri(format!("http://127.0.0.1:{port}{}", req.path));
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let request = builder.body(Full::new(Bytes::new())).expect("request");
    read(client.request(request).await.expect("request to trellis")).await
}

/// The identities of the tests: a role session with a token, org and tags; a plain user.
fn identities() -> Value {
    json!([
        {"arn": ROLE, "accessKeyId": "AKIAORDERING", "secretAccessKey": "ordering-secret",
         "sessionName": "checkout", "principalOrgID": "o-example123",
         "tags": {"team": "payments"}},
        {"arn": AUDITOR, "accessKeyId": "AKIAAUDITOR", "secretAccessKey": "auditor-secret"},
        {"arn": "arn:aws:iam::123456789012:role/temp", "accessKeyId": "ASIATEMP",
         "secretAccessKey": "temp-secret", "sessionName": "tmp", "sessionToken": "token-1"}
    ])
}

/// "Authenticated only" (the console's template) plus a Deny on every `/admin` path.
fn authenticated_only() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke",
             "Resource": "*",
             "Condition": {"StringNotEqualsIgnoreCase": {"aws:PrincipalType": "anonymous"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke",
             "Resource": "*/admin*"}
        ]
    })
}

/// The service ARN of `service` in a running Trellis, from `trellis services`.
fn service_arn(config: &Path, service: &str) -> String {
    let (code, out, err) = run_cli(
        &["services", "-f", &config.display().to_string()],
        config.parent().expect("dir"),
    );
    assert_eq!(code, 0, "{err}");
    let id = out
        .split_whitespace()
        .find_map(|w| {
            w.strip_prefix(&format!("{service}-"))
                .and_then(|rest| rest.split('.').next())
                .filter(|id| id.starts_with("svc-"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no id of {service} in:\n{out}"));
    format!("arn:aws:vpc-lattice:us-west-2:{ACCOUNT}:service/{id}")
}

/// One service `whoami` with `policy` ("authenticated only" unless given) in front of the
/// hello-wasm function, V2 events.
fn whoami_config(port: u16, policy: Value) -> Config {
    Config::new()
        .set("identities", identities())
        .service(
            Service::new("whoami")
                .iam(Some(policy))
                .access_log("stdout")
                .listener(Listener::http(port).forward("whoami-tg")),
        )
        .target_group(TargetGroup::lambda("whoami-tg", "whoami", "V2"))
        .function(json!({
            "name": "whoami", "runtime": "wasm",
            "code": sample("hello-wasm.wasm").display().to_string(),
        }))
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_callers_get_in_anonymous_ones_are_refused_with_lattices_text() {
    let Some(py) = python("signed_callers_get_in") else {
        return;
    };
    let port = free_port();
    let t = Trellis::start(&whoami_config(port, authenticated_only()).yaml(), &[]);
    let arn = service_arn(&t.config_path(), "whoami");
    let client = http1_client();
    let url = format!("http://whoami.trellis.localhost:{port}/whoami");

    // Anonymous: refused by the service's policy, in Lattice's words.
    let anonymous = get(&client, port, &format!("whoami.trellis.localhost:{port}"), "/whoami").await;
    assert_eq!(anonymous.status, 403, "{}", anonymous.body);
    assert_eq!(
        anonymous.body.trim_end(),
        format!(
            "AccessDeniedException: User: anonymous is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {arn}/whoami because no service-based policy allows the vpc-lattice-svcs:Invoke action"
        )
    );

    // SigV4 (botocore), SigV4A (CRT), both presigned, as the role session.
    for mode in ["sigv4", "sigv4a", "presign", "presign-a"] {
        let req = sign(
            &py,
            spec(mode, "GET", &url, "AKIAORDERING", "ordering-secret"),
        );
        let answer = send_req(&client, port, &req).await;
        assert_eq!(answer.status, 200, "{mode}: {req:?}\n{}", answer.body);
        let identity: Value = serde_json::from_str(answer.body.trim()).expect("identity JSON");
        assert_eq!(identity["type"], "AWS_IAM", "{mode}: {identity}");
        assert_eq!(identity["principal"], SESSION_ARN, "{mode}: {identity}");
        assert_eq!(identity["sessionName"], "checkout", "{mode}: {identity}");
        assert_eq!(identity["principalOrgID"], "o-example123", "{mode}: {identity}");
    }

    // A signed caller is still denied /admin by the explicit Deny.
    let req = sign(
        &py,
        spec("sigv4", "GET", &format!("http://whoami.trellis.localhost:{port}/admin/users"), "AKIAAUDITOR", "auditor-secret"),
    );
    let denied = send_req(&client, port, &req).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(
        denied.body.starts_with(&format!(
            "AccessDeniedException: User: {AUDITOR} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {arn}/admin/users"
        )),
        "{}",
        denied.body
    );
    assert!(denied.body.contains("explicit deny"), "{}", denied.body);

    // The access log names the caller, or says why it was refused.
    t.wait_for_stderr(Duration::from_secs(1), "", |_| true);
    let records: Vec<Value> = t
        .stdout()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let anonymous_record = records
        .iter()
        .find(|r| r["responseCode"] == 403 && r["callerPrincipal"] == "-")
        .unwrap_or_else(|| panic!("no anonymous 403 record:\n{}", t.stdout()));
    assert_eq!(anonymous_record["authDeniedReason"], "Service");
    assert_eq!(anonymous_record["failureReason"], "ClientAccessDenied");
    assert_eq!(anonymous_record["resolvedUser"], "Anonymous");
    let signed_record = records
        .iter()
        .find(|r| r["responseCode"] == 200)
        .unwrap_or_else(|| panic!("no 200 record:\n{}", t.stdout()));
    assert_eq!(signed_record["callerPrincipal"], SESSION_ARN);
    assert_eq!(signed_record["callerPrincipalOrgID"], "o-example123");
    let tags: Value = serde_json::from_str(
        signed_record["callerPrincipalTags"].as_str().expect("tags string"),
    )
    .expect("tags JSON");
    assert_eq!(tags["team"], "payments");
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_aws_sigv4_signs_as_the_default_test_identity() {
    // No `identities`: the key pair test/test signs as user/test.
    let port = free_port();
    let config = Config::new()
        .service(
            Service::new("whoami")
                .iam(Some(authenticated_only()))
                .listener(Listener::http(port).forward("whoami-tg")),
        )
        .target_group(TargetGroup::lambda("whoami-tg", "whoami", "V2"))
        .function(json!({
            "name": "whoami", "runtime": "wasm",
            "code": sample("hello-wasm.wasm").display().to_string(),
        }));
    let _t = Trellis::start(&config.yaml(), &[]);
    let curl = |user: &str| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
            .args(["--aws-sigv4", "aws:amz:us-west-2:vpc-lattice-svcs", "--user", user])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args(["--connect-to", &format!("whoami.trellis.localhost:{port}:127.0.0.1:{port}")])
            .arg(format!("http://whoami.trellis.localhost:{port}/whoami"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let answer = curl("test:test");
    let (body, code) = answer.rsplit_once('\n').expect("status line");
    assert_eq!(code, "200", "{answer}");
    let identity: Value = serde_json::from_str(body.trim()).expect("identity JSON");
    assert_eq!(identity["principal"], format!("arn:aws:iam::{ACCOUNT}:user/test"));
    assert!(identity.get("sessionName").is_none(), "{identity}");

    let answer = curl("test:wrong-secret");
    let (body, code) = answer.rsplit_once('\n').expect("status line");
    assert_eq!(code, "403", "{answer}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
}
