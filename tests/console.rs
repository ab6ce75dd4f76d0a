//! The web console (issue 17) through the real binary: its JSON over the live state (directory,
//! routing with live health, traffic, functions), the live tail as server-sent events (filters,
//! a bound on watchers, hostile query strings), the send-a-request form, the warning for an
//! admin address that is not loopback, `trellis routes`/`services` reading live health, and
//! the pages in a real headless browser (Debian's chromium through selenium, see
//! tests/oracles/console_browser.py).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// A request to `svc` on `port` as a client sends it; the status.
fn get(port: u16, path: &str, request_id: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: svc.trellis.localhost\r\nx-amzn-requestid: {request_id}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// A service `svc` with a rule on `/b` (priority 5) and one on `/fixed` (priority 1, a fixed
/// 404), its default splitting 20/10 between two backends, `group-a` health-checked every 5 s.
async fn setup() -> (Trellis, Backend, Backend, u16) {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let port = free_port();
    let yaml = Config::new()
        .vpc("client-vpc", &["127.0.0.0/8"])
        .network(Network::new("net", &["svc"], &["client-vpc"]))
        .service(
            Service::new("svc").listener(
                Listener::http(port)
                    .action(forward_weighted(&[("group-a", 20), ("group-b", 10)]))
                    .rule("to-b", 5, path_prefix("/b"), forward("group-b"))
                    .rule("fixed", 1, path_prefix("/fixed"), fixed_response(404)),
            ),
        )
        .target_group(TargetGroup::instance("group-a", &[a.port]).config(
            "healthCheck",
            json!({"path": "/health", "healthCheckIntervalSeconds": 5,
                   "healthyThresholdCount": 2, "unhealthyThresholdCount": 2}),
        ))
        .target_group(TargetGroup::instance("group-b", &[b.port]).no_health_checks())
        .yaml();
    (Trellis::start(&yaml, &[]), a, b, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_and_routing_show_the_live_state() {
    let (t, a, _b, port) = setup().await;
    let dir = admin_json(&t, "/ui/api/directory");
    assert_eq!(dir["services"][0]["name"], "svc", "{dir}");
    assert!(
        dir["services"][0]["dnsName"]
            .as_str()
            .is_some_and(|d| d.ends_with(".on.aws")),
        "{dir}"
    );
    assert_eq!(dir["services"][0]["listeners"][0]["port"], port);
    assert_eq!(dir["networks"][0]["vpcs"][0]["name"], "client-vpc");

    let deadline = Instant::now() + Duration::from_secs(10);
    let svc = loop {
        let svc = admin_json(&t, "/ui/api/services/svc");
        let default = &svc["listeners"][0]["defaultAction"]["forward"];
        if default[0]["targets"][0]["status"] == "HEALTHY" || Instant::now() > deadline {
            break svc;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let listener = &svc["listeners"][0];
    // Rules in priority order, then the default's 20/10 split.
    assert_eq!(listener["rules"][0]["name"], "fixed", "{svc}");
    assert_eq!(listener["rules"][0]["action"]["fixedResponse"], 404);
    assert_eq!(listener["rules"][1]["name"], "to-b");
    assert_eq!(
        listener["rules"][1]["conditions"][0],
        "path prefix /b (any case)"
    );
    let default = &listener["defaultAction"]["forward"];
    assert_eq!(default[0]["weight"], 20);
    assert_eq!(default[1]["weight"], 10);
    assert_eq!(default[0]["targets"][0]["status"], "HEALTHY", "{svc}");
    assert_eq!(
        default[0]["targets"][0]["lastProbe"]["detail"],
        "status 200"
    );
    assert_eq!(default[1]["targets"][0]["status"], "UNAVAILABLE");
    assert_eq!(
        default[1]["targets"][0]["reasonCode"],
        "HealthCheckDisabled"
    );

    // The backend's health check fails: UNHEALTHY after two probes (5 s apart), with why.
    a.health_status
        .store(503, std::sync::atomic::Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(5 * 2 + 2);
    loop {
        let svc = admin_json(&t, "/ui/api/services/svc");
        let target = &svc["listeners"][0]["defaultAction"]["forward"][0]["targets"][0];
        if target["status"] == "UNHEALTHY" {
            assert_eq!(target["reasonCode"], "HealthCheckFailed");
            assert_eq!(target["lastProbe"]["detail"], "status 503");
            assert_eq!(target["lastProbe"]["passed"], false);
            break;
        }
        assert!(Instant::now() < deadline, "still {target} after 12 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // `trellis routes` and `trellis services` read the same live health…
    let routes = cli(&t, &["routes", "svc", "--admin", &t.admin_addr()]);
    assert!(routes.contains("live from the Trellis at"), "{routes}");
    assert!(
        routes.contains(&format!(
            "127.0.0.1:{}  UNHEALTHY (HealthCheckFailed)",
            a.port
        )),
        "{routes}"
    );
    let services = cli(&t, &["services", "--admin", &t.admin_addr()]);
    assert!(
        services.contains("1 UNAVAILABLE, 1 UNHEALTHY (live from"),
        "{services}"
    );
    // …and fall back to the file when nothing answers.
    let closed = format!("127.0.0.1:{}", free_port());
    let routes = cli(&t, &["routes", "svc", "--admin", &closed]);
    assert!(
        !routes.contains("live") && !routes.contains("HEALTHY"),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("127.0.0.1:{}", a.port)),
        "{routes}"
    );

    // Traffic: requests counted per target group within a couple of samples.
    for i in 0..20 {
        get(port, "/", &format!("t-{i}"));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let traffic = admin_json(&t, "/ui/api/traffic?service=svc");
        let served: f64 = traffic["routes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["points"].as_array().unwrap().iter())
            .map(|p| p["classes"]["2XX"].as_f64().unwrap_or(0.0))
            .sum();
        if served >= 20.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{traffic}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The traffic charts' JSON for known traffic: 12 requests served by `group-b` (200) and 5 given
/// the fixed 404 (no target group) are counted by status class per target group and in the
/// service's total, with a request rate and p50 <= p99 for each second that had requests.
#[tokio::test(flavor = "multi_thread")]
async fn traffic_is_counted_per_service_and_per_target_group() {
    let (t, _a, _b, port) = setup().await;
    for i in 0..12 {
        assert_eq!(get(port, &format!("/b/{i}"), &format!("ok-{i}")), 200);
    }
    for i in 0..5 {
        assert_eq!(get(port, "/fixed", &format!("fixed-{i}")), 404);
    }
    // Sums over the window of a series' points.
    let sum = |points: &Value, f: &dyn Fn(&Value) -> f64| -> f64 {
        points.as_array().unwrap().iter().map(f).sum()
    };
    let class = |c: &'static str| move |p: &Value| p["classes"][c].as_f64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(6);
    let traffic = loop {
        let traffic = admin_json(&t, "/ui/api/traffic?service=svc");
        let total = &traffic["services"][0]["points"];
        if total.is_array() && sum(total, &|p| p["requests"].as_f64().unwrap()) >= 17.0 {
            break traffic;
        }
        assert!(Instant::now() < deadline, "not 17 requests: {traffic}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // One service (the filter), its total: 12 2XX and 5 4XX, nothing else.
    let services = traffic["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "{traffic}");
    assert_eq!(services[0]["service"], "svc");
    let total = &services[0]["points"];
    assert_eq!(sum(total, &class("2XX")), 12.0, "{traffic}");
    assert_eq!(sum(total, &class("4XX")), 5.0, "{traffic}");
    assert_eq!(sum(total, &class("3XX")) + sum(total, &class("5XX")), 0.0);
    // Per target group: group-b served the 12, the fixed responses reached no group ("-"),
    // group-a (health-checked, sent nothing) counts none.
    let route = |group: &str| {
        traffic["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["targetGroup"] == group)
            .unwrap_or_else(|| panic!("no {group} in {traffic}"))["points"]
            .clone()
    };
    assert_eq!(sum(&route("group-b"), &class("2XX")), 12.0, "{traffic}");
    assert_eq!(sum(&route("group-b"), &class("4XX")), 0.0, "{traffic}");
    assert_eq!(sum(&route("-"), &class("4XX")), 5.0, "{traffic}");
    assert_eq!(sum(&route("-"), &class("2XX")), 0.0, "{traffic}");
    let group_a = traffic["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["targetGroup"] == "group-a");
    if let Some(a) = group_a {
        assert_eq!(sum(&a["points"], &|p| p["requests"].as_f64().unwrap()), 0.0);
    }
    // Every second with requests has a rate and both percentiles, p50 <= p99; the service's
    // point is the sum of its groups' points at the same second.
    let mut timed = 0;
    for series in std::iter::once(total.clone()).chain(["group-b", "-"].map(route)) {
        for p in series.as_array().unwrap() {
            if p["requests"].as_f64().unwrap() == 0.0 {
                assert_eq!(p["p50Ms"], Value::Null, "{p}");
                continue;
            }
            timed += 1;
            assert!(p["rps"].as_f64().unwrap() > 0.0, "{p}");
            let (p50, p99) = (p["p50Ms"].as_f64(), p["p99Ms"].as_f64());
            assert!(
                p50.is_some_and(|v| v > 0.0) && p99.is_some_and(|v| v >= p50.unwrap()),
                "{p}"
            );
        }
    }
    assert!(timed >= 3, "{traffic}");
    for p in total.as_array().unwrap() {
        let at_same_second = |group: &str| {
            route(group)
                .as_array()
                .unwrap()
                .iter()
                .find(|q| q["t"] == p["t"])
                .map_or(0.0, |q| q["requests"].as_f64().unwrap())
        };
        assert_eq!(
            p["requests"].as_f64().unwrap(),
            at_same_second("group-a") + at_same_second("group-b") + at_same_second("-"),
            "{traffic}"
        );
    }
}

/// Runs `trellis ARGS -f <t's config>`; its stdout.
fn cli(t: &Trellis, args: &[&str]) -> String {
    let out = Command::new(TRELLIS)
        .args(args)
        .arg("-f")
        .arg(t.config_path())
        .stdin(Stdio::null())
        .output()
        .expect("run trellis");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_clear_answers_and_the_api_is_not_shadowed() {
    let (t, _a, _b, _port) = setup().await;
    let (status, body) = admin(&t, "GET", "/ui/api/services/nope", "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no service named \\\"nope\\\""), "{body}");
    for odd in ["%00%ff%", "..%2F..%2Fetc", "%E2%80%AE", "a%", "svc%2Fextra"] {
        let (status, body) = admin(&t, "GET", &format!("/ui/api/services/{odd}"), "");
        assert_eq!(status, 404, "{odd}: {body}");
    }
    assert_eq!(admin(&t, "GET", "/ui/nothing", "").0, 404);
    assert_eq!(admin(&t, "POST", "/ui/api/directory", "").0, 405);
    assert_eq!(admin(&t, "GET", "/ui/api/send", "").0, 405);
    assert_eq!(admin(&t, "GET", "/ui", "").0, 301);
    let (status, page) = admin(&t, "GET", "/ui/services/svc", "");
    assert_eq!(status, 200);
    assert!(page.contains("/ui/console.js"), "{page}");
    // A long, odd query string: answered (the filter is cut, and matches nothing).
    let long = format!("service={}&status=%ZZ&&&=&x", "s".repeat(6000));
    let (status, _) = admin(&t, "GET", &format!("/ui/api/traffic?{long}"), "");
    assert_eq!(status, 200);
    // Broken forms.
    for (body, want) in [
        ("not json", 400),
        ("{}", 400),
        (r#"{"service":"nope"}"#, 404),
        (r#"{"service":"svc","path":"no-slash"}"#, 400),
        (r#"{"service":"svc","method":"G E T"}"#, 400),
        (r#"{"service":"svc","headers":[["bad name","x"]]}"#, 400),
        (r#"{"service":"svc","headers":[["x","bad\nvalue"]]}"#, 400),
    ] {
        let (status, answer) = admin(&t, "POST", "/ui/api/send", body);
        assert_eq!(status, want, "{body}: {answer}");
        assert!(answer.contains("\"error\""), "{answer}");
    }
    // The API on the same port still answers its own routes.
    let (status, body) = admin(&t, "GET", "/services", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"items\""), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_tail_streams_filtered_records_and_bounds_its_watchers() {
    let (t, _a, _b, port) = setup().await;
    let all = Tail::open(&t, "").1.expect("a tail");
    let ok_only = Tail::open(&t, "service=svc&status=2XX").1.expect("a tail");
    let not_found = Tail::open(&t, "status=404").1.expect("a tail");
    let other = Tail::open(&t, &format!("service={}", "x".repeat(5000)))
        .1
        .expect("a tail");

    assert_eq!(get(port, "/b/1", "tail-ok"), 200);
    assert_eq!(get(port, "/fixed", "tail-404"), 404);
    let sent = Instant::now();
    let record = all
        .record("tail-ok", Duration::from_secs(2))
        .expect("the record within 2 s");
    assert!(sent.elapsed() < Duration::from_secs(2));
    assert_eq!(record["responseCode"], 200);
    assert!(all.record("tail-404", Duration::from_secs(2)).is_some());
    assert!(ok_only.record("tail-ok", Duration::from_secs(2)).is_some());
    assert!(
        ok_only
            .record("tail-404", Duration::from_millis(500))
            .is_none()
    );
    assert!(
        not_found
            .record("tail-404", Duration::from_secs(2))
            .is_some()
    );
    assert!(
        other
            .record("tail-ok", Duration::from_millis(300))
            .is_none()
    );
    drop((all, ok_only, not_found, other));

    // Many watchers: up to the limit are served, the next is refused, and closing them frees
    // their places (each closed stream is noticed at its next write: a record).
    let mut watchers = Vec::new();
    for _ in 0..64 {
        let (status, tail) = Tail::open(&t, "");
        if status == 503 {
            break;
        }
        watchers.push(tail.expect("a tail"));
    }
    assert!(watchers.len() >= 60, "only {} watchers", watchers.len());
    let (status, _) = Tail::open(&t, "");
    assert_eq!(status, 503);
    drop(watchers);
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        get(port, "/", "wake");
        let (status, tail) = Tail::open(&t, "");
        if status == 200 {
            break tail.expect("a tail");
        }
        assert!(Instant::now() < deadline, "watchers never freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(get(port, "/", "after-churn"), 200);
    assert!(
        again
            .record("after-churn", Duration::from_secs(2))
            .is_some()
    );
    // Requests were served all along.
    assert!(t.stderr().contains("trellis: ready"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_form_sends_a_request_and_says_which_rule_and_group_served_it() {
    let (t, _a, b, _port) = setup().await;
    let form = json!({"service": "svc", "method": "POST", "path": "/b/x?q=1",
                      "headers": [["x-test", "yes"]], "body": "hello"});
    let (status, body) = admin(&t, "POST", "/ui/api/send", &form.to_string());
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    assert!(
        answer["body"].as_str().unwrap().contains("Hello from b"),
        "{answer}"
    );
    assert_eq!(answer["rule"], "to-b");
    assert_eq!(answer["targetGroup"], "group-b");
    assert_eq!(answer["target"], format!("127.0.0.1:{}", b.port));
    assert_eq!(answer["record"]["requestMethod"], "POST");
    let seen = b.seen.lock().unwrap().last().cloned().expect("b saw it");
    assert_eq!(seen.headers["x-test"], "yes");
    assert_eq!(&seen.body[..], b"hello");
    let (_, body) = admin(
        &t,
        "POST",
        "/ui/api/send",
        r#"{"service":"svc","path":"/fixed"}"#,
    );
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], 404);
    assert_eq!(answer["rule"], "fixed");
}

/// An HTTPS listener, serving the certificate Trellis made at start-up: the form speaks TLS to
/// it (the service's DNS name as SNI) and says so in the URL.
#[tokio::test(flavor = "multi_thread")]
async fn the_form_sends_to_an_https_listener() {
    let a = Backend::start("a").await;
    let port = free_port();
    let yaml = Config::new()
        .vpc("client-vpc", &["127.0.0.0/8"])
        .network(Network::new("net", &["tls-svc"], &["client-vpc"]))
        .service(Service::new("tls-svc").listener(Listener::https(port).forward("group-a")))
        .target_group(TargetGroup::instance("group-a", &[a.port]).no_health_checks())
        .yaml();
    let t = Trellis::start(&yaml, &[]);
    let (status, body) = admin(
        &t,
        "POST",
        "/ui/api/send",
        r#"{"service":"tls-svc","path":"/over-tls"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    assert!(
        answer["url"]
            .as_str()
            .unwrap()
            .starts_with("https://tls-svc-"),
        "{answer}"
    );
    assert!(
        answer["body"].as_str().unwrap().contains("Hello from a"),
        "{answer}"
    );
    assert_eq!(answer["record"]["requestPath"], "/over-tls", "{answer}");
    let record = &answer["record"];
    assert!(
        record["tlsVersion"].as_str().unwrap().starts_with("TLS"),
        "{answer}"
    );
    assert!(
        record["serverNameIndication"]
            .as_str()
            .unwrap()
            .starts_with("tls-svc-"),
        "{answer}"
    );
}

/// The form signs as one of the configured identities (examples/auth.yaml: an "authenticated
/// only" service whose function answers with the caller it was given): Trellis's own verifier
/// and policy then see a signed caller, exactly as for curl --aws-sigv4. The page lists the
/// identities by name and never a secret; what cannot be signed is refused with a reason.
#[tokio::test(flavor = "multi_thread")]
async fn the_form_signs_as_a_configured_identity() {
    let t = Trellis::start(&auth_example(free_port()), &[]);
    let session = "arn:aws:sts::123456789012:assumed-role/ordering/checkout";

    let (status, directory) = admin(&t, "GET", "/ui/api/directory", "");
    assert_eq!(status, 200, "{directory}");
    assert!(
        !directory.contains("secret"),
        "a secret on the page: {directory}"
    );
    let directory: Value = serde_json::from_str(&directory).unwrap();
    let principals: Vec<&str> = directory["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter_map(|i| i["principal"].as_str())
        .collect();
    assert_eq!(
        principals,
        [session, "arn:aws:iam::123456789012:user/auditor"]
    );

    let send = |form: Value| {
        let (status, body) = admin(&t, "POST", "/ui/api/send", &form.to_string());
        let answer: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        (status, answer)
    };
    // Unsigned: anonymous, refused by the policy.
    let (status, a) = send(json!({"service": "whoami", "path": "/whoami"}));
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["status"], 403, "{a}");
    assert!(
        a["body"]
            .as_str()
            .unwrap()
            .starts_with("AccessDeniedException: User: anonymous"),
        "{a}"
    );
    assert_eq!(a["signedAs"], Value::Null);
    // Signed as the role session (by access key id), with a query and a header of the
    // form's, both covered by the signature: the function sees that caller.
    let (status, a) = send(
        json!({"service": "whoami", "method": "POST", "path": "/whoami?x=1&a=b%20c",
                                  "headers": [["x-tenant", "t1"]], "body": "hi",
                                  "identity": "AKIAORDERING"}),
    );
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["status"], 200, "{a}");
    assert_eq!(a["signedAs"], session, "{a}");
    let seen: Value =
        serde_json::from_str(a["body"].as_str().unwrap().trim()).expect("whoami JSON");
    assert_eq!(seen["principal"], session, "{seen}");
    assert_eq!(seen["type"], "AWS_IAM", "{seen}");
    assert_eq!(a["record"]["callerPrincipal"], session, "{a}");
    // By ARN too; the policy's Deny on /admin still applies to a signed caller.
    let (_, a) = send(json!({"service": "whoami", "path": "/admin/x",
                             "identity": "arn:aws:iam::123456789012:user/auditor"}));
    assert_eq!(a["status"], 403, "{a}");
    assert!(a["body"].as_str().unwrap().contains("user/auditor"), "{a}");
    // What cannot be signed: refused by the console, with the reason, nothing sent.
    let (status, a) =
        send(json!({"service": "whoami", "path": "/whoami", "identity": "AKIANOBODY"}));
    assert_eq!(status, 400, "{a}");
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .contains("no configured identity"),
        "{a}"
    );
    let (status, a) = send(
        json!({"service": "whoami", "path": "/whoami", "identity": "AKIAORDERING",
                                  "headers": [["Authorization", "AWS4-HMAC-SHA256 made-up"]]}),
    );
    assert_eq!(status, 400, "{a}");
    assert!(
        a["error"].as_str().unwrap().contains("authorization"),
        "{a}"
    );
    let (status, a) = send(json!({"service": "whoami", "path": "/whoami",
                                  "identity": "x".repeat(100_000)}));
    assert_eq!(status, 400, "{a}");
    assert!(a["error"].as_str().unwrap().len() < 1000, "{a}");
}

#[test]
fn an_admin_address_that_is_not_loopback_is_announced() {
    let yaml = Config::new()
        .service(
            Service::new("svc").listener(Listener::http(free_port()).action(fixed_response(204))),
        )
        .yaml();
    let t = Trellis::start(&yaml, &["--admin", "0.0.0.0:0"]);
    let stderr = t.stderr();
    assert!(
        stderr.contains("is not loopback: other machines can reach the console"),
        "{stderr}"
    );
    assert!(
        stderr.contains("trellis: console at http://0.0.0.0:"),
        "{stderr}"
    );
    drop(t);
    let t = Trellis::start(&yaml, &[]);
    assert!(!t.stderr().contains("not loopback"), "{}", t.stderr());
}

/// The pages in a real browser: the walkthrough's directory (its network's services as links
/// named after them), the routing picture with both rules and the 20/10 weights, the service's
/// total traffic and latency charts updating as requests arrive, a backend stopped during the test turning UNHEALTHY in the open
/// page in time, a curl request in the log tail within 2 s, a function's invocation in its last
/// invocations (with status and duration, the first one marked as a cold start) and its log
/// lines in its log tail within 2 s, the form returning the function's answer. Screenshots go
/// to $TRELLIS_SCREENSHOTS (`TRELLIS_SCREENSHOTS=docs/console` regenerates the README's) or a
/// scratch directory.
#[test]
fn the_console_in_a_headless_browser() {
    let Some(python) = browser("the_console_in_a_headless_browser") else {
        return;
    };
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let instance_port = free_port();
    let listener_port = free_port();
    let mut instance = Command::new(sample("hello-instance"))
        .args([
            "--port",
            &instance_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--name",
            "instance",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hello-instance");
    let mut line = String::new();
    let _ = BufReader::new(instance.stdout.take().unwrap()).read_line(&mut line);
    assert!(line.contains("listening"), "{line:?}");
    let walkthrough =
        std::fs::read_to_string(repo.join("examples/walkthrough.yaml")).expect("walkthrough");
    let dist = repo.join("sample-functions/dist");
    let _ = sample("hello-wasm.wasm");
    let yaml = walkthrough
        .replace("port: 8080", &format!("port: {listener_port}"))
        .replace("port: 8081", &format!("port: {instance_port}"))
        .replace("sample-functions/dist", &dist.display().to_string());
    let scratch = scratch_dir("console-shots");
    let t = Trellis::start_with_state(&yaml, &scratch.join("state"), &[], Duration::from_secs(120));
    let shots = std::env::var("TRELLIS_SCREENSHOTS")
        .map(|d| repo.join(d))
        .unwrap_or_else(|_| scratch.join("shots"));
    let ran = run_oracle(
        &python,
        "console_browser.py",
        &[
            &t.admin_addr(),
            &listener_port.to_string(),
            &instance.id().to_string(),
            &shots.display().to_string(),
        ],
        Duration::from_secs(180),
    );
    let _ = instance.kill();
    let _ = instance.wait();
    assert_eq!(
        ran.code,
        Some(0),
        "console_browser.py failed:\n{}\n{}\n--- trellis stderr:\n{}",
        ran.stdout,
        ran.stderr,
        t.stderr()
    );
    let summary: Value =
        serde_json::from_str(ran.stdout.lines().last().unwrap_or_default()).expect("summary");
    assert_eq!(summary["network_services"], "lattice-svc", "{summary}");
    assert!(
        summary["tail_after_s"].as_f64().is_some_and(|s| s <= 2.0),
        "{summary}"
    );
    assert!(
        summary["function_log_after_s"]
            .as_f64()
            .is_some_and(|s| s <= 2.0),
        "{summary}"
    );
    assert!(
        summary["unhealthy_after_s"].as_f64() <= summary["unhealthy_budget_s"].as_f64(),
        "{summary}"
    );
    for shot in ["directory", "service", "logs", "functions", "send"] {
        assert!(shots.join(format!("{shot}.png")).is_file(), "{shot}.png");
    }
}

/// The virtualenv's Python when it has selenium and Debian's chromium and chromedriver are
/// installed; otherwise `None` with the reason (a failure under TRELLIS_REQUIRE_ORACLES, which
/// `make unit` sets).
fn browser(test: &str) -> Option<std::path::PathBuf> {
    let python = api_oracles(test)?;
    let works = Command::new(&python)
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success())
        && ["chromium", "chromedriver"].iter().all(|b| {
            Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if works {
        return Some(python);
    }
    let why = format!(
        "{test}: SKIPPED: needs selenium in {} and Debian's chromium and chromium-driver (make browser; scripts/pyenv.sh)",
        python.display()
    );
    assert!(
        std::env::var_os("TRELLIS_REQUIRE_ORACLES").is_none(),
        "{why}, and TRELLIS_REQUIRE_ORACLES is set"
    );
    eprintln!("{why}");
    None
}
