//! Rule matching: how long the router takes to pick a listener's action among 100 rules (the
//! request-path phases "find service" and "match rule"). Run with `cargo bench -p trellis-router`
//! or `make bench`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use trellis_config::Config;
use trellis_router::RoutingTable;
use trellis_router::accesslog::LogSinks;
use trellis_router::health::HealthMonitor;
use trellis_router::table::InertFactory;

const RULES: usize = 100;
const PORT: u16 = 8080;

/// Never called: rule matching only needs the table's shape, not a working target.
fn config() -> Config {
    let mut rules = String::new();
    for i in 0..RULES {
        rules.push_str(&format!(
            "          - {{name: route-{i}, priority: {p}, match: {{httpMatch: {{method: GET, pathMatch: {{match: {{prefix: /api/{i}/}}}}, headerMatches: [{{name: x-tenant, match: {{exact: \"{i}\"}}}}]}}}}, action: {{forward: {{targetGroups: [{{targetGroupIdentifier: bench-tg}}]}}}}}}\n",
            p = i + 1
        ));
    }
    let yaml = format!(
        r#"services:
  - name: bench
    listeners:
      - name: http
        protocol: HTTP
        port: {PORT}
        defaultAction: {{fixedResponse: {{statusCode: 404}}}}
        rules:
{rules}targetGroups:
  - name: bench-tg
    type: INSTANCE
    config: {{port: 9, healthCheck: {{enabled: false}}}}
    targets: [{{id: 127.0.0.1}}]
"#
    );
    trellis_config::parse_str(&yaml, "bench.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn rules(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let _guard = runtime.enter();
    let table = RoutingTable::build(
        Arc::new(config()),
        &InertFactory,
        &HealthMonitor::new(),
        &LogSinks::new(),
    )
    .expect("table");
    let host = "bench.trellis.localhost";
    let mut headers = http::HeaderMap::new();
    headers.insert("x-tenant", http::HeaderValue::from_static("99"));
    headers.insert("user-agent", http::HeaderValue::from_static("bench/1.0"));
    headers.insert("accept", http::HeaderValue::from_static("*/*"));

    let mut group = c.benchmark_group("route_100_rules");
    group.bench_function("find_service", |b| {
        b.iter(|| black_box(table.find(PORT, black_box(host)).is_some()))
    });
    let (_, listener) = table.find(PORT, host).expect("the service");
    group.bench_function("first_rule_matches", |b| {
        let mut first = headers.clone();
        first.insert("x-tenant", http::HeaderValue::from_static("0"));
        b.iter(|| {
            let (_, rule) = listener.route("GET", black_box("/api/0/items"), &first);
            black_box(rule.is_some())
        })
    });
    group.bench_function("last_rule_matches", |b| {
        b.iter(|| {
            let (_, rule) = listener.route("GET", black_box("/api/99/items"), &headers);
            assert_eq!(rule, Some("route-99"));
        })
    });
    group.bench_function("no_rule_matches_default_action", |b| {
        b.iter(|| {
            let (_, rule) = listener.route("GET", black_box("/other"), &headers);
            black_box(rule.is_none())
        })
    });
    group.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
