//! `identities:`: who may sign requests (the local stand-in for IAM's access keys). Each entry
//! is checked by the auth crate's rules (`Identity::validate`), and access key ids must be
//! unique, since a signature names only its key. Secrets may come from the environment
//! (`${NAME}`) so that they need not be written in the file.

use std::collections::BTreeMap;

use trellis_auth::Identity;

use super::Ctx;
use crate::decode::{Fields, Loc, fields, item, list};

const KEYS: &[&str] = &[
    "arn",
    "accessKeyId",
    "secretAccessKey",
    "sessionName",
    "sessionToken",
    "principalOrgID",
    "tags",
    "policy",
];

impl Ctx<'_> {
    /// The `identities` list; `None` when the file has none (then the `test`/`test` key pair
    /// signs as `user/test`). Beside it, for each identity, the fields written with `${NAME}`
    /// as written (see [`crate::Config::identity_env`]).
    pub(super) fn identities(
        &mut self,
        top: &Fields<'_>,
    ) -> (Option<Vec<Identity>>, Vec<BTreeMap<String, String>>) {
        let Some(node) = top.get("identities") else {
            return (None, Vec::new());
        };
        let loc = top.loc("identities");
        let mut out: Vec<(Identity, Loc, BTreeMap<String, String>)> = Vec::new();
        for (i, node) in list(self.problems, Some(node), &loc).iter().enumerate() {
            let at = item(&loc, i, node);
            let Some(f) = fields(self.problems, node, &at, KEYS) else {
                continue;
            };
            let mut written = BTreeMap::new();
            let Some(identity) = self.identity(&f, &mut written) else {
                continue;
            };
            if let Some((_, first, _)) = out
                .iter()
                .find(|(other, _, _)| other.access_key_id == identity.access_key_id)
            {
                self.problems.add(
                    &f.loc("accessKeyId"),
                    format!(
                        "access key id \"{}\" is given twice (first at {})",
                        identity.access_key_id, first.path
                    ),
                    Some(
                        "a signature names only its access key: each identity needs its own".into(),
                    ),
                );
                continue;
            }
            // IAM attaches a policy to the principal, not to one of its keys; the export (and
            // anyone reading the file) keys identity policies by ARN.
            let policy_of = |i: &Identity| i.policy.as_ref().map(|p| p.normalised());
            if let Some((_, first, _)) = out.iter().find(|(other, _, _)| {
                other.arn == identity.arn && policy_of(other) != policy_of(&identity)
            }) {
                let key = if f.get("policy").is_some() {
                    "policy"
                } else {
                    "arn"
                };
                self.problems.add(
                    &f.loc(key),
                    format!(
                        "{} has a different policy at {}",
                        identity.arn, first.path
                    ),
                    Some(
                        "a policy belongs to the principal: give every key pair of one ARN the same policy (or none)".into(),
                    ),
                );
                continue;
            }
            out.push((identity, at, written));
        }
        let written = out.iter().map(|(_, _, w)| w.clone()).collect();
        (
            Some(out.into_iter().map(|(identity, _, _)| identity).collect()),
            written,
        )
    }

    /// One identity; the fields that named environment variables go into `written` as written.
    fn identity(
        &mut self,
        f: &Fields<'_>,
        written: &mut BTreeMap<String, String>,
    ) -> Option<Identity> {
        let arn = self.required_secret(f, "arn", "arn:aws:iam::123456789012:role/NAME", written);
        let access_key_id = self.required_secret(f, "accessKeyId", "e.g. AKIAEXAMPLE", written);
        let secret_access_key =
            self.required_secret(f, "secretAccessKey", "the secret, or ${ENV_NAME}", written);
        let session_name = self.secret_field(f, "sessionName", written);
        let session_token = self.secret_field(f, "sessionToken", written);
        let principal_org_id = self.secret_field(f, "principalOrgID", written);
        let tags = self.tags(f);
        let policy = self.identity_policy(f);
        let policy_ok = policy.is_some() || f.get("policy").is_none();
        // Every field is checked even when another is missing, so one pass reports them all.
        let complete = arn.is_some() && access_key_id.is_some() && secret_access_key.is_some();
        let identity = Identity {
            arn: arn.unwrap_or_default(),
            access_key_id: access_key_id.unwrap_or_default(),
            secret_access_key: secret_access_key.unwrap_or_default(),
            session_name,
            session_token,
            principal_org_id,
            tags,
            policy,
        };
        let mut valid = complete && policy_ok;
        for (key, value) in [
            ("accessKeyId", &identity.access_key_id),
            ("secretAccessKey", &identity.secret_access_key),
        ] {
            if complete && value.is_empty() {
                self.problems
                    .add(&f.loc(key), format!("{key} is empty"), None);
                valid = false;
            }
        }
        if !identity.arn.is_empty()
            && let Err(e) = identity.validate()
        {
            let key = match e {
                trellis_auth::identity::IdentityError::BadArn(_) => "arn",
                _ => "sessionName",
            };
            self.problems.add(&f.loc(key), e.to_string(), None);
            valid = false;
        }
        if let Some(org) = &identity.principal_org_id {
            let ok = org.len() >= 12
                && org.len() <= 34
                && org.starts_with("o-")
                && org[2..]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !ok {
                self.problems.add(
                    &f.loc("principalOrgID"),
                    format!("\"{org}\" is not an organization id"),
                    Some("an organization id is o- and 10-32 lower-case letters or digits, e.g. o-example123".into()),
                );
                valid = false;
            }
        }
        valid.then_some(identity)
    }

    /// A required string field, with `${NAME}` replaced from the environment.
    fn required_secret(
        &mut self,
        f: &Fields<'_>,
        key: &str,
        hint: &str,
        written: &mut BTreeMap<String, String>,
    ) -> Option<String> {
        f.require(self.problems, key, hint)?;
        self.secret_field(f, key, written)
    }

    /// An optional string field, with `${NAME}` replaced from the environment; when it named a
    /// variable, its text as written goes into `written` under `key`.
    fn secret_field(
        &mut self,
        f: &Fields<'_>,
        key: &str,
        written: &mut BTreeMap<String, String>,
    ) -> Option<String> {
        let text = self.str_field(f, key)?;
        match expand_env(&text, |name| std::env::var(name).ok()) {
            Ok(value) => {
                if names_variable(&text) {
                    written.insert(key.to_string(), text);
                }
                Some(value)
            }
            Err(name) => {
                self.problems.add(
                    &f.loc(key),
                    format!("environment variable {name} is not set"),
                    Some(format!(
                        "export {name}=… before starting Trellis, or write the value here"
                    )),
                );
                None
            }
        }
    }
}

/// Whether `text` names an environment variable (`${NAME}`), so that its value is not what is
/// written: an export keeps the text, not the secret.
fn names_variable(text: &str) -> bool {
    let named = std::cell::Cell::new(false);
    // expand_env's own parse, with a lookup that notes each name it is asked for.
    let _ = expand_env(text, |_| {
        named.set(true);
        Some(String::new())
    });
    named.get()
}

/// Replaces each `${NAME}` in `text` with `lookup(NAME)`; `$$` is a literal `$`. `Err(NAME)`
/// names the first variable `lookup` does not know.
pub(super) fn expand_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(end) = inner.find('}') else {
                out.push('$');
                rest = after;
                continue;
            };
            let name = &inner[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if valid {
                out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
            } else {
                out.push_str(&rest[at..at + 2 + end + 1]);
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand_env;

    fn env(name: &str) -> Option<String> {
        (name == "SECRET").then(|| "s3cr3t".to_string())
    }

    #[test]
    fn env_references_are_replaced_and_unknown_ones_named() {
        assert_eq!(expand_env("${SECRET}", env).unwrap(), "s3cr3t");
        assert_eq!(expand_env("a-${SECRET}-b", env).unwrap(), "a-s3cr3t-b");
        assert_eq!(expand_env("plain", env).unwrap(), "plain");
        assert_eq!(expand_env("$$${SECRET}", env).unwrap(), "$s3cr3t");
        assert_eq!(expand_env("cost $5", env).unwrap(), "cost $5");
        assert_eq!(expand_env("${not closed", env).unwrap(), "${not closed");
        assert_eq!(expand_env("${1X}", env).unwrap(), "${1X}");
        assert_eq!(expand_env("${MISSING}", env), Err("MISSING".to_string()));
        assert_eq!(
            expand_env("ünï${SECRET}cödé", env).unwrap(),
            "ünïs3cr3tcödé"
        );
    }
}
