//! What every wasm invocation shares, whatever the kind of program: the memory limit, the
//! timeout, Lambda's environment variables, and the reading of a failed call.

use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::I32Exit;

/// How long after the deadline the host gives up on a guest that is not running wasm code
/// (blocked in a host call, where epoch checks cannot reach it). Running code is stopped by
/// the epoch at the deadline itself.
pub(crate) const HOST_GRACE: Duration = Duration::from_millis(200);

const MB: usize = 1024 * 1024;

/// Enforces `memorySize` as a budget for all the linear memories of one instance together
/// (a component has several), like Lambda's limit on the whole environment.
///
/// Refusing a growth makes `memory.grow` return -1, as the wasm spec says a limit should; the
/// guest's allocator then fails (a Rust program aborts with "memory allocation of N bytes
/// failed", which is a trap). The refusal is remembered so that the trap can be reported as
/// "out of memory" rather than as a bare `unreachable`.
pub(crate) struct MemoryBudget {
    limit: usize,
    used: usize,
    refused: Option<usize>,
}

impl MemoryBudget {
    pub fn new(memory_mb: u32) -> MemoryBudget {
        MemoryBudget {
            limit: (memory_mb as usize).saturating_mul(MB),
            used: 0,
            refused: None,
        }
    }

    /// The total size the guest asked for when a growth was refused.
    pub fn refused(&self) -> Option<usize> {
        self.refused
    }
}

impl ResourceLimiter for MemoryBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            // Beyond the memory's own declared maximum: wasmtime refuses it anyway, and it is
            // the module's limit, not ours.
            return Ok(false);
        }
        let wanted = self.used.saturating_add(desired.saturating_sub(current));
        if wanted > self.limit {
            self.refused = Some(wanted);
            return Ok(false);
        }
        self.used = wanted;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; their memory is the host's and small next to the
        // linear memory budget. Lambda's limit is about the latter.
        Ok(true)
    }
}

/// Arms the store's timeout: at every epoch tick the guest yields to the tokio scheduler (so a
/// busy function cannot monopolise a worker thread that other requests need), and once
/// `deadline` has passed it traps with [`Trap::Interrupt`].
pub(crate) fn arm_deadline<T: 'static>(store: &mut Store<T>, deadline: Instant) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        }
    });
}

/// Why a call into a guest failed, read from wasmtime's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Stopped at the deadline.
    Timeout,
    /// A memory growth beyond `memorySize` was refused (and the guest then died of it).
    OutOfMemory { limit_mb: u32, wanted_mb: usize },
    /// `proc_exit` / `wasi:cli/exit` with this status (0 is a success, handled by the caller).
    Exit(i32),
    /// A wasm trap, with wasmtime's description (`wasm trap: …`).
    Trap(String),
    /// Anything else: instantiation failed, a host call failed, the pool is exhausted.
    Host(String),
}

impl Failure {
    pub fn of(error: &wasmtime::Error, budget: &MemoryBudget, memory_mb: u32) -> Failure {
        if let Some(exit) = error.downcast_ref::<I32Exit>() {
            return Failure::Exit(exit.0);
        }
        if let Some(Trap::Interrupt) = error.downcast_ref::<Trap>() {
            return Failure::Timeout;
        }
        if let Some(wanted) = budget.refused() {
            return Failure::OutOfMemory {
                limit_mb: memory_mb,
                wanted_mb: wanted.div_ceil(MB),
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(trap) => Failure::Trap(trap.to_string()),
            None => Failure::Host(format!("{error:#}")),
        }
    }

    /// Lambda's `errorType` for this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            Failure::Timeout => "Sandbox.Timedout",
            Failure::OutOfMemory { .. } => "Runtime.OutOfMemory",
            Failure::Exit(_) => "Runtime.ExitError",
            Failure::Trap(_) => "Runtime.Trap",
            Failure::Host(_) => "Runtime.Unknown",
        }
    }

    /// A one-line explanation; `stderr` is the tail of what the guest printed (a panic
    /// message, an allocation failure), which usually says more than the trap itself.
    pub fn message(&self, stderr: Option<&str>) -> String {
        let what = match self {
            Failure::Timeout => "the function timed out".to_owned(),
            Failure::OutOfMemory {
                limit_mb,
                wanted_mb,
            } => format!(
                "out of memory: limit {limit_mb} MB (the function needed {wanted_mb} MB of \
                 linear memory)"
            ),
            Failure::Exit(status) => format!("Runtime exited with error: exit status {status}"),
            Failure::Trap(trap) => trap.clone(),
            Failure::Host(reason) => reason.clone(),
        };
        match stderr {
            Some(tail) => format!("{what}; stderr: {tail}"),
            None => what,
        }
    }
}

/// The environment Lambda gives a function (the reserved variables), on top of the function's
/// own `environment`. Reserved names win, as in Lambda, which refuses to let a function set them.
pub(crate) fn lambda_environment(
    function: &trellis_config::Function,
    region: &str,
    handler: &str,
) -> Vec<(String, String)> {
    let reserved = [
        ("AWS_LAMBDA_FUNCTION_NAME", function.name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            function.memory_size_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", region.to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", function.name),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            trellis_runtime::log::log_stream_name(),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("_HANDLER", handler.to_owned()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_trellis_wasm".to_owned()),
        ("TZ", ":UTC".to_owned()),
    ];
    let mut env: Vec<(String, String)> = function
        .environment
        .iter()
        .filter(|(key, _)| !reserved.iter().any(|(name, _)| name == key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend(reserved.into_iter().map(|(k, v)| (k.to_owned(), v)));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_spans_memories_and_remembers_refusals() {
        let mut budget = MemoryBudget::new(2);
        assert!(budget.memory_growing(0, MB, None).unwrap_or(false));
        assert!(budget.memory_growing(0, MB / 2, None).unwrap_or(false));
        assert!(!budget.memory_growing(MB, 2 * MB, None).unwrap_or(true));
        assert_eq!(budget.refused(), Some(MB * 5 / 2));
    }
}
