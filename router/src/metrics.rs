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

use std::sync::LazyLock;

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
struct FunctionLabels {
    function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    function: String,
    /// `success`, `error` (the function reported an error), `timeout`, `crashed`, `init_error`,
    /// `too_large`, `invalid_response`.
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

/// Every metric Trellis keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_time: HistogramFamily<RouteLabels>,
    invocations: Family<OutcomeLabels, Counter>,
    duration: HistogramFamily<FunctionLabels>,
    cold_starts: Family<FunctionLabels, Counter>,
    init_duration: HistogramFamily<FunctionLabels>,
    environments: Family<FunctionLabels, Gauge>,
    busy: Family<FunctionLabels, Gauge>,
    queued: Family<FunctionLabels, Gauge>,
    /// Requests that matched no service.
    unrouted: std::sync::OnceLock<std::sync::Arc<RouteMetrics>>,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("trellis");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by service, target group (\"-\" when none was chosen) and status class: Lattice's TotalRequestCount and HTTPCode_2XX_Count … HTTPCode_5XX_Count",
            requests.clone(),
        );
        let request_time: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(seconds_buckets);
        registry.register(
            "request_time_seconds",
            "Time from the first byte of a request to the last byte of its response: Lattice's RequestTime",
            request_time.clone(),
        );
        let invocations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "function_invocations",
            "Function invocations, by outcome",
            invocations.clone(),
        );
        let duration: HistogramFamily<FunctionLabels> =
            Family::new_with_constructor(seconds_buckets);
        registry.register(
            "function_duration_seconds",
            "Time from handing an invocation to the function to its answer, cold starts included",
            duration.clone(),
        );
        let cold_starts = Family::<FunctionLabels, Counter>::default();
        registry.register(
            "function_cold_starts",
            "Invocations that waited for a new environment to start (their REPORT line has an Init Duration)",
            cold_starts.clone(),
        );
        let init_duration: HistogramFamily<FunctionLabels> =
            Family::new_with_constructor(seconds_buckets);
        registry.register(
            "function_init_duration_seconds",
            "Time from launching an environment (process or container) to its first request for work",
            init_duration.clone(),
        );
        let environments = Family::<FunctionLabels, Gauge>::default();
        registry.register(
            "function_environments",
            "Environments alive (starting, idle or busy)",
            environments.clone(),
        );
        let busy = Family::<FunctionLabels, Gauge>::default();
        registry.register(
            "function_busy_environments",
            "Environments running an invocation",
            busy.clone(),
        );
        let queued = Family::<FunctionLabels, Gauge>::default();
        registry.register(
            "function_queued_invocations",
            "Invocations waiting for an environment",
            queued.clone(),
        );
        Metrics {
            registry,
            requests,
            request_time,
            invocations,
            duration,
            cold_starts,
            init_duration,
            environments,
            busy,
            queued,
            unrouted: std::sync::OnceLock::new(),
        }
    }

    /// The request metrics of `service` and `target_group` (`"-"`: none chosen).
    pub fn route(&self, service: &str, target_group: &str) -> std::sync::Arc<RouteMetrics> {
        let counter = |code: &str| {
            self.requests
                .get_or_create(&RequestLabels {
                    service: service.to_owned(),
                    target_group: target_group.to_owned(),
                    code: code.to_owned(),
                })
                .clone()
        };
        std::sync::Arc::new(RouteMetrics {
            by_class: ["1XX", "2XX", "3XX", "4XX", "5XX"].map(counter),
            time: self
                .request_time
                .get_or_create(&RouteLabels {
                    service: service.to_owned(),
                    target_group: target_group.to_owned(),
                })
                .clone(),
        })
    }

    /// Where requests for no known service are counted (service and target group `"-"`).
    pub fn unrouted(&self) -> &std::sync::Arc<RouteMetrics> {
        self.unrouted.get_or_init(|| self.route("-", "-"))
    }

    /// An invocation of `function` that ended with `outcome` after `seconds`.
    pub fn invocation(&self, function: &str, outcome: &str, seconds: f64) {
        self.invocations
            .get_or_create(&OutcomeLabels {
                function: function.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.duration
            .get_or_create(&FunctionLabels {
                function: function.to_owned(),
            })
            .observe(seconds);
    }

    /// An environment of `function` finished its init in `seconds` (on demand or provisioned).
    pub fn environment_ready(&self, function: &str, seconds: f64) {
        self.init_duration
            .get_or_create(&FunctionLabels {
                function: function.to_owned(),
            })
            .observe(seconds);
    }

    /// An invocation of `function` ran in a fresh environment.
    pub fn cold_start(&self, function: &str) {
        self.cold_starts
            .get_or_create(&FunctionLabels {
                function: function.to_owned(),
            })
            .inc();
    }

    /// The current size of `function`'s pool.
    pub fn pool(&self, function: &str, environments: usize, busy: usize, queued: usize) {
        let labels = FunctionLabels {
            function: function.to_owned(),
        };
        let set = |family: &Family<FunctionLabels, Gauge>, value: usize| {
            family
                .get_or_create(&labels)
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(&self.environments, environments);
        set(&self.busy, busy);
        set(&self.queued, queued);
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
        metrics.pool("fn", 3, 2, 5);
        metrics.pool("fn", 1, 0, 0);
        let text = metrics.encode();
        assert!(
            text.contains(r#"trellis_function_environments{function="fn"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"trellis_function_queued_invocations{function="fn"} 0"#),
            "{text}"
        );
    }
}
