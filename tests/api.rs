//! Issue 16's acceptance tests: the VPC Lattice API of a running `trellis up`, driven only by
//! clients nobody here wrote — boto3 (the scripts under tests/oracles/, `lattice.py` and
//! `api_*.py`) and the AWS CLI v1 — with traffic through the data plane to real backends
//! (`hello-instance` processes, the `hello-lambda` process function). What is expected comes
//! from the AWS model and LATTICE.md (ids and ARNs §4.3, DNS names §4.1, target statuses §3.3,
//! quotas §7, errors §9), not from the operations' code.
//!
//! Each test starts its own Trellis (its own ports, state dir, admin port 0) and skips, saying
//! why, only when the oracles are missing (`api_oracles`; `make test` requires them).
//!
//! Only the first test opens a listener port by API from a file without it; the others put a
//! placeholder service of the file on that port (a port serves several services, told apart by
//! host), so that what they check does not also depend on a new port opening at once.

mod common;

use std::io::BufRead;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const REGION: &str = "us-west-2";

/// How long one scenario script may run (each wait inside it is bounded more tightly).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// A `hello-instance` process (sample-functions/dist) on a free loopback port; killed on drop.
struct Instance {
    child: Child,
    port: u16,
}

impl Instance {
    fn start(name: &str) -> Instance {
        let port = free_port();
        let mut child = Command::new(sample("hello-instance"))
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--name",
                name,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hello-instance");
        // It prints "hello-instance listening on ADDR" once bound.
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        assert!(
            line.contains("listening"),
            "hello-instance {name}: {line:?}"
        );
        Instance { child, port }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config file: the region, the client VPC (all of loopback), the function LAMBDA targets
/// name, and — when `placeholder_port` is given — a file service with a listener on that port.
fn file(placeholder_port: Option<u16>) -> String {
    let lambda = sample("hello-lambda").display().to_string();
    let mut config = Config::new()
        .region(REGION)
        .vpc("client-vpc", &["127.0.0.0/8"])
        .function(json!({
            "name": "hello-function",
            "runtime": "process",
            "command": [lambda],
            "timeout": 10,
        }));
    if let Some(port) = placeholder_port {
        config = config.service(
            Service::new("placeholder").listener(Listener::http(port).action(fixed_response(404))),
        );
    }
    config.yaml()
}

fn up(yaml: &str, state: &Path) -> Trellis {
    Trellis::start_with_state(yaml, state, &[], Duration::from_secs(60))
}

fn endpoint(t: &Trellis) -> String {
    format!("http://{}", t.admin_addr())
}

/// Runs `tests/oracles/SCRIPT [COMMAND] ENDPOINT REGION args…` against `t` and returns the JSON
/// summary it prints last; a failed script fails the test with its traceback and Trellis's log.
fn oracle(python: &Path, t: &Trellis, script: &str, command: Option<&str>, args: &[&str]) -> Value {
    let endpoint = endpoint(t);
    let mut all: Vec<&str> = command.into_iter().collect();
    all.extend([endpoint.as_str(), REGION]);
    all.extend(args);
    let ran = run_oracle(python, script, &all, SCRIPT_TIMEOUT);
    assert_eq!(
        ran.code,
        Some(0),
        "{script} {all:?} failed:\n{}\n{}\n--- trellis stderr:\n{}",
        ran.stdout,
        ran.stderr,
        t.stderr()
    );
    let last = ran.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script} printed no JSON summary ({e}):\n{}", ran.stdout))
}

/// `prefix` and 17 characters of `[0-9a-z]` (LATTICE.md §4.3).
fn assert_id(value: &Value, prefix: &str) {
    let id = value.as_str().unwrap_or_default();
    let rest = id.strip_prefix(prefix).unwrap_or_default();
    assert!(
        rest.len() == 17
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
        "{id:?} is not {prefix} and 17 characters of [0-9a-z]"
    );
}

#[test]
fn the_walkthrough_is_built_by_api_from_an_empty_start_and_serves() {
    let Some(python) =
        api_oracles("the_walkthrough_is_built_by_api_from_an_empty_start_and_serves")
    else {
        return;
    };
    let instance = Instance::start("instance-a");
    let state = scratch_dir("api-state");
    // Only the VPC and the function: nothing served, no port open but the admin port.
    let t = up(&file(None), &state);
    let port = free_port();
    let ids = oracle(
        &python,
        &t,
        "api_walkthrough.py",
        Some("build"),
        &[&port.to_string(), &instance.port.to_string()],
    );
    assert_id(&ids["service"], "svc-");
    assert_id(&ids["network"], "sn-");
    assert_id(&ids["instance_tg"], "tg-");
    assert_id(&ids["function_tg"], "tg-");
    assert_id(&ids["listener"], "listener-");
    assert_id(&ids["rules"]["to-instance"], "rule-");
    assert_id(&ids["svc_assoc"], "snsa-");
    assert_id(&ids["vpc_assoc"], "snva-");
    let service = ids["service"].as_str().unwrap_or_default();
    assert_eq!(
        ids["domain"],
        format!(
            "lattice-svc-{}.7d67968.vpc-lattice-svcs.{REGION}.on.aws",
            &service[4..]
        )
    );
    // 90 requests to the default action, weights 20/10: 60/30 give or take.
    let counts = &ids["counts"];
    let instance_share = counts["instance-a"].as_u64().unwrap_or(0);
    let function_share = counts["function"].as_u64().unwrap_or(0);
    assert_eq!(instance_share + function_share, 90, "{counts}");
    assert!((54..=66).contains(&instance_share), "{counts}");
    // The store holds what was made, in the config file's own schema (control-design.md).
    let store: Value = serde_json::from_slice(
        &std::fs::read(state.join("api/store.json")).expect("the store file"),
    )
    .expect("the store is JSON");
    let text = store.to_string();
    for name in [
        "lattice-svc",
        "demo-network",
        "instance-tg",
        "function-tg",
        "to-instance",
    ] {
        assert!(text.contains(name), "{name} not in the store: {text}");
    }
}

#[test]
fn changed_weights_and_rules_reach_the_data_plane_at_once() {
    let Some(python) = api_oracles("changed_weights_and_rules_reach_the_data_plane_at_once") else {
        return;
    };
    let instance = Instance::start("instance-a");
    let state = scratch_dir("api-state");
    let port = free_port();
    let t = up(&file(Some(port)), &state);
    let ids = oracle(
        &python,
        &t,
        "api_walkthrough.py",
        Some("build"),
        &[&port.to_string(), &instance.port.to_string()],
    );
    let took = oracle(
        &python,
        &t,
        "api_walkthrough.py",
        Some("weights"),
        &[&ids.to_string()],
    );
    // Each change was served within the script's bounded waits (5 s); how fast, for the log.
    eprintln!("changes served after: {took}");
    for key in ["update_listener_s", "update_rule_s", "batch_update_rule_s"] {
        assert!(took[key].as_f64().is_some_and(|s| s < 5.0), "{took}");
    }
}

#[test]
fn deregistered_targets_leave_and_list_targets_shows_live_status() {
    let Some(python) = api_oracles("deregistered_targets_leave_and_list_targets_shows_live_status")
    else {
        return;
    };
    let a = Instance::start("instance-a");
    let b = Instance::start("instance-b");
    let dead = free_port();
    let state = scratch_dir("api-state");
    let port = free_port();
    let t = up(&file(Some(port)), &state);
    let out = oracle(
        &python,
        &t,
        "api_targets.py",
        None,
        &[
            &port.to_string(),
            &a.port.to_string(),
            &b.port.to_string(),
            &dead.to_string(),
        ],
    );
    assert_eq!(out["unhealthy"]["status"], "UNHEALTHY", "{out}");
    assert_eq!(out["unhealthy"]["port"], dead, "{out}");
}

#[test]
fn list_target_groups_pages_through_120_groups() {
    let Some(python) = api_oracles("list_target_groups_pages_through_120_groups") else {
        return;
    };
    let state = scratch_dir("api-state");
    let t = up(&file(None), &state);
    let out = oracle(&python, &t, "api_paging.py", None, &[]);
    assert_eq!(out["created"], 120, "{out}");
    assert_eq!(out["pages_by_hand"], 5, "{out}");
}

/// The errors test's file: `file-svc` listening on `port` and forwarding to `file-tg`.
fn file_with_owned_objects(port: u16) -> String {
    Config::new()
        .region(REGION)
        .vpc("client-vpc", &["127.0.0.0/8"])
        .service(Service::new("file-svc").listener(Listener::http(port).forward("file-tg")))
        .target_group(TargetGroup::instance("file-tg", &[9]).no_health_checks())
        .yaml()
}

fn ports(n: usize) -> String {
    (0..n)
        .map(|_| free_port().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn each_error_class_reaches_boto3_as_aws_sends_it() {
    let Some(python) = api_oracles("each_error_class_reaches_boto3_as_aws_sends_it") else {
        return;
    };
    let state = scratch_dir("api-state");
    let t = up(&file_with_owned_objects(free_port()), &state);
    let out = oracle(&python, &t, "api_errors.py", Some("errors"), &[&ports(4)]);
    let file_owned = out["file_owned"].as_str().unwrap_or_default();
    assert!(
        file_owned.contains("trellis.yaml") && file_owned.contains("file-"),
        "the refusal names the file and the object: {out}"
    );
    assert!(
        out["validation"]
            .as_str()
            .is_some_and(|m| m.contains("no-slash")),
        "{out}"
    );
}

#[test]
fn a_client_token_makes_a_create_idempotent() {
    let Some(python) = api_oracles("a_client_token_makes_a_create_idempotent") else {
        return;
    };
    let state = scratch_dir("api-state");
    let t = up(&file(None), &state);
    let out = oracle(
        &python,
        &t,
        "api_errors.py",
        Some("idempotency"),
        &[&ports(1)],
    );
    assert_id(&out["service"], "svc-");
    assert_id(&out["target_group"], "tg-");
    assert_id(&out["listener"], "listener-");
}

#[test]
fn a_restart_serves_exactly_what_was_there() {
    let Some(python) = api_oracles("a_restart_serves_exactly_what_was_there") else {
        return;
    };
    let instance = Instance::start("instance-a");
    let state = scratch_dir("api-state");
    let yaml = file(None);
    let port = free_port();
    let mut t = up(&yaml, &state);
    let ids = oracle(
        &python,
        &t,
        "api_walkthrough.py",
        Some("create"),
        &[&port.to_string(), &instance.port.to_string()],
    );
    let ids_text = ids.to_string();
    let before = oracle(
        &python,
        &t,
        "api_walkthrough.py",
        Some("snapshot"),
        &[&ids_text],
    );
    t.signal("TERM");
    assert_eq!(t.wait(Duration::from_secs(20)), Some(0), "{}", t.stderr());

    // The same file and state dir: the listener made by API is listened on from the start.
    let t = up(&yaml, &state);
    let after = oracle(
        &python,
        &t,
        "api_walkthrough.py",
        Some("snapshot"),
        &[&ids_text],
    );
    assert_eq!(
        before, after,
        "the API answers differently after the restart"
    );
    assert!(
        t.stderr().contains(&format!(":{port}")),
        "the listener's port is in the start-up lines:\n{}",
        t.stderr()
    );
    let served = oracle(
        &python,
        &t,
        "api_walkthrough.py",
        Some("check"),
        &[&ids_text],
    );
    assert!(
        served["counts"]["function"].as_u64().is_some_and(|n| n > 0),
        "{served}"
    );
}

#[test]
fn kill_9_during_a_burst_of_writes_loses_no_acknowledged_change() {
    let Some(python) = api_oracles("kill_9_during_a_burst_of_writes_loses_no_acknowledged_change")
    else {
        return;
    };
    let state = scratch_dir("api-state");
    let yaml = file(None);
    let mut t = up(&yaml, &state);
    let acks = state.join("acks.txt");
    let acks_arg = acks.display().to_string();
    let mut burst = oracle_command(
        &python,
        "api_burst.py",
        &["run", &endpoint(&t), REGION, &acks_arg, "60"],
    )
    .spawn()
    .expect("start the burst");
    // SIGKILL once at least 40 writes were acknowledged, mid-burst.
    let deadline = Instant::now() + Duration::from_secs(60);
    let acked = loop {
        let n = std::fs::read_to_string(&acks)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 40 {
            break n;
        }
        if Instant::now() > deadline || burst.try_wait().ok().flatten().is_some() {
            let _ = burst.kill();
            panic!(
                "the burst acknowledged only {n} writes; trellis stderr:\n{}",
                t.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    t.child.as_mut().expect("running").kill().expect("SIGKILL");
    let _ = t.wait(Duration::from_secs(10));
    // The burst stops at its first failed call.
    let deadline = Instant::now() + Duration::from_secs(30);
    while burst.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = burst.kill();
            panic!("the burst did not stop after trellis died");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut printed = String::new();
    if let Some(mut out) = burst.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut out, &mut printed);
    }
    eprintln!("burst: {printed} ({acked} acknowledged when killed)");

    // The store is whole: it parses, and a start loads it.
    let store = std::fs::read(state.join("api/store.json")).expect("the store file");
    serde_json::from_slice::<Value>(&store).expect("the store is JSON after kill -9");
    let t = up(&yaml, &state);
    let out = oracle(&python, &t, "api_burst.py", Some("verify"), &[&acks_arg]);
    let groups = out["groups"].as_u64().unwrap_or(0);
    assert!(groups >= 20, "{out}");
}

/// The AWS CLI v1 with `--output json`: its JSON parsed.
fn cli(python: &Path, t: &Trellis, args: &[&str]) -> Value {
    let ran = aws_cli(python, t, REGION, args);
    assert_eq!(ran.code, Some(0), "aws {args:?}: {ran:?}");
    serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("aws {args:?} printed {e}: {ran:?}"))
}

#[test]
fn the_aws_cli_creates_lists_gets_and_deletes() {
    let Some(python) = api_oracles("the_aws_cli_creates_lists_gets_and_deletes") else {
        return;
    };
    let state = scratch_dir("api-state");
    let t = up(&file(None), &state);
    let sn = cli(
        &python,
        &t,
        &["create-service-network", "--name", "cli-network"],
    );
    assert_id(&sn["id"], "sn-");
    let svc = cli(
        &python,
        &t,
        &[
            "create-service",
            "--name",
            "cli-svc",
            "--auth-type",
            "AWS_IAM",
        ],
    );
    assert_id(&svc["id"], "svc-");
    let id = svc["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        svc["arn"],
        format!("arn:aws:vpc-lattice:{REGION}:123456789012:service/{id}")
    );
    assert_eq!(svc["authType"], "AWS_IAM");
    let listed = cli(&python, &t, &["list-services"]);
    let names: Vec<&str> = listed["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["cli-svc"], "{listed}");
    let got = cli(&python, &t, &["get-service", "--service-identifier", &id]);
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["status"], "ACTIVE");
    assert_eq!(got["dnsEntry"], svc["dnsEntry"]);
    // The CLI prints timestamps as ISO-8601 text.
    assert!(
        got["createdAt"]
            .as_str()
            .is_some_and(|s| s.starts_with("20") && s.contains('T')),
        "{got}"
    );
    let tg = cli(
        &python,
        &t,
        &[
            "create-target-group",
            "--name",
            "cli-tg",
            "--type",
            "LAMBDA",
            "--tags",
            "team=blue",
        ],
    );
    assert_id(&tg["id"], "tg-");
    let tags = cli(
        &python,
        &t,
        &[
            "list-tags-for-resource",
            "--resource-arn",
            tg["arn"].as_str().unwrap_or_default(),
        ],
    );
    assert_eq!(tags["tags"], json!({"team": "blue"}));

    let deleted = cli(
        &python,
        &t,
        &["delete-service", "--service-identifier", &id],
    );
    assert_eq!(deleted["id"], id.as_str(), "{deleted}");
    let ran = aws_cli(
        &python,
        &t,
        REGION,
        &["get-service", "--service-identifier", &id],
    );
    assert_ne!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stderr.contains("(ResourceNotFoundException)"),
        "{ran:?}"
    );
    let listed = cli(&python, &t, &["list-services"]);
    assert_eq!(listed["items"], json!([]), "{listed}");
    // Deleting the network: its id no longer answers.
    let sn_id = sn["id"].as_str().unwrap_or_default();
    let ran = aws_cli(
        &python,
        &t,
        REGION,
        &[
            "delete-service-network",
            "--service-network-identifier",
            sn_id,
        ],
    );
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let listed = cli(&python, &t, &["list-service-networks"]);
    assert_eq!(listed["items"], json!([]), "{listed}");
    let _ = TcpStream::connect(t.admin_addr()).expect("the admin port still answers");
}

/// `GET path` on the admin address `addr` over HTTP/1.0: (status, body).
fn admin_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr).expect("connect to the admin port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_owned())
}

/// `trellis export -f FILE --state-dir DIR` composes the file with the store as `trellis up`
/// does, read-only beside the running one; the export of an API-built config round-trips (a
/// second Trellis on it with an empty store exports the same text and serves the same), and its
/// CloudFormation form passes cfn-lint.
#[test]
fn export_with_the_state_dir_is_what_the_running_trellis_serves_and_round_trips() {
    let Some(python) =
        api_oracles("export_with_the_state_dir_is_what_the_running_trellis_serves_and_round_trips")
    else {
        return;
    };
    let instance = Instance::start("instance-a");
    let state = scratch_dir("api-state");
    let yaml = file(None);
    let port = free_port();
    let mut t = up(&yaml, &state);
    let ids = oracle(
        &python,
        &t,
        "api_walkthrough.py",
        Some("create"),
        &[&port.to_string(), &instance.port.to_string()],
    );
    let ids_text = ids.to_string();
    let config = t.config_path().display().to_string();
    let cwd = t
        .config_path()
        .parent()
        .expect("its directory")
        .to_path_buf();
    let state_arg = state.display().to_string();
    let store_before = std::fs::read(state.join("api/store.json")).expect("the store");

    // (a) The export of file + store is what the running Trellis serves.
    let (status, served) = admin_get(&t.admin_addr(), "/export");
    assert_eq!(status, 200, "{served}");
    let (code, exported, err) =
        run_cli(&["export", "-f", &config, "--state-dir", &state_arg], &cwd);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        exported, served,
        "trellis export --state-dir differs from GET /export"
    );
    assert!(
        exported.contains("lattice-svc") && exported.contains("instance-tg"),
        "{exported}"
    );
    // Read-only: the store is untouched, and without --state-dir's store only the file is there.
    assert_eq!(
        std::fs::read(state.join("api/store.json")).unwrap(),
        store_before
    );
    let empty = scratch_dir("api-export-empty");
    let (code, file_only, err) = run_cli(
        &[
            "export",
            "-f",
            &config,
            "--state-dir",
            &empty.display().to_string(),
        ],
        &cwd,
    );
    assert_eq!(code, 0, "{err}");
    assert!(!file_only.contains("lattice-svc"), "{file_only}");
    assert!(!empty.join("api").exists(), "export made a store");

    // (c) The CloudFormation export of the API-built config passes cfn-lint.
    let template = cwd.join("api-export.json");
    let (code, _, err) = run_cli(
        &[
            "export",
            "-f",
            &config,
            "--state-dir",
            &state_arg,
            "--format",
            "cloudformation",
            "-o",
            &template.display().to_string(),
        ],
        &cwd,
    );
    assert_eq!(code, 0, "{err}");
    let lint = python.with_file_name("cfn-lint");
    let linted = Command::new(&lint)
        .arg(&template)
        .output()
        .expect("run cfn-lint");
    let lint_code = linted.status.code().unwrap_or(-1);
    // cfn-lint's exit status is a bit set: 2 errors, 4 warnings, 8 informational.
    assert!(
        lint_code >= 0 && lint_code & 3 == 0,
        "cfn-lint found errors (exit {lint_code}):\n{}",
        String::from_utf8_lossy(&linted.stdout)
    );

    // (b) The YAML export round-trips: a second Trellis on it, with an empty store, exports the
    // same text and serves the same through the listener the API made.
    t.signal("TERM");
    assert_eq!(t.wait(Duration::from_secs(20)), Some(0), "{}", t.stderr());
    let fresh = scratch_dir("api-state-fresh");
    let second = up(&exported, &fresh);
    let (status, again) = admin_get(&second.admin_addr(), "/export");
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, exported, "export → up → export differs");
    let served = oracle(
        &python,
        &second,
        "api_walkthrough.py",
        Some("check"),
        &[&ids_text],
    );
    assert!(
        served["counts"]["instance-a"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{served}"
    );
    // A corrupt store is a clear error (exit 2) naming it, and is left as it is.
    std::fs::write(
        state.join("api/store.json"),
        b"{\"format\": 1, \"document\": [",
    )
    .unwrap();
    let (code, _, err) = run_cli(&["export", "-f", &config, "--state-dir", &state_arg], &cwd);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("store.json") && err.contains("not a store Trellis can read"),
        "{err}"
    );
}
