//! End-to-end routing: rule matching, priorities, fixed responses, weights, admission by VPC,
//! host selection, the headers a target sees, and access logs. Every test starts the real
//! `trellis` binary on its own free ports, with real backends in the test process.
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------------------------------------
// Config building blocks. Every target group has health checks off, so probes never reach the
// backends (they would show up in `seen`) and every target is in service from the start.

/// A target group `name` over backends on `ports`.
fn tg(name: &str, ports: &[u16]) -> String {
    let targets: Vec<String> = ports
        .iter()
        .map(|p| format!("{{id: 127.0.0.1, port: {p}}}"))
        .collect();
    format!(
        "  - name: {name}\n    type: INSTANCE\n    config: {{port: 80, protocol: HTTP, healthCheck: {{enabled: false}}}}\n    targets: [{}]\n",
        targets.join(", ")
    )
}

/// [`tg`] for the config builder.
fn group(name: &str, ports: &[u16]) -> TargetGroup {
    TargetGroup::instance(name, ports).no_health_checks()
}

/// `forward` to one target group (weight left to its default).
fn fwd(tg: &str) -> String {
    format!("{{forward: {{targetGroups: [{{targetGroupIdentifier: {tg}}}]}}}}")
}

/// `forward` over weighted target groups.
fn fwd_weighted(groups: &[(&str, u16)]) -> String {
    let items: Vec<String> = groups
        .iter()
        .map(|(tg, w)| format!("{{targetGroupIdentifier: {tg}, weight: {w}}}"))
        .collect();
    format!("{{forward: {{targetGroups: [{}]}}}}", items.join(", "))
}

fn fixed(status: u16) -> String {
    format!("{{fixedResponse: {{statusCode: {status}}}}}")
}

/// One rule, as an item of a listener's `rules` list. `http_match` is the `httpMatch` mapping.
fn rule(name: &str, priority: u16, http_match: &str, action: &str) -> String {
    format!(
        "          - {{name: {name}, priority: {priority}, match: {{httpMatch: {http_match}}}, action: {action}}}\n"
    )
}

/// One service `svc` with one HTTP listener on `port`.
fn one_service(port: u16, default_action: &str, rules: &str, tgs: &str) -> String {
    let rules = if rules.is_empty() {
        " []\n".to_string()
    } else {
        format!("\n{rules}")
    };
    format!(
        r#"region: us-west-2
services:
  - name: svc
    listeners:
      - name: http
        protocol: HTTP
        port: {port}
        defaultAction: {default_action}
        rules:{rules}targetGroups:
{tgs}"#
    )
}

const HOST: &str = "svc.trellis.localhost";

/// Who answered: the backend's name, or `status N` for an answer no backend gave.
fn who(a: &Answer) -> String {
    match a.headers.get("x-backend") {
        Some(v) => v.to_str().unwrap().to_string(),
        None => format!("status {}", a.status),
    }
}

/// A request and the answerer it should reach.
struct Case<'a> {
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    expect: &'a str,
}

fn case<'a>(
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    expect: &'a str,
) -> Case<'a> {
    Case {
        method,
        path,
        headers,
        expect,
    }
}

/// Sends every case and fails once, listing every case that went elsewhere.
async fn check_cases(trellis: &Trellis, port: u16, cases: &[Case<'_>]) {
    let client = http1_client();
    let mut wrong = Vec::new();
    for c in cases {
        let a = send(&client, port, HOST, c.method, c.path, c.headers, "").await;
        let got = who(&a);
        if got != c.expect {
            wrong.push(format!(
                "{} {} {:?}: expected {}, got {got} ({:?})",
                c.method, c.path, c.headers, c.expect, a.body
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "misrouted requests:\n  {}\ntrellis stderr:\n{}",
        wrong.join("\n  "),
        trellis.stderr()
    );
}

/// `n` GETs of `path` sent by 16 concurrent tasks over one pooled client.
async fn blast(port: u16, host: &str, path: &str, n: usize) -> Vec<Answer> {
    let client = http1_client();
    let tasks = 16;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let client = client.clone();
        let host = host.to_string();
        let path = path.to_string();
        let count = n / tasks + usize::from(t < n % tasks);
        handles.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(count);
            for _ in 0..count {
                out.push(get(&client, port, &host, &path).await);
            }
            out
        }));
    }
    let mut all = Vec::with_capacity(n);
    for h in handles {
        all.extend(h.await.expect("request task"));
    }
    assert_eq!(all.len(), n);
    all
}

fn is_uuid_like(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

// ---------------------------------------------------------------------------------------------
// 1. Rule matching

#[tokio::test(flavor = "multi_thread")]
async fn method_match_is_exact_and_case_sensitive() {
    let purge = Backend::start("purge").await;
    let getter = Backend::start("getter").await;
    let dflt = Backend::start("default").await;
    let port = free_port();
    let rules = rule("purge-rule", 10, "{method: PURGE}", &fwd("purge-tg"))
        + &rule("get-rule", 20, "{method: GET}", &fwd("get-tg"));
    let tgs = tg("purge-tg", &[purge.port])
        + &tg("get-tg", &[getter.port])
        + &tg("dflt-tg", &[dflt.port]);
    let trellis = Trellis::start(&one_service(port, &fwd("dflt-tg"), &rules, &tgs), &[]);
    check_cases(
        &trellis,
        port,
        &[
            case("PURGE", "/x", &[], "purge"),
            // Methods are case-sensitive: a lower-case custom method is another method.
            case("purge", "/x", &[], "default"),
            case("Purge", "/x", &[], "default"),
            case("GET", "/x", &[], "getter"),
            case("POST", "/x", &[], "default"),
            case("PUT", "/x", &[], "default"),
        ],
    )
    .await;
    // The custom method reached the target unchanged.
    assert_eq!(purge.last_seen().method, "PURGE");
    assert_eq!(dflt.seen.lock().unwrap()[0].method, "purge");
}

#[tokio::test(flavor = "multi_thread")]
async fn path_match_exact_prefix_and_case() {
    let names = ["exact-ci", "exact-cs", "prefix-ci", "prefix-cs", "default"];
    let mut backends = HashMap::new();
    for n in names {
        backends.insert(n, Backend::start(n).await);
    }
    let port = free_port();
    let rules = rule(
        "exact-ci",
        10,
        "{pathMatch: {match: {exact: /Exact}}}",
        &fwd("exact-ci-tg"),
    ) + &rule(
        "exact-cs",
        20,
        "{pathMatch: {match: {exact: /CaseExact}, caseSensitive: true}}",
        &fwd("exact-cs-tg"),
    ) + &rule(
        "prefix-ci",
        30,
        "{pathMatch: {match: {prefix: /Pre}}}",
        &fwd("prefix-ci-tg"),
    ) + &rule(
        "prefix-cs",
        40,
        "{pathMatch: {match: {prefix: /CasePre}, caseSensitive: true}}",
        &fwd("prefix-cs-tg"),
    );
    let mut tgs = String::new();
    for n in names {
        tgs += &tg(&format!("{n}-tg"), &[backends[n].port]);
    }
    let trellis = Trellis::start(&one_service(port, &fwd("default-tg"), &rules, &tgs), &[]);
    check_cases(
        &trellis,
        port,
        &[
            // exact, case-insensitive by default
            case("GET", "/Exact", &[], "exact-ci"),
            case("GET", "/exact", &[], "exact-ci"),
            case("GET", "/EXACT", &[], "exact-ci"),
            case("GET", "/exactly", &[], "default"),
            case("GET", "/exact/more", &[], "default"),
            case("GET", "/x/exact", &[], "default"),
            // exact, case-sensitive
            case("GET", "/CaseExact", &[], "exact-cs"),
            case("GET", "/caseexact", &[], "default"),
            case("GET", "/CASEEXACT", &[], "default"),
            // prefix, case-insensitive by default
            case("GET", "/Pre", &[], "prefix-ci"),
            case("GET", "/pre/a/b", &[], "prefix-ci"),
            case("GET", "/PRE/x", &[], "prefix-ci"),
            case("GET", "/apre", &[], "default"),
            // prefix, case-sensitive
            case("GET", "/CasePre/a", &[], "prefix-cs"),
            case("GET", "/casepre/a", &[], "default"),
            case("GET", "/CASEPRE/a", &[], "default"),
            // the query string is not part of the path
            case("GET", "/Exact?y=1", &[], "exact-ci"),
            case("GET", "/exact?y=/other&z", &[], "exact-ci"),
            case("GET", "/CaseExact?q=1", &[], "exact-cs"),
            case("GET", "/?p=/Pre", &[], "default"),
        ],
    )
    .await;
    // The query string still reaches the target.
    let seen = backends["exact-cs"].last_seen();
    assert_eq!(seen.uri, "/CaseExact?q=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn header_match_exact_prefix_contains_and_case() {
    let names = [
        "exact",
        "exact-cs",
        "prefix",
        "prefix-cs",
        "contains",
        "contains-cs",
        "default",
    ];
    let mut backends = HashMap::new();
    for n in names {
        backends.insert(n, Backend::start(n).await);
    }
    let port = free_port();
    let hm = |header: &str, kind: &str, value: &str, cs: bool| {
        format!(
            "{{headerMatches: [{{name: {header}, match: {{{kind}: \"{value}\"}}{}}}]}}",
            if cs { ", caseSensitive: true" } else { "" }
        )
    };
    let rules = rule(
        "exact",
        10,
        &hm("x-exact", "exact", "Blue", false),
        &fwd("exact-tg"),
    ) + &rule(
        "exact-cs",
        20,
        &hm("x-exact-cs", "exact", "Blue", true),
        &fwd("exact-cs-tg"),
    ) + &rule(
        "prefix",
        30,
        &hm("x-prefix", "prefix", "Blu", false),
        &fwd("prefix-tg"),
    ) + &rule(
        "prefix-cs",
        40,
        &hm("x-prefix-cs", "prefix", "Blu", true),
        &fwd("prefix-cs-tg"),
    ) + &rule(
        "contains",
        50,
        &hm("x-contains", "contains", "Sea", false),
        &fwd("contains-tg"),
    ) + &rule(
        "contains-cs",
        60,
        &hm("X-Contains-CS", "contains", "Sea", true),
        &fwd("contains-cs-tg"),
    );
    let mut tgs = String::new();
    for n in names {
        tgs += &tg(&format!("{n}-tg"), &[backends[n].port]);
    }
    let trellis = Trellis::start(&one_service(port, &fwd("default-tg"), &rules, &tgs), &[]);
    check_cases(
        &trellis,
        port,
        &[
            // exact
            case("GET", "/", &[("x-exact", "Blue")], "exact"),
            case("GET", "/", &[("x-exact", "blue")], "exact"),
            case("GET", "/", &[("X-EXACT", "BLUE")], "exact"),
            case("GET", "/", &[("x-exact", "Blue2")], "default"),
            case("GET", "/", &[("x-exact", "aBlue")], "default"),
            case("GET", "/", &[], "default"),
            case("GET", "/", &[("x-exact-cs", "Blue")], "exact-cs"),
            case("GET", "/", &[("x-exact-cs", "blue")], "default"),
            // prefix
            case("GET", "/", &[("x-prefix", "Blueberry")], "prefix"),
            case("GET", "/", &[("x-prefix", "BLUEBERRY")], "prefix"),
            case("GET", "/", &[("x-prefix", "Blu")], "prefix"),
            case("GET", "/", &[("x-prefix", "aBlue")], "default"),
            case("GET", "/", &[("x-prefix-cs", "Blueberry")], "prefix-cs"),
            case("GET", "/", &[("x-prefix-cs", "blueberry")], "default"),
            // contains
            case("GET", "/", &[("x-contains", "deep Sea blue")], "contains"),
            case("GET", "/", &[("x-contains", "DEEPSEA")], "contains"),
            case("GET", "/", &[("x-contains", "sea")], "contains"),
            case("GET", "/", &[("x-contains", "deep ocean")], "default"),
            // header names are never case-sensitive; values are when caseSensitive is set
            case("GET", "/", &[("x-contains-cs", "deepSeaX")], "contains-cs"),
            case("GET", "/", &[("x-contains-cs", "deepseax")], "default"),
            case("GET", "/", &[("x-contains-cs", "DEEPSEAX")], "default"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn all_conditions_of_a_rule_must_match() {
    let both = Backend::start("canary").await;
    let two_headers = Backend::start("two-headers").await;
    let dflt = Backend::start("default").await;
    let port = free_port();
    let rules = rule(
        "canary",
        10,
        "{method: POST, pathMatch: {match: {prefix: /api}}, headerMatches: [{name: x-env, match: {exact: canary}}]}",
        &fwd("canary-tg"),
    ) + &rule(
        "two-headers",
        20,
        "{headerMatches: [{name: x-a, match: {exact: \"1\"}}, {name: x-b, match: {exact: \"2\"}}]}",
        &fwd("two-tg"),
    );
    let tgs = tg("canary-tg", &[both.port])
        + &tg("two-tg", &[two_headers.port])
        + &tg("dflt-tg", &[dflt.port]);
    let trellis = Trellis::start(&one_service(port, &fwd("dflt-tg"), &rules, &tgs), &[]);
    let canary = [("x-env", "canary")];
    let other_env = [("x-env", "prod")];
    check_cases(
        &trellis,
        port,
        &[
            case("POST", "/api/orders", &canary, "canary"),
            // one condition missing or wrong → no match
            case("GET", "/api/orders", &canary, "default"),
            case("POST", "/web/orders", &canary, "default"),
            case("POST", "/api/orders", &[], "default"),
            case("POST", "/api/orders", &other_env, "default"),
            // two header matches: both needed
            case("GET", "/", &[("x-a", "1"), ("x-b", "2")], "two-headers"),
            case("GET", "/", &[("x-a", "1")], "default"),
            case("GET", "/", &[("x-b", "2")], "default"),
            case("GET", "/", &[("x-a", "1"), ("x-b", "3")], "default"),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2. Priority order

#[tokio::test(flavor = "multi_thread")]
async fn lowest_priority_number_wins_whatever_the_file_order() {
    let names = ["fifty", "five", "twenty", "nine", "hundred", "default"];
    let mut backends = HashMap::new();
    for n in names {
        backends.insert(n, Backend::start(n).await);
    }
    let port = free_port();
    let prefix = |p: &str| format!("{{pathMatch: {{match: {{prefix: {p}}}}}}}");
    // Written out of priority order; 100 vs 9 also catches a textual sort.
    let rules = rule("fifty", 50, &prefix("/api"), &fwd("fifty-tg"))
        + &rule("hundred", 100, &prefix("/num/a"), &fwd("hundred-tg"))
        + &rule("five", 5, &prefix("/api/v2"), &fwd("five-tg"))
        + &rule("twenty", 20, &prefix("/api/v"), &fwd("twenty-tg"))
        + &rule("nine", 9, &prefix("/num"), &fwd("nine-tg"));
    let mut tgs = String::new();
    for n in names {
        tgs += &tg(&format!("{n}-tg"), &[backends[n].port]);
    }
    let trellis = Trellis::start(&one_service(port, &fwd("default-tg"), &rules, &tgs), &[]);
    check_cases(
        &trellis,
        port,
        &[
            case("GET", "/api/v2/x", &[], "five"),
            case("GET", "/api/v1/x", &[], "twenty"),
            case("GET", "/api/other", &[], "fifty"),
            case("GET", "/num/a/b", &[], "nine"),
            case("GET", "/num", &[], "nine"),
            case("GET", "/elsewhere", &[], "default"),
            case("GET", "/", &[], "default"),
        ],
    )
    .await;
    assert_eq!(
        backends["hundred"]
            .hits
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Fixed responses

#[tokio::test(flavor = "multi_thread")]
async fn fixed_response_has_its_status_and_an_empty_body() {
    let backend = Backend::start("web").await;
    let port = free_port();
    let rules = rule(
        "boom",
        10,
        "{pathMatch: {match: {prefix: /boom}}}",
        &fixed(500),
    ) + &rule(
        "web",
        20,
        "{pathMatch: {match: {prefix: /web}}}",
        &fwd("web-tg"),
    );
    let yaml = one_service(port, &fixed(404), &rules, &tg("web-tg", &[backend.port]));
    let trellis = Trellis::start(&yaml, &[]);
    let client = http1_client();

    let a = get(&client, port, HOST, "/web/page").await;
    assert_eq!(a.status, 200, "{a:?}\n{}", trellis.stderr());
    assert_eq!(a.body, "Hello from web at /web/page");

    for (path, status) in [
        ("/nothing-here", 404),
        ("/boom", 500),
        ("/boom/deeper?x=1", 500),
    ] {
        for method in ["GET", "POST"] {
            let a = send(&client, port, HOST, method, path, &[], "some body").await;
            assert_eq!(a.status, status, "{method} {path}: {a:?}");
            assert_eq!(
                a.body, "",
                "{method} {path}: a fixed response has an empty body"
            );
            assert!(a.headers.get("x-backend").is_none());
            if let Some(len) = a.headers.get("content-length") {
                assert_eq!(len, "0");
            }
            let id = a.headers.get("x-amzn-requestid").expect("x-amzn-requestid");
            assert!(is_uuid_like(id.to_str().unwrap()), "{id:?}");
        }
    }
    assert_eq!(backend.hits.load(std::sync::atomic::Ordering::Relaxed), 1);
}

// ---------------------------------------------------------------------------------------------
// 4. Weighted forward and round robin

#[tokio::test(flavor = "multi_thread")]
async fn weights_20_10_split_two_thirds_one_third() {
    let a = Backend::start("heavy").await;
    let b = Backend::start("light").await;
    let port = free_port();
    let tgs = tg("heavy-tg", &[a.port]) + &tg("light-tg", &[b.port]);
    let action = fwd_weighted(&[("heavy-tg", 20), ("light-tg", 10)]);
    let trellis = Trellis::start(&one_service(port, &action, "", &tgs), &[]);
    let (heavy, light) = split_of(port, 3000, &trellis).await;
    assert!((heavy - 2.0 / 3.0).abs() < 0.03, "heavy share {heavy}");
    assert!((light - 1.0 / 3.0).abs() < 0.03, "light share {light}");
}

/// `n` requests to `/` on `port`, which must all be answered 200; returns the shares of the
/// backends named `heavy` and `light`.
async fn split_of(port: u16, n: usize, trellis: &Trellis) -> (f64, f64) {
    let answers = blast(port, HOST, "/", n).await;
    let t = tally(&answers);
    assert!(
        answers.iter().all(|a| a.status == 200),
        "non-200 answers: {t:?}\n{}",
        trellis.stderr()
    );
    let share = |name: &str| t.get(name).copied().unwrap_or(0) as f64 / n as f64;
    (share("heavy"), share("light"))
}

/// Connections are dealt out to the serving threads, each with its own upstream pools: with one
/// thread or several, every request is answered and the weights hold across the threads.
#[tokio::test(flavor = "multi_thread")]
async fn weights_hold_with_one_serving_thread_or_several() {
    let a = Backend::start("heavy").await;
    let b = Backend::start("light").await;
    let tgs = tg("heavy-tg", &[a.port]) + &tg("light-tg", &[b.port]);
    let action = fwd_weighted(&[("heavy-tg", 20), ("light-tg", 10)]);
    for threads in ["1", "3"] {
        let port = free_port();
        let trellis = Trellis::start(
            &one_service(port, &action, "", &tgs),
            &["--threads", threads],
        );
        let plural = if threads == "1" { "" } else { "s" };
        assert!(
            trellis
                .stderr()
                .contains(&format!("({threads} serving thread{plural})")),
            "the start-up line does not show --threads {threads}:\n{}",
            trellis.stderr()
        );
        let (heavy, _) = split_of(port, 1500, &trellis).await;
        assert!(
            (heavy - 2.0 / 3.0).abs() < 0.04,
            "--threads {threads}: heavy share {heavy}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn weight_zero_gets_no_traffic() {
    let zero = Backend::start("zero").await;
    let five = Backend::start("five").await;
    let port = free_port();
    let tgs = tg("zero-tg", &[zero.port]) + &tg("five-tg", &[five.port]);
    let action = fwd_weighted(&[("zero-tg", 0), ("five-tg", 5)]);
    let trellis = Trellis::start(&one_service(port, &action, "", &tgs), &[]);
    let answers = blast(port, HOST, "/", 300).await;
    let t = tally(&answers);
    assert_eq!(t.get("five"), Some(&300), "{t:?}\n{}", trellis.stderr());
    assert_eq!(zero.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn lone_target_group_without_weight_gets_everything() {
    let only = Backend::start("only").await;
    let other = Backend::start("other").await;
    let port = free_port();
    // `other-tg` is used by a rule nobody matches, so it exists but is not in the default action.
    let rules = rule(
        "never",
        10,
        "{pathMatch: {match: {exact: /never}}}",
        &fwd("other-tg"),
    );
    let tgs = tg("only-tg", &[only.port]) + &tg("other-tg", &[other.port]);
    let trellis = Trellis::start(&one_service(port, &fwd("only-tg"), &rules, &tgs), &[]);
    let answers = blast(port, HOST, "/", 200).await;
    let t = tally(&answers);
    assert_eq!(t.get("only"), Some(&200), "{t:?}\n{}", trellis.stderr());
    assert_eq!(other.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_inside_a_group_splits_evenly() {
    let one = Backend::start("one").await;
    let two = Backend::start("two").await;
    let port = free_port();
    let tgs = tg("pair-tg", &[one.port, two.port]);
    let trellis = Trellis::start(&one_service(port, &fwd("pair-tg"), "", &tgs), &[]);
    let n = 1000;
    let answers = blast(port, HOST, "/", n).await;
    let t = tally(&answers);
    let first = t.get("one").copied().unwrap_or(0);
    let second = t.get("two").copied().unwrap_or(0);
    assert_eq!(first + second, n, "{t:?}\n{}", trellis.stderr());
    // Round robin: an even split (allow a little slack for how concurrency interleaves).
    assert!(first.abs_diff(second) <= n / 50, "{t:?}");
    // And in sequence, strictly alternating.
    let client = http1_client();
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(who(&get(&client, port, HOST, "/").await));
    }
    for w in order.windows(2) {
        assert_ne!(w[0], w[1], "not round robin: {order:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Admission by VPC

#[tokio::test(flavor = "multi_thread")]
async fn service_network_admits_only_associated_vpcs() {
    let main = Backend::start("main").await;
    let side = Backend::start("side").await;
    let lonely = Backend::start("lonely").await;
    let port = free_port();
    let yaml = Config::new()
        .vpc("allowed-vpc", &["127.0.0.3/32"])
        .vpc("other-vpc", &["127.0.0.4/32"])
        .network(Network::new("main-net", &["main-svc"], &["allowed-vpc"]))
        .network(Network::new("side-net", &["side-svc"], &["other-vpc"]))
        .service(Service::new("main-svc").listener(Listener::http(port).forward("main-tg")))
        .service(Service::new("side-svc").listener(Listener::http(port).forward("side-tg")))
        .service(Service::new("lonely-svc").listener(Listener::http(port).forward("lonely-tg")))
        .target_group(group("main-tg", &[main.port]))
        .target_group(group("side-tg", &[side.port]))
        .target_group(group("lonely-tg", &[lonely.port]))
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);
    let from3 = client_from(lo(3));
    let from4 = client_from(lo(4));
    let from1 = client_from(lo(1));
    let status = |a: &Answer| a.status;

    // allowed-vpc (127.0.0.3) reaches main-svc, through main-net.
    let a = get(&from3, port, "main-svc.trellis.localhost", "/").await;
    assert_eq!(a.status, 200, "{a:?}\n{}", trellis.stderr());
    assert_eq!(a.body, "Hello from main at /");
    let seen = main.last_seen();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.3");
    let network = seen.headers["x-amzn-lattice-network"].to_str().unwrap();
    assert!(
        network.starts_with("SourceVpcArn=arn:aws:ec2:us-west-2:123456789012:vpc/vpc-"),
        "{network}"
    );
    let target = seen.headers["x-amzn-lattice-target"].to_str().unwrap();
    assert!(
        target.contains(
            "ServiceNetworkArn=arn:aws:vpc-lattice:us-west-2:123456789012:servicenetwork/sn-"
        ),
        "{target}"
    );

    // other-vpc (127.0.0.4) is in side-net, which main-svc is not in.
    let a = get(&from4, port, "main-svc.trellis.localhost", "/").await;
    assert_eq!(status(&a), 404, "{a:?}");
    // 127.0.0.1 is in no VPC at all.
    let a = get(&from1, port, "main-svc.trellis.localhost", "/").await;
    assert_eq!(status(&a), 404, "{a:?}");
    assert_eq!(main.hits.load(std::sync::atomic::Ordering::Relaxed), 1);

    // side-svc: the other way round.
    assert_eq!(
        status(&get(&from4, port, "side-svc.trellis.localhost", "/").await),
        200
    );
    assert_eq!(
        status(&get(&from3, port, "side-svc.trellis.localhost", "/").await),
        404
    );
    assert_eq!(
        status(&get(&from1, port, "side-svc.trellis.localhost", "/").await),
        404
    );
    assert_eq!(side.hits.load(std::sync::atomic::Ordering::Relaxed), 1);

    // A service associated with no network is reachable from nowhere.
    for client in [&from1, &from3, &from4] {
        let a = get(client, port, "lonely-svc.trellis.localhost", "/").await;
        assert_eq!(a.status, 404, "{a:?}");
    }
    assert_eq!(lonely.hits.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_service_networks_every_client_gets_in() {
    let backend = Backend::start("open").await;
    let port = free_port();
    let yaml = Config::new()
        .vpc("some-vpc", &["127.0.0.3/32"])
        .service(Service::new("svc").listener(Listener::http(port).forward("open-tg")))
        .target_group(group("open-tg", &[backend.port]))
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);
    for n in [1, 3, 4, 9] {
        let a = get(&client_from(lo(n)), port, HOST, "/").await;
        assert_eq!(
            a.status,
            200,
            "from 127.0.0.{n}: {a:?}\n{}",
            trellis.stderr()
        );
        assert_eq!(
            backend.last_seen().headers["x-forwarded-for"],
            format!("127.0.0.{n}").as_str()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Host selection

#[tokio::test(flavor = "multi_thread")]
async fn host_header_picks_the_service_on_a_shared_port() {
    let alpha = Backend::start("alpha").await;
    let beta = Backend::start("beta").await;
    let gamma = Backend::start("gamma").await;
    let port = free_port();
    let other_port = free_port();
    let yaml = Config::new()
        .service(Service::new("alpha-svc").listener(Listener::http(port).forward("alpha-tg")))
        .service(
            Service::new("beta-svc")
                .custom_domain("beta.example.com")
                .listener(Listener::http(port).forward("beta-tg")),
        )
        .service(Service::new("gamma-svc").listener(Listener::http(other_port).forward("gamma-tg")))
        .target_group(group("alpha-tg", &[alpha.port]))
        .target_group(group("beta-tg", &[beta.port]))
        .target_group(group("gamma-tg", &[gamma.port]))
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);
    let dns = dns_names(&trellis.dir.join("trellis.yaml"));
    let alpha_dns = dns.get("alpha-svc").expect("alpha-svc dns name").clone();
    let beta_dns = dns.get("beta-svc").expect("beta-svc dns name").clone();
    assert!(
        alpha_dns.ends_with(".7d67968.vpc-lattice-svcs.us-west-2.on.aws"),
        "{alpha_dns}"
    );
    assert_ne!(alpha_dns, beta_dns);

    let client = http1_client();
    let cases = [
        ("alpha-svc.trellis.localhost".to_string(), "alpha"),
        (format!("alpha-svc.trellis.localhost:{port}"), "alpha"),
        (format!("ALPHA-SVC.Trellis.LocalHost:{port}"), "alpha"),
        (alpha_dns.clone(), "alpha"),
        (format!("{}:{port}", alpha_dns.to_uppercase()), "alpha"),
        ("beta-svc.trellis.localhost".to_string(), "beta"),
        (beta_dns.clone(), "beta"),
        (format!("{beta_dns}:{port}"), "beta"),
        ("beta.example.com".to_string(), "beta"),
        (format!("Beta.Example.COM:{port}"), "beta"),
    ];
    for (host, expect) in &cases {
        let a = get(&client, port, host, "/").await;
        assert_eq!(who(&a), *expect, "Host {host}: {a:?}\n{}", trellis.stderr());
    }
    // The other port serves gamma only, by its own names.
    let a = get(&client, other_port, "gamma-svc.trellis.localhost", "/").await;
    assert_eq!(who(&a), "gamma");

    // Unknown hosts (including a service that lives on another port) get 404 with the names
    // served on this port, and only those.
    for host in [
        "unknown.example.com",
        "gamma-svc.trellis.localhost",
        "alpha-svc",
    ] {
        let a = get(&client, port, host, "/").await;
        assert_eq!(a.status, 404, "Host {host}: {a:?}");
        for name in [
            alpha_dns.as_str(),
            "alpha-svc.trellis.localhost",
            beta_dns.as_str(),
            "beta-svc.trellis.localhost",
            "beta.example.com",
        ] {
            assert!(
                a.body.contains(name),
                "404 body does not list {name}:\n{}",
                a.body
            );
        }
        // The body may quote the requested host; the list of names after it must not hold
        // another port's service.
        let listed = a
            .body
            .split_once(host)
            .map_or(a.body.as_str(), |(_, rest)| rest);
        assert!(
            !listed.contains("gamma"),
            "404 body lists another port's service:\n{}",
            a.body
        );
    }
    assert_eq!(gamma.hits.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(alpha.hits.load(std::sync::atomic::Ordering::Relaxed), 5);
    assert_eq!(beta.hits.load(std::sync::atomic::Ordering::Relaxed), 5);
}

// ---------------------------------------------------------------------------------------------
// 7. Headers to the target

#[tokio::test(flavor = "multi_thread")]
async fn headers_the_target_sees() {
    let backend = Backend::start("web").await;
    let port = free_port();
    let yaml = one_service(port, &fwd("web-tg"), "", &tg("web-tg", &[backend.port]));
    let trellis = Trellis::start(&yaml, &[]);
    let client = http1_client();

    // A plain request: forwarded-for is the client, a request id is made up.
    let a = get(&client, port, HOST, "/plain").await;
    assert_eq!(a.status, 200, "{a:?}\n{}", trellis.stderr());
    let seen = backend.last_seen();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-port"], port.to_string().as_str());
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    let generated = a.headers["x-amzn-requestid"].to_str().unwrap().to_string();
    assert!(
        is_uuid_like(&generated),
        "generated request id {generated:?}"
    );
    assert_eq!(seen.headers["x-amzn-requestid"], generated.as_str());
    let target = seen.headers["x-amzn-lattice-target"].to_str().unwrap();
    assert!(
        target.starts_with("ServiceArn=arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-"),
        "{target}"
    );
    assert!(
        target
            .contains("TargetGroupArn=arn:aws:vpc-lattice:us-west-2:123456789012:targetgroup/tg-"),
        "{target}"
    );
    // Two requests, two ids.
    let b = get(&client, port, HOST, "/plain").await;
    assert_ne!(b.headers["x-amzn-requestid"], generated.as_str());

    // A request with a prior proxy, its own id, spoofed Lattice headers and hop-by-hop headers.
    let a = send(
        &client,
        port,
        HOST,
        "GET",
        "/fancy",
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-amzn-requestid", "my-request-123"),
            (
                "x-amzn-lattice-identity",
                "Principal=arn:aws:iam::999999999999:root",
            ),
            ("x-amzn-lattice-whatever", "spoofed"),
            ("x-amzn-lattice-target", "ServiceArn=spoofed"),
            ("x-amzn-lattice-network", "SourceVpcArn=spoofed"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "websocket"),
            ("x-end-to-end", "kept"),
        ],
        "",
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}\n{}", trellis.stderr());
    assert_eq!(a.headers["x-amzn-requestid"], "my-request-123");
    let seen = backend.last_seen();
    let h = &seen.headers;
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-amzn-requestid"], "my-request-123");
    assert_eq!(h.get_all("x-amzn-requestid").iter().count(), 1);
    assert!(h.get("x-amzn-lattice-identity").is_none(), "{h:?}");
    assert!(h.get("x-amzn-lattice-whatever").is_none(), "{h:?}");
    let targets: Vec<_> = h.get_all("x-amzn-lattice-target").iter().collect();
    assert_eq!(targets.len(), 1, "{h:?}");
    let target = targets[0].to_str().unwrap();
    assert!(
        target.starts_with("ServiceArn=arn:aws:vpc-lattice:"),
        "{target}"
    );
    assert!(!target.contains("spoofed"), "{target}");
    for v in h.get_all("x-amzn-lattice-network") {
        assert!(!v.to_str().unwrap().contains("spoofed"), "{h:?}");
    }
    for hop in [
        "x-custom-hop",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(h.get(hop).is_none(), "{hop} was forwarded: {h:?}");
    }
    if let Some(c) = h.get("connection") {
        assert!(!c.to_str().unwrap().contains("x-custom-hop"), "{h:?}");
    }
    assert_eq!(h["x-end-to-end"], "kept");
    assert_eq!(h["host"], HOST);

    // Several x-forwarded-for lines are one list (RFC 9110 5.3): every hop is kept, in order.
    let a = send(
        &client,
        port,
        HOST,
        "GET",
        "/multi",
        &[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "198.51.100.2, 198.51.100.3"),
        ],
        "",
    )
    .await;
    assert_eq!(a.status, 200);
    let seen = backend.last_seen();
    let xff: Vec<_> = seen.headers.get_all("x-forwarded-for").iter().collect();
    assert_eq!(
        xff,
        ["198.51.100.1, 198.51.100.2, 198.51.100.3, 127.0.0.1"],
        "{:?}",
        seen.headers
    );

    // A client's request id is kept up to 512 bytes.
    let long_id = "r".repeat(600);
    let a = send(
        &client,
        port,
        HOST,
        "GET",
        "/long-id",
        &[("x-amzn-requestid", long_id.as_str())],
        "",
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["x-amzn-requestid"], &long_id[..512]);
    assert_eq!(
        backend.last_seen().headers["x-amzn-requestid"],
        &long_id[..512]
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Access logs

/// The JSON records in `path`, once there are at least `n` (polls for up to 5 s).
fn wait_for_records(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines
                .iter()
                .map(|l| {
                    serde_json::from_str(l).unwrap_or_else(|e| {
                        panic!(
                            "{}: not one JSON object per line ({e}): {l}",
                            path.display()
                        )
                    })
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_start_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// The documented service access-log fields (LATTICE.md 6.2).
const LOG_FIELDS: &[&str] = &[
    "startTime",
    "requestId",
    "serviceNetworkArn",
    "serviceArn",
    "targetGroupArn",
    "requestMethod",
    "requestPath",
    "protocol",
    "responseCode",
    "grpcResponseCode",
    "bytesReceived",
    "bytesSent",
    "duration",
    "requestToTargetDuration",
    "responseFromTargetDuration",
    "sourceIpPort",
    "targetIpPort",
    "sourceVpcId",
    "sourceVpcArn",
    "destinationVpcId",
    "hostHeader",
    "serverNameIndication",
    "tlsVersion",
    "sslCipher",
    "userAgent",
    "authDeniedReason",
    "resolvedUser",
    "callerPrincipal",
    "callerPrincipalTags",
    "callerX509SubjectCN",
    "callerX509IssuerOU",
    "callerX509SANNameCN",
    "callerX509SANDNS",
    "callerX509SANURI",
    "failureReason",
];

#[tokio::test(flavor = "multi_thread")]
async fn access_logs_go_to_service_and_network_destinations() {
    let live = Backend::start("live").await;
    let quiet = Backend::start("quiet").await;
    let dead_port = free_port(); // nothing listens here
    let port = free_port();
    let dir = scratch_dir("accesslog");
    let svc_log = dir.join("svc.log");
    let net_log = dir.join("net.log");
    let logged = Listener::http(port)
        .forward("live-tg")
        .rule("missing", 10, path_prefix("/missing"), fixed_response(404))
        .rule("dead", 20, path_prefix("/dead"), forward("dead-tg"));
    let yaml = Config::new()
        .vpc("local-vpc", &["127.0.0.0/8"])
        .network(
            Network::new("log-net", &["logged-svc", "stdout-svc"], &["local-vpc"])
                .access_log(&format!("file:{}", net_log.display())),
        )
        .service(
            Service::new("logged-svc")
                .access_log(&format!("file:{}", svc_log.display()))
                .listener(logged),
        )
        .service(
            Service::new("stdout-svc")
                .access_log("stdout")
                .listener(Listener::http(port).forward("quiet-tg")),
        )
        .target_group(group("live-tg", &[live.port]))
        .target_group(group("dead-tg", &[dead_port]))
        .target_group(group("quiet-tg", &[quiet.port]))
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);
    let config = trellis.dir.join("trellis.yaml");
    let (code, listing, _) = run_cli(
        &["services", "-f", &config.display().to_string()],
        &trellis.dir,
    );
    assert_eq!(code, 0);
    let service_id = |name: &str| -> String {
        let line = listing
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not in:\n{listing}"));
        line.split(['(', ','])
            .nth(1)
            .expect("service id")
            .trim()
            .to_string()
    };
    let logged_arn = format!(
        "arn:aws:vpc-lattice:us-west-2:123456789012:service/{}",
        service_id("logged-svc")
    );
    let stdout_arn = format!(
        "arn:aws:vpc-lattice:us-west-2:123456789012:service/{}",
        service_id("stdout-svc")
    );

    let client = http1_client();
    let host = "logged-svc.trellis.localhost";
    let ok = send(
        &client,
        port,
        host,
        "GET",
        "/ok",
        &[("user-agent", "trellis-test/1.0")],
        "",
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}\n{}", trellis.stderr());
    let missing = send(&client, port, host, "POST", "/missing", &[], "abc").await;
    assert_eq!(missing.status, 404);
    let dead = get(&client, port, host, "/dead").await;
    assert_eq!(dead.status, 502, "{dead:?}");
    let quiet_answer = get(&client, port, "stdout-svc.trellis.localhost", "/q").await;
    assert_eq!(quiet_answer.status, 200);
    let id = |a: &Answer| a.headers["x-amzn-requestid"].to_str().unwrap().to_string();

    let svc_records = wait_for_records(&svc_log, 3);
    assert_eq!(
        svc_records.len(),
        3,
        "{svc_records:#?}\n{}",
        trellis.stderr()
    );
    let net_records = wait_for_records(&net_log, 4);
    assert_eq!(net_records.len(), 4, "{net_records:#?}");
    // Give a wrong extra line a chance to show up before counting for good.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(wait_for_records(&svc_log, 3).len(), 3);
    assert_eq!(wait_for_records(&net_log, 4).len(), 4);

    let by_id = |records: &[serde_json::Value], id: &str| -> serde_json::Value {
        records
            .iter()
            .find(|r| r["requestId"] == id)
            .unwrap_or_else(|| panic!("no record with requestId {id}: {records:#?}"))
            .clone()
    };
    for records in [&svc_records, &net_records] {
        for r in records.iter() {
            let obj = r.as_object().expect("a JSON object");
            for field in LOG_FIELDS {
                assert!(obj.contains_key(*field), "field {field} missing: {r}");
            }
            assert!(is_start_time(r["startTime"].as_str().unwrap()), "{r}");
            assert!(r["responseCode"].is_u64(), "{r}");
            assert!(r["duration"].is_u64(), "{r}");
            assert_eq!(r["protocol"], "HTTP/1.1");
            assert_eq!(r["sslCipher"], "-", "plain HTTP has no cipher: {r}");
            assert_eq!(r["tlsVersion"], "-");
            assert_eq!(r["serverNameIndication"], "-");
            let source = r["sourceIpPort"].as_str().unwrap();
            let (ip, source_port) = source.rsplit_once(':').expect("ip:port");
            assert_eq!(ip, "127.0.0.1", "{r}");
            assert!(source_port.parse::<u16>().is_ok(), "{r}");
            let network = r["serviceNetworkArn"].as_str().unwrap();
            assert!(
                network
                    .starts_with("arn:aws:vpc-lattice:us-west-2:123456789012:servicenetwork/sn-"),
                "{r}"
            );
            assert!(
                r["sourceVpcId"].as_str().unwrap().starts_with("vpc-"),
                "{r}"
            );
        }

        let r = by_id(records, &id(&ok));
        assert_eq!(r["serviceArn"], logged_arn.as_str());
        assert_eq!(r["requestMethod"], "GET");
        assert_eq!(r["requestPath"], "/ok");
        assert_eq!(r["responseCode"], 200);
        assert_eq!(r["userAgent"], "trellis-test/1.0");
        assert_eq!(r["hostHeader"], host);
        assert_eq!(
            r["targetIpPort"],
            format!("127.0.0.1:{}", live.port).as_str()
        );
        assert_eq!(r["failureReason"], "-");
        let live_tg = r["targetGroupArn"].as_str().unwrap().to_string();
        assert!(
            live_tg.starts_with("arn:aws:vpc-lattice:us-west-2:123456789012:targetgroup/tg-"),
            "{r}"
        );

        let r = by_id(records, &id(&missing));
        assert_eq!(r["serviceArn"], logged_arn.as_str());
        assert_eq!(r["requestMethod"], "POST");
        assert_eq!(r["requestPath"], "/missing");
        assert_eq!(r["responseCode"], 404);
        assert_eq!(
            r["targetGroupArn"], "-",
            "a fixed response has no target group: {r}"
        );
        assert_eq!(r["targetIpPort"], "-");
        assert_eq!(r["userAgent"], "-");

        let r = by_id(records, &id(&dead));
        assert_eq!(r["responseCode"], 502);
        assert_eq!(r["targetIpPort"], format!("127.0.0.1:{dead_port}").as_str());
        assert_eq!(r["failureReason"], "TargetConnectionError");
        let dead_tg = r["targetGroupArn"].as_str().unwrap();
        assert!(dead_tg.contains(":targetgroup/tg-"), "{r}");
        assert_ne!(dead_tg, live_tg);
    }
    // The network log also has the other service's request; the service log does not.
    let r = by_id(&net_records, &id(&quiet_answer));
    assert_eq!(r["serviceArn"], stdout_arn.as_str());
    assert!(
        !svc_records
            .iter()
            .any(|r| r["requestId"] == id(&quiet_answer).as_str())
    );

    // stdout-svc logs to stdout.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stdout_records = loop {
        let records: Vec<serde_json::Value> = trellis
            .stdout()
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("stdout record is JSON"))
            .collect();
        if !records.is_empty() || Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(stdout_records.len(), 1, "stdout:\n{}", trellis.stdout());
    let r = &stdout_records[0];
    assert_eq!(r["requestId"], id(&quiet_answer).as_str());
    assert_eq!(r["serviceArn"], stdout_arn.as_str());
    assert_eq!(r["requestPath"], "/q");
    assert_eq!(r["responseCode"], 200);
    assert_eq!(
        r["targetIpPort"],
        format!("127.0.0.1:{}", quiet.port).as_str()
    );
}

// ---------------------------------------------------------------------------------------------
// 9. The path the rules see: normalised once, then matched, logged and forwarded as it is

/// An answer to a request sent as raw bytes.
struct Raw {
    status: u16,
    /// The status line and the headers, lower-cased.
    head: String,
    body: String,
}

impl Raw {
    /// The value of header `name` (lower case).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == name).then(|| value.trim())
        })
    }

    /// Who answered: the backend's name, or `status N` for an answer no backend gave.
    fn who(&self) -> String {
        match self.header("x-backend") {
            Some(name) => name.to_string(),
            None => format!("status {}", self.status),
        }
    }
}

/// Sends `GET path` to trellis on `port` as raw bytes over a fresh connection, so that no client
/// library can tidy the path first, and reads the answer to the end.
async fn raw_get(port: u16, path: &str) -> Raw {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to trellis");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    Raw {
        status: head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

/// `/%61dmin`, `//admin`, `/./admin`, `/x/../admin` and `/%2e%2e/admin` each meet the rule on
/// `/admin`, and the target gets the path the rule matched (its query untouched); an encoded
/// `/` stays data; malformed percent-encoding is a 400 that reaches no target. The access log
/// records the normalised path.
#[tokio::test(flavor = "multi_thread")]
async fn rules_match_the_normalised_path_and_the_target_gets_it() {
    let admin = Backend::start("admin").await;
    let public = Backend::start("public").await;
    let port = free_port();
    let dir = scratch_dir("pathnorm");
    let log = dir.join("svc.log");
    let listener = Listener::http(port)
        .forward("public-tg")
        .rule("admin", 10, path_prefix("/admin"), forward("admin-tg"))
        .rule("secret", 20, path_prefix("/secret"), fixed_response(403));
    let yaml = Config::new()
        .service(
            Service::new("svc")
                .access_log(&format!("file:{}", log.display()))
                .listener(listener),
        )
        .target_group(group("admin-tg", &[admin.port]))
        .target_group(group("public-tg", &[public.port]))
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);

    // (sent, what answers, the path and query the backend sees)
    let cases: &[(&str, &str, &str)] = &[
        ("/admin", "admin", "/admin"),
        ("/%61dmin", "admin", "/admin"),
        ("//admin", "admin", "/admin"),
        ("/./admin", "admin", "/admin"),
        ("/x/../admin", "admin", "/admin"),
        ("/%2e%2e/admin", "admin", "/admin"),
        ("/%2E%2E/%2e/x/..//ADMIN/users/./", "admin", "/ADMIN/users/"),
        (
            "/public/../admin?next=/../x%2e",
            "admin",
            "/admin?next=/../x%2e",
        ),
        ("/admin%2fx%7e", "admin", "/admin%2Fx~"),
        // `..%2F` is no dot segment: the encoded slash is data, and stays encoded.
        ("/public/..%2Fadmin", "public", "/public/..%2Fadmin"),
        ("/admin/../public/", "public", "/public/"),
        ("/../../", "public", "/"),
    ];
    let mut wrong = Vec::new();
    let mut ids = HashMap::new();
    for (sent, expect, seen) in cases {
        let answer = raw_get(port, sent).await;
        let who = answer.who();
        let backend = if *expect == "admin" { &admin } else { &public };
        let got = if who == *expect {
            backend.last_seen().uri
        } else {
            String::new()
        };
        if who != *expect || got != *seen {
            wrong.push(format!(
                "{sent}: expected {expect} to see {seen}, got {who} seeing {got:?} ({:?})",
                answer.body
            ));
        }
        if let Some(id) = answer.header("x-amzn-requestid") {
            ids.insert(*sent, id.to_string());
        }
    }
    // A fixed response is met the same ways.
    for sent in [
        "/%73ecret",
        "//secret",
        "/./secret",
        "/x/../secret",
        "/%2e%2e/secret",
    ] {
        let who = raw_get(port, sent).await.who();
        if who != "status 403" {
            wrong.push(format!("{sent}: expected status 403, got {who}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "misrouted requests:\n  {}\ntrellis stderr:\n{}",
        wrong.join("\n  "),
        trellis.stderr()
    );

    // Over HTTP/2 too.
    let client = h2c_client();
    let a = get(&client, port, HOST, "/x/..//%61dmin?q=1").await;
    assert_eq!(who(&a), "admin", "{a:?}");
    assert_eq!(admin.last_seen().uri, "/admin?q=1");

    // Malformed percent-encoding: 400, with the reason, and no target sees it.
    let hits = admin.hits.load(std::sync::atomic::Ordering::SeqCst)
        + public.hits.load(std::sync::atomic::Ordering::SeqCst);
    for sent in ["/admin%zz", "/%", "/x/%4/../admin"] {
        let answer = raw_get(port, sent).await;
        assert_eq!(answer.status, 400, "{sent}: {}", answer.body);
        assert!(
            answer.body.contains("malformed percent-encoding"),
            "{sent}: {}",
            answer.body
        );
        if let Some(id) = answer.header("x-amzn-requestid") {
            ids.insert(sent, id.to_string());
        }
    }
    let answer = raw_get(port, "/admin%zz").await;
    assert!(answer.body.contains("\"%zz\" at byte 6"), "{}", answer.body);
    assert_eq!(
        admin.hits.load(std::sync::atomic::Ordering::SeqCst)
            + public.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits
    );

    // The access log records the path the rules matched; a path with no normal form as sent.
    let expected = cases.len() + 5 + 1 + 4;
    let records = wait_for_records(&log, expected);
    assert_eq!(records.len(), expected, "{records:#?}");
    let path_of = |sent: &str| -> (serde_json::Value, serde_json::Value) {
        let id = &ids[sent];
        let r = records
            .iter()
            .find(|r| r["requestId"] == id.as_str())
            .unwrap_or_else(|| panic!("no record for {sent}: {records:#?}"));
        (r["requestPath"].clone(), r["failureReason"].clone())
    };
    assert_eq!(path_of("/%2e%2e/admin").0, "/admin");
    assert_eq!(
        path_of("/public/../admin?next=/../x%2e").0,
        "/admin?next=/../x%2e"
    );
    assert_eq!(path_of("/admin%2fx%7e").0, "/admin%2Fx~");
    assert_eq!(
        path_of("/admin%zz"),
        ("/admin%zz".into(), "ClientProtocolError".into())
    );
}

/// Lambda events carry the normalised path: V2 in `path`, V1 in `raw_path` (each with the
/// query as sent).
#[tokio::test(flavor = "multi_thread")]
async fn lambda_events_carry_the_normalised_path() {
    let port = free_port();
    let wasm = sample("hello-wasm.wasm");
    let listener = Listener::http(port).forward("v2-tg").rule(
        "to-v1",
        10,
        header_exact("x-event", "v1"),
        forward("v1-tg"),
    );
    let yaml = Config::new()
        .service(Service::new("svc").listener(listener))
        .function(serde_json::json!({
            "name": "events",
            "runtime": "wasm",
            "code": wasm.display().to_string(),
        }))
        .target_group(TargetGroup::lambda("v2-tg", "events", "V2"))
        .target_group(TargetGroup::lambda("v1-tg", "events", "V1"))
        .yaml();
    let trellis =
        Trellis::start_with_state(&yaml, &shared_state_dir(), &[], Duration::from_secs(120));
    let client = http1_client();
    // hello-wasm answers `/event` with the event it received.
    let sent = "/x/..//./%65ven%74?a=%2e%2e&b=/../c";
    let normal = "/event?a=%2e%2e&b=/../c";
    for (version, field) in [("v2", "path"), ("v1", "raw_path")] {
        let a = send(
            &client,
            port,
            HOST,
            "GET",
            sent,
            &[("x-event", version)],
            "",
        )
        .await;
        assert_eq!(a.status, 200, "{version}: {a:?}\n{}", trellis.stderr());
        let event: serde_json::Value = serde_json::from_str(&a.body)
            .unwrap_or_else(|e| panic!("{version}: the answer is no event ({e}): {}", a.body));
        assert_eq!(event[field], normal, "{version}: {event}");
    }
}
