//! The `Condition` element: parsing each operator block once, and deciding it per request.
//!
//! Logic, from the IAM user guide ("Creating a condition with multiple context keys or values",
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html>):
//! all operators of a block must hold (AND), all keys of an operator must hold (AND), and a key
//! holds when its request value matches any of the policy's values (OR) — for a negated
//! operator (`StringNotEquals`, …), when it matches none of them.
//!
//! A key absent from the request context ("IAM JSON policy elements: Condition operators",
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>):
//! the condition is false, except that a negated operator is true, `…IfExists` is true, and
//! `Null` tests exactly that. With set operators ("Set operators for multivalued context
//! keys",
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html>),
//! `ForAllValues:` is true for an absent key and `ForAnyValue:` false.
//!
//! A key with several values in the request (query string keys; a header sent twice) without a
//! set operator holds when any value matches, and for a negated operator when no value matches
//! any policy value [infer: IAM documents set operators for these keys; this reading keeps a
//! `Deny` on a header from being dodged by sending the header twice].

mod context;
mod keys;
mod operator;

use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::Value;

use self::context::{Val, Visit, visit};
use self::keys::{Key, KeyType, eq_folded, fold};
use self::operator::{Base, Family, Qualifier};
use super::Request;
use super::error::{self, ErrorKind, PathSegment, PolicyError};
use super::net::Cidr;
use super::wildcard::{self, Wildcard};

/// One key under one operator, ready to evaluate.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    key: Key,
    test: Test,
    negated: bool,
    qualifier: Qualifier,
    if_exists: bool,
}

/// The policy's values for one key, compiled for the operator's comparison. The test answers
/// "does this request value match any policy value"; negation is applied by the caller.
#[derive(Debug, Clone)]
enum Test {
    Equals(Vec<Box<str>>),
    /// Values folded with [`fold`].
    EqualsIgnoreCase(Vec<Box<str>>),
    Like(Vec<Wildcard>),
    Numeric(Compare, Vec<f64>),
    /// `ArnEquals` and `ArnLike` are the same comparison in IAM: each of the six
    /// colon-separated parts is matched separately, with wildcards.
    Arn(Vec<ArnPattern>),
    Bool(Vec<bool>),
    Ip(Vec<Cidr>),
    /// `true` in the policy: the key must be absent; `false`: present.
    Null(Vec<bool>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Compare {
    fn holds(self, request: f64, policy: f64) -> bool {
        match self {
            Compare::Equal => request == policy,
            Compare::Less => request < policy,
            Compare::LessOrEqual => request <= policy,
            Compare::Greater => request > policy,
            Compare::GreaterOrEqual => request >= policy,
        }
    }
}

/// An ARN pattern split into its six parts (`arn:partition:service:region:account:resource`).
#[derive(Debug, Clone)]
struct ArnPattern([Wildcard; 6]);

impl ArnPattern {
    fn parse(text: &str, escapes: bool) -> Result<Option<ArnPattern>, wildcard::PolicyVariable> {
        if !text.starts_with("arn:") {
            return Ok(None);
        }
        let mut parts = text.splitn(6, ':');
        let mut out = Vec::with_capacity(6);
        for _ in 0..6 {
            let Some(part) = parts.next() else {
                return Ok(None);
            };
            out.push(Wildcard::new(part, false, escapes)?);
        }
        Ok(out.try_into().ok().map(ArnPattern))
    }

    fn matches(&self, arn: &str) -> bool {
        let mut parts = arn.splitn(6, ':');
        self.0
            .iter()
            .all(|pattern| parts.next().is_some_and(|part| pattern.matches(part)))
    }
}

impl Condition {
    /// Whether the condition holds for `request`.
    pub(crate) fn holds(&self, request: &Request<'_>) -> bool {
        let test = &self.test;
        if let Test::Null(expected) = test {
            let present = visit(&self.key, request, &mut |_| true) != Visit::Absent;
            return expected.iter().any(|&null| null != present);
        }
        let key = &self.key;
        match (self.qualifier, self.negated) {
            // Some value matches a policy value.
            (Qualifier::Single | Qualifier::ForAnyValue, false) => {
                match visit(key, request, &mut |v| test.matches(v)) {
                    Visit::Stopped => true,
                    Visit::Exhausted => false,
                    Visit::Absent => self.if_exists,
                }
            }
            // No value matches any policy value; an absent key passes.
            (Qualifier::Single, true) => {
                visit(key, request, &mut |v| test.matches(v)) != Visit::Stopped
            }
            // Some value matches none of the policy values.
            (Qualifier::ForAnyValue, true) => {
                match visit(key, request, &mut |v| !test.matches(v)) {
                    Visit::Stopped => true,
                    Visit::Exhausted => false,
                    Visit::Absent => self.if_exists,
                }
            }
            // Every value matches some policy value (vacuously true when absent).
            (Qualifier::ForAllValues, false) => {
                visit(key, request, &mut |v| !test.matches(v)) != Visit::Stopped
            }
            // No value matches any policy value (vacuously true when absent).
            (Qualifier::ForAllValues, true) => {
                visit(key, request, &mut |v| test.matches(v)) != Visit::Stopped
            }
        }
    }
}

impl Test {
    /// Whether one request value matches any of the policy's values.
    fn matches(&self, value: Val<'_>) -> bool {
        match self {
            Test::Equals(list) => with_str(value, |s| list.iter().any(|p| **p == *s)),
            Test::EqualsIgnoreCase(list) => {
                with_str(value, |s| list.iter().any(|p| eq_folded(s, p)))
            }
            Test::Like(list) => with_str(value, |s| list.iter().any(|p| p.matches(s))),
            Test::Numeric(compare, list) => {
                number(value).is_some_and(|n| list.iter().any(|p| compare.holds(n, *p)))
            }
            Test::Arn(list) => match value {
                Val::Str(s) => list.iter().any(|p| p.matches(s)),
                Val::Num(_) | Val::Ip(_) => false,
            },
            Test::Bool(list) => match value {
                Val::Str(s) => parse_bool(s).is_some_and(|b| list.contains(&b)),
                Val::Num(_) | Val::Ip(_) => false,
            },
            Test::Ip(list) => {
                let ip = match value {
                    Val::Ip(ip) => Some(ip),
                    Val::Str(s) => s.trim().parse::<IpAddr>().ok(),
                    Val::Num(_) => None,
                };
                ip.is_some_and(|ip| list.iter().any(|c| c.contains(ip)))
            }
            Test::Null(_) => false,
        }
    }
}

/// A fixed-size text buffer on the stack, so numbers and addresses can be compared as strings
/// without allocating.
struct StackText {
    bytes: [u8; 48],
    len: usize,
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(std::fmt::Error)?;
        let target = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        target.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Calls `f` with the value as text (a port as decimal digits, an address in its usual form).
fn with_str<R>(value: Val<'_>, f: impl FnOnce(&str) -> R) -> R {
    let mut text = StackText {
        bytes: [0; 48],
        len: 0,
    };
    match value {
        Val::Str(s) => return f(s),
        // At most 5 digits, or 45 chars for an IPv6 address: both fit.
        Val::Num(n) => {
            let _ = write!(text, "{n}");
        }
        Val::Ip(ip) => {
            let _ = write!(text, "{ip}");
        }
    }
    let s = text
        .bytes
        .get(..text.len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or_default();
    f(s)
}

fn number(value: Val<'_>) -> Option<f64> {
    match value {
        Val::Num(n) => Some(f64::from(n)),
        Val::Str(s) => parse_number(s),
        Val::Ip(_) => None,
    }
}

/// A decimal number: optional sign, digits, optional fraction and exponent. `f64::from_str`
/// alone would also take `inf` and `NaN`.
fn parse_number(text: &str) -> Option<f64> {
    let plausible = !text.is_empty()
        && text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
    text.parse::<f64>()
        .ok()
        .filter(|n| plausible && n.is_finite())
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Whether an operator family can apply to a key type. Typed keys refuse operators that could
/// never match them (Access Analyzer reports these as type mismatches); plain string keys
/// accept every operator, since a header or tag may well hold a number, an address or an ARN.
fn compatible(family: Family, key_type: KeyType) -> bool {
    match key_type {
        KeyType::String => true,
        KeyType::Numeric => matches!(family, Family::Numeric | Family::String | Family::Null),
        KeyType::Arn => matches!(family, Family::Arn | Family::String | Family::Null),
        KeyType::Ip => matches!(family, Family::Ip | Family::Null),
    }
}

/// Parses a `Condition` block at `path`, pushing problems to `errors`.
pub(crate) fn parse_block(
    value: &Value,
    path: &[PathSegment],
    escapes: bool,
    errors: &mut Vec<PolicyError>,
) -> Vec<Condition> {
    let Value::Object(block) = value else {
        errors.push(PolicyError::new(
            ErrorKind::WrongType,
            path,
            "Condition is an object: {\"<operator>\": {\"<key>\": <value or list>}}",
        ));
        return Vec::new();
    };
    let mut conditions = Vec::new();
    for (name, keys) in block {
        let path = error::key(path, name);
        let op = match operator::parse(name) {
            Ok(op) => op,
            Err((message, hint)) => {
                errors
                    .push(PolicyError::new(ErrorKind::UnknownOperator, &path, message).hint(hint));
                continue;
            }
        };
        let Value::Object(keys) = keys else {
            errors.push(PolicyError::new(
                ErrorKind::WrongType,
                &path,
                format!("{name} takes an object: {{\"<key>\": <value or list>}}"),
            ));
            continue;
        };
        if keys.is_empty() {
            errors.push(PolicyError::new(
                ErrorKind::Empty,
                &path,
                format!("{name} names no condition key"),
            ));
        }
        for (key_name, values) in keys {
            let path = error::key(&path, key_name);
            let key = match Key::parse(key_name) {
                Ok(key) => key,
                Err((message, hint)) => {
                    errors.push(
                        PolicyError::new(ErrorKind::UnknownConditionKey, &path, message).hint(hint),
                    );
                    continue;
                }
            };
            let family = op.base.family();
            if !compatible(family, key.key_type()) {
                errors.push(
                    PolicyError::new(
                        ErrorKind::TypeMismatch,
                        &path,
                        format!(
                            "{name} cannot test {key_name}, which is {}",
                            type_name(key.key_type())
                        ),
                    )
                    .hint(Some(operators_for(key.key_type()).into())),
                );
                continue;
            }
            if let Some(test) = parse_values(op.base, values, &path, escapes, errors) {
                conditions.push(Condition {
                    key,
                    test,
                    negated: op.base.negated(),
                    qualifier: op.qualifier,
                    if_exists: op.if_exists,
                });
            }
        }
    }
    conditions
}

fn type_name(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::String => "a string",
        KeyType::Numeric => "a number",
        KeyType::Arn => "an ARN",
        KeyType::Ip => "an IP address",
    }
}

fn operators_for(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::String => "use a String operator",
        KeyType::Numeric => "use a Numeric operator such as NumericEquals",
        KeyType::Arn => "use ArnEquals, ArnLike or a String operator",
        KeyType::Ip => "use IpAddress or NotIpAddress",
    }
}

/// A condition's values as text, each with its path: a string or a list of them; numbers and
/// booleans are taken as their JSON text.
fn scalar_values<'v>(
    value: &'v Value,
    path: &[PathSegment],
    errors: &mut Vec<PolicyError>,
) -> Vec<(Vec<PathSegment>, std::borrow::Cow<'v, str>)> {
    fn scalar(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
        match value {
            Value::String(s) => Some(s.as_str().into()),
            Value::Number(n) => Some(n.to_string().into()),
            Value::Bool(b) => Some(if *b { "true" } else { "false" }.into()),
            _ => None,
        }
    }
    let wrong = |path: &[PathSegment]| {
        PolicyError::new(
            ErrorKind::WrongType,
            path,
            "a condition value is a string, number or boolean, or a list of them",
        )
    };
    match value {
        Value::Array(list) => {
            if list.is_empty() {
                errors.push(PolicyError::new(
                    ErrorKind::Empty,
                    path,
                    "an empty list of values matches nothing",
                ));
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                let path = error::index(path, i);
                match scalar(item) {
                    Some(text) => out.push((path, text)),
                    None => errors.push(wrong(&path)),
                }
            }
            out
        }
        other => match scalar(other) {
            Some(text) => vec![(path.to_vec(), text)],
            None => {
                errors.push(wrong(path));
                Vec::new()
            }
        },
    }
}

fn parse_values(
    base: Base,
    value: &Value,
    path: &[PathSegment],
    escapes: bool,
    errors: &mut Vec<PolicyError>,
) -> Option<Test> {
    let before = errors.len();
    let values = scalar_values(value, path, errors);
    let bad = |path: &[PathSegment], message: String, hint: &str| {
        PolicyError::new(ErrorKind::BadConditionValue, path, message).hint(Some(hint.to_string()))
    };
    let variable = |path: &[PathSegment], v: wildcard::PolicyVariable| {
        PolicyError::new(
            ErrorKind::PolicyVariable,
            path,
            format!("policy variable {} is not supported", v.0),
        )
        .hint(Some(
            "write the value out; ${*}, ${?} and ${$} stand for a literal *, ? and $".into(),
        ))
    };
    let mut strings = Vec::new();
    let mut patterns = Vec::new();
    let mut numbers = Vec::new();
    let mut arns = Vec::new();
    let mut bools = Vec::new();
    let mut cidrs = Vec::new();
    for (path, text) in values {
        match base.family() {
            Family::String => match base {
                Base::StringLike | Base::StringNotLike => match Wildcard::new(&text, false, escapes) {
                    Ok(w) => patterns.push(w),
                    Err(v) => errors.push(variable(&path, v)),
                },
                _ => match wildcard::unescape(&text, escapes) {
                    Ok(s) if matches!(base, Base::StringEqualsIgnoreCase | Base::StringNotEqualsIgnoreCase) => {
                        strings.push(fold(&s).into_boxed_str());
                    }
                    Ok(s) => strings.push(s.into_boxed_str()),
                    Err(v) => errors.push(variable(&path, v)),
                },
            },
            Family::Numeric => match parse_number(&text) {
                Some(n) => numbers.push(n),
                None => errors.push(bad(&path, format!("{text:?} is not a number"), "write a number such as 443")),
            },
            Family::Arn => match ArnPattern::parse(&text, escapes) {
                Ok(Some(p)) => arns.push(p),
                Ok(None) => errors.push(bad(
                    &path,
                    format!("{text:?} is not an ARN pattern"),
                    "an ARN has six parts, arn:partition:service:region:account:resource, each of which may use * and ?",
                )),
                Err(v) => errors.push(variable(&path, v)),
            },
            Family::Bool | Family::Null => match parse_bool(&text) {
                Some(b) => bools.push(b),
                None => errors.push(bad(&path, format!("{text:?} is not a boolean"), "write true or false")),
            },
            Family::Ip => match Cidr::parse(&text) {
                Some(c) => cidrs.push(c),
                None => errors.push(bad(
                    &path,
                    format!("{text:?} is not an IP address or CIDR block"),
                    "write a block such as 203.0.113.0/24 or 2001:db8::/32",
                )),
            },
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(match base {
        Base::StringEquals | Base::StringNotEquals => Test::Equals(strings),
        Base::StringEqualsIgnoreCase | Base::StringNotEqualsIgnoreCase => {
            Test::EqualsIgnoreCase(strings)
        }
        Base::StringLike | Base::StringNotLike => Test::Like(patterns),
        Base::NumericEquals | Base::NumericNotEquals => Test::Numeric(Compare::Equal, numbers),
        Base::NumericLessThan => Test::Numeric(Compare::Less, numbers),
        Base::NumericLessThanEquals => Test::Numeric(Compare::LessOrEqual, numbers),
        Base::NumericGreaterThan => Test::Numeric(Compare::Greater, numbers),
        Base::NumericGreaterThanEquals => Test::Numeric(Compare::GreaterOrEqual, numbers),
        Base::ArnEquals | Base::ArnLike | Base::ArnNotEquals | Base::ArnNotLike => Test::Arn(arns),
        Base::Bool => Test::Bool(bools),
        Base::IpAddress | Base::NotIpAddress => Test::Ip(cidrs),
        Base::Null => Test::Null(bools),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_decimal_only() {
        for (text, expected) in [
            ("443", Some(443.0)),
            ("-1.5", Some(-1.5)),
            ("1e3", Some(1000.0)),
            ("inf", None),
            ("NaN", None),
            ("", None),
            ("0x10", None),
            ("1e999", None),
            ("e", None),
        ] {
            assert_eq!(parse_number(text), expected, "{text:?}");
        }
    }

    #[test]
    fn arn_patterns_match_part_by_part() {
        let p = ArnPattern::parse("arn:aws:iam::*:role/app-*", true)
            .unwrap()
            .unwrap();
        assert!(p.matches("arn:aws:iam::123456789012:role/app-x"));
        assert!(p.matches("arn:aws:iam::123456789012:role/app-x:with:colons"));
        assert!(!p.matches("arn:aws:iam::123456789012:user/app-x"));
        assert!(!p.matches("arn:aws:iam::123456789012"));
        // `*` in one part does not reach across a colon.
        let p = ArnPattern::parse("arn:aws:vpc-lattice:*:123456789012:service/*", true)
            .unwrap()
            .unwrap();
        assert!(p.matches("arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-1"));
        assert!(!p.matches("arn:aws:vpc-lattice:us-west-2:x:123456789012:service/svc-1"));
        assert!(ArnPattern::parse("*", true).unwrap().is_none());
        assert!(ArnPattern::parse("arn:aws:iam::1", true).unwrap().is_none());
        assert!(ArnPattern::parse("urn:a:b:c:d:e", true).unwrap().is_none());
    }

    #[test]
    fn numbers_and_addresses_compare_as_text_without_allocating() {
        assert!(with_str(Val::Num(443), |s| s == "443"));
        assert!(with_str(Val::Ip("2001:db8::1".parse().unwrap()), |s| s
            == "2001:db8::1"));
        let longest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        assert!(with_str(Val::Ip(longest), |s| s == longest.to_string()));
    }
}
