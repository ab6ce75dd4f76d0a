//! Condition operator names: `[ForAnyValue:|ForAllValues:]<Base>[IfExists]`.
//!
//! IAM user guide, "IAM JSON policy elements: Condition operators"
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>):
//! `IfExists` may follow any operator except `Null`. The date and binary operators exist in IAM
//! but no key VPC Lattice provides is a date or binary value, so they are refused here.

use crate::policy::error::did_you_mean;

/// The kind of value an operator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    String,
    Numeric,
    Arn,
    Bool,
    Ip,
    Null,
}

/// An operator without its set qualifier and `IfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Bool,
    IpAddress,
    NotIpAddress,
    Null,
}

pub(crate) const BASES: [(&str, Base); 20] = [
    ("StringEquals", Base::StringEquals),
    ("StringNotEquals", Base::StringNotEquals),
    ("StringEqualsIgnoreCase", Base::StringEqualsIgnoreCase),
    ("StringNotEqualsIgnoreCase", Base::StringNotEqualsIgnoreCase),
    ("StringLike", Base::StringLike),
    ("StringNotLike", Base::StringNotLike),
    ("NumericEquals", Base::NumericEquals),
    ("NumericNotEquals", Base::NumericNotEquals),
    ("NumericLessThan", Base::NumericLessThan),
    ("NumericLessThanEquals", Base::NumericLessThanEquals),
    ("NumericGreaterThan", Base::NumericGreaterThan),
    ("NumericGreaterThanEquals", Base::NumericGreaterThanEquals),
    ("ArnEquals", Base::ArnEquals),
    ("ArnLike", Base::ArnLike),
    ("ArnNotEquals", Base::ArnNotEquals),
    ("ArnNotLike", Base::ArnNotLike),
    ("Bool", Base::Bool),
    ("IpAddress", Base::IpAddress),
    ("NotIpAddress", Base::NotIpAddress),
    ("Null", Base::Null),
];

const UNSUPPORTED: [&str; 7] = [
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "BinaryEquals",
];

impl Base {
    pub(crate) fn family(self) -> Family {
        use Base::*;
        match self {
            StringEquals
            | StringNotEquals
            | StringEqualsIgnoreCase
            | StringNotEqualsIgnoreCase
            | StringLike
            | StringNotLike => Family::String,
            NumericEquals
            | NumericNotEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => Family::Numeric,
            ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => Family::Arn,
            Bool => Family::Bool,
            IpAddress | NotIpAddress => Family::Ip,
            Null => Family::Null,
        }
    }

    /// The "not" operators: true when no policy value matches (and when the key is absent).
    pub(crate) fn negated(self) -> bool {
        use Base::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | NumericNotEquals
                | ArnNotEquals
                | ArnNotLike
                | NotIpAddress
        )
    }
}

/// How a condition treats a key with several values (IAM user guide, "Set operators for
/// multivalued context keys",
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qualifier {
    /// No prefix.
    Single,
    /// `ForAnyValue:` — at least one request value matches; false when the key is absent.
    ForAnyValue,
    /// `ForAllValues:` — every request value matches; true when the key is absent.
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operator {
    pub(crate) base: Base,
    pub(crate) qualifier: Qualifier,
    pub(crate) if_exists: bool,
}

/// Why an operator name was refused: a message and perhaps a hint.
pub(crate) type Refusal = (String, Option<String>);

pub(crate) fn parse(name: &str) -> Result<Operator, Refusal> {
    let (qualifier, prefix, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
        (Qualifier::ForAnyValue, "ForAnyValue:", rest)
    } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
        (Qualifier::ForAllValues, "ForAllValues:", rest)
    } else if let Some((set, _)) = name.split_once(':') {
        return Err((
            format!("unknown set operator {set:?} in {name:?}"),
            did_you_mean(set, &["ForAnyValue", "ForAllValues"]),
        ));
    } else {
        (Qualifier::Single, "", name)
    };
    let (base_name, if_exists) = match rest.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (rest, false),
    };
    let Some(base) = BASES
        .iter()
        .find(|(known, _)| *known == base_name)
        .map(|(_, base)| *base)
    else {
        if UNSUPPORTED.contains(&base_name) {
            return Err((
                format!(
                    "{name:?} is not supported: no condition key VPC Lattice provides is a date or binary value"
                ),
                None,
            ));
        }
        let candidates: Vec<String> = BASES
            .iter()
            .flat_map(|(known, _)| [known.to_string(), format!("{known}IfExists")])
            .collect();
        let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
        let hint = crate::policy::error::closest(rest, &candidates)
            .map(|c| format!("did you mean {:?}?", format!("{prefix}{c}")));
        return Err((format!("unknown condition operator {name:?}"), hint));
    };
    if base == Base::Null && if_exists {
        return Err((
            "NullIfExists is not an operator: Null itself tests whether the key exists".into(),
            Some("did you mean \"Null\"?".into()),
        ));
    }
    if base == Base::Null && qualifier != Qualifier::Single {
        return Err((
            format!("{name:?}: Null cannot take a set operator"),
            Some("did you mean \"Null\"?".into()),
        ));
    }
    Ok(Operator {
        base,
        qualifier,
        if_exists,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_qualifiers_and_if_exists() {
        let op = parse("ForAllValues:StringNotLikeIfExists").unwrap();
        assert_eq!(op.base, Base::StringNotLike);
        assert_eq!(op.qualifier, Qualifier::ForAllValues);
        assert!(op.if_exists);
        assert!(op.base.negated());
        for (name, base) in BASES {
            let op = parse(name).unwrap();
            assert_eq!(
                (op.base, op.qualifier, op.if_exists),
                (base, Qualifier::Single, false)
            );
        }
        assert_eq!(parse("Null").unwrap().base, Base::Null);
    }

    #[test]
    fn unknown_names_get_the_closest_as_a_hint() {
        let cases = [
            ("StringEqual", Some("did you mean \"StringEquals\"?")),
            ("stringequals", Some("did you mean \"StringEquals\"?")),
            (
                "StringEqualsIfexists",
                Some("did you mean \"StringEqualsIfExists\"?"),
            ),
            (
                "ForAnyValue:StringLikee",
                Some("did you mean \"ForAnyValue:StringLike\"?"),
            ),
            (
                "ForAnyValues:StringLike",
                Some("did you mean \"ForAnyValue\"?"),
            ),
            ("NullIfExists", Some("did you mean \"Null\"?")),
            ("ForAnyValue:Null", Some("did you mean \"Null\"?")),
            ("DateGreaterThan", None),
            ("Frobnicate", None),
        ];
        for (name, hint) in cases {
            let (_, got) = parse(name).unwrap_err();
            assert_eq!(got.as_deref(), hint, "{name}");
        }
    }
}
