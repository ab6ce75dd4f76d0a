//! The console's charts read the process's metrics, sampled once a second into a short history:
//! the registry keeps cumulative counters, and a rate or a percentile is the difference between
//! two samples.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::Console;

/// Seconds of traffic history kept for the charts.
pub(super) const HISTORY: usize = 61;

/// The metrics at one second: cumulative, as the registry keeps them.
#[derive(Default)]
pub(super) struct Sample {
    at: f64,
    /// (service, target group) → requests by class 1XX..5XX and the latency histogram's
    /// cumulative buckets (upper bound in seconds, count).
    routes: BTreeMap<(String, String), RouteSample>,
    /// function → (`outcome:<outcome>` → invocations since Trellis started).
    pub(super) functions: BTreeMap<String, BTreeMap<String, f64>>,
}

#[derive(Default, Clone)]
struct RouteSample {
    classes: [f64; 5],
    buckets: Vec<(f64, f64)>,
}

impl Console {
    /// Samples the metrics once a second until Trellis stops (the charts' data). Encoding the
    /// registry is what `/metrics` does for a scraper; it takes the registry's locks briefly,
    /// never a request's.
    pub async fn sample(self: Arc<Console>) {
        let mut stop = self.stop.clone();
        // The counters start at zero with the process, so an empty sample is where they stood
        // before the first request: without it, requests served before the first tick (those
        // right after "ready") would be in no second's difference.
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(Sample {
                at: now(),
                ..Sample::default()
            });
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: a second after the baseline is the first sample.
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let sample = parse_metrics(&trellis_router::metrics::global().encode(), now());
            let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if history.len() >= HISTORY {
                history.pop_front();
            }
            history.push_back(sample);
        }
    }

    /// The last minute of traffic, per service and per (service, target group): one point a
    /// second.
    pub(super) fn traffic(&self, service: Option<&str>) -> Value {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        traffic(&history, service)
    }
}

/// What one route (or a whole service) did between two samples: requests by class 1XX..5XX
/// and the latency histogram's cumulative buckets (upper bound in seconds, count).
#[derive(Default)]
struct Delta {
    classes: [f64; 5],
    buckets: Vec<(f64, f64)>,
}

impl Delta {
    fn between(then: Option<&RouteSample>, now: &RouteSample) -> Delta {
        let then = then.cloned().unwrap_or_default();
        let mut classes = [0.0; 5];
        for (i, c) in classes.iter_mut().enumerate() {
            *c = (now.classes[i] - then.classes[i]).max(0.0);
        }
        let buckets = now
            .buckets
            .iter()
            .map(|(le, n)| {
                let old = then
                    .buckets
                    .iter()
                    .find(|(l, _)| l == le)
                    .map_or(0.0, |(_, n)| *n);
                (*le, (n - old).max(0.0))
            })
            .collect();
        Delta { classes, buckets }
    }

    /// Adds another route's requests: every route has the same bucket bounds, so cumulative
    /// counts add bound by bound (a bound only one side has is kept as it is).
    fn add(&mut self, other: &Delta) {
        for (mine, theirs) in self.classes.iter_mut().zip(other.classes) {
            *mine += theirs;
        }
        for (le, n) in &other.buckets {
            match self.buckets.iter_mut().find(|(l, _)| l == le) {
                Some((_, mine)) => *mine += n,
                None => self.buckets.push((*le, *n)),
            }
        }
    }

    /// The chart point at `at`, over `seconds`.
    fn point(&self, at: f64, seconds: f64) -> Value {
        let c = &self.classes;
        let total: f64 = c.iter().sum();
        json!({
            "t": at,
            "requests": total,
            "rps": total / seconds,
            "classes": {"1XX": c[0], "2XX": c[1], "3XX": c[2], "4XX": c[3], "5XX": c[4]},
            "p50Ms": quantile(&self.buckets, 0.5).map(|s| s * 1000.0),
            "p99Ms": quantile(&self.buckets, 0.99).map(|s| s * 1000.0),
        })
    }
}

/// The charts' data from the samples: each service's total (all its target groups, and the
/// requests that reached none: fixed responses, refusals, target group `-`) and each
/// (service, target group), one point per second of `history`.
fn traffic(history: &VecDeque<Sample>, service: Option<&str>) -> Value {
    let mut routes: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    let mut services: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (before, after) in history.iter().zip(history.iter().skip(1)) {
        let seconds = (after.at - before.at).max(0.001);
        let mut totals: BTreeMap<&str, Delta> = BTreeMap::new();
        for (key, now) in &after.routes {
            if service.is_some_and(|s| s != key.0) {
                continue;
            }
            let delta = Delta::between(before.routes.get(key), now);
            routes
                .entry(key.clone())
                .or_default()
                .push(delta.point(after.at, seconds));
            totals.entry(&key.0).or_default().add(&delta);
        }
        for (name, total) in totals {
            services
                .entry(name.to_owned())
                .or_default()
                .push(total.point(after.at, seconds));
        }
    }
    let services: Vec<Value> = services
        .into_iter()
        .map(|(service, points)| json!({"service": service, "points": points}))
        .collect();
    let routes: Vec<Value> = routes
        .into_iter()
        .map(|((service, group), points)| {
            json!({"service": service, "targetGroup": group, "points": points})
        })
        .collect();
    json!({"services": services, "routes": routes})
}

/// Reads what the console shows from the metrics text: request counters and latency buckets
/// per (service, target group), and function invocations by outcome.
fn parse_metrics(text: &str, at: f64) -> Sample {
    let mut sample = Sample {
        at,
        ..Sample::default()
    };
    for line in text.lines().take(1_000_000) {
        if line.starts_with('#') {
            continue;
        }
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, labels(rest.trim_end_matches('}'))),
            None => (head, HashMap::new()),
        };
        let route = || {
            Some((
                labels.get("service")?.clone(),
                labels.get("target_group")?.clone(),
            ))
        };
        match name {
            "trellis_requests_total" => {
                let (Some(key), Some(code)) = (route(), labels.get("code")) else {
                    continue;
                };
                let i = match code.as_str() {
                    "2XX" => 1,
                    "3XX" => 2,
                    "4XX" => 3,
                    "5XX" => 4,
                    _ => 0,
                };
                sample.routes.entry(key).or_default().classes[i] = value;
            }
            "trellis_request_time_seconds_bucket" => {
                let (Some(key), Some(le)) = (route(), labels.get("le")) else {
                    continue;
                };
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::INFINITY)
                };
                sample
                    .routes
                    .entry(key)
                    .or_default()
                    .buckets
                    .push((le, value));
            }
            _ => {
                let Some(function) = labels.get("function") else {
                    continue;
                };
                let key = match (name, labels.get("outcome")) {
                    ("trellis_function_invocations_total", Some(o)) => format!("outcome:{o}"),
                    _ => continue,
                };
                sample
                    .functions
                    .entry(function.clone())
                    .or_default()
                    .insert(key, value);
            }
        }
    }
    sample
}

/// `a="x",b="y"` → map (label values are names and numbers: no escapes to undo).
fn labels(text: &str) -> HashMap<String, String> {
    text.split("\",")
        .filter_map(|pair| {
            let (k, v) = pair.split_once("=\"")?;
            Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
        })
        .collect()
}

/// The upper bound of the bucket holding the `q` quantile of the observations whose
/// per-bucket cumulative counts are `buckets`; `None` with no observations.
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.iter().map(|(_, n)| *n).fold(0.0, f64::max);
    if total <= 0.0 {
        return None;
    }
    let mut sorted = buckets.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map(|(le, _)| if le.is_finite() { *le } else { f64::NAN })
        .filter(|v| !v.is_nan())
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_is_read_per_route_and_function() {
        let text = "# TYPE x counter\n\
            trellis_requests_total{service=\"svc\",target_group=\"tg\",code=\"2XX\"} 7\n\
            trellis_request_time_seconds_bucket{le=\"0.001\",service=\"svc\",target_group=\"tg\"} 3\n\
            trellis_request_time_seconds_bucket{le=\"+Inf\",service=\"svc\",target_group=\"tg\"} 7\n\
            trellis_function_environments{function=\"f\"} 2\n\
            trellis_function_invocations_total{function=\"f\",outcome=\"success\"} 5\n";
        let s = parse_metrics(text, 1.0);
        let r = &s.routes[&("svc".to_owned(), "tg".to_owned())];
        assert_eq!(r.classes[1], 7.0);
        assert_eq!(r.buckets.len(), 2);
        assert!(!s.functions["f"].contains_key("environments"));
        assert_eq!(s.functions["f"]["outcome:success"], 5.0);
    }

    /// A service's total is every one of its routes, the one with no target group too, point
    /// by point; another service's requests are not in it, and the filter leaves them out.
    #[test]
    fn a_service_total_sums_its_routes_per_second() {
        let metrics = |tg_ok: u32, fixed_404: u32, other: u32| {
            format!(
                "trellis_requests_total{{service=\"svc\",target_group=\"tg\",code=\"2XX\"}} {tg_ok}\n\
                 trellis_request_time_seconds_bucket{{le=\"0.001\",service=\"svc\",target_group=\"tg\"}} 0\n\
                 trellis_request_time_seconds_bucket{{le=\"0.004\",service=\"svc\",target_group=\"tg\"}} {tg_ok}\n\
                 trellis_request_time_seconds_bucket{{le=\"+Inf\",service=\"svc\",target_group=\"tg\"}} {tg_ok}\n\
                 trellis_requests_total{{service=\"svc\",target_group=\"-\",code=\"4XX\"}} {fixed_404}\n\
                 trellis_request_time_seconds_bucket{{le=\"0.001\",service=\"svc\",target_group=\"-\"}} {fixed_404}\n\
                 trellis_request_time_seconds_bucket{{le=\"0.004\",service=\"svc\",target_group=\"-\"}} {fixed_404}\n\
                 trellis_request_time_seconds_bucket{{le=\"+Inf\",service=\"svc\",target_group=\"-\"}} {fixed_404}\n\
                 trellis_requests_total{{service=\"other\",target_group=\"tg2\",code=\"5XX\"}} {other}\n"
            )
        };
        let history: VecDeque<Sample> = [(10.0, (0, 0, 0)), (11.0, (4, 1, 2)), (13.0, (4, 9, 2))]
            .into_iter()
            .map(|(at, (a, b, c))| parse_metrics(&metrics(a, b, c), at))
            .collect();
        let t = traffic(&history, Some("svc"));
        assert_eq!(t["services"].as_array().unwrap().len(), 1, "{t}");
        let total = &t["services"][0];
        assert_eq!(total["service"], "svc");
        let points = total["points"].as_array().unwrap();
        assert_eq!(points.len(), 2);
        // Second one: 4 from the target group (≤4 ms), 1 with none (≤1 ms).
        assert_eq!(points[0]["classes"]["2XX"], 4.0);
        assert_eq!(points[0]["classes"]["4XX"], 1.0);
        assert_eq!(points[0]["requests"], 5.0);
        assert_eq!(points[0]["rps"], 5.0);
        assert_eq!(points[0]["p50Ms"], 4.0);
        assert_eq!(points[0]["p99Ms"], 4.0);
        // Then two seconds with 8 fixed responses only.
        assert_eq!(points[1]["classes"]["2XX"], 0.0);
        assert_eq!(points[1]["classes"]["4XX"], 8.0);
        assert_eq!(points[1]["rps"], 4.0);
        assert_eq!(points[1]["p50Ms"], 1.0);
        let routes = t["routes"].as_array().unwrap();
        let groups: Vec<&str> = routes
            .iter()
            .map(|r| r["targetGroup"].as_str().unwrap())
            .collect();
        assert_eq!(groups, ["-", "tg"]);
        assert_eq!(routes[1]["points"][0]["classes"]["2XX"], 4.0);
        assert_eq!(routes[1]["points"][1]["p50Ms"], Value::Null);
        let all = traffic(&history, None);
        let names: Vec<&str> = all["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["service"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["other", "svc"]);
        assert_eq!(all["services"][0]["points"][0]["classes"]["5XX"], 2.0);
    }

    #[test]
    fn quantiles_come_from_bucket_bounds() {
        let b = [
            (0.001, 3.0),
            (0.002, 9.0),
            (0.004, 10.0),
            (f64::INFINITY, 10.0),
        ];
        assert_eq!(quantile(&b, 0.5), Some(0.002));
        assert_eq!(quantile(&b, 0.99), Some(0.004));
        assert_eq!(quantile(&[(0.001, 0.0)], 0.5), None);
    }
}
