//! The command line: `validate`, `services`, `routes`, `--help`, and how `up` fails.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn walkthrough() -> String {
    repo()
        .join("examples/walkthrough.yaml")
        .display()
        .to_string()
}

/// Runs `trellis args` in `cwd`, killing it after `timeout`: (exit code, stdout, stderr), with
/// code `None` when it had to be killed.
fn run_bounded(args: &[&str], cwd: &Path, timeout: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(TRELLIS)
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trellis");
    let deadline = Instant::now() + timeout;
    let code = exit_code_by(&mut child, deadline);
    let out = child.wait_with_output().expect("output");
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `<name>-<17 hex>.7d67968.vpc-lattice-svcs.<region>.on.aws` shape.
fn is_lattice_dns_name(dns: &str, name: &str, region: &str) -> bool {
    let Some(rest) = dns.strip_prefix(&format!("{name}-")) else {
        return false;
    };
    let Some((id, suffix)) = rest.split_once('.') else {
        return false;
    };
    id.len() == 17
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && suffix == format!("7d67968.vpc-lattice-svcs.{region}.on.aws")
}

/// A config file in a scratch directory of its own, removed with it.
struct ConfigFile {
    path: PathBuf,
    _dir: Scratch,
}

impl std::ops::Deref for ConfigFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

fn write_config(name: &str, yaml: &str) -> ConfigFile {
    let dir = scratch_dir(name);
    let path = dir.join("trellis.yaml");
    std::fs::write(&path, yaml).expect("write config");
    ConfigFile { path, _dir: dir }
}

#[test]
fn validate_walkthrough_prints_one_summary_line() {
    let (code, out, err) = run_cli(&["validate", "-f", &walkthrough()], repo());
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("valid"), "{out}");
    assert!(lines[0].contains("1 service"), "{out}");
    assert!(lines[0].contains("2 rules"), "{out}");
    assert!(lines[0].contains("2 target groups"), "{out}");
}

#[test]
fn help_everywhere_mentions_exit_codes() {
    let (code, out, err) = run_cli(&["--help"], repo());
    assert_eq!(code, 0, "{err}");
    for word in ["up", "validate", "services", "routes", "Exit codes"] {
        assert!(out.contains(word), "top-level help lacks {word:?}:\n{out}");
    }
    for cmd in ["up", "validate", "services", "routes"] {
        let (code, out, err) = run_cli(&[cmd, "--help"], repo());
        assert_eq!(code, 0, "{cmd} --help: {err}");
        assert!(out.contains("Usage"), "{cmd} --help:\n{out}");
        assert!(
            out.contains("Exit codes"),
            "{cmd} --help lacks exit codes:\n{out}"
        );
        assert!(
            out.contains("--file"),
            "{cmd} --help lacks -f/--file:\n{out}"
        );
    }
    // `help SUBCOMMAND` works as well.
    let (code, out, _) = run_cli(&["help", "routes"], repo());
    assert_eq!(code, 0);
    assert!(out.contains("Exit codes"), "{out}");
}

#[test]
fn services_lists_names_dns_names_and_listeners() {
    let (code, out, err) = run_cli(&["services", "-f", &walkthrough()], repo());
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("lattice-svc")), "{out}");
    let dns = dns_names(&repo().join("examples/walkthrough.yaml"));
    let name = dns.get("lattice-svc").expect("dns name of lattice-svc");
    assert!(
        is_lattice_dns_name(name, "lattice-svc", "us-west-2"),
        "{name}"
    );
    assert!(out.contains("lattice-svc.trellis.localhost"), "{out}");
    let listeners = out
        .lines()
        .find(|l| l.trim().starts_with("listeners:"))
        .expect("listeners line");
    assert!(listeners.contains("http"), "{listeners}");
    assert!(listeners.contains("HTTP"), "{listeners}");
    assert!(listeners.contains("8080"), "{listeners}");

    // Stable: the same on a second run, and for a copy of the file elsewhere.
    let again = dns_names(&repo().join("examples/walkthrough.yaml"));
    assert_eq!(again.get("lattice-svc"), Some(name));
    let copy = write_config(
        "services-copy",
        &std::fs::read_to_string(repo().join("examples/walkthrough.yaml")).unwrap(),
    );
    assert_eq!(dns_names(&copy).get("lattice-svc"), Some(name));

    // Another service gets another name; another region shows in the name.
    let other = write_config(
        "services-other",
        r#"region: eu-west-1
services:
  - name: other-svc
    customDomainName: other.example.com
    listeners: [{name: http, protocol: HTTP, port: 8080, defaultAction: {fixedResponse: {statusCode: 404}}}]
"#,
    );
    let other_dns = dns_names(&other);
    let other_name = other_dns.get("other-svc").expect("other-svc dns name");
    assert!(
        is_lattice_dns_name(other_name, "other-svc", "eu-west-1"),
        "{other_name}"
    );
    let (_, out, _) = run_cli(&["services", "-f", &other.display().to_string()], repo());
    assert!(out.contains("other.example.com"), "{out}");
}

#[test]
fn routes_shows_rules_in_priority_order_with_weights_and_targets() {
    let (code, out, err) = run_cli(&["routes", "lattice-svc", "-f", &walkthrough()], repo());
    assert_eq!(code, 0, "{err}");
    let pos = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{out}"))
    };
    assert!(pos("to-instance ") < pos("to-function"), "{out}");
    assert!(pos("priority 10") < pos("priority 20"), "{out}");
    assert!(pos("priority 20") < pos("default"), "{out}");
    assert!(out.contains("/to-function"), "{out}");
    let default = &out[pos("default")..];
    assert!(default.contains("weight 20"), "{out}");
    assert!(default.contains("weight 10"), "{out}");
    assert!(default.contains("66.7%"), "{out}");
    assert!(default.contains("33.3%"), "{out}");
    assert!(default.contains("127.0.0.1:8081"), "{out}");
    assert!(default.contains("function hello-function"), "{out}");

    // Rules written out of order are shown by priority.
    let file = write_config(
        "routes-order",
        r#"region: us-west-2
services:
  - name: order-svc
    listeners:
      - name: http
        protocol: HTTP
        port: 8080
        defaultAction: {fixedResponse: {statusCode: 404}}
        rules:
          - {name: last, priority: 300, match: {httpMatch: {pathMatch: {match: {prefix: /c}}}}, action: {forward: {targetGroups: [{targetGroupIdentifier: web-tg}]}}}
          - {name: first, priority: 7, match: {httpMatch: {method: GET}}, action: {fixedResponse: {statusCode: 500}}}
          - {name: middle, priority: 40, match: {httpMatch: {headerMatches: [{name: x-env, match: {exact: canary}}]}}, action: {forward: {targetGroups: [{targetGroupIdentifier: web-tg}]}}}
targetGroups:
  - {name: web-tg, type: INSTANCE, config: {port: 9000, protocol: HTTP}, targets: [{id: 127.0.0.1}, {id: 127.0.0.2, port: 9001}]}
"#,
    );
    let (code, out, err) = run_cli(
        &["routes", "order-svc", "-f", &file.display().to_string()],
        repo(),
    );
    assert_eq!(code, 0, "{err}");
    let at = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{out}"))
    };
    assert!(
        at("first") < at("middle") && at("middle") < at("last"),
        "{out}"
    );
    assert!(at("last") < at("default"), "{out}");
    assert!(out.contains("127.0.0.1:9000"), "{out}");
    assert!(out.contains("127.0.0.2:9001"), "{out}");
    assert!(
        out.contains("100.0%"),
        "a lone target group gets everything:\n{out}"
    );
    assert!(out.contains("fixed response 500"), "{out}");
}

#[test]
fn routes_of_an_unknown_service_lists_the_services() {
    let (code, out, err) = run_cli(&["routes", "no-such-svc", "-f", &walkthrough()], repo());
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("no-such-svc"), "{err}");
    assert!(err.contains("lattice-svc"), "{err}");
}

#[test]
fn missing_config_file_exits_1_with_a_clear_message() {
    let dir = scratch_dir("missing");
    let missing = dir.join("nope.yaml").display().to_string();
    for args in [
        vec!["validate", "-f", missing.as_str()],
        vec!["services", "-f", missing.as_str()],
        vec!["routes", "lattice-svc", "-f", missing.as_str()],
        vec!["up", "-f", missing.as_str()],
    ] {
        let (code, out, err) = run_bounded(&args, &dir, Duration::from_secs(20));
        assert_eq!(code, Some(1), "{args:?}: stdout:\n{out}\nstderr:\n{err}");
        assert!(err.contains("nope.yaml"), "{args:?}: {err}");
        assert!(err.contains("cannot read"), "{args:?}: {err}");
    }
    // Without -f: trellis.yaml in the current directory.
    let (code, _, err) = run_bounded(&["validate"], &dir, Duration::from_secs(20));
    assert_eq!(code, Some(1));
    assert!(err.contains("trellis.yaml"), "{err}");
}

#[test]
fn up_on_an_invalid_config_exits_1_and_prints_the_problems() {
    let file = write_config(
        "invalid",
        r#"region: us-west-2
services:
  - name: bad-svc
    listeners:
      - name: http
        protocol: HTTP
        port: 8080
        defaultAction: {forward: {targetGroups: [{targetGroupIdentifier: web-tgg}]}}
        rules:
          - {name: r-one, priority: 0, match: {httpMatch: {pathMatch: {match: {prefix: api}}}}, action: {fixedResponse: {statusCode: 404}}}
targetGroups:
  - {name: web-tg, type: INSTANCE, targets: [{id: 127.0.0.1, port: 9000}]}
  - {name: tg-reserved, type: INSTANCE, targets: [{id: 127.0.0.1, port: 9001}]}
"#,
    );
    let path = file.display().to_string();
    let (code, out, err) = run_bounded(
        &["up", "-f", &path],
        file.parent().unwrap(),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("trellis: ready"), "{err}");
    for needle in [
        "web-tgg",      // dangling reference
        "did you mean", // with a suggestion
        "priority",     // out of range
        "api",          // path without '/'
        "tg-reserved",  // reserved prefix
    ] {
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{needle:?} not in:\n{err}"
        );
    }
    // Each problem has a line:column.
    for at in ["trellis.yaml:8:", "trellis.yaml:10:", "trellis.yaml:13:"] {
        assert!(err.contains(at), "no problem reported at {at}\n{err}");
    }
    assert!(err.contains("4 problems"), "{err}");
    // validate says the same, with the same exit code.
    let (code, _, verr) = run_cli(&["validate", "-f", &path], repo());
    assert_eq!(code, 1);
    assert!(
        verr.contains("web-tgg") && verr.contains("tg-reserved"),
        "{verr}"
    );
}

#[test]
fn up_with_a_port_in_use_exits_2_naming_the_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().unwrap().port();
    let file = write_config("port-in-use", &simple_config(port, &[9]));
    let dir = file.parent().unwrap();
    let (code, out, err) = run_bounded(
        &[
            "up",
            "-f",
            &file.display().to_string(),
            "--state-dir",
            &dir.join("state").display().to_string(),
        ],
        dir,
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains(&port.to_string()), "{err}");
    assert!(!err.contains("trellis: ready"), "{err}");
    drop(taken);
}

#[test]
fn up_refuses_zero_serving_threads_before_reading_the_config() {
    let dir = scratch_dir("zero-threads");
    let (code, out, err) = run_bounded(
        &["up", "--threads", "0", "-f", "nope.yaml"],
        &dir,
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("--threads"), "{err}");
    assert!(err.contains("1..=1024"), "{err}");
    assert!(!err.contains("nope.yaml"), "{err}");
}

/// Runs `trellis up` on a one-service config (its target not listening) with `extra` arguments
/// and `RUST_LOG`, sends one request, then SIGTERM: (exit code, stderr). `ready` is how the
/// ready line is recognised in the chosen log format.
fn up_briefly(name: &str, extra: &[&str], ready: &str) -> (Option<i32>, String) {
    use std::io::{BufRead, BufReader, Read, Write};
    let port = free_port();
    let file = write_config(name, &simple_config(port, &[free_port()]));
    let dir = file.parent().unwrap().to_path_buf();
    let mut child = Command::new(TRELLIS)
        .args(["up", "-f", &file.display().to_string(), "--admin", "off"])
        .args(["--state-dir", &dir.join("state").display().to_string()])
        .args(extra)
        .env("RUST_LOG", "info,trellis=debug")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trellis");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut stderr = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stderr.contains(ready) && Instant::now() < deadline {
        if let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(100)) {
            stderr.push_str(&line);
            stderr.push('\n');
        }
    }
    if !stderr.contains(ready) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("trellis did not become ready:\n{stderr}");
    }
    // One request (a 5xx: nothing listens on the target), so that the request path logs.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(
        b"GET /log-probe HTTP/1.1\r\nHost: svc.trellis.localhost\r\nConnection: close\r\n\r\n",
    )
    .expect("send");
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 5"), "{answer}\n{stderr}");
    // The per-request line is written when the response body ends.
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = exit_code_by(&mut child, deadline);
    reader.join().expect("reader");
    for line in lines_rx.try_iter() {
        stderr.push_str(&line);
        stderr.push('\n');
    }
    (code, stderr)
}

#[test]
fn up_with_log_format_json_writes_one_json_object_per_stderr_line() {
    let (code, stderr) = up_briefly(
        "log-json",
        &[
            "--log-format",
            "json",
            "--target-timeout",
            "1.5s",
            "--drain-timeout",
            "500ms",
        ],
        "ready (Ctrl-C to stop)",
    );
    assert_eq!(code, Some(0), "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nstderr:\n{stderr}"));
            for key in ["timestamp", "level", "target", "fields"] {
                assert!(event.get(key).is_some(), "no {key:?} in {line}");
            }
            event
        })
        .collect();
    let message = |e: &serde_json::Value| e["fields"]["message"].as_str().unwrap_or("").to_owned();
    let find = |what: &str| {
        events
            .iter()
            .find(|e| message(e).contains(what))
            .unwrap_or_else(|| panic!("no event with {what:?}:\n{stderr}"))
    };
    // The start-up lines are events too, their parts as fields.
    let listener = find("→  curl");
    assert_eq!(listener["target"], "trellis", "{listener}");
    assert_eq!(listener["level"], "INFO", "{listener}");
    assert_eq!(listener["fields"]["service"], "svc", "{listener}");
    assert!(
        listener["fields"]["curl"]
            .as_str()
            .is_some_and(|c| c.starts_with("curl http://svc.trellis.localhost:")),
        "{listener}"
    );
    find("ready (Ctrl-C to stop)");
    // The request was logged (RUST_LOG=trellis=debug) as JSON.
    assert!(stderr.contains("/log-probe"), "{stderr}");
    // --drain-timeout 500ms reached the drain.
    let signal = find("SIGTERM received");
    assert_eq!(signal["fields"]["drain_seconds"], 0.5, "{signal}");
    find("stopped");
}

#[test]
fn up_writes_no_colour_codes_to_a_pipe() {
    let (code, stderr) = up_briefly("log-text", &[], "trellis: ready");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("\x1b["), "{stderr:?}");
    // Log lines (level, the `trellis` target) next to the start-up lines, which stay plain.
    assert!(
        stderr.contains("INFO trellis: SIGTERM received"),
        "{stderr}"
    );
    assert!(stderr.contains("(up to 10s)"), "{stderr}");
    assert!(stderr.contains("/log-probe"), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("trellis: ready")),
        "{stderr}"
    );
}

#[test]
fn a_bad_duration_is_a_usage_error_before_anything_starts() {
    let dir = scratch_dir("bad-duration");
    for (flag, value) in [
        ("--target-timeout", "abc"),
        ("--target-timeout", "1,5s"),
        ("--drain-timeout", "5m"),
    ] {
        let (code, out, err) = run_bounded(
            &["up", flag, value, "-f", "nope.yaml"],
            &dir,
            Duration::from_secs(20),
        );
        assert_eq!(
            code,
            Some(2),
            "{flag} {value}: stdout:\n{out}\nstderr:\n{err}"
        );
        assert!(err.contains(flag), "{err}");
        assert!(err.contains(value), "{err}");
        assert!(err.contains("1500ms"), "names the accepted forms: {err}");
        // Refused before the config is read.
        assert!(!err.contains("cannot read"), "{err}");
    }
    let (code, out, _) = run_cli(&["up", "--help"], repo());
    assert_eq!(code, 0);
    assert!(out.contains("1500ms"), "{out}");
    assert!(out.contains("[default: 60s]"), "{out}");
}

#[test]
fn invoke_of_an_unknown_function_suggests_the_closest_name() {
    let (code, out, err) = run_cli(&["invoke", "helo-function", "-f", &walkthrough()], repo());
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.starts_with("trellis: error: no function \"helo-function\""),
        "{err}"
    );
    assert!(err.contains("did you mean \"hello-function\"?"), "{err}");
    // Nothing close: no suggestion, the list only.
    let (code, _, err) = run_cli(&["invoke", "zzz", "-f", &walkthrough()], repo());
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("did you mean"), "{err}");
    assert!(err.contains("functions: hello-function"), "{err}");
}

/// On a terminal (`script` gives `trellis up` one) the log is coloured, unless `NO_COLOR` says
/// otherwise.
#[test]
fn up_colours_its_log_on_a_terminal_unless_no_color() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("script (util-linux) not installed: skipping");
        return;
    }
    let file = write_config("log-tty", &simple_config(free_port(), &[free_port()]));
    let dir = file.parent().unwrap();
    let up = format!(
        "timeout -s TERM 5 {TRELLIS} up -f {} --admin off --state-dir {}",
        file.display(),
        dir.join("state").display()
    );
    for (no_color, coloured) in [(None, true), (Some("1"), false)] {
        let mut script = Command::new("script");
        script
            .args(["-qec", &up, "/dev/null"])
            .current_dir(dir)
            .env_remove("NO_COLOR")
            .env_remove("RUST_LOG");
        if let Some(value) = no_color {
            script.env("NO_COLOR", value);
        }
        let out = script.output().expect("run script");
        let terminal = String::from_utf8_lossy(&out.stdout);
        assert!(terminal.contains("SIGTERM received"), "{terminal}");
        assert_eq!(
            terminal.contains("\x1b["),
            coloured,
            "NO_COLOR={no_color:?}:\n{terminal:?}"
        );
    }
}

/// The child's exit code once it exits, or `None` (after killing it) if it is still running at
/// `deadline`.
fn exit_code_by(child: &mut std::process::Child, deadline: Instant) -> Option<i32> {
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
