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

mod access_logs;
mod associations;
mod auth_policies;
mod listeners;
mod networks;
mod services;
mod tags;
mod target_groups;

use access_logs::*;
use associations::*;
use auth_policies::*;
use listeners::*;
use networks::*;
use services::*;
use tags::*;
use target_groups::*;

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
                let mut config =
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
                    // A new service's tags are served with it, not from the next change on.
                    crate::plane::add_api_tags(&mut config, &snap);
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
            // A service's tags are the config's (the file's, or the API's put on it).
            let tags: BTreeMap<String, String> =
                match v.config.services.iter().find(|s| s.arn == arn) {
                    Some(service) => service.tags.iter().cloned().collect(),
                    None => v
                        .snap
                        .resources
                        .get(arn)
                        .map(|m| m.tags.clone())
                        .unwrap_or_default(),
                };
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
                tags::put_tag(&mut meta.tags, k.clone(), s.to_string());
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
