//! The REST layer against a small [`Operations`] written here (a double below the layer under
//! test): it echoes each call, so the tests see exactly what the layer decoded.

use std::collections::HashSet;

use super::*;

const REGION: &str = "us-west-2";
const SVC: &str = "svc-0123456789abcdefg";
const SVC_ARN: &str = "arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0123456789abcdefg";

/// Implements the operations in `only` (all when `None`), answering `{"operation", "input"}`,
/// or the error in `fail`.
struct Echo {
    only: Option<HashSet<&'static str>>,
    fail: Option<ApiError>,
}

impl Operations for Echo {
    fn region(&self) -> String {
        REGION.to_owned()
    }
    fn implements(&self, operation: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(operation))
    }
    fn call(&self, call: Call) -> crate::Pending<'_> {
        let answer = match &self.fail {
            Some(e) => Err(e.clone()),
            None => {
                let mut out = Map::new();
                out.insert("operation".into(), json!(call.operation));
                out.insert("input".into(), Value::Object(call.input));
                Ok(out)
            }
        };
        Box::pin(async move { answer })
    }
}

/// Answers with an empty output.
struct Empty;

impl Operations for Empty {
    fn region(&self) -> String {
        REGION.to_owned()
    }
    fn implements(&self, _: &str) -> bool {
        true
    }
    fn call(&self, _: Call) -> crate::Pending<'_> {
        Box::pin(async { Ok(Map::new()) })
    }
}

fn echo() -> Api {
    Api::new(Arc::new(Echo {
        only: None,
        fail: None,
    }))
}

fn nothing() -> Api {
    Api::new(Arc::new(Echo {
        only: Some(HashSet::new()),
        fail: None,
    }))
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
    raw: Bytes,
}

impl Answer {
    fn error_type(&self) -> &str {
        self.headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

fn run(api: &Api, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let response =
        runtime.block_on(api.handle(&method, target, &map, Bytes::copy_from_slice(body)));
    let raw = response.body().clone();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw,
    }
}

/// Checks the answer is an error as AWS sends it: status, `x-amzn-ErrorType`, a JSON body with
/// `message` and `__type`.
fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", String::from_utf8_lossy(&a.raw));
    assert_eq!(a.error_type(), code);
    assert_eq!(a.body["__type"], code);
    assert!(!a.message().is_empty());
    assert_eq!(a.headers["content-type"], "application/json");
    assert!(a.headers.contains_key("x-amzn-requestid"));
}

/// A path for `op` with `value` in every label.
fn path_of(op: &model::Operation, value: &str) -> String {
    op.segments
        .iter()
        .map(|s| match s {
            Segment::Literal(l) => format!("/{l}"),
            Segment::Label(_) => format!("/{value}"),
        })
        .collect()
}

#[test]
fn every_operation_of_the_model_routes_to_itself() {
    let ops = &model::model().operations;
    assert_eq!(ops.len(), 73);
    for op in ops {
        for value in [
            "x",
            SVC,
            "arn%3Aaws%3Avpc-lattice%3Aus-west-2%3A1%3Aservice%2Fsvc-1",
        ] {
            let (found, labels) = route(&op.method, &path_of(op, value)).expect(&op.name);
            assert_eq!(found.name, op.name, "{} {}", op.method, op.template);
            assert!(labels.iter().all(|(_, v)| v == value));
        }
    }
}

#[test]
fn the_operations_are_listed_with_their_routes() {
    let all: Vec<_> = operations().collect();
    assert_eq!(all.len(), 73);
    assert!(all.contains(&("GetService", &Method::GET, "/services/{serviceIdentifier}")));
}

#[test]
fn every_operation_not_implemented_answers_an_error_naming_it() {
    let api = nothing();
    for op in &model::model().operations {
        let a = run(&api, op.method.as_str(), &path_of(op, SVC), &[], b"");
        assert_error(&a, 400, "ValidationException");
        assert_eq!(a.body["reason"], "unknownOperation");
        assert!(
            a.message()
                .starts_with(&format!("{} is not supported by Trellis", op.name)),
            "{}",
            a.message()
        );
    }
}

#[test]
fn query_members_are_typed_by_their_shapes() {
    let a = run(
        &echo(),
        "GET",
        "/services?maxResults=5&nextToken=abc%20d",
        &[],
        b"",
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.body["operation"], "ListServices");
    assert_eq!(
        a.body["input"],
        json!({"maxResults": 5, "nextToken": "abc d"})
    );

    let target = format!(
        "/tags/{}?tagKeys=team&tagKeys=a%2Bb&tagKeys=c+d",
        SVC_ARN.replace(':', "%3A").replace('/', "%2F")
    );
    let a = run(&echo(), "DELETE", &target, &[], b"");
    assert_eq!(a.body["operation"], "UntagResource");
    assert_eq!(
        a.body["input"],
        json!({"resourceArn": SVC_ARN, "tagKeys": ["team", "a+b", "c+d"]})
    );

    // A boolean query member.
    let a = run(
        &echo(),
        "GET",
        "/servicenetworkresourceassociations?includeChildren=true",
        &[],
        b"",
    );
    assert_eq!(a.body["input"], json!({"includeChildren": true}));
    let a = run(
        &echo(),
        "GET",
        "/servicenetworkresourceassociations?includeChildren=yes",
        &[],
        b"",
    );
    assert_error(&a, 400, "ValidationException");
    assert_eq!(a.body["fieldList"][0]["name"], "includeChildren");
}

#[test]
fn query_values_out_of_their_shape_are_field_errors() {
    for (query, constraint) in [
        ("maxResults=abc", "must be an integer"),
        ("maxResults=0", "greater than or equal to 1"),
        ("maxResults=101", "less than or equal to 100"),
        ("maxResults=99999999999999999999999", "must be an integer"),
        ("maxResults=1&maxResults=2", "given 2 times"),
    ] {
        let a = run(&echo(), "GET", &format!("/services?{query}"), &[], b"");
        assert_error(&a, 400, "ValidationException");
        assert_eq!(a.body["reason"], "fieldValidationFailed", "{query}");
        assert_eq!(a.body["fieldList"][0]["name"], "maxResults", "{query}");
        assert!(a.message().contains(constraint), "{query}: {}", a.message());
    }
    // Parameters the model does not know are ignored, as by AWS.
    let a = run(&echo(), "GET", "/services?foo=bar", &[], b"");
    assert_eq!(a.body["input"], json!({}));
}

#[test]
fn uri_labels_are_percent_decoded_and_checked() {
    let encoded = SVC_ARN.replace(':', "%3A").replace('/', "%2F");
    let a = run(&echo(), "GET", &format!("/services/{encoded}"), &[], b"");
    assert_eq!(a.status, 200);
    assert_eq!(a.body["input"], json!({"serviceIdentifier": SVC_ARN}));

    let a = run(&echo(), "GET", "/services/Bad_Name", &[], b"");
    assert_error(&a, 400, "ValidationException");
    assert_eq!(a.body["fieldList"][0]["name"], "serviceIdentifier");
    assert!(a.message().contains("regular expression pattern"));
}

#[test]
fn body_members_are_checked_against_the_input_shape() {
    let body = json!({"name": "billing", "authType": "AWS_IAM", "tags": {"team": "a"},
                      "clientToken": "t-1", "unknownMember": 1, "certificateArn": null});
    let a = run(
        &echo(),
        "POST",
        "/services",
        &[],
        body.to_string().as_bytes(),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["operation"], "CreateService");
    assert_eq!(
        a.body["input"],
        json!({"name": "billing", "authType": "AWS_IAM", "tags": {"team": "a"}, "clientToken": "t-1"}),
        "unknown members and nulls are dropped"
    );

    let a = run(&echo(), "POST", "/services", &[], br#"{"name":"Bad_Name"}"#);
    assert_error(&a, 400, "ValidationException");
    assert_eq!(a.body["reason"], "fieldValidationFailed");
    assert_eq!(a.body["fieldList"][0]["name"], "name");
    assert!(
        a.message().starts_with(
            "1 validation error detected: Value 'Bad_Name' at 'name' failed to satisfy constraint"
        ),
        "{}",
        a.message()
    );

    let a = run(&echo(), "POST", "/services", &[], b"{}");
    assert_error(&a, 400, "ValidationException");
    assert_eq!(
        a.body["fieldList"],
        json!([{"name": "name", "message": "Value null at 'name' failed to satisfy constraint: Member must not be null"}])
    );

    let body = json!({"name": "billing", "authType": "SOMETIMES", "idleTimeoutSeconds": 5,
                      "tags": {"k": 7}});
    let a = run(
        &echo(),
        "POST",
        "/services",
        &[],
        body.to_string().as_bytes(),
    );
    assert_error(&a, 400, "ValidationException");
    let names: Vec<&str> = a.body["fieldList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["authType", "idleTimeoutSeconds", "tags.k"]);
    assert!(a.message().starts_with("3 validation errors detected"));
}

#[test]
fn nested_shapes_lists_and_unions_are_checked() {
    let listener = "/services/svc-0123456789abcdefg/listeners/listener-0123456789abcdefg/rules";
    let good = json!({"name": "first", "priority": 10,
        "match": {"httpMatch": {"pathMatch": {"match": {"prefix": "/a"}}}},
        "action": {"fixedResponse": {"statusCode": 404}}});
    let a = run(&echo(), "POST", listener, &[], good.to_string().as_bytes());
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["input"]["serviceIdentifier"], SVC);

    let two = json!({"name": "first", "priority": 3000,
        "match": {"httpMatch": {"pathMatch": {"match": {"prefix": "/a", "exact": "/b"}}}},
        "action": {"forward": {"targetGroups": [{"targetGroupIdentifier": "tg-0123456789abcdefg", "weight": 1000}]}}});
    let a = run(&echo(), "POST", listener, &[], two.to_string().as_bytes());
    assert_error(&a, 400, "ValidationException");
    let names: Vec<&str> = a.body["fieldList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        // In the model's member order (alphabetical).
        [
            "action.forward.targetGroups[0].weight",
            "match.httpMatch.pathMatch.match",
            "priority"
        ],
        "{}",
        a.body
    );

    let union = json!({"name": "first", "priority": 3,
        "match": {"httpMatch": {"pathMatch": {"match": {"prefix": "/a", "exact": "/b"}}}},
        "action": {"fixedResponse": {"statusCode": 404}}});
    let a = run(&echo(), "POST", listener, &[], union.to_string().as_bytes());
    assert_error(&a, 400, "ValidationException");
    assert_eq!(
        a.body["fieldList"][0]["name"],
        "match.httpMatch.pathMatch.match"
    );

    // A list under its minimum, and a wrong type inside a list.
    let tg = "/targetgroups/tg-0123456789abcdefg/registertargets";
    let a = run(&echo(), "POST", tg, &[], br#"{"targets": []}"#);
    assert_error(&a, 400, "ValidationException");
    assert_eq!(a.body["fieldList"][0]["name"], "targets");
    let a = run(&echo(), "POST", tg, &[], br#"{"targets": [{"id": 1}]}"#);
    assert_eq!(a.body["fieldList"][0]["name"], "targets[0].id");
    let a = run(&echo(), "POST", tg, &[], br#"{"targets": "10.0.0.1"}"#);
    assert_eq!(a.body["fieldList"][0]["name"], "targets");
    // Relaxed: a VPC named by its config name.
    let a = run(
        &echo(),
        "POST",
        "/servicenetworkvpcassociations",
        &[],
        br#"{"serviceNetworkIdentifier": "sn-0123456789abcdefg", "vpcIdentifier": "dev"}"#,
    );
    assert_eq!(a.status, 200, "{}", a.body);
}

#[test]
fn success_codes_and_bodies_follow_the_model() {
    let api = Api::new(Arc::new(Empty));
    let a = run(&api, "GET", "/services", &[], b"");
    assert_eq!((a.status, a.raw.as_ref()), (200, &b"{}"[..]));
    assert_eq!(a.headers["content-type"], "application/json");
    assert!(!a.headers.contains_key("x-amzn-errortype"));
    let a = run(
        &api,
        "DELETE",
        "/servicenetworks/sn-0123456789abcdefg",
        &[],
        b"",
    );
    assert_eq!((a.status, a.raw.len()), (204, 0));
    assert!(!a.headers.contains_key("content-type"));
    let a = run(&api, "POST", "/servicenetworks", &[], br#"{"name":"net"}"#);
    assert_eq!(a.status, 201);
    // Associations are 200, as the model says.
    let a = run(
        &api,
        "POST",
        "/servicenetworkserviceassociations",
        &[],
        br#"{"serviceNetworkIdentifier":"sn-0123456789abcdefg","serviceIdentifier":"svc-0123456789abcdefg"}"#,
    );
    assert_eq!(a.status, 200);
}

#[test]
fn errors_of_the_operations_are_sent_as_aws_does() {
    let api = Api::new(Arc::new(Echo {
        only: None,
        fail: Some(ApiError::NotFound {
            message: "no service svc-0123456789abcdefg".into(),
            resource_id: SVC.into(),
            resource_type: "SERVICE".into(),
        }),
    }));
    let a = run(&api, "GET", &format!("/services/{SVC}"), &[], b"");
    assert_error(&a, 404, "ResourceNotFoundException");
    assert_eq!(a.body["resourceId"], SVC);
    assert_eq!(a.body["resourceType"], "SERVICE");
}

#[test]
fn unknown_routes_answer_unknown_operation() {
    for (method, target) in [
        ("GET", "/nope"),
        ("GET", "/"),
        ("GET", ""),
        ("GET", "services"),
        ("GET", "//services"),
        ("GET", "/services/"),
        ("GET", "/services/../servicenetworks"),
        ("GET", "/services//listeners/x"),
        ("PATCH", "/services"),
        ("GET", "/SERVICES"),
        ("BREW", "/services"),
    ] {
        let a = run(&echo(), method, target, &[], b"");
        assert_error(&a, 404, "UnknownOperationException");
        assert!(
            a.message().starts_with("Unknown operation"),
            "{method} {target}"
        );
    }
    let a = run(&echo(), "PATCH", "/services", &[], b"");
    assert!(
        a.message()
            .contains("this path takes GET (ListServices), POST (CreateService)"),
        "{}",
        a.message()
    );
}

#[test]
fn the_signed_region_must_be_the_configs() {
    let auth = |region: &str, service: &str| {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/{region}/{service}/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
        )
    };
    let a = run(
        &echo(),
        "GET",
        "/services",
        &[("authorization", &auth(REGION, "vpc-lattice"))],
        b"",
    );
    assert_eq!(a.status, 200);
    let a = run(
        &echo(),
        "GET",
        "/services",
        &[("authorization", &auth("eu-west-1", "vpc-lattice"))],
        b"",
    );
    assert_error(&a, 403, "InvalidSignatureException");
    assert!(
        a.message().contains("'eu-west-1'") && a.message().contains("'us-west-2'"),
        "{}",
        a.message()
    );
    let a = run(
        &echo(),
        "GET",
        "/services",
        &[("authorization", &auth(REGION, "vpc-lattice-svcs"))],
        b"",
    );
    assert_error(&a, 403, "InvalidSignatureException");
    assert!(a.message().contains("vpc-lattice-svcs"));
    // Presigned, in the query.
    let a = run(
        &echo(),
        "GET",
        "/services?X-Amz-Credential=AKID%2F20260101%2Feu-west-1%2Fvpc-lattice%2Faws4_request",
        &[],
        b"",
    );
    assert_error(&a, 403, "InvalidSignatureException");
    // SigV4A: the region set.
    let v4a = "AWS4-ECDSA-P256-SHA256 Credential=AKID/20260101/vpc-lattice/aws4_request, SignedHeaders=host, Signature=00";
    let a = run(
        &echo(),
        "GET",
        "/services",
        &[("authorization", v4a), ("x-amz-region-set", "eu-west-1")],
        b"",
    );
    assert_error(&a, 403, "InvalidSignatureException");
    let a = run(
        &echo(),
        "GET",
        "/services",
        &[("authorization", v4a), ("x-amz-region-set", "*")],
        b"",
    );
    assert_eq!(a.status, 200);
    // A scope that is not one.
    let a = run(
        &echo(),
        "GET",
        "/services",
        &[("authorization", "AWS4-HMAC-SHA256 Credential=garbage")],
        b"",
    );
    assert_error(&a, 403, "InvalidSignatureException");
    // Other Authorization schemes carry no scope: accepted like unsigned requests.
    let a = run(
        &echo(),
        "GET",
        "/services",
        &[("authorization", "Bearer x")],
        b"",
    );
    assert_eq!(a.status, 200);
}

#[test]
fn hostile_bodies_are_refused_clearly() {
    let api = echo();
    let create = |body: &[u8]| run(&api, "POST", "/services", &[], body);

    let a = create(b"{\"name\": \"x\",\n  oops}");
    assert_error(&a, 400, "ValidationException");
    assert_eq!(a.body["reason"], "cannotParse");
    assert!(a.message().contains("line 2, column 3"), "{}", a.message());

    for (body, what) in [
        (&b"[1,2]"[..], "an array"),
        (b"\"name\"", "a string"),
        (b"7", "a number"),
        (b"null", "null"),
        (b"true", "a boolean"),
    ] {
        let a = create(body);
        assert_error(&a, 400, "ValidationException");
        assert!(a.message().contains(what), "{}", a.message());
    }
    for body in [
        &b"\xff\xfe{}"[..],
        b"{\"name\": \"\xc3\x28\"}",
        b"{",
        b"{}}",
        b"\0",
    ] {
        let a = create(body);
        assert_error(&a, 400, "ValidationException");
        assert_eq!(a.body["reason"], "cannotParse");
    }
    // Deep nesting: serde_json's recursion limit, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let a = create(deep.as_bytes());
    assert_error(&a, 400, "ValidationException");
    let deep = format!(
        r#"{{"name": "a", "tags": {}{}}}"#,
        "{\"a\":".repeat(100),
        "}".repeat(100)
    );
    let a = create(deep.as_bytes());
    assert_error(&a, 400, "ValidationException");
    // Over the bound.
    let big = vec![b' '; MAX_BODY + 1];
    let a = create(&big);
    assert_error(&a, 413, "ValidationException");
    // Long values are cut in messages.
    let long = format!(r#"{{"name": "{}"}}"#, "a".repeat(100_000));
    let a = create(long.as_bytes());
    assert_error(&a, 400, "ValidationException");
    assert!(a.raw.len() < 2_000, "{}", a.raw.len());
}

#[test]
fn hostile_paths_are_refused_clearly() {
    let api = echo();
    for target in [
        "/services/%zz",
        "/services/%",
        "/services/%4",
        "/services/%c3%28",
        "/services/%C3",
    ] {
        let a = run(&api, "GET", target, &[], b"");
        assert_error(&a, 400, "ValidationException");
        assert_eq!(a.body["reason"], "cannotParse", "{target}");
    }
    for target in [
        "/services?maxResults=%zz",
        "/services?%=1",
        "/services?nextToken=%ff",
    ] {
        let a = run(&api, "GET", target, &[], b"");
        assert_error(&a, 400, "ValidationException");
    }
    for target in [
        "/services/..",
        "/services/.",
        "/services/%2e%2e",
        "/services/%2F",
        "/services/svc-%00",
    ] {
        let a = run(&api, "GET", target, &[], b"");
        assert_error(&a, 400, "ValidationException");
        assert_eq!(
            a.body["fieldList"][0]["name"], "serviceIdentifier",
            "{target}"
        );
    }
    let long = format!("/services/{}", "a".repeat(1_000_000));
    let a = run(&api, "GET", &long, &[], b"");
    assert_error(&a, 400, "ValidationException");
    assert!(a.message().contains("length less than or equal to 2048"));
    assert!(a.raw.len() < 2_000);
    let long = format!("/nope/{}", "a".repeat(1_000_000));
    let a = run(&api, "GET", &long, &[], b"");
    assert_error(&a, 404, "UnknownOperationException");
    assert!(a.raw.len() < 2_000);
    let many = format!("/services?{}", "tagKeys=a&".repeat(100_000));
    let a = run(&api, "GET", &many, &[], b"");
    assert_eq!(a.status, 200);
    let many = format!(
        "/tags/{}?{}",
        SVC_ARN.replace('/', "%2F"),
        "tagKeys=a&".repeat(300)
    );
    let a = run(&api, "DELETE", &many, &[], b"");
    assert_error(&a, 400, "ValidationException");
    assert_eq!(a.body["fieldList"][0]["name"], "tagKeys");
}

#[test]
fn request_ids_differ() {
    let a = run(&echo(), "GET", "/services", &[], b"");
    let b = run(&echo(), "GET", "/services", &[], b"");
    assert_ne!(a.headers["x-amzn-requestid"], b.headers["x-amzn-requestid"]);
    assert_eq!(a.headers["x-amzn-requestid"].len(), 36);
}
