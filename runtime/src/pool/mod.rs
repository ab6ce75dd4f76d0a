//! Trellis's own Lambda Runtime API, and the pool of warm execution environments behind it.
//!
//! Process and container functions are ordinary Lambda custom runtimes: programs that read
//! `AWS_LAMBDA_RUNTIME_API` and loop over `GET /2018-06-01/runtime/invocation/next`, then
//! `POST …/invocation/{id}/response` (or `/error`). This module serves that API and decides which
//! environment runs which invocation; *how* an environment is started (a local process, a Docker
//! container) is a [`Launcher`]'s business.
//!
//! - [`Pool`] (here): the face a function shows: invoke, provision, drain, shut down.
//! - `state`: the pool's shared state and the invariant below, with the life of an invocation
//!   (`state/invocation.rs`) and of an environment (`state/supervisor.rs`).
//! - `launcher`: the interface to whatever starts environments ([`Launcher`], [`Environment`]).
//! - `config`: what the pool knows about its function ([`PoolConfig`]) and the environment
//!   variables it gives each environment.
//! - `server`: one environment's Runtime API endpoint over HTTP, which reaches the pool only
//!   through the narrow handle `state::EnvironmentApi` (the four calls a runtime can make).
//!
//! # One in-flight invocation per environment
//!
//! Every environment gets its **own listener** (its own port): `AWS_LAMBDA_RUNTIME_API` is only a
//! `host:port`, so a path prefix cannot tell environments apart, and HTTP connections cannot
//! either (a shell runtime opens a new connection per `curl`, a pooled client may open several).
//! The port a request arrives on therefore names the environment without trusting anything the
//! runtime sends. The function's invocations share one work queue; all of the pool's state sits
//! behind one mutex, and an invocation leaves the queue only in `state::Shared::hand_off`, which
//! requires the environment to have a `/next` parked *and* no invocation in flight, and records
//! the invocation as that environment's `current` in the same critical section. `current` is
//! cleared only by that invocation's `/response` or `/error`, its timeout (which kills the
//! environment) or the environment's exit, and a `/next` that arrives while `current` is set is
//! refused (403 `InvalidStateTransition`, as the runtime interface emulator answers). Hence an
//! environment never holds two invocations, whatever its runtime does.
//!
//! # Scaling and failures
//!
//! An environment is started when more invocations wait than environments are about to ask for
//! work (starting, or answered less than 200 ms ago and not yet back in `/next`), up to the
//! function's concurrency; further invocations wait in the queue until their deadline. Busy
//! environments are never shared, so waiting invocations are served oldest first by whichever
//! environment asks next. An environment that exits during an invocation fails it at once
//! (`Crashed`, with the exit status); one that exits, fails to launch, posts `/init/error` or does
//! not ask for work within its init timeout fails the oldest waiting invocation (`Init`), so a
//! broken runtime answers requests quickly instead of being relaunched until every deadline
//! passes. A timed-out invocation kills its environment; replacements start on demand.
//!
//! # Deadlines
//!
//! As in Lambda, a cold start's init does not count against the function's timeout: an
//! invocation handed to a fresh environment gets its whole `timeout` from that moment. While an
//! environment is starting, waiting invocations stay queued past their deadline (they are about
//! to be served), for at most `init_timeout` more; otherwise an invocation waits for a busy
//! environment only until its deadline. Nothing runs past `timeout + init_timeout` from its
//! arrival, which is what callers wait for at most.
//!
//! # Provisioned environments and the idle timeout
//!
//! After [`Pool::provision`], the pool keeps at least `provisioned` environments alive: they
//! start at once (with `AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`, and, as in
//! Lambda, without an `Init Duration` in the REPORT of their first invocation, which was not a
//! cold start), and one that exits or is drained is replaced. An environment that has had no
//! invocation for `idle_timeout` is stopped, unless that would leave fewer than `provisioned`.
//! A provisioned environment that fails its init is not relaunched in a loop: the pool stops
//! keeping the minimum until an environment starts successfully again.

mod config;
mod launcher;
mod server;
mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::{BoxFuture, Function, FunctionError, InvokeContext, log};

pub use config::{IDLE_TIMEOUT, INIT_TIMEOUT, PoolConfig};
pub use launcher::{Environment, Exit, LaunchError, LaunchSpec, Launcher};

use state::Shared;

/// How long an environment that has just answered is expected to take to ask for more work;
/// see `Slot::will_poll`. Runtimes normally poll again within a millisecond.
const RETURN_GRACE: Duration = Duration::from_millis(200);

/// One invocation, with the optional context headers Lambda forwards to the runtime.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub payload: Bytes,
    pub ctx: InvokeContext,
    /// `Lambda-Runtime-Client-Context`, sent only when set.
    pub client_context: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity`, sent only when set.
    pub cognito_identity: Option<String>,
}

impl Invocation {
    pub fn new(payload: Bytes, ctx: InvokeContext) -> Invocation {
        Invocation {
            payload,
            ctx,
            client_context: None,
            cognito_identity: None,
        }
    }
}

/// A snapshot of a pool's counters, for metrics and the console (which reads the newest from
/// [`crate::activity`]: the pool publishes it there whenever it changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Environments started since the pool was created.
    pub launches: u64,
    /// Invocations that ran in a fresh environment (their REPORT has `Init Duration`).
    pub cold_starts: u64,
    /// Environments alive now (starting, idle, busy or being stopped).
    pub environments: usize,
    /// Environments launched but not ready yet: their runtime has not asked for work
    /// (`/next`) yet, and is not being stopped.
    pub starting: usize,
    /// Ready environments with no invocation, not being stopped.
    pub idle: usize,
    /// Environments running an invocation now.
    pub busy: usize,
    /// Invocations waiting for an environment now.
    pub queued: usize,
}

/// A function's warm pool: runs invocations in environments started by a [`Launcher`], each
/// speaking the Runtime API on its own endpoint. See the module documentation for the rules.
pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    /// A pool with no environments yet; the first invocation starts one. Must be used inside a
    /// Tokio runtime.
    pub fn new(config: PoolConfig, launcher: Arc<dyn Launcher>) -> Pool {
        Pool {
            shared: Shared::new(config, launcher),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        self.shared.config()
    }

    /// Starts `provisioned` environments now and keeps that many alive from then on (see the
    /// module documentation). Does nothing when `provisioned` is 0.
    pub fn provision(&self) {
        self.shared.provision();
    }

    /// What the environments run (the launcher's description), for the start-up line.
    pub fn describe(&self) -> String {
        self.shared.launcher().describe()
    }

    /// Gets the launcher ready ahead of the first launch (see [`Launcher::prepare`]).
    pub async fn prepare(&self) -> Result<(), LaunchError> {
        self.shared.launcher().prepare().await
    }

    /// Runs one invocation: replaces the warm environments first if the function's code changed
    /// (see [`Launcher::code_changed`]), then waits for an idle environment (starting one if the
    /// concurrency allows), hands it the event, and returns its answer, or an error by
    /// `ctx.deadline`.
    pub async fn invoke_with(&self, invocation: Invocation) -> Result<Bytes, FunctionError> {
        if let Some(note) = self.shared.launcher().code_changed().await {
            log::line(&self.shared.config().name, &note);
            self.drain();
        }
        let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
        // Its own task, so the deadline is enforced (and a hung environment killed) even when
        // the caller stops waiting, e.g. because the client disconnected.
        tokio::spawn(Arc::clone(&self.shared).run(invocation, answer_tx));
        answer_rx.await.unwrap_or_else(|_| {
            Err(FunctionError::Crashed(
                "the invocation was abandoned (Trellis is shutting down)".into(),
            ))
        })
    }

    /// Retires every warm environment so that the next invocation starts a fresh one (the
    /// function's code changed). Idle and starting environments are stopped now; busy ones
    /// finish their invocation first and are stopped then.
    pub fn drain(&self) {
        self.shared.drain();
    }

    /// Stops everything: waiting invocations fail, every environment is killed (an invocation
    /// in flight fails with `Crashed`), and this returns once all of them are gone. Later
    /// invocations fail at once.
    pub async fn shutdown(&self) {
        self.shared.close();
        self.shared.all_gone().await;
        self.shared.launcher().shutdown().await;
    }

    pub fn stats(&self) -> PoolStats {
        self.shared.stats()
    }

    /// Invocations that ran in a fresh environment.
    pub fn cold_starts(&self) -> u64 {
        self.shared.stats().cold_starts
    }

    /// Environments alive now.
    pub fn environments(&self) -> usize {
        self.shared.stats().environments
    }
}

impl Drop for Pool {
    /// Kills every environment (without waiting), so dropping a pool leaves no runtime behind.
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Function for Pool {
    fn name(&self) -> &str {
        &self.shared.config().name
    }

    fn invoke(
        &self,
        payload: Bytes,
        ctx: InvokeContext,
    ) -> BoxFuture<'_, Result<Bytes, FunctionError>> {
        Box::pin(self.invoke_with(Invocation::new(payload, ctx)))
    }
}
