//! What each function is doing, for the web console: its last invocations (request id, start,
//! duration, outcome and status, cold start and init duration) and its pool's environments
//! (starting, idle, busy).
//!
//! Process-wide, like the metrics and the function log: an invocation is seen by two layers
//! that know different halves of it. The backend that ran it knows its duration and whether it
//! was a cold start (it writes the REPORT line, [`crate::log::report`], which records that
//! half here); the caller in front of it ([`LambdaTarget`](crate::target::LambdaTarget), or a
//! wasi:http component's target) knows its outcome and the status the client got
//! ([`FunctionActivity::answered`]). The two halves meet by request id, in whichever order they
//! come. An invocation that never ran (it timed out waiting for an environment) has only the
//! second half.
//!
//! Bounded: [`RECENT`] invocations per function, request ids and error texts cut short, and one
//! entry per function name (functions a reload removed are dropped by [`Activity::retain`]).
//! Recording takes a short lock that nothing holds for longer than a copy of the records.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::pool::PoolStats;

/// How many invocations are kept per function, newest first.
pub const RECENT: usize = 50;

/// The longest request id kept (a client may choose its `x-amzn-requestid`).
const MAX_REQUEST_ID: usize = 128;

/// The longest error text kept.
const MAX_ERROR: usize = 512;

/// One invocation as the console shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationRecord {
    pub request_id: String,
    /// When it started: handed to the function, or (one that never ran) to the caller.
    pub started: SystemTime,
    /// How long the function ran (the REPORT line's `Duration`); `None` if it never ran or its
    /// REPORT has not come yet.
    pub duration: Option<Duration>,
    /// From the caller's point of view: from handing the event to the function to its answer,
    /// waiting for an environment and a cold start included; `None` until answered.
    pub total: Option<Duration>,
    /// The environment's init time when this invocation was a cold start (the REPORT line's
    /// `Init Duration`).
    pub init: Option<Duration>,
    /// One of [`trellis_router::metrics::OUTCOMES`]; `None` until answered.
    pub outcome: Option<&'static str>,
    /// The HTTP status the client got; `None` until answered.
    pub status: Option<u16>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl InvocationRecord {
    fn new(request_id: &str, started: SystemTime) -> InvocationRecord {
        InvocationRecord {
            request_id: cut(request_id, MAX_REQUEST_ID).to_owned(),
            started,
            duration: None,
            total: None,
            init: None,
            outcome: None,
            status: None,
            error: None,
        }
    }

    /// Whether it was a cold start: it ran in a fresh environment.
    pub fn cold_start(&self) -> bool {
        self.init.is_some()
    }
}

/// One function's activity. Get it with [`global`]`().function(name)`.
#[derive(Debug, Default)]
pub struct FunctionActivity {
    recent: Mutex<Recent>,
    /// The newest pool's stats, with the generation of that pool.
    pool: Mutex<Option<(u64, PoolStats)>>,
    /// The generation of the newest pool made for this function.
    generation: AtomicU64,
}

#[derive(Debug, Default)]
struct Recent {
    /// Oldest first; at most [`RECENT`].
    records: VecDeque<InvocationRecord>,
    cold_starts: u64,
}

impl Recent {
    /// The record of `request_id` (the newest with that id), made if there is none.
    fn entry(&mut self, request_id: &str, started: SystemTime) -> &mut InvocationRecord {
        let id = cut(request_id, MAX_REQUEST_ID);
        let found = self.records.iter().rposition(|r| r.request_id == id);
        let index = match found {
            Some(i) => i,
            None => {
                if self.records.len() >= RECENT {
                    self.records.pop_front();
                }
                self.records
                    .push_back(InvocationRecord::new(request_id, started));
                self.records.len() - 1
            }
        };
        &mut self.records[index]
    }
}

impl FunctionActivity {
    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The function ran invocation `request_id` for `duration`, in a fresh environment whose
    /// init took `init` (a cold start) or in a warm one (`None`): the REPORT line's facts.
    pub fn ran(&self, request_id: &str, duration: Duration, init: Option<Duration>) {
        let started = ago(duration);
        let mut recent = self.recent();
        if init.is_some() {
            recent.cold_starts += 1;
        }
        let record = recent.entry(request_id, started);
        record.started = started;
        record.duration = Some(duration);
        record.init = init;
    }

    /// The caller got its answer to invocation `request_id` after `total`: `outcome` (one of
    /// [`trellis_router::metrics::OUTCOMES`]), the HTTP `status` the client gets, and why it
    /// failed if it did.
    pub fn answered(
        &self,
        request_id: &str,
        total: Duration,
        outcome: &'static str,
        status: u16,
        error: Option<&str>,
    ) {
        let mut recent = self.recent();
        let record = recent.entry(request_id, ago(total));
        record.total = Some(total);
        record.outcome = Some(outcome);
        record.status = Some(status);
        record.error = error.map(|e| cut(e, MAX_ERROR).to_owned());
    }

    /// The last [`RECENT`] invocations, newest first.
    pub fn invocations(&self) -> Vec<InvocationRecord> {
        self.recent().records.iter().rev().cloned().collect()
    }

    /// Invocations that were cold starts since Trellis started.
    pub fn cold_starts(&self) -> u64 {
        self.recent().cold_starts
    }

    /// The stats of the function's newest pool (process and container functions); `None` for
    /// a function that runs without one (WebAssembly: a fresh instance per invocation).
    pub fn pool(&self) -> Option<PoolStats> {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|(_, stats)| stats)
    }

    /// A new pool for this function: its generation, for [`FunctionActivity::publish_pool`].
    /// When a function's settings change, its new pool replaces the old one while the old one
    /// drains, and only the new one's stats are shown.
    pub(crate) fn attach_pool(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The pool of generation `generation` now has `stats` (ignored from an older pool).
    pub(crate) fn publish_pool(&self, generation: u64, stats: PoolStats) {
        if generation < self.generation.load(Ordering::Relaxed) {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.is_none_or(|(g, _)| g <= generation) {
            *pool = Some((generation, stats));
        }
    }
}

/// Every function's activity, by name.
#[derive(Debug, Default)]
pub struct Activity {
    functions: Mutex<HashMap<String, Arc<FunctionActivity>>>,
}

/// The process's function activity.
pub fn global() -> &'static Activity {
    static ACTIVITY: LazyLock<Activity> = LazyLock::new(Activity::default);
    &ACTIVITY
}

impl Activity {
    fn functions(&self) -> MutexGuard<'_, HashMap<String, Arc<FunctionActivity>>> {
        self.functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Function `name`'s activity, made on first use.
    pub fn function(&self, name: &str) -> Arc<FunctionActivity> {
        let mut functions = self.functions();
        if let Some(f) = functions.get(name) {
            return Arc::clone(f);
        }
        let f = Arc::new(FunctionActivity::default());
        functions.insert(name.to_owned(), Arc::clone(&f));
        f
    }

    /// Function `name`'s activity if it has any.
    pub fn get(&self, name: &str) -> Option<Arc<FunctionActivity>> {
        self.functions().get(name).cloned()
    }

    /// Forgets the functions not in `names` (after a reload removed them).
    pub fn retain(&self, names: &[&str]) {
        self.functions()
            .retain(|name, _| names.contains(&name.as_str()));
    }
}

/// `elapsed` before now.
fn ago(elapsed: Duration) -> SystemTime {
    let now = SystemTime::now();
    now.checked_sub(elapsed).unwrap_or(now)
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_halves_of_an_invocation_meet_in_either_order() {
        let f = FunctionActivity::default();
        f.ran(
            "a",
            Duration::from_millis(5),
            Some(Duration::from_millis(40)),
        );
        f.answered("a", Duration::from_millis(50), "success", 200, None);
        f.answered(
            "b",
            Duration::from_millis(3000),
            "timeout",
            504,
            Some("timed out"),
        );
        f.ran("b", Duration::from_millis(2999), None);
        let all = f.invocations();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].request_id, "b");
        assert_eq!(all[0].outcome, Some("timeout"));
        assert_eq!(all[0].status, Some(504));
        assert_eq!(all[0].duration, Some(Duration::from_millis(2999)));
        assert!(!all[0].cold_start());
        assert_eq!(all[1].request_id, "a");
        assert_eq!(all[1].init, Some(Duration::from_millis(40)));
        assert_eq!(all[1].total, Some(Duration::from_millis(50)));
        assert!(all[1].cold_start());
        assert_eq!(f.cold_starts(), 1);
    }

    #[test]
    fn only_the_last_invocations_are_kept_and_long_texts_are_cut() {
        let f = FunctionActivity::default();
        for i in 0..RECENT + 30 {
            f.answered(&format!("r{i}"), Duration::ZERO, "success", 200, None);
        }
        let all = f.invocations();
        assert_eq!(all.len(), RECENT);
        assert_eq!(all[0].request_id, format!("r{}", RECENT + 29));
        assert_eq!(all[RECENT - 1].request_id, "r30");
        let long = "é".repeat(10_000);
        f.answered(&long, Duration::ZERO, "error", 502, Some(&long));
        f.ran(&long, Duration::ZERO, None);
        let newest = &f.invocations()[0];
        assert!(newest.request_id.len() <= MAX_REQUEST_ID);
        assert!(newest.error.as_ref().unwrap().len() <= MAX_ERROR);
        assert_eq!(newest.duration, Some(Duration::ZERO), "the halves met");
        assert_eq!(f.invocations().len(), RECENT);
    }

    #[test]
    fn only_the_newest_pool_is_shown() {
        let f = FunctionActivity::default();
        assert_eq!(f.pool(), None);
        let old = f.attach_pool();
        let new = f.attach_pool();
        let stats = |environments| PoolStats {
            environments,
            ..PoolStats::default()
        };
        f.publish_pool(new, stats(2));
        f.publish_pool(old, stats(7));
        assert_eq!(f.pool(), Some(stats(2)));
    }

    #[test]
    fn removed_functions_are_forgotten() {
        let activity = Activity::default();
        activity.function("kept").ran("x", Duration::ZERO, None);
        activity.function("gone");
        activity.retain(&["kept"]);
        assert!(activity.get("gone").is_none());
        assert_eq!(activity.get("kept").unwrap().invocations().len(), 1);
    }
}
