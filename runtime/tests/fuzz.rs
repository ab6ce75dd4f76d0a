//! Property-based fuzzing of the Lambda event codec, run as tests for a bounded number of cases:
//! any request becomes an event that `aws_lambda_events` (a decoder nobody here wrote) reads
//! back, and any bytes a function answers with are decoded or refused, never a panic.

use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::vpc_lattice::{VpcLatticeRequestV1, VpcLatticeRequestV2};
use proptest::prelude::*;
use trellis_config::EventVersion;
use trellis_runtime::event::{EventRequest, decode_response, encode, parse_query};

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("content-type".to_string()),
        Just("content-encoding".to_string()),
        Just("x-repeated".to_string()),
        "[a-z][a-z0-9-]{0,12}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("application/json".to_string()),
        Just("text/plain; charset=utf-8".to_string()),
        Just("gzip".to_string()),
        Just("application/octet-stream".to_string()),
        "[ -~]{0,20}",
    ]
}

fn path_and_query() -> impl Strategy<Value = String> {
    (
        "[a-zA-Z0-9/._~%-]{0,20}",
        proptest::option::of("[a-zA-Z0-9=&%+._~-]{0,30}"),
    )
        .prop_map(|(path, query)| match query {
            Some(q) => format!("/{path}?{q}"),
            None => format!("/{path}"),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn any_request_encodes_to_an_event_aws_lambda_events_reads(
        method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE")],
        target in path_and_query(),
        headers in proptest::collection::vec((header_name(), header_value()), 0..8),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        v2 in any::<bool>(),
    ) {
        let mut map = http::HeaderMap::new();
        for (name, value) in &headers {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                map.append(n, v);
            }
        }
        let request = EventRequest {
            method,
            path_and_query: &target,
            headers: &map,
            body: &body,
            service_network_arn: None,
            service_arn: "arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0123456789abcdef0",
            target_group_arn: "arn:aws:vpc-lattice:us-west-2:123456789012:targetgroup/tg-0123456789abcdef0",
            source_vpc_arn: None,
            region: "us-west-2",
            identity_type: "NONE",
            principal: None,
            principal_org_id: None,
            session_name: None,
            time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        };
        if v2 {
            let event = encode(&request, EventVersion::V2);
            let decoded: VpcLatticeRequestV2 = serde_json::from_slice(&event)
                .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&event))))?;
            prop_assert_eq!(decoded.method.as_ref().map(http::Method::as_str), Some(method));
            prop_assert_eq!(decoded.path.as_deref(), Some(target.as_str()));
        } else {
            let event = encode(&request, EventVersion::V1);
            let decoded: VpcLatticeRequestV1 = serde_json::from_slice(&event)
                .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&event))))?;
            prop_assert_eq!(decoded.method.as_ref().map(http::Method::as_str), Some(method));
            prop_assert_eq!(decoded.raw_path.as_deref(), Some(target.as_str()));
        }
    }

    #[test]
    fn any_answer_is_decoded_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_response(&bytes);
    }

    #[test]
    fn response_shaped_json_is_decoded_or_refused(
        status in prop_oneof![any::<i64>().prop_map(|n| n.to_string()), Just("\"200\"".to_string()), Just("200.5".to_string()), Just("null".to_string())],
        header in prop_oneof![Just("\"v\"".to_string()), Just("[\"a\",\"b\"]".to_string()), Just("7".to_string()), Just("{}".to_string())],
        body in "[ -~]{0,40}",
        base64 in any::<bool>(),
    ) {
        let json = format!(
            r#"{{"statusCode": {status}, "headers": {{"x-h": {header}}}, "body": {}, "isBase64Encoded": {base64}}}"#,
            serde_json::Value::String(body)
        );
        if let Ok(response) = decode_response(json.as_bytes()) {
            prop_assert!((200..=599).contains(&response.status().as_u16()), "{json}");
        }
    }

    #[test]
    fn any_query_string_is_parsed(query in "[ -~]{0,80}") {
        for (key, values) in parse_query(&query) {
            prop_assert!(!values.is_empty(), "{key}");
        }
    }
}
