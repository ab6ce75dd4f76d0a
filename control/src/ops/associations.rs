//! The associations operations (see the parent module for the write path they plug into).

use super::*;

pub(super) fn snsa_id(v: &View<'_>, sn: &str, svc: &str) -> (String, String) {
    let id = format!(
        "snsa-{}",
        stable_id(&["snsa", &v.config.region, &v.config.account_id, sn, svc])
    );
    let arn = arn_of(v.config, &format!("servicenetworkserviceassociation/{id}"));
    (id, arn)
}

pub(super) fn snva_id(v: &View<'_>, sn: &str, vpc: &str) -> (String, String) {
    let id = format!(
        "snva-{}",
        stable_id(&["snva", &v.config.region, &v.config.account_id, sn, vpc])
    );
    let arn = arn_of(v.config, &format!("servicenetworkvpcassociation/{id}"));
    (id, arn)
}

pub(super) fn snsas(v: &View<'_>) -> Vec<Map<String, Value>> {
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

pub(super) fn snvas(v: &View<'_>) -> Vec<Map<String, Value>> {
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

pub(super) fn find_snsa(v: &View<'_>, ident: &str) -> Result<Map<String, Value>, ApiError> {
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

pub(super) fn find_snva(v: &View<'_>, ident: &str) -> Result<Map<String, Value>, ApiError> {
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

pub(super) fn assoc_index(
    snap: &Snapshot,
    key: &str,
    other: &str,
    sn: &str,
    name: &str,
) -> Option<usize> {
    list(snap, key).iter().position(|a| {
        a.get("serviceNetwork").and_then(Value::as_str) == Some(sn)
            && a.get(other).and_then(Value::as_str) == Some(name)
    })
}

pub(super) fn create_snsa(i: &In<'_>, v: &View<'_>) -> Step {
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

pub(super) fn delete_snsa(i: &In<'_>, v: &View<'_>) -> Step {
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
    Ok(remove_association(v, "serviceAssociations", idx, &a))
}

pub(super) fn create_snva(i: &In<'_>, v: &View<'_>) -> Step {
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

pub(super) fn delete_snva(i: &In<'_>, v: &View<'_>) -> Step {
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
    Ok(remove_association(v, "vpcAssociations", idx, &a))
}

/// Takes association `idx` out of the store's `key` list, with what the store keeps about its
/// ARN (tags), and answers as AWS does while an association goes: `DELETE_IN_PROGRESS`.
fn remove_association(v: &View<'_>, key: &str, idx: usize, a: &Map<String, Value>) -> Done {
    let mut snap = v.snap.clone();
    list_mut(&mut snap, key).remove(idx);
    let arn = a["arn"].as_str().unwrap_or_default().to_string();
    snap.resources.remove(&arn);
    let out = obj(json!({"id": a["id"], "arn": arn, "status": "DELETE_IN_PROGRESS"}));
    Done::Write(snap, Box::new(move |_| Ok(out)))
}
