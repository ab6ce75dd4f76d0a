//! The pool's shared state and the rule it keeps: one in-flight invocation per environment (see
//! the module documentation of [`super`]). Every change to the state happens here, under its one
//! mutex; the life of an invocation (`invocation.rs`) and of an environment (`supervisor.rs`)
//! call in. The Runtime API server gets an [`EnvironmentApi`], never the state itself.

mod invocation;
mod supervisor;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use trellis_router::metrics;

use super::launcher::Launcher;
use super::{PoolConfig, PoolStats, RETURN_GRACE};
use crate::activity::{self, FunctionActivity};
use crate::{FunctionError, log};

/// The pool's state and configuration, shared by the pool, the invocation tasks, the
/// environments' supervisors and their Runtime API servers.
pub(super) struct Shared {
    config: PoolConfig,
    launcher: Arc<dyn Launcher>,
    state: Mutex<State>,
    /// The number of environments alive, so `shutdown` can wait for zero.
    live: watch::Sender<usize>,
    launches: AtomicU64,
    cold_starts: AtomicU64,
    metrics: Arc<metrics::FunctionMetrics>,
    /// Where the console reads the pool's stats, and this pool's generation there.
    activity: Arc<FunctionActivity>,
    generation: u64,
}

#[derive(Default)]
struct State {
    /// Invocations waiting for an environment, oldest first.
    queue: VecDeque<Pending>,
    envs: BTreeMap<u64, Slot>,
    next_env: u64,
    closed: bool,
    /// Set by [`Pool::provision`](super::Pool::provision): keep `provisioned` environments alive.
    provisioning: bool,
    /// A provisioned environment failed its init; no more are started ahead of demand until
    /// one starts successfully.
    provisioning_failed: bool,
}

/// An invocation not yet answered.
struct Pending {
    request_id: String,
    payload: Bytes,
    deadline: Instant,
    trace_id: String,
    client_context: Option<String>,
    cognito_identity: Option<String>,
    /// Where its outcome goes (the invocation's task).
    done: oneshot::Sender<Outcome>,
    /// Set once it has been re-queued after its environment vanished.
    retried: bool,
    /// The function's timeout, which restarts when a fresh environment takes the invocation.
    timeout: Duration,
    /// The latest `deadline` may move to: arrival + timeout + init timeout.
    limit: Instant,
}

/// What `/next` sends to a runtime.
pub(super) struct Delivery {
    pub(super) request_id: String,
    pub(super) payload: Bytes,
    pub(super) deadline_ms: u64,
    pub(super) function_arn: String,
    pub(super) trace_id: String,
    pub(super) client_context: Option<String>,
    pub(super) cognito_identity: Option<String>,
}

/// An invocation's end.
struct Outcome {
    result: Result<Bytes, FunctionError>,
    /// Set when it ran in an environment (then it gets END and REPORT lines).
    run: Option<Run>,
}

/// An invocation running in an environment.
#[derive(Debug, Clone, Copy)]
struct Run {
    started: Instant,
    /// The environment's init time, for the first invocation it runs.
    init: Option<Duration>,
}

struct InFlight {
    pending: Pending,
    run: Run,
}

/// Why an environment is being stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Retire {
    Drained,
    TimedOut,
    InitError(String),
    InitTimeout,
    Idle,
    Shutdown,
}

/// One execution environment, from launch until its supervisor has seen it gone.
struct Slot {
    launched: Instant,
    /// Set by its first `/next`: init is over.
    ready: bool,
    /// Launch → first `/next`, until the first invocation's REPORT takes it.
    init_duration: Option<Duration>,
    /// A `/next` waiting for work.
    poller: Option<oneshot::Sender<Delivery>>,
    /// The invocation it runs (at most one, see the module documentation).
    current: Option<InFlight>,
    retire: Option<Retire>,
    /// Tells its supervisor to kill it; taken when used.
    kill: Option<oneshot::Sender<()>>,
    /// When it last answered an invocation (`/response` or `/error`).
    answered: Option<Instant>,
    /// Started ahead of demand to keep the provisioned minimum.
    provisioned: bool,
    /// Since when it has had no invocation (launch, then each answer), for the idle timeout.
    idle_since: Instant,
}

impl Slot {
    fn accepts_work(&self) -> bool {
        self.current.is_none()
            && self.retire.is_none()
            && self.poller.as_ref().is_some_and(|p| !p.is_closed())
    }

    /// Whether it will ask for work soon without being parked in `/next` now: it is starting,
    /// or it answered less than [`RETURN_GRACE`] ago and has not polled again yet. Waiting
    /// invocations are counted against these before starting more environments, so
    /// back-to-back invocations reuse the warm environment instead of paying a cold start each,
    /// while a runtime that lingers after answering (flushing telemetry, or stuck) does not
    /// hold invocations back for longer than the grace.
    fn will_poll(&self) -> bool {
        let idle_soon = self.retire.is_none()
            && self.current.is_none()
            && self.poller.as_ref().is_none_or(|p| p.is_closed());
        idle_soon && (!self.ready || self.answered.is_some_and(|at| at.elapsed() < RETURN_GRACE))
    }

    /// Asks the supervisor to kill it (once), recording the first reason given.
    fn kill(&mut self, why: Retire) {
        self.retire.get_or_insert(why);
        self.poller = None;
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// Why a `/next`, `/response` or `/error` request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rejection {
    /// The request id is not the invocation this environment holds.
    InvalidRequestId,
    /// The call does not fit the environment's state (`/next` while an invocation is in
    /// flight, `/init/error` after init).
    InvalidState,
}

impl Shared {
    pub(super) fn new(config: PoolConfig, launcher: Arc<dyn Launcher>) -> Arc<Shared> {
        let activity = activity::global().function(&config.name);
        let generation = activity.attach_pool();
        // An empty pool is shown as one (a function without a pool has no environments).
        activity.publish_pool(generation, PoolStats::default());
        Arc::new(Shared {
            generation,
            activity,
            launcher,
            state: Mutex::new(State::default()),
            live: watch::Sender::new(0),
            launches: AtomicU64::new(0),
            cold_starts: AtomicU64::new(0),
            metrics: metrics::global().function(&config.name),
            config,
        })
    }

    pub(super) fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub(super) fn launcher(&self) -> &dyn Launcher {
        self.launcher.as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state (every step is a
        // plain field update); keep serving rather than poisoning every later request.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// See [`Pool::provision`](super::Pool::provision).
    pub(super) fn provision(self: &Arc<Self>) {
        let mut state = self.lock();
        state.provisioning = true;
        self.dispatch(&mut state);
    }

    /// See [`Pool::drain`](super::Pool::drain).
    pub(super) fn drain(self: &Arc<Self>) {
        let mut state = self.lock();
        for slot in state.envs.values_mut() {
            if slot.current.is_some() {
                slot.retire.get_or_insert(Retire::Drained);
            } else {
                slot.kill(Retire::Drained);
            }
        }
        // Provisioned replacements start now, with the new code.
        self.dispatch(&mut state);
    }

    /// Resolves once no environment is alive (after [`Shared::close`]).
    pub(super) async fn all_gone(&self) {
        let mut live = self.live.subscribe();
        // `Err` only if the sender is gone, which `self` prevents.
        let _ = live.wait_for(|n| *n == 0).await;
    }

    pub(super) fn stats(&self) -> PoolStats {
        self.stats_of(&self.lock())
    }

    fn stats_of(&self, state: &State) -> PoolStats {
        let envs = state.envs.values();
        PoolStats {
            launches: self.launches.load(Ordering::Relaxed),
            cold_starts: self.cold_starts.load(Ordering::Relaxed),
            environments: state.envs.len(),
            starting: envs
                .clone()
                .filter(|s| !s.ready && s.retire.is_none())
                .count(),
            idle: envs
                .clone()
                .filter(|s| s.ready && s.current.is_none() && s.retire.is_none())
                .count(),
            busy: envs.filter(|s| s.current.is_some()).count(),
            queued: state.queue.len(),
        }
    }

    /// Hands waiting invocations to environments parked in `/next`, then starts environments
    /// for the invocations still waiting, within the function's concurrency.
    fn dispatch(self: &Arc<Self>, state: &mut State) {
        self.place(state);
        self.publish(state);
    }

    /// The pool's size, for the metrics' gauges and the console.
    fn publish(&self, state: &State) {
        let stats = self.stats_of(state);
        self.metrics.pool(metrics::PoolSize {
            environments: stats.environments,
            starting: stats.starting,
            idle: stats.idle,
            busy: stats.busy,
            queued: stats.queued,
        });
        self.activity.publish_pool(self.generation, stats);
    }

    /// [`Shared::dispatch`]'s work: hands out and starts environments.
    fn place(self: &Arc<Self>, state: &mut State) {
        let idle: Vec<u64> = state
            .envs
            .iter()
            .filter(|(_, slot)| slot.accepts_work())
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if state.queue.is_empty() {
                break;
            }
            self.hand_off(state, id);
        }
        if state.closed {
            return;
        }
        let concurrency = self.config.concurrency.max(1) as usize;
        let mut coming = state.envs.values().filter(|s| s.will_poll()).count();
        while state.queue.len() > coming && state.envs.len() < concurrency {
            self.launch(state, false);
            coming += 1;
        }
        if state.provisioning && !state.provisioning_failed {
            let keep = (self.config.provisioned as usize).min(concurrency);
            while state.envs.values().filter(|s| s.retire.is_none()).count() < keep
                && state.envs.len() < concurrency
            {
                self.launch(state, true);
            }
        }
    }

    /// Gives the oldest waiting invocation to environment `id` if it accepts work. The only
    /// place an invocation leaves the queue for an environment.
    fn hand_off(&self, state: &mut State, id: u64) -> bool {
        let State { queue, envs, .. } = state;
        let Some(slot) = envs.get_mut(&id) else {
            return false;
        };
        if !slot.accepts_work() {
            return false;
        }
        let (Some(poller), Some(mut pending)) = (slot.poller.take(), queue.pop_front()) else {
            return false;
        };
        if slot.init_duration.is_some() {
            // A fresh environment: its init did not count against the timeout.
            pending.deadline = (Instant::now() + pending.timeout).min(pending.limit);
        }
        let delivery = Delivery {
            request_id: pending.request_id.clone(),
            payload: pending.payload.clone(),
            deadline_ms: epoch_ms(pending.deadline),
            function_arn: self.config.arn.clone(),
            trace_id: pending.trace_id.clone(),
            client_context: pending.client_context.clone(),
            cognito_identity: pending.cognito_identity.clone(),
        };
        if poller.send(delivery).is_err() {
            // The `/next` went away in the meantime: the invocation keeps its place.
            queue.push_front(pending);
            return false;
        }
        let init = slot.init_duration.take();
        if init.is_some() {
            self.cold_starts.fetch_add(1, Ordering::Relaxed);
            self.metrics.cold_start();
        }
        slot.current = Some(InFlight {
            pending,
            run: Run {
                started: Instant::now(),
                init,
            },
        });
        true
    }

    /// `/next` from environment `id`: parks a poller (replacing an older one) and hands it the
    /// oldest waiting invocation if there is one.
    fn poll_next(self: &Arc<Self>, id: u64) -> Result<oneshot::Receiver<Delivery>, Rejection> {
        let mut ready_note = None;
        let rx = {
            let mut state = self.lock();
            let slot = state.envs.get_mut(&id).ok_or(Rejection::InvalidState)?;
            if slot.current.is_some() {
                return Err(Rejection::InvalidState);
            }
            if !slot.ready {
                slot.ready = true;
                slot.idle_since = Instant::now();
                let init = slot.launched.elapsed();
                self.metrics.environment_ready(init.as_secs_f64());
                if slot.provisioned {
                    // Its first invocation is not a cold start: no Init Duration in its REPORT.
                    ready_note = Some(init);
                } else {
                    slot.init_duration = Some(init);
                }
                state.provisioning_failed = false;
            }
            let (tx, rx) = oneshot::channel();
            if let Some(slot) = state.envs.get_mut(&id) {
                slot.poller = Some(tx);
            }
            self.dispatch(&mut state);
            rx
        };
        if let Some(init) = ready_note {
            log::line(
                &self.config.name,
                &format!(
                    "provisioned environment {id} ready (Init Duration: {:.2} ms)",
                    init.as_secs_f64() * 1000.0
                ),
            );
        }
        Ok(rx)
    }

    /// Whether environment `id` holds invocation `request_id` (checked before reading a body).
    fn holds(&self, id: u64, request_id: &str) -> Result<(), Rejection> {
        let state = self.lock();
        let holds = state
            .envs
            .get(&id)
            .and_then(|slot| slot.current.as_ref())
            .is_some_and(|c| c.pending.request_id == request_id);
        if holds {
            Ok(())
        } else {
            Err(Rejection::InvalidRequestId)
        }
    }

    /// `/response` or `/error` for `request_id` from environment `id`: the invocation ends with
    /// `result`. A drained environment is stopped now that it is idle.
    fn complete(
        &self,
        id: u64,
        request_id: &str,
        result: Result<Bytes, FunctionError>,
    ) -> Result<(), Rejection> {
        let mut state = self.lock();
        let slot = state
            .envs
            .get_mut(&id)
            .filter(|slot| {
                slot.current
                    .as_ref()
                    .is_some_and(|c| c.pending.request_id == request_id)
            })
            .ok_or(Rejection::InvalidRequestId)?;
        let Some(inflight) = slot.current.take() else {
            return Err(Rejection::InvalidRequestId);
        };
        slot.answered = Some(Instant::now());
        slot.idle_since = Instant::now();
        if slot.retire.is_some() {
            slot.kill(Retire::Drained);
        }
        self.publish(&state);
        let _ = inflight.pending.done.send(Outcome {
            result,
            run: Some(inflight.run),
        });
        Ok(())
    }

    /// `/init/error` from environment `id`: it is discarded, and the error goes to the oldest
    /// waiting invocation once it is gone.
    fn init_error(&self, id: u64, message: String) -> Result<(), Rejection> {
        let mut state = self.lock();
        let slot = state
            .envs
            .get_mut(&id)
            .filter(|slot| !slot.ready)
            .ok_or(Rejection::InvalidState)?;
        slot.kill(Retire::InitError(message));
        Ok(())
    }

    /// Refuses new work, fails waiting invocations, and kills every environment.
    pub(super) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for pending in state.queue.drain(..) {
            let _ = pending.done.send(Outcome {
                result: Err(FunctionError::Crashed(format!(
                    "function {} is shutting down",
                    self.config.name
                ))),
                run: None,
            });
        }
        for slot in state.envs.values_mut() {
            slot.kill(Retire::Shutdown);
        }
        self.publish(&state);
    }
}

/// What one environment's Runtime API endpoint may ask of the pool: the calls a runtime makes,
/// on behalf of that environment only. The HTTP server holds this handle, so it cannot reach
/// the pool's state, and a request can only ever act for the environment whose port it came in
/// on.
pub(super) struct EnvironmentApi {
    shared: Arc<Shared>,
    env: u64,
}

impl EnvironmentApi {
    /// The function's name, for its log.
    pub(super) fn function(&self) -> &str {
        &self.shared.config.name
    }

    /// `/next`: a receiver for the next invocation this environment runs.
    pub(super) fn next(&self) -> Result<oneshot::Receiver<Delivery>, Rejection> {
        self.shared.poll_next(self.env)
    }

    /// Whether this environment holds invocation `request_id` (checked before reading a body).
    pub(super) fn holds(&self, request_id: &str) -> Result<(), Rejection> {
        self.shared.holds(self.env, request_id)
    }

    /// `/response` or `/error`: invocation `request_id` ends with `result`.
    pub(super) fn complete(
        &self,
        request_id: &str,
        result: Result<Bytes, FunctionError>,
    ) -> Result<(), Rejection> {
        self.shared.complete(self.env, request_id, result)
    }

    /// `/init/error`: this environment failed to initialize.
    pub(super) fn init_error(&self, message: String) -> Result<(), Rejection> {
        self.shared.init_error(self.env, message)
    }
}

/// `Lambda-Runtime-Deadline-Ms`: the deadline as milliseconds since the Unix epoch.
fn epoch_ms(deadline: Instant) -> u64 {
    let at = SystemTime::now() + deadline.saturating_duration_since(Instant::now());
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An X-Ray trace header as Lambda sends it (`Root=1-<epoch hex>-<96 bits>;Parent=…;Sampled=0`):
/// runtimes copy it into `_X_AMZN_TRACE_ID`, and some SDKs refuse to start without it.
pub(super) fn trace_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let root = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        &root[..24],
        &parent[..16]
    )
}
