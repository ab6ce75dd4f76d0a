//! Validation: each kind of error, where it points, its hint; the size limit; the normalised
//! echo.

use serde_json::json;

use super::*;
use crate::policy::{ErrorKind, MAX_POLICY_BYTES, PolicyError, Version};

/// The errors of an invalid policy text.
fn errors(text: &str) -> Vec<PolicyError> {
    match Policy::parse(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(errors) => errors,
    }
}

/// The single error of an invalid policy text.
fn error(text: &str) -> PolicyError {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "{text}\n{all:#?}");
    all.remove(0)
}

/// A policy whose one statement is `{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}`
/// with `field` added (or replacing one of those).
fn with_field(field: &str, value: &str) -> String {
    let mut statement: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(ALLOW_ALL).unwrap();
    statement.insert(field.into(), serde_json::from_str(value).unwrap());
    statements(&serde_json::Value::Object(statement).to_string())
}

#[test]
fn each_error_kind_has_its_path_and_hint() {
    // (policy text, kind, path, hint contains)
    let cases: Vec<(String, ErrorKind, &str, Option<&str>)> = vec![
        (
            format!(r#"{{"Version":"2012-10-17","Statment":[],"Statement":{ALLOW_ALL}}}"#),
            ErrorKind::UnknownField,
            "Statment",
            Some("did you mean \"Statement\"?"),
        ),
        (
            with_field("Acton", r#""*""#),
            ErrorKind::UnknownField,
            "Statement[0].Acton",
            Some("\"Action\""),
        ),
        (
            r#"{"Version":"2012-10-17"}"#.into(),
            ErrorKind::MissingField,
            "policy",
            None,
        ),
        (
            statements(r#"{"Principal":"*","Action":"*","Resource":"*"}"#),
            ErrorKind::MissingField,
            "Statement[0]",
            None,
        ),
        (
            statements(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#),
            ErrorKind::MissingField,
            "Statement[0]",
            None,
        ),
        (
            r#"{"Version":"2012-10-17","Statement":5}"#.into(),
            ErrorKind::WrongType,
            "Statement",
            None,
        ),
        (
            with_field("Action", "[1]"),
            ErrorKind::WrongType,
            "Statement[0].Action[0]",
            None,
        ),
        (
            with_field("Sid", "7"),
            ErrorKind::WrongType,
            "Statement[0].Sid",
            None,
        ),
        (
            with_field("Condition", r#""x""#),
            ErrorKind::WrongType,
            "Statement[0].Condition",
            None,
        ),
        (
            with_field(
                "Condition",
                r#"{"StringEquals":{"aws:PrincipalType":[{"a":1}]}}"#,
            ),
            ErrorKind::WrongType,
            "Statement[0].Condition.StringEquals.aws:PrincipalType[0]",
            None,
        ),
        (
            with_field("NotAction", r#""*""#),
            ErrorKind::Conflict,
            "Statement[0].NotAction",
            None,
        ),
        (
            statements(
                r#"{"Effect":"Allow","NotPrincipal":{"AWS":"123456789012"},"Action":"*","Resource":"*"}"#,
            ),
            ErrorKind::Conflict,
            "Statement[0].NotPrincipal",
            Some("NotPrincipal with Deny"),
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[]}"#.into(),
            ErrorKind::Empty,
            "Statement",
            None,
        ),
        (
            with_field("Resource", "[]"),
            ErrorKind::Empty,
            "Statement[0].Resource",
            None,
        ),
        (
            with_field("Principal", r#"{"AWS":[]}"#),
            ErrorKind::Empty,
            "Statement[0].Principal.AWS",
            None,
        ),
        (
            format!(r#"{{"Version":"2012-10-18","Statement":{ALLOW_ALL}}}"#),
            ErrorKind::BadVersion,
            "Version",
            Some("2012-10-17"),
        ),
        (
            with_field("Effect", r#""allow""#),
            ErrorKind::BadEffect,
            "Statement[0].Effect",
            Some("write \"Allow\""),
        ),
        (
            with_field("Effect", r#""Permit""#),
            ErrorKind::BadEffect,
            "Statement[0].Effect",
            Some("\"Allow\" or \"Deny\""),
        ),
        (
            with_field(
                "Principal",
                r#"{"AWS":"arn:aws:iam::123456789012:role/app-*"}"#,
            ),
            ErrorKind::BadPrincipal,
            "Statement[0].Principal.AWS",
            Some("aws:PrincipalArn"),
        ),
        (
            with_field(
                "Principal",
                r#"{"AWS":["123456789012","arn:aws:iam::123456789012:group/devs"]}"#,
            ),
            ErrorKind::BadPrincipal,
            "Statement[0].Principal.AWS[1]",
            None,
        ),
        (
            with_field("Principal", r#"{"Service":"lambda.amazonaws.com"}"#),
            ErrorKind::BadPrincipal,
            "Statement[0].Principal.Service",
            Some("under \"AWS\""),
        ),
        (
            with_field("Principal", r#""arn:aws:iam::123456789012:root""#),
            ErrorKind::BadPrincipal,
            "Statement[0].Principal",
            Some("{\"AWS\""),
        ),
        (
            with_field("Action", r#""s3:GetObject""#),
            ErrorKind::BadAction,
            "Statement[0].Action",
            Some("vpc-lattice-svcs:Invoke"),
        ),
        (
            with_field(
                "Action",
                r#"["vpc-lattice-svcs:Invoke","vpc-lattice-svcs:Invok"]"#,
            ),
            ErrorKind::BadAction,
            "Statement[0].Action[1]",
            Some("did you mean \"vpc-lattice-svcs:Invoke\"?"),
        ),
        (
            with_field("Action", r#""vpc-lattice:Invoke""#),
            ErrorKind::BadAction,
            "Statement[0].Action",
            Some("did you mean \"vpc-lattice-svcs:Invoke\"?"),
        ),
        (
            with_field("Resource", r#""svc-123/admin""#),
            ErrorKind::BadResource,
            "Statement[0].Resource",
            Some("*/admin*"),
        ),
        (
            with_field("Resource", r#""arn:aws:s3:::bucket/x""#),
            ErrorKind::BadResource,
            "Statement[0].Resource",
            None,
        ),
        (
            with_field("Resource", r#""arn:aws:vpc-lattice""#),
            ErrorKind::BadResource,
            "Statement[0].Resource",
            None,
        ),
        (
            with_field(
                "Condition",
                r#"{"StringEqual":{"aws:PrincipalType":"User"}}"#,
            ),
            ErrorKind::UnknownOperator,
            "Statement[0].Condition.StringEqual",
            Some("did you mean \"StringEquals\"?"),
        ),
        (
            with_field("Condition", r#"{"DateLessThan":{"aws:PrincipalType":"x"}}"#),
            ErrorKind::UnknownOperator,
            "Statement[0].Condition.DateLessThan",
            None,
        ),
        (
            with_field(
                "Condition",
                r#"{"StringEquals":{"aws:principaltype":"User"}}"#,
            ),
            ErrorKind::UnknownConditionKey,
            "Statement[0].Condition.StringEquals.aws:principaltype",
            Some("\"aws:PrincipalType\""),
        ),
        (
            with_field(
                "Condition",
                r#"{"StringEquals":{"vpc-lattice-svcs:RequestHeaders/x":"1"}}"#,
            ),
            ErrorKind::UnknownConditionKey,
            "Statement[0].Condition.StringEquals.vpc-lattice-svcs:RequestHeaders/x",
            Some("vpc-lattice-svcs:RequestHeader/x"),
        ),
        (
            with_field(
                "Condition",
                r#"{"IpAddress":{"aws:PrincipalArn":"10.0.0.0/8"}}"#,
            ),
            ErrorKind::TypeMismatch,
            "Statement[0].Condition.IpAddress.aws:PrincipalArn",
            Some("ArnLike"),
        ),
        (
            with_field(
                "Condition",
                r#"{"StringEquals":{"aws:SourceIp":"10.0.0.1"}}"#,
            ),
            ErrorKind::TypeMismatch,
            "Statement[0].Condition.StringEquals.aws:SourceIp",
            Some("IpAddress"),
        ),
        (
            with_field(
                "Condition",
                r#"{"NumericEquals":{"vpc-lattice-svcs:Port":["443","https"]}}"#,
            ),
            ErrorKind::BadConditionValue,
            "Statement[0].Condition.NumericEquals.vpc-lattice-svcs:Port[1]",
            None,
        ),
        (
            with_field(
                "Condition",
                r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}"#,
            ),
            ErrorKind::BadConditionValue,
            "Statement[0].Condition.IpAddress.aws:SourceIp",
            Some("203.0.113.0/24"),
        ),
        (
            with_field(
                "Condition",
                r#"{"Bool":{"vpc-lattice-svcs:RequestHeader/x":"yes"}}"#,
            ),
            ErrorKind::BadConditionValue,
            "Statement[0].Condition.Bool.vpc-lattice-svcs:RequestHeader/x",
            Some("true or false"),
        ),
        (
            with_field("Condition", r#"{"ArnLike":{"aws:PrincipalArn":"*"}}"#),
            ErrorKind::BadConditionValue,
            "Statement[0].Condition.ArnLike.aws:PrincipalArn",
            Some("six parts"),
        ),
        (
            with_field("Condition", r#"{"Null":{"aws:PrincipalArn":"maybe"}}"#),
            ErrorKind::BadConditionValue,
            "Statement[0].Condition.Null.aws:PrincipalArn",
            None,
        ),
        (
            statements(&format!(r#"{},{}"#, with_sid("A"), with_sid("A"))),
            ErrorKind::DuplicateSid,
            "Statement[1].Sid",
            None,
        ),
        (
            with_field(
                "Resource",
                r#""arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-1/${aws:username}/*""#,
            ),
            ErrorKind::PolicyVariable,
            "Statement[0].Resource",
            Some("${*}"),
        ),
        (
            with_field(
                "Condition",
                r#"{"StringEquals":{"aws:PrincipalTag/team":"${aws:PrincipalTag/other}"}}"#,
            ),
            ErrorKind::PolicyVariable,
            "Statement[0].Condition.StringEquals.aws:PrincipalTag/team",
            None,
        ),
    ];
    for (text, kind, path, hint) in cases {
        let e = error(&text);
        assert_eq!(
            (e.kind, e.path_string().as_str()),
            (kind, path),
            "{text}\n{e:#?}"
        );
        if let Some(hint) = hint {
            let got = e.hint.as_deref().unwrap_or_default();
            assert!(got.contains(hint), "{text}: hint {got:?} lacks {hint:?}");
        }
        // Every validation error of a text policy knows where it is.
        assert!(e.at.is_some(), "{text}: no position for {e:?}");
    }
}

fn with_sid(sid: &str) -> String {
    format!(r#"{{"Sid":"{sid}","Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#)
}

#[test]
fn all_problems_are_collected() {
    let text = statements(
        r#"{"Effect":"Alow","Principal":"*","Action":"s3:Get","Resource":"*","Condition":{"StringEqual":{"x":"1"},"StringEquals":{"aws:Nope":"1"}}},{"Effect":"Deny"}"#,
    );
    let all = errors(&text);
    let paths: Vec<String> = all.iter().map(PolicyError::path_string).collect();
    for expected in [
        "Statement[0].Effect",
        "Statement[0].Action",
        "Statement[0].Condition.StringEqual",
        "Statement[0].Condition.StringEquals.aws:Nope",
        "Statement[1]",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} missing from {paths:?}"
        );
    }
    // Statement[1] lacks Principal, Action and Resource: three errors.
    assert_eq!(
        paths.iter().filter(|p| *p == "Statement[1]").count(),
        3,
        "{paths:?}"
    );
}

#[test]
fn syntax_errors_have_line_and_column() {
    let e = error("{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [}\n");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.at, Some((3, 17)));
    assert!(!e.message.contains("at line"), "{}", e.message);
    let e = error("");
    assert_eq!((e.kind, e.at), (ErrorKind::Syntax, Some((1, 1))));
    let e = error(r#"{"Statement":[{"Effect":"Allow","Effect":"Deny"}]}"#);
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert!(
        e.message.contains("duplicate key \"Effect\""),
        "{}",
        e.message
    );
    assert_eq!(e.at.map(|(line, _)| line), Some(1));
    let e = error(&format!("{} trailing", statements(ALLOW_ALL)));
    assert_eq!(e.kind, ErrorKind::Syntax);
}

#[test]
fn validation_errors_in_text_point_at_the_value() {
    let text = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": {\n    \"Effect\": \"allow\",\n    \"Principal\": \"*\", \"Action\": \"*\", \"Resource\": \"*\"\n  }\n}";
    let e = error(text);
    assert_eq!(e.path_string(), "Statement.Effect");
    assert_eq!(e.at, Some((4, 15)));
    assert_eq!(
        e.to_string(),
        "Statement.Effect (line 4, column 15): \"allow\" is not an effect; write \"Allow\" (Effect is case-sensitive)"
    );
}

#[test]
fn from_json_reports_paths_without_positions() {
    let value =
        json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": 5}]});
    let errors = Policy::from_json(&value).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path_string(), "Statement[0].Resource");
    assert_eq!(errors[0].at, None);
    assert_eq!(
        Policy::from_json(&json!([1])).unwrap_err()[0].kind,
        ErrorKind::WrongType
    );
}

#[test]
fn policies_over_10_kb_are_refused() {
    // Pad with Sids until the text is exactly at the limit, then one byte over.
    let base = statements(ALLOW_ALL);
    let pad = MAX_POLICY_BYTES - base.len() - r#","Id":"""#.len();
    let at_limit = format!(
        r#"{{"Version":"2012-10-17","Id":"{}","Statement":[{ALLOW_ALL}]}}"#,
        "x".repeat(pad)
    );
    assert_eq!(at_limit.len(), MAX_POLICY_BYTES);
    assert!(Policy::parse(&at_limit).is_ok());
    let over = at_limit.replacen("\"x", "\"xx", 1);
    let e = error(&over);
    assert_eq!(e.kind, ErrorKind::TooLarge);
    assert!(e.message.contains("10241 bytes"), "{}", e.message);
    // The same document as JSON: measured compact.
    let value: serde_json::Value = serde_json::from_str(&over).unwrap();
    assert_eq!(
        Policy::from_json(&value).unwrap_err()[0].kind,
        ErrorKind::TooLarge
    );
    let value: serde_json::Value = serde_json::from_str(&at_limit).unwrap();
    assert!(Policy::from_json(&value).is_ok());
    // Whitespace counts in text, as it is what Lattice receives.
    let padded = format!("{base}{}", " ".repeat(MAX_POLICY_BYTES));
    assert_eq!(error(&padded).kind, ErrorKind::TooLarge);
}

#[test]
fn normalised_is_compact_with_statement_list_and_version() {
    let text = r#"{
        "Statement": {
            "Resource": "*",
            "Condition": {"StringNotEqualsIgnoreCase": {"aws:PrincipalType": "anonymous"}},
            "Action": "vpc-lattice-svcs:Invoke",
            "Principal": "*",
            "Effect": "Allow",
            "Sid": "signed"
        }
    }"#;
    let p = policy(text);
    assert_eq!(p.version(), Version::V2008);
    let expected = r#"{"Version":"2008-10-17","Statement":[{"Sid":"signed","Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke","Resource":"*","Condition":{"StringNotEqualsIgnoreCase":{"aws:PrincipalType":"anonymous"}}}]}"#;
    assert_eq!(p.normalised(), expected);
    // The echo is itself a valid policy that echoes the same.
    assert_eq!(policy(&p.normalised()).normalised(), expected);

    let p = policy(
        r#"{"Id":"p1","Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":["123456789012"]},"NotAction":["vpc-lattice-svcs:Connect"],"NotResource":"*/public*"}]}"#,
    );
    assert_eq!(
        p.normalised(),
        r#"{"Version":"2012-10-17","Id":"p1","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":["123456789012"]},"NotAction":["vpc-lattice-svcs:Connect"],"NotResource":"*/public*"}]}"#
    );
}

#[test]
fn identity_policies_name_no_principal() {
    use crate::policy::Kind;
    // What an identity's policy looks like: no Principal, the rest as in an auth policy.
    let ok = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"vpc-lattice-svcs:Invoke","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*/admin*"}]}"#;
    assert!(Policy::parse_as(Kind::Identity, ok).is_ok());
    // The same text is no auth policy: each statement there needs its principal.
    assert!(Policy::parse(ok).is_err());
    for (field, value) in [
        ("Principal", r#""*""#),
        ("NotPrincipal", r#"{"AWS":"123456789012"}"#),
    ] {
        let text = with_field(field, value);
        let text = if field == "NotPrincipal" {
            text.replace(r#""Principal":"*","#, "")
        } else {
            text
        };
        let errors = Policy::parse_as(Kind::Identity, &text).unwrap_err();
        assert_eq!(errors.len(), 1, "{text}\n{errors:#?}");
        let e = &errors[0];
        assert_eq!(e.kind, ErrorKind::PrincipalInIdentityPolicy, "{text}");
        assert_eq!(e.path_string(), format!("Statement[0].{field}"));
        assert!(
            e.message.starts_with(&format!("{field} is not allowed: ")),
            "{e}"
        );
        assert!(
            e.hint.as_deref().unwrap_or_default().contains("authPolicy"),
            "{e}"
        );
        assert!(e.at.is_some(), "{e:?}");
    }
    // Both at once: both reported.
    let both = statements(
        r#"{"Effect":"Deny","Principal":"*","NotPrincipal":{"AWS":"123456789012"},"Action":"*","Resource":"*"}"#,
    );
    let errors = Policy::parse_as(Kind::Identity, &both).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    // The rest of the language is checked as for auth policies, and so is the size.
    let bad_action = statements(r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}"#);
    let errors = Policy::parse_as(Kind::Identity, &bad_action).unwrap_err();
    assert_eq!(errors[0].kind, ErrorKind::BadAction);
    let big = format!(
        r#"{{"Id":"{}","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*"}}]}}"#,
        "x".repeat(MAX_POLICY_BYTES)
    );
    assert_eq!(
        Policy::parse_as(Kind::Identity, &big).unwrap_err()[0].kind,
        ErrorKind::TooLarge
    );
    let value =
        json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}});
    let errors = Policy::from_json_as(Kind::Identity, &value).unwrap_err();
    assert_eq!(errors[0].path_string(), "Statement.Principal");
}
