//! The auth policies operations (see the parent module for the write path they plug into).

use super::*;

/// A service or service network: (document key, index in the store or None, name, ARN,
/// auth type, the normalised policy).
pub(super) struct Resource {
    pub(super) key: &'static str,
    pub(super) owned: Option<usize>,
    pub(super) name: String,
    pub(super) id: String,
    pub(super) arn: String,
    pub(super) kind: &'static str,
    pub(super) auth_type: AuthType,
    pub(super) policy: Option<String>,
}

impl Resource {
    /// Where the resource is in the API store; an error saying the config file owns it (and
    /// the API cannot change it there) when it comes from the file.
    pub(super) fn store_index(&self, v: &View<'_>) -> Result<usize, ApiError> {
        self.owned.ok_or_else(|| {
            let noun = if self.key == "services" {
                "service"
            } else {
                "service network"
            };
            v.file_owned(self.kind, noun, &self.name, &self.id)
        })
    }
}

pub(super) fn resource_of(v: &View<'_>, ident: &str) -> Result<(String, Resource), ApiError> {
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

pub(super) fn policy_state(t: AuthType) -> &'static str {
    match t {
        AuthType::AwsIam => "Active",
        AuthType::None => "Inactive",
    }
}

pub(super) fn put_auth_policy(i: &In<'_>, v: &View<'_>) -> Step {
    let (_, r) = resource_of(v, i.str("resourceIdentifier")?)?;
    let idx = r.store_index(v)?;
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

pub(super) fn get_auth_policy(i: &In<'_>, v: &View<'_>) -> Step {
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

pub(super) fn delete_auth_policy(i: &In<'_>, v: &View<'_>) -> Step {
    let (_, r) = resource_of(v, i.str("resourceIdentifier")?)?;
    let idx = r.store_index(v)?;
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
