//! The effective config as the API's output shapes, and the lookups the operations share:
//! objects by identifier (id, ARN or name), ownership, times, paging.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use trellis_config::*;

use crate::error::ApiError;
use crate::store::Snapshot;

/// The hosted zone every generated DNS name is given (Lattice's are per region; Trellis
/// serves no DNS, so it is a fixed, recognisable value).
pub const HOSTED_ZONE_ID: &str = "Z0TRELLIS0LOCAL";

/// What an operation reads: the effective config, the store, and when file objects were seen.
pub(crate) struct View<'a> {
    pub config: &'a Config,
    pub snap: &'a Snapshot,
    pub seen: &'a HashMap<String, String>,
    pub file_name: &'a str,
}

/// `ResourceNotFoundException` for `ident` of `kind` (the model's resource type word).
pub(crate) fn not_found(kind: &str, what: &str, ident: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("{what} {ident} does not exist"),
        resource_id: ident.to_string(),
        resource_type: kind.to_string(),
    }
}

/// `ConflictException` about resource `id` of `kind`.
pub(crate) fn conflict(kind: &str, id: &str, message: String) -> ApiError {
    ApiError::Conflict {
        message,
        resource_id: id.to_string(),
        resource_type: kind.to_string(),
    }
}

/// `ServiceQuotaExceededException`.
pub(crate) fn quota(kind: &str, code: &str, message: String) -> ApiError {
    ApiError::QuotaExceeded {
        message,
        resource_type: kind.to_string(),
        quota_code: code.to_string(),
    }
}

fn is(ident: &str, name: &str, id: &str, arn: &str) -> bool {
    ident == id || ident == arn || ident == name
}

impl View<'_> {
    /// `createdAt` and `lastUpdatedAt` of the object with `arn`.
    pub fn times(&self, arn: &str) -> (String, String) {
        if let Some(m) = self.snap.resources.get(arn) {
            return (m.created_at.clone(), m.last_updated_at.clone());
        }
        let t = self.seen.get(arn).cloned().unwrap_or_else(crate::time::now);
        (t.clone(), t)
    }

    /// The ConflictException for a change to an object of the file.
    pub fn file_owned(&self, kind: &str, what: &str, name: &str, id: &str) -> ApiError {
        conflict(
            kind,
            id,
            format!(
                "{what} \"{name}\" comes from the config file {}; edit it there (the API changes only the objects it created, and registers and deregisters targets of any target group)",
                self.file_name
            ),
        )
    }

    pub fn service(&self, ident: &str) -> Result<(usize, &Service), ApiError> {
        self.config
            .services
            .iter()
            .enumerate()
            .find(|(_, s)| is(ident, &s.name, &s.id, &s.arn))
            .ok_or_else(|| not_found("SERVICE", "service", ident))
    }

    pub fn network(&self, ident: &str) -> Result<(usize, &ServiceNetwork), ApiError> {
        self.config
            .service_networks
            .iter()
            .enumerate()
            .find(|(_, s)| is(ident, &s.name, &s.id, &s.arn))
            .ok_or_else(|| not_found("SERVICE_NETWORK", "service network", ident))
    }

    pub fn target_group(&self, ident: &str) -> Result<(usize, &TargetGroup), ApiError> {
        self.config
            .target_groups
            .iter()
            .enumerate()
            .find(|(_, s)| is(ident, &s.name, &s.id, &s.arn))
            .ok_or_else(|| not_found("TARGET_GROUP", "target group", ident))
    }

    pub fn listener<'s>(&self, svc: &'s Service, ident: &str) -> Result<&'s Listener, ApiError> {
        svc.listeners
            .iter()
            .find(|l| is(ident, &l.name, &l.id, &l.arn))
            .ok_or_else(|| not_found("LISTENER", "listener", ident))
    }

    pub fn vpc(&self, ident: &str) -> Result<(usize, &Vpc), ApiError> {
        self.config
            .vpcs
            .iter()
            .enumerate()
            .find(|(_, s)| is(ident, &s.name, &s.id, &s.arn))
            .ok_or_else(|| {
                let names: Vec<&str> = self.config.vpcs.iter().map(|v| v.name.as_str()).collect();
                ApiError::NotFound {
                    message: format!(
                        "VPC {ident} does not exist; the VPCs are the config file's vpcs ({})",
                        if names.is_empty() {
                            "none defined".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                    resource_id: ident.to_string(),
                    resource_type: "VPC".into(),
                }
            })
    }

    /// The index of the store's object named `name` in the document's list `key`.
    pub fn owned(&self, key: &str, name: &str) -> Option<usize> {
        owned(self.snap, key, name)
    }

    /// The services that use target group `tg` (by index), by ARN.
    pub fn services_of(&self, tg: usize) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.config.services {
            let uses = s.listeners.iter().any(|l| {
                std::iter::once(&l.default_action)
                    .chain(l.rules.iter().map(|r| &r.action))
                    .any(|a| matches!(a, Action::Forward(w) if w.iter().any(|w| w.target_group == tg)))
            });
            if uses {
                out.push(s.arn.clone());
            }
        }
        out
    }

    pub fn dns_entry(svc: &Service) -> Value {
        json!({"domainName": svc.dns_name, "hostedZoneId": HOSTED_ZONE_ID})
    }

    pub fn service_json(&self, svc: &Service) -> Map<String, Value> {
        let (created, updated) = self.times(&svc.arn);
        let mut m = obj(json!({
            "id": svc.id, "name": svc.name, "arn": svc.arn,
            "createdAt": created, "lastUpdatedAt": updated,
            "dnsEntry": Self::dns_entry(svc), "status": "ACTIVE",
            "authType": auth_type(svc.auth_type),
            "idleTimeoutSeconds": svc.idle_timeout_seconds,
        }));
        if let Some(d) = &svc.custom_domain_name {
            m.insert("customDomainName".into(), json!(d));
        }
        m
    }

    pub fn network_json(&self, sn: &ServiceNetwork) -> Map<String, Value> {
        let (created, updated) = self.times(&sn.arn);
        obj(json!({
            "id": sn.id, "name": sn.name, "arn": sn.arn,
            "createdAt": created, "lastUpdatedAt": updated,
            "authType": auth_type(sn.auth_type),
            "sharingConfig": {"enabled": false},
            "numberOfAssociatedServices": sn.services.len(),
            "numberOfAssociatedVPCs": sn.vpcs.len(),
            "numberOfAssociatedResourceConfigurations": 0,
        }))
    }

    pub fn target_group_json(&self, index: usize, tg: &TargetGroup) -> Map<String, Value> {
        let (created, updated) = self.times(&tg.arn);
        let mut config = Map::new();
        if tg.kind == TargetGroupType::Lambda {
            let v = match tg.lambda_event_structure_version {
                EventVersion::V1 => "V1",
                EventVersion::V2 => "V2",
            };
            config.insert("lambdaEventStructureVersion".into(), json!(v));
        } else {
            config.insert("port".into(), json!(tg.port));
            config.insert("protocol".into(), json!(tg.protocol.as_str()));
            config.insert(
                "protocolVersion".into(),
                json!(tg.protocol_version.as_str()),
            );
            // What the config model does not keep is echoed from the store's object.
            let stored = self
                .owned("targetGroups", &tg.name)
                .and_then(|i| list(self.snap, "targetGroups").get(i))
                .and_then(|v| v.get("config"));
            for key in ["ipAddressType", "vpcIdentifier"] {
                if let Some(v) = stored.and_then(|c| c.get(key)) {
                    config.insert(key.into(), v.clone());
                }
            }
            if tg.kind == TargetGroupType::Ip && !config.contains_key("ipAddressType") {
                config.insert("ipAddressType".into(), json!("IPV4"));
            }
            if tg.kind != TargetGroupType::Alb {
                config.insert("healthCheck".into(), health_check_json(&tg.health_check));
            }
        }
        obj(json!({
            "id": tg.id, "arn": tg.arn, "name": tg.name, "type": tg.kind.as_str(),
            "config": config, "status": "ACTIVE",
            "createdAt": created, "lastUpdatedAt": updated,
            "serviceArns": self.services_of(index),
        }))
    }

    pub fn target_group_summary(&self, index: usize, tg: &TargetGroup) -> Value {
        let full = self.target_group_json(index, tg);
        let mut m = Map::new();
        for key in [
            "id",
            "arn",
            "name",
            "type",
            "status",
            "createdAt",
            "lastUpdatedAt",
            "serviceArns",
        ] {
            if let Some(v) = full.get(key) {
                m.insert(key.into(), v.clone());
            }
        }
        if let Some(c) = full.get("config").and_then(Value::as_object) {
            for key in [
                "port",
                "protocol",
                "ipAddressType",
                "vpcIdentifier",
                "lambdaEventStructureVersion",
            ] {
                if let Some(v) = c.get(key) {
                    m.insert(key.into(), v.clone());
                }
            }
        }
        Value::Object(m)
    }

    pub fn action_json(&self, action: &Action) -> Value {
        match action {
            Action::FixedResponse { status_code } => {
                json!({"fixedResponse": {"statusCode": status_code}})
            }
            Action::Forward(w) => {
                let tgs: Vec<Value> = w
                    .iter()
                    .map(|w| {
                        let id = self
                            .config
                            .target_groups
                            .get(w.target_group)
                            .map(|t| t.id.clone())
                            .unwrap_or_default();
                        json!({"targetGroupIdentifier": id, "weight": w.weight})
                    })
                    .collect();
                json!({"forward": {"targetGroups": tgs}})
            }
        }
    }

    pub fn listener_json(&self, svc: &Service, l: &Listener) -> Map<String, Value> {
        let (created, updated) = self.times(&l.arn);
        obj(json!({
            "arn": l.arn, "id": l.id, "name": l.name, "protocol": l.protocol.as_str(),
            "port": l.port, "serviceArn": svc.arn, "serviceId": svc.id,
            "defaultAction": self.action_json(&l.default_action),
            "createdAt": created, "lastUpdatedAt": updated,
        }))
    }

    pub fn rule_json(&self, r: &Rule) -> Map<String, Value> {
        let (created, updated) = self.times(&r.arn);
        obj(json!({
            "arn": r.arn, "id": r.id, "name": r.name, "isDefault": false,
            "match": match_json(&r.http_match), "priority": r.priority,
            "action": self.action_json(&r.action),
            "createdAt": created, "lastUpdatedAt": updated,
        }))
    }

    /// A listener's default rule, as Lattice lists it after the others.
    pub fn default_rule_json(&self, l: &Listener) -> Map<String, Value> {
        let (id, arn) = default_rule_id(l);
        let (created, updated) = self.times(&l.arn);
        obj(json!({
            "arn": arn, "id": id, "name": "default", "isDefault": true,
            "action": self.action_json(&l.default_action),
            "createdAt": created, "lastUpdatedAt": updated,
        }))
    }
}

/// The id and ARN of a listener's default rule.
pub(crate) fn default_rule_id(l: &Listener) -> (String, String) {
    let id = format!("rule-{}", stable_id(&["defaultrule", &l.arn]));
    let arn = format!("{}/rule/{id}", l.arn);
    (id, arn)
}

pub(crate) fn auth_type(t: AuthType) -> &'static str {
    match t {
        AuthType::None => "NONE",
        AuthType::AwsIam => "AWS_IAM",
    }
}

pub(crate) fn health_check_json(hc: &HealthCheck) -> Value {
    let mut m = obj(json!({
        "enabled": hc.enabled, "protocol": hc.protocol.as_str(),
        "protocolVersion": hc.protocol_version.as_str(), "path": hc.path,
        "healthCheckIntervalSeconds": hc.interval_seconds,
        "healthCheckTimeoutSeconds": hc.timeout_seconds,
        "healthyThresholdCount": hc.healthy_threshold,
        "unhealthyThresholdCount": hc.unhealthy_threshold,
        "matcher": {"httpCode": hc.matcher_text()},
    }));
    if let Some(p) = hc.port {
        m.insert("port".into(), json!(p));
    }
    Value::Object(m)
}

pub(crate) fn match_json(m: &HttpMatch) -> Value {
    let mut h = Map::new();
    if let Some(method) = &m.method {
        h.insert("method".into(), json!(method));
    }
    if let Some(p) = &m.path_match {
        let kind = match p.kind {
            PathMatchKind::Exact => "exact",
            PathMatchKind::Prefix => "prefix",
        };
        h.insert(
            "pathMatch".into(),
            json!({"match": {kind: p.value}, "caseSensitive": p.case_sensitive}),
        );
    }
    if !m.header_matches.is_empty() {
        let list: Vec<Value> = m
            .header_matches
            .iter()
            .map(|x| {
                let kind = match x.kind {
                    HeaderMatchKind::Exact => "exact",
                    HeaderMatchKind::Prefix => "prefix",
                    HeaderMatchKind::Contains => "contains",
                };
                json!({"name": x.name, "match": {kind: x.value}, "caseSensitive": x.case_sensitive})
            })
            .collect();
        h.insert("headerMatches".into(), Value::Array(list));
    }
    json!({"httpMatch": h})
}

pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The store document's list `key` (empty when absent).
pub(crate) fn list<'s>(snap: &'s Snapshot, key: &str) -> &'s [Value] {
    snap.document
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The store document's list `key`, made when absent.
pub(crate) fn list_mut<'s>(snap: &'s mut Snapshot, key: &str) -> &'s mut Vec<Value> {
    let slot = snap
        .document
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    match slot {
        Value::Array(v) => v,
        _ => unreachable!("made an array above"),
    }
}

/// The index of the object named `name` in the document's list `key`.
pub(crate) fn owned(snap: &Snapshot, key: &str, name: &str) -> Option<usize> {
    list(snap, key)
        .iter()
        .position(|v| v.get("name").and_then(Value::as_str) == Some(name))
}

/// One page of `items`: `maxResults` (1-100, default 100) from `nextToken` (an offset this
/// control plane made).
pub(crate) fn page(items: Vec<Value>, input: &Map<String, Value>) -> Outcome {
    let max = input
        .get("maxResults")
        .and_then(Value::as_u64)
        .unwrap_or(100)
        .clamp(1, 100) as usize;
    let start = match input.get("nextToken").and_then(Value::as_str) {
        None => 0,
        Some(t) => t
            .strip_prefix("trellis-page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| {
                ApiError::field(
                    "nextToken",
                    format!("nextToken \"{t}\" is not a token this list returned"),
                )
            })?,
    };
    let end = (start + max).min(items.len());
    let mut out = Map::new();
    out.insert(
        "items".into(),
        Value::Array(items.get(start..end).unwrap_or_default().to_vec()),
    );
    if end < items.len() {
        out.insert("nextToken".into(), json!(format!("trellis-page-{end}")));
    }
    Ok(out)
}

type Outcome = crate::Outcome;
