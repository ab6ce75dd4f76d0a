//! The function log: what functions print, plus Lambda's `START`/`END`/`REPORT` lines, on
//! Trellis's stderr, each line prefixed by the function's name so several functions can share
//! one terminal — or, when the binary logs JSON, as `tracing` events, so that every line on
//! stderr parses.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The `tracing` target of function log events.
pub const TARGET: &str = "function";

static AS_EVENTS: AtomicBool = AtomicBool::new(false);

/// From now on, function log lines are `tracing` events (target [`TARGET`], the function's name
/// in the `function` field, the line as the message) rather than `[name] text` lines. The binary
/// turns this on with `--log-format json`; `RUST_LOG` then filters them like any other event.
pub fn as_events() {
    AS_EVENTS.store(true, Ordering::Relaxed);
}

/// Writes one line of `function`'s log.
pub fn line(function: &str, text: &str) {
    let text = text.trim_end_matches(['\n', '\r']);
    if AS_EVENTS.load(Ordering::Relaxed) {
        tracing::info!(target: TARGET, function, "{text}");
    } else {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "[{function}] {text}");
    }
}

/// `START RequestId: … Version: $LATEST`
pub fn start(function: &str, request_id: &str) {
    line(
        function,
        &format!("START RequestId: {request_id} Version: $LATEST"),
    );
}

/// `END RequestId: …`
pub fn end(function: &str, request_id: &str) {
    line(function, &format!("END RequestId: {request_id}"));
}

/// `REPORT RequestId: … Duration: … ms Billed Duration: … ms Memory Size: … MB [Init Duration: … ms]`
pub fn report(
    function: &str,
    request_id: &str,
    duration: Duration,
    memory_mb: u32,
    init: Option<Duration>,
) {
    let ms = duration.as_secs_f64() * 1000.0;
    let billed = ms.ceil().max(1.0) as u64;
    let init = init
        .map(|d| format!(" Init Duration: {:.2} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_default();
    line(
        function,
        &format!(
            "REPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {memory_mb} MB{init}"
        ),
    );
}

/// `AWS_LAMBDA_LOG_STREAM_NAME` in Lambda's shape, `YYYY/MM/DD/[$LATEST]<32 hex digits>`: one
/// per environment.
pub fn log_stream_name() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let (y, m, d) = trellis_router::accesslog::civil_from_days(days as i64);
    format!(
        "{y:04}/{m:02}/{d:02}/[$LATEST]{}",
        uuid::Uuid::new_v4().simple()
    )
}
