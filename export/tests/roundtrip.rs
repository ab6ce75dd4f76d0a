//! Property test: generated configs — every section, every setting, hostile strings wherever
//! the schema takes free text — export to YAML that parses back to a config serving the same,
//! and exports to the same bytes again.

mod common;

use proptest::prelude::*;
use serde_json::{Value, json};

/// Free text: printable ASCII mixed with what YAML treats specially (quotes, `:`, `#`, `$`,
/// flow indicators, line breaks, controls, NEL/LS, a BOM, non-ASCII) and any character.
fn text(max: usize) -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => proptest::char::range(' ', '~'),
        2 => proptest::sample::select(vec![
            '"', '\'', '\\', ':', '#', '$', '{', '}', '[', ']', ',', '&', '*', '!', '|', '>',
            '-', '?', '%', '@', '`', ' ', '\n', '\t', '\r', '\u{1}', '\u{7f}', '\u{85}',
            '\u{a0}', '\u{2028}', '\u{feff}', 'é', '😀',
        ]),
        1 => any::<char>(),
    ];
    prop::collection::vec(c, 0..max).prop_map(|v| v.into_iter().collect())
}

/// Text of 1..=max bytes (the schema's lengths are in bytes).
fn nonempty(max: usize) -> impl Strategy<Value = String> {
    text(max).prop_map(move |mut s| {
        while s.len() > max {
            s.pop();
        }
        if s.is_empty() { "x".to_string() } else { s }
    })
}

/// A name by Lattice's rule, unique by its index.
fn lattice_name(kind: &str, i: usize) -> String {
    format!("{kind}{i}-x")
}

fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32)
            .prop_map(|(a, p)| format!("{}.{}.{}.{}/{p}", a[0], a[1], a[2], a[3])),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, p)| format!("{}/{p}", std::net::Ipv6Addr::from(a))),
        any::<[u8; 4]>().prop_map(|a| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])),
    ]
}

fn function(i: usize) -> impl Strategy<Value = Value> {
    (
        0..3usize,
        text(30),
        prop::collection::vec(text(12), 0..3),
        (1u32..=900, 128u32..=10240, 1u32..=20),
        prop::collection::btree_map(text(10), text(20), 0..3),
        (
            proptest::option::of(0u32..=20),
            proptest::option::of(1u32..=86_400),
        ),
        any::<bool>(),
    )
        .prop_map(
            move |(
                runtime,
                path,
                args,
                (timeout, memory, concurrency),
                env,
                (prov, idle),
                flags,
            )| {
                let mut f = json!({"name": format!("fn_{i}-X"), "timeout": timeout,
                "memorySize": memory, "concurrency": concurrency, "environment": env});
                match runtime {
                    0 => {
                        f["runtime"] = json!("wasm");
                        f["code"] = json!(format!("dir/{path}.wasm"));
                    }
                    1 => {
                        f["runtime"] = json!("process");
                        let mut command = vec![format!("bin/{path}")];
                        command.extend(args);
                        f["command"] = json!(command);
                    }
                    _ => {
                        f["runtime"] = json!("container");
                        if flags {
                            f["image"] = json!(format!("img{path}"));
                        } else {
                            f["build"] = json!(format!("ctx/{path}"));
                        }
                    }
                }
                if runtime != 0 {
                    if let Some(p) = prov {
                        f["provisioned"] = json!(p.min(concurrency));
                    }
                    if let Some(idle) = idle {
                        f["idleTimeout"] = json!(idle);
                    }
                }
                f
            },
        )
}

fn health_check() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(any::<bool>()),
        proptest::option::of(prop_oneof![Just("HTTP"), Just("HTTPS")]),
        proptest::option::of(prop_oneof![Just("HTTP1"), Just("HTTP2")]),
        proptest::option::of(0u32..=65535),
        proptest::option::of("/[a-z0-9/_.-]{0,10}"),
        (
            proptest::option::of(prop_oneof![Just(0u32), 5u32..=300]),
            proptest::option::of(prop_oneof![Just(0u32), 1u32..=120]),
            proptest::option::of(prop_oneof![Just(0u32), 2u32..=10]),
            proptest::option::of(prop_oneof![Just(0u32), 2u32..=10]),
        ),
        proptest::option::of(prop_oneof![
            Just("200".to_string()),
            Just("200-299".to_string()),
            Just("200,202, 300 - 399".to_string())
        ]),
    )
        .prop_map(
            |(enabled, protocol, version, port, path, (i, t, h, u), matcher)| {
                let mut hc = serde_json::Map::new();
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        hc.insert(k.to_string(), v);
                    }
                };
                put("enabled", enabled.map(Value::from));
                put("protocol", protocol.map(Value::from));
                put("protocolVersion", version.map(Value::from));
                put("port", port.map(Value::from));
                put("path", path.map(Value::from));
                put("healthCheckIntervalSeconds", i.map(Value::from));
                put("healthCheckTimeoutSeconds", t.map(Value::from));
                put("healthyThresholdCount", h.map(Value::from));
                put("unhealthyThresholdCount", u.map(Value::from));
                put("matcher", matcher.map(|m| json!({"httpCode": m})));
                Value::Object(hc)
            },
        )
}

/// A target group; a LAMBDA one names function `function` when there is one.
fn target_group(i: usize, function: Option<String>) -> impl Strategy<Value = Value> {
    (
        0..4usize,
        proptest::option::of((
            proptest::option::of(1u32..=65535),
            proptest::option::of(prop_oneof![Just("HTTP"), Just("HTTPS")]),
            proptest::option::of(prop_oneof![Just("HTTP1"), Just("HTTP2"), Just("GRPC")]),
            proptest::option::of(health_check()),
            proptest::option::of(prop_oneof![Just("V1"), Just("V2")]),
        )),
        prop::collection::vec(
            (
                prop_oneof![
                    any::<[u8; 4]>().prop_map(|a| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])),
                    "[a-z][a-z0-9_.-]{0,20}",
                ],
                proptest::option::of(1u32..=65535),
            ),
            0..4,
        ),
    )
        .prop_map(move |(kind, config, targets)| {
            let kind = ["INSTANCE", "IP", "LAMBDA", "ALB"][kind];
            let mut tg = json!({"name": lattice_name("tg", i), "type": kind});
            if kind == "LAMBDA" {
                if let Some((_, _, _, _, Some(v))) = config {
                    tg["config"] = json!({"lambdaEventStructureVersion": v});
                }
                if let Some(f) = &function {
                    tg["targets"] = json!([{"id": f}]);
                }
                return tg;
            }
            if let Some((port, protocol, version, hc, _)) = config {
                let mut c = serde_json::Map::new();
                if let Some(p) = port {
                    c.insert("port".into(), p.into());
                }
                if let Some(p) = protocol {
                    c.insert("protocol".into(), p.into());
                }
                if let Some(v) = version {
                    c.insert("protocolVersion".into(), v.into());
                }
                if let Some(hc) = hc {
                    c.insert("healthCheck".into(), hc);
                }
                tg["config"] = Value::Object(c);
            }
            let targets: Vec<Value> = targets
                .into_iter()
                .filter(|(id, _)| kind != "IP" || id.parse::<std::net::IpAddr>().is_ok())
                .map(|(id, port)| match port {
                    Some(p) => json!({"id": id, "port": p}),
                    None => json!({"id": id}),
                })
                .collect();
            tg["targets"] = json!(targets);
            tg
        })
}

fn http_match() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(prop_oneof![
            Just("GET".to_string()),
            "[A-Z!#$%&*+.^_|~]{1,16}".prop_filter("no wildcard", |m| !m.contains('*'))
        ]),
        proptest::option::of((
            any::<bool>(),
            "/[a-zA-Z0-9@:%_+.~#?&/=-]{0,30}",
            proptest::option::of(any::<bool>()),
        )),
        proptest::option::of(prop::collection::vec(
            (
                "[a-z0-9!#$%&'+.^_`|~-]{1,20}",
                0..3usize,
                nonempty(40),
                proptest::option::of(any::<bool>()),
            ),
            1..=5,
        )),
    )
        .prop_map(|(method, path, headers)| {
            let mut m = serde_json::Map::new();
            if let Some(method) = method {
                m.insert("method".into(), method.into());
            }
            if let Some((exact, value, cs)) = path {
                let kind = if exact { "exact" } else { "prefix" };
                let mut p = json!({"match": {kind: value}});
                if let Some(cs) = cs {
                    p["caseSensitive"] = cs.into();
                }
                m.insert("pathMatch".into(), p);
            }
            if let Some(headers) = headers {
                let list: Vec<Value> = headers
                    .into_iter()
                    .map(|(name, kind, value, cs)| {
                        let kind = ["exact", "prefix", "contains"][kind];
                        let mut h = json!({"name": name, "match": {kind: value}});
                        if let Some(cs) = cs {
                            h["caseSensitive"] = cs.into();
                        }
                        h
                    })
                    .collect();
                m.insert("headerMatches".into(), list.into());
            }
            json!({"httpMatch": m})
        })
}

/// An action forwarding to some of `tgs` (names), or a fixed response.
fn action(tgs: Vec<String>) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(
            (0..tgs.len().max(1), proptest::option::of(1u32..=999)),
            1..4,
        ),
        100u32..=599,
    )
        .prop_map(move |(picks, status)| {
            if tgs.is_empty() {
                return json!({"fixedResponse": {"statusCode": status}});
            }
            let mut seen = Vec::new();
            let groups: Vec<Value> = picks
                .into_iter()
                .filter(|(i, _)| {
                    let new = !seen.contains(i);
                    seen.push(*i);
                    new
                })
                .map(|(i, w)| match w {
                    Some(w) => json!({"targetGroupIdentifier": tgs[i], "weight": w}),
                    None => json!({"targetGroupIdentifier": tgs[i]}),
                })
                .collect();
            json!({"forward": {"targetGroups": groups}})
        })
}

const POLICIES: &[&str] = &[
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke","Resource":"*"}]}"#,
    r#"{"Statement":{"Sid":"s","Effect":"Deny","Principal":{"AWS":["arn:aws:iam::123456789012:root"]},"Action":["vpc-lattice-svcs:Invoke"],"Resource":"*/admin*","Condition":{"StringEquals":{"vpc-lattice-svcs:RequestMethod":"POST"},"IpAddress":{"aws:SourceIp":["10.0.0.0/8"]}}}}"#,
];

fn auth() -> impl Strategy<Value = (Option<&'static str>, Option<Value>)> {
    (
        proptest::option::of(prop_oneof![Just("NONE"), Just("AWS_IAM")]),
        proptest::option::of((0..POLICIES.len(), any::<bool>(), text(20))),
    )
        .prop_map(|(t, p)| {
            let policy = p.map(|(i, as_text, sid)| {
                let mut v: Value = serde_json::from_str(POLICIES[i]).unwrap();
                if let Some(list) = v["Statement"].as_array_mut() {
                    list[0]["Sid"] = Value::from(
                        sid.chars()
                            .filter(char::is_ascii_alphanumeric)
                            .collect::<String>()
                            + "x",
                    );
                }
                if as_text {
                    Value::from(v.to_string())
                } else {
                    v
                }
            });
            (t, policy)
        })
}

fn access_logs() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(prop::collection::vec(
        prop_oneof![
            Just("stdout".to_string()),
            nonempty(20).prop_map(|p| format!("file:{p}"))
        ],
        0..3,
    ))
    .prop_map(|l| {
        l.map(|l| {
            Value::from(
                l.into_iter()
                    .map(|d| json!({"destination": d}))
                    .collect::<Vec<_>>(),
            )
        })
    })
}

fn identity(i: usize) -> impl Strategy<Value = Value> {
    (
        0..3usize,
        text(20),
        any::<bool>(),
        proptest::option::of(text(10)),
        proptest::option::of("o-[a-z0-9]{10,32}"),
        prop::collection::btree_map(nonempty(10), text(10), 0..3),
        proptest::option::of((0..POLICIES.len(), any::<bool>())),
    )
        .prop_map(move |(kind, secret, from_env, token, org, tags, policy)| {
            let (arn, session) = match kind {
                0 => ("arn:aws:iam::123456789012:user/u".to_string(), None),
                1 => ("arn:aws:iam::123456789012:role/r".to_string(), Some("sess")),
                _ => ("arn:aws:iam::123456789012:root".to_string(), None),
            };
            let secret = if from_env {
                format!("a${{CARGO_PKG_NAME}}{}", secret.replace('$', "$$"))
            } else if secret.is_empty() {
                "s".to_string()
            } else {
                secret
            };
            let mut id = json!({"arn": arn, "accessKeyId": format!("AKIA{i}"),
                "secretAccessKey": secret});
            if let Some(s) = session {
                id["sessionName"] = s.into();
            }
            if let Some(t) = token {
                id["sessionToken"] = t.into();
            }
            if let Some(o) = org {
                id["principalOrgID"] = o.into();
            }
            // Tag keys differ by more than case.
            let tags: serde_json::Map<String, Value> = tags
                .into_iter()
                .enumerate()
                .map(|(j, (k, v))| (format!("{j}{k}"), Value::from(v)))
                .collect();
            if !tags.is_empty() {
                id["tags"] = Value::Object(tags);
            }
            if let Some((i, as_text)) = policy {
                id["policy"] = identity_policy(i, as_text);
            }
            id
        })
}

/// An auth policy of [`POLICIES`] made an identity policy (no `Principal`), as a mapping or as
/// JSON text.
fn identity_policy(i: usize, as_text: bool) -> Value {
    let mut v: Value = serde_json::from_str(POLICIES[i]).unwrap();
    match &mut v["Statement"] {
        Value::Array(list) => list.iter_mut().for_each(|st| {
            st.as_object_mut().map(|o| o.remove("Principal"));
        }),
        Value::Object(st) => {
            st.remove("Principal");
        }
        _ => {}
    }
    if as_text {
        Value::from(v.to_string())
    } else {
        v
    }
}

/// Service tags: keys that differ by more than case.
fn service_tags() -> impl Strategy<Value = Option<Value>> {
    prop::collection::btree_map(nonempty(10), text(10), 0..3).prop_map(|tags| {
        let tags: serde_json::Map<String, Value> = tags
            .into_iter()
            .enumerate()
            .map(|(j, (k, v))| (format!("{j}{k}"), Value::from(v)))
            .collect();
        (!tags.is_empty()).then_some(Value::Object(tags))
    })
}

/// A whole config as a JSON value (JSON is YAML, so it is also the file).
fn config() -> impl Strategy<Value = Value> {
    (0..3usize, 0..4usize, 0..5usize, 0..4usize, 0..3usize).prop_flat_map(
        |(n_vpcs, n_fns, n_tgs, n_svcs, n_nets)| {
            let vpcs = prop::collection::vec(prop::collection::vec(cidr(), 1..3), n_vpcs);
            let fns: Vec<_> = (0..n_fns).map(function).collect();
            let tgs: Vec<_> = (0..n_tgs)
                .map(|i| target_group(i, (n_fns > 0).then(|| format!("fn_{}-X", i % n_fns.max(1)))))
                .collect();
            // Target group i belongs to service i % n_svcs (a target group serves one service).
            let services: Vec<_> = (0..n_svcs)
                .map(|s| {
                    let owned: Vec<String> = (0..n_tgs)
                        .filter(|t| t % n_svcs == s)
                        .map(|t| lattice_name("tg", t))
                        .collect();
                    let listeners = prop::collection::vec(
                        (
                            any::<bool>(),
                            action(owned.clone()),
                            prop::collection::vec((http_match(), action(owned.clone())), 0..3),
                            proptest::option::of(1u32..=65535),
                        ),
                        1..3,
                    );
                    (
                        auth(),
                        proptest::option::of(60u32..=600),
                        access_logs(),
                        any::<bool>(),
                        listeners,
                        service_tags(),
                    )
                        .prop_map(move |((auth_type, policy), idle, logs, domain, listeners, tags)| {
                            let mut svc = json!({"name": lattice_name("svc", s)});
                            if let Some(t) = auth_type {
                                svc["authType"] = t.into();
                            }
                            if let Some(p) = policy {
                                svc["authPolicy"] = p;
                            }
                            if let Some(i) = idle {
                                svc["idleTimeoutSeconds"] = i.into();
                            }
                            if let Some(l) = logs {
                                svc["accessLogs"] = l;
                            }
                            if domain {
                                svc["customDomainName"] = format!("svc{s}.example.com").into();
                            }
                            if let Some(t) = tags {
                                svc["tags"] = t;
                            }
                            let listeners: Vec<Value> = listeners
                                .into_iter()
                                .enumerate()
                                .map(|(l, (https, default, rules, _))| {
                                    // The port decides the protocol, so services sharing a port
                                    // agree on it.
                                    let port = 8000 + 2 * l + usize::from(https);
                                    let protocol = if https { "HTTPS" } else { "HTTP" };
                                    let mut listener = json!({"name": lattice_name("l", l),
                                        "protocol": protocol, "port": port, "defaultAction": default});
                                    if https && l == 0 {
                                        listener["tls"] = json!({"certificate": "c.pem", "key": "k.pem"});
                                    }
                                    let rules: Vec<Value> = rules
                                        .into_iter()
                                        .enumerate()
                                        .map(|(r, (m, a))| json!({"name": lattice_name("r", r),
                                            "priority": 2000 - r * 7, "match": m, "action": a}))
                                        .collect();
                                    if !rules.is_empty() {
                                        listener["rules"] = rules.into();
                                    }
                                    listener
                                })
                                .collect();
                            svc["listeners"] = listeners.into();
                            svc
                        })
                })
                .collect();
            let nets = prop::collection::vec(
                (
                    prop::collection::vec(0..n_svcs.max(1), 0..3),
                    auth(),
                    access_logs(),
                ),
                n_nets,
            );
            let identities = proptest::option::of(prop::collection::vec(
                (0..3usize).prop_flat_map(identity),
                0..3,
            ));
            (
                prop_oneof![Just("us-east-1"), Just("eu-west-3")],
                proptest::option::of("[0-9]{12}"),
                vpcs,
                fns,
                tgs,
                services,
                nets,
                identities,
            )
                .prop_map(move |(region, account, vpcs, fns, tgs, services, nets, identities)| {
                    let mut c = json!({"region": region});
                    if let Some(a) = account {
                        c["accountId"] = a.into();
                    }
                    c["vpcs"] = vpcs
                        .into_iter()
                        .enumerate()
                        .map(|(i, cidrs)| json!({"name": lattice_name("v", i), "cidrs": cidrs}))
                        .collect::<Vec<_>>()
                        .into();
                    c["functions"] = fns.into();
                    c["targetGroups"] = tgs.into();
                    c["services"] = services.into();
                    let nets: Vec<Value> = nets
                        .into_iter()
                        .enumerate()
                        .map(|(n, (svcs, (t, p), logs))| {
                            let mut svcs: Vec<usize> = svcs.into_iter().filter(|&s| s < n_svcs).collect();
                            svcs.sort_unstable();
                            svcs.dedup();
                            let mut net = json!({"name": lattice_name("net", n),
                                "services": svcs.iter().map(|&s| lattice_name("svc", s)).collect::<Vec<_>>()});
                            // VPC i is associated with network i (a VPC joins one network).
                            if n < n_vpcs {
                                net["vpcs"] = json!([lattice_name("v", n)]);
                            }
                            if let Some(t) = t {
                                net["authType"] = t.into();
                            }
                            if let Some(p) = p {
                                net["authPolicy"] = p;
                            }
                            if let Some(l) = logs {
                                net["accessLogs"] = l;
                            }
                            net
                        })
                        .collect();
                    c["serviceNetworks"] = nets.into();
                    if let Some(ids) = identities {
                        // Access key ids must be unique: one identity per index.
                        let mut seen = std::collections::BTreeSet::new();
                        let ids: Vec<Value> = ids
                            .into_iter()
                            .filter(|id| seen.insert(id["accessKeyId"].to_string()))
                            .collect();
                        c["identities"] = ids.into();
                    }
                    c
                })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn generated_configs_round_trip(value in config()) {
        ensure_env();
        let text = serde_json::to_string_pretty(&value).unwrap();
        let config = match trellis_config::parse_str(&text, "generated.yaml") {
            Ok(c) => c,
            // The generator writes JSON; a character YAML cannot carry raw is no export's fault.
            Err(e) => {
                return Err(TestCaseError::reject(format!("generated config refused: {e}")));
            }
        };
        common::assert_round_trip(&config, &text);
    }
}

/// Secrets read from the environment use `CARGO_PKG_NAME`, which cargo sets for the tests it
/// runs (setting a variable in the test would need `unsafe`).
fn ensure_env() {
    assert_eq!(
        std::env::var("CARGO_PKG_NAME").as_deref(),
        Ok("trellis-export"),
        "run the test through cargo test"
    );
}
