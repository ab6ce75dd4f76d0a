//! The target groups operations (see the parent module for the write path they plug into).

use super::*;

pub(super) fn create_target_group(i: &In<'_>, v: &View<'_>) -> Step {
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
pub(super) fn vpc_id(v: &View<'_>, given: &Value) -> Result<String, ApiError> {
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

pub(super) fn update_target_group(i: &In<'_>, v: &View<'_>) -> Step {
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

pub(super) fn delete_target_group(i: &In<'_>, v: &View<'_>) -> Step {
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
pub(super) fn targets(i: &In<'_>, v: &View<'_>, register: bool) -> Step {
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
pub(super) fn list_targets(i: &In<'_>, v: &View<'_>, data: &dyn crate::plane::DataPlane) -> Step {
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
