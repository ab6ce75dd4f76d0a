//! The listeners and rules operations (see the parent module for the write path they plug into).

use super::*;

/// The store's service named `svc` (index), or the file-owned error.
pub(super) fn owned_service(
    v: &View<'_>,
    ident: &str,
) -> Result<(usize, String, String, String), ApiError> {
    let (_, svc) = v.service(ident)?;
    let idx = v
        .owned("services", &svc.name)
        .ok_or_else(|| v.file_owned("SERVICE", "service", &svc.name, &svc.id))?;
    Ok((idx, svc.name.clone(), svc.id.clone(), svc.arn.clone()))
}

pub(super) fn with_listener<T>(
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
pub(super) fn check_tgs_per_service(
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

pub(super) fn create_listener(i: &In<'_>, v: &View<'_>) -> Step {
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

pub(super) fn update_listener(i: &In<'_>, v: &View<'_>) -> Step {
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

pub(super) fn delete_listener(i: &In<'_>, v: &View<'_>) -> Step {
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

pub(super) fn create_rule(i: &In<'_>, v: &View<'_>) -> Step {
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
pub(super) fn update_rules(i: &In<'_>, v: &View<'_>, batch: bool) -> Step {
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

pub(super) fn delete_rule(i: &In<'_>, v: &View<'_>) -> Step {
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
