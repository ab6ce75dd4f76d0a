//! What auth costs a request: verifying a SigV4 (and SigV4A) signature with a cached signing
//! key, evaluating a 10-statement auth policy, and both together as the router runs them per
//! request. The signed requests are botocore's and awscrt's, from the verifier's test vectors.
//! Run with `cargo bench -p trellis-auth` or `make bench`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use trellis_auth::policy::{Layer, Policy, Request};
use trellis_auth::sigv4::{SignedRequest, Verifier};
use trellis_auth::{Identity, authorize};

const VECTORS: &str = include_str!("../src/sigv4/testdata/vectors.json");
const SERVICE_ARN: &str =
    "arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0123456789abcdef0";

/// One signed request of the vectors file, ready to verify at its signing time.
struct Signed {
    method: String,
    path: String,
    query: Option<String>,
    host: String,
    headers: HeaderMap,
    now: SystemTime,
}

fn vectors() -> Value {
    serde_json::from_str(VECTORS).expect("vectors.json")
}

fn identities(all: &Value) -> Vec<Identity> {
    all["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .map(|i| Identity {
            arn: i["arn"].as_str().expect("arn").into(),
            access_key_id: i["access_key_id"].as_str().expect("key").into(),
            secret_access_key: i["secret_access_key"].as_str().expect("secret").into(),
            session_name: i["session_name"].as_str().map(Into::into),
            session_token: i["session_token"].as_str().map(Into::into),
            principal_org_id: None,
            tags: Vec::new(),
            policy: None,
        })
        .collect()
}

fn signed(all: &Value, name: &str) -> Signed {
    let v = all["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name:?}"));
    let mut headers = HeaderMap::new();
    for pair in v["headers"].as_array().expect("headers") {
        let name = HeaderName::from_bytes(pair[0].as_str().expect("name").as_bytes())
            .expect("header name");
        let value = HeaderValue::from_str(pair[1].as_str().expect("value")).expect("value");
        headers.append(name, value);
    }
    let now = v["now"].as_str().expect("now");
    Signed {
        method: v["method"].as_str().expect("method").into(),
        path: v["path"].as_str().expect("path").into(),
        query: v["query"].as_str().map(Into::into),
        host: v["host"].as_str().expect("host").into(),
        headers,
        now: parse_amz_date(now),
    }
}

/// `YYYYMMDDTHHMMSSZ` as a time.
fn parse_amz_date(s: &str) -> SystemTime {
    let secs = trellis_auth::sigv4::parse_amz_date(s).expect("an X-Amz-Date");
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("after 1970"))
}

impl Signed {
    fn request(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            host: &self.host,
        }
    }
}

/// Ten statements of the kinds real policies have: principals, paths, methods, a header, a
/// source range, the "authenticated only" condition; the last one allows the benchmarked call.
fn policy() -> Policy {
    let mut statements: Vec<Value> = (0..9)
        .map(|i| {
            json!({
                "Sid": format!("Other{i}"),
                "Effect": if i % 3 == 0 { "Deny" } else { "Allow" },
                "Principal": {"AWS": [format!("arn:aws:iam::{:012}:role/team-{i}", 100_000_000_000u64 + i)]},
                "Action": "vpc-lattice-svcs:Invoke",
                "Resource": format!("{SERVICE_ARN}/team-{i}/*"),
                "Condition": {
                    "StringEquals": {"vpc-lattice-svcs:RequestMethod": ["GET", "POST"]},
                    "StringLike": {"vpc-lattice-svcs:RequestHeader/x-tenant": format!("tenant-{i}-*")},
                    "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
                }
            })
        })
        .collect();
    statements.push(json!({
        "Sid": "AuthenticatedOnly",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "vpc-lattice-svcs:Invoke",
        "Resource": "*",
        "Condition": {"StringNotEqualsIgnoreCase": {"aws:PrincipalType": "anonymous"}}
    }));
    Policy::from_json(&json!({"Version": "2012-10-17", "Statement": statements}))
        .unwrap_or_else(|e| panic!("bench policy: {e:?}"))
}

/// The policy's view of the signed request, as the router builds it.
fn policy_request<'a>(
    caller: Option<&'a trellis_auth::Caller>,
    signed: &'a Signed,
    resource: &'a str,
) -> Request<'a> {
    Request {
        caller,
        action: "vpc-lattice-svcs:Invoke",
        resource,
        port: 443,
        method: &signed.method,
        path: &signed.path,
        headers: &signed.headers,
        query: signed.query.as_deref(),
        service_arn: SERVICE_ARN,
        service_network_arn: None,
        source_vpc: None,
        source_vpc_owner: None,
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        resource_tags: &[],
    }
}

fn bench(c: &mut Criterion) {
    let all = vectors();
    let region = all["region"].as_str().expect("region");
    let verifier = Verifier::new(&identities(&all), region).expect("verifier");
    let sigv4 = signed(&all, "botocore GET, no port");
    let sigv4a = signed(&all, "awscrt SigV4A, region set *");
    let policy = policy();
    // The first verification derives and caches the signing key.
    let caller = verifier
        .verify(&sigv4.request(), sigv4.now)
        .expect("the vector verifies")
        .expect("signed");
    assert!(verifier.verify(&sigv4a.request(), sigv4a.now).is_ok());
    let resource = format!("{SERVICE_ARN}{}", sigv4.path);
    let layers = [(Layer::Service, Some(&policy))];
    assert!(authorize(&layers, &policy_request(Some(&caller), &sigv4, &resource)).is_ok());

    let mut group = c.benchmark_group("auth");
    group.bench_function("verify_sigv4_cached_key", |b| {
        b.iter(|| black_box(verifier.verify(black_box(&sigv4.request()), sigv4.now)))
    });
    group.bench_function("verify_sigv4a", |b| {
        b.iter(|| black_box(verifier.verify(black_box(&sigv4a.request()), sigv4a.now)))
    });
    group.bench_function("authorize_10_statements", |b| {
        b.iter(|| {
            black_box(authorize(
                &layers,
                black_box(&policy_request(Some(&caller), &sigv4, &resource)),
            ))
        })
    });
    group.bench_function("verify_and_authorize", |b| {
        b.iter(|| {
            let caller = verifier
                .verify(black_box(&sigv4.request()), sigv4.now)
                .ok()
                .flatten();
            black_box(authorize(
                &layers,
                &policy_request(caller.as_deref(), &sigv4, &resource),
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
