//! WebAssembly functions, run in-process with wasmtime.
//!
//! A `runtime: wasm` function's `code` is one of three kinds of binary, told apart by
//! inspecting it (see [`WasmKind`]):
//!
//! - a WASI **command module** (wasm32-wasip1) or **command component** (wasm32-wasip2,
//!   exporting `wasi:cli/run`): a Lambda function ([`WasmFunction`]) that reads the event JSON
//!   on stdin and writes the response JSON on stdout;
//! - a **`wasi:http/proxy` component** (exporting `wasi:http/incoming-handler`, what
//!   `wasmtime serve` and Spin run): a router target ([`WasmHttpTarget`]) that gets the HTTP
//!   request itself.
//!
//! Every binary is compiled once per content (the artifact is cached on disk, so a restart
//! does not compile again), pre-instantiated once per version of the code, and instantiated
//! fresh for every invocation, with `memorySize` as its linear-memory limit and `timeout`
//! enforced by epoch interruption. When the file changes, the next invocation loads the new
//! code; if the new code cannot be loaded, the previous one keeps serving.

mod cache;
mod command;
mod engine;
mod http;
mod limits;
mod live;
mod stdio;
mod task;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use trellis_router::Target;
use trellis_runtime::Function;

pub use cache::Origin;
pub use command::WasmFunction;
pub use engine::{EPOCH_TICK, WasmEngine};
pub use http::WasmHttpTarget;

/// What kind of program a wasm binary is, as found by inspecting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmKind {
    /// A core module with a `_start` export, importing WASI preview 1 (wasm32-wasip1).
    CommandModule,
    /// A component exporting `wasi:cli/run` (a `main` built for wasm32-wasip2).
    CommandComponent,
    /// A component exporting `wasi:http/incoming-handler` (the `wasi:http/proxy` world).
    HttpProxy,
}

impl std::fmt::Display for WasmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WasmKind::CommandModule => "wasm command module (wasip1)",
            WasmKind::CommandComponent => "wasm command component (wasip2, wasi:cli/run)",
            WasmKind::HttpProxy => "wasi:http proxy component (wasi:http/incoming-handler)",
        })
    }
}

/// Why a wasm function cannot be loaded. Each message names the file and says what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WasmError {
    /// The wasmtime engine could not be created.
    #[error("cannot set up the WebAssembly engine: {reason}")]
    Engine { reason: String },
    /// The function has no `code`.
    #[error("function \"{function}\" has no `code` (the path of its .wasm file)")]
    NoCode { function: String },
    /// The file cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    /// The file does not start with the wasm magic number.
    #[error(
        "{} is not a WebAssembly binary (no \"\\0asm\" header); build it with \
         `cargo build --target wasm32-wasip1` (or wasip2) and point `code` at the .wasm file",
        path.display()
    )]
    NotWasm { path: PathBuf },
    /// A WebAssembly binary of a kind Trellis cannot run as a function.
    #[error("{} cannot run as a function: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    /// Validation or compilation failed.
    #[error("{} does not compile: {reason}", path.display())]
    Compile { path: PathBuf, reason: String },
    /// The program imports something Trellis does not provide.
    #[error("cannot link the function against WASI: {reason}")]
    Link { reason: String },
    /// The code changed into a different kind of program than the one being served (a
    /// command became a wasi:http component, or the reverse); that needs a restart.
    #[error(
        "the code is now a {found}, which is served differently from the previous version; \
         restart Trellis to switch"
    )]
    WrongKind { found: WasmKind },
}

/// A loaded wasm function, as the routing table uses it.
#[derive(Clone)]
pub enum Loaded {
    /// A command: wrap it with the Lambda event codec (`trellis_runtime`'s `LambdaTarget`).
    Function(Arc<dyn Function>),
    /// A wasi:http proxy: use it as the target directly, no event translation.
    Http(Arc<dyn Target>),
}

/// [`load`]'s result: the function plus what Trellis says about it at start-up.
#[derive(Clone)]
pub struct LoadedWasm {
    pub loaded: Loaded,
    pub kind: WasmKind,
    /// Whether the code was compiled or read from the cache, and how long that took.
    pub origin: Origin,
    /// How long pre-instantiating (linking) took.
    pub prepare_time: Duration,
    /// One line for the start-up output, e.g.
    /// `hello-function: wasm command module (wasip1), compiled in 1.2s`.
    pub description: String,
}

/// Loads the wasm function `config` (`runtime: wasm`): reads its code, compiles it or loads it
/// from the cache, tells its kind and pre-instantiates it. `region` feeds `AWS_REGION`.
///
/// Blocking (compiling can take seconds in a debug build): call it before serving or from
/// `tokio::task::spawn_blocking`. The returned function or target must be used inside a tokio
/// runtime.
pub fn load(
    engine: &WasmEngine,
    config: &trellis_config::Function,
    region: &str,
) -> Result<LoadedWasm, WasmError> {
    let path = config.code.clone().ok_or_else(|| WasmError::NoCode {
        function: config.name.clone(),
    })?;
    let name: Arc<str> = Arc::from(config.name.as_str());
    let handler = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let env = limits::lambda_environment(config, region, &handler);
    let timeout = Duration::from_secs(u64::from(config.timeout_seconds));
    let memory_mb = config.memory_size_mb;

    let stamp = trellis_runtime::stamp::FileStamp::of(&path);
    let artifact = cache::load(engine, &path)?;
    let kind = artifact.kind;
    let (loaded, origin, prepare_time) = match kind {
        WasmKind::CommandModule | WasmKind::CommandComponent => {
            let prepared = live::prepare_artifact(engine, stamp, artifact, command::prepare)?;
            let (origin, prepare_time) = (prepared.origin, prepared.prepare_time);
            let live = live::Live::new(
                Arc::clone(&name),
                path.clone(),
                engine.clone(),
                command::prepare,
                prepared.program,
            );
            let function = WasmFunction::new(
                Arc::clone(&name),
                live,
                engine.clone(),
                env,
                handler,
                memory_mb,
                timeout,
            );
            (Loaded::Function(Arc::new(function)), origin, prepare_time)
        }
        WasmKind::HttpProxy => {
            let prepared = live::prepare_artifact(engine, stamp, artifact, http::prepare)?;
            let (origin, prepare_time) = (prepared.origin, prepared.prepare_time);
            let live = live::Live::new(
                Arc::clone(&name),
                path.clone(),
                engine.clone(),
                http::prepare,
                prepared.program,
            );
            let target = WasmHttpTarget::new(
                Arc::clone(&name),
                config.arn.clone(),
                live,
                engine.clone(),
                env,
                memory_mb,
                timeout,
            );
            (Loaded::Http(Arc::new(target)), origin, prepare_time)
        }
    };
    Ok(LoadedWasm {
        description: format!("{}: {kind}, {origin}", config.name),
        loaded,
        kind,
        origin,
        prepare_time,
    })
}

#[cfg(test)]
mod tests;
