//! The life of one execution environment, from launch to exit: its supervisor task opens its
//! Runtime API endpoint, launches it through the [`Launcher`](crate::pool::Launcher), enforces
//! its init and idle timeouts, kills it on request, and accounts for how it ended.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{EnvironmentApi, Outcome, Retire, Shared, Slot, State};
use crate::pool::launcher::{Environment, Exit, LaunchSpec};
use crate::pool::server;
use crate::{FunctionError, log};

/// How an environment ended, as its supervisor saw it.
enum Gone {
    LaunchFailed(String),
    /// The exit, and whether the environment vanished from outside.
    Exited(Exit, bool),
}

/// Aborts a task when dropped: an environment's Runtime API server lives as long as its
/// supervisor, however the supervisor ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Shared {
    /// Reserves a slot for a new environment and starts its supervisor. `provisioned`: it is
    /// started ahead of demand, to keep the provisioned minimum.
    pub(super) fn launch(self: &Arc<Self>, state: &mut State, provisioned: bool) {
        let id = state.next_env;
        state.next_env += 1;
        let (kill_tx, kill_rx) = oneshot::channel();
        state.envs.insert(
            id,
            Slot {
                launched: Instant::now(),
                ready: false,
                init_duration: None,
                poller: None,
                current: None,
                retire: None,
                kill: Some(kill_tx),
                answered: None,
                provisioned,
                idle_since: Instant::now(),
            },
        );
        self.live.send_replace(state.envs.len());
        self.launches.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(Arc::clone(self).supervise(id, kill_rx));
    }

    /// Owns environment `id` from launch to exit: opens its Runtime API endpoint, launches it,
    /// enforces the init timeout, kills it on request, and reports how it ended.
    async fn supervise(self: Arc<Self>, id: u64, mut kill: oneshot::Receiver<()>) {
        let provisioned = self
            .lock()
            .envs
            .get(&id)
            .is_some_and(|slot| slot.provisioned);
        let gone = match self.start(id, provisioned).await {
            Err(reason) => Gone::LaunchFailed(reason),
            Ok((mut env, _server)) => {
                let init_timer = tokio::time::sleep(self.config.init_timeout);
                tokio::pin!(init_timer);
                let idle_timer = tokio::time::sleep(self.config.idle_timeout);
                tokio::pin!(idle_timer);
                let mut timing_init = true;
                let (exit, vanished) = loop {
                    tokio::select! {
                        biased;
                        // A dropped sender means the slot is gone: stop the environment too.
                        _ = &mut kill => break (env.kill().await, false),
                        exit = env.wait() => break (exit, env.vanished()),
                        _ = &mut init_timer, if timing_init => {
                            timing_init = false;
                            let mut state = self.lock();
                            if let Some(slot) = state.envs.get_mut(&id).filter(|s| !s.ready) {
                                slot.kill(Retire::InitTimeout);
                            }
                        }
                        _ = &mut idle_timer => {
                            let next = self.reap_if_idle(id);
                            idle_timer.as_mut().reset(next.into());
                        }
                    }
                };
                Gone::Exited(exit, vanished)
            }
        };
        self.remove(id, gone);
    }

    /// Opens environment `id`'s own Runtime API endpoint and launches the environment.
    async fn start(
        self: &Arc<Self>,
        id: u64,
        provisioned: bool,
    ) -> Result<(Box<dyn Environment>, AbortOnDrop), String> {
        let bind = self.config.bind;
        let listener = TcpListener::bind((bind, 0))
            .await
            .map_err(|e| format!("cannot open a Runtime API endpoint on {bind}: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("cannot open a Runtime API endpoint on {bind}: {e}"))?
            .port();
        let api = EnvironmentApi {
            shared: Arc::clone(self),
            env: id,
        };
        let server = AbortOnDrop(tokio::spawn(server::serve(listener, api)));
        let runtime_api = self.config.runtime_api(port);
        let spec = LaunchSpec {
            function: self.config.name.clone(),
            environment_id: id,
            env: self.config.environment_for(
                &runtime_api,
                &crate::log::log_stream_name(),
                provisioned,
            ),
            runtime_api,
        };
        let env = self
            .launcher
            .launch(spec)
            .await
            .map_err(|e| e.to_string())?;
        Ok((env, server))
    }

    /// Environment `id` is gone: fail what it held, account for a failed init, and start
    /// replacements for invocations still waiting.
    fn remove(self: &Arc<Self>, id: u64, gone: Gone) {
        let mut notes = Vec::new();
        {
            let mut state = self.lock();
            let Some(slot) = state.envs.remove(&id) else {
                return;
            };
            self.live.send_replace(state.envs.len());
            let how = match &gone {
                Gone::LaunchFailed(reason) => reason.clone(),
                Gone::Exited(exit, _) => exit.0.clone(),
            };
            let vanished = matches!(gone, Gone::Exited(_, true));
            let retry = slot.current.as_ref().is_some_and(|inflight| {
                vanished
                    && slot.retire.is_none()
                    && !state.closed
                    && !inflight.pending.retried
                    && inflight.pending.deadline > Instant::now()
            });
            match slot.current {
                Some(mut inflight) if retry => {
                    notes.push(format!(
                    "RequestId: {} the environment vanished ({how}); retrying the invocation once on a fresh environment",
                    inflight.pending.request_id
                ));
                    inflight.pending.retried = true;
                    state.queue.push_front(inflight.pending);
                }
                Some(inflight) => {
                    let message = match slot.retire {
                        Some(Retire::Shutdown) => {
                            "the environment was stopped because the function is shutting down"
                                .to_owned()
                        }
                        _ => format!("Runtime exited with error: {how}"),
                    };
                    let _ = inflight.pending.done.send(Outcome {
                        result: Err(FunctionError::Crashed(message)),
                        run: Some(inflight.run),
                    });
                }
                None => {}
            }
            let init_failure = match (&slot.retire, slot.ready, &gone) {
                (Some(Retire::InitError(message)), _, _) => Some(message.clone()),
                (Some(Retire::InitTimeout), _, _) => Some(format!(
                    "the runtime did not ask for an invocation within {:?} of starting",
                    self.config.init_timeout
                )),
                (None, false, Gone::LaunchFailed(reason)) => Some(reason.clone()),
                (None, false, Gone::Exited(exit, _)) => Some(format!(
                    "the runtime exited before asking for an invocation ({exit})"
                )),
                _ => None,
            };
            if let Some(message) = init_failure {
                if slot.provisioned && !state.provisioning_failed {
                    state.provisioning_failed = true;
                    notes.push(
                        "a provisioned environment failed to start; environments start on demand until one starts successfully"
                            .to_owned(),
                    );
                }
                let ms = slot.launched.elapsed().as_secs_f64() * 1000.0;
                notes.push(format!(
                    "INIT_REPORT Init Duration: {ms:.2} ms\tPhase: init\tStatus: error\tError: {message}"
                ));
                if let Some(pending) = state.queue.pop_front() {
                    let _ = pending.done.send(Outcome {
                        result: Err(FunctionError::Init(message)),
                        run: None,
                    });
                }
            }
            self.dispatch(&mut state);
        }
        for note in notes {
            log::line(&self.config.name, &note);
        }
    }

    /// The idle timeout of environment `id`: stops it if it has had no invocation for
    /// `idle_timeout` and the pool keeps more than its provisioned minimum. Returns when to
    /// look again.
    fn reap_if_idle(&self, id: u64) -> Instant {
        let timeout = self.config.idle_timeout;
        let now = Instant::now();
        let stopped = {
            let mut state = self.lock();
            let keep = if state.provisioning {
                self.config.provisioned as usize
            } else {
                0
            };
            let alive = state.envs.values().filter(|s| s.retire.is_none()).count();
            let Some(slot) = state.envs.get_mut(&id) else {
                return now + timeout;
            };
            if !slot.ready || slot.current.is_some() || slot.retire.is_some() {
                return now + timeout;
            }
            let due = slot.idle_since + timeout;
            if due > now {
                return due;
            }
            if alive <= keep {
                return now + timeout;
            }
            slot.kill(Retire::Idle);
            true
        };
        if stopped {
            log::line(
                &self.config.name,
                &format!(
                    "environment {id} stopped after {} s without an invocation (idle timeout)",
                    timeout.as_secs_f64()
                ),
            );
        }
        now + timeout
    }
}
