//! Health checks: each target of a group with health checks on is probed every interval, and
//! its status moves with Lattice's hysteresis (one pass to leave INITIAL, then
//! `unhealthyThresholdCount` failures to go UNHEALTHY and `healthyThresholdCount` passes to come
//! back).
//!
//! Health state lives outside the routing table, keyed by a stable target key, so a reload that
//! keeps a target keeps its health.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::target::{ProbeOutcome, ProbeSpec, Target};

/// A target's status, as `ListTargets` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// The first check has not finished yet.
    Initial = 0,
    Healthy = 1,
    Unhealthy = 2,
    /// Health checks are off for this target group.
    Unavailable = 3,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Initial => "INITIAL",
            Status::Healthy => "HEALTHY",
            Status::Unhealthy => "UNHEALTHY",
            Status::Unavailable => "UNAVAILABLE",
        }
    }

    fn from_u8(v: u8) -> Status {
        match v {
            1 => Status::Healthy,
            2 => Status::Unhealthy,
            3 => Status::Unavailable,
            _ => Status::Initial,
        }
    }

    /// Whether a target in this status gets traffic (before fail-open is considered).
    pub fn in_service(self) -> bool {
        matches!(self, Status::Healthy | Status::Unavailable)
    }
}

/// The shared, lock-free status of one target: its health-check status, and whether it is
/// ejected (taken out of rotation because it refused a connection, until a probe passes or the
/// ejection runs out).
#[derive(Debug)]
pub struct HealthCell {
    status: AtomicU8,
    /// Milliseconds since [`EPOCH`] until which the target is ejected; 0 when it is not.
    ejected_until: AtomicU64,
    /// The last probe's result, for the console: written by the prober once per interval and
    /// read by the admin port, never touched on the request path.
    last_probe: Mutex<Option<LastProbe>>,
}

/// When a target was last probed and what came of it (`status 200`, `connection refused`...).
#[derive(Debug, Clone)]
pub struct LastProbe {
    pub at: std::time::SystemTime,
    pub passed: bool,
    pub detail: String,
}

/// The clock ejections are measured on.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl HealthCell {
    /// A cell starting in `status`.
    pub fn with(status: Status) -> HealthCell {
        HealthCell {
            status: AtomicU8::new(status as u8),
            ejected_until: AtomicU64::new(0),
            last_probe: Mutex::new(None),
        }
    }

    /// The last probe's result; `None` before the first probe ends or with health checks off.
    pub fn last_probe(&self) -> Option<LastProbe> {
        self.last_probe
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record_probe(&self, passed: bool, detail: &str) {
        *self.last_probe.lock().unwrap_or_else(|p| p.into_inner()) = Some(LastProbe {
            at: std::time::SystemTime::now(),
            passed,
            detail: detail.to_owned(),
        });
    }

    pub fn get(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Relaxed))
    }

    fn set(&self, status: Status) {
        self.status.store(status as u8, Ordering::Relaxed);
    }

    /// Whether the target gets traffic: in service by its status and not ejected.
    pub fn in_rotation(&self) -> bool {
        self.get().in_service() && !self.ejected()
    }

    /// Takes the target out of rotation for `period` (passive ejection: it refused a
    /// connection). A passing health probe puts it back sooner.
    pub fn eject(&self, period: Duration) {
        let until = now_ms().saturating_add(u64::try_from(period.as_millis()).unwrap_or(u64::MAX));
        self.ejected_until.store(until.max(1), Ordering::Relaxed);
    }

    /// Whether an ejection is in force.
    pub fn ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }

    /// Ends an ejection (a probe passed).
    fn readmit(&self) {
        self.ejected_until.store(0, Ordering::Relaxed);
    }
}

/// Health-check settings of a target group, resolved for the prober.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSettings {
    pub probe: ProbeSpec,
    pub interval: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Inclusive status ranges counted as healthy.
    pub matcher: Vec<(u16, u16)>,
}

/// Consecutive-result counting with hysteresis. Pure, so it is tested without sockets.
#[derive(Debug, Clone, Default)]
pub struct Hysteresis {
    passes: u32,
    failures: u32,
}

impl Hysteresis {
    /// The status after one more probe result.
    pub fn next(&mut self, current: Status, passed: bool, settings: &CheckSettings) -> Status {
        if passed {
            self.passes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.passes = 0;
        }
        match (current, passed) {
            (Status::Initial | Status::Unavailable, true) => Status::Healthy,
            (Status::Initial | Status::Unavailable, false) => Status::Unhealthy,
            (Status::Healthy, false) if self.failures >= settings.unhealthy_threshold => {
                Status::Unhealthy
            }
            (Status::Unhealthy, true) if self.passes >= settings.healthy_threshold => {
                Status::Healthy
            }
            (status, _) => status,
        }
    }
}

struct Checker {
    settings: Option<CheckSettings>,
    task: Option<JoinHandle<()>>,
}

/// Owns the health cells and the probe tasks of every target.
#[derive(Default)]
pub struct HealthMonitor {
    cells: Mutex<HashMap<String, (Arc<HealthCell>, Checker)>>,
}

/// One target the monitor should watch.
pub struct Watch {
    /// Stable across reloads: target group ARN plus target id and port.
    pub key: String,
    /// For log lines: `instance-tg 127.0.0.1:8081`.
    pub label: String,
    pub target: Arc<dyn Target>,
    /// `None` when health checks are off for the group.
    pub settings: Option<CheckSettings>,
}

/// The key a target's health is kept under: its group's ARN, its id and port.
pub fn target_key(target_group_arn: &str, id: &str, port: u16) -> String {
    format!("{target_group_arn}|{id}:{port}")
}

impl HealthMonitor {
    /// The status of the target under `key` ([`target_key`]) and whether it is ejected, for
    /// the control plane's ListTargets; `None` for a target the monitor does not watch.
    pub fn status(&self, key: &str) -> Option<(Status, bool)> {
        let cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells.get(key).map(|(cell, _)| (cell.get(), cell.ejected()))
    }

    pub fn new() -> Arc<HealthMonitor> {
        Arc::new(HealthMonitor::default())
    }

    /// Makes the monitor watch exactly `watches`: starts probes for new targets, restarts them
    /// when settings changed, stops probes of targets that are gone. Returns each key's cell.
    /// Must be called inside a tokio runtime.
    pub fn sync(&self, watches: Vec<Watch>) -> HashMap<String, Arc<HealthCell>> {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        let wanted: std::collections::HashSet<String> =
            watches.iter().map(|w| w.key.clone()).collect();
        cells.retain(|key, (_, checker)| {
            let keep = wanted.contains(key);
            if !keep && let Some(task) = checker.task.take() {
                task.abort();
            }
            keep
        });
        let mut out = HashMap::new();
        for watch in watches {
            let entry = cells.entry(watch.key.clone()).or_insert_with(|| {
                let initial = if watch.settings.is_some() {
                    Status::Initial
                } else {
                    Status::Unavailable
                };
                (
                    Arc::new(HealthCell::with(initial)),
                    Checker {
                        settings: None,
                        task: None,
                    },
                )
            });
            let (cell, checker) = entry;
            if checker.settings != watch.settings
                || (checker.task.is_none() && watch.settings.is_some())
            {
                if let Some(task) = checker.task.take() {
                    task.abort();
                }
                checker.settings = watch.settings.clone();
                match watch.settings {
                    Some(settings) => {
                        if cell.get() == Status::Unavailable {
                            cell.set(Status::Initial);
                        }
                        checker.task = Some(tokio::spawn(probe_loop(
                            watch.label,
                            watch.target,
                            settings,
                            cell.clone(),
                        )));
                    }
                    None => cell.set(Status::Unavailable),
                }
            }
            out.insert(watch.key, cell.clone());
        }
        out
    }

    /// Stops every probe.
    pub fn stop(&self) {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        for (_, checker) in cells.values_mut() {
            if let Some(task) = checker.task.take() {
                task.abort();
            }
        }
    }
}

async fn probe_loop(
    label: String,
    target: Arc<dyn Target>,
    settings: CheckSettings,
    cell: Arc<HealthCell>,
) {
    let mut counter = Hysteresis::default();
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The first tick fires at once: the first probe runs right at start-up.
        ticker.tick().await;
        let outcome = match target.probe(&settings.probe) {
            Some(probe) => probe.await,
            None => return,
        };
        let (passed, detail) = match &outcome {
            ProbeOutcome::Status(code) => (
                settings
                    .matcher
                    .iter()
                    .any(|(lo, hi)| (*lo..=*hi).contains(code)),
                format!("status {code}"),
            ),
            ProbeOutcome::Failed(reason) => (false, reason.clone()),
        };
        cell.record_probe(passed, &detail);
        if passed && cell.ejected() {
            cell.readmit();
            tracing::info!(target: "trellis::health", "{label}: back in rotation after an ejection ({detail})");
        }
        let before = cell.get();
        let after = counter.next(before, passed, &settings);
        if after != before {
            cell.set(after);
            if after == Status::Healthy {
                tracing::info!(target: "trellis::health", "{label}: {} -> {} ({detail})", before.as_str(), after.as_str());
            } else {
                tracing::warn!(target: "trellis::health", "{label}: {} -> {} ({detail})", before.as_str(), after.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_ejection_takes_a_target_out_of_rotation_until_it_runs_out_or_a_probe_readmits_it() {
        let cell = HealthCell::with(Status::Healthy);
        assert!(cell.in_rotation());
        cell.eject(Duration::from_millis(80));
        assert!(cell.ejected() && !cell.in_rotation());
        std::thread::sleep(Duration::from_millis(120));
        assert!(!cell.ejected() && cell.in_rotation());
        cell.eject(Duration::from_secs(60));
        assert!(!cell.in_rotation());
        cell.readmit();
        assert!(cell.in_rotation());
        // An unhealthy target stays out whatever the ejection says.
        cell.set(Status::Unhealthy);
        assert!(!cell.in_rotation());
    }
    use super::*;

    fn settings(healthy: u32, unhealthy: u32) -> CheckSettings {
        CheckSettings {
            probe: ProbeSpec {
                scheme: "http",
                http2: false,
                port: None,
                path: "/".into(),
                timeout: Duration::from_secs(1),
            },
            interval: Duration::from_secs(5),
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            matcher: vec![(200, 200)],
        }
    }

    #[test]
    fn initial_needs_one_pass() {
        let s = settings(5, 2);
        assert_eq!(
            Hysteresis::default().next(Status::Initial, true, &s),
            Status::Healthy
        );
        assert_eq!(
            Hysteresis::default().next(Status::Initial, false, &s),
            Status::Unhealthy
        );
    }

    #[test]
    fn thresholds_apply_with_hysteresis() {
        let s = settings(3, 2);
        let mut h = Hysteresis::default();
        let mut st = Status::Healthy;
        st = h.next(st, false, &s);
        assert_eq!(st, Status::Healthy, "one failure is not enough");
        st = h.next(st, true, &s);
        st = h.next(st, false, &s);
        assert_eq!(st, Status::Healthy, "failures must be consecutive");
        st = h.next(st, false, &s);
        assert_eq!(st, Status::Unhealthy);
        st = h.next(st, true, &s);
        st = h.next(st, true, &s);
        assert_eq!(st, Status::Unhealthy);
        st = h.next(st, true, &s);
        assert_eq!(st, Status::Healthy);
    }
}
