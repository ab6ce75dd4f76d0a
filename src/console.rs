//! The web console on the admin port (issue 17): a few pages of HTML, CSS and JavaScript embedded
//! in the binary (no Node toolchain, no CDN: it works offline), and the JSON and server-sent
//! events they read. Everything lives under `/ui/`, a prefix no VPC Lattice API route uses, so
//! the console never shadows the API served on the same port.
//!
//! The console only reads: the routing table being served (the config it was built from, and
//! the targets' health cells), the process's metrics (sampled once a second into a short
//! history for the charts) and the access-log tap (`trellis_router::accesslog::tap`), which a
//! slow browser falls behind on, losing records, without ever slowing a request. The one thing
//! it does is `POST /ui/api/send`, which sends a request to a service's listener as any client
//! would.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use trellis_config::{Action, AuthType, Config, HttpMatch, ListenerProtocol, PathMatchKind};
use trellis_router::RoutingTable;
use trellis_router::health::{HealthCell, Status};
use trellis_router::server::Listeners;
use trellis_router::table::ActionRoute;

/// The body of every admin response: whole, or streamed (the live tail).
pub type Body = BoxBody<Bytes, Infallible>;

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_CSS: &str = include_str!("console/console.css");
const CONSOLE_JS: &str = include_str!("console/console.js");

/// How many browsers may watch the live tail at once; more are refused with 503, so that
/// watchers cannot pile up tasks and buffers without bound.
const MAX_WATCHERS: usize = 64;

/// Seconds of traffic history kept for the charts.
const HISTORY: usize = 61;

/// The longest body `POST /ui/api/send` accepts, and the longest response body it shows.
const MAX_SEND_BODY: usize = 1 << 20;

/// How long the console waits for a sent request's answer.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the console waits for the access-log record of a request it sent.
const RECORD_WAIT: Duration = Duration::from_secs(2);

/// The longest filter value kept from a query string (names are at most 63 characters).
const MAX_FILTER: usize = 128;

/// What the console reads, shared by every admin connection.
pub struct Console {
    table: Arc<ArcSwap<RoutingTable>>,
    listeners: Option<Arc<Listeners>>,
    watchers: Arc<AtomicUsize>,
    history: Mutex<VecDeque<Sample>>,
    stop: watch::Receiver<bool>,
}

/// The metrics at one second: cumulative, as the registry keeps them.
#[derive(Default)]
struct Sample {
    at: f64,
    /// (service, target group) → requests by class 1XX..5XX and the latency histogram's
    /// cumulative buckets (upper bound in seconds, count).
    routes: BTreeMap<(String, String), RouteSample>,
    /// function → (gauge or counter name → value), and invocations by outcome.
    functions: BTreeMap<String, BTreeMap<String, f64>>,
}

#[derive(Default, Clone)]
struct RouteSample {
    classes: [f64; 5],
    buckets: Vec<(f64, f64)>,
}

impl Console {
    pub fn new(
        table: Arc<ArcSwap<RoutingTable>>,
        listeners: Option<Arc<Listeners>>,
        stop: watch::Receiver<bool>,
    ) -> Arc<Console> {
        Arc::new(Console {
            table,
            listeners,
            watchers: Arc::new(AtomicUsize::new(0)),
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            stop,
        })
    }

    /// Samples the metrics once a second until Trellis stops (the charts' data). Encoding the
    /// registry is what `/metrics` does for a scraper; it takes the registry's locks briefly,
    /// never a request's.
    pub async fn sample(self: Arc<Console>) {
        let mut stop = self.stop.clone();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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

    /// Answers a request under `/ui`; `None` for a path that is not the console's.
    pub async fn answer(&self, request: Request<hyper::body::Incoming>) -> Option<Response<Body>> {
        let path = request.uri().path().to_owned();
        if path != "/ui" && !path.starts_with("/ui/") {
            return None;
        }
        let method = request.method().clone();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let get = method == Method::GET || method == Method::HEAD;
        let response = match path.as_str() {
            "/ui" => redirect("/ui/"),
            "/ui/api/send" if method == Method::POST => self.send(request).await,
            "/ui/api/send" => plain(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
            _ if !get => plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
            "/ui/" | "/ui/logs" | "/ui/functions" | "/ui/send" => {
                whole(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML)
            }
            "/ui/console.css" => whole(StatusCode::OK, "text/css; charset=utf-8", CONSOLE_CSS),
            "/ui/console.js" => whole(StatusCode::OK, "text/javascript; charset=utf-8", CONSOLE_JS),
            "/ui/api/directory" => json_response(StatusCode::OK, &self.directory()),
            "/ui/api/target-groups" => json_response(StatusCode::OK, &self.target_groups()),
            "/ui/api/functions" => json_response(StatusCode::OK, &self.functions()),
            "/ui/api/traffic" => json_response(
                StatusCode::OK,
                &self.traffic(query_value(&query, "service").as_deref()),
            ),
            "/ui/api/logs" => self.tail(&query),
            p if p.starts_with("/ui/services/") && !p["/ui/services/".len()..].contains('/') => {
                whole(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML)
            }
            p if p.starts_with("/ui/api/services/") => {
                let name = percent_decode(&p["/ui/api/services/".len()..]);
                match self.service(&name) {
                    Some(v) => json_response(StatusCode::OK, &v),
                    None => json_response(
                        StatusCode::NOT_FOUND,
                        &json!({"error": format!("no service named {:?}", truncate(&name, MAX_FILTER))}),
                    ),
                }
            }
            _ => plain(StatusCode::NOT_FOUND, "no such console page\n"),
        };
        Some(response)
    }

    /// The directory: networks with their VPCs and services, services with their names,
    /// listeners and auth type.
    fn directory(&self) -> Value {
        let table = self.table.load();
        let c = &table.config;
        let networks: Vec<Value> = c
            .service_networks
            .iter()
            .map(|n| {
                json!({
                    "name": n.name, "arn": n.arn, "authType": auth(n.auth_type),
                    "services": n.services.iter().filter_map(|i| c.services.get(*i)).map(|s| &s.name).collect::<Vec<_>>(),
                    "vpcs": n.vpcs.iter().filter_map(|i| c.vpcs.get(*i)).map(|v| json!({
                        "name": v.name, "id": v.id,
                        "cidrs": v.cidrs.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let services: Vec<Value> = c
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({
                    "name": s.name, "arn": s.arn, "dnsName": s.dns_name,
                    "customDomainName": s.custom_domain_name,
                    "authType": auth(s.auth_type),
                    "networks": c.service_networks.iter().filter(|n| n.services.contains(&i)).map(|n| &n.name).collect::<Vec<_>>(),
                    "listeners": s.listeners.iter().map(|l| json!({
                        "name": l.name, "protocol": l.protocol.as_str(), "port": l.port,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({"region": c.region, "networks": networks, "services": services})
    }

    /// Every target group's name, ARN and type (the live log names groups by ARN).
    fn target_groups(&self) -> Value {
        let table = self.table.load();
        let groups: Vec<Value> = table
            .config
            .target_groups
            .iter()
            .map(|g| json!({"name": g.name, "arn": g.arn, "type": g.kind.as_str()}))
            .collect();
        json!({"targetGroups": groups})
    }

    /// One service's routing: each listener's rules in priority order, then its default
    /// action, each forwarding to weighted target groups whose targets carry their live health.
    fn service(&self, name: &str) -> Option<Value> {
        let table = self.table.load();
        let c = &table.config;
        let svc = c.services.iter().find(|s| s.name == name)?;
        let cells = health_cells(&table);
        let listeners: Vec<Value> = svc
            .listeners
            .iter()
            .map(|l| {
                let mut rules: Vec<&trellis_config::Rule> = l.rules.iter().collect();
                rules.sort_by_key(|r| r.priority);
                json!({
                    "name": l.name, "protocol": l.protocol.as_str(), "port": l.port,
                    "rules": rules.iter().map(|r| json!({
                        "name": r.name, "priority": r.priority,
                        "conditions": conditions(&r.http_match),
                        "action": action(c, &r.action, &cells),
                    })).collect::<Vec<_>>(),
                    "defaultAction": action(c, &l.default_action, &cells),
                })
            })
            .collect();
        Some(json!({
            "name": svc.name, "arn": svc.arn, "dnsName": svc.dns_name,
            "customDomainName": svc.custom_domain_name, "authType": auth(svc.auth_type),
            "listeners": listeners,
        }))
    }

    /// The last minute of traffic, per (service, target group): one point a second.
    fn traffic(&self, service: Option<&str>) -> Value {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let mut series: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
        for (before, after) in history.iter().zip(history.iter().skip(1)) {
            let seconds = (after.at - before.at).max(0.001);
            for (key, now) in &after.routes {
                if service.is_some_and(|s| s != key.0) {
                    continue;
                }
                let then = before.routes.get(key).cloned().unwrap_or_default();
                let classes: Vec<f64> = (0..5)
                    .map(|i| (now.classes[i] - then.classes[i]).max(0.0))
                    .collect();
                let total: f64 = classes.iter().sum();
                let deltas: Vec<(f64, f64)> = now
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
                series.entry(key.clone()).or_default().push(json!({
                    "t": after.at,
                    "rps": total / seconds,
                    "classes": {"1XX": classes[0], "2XX": classes[1], "3XX": classes[2], "4XX": classes[3], "5XX": classes[4]},
                    "p50Ms": quantile(&deltas, 0.5).map(|s| s * 1000.0),
                    "p99Ms": quantile(&deltas, 0.99).map(|s| s * 1000.0),
                }));
            }
        }
        let routes: Vec<Value> = series
            .into_iter()
            .map(|((service, group), points)| {
                json!({"service": service, "targetGroup": group, "points": points})
            })
            .collect();
        json!({"routes": routes})
    }

    /// Each function with its environments (from the pool gauges), cold starts and invocations
    /// by outcome.
    fn functions(&self) -> Value {
        let table = self.table.load();
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let last = history.back();
        let functions: Vec<Value> = table
            .config
            .functions
            .iter()
            .map(|f| {
                let m = last.and_then(|s| s.functions.get(&f.name));
                let get = |k: &str| m.and_then(|m| m.get(k)).copied().unwrap_or(0.0);
                let environments = get("environments");
                let busy = get("busy");
                let outcomes: BTreeMap<&str, f64> = trellis_router::metrics::OUTCOMES
                    .iter()
                    .map(|o| (*o, get(&format!("outcome:{o}"))))
                    .collect();
                json!({
                    "name": f.name, "arn": f.arn, "runtime": f.runtime.as_str(),
                    "timeoutSeconds": f.timeout_seconds, "memorySizeMb": f.memory_size_mb,
                    "concurrency": f.concurrency, "provisioned": f.provisioned,
                    "environments": environments, "busy": busy,
                    "idle": (environments - busy).max(0.0), "queued": get("queued"),
                    "coldStarts": get("cold_starts"), "invocations": outcomes,
                    "targetGroups": table.config.target_groups.iter()
                        .filter(|g| g.targets.iter().any(|t| t.id == f.name))
                        .map(|g| &g.name).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({"functions": functions})
    }

    /// `GET /ui/api/logs?service=NAME&status=CLASS|CODE`: the access-log records from now on,
    /// as server-sent events. A watcher that falls behind gets a `dropped` event saying how
    /// many records it lost.
    fn tail(&self, query: &str) -> Response<Body> {
        let taken = self.watchers.fetch_add(1, Ordering::SeqCst);
        let guard = Watcher(self.watchers.clone());
        if taken >= MAX_WATCHERS {
            drop(guard);
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many live-tail watchers; close one\n",
            );
        }
        let filter = Filter {
            service_arn: query_value(query, "service").map(|name| {
                // An unknown name matches nothing (rather than everything).
                self.table
                    .load()
                    .config
                    .services
                    .iter()
                    .find(|s| s.name == name)
                    .map_or_else(|| "\u{0}".to_owned(), |s| s.arn.clone())
            }),
            status: query_value(query, "status").filter(|s| !s.is_empty()),
        };
        let receiver = trellis_router::accesslog::tap().subscribe();
        let state = TailState {
            receiver,
            filter,
            stop: self.stop.clone(),
            _guard: guard,
            first: true,
        };
        let stream = futures_util::stream::unfold(state, |mut state| async move {
            let frame = state.next().await?;
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(frame))), state))
        });
        let mut response = Response::new(BoxBody::new(StreamBody::new(stream)));
        let headers = response.headers_mut();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("no-cache"),
        );
        response
    }

    /// `POST /ui/api/send` with `{"service", "listener"?, "method", "path", "headers": [[name,
    /// value]…], "body"}`: sends the request to the service's listener on loopback, with the
    /// service's DNS name as its host and a fresh `x-amzn-requestid`, and answers with the full
    /// response, the rule it matched and the access-log record of that request (found on the
    /// tap by its request id).
    async fn send(&self, request: Request<hyper::body::Incoming>) -> Response<Body> {
        let body = match tokio::time::timeout(
            Duration::from_secs(10),
            Limited::new(request.into_body(), MAX_SEND_BODY).collect(),
        )
        .await
        {
            Ok(Ok(b)) => b.to_bytes(),
            _ => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "the form's JSON did not arrive whole within 10 s, or is over 1 MiB"}),
                );
            }
        };
        let form: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": format!("not JSON: {e}")}),
                );
            }
        };
        match self.send_form(&form).await {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err((status, message)) => json_response(status, &json!({"error": message})),
        }
    }

    async fn send_form(&self, form: &Value) -> Result<Value, (StatusCode, String)> {
        let bad = |m: String| (StatusCode::BAD_REQUEST, m);
        let text = |k: &str| form.get(k).and_then(Value::as_str);
        let service = text("service").ok_or_else(|| bad("\"service\" is required".into()))?;
        let method = text("method").unwrap_or("GET");
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| bad(format!("not an HTTP method: {method:?}")))?;
        let path = text("path").unwrap_or("/");
        if !path.starts_with('/') {
            return Err(bad("the path must start with /".into()));
        }
        let table = self.table.load_full();
        let svc = table
            .config
            .services
            .iter()
            .find(|s| s.name == service)
            .ok_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    format!("no service named {:?}", truncate(service, MAX_FILTER)),
                )
            })?;
        let listener = match text("listener") {
            Some(name) => svc.listeners.iter().find(|l| l.name == name),
            None => svc
                .listeners
                .iter()
                .find(|l| l.protocol == ListenerProtocol::Http),
        }
        .ok_or_else(|| bad(format!("service {service} has no such HTTP listener")))?;
        if listener.protocol != ListenerProtocol::Http {
            return Err(bad(
                "the form sends plain HTTP only; use curl for an HTTPS listener".into(),
            ));
        }
        let address = self.listener_address(listener.port).await.ok_or_else(|| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("port {} is not listening", listener.port),
            )
        })?;
        let id = format!("console-{}", uuid::Uuid::new_v4());
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, &svc.dns_name)
            .header("x-amzn-requestid", &id);
        let mut sent_headers = http::HeaderMap::new();
        if let Some(headers) = form.get("headers").and_then(Value::as_array) {
            for pair in headers.iter().take(100) {
                let (Some(k), Some(v)) = (
                    pair.get(0).and_then(Value::as_str),
                    pair.get(1).and_then(Value::as_str),
                ) else {
                    continue;
                };
                if k.is_empty() || k.eq_ignore_ascii_case("host") {
                    continue;
                }
                let name = http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| bad(format!("not a header name: {k:?}")))?;
                let value = http::HeaderValue::from_str(v)
                    .map_err(|_| bad(format!("not a header value for {k}")))?;
                sent_headers.append(name.clone(), value.clone());
                builder = builder.header(name, value);
            }
        }
        let body = text("body").unwrap_or("").to_owned();
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| bad(format!("cannot make the request: {e}")))?;
        // Which rule the router picks, by the same matcher it uses (the path without query).
        let rule = table
            .services
            .iter()
            .find(|s| s.name == svc.name)
            .and_then(|s| s.listeners.iter().find(|l| l.name == listener.name))
            .map(|l| {
                let bare = path.split('?').next().unwrap_or(path);
                l.route(method.as_str(), bare, &sent_headers)
                    .1
                    .unwrap_or("default action")
                    .to_owned()
            });
        // Subscribed before sending, so the record cannot slip past.
        let mut records = trellis_router::accesslog::tap().subscribe();
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(SEND_TIMEOUT, exchange(address, request))
            .await
            .map_err(|_| {
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("no answer within {} s", SEND_TIMEOUT.as_secs()),
                )
            })?
            .map_err(|e| (StatusCode::BAD_GATEWAY, e))?;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let record = tokio::time::timeout(RECORD_WAIT, async {
            loop {
                match records.recv().await {
                    Ok(line) => {
                        if let Ok(v) = serde_json::from_str::<Value>(&line)
                            && v.get("requestId").and_then(Value::as_str) == Some(id.as_str())
                        {
                            return Some(v);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await
        .ok()
        .flatten();
        let group = record
            .as_ref()
            .and_then(|r| r.get("targetGroupArn").and_then(Value::as_str))
            .and_then(|arn| table.config.target_groups.iter().find(|g| g.arn == arn))
            .map(|g| g.name.clone());
        let (status, headers, body) = answer;
        Ok(json!({
            "requestId": id, "url": format!("http://{}:{}{}", svc.dns_name, listener.port, path),
            "status": status, "headers": headers, "body": body, "elapsedMs": elapsed_ms,
            "rule": rule, "targetGroup": group,
            "target": record.as_ref().and_then(|r| r.get("targetIpPort")).cloned(),
            "record": record,
        }))
    }

    /// Where to reach the listener on `port`: its socket, loopback when bound to every address.
    async fn listener_address(&self, port: u16) -> Option<SocketAddr> {
        let ports = self.listeners.as_ref()?.ports().await;
        let local = ports.iter().find(|p| p.port == port)?.local;
        let ip = match local.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            other => other,
        };
        Some(SocketAddr::new(ip, local.port()))
    }
}

/// Sends one HTTP/1.1 request and reads its answer: status, headers, body (lossy UTF-8, cut at
/// [`MAX_SEND_BODY`]).
async fn exchange(
    address: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<(u16, Vec<(String, String)>, String), String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake with {address} failed: {e}"))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("the request failed: {e}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the response body broke off: {e}"))?;
        if let Some(data) = frame.data_ref() {
            let room = MAX_SEND_BODY.saturating_sub(bytes.len());
            bytes.extend_from_slice(&data[..data.len().min(room)]);
            if room <= data.len() {
                break;
            }
        }
    }
    Ok((
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

/// Counts a live-tail watcher while it lives.
struct Watcher(Arc<AtomicUsize>);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Filter {
    /// Only this service's records.
    service_arn: Option<String>,
    /// `2XX`-style class or an exact code.
    status: Option<String>,
}

impl Filter {
    fn keeps(&self, record: &Value) -> bool {
        if let Some(arn) = &self.service_arn
            && record.get("serviceArn").and_then(Value::as_str) != Some(arn.as_str())
        {
            return false;
        }
        if let Some(want) = &self.status {
            let code = record
                .get("responseCode")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let text = code.to_string();
            let class = format!("{}XX", code / 100);
            if !want.eq_ignore_ascii_case(&class) && *want != text {
                return false;
            }
        }
        true
    }
}

struct TailState {
    receiver: broadcast::Receiver<Arc<String>>,
    filter: Filter,
    stop: watch::Receiver<bool>,
    _guard: Watcher,
    first: bool,
}

impl TailState {
    /// The next event to send; `None` ends the stream (Trellis stopping).
    async fn next(&mut self) -> Option<String> {
        if self.first {
            self.first = false;
            // Sent at once so the browser knows it is connected (and a test can wait for it).
            return Some(": connected\nretry: 1000\n\n".to_owned());
        }
        // Bounded: each turn either sends an event or waits; filtered-out records loop only
        // as long as records keep coming.
        loop {
            let received = tokio::select! {
                r = self.receiver.recv() => r,
                _ = tokio::time::sleep(Duration::from_secs(15)) => return Some(": keep-alive\n\n".to_owned()),
                _ = self.stop.wait_for(|s| *s) => return None,
            };
            match received {
                Ok(line) => {
                    let Ok(record) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    if self.filter.keeps(&record) {
                        return Some(format!("event: record\ndata: {line}\n\n"));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some(format!(
                        "event: dropped\ndata: {{\"dropped\":{n},\"why\":\"this browser fell behind; the oldest records were skipped\"}}\n\n"
                    ));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Every target's health cell in the table being served, by its key.
fn health_cells(table: &RoutingTable) -> HashMap<String, Arc<HealthCell>> {
    let mut cells = HashMap::new();
    for svc in &table.services {
        for l in &svc.listeners {
            let actions = l
                .rules
                .iter()
                .map(|r| &r.action)
                .chain(std::iter::once(&l.default_action));
            for a in actions {
                if let ActionRoute::Forward(f) = a {
                    for choice in &f.choices {
                        for t in &choice.group.targets {
                            cells.insert(t.key.clone(), t.health.clone());
                        }
                    }
                }
            }
        }
    }
    cells
}

fn action(c: &Config, action: &Action, cells: &HashMap<String, Arc<HealthCell>>) -> Value {
    match action {
        Action::FixedResponse { status_code } => json!({"fixedResponse": status_code}),
        Action::Forward(groups) => {
            let total: u32 = groups.iter().map(|g| u32::from(g.weight)).sum();
            let forward: Vec<Value> = groups
                .iter()
                .filter_map(|w| {
                    let g = c.target_groups.get(w.target_group)?;
                    let targets: Vec<Value> = g
                        .targets
                        .iter()
                        .map(|t| {
                            let key = trellis_router::health::target_key(&g.arn, &t.id, t.port);
                            target_health(&key, &t.id, t.port, g.health_check.enabled, cells)
                        })
                        .collect();
                    Some(json!({
                        "targetGroup": g.name, "type": g.kind.as_str(), "weight": w.weight,
                        "sharePercent": if total == 0 { 0.0 } else { f64::from(w.weight) * 100.0 / f64::from(total) },
                        "healthCheck": g.health_check.enabled.then(|| json!({
                            "path": g.health_check.path,
                            "intervalSeconds": g.health_check.interval_seconds,
                            "timeoutSeconds": g.health_check.timeout_seconds,
                            "healthyThreshold": g.health_check.healthy_threshold,
                            "unhealthyThreshold": g.health_check.unhealthy_threshold,
                        })),
                        "targets": targets,
                    }))
                })
                .collect();
            json!({"forward": forward})
        }
    }
}

fn target_health(
    key: &str,
    id: &str,
    port: u16,
    checks: bool,
    cells: &HashMap<String, Arc<HealthCell>>,
) -> Value {
    let cell = cells.get(key);
    let status = cell.map(|c| c.get()).unwrap_or(if checks {
        Status::Initial
    } else {
        Status::Unavailable
    });
    let ejected = cell.is_some_and(|c| c.ejected());
    let probe = cell.and_then(|c| c.last_probe());
    let reason = match status {
        Status::Initial => Some("Elb.RegistrationInProgress"),
        Status::Unhealthy => Some("HealthCheckFailed"),
        Status::Unavailable => Some("HealthCheckDisabled"),
        Status::Healthy if ejected => Some("Ejected (refused a connection)"),
        Status::Healthy => None,
    };
    json!({
        "id": id, "port": port, "status": status.as_str(), "ejected": ejected,
        "reasonCode": reason,
        "lastProbe": probe.map(|p| json!({
            "at": p.at.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
            "passed": p.passed, "detail": p.detail,
        })),
    })
}

/// A rule's conditions as short text: `method GET`, `path exact /to-instance`, `header x = y`.
fn conditions(m: &HttpMatch) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(method) = &m.method {
        out.push(format!("method {method}"));
    }
    if let Some(p) = &m.path_match {
        let kind = match p.kind {
            PathMatchKind::Exact => "exact",
            PathMatchKind::Prefix => "prefix",
        };
        let case = if p.case_sensitive { "" } else { " (any case)" };
        out.push(format!("path {kind} {}{case}", p.value));
    }
    for h in &m.header_matches {
        out.push(format!("header {} {:?} {}", h.name, h.kind, h.value).to_lowercase());
    }
    out
}

fn auth(a: AuthType) -> &'static str {
    match a {
        AuthType::None => "NONE",
        AuthType::AwsIam => "AWS_IAM",
    }
}

/// Reads what the console shows from the metrics text: request counters and latency buckets
/// per (service, target group), and the function gauges and counters.
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
                let key = match name {
                    "trellis_function_environments" => "environments".to_owned(),
                    "trellis_function_busy_environments" => "busy".to_owned(),
                    "trellis_function_queued_invocations" => "queued".to_owned(),
                    "trellis_function_cold_starts_total" => "cold_starts".to_owned(),
                    "trellis_function_invocations_total" => match labels.get("outcome") {
                        Some(o) => format!("outcome:{o}"),
                        None => continue,
                    },
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

/// The first value of `key` in a query string, percent-decoded and cut to [`MAX_FILTER`].
fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .take(64)
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| truncate(&percent_decode(&v.replace('+', " ")), MAX_FILTER).to_owned())
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `%xx` escapes undone (invalid ones kept as they are); invalid UTF-8 is replaced.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn whole(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(BoxBody::new(Full::new(body.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    whole(status, "text/plain; charset=utf-8", text)
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    whole(status, "application/json", value.to_string())
}

fn redirect(to: &'static str) -> Response<Body> {
    let mut response = plain(StatusCode::MOVED_PERMANENTLY, "");
    response.headers_mut().insert(
        hyper::header::LOCATION,
        hyper::header::HeaderValue::from_static(to),
    );
    response
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
        assert_eq!(s.functions["f"]["environments"], 2.0);
        assert_eq!(s.functions["f"]["outcome:success"], 5.0);
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

    #[test]
    fn query_values_are_decoded_and_bounded() {
        assert_eq!(
            query_value("a=1&service=lattice%2Dsvc", "service").as_deref(),
            Some("lattice-svc")
        );
        assert_eq!(
            query_value("service=%ff%", "service").as_deref(),
            Some("\u{fffd}%")
        );
        let long = format!("service={}", "x".repeat(10_000));
        assert_eq!(
            query_value(&long, "service").map(|v| v.len()),
            Some(MAX_FILTER)
        );
        assert_eq!(query_value("status", "status"), None);
    }
}
