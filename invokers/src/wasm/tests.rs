//! Tests with the real sample functions from `sample-functions/` (built on demand for
//! wasm32-wasip1 and wasm32-wasip2; each test prints why it is skipped when a rustup target is
//! missing), plus small hand-written WAT modules where a test needs a second version of code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use trellis_router::target::{CallContext, TargetError, full};
use trellis_runtime::{FunctionError, InvokeContext, MAX_PAYLOAD};

use super::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Builds the sample workspace for `target` once per test process (cargo makes it a no-op when
/// nothing changed) and returns the path of `package`'s .wasm, or `None` with the reason
/// printed.
fn sample(target: &str, package: &str) -> Option<PathBuf> {
    static BUILT: Mutex<Vec<(String, Result<(), String>)>> = Mutex::new(Vec::new());
    let dir = repo().join("sample-functions");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|(t, _)| t == target) {
        let packages: &[&str] = match target {
            "wasm32-wasip1" => &["hello-wasm"],
            _ => &["hello-wasm", "hello-http"],
        };
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .arg("build")
            .arg("--release")
            .arg("--manifest-path")
            .arg(dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(dir.join("target"))
            .args(["--target", target]);
        for p in packages {
            cargo.args(["-p", p]);
        }
        // The outer `cargo test`'s settings are for the host build, not for this one.
        for var in [
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
        ] {
            cargo.env_remove(var);
        }
        let result = match cargo.output() {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "building the samples for {target} failed (is the rustup target installed? \
                 `rustup target add {target}`):\n{}",
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => Err(format!("cannot run cargo: {e}")),
        };
        built.push((target.to_owned(), result));
    }
    let result = built
        .iter()
        .find(|(t, _)| t == target)
        .map(|(_, r)| r.clone());
    match result {
        Some(Ok(())) => {
            let path = dir
                .join("target")
                .join(target)
                .join("release")
                .join(format!("{package}.wasm"));
            if path.is_file() {
                Some(path)
            } else {
                println!("SKIPPED: {} was not produced", path.display());
                None
            }
        }
        Some(Err(reason)) => {
            println!("SKIPPED: {reason}");
            None
        }
        None => None,
    }
}

/// A fresh, empty directory under the system temp dir.
fn temp_dir(label: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "trellis-wasm-test-{}-{label}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// One engine for the tests that do not look at the cache, sharing one cache directory so that
/// each sample is compiled once per test run (compiling is slow in debug builds).
fn shared_engine() -> &'static WasmEngine {
    static ENGINE: OnceLock<WasmEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = WasmEngine::new(repo().join("target").join("tmp").join("wasm-test-cache"))
            .expect("engine");
        println!("engine: {}", engine.allocator());
        engine
    })
}

fn function_config(name: &str, code: &Path, timeout: u32, memory: u32) -> trellis_config::Function {
    trellis_config::Function {
        name: name.to_owned(),
        arn: format!("arn:aws:lambda:us-west-2:123456789012:function:{name}"),
        runtime: trellis_config::FunctionRuntime::Wasm,
        code: Some(code.to_path_buf()),
        command: Vec::new(),
        image: None,
        build: None,
        timeout_seconds: timeout,
        memory_size_mb: memory,
        environment: [("GREETING".to_owned(), "hello".to_owned())].into(),
        concurrency: 10,
        provisioned: 0,
        idle_timeout_seconds: 600,
        at: Default::default(),
    }
}

fn load_function(engine: &WasmEngine, config: &trellis_config::Function) -> Arc<dyn Function> {
    let loaded = load(engine, config, "us-west-2").expect("load");
    println!("{}", loaded.description);
    match loaded.loaded {
        Loaded::Function(f) => f,
        Loaded::Http(_) => panic!("expected a command, got {}", loaded.kind),
    }
}

fn v2_event(method: &str, path: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "version": "2.0",
            "path": path,
            "method": method,
            "headers": {"host": ["svc.example"]},
            "queryStringParameters": {},
            "body": "",
            "isBase64Encoded": false,
            "requestContext": {"region": "us-west-2", "timeEpoch": "0"}
        })
        .to_string(),
    )
}

fn v1_event(method: &str, raw_path: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "raw_path": raw_path,
            "method": method,
            "headers": {"host": "svc.example"},
            "query_string_parameters": {},
            "body": "",
            "is_base64_encoded": false
        })
        .to_string(),
    )
}

async fn invoke(
    function: &Arc<dyn Function>,
    event: Bytes,
    timeout: Duration,
) -> Result<Bytes, FunctionError> {
    function
        .invoke(event, InvokeContext::new("test-request", timeout))
        .await
}

fn body_of(response: &Bytes) -> String {
    let json: serde_json::Value = serde_json::from_slice(response).expect("response JSON");
    assert_eq!(json["statusCode"], 200, "{json}");
    json["body"].as_str().unwrap_or_default().to_owned()
}

fn hello_module() -> Option<(&'static WasmEngine, Arc<dyn Function>)> {
    let path = sample("wasm32-wasip1", "hello-wasm")?;
    let engine = shared_engine();
    let function = load_function(engine, &function_config("hello-function", &path, 1, 64));
    Some((engine, function))
}

#[tokio::test]
async fn wasm_kinds_are_told_apart() {
    let Some(module) = sample("wasm32-wasip1", "hello-wasm") else {
        return;
    };
    let Some(component) = sample("wasm32-wasip2", "hello-wasm") else {
        return;
    };
    let Some(proxy) = sample("wasm32-wasip2", "hello-http") else {
        return;
    };
    let engine = shared_engine();
    for (path, kind) in [
        (module, WasmKind::CommandModule),
        (component, WasmKind::CommandComponent),
        (proxy, WasmKind::HttpProxy),
    ] {
        let loaded = load(engine, &function_config("f", &path, 3, 128), "us-west-2").expect("load");
        println!("{}", loaded.description);
        assert_eq!(loaded.kind, kind, "{}", path.display());
        assert!(loaded.description.starts_with(&format!("f: {kind}, ")));
        match (&loaded.loaded, kind) {
            (Loaded::Http(_), WasmKind::HttpProxy) => {}
            (Loaded::Function(_), WasmKind::CommandModule | WasmKind::CommandComponent) => {}
            _ => panic!("wrong backend for {kind}"),
        }
    }

    let dir = temp_dir("kinds");
    let text = dir.join("not.wasm");
    std::fs::write(&text, "#!/bin/sh\necho hi\n").expect("write");
    let err = load(engine, &function_config("f", &text, 3, 128), "r").err();
    assert!(matches!(err, Some(WasmError::NotWasm { .. })), "{err:?}");
    let reactor = dir.join("reactor.wasm");
    std::fs::write(
        &reactor,
        wat::parse_str("(module (func (export \"f\")))").expect("wat"),
    )
    .expect("write");
    let err = load(engine, &function_config("f", &reactor, 3, 128), "r").err();
    println!(
        "reactor: {}",
        err.as_ref().map(|e| e.to_string()).unwrap_or_default()
    );
    assert!(
        matches!(err, Some(WasmError::Unsupported { .. })),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn wasm_hello_answers_v2_and_v1_events() {
    let Some((_, function)) = hello_module() else {
        return;
    };
    let out = invoke(
        &function,
        v2_event("GET", "/to-function?x=1"),
        Duration::from_secs(3),
    )
    .await
    .expect("invoke");
    assert_eq!(
        body_of(&out),
        "Hello from the function at path \"/to-function\" (method GET)\n"
    );
    let out = invoke(
        &function,
        v1_event("POST", "/v1/path?q=2"),
        Duration::from_secs(3),
    )
    .await
    .expect("invoke");
    assert_eq!(
        body_of(&out),
        "Hello from the function at path \"/v1/path\" (method POST)\n"
    );
    let out = invoke(&function, v2_event("GET", "/"), Duration::from_secs(3))
        .await
        .expect("invoke");
    assert_eq!(body_of(&out), "Hello from the function\n");

    // Per-invocation cost, for the record (not asserted: benchmarks measure performance).
    let n = 50;
    let started = Instant::now();
    for _ in 0..n {
        invoke(&function, v2_event("GET", "/"), Duration::from_secs(3))
            .await
            .expect("invoke");
    }
    println!(
        "MEASURED: {n} sequential invocations of hello-wasm (wasip1): {:.2} ms each",
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(n)
    );
}

#[tokio::test]
async fn wasm_command_component_answers_too() {
    let Some(path) = sample("wasm32-wasip2", "hello-wasm") else {
        return;
    };
    let function = load_function(shared_engine(), &function_config("hello-p2", &path, 3, 128));
    let out = invoke(&function, v2_event("PUT", "/p2"), Duration::from_secs(3))
        .await
        .expect("invoke");
    assert_eq!(
        body_of(&out),
        "Hello from the function at path \"/p2\" (method PUT)\n"
    );
    let err = invoke(&function, v2_event("GET", "/panic"), Duration::from_secs(3)).await;
    println!("wasip2 panic: {err:?}");
    assert!(matches!(err, Err(FunctionError::Unhandled { .. })));
}

#[tokio::test]
async fn wasm_panic_is_unhandled_with_the_panic_message() {
    let Some((_, function)) = hello_module() else {
        return;
    };
    let err = invoke(&function, v2_event("GET", "/panic"), Duration::from_secs(3)).await;
    println!("panic: {err:?}");
    match err {
        Err(FunctionError::Unhandled {
            error_type,
            message,
        }) => {
            assert_eq!(error_type, "Runtime.Trap");
            assert!(
                message.contains("boom: the function panicked on purpose"),
                "{message}"
            );
        }
        other => panic!("expected Unhandled, got {other:?}"),
    }
    // The same function answers the next request normally.
    let out = invoke(&function, v2_event("GET", "/"), Duration::from_secs(3)).await;
    assert!(out.is_ok(), "{out:?}");
}

#[tokio::test]
async fn wasm_exit_status_is_an_exit_error() {
    let Some((_, function)) = hello_module() else {
        return;
    };
    let err = invoke(&function, v2_event("GET", "/exit"), Duration::from_secs(3)).await;
    println!("exit: {err:?}");
    match err {
        Err(FunctionError::Unhandled {
            error_type,
            message,
        }) => {
            assert_eq!(error_type, "Runtime.ExitError");
            assert!(message.contains("exit status 3"), "{message}");
        }
        other => panic!("expected Unhandled, got {other:?}"),
    }
}

#[tokio::test]
async fn wasm_infinite_loop_times_out() {
    let Some((_, function)) = hello_module() else {
        return;
    };
    let started = Instant::now();
    let err = invoke(&function, v2_event("GET", "/loop"), Duration::from_secs(1)).await;
    let elapsed = started.elapsed();
    println!("MEASURED: /loop with a 1 s timeout stopped after {elapsed:?}: {err:?}");
    assert_eq!(err, Err(FunctionError::Timeout(Duration::from_secs(1))));
    // Generous bound: the point is that the loop is stopped, not how precisely.
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    let out = invoke(&function, v2_event("GET", "/"), Duration::from_secs(3)).await;
    assert!(out.is_ok(), "{out:?}");
}

#[tokio::test]
async fn wasm_out_of_memory_names_the_limit() {
    let Some((_, function)) = hello_module() else {
        return;
    };
    let err = invoke(&function, v2_event("GET", "/oom"), Duration::from_secs(3)).await;
    println!("oom: {err:?}");
    match err {
        Err(FunctionError::Unhandled {
            error_type,
            message,
        }) => {
            assert_eq!(error_type, "Runtime.OutOfMemory");
            assert!(message.contains("out of memory: limit 64 MB"), "{message}");
        }
        other => panic!("expected Unhandled, got {other:?}"),
    }
    let out = invoke(&function, v2_event("GET", "/"), Duration::from_secs(3)).await;
    assert!(out.is_ok(), "{out:?}");
}

#[tokio::test]
async fn wasm_garbage_output_is_returned_as_is() {
    let Some((_, function)) = hello_module() else {
        return;
    };
    let out = invoke(
        &function,
        v2_event("GET", "/garbage"),
        Duration::from_secs(3),
    )
    .await;
    // Decoding (and the 502) is the event codec's job.
    assert_eq!(out, Ok(Bytes::from_static(b"this is not JSON {")));
}

#[tokio::test]
async fn wasm_oversized_response_is_refused() {
    let Some((_, function)) = hello_module() else {
        return;
    };
    let err = invoke(&function, v2_event("GET", "/big"), Duration::from_secs(3)).await;
    match err {
        Err(FunctionError::ResponseTooLarge(size)) => {
            println!("big: {size} bytes");
            assert!(size > MAX_PAYLOAD);
        }
        other => panic!(
            "expected ResponseTooLarge, got {:?}",
            other.map(|b| b.len())
        ),
    }
}

#[tokio::test]
async fn wasm_lambda_environment_is_set() {
    let Some((_, function)) = hello_module() else {
        return;
    };
    let out = invoke(&function, v2_event("GET", "/env"), Duration::from_secs(3))
        .await
        .expect("invoke");
    let body = body_of(&out);
    assert!(
        body.contains("AWS_LAMBDA_FUNCTION_NAME=hello-function\n"),
        "{body}"
    );
    assert!(body.contains("GREETING=hello\n"), "{body}");

    let env = limits::lambda_environment(
        &function_config("f", Path::new("x/f.wasm"), 3, 256),
        "eu-west-1",
        "f.wasm",
    );
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), Some("256"));
    assert_eq!(get("AWS_LAMBDA_FUNCTION_VERSION"), Some("$LATEST"));
    assert_eq!(get("AWS_REGION"), Some("eu-west-1"));
    assert_eq!(get("AWS_DEFAULT_REGION"), Some("eu-west-1"));
    assert_eq!(get("AWS_LAMBDA_LOG_GROUP_NAME"), Some("/aws/lambda/f"));
    assert!(get("AWS_LAMBDA_LOG_STREAM_NAME").is_some_and(|s| s.contains("/[$LATEST]")));
    assert_eq!(get("_HANDLER"), Some("f.wasm"));
    assert!(get("AWS_EXECUTION_ENV").is_some());
}

#[tokio::test]
async fn wasm_restart_loads_from_cache() {
    let Some(path) = sample("wasm32-wasip1", "hello-wasm") else {
        return;
    };
    let cache = temp_dir("cache");
    let config = function_config("cached", &path, 3, 128);

    let first = WasmEngine::new(&cache).expect("engine");
    let loaded = load(&first, &config, "us-west-2").expect("first load");
    println!("MEASURED first start:  {}", loaded.description);
    assert!(
        matches!(loaded.origin, Origin::Compiled(_)),
        "{:?}",
        loaded.origin
    );
    let compiled = loaded.origin.duration();
    drop(loaded);
    drop(first);

    // A new engine is what a restarted Trellis has.
    let second = WasmEngine::new(&cache).expect("engine");
    let loaded = load(&second, &config, "us-west-2").expect("second load");
    println!("MEASURED second start: {}", loaded.description);
    assert!(
        matches!(loaded.origin, Origin::Cached(_)),
        "{:?}",
        loaded.origin
    );
    println!(
        "MEASURED: compile {compiled:?}, cache load {:?}, pre-instantiate {:?}",
        loaded.origin.duration(),
        loaded.prepare_time
    );
    let Loaded::Function(function) = loaded.loaded else {
        panic!("expected a function");
    };
    let out = invoke(&function, v2_event("GET", "/"), Duration::from_secs(3))
        .await
        .expect("invoke");
    assert_eq!(body_of(&out), "Hello from the function\n");

    let entries: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].ends_with(".cwasm"));
    let _ = std::fs::remove_dir_all(&cache);
}

/// A command module written by hand: prints `{"statusCode":200,"body":"<text>"}`.
fn wat_command(text: &str) -> Vec<u8> {
    let json = format!("{{\"statusCode\":200,\"body\":\"{text}\"}}");
    let escaped = json.replace('\\', "\\\\").replace('"', "\\\"");
    let wat = format!(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write"
                (func $fd_write (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 64) "{escaped}")
            (func (export "_start")
                (i32.store (i32.const 0) (i32.const 64))
                (i32.store (i32.const 4) (i32.const {len}))
                (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        len = json.len()
    );
    wat::parse_str(wat).expect("wat")
}

#[tokio::test]
async fn wasm_code_change_is_picked_up() {
    let Some(hello) = sample("wasm32-wasip1", "hello-wasm") else {
        return;
    };
    let Some(proxy) = sample("wasm32-wasip2", "hello-http") else {
        return;
    };
    let dir = temp_dir("reload");
    let code = dir.join("function.wasm");
    std::fs::copy(&hello, &code).expect("copy");
    let function = load_function(
        shared_engine(),
        &function_config("reloading", &code, 3, 128),
    );
    let ask = || invoke(&function, v2_event("GET", "/"), Duration::from_secs(3));
    assert_eq!(
        body_of(&ask().await.expect("v1")),
        "Hello from the function\n"
    );

    // A file just written may still be being written: the current code serves until it has
    // been left alone for the settle time.
    std::fs::write(&code, wat_command("version two")).expect("write");
    assert_eq!(
        body_of(&ask().await.expect("settling")),
        "Hello from the function\n"
    );
    let settled = || tokio::time::sleep(super::live::SETTLE + Duration::from_millis(50));
    // A rebuild, settled: the next invocation runs the new code.
    settled().await;
    assert_eq!(body_of(&ask().await.expect("v2")), "version two");

    // A broken file (a build that failed half-way): logged, the previous code keeps serving.
    std::fs::write(&code, b"\0asm\x01\0\0\0garbage").expect("write");
    settled().await;
    assert_eq!(body_of(&ask().await.expect("kept")), "version two");
    // A different kind of program cannot replace a command in place either.
    std::fs::copy(&proxy, &code).expect("copy");
    settled().await;
    assert_eq!(body_of(&ask().await.expect("kept")), "version two");

    // Fixed again.
    std::fs::write(&code, wat_command("version three")).expect("write");
    settled().await;
    assert_eq!(body_of(&ask().await.expect("v3")), "version three");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_concurrent_invocations_run_in_parallel() {
    let Some((_, function)) = hello_module() else {
        return;
    };
    // Four invocations that each run until their 1 s timeout: one after the other they would
    // take 4 s; concurrently, about 1 s.
    let started = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let function = Arc::clone(&function);
            tokio::spawn(async move {
                invoke(&function, v2_event("GET", "/loop"), Duration::from_secs(1)).await
            })
        })
        .collect();
    for task in tasks {
        let result = task.await.expect("join");
        assert_eq!(result, Err(FunctionError::Timeout(Duration::from_secs(1))));
    }
    let elapsed = started.elapsed();
    println!("MEASURED: 4 concurrent 1 s loops took {elapsed:?}");
    assert!(elapsed < Duration::from_millis(3000), "{elapsed:?}");

    // And many quick ones at once all answer.
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let function = Arc::clone(&function);
            tokio::spawn(async move {
                invoke(
                    &function,
                    v2_event("GET", &format!("/n{i}")),
                    Duration::from_secs(10),
                )
                .await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task.await.expect("join").expect("invoke");
        assert_eq!(
            body_of(&out),
            format!("Hello from the function at path \"/n{i}\" (method GET)\n")
        );
    }
}

fn call_context() -> CallContext<'static> {
    CallContext {
        request_id: "http-request",
        host: "svc.trellis.localhost",
        client: "127.0.0.1:50000".parse().expect("addr"),
        listener_port: 8080,
        scheme: "http",
        target_group_arn: "arn:tg",
        service_arn: "arn:svc",
        service_network_arn: None,
        source_vpc_arn: None,
        caller: None,
    }
}

#[tokio::test]
async fn wasm_http_component_answers_over_the_target_interface() {
    let Some(path) = sample("wasm32-wasip2", "hello-http") else {
        return;
    };
    let loaded = load(
        shared_engine(),
        &function_config("hello-http", &path, 1, 128),
        "us-west-2",
    )
    .expect("load");
    println!("{}", loaded.description);
    let Loaded::Http(target) = loaded.loaded else {
        panic!("expected a wasi:http target");
    };
    assert_eq!(
        target.address(),
        "arn:aws:lambda:us-west-2:123456789012:function:hello-http"
    );

    let request = ::http::Request::get("/some/path?x=1")
        .header("host", "svc.trellis.localhost")
        .body(full(Bytes::new()))
        .expect("request");
    let response = target.call(call_context(), request).await.expect("call");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/plain"[..])
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        &body[..],
        b"Hello from the wasi:http function at path \"/some/path\"\n"
    );
    // Cost of a warm request (the first one above paid for the lazy parts of start-up).
    let n = 20;
    let started = Instant::now();
    for _ in 0..n {
        let request = ::http::Request::get("/")
            .header("host", "svc.trellis.localhost")
            .body(full(Bytes::new()))
            .expect("request");
        let response = target.call(call_context(), request).await.expect("call");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&body[..], b"Hello from the wasi:http function\n");
    }
    println!(
        "MEASURED: {n} sequential wasi:http requests: {:.2} ms each",
        started.elapsed().as_secs_f64() * 1000.0 / f64::from(n)
    );

    let request = ::http::Request::post("/echo")
        .header("host", "svc.trellis.localhost")
        .body(full("echo me"))
        .expect("request");
    let response = target.call(call_context(), request).await.expect("call");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"echo me");

    let request = ::http::Request::get("/loop")
        .body(full(Bytes::new()))
        .expect("request");
    let started = Instant::now();
    let err = target.call(call_context(), request).await.err();
    println!(
        "MEASURED: wasi:http /loop with a 1 s timeout: {:?} {err:?}",
        started.elapsed()
    );
    assert!(matches!(err, Some(TargetError::Timeout { .. })), "{err:?}");
}
