//! The console's functions view (issue 17) through the real binary, with real function
//! processes (sample-functions/hello-lambda, built on the official `lambda_runtime` crate, and a
//! Lambda custom runtime in bash): each invocation in the function's last invocations with its
//! duration, status and cold start, the environments starting, busy and idle, the function log
//! (START/END/REPORT and what the function prints) on the server-sent-events tail within 2 s,
//! and the tail's bounds: a watcher that never reads holds no function back and is told what
//! it lost, and watchers beyond the limit are refused.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{Value, json};

const FUNCTION_LOGS: &str = "/ui/api/function-logs";

/// A Lambda custom runtime in bash: its init takes `INIT_SLEEP` seconds; it prints
/// `scripted invocation ID` for each invocation; one whose path is `/slow` takes 1 s more, and
/// one whose path is `/flood` first prints `FLOOD_LINES` lines of 4000 control characters
/// (U+0001, which an event's JSON escapes to 6 bytes each).
const SCRIPTED: &str = r#"#!/usr/bin/env bash
set -uo pipefail
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
sleep "${INIT_SLEEP:-0}"
headers=$(mktemp)
event=$(mktemp)
trap 'rm -f "$headers" "$event"' EXIT
line=$(head -c 4000 /dev/zero | tr '\0' '\001')
while true; do
  curl -sS -o "$event" -D "$headers" "$api/invocation/next" || exit 1
  id=$(awk 'tolower($1) == "lambda-runtime-aws-request-id:" {print $2}' "$headers" | tr -d '\r')
  echo "scripted invocation $id" >&2
  if grep -q '"path":"/slow"' "$event"; then sleep 1; fi
  if grep -q '"path":"/flood"' "$event"; then yes "$line" | head -n "${FLOOD_LINES:-0}" >&2; fi
  curl -sS -o /dev/null -X POST -H 'content-type: application/json' \
    --data '{"statusCode": 200, "body": "done"}' "$api/invocation/$id/response"
done
"#;

/// Lines the flood prints: 30 MB (180 MB as events), far more than a watcher that reads
/// nothing can hold back (its socket buffers, plus the tap's 1024 lines).
const FLOOD_LINES: usize = 7500;

/// A service `fnsvc` on `port` whose rules send `x-fn: hello-lambda` to the sample function and
/// `x-fn: scripted` to the bash runtime (init `init_sleep` seconds), both process functions.
fn setup(init_sleep: &str) -> (Trellis, u16, Scratch) {
    let dir = scratch_dir("console-functions");
    let script = dir.join("scripted.sh");
    std::fs::write(&script, SCRIPTED).unwrap();
    let port = free_port();
    let yaml = Config::new()
        .vpc("client-vpc", &["127.0.0.0/8"])
        .network(Network::new("net", &["fnsvc"], &["client-vpc"]))
        .service(
            Service::new("fnsvc").listener(
                Listener::http(port)
                    .rule(
                        "to-lambda",
                        10,
                        header_exact("x-fn", "hello-lambda"),
                        forward("lambda-tg"),
                    )
                    .rule(
                        "to-scripted",
                        20,
                        header_exact("x-fn", "scripted"),
                        forward("scripted-tg"),
                    ),
            ),
        )
        .target_group(TargetGroup::lambda("lambda-tg", "hello-lambda", "V2"))
        .target_group(TargetGroup::lambda("scripted-tg", "scripted", "V2"))
        .function(json!({
            "name": "hello-lambda", "runtime": "process", "timeout": 10,
            "command": [sample("hello-lambda").display().to_string()],
        }))
        .function(json!({
            "name": "scripted", "runtime": "process", "timeout": 30,
            "command": ["bash", script.display().to_string()],
            "environment": {"INIT_SLEEP": init_sleep, "FLOOD_LINES": FLOOD_LINES.to_string()},
        }))
        .yaml();
    (Trellis::start(&yaml, &[]), port, dir)
}

/// A request through the listener to function `function` with request id `id`: (status, body).
fn invoke(port: u16, function: &str, path: &str, id: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: fnsvc.trellis.localhost\r\nx-fn: {function}\r\nx-amzn-requestid: {id}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = stream.take(1 << 20).read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The function log lines `tail` receives until every one of `needles` is in one of them, or
/// until `deadline`: (lines as `{"function", "text", "at"}`, whether all were seen).
fn lines_until(tail: &Tail, deadline: Instant, needles: &[&str]) -> (Vec<Value>, bool) {
    let mut lines = Vec::new();
    let all_seen = |lines: &[Value]| {
        needles.iter().all(|n| {
            lines
                .iter()
                .any(|l| l["text"].as_str().is_some_and(|t| t.contains(n)))
        })
    };
    while !all_seen(&lines) {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return (lines, false);
        };
        match tail.lines.recv_timeout(left) {
            Ok(raw) => {
                if let Some(data) = raw.strip_prefix("data: ") {
                    lines.push(serde_json::from_str(data).expect("a line event's JSON"));
                }
            }
            Err(_) => return (lines, false),
        }
    }
    (lines, true)
}

fn texts(lines: &[Value]) -> Vec<&str> {
    lines.iter().filter_map(|l| l["text"].as_str()).collect()
}

/// Polls `/ui/api/functions/NAME` until `pred` holds (every 50 ms, up to `within`).
fn wait_function(
    t: &Trellis,
    name: &str,
    within: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let f = admin_json(t, &format!("/ui/api/functions/{name}"));
        if pred(&f) {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not within {within:?}: {f:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (up to 5 s) until the admin address's `/metrics` shows `sample` (`name{labels}`) at
/// `value`.
fn wait_metric(t: &Trellis, sample: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, text) = admin(t, "GET", "/metrics", "");
        assert_eq!(status, 200, "{text}");
        let seen = sample_value(&text, sample);
        if seen == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sample} is {seen:?}, not {value}, after 5 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn each_invocation_its_environments_and_its_log_lines_show_up() {
    let (t, port, _dir) = setup("1.5");
    let began = now_seconds();

    // Hostile and unknown names get clear answers.
    let (status, body) = admin(&t, "GET", "/ui/api/functions/no%20such%ff", "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no function named"), "{body}");
    let long = format!("/ui/api/functions/{}", "x".repeat(20_000));
    assert_eq!(admin(&t, "GET", &long, "").0, 404);
    assert_eq!(admin(&t, "POST", FUNCTION_LOGS, "").0, 405);

    // A process function's pool exists before its first request, with no environment yet.
    let before = admin_json(&t, "/ui/api/functions/hello-lambda");
    assert_eq!(before["lastInvocations"], json!([]), "{before:#}");
    assert_eq!(before["environments"]["total"], 0, "{before:#}");
    assert_eq!(before["targetGroups"], json!(["lambda-tg"]), "{before:#}");

    let lambda_log = Tail::open_at(&t, FUNCTION_LOGS, "function=hello-lambda")
        .1
        .expect("a function-log tail");
    let all_log = Tail::open_at(&t, FUNCTION_LOGS, "").1.expect("a tail");
    let nobody = format!("function={}", "x".repeat(5000));
    let none_log = Tail::open_at(&t, FUNCTION_LOGS, &nobody).1.expect("a tail");

    // A cold start.
    let (status, body) = invoke(port, "hello-lambda", "/first", "fn-cold");
    let answered = Instant::now();
    assert_eq!(status, 200, "{body}\n{}", t.stderr());
    assert!(
        body.contains("Hello from the function at path \"/first\""),
        "{body}"
    );
    let (lines, all) = lines_until(
        &lambda_log,
        answered + Duration::from_secs(2),
        &[
            "START RequestId: fn-cold",
            "GET /first (request fn-cold)",
            "END RequestId: fn-cold",
            "REPORT RequestId: fn-cold",
        ],
    );
    assert!(
        all,
        "the function's lines not on the tail within 2 s: {:#?}",
        texts(&lines)
    );
    assert!(
        lines.iter().all(|l| l["function"] == "hello-lambda"),
        "{lines:#?}"
    );
    let report = texts(&lines)
        .into_iter()
        .find(|l| l.starts_with("REPORT RequestId: fn-cold"))
        .unwrap()
        .to_owned();
    assert!(report.contains("Init Duration:"), "{report}");
    let at = lines[0]["at"].as_f64().unwrap();
    assert!(at >= began - 1.0 && at <= now_seconds() + 1.0, "{at}");

    let f = admin_json(&t, "/ui/api/functions/hello-lambda");
    let cold = &f["lastInvocations"][0];
    assert_eq!(cold["requestId"], "fn-cold", "{f:#}");
    assert_eq!(cold["status"], 200, "{f:#}");
    assert_eq!(cold["outcome"], "success", "{f:#}");
    assert_eq!(cold["coldStart"], true, "{f:#}");
    let duration = cold["durationMs"].as_f64().expect("a duration");
    let total = cold["totalMs"].as_f64().expect("a total");
    let init = cold["initDurationMs"].as_f64().expect("an init duration");
    assert!(duration > 0.0 && init > 0.0, "{cold}");
    assert!(total >= duration, "{cold}");
    let start = cold["startTime"].as_f64().unwrap();
    assert!(
        start >= began - 1.0 && start <= now_seconds() + 1.0,
        "{cold}"
    );
    assert_eq!(f["coldStarts"], 1, "{f:#}");
    // Its environment goes back to waiting for work.
    wait_function(
        &t,
        "hello-lambda",
        Duration::from_secs(5),
        "one idle environment",
        |f| {
            let e = &f["environments"];
            e["total"] == 1 && e["idle"] == 1 && e["busy"] == 0 && e["starting"] == 0
        },
    );

    // A warm invocation, then one the function fails.
    assert_eq!(invoke(port, "hello-lambda", "/second", "fn-warm").0, 200);
    assert_eq!(invoke(port, "hello-lambda", "/error", "fn-error").0, 502);
    let (lines, all) = lines_until(
        &lambda_log,
        Instant::now() + Duration::from_secs(2),
        &["REPORT RequestId: fn-warm", "REPORT RequestId: fn-error"],
    );
    assert!(all, "{:#?}", texts(&lines));
    let warm_report = texts(&lines)
        .into_iter()
        .find(|l| l.starts_with("REPORT RequestId: fn-warm"))
        .unwrap();
    assert!(!warm_report.contains("Init Duration"), "{warm_report}");
    let f = admin_json(&t, "/ui/api/functions/hello-lambda");
    let last = f["lastInvocations"].as_array().unwrap();
    let ids: Vec<&str> = last
        .iter()
        .filter_map(|r| r["requestId"].as_str())
        .collect();
    assert_eq!(ids, ["fn-error", "fn-warm", "fn-cold"], "{f:#}");
    assert_eq!(last[1]["coldStart"], false, "{f:#}");
    assert_eq!(last[1]["initDurationMs"], Value::Null, "{f:#}");
    assert_eq!(last[1]["status"], 200, "{f:#}");
    assert_eq!(last[0]["status"], 502, "{f:#}");
    assert_eq!(last[0]["outcome"], "error", "{f:#}");
    assert!(
        last[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("the handler failed on purpose")),
        "{f:#}"
    );
    assert_eq!(f["coldStarts"], 1, "{f:#}");
    // The counts by outcome since start (from the metrics, sampled once a second).
    wait_function(
        &t,
        "hello-lambda",
        Duration::from_secs(5),
        "the counts by outcome",
        |f| f["invocations"]["success"] == 2.0 && f["invocations"]["error"] == 1.0,
    );

    // The other function: starting (its init takes 1.5 s), then busy (its invocation 1 s),
    // then idle, each seen in the live JSON.
    let slow = std::thread::spawn(move || invoke(port, "scripted", "/slow", "scripted-slow"));
    wait_function(
        &t,
        "scripted",
        Duration::from_secs(5),
        "a starting environment",
        |f| f["environments"]["starting"] == 1 && f["environments"]["busy"] == 0,
    );
    wait_function(
        &t,
        "scripted",
        Duration::from_secs(10),
        "a busy environment",
        |f| f["environments"]["busy"] == 1 && f["environments"]["starting"] == 0,
    );
    assert_eq!(slow.join().unwrap().0, 200);
    let f = wait_function(
        &t,
        "scripted",
        Duration::from_secs(5),
        "an idle environment",
        |f| f["environments"]["idle"] == 1 && f["environments"]["busy"] == 0,
    );
    let record = &f["lastInvocations"][0];
    assert_eq!(record["requestId"], "scripted-slow", "{f:#}");
    assert_eq!(record["coldStart"], true, "{f:#}");
    assert!(
        record["initDurationMs"].as_f64().unwrap() >= 1500.0,
        "{f:#}"
    );
    assert!(record["durationMs"].as_f64().unwrap() >= 1000.0, "{f:#}");
    // The gauges on /metrics say the same.
    for (gauge, value) in [
        ("environments", 1.0),
        ("starting_environments", 0.0),
        ("idle_environments", 1.0),
        ("busy_environments", 0.0),
    ] {
        wait_metric(
            &t,
            &format!(r#"trellis_function_{gauge}{{function="scripted"}}"#),
            value,
        );
    }

    // Filters: the unfiltered tail had both functions' lines, the filtered one only its own,
    // and a name nobody has matches nothing.
    let (lines, all) = lines_until(
        &all_log,
        Instant::now() + Duration::from_secs(2),
        &[
            "START RequestId: fn-cold",
            "scripted invocation scripted-slow",
        ],
    );
    assert!(all, "{:#?}", texts(&lines));
    let (lines, _) = lines_until(
        &lambda_log,
        Instant::now() + Duration::from_millis(300),
        &["never"],
    );
    assert!(
        lines.iter().all(|l| l["function"] == "hello-lambda"),
        "{lines:#?}"
    );
    let (lines, _) = lines_until(
        &none_log,
        Instant::now() + Duration::from_millis(300),
        &["never"],
    );
    assert!(lines.is_empty(), "{lines:#?}");

    // The list has both functions, with the same records.
    let list = admin_json(&t, "/ui/api/functions");
    let names: Vec<&str> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["hello-lambda", "scripted"], "{list:#}");
    assert_eq!(
        list["functions"][0]["lastInvocations"][0]["requestId"],
        "fn-error"
    );
}

/// Opens a function-log tail and reads only up to its `: connected` comment, then nothing.
fn stuck_watcher(t: &Trellis) -> TcpStream {
    let mut stream = TcpStream::connect(t.admin_addr()).expect("connect admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // HTTP/1.0: the events come unframed (no chunks), until the connection closes.
    write!(
        stream,
        "GET {FUNCTION_LOGS} HTTP/1.0\r\nHost: admin\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b": connected\nretry: 1000\n\n") {
        assert!(head.len() < 4096, "{}", String::from_utf8_lossy(&head));
        stream
            .read_exact(&mut byte)
            .expect("the tail's first bytes");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.0 200") || head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

#[test]
fn the_function_log_tail_is_bounded_and_never_holds_a_function_back() {
    let (t, port, _dir) = setup("0");
    let mut stuck: Vec<TcpStream> = (0..3).map(|_| stuck_watcher(&t)).collect();

    // 30 MB of log while three watchers read nothing: the function is not held back.
    let started = Instant::now();
    let (status, body) = invoke(port, "scripted", "/flood", "flood");
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the flood took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(invoke(port, "hello-lambda", "/", "after-flood").0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a cold start after the flood took {:?}",
        started.elapsed()
    );
    // Trellis's own log (its stderr) has every line: only the watchers lose some.
    let flood_line = format!("[scripted] {}", "\u{1}".repeat(4000));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = t.stderr().lines().filter(|l| *l == flood_line).count();
        if n == FLOOD_LINES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of {FLOOD_LINES} flood lines on stderr"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Watchers up to the limit are served, the next is refused with a reason; the access-log
    // tail has its own places.
    let mut watchers = Vec::new();
    for _ in 0..64 {
        let (status, tail) = Tail::open_at(&t, FUNCTION_LOGS, "");
        if status == 503 {
            break;
        }
        watchers.push(tail.expect("a tail"));
    }
    assert_eq!(watchers.len() + stuck.len(), 64, "the limit is 64");
    let (status, body) = admin(&t, "GET", FUNCTION_LOGS, "");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("too many function-log watchers"), "{body}");
    assert_eq!(Tail::open(&t, "").0, 200, "the access-log tail is not full");
    // Invocations go on while every place is taken.
    assert_eq!(invoke(port, "scripted", "/", "full-house").0, 200);
    // A closed watcher's place is freed (noticed at its next line).
    drop(watchers.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        assert_eq!(invoke(port, "scripted", "/", "wake").0, 200);
        let (status, tail) = Tail::open_at(&t, FUNCTION_LOGS, "function=scripted");
        if status == 200 {
            break tail.expect("a tail");
        }
        assert!(
            Instant::now() < deadline,
            "the closed watcher's place was never freed"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(invoke(port, "scripted", "/", "after-churn").0, 200);
    let (lines, all) = lines_until(
        &again,
        Instant::now() + Duration::from_secs(2),
        &["scripted invocation after-churn"],
    );
    assert!(all, "{:#?}", texts(&lines));

    // A stuck watcher, read at last, is told how many lines it lost.
    let mut reader = stuck.pop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let dropped = loop {
        assert!(Instant::now() < deadline, "no `dropped` event");
        let n = reader.read(&mut buf).expect("the stuck tail's stream");
        assert!(n > 0, "the stuck tail ended");
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if let Some(at) = text.find("event: dropped\ndata: ")
            && let Some(end) = text[at..].find("\n\n")
        {
            let data = &text[at + "event: dropped\ndata: ".len()..at + end];
            break serde_json::from_str::<Value>(data).expect("the dropped event's JSON");
        }
        // Keep only a tail of what was read: the event may straddle two reads.
        if seen.len() > 1 << 20 {
            seen.drain(..seen.len() - 4096);
        }
    };
    assert!(
        dropped["dropped"].as_u64().is_some_and(|n| n > 0),
        "{dropped}"
    );
    assert!(
        dropped["why"].as_str().is_some_and(|w| w.contains("lines")),
        "{dropped}"
    );
}
