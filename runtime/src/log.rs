//! The function log: what functions print, plus Lambda's `START`/`END`/`REPORT` lines, on
//! Trellis's stderr, each line prefixed by the function's name so several functions can share
//! one terminal — or, when the binary logs JSON, as `tracing` events, so that every line on
//! stderr parses. Each line also goes to the console's tap ([`tap`]) while someone watches it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

/// The `tracing` target of function log events.
pub const TARGET: &str = "function";

/// How many lines the tap keeps for a watcher that has fallen behind; one further behind loses
/// the oldest (and is told how many), a function never waits for it.
const TAP_CAPACITY: usize = 1024;

/// The longest line the tap passes on (the backends already split lines at 16 KiB); longer
/// ones are cut, so that the lines a slow watcher holds stay within a few MiB.
const MAX_TAPPED_LINE: usize = 4096;

/// One line of a function's log, as the console's live tail shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub function: String,
    pub text: String,
    pub at: SystemTime,
}

/// The console's function log tail (`/ui/api/function-logs`): every function log line, whatever
/// the log format, broadcast to whoever watches. Sending never blocks: a slow watcher drops
/// lines. With nobody watching, a line costs one atomic load more ([`tapped`]).
pub fn tap() -> &'static broadcast::Sender<Arc<Line>> {
    static TAP: LazyLock<broadcast::Sender<Arc<Line>>> =
        LazyLock::new(|| broadcast::channel(TAP_CAPACITY).0);
    &TAP
}

/// Whether anyone watches the function log tail.
pub fn tapped() -> bool {
    tap().receiver_count() > 0
}

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
    if tapped() {
        let mut end = text.len().min(MAX_TAPPED_LINE);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // An error only says nobody watches any more.
        let _ = tap().send(Arc::new(Line {
            function: function.to_owned(),
            text: text[..end].to_owned(),
            at: SystemTime::now(),
        }));
    }
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

/// `REPORT RequestId: … Duration: … ms Billed Duration: … ms Memory Size: … MB [Init Duration: … ms]`.
/// Every backend writes one for each invocation that ran, so this is also where the run is
/// recorded in the function's [`activity`](crate::activity).
pub fn report(
    function: &str,
    request_id: &str,
    duration: Duration,
    memory_mb: u32,
    init: Option<Duration>,
) {
    crate::activity::global()
        .function(function)
        .ran(request_id, duration, init);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_tap_cut_short_and_a_report_is_recorded() {
        let mut watcher = tap().subscribe();
        line("tap-test", "hello\r\n");
        line("tap-test", &"é".repeat(MAX_TAPPED_LINE));
        report(
            "tap-test",
            "req-1",
            Duration::from_millis(3),
            128,
            Some(Duration::from_millis(9)),
        );
        // Other tests log too: only this function's lines count.
        let mut mine = Vec::new();
        loop {
            match watcher.try_recv() {
                Ok(l) if l.function == "tap-test" => mine.push(l),
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        assert_eq!(mine.len(), 3, "{mine:?}");
        assert_eq!(mine[0].text, "hello");
        assert!(mine[1].text.len() <= MAX_TAPPED_LINE && mine[1].text.len() > 4000);
        assert!(mine[2].text.starts_with("REPORT RequestId: req-1\t"));
        let recorded = crate::activity::global()
            .get("tap-test")
            .expect("recorded")
            .invocations();
        assert_eq!(recorded[0].request_id, "req-1");
        assert_eq!(recorded[0].init, Some(Duration::from_millis(9)));
    }
}
