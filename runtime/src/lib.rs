//! trellis-runtime: Lambda semantics shared by every function backend.
//!
//! - [`Function`]: a Lambda-style function: event bytes in, response bytes out. The wasm,
//!   process and container backends (in `trellis-invokers`) implement it.
//! - `event`: the VPC Lattice event codec (V1 and V2) and the response decoder.
//! - `target`: [`LambdaTarget`](target::LambdaTarget) wraps a [`Function`] into a router
//!   [`Target`](trellis_router::Target).
//! - `pool`: the pool of warm environments that process and container functions run in, and
//!   Trellis's Lambda Runtime API they speak.
//! - `log`: the function log (stderr, and a tap the web console watches); `activity`: each
//!   function's last invocations and environments, for the web console.

#![forbid(unsafe_code)]

pub mod activity;
pub mod event;
pub mod log;
pub mod pool;
pub mod stamp;
pub mod target;

use std::time::{Duration, Instant};

use bytes::Bytes;
pub use trellis_router::target::BoxFuture;

/// Lambda's request and response payload limit: 6 MB.
pub const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// What a function invocation knows besides its payload.
#[derive(Debug, Clone)]
pub struct InvokeContext {
    /// The invocation's request id (`Lambda-Runtime-Aws-Request-Id`, `START RequestId: …`).
    pub request_id: String,
    /// When the invocation must have finished (`Lambda-Runtime-Deadline-Ms`).
    pub deadline: Instant,
}

impl InvokeContext {
    /// A context whose deadline is `timeout` from now.
    pub fn new(request_id: impl Into<String>, timeout: Duration) -> InvokeContext {
        InvokeContext {
            request_id: request_id.into(),
            deadline: Instant::now() + timeout,
        }
    }
}

/// Why an invocation produced no response payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionError {
    /// The function did not finish before its timeout; its environment is replaced.
    #[error("function timed out after {0:?}")]
    Timeout(Duration),
    /// The function reported an error (Runtime API `/error`, a wasm trap, a panic).
    #[error("function error {error_type}: {message}")]
    Unhandled { error_type: String, message: String },
    /// The environment died during the invocation (crash, exit, out of memory).
    #[error("function environment failed: {0}")]
    Crashed(String),
    /// The function could not start (missing file, init error, build failure).
    #[error("function could not start: {0}")]
    Init(String),
    /// The response payload is larger than Lambda allows.
    #[error("function response is {0} bytes, over the 6 MB limit")]
    ResponseTooLarge(usize),
}

/// A Lambda-style function: takes an event (JSON bytes) and returns a response (JSON bytes).
pub trait Function: Send + Sync + 'static {
    /// The function's name, for logs.
    fn name(&self) -> &str;

    /// Runs one invocation. Must honour `ctx.deadline` (answer `Timeout` at the latest then).
    fn invoke(
        &self,
        payload: Bytes,
        ctx: InvokeContext,
    ) -> BoxFuture<'_, Result<Bytes, FunctionError>>;
}
