//! Property-based fuzzing of the request path's pure parts, run as tests for a bounded number of
//! cases: the path normaliser and the rule matcher. Any input: an answer, never a panic; and
//! the answers keep the properties the rest of the router relies on.

use std::sync::{Arc, LazyLock};

use proptest::prelude::*;
use trellis_router::RoutingTable;
use trellis_router::accesslog::LogSinks;
use trellis_router::health::HealthMonitor;
use trellis_router::path::normalize;
use trellis_router::table::InertFactory;

const PORT: u16 = 8080;
const HOST: &str = "fuzz.trellis.localhost";

/// A listener whose rules cover every condition kind: method, exact and prefix paths (case
/// sensitive or not), header matches of each kind.
static TABLE: LazyLock<RoutingTable> = LazyLock::new(|| {
    let yaml = format!(
        r#"services:
  - name: fuzz
    listeners:
      - name: http
        protocol: HTTP
        port: {PORT}
        defaultAction: {{fixedResponse: {{statusCode: 404}}}}
        rules:
          - {{name: exact, priority: 1, match: {{httpMatch: {{pathMatch: {{match: {{exact: /exact}}}}}}}}, action: {{fixedResponse: {{statusCode: 201}}}}}}
          - {{name: admin, priority: 2, match: {{httpMatch: {{pathMatch: {{match: {{prefix: /admin}}}}}}}}, action: {{fixedResponse: {{statusCode: 403}}}}}}
          - {{name: cased, priority: 3, match: {{httpMatch: {{pathMatch: {{caseSensitive: true, match: {{prefix: /Case}}}}}}}}, action: {{fixedResponse: {{statusCode: 202}}}}}}
          - {{name: post, priority: 4, match: {{httpMatch: {{method: POST, headerMatches: [{{name: x-a, match: {{prefix: v}}}}, {{name: x-b, match: {{contains: z}}}}]}}}}, action: {{fixedResponse: {{statusCode: 204}}}}}}
          - {{name: hdr, priority: 5, match: {{httpMatch: {{headerMatches: [{{name: x-env, caseSensitive: true, match: {{exact: Prod}}}}]}}}}, action: {{fixedResponse: {{statusCode: 205}}}}}}
"#
    );
    let config = trellis_config::parse_str(&yaml, "fuzz.yaml").unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _guard = runtime.enter();
    let table = RoutingTable::build(
        Arc::new(config),
        &InertFactory,
        &HealthMonitor::new(),
        &LogSinks::new(),
    )
    .expect("table");
    // The table needs the runtime only to be built (health monitoring is off here).
    std::mem::forget(runtime);
    table
});

/// Path-like strings: slashes, dots, percent signs and letters, where the edge cases live.
fn path_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("/".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("%".to_string()),
            Just("%2e".to_string()),
            Just("%2F".to_string()),
            Just("%61".to_string()),
            "[a-zA-Z0-9_~-]{1,4}",
            "%[0-9a-fA-FzZ]{0,2}",
            "\\PC{1,2}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// The normal form is a fixed point with no empty, `.` or `..` segment, and it keeps the
    /// leading slash.
    #[test]
    fn normalizing_is_idempotent_and_leaves_no_dot_segments(raw in path_like()) {
        let path = format!("/{raw}");
        if let Ok(normal) = normalize(&path) {
            prop_assert!(normal.starts_with('/'), "{normal}");
            let again = normalize(&normal).ok().map(|p| p.into_owned());
            prop_assert_eq!(again.as_deref(), Some(normal.as_ref()));
            let inner = normal.trim_start_matches('/');
            let inner = inner.strip_suffix('/').unwrap_or(inner);
            if !inner.is_empty() {
                for segment in inner.split('/') {
                    prop_assert!(!segment.is_empty() && segment != "." && segment != "..", "{normal}");
                    prop_assert!(!segment.eq_ignore_ascii_case("%2e") , "{normal}");
                }
            }
        }
    }

    /// Any method, path and headers: one action, and a rule's conditions really hold for the
    /// rule that answered.
    #[test]
    fn the_matched_rule_holds_for_the_request(
        method in prop_oneof![Just("GET".to_string()), Just("POST".to_string()), "[A-Z]{1,7}"],
        raw in path_like(),
        x_a in proptest::option::of("[a-zA-Z]{0,3}"),
        x_b in proptest::option::of("[a-zA-Z]{0,3}"),
        x_env in proptest::option::of(prop_oneof![Just("Prod".to_string()), Just("prod".to_string()), "[a-z]{0,4}"]),
    ) {
        let (_, listener) = TABLE.find(PORT, HOST).expect("service");
        let path = format!("/{raw}");
        let mut headers = http::HeaderMap::new();
        for (name, value) in [("x-a", &x_a), ("x-b", &x_b), ("x-env", &x_env)] {
            if let Some(v) = value.as_deref().and_then(|v| http::HeaderValue::from_str(v).ok()) {
                headers.insert(name, v);
            }
        }
        let (_, rule) = listener.route(&method, &path, &headers);
        match rule {
            Some("exact") => prop_assert!(path.eq_ignore_ascii_case("/exact")),
            Some("admin") => prop_assert!(path.to_ascii_lowercase().starts_with("/admin")),
            Some("cased") => prop_assert!(path.starts_with("/Case")),
            Some("post") => {
                prop_assert_eq!(method.as_str(), "POST");
                prop_assert!(x_a.as_deref().is_some_and(|v| v.to_ascii_lowercase().starts_with('v')));
                prop_assert!(x_b.as_deref().is_some_and(|v| v.to_ascii_lowercase().contains('z')));
            }
            Some("hdr") => prop_assert_eq!(x_env.as_deref(), Some("Prod")),
            Some(other) => prop_assert!(false, "unknown rule {other}"),
            None => {
                prop_assert!(!path.to_ascii_lowercase().starts_with("/admin"));
                prop_assert!(x_env.as_deref() != Some("Prod"));
            }
        }
    }
}
