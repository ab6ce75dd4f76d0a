//! WASI commands as Lambda functions: a core module built for wasm32-wasip1 or a component
//! exporting `wasi:cli/run` (wasm32-wasip2). Each invocation gets a fresh instance whose stdin
//! is the event JSON; what it writes on stdout is the response, what it writes on stderr goes to
//! the function log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use trellis_runtime::{BoxFuture, Function, FunctionError, InvokeContext, MAX_PAYLOAD, log};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, InstancePre, Linker, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::cache::Compiled;
use super::limits::{Failure, HOST_GRACE, MemoryBudget, arm_deadline};
use super::live::{Live, Program};
use super::task::spawn_abort_on_drop;
use super::{WasmEngine, WasmError, WasmKind};

/// Store data of a preview-1 command.
pub(crate) struct P1State {
    wasi: WasiP1Ctx,
    budget: MemoryBudget,
}

/// Store data of a preview-2 command component.
pub(crate) struct P2State {
    wasi: WasiCtx,
    table: ResourceTable,
    budget: MemoryBudget,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A command, linked against WASI and pre-instantiated once per version of the code, so that
/// an invocation only allocates and initialises a fresh instance.
#[derive(Clone)]
pub(crate) enum CommandPre {
    P1(InstancePre<P1State>),
    P2(wasmtime_wasi::p2::bindings::CommandPre<P2State>),
}

/// Links a compiled command against WASI (preview 1 for modules, preview 2 for components).
pub(crate) fn prepare(
    engine: &WasmEngine,
    compiled: &Compiled,
    kind: WasmKind,
) -> Result<CommandPre, WasmError> {
    let link = |e: wasmtime::Error| WasmError::Link {
        reason: format!("{e:#}"),
    };
    match (compiled, kind) {
        (Compiled::Module(module), WasmKind::CommandModule) => {
            let mut linker: Linker<P1State> = Linker::new(engine.engine());
            wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s| &mut s.wasi).map_err(link)?;
            let pre = linker.instantiate_pre(module).map_err(link)?;
            Ok(CommandPre::P1(pre))
        }
        (Compiled::Component(component), WasmKind::CommandComponent) => {
            let mut linker = wasmtime::component::Linker::<P2State>::new(engine.engine());
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
            let pre = linker.instantiate_pre(component).map_err(link)?;
            let pre = wasmtime_wasi::p2::bindings::CommandPre::new(pre).map_err(link)?;
            Ok(CommandPre::P2(pre))
        }
        (_, kind) => Err(WasmError::WrongKind { found: kind }),
    }
}

/// A WASI command run as a Lambda function (see the module documentation).
pub struct WasmFunction {
    name: Arc<str>,
    live: Live<CommandPre>,
    engine: WasmEngine,
    env: Vec<(String, String)>,
    argv0: String,
    memory_mb: u32,
    timeout: Duration,
}

impl WasmFunction {
    pub(crate) fn new(
        name: Arc<str>,
        live: Live<CommandPre>,
        engine: WasmEngine,
        env: Vec<(String, String)>,
        argv0: String,
        memory_mb: u32,
        timeout: Duration,
    ) -> WasmFunction {
        WasmFunction {
            name,
            live,
            engine,
            env,
            argv0,
            memory_mb,
            timeout,
        }
    }

    async fn run(&self, payload: Bytes, ctx: InvokeContext) -> Result<Bytes, FunctionError> {
        let waited = Instant::now();
        let program: Arc<Program<CommandPre>> = self.live.get().await;
        // Loading new code is this environment's init, which Lambda does not count against the
        // invocation's timeout: the deadline moves by the time spent waiting for it (nothing,
        // unless the file just changed).
        let deadline = ctx.deadline + waited.elapsed();
        let started = Instant::now();
        log::start(&self.name, &ctx.request_id);

        let stdout = super::stdio::Capture::new(MAX_PAYLOAD);
        let stderr = super::stdio::LogLines::new(Arc::clone(&self.name));
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdin(MemoryInputPipe::new(payload))
            .stdout(super::stdio::Stream(stdout.clone()))
            .stderr(super::stdio::Stream(stderr.clone()))
            .envs(&self.env)
            .arg(&self.argv0);

        let run = run_command(
            self.engine.engine().clone(),
            program.pre.clone(),
            wasi,
            self.memory_mb,
            deadline,
        );
        // A task of its own, so that concurrent invocations run on all worker threads; aborted
        // (with its instance) if the caller goes away.
        let task = spawn_abort_on_drop(run);
        let hard_deadline = tokio::time::Instant::from_std(deadline + HOST_GRACE);
        let outcome = match tokio::time::timeout_at(hard_deadline, task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => Err(Failure::Host(format!("the wasm host task failed: {panic}"))),
            Err(_elapsed) => Err(Failure::Timeout),
        };
        stderr.finish();

        let result = match outcome {
            Ok(()) => {
                let (bytes, total) = stdout.take();
                if total > MAX_PAYLOAD {
                    Err(FunctionError::ResponseTooLarge(total))
                } else {
                    Ok(bytes)
                }
            }
            // The reason goes to the function log where the invocation's caller reports the
            // error (`LambdaTarget`, `trellis invoke`), once; the guest's own stderr is
            // already there.
            Err(Failure::Timeout) => Err(FunctionError::Timeout(self.timeout)),
            Err(failure) => {
                let message = failure.message(stderr.tail().as_deref());
                Err(match failure {
                    Failure::Host(_) => FunctionError::Crashed(message),
                    _ => FunctionError::Unhandled {
                        error_type: failure.error_type().to_owned(),
                        message,
                    },
                })
            }
        };
        log::end(&self.name, &ctx.request_id);
        log::report(
            &self.name,
            &ctx.request_id,
            started.elapsed(),
            self.memory_mb,
            program.take_init(),
        );
        result
    }
}

impl Function for WasmFunction {
    fn name(&self) -> &str {
        &self.name
    }

    /// Runs one invocation in a fresh instance, stopped at `ctx.deadline` (moved later by the
    /// time spent loading the code if the file just changed).
    fn invoke(
        &self,
        payload: Bytes,
        ctx: InvokeContext,
    ) -> BoxFuture<'_, Result<Bytes, FunctionError>> {
        Box::pin(self.run(payload, ctx))
    }
}

/// Instantiates a fresh instance and runs its entry point to completion, the exit, a trap or
/// the deadline.
async fn run_command(
    engine: Engine,
    pre: CommandPre,
    mut wasi: WasiCtxBuilder,
    memory_mb: u32,
    deadline: Instant,
) -> Result<(), Failure> {
    match pre {
        CommandPre::P1(pre) => {
            let state = P1State {
                wasi: wasi.build_p1(),
                budget: MemoryBudget::new(memory_mb),
            };
            let mut store = Store::new(&engine, state);
            store.limiter(|s| &mut s.budget);
            arm_deadline(&mut store, deadline);
            let result = async {
                let instance = pre.instantiate_async(&mut store).await?;
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                start.call_async(&mut store, ()).await
            }
            .await;
            settle(result, &store.data().budget, memory_mb)
        }
        CommandPre::P2(pre) => {
            let state = P2State {
                wasi: wasi.build(),
                table: ResourceTable::new(),
                budget: MemoryBudget::new(memory_mb),
            };
            let mut store = Store::new(&engine, state);
            store.limiter(|s| &mut s.budget);
            arm_deadline(&mut store, deadline);
            let result = async {
                let command = pre.instantiate_async(&mut store).await?;
                command.wasi_cli_run().call_run(&mut store).await
            }
            .await;
            match result {
                // `run` returned `err`: the program's way of saying "exit status 1".
                Ok(Err(())) => Err(Failure::Exit(1)),
                Ok(Ok(())) => Ok(()),
                Err(e) => settle(Err(e), &store.data().budget, memory_mb),
            }
        }
    }
}

/// A call's result as a [`Failure`]; `exit(0)` is a success.
fn settle(
    result: wasmtime::Result<()>,
    budget: &MemoryBudget,
    memory_mb: u32,
) -> Result<(), Failure> {
    match result {
        Ok(()) => Ok(()),
        Err(e) => match Failure::of(&e, budget, memory_mb) {
            Failure::Exit(0) => Ok(()),
            failure => Err(failure),
        },
    }
}
