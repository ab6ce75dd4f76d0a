//! The process's metrics, served as Prometheus text on the admin port (`/metrics`).
//!
//! Named after VPC Lattice's CloudWatch metrics where one exists (see the README's metrics
//! table): `TotalRequestCount` and `HTTPCode_nXX_Count` are `trellis_requests_total` by
//! `code` class, `RequestTime` is the `trellis_request_time_seconds` histogram, both per
//! service and target group. Function metrics (invocations, durations, cold starts, init
//! durations, environments) come from the function runtime, which records them here too.
//!
//! One registry per process, reached through [`global`]: metrics are process-wide facts like
//! the log, recorded from the router, the function pools and the invokers, and threading a
//! handle through every layer would only move the global somewhere less obvious. Recording is
//! a hash lookup and an atomic add per metric.

use std::sync::{Arc, LazyLock, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text (OpenMetrics, which Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Histogram buckets in seconds, 0.5 ms to about 65 s (doubling): covers a proxied request on
/// loopback as well as a function's cold start.
fn seconds_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 18,
    ))
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A family of histograms with [`seconds_buckets`].
fn histograms<L: Clone + std::hash::Hash + Eq>() -> HistogramFamily<L> {
    Family::new_with_constructor(seconds_buckets)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    target_group: String,
    /// `2XX` … `5XX`, as in Lattice's `HTTPCode_2XX_Count`.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    service: String,
    target_group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    service: String,
    /// Which check refused: `signature` (authentication), `network` or `service` (a policy).
    layer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    function: String,
    /// One of [`OUTCOMES`].
    outcome: String,
}

/// One (service, target group) pair's request metrics, resolved once when a routing table is
/// built, so that counting a request allocates nothing and takes no lock (the family lookups
/// would build three label strings per request).
#[derive(Debug)]
pub struct RouteMetrics {
    /// By status class: 1XX (anything outside 200-599), 2XX, 3XX, 4XX, 5XX.
    by_class: [Counter; 5],
    time: Histogram,
}

impl RouteMetrics {
    /// A request answered with `status` after `seconds`.
    pub fn request(&self, status: u16, seconds: f64) {
        let class = match status {
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 0,
        };
        self.by_class[class].inc();
        self.time.observe(seconds);
    }
}

/// One function's metrics, resolved once when its pool or target is made, for the same reason
/// as [`RouteMetrics`]: an invocation counts without building label strings.
#[derive(Debug)]
pub struct FunctionMetrics {
    /// By [`OUTCOMES`], in that order.
    invocations: [Counter; OUTCOMES.len()],
    duration: Histogram,
    cold_starts: Counter,
    init_duration: Histogram,
    environments: Gauge,
    starting: Gauge,
    idle: Gauge,
    busy: Gauge,
    queued: Gauge,
}

/// A function pool's size at one moment, as its gauges show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolSize {
    /// Alive: starting, idle, busy or being stopped.
    pub environments: usize,
    /// Launched, their init not done (not asking for work yet).
    pub starting: usize,
    /// Ready, with no invocation.
    pub idle: usize,
    /// Running an invocation.
    pub busy: usize,
    /// Invocations waiting for an environment.
    pub queued: usize,
}

/// The `outcome` label values of `trellis_function_invocations_total`: `error` is an error the
/// function reported itself.
pub const OUTCOMES: [&str; 7] = [
    "success",
    "error",
    "timeout",
    "crashed",
    "init_error",
    "too_large",
    "invalid_response",
];

impl FunctionMetrics {
    /// An invocation that ended with `outcome` (one of [`OUTCOMES`]) after `seconds`.
    pub fn invocation(&self, outcome: &str, seconds: f64) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.invocations[i].inc();
        }
        self.duration.observe(seconds);
    }

    /// An environment finished its init in `seconds` (on demand or provisioned).
    pub fn environment_ready(&self, seconds: f64) {
        self.init_duration.observe(seconds);
    }

    /// An invocation ran in a fresh environment.
    pub fn cold_start(&self) {
        self.cold_starts.inc();
    }

    /// The current size of the function's pool.
    pub fn pool(&self, size: PoolSize) {
        let gauge = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        self.environments.set(gauge(size.environments));
        self.starting.set(gauge(size.starting));
        self.idle.set(gauge(size.idle));
        self.busy.set(gauge(size.busy));
        self.queued.set(gauge(size.queued));
    }
}

/// Every metric Trellis keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_time: HistogramFamily<RouteLabels>,
    auth_denied: Family<AuthLabels, Counter>,
    invocations: Family<OutcomeLabels, Counter>,
    duration: HistogramFamily<FunctionLabels>,
    cold_starts: Family<FunctionLabels, Counter>,
    init_duration: HistogramFamily<FunctionLabels>,
    environments: Family<FunctionLabels, Gauge>,
    starting: Family<FunctionLabels, Gauge>,
    idle: Family<FunctionLabels, Gauge>,
    busy: Family<FunctionLabels, Gauge>,
    queued: Family<FunctionLabels, Gauge>,
    /// Requests that matched no service.
    unrouted: OnceLock<Arc<RouteMetrics>>,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Registers `metric` as `trellis_<name>` and returns it (a handle sharing its values).
fn register<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::with_prefix("trellis");
        Metrics {
            requests: register(
                &mut r,
                "requests",
                "Requests answered, by service, target group (\"-\" when none was chosen) and status class: Lattice's TotalRequestCount and HTTPCode_2XX_Count … HTTPCode_5XX_Count",
                Family::default(),
            ),
            request_time: register(
                &mut r,
                "request_time_seconds",
                "Time from the first byte of a request to the last byte of its response: Lattice's RequestTime",
                histograms(),
            ),
            auth_denied: register(
                &mut r,
                "auth_denied",
                "Requests refused by auth, by service and layer: signature (a signed request that did not verify), identity (the caller's identity policy did not allow it), network or service (an auth policy did not allow it)",
                Family::default(),
            ),
            invocations: register(
                &mut r,
                "function_invocations",
                "Function invocations, by outcome",
                Family::default(),
            ),
            duration: register(
                &mut r,
                "function_duration_seconds",
                "Time from handing an invocation to the function to its answer, cold starts included",
                histograms(),
            ),
            cold_starts: register(
                &mut r,
                "function_cold_starts",
                "Invocations that waited for a new environment to start (their REPORT line has an Init Duration)",
                Family::default(),
            ),
            init_duration: register(
                &mut r,
                "function_init_duration_seconds",
                "Time from launching an environment (process or container) to its first request for work",
                histograms(),
            ),
            environments: register(
                &mut r,
                "function_environments",
                "Environments alive (starting, idle or busy)",
                Family::default(),
            ),
            starting: register(
                &mut r,
                "function_starting_environments",
                "Environments launched whose init is not done (not asking for work yet)",
                Family::default(),
            ),
            idle: register(
                &mut r,
                "function_idle_environments",
                "Ready environments with no invocation",
                Family::default(),
            ),
            busy: register(
                &mut r,
                "function_busy_environments",
                "Environments running an invocation",
                Family::default(),
            ),
            queued: register(
                &mut r,
                "function_queued_invocations",
                "Invocations waiting for an environment",
                Family::default(),
            ),
            registry: r,
            unrouted: OnceLock::new(),
        }
    }

    /// The request metrics of `service` and `target_group` (`"-"`: none chosen).
    pub fn route(&self, service: &str, target_group: &str) -> Arc<RouteMetrics> {
        let route = RouteLabels {
            service: service.to_owned(),
            target_group: target_group.to_owned(),
        };
        let counter = |code: &str| {
            self.requests
                .get_or_create(&RequestLabels {
                    service: service.to_owned(),
                    target_group: target_group.to_owned(),
                    code: code.to_owned(),
                })
                .clone()
        };
        Arc::new(RouteMetrics {
            by_class: ["1XX", "2XX", "3XX", "4XX", "5XX"].map(counter),
            time: self.request_time.get_or_create(&route).clone(),
        })
    }

    /// Counts a request to `service` refused by auth at `layer` (`signature`, `identity`,
    /// `network`, `service`). Refusals are rare enough that looking the series up each time is fine.
    pub fn auth_denied(&self, service: &str, layer: &str) {
        self.auth_denied
            .get_or_create(&AuthLabels {
                service: service.to_owned(),
                layer: layer.to_owned(),
            })
            .inc();
    }

    /// Where requests for no known service are counted (service and target group `"-"`).
    pub fn unrouted(&self) -> &Arc<RouteMetrics> {
        self.unrouted.get_or_init(|| self.route("-", "-"))
    }

    /// The metrics of function `function`.
    pub fn function(&self, function: &str) -> Arc<FunctionMetrics> {
        let labels = FunctionLabels {
            function: function.to_owned(),
        };
        let invocation = |outcome: &str| {
            self.invocations
                .get_or_create(&OutcomeLabels {
                    function: function.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .clone()
        };
        Arc::new(FunctionMetrics {
            invocations: OUTCOMES.map(invocation),
            duration: self.duration.get_or_create(&labels).clone(),
            cold_starts: self.cold_starts.get_or_create(&labels).clone(),
            init_duration: self.init_duration.get_or_create(&labels).clone(),
            environments: self.environments.get_or_create(&labels).clone(),
            starting: self.starting.get_or_create(&labels).clone(),
            idle: self.idle.get_or_create(&labels).clone(),
            busy: self.busy.get_or_create(&labels).clone(),
            queued: self.queued.get_or_create(&labels).clone(),
        })
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_status_class_and_timed() {
        let metrics = Metrics::new();
        let route = metrics.route("svc", "tg");
        route.request(200, 0.002);
        metrics.route("svc", "tg").request(204, 0.004);
        metrics.route("svc", "-").request(404, 0.0001);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"trellis_requests_total{service="svc",target_group="tg",code="2XX"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"trellis_requests_total{service="svc",target_group="-",code="4XX"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"trellis_request_time_seconds_count{service="svc",target_group="tg"} 2"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn pool_gauges_follow_the_last_value() {
        let metrics = Metrics::new();
        metrics.function("fn").pool(PoolSize {
            environments: 3,
            starting: 1,
            idle: 0,
            busy: 2,
            queued: 5,
        });
        metrics.function("fn").pool(PoolSize {
            environments: 2,
            starting: 0,
            idle: 1,
            busy: 1,
            queued: 0,
        });
        let text = metrics.encode();
        for (gauge, value) in [
            ("environments", 2),
            ("starting_environments", 0),
            ("idle_environments", 1),
            ("busy_environments", 1),
        ] {
            assert!(
                text.contains(&format!(
                    r#"trellis_function_{gauge}{{function="fn"}} {value}"#
                )),
                "{gauge}: {text}"
            );
        }
        assert!(
            text.contains(r#"trellis_function_queued_invocations{function="fn"} 0"#),
            "{text}"
        );
    }
}
