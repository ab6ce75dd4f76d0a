//! Container functions on the real Docker engine, with the real `hello-lambda` (the official
//! `lambda_runtime` crate) built as a static musl binary `FROM scratch`. Skipped, with the
//! reason printed, only when `docker info` fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::OnceCell;
use trellis_config::{FunctionRuntime, Loc, Pos};
use trellis_runtime::{Function, FunctionError, InvokeContext};

use super::image::Images;
use super::*;

/// The hello-lambda image, built once per test run through [`Images`].
static HELLO_IMAGE: OnceCell<Option<String>> = OnceCell::const_new();

const LONG: Duration = Duration::from_secs(60);

/// The engine, or `None` (with the reason printed) when `docker info` fails.
async fn engine() -> Option<Arc<DockerEngine>> {
    match Command::new("docker").arg("info").output().await {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "SKIPPED: `docker info` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run `docker info`: {e}");
            return None;
        }
    }
    let engine = DockerEngine::connect(DockerEngine::new_instance_id())
        .await
        .expect("docker info works, so Trellis must reach the engine");
    eprintln!("placement: {}", engine.placement());
    Some(engine)
}

/// Builds `sample-functions`' `hello-lambda` for x86_64-unknown-linux-musl (adding the target
/// with rustup if needed) and returns the binary.
async fn hello_lambda_musl() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root");
    let target = "x86_64-unknown-linux-musl";
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(target))
        .unwrap_or(false);
    if !installed {
        let status = Command::new("rustup")
            .args(["target", "add", target])
            .status()
            .await
            .expect("rustup");
        assert!(status.success(), "rustup target add {target} failed");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .arg("build")
        .arg("--release")
        .args(["--target", target])
        .arg("--manifest-path")
        .arg(root.join("sample-functions/Cargo.toml"))
        .args(["-p", "hello-lambda"])
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .await
        .expect("cargo");
    assert!(
        output.status.success(),
        "building hello-lambda for musl failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    root.join(format!(
        "sample-functions/target/{target}/release/hello-lambda"
    ))
}

/// A scratch build directory: the test Dockerfile (plus `extra` lines) and hello-lambda as
/// `bootstrap`. Removed on drop.
struct BuildDir {
    dir: PathBuf,
}

impl BuildDir {
    async fn new(name: &str, extra: &str) -> BuildDir {
        let binary = hello_lambda_musl().await;
        let dir =
            std::env::temp_dir().join(format!("trellis-container-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        std::fs::copy(&binary, dir.join("bootstrap")).expect("copy hello-lambda");
        let build = BuildDir { dir };
        build.dockerfile(extra);
        build
    }

    fn dockerfile(&self, extra: &str) {
        let base =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/container/hello-lambda/Dockerfile");
        let text = std::fs::read_to_string(base).expect("test Dockerfile");
        std::fs::write(self.dir.join("Dockerfile"), format!("{text}{extra}")).expect("write");
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The hello-lambda image tag, built through Trellis's own build path.
async fn hello_image(engine: &DockerEngine) -> String {
    HELLO_IMAGE
        .get_or_init(|| async {
            let build = BuildDir::new("hello-image", "").await;
            let images = Images::new(
                engine.docker().clone(),
                "trellis-test-hello",
                ImageSource::Build(build.dir.clone()),
            );
            Some(
                images
                    .resolve()
                    .await
                    .expect("the hello-lambda image builds"),
            )
        })
        .await
        .clone()
        .expect("image")
}

fn config(
    name: &str,
    source: &ImageSource,
    timeout_seconds: u32,
    concurrency: u32,
) -> trellis_config::Function {
    let (image, build) = match source {
        ImageSource::Image(image) => (Some(image.clone()), None),
        ImageSource::Build(dir) => (None, Some(dir.clone())),
    };
    trellis_config::Function {
        name: name.into(),
        arn: format!("arn:aws:lambda:us-west-2:123456789012:function:{name}"),
        runtime: FunctionRuntime::Container,
        code: None,
        command: Vec::new(),
        image,
        build,
        timeout_seconds,
        memory_size_mb: 128,
        environment: Default::default(),
        concurrency,
        provisioned: 0,
        idle_timeout_seconds: 600,
        at: Loc::new("functions[0]", Pos { line: 1, col: 1 }),
    }
}

/// A container function as [`pool`] makes it, with its launcher at hand to look at.
struct TestFunction {
    pool: Pool,
    launcher: Arc<DockerLauncher>,
}

impl TestFunction {
    fn new(
        config: &trellis_config::Function,
        region: &str,
        engine: &Arc<DockerEngine>,
    ) -> Result<TestFunction, ContainerError> {
        let launcher = Arc::new(DockerLauncher::new(config, engine)?);
        let pool = Pool::new(pool_config(config, region, engine), launcher.clone());
        Ok(TestFunction { pool, launcher })
    }

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn pool_id(&self) -> &str {
        self.launcher.pool_id()
    }

    /// The image containers are created from, found or built now.
    async fn prepare(&self) -> Result<String, ContainerError> {
        self.launcher.image().await
    }

    async fn shutdown(&self) {
        self.pool.shutdown().await;
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

async fn invoke(
    function: &TestFunction,
    path: &str,
    timeout: Duration,
) -> Result<Value, FunctionError> {
    let ctx = InvokeContext::new(
        format!("ctr-req-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
        timeout,
    );
    let event = json!({
        "version": "2.0",
        "path": path,
        "method": "GET",
        "headers": {"user-agent": ["curl/8.5.0"]},
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
    });
    let bytes = function
        .pool
        .invoke(bytes::Bytes::from(event.to_string()), ctx)
        .await?;
    Ok(serde_json::from_slice(&bytes).expect("JSON answer"))
}

async fn body(function: &TestFunction, path: &str) -> String {
    let answer = invoke(function, path, LONG).await.expect("an answer");
    assert_eq!(answer["statusCode"], json!(200), "{answer}");
    answer["body"].as_str().unwrap_or_default().to_owned()
}

/// `docker ps` ids (all states with `all`) of containers with `label`.
async fn containers(label: &str, all: bool) -> Vec<String> {
    let mut command = Command::new("docker");
    command.arg("ps").arg("-q").arg("--no-trunc");
    if all {
        command.arg("-a");
    }
    let out = command
        .args(["--filter", &format!("label={label}")])
        .output()
        .await
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .await
        .expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The one container of `label` that runs. The engine may report a container as running a
/// moment after its runtime has already answered (the start call returns after the process
/// runs), so wait for it.
async fn the_running_container(label: &str) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let running = containers(label, false).await;
        if running.len() == 1 {
            return running[0].clone();
        }
        assert!(
            Instant::now() < until,
            "expected one running container with {label}, found {running:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pool_label(function: &TestFunction) -> String {
    format!("{}={}", labels::POOL, function.pool_id())
}

#[tokio::test]
async fn a_container_function_answers_in_a_labelled_lambda_environment() {
    let Some(engine) = engine().await else { return };
    let image = hello_image(&engine).await;
    let mut settings = config("hello-container", &ImageSource::Image(image), 10, 2);
    settings.environment.insert("GREETING".into(), "hi".into());
    let function = TestFunction::new(&settings, "us-west-2", &engine).expect("function");

    let cold = Instant::now();
    assert_eq!(body(&function, "/").await, "Hello from the function\n");
    let cold = cold.elapsed();
    let warm = Instant::now();
    const WARM: u32 = 50;
    for _ in 0..WARM {
        assert_eq!(body(&function, "/").await, "Hello from the function\n");
    }
    let warm = warm.elapsed() / WARM;
    eprintln!(
        "MEASURED: cold start (create + start + first answer) {:.1} ms; warm invocation {:.2} ms",
        cold.as_secs_f64() * 1000.0,
        warm.as_secs_f64() * 1000.0
    );
    assert_eq!(body(&function, "/env").await, "hello-container hi\n");
    assert_eq!(function.pool().stats().launches, 1, "one warm container");

    let id = the_running_container(&pool_label(&function)).await;
    let inspect = docker(&[
        "inspect",
        "--format",
        "{{.Name}} {{.HostConfig.Memory}} {{.HostConfig.NetworkMode}} {{json .Config.Labels}}",
        &id,
    ])
    .await;
    let (name, rest) = inspect.split_once(' ').expect("inspect");
    assert!(name.starts_with("/trellis-hello-container-0-"), "{name}");
    let (memory, rest) = rest.split_once(' ').expect("inspect");
    assert_eq!(memory, (128 * 1024 * 1024).to_string());
    let (network, labels_json) = rest.split_once(' ').expect("inspect");
    assert_eq!(network, engine.placement().network);
    let labels: Value = serde_json::from_str(labels_json).expect("labels");
    assert_eq!(labels["trellis.managed"], json!("true"));
    assert_eq!(labels["trellis.function"], json!("hello-container"));
    assert_eq!(labels["trellis.instance"], json!(engine.instance()));
    assert_eq!(labels["trellis.owner"], json!(engine.owner().label()));
    let owner = Owner::parse(&engine.owner().label()).expect("owner label");
    assert_eq!(owner.pid, std::process::id());
    assert_eq!(labels["trellis.environment"], json!("0"));
    let env = docker(&["inspect", "--format", "{{json .Config.Env}}", &id]).await;
    assert!(env.contains("AWS_LAMBDA_RUNTIME_API="), "{env}");
    assert!(env.contains("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128"), "{env}");

    function.shutdown().await;
    assert!(
        containers(&pool_label(&function), true).await.is_empty(),
        "shutdown removes every container"
    );
    assert!(
        containers(&format!("trellis.instance={}", engine.instance()), true)
            .await
            .is_empty()
    );
    assert!(matches!(
        invoke(&function, "/", LONG).await,
        Err(FunctionError::Crashed(_))
    ));
}

#[tokio::test]
async fn concurrent_invocations_start_at_most_concurrency_containers() {
    let Some(engine) = engine().await else { return };
    let image = hello_image(&engine).await;
    let function = Arc::new(
        TestFunction::new(
            &config("hello-concurrent", &ImageSource::Image(image), 30, 3),
            "us-west-2",
            &engine,
        )
        .expect("function"),
    );
    let label = pool_label(&function);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn({
        let label = label.clone();
        async move {
            let mut most = 0;
            loop {
                most = most.max(containers(&label, true).await.len());
                tokio::select! {
                    _ = &mut stop_rx => return most,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        }
    });
    let mut tasks = Vec::new();
    for i in 0..12 {
        let function = Arc::clone(&function);
        tasks.push(tokio::spawn(async move {
            invoke(&function, &format!("/n{i}"), LONG).await
        }));
    }
    for task in tasks {
        let answer = task
            .await
            .expect("task")
            .expect("every invocation succeeds");
        assert_eq!(answer["statusCode"], json!(200));
    }
    let _ = stop_tx.send(());
    let most = watcher.await.expect("watcher");
    let launches = function.pool().stats().launches;
    assert!(most <= 3, "at most 3 containers at once, saw {most}");
    assert_eq!(launches, 3, "12 waiting invocations start exactly 3");
    assert_eq!(containers(&label, true).await.len(), 3);
    function.shutdown().await;
    assert!(containers(&label, true).await.is_empty());
}

#[tokio::test]
async fn a_container_killed_or_removed_behind_our_back_is_replaced_without_a_failure() {
    let Some(engine) = engine().await else { return };
    let image = hello_image(&engine).await;
    let function = TestFunction::new(
        &config("hello-killed", &ImageSource::Image(image), 30, 1),
        "us-west-2",
        &engine,
    )
    .expect("function");
    let label = pool_label(&function);
    assert_eq!(body(&function, "/").await, "Hello from the function\n");
    for round in 0..6 {
        let before = the_running_container(&label).await;
        // Alternate `docker kill` and `docker rm -f`; the next invocation follows at once.
        if round % 2 == 0 {
            docker(&["kill", &before]).await;
        } else {
            docker(&["rm", "-f", &before]).await;
        }
        let started = Instant::now();
        let answer = invoke(&function, "/", LONG).await;
        assert!(
            answer.is_ok(),
            "round {round}: the invocation after the kill failed: {answer:?}"
        );
        eprintln!(
            "round {round}: answered in {:.0} ms after the kill",
            started.elapsed().as_secs_f64() * 1000.0
        );
        let after = the_running_container(&label).await;
        assert_ne!(after, before, "a fresh container answered");
        let old = before.clone();
        eventually("the dead container is removed", || {
            let old = old.clone();
            async move { !containers(labels::MANAGED, true).await.contains(&old) }
        })
        .await;
    }
    assert_eq!(function.pool().stats().launches, 7);
    function.shutdown().await;
    assert!(containers(&label, true).await.is_empty());
}

#[tokio::test]
async fn a_timeout_replaces_the_container() {
    let Some(engine) = engine().await else { return };
    let image = hello_image(&engine).await;
    let function = TestFunction::new(
        &config("hello-timeout", &ImageSource::Image(image), 1, 1),
        "us-west-2",
        &engine,
    )
    .expect("function");
    let label = pool_label(&function);
    assert_eq!(body(&function, "/").await, "Hello from the function\n");
    let first = the_running_container(&label).await;
    let result = invoke(&function, "/sleep", Duration::from_secs(1)).await;
    assert_eq!(result, Err(FunctionError::Timeout(Duration::from_secs(1))));
    let old = first;
    eventually("the timed-out container is removed", || {
        let (old, label) = (old.clone(), label.clone());
        async move { !containers(&label, true).await.contains(&old) }
    })
    .await;
    assert_eq!(body(&function, "/").await, "Hello from the function\n");
    let now = the_running_container(&label).await;
    assert_ne!(now, old);
    function.shutdown().await;
}

#[tokio::test]
async fn an_edited_build_directory_is_rebuilt_and_served() {
    let Some(engine) = engine().await else { return };
    let build = BuildDir::new("rebuild", "ENV GREETING=one\n").await;
    let source = ImageSource::Build(build.dir.clone());
    let function = TestFunction::new(
        &config("hello-rebuild", &source, 30, 2),
        "us-west-2",
        &engine,
    )
    .expect("function");
    let label = pool_label(&function);
    assert_eq!(body(&function, "/env").await, "hello-rebuild one\n");
    let first_tag = function.prepare().await.expect("image");
    assert!(
        first_tag.starts_with("trellis-fn-hello-rebuild:"),
        "{first_tag}"
    );
    let image_labels = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &first_tag,
    ])
    .await;
    assert!(
        image_labels.contains("\"trellis.managed\":\"true\""),
        "{image_labels}"
    );
    let first_container = the_running_container(&label).await;

    // Same content, new mtime: no rebuild, the warm container stays.
    build.dockerfile("ENV GREETING=one\n");
    assert_eq!(body(&function, "/env").await, "hello-rebuild one\n");
    assert_eq!(the_running_container(&label).await, first_container);
    assert_eq!(function.prepare().await.expect("image"), first_tag);

    build.dockerfile("ENV GREETING=two\n");
    assert_eq!(body(&function, "/env").await, "hello-rebuild two\n");
    let second_tag = function.prepare().await.expect("image");
    assert_ne!(second_tag, first_tag);
    eventually("the old container is replaced by one new one", || {
        let (label, first) = (label.clone(), first_container.clone());
        async move {
            let running = containers(&label, false).await;
            running.len() == 1 && running[0] != first
        }
    })
    .await;
    function.shutdown().await;
    // A fresh function over the same directory reuses the image (no build).
    let again = TestFunction::new(
        &config("hello-rebuild", &source, 30, 2),
        "us-west-2",
        &engine,
    )
    .expect("function");
    let created = docker(&["image", "inspect", "--format", "{{.Created}}", &second_tag]).await;
    assert_eq!(again.prepare().await.expect("image"), second_tag);
    assert_eq!(
        docker(&["image", "inspect", "--format", "{{.Created}}", &second_tag]).await,
        created
    );
    again.shutdown().await;
    for tag in [first_tag, second_tag] {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &tag])
            .output()
            .await;
    }
}

#[tokio::test]
async fn a_failed_build_and_a_missing_image_are_explained() {
    let Some(engine) = engine().await else { return };
    let build = BuildDir::new("broken", "COPY no-such-file /x\n").await;
    let function = TestFunction::new(
        &config(
            "hello-broken",
            &ImageSource::Build(build.dir.clone()),
            30,
            1,
        ),
        "us-west-2",
        &engine,
    )
    .expect("function");
    match function.prepare().await {
        Err(ContainerError::Build(message)) => {
            assert!(message.contains("failed"), "{message}");
            assert!(message.contains("no-such-file"), "{message}");
            assert!(message.contains("--- build output"), "{message}");
            assert!(
                message.contains("Step 1/"),
                "the engine's output: {message}"
            );
        }
        other => panic!("expected a build error, got {other:?}"),
    }
    match invoke(&function, "/", LONG).await {
        Err(FunctionError::Init(message)) => assert!(message.contains("no-such-file"), "{message}"),
        other => panic!("expected an init error, got {other:?}"),
    }
    function.shutdown().await;

    let missing = TestFunction::new(
        &config(
            "hello-missing",
            &ImageSource::Image("trellis-no-such-image:never".into()),
            30,
            1,
        ),
        "us-west-2",
        &engine,
    )
    .expect("function");
    let started = Instant::now();
    match invoke(&missing, "/", LONG).await {
        Err(FunctionError::Init(message)) => {
            assert!(
                message.contains("image trellis-no-such-image:never not found locally")
                    && message.contains("docker build")
                    && message.contains("build: DIR"),
                "{message}"
            )
        }
        other => panic!("expected an init error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reported at once"
    );
    missing.shutdown().await;
}

/// `docker create` (labels `trellis.managed=true`, `trellis.function=ghost` and `extra`) of
/// `image`, named `name`; returns its id.
async fn hand_made(image: &str, name: &str, extra: &[String]) -> String {
    let mut args = vec![
        "create".to_owned(),
        "--name".to_owned(),
        name.to_owned(),
        "--label".to_owned(),
        "trellis.managed=true".to_owned(),
        "--label".to_owned(),
        "trellis.function=ghost".to_owned(),
    ];
    for label in extra {
        args.push("--label".to_owned());
        args.push(label.clone());
    }
    args.push(image.to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&args).await
}

/// Removes hand-made containers and networks when dropped, so that a failing test leaves none
/// (Trellis would never remove some of them: they are not its own).
#[derive(Default)]
struct HandMade {
    containers: Vec<String>,
    networks: Vec<String>,
}

impl Drop for HandMade {
    fn drop(&mut self) {
        for id in &self.containers {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", id])
                .output();
        }
        for name in &self.networks {
            let _ = std::process::Command::new("docker")
                .args(["network", "rm", name])
                .output();
        }
    }
}

/// A process of this machine that has exited (and been reaped): its pid, free for reuse.
fn a_dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

#[tokio::test]
async fn leftovers_of_a_dead_trellis_are_removed_and_a_live_ones_kept() {
    let Some(engine) = engine().await else { return };
    let image = hello_image(&engine).await;
    let me = engine.owner().clone();
    assert_eq!(me, Owner::current());
    assert!(me.start.is_some(), "/proc gives the start time: {me:?}");
    let tag = DockerEngine::new_instance_id();
    let instance = |who: &str| format!("trellis.instance={who}-{tag}");
    let owner = |o: &Owner| format!("trellis.owner={}", o.label());

    // Another Trellis of this machine that runs (a second engine of this test process, as a
    // second `trellis up` would be) with a live function container.
    let other = DockerEngine::with_placement(
        engine.docker().clone(),
        DockerEngine::new_instance_id(),
        engine.placement().clone(),
    );
    let live_function = TestFunction::new(
        &config(
            "hello-live-owner",
            &ImageSource::Image(image.clone()),
            30,
            1,
        ),
        "us-west-2",
        &other,
    )
    .expect("function");
    assert_eq!(body(&live_function, "/").await, "Hello from the function\n");
    let live_container = the_running_container(&pool_label(&live_function)).await;

    // A live process other than this one owns a container too.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("120")
        .spawn()
        .expect("spawn sleep");
    let sleeper_owner = Owner::of_process(sleeper.id());
    assert!(sleeper_owner.start.is_some(), "{sleeper_owner:?}");

    let dead = Owner {
        pid: a_dead_pid(),
        ..me.clone()
    };
    // The pid of a live process, but a different start time: the pid was reused.
    let reused = Owner {
        start: me.start.map(|s| s + 1),
        ..me.clone()
    };
    // Trellis in a container: its host name is its container's id. One that runs, one that
    // is gone.
    let in_live_container = Owner {
        host: live_container[..12].to_owned(),
        pid: 1,
        start: Some(42),
    };
    let in_gone_container = Owner {
        host: DockerEngine::new_instance_id(),
        pid: 1,
        start: Some(42),
    };

    let old_version = hand_made(
        &image,
        &format!("trellis-ghost-old-{tag}"),
        &[instance("old")],
    )
    .await;
    let old_running = hand_made(
        &image,
        &format!("trellis-ghost-old-running-{tag}"),
        &[instance("old-running")],
    )
    .await;
    // A crashed Trellis may leave running containers too. (Another Trellis starting on this
    // engine right now may remove an ownerless container first: that is fine too.)
    let _ = Command::new("docker")
        .args(["start", &old_running])
        .output()
        .await;
    let of_dead = hand_made(
        &image,
        &format!("trellis-ghost-dead-{tag}"),
        &[instance("dead"), owner(&dead)],
    )
    .await;
    let of_reused = hand_made(
        &image,
        &format!("trellis-ghost-reused-{tag}"),
        &[instance("reused"), owner(&reused)],
    )
    .await;
    let of_gone_container = hand_made(
        &image,
        &format!("trellis-ghost-gone-container-{tag}"),
        &[instance("gone-container"), owner(&in_gone_container)],
    )
    .await;
    let of_sleeper = hand_made(
        &image,
        &format!("trellis-live-sleeper-{tag}"),
        &[instance("sleeper"), owner(&sleeper_owner)],
    )
    .await;
    let of_live_container = hand_made(
        &image,
        &format!("trellis-live-container-{tag}"),
        &[instance("live-container"), owner(&in_live_container)],
    )
    .await;
    let ours = hand_made(
        &image,
        &format!("trellis-ours-{tag}"),
        &[
            format!("trellis.instance={}", engine.instance()),
            owner(&me),
        ],
    )
    .await;
    // Labelled managed (as image labels are inherited) but of no instance: not a function
    // container (Trellis's own container in the compose demo); it stays.
    let bystander = docker(&["create", "--label", "trellis.managed=true", &image]).await;
    let mut hand_made_here = HandMade::default();
    hand_made_here.containers.extend([
        old_version.clone(),
        old_running.clone(),
        of_dead.clone(),
        of_reused.clone(),
        of_gone_container.clone(),
        of_sleeper.clone(),
        of_live_container.clone(),
        ours.clone(),
        bystander.clone(),
    ]);
    // Networks follow the same rule.
    let network = |name: &str, who: &Owner| {
        let (name, label) = (format!("trellis-test-{name}-{tag}"), owner(who));
        let instance = instance(name.as_str());
        async move {
            docker(&[
                "network",
                "create",
                "--label",
                "trellis.managed=true",
                "--label",
                &instance,
                "--label",
                &label,
                &name,
            ])
            .await;
            name
        }
    };
    let dead_network = network("dead", &dead).await;
    let live_network = network("live", &sleeper_owner).await;
    hand_made_here
        .networks
        .extend([dead_network.clone(), live_network.clone()]);

    let leftovers = engine.cleanup_leftovers().await.expect("cleanup");
    let all = containers("trellis.managed=true", true).await;
    for (what, id) in [
        ("an older Trellis's (no owner label)", &old_version),
        ("an older Trellis's running one", &old_running),
        ("a dead process's", &of_dead),
        ("a process whose pid was reused", &of_reused),
        ("a Trellis container's that is gone", &of_gone_container),
    ] {
        assert!(!all.contains(id), "{what} is removed: {leftovers:?}");
    }
    for (what, id) in [
        ("a live other Trellis's function container", &live_container),
        ("a live other process's", &of_sleeper),
        ("a running Trellis container's", &of_live_container),
        ("our own", &ours),
        ("a container without trellis.instance", &bystander),
    ] {
        assert!(all.contains(id), "{what} stays: {leftovers:?}");
    }
    // Each leftover is reported, unless another Trellis starting on this engine at the same
    // time removed it first; nothing that stays is reported.
    let expected: Vec<String> = ["old", "old-running", "dead", "reused", "gone-container"]
        .iter()
        .map(|name| format!("trellis-ghost-{name}-{tag}"))
        .collect();
    let reported: Vec<&String> = leftovers
        .containers
        .iter()
        .filter(|n| n.contains(&tag))
        .collect();
    assert!(
        reported.iter().all(|n| expected.contains(n)),
        "{leftovers:?}"
    );
    assert!(!leftovers.networks.contains(&live_network), "{leftovers:?}");
    let networks = docker(&["network", "ls", "--format", "{{.Name}}"]).await;
    assert!(networks.lines().any(|n| n == live_network), "{networks}");
    assert!(!networks.lines().any(|n| n == dead_network), "{networks}");

    // The other Trellis did not notice: its warm container still serves.
    assert_eq!(body(&live_function, "/").await, "Hello from the function\n");
    assert_eq!(
        the_running_container(&pool_label(&live_function)).await,
        live_container
    );
    assert_eq!(live_function.pool().stats().launches, 1);

    // Once its owner is gone, what was kept is a leftover.
    sleeper.kill().expect("kill sleep");
    sleeper.wait().expect("wait sleep");
    live_function.shutdown().await;
    let leftovers = engine.cleanup_leftovers().await.expect("cleanup");
    let all = containers("trellis.managed=true", true).await;
    assert!(!all.contains(&of_sleeper), "{leftovers:?}");
    assert!(!all.contains(&of_live_container), "{leftovers:?}");
    let networks = docker(&["network", "ls", "--format", "{{.Name}}"]).await;
    assert!(!networks.lines().any(|n| n == live_network), "{networks}");

    docker(&["rm", "-f", &bystander]).await;
    assert_eq!(engine.remove_own_containers().await.expect("sweep"), 1);
    assert!(
        containers(&format!("trellis.instance={}", engine.instance()), true)
            .await
            .is_empty()
    );
}

#[test]
fn owner_labels_round_trip_and_liveness_follows_the_process() {
    let me = Owner::current();
    assert_eq!(me.pid, std::process::id());
    assert!(!me.host.is_empty());
    assert_eq!(Owner::parse(&me.label()), Some(me.clone()));
    assert_eq!(
        Owner::parse("0123456789ab:1:42"),
        Some(Owner {
            host: "0123456789ab".into(),
            pid: 1,
            start: Some(42)
        })
    );
    assert_eq!(Owner::parse("mac.local:77:").map(|o| o.start), Some(None));
    for bad in [
        "",
        "host",
        "host:1",
        ":1:2",
        "host:x:2",
        "host:1:x",
        "host:-1:2",
    ] {
        assert_eq!(Owner::parse(bad), None, "{bad:?}");
    }
    // The command name may hold spaces and parentheses.
    let stat =
        "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
    assert_eq!(engine::start_time(stat), Some(987654));
    assert_eq!(engine::start_time("4242 (x) S 1"), None);

    let here = me.host.as_str();
    assert!(engine::owner_alive(&me, here, &[]));
    let reused = Owner {
        start: me.start.map(|s| s + 1),
        ..me.clone()
    };
    assert!(!engine::owner_alive(&reused, here, &[]));
    let dead = Owner {
        pid: a_dead_pid(),
        ..me.clone()
    };
    assert!(!engine::owner_alive(&dead, here, &[]));

    let id = "0123456789abcdef".repeat(4);
    let in_container = |host: &str| Owner {
        host: host.into(),
        pid: 1,
        start: Some(42),
    };
    let running = [id.clone()];
    assert!(engine::owner_alive(
        &in_container(&id[..12]),
        here,
        &running
    ));
    assert!(!engine::owner_alive(&in_container(&id[..12]), here, &[]));
    assert!(!engine::owner_alive(
        &in_container("fedcba987654"),
        here,
        &running
    ));
    // Too short (or not hex) to be a container's host name: not matched by chance.
    assert!(!engine::owner_alive(&in_container("0123"), here, &running));
    assert!(!engine::owner_alive(
        &in_container("laptop"),
        here,
        &running
    ));
}

#[tokio::test]
async fn an_unreachable_engine_is_explained() {
    let error = DockerEngine::connect_to(Some("unix:///nonexistent/docker.sock"), "x")
        .await
        .err()
        .expect("no engine there");
    let text = error.to_string();
    assert!(
        text.contains("/nonexistent/docker.sock") && text.contains("DOCKER_HOST"),
        "{text}"
    );
    let error = DockerEngine::connect_to(Some("ssh://somewhere"), "x")
        .await
        .err()
        .expect("unsupported");
    assert!(error.to_string().contains("not supported"), "{error}");
    // A socket file nobody listens on.
    let path = std::env::temp_dir().join(format!("trellis-dead-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    drop(listener);
    let error = DockerEngine::connect_to(Some(&format!("unix://{}", path.display())), "x")
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("connection refused"), "{error}");
    let _ = std::fs::remove_file(&path);
}
