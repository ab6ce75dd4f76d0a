//! The effective config as a Trellis config file.
//!
//! Every setting is written out, defaults included (a health check's interval, a function's
//! memory size, a weight of 100 …), so that the file serves the same even if a later Trellis
//! changed a default, and a reader sees what is in force. The only things left out are those
//! the config schema refuses for the object's kind (a LAMBDA target group's port and health
//! check, a wasm function's pool settings), whose values are then the fixed ones anyway.
//! Objects keep their order; references are by name.

use trellis_config::*;

use crate::emit::{self, Node, boolean, map, number, string};

/// The config as a Trellis YAML file (see the crate docs).
pub fn yaml(config: &Config) -> String {
    let mut top = vec![
        ("region".to_string(), string(&config.region)),
        ("accountId".to_string(), string(&config.account_id)),
    ];
    let mut section = |key: &str, items: Vec<Node>| {
        if !items.is_empty() {
            top.push((key.to_string(), Node::Seq(items)));
        }
    };
    section("vpcs", config.vpcs.iter().map(vpc).collect());
    section(
        "serviceNetworks",
        config
            .service_networks
            .iter()
            .map(|n| network(config, n))
            .collect(),
    );
    section(
        "services",
        config.services.iter().map(|s| service(config, s)).collect(),
    );
    section(
        "targetGroups",
        config.target_groups.iter().map(target_group).collect(),
    );
    section("functions", config.functions.iter().map(function).collect());
    if let Some(identities) = &config.identities {
        let items = identities
            .iter()
            .enumerate()
            .map(|(i, id)| identity(id, config.identity_env.get(i)))
            .collect();
        top.push(("identities".to_string(), Node::Seq(items)));
    }
    let header = "# Exported by `trellis export`: the effective Trellis config, every default written out.\n";
    format!("{header}{}", emit::document(&Node::Map(top)))
}

fn vpc(v: &Vpc) -> Node {
    map([
        ("name", string(&v.name)),
        (
            "cidrs",
            Node::Seq(v.cidrs.iter().map(|c| string(&c.to_string())).collect()),
        ),
    ])
}

fn network(config: &Config, n: &ServiceNetwork) -> Node {
    let mut out = vec![
        ("name".to_string(), string(&n.name)),
        ("authType".to_string(), auth_type(n.auth_type)),
    ];
    if let Some(policy) = &n.auth_policy {
        out.push(("authPolicy".to_string(), auth_policy(policy)));
    }
    let names = |list: Vec<&str>| Node::Seq(list.into_iter().map(string).collect());
    if !n.services.is_empty() {
        let list = n
            .services
            .iter()
            .filter_map(|&i| config.services.get(i))
            .map(|s| s.name.as_str())
            .collect();
        out.push(("services".to_string(), names(list)));
    }
    if !n.vpcs.is_empty() {
        let list = n
            .vpcs
            .iter()
            .filter_map(|&i| config.vpcs.get(i))
            .map(|v| v.name.as_str())
            .collect();
        out.push(("vpcs".to_string(), names(list)));
    }
    push_access_logs(&mut out, &n.access_logs);
    Node::Map(out)
}

fn service(config: &Config, s: &Service) -> Node {
    let mut out = vec![("name".to_string(), string(&s.name))];
    if let Some(domain) = &s.custom_domain_name {
        out.push(("customDomainName".to_string(), string(domain)));
    }
    out.push(("authType".to_string(), auth_type(s.auth_type)));
    if let Some(policy) = &s.auth_policy {
        out.push(("authPolicy".to_string(), auth_policy(policy)));
    }
    out.push((
        "idleTimeoutSeconds".to_string(),
        number(s.idle_timeout_seconds),
    ));
    push_access_logs(&mut out, &s.access_logs);
    push_tags(&mut out, &s.tags);
    out.push((
        "listeners".to_string(),
        Node::Seq(s.listeners.iter().map(|l| listener(config, l)).collect()),
    ));
    Node::Map(out)
}

fn listener(config: &Config, l: &Listener) -> Node {
    let mut out = vec![
        ("name".to_string(), string(&l.name)),
        ("protocol".to_string(), string(l.protocol.as_str())),
        ("port".to_string(), number(l.port)),
    ];
    if let Some(tls) = &l.tls {
        out.push((
            "tls".to_string(),
            map([
                ("certificate", path(&tls.certificate)),
                ("key", path(&tls.key)),
            ]),
        ));
    }
    out.push((
        "defaultAction".to_string(),
        action(config, &l.default_action),
    ));
    if !l.rules.is_empty() {
        out.push((
            "rules".to_string(),
            Node::Seq(l.rules.iter().map(|r| rule(config, r)).collect()),
        ));
    }
    Node::Map(out)
}

fn rule(config: &Config, r: &Rule) -> Node {
    let m = &r.http_match;
    let mut http = Vec::new();
    if let Some(method) = &m.method {
        http.push(("method".to_string(), string(method)));
    }
    if let Some(p) = &m.path_match {
        let kind = match p.kind {
            PathMatchKind::Exact => "exact",
            PathMatchKind::Prefix => "prefix",
        };
        http.push((
            "pathMatch".to_string(),
            map([
                ("match", map([(kind, string(&p.value))])),
                ("caseSensitive", boolean(p.case_sensitive)),
            ]),
        ));
    }
    if !m.header_matches.is_empty() {
        let headers = m
            .header_matches
            .iter()
            .map(|h| {
                let kind = match h.kind {
                    HeaderMatchKind::Exact => "exact",
                    HeaderMatchKind::Prefix => "prefix",
                    HeaderMatchKind::Contains => "contains",
                };
                map([
                    ("name", string(&h.name)),
                    ("match", map([(kind, string(&h.value))])),
                    ("caseSensitive", boolean(h.case_sensitive)),
                ])
            })
            .collect();
        http.push(("headerMatches".to_string(), Node::Seq(headers)));
    }
    map([
        ("name", string(&r.name)),
        ("priority", number(r.priority)),
        ("match", map([("httpMatch", Node::Map(http))])),
        ("action", action(config, &r.action)),
    ])
}

fn action(config: &Config, a: &Action) -> Node {
    match a {
        Action::FixedResponse { status_code } => {
            map([("fixedResponse", map([("statusCode", number(*status_code))]))])
        }
        Action::Forward(groups) => {
            let items = groups
                .iter()
                .map(|w| {
                    let name = config
                        .target_groups
                        .get(w.target_group)
                        .map_or("", |t| t.name.as_str());
                    map([
                        ("targetGroupIdentifier", string(name)),
                        ("weight", number(w.weight)),
                    ])
                })
                .collect();
            map([("forward", map([("targetGroups", Node::Seq(items))]))])
        }
    }
}

fn target_group(t: &TargetGroup) -> Node {
    let mut out = vec![
        ("name".to_string(), string(&t.name)),
        ("type".to_string(), string(t.kind.as_str())),
    ];
    let targets = if t.kind == TargetGroupType::Lambda {
        let version = match t.lambda_event_structure_version {
            EventVersion::V1 => "V1",
            EventVersion::V2 => "V2",
        };
        out.push((
            "config".to_string(),
            map([("lambdaEventStructureVersion", string(version))]),
        ));
        t.targets
            .iter()
            .map(|x| map([("id", string(&x.id))]))
            .collect()
    } else {
        let hc = &t.health_check;
        let mut check = vec![
            ("enabled".to_string(), boolean(hc.enabled)),
            ("protocol".to_string(), string(hc.protocol.as_str())),
            (
                "protocolVersion".to_string(),
                string(hc.protocol_version.as_str()),
            ),
        ];
        if let Some(port) = hc.port {
            check.push(("port".to_string(), number(port)));
        }
        check.extend([
            ("path".to_string(), string(&hc.path)),
            (
                "healthCheckIntervalSeconds".to_string(),
                number(hc.interval_seconds),
            ),
            (
                "healthCheckTimeoutSeconds".to_string(),
                number(hc.timeout_seconds),
            ),
            (
                "healthyThresholdCount".to_string(),
                number(hc.healthy_threshold),
            ),
            (
                "unhealthyThresholdCount".to_string(),
                number(hc.unhealthy_threshold),
            ),
            (
                "matcher".to_string(),
                map([("httpCode", string(&hc.matcher_text()))]),
            ),
        ]);
        out.push((
            "config".to_string(),
            map([
                ("port", number(t.port)),
                ("protocol", string(t.protocol.as_str())),
                ("protocolVersion", string(t.protocol_version.as_str())),
                ("healthCheck", Node::Map(check)),
            ]),
        ));
        t.targets
            .iter()
            .map(|x| map([("id", string(&x.id)), ("port", number(x.port))]))
            .collect()
    };
    out.push(("targets".to_string(), Node::Seq(targets)));
    Node::Map(out)
}

fn function(f: &Function) -> Node {
    let mut out = vec![
        ("name".to_string(), string(&f.name)),
        ("runtime".to_string(), string(f.runtime.as_str())),
    ];
    if let Some(code) = &f.code {
        out.push(("code".to_string(), path(code)));
    }
    if !f.command.is_empty() {
        out.push((
            "command".to_string(),
            Node::Seq(f.command.iter().map(|a| string(a)).collect()),
        ));
    }
    if let Some(image) = &f.image {
        out.push(("image".to_string(), string(image)));
    }
    if let Some(build) = &f.build {
        out.push(("build".to_string(), path(build)));
    }
    out.extend([
        ("timeout".to_string(), number(f.timeout_seconds)),
        ("memorySize".to_string(), number(f.memory_size_mb)),
    ]);
    if !f.environment.is_empty() {
        let env = f
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), string(v)))
            .collect();
        out.push(("environment".to_string(), Node::Map(env)));
    }
    out.push(("concurrency".to_string(), number(f.concurrency)));
    if f.runtime != FunctionRuntime::Wasm {
        out.push(("provisioned".to_string(), number(f.provisioned)));
        out.push(("idleTimeout".to_string(), number(f.idle_timeout_seconds)));
    }
    Node::Map(out)
}

/// An identity; a field that was written with `${NAME}` (in `env`) is written so again, and a
/// literal value gets its `$` doubled (`$$` is how the file writes a `$` that names nothing).
fn identity(
    id: &trellis_auth::Identity,
    env: Option<&std::collections::BTreeMap<String, String>>,
) -> Node {
    let field = |key: &str, value: &str| -> (String, Node) {
        let text = env
            .and_then(|e| e.get(key).cloned())
            .unwrap_or_else(|| value.replace('$', "$$"));
        (key.to_string(), string(&text))
    };
    let mut out = vec![
        field("arn", &id.arn),
        field("accessKeyId", &id.access_key_id),
        field("secretAccessKey", &id.secret_access_key),
    ];
    if let Some(v) = &id.session_name {
        out.push(field("sessionName", v));
    }
    if let Some(v) = &id.session_token {
        out.push(field("sessionToken", v));
    }
    if let Some(v) = &id.principal_org_id {
        out.push(field("principalOrgID", v));
    }
    push_tags(&mut out, &id.tags);
    if let Some(policy) = &id.policy {
        out.push(("policy".to_string(), policy_text(policy)));
    }
    Node::Map(out)
}

/// `tags: {key: value, …}`, when there are any.
fn push_tags(out: &mut Vec<(String, Node)>, tags: &[(String, String)]) {
    if tags.is_empty() {
        return;
    }
    let tags = tags.iter().map(|(k, v)| (k.clone(), string(v))).collect();
    out.push(("tags".to_string(), Node::Map(tags)));
}

fn auth_type(t: AuthType) -> Node {
    string(match t {
        AuthType::None => "NONE",
        AuthType::AwsIam => "AWS_IAM",
    })
}

/// The policy as AWS echoes it (normalised JSON), indented for reading in a block scalar; on
/// one quoted line when its text has a character a block scalar cannot hold.
fn auth_policy(policy: &AuthPolicy) -> Node {
    policy_text(&policy.0)
}

/// A policy (auth or identity) as [`auth_policy`] writes it.
fn policy_text(policy: &trellis_auth::policy::Policy) -> Node {
    let text = policy.normalised();
    if text.chars().all(emit::printable) {
        Node::Block(crate::json::indent(&text))
    } else {
        string(&text)
    }
}

fn push_access_logs(out: &mut Vec<(String, Node)>, logs: &[LogDestination]) {
    if logs.is_empty() {
        return;
    }
    let items = logs
        .iter()
        .map(|d| {
            let text = match d {
                LogDestination::Stdout => "stdout".to_string(),
                LogDestination::File(p) => format!("file:{}", p.to_string_lossy()),
            };
            map([("destination", string(&text))])
        })
        .collect();
    out.push(("accessLogs".to_string(), Node::Seq(items)));
}

fn path(p: &std::path::Path) -> Node {
    string(&p.to_string_lossy())
}
