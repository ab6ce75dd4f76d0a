//! `Principal` and `NotPrincipal`: who a statement is about.
//!
//! IAM user guide, "AWS JSON policy elements: Principal"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html>):
//! `"*"` and `{"AWS": "*"}` are equivalent and cover everyone, anonymous callers included; an
//! account id or `arn:aws:iam::<account>:root` stands for every principal of that account; a
//! role ARN covers the role's sessions; wildcards cannot match part of a principal ARN.

use serde_json::Value;

use super::error::{self, ErrorKind, PathSegment, PolicyError};
use crate::{Caller, PrincipalType};

/// The principals a `Principal` or `NotPrincipal` element names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principals {
    /// `"*"`: everyone, including anonymous callers.
    Any,
    List(Vec<PrincipalId>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalId {
    /// A 12-digit account id (also written `arn:aws:iam::<account>:root`).
    Account(Box<str>),
    /// A user, role or assumed-role session ARN, compared exactly.
    Arn(Box<str>),
}

impl Principals {
    /// `Principal`: whether the caller is one of the named principals. A role ARN names its
    /// sessions too (`Caller::iam_arn` is the role for a session).
    pub(crate) fn matches(&self, caller: Option<&Caller>) -> bool {
        match (self, caller) {
            (Principals::Any, _) => true,
            (Principals::List(_), None) => false,
            (Principals::List(ids), Some(caller)) => ids.iter().any(|id| match id {
                PrincipalId::Account(account) => **account == *caller.account,
                PrincipalId::Arn(arn) => **arn == *caller.arn || **arn == *caller.iam_arn,
            }),
        }
    }

    /// `NotPrincipal`: whether the caller is excepted, so the statement does not apply.
    ///
    /// IAM checks each identity a request carries — the account, then the user or role, then
    /// the role session — and the exception holds only if every one of them is named, which is
    /// why the user guide tells you to list the account ARN along with the user or role
    /// ("AWS JSON policy elements: NotPrincipal",
    /// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html>).
    /// A session is excepted by its role's ARN or its own session ARN, plus the account. An
    /// anonymous caller has no identity to name: only `"*"` excepts it.
    pub(crate) fn excepts(&self, caller: Option<&Caller>) -> bool {
        let (ids, caller) = match (self, caller) {
            (Principals::Any, _) => return true,
            (Principals::List(_), None) => return false,
            (Principals::List(ids), Some(caller)) => (ids, caller),
        };
        let account_named = ids
            .iter()
            .any(|id| matches!(id, PrincipalId::Account(a) if **a == *caller.account));
        if caller.principal_type == PrincipalType::Account {
            return account_named;
        }
        let identity_named = ids.iter().any(|id| {
            matches!(id, PrincipalId::Arn(arn) if **arn == *caller.arn || **arn == *caller.iam_arn)
        });
        account_named && identity_named
    }
}

/// Parses a `Principal` / `NotPrincipal` value at `path`, pushing problems to `errors`.
pub(crate) fn parse(
    value: &Value,
    path: &[PathSegment],
    errors: &mut Vec<PolicyError>,
) -> Option<Principals> {
    match value {
        Value::String(s) if s == "*" => Some(Principals::Any),
        Value::String(s) => {
            errors.push(
                PolicyError::new(
                    ErrorKind::BadPrincipal,
                    path,
                    format!("{s:?} is not a principal: a principal string must be \"*\""),
                )
                .hint(Some(format!("name IAM principals as {{\"AWS\": {s:?}}}"))),
            );
            None
        }
        Value::Object(map) => {
            if map.is_empty() {
                errors.push(PolicyError::new(
                    ErrorKind::Empty,
                    path,
                    "names no principal: use {\"AWS\": <arn | account id | \"*\">}",
                ));
                return None;
            }
            let before = errors.len();
            let mut ids = Vec::new();
            let mut any = false;
            for (kind, entries) in map {
                let path = error::key(path, kind);
                if kind != "AWS" {
                    let hint = if kind.eq_ignore_ascii_case("aws") {
                        Some("write \"AWS\" (principal types are case-sensitive)".to_string())
                    } else {
                        Some(
                            "VPC Lattice callers are IAM principals: name them under \"AWS\""
                                .to_string(),
                        )
                    };
                    errors.push(
                        PolicyError::new(
                            ErrorKind::BadPrincipal,
                            &path,
                            format!("{kind:?} principals are not supported"),
                        )
                        .hint(hint),
                    );
                    continue;
                }
                for (path, entry) in super::document::string_list(entries, &path, errors) {
                    if entry == "*" {
                        any = true;
                        continue;
                    }
                    match parse_id(entry) {
                        Ok(id) => ids.push(id),
                        Err((message, hint)) => errors.push(
                            PolicyError::new(ErrorKind::BadPrincipal, &path, message)
                                .hint(hint.map(str::to_string)),
                        ),
                    }
                }
            }
            if errors.len() > before {
                None
            } else if any {
                Some(Principals::Any)
            } else {
                Some(Principals::List(ids))
            }
        }
        _ => {
            errors.push(PolicyError::new(
                ErrorKind::WrongType,
                path,
                "a principal is \"*\" or {\"AWS\": <arn | account id | list>}",
            ));
            None
        }
    }
}

const NO_WILDCARDS: &str = "to match principals by pattern, use \"Principal\": \"*\" with a condition such as {\"ArnLike\": {\"aws:PrincipalArn\": \"arn:aws:iam::123456789012:role/app-*\"}}";

/// One `AWS` entry: an account id or an IAM / STS principal ARN.
fn parse_id(text: &str) -> Result<PrincipalId, (String, Option<&'static str>)> {
    if is_account_id(text) {
        return Ok(PrincipalId::Account(text.into()));
    }
    if text.contains(['*', '?']) {
        return Err((
            format!("{text:?}: wildcards cannot match part of a principal"),
            Some(NO_WILDCARDS),
        ));
    }
    let bad = |why: &str| {
        (
            format!("{text:?} is not an IAM principal: {why}"),
            Some(
                "expected a 12-digit account id, arn:aws:iam::<account>:root, …:user/<name>, …:role/<name> or arn:aws:sts::<account>:assumed-role/<role>/<session>",
            ),
        )
    };
    let Some(["arn", partition, service, region, account, resource]) =
        crate::identity::arn_parts(text)
    else {
        return Err(bad("not an ARN"));
    };
    if partition.is_empty()
        || !partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
    {
        return Err(bad("bad partition"));
    }
    if !region.is_empty() {
        return Err(bad("IAM ARNs have no region"));
    }
    if !is_account_id(account) {
        return Err(bad("the account is not 12 digits"));
    }
    let named = |rest: &str| !rest.is_empty() && !rest.ends_with('/') && !rest.starts_with('/');
    match (service, resource.split_once('/')) {
        ("iam", None) if resource == "root" => Ok(PrincipalId::Account(account.into())),
        ("iam", Some(("user" | "role", rest))) if named(rest) => Ok(PrincipalId::Arn(text.into())),
        ("iam", Some(("group", _))) => Err(bad("groups cannot be principals")),
        ("sts", Some(("assumed-role", rest)))
            if rest
                .split_once('/')
                .is_some_and(|(r, s)| !r.is_empty() && named(s)) =>
        {
            Ok(PrincipalId::Arn(text.into()))
        }
        ("sts", Some(("federated-user", rest))) if named(rest) => Ok(PrincipalId::Arn(text.into())),
        _ => Err(bad("unknown principal kind")),
    }
}

pub(crate) fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_ids_parse() {
        let ok = [
            ("123456789012", PrincipalId::Account("123456789012".into())),
            (
                "arn:aws:iam::123456789012:root",
                PrincipalId::Account("123456789012".into()),
            ),
            (
                "arn:aws:iam::123456789012:user/alice",
                PrincipalId::Arn("arn:aws:iam::123456789012:user/alice".into()),
            ),
            (
                "arn:aws:iam::123456789012:role/team/app",
                PrincipalId::Arn("arn:aws:iam::123456789012:role/team/app".into()),
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/app/s1",
                PrincipalId::Arn("arn:aws:sts::123456789012:assumed-role/app/s1".into()),
            ),
        ];
        for (text, id) in ok {
            assert_eq!(parse_id(text), Ok(id), "{text}");
        }
        for bad in [
            "12345678901",
            "arn:aws:iam::123456789012:role/*",
            "arn:aws:iam::*:root",
            "arn:aws:iam::123456789012:group/devs",
            "arn:aws:iam:us-east-1:123456789012:user/x",
            "arn:aws:iam::123456789012:user/",
            "arn:aws:sts::123456789012:assumed-role/app",
            "arn:aws:s3:::bucket",
            "arn:AWS:iam::123456789012:root",
            "alice",
        ] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }
}
