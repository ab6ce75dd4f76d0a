//! Trellis's own Lambda Runtime API, and the pool of warm execution environments behind it.
//!
//! Process and container functions are ordinary Lambda custom runtimes: programs that read
//! `AWS_LAMBDA_RUNTIME_API` and loop over `GET /2018-06-01/runtime/invocation/next`, then
//! `POST …/invocation/{id}/response` (or `/error`). This module serves that API and decides which
//! environment runs which invocation; *how* an environment is started (a local process, a Docker
//! container) is a [`Launcher`]'s business.
//!
//! # One in-flight invocation per environment
//!
//! Every environment gets its **own listener** (its own port): `AWS_LAMBDA_RUNTIME_API` is only a
//! `host:port`, so a path prefix cannot tell environments apart, and HTTP connections cannot
//! either (a shell runtime opens a new connection per `curl`, a pooled client may open several).
//! The port a request arrives on therefore names the environment without trusting anything the
//! runtime sends. The function's invocations share one work queue; all of the pool's state sits
//! behind one mutex, and an invocation leaves the queue only in `Shared::hand_off`, which
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

mod server;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use trellis_router::metrics;

use crate::{BoxFuture, Function, FunctionError, InvokeContext, log};

/// The default for [`PoolConfig::init_timeout`]: Lambda's init phase limit.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default for [`PoolConfig::idle_timeout`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// How long an environment that has just answered is expected to take to ask for more work;
/// see `Slot::will_poll`. Runtimes normally poll again within a millisecond.
const RETURN_GRACE: Duration = Duration::from_millis(200);

/// Everything the pool needs to know about the function it runs.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`, log prefix).
    pub name: String,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub arn: String,
    /// `AWS_REGION` and `AWS_DEFAULT_REGION`.
    pub region: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` and the REPORT line's `Memory Size`.
    pub memory_size_mb: u32,
    /// At most this many environments run at once (reserved concurrency).
    pub concurrency: u32,
    /// How long a new environment may take from launch to its first `/next` before it is
    /// killed and the invocation waiting for it fails; without it, a runtime that hangs in init
    /// would hold a concurrency slot forever.
    pub init_timeout: Duration,
    /// Environments kept alive once [`Pool::provision`] is called (Lambda's provisioned
    /// concurrency); at most `concurrency`.
    pub provisioned: u32,
    /// An environment with no invocation for this long is stopped (down to `provisioned`), so
    /// a burst does not leave containers and processes running all day.
    pub idle_timeout: Duration,
    /// The function's own environment variables.
    pub environment: BTreeMap<String, String>,
    /// `_HANDLER`. Custom runtimes mostly ignore it; Lambda always sets it.
    pub handler: String,
    /// `LAMBDA_TASK_ROOT`: where the function's code lives.
    pub task_root: String,
    /// `AWS_EXECUTION_ENV`. Lambda leaves it unset for OS-only (`provided`) runtimes, which is
    /// what a process function is, so the default is `None`.
    pub execution_env: Option<String>,
    /// The address each environment's Runtime API endpoint listens on (port 0: any free port).
    /// Loopback by default; containers need an address they can reach.
    pub bind: IpAddr,
    /// The host name given to environments in `AWS_LAMBDA_RUNTIME_API` when it differs from
    /// `bind` (`host.docker.internal`, a bridge gateway). `None`: the bind address itself, or
    /// loopback when binding to all interfaces.
    pub advertise_host: Option<String>,
}

impl PoolConfig {
    /// The pool settings for a configured function, with Lambda's defaults for the rest.
    pub fn new(function: &trellis_config::Function, region: &str) -> PoolConfig {
        PoolConfig {
            name: function.name.clone(),
            arn: function.arn.clone(),
            region: region.to_owned(),
            memory_size_mb: function.memory_size_mb,
            concurrency: function.concurrency.max(1),
            init_timeout: INIT_TIMEOUT,
            provisioned: function.provisioned.min(function.concurrency.max(1)),
            idle_timeout: Duration::from_secs(u64::from(function.idle_timeout_seconds)),
            environment: function.environment.clone(),
            handler: "bootstrap".to_owned(),
            task_root: "/var/task".to_owned(),
            execution_env: None,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertise_host: None,
        }
    }

    /// The environment variables of one execution environment, in the order to apply them
    /// (later entries win). Variables Lambda lets users override (`TZ`, `LANG`) come first, then
    /// the function's own, then the reserved ones Lambda does not let a function change, so a
    /// stray `AWS_LAMBDA_RUNTIME_API` in the config cannot point a runtime elsewhere.
    /// `provisioned`: the environment is started ahead of demand
    /// (`AWS_LAMBDA_INITIALIZATION_TYPE`).
    pub fn environment_for(
        &self,
        runtime_api: &str,
        log_stream: &str,
        provisioned: bool,
    ) -> Vec<(String, String)> {
        let initialization_type = if provisioned {
            "provisioned-concurrency"
        } else {
            "on-demand"
        };
        let mut env: Vec<(String, String)> = vec![
            ("TZ".into(), ":UTC".into()),
            ("LANG".into(), "en_US.UTF-8".into()),
        ];
        env.extend(self.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
        let reserved = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME", self.name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.memory_size_mb.to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.name),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream.to_owned()),
            (
                "AWS_LAMBDA_INITIALIZATION_TYPE",
                initialization_type.to_owned(),
            ),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("LAMBDA_TASK_ROOT", self.task_root.clone()),
            ("_HANDLER", self.handler.clone()),
        ];
        env.extend(reserved.into_iter().map(|(k, v)| (k.to_owned(), v)));
        if let Some(exec) = &self.execution_env {
            env.push(("AWS_EXECUTION_ENV".into(), exec.clone()));
        }
        env
    }

    /// `host:port` for `AWS_LAMBDA_RUNTIME_API`, given the port an environment's listener got.
    fn runtime_api(&self, port: u16) -> String {
        match (&self.advertise_host, self.bind) {
            (Some(host), _) => format!("{host}:{port}"),
            (None, ip) if ip.is_unspecified() => format!("127.0.0.1:{port}"),
            (None, IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
            (None, IpAddr::V4(ip)) => format!("{ip}:{port}"),
        }
    }
}

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

/// Why an environment could not be started. The message is shown to the user as the
/// invocation's init error, so it should name what is missing (a path, an image).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LaunchError(pub String);

/// How an environment ended, in words (`exit status 3`, `killed by signal 9`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit(pub String);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Starts execution environments: a process launcher now, a Docker launcher later.
pub trait Launcher: Send + Sync + 'static {
    /// Starts one environment that talks to `spec.runtime_api`. Returns once it is started (not
    /// once it is ready: readiness is its first `/next`).
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<Box<dyn Environment>, LaunchError>>;
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

/// A snapshot of a pool's counters, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Environments started since the pool was created.
    pub launches: u64,
    /// Invocations that ran in a fresh environment (their REPORT has `Init Duration`).
    pub cold_starts: u64,
    /// Environments alive now (starting, idle, busy or being stopped).
    pub environments: usize,
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
            shared: Arc::new(Shared {
                launcher,
                state: Mutex::new(State::default()),
                live: watch::Sender::new(0),
                launches: AtomicU64::new(0),
                cold_starts: AtomicU64::new(0),
                metrics: metrics::global().function(&config.name),
                config,
            }),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// Starts `provisioned` environments now and keeps that many alive from then on (see the
    /// module documentation). Does nothing when `provisioned` is 0.
    pub fn provision(&self) {
        let mut state = self.shared.lock();
        state.provisioning = true;
        self.shared.dispatch(&mut state);
    }

    /// Runs one invocation: waits for an idle environment (starting one if the concurrency
    /// allows), hands it the event, and returns its answer, or an error by `ctx.deadline`.
    pub async fn invoke_with(&self, invocation: Invocation) -> Result<Bytes, FunctionError> {
        let (answer_tx, answer_rx) = oneshot::channel();
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
        let mut state = self.shared.lock();
        for slot in state.envs.values_mut() {
            if slot.current.is_some() {
                slot.retire.get_or_insert(Retire::Drained);
            } else {
                slot.kill(Retire::Drained);
            }
        }
        // Provisioned replacements start now, with the new code.
        self.shared.dispatch(&mut state);
    }

    /// Stops everything: waiting invocations fail, every environment is killed (an invocation
    /// in flight fails with `Crashed`), and this returns once all of them are gone. Later
    /// invocations fail at once.
    pub async fn shutdown(&self) {
        self.shared.close();
        let mut live = self.shared.live.subscribe();
        // `Err` only if the sender is gone, which `self.shared` prevents.
        let _ = live.wait_for(|n| *n == 0).await;
    }

    pub fn stats(&self) -> PoolStats {
        let state = self.shared.lock();
        PoolStats {
            launches: self.shared.launches.load(Ordering::Relaxed),
            cold_starts: self.shared.cold_starts.load(Ordering::Relaxed),
            environments: state.envs.len(),
            busy: state.envs.values().filter(|s| s.current.is_some()).count(),
            queued: state.queue.len(),
        }
    }

    /// Invocations that ran in a fresh environment.
    pub fn cold_starts(&self) -> u64 {
        self.shared.cold_starts.load(Ordering::Relaxed)
    }

    /// Environments alive now.
    pub fn environments(&self) -> usize {
        self.shared.lock().envs.len()
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
        &self.shared.config.name
    }

    fn invoke(
        &self,
        payload: Bytes,
        ctx: InvokeContext,
    ) -> BoxFuture<'_, Result<Bytes, FunctionError>> {
        Box::pin(self.invoke_with(Invocation::new(payload, ctx)))
    }
}

/// The pool's state and configuration, shared by the pool, the invocation tasks, the
/// environments' supervisors and their Runtime API servers.
struct Shared {
    config: PoolConfig,
    launcher: Arc<dyn Launcher>,
    state: Mutex<State>,
    /// The number of environments alive, so `shutdown` can wait for zero.
    live: watch::Sender<usize>,
    launches: AtomicU64,
    cold_starts: AtomicU64,
    metrics: Arc<metrics::FunctionMetrics>,
}

#[derive(Default)]
struct State {
    /// Invocations waiting for an environment, oldest first.
    queue: VecDeque<Pending>,
    envs: BTreeMap<u64, Slot>,
    next_env: u64,
    closed: bool,
    /// Set by [`Pool::provision`]: keep `provisioned` environments alive.
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
struct Delivery {
    request_id: String,
    payload: Bytes,
    deadline_ms: u64,
    function_arn: String,
    trace_id: String,
    client_context: Option<String>,
    cognito_identity: Option<String>,
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

/// What [`Shared::expire`] decided.
enum Expiry {
    Expired(Outcome),
    /// Not yet: look again at this instant.
    Later(Instant),
    /// It has been answered; the outcome is on its way.
    Answered,
}

/// Why a `/next`, `/response` or `/error` request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rejection {
    /// The request id is not the invocation this environment holds.
    InvalidRequestId,
    /// The call does not fit the environment's state (`/next` while an invocation is in
    /// flight, `/init/error` after init).
    InvalidState,
}

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
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state (every step is a
        // plain field update); keep serving rather than poisoning every later request.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The life of one invocation, in its own task: queue it, wait for its outcome or its
    /// deadline, log END/REPORT, and pass the result to the caller.
    async fn run(
        self: Arc<Self>,
        invocation: Invocation,
        mut answer: oneshot::Sender<Result<Bytes, FunctionError>>,
    ) {
        let Invocation {
            payload,
            ctx,
            client_context,
            cognito_identity,
        } = invocation;
        let request_id = ctx.request_id;
        // What `Timeout` reports: the time this invocation was given, to the centisecond
        // (the caller computed the deadline a moment before it got here).
        let allowed = ctx.deadline.saturating_duration_since(Instant::now());
        let allowed = Duration::from_millis((allowed.as_millis() as u64).div_ceil(10) * 10);
        let (done_tx, mut done_rx) = oneshot::channel();
        let pending = Pending {
            request_id: request_id.clone(),
            payload,
            deadline: ctx.deadline,
            trace_id: trace_id(),
            client_context,
            cognito_identity,
            done: done_tx,
            retried: false,
            timeout: ctx.deadline.saturating_duration_since(Instant::now()),
            limit: ctx.deadline + self.config.init_timeout,
        };
        if let Err(e) = self.enqueue(pending) {
            let _ = answer.send(Err(e));
            return;
        }
        let deadline = tokio::time::sleep_until(ctx.deadline.into());
        tokio::pin!(deadline);
        let mut caller_waits = true;
        // While it waits, look again now and then: an environment counted on to poll again
        // soon (see `Slot::will_poll`) may not, and then another one should start.
        let mut recheck =
            tokio::time::interval_at((Instant::now() + RETURN_GRACE).into(), RETURN_GRACE);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut queued = true;
        let lost = || Outcome {
            result: Err(FunctionError::Crashed("the invocation was lost".into())),
            run: None,
        };
        let outcome = loop {
            tokio::select! {
                outcome = &mut done_rx => break outcome.unwrap_or_else(|_| lost()),
                _ = &mut deadline => {
                    match self.expire(&request_id, allowed) {
                        Expiry::Expired(outcome) => break outcome,
                        Expiry::Later(at) => deadline.as_mut().reset(at.into()),
                        // It was answered just now: the outcome is in the channel already.
                        Expiry::Answered => break (&mut done_rx).await.unwrap_or_else(|_| lost()),
                    }
                }
                _ = recheck.tick(), if queued => queued = self.recheck(&request_id),
                _ = answer.closed(), if caller_waits => {
                    if self.withdraw(&request_id) {
                        return;
                    }
                    // Already running: let it finish (as Lambda does) and log its REPORT.
                    caller_waits = false;
                }
            }
        };
        self.report(&request_id, &outcome);
        let _ = answer.send(outcome.result);
    }

    fn enqueue(self: &Arc<Self>, pending: Pending) -> Result<(), FunctionError> {
        let mut state = self.lock();
        if state.closed {
            return Err(FunctionError::Crashed(format!(
                "function {} is shutting down",
                self.config.name
            )));
        }
        state.queue.push_back(pending);
        self.dispatch(&mut state);
        Ok(())
    }

    /// Re-runs the dispatch for a still-waiting invocation; `false` once it is not waiting.
    fn recheck(self: &Arc<Self>, request_id: &str) -> bool {
        let mut state = self.lock();
        let waiting = state.queue.iter().any(|p| p.request_id == request_id);
        if waiting {
            self.dispatch(&mut state);
        }
        waiting
    }

    /// Removes a still-waiting invocation whose caller went away; `false` if it already runs.
    fn withdraw(&self, request_id: &str) -> bool {
        let mut state = self.lock();
        match state.queue.iter().position(|p| p.request_id == request_id) {
            Some(i) => {
                state.queue.remove(i);
                self.publish(&state);
                true
            }
            None => false,
        }
    }

    /// The caller's deadline passed: a waiting invocation leaves the queue (unless an
    /// environment is starting: see "Deadlines" in the module documentation); a running one is
    /// taken from its environment, which is killed (and replaced on demand), unless a cold start
    /// moved its deadline later.
    fn expire(&self, request_id: &str, allowed: Duration) -> Expiry {
        let timeout = Err(FunctionError::Timeout(allowed));
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(i) = state.queue.iter().position(|p| p.request_id == request_id) {
            let limit = state.queue[i].limit;
            let starting = state
                .envs
                .values()
                .any(|slot| !slot.ready && slot.retire.is_none());
            if starting && now < limit {
                return Expiry::Later(limit.min(now + RETURN_GRACE));
            }
            state.queue.remove(i);
            self.publish(&state);
            return Expiry::Expired(Outcome {
                result: timeout,
                run: None,
            });
        }
        for slot in state.envs.values_mut() {
            let Some(inflight) = slot
                .current
                .as_ref()
                .filter(|c| c.pending.request_id == request_id)
            else {
                continue;
            };
            if inflight.pending.deadline > now {
                return Expiry::Later(inflight.pending.deadline);
            }
            let run = slot.current.take().map(|c| c.run);
            slot.kill(Retire::TimedOut);
            return Expiry::Expired(Outcome {
                result: timeout,
                run,
            });
        }
        Expiry::Answered
    }

    /// Hands waiting invocations to environments parked in `/next`, then starts environments
    /// for the invocations still waiting, within the function's concurrency.
    fn dispatch(self: &Arc<Self>, state: &mut State) {
        self.place(state);
        self.publish(state);
    }

    /// The pool's size, for the metrics' gauges.
    fn publish(&self, state: &State) {
        self.metrics.pool(
            state.envs.len(),
            state.envs.values().filter(|s| s.current.is_some()).count(),
            state.queue.len(),
        );
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

    /// Reserves a slot for a new environment and starts its supervisor. `provisioned`: it is
    /// started ahead of demand, to keep the provisioned minimum.
    fn launch(self: &Arc<Self>, state: &mut State, provisioned: bool) {
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
        let server = AbortOnDrop(tokio::spawn(server::serve(listener, Arc::clone(self), id)));
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
        let env = self.launcher.launch(spec).await.map_err(|e| e.0)?;
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
    fn close(&self) {
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

    /// The END and REPORT lines of an invocation that ran, with Lambda's wording for timeouts
    /// and runtime exits; a note for one that timed out waiting.
    fn report(&self, request_id: &str, outcome: &Outcome) {
        let name = &self.config.name;
        let Some(run) = outcome.run else {
            if let Err(FunctionError::Timeout(t)) = &outcome.result {
                log::line(
                    name,
                    &format!(
                        "{request_id} Task timed out after {:.2} seconds waiting for an execution environment (concurrency {})",
                        t.as_secs_f64(),
                        self.config.concurrency
                    ),
                );
            }
            return;
        };
        match &outcome.result {
            Err(FunctionError::Timeout(t)) => log::line(
                name,
                &format!(
                    "{request_id} Task timed out after {:.2} seconds",
                    t.as_secs_f64()
                ),
            ),
            Err(FunctionError::Crashed(message)) => {
                log::line(name, &format!("RequestId: {request_id} Error: {message}"))
            }
            _ => {}
        }
        log::end(name, request_id);
        log::report(
            name,
            request_id,
            run.started.elapsed(),
            self.config.memory_size_mb,
            run.init,
        );
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
fn trace_id() -> String {
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
