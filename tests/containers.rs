//! Container functions end to end: the real `trellis` binary runs `hello-lambda` (the official
//! `lambda_runtime` crate, built as a static musl binary and put in an image `FROM scratch`) in
//! Docker containers, behind a LAMBDA target group of a `trellis up` on free ports, over real
//! sockets. Containers are observed with the `docker` CLI, by their `trellis.function` label;
//! every test has its own function name, so the tests run in parallel with each other and with
//! other Trellis processes on the same engine. Skipped, with the reason printed, only when
//! `docker info` fails.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const HOST: &str = "ctrsvc.trellis.localhost";

/// `trellis up` is ready once it has connected to the engine and removed leftovers (the image
/// is found or built in the background).
const READY: Duration = Duration::from_secs(60);

/// The longest any one request may take: a cold start may include building the image.
const REQUEST: Duration = Duration::from_secs(120);

/// How long a container may take to appear or disappear in `docker ps`.
const SETTLE: Duration = Duration::from_secs(30);

/// What hello-lambda answers at `/`.
const GREETING: &str = "Hello from the function\n";

type Client = Plain;

/// A function name of its own for each test (and each test process).
fn function_name(test: &str) -> String {
    format!("ctr-{test}-{}", std::process::id())
}

/// One service `ctrsvc` whose listener on `port` forwards everything to the V2 LAMBDA target
/// group of container function `function`, whose further keys are `settings` (a JSON map).
fn config(port: u16, function: &str, settings: &Value) -> String {
    let group = format!("{function}-tg");
    let mut spec = settings.clone();
    spec["name"] = function.into();
    spec["runtime"] = "container".into();
    Config::new()
        .service(Service::new("ctrsvc").listener(Listener::http(port).forward(&group)))
        .target_group(TargetGroup::lambda(&group, function, "V2"))
        .function(spec)
        .yaml()
}

/// `build: DIR` and the other settings (a JSON map).
fn build_settings(dir: &Path, mut rest: Value) -> Value {
    rest["build"] = dir.display().to_string().into();
    rest
}

/// Starts `trellis up` on `yaml` with a state dir of its own, which the sweep removes
/// afterwards (Trellis's own directory goes with it).
fn start(sweep: &mut Sweep, yaml: &str) -> Trellis {
    let state = scratch_dir("ctr-state").keep();
    sweep.dirs.push(state.clone());
    Trellis::start_with_state(yaml, &state, &[], READY)
}

/// A build directory: hello-lambda as `bootstrap` and a `FROM scratch` Dockerfile with
/// `extra` lines (e.g. `ENV GREETING=one`).
fn build_dir(function: &str, extra: &str) -> PathBuf {
    let dir = scratch_dir(&format!("build-{function}")).keep();
    std::fs::copy(hello_lambda_musl(), dir.join("bootstrap")).expect("copy hello-lambda");
    write_dockerfile(&dir, extra);
    dir
}

fn write_dockerfile(dir: &Path, extra: &str) {
    let text = format!(
        "FROM scratch\nCOPY bootstrap /var/task/bootstrap\n{extra}ENTRYPOINT [\"/var/task/bootstrap\"]\n"
    );
    std::fs::write(dir.join("Dockerfile"), text).expect("write Dockerfile");
}

/// Runs `docker args`, asserts it succeeded, returns its trimmed stdout.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Full ids of the containers carrying every label in `labels` (`key=value`), all states with
/// `all`, else running ones.
fn containers_with(labels: &[&str], all: bool) -> Vec<String> {
    let mut args = vec!["ps", "-q", "--no-trunc"];
    if all {
        args.push("-a");
    }
    let filters: Vec<String> = labels.iter().map(|l| format!("label={l}")).collect();
    for filter in &filters {
        args.push("--filter");
        args.push(filter);
    }
    docker(&args).lines().map(str::to_owned).collect()
}

/// The containers of function `function`.
fn containers_of(function: &str, all: bool) -> Vec<String> {
    containers_with(&[&format!("trellis.function={function}")], all)
}

/// A label of container `id`.
fn label_of(id: &str, key: &str) -> String {
    docker(&[
        "inspect",
        "--format",
        &format!("{{{{index .Config.Labels \"{key}\"}}}}"),
        id,
    ])
}

/// The tags of the images Trellis built for `function`.
fn images_of(function: &str) -> Vec<String> {
    let mut tags: Vec<String> = docker(&[
        "images",
        "--filter",
        &format!("label=trellis.function={function}"),
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ])
    .lines()
    .map(str::to_owned)
    .collect();
    tags.sort();
    tags
}

/// Waits until `check` holds, or panics after `timeout` naming `what`.
fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The one running container of `function` (waits for the engine to settle).
fn the_running_container(function: &str) -> String {
    let until = Instant::now() + SETTLE;
    loop {
        let running = containers_of(function, false);
        if running.len() == 1 {
            return running[0].clone();
        }
        assert!(
            Instant::now() < until,
            "expected one running container of {function}, found {running:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` through trellis on `port`, bounded by [`REQUEST`].
async fn get_path(client: &Client, port: u16, path: &str) -> Answer {
    tokio::time::timeout(
        REQUEST,
        send_bytes(client, port, HOST, "GET", path, &[], Vec::new()),
    )
    .await
    .unwrap_or_else(|_| panic!("GET {path}: no answer within {REQUEST:?}"))
    .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
}

/// Lines of `function`'s log in trellis's stderr.
fn fn_lines(t: &Trellis, function: &str) -> Vec<String> {
    let prefix = format!("[{function}] ");
    t.stderr()
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

/// `GET path` carrying `x-amzn-requestid: id`: Trellis makes the client's request id the
/// invocation's RequestId, so the function log's lines of this very request can be found.
async fn get_as(client: &Client, port: u16, path: &str, id: &str) -> Answer {
    tokio::time::timeout(
        REQUEST,
        send_bytes(
            client,
            port,
            HOST,
            "GET",
            path,
            &[("x-amzn-requestid", id)],
            Vec::new(),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("GET {path}: no answer within {REQUEST:?}"))
    .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
}

/// A request id of this test process for `what`.
fn request_id(what: &str) -> String {
    format!("e2e-{}-{what}", std::process::id())
}

/// The line of `function`'s log about invocation `id` that contains `what`, waiting a moment
/// for it: Trellis logs before it answers, but its stderr reaches the test through a pipe and
/// a reader thread.
fn log_line(t: &Trellis, function: &str, id: &str, what: &str) -> Option<String> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let found = fn_lines(t, function)
            .into_iter()
            .find(|l| l.contains(id) && l.contains(what));
        if found.is_some() || Instant::now() > until {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The REPORT line of invocation `id` (`Init Duration` in it: a fresh environment served it).
fn report_of(t: &Trellis, function: &str, id: &str) -> String {
    log_line(t, function, id, "REPORT RequestId:")
        .unwrap_or_else(|| panic!("no REPORT for {id}:\n{}", t.stderr()))
}

/// How many lines of `function`'s log contain `what`.
fn count(t: &Trellis, function: &str, what: &str) -> usize {
    fn_lines(t, function)
        .iter()
        .filter(|l| l.contains(what))
        .count()
}

/// Waits until `n` lines of `function`'s log contain `what` (see [`log_line`]), then asserts
/// there are exactly `n`.
fn wait_count(t: &Trellis, function: &str, what: &str, n: usize) {
    let until = Instant::now() + Duration::from_secs(5);
    while count(t, function, what) < n && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        count(t, function, what),
        n,
        "{what:?} in the log of {function}:\n{}",
        t.stderr()
    );
}

/// Stops trellis with SIGTERM and expects exit status 0.
fn stop(t: &mut Trellis) {
    t.signal("TERM");
    let code = t.wait(Duration::from_secs(60));
    assert_eq!(
        code,
        Some(0),
        "trellis did not stop cleanly:\n{}",
        t.stderr()
    );
}

/// Removes whatever a test leaves of its function, even when it fails half-way: containers,
/// images labelled with the function, and scratch directories. Declared before the test's
/// `Trellis`, so that it runs after trellis is gone.
struct Sweep {
    function: String,
    dirs: Vec<PathBuf>,
}

impl Sweep {
    fn new(function: &str) -> Sweep {
        Sweep {
            function: function.to_owned(),
            dirs: Vec::new(),
        }
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        let label = format!("label=trellis.function={}", self.function);
        let quiet = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        for id in quiet(&["ps", "-aq", "--filter", &label]).lines() {
            quiet(&["rm", "-f", id]);
        }
        for id in quiet(&["images", "-q", "--filter", &label]).lines() {
            quiet(&["rmi", "-f", id]);
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[tokio::test]
async fn a_container_function_answers_over_http() {
    if !docker_available() {
        return;
    }
    let function = function_name("answer");
    let mut sweep = Sweep::new(&function);
    // `image:`: a tag built beforehand (with the function's label, so the sweep removes it).
    let dir = build_dir(&function, "");
    sweep.dirs.push(dir.clone());
    let tag = format!("trellis-e2e-{function}:latest");
    docker(&[
        "build",
        "-q",
        "--label",
        &format!("trellis.function={function}"),
        "-t",
        &tag,
        &dir.display().to_string(),
    ]);
    let port = free_port();
    let settings = json!({"image": tag, "timeout": 30, "environment": {"GREETING": "hi"}});
    let mut t = start(&mut sweep, &config(port, &function, &settings));
    let client = http1_client();

    let first = request_id("answer-first");
    let root = get_as(&client, port, "/", &first).await;
    assert_eq!(root.status, 200, "{root:?}\n{}", t.stderr());
    assert_eq!(root.body, GREETING);
    assert_eq!(
        root.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; charset=utf-8")
    );
    let hi = get_path(&client, port, "/hi?x=1").await;
    assert_eq!(hi.status, 200, "{hi:?}");
    assert_eq!(
        hi.body,
        "Hello from the function at path \"/hi\" (method GET)\n"
    );
    let env = get_path(&client, port, "/env").await;
    assert_eq!(
        (env.status, env.body.as_str()),
        (200, &*format!("{function} hi\n"))
    );
    // The handler's error is a function error: 502.
    let error = get_path(&client, port, "/error").await;
    assert_eq!(error.status, 502, "{error:?}");
    let last = request_id("answer-last");
    let after = get_as(&client, port, "/", &last).await;
    assert_eq!((after.status, after.body.as_str()), (200, GREETING));

    // One warm container served them all, labelled with the trellis process as its owner.
    let all = containers_of(&function, true);
    assert_eq!(all.len(), 1, "{all:?}");
    let id = the_running_container(&function);
    assert_eq!(all[0], id);
    assert_eq!(label_of(&id, "trellis.managed"), "true");
    let owner = label_of(&id, "trellis.owner");
    let pid = t.child.as_ref().expect("running").id();
    let parts: Vec<&str> = owner.rsplitn(3, ':').collect();
    assert_eq!(parts.len(), 3, "owner label {owner:?}");
    assert_eq!(parts[1], pid.to_string(), "owner label {owner:?}");
    // `<host name>:<pid>:<start time>`: this machine, the trellis process and its start time
    // (field 22 of /proc/<pid>/stat).
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host name");
    assert_eq!(parts[2], hostname.trim(), "owner label {owner:?}");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("trellis's stat");
    let start_time = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(22 - 3))
        .expect("start time");
    assert_eq!(parts[0], start_time, "owner label {owner:?}");
    wait_count(&t, &function, "START RequestId:", 5);
    // A cold start, then the same warm environment (even after the handler's error).
    assert!(report_of(&t, &function, &first).contains("Init Duration"));
    assert!(!report_of(&t, &function, &last).contains("Init Duration"));
    wait_count(&t, &function, "Init Duration", 1);

    stop(&mut t);
    assert!(containers_of(&function, true).is_empty());
}

#[tokio::test]
async fn concurrent_requests_start_at_most_concurrency_containers() {
    if !docker_available() {
        return;
    }
    let function = function_name("burst");
    let mut sweep = Sweep::new(&function);
    let dir = build_dir(&function, "");
    sweep.dirs.push(dir.clone());
    let port = free_port();
    let settings = build_settings(&dir, json!({"timeout": 60, "concurrency": 3}));
    let mut t = start(&mut sweep, &config(port, &function, &settings));

    // Count the function's containers (any state) all through the burst.
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (function, stop) = (function.clone(), stop_sampling.clone());
        move || {
            let (mut most, mut samples) = (0, 0);
            while !stop.load(Ordering::SeqCst) {
                most = most.max(containers_of(&function, true).len());
                samples += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            (most, samples)
        }
    });
    const N: usize = 12;
    let client = http1_client();
    let mut tasks = Vec::new();
    for i in 0..N {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            get_path(&client, port, &format!("/n{i}")).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let answer = task.await.expect("request task");
        assert_eq!(
            answer.status,
            200,
            "request {i}: {answer:?}\n{}",
            t.stderr()
        );
        assert_eq!(
            answer.body,
            format!("Hello from the function at path \"/n{i}\" (method GET)\n")
        );
    }
    // How many started depends on how fast the burst arrives compared with a cold start: 3 on
    // an idle machine, fewer when the first container is up before the last requests arrive.
    // A container may still be starting after the burst: sample until they all run, warm.
    let until = Instant::now() + SETTLE;
    let all = loop {
        let all = containers_of(&function, true);
        if !all.is_empty() && containers_of(&function, false).len() == all.len() {
            break all;
        }
        assert!(
            Instant::now() < until,
            "containers of {function} never all ran: {}\n{}",
            docker(&[
                "ps",
                "-a",
                "--filter",
                &format!("label=trellis.function={function}"),
                "--format",
                "{{.ID}} {{.Status}}",
            ]),
            t.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    stop_sampling.store(true, Ordering::SeqCst);
    let (most, samples) = sampler.join().expect("sampler");
    eprintln!("containers: at most {most} at once over {samples} samples");
    assert!(samples >= 3, "the burst was sampled {samples} times only");
    assert!(
        (1..=3).contains(&most),
        "at most 3 containers at once, saw {most}\n{}",
        t.stderr()
    );
    // None was replaced: they stay, warm.
    assert!(all.len() <= most, "{all:?} after at most {most}");
    wait_count(&t, &function, "START RequestId:", N);
    wait_count(&t, &function, "REPORT RequestId:", N);
    // Each container's first answer is a cold start; the first one up may serve everything.
    let cold = count(&t, &function, "Init Duration");
    assert!(
        (1..=all.len()).contains(&cold),
        "{cold} cold starts:\n{}",
        t.stderr()
    );

    stop(&mut t);
    assert!(containers_of(&function, true).is_empty());
}

#[tokio::test]
async fn a_killed_container_is_replaced_without_a_failed_request() {
    if !docker_available() {
        return;
    }
    let function = function_name("killed");
    let mut sweep = Sweep::new(&function);
    let dir = build_dir(&function, "");
    sweep.dirs.push(dir.clone());
    let port = free_port();
    // One environment at a time: the container that answers after a kill is the new one.
    let settings = build_settings(&dir, json!({"timeout": 30, "concurrency": 1}));
    let mut t = start(&mut sweep, &config(port, &function, &settings));
    let client = http1_client();
    let first = get_path(&client, port, "/").await;
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, GREETING),
        "{}",
        t.stderr()
    );

    const ROUNDS: usize = 3;
    for round in 0..ROUNDS {
        let before = the_running_container(&function);
        docker(&["kill", &before]);
        // The next request follows at once.
        let id = request_id(&format!("killed-{round}"));
        let answer = get_as(&client, port, &format!("/round{round}"), &id).await;
        assert_eq!(
            answer.status,
            200,
            "round {round}: the request after the kill failed: {answer:?}\n{}",
            t.stderr()
        );
        assert_eq!(
            answer.body,
            format!("Hello from the function at path \"/round{round}\" (method GET)\n")
        );
        // A fresh environment served it (a cold start), in a new container; the killed one is
        // removed.
        let report = report_of(&t, &function, &id);
        assert!(report.contains("Init Duration"), "round {round}: {report}");
        eventually("the killed container is removed", SETTLE, || {
            !containers_of(&function, true).contains(&before)
        });
        let after = the_running_container(&function);
        assert_ne!(after, before, "round {round}");
    }
    // Every kill is noticed and reported.
    wait_count(&t, &function, "a fresh one replaces it", ROUNDS);
    assert_eq!(containers_of(&function, true).len(), 1);

    stop(&mut t);
    assert!(containers_of(&function, true).is_empty());
}

/// `GET /` to a function with a 1 s timeout until it answers 200 (at most 5 tries); returns the
/// request id of the answered request. Trellis counts a cold start against the invocation's
/// deadline, so on a busy machine a try may time out waiting for its environment to start: such
/// a 504 is accepted only when the function log says exactly that.
async fn answered_in_time(
    client: &Client,
    port: u16,
    t: &Trellis,
    function: &str,
    what: &str,
) -> String {
    for attempt in 0..5 {
        let id = request_id(&format!("{what}-{attempt}"));
        let answer = get_as(client, port, "/", &id).await;
        if answer.status == 200 {
            assert_eq!(answer.body, GREETING);
            return id;
        }
        assert_eq!(answer.status, 504, "{answer:?}\n{}", t.stderr());
        let waited = log_line(t, function, &id, "waiting for an execution environment");
        assert!(
            waited.is_some(),
            "{id}: a 504 that is not a slow cold start:\n{}",
            t.stderr()
        );
    }
    panic!("the function never answered in time:\n{}", t.stderr());
}

#[tokio::test]
async fn a_timeout_answers_504_and_replaces_the_container() {
    if !docker_available() {
        return;
    }
    let function = function_name("timeout");
    let mut sweep = Sweep::new(&function);
    let dir = build_dir(&function, "");
    sweep.dirs.push(dir.clone());
    let port = free_port();
    let settings = build_settings(&dir, json!({"timeout": 1, "concurrency": 1}));
    let mut t = start(&mut sweep, &config(port, &function, &settings));
    let client = http1_client();
    // The image is built in the background; let it be there before the 1 s deadlines.
    eventually("the image is built", REQUEST, || {
        !images_of(&function).is_empty()
    });
    answered_in_time(&client, port, &t, &function, "warm-up").await;
    let before = the_running_container(&function);

    // hello-lambda sleeps 60 s at /sleep; the 1 s timeout cuts it short.
    let sleep_id = request_id("timeout-sleep");
    let started = Instant::now();
    let slept = get_as(&client, port, "/sleep", &sleep_id).await;
    let took = started.elapsed();
    assert_eq!(slept.status, 504, "{slept:?}\n{}", t.stderr());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(15),
        "504 after {took:?}"
    );
    // It ran in the warm container (START) and was stopped by its timeout.
    assert!(log_line(&t, &function, &sleep_id, "START RequestId:").is_some());
    let timed_out = log_line(
        &t,
        &function,
        &sleep_id,
        "Task timed out after 1.00 seconds",
    )
    .unwrap_or_else(|| panic!("no timeout line:\n{}", t.stderr()));
    assert!(!timed_out.contains("waiting"), "{timed_out}");
    eventually("the timed-out container is removed", SETTLE, || {
        !containers_of(&function, true).contains(&before)
    });

    // The next request is served by a fresh container.
    let next = answered_in_time(&client, port, &t, &function, "after-timeout").await;
    let report = report_of(&t, &function, &next);
    assert!(report.contains("Init Duration"), "{report}");
    let after = the_running_container(&function);
    assert_ne!(after, before);
    assert_eq!(containers_of(&function, true), vec![after]);

    stop(&mut t);
    assert!(containers_of(&function, true).is_empty());
}

#[tokio::test]
async fn an_edited_build_directory_is_rebuilt_and_served() {
    if !docker_available() {
        return;
    }
    let function = function_name("rebuild");
    let mut sweep = Sweep::new(&function);
    let dir = build_dir(&function, "ENV GREETING=one\n");
    sweep.dirs.push(dir.clone());
    let port = free_port();
    let settings = build_settings(&dir, json!({"timeout": 30}));
    let mut t = start(&mut sweep, &config(port, &function, &settings));
    let client = http1_client();

    let one = get_path(&client, port, "/env").await;
    assert_eq!(
        (one.status, one.body.as_str()),
        (200, &*format!("{function} one\n")),
        "{}",
        t.stderr()
    );
    let first_container = the_running_container(&function);
    let first_images = images_of(&function);
    assert_eq!(first_images.len(), 1, "{first_images:?}");
    assert!(
        first_images[0].starts_with(&format!("trellis-fn-{function}:")),
        "{first_images:?}"
    );

    // The edit is seen by the very next request: no reload, no restart.
    write_dockerfile(&dir, "ENV GREETING=two\n");
    let two = get_path(&client, port, "/env").await;
    assert_eq!(
        (two.status, two.body.as_str()),
        (200, &*format!("{function} two\n")),
        "{}",
        t.stderr()
    );
    eventually("the old container is replaced", SETTLE, || {
        let all = containers_of(&function, true);
        all.len() == 1 && all[0] != first_container
    });
    // A new image (Trellis prunes the old one when no container uses it any more).
    let images = images_of(&function);
    assert!(
        images.iter().any(|i| i != &first_images[0]) && images.len() <= 2,
        "a second image: {images:?}"
    );
    wait_count(
        &t,
        &function,
        "changed: rebuilding the image and replacing warm containers",
        1,
    );
    // And it keeps serving the new version.
    let again = get_path(&client, port, "/env").await;
    assert_eq!(again.body, format!("{function} two\n"));

    stop(&mut t);
    assert!(containers_of(&function, true).is_empty());
}

/// A static `sleeper SECONDS` for `FROM scratch` images, which have no shell to `RUN sleep`:
/// compiled once per test run with the musl target that [`hello_lambda_musl`] installs.
fn sleeper_musl() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            hello_lambda_musl();
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sleeper");
            std::fs::create_dir_all(&dir).expect("sleeper dir");
            let source = dir.join("sleeper.rs");
            std::fs::write(
                &source,
                "fn main() {\n    let s = std::env::args().nth(1).and_then(|a| a.parse().ok());\n    std::thread::sleep(std::time::Duration::from_secs(s.unwrap_or(1)));\n}\n",
            )
            .expect("write sleeper.rs");
            let binary = dir.join("sleeper");
            let out = Command::new("rustc")
                .args(["--target", "x86_64-unknown-linux-musl", "-O", "-o"])
                .arg(&binary)
                .arg(&source)
                .output()
                .expect("run rustc");
            assert!(
                out.status.success(),
                "compiling the sleeper failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            binary
        })
        .clone()
}

#[tokio::test]
async fn an_image_build_streams_its_output_to_the_function_log() {
    if !docker_available() {
        return;
    }
    let function = function_name("buildlog");
    let mut sweep = Sweep::new(&function);
    let dir = build_dir(&function, "");
    sweep.dirs.push(dir.clone());
    std::fs::copy(sleeper_musl(), dir.join("sleeper")).expect("copy the sleeper");
    // Steps 3 and 4 (of 5, and the labels Trellis adds): the build takes 4 s longer.
    write_dockerfile(&dir, "COPY sleeper /sleeper\nRUN [\"/sleeper\", \"4\"]\n");
    let port = free_port();
    let mut t = start(
        &mut sweep,
        &config(port, &function, &build_settings(&dir, json!({}))),
    );

    // Trellis is ready before the image is built. The steps before the slow one are in the
    // function log while it runs: the build is not over yet.
    let prefix = format!("[{function}] ");
    t.wait_for_stderr(REQUEST, "the build's slow step", |err| {
        err.contains(&format!("{prefix}Step 4/8 : RUN [\"/sleeper\""))
    });
    let seen = |what: &str| fn_lines(&t, &function).iter().any(|l| l.contains(what));
    let lines = fn_lines(&t, &function);
    assert!(
        !seen("built image") && !seen("Successfully built"),
        "the build is over already:\n{lines:#?}"
    );
    let from = lines
        .iter()
        .position(|l| l.contains("Step 1/8 : FROM scratch"));
    let copy = lines
        .iter()
        .position(|l| l.contains("Step 3/8 : COPY sleeper"));
    assert!(from.is_some() && from < copy, "{lines:#?}");

    // The rest follows, and the image serves.
    t.wait_for_stderr(REQUEST, "the build's end", |err| {
        err.contains(&format!("{prefix}built image"))
    });
    assert!(
        seen("Step 5/8 : ENTRYPOINT"),
        "{:#?}",
        fn_lines(&t, &function)
    );
    let client = http1_client();
    let answer = get_path(&client, port, "/").await;
    assert_eq!((answer.status, answer.body.as_str()), (200, GREETING));

    stop(&mut t);
}

/// `trellis: removed N container(s) …` in `stderr`: N.
fn removed_count(stderr: &str) -> Option<usize> {
    let line = stderr
        .lines()
        .find(|l| l.contains("trellis: removed ") && l.contains("left by an earlier Trellis"))?;
    let at = line.find("trellis: removed ")?;
    line[at + "trellis: removed ".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[tokio::test]
async fn nothing_remains_after_a_stop_and_a_killed_trellis_is_cleaned_up_at_restart() {
    if !docker_available() {
        return;
    }
    let function = function_name("cleanup");
    let mut sweep = Sweep::new(&function);
    let dir = build_dir(&function, "");
    sweep.dirs.push(dir.clone());
    let port = free_port();
    let yaml = config(
        port,
        &function,
        &build_settings(&dir, json!({"timeout": 30, "concurrency": 2})),
    );

    // 1. A clean stop leaves nothing of this Trellis: no container, no network.
    let mut t = start(&mut sweep, &yaml);
    // A client per trellis: a pooled connection to a stopped one would fail the next request.
    let client = http1_client();
    let answer = get_path(&client, port, "/").await;
    assert_eq!(answer.status, 200, "{}", t.stderr());
    let id = the_running_container(&function);
    let instance = label_of(&id, "trellis.instance");
    assert!(!instance.is_empty());
    let instance_label = format!("trellis.instance={instance}");
    stop(&mut t);
    assert!(t.stderr().contains("trellis: stopped"), "{}", t.stderr());
    assert!(containers_of(&function, true).is_empty());
    assert!(containers_with(&[&instance_label], true).is_empty());
    let networks = docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label={instance_label}"),
    ]);
    assert!(networks.is_empty(), "networks left: {networks}");

    // A neighbour: another Trellis on the same engine, running all along, with a warm
    // container that no other Trellis's start-up may touch.
    let neighbour_fn = format!("{function}-nb");
    let mut neighbour_sweep = Sweep::new(&neighbour_fn);
    let neighbour_port = free_port();
    let mut neighbour = start(
        &mut neighbour_sweep,
        &config(
            neighbour_port,
            &neighbour_fn,
            &build_settings(&dir, json!({"timeout": 30})),
        ),
    );
    let neighbour_client = http1_client();
    let answer = get_path(&neighbour_client, neighbour_port, "/").await;
    assert_eq!(answer.status, 200, "{}", neighbour.stderr());
    let neighbour_container = the_running_container(&neighbour_fn);

    // 2. `kill -9` leaves its containers behind.
    let mut killed = start(&mut sweep, &yaml);
    let client = http1_client();
    let requests: Vec<_> = (0..4)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { get_path(&client, port, &format!("/k{i}")).await })
        })
        .collect();
    for request in requests {
        let answer = request.await.expect("request task");
        assert_eq!(answer.status, 200, "{}", killed.stderr());
    }
    let left = containers_of(&function, true);
    assert!(!left.is_empty() && left.len() <= 2, "{left:?}");
    killed.signal("KILL");
    assert!(
        killed.wait(Duration::from_secs(10)).is_some() || killed.child.is_none(),
        "trellis did not die"
    );
    std::thread::sleep(Duration::from_millis(500));
    let still_there = containers_of(&function, true);
    for id in &left {
        assert!(
            still_there.contains(id),
            "{id} was left behind by the killed trellis"
        );
    }

    // 3. A restart with the same config removes them before it is ready, says so, and serves
    //    from a fresh container; its clean stop leaves nothing with the managed label.
    let mut restarted = start(&mut sweep, &yaml);
    let client = http1_client();
    let stderr = restarted.stderr();
    let removed = removed_count(&stderr)
        .unwrap_or_else(|| panic!("no mention of the removed leftovers:\n{stderr}"));
    assert!(removed >= left.len(), "removed {removed}, left {left:?}");
    let now = containers_of(&function, true);
    for id in &left {
        assert!(!now.contains(id), "{id} survived the restart");
    }
    let answer = get_path(&client, port, "/").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, GREETING),
        "{}",
        restarted.stderr()
    );
    let fresh = the_running_container(&function);
    assert!(!left.contains(&fresh));
    // The neighbour's container survived both start-ups, and still serves.
    assert_eq!(
        containers_of(&neighbour_fn, true),
        vec![neighbour_container.clone()]
    );
    let id = request_id("neighbour-after");
    let answer = get_as(&neighbour_client, neighbour_port, "/", &id).await;
    assert_eq!(answer.status, 200, "{}", neighbour.stderr());
    assert!(!report_of(&neighbour, &neighbour_fn, &id).contains("Init Duration"));
    assert_eq!(the_running_container(&neighbour_fn), neighbour_container);
    wait_count(&neighbour, &neighbour_fn, "START RequestId:", 2);
    wait_count(&neighbour, &neighbour_fn, "Init Duration", 1);
    stop(&mut neighbour);
    assert!(containers_of(&neighbour_fn, true).is_empty());
    stop(&mut restarted);
    let managed = containers_with(
        &[
            "trellis.managed=true",
            &format!("trellis.function={function}"),
        ],
        true,
    );
    assert!(managed.is_empty(), "{managed:?}");
}
