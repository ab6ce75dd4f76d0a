//! Trellis's own SigV4 signer (`trellis_auth::sigv4::sign`, what the console's "send a
//! request" form will sign with) held to botocore's `SigV4Auth` byte for byte, and its
//! requests accepted by `trellis up` over real sockets as the identity that signed them.
//!
//! botocore runs in the Python virtualenv `scripts/pyenv.sh` makes (tests/oracles/sign.py);
//! without it the oracle test says it is skipped and why, unless `TRELLIS_REQUIRE_ORACLES`
//! is set (`make test`), which makes it fail instead.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use trellis_auth::Identity;
use trellis_auth::sigv4::{RequestToSign, sign};

const REGION: &str = "us-west-2";
const ROLE: &str = "arn:aws:iam::123456789012:role/ordering";
const SESSION_ARN: &str = "arn:aws:sts::123456789012:assumed-role/ordering/checkout";
const USER: &str = "arn:aws:iam::123456789012:user/auditor";

fn identity(arn: &str, key: &str, secret: &str, session: Option<(&str, &str)>) -> Identity {
    Identity {
        arn: arn.into(),
        access_key_id: key.into(),
        secret_access_key: secret.into(),
        session_name: session.map(|(name, _)| name.into()),
        session_token: session.map(|(_, token)| token.into()),
        principal_org_id: None,
        tags: Vec::new(),
        policy: None,
    }
}

/// A user with a long-term key, and a role session with temporary credentials.
fn identities() -> [Identity; 2] {
    [
        identity(USER, "AKIAAUDITOR", "auditor-secret/+=", None),
        identity(
            ROLE,
            "ASIAORDERING",
            "ordering-secret",
            Some(("checkout", "FwoGZXIvYXdzEJr//////////wEaDK+token=")),
        ),
    ]
}

/// method, host, path, query, headers.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a [(&'a str, &'a str)],
);

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

#[test]
fn the_signer_matches_botocores_sigv4auth_byte_for_byte() {
    let Some(python) = oracle_python("the_signer_matches_botocore", "botocore.auth", "botocore")
    else {
        return;
    };
    // Fixed inputs: the time, each identity's key, the request. Queries are given in the
    // canonical encoding botocore leaves as sent (it sorts, but does not re-encode).
    let time = "20260102T030405Z";
    let now = UNIX_EPOCH + Duration::from_secs(1_767_323_045);
    let cases: [Case; 6] = [
        ("GET", "svc-0a1b.trellis.localhost", "/", None, &[]),
        (
            "POST",
            "svc-0a1b.trellis.localhost:8080",
            "/orders/42",
            Some("b=2&a=1&a=0&empty=&sp=a%20b"),
            &[
                ("Content-Type", "application/json"),
                ("X-Trace", "  a   b  c "),
                ("User-Agent", "trellis-console"),
            ],
        ),
        (
            "GET",
            "orders.example.com",
            "/a//b/./c/../%7Ed%20e/",
            None,
            &[("Accept", "*/*")],
        ),
        (
            "DELETE",
            "svc.trellis.localhost:443",
            "/items/%C3%A9/x",
            Some("x=%2F&y=~&z=%2B"),
            &[
                ("X-Amz-Meta-Note", "tab\tand  spaces"),
                ("Connection", "close"),
            ],
        ),
        (
            "PUT",
            "svc.trellis.localhost:9000",
            "/!$@:;,*()",
            Some("k="),
            &[("traceparent", "00-abc-def-01"), ("X-Custom", "v")],
        ),
        (
            "PATCH",
            "svc.trellis.localhost",
            "/deep/../../path/",
            Some("token=a%3Db&list=1%2C2"),
            &[],
        ),
    ];
    let mut compared = 0;
    for who in identities() {
        for (method, host, path, query, headers) in cases {
            let url = match query {
                Some(query) => format!("http://{host}{path}?{query}"),
                None => format!("http://{host}{path}"),
            };
            let mut spec = json!({
                "mode": "sigv4", "method": method, "url": url, "region": REGION,
                "key": who.access_key_id, "secret": who.secret_access_key, "time": time,
                "headers": headers.iter().map(|(k, v)| (k.to_string(), json!(v)))
                    .collect::<serde_json::Map<String, Value>>(),
            });
            if let Some(token) = &who.session_token {
                spec["token"] = json!(token);
            }
            let botocore = oracle_sign(&python, &spec);
            let botocore_headers = botocore["headers"].as_object().expect("headers");
            let theirs = |name: &str| {
                botocore_headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str())
            };

            let map = header_map(headers);
            let request = RequestToSign {
                method,
                path,
                query,
                host,
                headers: &map,
            };
            let ours = sign(&who, REGION, &request, now).expect("sign");
            let what = format!("{} {method} {url}", who.access_key_id);
            for name in [
                "authorization",
                "x-amz-date",
                "x-amz-content-sha256",
                "x-amz-security-token",
            ] {
                assert_eq!(
                    ours.get(name).map(|v| v.to_str().expect("ASCII")),
                    theirs(name),
                    "{what}: {name}"
                );
            }
            assert_eq!(ours.len(), botocore_headers.len() - headers.len(), "{what}");
            compared += 1;
        }
    }
    assert_eq!(compared, 12);
    // The oracle is not a rubber stamp: another time, secret or region changes its answer.
    let spec = json!({"mode": "sigv4", "method": "GET", "url": "http://svc.trellis.localhost/",
        "region": REGION, "key": "AKIAAUDITOR", "secret": "auditor-secret/+=", "time": time});
    let mut other_secret = spec.clone();
    other_secret["secret"] = json!("auditor-secret");
    let who = &identities()[0];
    let none = HeaderMap::new();
    let request = RequestToSign {
        method: "GET",
        path: "/",
        query: None,
        host: "svc.trellis.localhost",
        headers: &none,
    };
    let ours = sign(who, REGION, &request, now).expect("sign");
    assert_eq!(
        ours["authorization"],
        oracle_sign(&python, &spec)["headers"]["Authorization"]
            .as_str()
            .expect("signed")
    );
    assert_ne!(
        ours["authorization"],
        oracle_sign(&python, &other_secret)["headers"]["Authorization"]
            .as_str()
            .expect("signed")
    );
}

/// One service `whoami` (any caller allowed, but the service is AWS_IAM, so signatures are
/// verified) in front of the hello-wasm function, which answers with the caller's identity.
fn whoami_config(port: u16) -> Config {
    let allow_all = json!({"Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]});
    Config::new()
        .set(
            "identities",
            json!(
                identities()
                    .iter()
                    .map(|who| {
                        let mut entry = json!({"arn": who.arn, "accessKeyId": who.access_key_id,
                            "secretAccessKey": who.secret_access_key});
                        if let (Some(name), Some(token)) = (&who.session_name, &who.session_token) {
                            entry["sessionName"] = json!(name);
                            entry["sessionToken"] = json!(token);
                        }
                        entry
                    })
                    .collect::<Vec<_>>()
            ),
        )
        .service(
            Service::new("whoami")
                .iam(Some(allow_all))
                .listener(Listener::http(port).forward("whoami-tg")),
        )
        .target_group(TargetGroup::lambda("whoami-tg", "whoami", "V2"))
        .function(json!({
            "name": "whoami", "runtime": "wasm",
            "code": sample("hello-wasm.wasm").display().to_string(),
        }))
}

#[tokio::test(flavor = "multi_thread")]
async fn trellis_accepts_what_the_signer_signs_as_the_identity_that_signed() {
    let port = free_port();
    let _trellis = Trellis::start(&whoami_config(port).yaml(), &[]);
    let host = format!("whoami.trellis.localhost:{port}");
    let extra = header_map(&[("x-request-note", "from  the signer"), ("accept", "*/*")]);
    for (client, protocol) in [(http1_client(), "HTTP/1.1"), (h2c_client(), "h2c")] {
        for (who, principal) in identities().iter().zip([USER, SESSION_ARN]) {
            // The function answers /whoami with the caller's identity; other paths with a
            // greeting (200 all the same: a signature that does not verify is a 403 whatever
            // the policy says).
            for (method, path, query) in [
                ("GET", "/whoami", None),
                ("POST", "/whoami", Some("z=1&a=%2F&e=a+b&flag")),
                ("PUT", "/a//b/./c/../%7Ed", Some("x=caf%C3%A9")),
            ] {
                let request = RequestToSign {
                    method,
                    path,
                    query,
                    host: &host,
                    headers: &extra,
                };
                let added = sign(who, REGION, &request, SystemTime::now()).expect("sign");
                let mut headers: Vec<(&str, &str)> =
                    vec![("x-request-note", "from  the signer"), ("accept", "*/*")];
                headers.extend(
                    added
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.to_str().expect("ASCII"))),
                );
                let target = match query {
                    Some(query) => format!("{path}?{query}"),
                    None => path.to_string(),
                };
                let what = format!("{protocol} {} {method} {target}", who.access_key_id);
                let answer = send(&client, port, &host, method, &target, &headers, "a body").await;
                assert_eq!(answer.status, 200, "{what}: {}", answer.body);
                if path == "/whoami" {
                    let identity: Value = serde_json::from_str(answer.body.trim())
                        .unwrap_or_else(|e| panic!("{what}: {e}: {}", answer.body));
                    assert_eq!(identity["type"], "AWS_IAM", "{what}: {identity}");
                    assert_eq!(identity["principal"], principal, "{what}: {identity}");
                }

                // The same headers on another path: refused, so the 200 above was earned.
                let other = format!("{target}x");
                let refused = send(&client, port, &host, method, &other, &headers, "").await;
                assert_eq!(refused.status, 403, "{what}: {}", refused.body);
                assert!(
                    refused.body.contains("SignatureDoesNotMatch")
                        || refused.body.contains("signature"),
                    "{what}: {}",
                    refused.body
                );
            }
        }
    }
}
