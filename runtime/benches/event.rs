//! The Lattice event codec: encoding a request as a V2 (and V1) event, and decoding a
//! function's response, the two steps every LAMBDA invocation adds to a proxied request. Run with
//! `cargo bench -p trellis-runtime` or `make bench`.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use trellis_config::EventVersion;
use trellis_runtime::event::{EventRequest, decode_response, encode};

/// A typical API request: ten headers, a query string and a 1 KB JSON body.
fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "orders.trellis.localhost"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("x-forwarded-for", "10.0.0.7"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-port", "80"),
        ("x-amzn-requestid", "5f0d3f4e-8a7b-4c1d-9e2f-0a1b2c3d4e5f"),
        (
            "x-amzn-lattice-network",
            "SourceVpcArn=arn:aws:ec2:us-east-1:123456789012:vpc/vpc-0123456789abcdef0",
        ),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

fn body() -> Vec<u8> {
    let items: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"sku":"SKU-{i:05}","quantity":{i},"note":"gift"}}"#))
        .collect();
    format!(r#"{{"customer":"c-42","items":[{}]}}"#, items.join(",")).into_bytes()
}

/// What a function typically answers: a JSON body and a few headers.
const RESPONSE: &[u8] = br#"{"statusCode":200,"statusDescription":"200 OK","isBase64Encoded":false,"headers":{"content-type":"application/json","x-request-id":"abc"},"body":"{\"ok\":true,\"order\":\"o-1234\",\"total\":99.5}"}"#;

fn codec(c: &mut Criterion) {
    let headers = headers();
    let body = body();
    let request = EventRequest {
        method: "POST",
        path_and_query: "/orders/42/items?expand=prices&lang=en",
        headers: &headers,
        body: &body,
        service_network_arn: Some(
            "arn:aws:vpc-lattice:us-east-1:123456789012:servicenetwork/sn-0123456789abcdef0",
        ),
        service_arn: "arn:aws:vpc-lattice:us-east-1:123456789012:service/svc-0123456789abcdef0",
        target_group_arn: "arn:aws:vpc-lattice:us-east-1:123456789012:targetgroup/tg-0123456789abcdef0",
        source_vpc_arn: Some("arn:aws:ec2:us-east-1:123456789012:vpc/vpc-0123456789abcdef0"),
        region: "us-east-1",
        identity_type: "NONE",
        principal: None,
        principal_org_id: None,
        session_name: None,
        time: SystemTime::now(),
    };
    let mut group = c.benchmark_group("lattice_event");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_v2", |b| {
        b.iter(|| black_box(encode(black_box(&request), EventVersion::V2)))
    });
    group.bench_function("encode_v1", |b| {
        b.iter(|| black_box(encode(black_box(&request), EventVersion::V1)))
    });
    group.bench_function("decode_response", |b| {
        b.iter(|| {
            let response = decode_response(black_box(RESPONSE)).expect("a valid response");
            assert_eq!(response.status(), 200);
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
