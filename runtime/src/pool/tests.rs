//! Pool and Runtime API tests. The "environments" here are Tokio tasks that speak HTTP to the
//! Runtime API over real sockets, exactly as a custom runtime does: the layer under test is the
//! pool and the API, not process management (invokers' process tests cover real processes).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::state::trace_id;
use super::*;
use crate::MAX_PAYLOAD;

// ---------------------------------------------------------------------------------------------
// A minimal Runtime API client, one connection per request (like a `curl` loop).

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn call(
    api: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Answer, String> {
    let stream = TcpStream::connect(api).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{api}{path}"))
        .header("host", api);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

async fn next(api: &str) -> Result<Answer, String> {
    call(api, Method::GET, NEXT, &[], Bytes::new()).await
}

async fn post(
    api: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Answer, String> {
    call(api, Method::POST, path, headers, body.into()).await
}

fn request_id(answer: &Answer) -> String {
    answer
        .headers
        .get("lambda-runtime-aws-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// The in-test launcher: each environment is a task running a runtime function.

/// What a test runtime is given: its endpoint, its environment variables, and shared probes.
#[derive(Clone)]
struct RuntimeCtx {
    api: String,
    env: HashMap<String, String>,
    id: u64,
    probe: Arc<Probe>,
}

/// Observations shared by all environments of a test.
#[derive(Default)]
struct Probe {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    killed: AtomicUsize,
    /// What the launcher's `code_changed` answers next (then `None` again).
    code_change: Mutex<Option<String>>,
    /// Environments killed so far when the launcher's `shutdown` hook ran, once per call.
    launcher_shutdowns: Mutex<Vec<usize>>,
    /// Request ids each environment received, in order.
    seen: Mutex<BTreeMap<u64, Vec<String>>>,
}

impl Probe {
    fn seen(&self, env: u64, request_id: String) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.entry(env).or_default().push(request_id);
        }
    }

    fn all_seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|s| s.values().flatten().cloned().collect())
            .unwrap_or_default()
    }
}

type RuntimeFn = Arc<dyn Fn(RuntimeCtx) -> BoxFuture<'static, i32> + Send + Sync>;

struct TaskLauncher {
    runtime: RuntimeFn,
    probe: Arc<Probe>,
    fail: Option<String>,
}

impl Launcher for TaskLauncher {
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Box<dyn Environment>, LaunchError>> {
        Box::pin(async move {
            if let Some(reason) = &self.fail {
                return Err(LaunchError::new(reason.clone()));
            }
            // `spec.env` applies in order, later entries winning, as a real launcher would.
            let env: HashMap<String, String> = spec.env.iter().cloned().collect();
            let ctx = RuntimeCtx {
                api: spec.runtime_api.clone(),
                env,
                id: spec.environment_id,
                probe: Arc::clone(&self.probe),
            };
            let task = tokio::spawn((self.runtime)(ctx));
            Ok(Box::new(TaskEnvironment {
                task: Some(task),
                probe: Arc::clone(&self.probe),
                last_exit: None,
            }) as Box<dyn Environment>)
        })
    }

    fn describe(&self) -> String {
        "tasks".to_owned()
    }

    fn code_changed(&self) -> BoxFuture<'_, Option<String>> {
        let change = self
            .probe
            .code_change
            .lock()
            .ok()
            .and_then(|mut c| c.take());
        Box::pin(std::future::ready(change))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        let killed = self.probe.killed.load(Ordering::SeqCst);
        if let Ok(mut calls) = self.probe.launcher_shutdowns.lock() {
            calls.push(killed);
        }
        Box::pin(std::future::ready(()))
    }
}

struct TaskEnvironment {
    task: Option<JoinHandle<i32>>,
    probe: Arc<Probe>,
    last_exit: Option<i32>,
}

/// The exit code a test runtime returns to play an environment taken away from outside
/// (a container killed behind Trellis's back).
const VANISHED: i32 = 137;

impl Environment for TaskEnvironment {
    fn wait(&mut self) -> BoxFuture<'_, Exit> {
        Box::pin(async move {
            match self.task.as_mut() {
                Some(task) => {
                    let exit = match task.await {
                        Ok(code) => {
                            self.last_exit = Some(code);
                            Exit(format!("exit status {code}"))
                        }
                        Err(e) => Exit(format!("task failed: {e}")),
                    };
                    self.task = None;
                    exit
                }
                None => std::future::pending().await,
            }
        })
    }

    fn kill(&mut self) -> BoxFuture<'_, Exit> {
        Box::pin(async move {
            if let Some(task) = self.task.take() {
                task.abort();
                let _ = task.await;
                self.probe.killed.fetch_add(1, Ordering::SeqCst);
            }
            Exit("killed".into())
        })
    }

    fn vanished(&self) -> bool {
        self.last_exit == Some(VANISHED)
    }
}

fn runtime<F, Fut>(f: F) -> RuntimeFn
where
    F: Fn(RuntimeCtx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = i32> + Send + 'static,
{
    Arc::new(move |ctx| Box::pin(f(ctx)))
}

/// A well-behaved runtime whose behaviour per invocation comes from the event:
/// `{"action": "echo" | "sleep" | "error" | "exit" | "hang" | "big", "ms": …}`. It answers with
/// the event, its environment id, and the `/next` headers it saw.
fn scripted() -> RuntimeFn {
    runtime(|ctx: RuntimeCtx| async move {
        loop {
            let Ok(event) = next(&ctx.api).await else {
                return 1;
            };
            if event.status != StatusCode::OK {
                return 2;
            }
            let id = request_id(&event);
            ctx.probe.seen(ctx.id, id.clone());
            let now = ctx.probe.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            ctx.probe.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let payload = event.json();
            let action = payload["action"].as_str().unwrap_or("echo").to_owned();
            let base = format!("/2018-06-01/runtime/invocation/{id}");
            let headers: BTreeMap<String, String> = event
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
                .collect();
            let answer = json!({"event": payload, "env": ctx.id, "headers": headers});
            let result = match action.as_str() {
                "sleep" => {
                    let ms = payload["ms"].as_u64().unwrap_or(100);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    ctx.probe.in_flight.fetch_sub(1, Ordering::SeqCst);
                    post(
                        &ctx.api,
                        &format!("{base}/response"),
                        &[],
                        answer.to_string(),
                    )
                    .await
                }
                "error" => {
                    ctx.probe.in_flight.fetch_sub(1, Ordering::SeqCst);
                    let body = json!({"errorMessage": "it broke", "errorType": "Custom.Broken", "stackTrace": ["at line 1"]});
                    post(
                        &ctx.api,
                        &format!("{base}/error"),
                        &[("lambda-runtime-function-error-type", "unhandled")],
                        body.to_string(),
                    )
                    .await
                }
                "exit" => return 3,
                "vanish" => return VANISHED,
                "vanish-first" if ctx.id == 0 => return VANISHED,
                "hang" => std::future::pending().await,
                "big" => {
                    ctx.probe.in_flight.fetch_sub(1, Ordering::SeqCst);
                    let big = vec![b'x'; MAX_PAYLOAD + 1];
                    let answer = post(&ctx.api, &format!("{base}/response"), &[], big).await;
                    if let Ok(answer) = &answer {
                        ctx.probe
                            .seen(ctx.id, format!("status {}", answer.status.as_u16()));
                    }
                    answer
                }
                _ => {
                    ctx.probe.in_flight.fetch_sub(1, Ordering::SeqCst);
                    post(
                        &ctx.api,
                        &format!("{base}/response"),
                        &[],
                        answer.to_string(),
                    )
                    .await
                }
            };
            if result.is_err() {
                return 4;
            }
        }
    })
}

fn config(concurrency: u32) -> PoolConfig {
    PoolConfig {
        name: "test-fn".into(),
        arn: "arn:aws:lambda:us-west-2:123456789012:function:test-fn".into(),
        region: "us-west-2".into(),
        memory_size_mb: 256,
        concurrency,
        init_timeout: INIT_TIMEOUT,
        provisioned: 0,
        idle_timeout: IDLE_TIMEOUT,
        environment: BTreeMap::from([
            ("GREETING".to_owned(), "hi".to_owned()),
            ("TZ".to_owned(), "Europe/Paris".to_owned()),
            ("AWS_LAMBDA_RUNTIME_API".to_owned(), "evil:1".to_owned()),
        ]),
        handler: "bootstrap".into(),
        task_root: "/var/task".into(),
        execution_env: None,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        advertise_host: None,
    }
}

fn pool_with(config: PoolConfig, runtime: RuntimeFn) -> (Pool, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let launcher = TaskLauncher {
        runtime,
        probe: Arc::clone(&probe),
        fail: None,
    };
    (Pool::new(config, Arc::new(launcher)), probe)
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn ctx(timeout: Duration) -> InvokeContext {
    InvokeContext::new(
        format!("req-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
        timeout,
    )
}

async fn invoke(pool: &Pool, event: Value, timeout: Duration) -> Result<Value, FunctionError> {
    let bytes = pool
        .invoke(Bytes::from(event.to_string()), ctx(timeout))
        .await?;
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Waits (bounded) until `check` holds; state changes after an exit are asynchronous.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const LONG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn answers_with_lambda_headers_and_environment() {
    let seen_env = Arc::new(Mutex::new(HashMap::new()));
    let seen = Arc::clone(&seen_env);
    let scripted = scripted();
    let rt = runtime(move |ctx: RuntimeCtx| {
        if let Ok(mut s) = seen.lock() {
            *s = ctx.env.clone();
        }
        scripted(ctx)
    });
    let (pool, _) = pool_with(config(2), rt);
    let context = ctx(Duration::from_secs(5));
    let request_id = context.request_id.clone();
    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis()) as u64;
    let bytes = pool
        .invoke(Bytes::from(json!({"hello": "world"}).to_string()), context)
        .await
        .expect("the invocation succeeds");
    let answer: Value = serde_json::from_slice(&bytes).expect("JSON answer");
    assert_eq!(answer["event"], json!({"hello": "world"}));
    let h = &answer["headers"];
    assert_eq!(h["lambda-runtime-aws-request-id"], json!(request_id));
    assert_eq!(
        h["lambda-runtime-invoked-function-arn"],
        json!("arn:aws:lambda:us-west-2:123456789012:function:test-fn")
    );
    assert_eq!(h["content-type"], json!("application/json"));
    let trace = h["lambda-runtime-trace-id"].as_str().unwrap_or_default();
    assert!(
        trace.starts_with("Root=1-") && trace.ends_with(";Sampled=0"),
        "{trace}"
    );
    let deadline: u64 = h["lambda-runtime-deadline-ms"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a numeric deadline");
    assert!(
        deadline >= before_ms + 4_000 && deadline <= before_ms + 6_000,
        "deadline {deadline} should be ~5 s after {before_ms}"
    );
    assert!(h.get("lambda-runtime-client-context").is_none());
    assert!(h.get("lambda-runtime-cognito-identity").is_none());

    let env = seen_env.lock().map(|e| e.clone()).unwrap_or_default();
    let api = env
        .get("AWS_LAMBDA_RUNTIME_API")
        .cloned()
        .unwrap_or_default();
    assert!(
        api.starts_with("127.0.0.1:"),
        "reserved variables win over the config: {api}"
    );
    for (k, v) in [
        ("AWS_LAMBDA_FUNCTION_NAME", "test-fn"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/test-fn"),
        ("AWS_REGION", "us-west-2"),
        ("AWS_DEFAULT_REGION", "us-west-2"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("_HANDLER", "bootstrap"),
        ("GREETING", "hi"),
        ("TZ", "Europe/Paris"),
    ] {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }
    let stream = env
        .get("AWS_LAMBDA_LOG_STREAM_NAME")
        .cloned()
        .unwrap_or_default();
    assert!(
        stream.contains("/[$LATEST]") && stream.len() == 11 + 9 + 32,
        "{stream}"
    );
    assert!(!env.contains_key("AWS_EXECUTION_ENV"));
    pool.shutdown().await;
}

#[tokio::test]
async fn client_context_and_cognito_identity_are_sent_when_set() {
    let (pool, _) = pool_with(config(1), scripted());
    let mut invocation = Invocation::new(Bytes::from_static(b"{}"), ctx(LONG));
    invocation.client_context = Some(r#"{"custom":{"a":"b"}}"#.into());
    invocation.cognito_identity = Some(r#"{"cognitoIdentityId":"x"}"#.into());
    let bytes = pool.invoke_with(invocation).await.expect("answer");
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!(
        answer["headers"]["lambda-runtime-client-context"],
        json!(r#"{"custom":{"a":"b"}}"#)
    );
    assert_eq!(
        answer["headers"]["lambda-runtime-cognito-identity"],
        json!(r#"{"cognitoIdentityId":"x"}"#)
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn a_warm_environment_is_reused_and_only_the_first_invocation_is_a_cold_start() {
    let (pool, _) = pool_with(config(4), scripted());
    for _ in 0..5 {
        let answer = invoke(&pool, json!({"action": "echo"}), LONG)
            .await
            .expect("answer");
        assert_eq!(
            answer["env"],
            json!(0),
            "every invocation runs in the first environment"
        );
    }
    let stats = pool.stats();
    assert_eq!(
        (stats.launches, stats.cold_starts, stats.environments),
        (1, 1, 1)
    );
    // Answered, so idle: neither starting nor busy.
    assert_eq!((stats.starting, stats.idle, stats.busy), (0, 1, 0));
    pool.shutdown().await;
}

#[tokio::test]
async fn a_runtime_that_lingers_after_answering_does_not_hold_the_next_invocation_back() {
    // Answers at once, then takes 5 s before polling again (a runtime flushing telemetry, or
    // stuck). The next invocation must not wait for it while the concurrency allows another.
    let rt = runtime(|ctx: RuntimeCtx| async move {
        loop {
            let Ok(event) = next(&ctx.api).await else {
                return 1;
            };
            let path = format!(
                "/2018-06-01/runtime/invocation/{}/response",
                request_id(&event)
            );
            let answer = json!({"env": ctx.id});
            if post(&ctx.api, &path, &[], answer.to_string())
                .await
                .is_err()
            {
                return 2;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let (pool, _) = pool_with(config(2), rt);
    let first = invoke(&pool, json!({}), LONG).await.expect("answer");
    assert_eq!(first["env"], json!(0));
    let second = invoke(&pool, json!({}), Duration::from_secs(2))
        .await
        .expect("served by a second environment well before the first polls again");
    assert_eq!(second["env"], json!(1));
    pool.shutdown().await;
}

#[tokio::test]
async fn concurrent_invocations_start_at_most_concurrency_environments() {
    let (pool, probe) = pool_with(config(3), scripted());
    let pool = Arc::new(pool);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let pool = Arc::clone(&pool);
        tasks.push(tokio::spawn(async move {
            invoke(&pool, json!({"action": "sleep", "ms": 100}), LONG).await
        }));
    }
    let mut per_env: HashMap<u64, usize> = HashMap::new();
    for task in tasks {
        let answer = task
            .await
            .expect("task")
            .expect("every invocation succeeds");
        *per_env
            .entry(answer["env"].as_u64().unwrap_or(99))
            .or_default() += 1;
    }
    let stats = pool.stats();
    assert_eq!(
        stats.launches, 3,
        "12 waiting invocations start exactly `concurrency` environments"
    );
    assert_eq!(stats.cold_starts, 3);
    assert!(per_env.keys().all(|env| *env < 3), "{per_env:?}");
    assert_eq!(per_env.values().sum::<usize>(), 12);
    assert!(
        probe.max_in_flight.load(Ordering::SeqCst) <= 3,
        "never more invocations running than environments"
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn an_environment_holds_one_invocation_at_a_time() {
    // A misbehaving runtime: it takes an invocation, then polls `/next` again without
    // answering, tries the wrong request id, and only then answers.
    let report = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&report);
    let rt = runtime(move |ctx: RuntimeCtx| {
        let log = Arc::clone(&log);
        async move {
            let push = |s: String| {
                if let Ok(mut l) = log.lock() {
                    l.push(s);
                }
            };
            let Ok(first) = next(&ctx.api).await else {
                return 1;
            };
            let id = request_id(&first);
            if let Ok(again) = next(&ctx.api).await {
                push(format!(
                    "second next: {} {}",
                    again.status.as_u16(),
                    again.json()["errorType"]
                ));
            }
            if let Ok(wrong) = post(
                &ctx.api,
                "/2018-06-01/runtime/invocation/not-mine/response",
                &[],
                "{}",
            )
            .await
            {
                push(format!(
                    "wrong id: {} {}",
                    wrong.status.as_u16(),
                    wrong.json()["errorType"]
                ));
            }
            if let Ok(unknown) = call(
                &ctx.api,
                Method::GET,
                "/2018-06-01/runtime/nothing",
                &[],
                Bytes::new(),
            )
            .await
            {
                push(format!("unknown path: {}", unknown.status.as_u16()));
            }
            if let Ok(method) = call(&ctx.api, Method::POST, NEXT, &[], Bytes::new()).await {
                push(format!("POST next: {}", method.status.as_u16()));
            }
            let path = format!("/2018-06-01/runtime/invocation/{id}/response");
            if let Ok(ok) = post(&ctx.api, &path, &[], "\"done\"").await {
                push(format!("response: {} {}", ok.status.as_u16(), ok.json()));
            }
            if let Ok(twice) = post(&ctx.api, &path, &[], "\"again\"").await {
                push(format!(
                    "response again: {} {}",
                    twice.status.as_u16(),
                    twice.json()["errorType"]
                ));
            }
            let init = post(&ctx.api, "/2018-06-01/runtime/init/error", &[], "{}").await;
            if let Ok(init) = init {
                push(format!("init error after init: {}", init.status.as_u16()));
            }
            std::future::pending().await
        }
    });
    let (pool, _) = pool_with(config(1), rt);
    let answer = invoke(&pool, json!({}), LONG).await.expect("answered");
    assert_eq!(answer, json!("done"));
    // The runtime goes on after its answer was accepted: wait for its last call.
    eventually("the runtime made all its calls", || {
        report.lock().map(|r| r.len() == 7).unwrap_or(false)
    })
    .await;
    let report = report.lock().map(|r| r.clone()).unwrap_or_default();
    assert_eq!(
        report,
        [
            "second next: 403 \"InvalidStateTransition\"",
            "wrong id: 400 \"InvalidRequestID\"",
            "unknown path: 404",
            "POST next: 405",
            "response: 202 {\"status\":\"OK\"}",
            "response again: 400 \"InvalidRequestID\"",
            "init error after init: 403",
        ]
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn an_environment_that_exits_mid_invocation_fails_it_at_once_and_is_replaced() {
    let (pool, _) = pool_with(config(1), scripted());
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        invoke(&pool, json!({"action": "exit"}), Duration::from_secs(60)),
    )
    .await
    .expect("the crash is reported long before the 60 s deadline");
    match result {
        Err(FunctionError::Crashed(message)) => {
            assert!(message.contains("exit status 3"), "{message}")
        }
        other => panic!("expected Crashed, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    let answer = invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("replacement answers");
    assert_eq!(answer["env"], json!(1), "a new environment");
    pool.shutdown().await;
}

#[tokio::test]
async fn an_invocation_whose_environment_vanishes_is_retried_once_on_a_fresh_one() {
    let (pool, _) = pool_with(config(2), scripted());
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        invoke(&pool, json!({"action": "vanish-first"}), LONG),
    )
    .await
    .expect("answered long before the deadline")
    .expect("the retry on a fresh environment answers");
    assert_eq!(answer["env"], json!(1), "retried on a new environment");

    // Only once: an invocation whose environments keep vanishing fails.
    match invoke(&pool, json!({"action": "vanish"}), LONG).await {
        Err(FunctionError::Crashed(message)) => {
            assert!(message.contains("exit status 137"), "{message}")
        }
        other => panic!("expected Crashed after one retry, got {other:?}"),
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn a_timeout_kills_the_environment_and_the_next_invocation_gets_a_new_one() {
    let (pool, probe) = pool_with(config(1), scripted());
    let result = invoke(&pool, json!({"action": "hang"}), Duration::from_millis(300)).await;
    assert_eq!(
        result,
        Err(FunctionError::Timeout(Duration::from_millis(300)))
    );
    eventually("the hung environment is killed", || {
        probe.killed.load(Ordering::SeqCst) == 1
    })
    .await;
    let answer = invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("answer");
    assert_eq!(answer["env"], json!(1));
    assert_eq!(pool.stats().launches, 2);
    pool.shutdown().await;
}

#[tokio::test]
async fn an_invocation_waits_in_the_queue_only_until_its_deadline() {
    let (pool, probe) = pool_with(config(1), scripted());
    let pool = Arc::new(pool);
    let busy = {
        let pool = Arc::clone(&pool);
        tokio::spawn(
            async move { invoke(&pool, json!({"action": "sleep", "ms": 1500}), LONG).await },
        )
    };
    eventually("the first invocation runs", || pool.stats().busy == 1).await;
    let queued = invoke(&pool, json!({"action": "echo"}), Duration::from_millis(200)).await;
    assert_eq!(
        queued,
        Err(FunctionError::Timeout(Duration::from_millis(200)))
    );
    assert!(
        busy.await.expect("task").is_ok(),
        "the running invocation is unaffected"
    );
    assert_eq!(
        probe.all_seen().len(),
        1,
        "the expired invocation never ran"
    );
    assert_eq!(probe.killed.load(Ordering::SeqCst), 0, "nothing was killed");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_caller_that_gives_up_while_queued_withdraws_its_invocation() {
    let (pool, probe) = pool_with(config(1), scripted());
    let pool = Arc::new(pool);
    let busy = {
        let pool = Arc::clone(&pool);
        tokio::spawn(
            async move { invoke(&pool, json!({"action": "sleep", "ms": 500}), LONG).await },
        )
    };
    eventually("the first invocation runs", || pool.stats().busy == 1).await;
    let abandoned = {
        let pool = Arc::clone(&pool);
        tokio::spawn(async move { invoke(&pool, json!({"action": "echo"}), LONG).await })
    };
    eventually("the second invocation waits", || pool.stats().queued == 1).await;
    abandoned.abort();
    eventually("it leaves the queue", || pool.stats().queued == 0).await;
    assert!(busy.await.expect("task").is_ok());
    invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("answer");
    assert_eq!(
        probe.all_seen().len(),
        2,
        "the abandoned invocation never ran"
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn an_error_report_is_an_unhandled_function_error() {
    let (pool, _) = pool_with(config(1), scripted());
    let result = invoke(&pool, json!({"action": "error"}), LONG).await;
    assert_eq!(
        result,
        Err(FunctionError::Unhandled {
            error_type: "Custom.Broken".into(),
            message: "it broke".into()
        })
    );
    // The environment stays warm after a handled error, as in Lambda.
    let answer = invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("answer");
    assert_eq!(answer["env"], json!(0));
    pool.shutdown().await;
}

#[tokio::test]
async fn an_oversized_response_gets_413_and_fails_the_invocation() {
    let (pool, probe) = pool_with(config(1), scripted());
    let result = invoke(&pool, json!({"action": "big"}), LONG).await;
    assert_eq!(
        result,
        Err(FunctionError::ResponseTooLarge(MAX_PAYLOAD + 1))
    );
    eventually("the runtime saw the 413", || {
        probe.all_seen().contains(&"status 413".to_owned())
    })
    .await;
    pool.shutdown().await;
}

#[tokio::test]
async fn an_init_error_fails_the_waiting_invocation_and_discards_the_environment() {
    let rt = runtime(|ctx: RuntimeCtx| async move {
        let body = json!({"errorMessage": "missing config", "errorType": "Runtime.ConfigError"});
        let answer = post(
            &ctx.api,
            "/2018-06-01/runtime/init/error",
            &[("lambda-runtime-function-error-type", "Runtime.InitError")],
            body.to_string(),
        )
        .await;
        match answer {
            Ok(a) if a.status == StatusCode::ACCEPTED => std::future::pending().await,
            _ => 9,
        }
    });
    let (pool, probe) = pool_with(config(1), rt);
    let result = invoke(&pool, json!({}), LONG).await;
    assert_eq!(
        result,
        Err(FunctionError::Init(
            "Runtime.ConfigError: missing config".into()
        ))
    );
    eventually("the environment is discarded", || pool.environments() == 0).await;
    assert_eq!(probe.killed.load(Ordering::SeqCst), 1);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_runtime_that_exits_during_init_fails_the_invocation_quickly() {
    let rt = runtime(|_ctx: RuntimeCtx| async move { 7 });
    let (pool, _) = pool_with(config(2), rt);
    let result = invoke(&pool, json!({}), Duration::from_secs(60)).await;
    match result {
        Err(FunctionError::Init(message)) => assert!(
            message.contains("exited before asking for an invocation")
                && message.contains("exit status 7"),
            "{message}"
        ),
        other => panic!("expected Init, got {other:?}"),
    }
    // One failed launch per waiting invocation: no crash loop.
    eventually("the environment is gone", || pool.environments() == 0).await;
    assert_eq!(pool.stats().launches, 1);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_runtime_that_never_polls_is_killed_after_the_init_timeout() {
    let rt = runtime(|_ctx: RuntimeCtx| async move { std::future::pending().await });
    let mut config = config(1);
    config.init_timeout = Duration::from_millis(200);
    let (pool, probe) = pool_with(config, rt);
    let result = invoke(&pool, json!({}), LONG).await;
    match result {
        Err(FunctionError::Init(message)) => assert!(message.contains("did not ask"), "{message}"),
        other => panic!("expected Init, got {other:?}"),
    }
    eventually("it is killed", || probe.killed.load(Ordering::SeqCst) == 1).await;
    pool.shutdown().await;
}

#[tokio::test]
async fn a_launch_failure_is_an_init_error_naming_the_reason() {
    let probe = Arc::new(Probe::default());
    let launcher = TaskLauncher {
        runtime: scripted(),
        probe,
        fail: Some("cannot start /no/such/bootstrap: No such file or directory".into()),
    };
    let pool = Pool::new(config(3), Arc::new(launcher));
    let pool = Arc::new(pool);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let pool = Arc::clone(&pool);
        tasks.push(tokio::spawn(
            async move { invoke(&pool, json!({}), LONG).await },
        ));
    }
    for task in tasks {
        assert_eq!(
            task.await.expect("task"),
            Err(FunctionError::Init(
                "cannot start /no/such/bootstrap: No such file or directory".into()
            ))
        );
    }
    assert_eq!(
        pool.stats().launches,
        5,
        "one launch attempt per waiting invocation"
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn drain_retires_idle_environments_at_once_and_busy_ones_after_their_invocation() {
    let (pool, probe) = pool_with(config(2), scripted());
    let pool = Arc::new(pool);
    invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("answer");
    let busy = {
        let pool = Arc::clone(&pool);
        tokio::spawn(
            async move { invoke(&pool, json!({"action": "sleep", "ms": 500}), LONG).await },
        )
    };
    eventually("an invocation runs", || pool.stats().busy == 1).await;
    // Environment 0 is busy; give environment 1 a reason to exist and become idle.
    let other = invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("answer");
    assert_eq!(other["env"], json!(1));
    pool.drain();
    eventually("the idle environment is killed", || {
        probe.killed.load(Ordering::SeqCst) == 1
    })
    .await;
    let answer = busy
        .await
        .expect("task")
        .expect("the busy one finishes its invocation");
    assert_eq!(answer["env"], json!(0));
    eventually("the drained busy environment is killed too", || {
        probe.killed.load(Ordering::SeqCst) == 2
    })
    .await;
    let fresh = invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("answer");
    assert_eq!(fresh["env"], json!(2), "a fresh environment");
    assert_eq!(pool.stats().cold_starts, 3);
    pool.shutdown().await;
}

#[tokio::test]
async fn a_code_change_the_launcher_reports_replaces_warm_environments_first() {
    let (pool, probe) = pool_with(config(2), scripted());
    let first = invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("answer");
    assert_eq!(first["env"], json!(0));
    *probe.code_change.lock().expect("probe") = Some("bootstrap changed".to_owned());
    let second = invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("answer");
    assert_eq!(
        second["env"],
        json!(1),
        "the new code runs in a fresh environment"
    );
    eventually("the old environment is killed", || {
        probe.killed.load(Ordering::SeqCst) == 1
    })
    .await;
    let third = invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("answer");
    assert_eq!(
        third["env"],
        json!(1),
        "no further change, no further drain"
    );
    assert_eq!(pool.stats().launches, 2);
    pool.shutdown().await;
}

#[tokio::test]
async fn idle_environments_are_stopped_after_the_idle_timeout_but_busy_ones_are_not() {
    let mut config = config(3);
    config.idle_timeout = Duration::from_millis(300);
    let (pool, probe) = pool_with(config, scripted());
    let pool = Arc::new(pool);
    let mut burst = Vec::new();
    for _ in 0..3 {
        let pool = Arc::clone(&pool);
        burst.push(tokio::spawn(async move {
            invoke(&pool, json!({"action": "sleep", "ms": 200}), LONG).await
        }));
    }
    for task in burst {
        task.await.expect("task").expect("answer");
    }
    assert_eq!(pool.stats().environments, 3);
    // Busy for twice the idle timeout: not idle, so not stopped.
    let long = invoke(&pool, json!({"action": "sleep", "ms": 700}), LONG)
        .await
        .expect("a long invocation outlives the idle timeout");
    assert!(long["env"].is_u64());
    eventually("every environment is stopped once idle", || {
        pool.stats().environments == 0
    })
    .await;
    assert_eq!(probe.killed.load(Ordering::SeqCst), 3);
    let again = invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("a new environment starts on demand");
    assert_eq!(again["env"], json!(3));
    pool.shutdown().await;
}

/// A runtime like [`scripted`] that also records each environment's
/// `AWS_LAMBDA_INITIALIZATION_TYPE`.
fn recording_init_type(types: Arc<Mutex<BTreeMap<u64, String>>>) -> RuntimeFn {
    let inner = scripted();
    runtime(move |ctx: RuntimeCtx| {
        let value = ctx
            .env
            .get("AWS_LAMBDA_INITIALIZATION_TYPE")
            .cloned()
            .unwrap_or_default();
        types
            .lock()
            .map(|mut t| t.insert(ctx.id, value))
            .unwrap_or_default();
        inner(ctx)
    })
}

#[tokio::test]
async fn provisioned_environments_start_ahead_of_demand_and_are_kept() {
    let mut config = config(4);
    config.provisioned = 2;
    config.idle_timeout = Duration::from_millis(300);
    let types = Arc::new(Mutex::new(BTreeMap::new()));
    let (pool, probe) = pool_with(config, recording_init_type(Arc::clone(&types)));
    let pool = Arc::new(pool);
    assert_eq!(pool.stats().environments, 0, "nothing before provision()");
    pool.provision();
    eventually("two environments start without an invocation", || {
        pool.stats().environments == 2 && types.lock().map(|t| t.len()).unwrap_or(0) == 2
    })
    .await;
    assert!(
        types
            .lock()
            .map(|t| t.values().all(|v| v == "provisioned-concurrency"))
            .unwrap_or(false),
        "{types:?}"
    );
    // Let them finish init, then use one: not a cold start.
    tokio::time::sleep(Duration::from_millis(100)).await;
    invoke(&pool, json!({"action": "echo"}), LONG)
        .await
        .expect("answer");
    assert_eq!(pool.stats().cold_starts, 0, "provisioned: no cold start");
    assert_eq!(pool.stats().launches, 2);

    // A burst scales out on demand (on-demand environments), then idles back to 2, not 0.
    let mut burst = Vec::new();
    for _ in 0..4 {
        let pool = Arc::clone(&pool);
        burst.push(tokio::spawn(async move {
            invoke(&pool, json!({"action": "sleep", "ms": 200}), LONG).await
        }));
    }
    for task in burst {
        task.await.expect("task").expect("answer");
    }
    assert_eq!(pool.stats().environments, 4);
    assert_eq!(
        types.lock().map(|t| t.get(&3).cloned()).unwrap_or_default(),
        Some("on-demand".to_owned())
    );
    eventually("idle environments stop down to the provisioned two", || {
        probe.killed.load(Ordering::SeqCst) == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(pool.stats().environments, 2, "the minimum is kept");

    // One that exits is replaced without any invocation asking for it.
    let launches = pool.stats().launches;
    let _ = invoke(&pool, json!({"action": "exit"}), LONG).await;
    eventually("the exited environment is replaced", || {
        pool.stats().launches == launches + 1 && pool.stats().environments == 2
    })
    .await;
    pool.shutdown().await;
    assert_eq!(pool.stats().environments, 0);
}

#[tokio::test]
async fn a_provisioned_environment_that_cannot_start_is_not_relaunched_in_a_loop() {
    let probe = Arc::new(Probe::default());
    let launcher = TaskLauncher {
        runtime: scripted(),
        probe,
        fail: Some("cannot start /no/such/bootstrap".into()),
    };
    let mut config = config(3);
    config.provisioned = 2;
    let pool = Pool::new(config, Arc::new(launcher));
    pool.provision();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let launches = pool.stats().launches;
    assert!(
        launches <= 2,
        "{launches} launches: a failing provisioned environment must not be relaunched"
    );
    assert_eq!(
        invoke(&pool, json!({}), LONG).await,
        Err(FunctionError::Init(
            "cannot start /no/such/bootstrap".into()
        )),
        "invocations still get the reason"
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn shutdown_fails_what_runs_and_waits_for_every_environment() {
    let (pool, probe) = pool_with(config(2), scripted());
    let pool = Arc::new(pool);
    let running = {
        let pool = Arc::clone(&pool);
        tokio::spawn(async move { invoke(&pool, json!({"action": "hang"}), LONG).await })
    };
    eventually("it runs", || pool.stats().busy == 1).await;
    pool.shutdown().await;
    assert_eq!(pool.environments(), 0);
    assert_eq!(probe.killed.load(Ordering::SeqCst), 1);
    assert_eq!(
        *probe.launcher_shutdowns.lock().expect("probe"),
        vec![1],
        "the launcher's shutdown hook runs once, after the environment is gone"
    );
    match running.await.expect("task") {
        Err(FunctionError::Crashed(message)) => {
            assert!(message.contains("shutting down"), "{message}")
        }
        other => panic!("expected Crashed, got {other:?}"),
    }
    let later = invoke(&pool, json!({}), LONG).await;
    assert!(matches!(later, Err(FunctionError::Crashed(_))), "{later:?}");
}

#[tokio::test]
async fn the_runtime_api_address_can_be_advertised_under_another_name() {
    let mut config = config(1);
    config.bind = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    assert!(config.runtime_api(9001) == "127.0.0.1:9001");
    config.advertise_host = Some("host.docker.internal".into());
    assert_eq!(config.runtime_api(9001), "host.docker.internal:9001");
    config.advertise_host = None;
    config.bind = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    assert_eq!(config.runtime_api(9001), "[::1]:9001");
}

#[test]
fn log_streams_and_trace_ids_have_lambda_shapes() {
    let stream = crate::log::log_stream_name();
    let (date, id) = stream.split_once("/[$LATEST]").expect("date/[$LATEST]id");
    assert_eq!(date.len(), 10, "{stream}");
    assert_eq!(id.len(), 32, "{stream}");
    let ids: HashSet<String> = (0..3).map(|_| trace_id()).collect();
    assert_eq!(ids.len(), 3, "trace ids are unique");
}

/// A runtime that takes `init` to start before its first `/next`, then behaves like
/// [`scripted`].
fn slow_init(init: Duration) -> RuntimeFn {
    let inner = scripted();
    runtime(move |ctx: RuntimeCtx| {
        let inner = Arc::clone(&inner);
        async move {
            tokio::time::sleep(init).await;
            inner(ctx).await
        }
    })
}

#[tokio::test]
async fn a_cold_start_does_not_count_against_the_timeout() {
    let (pool, _) = pool_with(config(1), slow_init(Duration::from_millis(600)));
    // 400 ms of timeout, 600 ms of init, 200 ms of work: Lambda runs it; so must we.
    let started = Instant::now();
    let answer = invoke(
        &pool,
        json!({"action": "sleep", "ms": 200}),
        Duration::from_millis(400),
    )
    .await
    .expect("init is not part of the timeout");
    assert_eq!(answer["env"], json!(0));
    assert!(started.elapsed() >= Duration::from_millis(800));
    // The timeout still holds once the environment runs the invocation.
    let timed_out = invoke(
        &pool,
        json!({"action": "sleep", "ms": 1000}),
        Duration::from_millis(400),
    )
    .await;
    assert_eq!(
        timed_out,
        Err(FunctionError::Timeout(Duration::from_millis(400)))
    );
    pool.shutdown().await;
}

#[tokio::test]
async fn environments_are_counted_as_starting_then_busy_then_idle() {
    let (pool, _) = pool_with(config(1), slow_init(Duration::from_millis(600)));
    let watch = async {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let s = pool.stats();
            let state = (s.starting, s.busy, s.idle);
            if seen.last() != Some(&state) {
                seen.push(state);
            }
            if state == (0, 0, 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    };
    let (answer, seen) = tokio::join!(
        invoke(&pool, json!({"action": "sleep", "ms": 300}), LONG),
        watch
    );
    answer.expect("an answer");
    // (starting, busy, idle), in the order they were seen (the first poll may come before the
    // launch).
    let from = seen.iter().position(|s| *s == (1, 0, 0)).expect("starting");
    assert_eq!(&seen[from..], [(1, 0, 0), (0, 1, 0), (0, 0, 1)], "{seen:?}");
    pool.shutdown().await;
}

#[tokio::test]
async fn a_cold_start_that_outlasts_the_init_timeout_still_fails_in_time() {
    let mut config = config(1);
    config.init_timeout = Duration::from_millis(300);
    let (pool, _) = pool_with(config, slow_init(Duration::from_secs(30)));
    let started = Instant::now();
    let result = invoke(&pool, json!({}), Duration::from_millis(200)).await;
    assert!(
        matches!(
            result,
            Err(FunctionError::Init(_)) | Err(FunctionError::Timeout(_))
        ),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by timeout + init timeout, took {:?}",
        started.elapsed()
    );
    pool.shutdown().await;
}
