//! trellis-invokers: the compute backends behind target groups. Each backend turns a registered
//! target into a router [`Target`]:
//!
//! - INSTANCE, IP and ALB targets: an HTTP(S) proxy with pooled keep-alive connections
//!   ([`http::HttpTarget`]).
//! - LAMBDA targets: a function, wrapped with the VPC Lattice event codec
//!   ([`trellis_runtime::target::LambdaTarget`]): WebAssembly ([`wasm`]), or a Lambda custom
//!   runtime against Trellis's Runtime API, run as a native process ([`process`]) or as a
//!   Docker container ([`container`]). A wasi:http component is a target by itself (it takes
//!   the HTTP request, no event).
//!
//! [`Invokers`] loads each function once and keeps it across config reloads while its settings
//! stay the same, so warm environments and compiled modules survive an edit of an unrelated rule.

pub mod container;
pub mod http;
pub mod process;
pub mod wasm;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use trellis_config::{
    Config, Function as FunctionConfig, FunctionRuntime, ProtocolVersion, Target as TargetConfig,
    TargetGroup, TargetGroupType, TargetProtocol,
};
use trellis_router::{MakeError, Target, TargetFactory};
use trellis_runtime::Function;
use trellis_runtime::target::LambdaTarget;

use trellis_runtime::pool::Pool;

use crate::container::{ContainerError, DockerEngine};
use crate::http::{HttpClients, HttpTarget, HttpTargetError, UpstreamVersion};
use crate::process::ProcessError;
use crate::wasm::{WasmEngine, WasmError};

/// Why a function cannot be loaded or used. The backends' own errors are kept as they are, so
/// their messages (which say what to do) reach the user unchanged.
#[derive(Debug, thiserror::Error)]
pub enum InvokerError {
    #[error("no function \"{0}\" in the config")]
    UnknownFunction(String),
    /// `trellis invoke` on a wasi:http component, which takes HTTP requests, not events.
    #[error(
        "function \"{0}\" is a wasi:http component: it takes HTTP requests, not events; serve it with `trellis up` and use curl"
    )]
    NotInvocable(String),
    /// A container function in a config that [`Invokers::prepare`] did not connect for.
    #[error(
        "function \"{0}\" runs in a container, but Trellis is not connected to the Docker engine"
    )]
    NoDockerEngine(String),
    #[error(transparent)]
    Wasm(#[from] WasmError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// How the invokers are set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long an HTTP target may take to send its response head.
    pub target_timeout: Duration,
    /// Where generated state lives (the compiled wasm cache is `<state_dir>/wasm-cache`).
    pub state_dir: PathBuf,
    /// Start functions' `provisioned` environments as soon as they are loaded (`trellis up`);
    /// off for a one-off `trellis invoke`.
    pub provision: bool,
}

/// A loaded function, as targets use it.
#[derive(Clone)]
enum Handle {
    /// Takes Lattice events; `pool` is set for functions that run in a warm pool of
    /// environments (processes, containers), which must be stopped. The pool is the function.
    Event {
        function: Arc<dyn Function>,
        pool: Option<Arc<Pool>>,
    },
    /// A wasi:http component: a target by itself.
    Http(Arc<dyn Target>),
}

struct LoadedFunction {
    settings: FunctionConfig,
    handle: Handle,
}

/// Builds targets for the routing table: shares HTTP connection pools, the wasm engine and the
/// loaded functions between them.
pub struct Invokers {
    http: HttpClients,
    target_timeout: Duration,
    state_dir: PathBuf,
    provision: bool,
    /// Created on first use: a config without wasm functions never pays for it.
    wasm: OnceLock<Result<WasmEngine, WasmError>>,
    /// Connected by [`Invokers::prepare`] when a config has container functions.
    docker: OnceLock<Arc<DockerEngine>>,
    functions: Mutex<HashMap<String, LoadedFunction>>,
}

impl Invokers {
    pub fn new(options: Options) -> Result<Invokers, HttpTargetError> {
        Ok(Invokers {
            http: HttpClients::new()?,
            target_timeout: options.target_timeout,
            state_dir: options.state_dir,
            provision: options.provision,
            wasm: OnceLock::new(),
            docker: OnceLock::new(),
            functions: Mutex::new(HashMap::new()),
        })
    }

    /// Does the asynchronous set-up `config` needs before its table can be built: connects to
    /// the Docker engine (once) when it has container functions, and removes containers that
    /// a crashed Trellis left behind.
    pub async fn prepare(&self, config: &Config) -> Result<(), InvokerError> {
        let wants_docker = config
            .functions
            .iter()
            .any(|f| f.runtime == FunctionRuntime::Container);
        if !wants_docker || self.docker.get().is_some() {
            return Ok(());
        }
        let engine = DockerEngine::connect(DockerEngine::new_instance_id()).await?;
        match engine.cleanup_leftovers().await {
            Ok(left) if !left.containers.is_empty() || !left.networks.is_empty() => {
                tracing::info!(
                    containers = left.containers.len(),
                    networks = left.networks.len(),
                    "trellis: removed {} container(s) and {} network(s) left by an earlier Trellis",
                    left.containers.len(),
                    left.networks.len()
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("trellis: could not clean up earlier containers: {e}"),
        }
        let _ = self.docker.set(engine);
        Ok(())
    }

    /// The function `name` of `config`, loaded (or reused), for `trellis invoke`.
    pub fn function(&self, config: &Config, name: &str) -> Result<Arc<dyn Function>, InvokerError> {
        match self.load(config, name)? {
            Handle::Event { function, .. } => Ok(function),
            Handle::Http(_) => Err(InvokerError::NotInvocable(name.to_owned())),
        }
    }

    /// Stops functions that `config` no longer has (after a reload).
    pub async fn retain(&self, config: &Config) {
        let gone: Vec<LoadedFunction> = {
            let mut functions = lock(&self.functions);
            let names: Vec<String> = functions
                .keys()
                .filter(|name| !config.functions.iter().any(|f| &f.name == *name))
                .cloned()
                .collect();
            names.iter().filter_map(|n| functions.remove(n)).collect()
        };
        let names: Vec<&str> = config.functions.iter().map(|f| f.name.as_str()).collect();
        trellis_runtime::activity::global().retain(&names);
        for f in gone {
            tracing::info!(function = %f.settings.name, "trellis: function {} removed", f.settings.name);
            stop(f.handle).await;
        }
    }

    /// Stops every function environment (at shutdown).
    pub async fn shutdown(&self) {
        let all: Vec<LoadedFunction> = lock(&self.functions).drain().map(|(_, f)| f).collect();
        for f in all {
            stop(f.handle).await;
        }
        if let Some(engine) = self.docker.get()
            && let Err(e) = engine.remove_own_containers().await
        {
            tracing::warn!("trellis: could not remove function containers: {e}");
        }
    }

    fn wasm_engine(&self) -> Result<&WasmEngine, WasmError> {
        self.wasm
            .get_or_init(|| WasmEngine::new(self.state_dir.join("wasm-cache")))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Loads function `name`, or reuses the loaded one when its settings did not change.
    fn load(&self, config: &Config, name: &str) -> Result<Handle, InvokerError> {
        let settings = config
            .functions
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| InvokerError::UnknownFunction(name.to_owned()))?;
        let mut functions = lock(&self.functions);
        if let Some(loaded) = functions.get(name)
            && same_settings(&loaded.settings, settings)
        {
            return Ok(loaded.handle.clone());
        }
        let handle = match settings.runtime {
            FunctionRuntime::Wasm => {
                let loaded = wasm::load(self.wasm_engine()?, settings, &config.region)?;
                tracing::info!(function = %name, "trellis: function {}", loaded.description);
                match loaded.loaded {
                    wasm::Loaded::Function(function) => Handle::Event {
                        function,
                        pool: None,
                    },
                    wasm::Loaded::Http(target) => Handle::Http(target),
                }
            }
            FunctionRuntime::Process => {
                let pool = process::pool(settings, &config.region)?;
                self.start_pool(settings, pool)
            }
            FunctionRuntime::Container => {
                let engine = self
                    .docker
                    .get()
                    .ok_or_else(|| InvokerError::NoDockerEngine(name.to_owned()))?;
                let pool = container::pool(settings, &config.region, engine)?;
                self.start_pool(settings, pool)
            }
        };
        let previous = functions.insert(
            name.to_string(),
            LoadedFunction {
                settings: settings.clone(),
                handle: handle.clone(),
            },
        );
        if let Some(previous) = previous {
            tracing::info!(function = %name, "trellis: function {name} changed; its old environments are stopped");
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(stop(previous.handle));
            }
        }
        Ok(handle)
    }
}

impl Invokers {
    /// Announces a process or container function's pool and gets it going: its launcher
    /// prepares now (a container image is found or built, so a missing image or a failed build
    /// shows at start-up rather than on the first request), then the provisioned environments
    /// start.
    fn start_pool(&self, settings: &FunctionConfig, pool: Pool) -> Handle {
        let pool = Arc::new(pool);
        tracing::info!(
            function = %settings.name,
            "trellis: function {}: {} ({})",
            settings.name,
            pool.describe(),
            self.pool_note(settings)
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (pool, name, provision) =
                (Arc::clone(&pool), settings.name.clone(), self.provision);
            rt.spawn(async move {
                match pool.prepare().await {
                    Ok(()) if provision => pool.provision(),
                    Ok(()) => {}
                    Err(e) => tracing::warn!(function = %name, "trellis: function {name}: {e}"),
                }
            });
        }
        Handle::Event {
            function: pool.clone(),
            pool: Some(pool),
        }
    }

    /// How a process or container function's environments start, for its start-up line.
    fn pool_note(&self, settings: &FunctionConfig) -> String {
        let idle = format!("stopped after {} s idle", settings.idle_timeout_seconds);
        if self.provision && settings.provisioned > 0 {
            format!(
                "concurrency {}, {} provisioned, others {idle}",
                settings.concurrency, settings.provisioned
            )
        } else {
            format!(
                "concurrency {}, started on first request, {idle}",
                settings.concurrency
            )
        }
    }
}

async fn stop(handle: Handle) {
    if let Handle::Event {
        pool: Some(pool), ..
    } = handle
    {
        pool.shutdown().await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether two definitions of a function run the same way (where it is written in the file
/// does not matter).
fn same_settings(a: &FunctionConfig, b: &FunctionConfig) -> bool {
    a.name == b.name
        && a.runtime == b.runtime
        && a.code == b.code
        && a.command == b.command
        && a.image == b.image
        && a.build == b.build
        && a.timeout_seconds == b.timeout_seconds
        && a.memory_size_mb == b.memory_size_mb
        && a.environment == b.environment
        && a.concurrency == b.concurrency
        && a.provisioned == b.provisioned
        && a.idle_timeout_seconds == b.idle_timeout_seconds
}

impl TargetFactory for Invokers {
    fn make(
        &self,
        config: &Config,
        group: &TargetGroup,
        target: &TargetConfig,
    ) -> Result<Arc<dyn Target>, MakeError> {
        match group.kind {
            TargetGroupType::Instance | TargetGroupType::Ip | TargetGroupType::Alb => {
                let version = match group.protocol_version {
                    ProtocolVersion::Http1 => UpstreamVersion::Http1,
                    ProtocolVersion::Http2 | ProtocolVersion::Grpc => UpstreamVersion::Http2,
                };
                let tls = group.protocol == TargetProtocol::Https;
                HttpTarget::new(
                    &self.http,
                    &target.id,
                    target.port,
                    tls,
                    version,
                    self.target_timeout,
                )
                .map(|t| Arc::new(t) as Arc<dyn Target>)
                .map_err(|e| MakeError::Address(Box::new(e)))
            }
            TargetGroupType::Lambda => {
                let settings = config
                    .functions
                    .iter()
                    .find(|f| f.name == target.id)
                    .ok_or_else(|| MakeError::NoFunction(target.id.clone()))?;
                let handle = self
                    .load(config, &target.id)
                    .map_err(|e| MakeError::Function(e.into()))?;
                match handle {
                    Handle::Event { function, .. } => Ok(Arc::new(LambdaTarget::from_config(
                        function,
                        settings,
                        group,
                        config.region.clone(),
                    ))),
                    Handle::Http(target) => Ok(target),
                }
            }
        }
    }
}

/// An error and its causes on one line. Backends' top-level messages alone often do not say what
/// went wrong (hyper's "client error (Connect)", bollard's "error in the engine"); a cause whose
/// text the message already includes is not repeated.
pub(crate) fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        next = cause.source();
    }
    text
}
