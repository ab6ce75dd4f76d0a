//! The compiled, immutable routing table: everything a request needs, found without locks.
//!
//! Built from a validated [`Config`] plus the targets the invokers made; swapped whole on reload
//! (requests in flight keep the table they started with).

use http::HeaderValue;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use trellis_config::{
    Action, AuthType, Config, HeaderMatchKind, HttpMatch, ListenerProtocol, PathMatchKind,
    ProtocolVersion, TargetGroup, TargetGroupType, TargetProtocol,
};

use crate::accesslog::{LogSink, LogSinks, SinkError};
use crate::health::{CheckSettings, HealthCell, HealthMonitor, Status, Watch};
use crate::metrics::RouteMetrics;
use crate::target::{BoxError, ProbeSpec, Target};

/// Makes the [`Target`] for one registered target of a group. Implemented by the invokers, so
/// the router never learns what runs behind a target.
pub trait TargetFactory {
    /// The target for `target` of `group`; `config` is the whole file (functions live there).
    fn make(
        &self,
        config: &Config,
        group: &TargetGroup,
        target: &trellis_config::Target,
    ) -> Result<Arc<dyn Target>, MakeError>;
}

/// Why a [`TargetFactory`] could not make a target. The router only reports it; what went
/// wrong behind a target is the factory's to say.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    /// A LAMBDA target names a function the config does not define.
    #[error("no function \"{0}\"")]
    NoFunction(String),
    /// An INSTANCE, IP or ALB target's address makes no valid target.
    #[error(transparent)]
    Address(BoxError),
    /// The function behind a LAMBDA target could not be loaded.
    #[error(transparent)]
    Function(BoxError),
}

/// Makes, for every target, one that is never called: for building a routing table whose
/// targets are not exercised (the rule-matching benchmark, the table's tests).
#[doc(hidden)]
pub struct InertFactory;

impl TargetFactory for InertFactory {
    fn make(
        &self,
        _config: &Config,
        _group: &TargetGroup,
        _target: &trellis_config::Target,
    ) -> Result<Arc<dyn Target>, MakeError> {
        Ok(Arc::new(Inert))
    }
}

struct Inert;

impl Target for Inert {
    fn call<'a>(
        &'a self,
        _ctx: crate::target::CallContext<'a>,
        _request: http::Request<crate::target::Body>,
    ) -> crate::target::BoxFuture<
        'a,
        Result<http::Response<crate::target::Body>, crate::target::TargetError>,
    > {
        Box::pin(async {
            Err(crate::target::TargetError::Connect {
                target: "inert".into(),
                reason: "an inert target (InertFactory) is not meant to be called".into(),
                unsent: None,
            })
        })
    }

    fn address(&self) -> String {
        "inert".into()
    }
}

/// Why a table could not be built. The reason is part of the message rather than a `source`:
/// the binary shows this error on one line when a reload is refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("target group \"{group}\", target \"{target}\": {reason}")]
    Target {
        group: String,
        target: String,
        reason: MakeError,
    },
    #[error("access log {destination}: {reason}")]
    AccessLog {
        destination: String,
        reason: SinkError,
    },
    #[error("identities: {0}")]
    Identities(#[from] trellis_auth::identity::IdentityError),
}

pub struct RoutingTable {
    pub config: Arc<Config>,
    /// Verifies every signed request (even to a service without auth): the config's
    /// identities, or the default `test`/`test` key pair.
    pub verifier: Arc<trellis_auth::sigv4::Verifier>,
    /// The identity headers of each identity's caller, by the caller's ARN, made once.
    pub identity_headers: HashMap<String, crate::identity::IdentityHeaders>,
    pub ports: BTreeMap<u16, Port>,
    pub services: Vec<ServiceRoute>,
    /// False when the config has no service networks: every client may reach every service.
    networks_enforced: bool,
    vpcs: Vec<VpcRoute>,
}

/// What one listening port serves.
pub struct Port {
    pub protocol: ListenerProtocol,
    /// Lower-case host name → (service index, listener index).
    hosts: HashMap<String, (usize, usize)>,
    /// Every host name served here, with the index of its service, for the unknown-host
    /// answer's suggestions.
    host_names: Vec<(String, usize)>,
    /// How long a connection to this port may stay idle: the longest `idleTimeoutSeconds` of
    /// the services it serves, since one connection may carry requests for any of them.
    pub idle_timeout: Duration,
}

struct VpcRoute {
    cidrs: Vec<trellis_config::Cidr>,
    id: String,
    arn: String,
    /// `x-amzn-lattice-network: SourceVpcArn=<arn>`, made once.
    network_header: Option<HeaderValue>,
}

pub struct ServiceRoute {
    pub name: String,
    pub arn: String,
    /// The service's own auth layer.
    pub auth: AuthLayer,
    /// The service's tags (the file's and the API's), for `aws:ResourceTag/<key>`: resolved
    /// here, once per table, so that a request only borrows them.
    pub tags: Vec<(String, String)>,
    /// Networks this service is associated with: (network ARN, VPC indices, access logs).
    networks: Vec<NetworkRoute>,
    pub access_logs: Vec<Arc<LogSink>>,
    pub listeners: Vec<ListenerRoute>,
    /// Requests to this service that reached no target group.
    pub metrics: Arc<RouteMetrics>,
}

struct NetworkRoute {
    arn: String,
    auth: AuthLayer,
    vpcs: Vec<usize>,
    access_logs: Vec<Arc<LogSink>>,
}

pub struct ListenerRoute {
    pub name: String,
    pub arn: String,
    pub port: u16,
    pub protocol: ListenerProtocol,
    pub rules: Vec<RuleRoute>,
    pub default_action: ActionRoute,
}

pub struct RuleRoute {
    pub name: String,
    pub http_match: HttpMatch,
    pub action: ActionRoute,
}

pub enum ActionRoute {
    Fixed(u16),
    Forward(Forward),
}

/// A weighted choice among target groups: a precomputed smooth weighted round-robin schedule
/// (exact proportions, interleaved) walked by an atomic counter.
pub struct Forward {
    schedule: Vec<u8>,
    next: AtomicUsize,
    /// Indexed by the schedule's entries.
    pub choices: Vec<Choice>,
}

/// One target group of a forward action, with what a request sent to it needs.
pub struct Choice {
    pub group: Arc<GroupRoute>,
    /// Where its requests from this service are counted.
    pub metrics: Arc<RouteMetrics>,
    /// Its `x-amzn-lattice-target` value for a request admitted through no network (index 0)
    /// or through the service's network `i` (index `i + 1`), made when the table is built
    /// rather than formatted per request. `None` where the ARNs make no valid header value.
    lattice_targets: Vec<Option<HeaderValue>>,
}

impl Choice {
    /// The `x-amzn-lattice-target` value for a request admitted as `admission` says.
    pub fn lattice_target(&self, admission: &Admission) -> Option<&HeaderValue> {
        let at = admission.network.map_or(0, |(i, _)| i + 1);
        self.lattice_targets.get(at)?.as_ref()
    }
}

/// The longest a target that refused a connection stays out of rotation (a passing health
/// probe readmits it sooner): long enough to spare clients a burst of 502s, short enough that a
/// restarted target without health checks gets traffic again soon.
pub const EJECTION_PERIOD: Duration = Duration::from_secs(10);

pub struct GroupRoute {
    pub name: String,
    pub arn: String,
    pub kind: TargetGroupType,
    pub protocol_version: ProtocolVersion,
    pub targets: Vec<TargetRoute>,
    next: AtomicUsize,
}

pub struct TargetRoute {
    pub key: String,
    pub label: String,
    pub target: Arc<dyn Target>,
    pub health: Arc<HealthCell>,
}

/// A target made by the factory: (stable key, label for logs, target).
type BuiltTarget = (String, String, Arc<dyn Target>);

/// The outcome of admission: through which network, from which VPC. It borrows both from the
/// routing table, so admitting a request copies nothing.
#[derive(Clone, Copy)]
pub struct Admission<'t> {
    /// The network, and its index among the service's.
    network: Option<(usize, &'t NetworkRoute)>,
    vpc: Option<&'t VpcRoute>,
}

/// One auth layer (a service network or a service): `None` when its `authType` is `NONE`;
/// else its policy, where `AWS_IAM` without a policy denies everything.
#[derive(Clone)]
pub enum AuthLayer {
    None,
    Iam(Option<Arc<trellis_auth::policy::Policy>>),
}

impl AuthLayer {
    fn of(auth_type: AuthType, policy: Option<&trellis_config::AuthPolicy>) -> AuthLayer {
        match auth_type {
            AuthType::None => AuthLayer::None,
            AuthType::AwsIam => AuthLayer::Iam(policy.map(|p| p.0.clone())),
        }
    }

    /// The policy to evaluate, when this layer is `AWS_IAM`.
    pub fn policy(&self) -> Option<Option<&trellis_auth::policy::Policy>> {
        match self {
            AuthLayer::None => None,
            AuthLayer::Iam(policy) => Some(policy.as_deref()),
        }
    }
}

impl<'t> Admission<'t> {
    /// The auth layer of the network the client came through (`NONE` when none).
    pub fn network_auth(&self) -> &'t AuthLayer {
        static NONE: AuthLayer = AuthLayer::None;
        self.network.map_or(&NONE, |(_, n)| &n.auth)
    }

    /// ARN of the service network the client came through; `None` when networks are not
    /// enforced (a config without VPCs).
    pub fn network_arn(&self) -> Option<&'t str> {
        self.network.map(|(_, n)| n.arn.as_str())
    }

    /// The access logs of that network.
    pub fn network_logs(&self) -> &'t [Arc<LogSink>] {
        self.network.map_or(&[], |(_, n)| n.access_logs.as_slice())
    }

    /// ID of the client's VPC, if its address belongs to one.
    pub fn vpc_id(&self) -> Option<&'t str> {
        self.vpc.map(|v| v.id.as_str())
    }

    /// ARN of the client's VPC, if its address belongs to one.
    pub fn vpc_arn(&self) -> Option<&'t str> {
        self.vpc.map(|v| v.arn.as_str())
    }

    /// The `x-amzn-lattice-network` value for the client's VPC.
    pub fn network_header(&self) -> Option<&'t HeaderValue> {
        self.vpc?.network_header.as_ref()
    }
}

impl RoutingTable {
    /// Compiles `config`. Targets come from `factory`; their health cells from `monitor`, which
    /// starts probing new targets. Must be called inside a tokio runtime.
    pub fn build(
        config: Arc<Config>,
        factory: &dyn TargetFactory,
        monitor: &HealthMonitor,
        sinks: &LogSinks,
    ) -> Result<RoutingTable, BuildError> {
        let mut watches = Vec::new();
        let mut group_targets: Vec<Vec<BuiltTarget>> = Vec::new();
        for tg in &config.target_groups {
            let mut targets = Vec::new();
            for t in &tg.targets {
                let target = factory
                    .make(&config, tg, t)
                    .map_err(|reason| BuildError::Target {
                        group: tg.name.clone(),
                        target: t.id.clone(),
                        reason,
                    })?;
                let key = crate::health::target_key(&tg.arn, &t.id, t.port);
                let label = if tg.kind == TargetGroupType::Lambda {
                    format!("{} {}", tg.name, t.id)
                } else {
                    format!("{} {}:{}", tg.name, t.id, t.port)
                };
                watches.push(Watch {
                    key: key.clone(),
                    label: label.clone(),
                    target: target.clone(),
                    settings: check_settings(tg),
                });
                targets.push((key, label, target));
            }
            group_targets.push(targets);
        }
        let cells = monitor.sync(watches);
        let groups: Vec<Arc<GroupRoute>> = config
            .target_groups
            .iter()
            .zip(group_targets)
            .map(|(tg, targets)| {
                Arc::new(GroupRoute {
                    name: tg.name.clone(),
                    arn: tg.arn.clone(),
                    kind: tg.kind,
                    protocol_version: tg.protocol_version,
                    targets: targets
                        .into_iter()
                        .map(|(key, label, target)| {
                            let health = cells
                                .get(&key)
                                .cloned()
                                .unwrap_or_else(|| Arc::new(HealthCell::unavailable()));
                            TargetRoute {
                                key,
                                label,
                                target,
                                health,
                            }
                        })
                        .collect(),
                    next: AtomicUsize::new(0),
                })
            })
            .collect();

        let sink = |dest: &trellis_config::LogDestination| {
            sinks.get(dest).map_err(|reason| BuildError::AccessLog {
                destination: format!("{dest:?}"),
                reason,
            })
        };
        let mut services = Vec::new();
        let mut ports: BTreeMap<u16, Port> = BTreeMap::new();
        for (si, svc) in config.services.iter().enumerate() {
            let mut networks = Vec::new();
            for sn in config
                .service_networks
                .iter()
                .filter(|sn| sn.services.contains(&si))
            {
                networks.push(NetworkRoute {
                    arn: sn.arn.clone(),
                    auth: AuthLayer::of(sn.auth_type, sn.auth_policy.as_ref()),
                    vpcs: sn.vpcs.clone(),
                    access_logs: sn.access_logs.iter().map(sink).collect::<Result<_, _>>()?,
                });
            }
            let network_arns: Vec<&str> = networks.iter().map(|n| n.arn.as_str()).collect();
            let service = ServiceIds {
                name: &svc.name,
                arn: &svc.arn,
                network_arns: &network_arns,
            };
            let mut listeners = Vec::new();
            for (li, l) in svc.listeners.iter().enumerate() {
                let port = ports.entry(l.port).or_insert_with(|| Port {
                    protocol: l.protocol,
                    hosts: HashMap::new(),
                    host_names: Vec::new(),
                    idle_timeout: Duration::ZERO,
                });
                port.idle_timeout = port
                    .idle_timeout
                    .max(Duration::from_secs(u64::from(svc.idle_timeout_seconds)));
                for host in svc.host_names() {
                    // The config refuses a host name that leads to two services on a port,
                    // so no insert here replaces another service's entry.
                    port.hosts.insert(host.to_ascii_lowercase(), (si, li));
                    port.host_names.push((host, si));
                }
                listeners.push(ListenerRoute {
                    name: l.name.clone(),
                    arn: l.arn.clone(),
                    port: l.port,
                    protocol: l.protocol,
                    rules: l
                        .rules
                        .iter()
                        .map(|r| RuleRoute {
                            name: r.name.clone(),
                            http_match: r.http_match.clone(),
                            action: compile_action(&r.action, &groups, &service),
                        })
                        .collect(),
                    default_action: compile_action(&l.default_action, &groups, &service),
                });
            }
            services.push(ServiceRoute {
                name: svc.name.clone(),
                arn: svc.arn.clone(),
                auth: AuthLayer::of(svc.auth_type, svc.auth_policy.as_ref()),
                tags: svc.tags.clone(),
                networks,
                access_logs: svc.access_logs.iter().map(sink).collect::<Result<_, _>>()?,
                listeners,
                metrics: crate::metrics::global().route(&svc.name, "-"),
            });
        }
        let vpcs = config
            .vpcs
            .iter()
            .map(|v| VpcRoute {
                cidrs: v.cidrs.clone(),
                id: v.id.clone(),
                arn: v.arn.clone(),
                network_header: HeaderValue::try_from(format!("SourceVpcArn={}", v.arn)).ok(),
            })
            .collect();
        let networks_enforced = !config.service_networks.is_empty();
        let verifier = trellis_auth::sigv4::Verifier::new(&config.signers(), &config.region)?;
        // Keyed by the caller's ARN: two identities of one principal with different tags would
        // share a key, so such a principal's headers are left to be made per request.
        let shared = |arn: &str| verifier.callers().filter(|c| c.arn == arn).count() > 1;
        let identity_headers = verifier
            .callers()
            .filter(|caller| !shared(&caller.arn))
            .map(|caller| (caller.arn.clone(), crate::identity::header_values(caller)))
            .collect();
        Ok(RoutingTable {
            config,
            verifier: Arc::new(verifier),
            identity_headers,
            ports,
            services,
            networks_enforced,
            vpcs,
        })
    }

    /// The service and listener serving `host` on `port`.
    pub fn find(&self, port: u16, host: &str) -> Option<(&ServiceRoute, &ListenerRoute)> {
        let (si, li) = *self.ports.get(&port)?.hosts.get(&normalize_host(host))?;
        let svc = self.services.get(si)?;
        Some((svc, svc.listeners.get(li)?))
    }

    /// What the unknown-host answer suggests: at most `limit` host names served on `port`,
    /// the closest to `host` by edit distance, and how many others there are. Only names of
    /// services a client at `ip` may reach count: a client whose VPC reaches none learns none.
    /// Bounded by the table (one distance per name), not by the request: `host` is cut to a
    /// DNS name's 253 characters first.
    pub fn closest_hosts(
        &self,
        port: u16,
        host: &str,
        ip: IpAddr,
        limit: usize,
    ) -> (Vec<String>, usize) {
        let Some(port) = self.ports.get(&port) else {
            return (Vec::new(), 0);
        };
        let wanted: String = normalize_host(host).chars().take(253).collect();
        // Whether the client may reach each service, found once per service.
        let mut reachable: Vec<Option<bool>> = vec![None; self.services.len()];
        let mut candidates: Vec<(usize, &str)> = Vec::new();
        for (name, si) in &port.host_names {
            let Some(slot) = reachable.get_mut(*si) else {
                continue;
            };
            let admitted = *slot.get_or_insert_with(|| {
                self.services
                    .get(*si)
                    .is_some_and(|svc| self.admit(svc, ip).is_some())
            });
            if admitted {
                let distance = strsim::levenshtein(&wanted, &name.to_ascii_lowercase());
                candidates.push((distance, name));
            }
        }
        candidates.sort_unstable();
        let more = candidates.len().saturating_sub(limit);
        let closest = candidates
            .into_iter()
            .take(limit)
            .map(|(_, name)| name.to_string())
            .collect();
        (closest, more)
    }

    /// Whether a client at `ip` may reach `svc`: its VPC must be associated with a network the
    /// service is associated with. `None` means refused.
    pub fn admit<'t>(&'t self, svc: &'t ServiceRoute, ip: IpAddr) -> Option<Admission<'t>> {
        let vpc = self
            .vpcs
            .iter()
            .position(|v| v.cidrs.iter().any(|c| c.contains(ip)));
        let mut admission = Admission {
            network: None,
            vpc: vpc.map(|i| &self.vpcs[i]),
        };
        if !self.networks_enforced {
            return Some(admission);
        }
        let vpc = vpc?;
        let at = svc.networks.iter().position(|n| n.vpcs.contains(&vpc))?;
        admission.network = Some((at, &svc.networks[at]));
        Some(admission)
    }
}

/// Lower-cases and strips the port and a trailing dot: `Svc.Example.com.:8080` → `svc.example.com`.
pub fn normalize_host(host: &str) -> String {
    let host = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
            _ => host,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl ListenerRoute {
    /// The first rule (by priority) that matches, else the default action.
    pub fn route(
        &self,
        method: &str,
        path: &str,
        headers: &http::HeaderMap,
    ) -> (&ActionRoute, Option<&str>) {
        for rule in &self.rules {
            if matches(&rule.http_match, method, path, headers) {
                return (&rule.action, Some(&rule.name));
            }
        }
        (&self.default_action, None)
    }
}

/// Whether every condition of `m` holds for the request. `path` excludes the query string.
pub fn matches(m: &HttpMatch, method: &str, path: &str, headers: &http::HeaderMap) -> bool {
    if let Some(want) = &m.method
        && want != method
    {
        return false;
    }
    if let Some(pm) = &m.path_match {
        let ok = match (pm.kind, pm.case_sensitive) {
            (PathMatchKind::Exact, true) => path == pm.value,
            (PathMatchKind::Exact, false) => path.eq_ignore_ascii_case(&pm.value),
            (PathMatchKind::Prefix, true) => path.starts_with(&pm.value),
            (PathMatchKind::Prefix, false) => starts_with_ignore_case(path, &pm.value),
        };
        if !ok {
            return false;
        }
    }
    m.header_matches.iter().all(|hm| {
        headers.get_all(hm.name.as_str()).iter().any(|value| {
            let Ok(value) = value.to_str() else {
                return false;
            };
            match (hm.kind, hm.case_sensitive) {
                (HeaderMatchKind::Exact, true) => value == hm.value,
                (HeaderMatchKind::Exact, false) => value.eq_ignore_ascii_case(&hm.value),
                (HeaderMatchKind::Prefix, true) => value.starts_with(&hm.value),
                (HeaderMatchKind::Prefix, false) => starts_with_ignore_case(value, &hm.value),
                (HeaderMatchKind::Contains, true) => value.contains(&hm.value),
                (HeaderMatchKind::Contains, false) => value
                    .to_ascii_lowercase()
                    .contains(&hm.value.to_ascii_lowercase()),
            }
        })
    })
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// What a service's forward actions need to know of it.
struct ServiceIds<'a> {
    name: &'a str,
    arn: &'a str,
    /// The ARNs of the networks it is associated with, in `ServiceRoute::networks`' order.
    network_arns: &'a [&'a str],
}

fn compile_action(
    action: &Action,
    groups: &[Arc<GroupRoute>],
    service: &ServiceIds<'_>,
) -> ActionRoute {
    match action {
        Action::FixedResponse { status_code } => ActionRoute::Fixed(*status_code),
        Action::Forward(weighted) => {
            let weights: Vec<u16> = weighted.iter().map(|w| w.weight).collect();
            let choices = weighted
                .iter()
                .map(|w| {
                    let group = groups[w.target_group].clone();
                    let lattice_targets = std::iter::once("")
                        .chain(service.network_arns.iter().copied())
                        .map(|network| {
                            HeaderValue::try_from(lattice_target(service.arn, network, &group.arn))
                                .ok()
                        })
                        .collect();
                    Choice {
                        metrics: crate::metrics::global().route(service.name, &group.name),
                        group,
                        lattice_targets,
                    }
                })
                .collect();
            ActionRoute::Forward(Forward {
                schedule: smooth_schedule(&weights),
                next: AtomicUsize::new(0),
                choices,
            })
        }
    }
}

/// Lattice's `x-amzn-lattice-target` header value.
pub fn lattice_target(service_arn: &str, network_arn: &str, group_arn: &str) -> String {
    format!("ServiceArn={service_arn};ServiceNetworkArn={network_arn};TargetGroupArn={group_arn}")
}

/// nginx's smooth weighted round robin, unrolled over one full cycle (sum of weights steps):
/// each group appears exactly `weight` times, spread out rather than in runs.
pub fn smooth_schedule(weights: &[u16]) -> Vec<u8> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += i64::from(*w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u8);
    }
    out
}

impl Forward {
    /// The next target group, by weight. `None` only if every weight is 0 (rejected by config).
    pub fn pick(&self) -> Option<&Choice> {
        if self.schedule.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.schedule.len();
        self.choices.get(usize::from(self.schedule[n]))
    }
}

impl GroupRoute {
    /// Round robin over targets in service; when none is, over all of them (Lattice fails open).
    /// Ejected targets (which refused a connection) are left out like unhealthy ones.
    pub fn pick(&self) -> Option<&TargetRoute> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let healthy = self
            .targets
            .iter()
            .filter(|t| t.health.in_rotation())
            .count();
        if healthy == 0 {
            return self.targets.get(n % self.targets.len().max(1));
        }
        self.targets
            .iter()
            .filter(|t| t.health.in_rotation())
            .nth(n % healthy)
    }

    /// Another target than `failed` to send a request it refused to, if one is in rotation.
    /// No fail-open here: retrying on a target known to be out of service helps nobody.
    pub fn pick_other(&self, failed: &TargetRoute) -> Option<&TargetRoute> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let others = || {
            self.targets
                .iter()
                .filter(move |t| t.key != failed.key && t.health.in_rotation())
        };
        let count = others().count();
        if count == 0 {
            return None;
        }
        others().nth(n % count)
    }
}

/// Health-check settings for the prober, or `None` when checks are off.
fn check_settings(tg: &TargetGroup) -> Option<CheckSettings> {
    let hc = &tg.health_check;
    if !hc.enabled || tg.kind == TargetGroupType::Lambda {
        return None;
    }
    Some(CheckSettings {
        probe: ProbeSpec {
            scheme: if hc.protocol == TargetProtocol::Https {
                "https"
            } else {
                "http"
            },
            http2: hc.protocol_version == ProtocolVersion::Http2,
            port: hc.port,
            path: hc.path.clone(),
            timeout: Duration::from_secs(u64::from(hc.timeout_seconds)),
        },
        interval: Duration::from_secs(u64::from(hc.interval_seconds)),
        healthy_threshold: hc.healthy_threshold,
        unhealthy_threshold: hc.unhealthy_threshold,
        matcher: hc.matcher.clone(),
    })
}

impl HealthCell {
    fn unavailable() -> HealthCell {
        HealthCell::with(Status::Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_exact_and_interleaved() {
        let s = smooth_schedule(&[20, 10]);
        assert_eq!(s.len(), 30);
        assert_eq!(s.iter().filter(|&&g| g == 0).count(), 20);
        assert!(
            s.windows(3).all(|w| w.contains(&0)),
            "no long runs of group 1: {s:?}"
        );
        let z = smooth_schedule(&[0, 5]);
        assert!(z.iter().all(|&g| g == 1));
    }

    /// The lattice headers made when the table is built name the network and the VPC the
    /// client was admitted through, for a service in two networks.
    #[tokio::test]
    async fn lattice_headers_name_the_network_and_vpc_of_the_admission() {
        let yaml = r#"
vpcs:
  - {name: first-vpc, cidrs: [127.0.0.2/32]}
  - {name: second-vpc, cidrs: [127.0.0.3/32]}
serviceNetworks:
  - {name: net-a, services: [svc], vpcs: [first-vpc]}
  - {name: net-b, services: [svc], vpcs: [second-vpc]}
services:
  - name: svc
    listeners:
      - name: http
        protocol: HTTP
        port: 8080
        defaultAction: {forward: {targetGroups: [{targetGroupIdentifier: web-tg}]}}
targetGroups:
  - name: web-tg
    type: INSTANCE
    config: {port: 9, healthCheck: {enabled: false}}
    targets: [{id: 127.0.0.1}]
"#;
        let config = Arc::new(trellis_config::parse_str(yaml, "t.yaml").expect("config"));
        let table = RoutingTable::build(
            config.clone(),
            &InertFactory,
            &HealthMonitor::new(),
            &LogSinks::new(),
        )
        .expect("table");
        let (svc, listener) = table.find(8080, "svc.trellis.localhost").expect("service");
        let ActionRoute::Forward(forward) = &listener.default_action else {
            panic!("a forward action");
        };
        let network_arn = |name: &str| {
            let sn = config.service_networks.iter().find(|n| n.name == name);
            sn.expect("network").arn.clone()
        };
        for (ip, network, vpc) in [("127.0.0.2", "net-a", 0), ("127.0.0.3", "net-b", 1)] {
            let admission = table.admit(svc, ip.parse().unwrap()).expect("admitted");
            assert_eq!(admission.network_arn(), Some(network_arn(network).as_str()));
            let choice = forward.pick().expect("a group");
            let expected = lattice_target(&svc.arn, &network_arn(network), &choice.group.arn);
            assert_eq!(
                choice.lattice_target(&admission).unwrap(),
                expected.as_str()
            );
            let vpc_arn = &config.vpcs[vpc].arn;
            let network_header = admission.network_header().expect("x-amzn-lattice-network");
            assert_eq!(network_header, format!("SourceVpcArn={vpc_arn}").as_str());
        }
        // Outside every VPC: refused, as networks are enforced.
        assert!(table.admit(svc, "127.0.0.9".parse().unwrap()).is_none());
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(
            normalize_host("Svc.Trellis.Localhost:8080"),
            "svc.trellis.localhost"
        );
        assert_eq!(normalize_host("svc.example.com."), "svc.example.com");
        assert_eq!(normalize_host("[::1]:8080"), "::1");
        assert_eq!(normalize_host("::1"), "::1");
    }
}
