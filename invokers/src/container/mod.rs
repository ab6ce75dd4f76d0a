//! Container functions: any Lambda container image (one built on a Lambda base image, or a
//! `lambda_runtime` binary `FROM scratch`) run through the Docker Engine API, each container one
//! execution environment talking to Trellis's Runtime API. The warm pool, scaling, timeouts and
//! START/END/REPORT lines are [`trellis_runtime::pool::Pool`]'s, as for process functions; this
//! module starts and removes containers ([`DockerLauncher`]), finds or builds their image
//! ([`ImageSource`]), and decides how they reach Trellis ([`Placement`]).
//!
//! - [`DockerEngine`]: one per Trellis process: the engine client, Trellis's instance id and
//!   [`Owner`] (every container is labelled with both) and the network placement, found once at
//!   connection.
//! - [`ContainerFunction`]: a function's pool of containers; rebuilds a `build:` directory's
//!   image when its content changes and replaces the warm containers then.
//! - [`DockerEngine::cleanup_leftovers`]: at start-up, removes what a Trellis that no longer
//!   runs left behind, and nothing of a live one (several may share an engine).
//!
//! Labels on every container: `trellis.managed=true`, `trellis.function=<name>`,
//! `trellis.instance=<instance id>`, `trellis.owner=<host name>:<pid>:<process start time>`
//! (who to ask whether the creator still runs), `trellis.environment=<n>` and
//! `trellis.pool=<pool id>` (one per [`ContainerFunction`], so that stopping an old version of a
//! function after a reload never touches the new one's containers). Built images carry
//! `trellis.managed=true`, `trellis.function` and `trellis.content-hash`. Trellis creates no
//! networks today; a network it created would carry `trellis.managed`, `trellis.instance` and
//! `trellis.owner` too, and the cleanup treats networks by the same rule.

mod engine;
mod image;
mod launcher;
mod network;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use trellis_runtime::pool::{Pool, PoolConfig};
use trellis_runtime::{BoxFuture, Function, FunctionError, InvokeContext, log};

pub use engine::{DockerEngine, Leftovers, Owner};
pub use image::ImageSource;
pub use launcher::DockerLauncher;
pub use network::{AttachedNetwork, OwnContainer, Placement, Surroundings, decide};

use image::Images;

/// Label keys and values shared by the container backend.
pub mod labels {
    /// On every container, image and network Trellis creates.
    pub const MANAGED: &str = "trellis.managed";
    pub const FUNCTION: &str = "trellis.function";
    /// The Trellis process that created a container ([`super::DockerEngine::instance`]).
    pub const INSTANCE: &str = "trellis.instance";
    /// The process that created a container, `<host name>:<pid>:<start time>`
    /// ([`super::Owner`]): a later Trellis removes the container only when that process is gone.
    pub const OWNER: &str = "trellis.owner";
    /// The environment's number within its pool.
    pub const ENVIRONMENT: &str = "trellis.environment";
    /// The [`super::ContainerFunction`] that owns a container.
    pub const POOL: &str = "trellis.pool";
    /// On built images: the build directory's content hash.
    pub const CONTENT_HASH: &str = "trellis.content-hash";
}

/// Why the container backend cannot do something; every message says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    /// The engine does not answer (no socket, permission denied, daemon down).
    #[error("cannot reach the Docker engine at {host}: {reason}\nhint: {hint}")]
    Unreachable {
        host: String,
        reason: String,
        hint: String,
    },
    /// Function containers would have no way to reach Trellis's Runtime API.
    #[error("cannot work out how function containers reach Trellis: {0}")]
    Network(String),
    /// `image:` does not exist in the engine.
    #[error(
        "image {0} not found locally; no registry is reachable — build it with docker build or give `build: DIR`"
    )]
    ImageNotFound(String),
    /// `build:` cannot be read or built.
    #[error("{0}")]
    Build(String),
    /// A container function without `image:` or `build:` (the config validation prevents it).
    #[error("function {0}: a container function needs exactly one of \"image\" and \"build\"")]
    NoImage(String),
    /// Any other engine error, with what Trellis was doing.
    #[error("{0}")]
    Engine(String),
}

/// A container function: a [`Pool`] of containers started by a [`DockerLauncher`]. Nothing
/// starts until the first invocation (or [`ContainerFunction::prepare`]); a missing image or a
/// failed build is reported then, as the invocation's init error.
pub struct ContainerFunction {
    pool: Pool,
    engine: Arc<DockerEngine>,
    images: Arc<Images>,
    pool_id: String,
    /// The build directory's metadata fingerprint as last seen, for cheap change detection.
    fingerprint: Mutex<Option<u64>>,
}

impl ContainerFunction {
    /// A container function for `config` (its `image` or `build`, timeout, memory, environment
    /// and concurrency), with its Runtime API endpoints where `engine`'s placement says the
    /// containers can reach them.
    pub fn new(
        config: &trellis_config::Function,
        region: &str,
        engine: &Arc<DockerEngine>,
    ) -> Result<ContainerFunction, ContainerError> {
        let source = ImageSource::from_config(config)?;
        let mut pool_config = PoolConfig::new(config, region);
        let placement = engine.placement();
        pool_config.bind = placement.bind;
        pool_config.advertise_host = placement.advertise_host.clone();
        Ok(ContainerFunction::with_pool(pool_config, source, engine))
    }

    /// A container function with explicit pool settings (tests, or callers that tune the init
    /// timeout). `config.bind`/`advertise_host` must be reachable from the containers.
    pub fn with_pool(
        config: PoolConfig,
        source: ImageSource,
        engine: &Arc<DockerEngine>,
    ) -> ContainerFunction {
        let pool_id = engine::short_id();
        let images = Arc::new(Images::new(engine.docker().clone(), &config.name, source));
        let launcher = DockerLauncher::new(
            Arc::clone(engine),
            Arc::clone(&images),
            &config.name,
            &pool_id,
            config.memory_size_mb,
        );
        let fingerprint = Mutex::new(images.fingerprint());
        ContainerFunction {
            pool: Pool::new(config, Arc::new(launcher)),
            engine: Arc::clone(engine),
            images,
            pool_id,
            fingerprint,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Where the image comes from.
    pub fn source(&self) -> &ImageSource {
        self.images.source()
    }

    /// The value of this function's `trellis.pool` label.
    pub fn pool_id(&self) -> &str {
        &self.pool_id
    }

    /// Finds the image now (building a `build:` directory if its content has no image yet),
    /// so that a missing image or a failed build is reported at start-up rather than by the
    /// first invocation. Returns the image reference containers are created from.
    pub async fn prepare(&self) -> Result<String, ContainerError> {
        self.images.resolve().await
    }

    /// Removes every container of this function and waits until they are gone. Later
    /// invocations fail at once.
    pub async fn shutdown(&self) {
        self.pool.shutdown().await;
        // Belt and braces: a container whose creation raced with the shutdown.
        if let Err(e) = self
            .engine
            .remove_containers(&[(labels::POOL, &self.pool_id)])
            .await
        {
            log::line(
                self.pool.name(),
                &format!("could not remove its containers: {e}"),
            );
        }
    }

    /// Replaces the warm containers when the `build:` directory's content changed since the
    /// image they run was built. A metadata walk per invocation (sizes and mtimes); the content
    /// is hashed only when that changed, so touching a file without changing it costs nothing.
    async fn refresh(&self) {
        let Some(now) = self.images.fingerprint() else {
            return;
        };
        {
            let mut seen = self
                .fingerprint
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if *seen == Some(now) {
                return;
            }
            *seen = Some(now);
        }
        if self.images.content_changed().await {
            log::line(
                self.pool.name(),
                &format!(
                    "{} changed: rebuilding the image and replacing warm containers",
                    self.images.source()
                ),
            );
            self.pool.drain();
        }
    }
}

impl Function for ContainerFunction {
    fn name(&self) -> &str {
        self.pool.name()
    }

    fn invoke(
        &self,
        payload: Bytes,
        ctx: InvokeContext,
    ) -> BoxFuture<'_, Result<Bytes, FunctionError>> {
        Box::pin(async move {
            self.refresh().await;
            self.pool.invoke(payload, ctx).await
        })
    }
}
