//! Condition keys: the names a policy may test, and the type each has.
//!
//! The list is LATTICE.md §5.1 (the Service Authorization Reference for `vpc-lattice-svcs`)
//! plus the global keys VPC Lattice documents (`aws:PrincipalType`, `aws:PrincipalOrgID`,
//! `aws:PrincipalTag/<k>`, `aws:ResourceTag/<k>`, `aws:SourceIp`) and the cheap ones every
//! request has (`aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:username`).
//!
//! IAM compares key names without case ("IAM JSON policy elements: Condition",
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html>),
//! but Trellis asks for the documented spelling and names it in the hint: a policy that passes
//! here then reads the same to anyone, and behaves the same on AWS. Header names and tag keys
//! after the `/` are compared without case.

use http::HeaderName;

use crate::policy::error::closest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Port,
    RequestMethod,
    RequestPath,
    RequestHeader(HeaderName),
    /// Query keys are case-sensitive, as in the URL.
    RequestQueryString(Box<str>),
    ServiceNetworkArn,
    ServiceArn,
    SourceVpc,
    SourceVpcOwnerAccount,
    PrincipalType,
    PrincipalOrgId,
    /// The tag key, lowercased.
    PrincipalTag(Box<str>),
    /// The tag key, lowercased.
    ResourceTag(Box<str>),
    SourceIp,
    PrincipalArn,
    PrincipalAccount,
    Username,
}

/// The value type of a key, which decides the operators that can apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    String,
    Numeric,
    Arn,
    Ip,
}

const HEADER: &str = "vpc-lattice-svcs:RequestHeader/";
const QUERY: &str = "vpc-lattice-svcs:RequestQueryString/";
const PRINCIPAL_TAG: &str = "aws:PrincipalTag/";
const RESOURCE_TAG: &str = "aws:ResourceTag/";

/// Every key name, prefixes ending in `/`: the candidates for "did you mean".
pub(crate) const KEY_NAMES: [&str; 17] = [
    "vpc-lattice-svcs:Port",
    "vpc-lattice-svcs:RequestMethod",
    "vpc-lattice-svcs:RequestPath",
    HEADER,
    QUERY,
    "vpc-lattice-svcs:ServiceNetworkArn",
    "vpc-lattice-svcs:ServiceArn",
    "vpc-lattice-svcs:SourceVpc",
    "vpc-lattice-svcs:SourceVpcOwnerAccount",
    "aws:PrincipalType",
    "aws:PrincipalOrgID",
    PRINCIPAL_TAG,
    RESOURCE_TAG,
    "aws:SourceIp",
    "aws:PrincipalArn",
    "aws:PrincipalAccount",
    "aws:username",
];

/// Folds case the way the `IgnoreCase` operators and tag keys compare: per char, full Unicode.
pub(crate) fn fold(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// Whether `text` folds to `folded` (already folded), without allocating.
pub(crate) fn eq_folded(text: &str, folded: &str) -> bool {
    text.chars().flat_map(char::to_lowercase).eq(folded.chars())
}

impl Key {
    pub(crate) fn parse(name: &str) -> Result<Key, (String, Option<String>)> {
        let fixed = match name {
            "vpc-lattice-svcs:Port" => Some(Key::Port),
            "vpc-lattice-svcs:RequestMethod" => Some(Key::RequestMethod),
            "vpc-lattice-svcs:RequestPath" => Some(Key::RequestPath),
            "vpc-lattice-svcs:ServiceNetworkArn" => Some(Key::ServiceNetworkArn),
            "vpc-lattice-svcs:ServiceArn" => Some(Key::ServiceArn),
            "vpc-lattice-svcs:SourceVpc" => Some(Key::SourceVpc),
            "vpc-lattice-svcs:SourceVpcOwnerAccount" => Some(Key::SourceVpcOwnerAccount),
            "aws:PrincipalType" => Some(Key::PrincipalType),
            "aws:PrincipalOrgID" => Some(Key::PrincipalOrgId),
            "aws:SourceIp" => Some(Key::SourceIp),
            "aws:PrincipalArn" => Some(Key::PrincipalArn),
            "aws:PrincipalAccount" => Some(Key::PrincipalAccount),
            "aws:username" => Some(Key::Username),
            _ => None,
        };
        if let Some(key) = fixed {
            return Ok(key);
        }
        let empty = |prefix: &str| (format!("{name:?} names no {prefix}…"), None);
        if let Some(header) = name.strip_prefix(HEADER) {
            return HeaderName::from_bytes(header.as_bytes())
                .map(Key::RequestHeader)
                .map_err(|_| {
                    if header.is_empty() {
                        empty("header")
                    } else {
                        (format!("{header:?} is not a valid HTTP header name"), None)
                    }
                });
        }
        if let Some(query) = name.strip_prefix(QUERY) {
            if query.is_empty() {
                return Err(empty("query string key"));
            }
            return Ok(Key::RequestQueryString(query.into()));
        }
        for (prefix, make) in [
            (PRINCIPAL_TAG, Key::PrincipalTag as fn(Box<str>) -> Key),
            (RESOURCE_TAG, Key::ResourceTag),
        ] {
            if let Some(tag) = name.strip_prefix(prefix) {
                // IAM tag keys are 1 to 128 characters.
                if tag.is_empty() || tag.chars().count() > 128 {
                    return Err((format!("{name:?}: a tag key is 1 to 128 characters"), None));
                }
                return Ok(make(fold(tag).into()));
            }
        }
        Err((
            format!("{name:?} is not a condition key VPC Lattice provides"),
            Some(suggest(name)),
        ))
    }

    pub(crate) fn key_type(&self) -> KeyType {
        match self {
            Key::Port => KeyType::Numeric,
            Key::ServiceNetworkArn | Key::ServiceArn | Key::PrincipalArn => KeyType::Arn,
            Key::SourceIp => KeyType::Ip,
            _ => KeyType::String,
        }
    }
}

/// The hint for an unknown key: the closest known name (keeping what follows a `/`), or the
/// list of families.
fn suggest(name: &str) -> String {
    let guess = match name.split_once('/') {
        Some((head, tail)) => {
            let prefixed: Vec<&str> = KEY_NAMES
                .iter()
                .copied()
                .filter(|k| k.ends_with('/'))
                .collect();
            closest(&format!("{head}/"), &prefixed).map(|prefix| format!("{prefix}{tail}"))
        }
        None => {
            let plain: Vec<&str> = KEY_NAMES
                .iter()
                .copied()
                .filter(|k| !k.ends_with('/'))
                .collect();
            closest(name, &plain).map(str::to_string)
        }
    };
    match guess {
        Some(guess) if guess.eq_ignore_ascii_case(name) => {
            format!("write it as documented: {guess:?}")
        }
        Some(guess) => format!("did you mean {guess:?}?"),
        None => "keys are vpc-lattice-svcs:Port, RequestMethod, RequestPath, RequestHeader/<name>, RequestQueryString/<key>, ServiceNetworkArn, ServiceArn, SourceVpc, SourceVpcOwnerAccount and aws:PrincipalType, PrincipalOrgID, PrincipalTag/<key>, ResourceTag/<key>, SourceIp, PrincipalArn, PrincipalAccount, username".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_prefixed_parts_fold() {
        assert_eq!(
            Key::parse("vpc-lattice-svcs:RequestHeader/X-Api-Key"),
            Ok(Key::RequestHeader(HeaderName::from_static("x-api-key")))
        );
        assert_eq!(
            Key::parse("aws:PrincipalTag/Team"),
            Ok(Key::PrincipalTag("team".into()))
        );
        assert_eq!(
            Key::parse("vpc-lattice-svcs:RequestQueryString/Id"),
            Ok(Key::RequestQueryString("Id".into()))
        );
        assert_eq!(Key::parse("vpc-lattice-svcs:Port"), Ok(Key::Port));
    }

    #[test]
    fn unknown_keys_get_hints() {
        let cases = [
            (
                "aws:principaltype",
                "write it as documented: \"aws:PrincipalType\"",
            ),
            (
                "aws:PrincipalOrgId",
                "write it as documented: \"aws:PrincipalOrgID\"",
            ),
            (
                "vpc-lattice-svcs:Prot",
                "did you mean \"vpc-lattice-svcs:Port\"?",
            ),
            (
                "vpc-lattice-svcs:RequestHeaders/x-a",
                "did you mean \"vpc-lattice-svcs:RequestHeader/x-a\"?",
            ),
            (
                "aws:PrincipalTags/team",
                "did you mean \"aws:PrincipalTag/team\"?",
            ),
        ];
        for (name, hint) in cases {
            assert_eq!(
                Key::parse(name).unwrap_err().1.as_deref(),
                Some(hint),
                "{name}"
            );
        }
        assert!(
            Key::parse("aws:CurrentTime")
                .unwrap_err()
                .1
                .unwrap()
                .starts_with("keys are")
        );
        for bad in [
            "vpc-lattice-svcs:RequestHeader/",
            "vpc-lattice-svcs:RequestHeader/bad header",
            "vpc-lattice-svcs:RequestQueryString/",
            "aws:PrincipalTag/",
        ] {
            assert!(Key::parse(bad).is_err(), "{bad}");
        }
    }
}
