//! Real processes: a bash + curl custom runtime (the shape of the AWS custom runtime
//! tutorial's `bootstrap`) and the real `hello-lambda` binary built with the official
//! `lambda_runtime` crate.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};
use trellis_config::{FunctionRuntime, Loc, Pos};
use trellis_runtime::{Function, FunctionError, InvokeContext};

use super::*;

/// The bash runtime. `@VERSION@` is replaced per test, to tell builds apart.
const BOOTSTRAP: &str = r#"#!/usr/bin/env bash
set -u
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
echo "$$" >> "$PROBE_DIR/launches"
env > "$PROBE_DIR/env-$$"
echo "runtime $$ (@VERSION@) ready"
if [ "${INIT_FAIL:-}" = 1 ]; then
  curl -sS -o /dev/null -X POST "$api/init/error" \
    -H 'Lambda-Runtime-Function-Error-Type: Runtime.ConfigError' \
    -d '{"errorMessage":"no config","errorType":"Runtime.ConfigError"}'
  exit 1
fi
headers="$PROBE_DIR/headers-$$"
while true; do
  event=$(curl -sS -D "$headers" "$api/invocation/next") || exit 1
  id=$(tr -d '\r' < "$headers" | awk -F': ' 'tolower($1) == "lambda-runtime-aws-request-id" {print $2}')
  case "$event" in
    *exit*) echo "exiting mid-invocation"; exit 3 ;;
    *sleep*) sleep 30 & echo $! > "$PROBE_DIR/sleeper"; wait; continue ;;
    *error*) curl -sS -o /dev/null -X POST "$api/invocation/$id/error" \
               -H 'Lambda-Runtime-Function-Error-Type: Unhandled' \
               -d '{"errorMessage":"bad input","errorType":"InputError","stackTrace":[]}' ;;
    *hold*) sleep 0.3
            curl -sS -o /dev/null -X POST "$api/invocation/$id/response" \
               -d "{\"pid\":$$,\"version\":\"@VERSION@\"}" ;;
    *) curl -sS -o /dev/null -X POST "$api/invocation/$id/response" \
          -d "{\"pid\":$$,\"version\":\"@VERSION@\",\"event\":$event}" ;;
  esac
done
"#;

/// A scratch directory holding `bootstrap` and the runtime's probe files.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("trellis-process-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch { dir }
    }

    fn bootstrap(&self) -> PathBuf {
        self.dir.join("bootstrap")
    }

    /// Installs the runtime as a build tool would: write aside, then rename over.
    fn install(&self, version: &str) {
        let staged = self.dir.join(".bootstrap.new");
        std::fs::write(&staged, BOOTSTRAP.replace("@VERSION@", version)).expect("write");
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&staged, self.bootstrap()).expect("rename");
    }

    fn launches(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("launches"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn function(
        &self,
        timeout: u32,
        concurrency: u32,
        extra: &[(&str, &str)],
    ) -> trellis_config::Function {
        let mut environment = std::collections::BTreeMap::new();
        environment.insert(
            "PROBE_DIR".to_owned(),
            self.dir.to_string_lossy().into_owned(),
        );
        for (k, v) in extra {
            environment.insert((*k).to_owned(), (*v).to_owned());
        }
        function_config(
            vec![self.bootstrap().to_string_lossy().into_owned()],
            timeout,
            concurrency,
            environment,
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn function_config(
    command: Vec<String>,
    timeout_seconds: u32,
    concurrency: u32,
    environment: std::collections::BTreeMap<String, String>,
) -> trellis_config::Function {
    trellis_config::Function {
        name: "proc-fn".into(),
        arn: "arn:aws:lambda:us-west-2:123456789012:function:proc-fn".into(),
        runtime: FunctionRuntime::Process,
        code: None,
        command,
        image: None,
        build: None,
        timeout_seconds,
        memory_size_mb: 128,
        environment,
        concurrency,
        provisioned: 0,
        idle_timeout_seconds: 600,
        at: Loc::new("functions[0]", Pos { line: 1, col: 1 }),
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

async fn invoke(function: &Pool, event: Value, timeout: Duration) -> Result<Value, FunctionError> {
    let ctx = InvokeContext::new(
        format!("proc-req-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
        timeout,
    );
    let bytes = function.invoke(Bytes::from(event.to_string()), ctx).await?;
    Ok(serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet, which runs no code).
fn dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const LONG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_shell_runtime_answers_with_a_clean_lambda_environment() {
    let scratch = Scratch::new("answer");
    scratch.install("v1");
    let function =
        pool(&scratch.function(3, 2, &[("GREETING", "hi")]), "us-west-2").expect("function");
    let answer = invoke(&function, json!({"hello": "world"}), LONG)
        .await
        .expect("answer");
    assert_eq!(answer["event"], json!({"hello": "world"}));
    assert_eq!(answer["version"], json!("v1"));
    let again = invoke(&function, json!({"n": 2}), LONG)
        .await
        .expect("answer");
    assert_eq!(again["pid"], answer["pid"], "the warm process is reused");
    assert_eq!(scratch.launches().len(), 1);

    let pid = answer["pid"].to_string();
    let env = std::fs::read_to_string(scratch.dir.join(format!("env-{pid}"))).unwrap_or_default();
    let vars: HashSet<&str> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    for expected in [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_REGION",
        "LAMBDA_TASK_ROOT",
        "_HANDLER",
        "GREETING",
        "PATH",
    ] {
        assert!(vars.contains(expected), "{expected} missing from:\n{env}");
    }
    // `cargo test` sets these in our own environment; the runtime must not inherit them.
    assert!(
        !vars.contains("CARGO_PKG_NAME"),
        "inherited Trellis's environment:\n{env}"
    );
    assert!(!vars.contains("CARGO_MANIFEST_DIR"));
    assert!(env.contains(&format!("LAMBDA_TASK_ROOT={}", scratch.dir.display())));
    assert!(env.contains("_HANDLER=bootstrap"));
    function.shutdown().await;
    assert!(dead(&pid), "shutdown kills the runtime");
}

#[tokio::test]
async fn concurrent_invocations_start_at_most_concurrency_processes() {
    let scratch = Scratch::new("concurrency");
    scratch.install("v1");
    let function = Arc::new(pool(&scratch.function(30, 3, &[]), "us-west-2").expect("function"));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let function = Arc::clone(&function);
        tasks.push(tokio::spawn(async move {
            invoke(&function, json!({"action": "hold"}), LONG).await
        }));
    }
    let mut pids = HashSet::new();
    for task in tasks {
        let answer = task
            .await
            .expect("task")
            .expect("every invocation succeeds");
        pids.insert(answer["pid"].to_string());
    }
    let launched: HashSet<String> = scratch.launches().into_iter().collect();
    assert_eq!(
        launched.len(),
        3,
        "8 waiting invocations start exactly 3 processes"
    );
    assert!(pids.is_subset(&launched), "{pids:?} ⊄ {launched:?}");
    assert_eq!(function.stats().launches, 3);
    function.shutdown().await;
    assert!(launched.iter().all(|pid| dead(pid)));
}

#[tokio::test]
async fn a_runtime_that_exits_mid_invocation_is_reported_at_once_and_replaced() {
    let scratch = Scratch::new("exit");
    scratch.install("v1");
    let function = pool(&scratch.function(60, 1, &[]), "us-west-2").expect("function");
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        invoke(&function, json!({"action": "exit"}), LONG),
    )
    .await
    .expect("reported long before the 60 s timeout");
    match result {
        Err(FunctionError::Crashed(message)) => {
            assert!(message.contains("exit status 3"), "{message}")
        }
        other => panic!("expected Crashed, got {other:?}"),
    }
    let answer = invoke(&function, json!({}), LONG)
        .await
        .expect("a new process answers");
    let launched = scratch.launches();
    assert_eq!(launched.len(), 2);
    assert_eq!(answer["pid"].to_string(), launched[1]);
    function.shutdown().await;
}

#[tokio::test]
async fn a_runtime_past_its_timeout_is_killed_with_its_children_and_replaced() {
    let scratch = Scratch::new("timeout");
    scratch.install("v1");
    let function = pool(&scratch.function(1, 1, &[]), "us-west-2").expect("function");
    let result = invoke(
        &function,
        json!({"action": "sleep"}),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(result, Err(FunctionError::Timeout(Duration::from_secs(1))));
    let first = scratch.launches().first().cloned().unwrap_or_default();
    let sleeper = std::fs::read_to_string(scratch.dir.join("sleeper")).unwrap_or_default();
    let sleeper = sleeper.trim().to_owned();
    assert!(!sleeper.is_empty(), "the runtime started its child");
    eventually("the runtime and its child are killed", || {
        dead(&first) && dead(&sleeper)
    })
    .await;
    let answer = invoke(&function, json!({}), LONG)
        .await
        .expect("a new process answers");
    assert_ne!(answer["pid"].to_string(), first);
    assert_eq!(scratch.launches().len(), 2);
    function.shutdown().await;
}

#[tokio::test]
async fn an_error_report_is_an_unhandled_error() {
    let scratch = Scratch::new("error");
    scratch.install("v1");
    let function = pool(&scratch.function(30, 1, &[]), "us-west-2").expect("function");
    let result = invoke(&function, json!({"action": "error"}), LONG).await;
    assert_eq!(
        result,
        Err(FunctionError::Unhandled {
            error_type: "InputError".into(),
            message: "bad input".into()
        })
    );
    invoke(&function, json!({}), LONG)
        .await
        .expect("still warm and working");
    assert_eq!(scratch.launches().len(), 1);
    function.shutdown().await;
}

#[tokio::test]
async fn an_init_error_fails_the_invocation_with_the_runtimes_message() {
    let scratch = Scratch::new("init-error");
    scratch.install("v1");
    let function =
        pool(&scratch.function(30, 1, &[("INIT_FAIL", "1")]), "us-west-2").expect("function");
    let result = invoke(&function, json!({}), LONG).await;
    assert_eq!(
        result,
        Err(FunctionError::Init("Runtime.ConfigError: no config".into()))
    );
    let pid = scratch.launches().first().cloned().unwrap_or_default();
    eventually("the failed runtime is gone", || {
        dead(&pid) && function.environments() == 0
    })
    .await;
    function.shutdown().await;
}

#[tokio::test]
async fn a_rebuilt_executable_is_used_by_the_next_invocation() {
    let scratch = Scratch::new("rebuild");
    scratch.install("v1");
    let function = pool(&scratch.function(30, 2, &[]), "us-west-2").expect("function");
    let first = invoke(&function, json!({}), LONG).await.expect("answer");
    assert_eq!(first["version"], json!("v1"));
    scratch.install("version-2");
    let second = invoke(&function, json!({}), LONG).await.expect("answer");
    assert_eq!(second["version"], json!("version-2"));
    assert_ne!(second["pid"], first["pid"]);
    let old = first["pid"].to_string();
    eventually("the old runtime is retired", || dead(&old)).await;
    let third = invoke(&function, json!({}), LONG).await.expect("answer");
    assert_eq!(
        third["pid"], second["pid"],
        "no further drain without a change"
    );
    function.shutdown().await;
}

#[tokio::test]
async fn a_rewritten_script_run_by_an_interpreter_is_used_by_the_next_invocation() {
    let scratch = Scratch::new("script");
    scratch.install("v1");
    let mut config = scratch.function(30, 2, &[]);
    config.command = vec![
        "bash".to_owned(),
        scratch.bootstrap().to_string_lossy().into_owned(),
    ];
    let function = pool(&config, "us-west-2").expect("function");
    let first = invoke(&function, json!({}), LONG).await.expect("answer");
    assert_eq!(first["version"], json!("v1"));
    // `bash` is unchanged; only the script it runs is new.
    scratch.install("script-2");
    let second = invoke(&function, json!({}), LONG).await.expect("answer");
    assert_eq!(second["version"], json!("script-2"));
    assert_ne!(second["pid"], first["pid"]);
    let third = invoke(&function, json!({}), LONG).await.expect("answer");
    assert_eq!(
        third["pid"], second["pid"],
        "no further drain without a change"
    );
    function.shutdown().await;
}

#[tokio::test]
async fn a_missing_executable_is_an_init_error_naming_it() {
    let scratch = Scratch::new("missing");
    let function = pool(&scratch.function(30, 1, &[]), "us-west-2").expect("function");
    match invoke(&function, json!({}), LONG).await {
        Err(FunctionError::Init(message)) => {
            let path = scratch.bootstrap().display().to_string();
            assert!(
                message.contains(&path) && message.contains("not found"),
                "{message}"
            )
        }
        other => panic!("expected Init, got {other:?}"),
    }
    // Built later: the next invocation just works.
    scratch.install("late");
    let answer = invoke(&function, json!({}), LONG).await.expect("answer");
    assert_eq!(answer["version"], json!("late"));
    function.shutdown().await;
}

#[test]
fn an_empty_command_is_rejected() {
    let config = function_config(Vec::new(), 3, 1, Default::default());
    assert!(matches!(
        pool(&config, "us-west-2"),
        Err(ProcessError::EmptyCommand(_))
    ));
}

#[tokio::test]
async fn output_is_split_into_lines_lossily_and_bounded() {
    let mut input = b"first\r\nsecond\n\xff\xfe bytes\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
    input.extend(b"\nlast without newline");
    let mut lines = Vec::new();
    pump_lines(&input[..], |line| lines.push(line.to_owned())).await;
    assert_eq!(lines[0], "first\r\n");
    assert_eq!(lines[1], "second\n");
    assert_eq!(lines[2], "\u{fffd}\u{fffd} bytes\n");
    assert_eq!(lines[3].len(), MAX_LINE);
    assert_eq!(lines[4], format!("{}\n", "x".repeat(10)));
    assert_eq!(lines[5], "last without newline");
    assert_eq!(lines.len(), 6);
}

/// Builds `sample-functions`' `hello-lambda` (a no-op when it is up to date); `None`, with
/// the reason printed, when that is impossible here.
async fn hello_lambda() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let manifest = root.join("sample-functions/Cargo.toml");
    let binary = root.join("sample-functions/target/debug/hello-lambda");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = tokio::process::Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["-p", "hello-lambda"])
        // The binary must land in sample-functions/target, wherever this test builds.
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .await;
    match output {
        Ok(out) if out.status.success() && binary.is_file() => Some(binary),
        Ok(out) => {
            eprintln!(
                "SKIPPED: cannot build hello-lambda ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run cargo to build hello-lambda: {e}");
            None
        }
    }
}

fn lattice_v2_event(method: &str, path: &str) -> Value {
    json!({
        "version": "2.0",
        "path": path,
        "method": method,
        "headers": {"user-agent": ["curl/8.5.0"], "accept": ["*/*"]},
        "queryStringParameters": {"x": ["1"]},
        "body": null,
        "isBase64Encoded": false,
        "requestContext": {
            "serviceNetworkArn": "arn:aws:vpc-lattice:us-west-2:123456789012:servicenetwork/sn-0123456789abcdef0",
            "serviceArn": "arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0123456789abcdef0",
            "targetGroupArn": "arn:aws:vpc-lattice:us-west-2:123456789012:targetgroup/tg-0123456789abcdef0",
            "identity": {"sourceVpcArn": "arn:aws:ec2:us-west-2:123456789012:vpc/vpc-0123456789abcdef0", "type": "NONE"},
            "region": "us-west-2",
            "timeEpoch": "1724875399456789"
        }
    })
}

#[tokio::test]
async fn the_official_lambda_runtime_crate_runs_unmodified() {
    let Some(binary) = hello_lambda().await else {
        return;
    };
    let environment = [("GREETING".to_owned(), "hi".to_owned())].into();
    let mut config = function_config(
        vec![binary.to_string_lossy().into_owned()],
        5,
        2,
        environment,
    );
    config.name = "hello-lambda".into();
    let function = pool(&config, "us-west-2").expect("function");

    let answer = invoke(
        &function,
        lattice_v2_event("POST", "/to-function?x=1"),
        LONG,
    )
    .await
    .expect("hello-lambda answers");
    assert_eq!(answer["statusCode"], json!(200));
    assert_eq!(
        answer["body"],
        json!("Hello from the function at path \"/to-function\" (method POST)\n")
    );
    assert_eq!(
        answer["headers"]["content-type"],
        json!("text/plain; charset=utf-8")
    );
    let root = invoke(&function, lattice_v2_event("GET", "/"), LONG)
        .await
        .expect("answer");
    assert_eq!(root["body"], json!("Hello from the function\n"));
    let env = invoke(&function, lattice_v2_event("GET", "/env"), LONG)
        .await
        .expect("answer");
    assert_eq!(env["body"], json!("hello-lambda hi\n"));
    assert_eq!(
        function.stats().launches,
        1,
        "one warm process served all three"
    );

    match invoke(&function, lattice_v2_event("GET", "/error"), LONG).await {
        Err(FunctionError::Unhandled { message, .. }) => {
            assert_eq!(message, "the handler failed on purpose")
        }
        other => panic!("expected Unhandled, got {other:?}"),
    }
    match invoke(&function, lattice_v2_event("GET", "/exit"), LONG).await {
        Err(FunctionError::Crashed(message)) => {
            assert!(message.contains("exit status 3"), "{message}")
        }
        other => panic!("expected Crashed, got {other:?}"),
    }
    let timed_out = invoke(
        &function,
        lattice_v2_event("GET", "/sleep"),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(
        timed_out,
        Err(FunctionError::Timeout(Duration::from_secs(1)))
    );
    let after = invoke(&function, lattice_v2_event("GET", "/"), LONG)
        .await
        .expect("replaced");
    assert_eq!(after["body"], json!("Hello from the function\n"));
    function.shutdown().await;
}
