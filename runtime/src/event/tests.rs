//! The oracle is `aws_lambda_events` (awslabs/aws-lambda-rust-runtime): every event is
//! parsed with its `VpcLatticeRequestV1`/`V2`. The fixtures in `runtime/tests/fixtures/` are
//! that crate's own (version 1.2.1, MIT licensed).

use super::*;
use std::time::Duration;

use aws_lambda_events::encodings::Body as LambdaBody;
use aws_lambda_events::event::vpc_lattice::{
    VpcLatticeRequestV1, VpcLatticeRequestV2, VpcLatticeResponse,
};

const NETWORK: &str =
    "arn:aws:vpc-lattice:us-west-2:123456789012:servicenetwork/sn-0bf3f2882e9cc805a";
const SERVICE: &str = "arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0a40eebed65f8d69c";
const GROUP: &str = "arn:aws:vpc-lattice:us-west-2:123456789012:targetgroup/tg-6d0ecf831eec9f09";
const VPC: &str = "arn:aws:ec2:us-west-2:123456789012:vpc/vpc-0b8276c84697e7339";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    map
}

fn request<'a>(path: &'a str, headers: &'a HeaderMap, body: &'a [u8]) -> EventRequest<'a> {
    EventRequest {
        method: "POST",
        path_and_query: path,
        headers,
        body,
        service_network_arn: Some(NETWORK),
        service_arn: SERVICE,
        target_group_arn: GROUP,
        source_vpc_arn: Some(VPC),
        region: "us-west-2",
        identity_type: "NONE",
        principal: None,
        principal_org_id: None,
        session_name: None,
        time: UNIX_EPOCH + Duration::from_micros(1_724_875_399_456_789),
    }
}

fn v1(req: &EventRequest<'_>) -> VpcLatticeRequestV1 {
    let json = encode(req, EventVersion::V1);
    serde_json::from_slice(&json).expect("the V1 event parses as VpcLatticeRequestV1")
}

fn v2(req: &EventRequest<'_>) -> VpcLatticeRequestV2 {
    let json = encode(req, EventVersion::V2);
    serde_json::from_slice(&json).expect("the V2 event parses as VpcLatticeRequestV2")
}

fn raw(req: &EventRequest<'_>, version: EventVersion) -> Value {
    serde_json::from_slice(&encode(req, version)).expect("JSON")
}

fn values<'a>(map: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    map.get_all(name)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect()
}

#[test]
fn repeated_headers() {
    let h = headers(&[
        ("accept", "*/*"),
        ("x-multi", "a"),
        ("x-multi", "b"),
        ("x-forwarded-for", "10.0.0.1"),
    ]);
    let req = request("/", &h, b"");

    // V1: one string, joined with ", "; the crate splits it back.
    assert_eq!(raw(&req, EventVersion::V1)["headers"]["x-multi"], "a, b");
    let e1 = v1(&req);
    assert_eq!(values(&e1.headers, "x-multi"), ["a", "b"]);
    assert_eq!(values(&e1.headers, "x-forwarded-for"), ["10.0.0.1"]);

    // V2: an array per name.
    assert_eq!(
        raw(&req, EventVersion::V2)["headers"]["x-multi"],
        serde_json::json!(["a", "b"])
    );
    let e2 = v2(&req);
    assert_eq!(values(&e2.headers, "x-multi"), ["a", "b"]);
    assert_eq!(values(&e2.headers, "accept"), ["*/*"]);
}

#[test]
fn repeated_query_keys() {
    let h = HeaderMap::new();
    let req = request(
        "/search?q=1&x=a&q=2&q=3&sp=hello+world&pct=%C3%A9t%C3%A9",
        &h,
        b"",
    );

    let e1 = v1(&req);
    assert_eq!(e1.raw_path.as_deref(), Some(req.path_and_query));
    assert_eq!(
        e1.query_string_parameters.all("q"),
        Some(vec!["3"]),
        "V1 keeps the last value"
    );
    assert_eq!(e1.query_string_parameters.first("x"), Some("a"));
    assert_eq!(e1.query_string_parameters.first("sp"), Some("hello world"));
    assert_eq!(e1.query_string_parameters.first("pct"), Some("été"));

    let e2 = v2(&req);
    assert_eq!(e2.path.as_deref(), Some(req.path_and_query));
    assert_eq!(
        e2.query_string_parameters.all("q"),
        Some(vec!["1", "2", "3"]),
        "V2 keeps every value in order"
    );
    assert_eq!(e2.query_string_parameters.all("x"), Some(vec!["a"]));
    // Key order is first appearance.
    let keys: Vec<String> = raw(&req, EventVersion::V2)["queryStringParameters"]
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, ["pct", "q", "sp", "x"]);
}

#[test]
fn query_decoding_edge_cases() {
    assert_eq!(
        parse_query("a&b=&=c&&d=1=2&e=%zz&f=%4"),
        [
            ("a".to_string(), vec!["".to_string()]),
            ("b".to_string(), vec!["".to_string()]),
            ("".to_string(), vec!["c".to_string()]),
            ("d".to_string(), vec!["1=2".to_string()]),
            ("e".to_string(), vec!["%zz".to_string()]),
            ("f".to_string(), vec!["%4".to_string()]),
        ]
    );
    assert_eq!(
        parse_query("k=%FF"),
        [("k".to_string(), vec!["\u{FFFD}".to_string()])]
    );
}

#[test]
fn binary_body_is_base64() {
    let h = headers(&[("content-type", "application/octet-stream")]);
    let body = [0u8, 159, 146, 150, 255];
    let req = request("/upload", &h, &body);

    let e1 = v1(&req);
    assert!(e1.is_base64_encoded);
    assert_eq!(e1.body, Some(LambdaBody::Text(STANDARD.encode(body))));

    let e2 = v2(&req);
    assert!(e2.is_base64_encoded);
    assert_eq!(
        STANDARD.decode(e2.body.expect("body")).expect("base64"),
        body
    );
}

#[test]
fn gzip_json_body_is_base64() {
    let h = headers(&[
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ]);
    // A real gzip stream of `{}` (bytes past the header are not UTF-8).
    let gz: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xab, 0xae, 0x05, 0x00, 0x43,
        0xbf, 0xa6, 0xa3, 0x02, 0x00, 0x00, 0x00,
    ];
    let req = request("/", &h, gz);
    let e2 = v2(&req);
    assert!(e2.is_base64_encoded);
    assert_eq!(STANDARD.decode(e2.body.expect("body")).expect("base64"), gz);

    // Even a compressed body that happens to be valid UTF-8 is base64-encoded.
    let h = headers(&[("content-type", "text/plain"), ("content-encoding", "br")]);
    let e1 = v1(&request("/", &h, b"plain"));
    assert!(e1.is_base64_encoded);
    assert_eq!(e1.body, Some(LambdaBody::Text(STANDARD.encode("plain"))));
}

#[test]
fn text_bodies_go_as_is() {
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "Text/HTML",
        "application/xml",
        "application/javascript",
        "application/problem+json",
        "application/atom+xml",
    ] {
        let h = headers(&[("content-type", ct)]);
        let e2 = v2(&request("/", &h, "{\"é\": 1}".as_bytes()));
        assert!(!e2.is_base64_encoded, "{ct}");
        assert_eq!(e2.body.as_deref(), Some("{\"é\": 1}"), "{ct}");
    }
    // Not text-like: form posts and images are base64-encoded, as with ALB.
    for ct in [
        "application/x-www-form-urlencoded",
        "image/png",
        "multipart/form-data; boundary=x",
    ] {
        let h = headers(&[("content-type", ct)]);
        assert!(v1(&request("/", &h, b"a=1")).is_base64_encoded, "{ct}");
    }
    // No content-type: valid UTF-8 as is, anything else base64.
    let none = HeaderMap::new();
    assert!(!v1(&request("/", &none, b"hello")).is_base64_encoded);
    assert!(v1(&request("/", &none, &[0xff, 0xfe])).is_base64_encoded);
    // A text type whose bytes are not UTF-8 is base64-encoded rather than corrupted.
    let text = headers(&[("content-type", "text/plain")]);
    let e2 = v2(&request("/", &text, &[b'a', 0xff]));
    assert!(e2.is_base64_encoded);
    assert_eq!(
        STANDARD.decode(e2.body.expect("body")).expect("b64"),
        [b'a', 0xff]
    );
}

#[test]
fn empty_body() {
    let h = headers(&[("content-type", "application/octet-stream")]);
    let req = request("/", &h, b"");
    let json1 = raw(&req, EventVersion::V1);
    assert_eq!(json1["body"], "");
    assert_eq!(json1["is_base64_encoded"], false);
    let e1 = v1(&req);
    assert!(!e1.is_base64_encoded);

    let json2 = raw(&req, EventVersion::V2);
    assert!(json2.get("body").is_none(), "{json2}");
    assert_eq!(json2["isBase64Encoded"], false);
    let e2 = v2(&req);
    assert_eq!(e2.body, None);
    assert!(!e2.is_base64_encoded);
}

#[test]
fn non_ascii_path_stays_percent_encoded() {
    let h = HeaderMap::new();
    let path = "/caf%C3%A9/%E2%9C%93?name=Jos%C3%A9";
    let req = request(path, &h, b"");
    assert_eq!(v1(&req).raw_path.as_deref(), Some(path));
    let e2 = v2(&req);
    assert_eq!(e2.path.as_deref(), Some(path));
    assert_eq!(e2.query_string_parameters.first("name"), Some("José"));
}

#[test]
fn v2_request_context() {
    let h = HeaderMap::new();
    let req = request("/", &h, b"");
    let json = raw(&req, EventVersion::V2);
    assert_eq!(json["version"], "2.0");
    assert_eq!(json["method"], "POST");
    assert_eq!(
        json["requestContext"]["timeEpoch"],
        Value::String("1724875399456789".into()),
        "microseconds, as a string"
    );
    let e2 = v2(&req);
    assert_eq!(e2.version, "2.0");
    assert_eq!(e2.method, Some(http::Method::POST));
    let rc = &e2.request_context;
    assert_eq!(rc.service_network_arn, NETWORK);
    assert_eq!(rc.service_arn, SERVICE);
    assert_eq!(rc.target_group_arn, GROUP);
    assert_eq!(rc.region, "us-west-2");
    assert_eq!(rc.time_epoch, "1724875399456789");
    let identity = rc.identity.as_ref().expect("identity");
    assert_eq!(identity.source_vpc_arn.as_deref(), Some(VPC));
    assert_eq!(identity.identity_type.as_deref(), Some("NONE"));
    assert_eq!(identity.principal, None);

    // Absent network and VPC: the crate still parses the event.
    let bare = EventRequest {
        service_network_arn: None,
        source_vpc_arn: None,
        ..request("/", &h, b"")
    };
    let json = raw(&bare, EventVersion::V2);
    assert_eq!(json["requestContext"]["serviceNetworkArn"], "");
    assert!(
        json["requestContext"]["identity"]
            .get("sourceVpcArn")
            .is_none()
    );
    let e2 = v2(&bare);
    assert_eq!(e2.request_context.service_network_arn, "");
    let identity = e2.request_context.identity.expect("identity");
    assert_eq!(identity.source_vpc_arn, None);

    // V1 has no request context at all.
    let json = raw(&req, EventVersion::V1);
    assert!(json.get("requestContext").is_none());
    assert_eq!(
        json.as_object()
            .expect("object")
            .keys()
            .collect::<Vec<_>>()
            .len(),
        6
    );
}

#[test]
fn custom_method_and_non_utf8_header_value() {
    let mut h = HeaderMap::new();
    h.insert(
        "x-latin1",
        HeaderValue::from_bytes(b"caf\xe9").expect("obs-text"),
    );
    let req = EventRequest {
        method: "PURGE",
        ..request("/", &h, b"")
    };
    assert_eq!(
        raw(&req, EventVersion::V1)["headers"]["x-latin1"],
        "caf\u{FFFD}"
    );
    assert_eq!(
        v2(&req).method.as_ref().map(http::Method::as_str),
        Some("PURGE")
    );
}

/// Rebuilds a request from a fixture's fields, with the query put back into the path.
fn path_with_query(path: &str, query: &aws_lambda_events::query_map::QueryMap) -> String {
    let q = query.to_query_string();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{q}")
    }
}

fn fixture_body(body: Option<&str>, base64: bool) -> Vec<u8> {
    match body {
        None => Vec::new(),
        Some(b) if base64 => STANDARD.decode(b).expect("fixture base64"),
        Some(b) => b.as_bytes().to_vec(),
    }
}

#[test]
fn v1_fixture_round_trips() {
    let fixture: VpcLatticeRequestV1 = serde_json::from_str(include_str!(
        "../../tests/fixtures/example-vpc-lattice-v1-request.json"
    ))
    .expect("fixture");
    let text = match &fixture.body {
        Some(LambdaBody::Text(t)) => Some(t.as_str()),
        _ => None,
    };
    let body = fixture_body(text, fixture.is_base64_encoded);
    let path = path_with_query(
        fixture.raw_path.as_deref().expect("raw_path"),
        &fixture.query_string_parameters,
    );
    let method = fixture.method.clone().expect("method");
    let req = EventRequest {
        method: method.as_str(),
        ..request(&path, &fixture.headers, &body)
    };
    let ours = v1(&req);
    assert_eq!(ours.method, fixture.method);
    assert_eq!(ours.headers, fixture.headers);
    assert_eq!(values(&ours.headers, "multi"), ["abcd", "DEF"]);
    assert_eq!(
        ours.query_string_parameters,
        fixture.query_string_parameters
    );
    assert_eq!(ours.body, fixture.body);
    assert_eq!(ours.is_base64_encoded, fixture.is_base64_encoded);
    assert!(
        ours.raw_path
            .as_deref()
            .expect("raw_path")
            .starts_with("/api/product?")
    );
}

#[test]
fn v2_fixtures_round_trip() {
    for (name, json) in [
        (
            "v2-request",
            include_str!("../../tests/fixtures/example-vpc-lattice-v2-request.json"),
        ),
        (
            "v2-request-base64",
            include_str!("../../tests/fixtures/example-vpc-lattice-v2-request-base64.json"),
        ),
        (
            "v2-request-roles-anywhere",
            include_str!("../../tests/fixtures/example-vpc-lattice-v2-request-roles-anywhere.json"),
        ),
    ] {
        let fixture: VpcLatticeRequestV2 = serde_json::from_str(json).expect(name);
        let body = fixture_body(fixture.body.as_deref(), fixture.is_base64_encoded);
        let path = path_with_query(
            fixture.path.as_deref().expect("path"),
            &fixture.query_string_parameters,
        );
        let rc = &fixture.request_context;
        let identity = rc.identity.clone().unwrap_or_default();
        let micros: u64 = rc.time_epoch.parse().expect("timeEpoch");
        let method = fixture.method.clone().expect("method");
        let req = EventRequest {
            method: method.as_str(),
            path_and_query: &path,
            headers: &fixture.headers,
            body: &body,
            service_network_arn: Some(&rc.service_network_arn),
            service_arn: &rc.service_arn,
            target_group_arn: &rc.target_group_arn,
            source_vpc_arn: identity.source_vpc_arn.as_deref(),
            region: &rc.region,
            identity_type: identity.identity_type.as_deref().unwrap_or("NONE"),
            principal: identity.principal.as_deref(),
            principal_org_id: identity.principal_org_id.as_deref(),
            session_name: identity.session_name.as_deref(),
            time: UNIX_EPOCH + Duration::from_micros(micros),
        };
        let ours = v2(&req);
        assert_eq!(ours.version, fixture.version, "{name}");
        assert_eq!(ours.method, fixture.method, "{name}");
        assert_eq!(ours.headers, fixture.headers, "{name}");
        assert_eq!(
            ours.query_string_parameters, fixture.query_string_parameters,
            "{name}"
        );
        assert_eq!(ours.body, fixture.body, "{name}");
        assert_eq!(ours.is_base64_encoded, fixture.is_base64_encoded, "{name}");
        let (a, b) = (&ours.request_context, &fixture.request_context);
        assert_eq!(a.service_network_arn, b.service_network_arn, "{name}");
        assert_eq!(a.service_arn, b.service_arn, "{name}");
        assert_eq!(a.target_group_arn, b.target_group_arn, "{name}");
        assert_eq!(a.region, b.region, "{name}");
        assert_eq!(a.time_epoch, b.time_epoch, "{name}");
        let ours_identity = a.identity.clone().expect("identity");
        assert_eq!(
            ours_identity.source_vpc_arn, identity.source_vpc_arn,
            "{name}"
        );
        assert_eq!(
            ours_identity.identity_type, identity.identity_type,
            "{name}"
        );
        assert_eq!(ours_identity.principal, identity.principal, "{name}");
        assert_eq!(
            ours_identity.principal_org_id, identity.principal_org_id,
            "{name}"
        );
        assert_eq!(ours_identity.session_name, identity.session_name, "{name}");
        assert!(
            ours.path
                .as_deref()
                .expect("path")
                .starts_with(fixture.path.as_deref().expect("path")),
            "{name}"
        );
    }
}

#[test]
fn response_fixture_decodes() {
    let json = include_bytes!("../../tests/fixtures/example-vpc-lattice-response.json");
    let oracle: VpcLatticeResponse = serde_json::from_slice(json).expect("fixture");
    let response = decode_response(json).expect("response");
    assert_eq!(response.status().as_u16(), oracle.status_code);
    for (name, value) in &oracle.headers {
        assert_eq!(response.headers().get(name), Some(value), "{name}");
    }
    let Some(LambdaBody::Text(body)) = &oracle.body else {
        panic!("the fixture has a text body");
    };
    assert_eq!(response.body().as_ref(), body.as_bytes());
    assert_eq!(response.headers()["content-length"], body.len().to_string());

    // A response the crate serializes (binary body) decodes to the same bytes.
    let mut built = VpcLatticeResponse::default();
    built.status_code = 404;
    built.is_base64_encoded = true;
    built.body = Some(LambdaBody::Text(STANDARD.encode([1u8, 2, 3])));
    built
        .headers
        .insert("content-type", HeaderValue::from_static("image/png"));
    let bytes = serde_json::to_vec(&built).expect("serialize");
    let response = decode_response(&bytes).expect("response");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.body().as_ref(), [1u8, 2, 3]);
    assert_eq!(response.headers()["content-type"], "image/png");
}

#[test]
fn response_fields() {
    let r = decode_response(
        br#"{"statusCode": 302, "statusDescription": "302 Found", "headers": {"Location": "/x", "Set-Cookie": ["a=1", "b=2"], "Connection": "close, x-private", "x-private": "1", "Transfer-Encoding": "chunked", "Keep-Alive": "5", "Upgrade": "h2c", "TE": "trailers", "Trailer": "x", "Proxy-Authenticate": "Basic", "Content-Length": "999"}, "multiValueHeaders": {"x-ignored": ["1"]}, "unknown": 1}"#,
    )
    .expect("response");
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()["location"], "/x");
    assert_eq!(values(r.headers(), "set-cookie"), ["a=1", "b=2"]);
    assert_eq!(r.headers()["content-length"], "0");
    for gone in [
        "connection",
        "x-private",
        "transfer-encoding",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authenticate",
        "x-ignored",
    ] {
        assert!(!r.headers().contains_key(gone), "{gone}");
    }
    assert!(r.body().is_empty());

    // Minimal: only statusCode; body null; base64 without padding; whitespace in base64.
    let r = decode_response(br#"{"statusCode": 200, "body": null}"#).expect("minimal");
    assert_eq!(r.headers()["content-length"], "0");
    let r = decode_response(br#"{"statusCode": 200, "body": "aGk", "isBase64Encoded": true}"#)
        .expect("unpadded");
    assert_eq!(r.body().as_ref(), b"hi");
    let r =
        decode_response(br#"{"statusCode": 200, "body": "aGVs\nbG8=\n", "isBase64Encoded": true}"#)
            .expect("wrapped");
    assert_eq!(r.body().as_ref(), b"hello");
    // 204 carries no body and no length.
    let r = decode_response(br#"{"statusCode": 204, "body": "x"}"#).expect("204");
    assert!(r.body().is_empty());
    assert!(!r.headers().contains_key("content-length"));
    // UTF-8 body: length in bytes.
    let r = decode_response(r#"{"statusCode": 200, "body": "é"}"#.as_bytes()).expect("utf8");
    assert_eq!(r.headers()["content-length"], "2");
}

#[test]
fn response_errors() {
    let err = |json: &str| {
        decode_response(json.as_bytes())
            .expect_err(json)
            .to_string()
    };
    assert_eq!(
        err("not json"),
        r#"function output is not JSON: "not json""#
    );
    assert_eq!(err(""), r#"function output is not JSON: """#);
    let long = "x".repeat(300);
    assert_eq!(
        err(&long),
        format!("function output is not JSON: \"{}…\"", "x".repeat(100))
    );
    assert_eq!(
        err("[1]"),
        "function output is JSON an array, not an object with a statusCode"
    );
    assert_eq!(
        err(r#""hello""#),
        "function output is JSON a string, not an object with a statusCode"
    );
    assert_eq!(
        err(r#"{"body": "x"}"#),
        "function response has no statusCode"
    );
    assert_eq!(
        err(r#"{"statusCode": null}"#),
        "function response has no statusCode"
    );
    for bad in [
        r#""200""#, "200.5", "-1", "99", "100", "600", "70000", "true",
    ] {
        assert!(
            err(&format!(r#"{{"statusCode": {bad}}}"#)).starts_with("function response statusCode"),
            "{bad}"
        );
    }
    assert_eq!(
        err(r#"{"statusCode": 200, "headers": {"bad name": "x"}}"#),
        r#"function response header name "bad name" is not a valid header name"#
    );
    assert_eq!(
        err(r#"{"statusCode": 200, "headers": {"x": "a\nb"}}"#),
        r#"function response header "x" has an invalid value: contains a control character or a non-visible byte"#
    );
    assert_eq!(
        err(r#"{"statusCode": 200, "headers": {"x": 5}}"#),
        r#"function response header "x" has an invalid value: expected a string, found a number"#
    );
    assert_eq!(
        err(r#"{"statusCode": 200, "headers": ["x"]}"#),
        "function response headers must be an object, not an array"
    );
    assert_eq!(
        err(r#"{"statusCode": 200, "body": {"a": 1}}"#),
        "function response body must be a string, not an object"
    );
    assert_eq!(
        err(r#"{"statusCode": 200, "body": "x", "isBase64Encoded": "yes"}"#),
        r#"function response isBase64Encoded must be true or false, not "yes""#
    );
    assert!(
        err(r#"{"statusCode": 200, "body": "!!!", "isBase64Encoded": true}"#)
            .starts_with("function response body is not valid base64: ")
    );
}

#[test]
fn sample_events_parse() {
    let hs = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("accept".to_string(), "application/json".to_string()),
    ];
    let v2_json = sample_event(
        EventVersion::V2,
        "POST",
        "/to-function?x=1",
        &hs,
        Some(r#"{"hello": "world"}"#),
        "us-west-2",
    )
    .expect("sample");
    assert!(
        v2_json.contains("\n  \"version\": \"2.0\""),
        "pretty, in order:\n{v2_json}"
    );
    let e2: VpcLatticeRequestV2 = serde_json::from_str(&v2_json).expect("V2");
    assert_eq!(e2.path.as_deref(), Some("/to-function?x=1"));
    assert_eq!(e2.body.as_deref(), Some(r#"{"hello": "world"}"#));
    assert_eq!(
        values(&e2.headers, "accept"),
        ["application/json"],
        "replaced the default"
    );
    assert_eq!(values(&e2.headers, "x-forwarded-for"), ["10.0.1.25"]);
    assert_eq!(values(&e2.headers, "content-length"), ["18"]);
    let host = values(&e2.headers, "host")[0].to_string();
    assert!(
        host.starts_with("my-service-") && host.ends_with(".vpc-lattice-svcs.us-west-2.on.aws"),
        "{host}"
    );
    let rc = &e2.request_context;
    assert!(
        rc.service_arn
            .starts_with("arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-")
    );
    assert_eq!(
        rc.service_arn.len(),
        "arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-".len() + 17
    );
    assert!(rc.service_network_arn.contains(":servicenetwork/sn-"));
    assert!(rc.target_group_arn.contains(":targetgroup/tg-"));
    assert!(host.contains(rc.service_arn.rsplit("svc-").next().expect("id")));

    let v1_json =
        sample_event(EventVersion::V1, "GET", "/", &[], None, "eu-west-1").expect("sample");
    let e1: VpcLatticeRequestV1 = serde_json::from_str(&v1_json).expect("V1");
    assert_eq!(e1.method, Some(http::Method::GET));
    assert_eq!(e1.raw_path.as_deref(), Some("/"));

    assert_eq!(
        sample_event(EventVersion::V1, "GET", "x", &[], None, "eu-west-1"),
        Err(SampleError::Path("x".into()))
    );
    assert!(matches!(
        sample_event(EventVersion::V1, "G T", "/", &[], None, "eu-west-1"),
        Err(SampleError::Method(_))
    ));
    assert!(matches!(
        sample_event(
            EventVersion::V1,
            "GET",
            "/",
            &[("a b".into(), "1".into())],
            None,
            "eu-west-1"
        ),
        Err(SampleError::HeaderName(_))
    ));
}
