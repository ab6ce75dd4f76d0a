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
use std::process::Command;
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
    oracle_python(
        test,
        "botocore.auth, botocore.crt.auth, awscrt",
        "botocore and awscrt",
    )
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
    let signed = oracle_sign(python, &spec);
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
    // The signed host goes in the URI too: over HTTP/2 it is the `:authority`, which wins.
    let host = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or("", |(_, v)| v.as_str());
    let mut builder = Request::builder()
        .method(req.method.as_str())
        .uri(uri_for(port, host, &req.path));
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
        .lines()
        .find(|l| l.starts_with(&format!("{service} ")))
        .and_then(|l| l.split(['(', ',']).nth(1))
        .filter(|id| id.starts_with("svc-"))
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
    let anonymous = get(
        &client,
        port,
        &format!("whoami.trellis.localhost:{port}"),
        "/whoami",
    )
    .await;
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
        assert_eq!(
            identity["principalOrgID"], "o-example123",
            "{mode}: {identity}"
        );
    }

    // A signed caller is still denied /admin by the explicit Deny.
    let req = sign(
        &py,
        spec(
            "sigv4",
            "GET",
            &format!("http://whoami.trellis.localhost:{port}/admin/users"),
            "AKIAAUDITOR",
            "auditor-secret",
        ),
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
    // Records are written as the last byte goes out: give the writer a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
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
        signed_record["callerPrincipalTags"]
            .as_str()
            .expect("tags string"),
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
            .args([
                "--aws-sigv4",
                "aws:amz:us-west-2:vpc-lattice-svcs",
                "--user",
                user,
            ])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .args([
                "--connect-to",
                &format!("whoami.trellis.localhost:{port}:127.0.0.1:{port}"),
            ])
            .arg(format!("http://whoami.trellis.localhost:{port}/whoami"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let answer = curl("test:test");
    let (body, code) = answer.rsplit_once('\n').expect("status line");
    assert_eq!(code, "200", "{answer}");
    let identity: Value = serde_json::from_str(body.trim()).expect("identity JSON");
    assert_eq!(
        identity["principal"],
        format!("arn:aws:iam::{ACCOUNT}:user/test")
    );
    assert!(identity.get("sessionName").is_none(), "{identity}");

    let answer = curl("test:wrong-secret");
    let (body, code) = answer.rsplit_once('\n').expect("status line");
    assert_eq!(code, "403", "{answer}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
}

/// What a tampered request is refused with: the reason code in the 403 body.
struct Tamper {
    what: &'static str,
    reason: &'static str,
    req: Req,
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_signatures_are_refused_each_with_its_reason() {
    let Some(py) = python("tampered_signatures_are_refused") else {
        return;
    };
    let port = free_port();
    // Allow everyone: every refusal below is the signature's, not a policy's.
    let allow_all = json!({"Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]});
    let t = Trellis::start(&whoami_config(port, allow_all).yaml(), &[]);
    let client = http1_client();
    let url = format!("http://whoami.trellis.localhost:{port}/whoami");
    let sign_with = |changes: Value| {
        let mut s = spec("sigv4", "GET", &url, "AKIAORDERING", "ordering-secret");
        for (k, v) in changes.as_object().expect("changes") {
            s[k] = v.clone();
        }
        sign(&py, s)
    };
    let good = sign_with(json!({}));
    assert_eq!(send_req(&client, port, &good).await.status, 200, "{good:?}");

    let changed = |what: &'static str, reason: &'static str, edit: &dyn Fn(&mut Req)| {
        let mut req = good.clone();
        edit(&mut req);
        Tamper { what, reason, req }
    };
    let authorization = good.header("authorization").expect("signed").to_string();
    let mut cases = vec![
        changed("method", "SignatureDoesNotMatch", &|r| {
            r.method = "POST".into()
        }),
        changed("path", "SignatureDoesNotMatch", &|r| {
            r.path = "/whoamI".into()
        }),
        changed("query added", "SignatureDoesNotMatch", &|r| {
            r.path = "/whoami?x=1".into()
        }),
        changed("host", "SignatureDoesNotMatch", &|r| {
            r.set("host", &format!("WHOAMI.trellis.localhost:{port}"))
        }),
        changed("x-amz-date", "SignatureDoesNotMatch", &|r| {
            let date = r.header("x-amz-date").expect("date").to_string();
            let bumped = format!(
                "{}{}",
                &date[..date.len() - 2],
                if date.ends_with("0Z") { "1Z" } else { "0Z" }
            );
            r.set("x-amz-date", &bumped)
        }),
        changed("x-amz-date removed", "IncompleteSignature", &|r| {
            r.remove("x-amz-date")
        }),
        changed("content sha256 value", "UnsignedPayloadRequired", &|r| {
            r.set(
                "x-amz-content-sha256",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            )
        }),
        changed("signature", "SignatureDoesNotMatch", &|r| {
            let auth = r.header("authorization").expect("auth").to_string();
            let last = auth.chars().last().expect("hex");
            let flipped = format!(
                "{}{}",
                &auth[..auth.len() - 1],
                if last == '0' { '1' } else { '0' }
            );
            r.set("authorization", &flipped)
        }),
        changed("access key swapped", "SignatureDoesNotMatch", &|r| {
            let auth = r
                .header("authorization")
                .expect("auth")
                .replace("AKIAORDERING", "AKIAAUDITOR");
            r.set("authorization", &auth)
        }),
        changed("duplicated Authorization", "IncompleteSignature", &|r| {
            r.headers
                .push(("authorization".into(), authorization.clone()))
        }),
        changed("garbled Authorization", "IncompleteSignature", &|r| {
            r.set("authorization", "AWS4-HMAC-SHA256 Credential=nonsense")
        }),
        changed("header and query signature", "IncompleteSignature", &|r| {
            r.path = "/whoami?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00".into()
        }),
    ];
    for (what, reason, changes) in [
        (
            "wrong secret",
            "SignatureDoesNotMatch",
            json!({"secret": "not-the-secret"}),
        ),
        (
            "unknown key",
            "InvalidClientTokenId",
            json!({"key": "AKIANOBODY"}),
        ),
        (
            "stale date",
            "RequestExpired",
            json!({"time_offset_seconds": -600}),
        ),
        (
            "future date",
            "RequestExpired",
            json!({"time_offset_seconds": 600}),
        ),
        (
            "no token for temporary credentials",
            "InvalidClientTokenId",
            json!({"key": "ASIATEMP", "secret": "temp-secret"}),
        ),
        (
            "wrong token",
            "InvalidClientTokenId",
            json!({"key": "ASIATEMP", "secret": "temp-secret", "token": "token-2"}),
        ),
        (
            "token replayed on a long-term key",
            "InvalidClientTokenId",
            json!({"token": "token-1"}),
        ),
        (
            "payload hash instead of UNSIGNED-PAYLOAD",
            "UnsignedPayloadRequired",
            json!({"payload": "hash", "body": ""}),
        ),
        (
            "region",
            "SignatureDoesNotMatch",
            json!({"region": "us-east-1"}),
        ),
        (
            "service",
            "SignatureDoesNotMatch",
            json!({"service": "vpc-lattice"}),
        ),
        (
            "SigV4A region set without the region",
            "SignatureDoesNotMatch",
            json!({"mode": "sigv4a", "region": "eu-west-1"}),
        ),
        (
            "presigned URL expired",
            "RequestExpired",
            json!({"mode": "presign", "expires": 1, "time_offset_seconds": -10}),
        ),
    ] {
        cases.push(Tamper {
            what,
            reason,
            req: sign_with(changes),
        });
    }
    let mut presigned = sign_with(json!({"mode": "presign"}));
    presigned.path = presigned
        .path
        .replace("X-Amz-Expires=3600", "X-Amz-Expires=3601");
    cases.push(Tamper {
        what: "presigned expiry changed",
        reason: "SignatureDoesNotMatch",
        req: presigned,
    });
    let mut extra = sign_with(
        json!({"headers": {"x-custom": "signed", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}}),
    );
    extra.remove("x-custom");
    cases.push(Tamper {
        what: "signed header dropped",
        reason: "SignatureDoesNotMatch",
        req: extra,
    });

    assert!(cases.len() >= 20, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for case in &cases {
        let answer = send_req(&client, port, &case.req).await;
        if answer.status != 403 || !answer.body.contains(case.reason) {
            wrong.push(format!(
                "{}: expected 403 {}, got {} {}\n  {:?}",
                case.what,
                case.reason,
                answer.status,
                answer.body.trim(),
                case.req
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The access log: each refusal is `ClientAccessDenied`, with no `authDeniedReason` (no
    // policy refused it: that field names the Identity, Network or Service layer) and no
    // `callerPrincipal` (nobody was authenticated), written "-" as Lattice writes empty values.
    let refused = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .filter(|r| r["responseCode"] == 403)
            .cloned()
            .collect()
    };
    let records = log_records(&t, |r| refused(r).len() >= cases.len()).await;
    let refused = refused(&records);
    assert_eq!(refused.len(), cases.len(), "{}", t.stdout());
    for record in &refused {
        assert_eq!(record["failureReason"], "ClientAccessDenied", "{record}");
        assert_eq!(record["authDeniedReason"], "-", "{record}");
        assert_eq!(record["callerPrincipal"], "-", "{record}");
        assert_eq!(record["callerPrincipalTags"], "-", "{record}");
    }

    // Every refusal was counted, by layer.
    let metrics = reqwest_metrics(&t).await;
    let counted = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("trellis_auth_denied_total{service=\"whoami\",layer=\"signature\"} ")
        })
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no signature denials in:\n{metrics}"));
    assert_eq!(counted as usize, cases.len(), "{metrics}");
}

/// The access-log records on `t`'s stdout, once `enough` holds of them or 10 s have passed
/// (a record is written as the last byte of its response goes out).
async fn log_records(t: &Trellis, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let records: Vec<Value> = t
            .stdout()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if enough(&records) || std::time::Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The admin port's `/metrics` text.
async fn reqwest_metrics(t: &Trellis) -> String {
    let url = t.metrics_url();
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("authority")
        .to_string();
    let port: u16 = authority
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("admin port");
    get(&http1_client(), port, "127.0.0.1", "/metrics")
        .await
        .body
}

#[tokio::test(flavor = "multi_thread")]
async fn network_and_service_policies_both_decide_and_targets_get_the_identity() {
    let Some(py) = python("network_and_service_policies") else {
        return;
    };
    let backend = Backend::start("api-backend").await;
    let (api_port, plain_port) = (free_port(), free_port());
    let network_policy = json!({"Statement": [{"Effect": "Allow",
        "Principal": {"AWS": [ROLE]}, "Action": "vpc-lattice-svcs:*", "Resource": "*"}]});
    let service_policy = json!({"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
         "Condition": {"StringEquals": {"vpc-lattice-svcs:RequestMethod": "GET"}}},
        {"Effect": "Deny", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke",
         "Resource": "*/admin*"}]});
    let config = Config::new()
        .set("identities", identities())
        // The first VPC whose block holds the address is the client's: 127.0.0.2 is plain-vpc.
        .vpc("plain-vpc", &["127.0.0.2/32"])
        .vpc("api-vpc", &["127.0.0.0/8"])
        .network(Network::new("api-net", &["api"], &["api-vpc"]).iam(Some(network_policy)))
        .network(Network::new("plain-net", &["plain"], &["plain-vpc"]))
        .service(
            Service::new("api")
                .iam(Some(service_policy))
                .listener(Listener::http(api_port).forward("backend-tg")),
        )
        .service(Service::new("plain").listener(Listener::http(plain_port).forward("plain-tg")))
        .target_group(TargetGroup::instance("backend-tg", &[backend.port]).no_health_checks())
        .target_group(TargetGroup::instance("plain-tg", &[backend.port]).no_health_checks());
    let t = Trellis::start(&config.yaml(), &[]);
    let arn = service_arn(&t.config_path(), "api");
    let client = http1_client();
    let api = |path: &str| format!("http://api.trellis.localhost:{api_port}{path}");

    // The network allows only the role (and so its sessions): the auditor is refused there.
    let req = sign(
        &py,
        spec(
            "sigv4",
            "GET",
            &api("/orders"),
            "AKIAAUDITOR",
            "auditor-secret",
        ),
    );
    let answer = send_req(&client, api_port, &req).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(
        answer.body.trim_end(),
        format!(
            "AccessDeniedException: User: {AUDITOR} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {arn}/orders because no network-based policy allows the vpc-lattice-svcs:Invoke action"
        )
    );

    // The role session passes both; the target learns who called, and a client cannot claim it.
    let mut req = sign(
        &py,
        spec(
            "sigv4",
            "GET",
            &api("/orders?id=7"),
            "AKIAORDERING",
            "ordering-secret",
        ),
    );
    req.headers.push((
        "x-amzn-lattice-identity".into(),
        "Principal=arn:aws:iam::999999999999:root".into(),
    ));
    let answer = send_req(&client, api_port, &req).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let seen = backend.last_seen();
    assert_eq!(
        seen.headers["x-amzn-lattice-identity"],
        format!(
            "Principal={SESSION_ARN};PrincipalOrgID=o-example123;PrincipalOrgPath=;SessionName=checkout;Type=AWS_IAM"
        )
    );
    assert_eq!(
        seen.headers
            .get_all("x-amzn-lattice-identity")
            .iter()
            .count(),
        1
    );
    assert_eq!(
        seen.headers["x-amzn-lattice-identity-tags"],
        format!(
            "principal={SESSION_ARN};principalorgid=o-example123;principalorgpath=;team=payments"
        )
    );

    // The service's condition: only GET.
    let req = sign(
        &py,
        spec(
            "sigv4",
            "POST",
            &api("/orders"),
            "AKIAORDERING",
            "ordering-secret",
        ),
    );
    let answer = send_req(&client, api_port, &req).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(
        answer
            .body
            .contains("because no service-based policy allows"),
        "{}",
        answer.body
    );

    // Every spelling of /admin meets the service's Deny: the policy sees the normalised path.
    for path in [
        "/admin",
        "/%61dmin",
        "//admin",
        "/./admin",
        "/x/../admin",
        "/%2e%2e/admin",
    ] {
        let req = sign(
            &py,
            spec(
                "sigv4",
                "GET",
                &api(path),
                "AKIAORDERING",
                "ordering-secret",
            ),
        );
        let answer = send_req(&client, api_port, &req).await;
        assert_eq!(answer.status, 403, "{path}: {}", answer.body);
        assert!(
            answer.body.contains(&format!("on resource: {arn}/admin "))
                && answer.body.contains("explicit deny"),
            "{path}: {}",
            answer.body
        );
    }

    // gRPC callers get gRPC statuses: PERMISSION_DENIED for a policy, UNAUTHENTICATED for a
    // bad signature.
    let h2 = h2c_client();
    let mut grpc = Req {
        method: "POST".into(),
        path: "/pkg.Orders/Get".into(),
        headers: vec![
            ("host".into(), format!("api.trellis.localhost:{api_port}")),
            ("content-type".into(), "application/grpc".into()),
            ("te".into(), "trailers".into()),
        ],
    };
    let answer = send_req(&h2, api_port, &grpc).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.headers["grpc-status"], "7", "{:?}", answer.headers);
    grpc.headers.push(("authorization".into(), "AWS4-HMAC-SHA256 Credential=AKIAORDERING/20260101/us-west-2/vpc-lattice-svcs/aws4_request, SignedHeaders=host, Signature=00".into()));
    let answer = send_req(&h2, api_port, &grpc).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.headers["grpc-status"], "16", "{:?}", answer.headers);

    // A signed request over HTTP/2 verifies as over HTTP/1.1.
    let req = sign(
        &py,
        spec(
            "sigv4a",
            "GET",
            &api("/h2"),
            "AKIAORDERING",
            "ordering-secret",
        ),
    );
    let answer = send_req(&h2, api_port, &req).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.version, hyper::Version::HTTP_2);

    // A service without auth still refuses a signature that does not verify (Lattice
    // authenticates every signed request), and passes on the identity of one that does.
    let from_plain = client_from(lo(2));
    let plain = format!("http://plain.trellis.localhost:{plain_port}/p");
    let req = sign(
        &py,
        spec("sigv4", "GET", &plain, "AKIAAUDITOR", "wrong-secret"),
    );
    let answer = send_req(&from_plain, plain_port, &req).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(
        answer.body.contains("SignatureDoesNotMatch"),
        "{}",
        answer.body
    );
    let req = sign(
        &py,
        spec("sigv4", "GET", &plain, "AKIAAUDITOR", "auditor-secret"),
    );
    let answer = send_req(&from_plain, plain_port, &req).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        backend.last_seen().headers["x-amzn-lattice-identity"]
            .to_str()
            .unwrap()
            .starts_with(&format!("Principal={AUDITOR};")),
    );
    let anonymous = get(
        &from_plain,
        plain_port,
        &format!("plain.trellis.localhost:{plain_port}"),
        "/p",
    )
    .await;
    assert_eq!(anonymous.status, 200, "{}", anonymous.body);
    assert!(
        backend
            .last_seen()
            .headers
            .get("x-amzn-lattice-identity")
            .is_none()
    );

    // Refusals are counted by layer.
    let metrics = reqwest_metrics(&t).await;
    for (layer, at_least) in [("network", 1.0), ("service", 7.0), ("signature", 1.0)] {
        let series = format!("trellis_auth_denied_total{{service=\"api\",layer=\"{layer}\"}} ");
        let value: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"));
        assert!(value >= at_least, "{series}{value}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_v1_events_carry_the_identity_headers() {
    let Some(py) = python("lambda_v1_events_carry_the_identity_headers") else {
        return;
    };
    let port = free_port();
    let config = Config::new()
        .set("identities", identities())
        .service(Service::new("v1svc").listener(Listener::http(port).forward("v1-tg")))
        .target_group(TargetGroup::lambda("v1-tg", "whoami", "V1"))
        .function(json!({
            "name": "whoami", "runtime": "wasm",
            "code": sample("hello-wasm.wasm").display().to_string(),
        }));
    let _t = Trellis::start(&config.yaml(), &[]);
    let req = sign(
        &py,
        spec(
            "sigv4",
            "GET",
            &format!("http://v1svc.trellis.localhost:{port}/whoami"),
            "AKIAORDERING",
            "ordering-secret",
        ),
    );
    let answer = send_req(&http1_client(), port, &req).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let identity: Value = serde_json::from_str(answer.body.trim()).expect("JSON");
    assert!(
        identity["x-amzn-lattice-identity"]
            .as_str()
            .is_some_and(|h| h.starts_with(&format!("Principal={SESSION_ARN};"))),
        "{identity}"
    );

    // The whole V1 event: both identity headers, in the documented formats (LATTICE.md §5.6).
    let req = sign(
        &py,
        spec(
            "sigv4",
            "GET",
            &format!("http://v1svc.trellis.localhost:{port}/event"),
            "AKIAORDERING",
            "ordering-secret",
        ),
    );
    let answer = send_req(&http1_client(), port, &req).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let event: Value = serde_json::from_str(answer.body.trim()).expect("event JSON");
    let headers = &event["headers"];
    assert_eq!(
        headers["x-amzn-lattice-identity"],
        format!(
            "Principal={SESSION_ARN};PrincipalOrgID=o-example123;PrincipalOrgPath=;SessionName=checkout;Type=AWS_IAM"
        ),
        "{event}"
    );
    assert_eq!(
        headers["x-amzn-lattice-identity-tags"],
        format!(
            "principal={SESSION_ARN};principalorgid=o-example123;principalorgpath=;team=payments"
        ),
        "{event}"
    );
}

/// examples/auth.yaml with the README's curl lines (on a free port): anonymous is refused,
/// the role session gets in and sees itself.
#[test]
fn the_auth_example_answers_the_readme_curl_lines() {
    let port = free_port();
    let _t = Trellis::start(&auth_example(port), &[]);
    let url = format!("http://whoami.trellis.localhost:{port}/whoami");
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
            .args(args)
            .arg(&url)
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text
            .rsplit_once('\n')
            .map(|(b, c)| (b.to_string(), c.to_string()))
            .unwrap_or_default();
        (code, body)
    };
    let (code, body) = curl(&[]);
    assert_eq!(code, "403", "{body}");
    assert!(
        body.starts_with("AccessDeniedException: User: anonymous"),
        "{body}"
    );
    let (code, body) = curl(&[
        "--aws-sigv4",
        "aws:amz:us-west-2:vpc-lattice-svcs",
        "--user",
        "AKIAORDERING:ordering-secret",
        "-H",
        "x-amz-content-sha256: UNSIGNED-PAYLOAD",
    ]);
    assert_eq!(code, "200", "{body}");
    let identity: Value = serde_json::from_str(body.trim()).expect("identity JSON");
    assert_eq!(identity["principal"], SESSION_ARN, "{identity}");
    assert_eq!(identity["type"], "AWS_IAM", "{identity}");
    // The auditor's identity policy allows it GET and HEAD only.
    let auditor = [
        "--aws-sigv4",
        "aws:amz:us-west-2:vpc-lattice-svcs",
        "--user",
        "AKIAAUDITOR:auditor-secret",
        "-H",
        "x-amz-content-sha256: UNSIGNED-PAYLOAD",
    ];
    let (code, body) = curl(&auditor);
    assert_eq!(code, "200", "{body}");
    let (code, body) = curl(&[&auditor[..], &["-X", "POST"]].concat());
    assert_eq!(code, "403", "{body}");
    assert!(
        body.starts_with(&format!("AccessDeniedException: User: {AUDITOR} "))
            && body.contains("because no identity-based policy allows"),
        "{body}"
    );
}

/// A signed GET of `path` on service `svc` (on `port`), signed by botocore as `key`/`secret`.
async fn signed_get(
    py: &Path,
    port: u16,
    svc: &str,
    path: &str,
    key: &str,
    secret: &str,
) -> Answer {
    let url = format!("http://{svc}.trellis.localhost:{port}{path}");
    let req = sign(py, spec("sigv4", "GET", &url, key, secret));
    send_req(&http1_client(), port, &req).await
}

/// `aws:ResourceTag/<key>` sees the service's tags, whichever door they came through: `tags` on
/// a service in the file, and TagResource / UntagResource (boto3) on a service the API made,
/// in force as soon as the call answers.
#[tokio::test(flavor = "multi_thread")]
async fn resource_tags_from_the_file_and_the_api_reach_the_policy() {
    let test = "resource_tags_from_the_file_and_the_api_reach_the_policy";
    let (Some(py), Some(api_py)) = (python(test), api_oracles(test)) else {
        return;
    };
    let port = free_port();
    // Everyone may invoke, except a service tagged env=prod.
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"},
        {"Effect": "Deny", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/env": "prod"}}}]});
    let service = |name: &str, tags: Value| {
        Service::new(name)
            .tags(tags)
            .iam(Some(policy.clone()))
            .listener(Listener::http(port).action(fixed_response(204)))
    };
    let config = Config::new()
        .set("identities", identities())
        .service(service(
            "prod-svc",
            json!({"env": "prod", "team": "payments"}),
        ))
        .service(service("dev-svc", json!({"env": "dev"})));
    let t = Trellis::start(&config.yaml(), &[]);
    let call =
        |svc: &'static str| signed_get(&py, port, svc, "/orders", "AKIAAUDITOR", "auditor-secret");
    let denied_text = |arn: &str| {
        format!(
            "AccessDeniedException: User: {AUDITOR} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {arn}/orders with an explicit deny in a service-based policy"
        )
    };

    // The file's tags.
    let prod = call("prod-svc").await;
    assert_eq!(prod.status, 403, "{}", prod.body);
    let prod_arn = service_arn(&t.config_path(), "prod-svc");
    assert_eq!(prod.body.trim_end(), denied_text(&prod_arn));
    let dev = call("dev-svc").await;
    assert_eq!(dev.status, 204, "{}", dev.body);

    // The API's: a service made by the API has none, then env=prod, then none again.
    let endpoint = format!("http://{}", t.admin_addr());
    let api = |args: &[&str]| -> Value {
        let mut all = vec![args[0], endpoint.as_str(), "us-west-2"];
        all.extend(&args[1..]);
        let ran = run_oracle(&api_py, "api_tags.py", &all, Duration::from_secs(60));
        assert_eq!(
            ran.code,
            Some(0),
            "api_tags.py {all:?}:\n{}\n{}\n--- trellis:\n{}",
            ran.stdout,
            ran.stderr,
            t.stderr()
        );
        serde_json::from_str(ran.stdout.lines().last().unwrap_or_default()).expect("summary")
    };
    let port_text = port.to_string();
    let created = api(&["create", "api-svc", &port_text, &policy.to_string()]);
    let api_arn = created["arn"].as_str().expect("arn").to_string();
    assert_eq!(created["tags"], json!({}));
    assert_eq!(call("api-svc").await.status, 204);

    let tagged = api(&["tag", &api_arn, "env", "prod"]);
    assert_eq!(tagged["tags"], json!({"env": "prod"}));
    let refused = call("api-svc").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body.trim_end(), denied_text(&api_arn));

    let untagged = api(&["untag", &api_arn, "env"]);
    assert_eq!(untagged["tags"], json!({}));
    assert_eq!(call("api-svc").await.status, 204);

    // The API lists a file service's tags as the file gives them.
    let listed = api(&["list", &prod_arn]);
    assert_eq!(listed["tags"], json!({"env": "prod", "team": "payments"}));
}

const READER: &str = "arn:aws:iam::123456789012:user/reader";
const CONNECTOR: &str = "arn:aws:iam::123456789012:user/connector";

/// Identity-based policies (LATTICE.md §5.1 step 1): an identity with a `policy` must be
/// allowed by it on `AWS_IAM` services, even where the service's policy allows everyone; an
/// explicit Deny in it wins over the service's Allow. An identity without one may invoke, and
/// a service with `authType: NONE` asks nobody's policy. (That the identity's policy is asked
/// before the network's and the service's is in the evaluator's table, auth/src/policy/tests.)
#[tokio::test(flavor = "multi_thread")]
async fn identity_policies_allow_and_deny_even_where_the_service_allows() {
    let Some(py) = python("identity_policies_allow_and_deny_even_where_the_service_allows") else {
        return;
    };
    let port = free_port();
    let identities = json!([
        // A YAML mapping: Invoke anywhere but /admin.
        {"arn": READER, "accessKeyId": "AKIAREADER", "secretAccessKey": "reader-secret",
         "policy": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"},
            {"Effect": "Deny", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*/admin*"}]}},
        // A JSON string: Connect only, so no Invoke at all.
        {"arn": CONNECTOR, "accessKeyId": "AKIACONNECT", "secretAccessKey": "connect-secret",
         "policy": r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"vpc-lattice-svcs:Connect","Resource":"*"}}"#},
        // No policy.
        {"arn": AUDITOR, "accessKeyId": "AKIAAUDITOR", "secretAccessKey": "auditor-secret"}
    ]);
    let allow_all = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]});
    let config = Config::new()
        .set("identities", identities)
        .service(
            Service::new("orders")
                .iam(Some(allow_all))
                .access_log("stdout")
                .listener(Listener::http(port).action(fixed_response(204))),
        )
        .service(Service::new("open").listener(Listener::http(port).action(fixed_response(204))));
    let t = Trellis::start(&config.yaml(), &[]);
    let arn = service_arn(&t.config_path(), "orders");
    let call = |svc: &'static str, path: &'static str, key: &'static str, secret: &'static str| {
        signed_get(&py, port, svc, path, key, secret)
    };

    let allowed = call("orders", "/orders", "AKIAREADER", "reader-secret").await;
    assert_eq!(allowed.status, 204, "{}", allowed.body);

    // The explicit Deny on a path.
    let denied = call("orders", "/admin/users", "AKIAREADER", "reader-secret").await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(
        denied.body.trim_end(),
        format!(
            "AccessDeniedException: User: {READER} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {arn}/admin/users with an explicit deny in an identity-based policy"
        )
    );

    // No statement allows Invoke: Lattice's identity-based text.
    let denied = call("orders", "/orders", "AKIACONNECT", "connect-secret").await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(
        denied.body.trim_end(),
        format!(
            "AccessDeniedException: User: {CONNECTOR} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {arn}/orders because no identity-based policy allows the vpc-lattice-svcs:Invoke action"
        )
    );

    // No policy: as before identity policies, the identity may invoke; so may anonymous
    // callers (nobody's identity policy to ask); and a NONE service asks no policy at all.
    let free = call("orders", "/orders", "AKIAAUDITOR", "auditor-secret").await;
    assert_eq!(free.status, 204, "{}", free.body);
    let anonymous = get(
        &http1_client(),
        port,
        &format!("orders.trellis.localhost:{port}"),
        "/orders",
    )
    .await;
    assert_eq!(anonymous.status, 204, "{}", anonymous.body);
    let open = call("open", "/orders", "AKIACONNECT", "connect-secret").await;
    assert_eq!(open.status, 204, "{}", open.body);

    // The access log names the layer and the caller; /metrics counts the layer.
    let records = log_records(&t, |r| {
        r.iter().filter(|r| r["responseCode"] == 403).count() >= 2
    })
    .await;
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r["responseCode"] == 403)
        .collect();
    assert_eq!(refused.len(), 2, "{}", t.stdout());
    for (record, caller) in refused.iter().zip([READER, CONNECTOR]) {
        assert_eq!(record["authDeniedReason"], "Identity", "{record}");
        assert_eq!(record["failureReason"], "ClientAccessDenied", "{record}");
        assert_eq!(record["callerPrincipal"], caller, "{record}");
    }
    let metrics = reqwest_metrics(&t).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "trellis_auth_denied_total{service=\"orders\",layer=\"identity\"} 2"),
        "{metrics}"
    );
}

/// A gRPC call signed as LATTICE.md §5.2 says (`POST https://authority/<pkg.Service>/<Method>`,
/// the authority without its port, the same headers as metadata) by botocore, sent over h2c
/// with `content-type: application/grpc`: it passes a policy that wants POST from a signed
/// caller and reaches the target with the caller's identity; the same call with its path
/// changed after signing is UNAUTHENTICATED (grpc-status 16).
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_grpc_call_passes_and_a_tampered_one_is_unauthenticated() {
    let Some(py) = python("a_signed_grpc_call_passes_and_a_tampered_one_is_unauthenticated") else {
        return;
    };
    let backend = Backend::start("grpc-backend").await;
    let port = free_port();
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
        "Condition": {
            "StringEquals": {"vpc-lattice-svcs:RequestMethod": "POST"},
            "StringNotEqualsIgnoreCase": {"aws:PrincipalType": "anonymous"}}}]});
    let config = Config::new()
        .set("identities", identities())
        .service(
            Service::new("orders")
                .iam(Some(policy))
                .listener(Listener::http(port).forward("grpc-tg")),
        )
        .target_group(
            TargetGroup::ip("grpc-tg", &[backend.port])
                .config("protocolVersion", "GRPC")
                .no_health_checks(),
        );
    let t = Trellis::start(&config.yaml(), &[]);
    let arn = service_arn(&t.config_path(), "orders");

    let signed = sign(
        &py,
        json!({"mode": "sigv4", "method": "POST",
               "url": "http://orders.trellis.localhost/pkg.Orders/Get",
               "headers": {"content-type": "application/grpc"},
               "key": "AKIAORDERING", "secret": "ordering-secret", "region": "us-west-2"}),
    );
    assert_eq!(signed.header("host"), Some("orders.trellis.localhost"));
    let answer = grpc_call(port, &signed).await;
    assert_eq!(answer.status, 200, "{answer:?}\n{}", t.stderr());
    let seen = backend.last_seen();
    let uri: hyper::Uri = seen.uri.parse().expect("uri");
    assert_eq!(
        (seen.method.as_str(), uri.path()),
        ("POST", "/pkg.Orders/Get")
    );
    assert_eq!(seen.version, hyper::Version::HTTP_2);
    assert_eq!(seen.headers["content-type"], "application/grpc");
    assert!(
        seen.headers["x-amzn-lattice-identity"]
            .to_str()
            .unwrap()
            .starts_with(&format!("Principal={SESSION_ARN};")),
        "{:?}",
        seen.headers
    );

    // The path is signed: changed after signing, the call is UNAUTHENTICATED.
    let mut tampered = signed.clone();
    tampered.path = "/pkg.Orders/Delete".into();
    let answer = grpc_call(port, &tampered).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(answer.headers["grpc-status"], "16", "{answer:?}");
    assert_eq!(backend.hits.load(std::sync::atomic::Ordering::Relaxed), 1);

    // The policy decides the rest: unsigned, PERMISSION_DENIED; the same caller with GET
    // (not gRPC) is refused by the RequestMethod condition.
    let mut unsigned = signed.clone();
    unsigned.remove("authorization");
    let answer = grpc_call(port, &unsigned).await;
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(answer.headers["grpc-status"], "7", "{answer:?}");
    let get = signed_get(
        &py,
        port,
        "orders",
        "/pkg.Orders/Get",
        "AKIAORDERING",
        "ordering-secret",
    )
    .await;
    assert_eq!(get.status, 403, "{}", get.body);
    assert_eq!(
        get.body.trim_end(),
        format!(
            "AccessDeniedException: User: {SESSION_ARN} is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {arn}/pkg.Orders/Get because no service-based policy allows the vpc-lattice-svcs:Invoke action"
        )
    );
    assert_eq!(backend.hits.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// Sends `req` as a gRPC call over a fresh h2c connection to `port`: `:authority` is its `host`
/// exactly (no port added, as a gRPC client that signed without it sends it), the other
/// headers as they are, plus `te: trailers` and one empty gRPC message.
async fn grpc_call(port: u16, req: &Req) -> Answer {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    let host = req.header("host").expect("a host");
    let mut builder = Request::builder()
        .method(req.method.as_str())
        .uri(format!("http://{host}{}", req.path))
        .header("te", "trailers");
    for (k, v) in req
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
    {
        builder = builder.header(k.as_str(), v.as_str());
    }
    // A gRPC message frame: not compressed, length 0.
    let body = Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]));
    let response = sender
        .send_request(builder.body(body).expect("request"))
        .await
        .expect("h2 request");
    read(response).await
}
