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
//! - [`pool`]: a function's pool of containers, started by a [`DockerLauncher`], which rebuilds
//!   a `build:` directory's image when its content changes and has the warm containers replaced
//!   then.
//! - [`DockerEngine::cleanup_leftovers`]: at start-up, removes what a Trellis that no longer
//!   runs left behind, and nothing of a live one (several may share an engine).
//!
//! Labels on every container: `trellis.managed=true`, `trellis.function=<name>`,
//! `trellis.instance=<instance id>`, `trellis.owner=<host name>:<pid>:<process start time>`
//! (who to ask whether the creator still runs), `trellis.environment=<n>` and
//! `trellis.pool=<pool id>` (one per [`DockerLauncher`], so that stopping an old version of a
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

use std::sync::Arc;

use trellis_runtime::pool::{Pool, PoolConfig};

pub use engine::{DockerEngine, Leftovers, Owner};
pub use image::ImageSource;
pub use launcher::DockerLauncher;
pub use network::{AttachedNetwork, OwnContainer, Placement, Surroundings, decide};

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
    /// The [`super::DockerLauncher`] (one per function version) that owns a container.
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

/// A container function for `config` (its `image` or `build`, timeout, memory, environment
/// and concurrency): a [`Pool`] of containers started by a [`DockerLauncher`], with its Runtime
/// API endpoints where `engine`'s placement says the containers can reach them. Nothing starts
/// until the first invocation (or [`Pool::prepare`]); a missing image or a failed build is
/// reported then, as the invocation's init error.
pub fn pool(
    config: &trellis_config::Function,
    region: &str,
    engine: &Arc<DockerEngine>,
) -> Result<Pool, ContainerError> {
    let launcher = DockerLauncher::new(config, engine)?;
    Ok(Pool::new(
        pool_config(config, region, engine),
        Arc::new(launcher),
    ))
}

/// The pool settings of container function `config`: Lambda's defaults, plus where the
/// Runtime API endpoints listen so that `engine`'s containers reach them.
pub fn pool_config(
    config: &trellis_config::Function,
    region: &str,
    engine: &DockerEngine,
) -> PoolConfig {
    let mut pool_config = PoolConfig::new(config, region);
    let placement = engine.placement();
    pool_config.bind = placement.bind;
    pool_config.advertise_host = placement.advertise_host.clone();
    pool_config
}
