//! Shared pieces of the end-to-end tests: start the real `trellis` binary on free ports, real
//! HTTP backends in the test process, and clients (HTTP/1.1, h2c, TLS, from a chosen source
//! address).
#![allow(dead_code)]

mod builder;
mod console;
mod oracles;
pub use builder::*;
#[allow(unused_imports)] // Only the console tests use them.
pub use console::*;
#[allow(unused_imports)] // Only the API tests run the oracles.
pub use oracles::*;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The binary under test.
pub const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");

/// The value of the sample `name{labels}` in Prometheus text (`/metrics`), or `None` when
/// absent.
pub fn sample_value(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name_and_labels))
        .find_map(|rest| rest.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A free TCP port on loopback, never the same one twice in a test process: the OS may hand
/// a just-released port out again, and two listeners of one test on the same port would
/// silently merge (another process may still take it; that is the remaining race).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A fresh scratch directory under the system temp dir, removed when the returned guard is
/// dropped (see [`Scratch`]).
pub fn scratch_dir(name: &str) -> Scratch {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "trellis-test-{}-{}-{}",
        name,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    Scratch(Some(dir))
}

/// A scratch directory, removed when dropped, so that tests leave nothing in the temp dir; a
/// failing test keeps it for a look, and says where it is.
pub struct Scratch(Option<PathBuf>);

impl Scratch {
    /// The directory, no longer removed on drop (for tests that sweep it themselves).
    pub fn keep(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else { return };
        if std::thread::panicking() {
            eprintln!("scratch directory kept: {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// A running `trellis up`. Killed when dropped.
pub struct Trellis {
    pub child: Option<Child>,
    /// Its scratch directory (config, default state dir), removed after the process is killed.
    pub dir: Scratch,
    pub stderr: Arc<Mutex<String>>,
    pub stdout: Arc<Mutex<String>>,
}

impl Trellis {
    /// Writes `yaml` to a config file and runs `trellis up -f` on it with `extra` arguments;
    /// returns once it prints that it is ready.
    pub fn start(yaml: &str, extra: &[&str]) -> Trellis {
        Trellis::launch(yaml, None, extra, Some(Duration::from_secs(20)))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Sends a signal (`"INT"` or `"TERM"`) to the process.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `pred(stderr)` holds, or panics after `timeout`.
    pub fn wait_for_stderr(&self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.stderr()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for {what}; stderr:\n{}", self.stderr());
    }
}

impl Drop for Trellis {
    /// Kills the process; its scratch directory goes after (the `dir` field drops next).
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub version: hyper::Version,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// A real HTTP server (HTTP/1.1 and h2c on one port) in the test process. It answers
/// `Hello from <name> at <path>` and records every request. Its health endpoint (`/health`)
/// answers with the status in `health_status`, and `delay_ms` delays every answer.
#[derive(Clone)]
pub struct Backend {
    pub name: String,
    pub port: u16,
    /// Requests (other than health checks) that have arrived, counted before the delay.
    pub arrived: Arc<AtomicUsize>,
    /// Requests answered (other than health checks), counted after the delay.
    pub hits: Arc<AtomicUsize>,
    pub health_hits: Arc<AtomicUsize>,
    pub health_status: Arc<AtomicU16>,
    pub delay_ms: Arc<AtomicU64>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<tokio::sync::Notify>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(name: &str, addr: SocketAddr) -> Backend {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind backend");
        let port = listener.local_addr().unwrap().port();
        let backend = Backend {
            name: name.to_string(),
            port,
            arrived: Arc::new(AtomicUsize::new(0)),
            hits: Arc::new(AtomicUsize::new(0)),
            health_hits: Arc::new(AtomicUsize::new(0)),
            health_status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::new(AtomicU64::new(0)),
            seen: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(tokio::sync::Notify::new()),
        };
        let b = backend.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                    _ = b.stop.notified() => return,
                };
                let b2 = b.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| b2.clone().answer(req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        backend
    }

    /// Waits until `n` requests have arrived (their answers may still be delayed); panics
    /// after 10 s.
    pub async fn wait_arrived(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.arrived.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "backend {}: {} of {n} requests arrived in 10 s",
                self.name,
                self.arrived.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops accepting new connections (existing ones finish).
    pub fn stop(&self) {
        self.stop.notify_waiters();
    }

    async fn answer(self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let path = parts.uri.path().to_string();
        if path == "/health" {
            self.health_hits.fetch_add(1, Ordering::Relaxed);
            let status = self.health_status.load(Ordering::Relaxed);
            return Ok(Response::builder()
                .status(status)
                .body(Full::new(Bytes::from("health")))
                .unwrap());
        }
        self.arrived.fetch_add(1, Ordering::Relaxed);
        let delay = self.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        // Recorded before counted, so that a test that sees the count can read the record.
        self.seen.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            version: parts.version,
            headers: parts.headers.clone(),
            body,
        });
        self.hits.fetch_add(1, Ordering::Relaxed);
        let text = format!("Hello from {} at {}", self.name, path);
        Ok(Response::builder()
            .header("content-type", "text/plain")
            .header("x-backend", self.name.clone())
            .body(Full::new(Bytes::from(text)))
            .unwrap())
    }

    pub fn last_seen(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("backend saw no request")
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub version: hyper::Version,
    pub headers: hyper::HeaderMap,
    pub body: String,
    pub trailers: Option<hyper::HeaderMap>,
}

pub type Plain = Client<HttpConnector<Loopback>, Full<Bytes>>;

/// Resolves every name to 127.0.0.1. The clients put the host a request names in its URI, so
/// that an HTTP/2 request carries it as `:authority` (which wins over `Host`, RFC 9113
/// 8.3.1), as curl and other real clients do; the tests only ever talk to loopback.
#[derive(Debug, Clone, Copy)]
pub struct Loopback;

impl tower_service::Service<Name> for Loopback {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        // The port is the URI's: the connector sets it.
        std::future::ready(Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))].into_iter()))
    }
}

fn loopback_connector() -> HttpConnector<Loopback> {
    HttpConnector::new_with_resolver(Loopback)
}

/// The URI of a request to trellis on `port` for `host` (a `Host` value, with or without a
/// port): `http://host:port/path`, always with `port`, where the connection goes; or
/// `http://127.0.0.1:port/path` when `host` makes no valid authority.
pub fn uri_for(port: u16, host: &str, path: &str) -> String {
    let name = match host.rsplit_once(':') {
        Some((h, p))
            if !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']')) =>
        {
            h
        }
        _ => host,
    };
    let uri = format!("http://{name}:{port}{path}");
    if !name.is_empty()
        && uri
            .parse::<hyper::Uri>()
            .is_ok_and(|u| u.authority().is_some())
    {
        uri
    } else {
        format!("http://127.0.0.1:{port}{path}")
    }
}

/// An HTTP/1.1 client (pooled, keep-alive).
pub fn http1_client() -> Plain {
    Client::builder(TokioExecutor::new()).build(loopback_connector())
}

/// An h2c (HTTP/2 prior knowledge) client.
pub fn h2c_client() -> Plain {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(loopback_connector())
}

/// An HTTP/1.1 client whose connections come from `source` (e.g. 127.0.0.2).
pub fn client_from(source: IpAddr) -> Plain {
    let mut connector = loopback_connector();
    connector.set_local_address(Some(source));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Sends one request to trellis on `port` with `Host: host` and reads the whole answer.
pub async fn send(
    client: &Plain,
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri_for(port, host, path));
    builder = builder.header("host", host);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = client
        .request(req)
        .await
        .expect("request to trellis failed");
    read(resp).await
}

/// `GET path` with `Host: host`.
pub async fn get(client: &Plain, port: u16, host: &str, path: &str) -> Answer {
    send(client, port, host, "GET", path, &[], "").await
}

/// Reads a response in full, trailers included.
pub async fn read(resp: Response<Incoming>) -> Answer {
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.expect("read body");
    let trailers = collected.trailers().cloned();
    Answer {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        body: String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        trailers,
    }
}

/// Counts answers by their `x-backend` header.
pub fn tally(answers: &[Answer]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for a in answers {
        let name = a
            .headers
            .get("x-backend")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        *out.entry(name).or_insert(0) += 1;
    }
    out
}

/// Runs `trellis` with `args` to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(TRELLIS)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run trellis");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A minimal config: one service `svc` with one HTTP listener on `port` whose default action
/// forwards to target group `web-tg` over backends on 127.0.0.1 at `targets`, health checks
/// off.
pub fn simple_config(port: u16, targets: &[u16]) -> String {
    Config::new()
        .service(Service::new("svc").listener(Listener::http(port).forward("web-tg")))
        .target_group(TargetGroup::instance("web-tg", targets).no_health_checks())
        .yaml()
}

/// Loopback address 127.0.0.`n`.
pub fn lo(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// Each service's generated DNS name, as `trellis services -f config` prints it (the
/// `dns name:` line under the service's name).
pub fn dns_names(config: &Path) -> HashMap<String, String> {
    let dir = config.parent().unwrap_or(Path::new("."));
    let (code, out, err) = run_cli(&["services", "-f", &config.display().to_string()], dir);
    assert_eq!(code, 0, "trellis services failed:\n{out}\n{err}");
    let mut names = HashMap::new();
    let mut current: Option<String> = None;
    for line in out.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            current = line.split_whitespace().next().map(str::to_string);
        } else if let (Some(dns), Some(svc)) = (line.trim().strip_prefix("dns name:"), &current) {
            names.insert(svc.clone(), dns.trim().to_string());
        }
    }
    names
}

// ---- Functions (LAMBDA targets) -------------------------------------------------------------

/// examples/auth.yaml as a test runs it: its listener on `port` rather than 8095, its
/// function's code wherever the samples are built. The README's and the console's auth tests
/// both start Trellis with the example itself, so what they check is what a user runs.
pub fn auth_example(port: u16) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(repo.join("examples/auth.yaml"))
        .expect("examples/auth.yaml")
        .replace("8095", &port.to_string())
        .replace(
            "sample-functions/dist/hello-wasm.wasm",
            &sample("hello-wasm.wasm").display().to_string(),
        )
}

/// The absolute path of `sample-functions/dist/<name>`, building the samples once
/// (`make sample-functions`) if it is missing.
pub fn sample(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = repo.join("sample-functions/dist").join(name);
    if path.exists() {
        return path;
    }
    let built = BUILT.get_or_init(|| {
        let out = Command::new("make")
            .arg("sample-functions")
            .current_dir(repo)
            .output()
            .map_err(|e| format!("cannot run make: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("`make sample-functions` failed, so the sample functions are missing: {e}");
    }
    assert!(
        path.exists(),
        "`make sample-functions` did not produce {}",
        path.display()
    );
    path
}

/// A state directory shared by every test of this run, so that each wasm module is compiled
/// once (the compiled-artifact cache lives in it).
pub fn shared_state_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("functions-state");
    std::fs::create_dir_all(&dir).expect("shared state dir");
    dir
}

impl Trellis {
    /// Like [`Trellis::start`], with `--state-dir state_dir` and waiting up to `ready_timeout`
    /// for "ready" (loading functions, such as compiling wasm, happens before it).
    pub fn start_with_state(
        yaml: &str,
        state_dir: &Path,
        extra: &[&str],
        ready_timeout: Duration,
    ) -> Trellis {
        Trellis::launch(yaml, Some(state_dir), extra, Some(ready_timeout))
    }

    /// Starts `trellis up` with `--state-dir state_dir` and returns at once, before "ready".
    pub fn spawn_with_state(yaml: &str, state_dir: &Path, extra: &[&str]) -> Trellis {
        Trellis::launch(yaml, Some(state_dir), extra, None)
    }

    /// Starts `trellis up` with its state in `state_dir` (default: `<its dir>/state`), and
    /// waits up to `ready_timeout` for "ready" (not at all when `None`).
    fn launch(
        yaml: &str,
        state_dir: Option<&Path>,
        extra: &[&str],
        ready_timeout: Option<Duration>,
    ) -> Trellis {
        let dir = scratch_dir("up");
        let config = dir.join("trellis.yaml");
        std::fs::write(&config, yaml).expect("write config");
        let mut child = Command::new(TRELLIS)
            .arg("up")
            .arg("-f")
            .arg(&config)
            .arg("--state-dir")
            .arg(
                state_dir
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| dir.join("state")),
            )
            // Many instances run at once: each takes a free admin port (see `metrics_url`).
            .args(if extra.contains(&"--admin") {
                &[][..]
            } else {
                &["--admin", "127.0.0.1:0"][..]
            })
            .args(extra)
            .current_dir(&dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn trellis");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let err_pipe = child.stderr.take().expect("stderr");
        let err_buf = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                let ready = line.contains("trellis: ready");
                err_buf.lock().unwrap().push_str(&format!("{line}\n"));
                if ready {
                    let _ = ready_tx.send(());
                }
            }
            let _ = ready_tx.send(());
        });
        let out_pipe = child.stdout.take().expect("stdout");
        let out_buf = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines().map_while(Result::ok) {
                out_buf.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let trellis = Trellis {
            child: Some(child),
            dir,
            stderr,
            stdout,
        };
        let Some(ready_timeout) = ready_timeout else {
            return trellis;
        };
        let _ = ready_rx.recv_timeout(ready_timeout);
        if !trellis.stderr().contains("trellis: ready") {
            panic!(
                "trellis did not become ready; stderr:\n{}",
                trellis.stderr()
            );
        }
        trellis
    }

    /// `http://ADDR/metrics` of this instance's admin port, from its start-up lines.
    pub fn metrics_url(&self) -> String {
        self.stderr()
            .lines()
            .find_map(|l| l.strip_prefix("trellis: metrics at "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no admin port in the start-up lines:\n{}", self.stderr()))
    }

    /// The config file this instance serves (edit it to trigger a reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("trellis.yaml")
    }
}

/// Sends one request with a body of raw bytes (which may not be UTF-8); the answer's body is
/// read as lossy UTF-8 like [`send`]'s.
pub async fn send_bytes(
    client: &Plain,
    port: u16,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Answer, String> {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri_for(port, host, path))
        .header("host", host);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder.body(Full::new(Bytes::from(body))).unwrap();
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    Ok(read(resp).await)
}

// ---- Container functions --------------------------------------------------------------------

/// Whether the Docker engine answers (`docker info`); when it does not, prints
/// `SKIPPED: <reason>` and returns false, so that the caller returns.
pub fn docker_available() -> bool {
    match Command::new("docker").arg("info").output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "SKIPPED: `docker info` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run `docker info`: {e}");
            false
        }
    }
}

/// `sample-functions`' `hello-lambda` built as a static musl binary (for `FROM scratch`
/// images), once per test run; adds the rustup target when it is missing.
pub fn hello_lambda_musl() -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = "x86_64-unknown-linux-musl";
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(target))
            .unwrap_or(false);
        if !installed {
            let status = Command::new("rustup")
                .args(["target", "add", target])
                .status()
                .map_err(|e| format!("cannot run rustup: {e}"))?;
            if !status.success() {
                return Err(format!("rustup target add {target} failed"));
            }
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = Command::new(cargo)
            .args(["build", "--release", "--target", target, "--manifest-path"])
            .arg(repo.join("sample-functions/Cargo.toml"))
            .args(["-p", "hello-lambda"])
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building hello-lambda for {target} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(repo.join(format!(
            "sample-functions/target/{target}/release/hello-lambda"
        )))
    });
    match built {
        Ok(path) => path.clone(),
        Err(e) => panic!("{e}"),
    }
}
