//! The operations: each reads the effective config ([`View`]) and, for a change, edits a copy
//! of the store's snapshot; [`Plane::commit`] composes, validates, persists and applies it, and
//! the answer is rendered from the config that is then serving.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use trellis_config::{AuthType, Config, TargetGroupType, stable_id};

use crate::error::ApiError;
use crate::plane::Plane;
use crate::shapes::{View, conflict, default_rule_id, list, list_mut, not_found, obj, page, quota};
use crate::store::{AccessLogSubscription, Meta, Snapshot, TokenRecord};
use crate::{Call, Operations, Outcome, Pending};

/// The operations Trellis implements.
pub const OPERATIONS: &[&str] = &[
    "CreateServiceNetwork",
    "GetServiceNetwork",
    "ListServiceNetworks",
    "UpdateServiceNetwork",
    "DeleteServiceNetwork",
    "CreateService",
    "GetService",
    "ListServices",
    "UpdateService",
    "DeleteService",
    "CreateServiceNetworkServiceAssociation",
    "GetServiceNetworkServiceAssociation",
    "ListServiceNetworkServiceAssociations",
    "DeleteServiceNetworkServiceAssociation",
    "CreateServiceNetworkVpcAssociation",
    "GetServiceNetworkVpcAssociation",
    "ListServiceNetworkVpcAssociations",
    "UpdateServiceNetworkVpcAssociation",
    "DeleteServiceNetworkVpcAssociation",
    "CreateTargetGroup",
    "GetTargetGroup",
    "ListTargetGroups",
    "UpdateTargetGroup",
    "DeleteTargetGroup",
    "RegisterTargets",
    "DeregisterTargets",
    "ListTargets",
    "CreateListener",
    "GetListener",
    "ListListeners",
    "UpdateListener",
    "DeleteListener",
    "CreateRule",
    "GetRule",
    "ListRules",
    "UpdateRule",
    "BatchUpdateRule",
    "DeleteRule",
    "PutAuthPolicy",
    "GetAuthPolicy",
    "DeleteAuthPolicy",
    "CreateAccessLogSubscription",
    "GetAccessLogSubscription",
    "ListAccessLogSubscriptions",
    "UpdateAccessLogSubscription",
    "DeleteAccessLogSubscription",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

/// How many create answers are kept for `clientToken` idempotency.
const TOKENS_KEPT: usize = 1000;

/// Lattice's quotas (LATTICE.md §7). The quota codes are Trellis's own words: the real
/// Service Quotas codes are not published in the API model.
mod quotas {
    pub const NETWORKS: usize = 50;
    pub const SERVICES: usize = 2000;
    pub const TARGET_GROUPS: usize = 500;
    pub const LISTENERS_PER_SERVICE: usize = 2;
    pub const RULES_PER_LISTENER: usize = 10;
    pub const SERVICES_PER_NETWORK: usize = 500;
    pub const VPCS_PER_NETWORK: usize = 500;
    pub const TARGETS_PER_GROUP: usize = 1000;
    pub const TAGS_PER_RESOURCE: usize = 50;
    pub const TARGET_GROUPS_PER_SERVICE: usize = 10;
    /// LATTICE.md §7: "10 KB (hard)" (the model allows 36,864 characters).
    pub const AUTH_POLICY_BYTES: usize = 10 * 1024;
}

/// What an operation did.
enum Done {
    /// A read, answered.
    Read(Map<String, Value>),
    /// A change to commit, and how to answer from the config that then serves.
    Write(Snapshot, Box<dyn FnOnce(&View<'_>) -> Outcome + Send>),
}

type Step = Result<Done, ApiError>;

impl Operations for Plane {
    fn region(&self) -> String {
        self.region
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn implements(&self, operation: &str) -> bool {
        OPERATIONS.contains(&operation)
    }

    fn call(&self, call: Call) -> Pending<'_> {
        Box::pin(self.dispatch(call))
    }
}

/// The call's input.
struct In<'a>(&'a Map<String, Value>);

impl<'a> In<'a> {
    fn str(&self, key: &str) -> Result<&'a str, ApiError> {
        self.opt(key)
            .ok_or_else(|| ApiError::field(key, format!("{key} is required")))
    }
    fn opt(&self, key: &str) -> Option<&'a str> {
        self.0.get(key).and_then(Value::as_str)
    }
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }
}

impl Plane {
    async fn dispatch(&self, call: Call) -> Outcome {
        let op = call.operation.as_str();
        if !self.implements(op) {
            return Err(ApiError::Validation {
                message: format!("{op} is not supported by Trellis"),
                reason: "unknownOperation",
                fields: Vec::new(),
            });
        }
        let mut st = self.state.lock().await;
        let token = call
            .input
            .get("clientToken")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut input = call.input.clone();
        input.remove("clientToken");
        if let Some(token) = &token
            && let Some(rec) = st
                .snap
                .client_tokens
                .iter()
                .find(|r| r.operation == op && &r.token == token)
        {
            if rec.input == input {
                return Ok(rec.output.clone());
            }
            return Err(conflict(
                "CLIENT_TOKEN",
                token,
                format!(
                    "clientToken \"{token}\" was already used for a {op} call with other parameters"
                ),
            ));
        }
        let logs_dir = self.logs_dir.clone();
        let step = {
            let view = View {
                config: &st.config,
                snap: &st.snap,
                seen: &st.file_seen,
                file_name: &self.file_name,
            };
            run(op, &In(&call.input), &view, &logs_dir, self.data.as_ref())
        };
        match step? {
            Done::Read(out) => Ok(out),
            Done::Write(mut snap, answer) => {
                // The answer is rendered from the config the change makes, before it is
                // persisted: a create's ARN (for its metadata) and a clientToken's answer are
                // part of the same write.
                let config =
                    crate::plane::compose(&st.file, &self.file_name, self.store.file(), &snap)
                        .map_err(|e| {
                            crate::terms::invalid_change(
                                e,
                                &snap,
                                &self.store.file().display().to_string(),
                                op,
                                &call.input,
                            )
                        })?;
                let out = answer(&View {
                    config: &config,
                    snap: &snap,
                    seen: &st.file_seen,
                    file_name: &self.file_name,
                })?;
                if op.starts_with("Create")
                    && let Some(arn) = out.get("arn").and_then(Value::as_str)
                {
                    stamp(&mut snap, arn, call.input.get("tags"));
                }
                if let Some(token) = token {
                    snap.client_tokens.push(TokenRecord {
                        operation: op.to_string(),
                        token,
                        input,
                        output: out.clone(),
                    });
                    let over = snap.client_tokens.len().saturating_sub(TOKENS_KEPT);
                    snap.client_tokens.drain(..over);
                }
                self.install(&mut st, snap, std::sync::Arc::new(config))
                    .await?;
                Ok(out)
            }
        }
    }
}

fn run(
    op: &str,
    i: &In<'_>,
    v: &View<'_>,
    logs_dir: &std::path::Path,
    data: &dyn crate::plane::DataPlane,
) -> Step {
    match op {
        "CreateServiceNetwork" => create_network(i, v),
        "GetServiceNetwork" => {
            let (_, sn) = v.network(i.str("serviceNetworkIdentifier")?)?;
            Ok(Done::Read(v.network_json(sn)))
        }
        "ListServiceNetworks" => {
            let items = v
                .config
                .service_networks
                .iter()
                .map(|sn| {
                    Value::Object(summary(
                        &v.network_json(sn),
                        &[
                            "id",
                            "name",
                            "arn",
                            "createdAt",
                            "lastUpdatedAt",
                            "numberOfAssociatedServices",
                            "numberOfAssociatedVPCs",
                            "numberOfAssociatedResourceConfigurations",
                        ],
                    ))
                })
                .collect();
            page(items, i.0).map(Done::Read)
        }
        "UpdateServiceNetwork" => update_network(i, v),
        "DeleteServiceNetwork" => delete_network(i, v),
        "CreateService" => create_service(i, v),
        "GetService" => {
            let (_, svc) = v.service(i.str("serviceIdentifier")?)?;
            Ok(Done::Read(v.service_json(svc)))
        }
        "ListServices" => {
            let items = v
                .config
                .services
                .iter()
                .map(|s| {
                    Value::Object(summary(
                        &v.service_json(s),
                        &[
                            "id",
                            "name",
                            "arn",
                            "createdAt",
                            "lastUpdatedAt",
                            "dnsEntry",
                            "customDomainName",
                            "status",
                        ],
                    ))
                })
                .collect();
            page(items, i.0).map(Done::Read)
        }
        "UpdateService" => update_service(i, v),
        "DeleteService" => delete_service(i, v),
        "CreateServiceNetworkServiceAssociation" => create_snsa(i, v),
        "GetServiceNetworkServiceAssociation" => {
            let a = find_snsa(v, i.str("serviceNetworkServiceAssociationIdentifier")?)?;
            Ok(Done::Read(a))
        }
        "ListServiceNetworkServiceAssociations" => {
            let sn = i
                .opt("serviceNetworkIdentifier")
                .map(|x| v.network(x))
                .transpose()?;
            let svc = i
                .opt("serviceIdentifier")
                .map(|x| v.service(x))
                .transpose()?;
            if sn.is_none() && svc.is_none() {
                return Err(ApiError::validation(
                    "give serviceNetworkIdentifier or serviceIdentifier",
                ));
            }
            let items = snsas(v)
                .into_iter()
                .filter(|a| sn.is_none_or(|(_, n)| a["serviceNetworkId"] == json!(n.id)))
                .filter(|a| svc.is_none_or(|(_, s)| a["serviceId"] == json!(s.id)))
                .map(Value::Object)
                .collect();
            page(items, i.0).map(Done::Read)
        }
        "DeleteServiceNetworkServiceAssociation" => delete_snsa(i, v),
        "CreateServiceNetworkVpcAssociation" => create_snva(i, v),
        "GetServiceNetworkVpcAssociation" => {
            let a = find_snva(v, i.str("serviceNetworkVpcAssociationIdentifier")?)?;
            Ok(Done::Read(a))
        }
        "ListServiceNetworkVpcAssociations" => {
            let sn = i
                .opt("serviceNetworkIdentifier")
                .map(|x| v.network(x))
                .transpose()?;
            let vpc = i.opt("vpcIdentifier").map(|x| v.vpc(x)).transpose()?;
            if sn.is_none() && vpc.is_none() {
                return Err(ApiError::validation(
                    "give serviceNetworkIdentifier or vpcIdentifier",
                ));
            }
            let items = snvas(v)
                .into_iter()
                .filter(|a| sn.is_none_or(|(_, n)| a["serviceNetworkId"] == json!(n.id)))
                .filter(|a| vpc.is_none_or(|(_, x)| a["vpcId"] == json!(x.id)))
                .map(Value::Object)
                .collect();
            page(items, i.0).map(Done::Read)
        }
        "UpdateServiceNetworkVpcAssociation" => {
            let a = find_snva(v, i.str("serviceNetworkVpcAssociationIdentifier")?)?;
            Err(ApiError::field(
                "securityGroupIds",
                format!(
                    "Trellis has no security groups: association {} admits every client of its VPC's CIDR blocks",
                    a["id"].as_str().unwrap_or_default()
                ),
            ))
        }
        "DeleteServiceNetworkVpcAssociation" => delete_snva(i, v),
        "CreateTargetGroup" => create_target_group(i, v),
        "GetTargetGroup" => {
            let (idx, tg) = v.target_group(i.str("targetGroupIdentifier")?)?;
            Ok(Done::Read(v.target_group_json(idx, tg)))
        }
        "ListTargetGroups" => {
            let kind = i.opt("targetGroupType");
            let items = v
                .config
                .target_groups
                .iter()
                .enumerate()
                .filter(|(_, tg)| kind.is_none_or(|k| k == tg.kind.as_str()))
                .map(|(idx, tg)| v.target_group_summary(idx, tg))
                .filter(|s| {
                    // A config VPC may be named by id, ARN or name here too.
                    i.opt("vpcIdentifier").is_none_or(|vpc| {
                        let id = v.vpc(vpc).map_or(vpc, |(_, x)| x.id.as_str());
                        s.get("vpcIdentifier") == Some(&json!(id))
                    })
                })
                .collect();
            page(items, i.0).map(Done::Read)
        }
        "UpdateTargetGroup" => update_target_group(i, v),
        "DeleteTargetGroup" => delete_target_group(i, v),
        "RegisterTargets" => targets(i, v, true),
        "DeregisterTargets" => targets(i, v, false),
        "ListTargets" => list_targets(i, v, data),
        "CreateListener" => create_listener(i, v),
        "GetListener" => {
            let (_, svc) = v.service(i.str("serviceIdentifier")?)?;
            let l = v.listener(svc, i.str("listenerIdentifier")?)?;
            Ok(Done::Read(v.listener_json(svc, l)))
        }
        "ListListeners" => {
            let (_, svc) = v.service(i.str("serviceIdentifier")?)?;
            let items = svc
                .listeners
                .iter()
                .map(|l| {
                    Value::Object(summary(
                        &v.listener_json(svc, l),
                        &[
                            "arn",
                            "id",
                            "name",
                            "protocol",
                            "port",
                            "createdAt",
                            "lastUpdatedAt",
                        ],
                    ))
                })
                .collect();
            page(items, i.0).map(Done::Read)
        }
        "UpdateListener" => update_listener(i, v),
        "DeleteListener" => delete_listener(i, v),
        "CreateRule" => create_rule(i, v),
        "GetRule" => {
            let (_, svc) = v.service(i.str("serviceIdentifier")?)?;
            let l = v.listener(svc, i.str("listenerIdentifier")?)?;
            let ident = i.str("ruleIdentifier")?;
            if let Some(r) = l
                .rules
                .iter()
                .find(|r| r.id == ident || r.arn == ident || r.name == ident)
            {
                return Ok(Done::Read(v.rule_json(r)));
            }
            let (id, arn) = default_rule_id(l);
            if ident == id || ident == arn {
                return Ok(Done::Read(v.default_rule_json(l)));
            }
            Err(not_found("RULE", "rule", ident))
        }
        "ListRules" => {
            let (_, svc) = v.service(i.str("serviceIdentifier")?)?;
            let l = v.listener(svc, i.str("listenerIdentifier")?)?;
            let mut items: Vec<Value> = l
                .rules
                .iter()
                .map(|r| {
                    Value::Object(summary(
                        &v.rule_json(r),
                        &[
                            "arn",
                            "id",
                            "name",
                            "isDefault",
                            "priority",
                            "createdAt",
                            "lastUpdatedAt",
                        ],
                    ))
                })
                .collect();
            items.push(Value::Object(summary(
                &v.default_rule_json(l),
                &[
                    "arn",
                    "id",
                    "name",
                    "isDefault",
                    "createdAt",
                    "lastUpdatedAt",
                ],
            )));
            page(items, i.0).map(Done::Read)
        }
        "UpdateRule" => update_rules(i, v, false),
        "BatchUpdateRule" => update_rules(i, v, true),
        "DeleteRule" => delete_rule(i, v),
        "PutAuthPolicy" => put_auth_policy(i, v),
        "GetAuthPolicy" => get_auth_policy(i, v),
        "DeleteAuthPolicy" => delete_auth_policy(i, v),
        "CreateAccessLogSubscription" => create_als(i, v, logs_dir),
        "GetAccessLogSubscription" => {
            let a = find_als(v, i.str("accessLogSubscriptionIdentifier")?)?;
            Ok(Done::Read(als_json(v, a)))
        }
        "ListAccessLogSubscriptions" => {
            let (arn, _) = resource_of(v, i.str("resourceIdentifier")?)?;
            let items = v
                .snap
                .access_log_subscriptions
                .iter()
                .filter(|a| a.resource_arn == arn)
                .map(|a| Value::Object(als_json(v, a)))
                .collect();
            page(items, i.0).map(Done::Read)
        }
        "UpdateAccessLogSubscription" => update_als(i, v, logs_dir),
        "DeleteAccessLogSubscription" => delete_als(i, v),
        "TagResource" => tag(i, v, true),
        "UntagResource" => tag(i, v, false),
        "ListTagsForResource" => {
            let arn = i.str("resourceArn")?;
            known_arn(v, arn)?;
            let tags = v
                .snap
                .resources
                .get(arn)
                .map(|m| m.tags.clone())
                .unwrap_or_default();
            Ok(Done::Read(obj(json!({ "tags": tags }))))
        }
        // `implements` said yes to every name above only.
        other => Err(ApiError::Validation {
            message: format!("{other} is not supported by Trellis"),
            reason: "unknownOperation",
            fields: Vec::new(),
        }),
    }
}

fn summary(full: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| full.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

/// Metadata for a new object of the store, by the ARN its answer gives (the ARN is made by the
/// config crate from the name), with the create call's tags.
fn stamp(snap: &mut Snapshot, arn: &str, tags: Option<&Value>) {
    let now = crate::time::now();
    let meta = snap
        .resources
        .entry(arn.to_string())
        .or_insert_with(|| Meta {
            created_at: now.clone(),
            last_updated_at: now.clone(),
            tags: BTreeMap::new(),
        });
    if let Some(Value::Object(t)) = tags {
        for (k, val) in t {
            if let Some(s) = val.as_str() {
                meta.tags.insert(k.clone(), s.to_string());
            }
        }
    }
}

fn touch(snap: &mut Snapshot, arn: &str) {
    let now = crate::time::now();
    let meta = snap.resources.entry(arn.to_string()).or_default();
    if meta.created_at.is_empty() {
        meta.created_at = now.clone();
    }
    meta.last_updated_at = now;
}

/// The ARN of an object is made from its name exactly as the config crate makes it.
fn arn_of(config: &Config, resource: &str) -> String {
    format!(
        "arn:aws:vpc-lattice:{}:{}:{resource}",
        config.region, config.account_id
    )
}

fn check_tags(tags: Option<&Value>, existing: usize) -> Result<(), ApiError> {
    let n = tags.and_then(Value::as_object).map_or(0, Map::len);
    if existing + n > quotas::TAGS_PER_RESOURCE {
        return Err(quota(
            "TAG",
            "tags-per-resource",
            format!("a resource has at most {} tags", quotas::TAGS_PER_RESOURCE),
        ));
    }
    Ok(())
}

fn copy_keys(from: &In<'_>, to: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if let Some(val) = from.get(k) {
            to.insert(k.to_string(), val.clone());
        }
    }
}

// ---- service networks -------------------------------------------------------------------

fn create_network(i: &In<'_>, v: &View<'_>) -> Step {
    let name = i.str("name")?.to_string();
    if v.config.service_networks.len() >= quotas::NETWORKS {
        return Err(quota(
            "SERVICE_NETWORK",
            "service-networks-per-region",
            format!("a region has at most {} service networks", quotas::NETWORKS),
        ));
    }
    if v.network(&name).is_ok() {
        return Err(conflict(
            "SERVICE_NETWORK",
            &name,
            format!("service network \"{name}\" already exists"),
        ));
    }
    if i.get("sharingConfig").and_then(|s| s.get("enabled")) == Some(&json!(true)) {
        return Err(ApiError::field(
            "sharingConfig",
            "Trellis has no RAM sharing: sharingConfig.enabled must be false",
        ));
    }
    check_tags(i.get("tags"), 0)?;
    let mut snap = v.snap.clone();
    let mut entry = obj(json!({ "name": name }));
    copy_keys(i, &mut entry, &["authType"]);
    list_mut(&mut snap, "serviceNetworks").push(Value::Object(entry));
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let (_, sn) = v.network(&name)?;
            Ok(summary(
                &v.network_json(sn),
                &["id", "name", "arn", "authType", "sharingConfig"],
            ))
        }),
    ))
}

fn update_network(i: &In<'_>, v: &View<'_>) -> Step {
    let (_, sn) = v.network(i.str("serviceNetworkIdentifier")?)?;
    let idx = v
        .owned("serviceNetworks", &sn.name)
        .ok_or_else(|| v.file_owned("SERVICE_NETWORK", "service network", &sn.name, &sn.id))?;
    let mut snap = v.snap.clone();
    if let Some(Value::Object(e)) = list_mut(&mut snap, "serviceNetworks").get_mut(idx) {
        copy_keys(i, e, &["authType"]);
    }
    touch(&mut snap, &sn.arn);
    let name = sn.name.clone();
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let (_, sn) = v.network(&name)?;
            Ok(summary(
                &v.network_json(sn),
                &["id", "name", "arn", "authType"],
            ))
        }),
    ))
}

fn delete_network(i: &In<'_>, v: &View<'_>) -> Step {
    let (_, sn) = v.network(i.str("serviceNetworkIdentifier")?)?;
    let idx = v
        .owned("serviceNetworks", &sn.name)
        .ok_or_else(|| v.file_owned("SERVICE_NETWORK", "service network", &sn.name, &sn.id))?;
    if !sn.services.is_empty() || !sn.vpcs.is_empty() {
        return Err(conflict(
            "SERVICE_NETWORK",
            &sn.id,
            format!(
                "service network \"{}\" still has {} service and {} VPC association(s); delete them first",
                sn.name,
                sn.services.len(),
                sn.vpcs.len()
            ),
        ));
    }
    let mut snap = v.snap.clone();
    list_mut(&mut snap, "serviceNetworks").remove(idx);
    forget(&mut snap, &sn.arn);
    Ok(Done::Write(snap, Box::new(|_| Ok(Map::new()))))
}

/// Drops the metadata and access-log subscriptions of `arn` and of what is under it.
fn forget(snap: &mut Snapshot, arn: &str) {
    let under = format!("{arn}/");
    snap.resources
        .retain(|k, _| k != arn && !k.starts_with(&under));
    let gone: Vec<String> = snap
        .access_log_subscriptions
        .iter()
        .filter(|a| a.resource_arn == arn)
        .map(|a| a.arn.clone())
        .collect();
    snap.access_log_subscriptions
        .retain(|a| a.resource_arn != arn);
    snap.resources.retain(|k, _| !gone.contains(k));
}

// ---- services ---------------------------------------------------------------------------

fn create_service(i: &In<'_>, v: &View<'_>) -> Step {
    let name = i.str("name")?.to_string();
    if v.config.services.len() >= quotas::SERVICES {
        return Err(quota(
            "SERVICE",
            "services-per-region",
            format!("a region has at most {} services", quotas::SERVICES),
        ));
    }
    if v.service(&name).is_ok() {
        return Err(conflict(
            "SERVICE",
            &name,
            format!("service \"{name}\" already exists"),
        ));
    }
    if i.get("certificateArn").is_some() {
        return Err(ApiError::field(
            "certificateArn",
            "Trellis has no ACM: give an HTTPS listener's certificate files in the config file (tls), or let Trellis generate one",
        ));
    }
    check_tags(i.get("tags"), 0)?;
    let mut snap = v.snap.clone();
    let mut entry = obj(json!({ "name": name, "listeners": [] }));
    copy_keys(
        i,
        &mut entry,
        &["authType", "customDomainName", "idleTimeoutSeconds"],
    );
    list_mut(&mut snap, "services").push(Value::Object(entry));
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let (_, s) = v.service(&name)?;
            Ok(summary(
                &v.service_json(s),
                &[
                    "id",
                    "arn",
                    "name",
                    "customDomainName",
                    "status",
                    "authType",
                    "idleTimeoutSeconds",
                    "dnsEntry",
                ],
            ))
        }),
    ))
}

fn update_service(i: &In<'_>, v: &View<'_>) -> Step {
    let (_, svc) = v.service(i.str("serviceIdentifier")?)?;
    let idx = v
        .owned("services", &svc.name)
        .ok_or_else(|| v.file_owned("SERVICE", "service", &svc.name, &svc.id))?;
    if i.get("certificateArn").is_some() {
        return Err(ApiError::field(
            "certificateArn",
            "Trellis has no ACM certificates",
        ));
    }
    let mut snap = v.snap.clone();
    if let Some(Value::Object(e)) = list_mut(&mut snap, "services").get_mut(idx) {
        copy_keys(i, e, &["authType", "idleTimeoutSeconds"]);
    }
    touch(&mut snap, &svc.arn);
    let name = svc.name.clone();
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let (_, s) = v.service(&name)?;
            Ok(summary(
                &v.service_json(s),
                &[
                    "id",
                    "arn",
                    "name",
                    "customDomainName",
                    "authType",
                    "idleTimeoutSeconds",
                ],
            ))
        }),
    ))
}

fn delete_service(i: &In<'_>, v: &View<'_>) -> Step {
    let (sidx, svc) = v.service(i.str("serviceIdentifier")?)?;
    let idx = v
        .owned("services", &svc.name)
        .ok_or_else(|| v.file_owned("SERVICE", "service", &svc.name, &svc.id))?;
    let nets: Vec<&str> = v
        .config
        .service_networks
        .iter()
        .filter(|n| n.services.contains(&sidx))
        .map(|n| n.name.as_str())
        .collect();
    if !nets.is_empty() {
        return Err(conflict(
            "SERVICE",
            &svc.id,
            format!(
                "service \"{}\" is still associated with service network(s) {}; delete the associations first",
                svc.name,
                nets.join(", ")
            ),
        ));
    }
    let mut snap = v.snap.clone();
    list_mut(&mut snap, "services").remove(idx);
    forget(&mut snap, &svc.arn);
    let out = obj(
        json!({"id": svc.id, "arn": svc.arn, "name": svc.name, "status": "DELETE_IN_PROGRESS"}),
    );
    Ok(Done::Write(snap, Box::new(move |_| Ok(out))))
}

// ---- associations -------------------------------------------------------------------------

fn snsa_id(v: &View<'_>, sn: &str, svc: &str) -> (String, String) {
    let id = format!(
        "snsa-{}",
        stable_id(&["snsa", &v.config.region, &v.config.account_id, sn, svc])
    );
    let arn = arn_of(v.config, &format!("servicenetworkserviceassociation/{id}"));
    (id, arn)
}

fn snva_id(v: &View<'_>, sn: &str, vpc: &str) -> (String, String) {
    let id = format!(
        "snva-{}",
        stable_id(&["snva", &v.config.region, &v.config.account_id, sn, vpc])
    );
    let arn = arn_of(v.config, &format!("servicenetworkvpcassociation/{id}"));
    (id, arn)
}

fn snsas(v: &View<'_>) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    for sn in &v.config.service_networks {
        for &s in &sn.services {
            let Some(svc) = v.config.services.get(s) else {
                continue;
            };
            let (id, arn) = snsa_id(v, &sn.name, &svc.name);
            let (created, updated) = v.times(&arn);
            let mut m = obj(json!({
                "id": id, "arn": arn, "status": "ACTIVE", "createdBy": v.config.account_id,
                "createdAt": created, "lastUpdatedAt": updated,
                "serviceId": svc.id, "serviceName": svc.name, "serviceArn": svc.arn,
                "serviceNetworkId": sn.id, "serviceNetworkName": sn.name, "serviceNetworkArn": sn.arn,
                "dnsEntry": View::dns_entry(svc),
            }));
            if let Some(d) = &svc.custom_domain_name {
                m.insert("customDomainName".into(), json!(d));
            }
            out.push(m);
        }
    }
    out
}

fn snvas(v: &View<'_>) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    for sn in &v.config.service_networks {
        for &x in &sn.vpcs {
            let Some(vpc) = v.config.vpcs.get(x) else {
                continue;
            };
            let (id, arn) = snva_id(v, &sn.name, &vpc.name);
            let (created, updated) = v.times(&arn);
            out.push(obj(json!({
                "id": id, "arn": arn, "status": "ACTIVE", "createdBy": v.config.account_id,
                "createdAt": created, "lastUpdatedAt": updated,
                "serviceNetworkId": sn.id, "serviceNetworkName": sn.name, "serviceNetworkArn": sn.arn,
                "vpcId": vpc.id, "securityGroupIds": [], "privateDnsEnabled": false,
            })));
        }
    }
    out
}

fn find_snsa(v: &View<'_>, ident: &str) -> Result<Map<String, Value>, ApiError> {
    snsas(v)
        .into_iter()
        .find(|a| a["id"] == json!(ident) || a["arn"] == json!(ident))
        .ok_or_else(|| {
            not_found(
                "SERVICE_NETWORK_SERVICE_ASSOCIATION",
                "service network service association",
                ident,
            )
        })
}

fn find_snva(v: &View<'_>, ident: &str) -> Result<Map<String, Value>, ApiError> {
    snvas(v)
        .into_iter()
        .find(|a| a["id"] == json!(ident) || a["arn"] == json!(ident))
        .ok_or_else(|| {
            not_found(
                "SERVICE_NETWORK_VPC_ASSOCIATION",
                "service network VPC association",
                ident,
            )
        })
}

fn assoc_index(snap: &Snapshot, key: &str, other: &str, sn: &str, name: &str) -> Option<usize> {
    list(snap, key).iter().position(|a| {
        a.get("serviceNetwork").and_then(Value::as_str) == Some(sn)
            && a.get(other).and_then(Value::as_str) == Some(name)
    })
}

fn create_snsa(i: &In<'_>, v: &View<'_>) -> Step {
    let (_, sn) = v.network(i.str("serviceNetworkIdentifier")?)?;
    let (sidx, svc) = v.service(i.str("serviceIdentifier")?)?;
    if sn.services.contains(&sidx) {
        let (id, _) = snsa_id(v, &sn.name, &svc.name);
        return Err(conflict(
            "SERVICE_NETWORK_SERVICE_ASSOCIATION",
            &id,
            format!(
                "service \"{}\" is already associated with service network \"{}\"",
                svc.name, sn.name
            ),
        ));
    }
    if sn.services.len() >= quotas::SERVICES_PER_NETWORK {
        return Err(quota(
            "SERVICE_NETWORK_SERVICE_ASSOCIATION",
            "service-associations-per-service-network",
            format!(
                "a service network has at most {} service associations",
                quotas::SERVICES_PER_NETWORK
            ),
        ));
    }
    check_tags(i.get("tags"), 0)?;
    let mut snap = v.snap.clone();
    list_mut(&mut snap, "serviceAssociations")
        .push(json!({"serviceNetwork": sn.name, "service": svc.name}));
    let (id, _) = snsa_id(v, &sn.name, &svc.name);
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let a = find_snsa(v, &id)?;
            Ok(summary(
                &a,
                &[
                    "id",
                    "status",
                    "arn",
                    "createdBy",
                    "customDomainName",
                    "dnsEntry",
                ],
            ))
        }),
    ))
}

fn delete_snsa(i: &In<'_>, v: &View<'_>) -> Step {
    let a = find_snsa(v, i.str("serviceNetworkServiceAssociationIdentifier")?)?;
    let (sn, svc) = (
        a["serviceNetworkName"].as_str().unwrap_or_default(),
        a["serviceName"].as_str().unwrap_or_default(),
    );
    let id = a["id"].as_str().unwrap_or_default();
    let Some(idx) = assoc_index(v.snap, "serviceAssociations", "service", sn, svc) else {
        return Err(conflict(
            "SERVICE_NETWORK_SERVICE_ASSOCIATION",
            id,
            format!(
                "the association of service \"{svc}\" with service network \"{sn}\" comes from the config file {}; edit it there",
                v.file_name
            ),
        ));
    };
    let mut snap = v.snap.clone();
    list_mut(&mut snap, "serviceAssociations").remove(idx);
    let arn = a["arn"].as_str().unwrap_or_default().to_string();
    snap.resources.remove(&arn);
    let out = obj(json!({"id": id, "arn": arn, "status": "DELETE_IN_PROGRESS"}));
    Ok(Done::Write(snap, Box::new(move |_| Ok(out))))
}

fn create_snva(i: &In<'_>, v: &View<'_>) -> Step {
    let (_, sn) = v.network(i.str("serviceNetworkIdentifier")?)?;
    let (vidx, vpc) = v.vpc(i.str("vpcIdentifier")?)?;
    if let Some(other) = v
        .config
        .service_networks
        .iter()
        .find(|n| n.vpcs.contains(&vidx))
    {
        let (id, _) = snva_id(v, &other.name, &vpc.name);
        return Err(conflict(
            "SERVICE_NETWORK_VPC_ASSOCIATION",
            &id,
            format!(
                "VPC \"{}\" is already associated with service network \"{}\" (a VPC can be associated with only one)",
                vpc.name, other.name
            ),
        ));
    }
    if sn.vpcs.len() >= quotas::VPCS_PER_NETWORK {
        return Err(quota(
            "SERVICE_NETWORK_VPC_ASSOCIATION",
            "vpc-associations-per-service-network",
            format!(
                "a service network has at most {} VPC associations",
                quotas::VPCS_PER_NETWORK
            ),
        ));
    }
    if i.get("securityGroupIds")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(ApiError::field(
            "securityGroupIds",
            "Trellis has no security groups: leave securityGroupIds out",
        ));
    }
    check_tags(i.get("tags"), 0)?;
    let mut snap = v.snap.clone();
    list_mut(&mut snap, "vpcAssociations")
        .push(json!({"serviceNetwork": sn.name, "vpc": vpc.name}));
    let (id, _) = snva_id(v, &sn.name, &vpc.name);
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let a = find_snva(v, &id)?;
            Ok(summary(
                &a,
                &[
                    "id",
                    "status",
                    "arn",
                    "createdBy",
                    "securityGroupIds",
                    "privateDnsEnabled",
                ],
            ))
        }),
    ))
}

fn delete_snva(i: &In<'_>, v: &View<'_>) -> Step {
    let a = find_snva(v, i.str("serviceNetworkVpcAssociationIdentifier")?)?;
    let sn = a["serviceNetworkName"].as_str().unwrap_or_default();
    let vpc = v
        .config
        .vpcs
        .iter()
        .find(|x| a["vpcId"] == json!(x.id))
        .map(|x| x.name.clone())
        .unwrap_or_default();
    let id = a["id"].as_str().unwrap_or_default();
    let Some(idx) = assoc_index(v.snap, "vpcAssociations", "vpc", sn, &vpc) else {
        return Err(conflict(
            "SERVICE_NETWORK_VPC_ASSOCIATION",
            id,
            format!(
                "the association of VPC \"{vpc}\" with service network \"{sn}\" comes from the config file {}; edit it there",
                v.file_name
            ),
        ));
    };
    let mut snap = v.snap.clone();
    list_mut(&mut snap, "vpcAssociations").remove(idx);
    let arn = a["arn"].as_str().unwrap_or_default().to_string();
    snap.resources.remove(&arn);
    let out = obj(json!({"id": id, "arn": arn, "status": "DELETE_IN_PROGRESS"}));
    Ok(Done::Write(snap, Box::new(move |_| Ok(out))))
}

// ---- target groups ------------------------------------------------------------------------

fn create_target_group(i: &In<'_>, v: &View<'_>) -> Step {
    let name = i.str("name")?.to_string();
    let kind = i.str("type")?;
    if v.config.target_groups.len() >= quotas::TARGET_GROUPS {
        return Err(quota(
            "TARGET_GROUP",
            "target-groups-per-region",
            format!(
                "a region has at most {} target groups",
                quotas::TARGET_GROUPS
            ),
        ));
    }
    if v.target_group(&name).is_ok() {
        return Err(conflict(
            "TARGET_GROUP",
            &name,
            format!("target group \"{name}\" already exists"),
        ));
    }
    check_tags(i.get("tags"), 0)?;
    let mut snap = v.snap.clone();
    let mut entry = obj(json!({ "name": name, "type": kind, "targets": [] }));
    copy_keys(i, &mut entry, &["config"]);
    if let Some(Value::Object(c)) = entry.get_mut("config")
        && let Some(given) = c.get("vpcIdentifier").filter(|x| !x.is_null())
    {
        let id = vpc_id(v, given)?;
        c.insert("vpcIdentifier".into(), json!(id));
    }
    list_mut(&mut snap, "targetGroups").push(Value::Object(entry));
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let (idx, tg) = v.target_group(&name)?;
            Ok(summary(
                &v.target_group_json(idx, tg),
                &["id", "arn", "name", "type", "config", "status"],
            ))
        }),
    ))
}

/// A target group's `config.vpcIdentifier` as the store keeps it: a VPC of the config named by
/// id, ARN or name is kept as its id (what the file's schema takes, and what AWS answers); any
/// other VPC id is kept as given (Trellis does not need it, as in the file).
fn vpc_id(v: &View<'_>, given: &Value) -> Result<String, ApiError> {
    let field = "config.vpcIdentifier";
    let text = given
        .as_str()
        .ok_or_else(|| ApiError::field(field, "config.vpcIdentifier must be a string"))?;
    if let Ok((_, vpc)) = v.vpc(text) {
        return Ok(vpc.id.clone());
    }
    let is_id = text.strip_prefix("vpc-").is_some_and(|rest| {
        (rest.len() == 8 || rest.len() == 17) && rest.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if is_id {
        return Ok(text.to_string());
    }
    let names: Vec<&str> = v.config.vpcs.iter().map(|x| x.name.as_str()).collect();
    Err(ApiError::field(
        field,
        format!(
            "{field}: \"{text}\" is neither a VPC id (\"vpc-\" and 8 or 17 hex characters) nor a VPC of the config file's vpcs ({})",
            if names.is_empty() {
                "none defined".to_string()
            } else {
                names.join(", ")
            }
        ),
    ))
}

fn update_target_group(i: &In<'_>, v: &View<'_>) -> Step {
    let (_, tg) = v.target_group(i.str("targetGroupIdentifier")?)?;
    let idx = v
        .owned("targetGroups", &tg.name)
        .ok_or_else(|| v.file_owned("TARGET_GROUP", "target group", &tg.name, &tg.id))?;
    if tg.kind == TargetGroupType::Lambda {
        return Err(ApiError::field(
            "healthCheck",
            "LAMBDA target groups have no health checks",
        ));
    }
    let hc = i
        .get("healthCheck")
        .cloned()
        .ok_or_else(|| ApiError::field("healthCheck", "healthCheck is required"))?;
    let mut snap = v.snap.clone();
    if let Some(Value::Object(e)) = list_mut(&mut snap, "targetGroups").get_mut(idx) {
        let config = e.entry("config").or_insert_with(|| json!({}));
        if let Value::Object(c) = config {
            // Lattice merges the given fields into the current health check.
            let mut merged = c
                .get("healthCheck")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if let Value::Object(h) = hc {
                merged.extend(h);
            }
            c.insert("healthCheck".into(), Value::Object(merged));
        }
    }
    touch(&mut snap, &tg.arn);
    let name = tg.name.clone();
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let (idx, tg) = v.target_group(&name)?;
            Ok(summary(
                &v.target_group_json(idx, tg),
                &["id", "arn", "name", "type", "config", "status"],
            ))
        }),
    ))
}

fn delete_target_group(i: &In<'_>, v: &View<'_>) -> Step {
    let (tidx, tg) = v.target_group(i.str("targetGroupIdentifier")?)?;
    let idx = v
        .owned("targetGroups", &tg.name)
        .ok_or_else(|| v.file_owned("TARGET_GROUP", "target group", &tg.name, &tg.id))?;
    let users = v.services_of(tidx);
    if !users.is_empty() {
        return Err(conflict(
            "TARGET_GROUP",
            &tg.id,
            format!(
                "target group \"{}\" is used by a listener or rule of {}; change those first",
                tg.name,
                users.join(", ")
            ),
        ));
    }
    let mut snap = v.snap.clone();
    list_mut(&mut snap, "targetGroups").remove(idx);
    list_mut(&mut snap, "targetChanges")
        .retain(|c| c.get("targetGroup").and_then(Value::as_str) != Some(tg.name.as_str()));
    forget(&mut snap, &tg.arn);
    let out = obj(json!({"id": tg.id, "arn": tg.arn, "status": "DELETE_IN_PROGRESS"}));
    Ok(Done::Write(snap, Box::new(move |_| Ok(out))))
}

/// RegisterTargets and DeregisterTargets: on a target group of the store its `targets` change;
/// on one of the file a `targetChanges` entry records what the API added and removed.
fn targets(i: &In<'_>, v: &View<'_>, register: bool) -> Step {
    let (_, tg) = v.target_group(i.str("targetGroupIdentifier")?)?;
    let given = i
        .get("targets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if given.is_empty() || given.len() > 100 {
        return Err(ApiError::field(
            "targets",
            format!("{} targets given; a call takes 1-100", given.len()),
        ));
    }
    let mut wanted = Vec::new();
    let mut unsuccessful = Vec::new();
    for t in &given {
        let Some(id) = t.get("id").and_then(Value::as_str) else {
            return Err(ApiError::field("targets", "every target needs an id"));
        };
        let port = t.get("port").and_then(Value::as_u64).map(|p| p as u16);
        let port_or = port.unwrap_or(tg.port);
        let present = tg.targets.iter().any(|x| x.id == id && x.port == port_or);
        if !register && !present {
            let mut f = obj(
                json!({"id": id, "failureCode": "TargetNotFound", "failureMessage": format!("{id}:{port_or} is not registered with target group {}", tg.name)}),
            );
            if let Some(p) = port {
                f.insert("port".into(), json!(p));
            }
            unsuccessful.push(Value::Object(f));
            continue;
        }
        let mut m = obj(json!({ "id": id }));
        if let Some(p) = port.filter(|_| tg.kind != TargetGroupType::Lambda) {
            m.insert("port".into(), json!(p));
        }
        wanted.push((Value::Object(m), id.to_string(), port_or, present));
    }
    if register {
        let new = wanted.iter().filter(|w| !w.3).count();
        if tg.targets.len() + new > quotas::TARGETS_PER_GROUP {
            return Err(quota(
                "TARGET",
                "targets-per-target-group",
                format!(
                    "target group \"{}\" would hold {} targets; a target group holds at most {}",
                    tg.name,
                    tg.targets.len() + new,
                    quotas::TARGETS_PER_GROUP
                ),
            ));
        }
    }
    let mut snap = v.snap.clone();
    let same = |a: &Value, id: &str, port: u16, default: u16| {
        a.get("id").and_then(Value::as_str) == Some(id)
            && a.get("port")
                .and_then(Value::as_u64)
                .map_or(default, |p| p as u16)
                == port
    };
    let default_port = tg.port;
    if let Some(idx) = v.owned("targetGroups", &tg.name) {
        if let Some(Value::Object(e)) = list_mut(&mut snap, "targetGroups").get_mut(idx) {
            let slot = e.entry("targets").or_insert_with(|| json!([]));
            if let Value::Array(list) = slot {
                for (t, id, port, present) in &wanted {
                    if register && !present {
                        list.push(t.clone());
                    } else if !register {
                        list.retain(|x| !same(x, id, *port, default_port));
                    }
                }
            }
        }
    } else {
        let changes = list_mut(&mut snap, "targetChanges");
        let pos = changes
            .iter()
            .position(|c| c.get("targetGroup").and_then(Value::as_str) == Some(tg.name.as_str()));
        let pos = match pos {
            Some(p) => p,
            None => {
                changes.push(json!({"targetGroup": tg.name, "registered": [], "deregistered": []}));
                changes.len() - 1
            }
        };
        if let Some(Value::Object(c)) = changes.get_mut(pos) {
            for (t, id, port, present) in &wanted {
                for key in ["registered", "deregistered"] {
                    if let Some(Value::Array(l)) = c.get_mut(key) {
                        l.retain(|x| !same(x, id, *port, default_port));
                    }
                }
                let key = if register {
                    "registered"
                } else {
                    "deregistered"
                };
                if register && *present {
                    continue;
                }
                if let Some(Value::Array(l)) = c.get_mut(key) {
                    l.push(json!({"id": id, "port": port}));
                }
                let _ = t;
            }
        }
    }
    let successful: Vec<Value> = wanted
        .iter()
        .map(|(_, id, port, _)| json!({"id": id, "port": port}))
        .collect();
    let out = obj(json!({"successful": successful, "unsuccessful": unsuccessful}));
    if wanted.is_empty() {
        return Ok(Done::Read(out));
    }
    Ok(Done::Write(snap, Box::new(move |_| Ok(out))))
}

/// ListTargets: each target's live status from the data plane; `UNUSED` when no service uses
/// the group (Lattice's word for it), and the reason codes Lattice gives.
fn list_targets(i: &In<'_>, v: &View<'_>, data: &dyn crate::plane::DataPlane) -> Step {
    let (idx, tg) = v.target_group(i.str("targetGroupIdentifier")?)?;
    let filter: Vec<(String, Option<u16>)> = i
        .get("targets")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    let id = t.get("id")?.as_str()?.to_string();
                    Some((id, t.get("port").and_then(Value::as_u64).map(|p| p as u16)))
                })
                .collect()
        })
        .unwrap_or_default();
    let used = !v.services_of(idx).is_empty();
    let items = tg
        .targets
        .iter()
        .filter(|t| {
            filter.is_empty()
                || filter
                    .iter()
                    .any(|(id, port)| *id == t.id && port.is_none_or(|p| p == t.port))
        })
        .map(|t| {
            let (status, reason) = if !used {
                (
                    "UNUSED".to_string(),
                    Some("TargetGroupNotInUse".to_string()),
                )
            } else {
                data.target_status(&tg.arn, &t.id, t.port)
                    .unwrap_or_else(|| {
                        if tg.health_check.enabled {
                            ("INITIAL".into(), Some("Elb.RegistrationInProgress".into()))
                        } else {
                            ("UNAVAILABLE".into(), Some("HealthCheckDisabled".into()))
                        }
                    })
            };
            let mut m = obj(json!({"id": t.id, "status": status}));
            if tg.kind != TargetGroupType::Lambda {
                m.insert("port".into(), json!(t.port));
            }
            if let Some(r) = reason {
                m.insert("reasonCode".into(), json!(r));
            }
            Value::Object(m)
        })
        .collect();
    page(items, i.0).map(Done::Read)
}

// ---- listeners and rules --------------------------------------------------------------------

/// The store's service named `svc` (index), or the file-owned error.
fn owned_service(v: &View<'_>, ident: &str) -> Result<(usize, String, String, String), ApiError> {
    let (_, svc) = v.service(ident)?;
    let idx = v
        .owned("services", &svc.name)
        .ok_or_else(|| v.file_owned("SERVICE", "service", &svc.name, &svc.id))?;
    Ok((idx, svc.name.clone(), svc.id.clone(), svc.arn.clone()))
}

fn with_listener<T>(
    snap: &mut Snapshot,
    sidx: usize,
    lname: Option<&str>,
    f: impl FnOnce(&mut Vec<Value>) -> T,
) -> Option<T> {
    let svc = list_mut(snap, "services").get_mut(sidx)?.as_object_mut()?;
    let listeners = svc
        .entry("listeners")
        .or_insert_with(|| json!([]))
        .as_array_mut()?;
    match lname {
        None => Some(f(listeners)),
        Some(name) => {
            let l = listeners
                .iter_mut()
                .find(|l| l.get("name").and_then(Value::as_str) == Some(name))?
                .as_object_mut()?;
            let rules = l
                .entry("rules")
                .or_insert_with(|| json!([]))
                .as_array_mut()?;
            Some(f(rules))
        }
    }
}

/// Target groups per service (10): the groups the service's actions forward to once `action`
/// is in place. `replacing` names the action it replaces — a listener's default action
/// (`(listener, None)`) or a rule's (`(listener, Some(rule))`) — whose groups no longer count.
fn check_tgs_per_service(
    v: &View<'_>,
    svc_name: &str,
    action: Option<&Value>,
    member: &str,
    replacing: Option<(&str, Option<&str>)>,
) -> Result<(), ApiError> {
    let Some((_, svc)) = v.service(svc_name).ok() else {
        return Ok(());
    };
    let mut tgs: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for l in &svc.listeners {
        let default = (replacing != Some((l.name.as_str(), None))).then_some(&l.default_action);
        let rules = l
            .rules
            .iter()
            .filter(|r| replacing != Some((l.name.as_str(), Some(r.name.as_str()))));
        for a in default.into_iter().chain(rules.map(|r| &r.action)) {
            if let trellis_config::Action::Forward(w) = a {
                for w in w {
                    if let Some(tg) = v.config.target_groups.get(w.target_group) {
                        tgs.insert(tg.id.clone());
                    }
                }
            }
        }
    }
    if let Some(list) = action
        .and_then(|a| a.pointer("/forward/targetGroups"))
        .and_then(Value::as_array)
    {
        // The model's bound on a forward action (as AWS answers it, before any quota).
        if list.len() > 10 {
            let member = format!("{member}.forward.targetGroups");
            return Err(ApiError::field(
                &member,
                format!(
                    "{member}: {} target groups given; a forward action takes 1-10",
                    list.len()
                ),
            ));
        }
        for w in list {
            if let Some(ident) = w.get("targetGroupIdentifier").and_then(Value::as_str)
                && let Ok((_, tg)) = v.target_group(ident)
            {
                tgs.insert(tg.id.clone());
            }
        }
    }
    if tgs.len() > quotas::TARGET_GROUPS_PER_SERVICE {
        return Err(quota(
            "TARGET_GROUP",
            "target-groups-per-service",
            format!(
                "service \"{svc_name}\" would use {} target groups; a service uses at most {}",
                tgs.len(),
                quotas::TARGET_GROUPS_PER_SERVICE
            ),
        ));
    }
    Ok(())
}

fn create_listener(i: &In<'_>, v: &View<'_>) -> Step {
    let (sidx, sname, sid, _) = owned_service(v, i.str("serviceIdentifier")?)?;
    let name = i.str("name")?.to_string();
    let (_, svc) = v.service(&sname)?;
    if svc.listeners.iter().any(|l| l.name == name) {
        return Err(conflict(
            "LISTENER",
            &name,
            format!("service \"{sname}\" already has a listener \"{name}\""),
        ));
    }
    if svc.listeners.len() >= quotas::LISTENERS_PER_SERVICE {
        return Err(quota(
            "LISTENER",
            "listeners-per-service",
            format!(
                "a service has at most {} listeners",
                quotas::LISTENERS_PER_SERVICE
            ),
        ));
    }
    check_tgs_per_service(v, &sname, i.get("defaultAction"), "defaultAction", None)?;
    check_tags(i.get("tags"), 0)?;
    let mut entry = obj(json!({ "name": name }));
    copy_keys(i, &mut entry, &["protocol", "port", "defaultAction"]);
    let mut snap = v.snap.clone();
    with_listener(&mut snap, sidx, None, |l| l.push(Value::Object(entry)));
    let _ = sid;
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let (_, svc) = v.service(&sname)?;
            let l = v.listener(svc, &name)?;
            Ok(summary(
                &v.listener_json(svc, l),
                &[
                    "arn",
                    "id",
                    "name",
                    "protocol",
                    "port",
                    "serviceArn",
                    "serviceId",
                    "defaultAction",
                ],
            ))
        }),
    ))
}

fn update_listener(i: &In<'_>, v: &View<'_>) -> Step {
    let (sidx, sname, _, _) = owned_service(v, i.str("serviceIdentifier")?)?;
    let (_, svc) = v.service(&sname)?;
    let l = v.listener(svc, i.str("listenerIdentifier")?)?;
    let action = i
        .get("defaultAction")
        .cloned()
        .ok_or_else(|| ApiError::field("defaultAction", "defaultAction is required"))?;
    check_tgs_per_service(
        v,
        &sname,
        Some(&action),
        "defaultAction",
        Some((&l.name, None)),
    )?;
    let mut snap = v.snap.clone();
    let lname = l.name.clone();
    with_listener(&mut snap, sidx, None, |ls| {
        if let Some(e) = ls
            .iter_mut()
            .find(|x| x.get("name").and_then(Value::as_str) == Some(lname.as_str()))
            .and_then(Value::as_object_mut)
        {
            e.insert("defaultAction".into(), action);
        }
    });
    touch(&mut snap, &l.arn);
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let (_, svc) = v.service(&sname)?;
            let l = v.listener(svc, &lname)?;
            Ok(summary(
                &v.listener_json(svc, l),
                &[
                    "arn",
                    "id",
                    "name",
                    "protocol",
                    "port",
                    "serviceArn",
                    "serviceId",
                    "defaultAction",
                ],
            ))
        }),
    ))
}

fn delete_listener(i: &In<'_>, v: &View<'_>) -> Step {
    let (sidx, sname, _, _) = owned_service(v, i.str("serviceIdentifier")?)?;
    let (_, svc) = v.service(&sname)?;
    let l = v.listener(svc, i.str("listenerIdentifier")?)?;
    let mut snap = v.snap.clone();
    let lname = l.name.clone();
    with_listener(&mut snap, sidx, None, |ls| {
        ls.retain(|x| x.get("name").and_then(Value::as_str) != Some(lname.as_str()))
    });
    forget(&mut snap, &l.arn);
    Ok(Done::Write(snap, Box::new(|_| Ok(Map::new()))))
}

fn create_rule(i: &In<'_>, v: &View<'_>) -> Step {
    let (sidx, sname, _, _) = owned_service(v, i.str("serviceIdentifier")?)?;
    let (_, svc) = v.service(&sname)?;
    let l = v.listener(svc, i.str("listenerIdentifier")?)?;
    let name = i.str("name")?.to_string();
    if l.rules.iter().any(|r| r.name == name) {
        return Err(conflict(
            "RULE",
            &name,
            format!("listener \"{}\" already has a rule \"{name}\"", l.name),
        ));
    }
    if let Some(p) = i.get("priority").and_then(Value::as_u64)
        && let Some(r) = l.rules.iter().find(|r| u64::from(r.priority) == p)
    {
        return Err(conflict(
            "RULE",
            &r.id,
            format!("priority {p} is already used by rule \"{}\"", r.name),
        ));
    }
    if l.rules.len() >= quotas::RULES_PER_LISTENER {
        return Err(quota(
            "RULE",
            "rules-per-listener",
            format!(
                "a listener has at most {} rules",
                quotas::RULES_PER_LISTENER
            ),
        ));
    }
    check_tgs_per_service(v, &sname, i.get("action"), "action", None)?;
    check_tags(i.get("tags"), 0)?;
    let mut entry = obj(json!({ "name": name }));
    copy_keys(i, &mut entry, &["priority", "match", "action"]);
    let mut snap = v.snap.clone();
    let lname = l.name.clone();
    with_listener(&mut snap, sidx, Some(&lname), |rules| {
        rules.push(Value::Object(entry))
    });
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let (_, svc) = v.service(&sname)?;
            let l = v.listener(svc, &lname)?;
            let r = l
                .rules
                .iter()
                .find(|r| r.name == name)
                .ok_or_else(|| not_found("RULE", "rule", &name))?;
            Ok(summary(
                &v.rule_json(r),
                &["arn", "id", "name", "match", "priority", "action"],
            ))
        }),
    ))
}

/// UpdateRule (one rule, errors answered) and BatchUpdateRule (each rule that cannot be found
/// is listed as unsuccessful; the others are validated and applied together).
fn update_rules(i: &In<'_>, v: &View<'_>, batch: bool) -> Step {
    let (sidx, sname, _, _) = owned_service(v, i.str("serviceIdentifier")?)?;
    let (_, svc) = v.service(&sname)?;
    let l = v.listener(svc, i.str("listenerIdentifier")?)?;
    let updates: Vec<Value> = if batch {
        i.get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    } else {
        vec![Value::Object(i.0.clone())]
    };
    if batch && (updates.is_empty() || updates.len() > 10) {
        return Err(ApiError::field(
            "rules",
            format!("{} rules given; BatchUpdateRule takes 1-10", updates.len()),
        ));
    }
    let mut snap = v.snap.clone();
    let lname = l.name.clone();
    let mut names = Vec::new();
    let mut unsuccessful = Vec::new();
    for u in &updates {
        let ident = u
            .get("ruleIdentifier")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(rule) = l
            .rules
            .iter()
            .find(|r| r.id == ident || r.arn == ident || r.name == ident)
        else {
            let (did, darn) = default_rule_id(l);
            let (code, message) = if ident == did || ident == darn {
                (
                    "ValidationException",
                    "the default rule changes with UpdateListener's defaultAction".to_string(),
                )
            } else {
                (
                    "ResourceNotFoundException",
                    format!("rule {ident} does not exist"),
                )
            };
            if !batch {
                return Err(if code == "ValidationException" {
                    ApiError::field("ruleIdentifier", message)
                } else {
                    not_found("RULE", "rule", ident)
                });
            }
            unsuccessful.push(
                json!({"ruleIdentifier": ident, "failureCode": code, "failureMessage": message}),
            );
            continue;
        };
        if let Some(p) = u.get("priority").and_then(Value::as_u64)
            && let Some(other) = l
                .rules
                .iter()
                .find(|r| u64::from(r.priority) == p && r.name != rule.name)
            && !updates.iter().any(|x| {
                x.get("ruleIdentifier")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id == other.id || id == other.arn || id == other.name)
            })
        {
            let message = format!("priority {p} is already used by rule \"{}\"", other.name);
            if !batch {
                return Err(conflict("RULE", &other.id, message));
            }
            unsuccessful.push(json!({"ruleIdentifier": ident, "failureCode": "ConflictException", "failureMessage": message}));
            continue;
        }
        if u.get("action").is_some_and(|a| !a.is_null()) {
            check_tgs_per_service(
                v,
                &sname,
                u.get("action"),
                "action",
                Some((&lname, Some(&rule.name))),
            )?;
        }
        let rname = rule.name.clone();
        with_listener(&mut snap, sidx, Some(&lname), |rules| {
            if let Some(e) = rules
                .iter_mut()
                .find(|x| x.get("name").and_then(Value::as_str) == Some(rname.as_str()))
                .and_then(Value::as_object_mut)
            {
                for key in ["match", "priority", "action"] {
                    if let Some(val) = u.get(key).filter(|x| !x.is_null()) {
                        e.insert(key.into(), val.clone());
                    }
                }
            }
        });
        touch(&mut snap, &rule.arn);
        names.push(rname);
    }
    let render = move |v: &View<'_>| -> Result<Vec<Map<String, Value>>, ApiError> {
        let (_, svc) = v.service(&sname)?;
        let l = v.listener(svc, &lname)?;
        Ok(names
            .iter()
            .filter_map(|n| l.rules.iter().find(|r| &r.name == n))
            .map(|r| {
                summary(
                    &v.rule_json(r),
                    &[
                        "arn",
                        "id",
                        "name",
                        "isDefault",
                        "match",
                        "priority",
                        "action",
                    ],
                )
            })
            .collect())
    };
    if batch {
        Ok(Done::Write(
            snap,
            Box::new(move |v: &View<'_>| {
                let ok: Vec<Value> = render(v)?.into_iter().map(Value::Object).collect();
                Ok(obj(json!({"successful": ok, "unsuccessful": unsuccessful})))
            }),
        ))
    } else {
        Ok(Done::Write(
            snap,
            Box::new(move |v: &View<'_>| {
                render(v)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| ApiError::Internal {
                        message: "the updated rule is gone".into(),
                    })
            }),
        ))
    }
}

fn delete_rule(i: &In<'_>, v: &View<'_>) -> Step {
    let (sidx, sname, _, _) = owned_service(v, i.str("serviceIdentifier")?)?;
    let (_, svc) = v.service(&sname)?;
    let l = v.listener(svc, i.str("listenerIdentifier")?)?;
    let ident = i.str("ruleIdentifier")?;
    let Some(rule) = l
        .rules
        .iter()
        .find(|r| r.id == ident || r.arn == ident || r.name == ident)
    else {
        let (did, darn) = default_rule_id(l);
        if ident == did || ident == darn {
            return Err(ApiError::field(
                "ruleIdentifier",
                "a listener's default rule cannot be deleted",
            ));
        }
        return Err(not_found("RULE", "rule", ident));
    };
    let mut snap = v.snap.clone();
    let rname = rule.name.clone();
    with_listener(&mut snap, sidx, Some(&l.name), |rules| {
        rules.retain(|x| x.get("name").and_then(Value::as_str) != Some(rname.as_str()))
    });
    forget(&mut snap, &rule.arn);
    Ok(Done::Write(snap, Box::new(|_| Ok(Map::new()))))
}

// ---- auth policies ------------------------------------------------------------------------

/// A service or service network: (document key, index in the store or None, name, ARN,
/// auth type, the normalised policy).
struct Resource {
    key: &'static str,
    owned: Option<usize>,
    name: String,
    id: String,
    arn: String,
    kind: &'static str,
    auth_type: AuthType,
    policy: Option<String>,
}

fn resource_of(v: &View<'_>, ident: &str) -> Result<(String, Resource), ApiError> {
    if let Ok((_, s)) = v.service(ident) {
        let r = Resource {
            key: "services",
            owned: v.owned("services", &s.name),
            name: s.name.clone(),
            id: s.id.clone(),
            arn: s.arn.clone(),
            kind: "SERVICE",
            auth_type: s.auth_type,
            policy: s.auth_policy.as_ref().map(|p| p.0.normalised()),
        };
        return Ok((s.arn.clone(), r));
    }
    if let Ok((_, n)) = v.network(ident) {
        let r = Resource {
            key: "serviceNetworks",
            owned: v.owned("serviceNetworks", &n.name),
            name: n.name.clone(),
            id: n.id.clone(),
            arn: n.arn.clone(),
            kind: "SERVICE_NETWORK",
            auth_type: n.auth_type,
            policy: n.auth_policy.as_ref().map(|p| p.0.normalised()),
        };
        return Ok((n.arn.clone(), r));
    }
    Err(not_found("SERVICE", "service or service network", ident))
}

fn policy_state(t: AuthType) -> &'static str {
    match t {
        AuthType::AwsIam => "Active",
        AuthType::None => "Inactive",
    }
}

fn put_auth_policy(i: &In<'_>, v: &View<'_>) -> Step {
    let (_, r) = resource_of(v, i.str("resourceIdentifier")?)?;
    let idx = r.owned.ok_or_else(|| {
        v.file_owned(
            r.kind,
            if r.key == "services" {
                "service"
            } else {
                "service network"
            },
            &r.name,
            &r.id,
        )
    })?;
    let policy = i.str("policy")?.to_string();
    if policy.len() > quotas::AUTH_POLICY_BYTES {
        return Err(quota(
            "AUTH_POLICY",
            "auth-policy-size",
            format!(
                "the auth policy is {} bytes; an auth policy is at most {} bytes (10 KB)",
                policy.len(),
                quotas::AUTH_POLICY_BYTES
            ),
        ));
    }
    let mut snap = v.snap.clone();
    if let Some(Value::Object(e)) = list_mut(&mut snap, r.key).get_mut(idx) {
        e.insert("authPolicy".into(), json!(policy));
    }
    let meta_key = format!("{}#authpolicy", r.arn);
    touch(&mut snap, &meta_key);
    let arn = r.arn.clone();
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let (_, r) = resource_of(v, &arn)?;
            Ok(obj(
                json!({"policy": r.policy, "state": policy_state(r.auth_type)}),
            ))
        }),
    ))
}

fn get_auth_policy(i: &In<'_>, v: &View<'_>) -> Step {
    let (_, r) = resource_of(v, i.str("resourceIdentifier")?)?;
    let Some(policy) = &r.policy else {
        return Err(not_found(
            "AUTH_POLICY",
            &format!("the auth policy of {}", r.name),
            &r.id,
        ));
    };
    let (created, updated) = v.times(&format!("{}#authpolicy", r.arn));
    Ok(Done::Read(obj(json!({
        "policy": policy, "state": policy_state(r.auth_type),
        "createdAt": created, "lastUpdatedAt": updated,
    }))))
}

fn delete_auth_policy(i: &In<'_>, v: &View<'_>) -> Step {
    let (_, r) = resource_of(v, i.str("resourceIdentifier")?)?;
    let idx = r.owned.ok_or_else(|| {
        v.file_owned(
            r.kind,
            if r.key == "services" {
                "service"
            } else {
                "service network"
            },
            &r.name,
            &r.id,
        )
    })?;
    if r.policy.is_none() {
        return Err(not_found(
            "AUTH_POLICY",
            &format!("the auth policy of {}", r.name),
            &r.id,
        ));
    }
    if r.auth_type == AuthType::AwsIam {
        return Err(conflict(
            r.kind,
            &r.id,
            format!(
                "\"{}\" has authType AWS_IAM: set it to NONE before deleting its auth policy",
                r.name
            ),
        ));
    }
    let mut snap = v.snap.clone();
    if let Some(Value::Object(e)) = list_mut(&mut snap, r.key).get_mut(idx) {
        e.remove("authPolicy");
    }
    snap.resources.remove(&format!("{}#authpolicy", r.arn));
    Ok(Done::Write(snap, Box::new(|_| Ok(Map::new()))))
}

// ---- access-log subscriptions -------------------------------------------------------------

/// Where an access-log destination ARN writes, as a config `accessLogs` destination, and its
/// type (one subscription per type per resource). CloudWatch Logs group `stdout` is Trellis's
/// standard output; every other log group, S3 bucket or Firehose stream is a file of JSON lines
/// under `<state-dir>/api/logs/`.
fn destination(arn: &str, logs_dir: &std::path::Path) -> Result<(String, &'static str), ApiError> {
    let safe = |s: &str| -> String {
        s.trim_matches('/')
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let bad = || {
        ApiError::field(
            "destinationArn",
            format!(
                "\"{arn}\" is not a CloudWatch Logs log group, S3 bucket or Firehose delivery stream ARN"
            ),
        )
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() < 6 || parts[0] != "arn" {
        return Err(bad());
    }
    let (service, resource) = (parts[2], parts[5]);
    let (kind, name) = match service {
        "logs" => {
            let group = resource.strip_prefix("log-group:").ok_or_else(bad)?;
            let group = group.strip_suffix(":*").unwrap_or(group);
            if group == "stdout" {
                return Ok(("stdout".into(), "logs"));
            }
            ("logs", format!("cloudwatch/{}", safe(group)))
        }
        "s3" => ("s3", format!("s3/{}", safe(resource))),
        "firehose" => {
            let stream = resource.strip_prefix("deliverystream/").ok_or_else(bad)?;
            ("firehose", format!("firehose/{}", safe(stream)))
        }
        _ => return Err(bad()),
    };
    if name.ends_with('/') {
        return Err(bad());
    }
    let path = logs_dir.join(format!("{name}.log"));
    Ok((format!("file:{}", path.display()), kind))
}

fn als_kind(arn: &str) -> &str {
    arn.split(':').nth(2).unwrap_or_default()
}

fn als_json(v: &View<'_>, a: &AccessLogSubscription) -> Map<String, Value> {
    let (created, updated) = v.times(&a.arn);
    let resource_id = a.resource_arn.rsplit('/').next().unwrap_or_default();
    let mut m = obj(json!({
        "id": a.id, "arn": a.arn, "resourceId": resource_id, "resourceArn": a.resource_arn,
        "destinationArn": a.destination_arn, "createdAt": created, "lastUpdatedAt": updated,
    }));
    if let Some(t) = &a.service_network_log_type {
        m.insert("serviceNetworkLogType".into(), json!(t));
    }
    m
}

fn find_als<'v>(v: &'v View<'_>, ident: &str) -> Result<&'v AccessLogSubscription, ApiError> {
    v.snap
        .access_log_subscriptions
        .iter()
        .find(|a| a.id == ident || a.arn == ident)
        .ok_or_else(|| not_found("ACCESS_LOG_SUBSCRIPTION", "access log subscription", ident))
}

fn set_access_logs(snap: &mut Snapshot, key: &str, idx: usize, resource_arn: &str) {
    let dests: Vec<Value> = snap
        .access_log_subscriptions
        .iter()
        .filter(|a| a.resource_arn == resource_arn)
        .map(|a| json!({"destination": a.destination}))
        .collect();
    if let Some(Value::Object(e)) = list_mut(snap, key).get_mut(idx) {
        if dests.is_empty() {
            e.remove("accessLogs");
        } else {
            e.insert("accessLogs".into(), Value::Array(dests));
        }
    }
}

fn create_als(i: &In<'_>, v: &View<'_>, logs_dir: &std::path::Path) -> Step {
    let (arn, r) = resource_of(v, i.str("resourceIdentifier")?)?;
    let idx = r.owned.ok_or_else(|| {
        v.file_owned(
            r.kind,
            if r.key == "services" {
                "service"
            } else {
                "service network"
            },
            &r.name,
            &r.id,
        )
    })?;
    let dest_arn = i.str("destinationArn")?.to_string();
    let (dest, kind) = destination(&dest_arn, logs_dir)?;
    if let Some(other) = v
        .snap
        .access_log_subscriptions
        .iter()
        .find(|a| a.resource_arn == arn && als_kind(&a.destination_arn) == kind)
    {
        return Err(conflict(
            "ACCESS_LOG_SUBSCRIPTION",
            &other.id,
            format!(
                "\"{}\" already has an access log subscription to a destination of this type ({})",
                r.name, other.destination_arn
            ),
        ));
    }
    check_tags(i.get("tags"), 0)?;
    let id = format!("als-{}", stable_id(&["als", &arn, kind]));
    let als_arn = arn_of(v.config, &format!("accesslogsubscription/{id}"));
    let mut snap = v.snap.clone();
    snap.access_log_subscriptions.push(AccessLogSubscription {
        id: id.clone(),
        arn: als_arn.clone(),
        resource_arn: arn.clone(),
        destination_arn: dest_arn,
        destination: dest,
        service_network_log_type: i
            .opt("serviceNetworkLogType")
            .map(str::to_string)
            .filter(|_| r.key == "serviceNetworks"),
    });
    set_access_logs(&mut snap, r.key, idx, &arn);
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let a = find_als(v, &id)?;
            Ok(summary(
                &als_json(v, a),
                &[
                    "id",
                    "arn",
                    "resourceId",
                    "resourceArn",
                    "serviceNetworkLogType",
                    "destinationArn",
                ],
            ))
        }),
    ))
}

fn update_als(i: &In<'_>, v: &View<'_>, logs_dir: &std::path::Path) -> Step {
    let a = find_als(v, i.str("accessLogSubscriptionIdentifier")?)?.clone();
    let (_, r) = resource_of(v, &a.resource_arn)?;
    let idx = r
        .owned
        .ok_or_else(|| v.file_owned(r.kind, "resource", &r.name, &r.id))?;
    let dest_arn = i.str("destinationArn")?.to_string();
    let (dest, kind) = destination(&dest_arn, logs_dir)?;
    if kind != als_kind(&a.destination_arn) {
        return Err(ApiError::field(
            "destinationArn",
            "the new destination must be of the same type as the current one",
        ));
    }
    let mut snap = v.snap.clone();
    if let Some(x) = snap
        .access_log_subscriptions
        .iter_mut()
        .find(|x| x.id == a.id)
    {
        x.destination_arn = dest_arn;
        x.destination = dest;
    }
    set_access_logs(&mut snap, r.key, idx, &a.resource_arn);
    touch(&mut snap, &a.arn);
    let id = a.id.clone();
    Ok(Done::Write(
        snap,
        Box::new(move |v: &View<'_>| {
            let a = find_als(v, &id)?;
            Ok(summary(
                &als_json(v, a),
                &["id", "arn", "resourceId", "resourceArn", "destinationArn"],
            ))
        }),
    ))
}

fn delete_als(i: &In<'_>, v: &View<'_>) -> Step {
    let a = find_als(v, i.str("accessLogSubscriptionIdentifier")?)?.clone();
    let mut snap = v.snap.clone();
    snap.access_log_subscriptions.retain(|x| x.id != a.id);
    snap.resources.remove(&a.arn);
    if let Ok((_, r)) = resource_of(v, &a.resource_arn)
        && let Some(idx) = r.owned
    {
        set_access_logs(&mut snap, r.key, idx, &a.resource_arn);
    }
    Ok(Done::Write(snap, Box::new(|_| Ok(Map::new()))))
}

// ---- tags ---------------------------------------------------------------------------------

/// Whether `arn` names an object of the effective config (or the store), and whether the API
/// owns it.
fn known_arn(v: &View<'_>, arn: &str) -> Result<bool, ApiError> {
    if v.snap.resources.contains_key(arn) && !arn.contains('#') {
        return Ok(true);
    }
    let c = v.config;
    // An object is the API's when it is in the store's document (its metadata may be absent,
    // e.g. for a store written by hand or by an older Trellis).
    if let Some(s) = c.services.iter().find(|s| {
        s.arn == arn
            || s.listeners
                .iter()
                .any(|l| l.arn == arn || l.rules.iter().any(|r| r.arn == arn))
    }) {
        return Ok(v.owned("services", &s.name).is_some());
    }
    if let Some(n) = c.service_networks.iter().find(|n| n.arn == arn) {
        return Ok(v.owned("serviceNetworks", &n.name).is_some());
    }
    if let Some(t) = c.target_groups.iter().find(|t| t.arn == arn) {
        return Ok(v.owned("targetGroups", &t.name).is_some());
    }
    if let Some(a) = snsas(v).into_iter().find(|a| a["arn"] == json!(arn)) {
        let (sn, svc) = (
            a["serviceNetworkName"].as_str().unwrap_or_default(),
            a["serviceName"].as_str().unwrap_or_default(),
        );
        return Ok(assoc_index(v.snap, "serviceAssociations", "service", sn, svc).is_some());
    }
    if snvas(v).iter().any(|a| a["arn"] == json!(arn)) {
        return Ok(false);
    }
    Err(not_found("RESOURCE", "resource", arn))
}

fn tag(i: &In<'_>, v: &View<'_>, add: bool) -> Step {
    let arn = i.str("resourceArn")?.to_string();
    if !known_arn(v, &arn)? {
        return Err(conflict(
            "RESOURCE",
            &arn,
            format!(
                "{arn} comes from the config file {}; objects of the file have no tags",
                v.file_name
            ),
        ));
    }
    let mut snap = v.snap.clone();
    let meta = snap.resources.entry(arn.clone()).or_default();
    if add {
        let tags = i
            .get("tags")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let new = tags.keys().filter(|k| !meta.tags.contains_key(*k)).count();
        if meta.tags.len() + new > quotas::TAGS_PER_RESOURCE {
            return Err(quota(
                "TAG",
                "tags-per-resource",
                format!("a resource has at most {} tags", quotas::TAGS_PER_RESOURCE),
            ));
        }
        for (k, val) in tags {
            meta.tags
                .insert(k, val.as_str().unwrap_or_default().to_string());
        }
    } else {
        let keys: Vec<String> = match i.get("tagKeys") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        for k in keys {
            meta.tags.remove(&k);
        }
    }
    Ok(Done::Write(snap, Box::new(|_| Ok(Map::new()))))
}
