//! The services operations (see the parent module for the write path they plug into).

use super::*;

pub(super) fn create_service(i: &In<'_>, v: &View<'_>) -> Step {
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

pub(super) fn update_service(i: &In<'_>, v: &View<'_>) -> Step {
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

pub(super) fn delete_service(i: &In<'_>, v: &View<'_>) -> Step {
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
