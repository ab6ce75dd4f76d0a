//! The service networks operations (see the parent module for the write path they plug into).

use super::*;

pub(super) fn create_network(i: &In<'_>, v: &View<'_>) -> Step {
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

pub(super) fn update_network(i: &In<'_>, v: &View<'_>) -> Step {
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

pub(super) fn delete_network(i: &In<'_>, v: &View<'_>) -> Step {
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
pub(super) fn forget(snap: &mut Snapshot, arn: &str) {
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
