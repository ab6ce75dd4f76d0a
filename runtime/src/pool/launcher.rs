//! The interface between the pool and whatever starts its execution environments (a local
//! process, a Docker container): the pool decides when an environment starts and stops, a
//! [`Launcher`] how.

use std::fmt;

use crate::BoxFuture;

/// What a [`Launcher`] needs to start one execution environment.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The function's name, for logs and labels.
    pub function: String,
    /// The environment's number within its pool (unique per pool), for logs and labels.
    pub environment_id: u64,
    /// `host:port` of this environment's Runtime API (also in `env`).
    pub runtime_api: String,
    /// Lambda's variables plus the function's own; apply in order, later entries win.
    pub env: Vec<(String, String)>,
}

/// Why an environment could not be started (or prepared). Its message is shown to the user as
/// the invocation's init error, so it should name what is missing (a path, an image); the
/// backend's own error stays reachable as its source.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct LaunchError(Box<dyn std::error::Error + Send + Sync>);

impl LaunchError {
    /// A launch error from a backend's error, or from a message (`String`, `&str`).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> LaunchError {
        LaunchError(error.into())
    }
}

/// How an environment ended, in words (`exit status 3`, `killed by signal 9`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit(pub String);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Starts execution environments (local processes, Docker containers) and knows the code they
/// run, so that the pool can tell when warm environments run old code.
pub trait Launcher: Send + Sync + 'static {
    /// Starts one environment that talks to `spec.runtime_api`. Returns once it is started (not
    /// once it is ready: readiness is its first `/next`).
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Box<dyn Environment>, LaunchError>>;

    /// What the environments run, for the function's start-up line (`process
    /// target/release/my-lambda`, `container my-image:latest`).
    fn describe(&self) -> String;

    /// Does the slow part of getting ready ahead of the first launch (finding or building an
    /// image), so that a failure shows at start-up instead of on the first request. Launches
    /// work without it.
    fn prepare(&self) -> BoxFuture<'_, Result<(), LaunchError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Asked before every invocation, so it must be cheap: whether the function's code changed
    /// since the last time it was asked. `Some(note)` means warm environments run old code: the
    /// pool writes `note` to the function log and replaces them. A file that is missing (being
    /// rewritten) is not a change; its new content is.
    fn code_changed(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(std::future::ready(None))
    }

    /// Called by [`Pool::shutdown`](super::Pool::shutdown) once every environment is gone:
    /// releases what the launcher holds outside them (a container whose creation raced with
    /// the shutdown).
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// A running execution environment, owned by the pool's supervisor for it.
pub trait Environment: Send + 'static {
    /// Resolves when the environment has exited on its own. Must be cancel-safe: the pool
    /// drops this future when it decides to [`kill`](Environment::kill) instead.
    fn wait(&mut self) -> BoxFuture<'_, Exit>;

    /// Stops the environment and everything it started, and resolves once it is gone.
    fn kill(&mut self) -> BoxFuture<'_, Exit>;

    /// After [`wait`](Environment::wait) resolved: whether the environment was taken away
    /// from outside (a container killed or removed behind Trellis's back) rather than ending
    /// by itself. The invocation it held is then retried once on a fresh environment; a
    /// function that crashes by itself is not re-run.
    fn vanished(&self) -> bool {
        false
    }
}
