//! The access-log subscriptions operations (see the parent module for the write path they plug into).

use super::*;

/// Where an access-log destination ARN writes, as a config `accessLogs` destination, and its
/// type (one subscription per type per resource). CloudWatch Logs group `stdout` is Trellis's
/// standard output; every other log group, S3 bucket or Firehose stream is a file of JSON lines
/// under `<state-dir>/api/logs/`.
pub(super) fn destination(
    arn: &str,
    logs_dir: &std::path::Path,
) -> Result<(String, &'static str), ApiError> {
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

pub(super) fn als_kind(arn: &str) -> &str {
    arn.split(':').nth(2).unwrap_or_default()
}

pub(super) fn als_json(v: &View<'_>, a: &AccessLogSubscription) -> Map<String, Value> {
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

pub(super) fn find_als<'v>(
    v: &'v View<'_>,
    ident: &str,
) -> Result<&'v AccessLogSubscription, ApiError> {
    v.snap
        .access_log_subscriptions
        .iter()
        .find(|a| a.id == ident || a.arn == ident)
        .ok_or_else(|| not_found("ACCESS_LOG_SUBSCRIPTION", "access log subscription", ident))
}

pub(super) fn set_access_logs(snap: &mut Snapshot, key: &str, idx: usize, resource_arn: &str) {
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

pub(super) fn create_als(i: &In<'_>, v: &View<'_>, logs_dir: &std::path::Path) -> Step {
    let (arn, r) = resource_of(v, i.str("resourceIdentifier")?)?;
    let idx = r.store_index(v)?;
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

pub(super) fn update_als(i: &In<'_>, v: &View<'_>, logs_dir: &std::path::Path) -> Step {
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

pub(super) fn delete_als(i: &In<'_>, v: &View<'_>) -> Step {
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
