//! The verifier against requests signed by AWS's own signers (botocore, awscrt, curl; see
//! `testdata/gen_vectors.py`), each signed part tampered with after signing, and garbage.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::*;
use crate::test_rng::Rng;

const VECTORS: &str = include_str!("testdata/vectors.json");

fn fixtures() -> Value {
    serde_json::from_str(VECTORS).expect("vectors.json parses")
}

fn identities(fixtures: &Value) -> Vec<Identity> {
    fixtures["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| Identity {
            arn: id["arn"].as_str().unwrap().to_string(),
            access_key_id: id["access_key_id"].as_str().unwrap().to_string(),
            secret_access_key: id["secret_access_key"].as_str().unwrap().to_string(),
            session_name: id["session_name"].as_str().map(str::to_string),
            session_token: id["session_token"].as_str().map(str::to_string),
            principal_org_id: None,
            tags: Vec::new(),
            policy: None,
        })
        .collect()
}

fn verifier() -> Verifier {
    let fixtures = fixtures();
    Verifier::new(&identities(&fixtures), fixtures["region"].as_str().unwrap()).unwrap()
}

/// An owned request, easy to tamper with.
#[derive(Clone, Debug)]
struct Req {
    name: String,
    now: SystemTime,
    method: String,
    path: String,
    query: Option<String>,
    host: String,
    headers: Vec<(String, String)>,
    expect: String,
}

impl Req {
    fn from_json(v: &Value) -> Req {
        let now = time::parse_amz_date(v["now"].as_str().unwrap()).unwrap();
        Req {
            name: v["name"].as_str().unwrap().to_string(),
            now: UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap()),
            method: v["method"].as_str().unwrap().to_string(),
            path: v["path"].as_str().unwrap().to_string(),
            query: v["query"].as_str().map(str::to_string),
            host: v["host"].as_str().unwrap().to_string(),
            headers: v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| {
                    (
                        pair[0].as_str().unwrap().to_string(),
                        pair[1].as_str().unwrap().to_string(),
                    )
                })
                .collect(),
            expect: v["expect"].as_str().unwrap().to_string(),
        }
    }

    fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn verify_with(
        &self,
        verifier: &Verifier,
    ) -> Result<Option<std::sync::Arc<Caller>>, SignatureError> {
        let headers = self.header_map();
        verifier.verify(
            &SignedRequest {
                method: &self.method,
                path: &self.path,
                query: self.query.as_deref(),
                headers: &headers,
                host: &self.host,
            },
            self.now,
        )
    }

    fn verify(&self) -> Result<Option<std::sync::Arc<Caller>>, SignatureError> {
        self.verify_with(&verifier())
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{}: no {name} header", self.name))
    }

    fn set_header(&mut self, name: &str, value: &str) -> &mut Self {
        let slot = self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap_or_else(|| panic!("{}: no {name} header", self.name));
        slot.1 = value.to_string();
        self
    }

    fn remove_header(&mut self, name: &str) -> &mut Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn add_header(&mut self, name: &str, value: &str) -> &mut Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn edit_authorization(&mut self, from: &str, to: &str) -> &mut Self {
        let auth = self.header("authorization").to_string();
        assert!(auth.contains(from), "{}: {from:?} not in {auth}", self.name);
        self.set_header("authorization", &auth.replacen(from, to, 1))
    }

    fn edit_query(&mut self, from: &str, to: &str) -> &mut Self {
        let query = self.query.clone().unwrap();
        assert!(
            query.contains(from),
            "{}: {from:?} not in {query}",
            self.name
        );
        self.query = Some(query.replacen(from, to, 1));
        self
    }

    fn shift_now(&mut self, secs: i64) -> &mut Self {
        self.now = if secs >= 0 {
            self.now + Duration::from_secs(secs.unsigned_abs())
        } else {
            self.now - Duration::from_secs(secs.unsigned_abs())
        };
        self
    }
}

fn all_vectors() -> Vec<Req> {
    fixtures()["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(Req::from_json)
        .collect()
}

fn vector(name: &str) -> Req {
    all_vectors()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vector named {name:?}"))
}

/// The variant (and, for unit-like payloads, its argument) of an outcome, e.g. `Expired`,
/// `ContentSha256Required(PayloadHash)`, `ok`.
fn outcome(result: &Result<Option<std::sync::Arc<Caller>>, SignatureError>) -> String {
    match result {
        Ok(Some(_)) => "ok".to_string(),
        Ok(None) => "anonymous".to_string(),
        Err(e) => format!("{e:?}"),
    }
}

#[track_caller]
fn assert_outcome(req: &Req, expected: &str) {
    let result = req.verify();
    let got = outcome(&result);
    assert!(
        got.starts_with(expected),
        "{}: expected {expected}, got {got}",
        req.name
    );
    if let Err(e) = &result {
        // Every refusal has a code and a sentence.
        assert!(!e.reason().is_empty() && !e.to_string().is_empty());
    }
}

#[test]
fn every_oracle_vector_gets_its_expected_answer() {
    let vectors = all_vectors();
    assert!(vectors.len() >= 30, "{}", vectors.len());
    let verifier = verifier();
    for req in &vectors {
        let got = outcome(&req.verify_with(&verifier));
        assert!(
            got.starts_with(&req.expect),
            "{} ({}): expected {}, got {got}",
            req.name,
            vectors.len(),
            req.expect
        );
    }
    // Every source and both algorithms, both placements, are represented among the passes.
    for needle in [
        "botocore GET",
        "botocore presigned",
        "awscrt SigV4A, region",
        "awscrt SigV4A presigned",
        "curl GET",
    ] {
        assert!(
            vectors
                .iter()
                .any(|v| v.name.starts_with(needle) && v.expect == "ok"),
            "{needle}"
        );
    }
}

#[test]
fn verified_callers_are_the_identities_principals() {
    let caller = vector("botocore GET, no port").verify().unwrap().unwrap();
    assert_eq!(caller.arn, "arn:aws:iam::123456789012:user/alice");
    let caller = vector("awscrt SigV4A, temporary credentials")
        .verify()
        .unwrap()
        .unwrap();
    assert_eq!(
        caller.arn,
        "arn:aws:sts::123456789012:assumed-role/ordering/checkout"
    );
    let caller = vector("curl GET (default test/test key)")
        .verify()
        .unwrap()
        .unwrap();
    assert_eq!(caller.arn, "arn:aws:iam::123456789012:user/test");
}

#[test]
fn requests_without_a_signature_are_anonymous() {
    let mut req = vector("botocore GET, no port");
    req.remove_header("authorization");
    assert_outcome(&req, "anonymous");
    req.add_header("Authorization", "Bearer abc.def");
    assert_outcome(&req, "anonymous");
    req.query = Some("X-Amz-Date=20260102T030405Z&a=1".into());
    assert_outcome(&req, "anonymous");
    // Two non-AWS Authorization headers are the service's business, not ours.
    req.add_header("Authorization", "Basic Zm9vOmJhcg==");
    assert_outcome(&req, "anonymous");
}

#[test]
fn http2_requests_sign_the_authority() {
    // The router puts :authority into `host`; with no host header at all the verifier signs
    // the authority it is given.
    let mut req = vector("botocore GET, no port");
    req.remove_header("host");
    assert_outcome(&req, "ok");
    req.host = "other.example".into();
    assert_outcome(&req, "SignatureMismatch");
}

#[test]
fn equivalent_paths_and_unsigned_headers_still_verify() {
    let mut req = vector("botocore path with //, dot segments and %-escapes");
    req.path = "/a/b/%7Ed%20e/".into();
    assert_outcome(&req, "ok");
    let mut req = vector("botocore POST, port, unsorted query, custom header");
    req.set_header("x-trace", "a b");
    assert_outcome(&req, "ok");
    req.add_header("x-unsigned", "anything");
    assert_outcome(&req, "ok");
    // The query's order on the wire does not matter: it is sorted before signing.
    req.query = Some("empty&a=0&sp=a%20b&b=2&a=1".into());
    assert_outcome(&req, "ok");
    // Host names compare case-insensitively.
    let mut req = vector("botocore GET, no port");
    req.host = req.host.to_uppercase();
    assert_outcome(&req, "ok");
}

/// Each signed part changed after signing, and other ways to break a signature: each case is
/// (vector, tampering, expected error).
#[test]
fn tampered_requests_are_refused_with_the_right_reason() {
    type Tamper = fn(&mut Req);
    const POST: &str = "botocore POST, port, unsorted query, custom header";
    const TEMP: &str = "botocore temporary credentials";
    const PRESIGNED: &str = "botocore presigned GET";
    const PRESIGNED_TEMP: &str = "botocore presigned, temporary credentials";
    const V4A: &str = "awscrt SigV4A, region set *";
    const V4A_LIST: &str = "awscrt SigV4A, region list";
    const V4A_PRESIGNED: &str = "awscrt SigV4A presigned";
    const CURL: &str = "curl POST with token and a custom header";
    let cases: Vec<(&str, &str, Tamper, &str)> = vec![
        (
            POST,
            "method",
            |r| r.method = "PUT".into(),
            "SignatureMismatch",
        ),
        (
            POST,
            "path",
            |r| r.path = "/orders/43".into(),
            "SignatureMismatch",
        ),
        (
            POST,
            "query value",
            |r| {
                r.edit_query("b=2", "b=3");
            },
            "SignatureMismatch",
        ),
        (
            POST,
            "query param added",
            |r| {
                r.edit_query("empty", "empty&c=1");
            },
            "SignatureMismatch",
        ),
        (
            POST,
            "query param removed",
            |r| {
                r.edit_query("&empty", "");
            },
            "SignatureMismatch",
        ),
        (
            POST,
            "host, both the header and the connection",
            |r| {
                r.host = "svc.example:8081".into();
                r.set_header("host", "svc.example:8081");
            },
            "SignatureMismatch",
        ),
        (
            POST,
            "host header only",
            |r| {
                r.set_header("host", "evil.example:8080");
            },
            "HostMismatch",
        ),
        (
            POST,
            "sent to another authority",
            |r| r.host = "svc.example:9090".into(),
            "HostMismatch",
        ),
        (
            POST,
            "content-type",
            |r| {
                r.set_header("content-type", "text/plain");
            },
            "SignatureMismatch",
        ),
        (
            POST,
            "custom signed header",
            |r| {
                r.set_header("x-trace", "a c");
            },
            "SignatureMismatch",
        ),
        (
            POST,
            "signed header removed",
            |r| {
                r.remove_header("x-trace");
            },
            "SignedHeaderMissing",
        ),
        (
            POST,
            "signed header repeated",
            |r| {
                r.add_header("x-trace", "b");
            },
            "SignatureMismatch",
        ),
        (
            POST,
            "x-amz-date +1 s",
            |r| {
                r.set_header("x-amz-date", "20260102T030406Z");
            },
            "SignatureMismatch",
        ),
        (
            POST,
            "x-amz-date another day",
            |r| {
                r.set_header("x-amz-date", "20260103T030405Z");
            },
            "ScopeDateMismatch",
        ),
        (
            POST,
            "x-amz-date garbage",
            |r| {
                r.set_header("x-amz-date", "yesterday");
            },
            "BadDate",
        ),
        (
            POST,
            "x-amz-date removed",
            |r| {
                r.remove_header("x-amz-date");
            },
            "MissingDate",
        ),
        (
            POST,
            "x-amz-content-sha256 set to a hash",
            |r| {
                r.set_header("x-amz-content-sha256", super::EMPTY_SHA256);
            },
            "ContentSha256Required(PayloadHash)",
        ),
        (
            POST,
            "x-amz-content-sha256 removed",
            |r| {
                r.remove_header("x-amz-content-sha256");
            },
            "ContentSha256Required(Missing)",
        ),
        (
            POST,
            "x-amz-content-sha256 dropped from SignedHeaders",
            |r| {
                r.edit_authorization(";x-amz-content-sha256", "");
            },
            "ContentSha256Required(NotSigned)",
        ),
        (
            POST,
            "host dropped from SignedHeaders",
            |r| {
                r.edit_authorization(";host", "");
            },
            "HostNotSigned",
        ),
        (
            POST,
            "header dropped from SignedHeaders",
            |r| {
                r.edit_authorization(";x-trace", "");
            },
            "SignatureMismatch",
        ),
        (
            POST,
            "signature digit",
            |r| {
                r.edit_authorization("Signature=9", "Signature=8");
            },
            "SignatureMismatch",
        ),
        (
            POST,
            "signature truncated",
            |r| {
                r.edit_authorization("4111", "41");
            },
            "MalformedAuthorization",
        ),
        (
            POST,
            "wrong region in scope",
            |r| {
                r.edit_authorization("/us-west-2/", "/us-east-1/");
            },
            "WrongRegion",
        ),
        (
            POST,
            "wrong service in scope",
            |r| {
                r.edit_authorization("/vpc-lattice-svcs/", "/execute-api/");
            },
            "WrongService",
        ),
        (
            POST,
            "scope date",
            |r| {
                r.edit_authorization("/20260102/", "/20260101/");
            },
            "ScopeDateMismatch",
        ),
        (
            POST,
            "unknown access key",
            |r| {
                r.edit_authorization("AKIDLATTICEUSER", "AKIDSOMEONE");
            },
            "UnknownAccessKey",
        ),
        (
            POST,
            "another identity's key",
            |r| {
                r.edit_authorization("AKIDLATTICEUSER", "test");
            },
            "SignatureMismatch",
        ),
        (
            POST,
            "algorithm",
            |r| {
                r.edit_authorization("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512");
            },
            "UnsupportedAlgorithm",
        ),
        (
            POST,
            "SigV4 relabelled SigV4A",
            |r| {
                r.edit_authorization("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256");
            },
            "MalformedAuthorization",
        ),
        (
            POST,
            "Credential removed",
            |r| {
                r.edit_authorization("Credential=", "Cred=");
            },
            "MalformedAuthorization",
        ),
        (
            POST,
            "duplicated Authorization header",
            |r| {
                let auth = r.header("authorization").to_string();
                r.add_header("Authorization", &auth);
            },
            "DuplicateAuthorization",
        ),
        (
            POST,
            "Authorization plus a bearer token",
            |r| {
                r.add_header("Authorization", "Bearer x");
            },
            "DuplicateAuthorization",
        ),
        (
            POST,
            "Authorization plus a presigned query",
            |r| {
                r.edit_query("empty", "empty&X-Amz-Signature=00");
            },
            "DuplicateAuthorization",
        ),
        (
            POST,
            "6 minutes later",
            |r| {
                r.shift_now(360);
            },
            "Expired",
        ),
        (
            POST,
            "6 minutes earlier",
            |r| {
                r.shift_now(-360);
            },
            "NotYetValid",
        ),
        (
            TEMP,
            "token removed",
            |r| {
                r.remove_header("x-amz-security-token");
            },
            "SecurityTokenRequired",
        ),
        (
            TEMP,
            "token replaced",
            |r| {
                r.set_header("x-amz-security-token", "session-token-2");
            },
            "SecurityTokenMismatch",
        ),
        (
            TEMP,
            "token extended",
            |r| {
                r.set_header("x-amz-security-token", "session-token-1x");
            },
            "SecurityTokenMismatch",
        ),
        (
            TEMP,
            "token dropped from SignedHeaders",
            |r| {
                r.edit_authorization(";x-amz-security-token", "");
            },
            "SecurityTokenNotSigned",
        ),
        (
            "botocore GET, no port",
            "token added to a long-term key's request",
            |r| {
                r.add_header("x-amz-security-token", "session-token-1");
            },
            "UnexpectedSecurityToken",
        ),
        (
            PRESIGNED,
            "X-Amz-Expires",
            |r| {
                r.edit_query("X-Amz-Expires=300", "X-Amz-Expires=3600");
            },
            "SignatureMismatch",
        ),
        (
            PRESIGNED,
            "X-Amz-Expires over 7 days",
            |r| {
                r.edit_query("X-Amz-Expires=300", "X-Amz-Expires=604801");
            },
            "BadExpires",
        ),
        (
            PRESIGNED,
            "X-Amz-Signature removed",
            |r| {
                r.edit_query("&X-Amz-Signature=", "&X-Amz-Sig=");
            },
            "MissingAuthorizationPart(\"X-Amz-Signature\")",
        ),
        (
            PRESIGNED,
            "X-Amz-Date",
            |r| {
                r.edit_query("T030405Z", "T030406Z");
            },
            "SignatureMismatch",
        ),
        (
            PRESIGNED,
            "operation parameter",
            |r| {
                r.edit_query("z=1", "z=2");
            },
            "SignatureMismatch",
        ),
        (
            PRESIGNED,
            "path",
            |r| r.path = "/reports".into(),
            "SignatureMismatch",
        ),
        (
            PRESIGNED,
            "host",
            |r| {
                r.host = "svc.example:8081".into();
                r.set_header("host", "svc.example:8081");
            },
            "SignatureMismatch",
        ),
        (
            PRESIGNED,
            "used after X-Amz-Expires",
            |r| {
                r.shift_now(301);
            },
            "Expired",
        ),
        (
            PRESIGNED,
            "used before its date",
            |r| {
                r.shift_now(-301);
            },
            "NotYetValid",
        ),
        (
            PRESIGNED,
            "region",
            |r| {
                r.edit_query("%2Fus-west-2%2F", "%2Feu-west-1%2F");
            },
            "WrongRegion",
        ),
        (
            PRESIGNED,
            "X-Amz-Algorithm twice",
            |r| {
                r.edit_query("z=1", "z=1&X-Amz-Algorithm=AWS4-HMAC-SHA256");
            },
            "DuplicateAuthorization",
        ),
        (
            PRESIGNED_TEMP,
            "token in the query",
            |r| {
                r.edit_query("session-token-1", "session-token-2");
            },
            "SecurityTokenMismatch",
        ),
        (
            PRESIGNED_TEMP,
            "token removed from the query",
            |r| {
                r.edit_query("&X-Amz-Security-Token=session-token-1", "");
            },
            "SecurityTokenRequired",
        ),
        (
            PRESIGNED_TEMP,
            "used after 7 days",
            |r| {
                r.shift_now(604_801);
            },
            "Expired",
        ),
        (
            V4A,
            "SigV4A method",
            |r| r.method = "DELETE".into(),
            "SignatureMismatch",
        ),
        (
            V4A,
            "SigV4A query",
            |r| {
                r.edit_query("x=1", "x=2");
            },
            "SignatureMismatch",
        ),
        (
            V4A,
            "SigV4A DER signature byte",
            |r| {
                r.edit_authorization("Signature=30", "Signature=31");
            },
            "SignatureMismatch",
        ),
        (
            V4A,
            "SigV4A region set widened",
            |r| {
                r.set_header("x-amz-region-set", "us-west-2,*");
            },
            "SignatureMismatch",
        ),
        (
            V4A,
            "SigV4A region set removed",
            |r| {
                r.remove_header("x-amz-region-set");
            },
            "MissingAuthorizationPart(\"X-Amz-Region-Set\")",
        ),
        (
            V4A,
            "SigV4A region set dropped from SignedHeaders",
            |r| {
                r.edit_authorization(";x-amz-region-set", "");
            },
            "RegionSetNotSigned",
        ),
        (
            V4A,
            "SigV4A another identity's key",
            |r| {
                r.edit_authorization("AKIDLATTICEUSER", "test");
            },
            "SignatureMismatch",
        ),
        (
            V4A,
            "SigV4A 6 minutes later",
            |r| {
                r.shift_now(360);
            },
            "Expired",
        ),
        (
            V4A_LIST,
            "SigV4A signed header",
            |r| {
                r.set_header("x-trace", "t 2");
            },
            "SignatureMismatch",
        ),
        (
            V4A_LIST,
            "SigV4A region set narrowed",
            |r| {
                r.set_header("x-amz-region-set", "eu-west-1");
            },
            "RegionSetMismatch",
        ),
        (
            V4A_PRESIGNED,
            "SigV4A presigned query",
            |r| {
                r.edit_query("b=2", "b=3");
            },
            "SignatureMismatch",
        ),
        (
            V4A_PRESIGNED,
            "SigV4A presigned region set",
            |r| {
                r.edit_query("X-Amz-Region-Set=%2A", "X-Amz-Region-Set=eu-%2A");
            },
            "RegionSetMismatch",
        ),
        (
            V4A_PRESIGNED,
            "SigV4A presigned content sha",
            |r| {
                r.set_header("x-amz-content-sha256", super::EMPTY_SHA256);
            },
            "ContentSha256Required(PayloadHash)",
        ),
        (
            CURL,
            "curl body-related header",
            |r| {
                r.set_header("x-custom", "a c");
            },
            "SignatureMismatch",
        ),
        (
            CURL,
            "curl token",
            |r| {
                r.set_header("x-amz-security-token", "nope");
            },
            "SecurityTokenMismatch",
        ),
    ];
    assert!(cases.len() >= 20);
    for (name, what, tamper, expected) in cases {
        let mut req = vector(name);
        assert_outcome(&req, "ok");
        tamper(&mut req);
        req.name = format!("{name} / {what}");
        assert_outcome(&req, expected);
    }
}

#[test]
fn region_set_entries_may_use_wildcards() {
    for (pattern, ok) in [
        ("*", true),
        ("us-west-2", true),
        ("us-*", true),
        ("*-2", true),
        ("us-*-2", true),
        ("**", true),
        ("us-west-1", false),
        ("eu-*", false),
        ("us-west-2x", false),
        ("", false),
        ("*-1", false),
    ] {
        assert_eq!(super::wildcard_match(pattern, "us-west-2"), ok, "{pattern}");
    }
}

#[test]
fn the_region_is_the_verifiers() {
    let fixtures = fixtures();
    let eu = Verifier::new(&identities(&fixtures), "eu-west-1").unwrap();
    let check = |name: &str, expected: &str| {
        let req = vector(name);
        let got = outcome(&req.verify_with(&eu));
        assert!(got.starts_with(expected), "{name}: {got}");
    };
    check("botocore GET, no port", "WrongRegion");
    check("awscrt SigV4A, region set *", "ok");
    check("awscrt SigV4A, region list", "ok");
    check(
        "awscrt SigV4A presigned, temporary credentials",
        "RegionSetMismatch",
    );
}

#[test]
fn mismatches_show_the_canonical_request() {
    let mut req = vector("botocore POST, port, unsorted query, custom header");
    req.method = "PUT".into();
    let Err(SignatureError::SignatureMismatch {
        canonical_request,
        string_to_sign,
    }) = req.verify()
    else {
        panic!("expected a mismatch");
    };
    assert_eq!(
        canonical_request,
        "PUT\n/orders/42\na=0&a=1&b=2&empty=&sp=a%20b\ncontent-type:application/json\nhost:svc.example:8080\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:20260102T030405Z\nx-trace:a b\n\ncontent-type;host;x-amz-content-sha256;x-amz-date;x-trace\nUNSIGNED-PAYLOAD"
    );
    assert!(string_to_sign.starts_with(
        "AWS4-HMAC-SHA256\n20260102T030405Z\n20260102/us-west-2/vpc-lattice-svcs/aws4_request\n"
    ));
}

#[test]
fn reasons_are_awss_codes() {
    let cases = [
        (
            SignatureError::SignatureMismatch {
                canonical_request: String::new(),
                string_to_sign: String::new(),
            },
            "SignatureDoesNotMatch",
        ),
        (
            SignatureError::UnknownAccessKey("x".into()),
            "InvalidClientTokenId",
        ),
        (
            SignatureError::Expired {
                signed: String::new(),
                now: String::new(),
                presigned_expires: None,
            },
            "RequestExpired",
        ),
        (
            SignatureError::MissingAuthorizationPart("Signature"),
            "IncompleteSignature",
        ),
        (
            SignatureError::SecurityTokenMismatch,
            "InvalidClientTokenId",
        ),
        (
            SignatureError::ContentSha256Required(ContentSha256Problem::Missing),
            "UnsignedPayloadRequired",
        ),
    ];
    for (error, reason) in cases {
        assert_eq!(error.reason(), reason, "{error:?}");
    }
}

#[test]
fn echoed_values_are_clipped() {
    let mut req = vector("botocore GET, no port");
    let long_key = "K".repeat(10_000);
    req.edit_authorization("AKIDLATTICEUSER", &long_key);
    let Err(e) = req.verify() else {
        panic!("accepted")
    };
    assert!(matches!(e, SignatureError::UnknownAccessKey(_)));
    assert!(e.to_string().len() < 400, "{}", e.to_string().len());
}

#[test]
fn the_verifier_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Verifier>();
    let verifier = std::sync::Arc::new(verifier());
    let vectors = all_vectors();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let verifier = verifier.clone();
            let vectors = &vectors;
            s.spawn(move || {
                for req in vectors {
                    assert!(outcome(&req.verify_with(&verifier)).starts_with(&req.expect));
                }
            });
        }
    });
}

#[test]
fn duplicate_access_keys_keep_the_first_identity() {
    let fixtures = fixtures();
    let mut ids = identities(&fixtures);
    let mut shadow = ids[0].clone();
    shadow.arn = "arn:aws:iam::123456789012:user/mallory".into();
    shadow.secret_access_key = "other".into();
    ids.push(shadow);
    let verifier = Verifier::new(&ids, "us-west-2").unwrap();
    let caller = vector("botocore GET, no port")
        .verify_with(&verifier)
        .unwrap()
        .unwrap();
    assert_eq!(caller.arn, "arn:aws:iam::123456789012:user/alice");
}

#[test]
fn bad_identities_are_refused_when_built() {
    let mut ids = identities(&fixtures());
    ids[0].arn = "arn:aws:iam::123:user/x".into();
    assert!(Verifier::new(&ids, "us-west-2").is_err());
}

/// Mutates `s` a few times: byte changes, deletions, duplications, and insertions of the
/// characters the parsers split on.
fn garble(rng: &mut Rng, s: &str) -> Vec<u8> {
    const SPECIAL: &[u8] = b" ,;=/%&?*\t\x00\xff\xc3AWS4-0123456789abcdefXx";
    let mut bytes = s.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if at < bytes.len() => bytes[at] = SPECIAL[rng.below(SPECIAL.len())],
            1 if at < bytes.len() => {
                bytes.remove(at);
            }
            2 => bytes.insert(at, SPECIAL[rng.below(SPECIAL.len())]),
            3 => bytes.truncate(at),
            4 => {
                let piece = bytes[at..].to_vec();
                bytes.extend_from_slice(&piece);
            }
            _ => bytes.insert(at, rng.next().to_le_bytes()[0]),
        }
    }
    bytes
}

#[test]
fn garbled_signatures_never_panic_nor_change_the_caller() {
    let verifier = verifier();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let seeds: Vec<Req> = all_vectors()
        .into_iter()
        .filter(|v| v.expect == "ok")
        .collect();
    let mut refused = 0usize;
    for round in 0..6000 {
        let seed = &seeds[round % seeds.len()];
        let mut headers = seed.header_map();
        let mut query = seed.query.clone();
        let mut path = seed.path.clone();
        let mut method = seed.method.clone();
        match rng.below(4) {
            0 if headers.contains_key("authorization") => {
                let auth = headers["authorization"].to_str().unwrap().to_string();
                let garbled = garble(&mut rng, &auth);
                match HeaderValue::from_bytes(&garbled) {
                    Ok(value) => {
                        headers.insert("authorization", value);
                    }
                    Err(_) => continue,
                }
            }
            1 if query.is_some() => {
                let garbled = garble(&mut rng, query.as_deref().unwrap());
                query = Some(String::from_utf8_lossy(&garbled).into_owned());
            }
            2 => path = String::from_utf8_lossy(&garble(&mut rng, &path)).into_owned(),
            _ => {
                method = String::from_utf8_lossy(&garble(&mut rng, &method)).into_owned();
                // Garbage headers too.
                let name = [
                    "x-amz-date",
                    "x-amz-region-set",
                    "x-amz-security-token",
                    "host",
                ][rng.below(4)];
                let base = headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("x")
                    .to_string();
                if let Ok(value) = HeaderValue::from_bytes(&garble(&mut rng, &base)) {
                    headers.insert(name, value);
                }
            }
        }
        let result = verifier.verify(
            &SignedRequest {
                method: &method,
                path: &path,
                query: query.as_deref(),
                headers: &headers,
                host: &seed.host,
            },
            seed.now,
        );
        match result {
            Err(e) => {
                refused += 1;
                assert!(!e.reason().is_empty());
                assert!(!e.to_string().is_empty());
            }
            // A change may leave the signed request the same (an unsigned header, the hex
            // digits' case, an equivalent path); it never makes the request someone else's.
            Ok(Some(caller)) => {
                let original = seed.verify_with(&verifier).unwrap().unwrap();
                assert_eq!(caller, original, "{}", seed.name);
            }
            // Garbling `AWS4` away makes the header something else than a signature.
            Ok(None) => {}
        }
    }
    assert!(refused > 4000, "{refused}");
}

#[test]
fn random_bytes_never_panic() {
    let verifier = verifier();
    let mut rng = Rng(0xDEAD_BEEF_0000_0042);
    for _ in 0..3000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut headers = HeaderMap::new();
        let mut value = b"AWS4-HMAC-SHA256 ".to_vec();
        value.extend_from_slice(&bytes);
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            headers.insert("authorization", v);
        }
        let query = format!("X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256&{text}");
        for query in [None, Some(query.as_str()), Some(text.as_str())] {
            let _ = verifier.verify(
                &SignedRequest {
                    method: &text,
                    path: &text,
                    query,
                    headers: &headers,
                    host: &text,
                },
                SystemTime::UNIX_EPOCH + Duration::from_secs(rng.next() % 4_000_000_000),
            );
        }
    }
}
