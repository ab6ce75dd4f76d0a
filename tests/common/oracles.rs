//! The Python oracles (scripts/pyenv.sh's virtualenv): boto3 scripts and the AWS CLI v1 run
//! against a running `trellis up`'s admin address, as a user would run them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Trellis;

/// How long one script or CLI call may take before it is killed (and the test fails).
const ORACLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The virtualenv's Python when `import IMPORTS` works in it (`what` names the packages in the
/// message), or `None` with the reason printed (the test then returns). With
/// `TRELLIS_REQUIRE_ORACLES` set (`make test`), a missing oracle fails the test instead.
pub fn oracle_python(test: &str, imports: &str, what: &str) -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidate = std::env::var_os("TRELLIS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo.join("target"));
            repo.join(target).join("pyenv/bin/python")
        });
    let works = Command::new(&candidate)
        .args(["-c", &format!("import {imports}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return Some(candidate);
    }
    skip(&format!(
        "{test}: SKIPPED: no Python with {what} at {} (run `make test`, or scripts/pyenv.sh and set TRELLIS_PYTHON)",
        candidate.display()
    ))
}

/// Prints why a test skips and returns `None`; fails instead under `TRELLIS_REQUIRE_ORACLES`.
fn skip(why: &str) -> Option<PathBuf> {
    assert!(
        std::env::var_os("TRELLIS_REQUIRE_ORACLES").is_none(),
        "{why}, and TRELLIS_REQUIRE_ORACLES is set"
    );
    eprintln!("{why}");
    None
}

/// The virtualenv's Python when it has boto3 and the AWS CLI (see [`oracle_python`]).
pub fn api_oracles(test: &str) -> Option<PathBuf> {
    let python = oracle_python(test, "boto3, awscli", "boto3 and the AWS CLI")?;
    if aws_script(&python).is_file() {
        return Some(python);
    }
    skip(&format!(
        "{test}: SKIPPED: no AWS CLI script beside {} (run `make test`, or scripts/pyenv.sh)",
        python.display()
    ))
}

/// The AWS CLI v1's entry script, beside the virtualenv's Python.
fn aws_script(python: &Path) -> PathBuf {
    python.with_file_name("aws")
}

/// What an oracle printed.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `python -c script args…` with credentials that sign (any work: the control plane is
/// local) and no AWS configuration of the machine's user.
pub fn run_python(python: &Path, script: &str, args: &[&str]) -> Ran {
    let mut command = Command::new(python);
    command.arg("-c").arg(script).args(args);
    run_bounded(command)
}

/// Runs `aws vpc-lattice --endpoint-url http://ADMIN --region REGION args…` (the AWS CLI v1
/// from the virtualenv) against `trellis`'s admin address.
pub fn aws_cli(python: &Path, trellis: &Trellis, region: &str, args: &[&str]) -> Ran {
    let mut command = Command::new(python);
    command
        .arg(aws_script(python))
        .args(["vpc-lattice", "--endpoint-url"])
        .arg(format!("http://{}", trellis.admin_addr()))
        .args(["--region", region, "--output", "json"])
        .args(args);
    run_bounded(command)
}

/// The path of an oracle script under tests/oracles/.
pub fn oracle_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/oracles")
        .join(name)
}

/// Runs `python tests/oracles/SCRIPT args…` (a script that imports its neighbours, such as
/// `lattice.py`) like [`run_python`], killed after `timeout`.
pub fn run_oracle(python: &Path, script: &str, args: &[&str], timeout: Duration) -> Ran {
    run_bounded_for(oracle_command(python, script, args), timeout)
}

/// The command [`run_oracle`] runs, for a test that must run it in the background (and kill
/// it if it outlives the test).
pub fn oracle_command(python: &Path, script: &str, args: &[&str]) -> Command {
    let mut command = Command::new(python);
    command.arg(oracle_script(script)).args(args);
    oracle_env(&mut command);
    command
}

fn run_bounded(command: Command) -> Ran {
    run_bounded_for(command, ORACLE_TIMEOUT)
}

/// Credentials that sign (any work: the control plane is local) and none of the machine
/// user's AWS configuration; output piped.
fn oracle_env(command: &mut Command) {
    command
        .env("AWS_ACCESS_KEY_ID", "AKIDTRELLISTEST")
        .env("AWS_SECRET_ACCESS_KEY", "trellis-test-secret")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        // botocore retries throttling and 5xx answers: once is what the tests look at.
        .env("AWS_MAX_ATTEMPTS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
}

fn run_bounded_for(command: Command, timeout: Duration) -> Ran {
    run_bounded_with_input(command, timeout, None)
}

/// Signs one request with tests/oracles/sign.py (botocore's SigV4Auth and friends, awscrt's
/// SigV4A): `spec` is its JSON input (mode, method, url, key, secret, …; see the script) and
/// the answer its output, `{"url": …, "headers": {…}}`.
pub fn oracle_sign(python: &Path, spec: &serde_json::Value) -> serde_json::Value {
    let mut command = Command::new(python);
    command.arg(oracle_script("sign.py"));
    let ran = run_bounded_with_input(command, ORACLE_TIMEOUT, Some(spec.to_string().into_bytes()));
    assert_eq!(
        ran.code,
        Some(0),
        "sign.py failed for {spec}: {}",
        ran.stderr
    );
    serde_json::from_str(&ran.stdout).expect("sign.py prints JSON")
}

/// Runs `command` (with [`oracle_env`]), `input` on its stdin, killed after `timeout`.
fn run_bounded_with_input(mut command: Command, timeout: Duration, input: Option<Vec<u8>>) -> Ran {
    oracle_env(&mut command);
    if input.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("spawn the oracle");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A thread, so that a script that does not read its input cannot block the test.
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&input);
        });
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the oracle took over {timeout:?}; stderr so far:\n{}",
                err_reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

impl Trellis {
    /// `ADDR:PORT` of this instance's admin port (the API's endpoint), from its start-up lines.
    pub fn admin_addr(&self) -> String {
        let url = self.metrics_url();
        url.trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .to_owned()
    }
}
