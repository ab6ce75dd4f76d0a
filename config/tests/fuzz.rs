//! Property-based fuzzing of the config parser, run as a test for a bounded number of cases:
//! random text, random edits of the real example files, and YAML built from the file format's
//! own tokens. Whatever the input, `parse_str` answers (a config or problems with positions),
//! never panics, and answers the same twice.

use proptest::prelude::*;

const EXAMPLES: [&str; 3] = [
    include_str!("../../examples/walkthrough.yaml"),
    include_str!("../../examples/auth.yaml"),
    include_str!("../../examples/functions.yaml"),
];

/// Parses `text` and reduces the outcome to something comparable.
fn outcome(text: &str) -> Result<usize, String> {
    match trellis_config::parse_str(text, "fuzz.yaml") {
        Ok(config) => Ok(config.services.len()),
        Err(e) => Err(e.to_string()),
    }
}

/// One edit: delete, insert or replace a character at a position (taken modulo the length).
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = prop_oneof![
        Just(':'),
        Just('-'),
        Just(' '),
        Just('\n'),
        Just('{'),
        Just('}'),
        Just('['),
        Just(']'),
        Just('"'),
        Just('\''),
        Just('#'),
        Just('|'),
        Just('\t'),
        Just('0'),
        any::<char>(),
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        (any::<usize>(), c).prop_map(|(i, c)| Edit::Replace(i, c)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len().max(1);
        match *e {
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i % len);
            }
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Replace(i, c) if !chars.is_empty() => chars[i % len] = c,
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// Lines made of the format's keys and values, at random indentation. (No anchors or aliases:
/// their expansion has its own bounds and tests.)
fn token_yaml() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("services:"),
        Just("- name: svc"),
        Just("listeners:"),
        Just("- name: http"),
        Just("protocol: HTTP"),
        Just("port: 8080"),
        Just("defaultAction:"),
        Just("fixedResponse: {statusCode: 404}"),
        Just("forward: {targetGroups: [{targetGroupIdentifier: tg}]}"),
        Just("rules:"),
        Just(
            "- {name: r, priority: 1, match: {httpMatch: {pathMatch: {match: {prefix: /a}}}}, action: {fixedResponse: {statusCode: 200}}}"
        ),
        Just("targetGroups:"),
        Just("- {name: tg, type: INSTANCE, targets: [{id: 127.0.0.1}]}"),
        Just("authType: AWS_IAM"),
        Just(
            "authPolicy: {Statement: [{Effect: Allow, Principal: '*', Action: '*', Resource: '*'}]}"
        ),
        Just("authPolicy: '{\"Statement\": [}'"),
        Just("identities:"),
        Just("- {arn: 'arn:aws:iam::123456789012:user/u', accessKeyId: K, secretAccessKey: S}"),
        Just("serviceNetworks:"),
        Just("- {name: net, services: [svc], vpcs: [v]}"),
        Just("vpcs:"),
        Just("- {name: v, cidrs: [10.0.0.0/8]}"),
        Just("functions:"),
        Just("- {name: f, runtime: wasm, code: x.wasm}"),
        Just("region: us-west-2"),
        Just("customDomainName: a.example.com"),
        Just(""),
        Just("~"),
        Just("[]"),
        Just("{}"),
    ];
    proptest::collection::vec((0usize..4, token), 0..30).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(indent, t)| format!("{}{t}\n", "  ".repeat(indent)))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn random_text_gets_an_answer(text in "\\PC{0,300}") {
        prop_assert_eq!(outcome(&text), outcome(&text));
    }

    #[test]
    fn edited_examples_get_an_answer(which in 0usize..3, edits in proptest::collection::vec(edit(), 1..6)) {
        let text = apply(EXAMPLES[which], &edits);
        let first = outcome(&text);
        if let Err(report) = &first {
            // Every problem is placed in the file.
            prop_assert!(report.contains("fuzz.yaml"), "{report}");
        }
        prop_assert_eq!(first, outcome(&text));
    }

    #[test]
    fn yaml_of_the_formats_own_tokens_gets_an_answer(text in token_yaml()) {
        prop_assert_eq!(outcome(&text), outcome(&text));
    }
}

#[test]
fn the_examples_themselves_are_valid() {
    for text in EXAMPLES {
        assert!(outcome(text).is_ok(), "{:?}", outcome(text));
    }
}
