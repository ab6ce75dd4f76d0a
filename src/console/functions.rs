//! The console's functions view, read from the function runtime (`trellis_runtime::activity`)
//! rather than from the metrics: each function's environments (starting, idle, busy), its cold
//! starts and its last invocations; and `GET /ui/api/function-logs`, the function log (what
//! functions print, and their START/END/REPORT lines) as server-sent events from the runtime's
//! tap (`trellis_runtime::log::tap`).
//!
//! The only metrics used are the invocation counts by outcome since Trellis started, which the
//! runtime does not keep (it keeps the last [`RECENT`](trellis_runtime::activity::RECENT)).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::{Response, StatusCode};
use serde_json::{Value, json};
use trellis_router::RoutingTable;
use trellis_runtime::activity::{self, InvocationRecord};
use trellis_runtime::log::Line;

use super::tail::{Tail, Watcher};
use super::{Body, Console, plain, query_value};

impl Console {
    /// Every function of the config being served (see [`Console::function`]).
    pub(super) fn functions(&self) -> Value {
        let table = self.table.load();
        let counts = self.outcome_counts();
        let functions: Vec<Value> = table
            .config
            .functions
            .iter()
            .map(|f| function_view(&table, f, counts.get(&f.name)))
            .collect();
        json!({"functions": functions})
    }

    /// One function: its settings, the target groups it is in, its environments, cold starts,
    /// invocations by outcome and last invocations (newest first); `None` if the config being
    /// served has no function `name`.
    pub(super) fn function(&self, name: &str) -> Option<Value> {
        let table = self.table.load();
        let f = table.config.functions.iter().find(|f| f.name == name)?;
        let counts = self.outcome_counts();
        Some(function_view(&table, f, counts.get(&f.name)))
    }

    /// Invocations by outcome, per function, from the latest metrics sample.
    fn outcome_counts(&self) -> BTreeMap<String, BTreeMap<String, f64>> {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        history
            .back()
            .map(|s| s.functions.clone())
            .unwrap_or_default()
    }

    /// `GET /ui/api/function-logs?function=NAME`: the function log from now on, as server-sent
    /// `line` events (`{"function", "text", "at"}`), only NAME's lines when given. A watcher
    /// that falls behind gets a `dropped` event saying how many lines it lost; the functions
    /// never wait for it.
    pub(super) fn function_tail(&self, query: &str) -> Response<Body> {
        let Some(guard) = Watcher::enter(&self.function_watchers) else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many function-log watchers; close one\n",
            );
        };
        let function = query_value(query, "function").filter(|f| !f.is_empty());
        let tail = Tail {
            receiver: trellis_runtime::log::tap().subscribe(),
            render: Box::new(move |line: &Arc<Line>| {
                if function.as_ref().is_some_and(|f| *f != line.function) {
                    return None;
                }
                let data = json!({
                    "function": line.function, "text": line.text, "at": epoch_seconds(line.at),
                });
                Some(format!("event: line\ndata: {data}\n\n"))
            }),
            items: "lines",
            stop: self.stop.clone(),
            _guard: guard,
            first: true,
        };
        tail.response()
    }
}

fn function_view(
    table: &RoutingTable,
    f: &trellis_config::Function,
    counts: Option<&BTreeMap<String, f64>>,
) -> Value {
    let activity = activity::global().get(&f.name);
    let invocations: BTreeMap<&str, f64> = trellis_router::metrics::OUTCOMES
        .iter()
        .map(|o| {
            let n = counts.and_then(|c| c.get(&format!("outcome:{o}")));
            (*o, n.copied().unwrap_or(0.0))
        })
        .collect();
    // Process and container functions run in a pool of environments; a WebAssembly function
    // runs each invocation in a fresh instance, and has none.
    let environments = activity.as_ref().and_then(|a| a.pool()).map(|p| {
        json!({
            "total": p.environments, "starting": p.starting, "idle": p.idle, "busy": p.busy,
            "queued": p.queued, "launches": p.launches,
        })
    });
    let last: Vec<Value> = activity
        .as_ref()
        .map(|a| a.invocations())
        .unwrap_or_default()
        .iter()
        .map(record)
        .collect();
    json!({
        "name": f.name, "arn": f.arn, "runtime": f.runtime.as_str(),
        "timeoutSeconds": f.timeout_seconds, "memorySizeMb": f.memory_size_mb,
        "concurrency": f.concurrency, "provisioned": f.provisioned,
        "environments": environments,
        "coldStarts": activity.as_ref().map_or(0, |a| a.cold_starts()),
        "invocations": invocations,
        "lastInvocations": last,
        "targetGroups": table.config.target_groups.iter()
            .filter(|g| g.targets.iter().any(|t| t.id == f.name))
            .map(|g| &g.name).collect::<Vec<_>>(),
    })
}

/// One invocation's JSON: times in milliseconds, `null` for what is not known (yet).
fn record(r: &InvocationRecord) -> Value {
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    json!({
        "requestId": r.request_id, "startTime": epoch_seconds(r.started),
        "durationMs": ms(r.duration), "totalMs": ms(r.total),
        "coldStart": r.cold_start(), "initDurationMs": ms(r.init),
        "outcome": r.outcome, "status": r.status, "error": r.error,
    })
}

fn epoch_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
