//! Hostile input: deep nesting, huge lists, odd types everywhere, random policies and random
//! edits of valid ones. Nothing may panic; whatever validates must evaluate and echo itself.

use serde_json::{Map, Value, json};

use super::*;
use crate::policy::{ErrorKind, MAX_POLICY_BYTES};
use crate::test_rng::Rng;

const NAMES: &[&str] = &[
    "Version",
    "Id",
    "Statement",
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "AWS",
    "Service",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "StringEquals",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "ForAnyValue:StringEquals",
    "ForAllValues:StringNotLike",
    "StringEqualsIfExists",
    "NumericLessThan",
    "ArnLike",
    "ArnNotEquals",
    "Bool",
    "IpAddress",
    "NotIpAddress",
    "Null",
    "NullIfExists",
    "DateEquals",
    "vpc-lattice-svcs:Port",
    "vpc-lattice-svcs:RequestPath",
    "vpc-lattice-svcs:RequestHeader/x-a",
    "vpc-lattice-svcs:RequestQueryString/id",
    "aws:PrincipalType",
    "aws:SourceIp",
    "aws:PrincipalArn",
    "aws:PrincipalTag/team",
    "aws:ResourceTag/env",
    "aws:username",
    "vpc-lattice-svcs:ServiceNetworkArn",
    "",
    "é",
    "Statement\u{0}",
];

const STRINGS: &[&str] = &[
    "*",
    "Allow",
    "Deny",
    "2012-10-17",
    "2008-10-17",
    "vpc-lattice-svcs:Invoke",
    "vpc-lattice-svcs:*",
    "vpc-lattice-svcs:Connect",
    "*/admin*",
    "123456789012",
    "arn:aws:iam::123456789012:user/alice",
    "arn:aws:iam::123456789012:role/ordering",
    "arn:aws:iam::123456789012:root",
    "arn:aws:iam::*:role/*",
    "arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0123456789abcdef0/*",
    "arn:aws:vpc-lattice:*:*:*:*",
    "arn:",
    "arn:::::",
    "10.0.0.0/8",
    "2001:db8::/32",
    "::ffff:10.0.0.1",
    "true",
    "false",
    "443",
    "-1e308",
    "1e999",
    "GET",
    "/api/*",
    "anonymous",
    "${aws:username}",
    "${*}",
    "${",
    "?",
    "é?*",
    "",
    "\u{0}",
    "%41",
    "a\u{301}",
];

/// A random value shaped like a policy fragment, `depth` levels deep at most.
fn value(rng: &mut Rng, depth: usize) -> Value {
    let choice = if depth == 0 {
        rng.below(5)
    } else {
        rng.below(8)
    };
    match choice {
        0 | 1 => Value::from(rng.pick(STRINGS)),
        2 => json!(rng.below(70_000)),
        3 => [
            Value::Bool(true),
            Value::Bool(false),
            Value::Null,
            json!(-1.5),
        ][rng.below(4)]
        .clone(),
        4 => Value::Array(
            (0..rng.below(3))
                .map(|_| Value::from(rng.pick(STRINGS)))
                .collect(),
        ),
        5 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth - 1)).collect()),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                map.insert(rng.pick(NAMES).to_string(), value(rng, depth - 1));
            }
            Value::Object(map)
        }
    }
}

/// A random policy: mostly well-formed statements with a random field or value here and there,
/// so that a fair share validates and gets evaluated.
fn policy_value(rng: &mut Rng) -> Value {
    let mut statements = Vec::new();
    for _ in 0..1 + rng.below(2) {
        let mut s = Map::new();
        s.insert(
            "Effect".into(),
            Value::from(if rng.below(3) == 0 { "Deny" } else { "Allow" }),
        );
        let principal = match rng.below(10) {
            0 => json!({"AWS": rng.pick(STRINGS)}),
            1 => value(rng, 2),
            2..=5 => json!({"AWS": ["123456789012", "arn:aws:iam::123456789012:role/ordering"]}),
            _ => json!("*"),
        };
        s.insert(
            if rng.below(6) == 0 {
                "NotPrincipal"
            } else {
                "Principal"
            }
            .into(),
            principal,
        );
        s.insert(
            if rng.below(6) == 0 {
                "NotAction"
            } else {
                "Action"
            }
            .into(),
            if rng.below(10) == 0 {
                value(rng, 1)
            } else {
                json!("vpc-lattice-svcs:*")
            },
        );
        s.insert(
            if rng.below(6) == 0 {
                "NotResource"
            } else {
                "Resource"
            }
            .into(),
            if rng.below(10) == 0 {
                value(rng, 1)
            } else {
                Value::from(rng.pick(&["*", "*/admin*", "*/api/?"]))
            },
        );
        if rng.below(3) == 0 {
            let mut operators = Map::new();
            for _ in 0..1 + rng.below(2) {
                let mut keys = Map::new();
                for _ in 0..1 + rng.below(2) {
                    let values = if rng.below(4) == 0 {
                        value(rng, 1)
                    } else {
                        Value::from(rng.pick(STRINGS))
                    };
                    keys.insert(rng.pick(&NAMES[29..41]).to_string(), values);
                }
                operators.insert(rng.pick(&NAMES[14..29]).to_string(), Value::Object(keys));
            }
            s.insert("Condition".into(), Value::Object(operators));
        }
        if rng.below(12) == 0 {
            s.insert(rng.pick(NAMES).into(), value(rng, 2));
        }
        statements.push(Value::Object(s));
    }
    let mut top = Map::new();
    if rng.below(2) == 0 {
        top.insert("Version".into(), json!("2012-10-17"));
    }
    top.insert("Statement".into(), Value::Array(statements));
    if rng.below(10) == 0 {
        top.insert(rng.pick(NAMES).into(), value(rng, 3));
    }
    Value::Object(top)
}

fn requests() -> Vec<Req> {
    vec![
        req(),
        req()
            .by(alice())
            .path("/admin/x")
            .query("id=1&id=%32")
            .header("x-a", "1"),
        req().by(checkout()).grpc("/p.S/M").ip("2001:db8::1"),
        req()
            .by(root())
            .action("vpc-lattice-svcs:Connect")
            .no_network()
            .vpc(None)
            .tag("env", "prod"),
    ]
}

/// Checks what must hold for any input: no panic (by getting here), and a valid policy
/// evaluates and echoes a policy that validates to the same echo.
fn exercise(text: &str, requests: &[Req]) -> bool {
    let Ok(policy) = Policy::parse(text) else {
        return false;
    };
    for request in requests {
        request.with(|r| policy.evaluate(r));
    }
    let echo = policy.normalised();
    match Policy::parse(&echo) {
        Ok(again) => assert_eq!(again.normalised(), echo, "{text}"),
        Err(errors) => panic!("the echo of {text} does not validate: {echo}\n{errors:#?}"),
    }
    true
}

#[test]
fn random_policies_never_panic_and_valid_ones_round_trip() {
    let requests = requests();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut valid, total) = (0, 4000);
    for _ in 0..total {
        let value = policy_value(&mut rng);
        let text = value.to_string();
        let from_json = Policy::from_json(&value);
        let accepted = exercise(&text, &requests);
        assert_eq!(
            from_json.is_ok(),
            accepted,
            "from_json and parse disagree on {text}"
        );
        if let Err(errors) = from_json {
            assert!(!errors.is_empty());
        }
        valid += usize::from(accepted);
    }
    // The generator must reach evaluation often enough to mean something.
    assert!(
        valid > total / 10,
        "only {valid} of {total} random policies validated"
    );
    assert!(
        valid < total,
        "every random policy validated: the generator is too tame"
    );
}

#[test]
fn random_values_of_any_shape_never_panic() {
    let mut rng = Rng(0x0dd_5eed);
    for _ in 0..4000 {
        let value = value(&mut rng, 6);
        let _ = Policy::from_json(&value);
        let _ = Policy::parse(&value.to_string());
        // Identity policies go through the same validation, with no principal.
        let _ = Policy::from_json_as(crate::policy::Kind::Identity, &value);
        let _ = Policy::parse_as(crate::policy::Kind::Identity, &value.to_string());
    }
}

#[test]
fn random_edits_of_valid_text_never_panic() {
    let requests = requests();
    let seeds = [
        allow_if(
            r#"{"StringNotEqualsIgnoreCase":{"aws:PrincipalType":"anonymous"},"ForAllValues:StringLike":{"vpc-lattice-svcs:RequestQueryString/id":["1*","2?"]}}"#,
        ),
        allow_if(
            r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]},"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"},"Null":{"vpc-lattice-svcs:SourceVpc":"false"}}"#,
        ),
        statements(&format!(
            r#"{ALLOW_ALL},{{"Effect":"Deny","NotPrincipal":{{"AWS":["123456789012","arn:aws:iam::123456789012:user/alice"]}},"NotAction":"vpc-lattice-svcs:Connect","NotResource":"*/public*"}}"#
        )),
    ];
    let alphabet: Vec<char> = "{}[]\":,*?$/\\ 0aA-é\u{0}\n".chars().collect();
    let mut rng = Rng(0xed17_5eed);
    let mut valid = 0;
    for round in 0..6000 {
        let mut chars: Vec<char> = seeds[round % seeds.len()].chars().collect();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(chars.len() + 1);
            match rng.below(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 => chars.insert(at, alphabet[rng.below(alphabet.len())]),
                _ => {
                    let end = (at + rng.below(8)).min(chars.len());
                    let copy: Vec<char> = chars[at..end].to_vec();
                    chars.splice(at..at, copy);
                }
            }
        }
        let text: String = chars.into_iter().collect();
        valid += usize::from(exercise(&text, &requests));
    }
    assert!(valid > 0, "no edited policy validated");
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    // Text: within the size limit, far past serde_json's recursion limit.
    let depth = 5000;
    let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(text.len() <= MAX_POLICY_BYTES);
    assert_eq!(Policy::parse(&text).unwrap_err()[0].kind, ErrorKind::Syntax);
    let text = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{{"StringEquals":{{"aws:username":{}{}}}}}}}}}"#,
        "[".repeat(3000),
        "]".repeat(3000)
    );
    assert_eq!(Policy::parse(&text).unwrap_err()[0].kind, ErrorKind::Syntax);

    // A JSON value nested deeper than any parser would build, in every position. (Built
    // with `object`, not `json!`, whose conversion recurses through the value.)
    let deep = || {
        let mut v = json!("x");
        for _ in 0..2000 {
            v = Value::Array(vec![v]);
        }
        v
    };
    for field in [
        "Version",
        "Id",
        "Effect",
        "Sid",
        "Principal",
        "Action",
        "Resource",
        "Condition",
    ] {
        let mut statement: Map<String, Value> = serde_json::from_str(ALLOW_ALL).unwrap();
        statement.insert(field.into(), deep());
        let policy = object([
            ("Version", json!("2012-10-17")),
            ("Statement", Value::Array(vec![Value::Object(statement)])),
        ]);
        assert!(Policy::from_json(&policy).is_err(), "{field}");
    }
    assert!(Policy::from_json(&object([("Version", deep()), ("Statement", deep())])).is_err());
    let condition = object([
        ("StringEquals", object([("aws:username", deep())])),
        ("Null", deep()),
    ]);
    let statement = object([
        ("Effect", json!("Allow")),
        ("Principal", object([("AWS", deep())])),
        ("Action", json!("*")),
        ("Resource", json!("*")),
        ("Condition", condition),
    ]);
    assert!(Policy::from_json(&object([("Statement", statement)])).is_err());
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

#[test]
fn huge_lists_are_refused_by_size_quickly() {
    let actions: Vec<Value> = (0..200_000)
        .map(|_| json!("vpc-lattice-svcs:Invoke"))
        .collect();
    let policy = json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": actions, "Resource": "*"}});
    let start = std::time::Instant::now();
    assert_eq!(
        Policy::from_json(&policy).unwrap_err()[0].kind,
        ErrorKind::TooLarge
    );
    assert!(
        start.elapsed().as_millis() < 500,
        "took {:?}",
        start.elapsed()
    );
    let text = format!("[{}1]", "1,".repeat(100_000));
    assert_eq!(
        Policy::parse(&text).unwrap_err()[0].kind,
        ErrorKind::TooLarge
    );
}

#[test]
fn odd_types_everywhere_are_errors_not_panics() {
    let odd = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1.5),
        json!(""),
        json!([]),
        json!({}),
        json!([null]),
        json!([[]]),
        json!({"": ""}),
    ];
    for field in [
        "Version",
        "Id",
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    ] {
        for value in &odd {
            let mut statement: Map<String, Value> = serde_json::from_str(ALLOW_ALL).unwrap();
            statement.insert(field.into(), value.clone());
            let policy = json!({"Statement": [Value::Object(statement)]});
            let _ = Policy::from_json(&policy);
            let policy = json!({"Statement": [ALLOW_ALL], field: value});
            let _ = Policy::from_json(&policy);
        }
    }
    for value in &odd {
        let condition = json!({"StringEquals": {"aws:username": value}, "Null": {"aws:username": value}, "IpAddress": value});
        let policy = json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": value}, "Action": "*", "Resource": "*", "Condition": condition}});
        assert!(Policy::from_json(&policy).is_err(), "{value}");
        assert!(Policy::from_json(value).is_err());
    }
}

/// Not a unit test: the per-request cost of a 10-statement policy. Run it with
/// `cargo test -p trellis-auth --release -- --ignored --nocapture evaluation_speed`.
#[test]
#[ignore = "a measurement, meaningful in release builds only"]
fn evaluation_speed() {
    let mut list = vec![
        r#"{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*/admin*"}"#.to_string(),
        r#"{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]}}}"#.to_string(),
    ];
    for i in 0..7 {
        list.push(format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":["arn:aws:iam::123456789012:role/r{i}","210987654321"]}},"Action":"vpc-lattice-svcs:Invoke","Resource":"{SVC}/api/v{i}/*","Condition":{{"StringEquals":{{"vpc-lattice-svcs:RequestMethod":["GET","POST"]}},"StringLike":{{"vpc-lattice-svcs:RequestHeader/x-client":"app-*"}}}}}}"#
        ));
    }
    list.push(format!(
        r#"{{"Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke","Resource":"{SVC}/*","Condition":{{"StringNotEqualsIgnoreCase":{{"aws:PrincipalType":"anonymous"}},"ForAnyValue:StringEquals":{{"vpc-lattice-svcs:RequestQueryString/v":["1","2"]}}}}}}"#
    ));
    let p = policy(&statements(&list.join(",")));
    let request = req()
        .by(checkout())
        .path("/orders/42")
        .query("a=1&v=2")
        .header("x-client", "app-web");
    let rounds = 200_000u32;
    request.with(|r| {
        assert_eq!(p.evaluate(r), crate::policy::Decision::Allow);
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(p.evaluate(std::hint::black_box(r)));
        }
        println!(
            "10-statement policy: {:?} per evaluation",
            start.elapsed() / rounds
        );
    });
}
