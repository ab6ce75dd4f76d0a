//! `wasi:http/proxy` components (what `wasmtime serve` and Spin run) as targets: the component
//! gets the HTTP request itself, with no Lambda event in between, and its response is streamed
//! back as it writes it. Each request gets a fresh instance with the function's memory limit
//! and timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use trellis_router::Target;
use trellis_router::target::{Body, BoxFuture, CallContext, TargetError, boxed};
use trellis_runtime::log;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::cache::Compiled;
use super::limits::{Failure, HOST_GRACE, MemoryBudget, arm_deadline};
use super::live::Live;
use super::stdio::{LogLines, Stream};
use super::task::spawn_abort_on_drop;
use super::{WasmEngine, WasmError, WasmKind};

/// Store data of one request's instance.
pub(crate) struct HttpState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    budget: MemoryBudget,
}

impl WasiView for HttpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HttpState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// Links a wasi:http proxy component and pre-instantiates it. All of WASI preview 2 is linked,
/// not only the `proxy` world's imports, because components built with Rust's std for
/// wasm32-wasip2 also import `wasi:cli/environment`, `wasi:filesystem` and friends (what
/// `wasmtime serve -Scli` does).
pub(crate) fn prepare(
    engine: &WasmEngine,
    compiled: &Compiled,
    kind: WasmKind,
) -> Result<ProxyPre<HttpState>, WasmError> {
    let (Compiled::Component(component), WasmKind::HttpProxy) = (compiled, kind) else {
        return Err(WasmError::WrongKind { found: kind });
    };
    let link = |e: wasmtime::Error| WasmError::Link {
        reason: format!("{e:#}"),
    };
    let mut linker = wasmtime::component::Linker::<HttpState>::new(engine.engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link)?;
    let pre = linker.instantiate_pre(component).map_err(link)?;
    ProxyPre::new(pre).map_err(link)
}

/// A wasi:http proxy component behind a LAMBDA target group (see the module documentation).
pub struct WasmHttpTarget {
    name: Arc<str>,
    arn: String,
    live: Live<ProxyPre<HttpState>>,
    engine: WasmEngine,
    env: Vec<(String, String)>,
    memory_mb: u32,
    timeout: Duration,
    /// Where the console reads the component's last requests.
    activity: Arc<trellis_runtime::activity::FunctionActivity>,
    /// `trellis_function_invocations_total` and `…_duration_seconds`, as for other functions.
    metrics: Arc<trellis_router::metrics::FunctionMetrics>,
}

/// How one request's instance ended, as the spawned task reports it.
type Outcome = Result<(), (Failure, String)>;

impl WasmHttpTarget {
    pub(crate) fn new(
        name: Arc<str>,
        arn: String,
        live: Live<ProxyPre<HttpState>>,
        engine: WasmEngine,
        env: Vec<(String, String)>,
        memory_mb: u32,
        timeout: Duration,
    ) -> WasmHttpTarget {
        WasmHttpTarget {
            activity: trellis_runtime::activity::global().function(&name),
            metrics: trellis_router::metrics::global().function(&name),
            name,
            arn,
            live,
            engine,
            env,
            memory_mb,
            timeout,
        }
    }

    fn failed(&self, reason: impl Into<String>) -> TargetError {
        TargetError::Function {
            target: self.name.to_string(),
            reason: reason.into(),
        }
    }

    async fn handle(
        &self,
        ctx: CallContext<'_>,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, TargetError> {
        let program = self.live.get().await;
        let started = Instant::now();
        let deadline = started + self.timeout;
        log::start(&self.name, ctx.request_id);

        // A proxy's stdout is not its response: both streams go to the function log.
        let logs = LogLines::new(Arc::clone(&self.name));
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(Stream(logs.clone()))
            .stderr(Stream(logs.clone()))
            .envs(&self.env);
        let state = HttpState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            budget: MemoryBudget::new(self.memory_mb),
        };
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.budget);
        arm_deadline(&mut store, deadline);

        let scheme = if ctx.scheme == "https" {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let resources = store
            .data_mut()
            .http()
            .new_incoming_request(scheme, incoming(request));
        let request =
            resources.map_err(|e| self.failed(format!("cannot pass the request: {e:#}")))?;
        let response_out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(|e| self.failed(format!("cannot prepare the response: {e:#}")))?;

        let pre = program.pre.clone();
        let memory_mb = self.memory_mb;
        let (name, request_id) = (Arc::clone(&self.name), ctx.request_id.to_string());
        let init = program.take_init();
        let hard_deadline = tokio::time::Instant::from_std(deadline + HOST_GRACE);
        // The handler runs on a task of its own because it may go on writing the body after
        // it has sent the response head; the deadline bounds it either way.
        let task = spawn_abort_on_drop(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, response_out)
                    .await
            };
            let outcome: Outcome = match tokio::time::timeout_at(hard_deadline, run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => {
                    let failure = Failure::of(&e, &store.data().budget, memory_mb);
                    Err((failure.clone(), failure.message(logs.tail().as_deref())))
                }
                Err(_elapsed) => Err((Failure::Timeout, Failure::Timeout.message(None))),
            };
            drop(store);
            logs.finish();
            if let Err((failure, message)) = &outcome {
                log::line(
                    &name,
                    &format!(
                        "RequestId: {request_id} Error: {message} ({})",
                        failure.error_type()
                    ),
                );
            }
            log::end(&name, &request_id);
            log::report(&name, &request_id, started.elapsed(), memory_mb, init);
            outcome
        });

        match receiver.await {
            Ok(Ok(response)) => {
                task.detach();
                Ok(response.map(boxed))
            }
            Ok(Err(code)) => Err(self.failed(format!(
                "the component answered with an error instead of a response: {code:?}"
            ))),
            // The sender went away with the store: the handler ended without answering.
            Err(_) => match task.await {
                Ok(Err((Failure::Timeout, _))) => Err(TargetError::Timeout {
                    target: self.name.to_string(),
                    timeout: self.timeout,
                }),
                Ok(Err((_, message))) => Err(self.failed(message)),
                Ok(Ok(())) => Err(self.failed(
                    "the component returned without sending a response (it never called \
                     `response-outparam.set`)",
                )),
                Err(e) => Err(self.failed(format!("the wasm host task failed: {e}"))),
            },
        }
    }
}

/// The router's request as wasi:http takes it: body errors converted, and an authority
/// guaranteed (wasi:http requires one; HTTP/1.0 clients may send neither an absolute URI nor
/// a `Host`).
fn incoming(
    request: http::Request<Body>,
) -> http::Request<impl hyper::body::Body<Data = bytes::Bytes, Error = wasmtime_wasi_http::Error>> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.authority().is_none() && !parts.headers.contains_key(http::header::HOST) {
        parts.headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
    }
    let body = body.map_err(|e| match e.downcast::<hyper::Error>() {
        Ok(e) => wasmtime_wasi_http::Error::Hyper(*e),
        Err(e) => wasmtime_wasi_http::Error::InternalError(Some(e.to_string())),
    });
    http::Request::from_parts(parts, body)
}

impl Target for WasmHttpTarget {
    fn call<'a>(
        &'a self,
        ctx: CallContext<'a>,
        request: http::Request<Body>,
    ) -> BoxFuture<'a, Result<http::Response<Body>, TargetError>> {
        Box::pin(async move {
            let started = Instant::now();
            let result = self.handle(ctx, request).await;
            // Recorded when the response head is sent (the REPORT follows its body), with the
            // outcomes of `trellis_router::metrics::OUTCOMES`: a component that fails without
            // answering (a trap, an exit, no response set) has crashed.
            let (outcome, status, error) = match &result {
                Ok(response) => ("success", response.status().as_u16(), None),
                Err(e) => (
                    match e {
                        TargetError::Timeout { .. } => "timeout",
                        _ => "crashed",
                    },
                    trellis_router::rescue::target_status(e).as_u16(),
                    Some(e.to_string()),
                ),
            };
            let took = started.elapsed();
            self.metrics.invocation(outcome, took.as_secs_f64());
            self.activity
                .answered(ctx.request_id, took, outcome, status, error.as_deref());
            result
        })
    }

    /// The function's ARN, as the access log shows it for Lambda targets.
    fn address(&self) -> String {
        if self.arn.is_empty() {
            self.name.to_string()
        } else {
            self.arn.clone()
        }
    }
}
