//! The policy document: the top-level and statement elements, validated into statements ready
//! to evaluate, and AWS's normalised echo of the document.
//!
//! IAM user guide, "IAM JSON policy element reference"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements.html>). A
//! resource-based policy statement names its principals, so each statement needs exactly one
//! of `Principal`/`NotPrincipal`, one of `Action`/`NotAction` and one of
//! `Resource`/`NotResource`. An identity-based policy names none: it speaks for the identity it
//! is attached to, so there `Principal` and `NotPrincipal` are refused.

use serde_json::{Map, Value};

use super::condition::{self, Condition};
use super::echo::{compact_len, normalise};
use super::error::{self, ErrorKind, PathSegment, PolicyError, did_you_mean};
use super::principal::{self, Principals};
use super::wildcard::Wildcard;
use super::{Kind, MAX_POLICY_BYTES, Policy, Request, Version};

const TOP_FIELDS: [&str; 3] = ["Version", "Id", "Statement"];
/// A statement's elements, in the order of the IAM reference (which the echo keeps).
pub(super) const STATEMENT_FIELDS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];
/// The actions of `vpc-lattice-svcs` (Service Authorization Reference): an `Action` must name
/// or match at least one.
const ACTIONS: [&str; 2] = ["vpc-lattice-svcs:Invoke", "vpc-lattice-svcs:Connect"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// A list of patterns, or the `Not…` form: the element matches when no pattern does.
#[derive(Debug, Clone)]
struct Patterns {
    negated: bool,
    list: Vec<Wildcard>,
}

impl Patterns {
    fn applies(&self, text: &str) -> bool {
        self.list.iter().any(|p| p.matches(text)) != self.negated
    }
}

/// One validated statement.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub(crate) effect: Effect,
    /// `NotPrincipal` rather than `Principal`.
    not_principal: bool,
    principals: Principals,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<Condition>,
}

impl Statement {
    /// Whether the statement applies to the request: principal, action, resource and every
    /// condition all match.
    pub(crate) fn applies(&self, request: &Request<'_>) -> bool {
        let principal = if self.not_principal {
            !self.principals.excepts(request.caller)
        } else {
            self.principals.matches(request.caller)
        };
        principal
            && self.actions.applies(request.action)
            && self.resources.applies(request.resource)
            && self.conditions.iter().all(|c| c.holds(request))
    }
}

/// Validates a whole policy document of `kind`, collecting every problem.
pub(crate) fn policy(value: &Value, kind: Kind) -> Result<Policy, Vec<PolicyError>> {
    let size = compact_len(value);
    if size > MAX_POLICY_BYTES {
        return Err(vec![too_large(size, kind)]);
    }
    let Value::Object(top) = value else {
        return Err(vec![PolicyError::new(
            ErrorKind::WrongType,
            &[],
            "a policy is a JSON object: {\"Version\": \"2012-10-17\", \"Statement\": [...]}",
        )]);
    };
    let mut errors = Vec::new();
    unknown_fields(top, &[], &TOP_FIELDS, &mut errors);
    let version = match top.get("Version") {
        // AWS fills in a missing Version as 2008-10-17 (LATTICE.md §5.1).
        None => Version::V2008,
        Some(Value::String(v)) if v == "2012-10-17" => Version::V2012,
        Some(Value::String(v)) if v == "2008-10-17" => Version::V2008,
        Some(other) => {
            errors.push(
                PolicyError::new(
                    ErrorKind::BadVersion,
                    &error::key(&[], "Version"),
                    format!("{} is not a policy language version", describe(other)),
                )
                .hint(Some("use \"2012-10-17\" (or \"2008-10-17\")".into())),
            );
            Version::V2012
        }
    };
    let id = match top.get("Id") {
        None => None,
        Some(Value::String(id)) => Some(id.as_str()),
        Some(_) => {
            errors.push(PolicyError::new(
                ErrorKind::WrongType,
                &error::key(&[], "Id"),
                "Id is a string",
            ));
            None
        }
    };
    let statement_path = error::key(&[], "Statement");
    let items: Vec<(Vec<PathSegment>, &Value)> = match top.get("Statement") {
        None => {
            errors.push(PolicyError::new(
                ErrorKind::MissingField,
                &[],
                "a policy needs a Statement",
            ));
            Vec::new()
        }
        Some(Value::Array(list)) => {
            if list.is_empty() {
                errors.push(PolicyError::new(
                    ErrorKind::Empty,
                    &statement_path,
                    "a policy needs at least one statement",
                ));
            }
            list.iter()
                .enumerate()
                .map(|(i, v)| (error::index(&statement_path, i), v))
                .collect()
        }
        Some(single @ Value::Object(_)) => vec![(statement_path, single)],
        Some(_) => {
            errors.push(PolicyError::new(
                ErrorKind::WrongType,
                &statement_path,
                "Statement is an object or a list of objects",
            ));
            Vec::new()
        }
    };
    let escapes = version == Version::V2012;
    let mut statements = Vec::with_capacity(items.len());
    let mut sids: Vec<&str> = Vec::new();
    for (path, item) in &items {
        if let Some(Value::String(sid)) = item.get("Sid") {
            if sids.contains(&sid.as_str()) {
                errors.push(
                    PolicyError::new(
                        ErrorKind::DuplicateSid,
                        &error::key(path, "Sid"),
                        format!("Sid {sid:?} is used by an earlier statement"),
                    )
                    .hint(Some("statement ids must be unique within a policy".into())),
                );
            }
            sids.push(sid);
        }
        if let Some(statement) = statement(item, path, kind, escapes, &mut errors) {
            statements.push(statement);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let normalised = normalise(version, id, items.iter().map(|(_, v)| *v));
    Ok(Policy {
        version,
        statements,
        normalised,
    })
}

/// The refusal of a policy over [`MAX_POLICY_BYTES`]: Lattice's quota for an auth policy,
/// which Trellis also applies to an identity's policy (IAM's limits differ by policy type).
pub(crate) fn too_large(size: usize, kind: Kind) -> PolicyError {
    let limit = match kind {
        Kind::Auth => "VPC Lattice allows at most 10 KB",
        Kind::Identity => {
            "Trellis caps an identity policy at 10 KB, as VPC Lattice does an auth policy"
        }
    };
    PolicyError::new(
        ErrorKind::TooLarge,
        &[],
        format!("the policy is {size} bytes; {limit} ({MAX_POLICY_BYTES} bytes)"),
    )
}

fn unknown_fields(
    object: &Map<String, Value>,
    path: &[PathSegment],
    known: &[&str],
    errors: &mut Vec<PolicyError>,
) {
    for name in object.keys().filter(|k| !known.contains(&k.as_str())) {
        let hint = did_you_mean(name, known)
            .or_else(|| Some(format!("the elements here are {}", known.join(", "))));
        errors.push(
            PolicyError::new(
                ErrorKind::UnknownField,
                &error::key(path, name),
                format!("unknown element {name:?}"),
            )
            .hint(hint),
        );
    }
}

fn statement(
    value: &Value,
    path: &[PathSegment],
    kind: Kind,
    escapes: bool,
    errors: &mut Vec<PolicyError>,
) -> Option<Statement> {
    let Value::Object(fields) = value else {
        errors.push(PolicyError::new(
            ErrorKind::WrongType,
            path,
            "a statement is a JSON object",
        ));
        return None;
    };
    let before = errors.len();
    unknown_fields(fields, path, &STATEMENT_FIELDS, errors);
    if let Some(sid) = fields.get("Sid").filter(|s| !s.is_string()) {
        errors.push(PolicyError::new(
            ErrorKind::WrongType,
            &error::key(path, "Sid"),
            format!("Sid is a string, not {}", type_of(sid)),
        ));
    }
    let effect_path = error::key(path, "Effect");
    let effect = match fields.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Some(Effect::Allow),
        Some(Value::String(e)) if e == "Deny" => Some(Effect::Deny),
        Some(other) => {
            let text = other.as_str().unwrap_or_default();
            let hint = ["Allow", "Deny"]
                .into_iter()
                .find(|e| e.eq_ignore_ascii_case(text))
                .map(|e| format!("write {e:?} (Effect is case-sensitive)"))
                .or_else(|| Some("Effect is \"Allow\" or \"Deny\"".into()));
            errors.push(
                PolicyError::new(
                    ErrorKind::BadEffect,
                    &effect_path,
                    format!("{} is not an effect", describe(other)),
                )
                .hint(hint),
            );
            None
        }
        None => {
            errors.push(PolicyError::new(
                ErrorKind::MissingField,
                path,
                "a statement needs an Effect",
            ));
            None
        }
    };
    let principal = match kind {
        Kind::Auth => resource_principal(fields, path, effect, errors),
        Kind::Identity => identity_principal(fields, path, errors),
    };
    let actions = one_of(fields, path, "Action", errors).map(|(negated, name, v)| {
        let list = string_list(v, &error::key(path, name), errors)
            .into_iter()
            .filter_map(|(path, text)| action(text, &path, errors))
            .collect();
        Patterns { negated, list }
    });
    let resources = one_of(fields, path, "Resource", errors).map(|(negated, name, v)| {
        let list = string_list(v, &error::key(path, name), errors)
            .into_iter()
            .filter_map(|(path, text)| resource(text, &path, escapes, errors))
            .collect();
        Patterns { negated, list }
    });
    let conditions = fields
        .get("Condition")
        .map(|c| condition::parse_block(c, &error::key(path, "Condition"), escapes, errors))
        .unwrap_or_default();
    if errors.len() > before {
        return None;
    }
    let (not_principal, principals) = principal?;
    Some(Statement {
        effect: effect?,
        not_principal,
        principals,
        actions: actions?,
        resources: resources?,
        conditions,
    })
}

/// A resource-based policy's `Principal` or `NotPrincipal` (exactly one): whether it is the
/// `Not…` form, and the principals.
fn resource_principal(
    fields: &Map<String, Value>,
    path: &[PathSegment],
    effect: Option<Effect>,
    errors: &mut Vec<PolicyError>,
) -> Option<(bool, Principals)> {
    let (negated, name, v) = one_of(fields, path, "Principal", errors)?;
    let principal_path = error::key(path, name);
    if negated && effect == Some(Effect::Allow) {
        errors.push(
            PolicyError::new(
                ErrorKind::Conflict,
                &principal_path,
                "NotPrincipal with \"Effect\": \"Allow\" is not supported",
            )
            .hint(Some(
                "use NotPrincipal with Deny, or Principal \"*\" with a condition on aws:PrincipalArn".into(),
            )),
        );
    }
    principal::parse(v, &principal_path, errors).map(|p| (negated, p))
}

/// An identity-based policy applies to the identity it is attached to: every statement is about
/// that caller, and naming a principal is an error (IAM refuses such a policy too).
fn identity_principal(
    fields: &Map<String, Value>,
    path: &[PathSegment],
    errors: &mut Vec<PolicyError>,
) -> Option<(bool, Principals)> {
    let before = errors.len();
    for name in ["Principal", "NotPrincipal"] {
        if fields.contains_key(name) {
            errors.push(
                PolicyError::new(
                    ErrorKind::PrincipalInIdentityPolicy,
                    &error::key(path, name),
                    format!(
                        "{name} is not allowed: the policy applies to the identity it belongs to"
                    ),
                )
                .hint(Some(format!(
                    "remove {name}; principals are named in a service's or service network's authPolicy"
                ))),
            );
        }
    }
    (errors.len() == before).then_some((false, Principals::Any))
}

/// Finds `name` or `Not<name>` (exactly one), reporting both or neither.
fn one_of<'v>(
    fields: &'v Map<String, Value>,
    path: &[PathSegment],
    name: &'static str,
    errors: &mut Vec<PolicyError>,
) -> Option<(bool, &'static str, &'v Value)> {
    let not_name = match name {
        "Principal" => "NotPrincipal",
        "Action" => "NotAction",
        _ => "NotResource",
    };
    match (fields.get(name), fields.get(not_name)) {
        (Some(v), None) => Some((false, name, v)),
        (None, Some(v)) => Some((true, not_name, v)),
        (Some(_), Some(_)) => {
            errors.push(PolicyError::new(
                ErrorKind::Conflict,
                &error::key(path, not_name),
                format!("a statement has {name} or {not_name}, not both"),
            ));
            None
        }
        (None, None) => {
            errors.push(PolicyError::new(
                ErrorKind::MissingField,
                path,
                format!("a statement needs {name} (or {not_name})"),
            ));
            None
        }
    }
}

/// A string or a non-empty list of strings, each with its path.
pub(crate) fn string_list<'v>(
    value: &'v Value,
    path: &[PathSegment],
    errors: &mut Vec<PolicyError>,
) -> Vec<(Vec<PathSegment>, &'v str)> {
    match value {
        Value::String(s) => vec![(path.to_vec(), s.as_str())],
        Value::Array(list) => {
            if list.is_empty() {
                errors.push(PolicyError::new(
                    ErrorKind::Empty,
                    path,
                    "an empty list matches nothing",
                ));
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                match item {
                    Value::String(s) => out.push((error::index(path, i), s.as_str())),
                    other => errors.push(PolicyError::new(
                        ErrorKind::WrongType,
                        &error::index(path, i),
                        format!("expected a string, not {}", type_of(other)),
                    )),
                }
            }
            out
        }
        other => {
            errors.push(PolicyError::new(
                ErrorKind::WrongType,
                path,
                format!(
                    "expected a string or a list of strings, not {}",
                    type_of(other)
                ),
            ));
            Vec::new()
        }
    }
}

/// A value for an error message: a scalar as JSON, anything else by its type. Never the
/// serialised value, which could be large or nested deeper than a recursive printer can go.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => type_of(other).to_string(),
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// An `Action` entry: case-insensitive, and it must match a `vpc-lattice-svcs` action.
fn action(text: &str, path: &[PathSegment], errors: &mut Vec<PolicyError>) -> Option<Wildcard> {
    // Without escapes, compiling cannot fail.
    let pattern = Wildcard::new(text, true, false).ok()?;
    if ACTIONS.iter().any(|a| pattern.matches(a)) {
        return Some(pattern);
    }
    let hint = did_you_mean(text, &ACTIONS).or_else(|| {
        Some("auth policies control vpc-lattice-svcs:Invoke (HTTP, HTTPS, gRPC) and vpc-lattice-svcs:Connect (TCP)".into())
    });
    errors.push(
        PolicyError::new(
            ErrorKind::BadAction,
            path,
            format!("{text:?} matches no VPC Lattice action"),
        )
        .hint(hint),
    );
    None
}

/// A `Resource` entry: `*`, a pattern starting with `*` (`*/admin*`), or a `vpc-lattice` ARN
/// pattern; the service ARN is followed by the request path for `Invoke` (LATTICE.md §5.1).
fn resource(
    text: &str,
    path: &[PathSegment],
    escapes: bool,
    errors: &mut Vec<PolicyError>,
) -> Option<Wildcard> {
    const EXAMPLE: &str = "write \"*\", a service ARN followed by the request path such as arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0123456789abcdef0/admin*, or a pattern such as \"*/admin*\"";
    let pattern = match Wildcard::new(text, false, escapes) {
        Ok(pattern) => pattern,
        Err(variable) => {
            errors.push(
                PolicyError::new(
                    ErrorKind::PolicyVariable,
                    path,
                    format!("policy variable {} is not supported", variable.0),
                )
                .hint(Some(
                    "write the value out; ${*}, ${?} and ${$} stand for a literal *, ? and $"
                        .into(),
                )),
            );
            return None;
        }
    };
    let problem = if text.starts_with('*') {
        None
    } else if text.starts_with("arn:") {
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let service = parts.get(2).copied().unwrap_or_default();
        if parts.len() < 6 && !text.contains('*') {
            Some("an ARN has six colon-separated parts (arn:partition:service:region:account:resource)".to_string())
        } else if !service.is_empty() && !service.contains(['*', '?']) && service != "vpc-lattice" {
            Some(format!(
                "names a {service} resource; auth policies apply to vpc-lattice services"
            ))
        } else {
            None
        }
    } else {
        Some("is not an ARN".to_string())
    };
    match problem {
        None => Some(pattern),
        Some(problem) => {
            errors.push(
                PolicyError::new(ErrorKind::BadResource, path, format!("{text:?} {problem}"))
                    .hint(Some(EXAMPLE.into())),
            );
            None
        }
    }
}
