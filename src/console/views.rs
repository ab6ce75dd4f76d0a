//! The console's JSON views of the configuration being served: the directory, one service's
//! routing with its targets' live health, and the target groups.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde_json::{Value, json};
use trellis_config::{Action, AuthType, Config, HttpMatch, PathMatchKind};
use trellis_router::RoutingTable;
use trellis_router::health::{HealthCell, Status};
use trellis_router::table::ActionRoute;

use super::Console;

impl Console {
    /// The directory: networks with their VPCs and services, services with their names,
    /// listeners and auth type.
    pub(super) fn directory(&self) -> Value {
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
        // Who the send form can sign as: names only, never a secret.
        let identities: Vec<Value> = c
            .signers()
            .iter()
            .map(|i| {
                json!({
                    "arn": i.arn, "accessKeyId": i.access_key_id,
                    "principal": i.caller().map(|c| c.arn).unwrap_or_else(|_| i.arn.clone()),
                })
            })
            .collect();
        json!({"region": c.region, "networks": networks, "services": services,
               "identities": identities})
    }

    /// Every target group's name, ARN and type (the live log names groups by ARN).
    pub(super) fn target_groups(&self) -> Value {
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
    pub(super) fn service(&self, name: &str) -> Option<Value> {
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
