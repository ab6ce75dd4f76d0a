//! `targetGroups`: INSTANCE, IP, ALB and LAMBDA groups of targets, their protocol settings and
//! health checks, with Lattice's defaults.

use std::net::IpAddr;

use super::Ctx;
use super::checks::{Named, named, resolve};
use super::section::{Item, NameRule, NameSyntax, Section};
use crate::decode::{Fields, Loc, fields, int, item, list, one_of, string};
use crate::model::*;
use crate::yaml::Node;

const TARGET_GROUPS: Section = Section {
    key: "targetGroups",
    keys: &["name", "type", "config", "targets"],
    required: None,
    name: NameRule {
        what: "target group name",
        syntax: NameSyntax::Lattice {
            min: 3,
            max: 128,
            reserved_prefix: Some("tg-"),
        },
    },
};

impl Ctx<'_> {
    pub(super) fn target_groups(
        &mut self,
        top: &Fields<'_>,
        functions: &[Function],
    ) -> Vec<TargetGroup> {
        self.section(top, &TARGET_GROUPS, |ctx, item| {
            ctx.target_group(item, functions)
        })
    }

    fn target_group(
        &mut self,
        Item { f, at, name }: Item<'_>,
        functions: &[Function],
    ) -> TargetGroup {
        let kind = match f
            .require(self.problems, "type", "one of INSTANCE, IP, LAMBDA, ALB")
            .and_then(|n| {
                one_of(
                    self.problems,
                    n,
                    &f.loc("type"),
                    &["INSTANCE", "IP", "LAMBDA", "ALB"],
                )
            })
            .as_deref()
        {
            Some("IP") => TargetGroupType::Ip,
            Some("LAMBDA") => TargetGroupType::Lambda,
            Some("ALB") => TargetGroupType::Alb,
            _ => TargetGroupType::Instance,
        };
        let id = format!("tg-{}", self.id("targetgroup", &name));
        let arn = self.arn(&format!("targetgroup/{id}"));
        let mut tg = TargetGroup {
            name,
            id,
            arn,
            kind,
            port: 80,
            protocol: TargetProtocol::Http,
            protocol_version: ProtocolVersion::Http1,
            health_check: default_health_check(false, TargetProtocol::Http),
            lambda_event_structure_version: EventVersion::V1,
            targets: Vec::new(),
            at,
        };
        self.tg_config(&f, &mut tg);
        self.targets(&f, &mut tg, functions);
        tg
    }

    fn tg_config(&mut self, tg_fields: &Fields<'_>, tg: &mut TargetGroup) {
        /// The keys of `config`: all but the last are for INSTANCE and IP groups only, the last
        /// for LAMBDA groups only.
        const KEYS: &[&str] = &[
            "port",
            "protocol",
            "protocolVersion",
            "ipAddressType",
            "vpcIdentifier",
            "healthCheck",
            "lambdaEventStructureVersion",
        ];
        const NOT_FOR_LAMBDA: &[&str] = KEYS.split_last().expect("KEYS is not empty").1;
        let lambda = tg.kind == TargetGroupType::Lambda;
        let f = match tg_fields.get("config") {
            Some(node) => match fields(self.problems, node, &tg_fields.loc("config"), KEYS) {
                Some(f) => Some(f),
                None => return,
            },
            None => None,
        };
        let Some(f) = f else {
            tg.health_check = default_health_check(!lambda, tg.protocol);
            if lambda {
                tg.health_check.enabled = false;
            }
            return;
        };
        if lambda {
            for &key in NOT_FOR_LAMBDA {
                if f.get(key).is_some() {
                    self.problems.add(
                        &f.loc(key),
                        format!("\"{key}\" is not allowed for a LAMBDA target group"),
                        Some(
                            "a LAMBDA target group's config takes only lambdaEventStructureVersion"
                                .into(),
                        ),
                    );
                }
            }
            tg.health_check.enabled = false;
            if let Some(v) = self.enum_field(&f, "lambdaEventStructureVersion", &["V1", "V2"]) {
                tg.lambda_event_structure_version = if v == "V2" {
                    EventVersion::V2
                } else {
                    EventVersion::V1
                };
            }
            return;
        }
        if f.get("lambdaEventStructureVersion").is_some() {
            self.problems.add(
                &f.loc("lambdaEventStructureVersion"),
                "lambdaEventStructureVersion is only for LAMBDA target groups",
                None,
            );
        }
        if let Some(p) = self.target_protocol(
            &f,
            "TCP target groups are not supported by Trellis yet",
            "TCP target groups need TLS_PASSTHROUGH listeners; use HTTP or HTTPS",
        ) {
            tg.protocol = p;
        }
        tg.port = self
            .int_field(&f, "port", 1, 65535, "a port")
            .map(|p| p as u16)
            .unwrap_or(if tg.protocol == TargetProtocol::Https {
                443
            } else {
                80
            });
        if let Some(v) = self.enum_field(&f, "protocolVersion", &["HTTP1", "HTTP2", "GRPC"]) {
            tg.protocol_version = match v.as_str() {
                "HTTP2" => ProtocolVersion::Http2,
                "GRPC" => ProtocolVersion::Grpc,
                _ => ProtocolVersion::Http1,
            };
        }
        self.enum_field(&f, "ipAddressType", &["IPV4", "IPV6"]);
        if let Some(v) = self.str_field(&f, "vpcIdentifier") {
            let ok = v.strip_prefix("vpc-").is_some_and(|rest| {
                (rest.len() == 8 || rest.len() == 17) && rest.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !ok {
                self.problems.add(&f.loc("vpcIdentifier"), format!("\"{v}\" is not a VPC id"), Some("a VPC id is \"vpc-\" and 8 or 17 hex characters (Trellis does not need it)".into()));
            }
        }
        tg.health_check =
            default_health_check(tg.protocol_version == ProtocolVersion::Http1, tg.protocol);
        if let Some(node) = f.get("healthCheck") {
            self.health_check(node, &f.loc("healthCheck"), &mut tg.health_check);
        }
    }

    fn health_check(&mut self, node: &Node, loc: &Loc, hc: &mut HealthCheck) {
        const KEYS: &[&str] = &[
            "enabled",
            "protocol",
            "protocolVersion",
            "port",
            "path",
            "healthCheckIntervalSeconds",
            "healthCheckTimeoutSeconds",
            "healthyThresholdCount",
            "unhealthyThresholdCount",
            "matcher",
        ];
        let Some(f) = fields(self.problems, node, loc, KEYS) else {
            return;
        };
        if let Some(e) = self.bool_field(&f, "enabled") {
            hc.enabled = e;
        }
        if let Some(p) = self.target_protocol(
            &f,
            "TCP health checks are not supported by Trellis yet",
            "use HTTP or HTTPS",
        ) {
            hc.protocol = p;
        }
        if let Some(v) = self.enum_field(&f, "protocolVersion", &["HTTP1", "HTTP2"]) {
            hc.protocol_version = if v == "HTTP2" {
                ProtocolVersion::Http2
            } else {
                ProtocolVersion::Http1
            };
        }
        if let Some(p) = self.int_field(&f, "port", 0, 65535, "a health-check port") {
            hc.port = (p != 0).then_some(p as u16);
        }
        if let Some(path) = self.str_field(&f, "path") {
            if !path.starts_with('/') || path.len() > 2048 {
                self.problems.add(&f.loc("path"), format!("health-check path \"{path}\" must start with '/'"), Some("a health-check path is up to 2048 characters starting with '/', e.g. /health".into()));
            } else {
                hc.path = path;
            }
        }
        // Lattice: 0 resets a value to its default.
        let mut ranged = |key: &str, min: i64, max: i64, what: &str, slot: &mut u32| {
            if let Some(v) = f
                .get(key)
                .and_then(|n| int(self.problems, n, &f.loc(key), i64::MIN, i64::MAX, what))
            {
                if v == 0 {
                    return;
                }
                if v < min || v > max {
                    self.problems.add(
                        &f.loc(key),
                        format!("{v} is out of range"),
                        Some(format!("{what} is {min}-{max} (0 means the default)")),
                    );
                } else {
                    *slot = v as u32;
                }
            }
        };
        ranged(
            "healthCheckIntervalSeconds",
            5,
            300,
            "healthCheckIntervalSeconds",
            &mut hc.interval_seconds,
        );
        ranged(
            "healthCheckTimeoutSeconds",
            1,
            120,
            "healthCheckTimeoutSeconds",
            &mut hc.timeout_seconds,
        );
        ranged(
            "healthyThresholdCount",
            2,
            10,
            "healthyThresholdCount",
            &mut hc.healthy_threshold,
        );
        ranged(
            "unhealthyThresholdCount",
            2,
            10,
            "unhealthyThresholdCount",
            &mut hc.unhealthy_threshold,
        );
        if let Some(m) = f.get("matcher") {
            let mloc = f.loc("matcher");
            if let Some(g) = fields(self.problems, m, &mloc, &["httpCode"])
                && let Some(code) = g
                    .get("httpCode")
                    .and_then(|n| string(self.problems, n, &g.loc("httpCode")))
            {
                match parse_matcher(&code) {
                    Ok(ranges) => hc.matcher = ranges,
                    Err(why) => self.problems.add(
                        &g.loc("httpCode"),
                        format!("matcher \"{code}\": {why}"),
                        Some(
                            "write codes 200-499 as a list (\"200,202\") or a range (\"200-299\")"
                                .into(),
                        ),
                    ),
                }
            }
        }
    }

    /// The `protocol` of a target group or its health check: HTTP or HTTPS. Lattice also has
    /// TCP, which Trellis does not serve yet: reported with `tcp` and `tcp_hint`.
    fn target_protocol(
        &mut self,
        f: &Fields<'_>,
        tcp: &str,
        tcp_hint: &str,
    ) -> Option<TargetProtocol> {
        let p = self.enum_field(f, "protocol", &["HTTP", "HTTPS", "TCP"])?;
        match p.as_str() {
            "HTTPS" => Some(TargetProtocol::Https),
            "TCP" => {
                self.problems
                    .add(&f.loc("protocol"), tcp, Some(tcp_hint.into()));
                None
            }
            _ => Some(TargetProtocol::Http),
        }
    }

    fn targets(&mut self, f: &Fields<'_>, tg: &mut TargetGroup, functions: &[Function]) {
        let loc = f.loc("targets");
        let items = list(self.problems, f.get("targets"), &loc);
        if tg.kind == TargetGroupType::Lambda && items.len() > 1 {
            self.problems.add(
                &loc,
                format!(
                    "a LAMBDA target group holds exactly one function, found {}",
                    items.len()
                ),
                Some("make one target group per function and split traffic with weights".into()),
            );
        }
        if items.len() > 1000 {
            self.problems.add(
                &loc,
                format!(
                    "{} targets is more than the 1000 a target group may hold",
                    items.len()
                ),
                None,
            );
        }
        let named = named(functions, |x| (&x.name, &x.name, &x.arn));
        for (i, node) in items.iter().enumerate() {
            if let Some(target) = self.target(node, &item(&loc, i, node), tg, &named) {
                tg.targets.push(target);
            }
        }
    }

    /// One target of `tg` (from its `targets`, or registered by the API), checked against the
    /// group's type: LAMBDA targets name a function of `functions`.
    pub(super) fn target(
        &mut self,
        node: &Node,
        at: &Loc,
        tg: &TargetGroup,
        functions: &[Named<'_>],
    ) -> Option<Target> {
        let t = fields(self.problems, node, at, &["id", "port"])?;
        let id = t
            .require(
                self.problems,
                "id",
                "a host name or address (INSTANCE), an address (IP), or a function name (LAMBDA)",
            )
            .and_then(|n| string(self.problems, n, &t.loc("id")))?;
        let port = self
            .int_field(&t, "port", 1, 65535, "a port")
            .map(|p| p as u16);
        match tg.kind {
            TargetGroupType::Lambda => {
                if port.is_some() {
                    self.problems
                        .add(&t.loc("port"), "a LAMBDA target has no port", None);
                }
                resolve(self.problems, &id, &t.loc("id"), "function", functions);
            }
            TargetGroupType::Ip if id.parse::<IpAddr>().is_err() => {
                self.problems.add(&t.loc("id"), format!("\"{id}\" is not an IP address"), Some("IP targets are addresses such as 127.0.0.1; use an INSTANCE target group for host names".into()));
            }
            _ if id.is_empty() || id.contains(['/', ' ', ':']) && id.parse::<IpAddr>().is_err() => {
                self.problems.add(
                    &t.loc("id"),
                    format!("\"{id}\" is not a host name or address"),
                    Some("write the host only; the port goes in \"port\"".into()),
                );
            }
            _ if id.parse::<IpAddr>().is_err() && !is_host_name(&id) => {
                self.problems.add(
                    &t.loc("id"),
                    format!("\"{id}\" is not a host name or address"),
                    Some(
                        "a host name is letters, digits, '-', '_' and '.', e.g. api.internal"
                            .into(),
                    ),
                );
            }
            _ => {}
        }
        Some(Target {
            id,
            port: port.unwrap_or(tg.port),
        })
    }
}

/// Whether `id` can be an INSTANCE or ALB target's host: the proxy puts it in a URI authority
/// and looks it up in DNS, where anything else cannot be (`trellis up` would refuse it).
fn is_host_name(id: &str) -> bool {
    id.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn default_health_check(enabled: bool, protocol: TargetProtocol) -> HealthCheck {
    HealthCheck {
        enabled,
        protocol,
        protocol_version: ProtocolVersion::Http1,
        port: None,
        path: "/".to_string(),
        interval_seconds: 30,
        timeout_seconds: 5,
        healthy_threshold: 5,
        unhealthy_threshold: 2,
        matcher: vec![(200, 200)],
    }
}

/// `200`, `200,202`, `200-299` (codes 200-499).
pub fn parse_matcher(text: &str) -> Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) else {
            return Err(format!("\"{part}\" is not a status code or range"));
        };
        if !(200..=499).contains(&lo) || !(200..=499).contains(&hi) {
            return Err(format!("{part} is outside 200-499"));
        }
        if lo > hi {
            return Err(format!("range {part} is reversed"));
        }
        out.push((lo, hi));
    }
    Ok(out)
}
