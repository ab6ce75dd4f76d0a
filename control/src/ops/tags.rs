//! The tags operations (see the parent module for the write path they plug into).

use super::*;

/// Whether `arn` names an object of the effective config (or the store), and whether the API
/// owns it.
pub(super) fn known_arn(v: &View<'_>, arn: &str) -> Result<bool, ApiError> {
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

pub(super) fn tag(i: &In<'_>, v: &View<'_>, add: bool) -> Step {
    let arn = i.str("resourceArn")?.to_string();
    if !known_arn(v, &arn)? {
        let how = if v.config.services.iter().any(|s| s.arn == arn) {
            "a service of the file has its tags there (tags:)"
        } else {
            "objects of the file have no tags"
        };
        return Err(conflict(
            "RESOURCE",
            &arn,
            format!("{arn} comes from the config file {}; {how}", v.file_name),
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
        // A key that differs from one already there only in case replaces it: a service's
        // tags are unique ignoring case (see [`put_tag`]), so it is not a new tag.
        let new = tags
            .keys()
            .filter(|k| !meta.tags.keys().any(|old| old.eq_ignore_ascii_case(k)))
            .count();
        if meta.tags.len() + new > quotas::TAGS_PER_RESOURCE {
            return Err(quota(
                "TAG",
                "tags-per-resource",
                format!("a resource has at most {} tags", quotas::TAGS_PER_RESOURCE),
            ));
        }
        for (k, val) in tags {
            put_tag(
                &mut meta.tags,
                k,
                val.as_str().unwrap_or_default().to_string(),
            );
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

/// Sets tag `key`, replacing any tag whose key differs from it only in case. A service's tags
/// reach `aws:ResourceTag/<key>`, whose key Trellis (like the config file's `tags:`) compares
/// ignoring case; two such keys side by side would make which value a policy sees depend on
/// their order, and an untag of one would bring the other back.
pub(super) fn put_tag(tags: &mut BTreeMap<String, String>, key: String, value: String) {
    tags.retain(|old, _| !old.eq_ignore_ascii_case(&key));
    tags.insert(key, value);
}
