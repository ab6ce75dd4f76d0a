//! Decoding and validating the config file: Lattice's names, enums, ranges and defaults.
//!
//! Sections are decoded in dependency order (VPCs, functions, target groups, services, service
//! networks) so that references can be resolved, with a suggestion, as soon as they are read.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

use crate::decode::{
    Fields, Loc, Problems, boolean, did_you_mean, fields, int, item, list, one_of, string, union,
};
use crate::ids::{lattice_arn, service_dns_name, stable_id};
use crate::model::*;
use crate::yaml::{Node, Value};

const TOP_KEYS: &[&str] = &[
    "region",
    "accountId",
    "vpcs",
    "serviceNetworks",
    "services",
    "targetGroups",
    "functions",
];

/// Decodes a whole document. Problems are collected in `problems`; the returned config is only
/// meaningful when there are none.
pub fn config(problems: &mut Problems, root: &Node) -> Config {
    let top = Loc::default();
    let Some(f) = fields(problems, root, &top, TOP_KEYS) else {
        return empty_config();
    };
    let region = f
        .get("region")
        .and_then(|n| string(problems, n, &f.loc("region")))
        .unwrap_or_else(|| "us-east-1".to_string());
    check_region(problems, &region, &f.loc("region"));
    let account_id = f
        .get("accountId")
        .and_then(|n| string(problems, n, &f.loc("accountId")))
        .unwrap_or_else(|| "123456789012".to_string());
    if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
        problems.add(
            &f.loc("accountId"),
            format!("\"{account_id}\" is not an account id"),
            Some("an AWS account id is 12 digits, e.g. \"123456789012\"".into()),
        );
    }
    let mut ctx = Ctx {
        problems,
        region,
        account_id,
    };

    let vpcs = ctx.vpcs(&f);
    let functions = ctx.functions(&f);
    let target_groups = ctx.target_groups(&f, &functions);
    let services = ctx.services(&f, &target_groups);
    let service_networks = ctx.service_networks(&f, &services, &vpcs);
    let config = Config {
        region: ctx.region,
        account_id: ctx.account_id,
        vpcs,
        service_networks,
        services,
        target_groups,
        functions,
    };
    cross_checks(ctx.problems, &config);
    config
}

fn empty_config() -> Config {
    Config {
        region: String::new(),
        account_id: String::new(),
        vpcs: vec![],
        service_networks: vec![],
        services: vec![],
        target_groups: vec![],
        functions: vec![],
    }
}

fn check_region(problems: &mut Problems, region: &str, loc: &Loc) {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        problems.add(
            loc,
            format!("\"{region}\" is not a region name"),
            Some("a region looks like \"us-west-2\"".into()),
        );
    }
}

/// Lattice's naming rule for one kind of object.
struct NameRule {
    what: &'static str,
    min: usize,
    max: usize,
    reserved_prefix: Option<&'static str>,
}

const SERVICE_NAME: NameRule = NameRule {
    what: "service name",
    min: 3,
    max: 40,
    reserved_prefix: Some("svc-"),
};
const NETWORK_NAME: NameRule = NameRule {
    what: "service network name",
    min: 3,
    max: 63,
    reserved_prefix: None,
};
const LISTENER_NAME: NameRule = NameRule {
    what: "listener name",
    min: 3,
    max: 63,
    reserved_prefix: Some("listener-"),
};
const RULE_NAME: NameRule = NameRule {
    what: "rule name",
    min: 3,
    max: 63,
    reserved_prefix: Some("rule-"),
};
const TG_NAME: NameRule = NameRule {
    what: "target group name",
    min: 3,
    max: 128,
    reserved_prefix: Some("tg-"),
};
const VPC_NAME: NameRule = NameRule {
    what: "VPC name",
    min: 1,
    max: 63,
    reserved_prefix: Some("vpc-"),
};

fn check_name(problems: &mut Problems, name: &str, loc: &Loc, rule: &NameRule) {
    let what = rule.what;
    let pattern_hint = || {
        Some(format!(
            "a {what} is {}-{} characters of a-z, 0-9 and '-', not starting or ending with '-' and without '--'{}",
            rule.min,
            rule.max,
            rule.reserved_prefix
                .map(|p| format!(", and may not start with \"{p}\""))
                .unwrap_or_default()
        ))
    };
    let len = name.chars().count();
    if len < rule.min || len > rule.max {
        problems.add(
            loc,
            format!(
                "{what} \"{name}\" has {len} character{}",
                if len == 1 { "" } else { "s" }
            ),
            pattern_hint(),
        );
    } else if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        problems.add(
            loc,
            format!("{what} \"{name}\" contains '{bad}'"),
            pattern_hint(),
        );
    } else if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        problems.add(
            loc,
            format!("{what} \"{name}\" has a misplaced '-'"),
            pattern_hint(),
        );
    } else if let Some(prefix) = rule.reserved_prefix.filter(|p| name.starts_with(p)) {
        problems.add(
            loc,
            format!("{what} \"{name}\" starts with the reserved prefix \"{prefix}\""),
            pattern_hint(),
        );
    }
}

/// Reports names used twice within one scope.
fn check_unique<'a>(
    problems: &mut Problems,
    what: &str,
    names: impl IntoIterator<Item = (&'a str, &'a Loc)>,
) {
    let mut seen: HashMap<&str, &Loc> = HashMap::new();
    for (name, loc) in names {
        if let Some(first) = seen.get(name) {
            problems.add(
                loc,
                format!("duplicate {what} \"{name}\""),
                Some(format!(
                    "the first one is at line {}, {}",
                    first.pos.line, first.path
                )),
            );
        } else {
            seen.insert(name, loc);
        }
    }
}

/// An object that can be referred to by name, id or ARN.
struct Named<'a> {
    name: &'a str,
    id: &'a str,
    arn: &'a str,
}

/// The name, id and ARN of every item, for [`resolve`].
fn named<'a, T>(
    items: &'a [T],
    parts: impl Fn(&'a T) -> (&'a str, &'a str, &'a str),
) -> Vec<Named<'a>> {
    items
        .iter()
        .map(|item| {
            let (name, id, arn) = parts(item);
            Named { name, id, arn }
        })
        .collect()
}

fn resolve(
    problems: &mut Problems,
    text: &str,
    loc: &Loc,
    what: &str,
    all: &[Named<'_>],
) -> Option<usize> {
    if let Some(i) = all
        .iter()
        .position(|n| n.name == text || n.id == text || n.arn == text)
    {
        return Some(i);
    }
    let mut names: Vec<&str> = all.iter().map(|n| n.name).collect();
    names.sort_unstable();
    names.dedup();
    let hint = did_you_mean(text, names.iter().copied()).or_else(|| {
        if all.is_empty() {
            Some(format!("no {what} is defined"))
        } else {
            Some(format!("defined: {}", names.join(", ")))
        }
    });
    problems.add(loc, format!("unknown {what} \"{text}\""), hint);
    None
}

struct Ctx<'p> {
    problems: &'p mut Problems,
    region: String,
    account_id: String,
}

impl Ctx<'_> {
    fn id(&self, kind: &str, name: &str) -> String {
        stable_id(&[kind, &self.region, &self.account_id, name])
    }

    fn arn(&self, resource: &str) -> String {
        lattice_arn(&self.region, &self.account_id, resource)
    }

    fn name(&mut self, f: &Fields<'_>, rule: &NameRule) -> String {
        let name = f
            .require(
                self.problems,
                "name",
                &format!("every object needs a name ({})", rule.what),
            )
            .and_then(|n| string(self.problems, n, &f.loc("name")))
            .unwrap_or_default();
        if f.get("name").is_some() {
            check_name(self.problems, &name, &f.loc("name"), rule);
        }
        name
    }

    fn str_field(&mut self, f: &Fields<'_>, key: &str) -> Option<String> {
        f.get(key)
            .and_then(|n| string(self.problems, n, &f.loc(key)))
    }

    fn int_field(
        &mut self,
        f: &Fields<'_>,
        key: &str,
        min: i64,
        max: i64,
        what: &str,
    ) -> Option<i64> {
        f.get(key)
            .and_then(|n| int(self.problems, n, &f.loc(key), min, max, what))
    }

    fn bool_field(&mut self, f: &Fields<'_>, key: &str) -> Option<bool> {
        f.get(key)
            .and_then(|n| boolean(self.problems, n, &f.loc(key)))
    }

    fn auth_type(&mut self, f: &Fields<'_>) -> AuthType {
        match f
            .get("authType")
            .and_then(|n| one_of(self.problems, n, &f.loc("authType"), &["NONE", "AWS_IAM"]))
        {
            Some(t) if t == "AWS_IAM" => AuthType::AwsIam,
            _ => AuthType::None,
        }
    }

    fn auth_policy(&mut self, f: &Fields<'_>) -> Option<String> {
        f.get("authPolicy").map(to_json)
    }

    fn access_logs(&mut self, f: &Fields<'_>) -> Vec<LogDestination> {
        let loc = f.loc("accessLogs");
        let mut out = Vec::new();
        for (i, node) in list(self.problems, f.get("accessLogs"), &loc)
            .iter()
            .enumerate()
        {
            let at = item(&loc, i, node);
            let Some(g) = fields(self.problems, node, &at, &["destination"]) else {
                continue;
            };
            let Some(dest) = g
                .require(self.problems, "destination", "\"stdout\" or \"file:PATH\"")
                .and_then(|n| string(self.problems, n, &g.loc("destination")))
            else {
                continue;
            };
            if dest == "stdout" {
                out.push(LogDestination::Stdout);
            } else if let Some(path) = dest.strip_prefix("file:").filter(|p| !p.is_empty()) {
                out.push(LogDestination::File(PathBuf::from(path)));
            } else {
                self.problems.add(
                    &g.loc("destination"),
                    format!("unsupported access-log destination \"{dest}\""),
                    Some(
                        "use \"stdout\" or \"file:PATH\" (one JSON record per line, appended)"
                            .into(),
                    ),
                );
            }
        }
        out
    }

    fn vpcs(&mut self, top: &Fields<'_>) -> Vec<Vpc> {
        let loc = top.loc("vpcs");
        let mut out = Vec::new();
        for (i, node) in list(self.problems, top.get("vpcs"), &loc)
            .iter()
            .enumerate()
        {
            let at = item(&loc, i, node);
            let Some(f) = fields(self.problems, node, &at, &["name", "cidrs"]) else {
                continue;
            };
            let name = self.name(&f, &VPC_NAME);
            let cidrs_loc = f.loc("cidrs");
            let mut cidrs = Vec::new();
            let required = f.require(
                self.problems,
                "cidrs",
                "the address blocks of the VPC's clients, e.g. [127.0.0.0/8]",
            );
            let items = list(self.problems, required, &cidrs_loc);
            for (j, c) in items.iter().enumerate() {
                let cloc = item(&cidrs_loc, j, c);
                if let Some(text) = string(self.problems, c, &cloc) {
                    match parse_cidr(&text) {
                        Some(cidr) => cidrs.push(cidr),
                        None => self.problems.add(&cloc, format!("\"{text}\" is not a CIDR block"), Some("write an address and a prefix length, e.g. 10.0.0.0/16 or \"::1/128\" (quote IPv6 blocks)".into())),
                    }
                }
            }
            let id = format!("vpc-{}", self.id("vpc", &name));
            let arn = format!("arn:aws:ec2:{}:{}:vpc/{id}", self.region, self.account_id);
            out.push(Vpc {
                name,
                id,
                arn,
                cidrs,
                at,
            });
        }
        check_unique(
            self.problems,
            "VPC name",
            out.iter().map(|v| (v.name.as_str(), &v.at)),
        );
        out
    }

    fn functions(&mut self, top: &Fields<'_>) -> Vec<Function> {
        const KEYS: &[&str] = &[
            "name",
            "runtime",
            "code",
            "command",
            "image",
            "build",
            "timeout",
            "memorySize",
            "environment",
            "concurrency",
            "provisioned",
            "idleTimeout",
        ];
        let loc = top.loc("functions");
        let mut out = Vec::new();
        for (i, node) in list(self.problems, top.get("functions"), &loc)
            .iter()
            .enumerate()
        {
            let at = item(&loc, i, node);
            let Some(f) = fields(self.problems, node, &at, KEYS) else {
                continue;
            };
            let name = f
                .require(self.problems, "name", "every function needs a name")
                .and_then(|n| string(self.problems, n, &f.loc("name")))
                .unwrap_or_default();
            if f.get("name").is_some()
                && (name.is_empty()
                    || name.len() > 64
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            {
                self.problems.add(
                    &f.loc("name"),
                    format!("function name \"{name}\" is not valid"),
                    Some("a function name is 1-64 characters of a-z, A-Z, 0-9, '-' and '_'".into()),
                );
            }
            let runtime = match f
                .require(self.problems, "runtime", "one of wasm, process, container")
                .and_then(|n| {
                    one_of(
                        self.problems,
                        n,
                        &f.loc("runtime"),
                        &["wasm", "process", "container"],
                    )
                })
                .as_deref()
            {
                Some("process") => FunctionRuntime::Process,
                Some("container") => FunctionRuntime::Container,
                _ => FunctionRuntime::Wasm,
            };
            let code = self.str_field(&f, "code").map(PathBuf::from);
            let image = self.str_field(&f, "image");
            let build = self.str_field(&f, "build").map(PathBuf::from);
            let command_loc = f.loc("command");
            let command: Vec<String> = match f.get("command") {
                Some(Node {
                    value: Value::Scalar { text, .. },
                    ..
                }) => text.split_whitespace().map(str::to_string).collect(),
                other => list(self.problems, other, &command_loc)
                    .iter()
                    .enumerate()
                    .filter_map(|(j, n)| string(self.problems, n, &item(&command_loc, j, n)))
                    .collect(),
            };
            match runtime {
                FunctionRuntime::Wasm if code.is_none() => self.problems.add(&at, "a wasm function needs \"code\"", Some("the path of a .wasm module or component, e.g. code: sample-functions/hello.wasm".into())),
                FunctionRuntime::Process if command.is_empty() => self.problems.add(&at, "a process function needs \"command\"", Some("the program and its arguments, e.g. command: [target/release/my-lambda]".into())),
                FunctionRuntime::Container if image.is_some() == build.is_some() => self.problems.add(&at, "a container function needs exactly one of \"image\" and \"build\"", Some("image: a local image tag; build: a directory with a Dockerfile".into())),
                _ => {}
            }
            let timeout_seconds = self
                .int_field(&f, "timeout", 1, 900, "a function timeout in seconds")
                .unwrap_or(3) as u32;
            let memory_size_mb = self
                .int_field(&f, "memorySize", 128, 10240, "memorySize in MB")
                .unwrap_or(128) as u32;
            let concurrency = self
                .int_field(&f, "concurrency", 1, 1000, "concurrency")
                .unwrap_or(10) as u32;
            let provisioned = self
                .int_field(&f, "provisioned", 0, 1000, "a count of environments")
                .unwrap_or(0) as u32;
            let idle_timeout_seconds = self
                .int_field(&f, "idleTimeout", 1, 86_400, "an idle timeout in seconds")
                .unwrap_or(600) as u32;
            self.pool_keys(&f, runtime, provisioned, concurrency);
            let env_loc = f.loc("environment");
            let mut environment = BTreeMap::new();
            if let Some(env) = f.get("environment") {
                if let Value::Map(entries) = &env.value {
                    for (k, v) in entries {
                        if let Some(value) =
                            string(self.problems, v, &env_loc.field(k.key_text(), v.pos))
                        {
                            environment.insert(k.key_text().to_string(), value);
                        }
                    }
                } else {
                    self.problems.add(
                        &env_loc,
                        format!(
                            "expected a mapping of variable names to values, found {}",
                            env.kind()
                        ),
                        None,
                    );
                }
            }
            let arn = format!(
                "arn:aws:lambda:{}:{}:function:{name}",
                self.region, self.account_id
            );
            out.push(Function {
                name,
                arn,
                runtime,
                code,
                command,
                image,
                build,
                timeout_seconds,
                memory_size_mb,
                environment,
                concurrency,
                provisioned,
                idle_timeout_seconds,
                at,
            });
        }
        check_unique(
            self.problems,
            "function name",
            out.iter().map(|v| (v.name.as_str(), &v.at)),
        );
        out
    }

    /// `provisioned` and `idleTimeout` describe a pool of environments, which only process and
    /// container functions have (a wasm function instantiates per invocation), and a pool never
    /// holds more than `concurrency` environments.
    fn pool_keys(
        &mut self,
        f: &Fields<'_>,
        runtime: FunctionRuntime,
        provisioned: u32,
        concurrency: u32,
    ) {
        if runtime == FunctionRuntime::Wasm {
            for key in ["provisioned", "idleTimeout"] {
                if f.get(key).is_some() {
                    self.problems.add(
                        &f.loc(key),
                        format!("\"{key}\" applies to process and container functions only"),
                        Some("a wasm function gets a fresh instance of its compiled module per invocation; there is no environment to keep warm".into()),
                    );
                }
            }
        }
        if f.get("provisioned").is_some() && provisioned > concurrency {
            self.problems.add(
                &f.loc("provisioned"),
                format!("provisioned ({provisioned}) is more than concurrency ({concurrency})"),
                Some("at most `concurrency` environments exist at once; raise concurrency or lower provisioned".into()),
            );
        }
    }

    fn target_groups(&mut self, top: &Fields<'_>, functions: &[Function]) -> Vec<TargetGroup> {
        let loc = top.loc("targetGroups");
        let mut out = Vec::new();
        for (i, node) in list(self.problems, top.get("targetGroups"), &loc)
            .iter()
            .enumerate()
        {
            let at = item(&loc, i, node);
            let Some(f) = fields(
                self.problems,
                node,
                &at,
                &["name", "type", "config", "targets"],
            ) else {
                continue;
            };
            let name = self.name(&f, &TG_NAME);
            let kind = match f
                .require(self.problems, "type", "one of INSTANCE, IP, LAMBDA, ALB")
                .and_then(|n| {
                    one_of(
                        self.problems,
                        n,
                        &f.loc("type"),
                        &["INSTANCE", "IP", "LAMBDA", "ALB"],
                    )
                })
                .as_deref()
            {
                Some("IP") => TargetGroupType::Ip,
                Some("LAMBDA") => TargetGroupType::Lambda,
                Some("ALB") => TargetGroupType::Alb,
                _ => TargetGroupType::Instance,
            };
            let id = format!("tg-{}", self.id("targetgroup", &name));
            let arn = self.arn(&format!("targetgroup/{id}"));
            let mut tg = TargetGroup {
                name,
                id,
                arn,
                kind,
                port: 80,
                protocol: TargetProtocol::Http,
                protocol_version: ProtocolVersion::Http1,
                health_check: default_health_check(false, TargetProtocol::Http),
                lambda_event_structure_version: EventVersion::V1,
                targets: Vec::new(),
                at: at.clone(),
            };
            self.tg_config(&f, &mut tg);
            self.targets(&f, &mut tg, functions);
            out.push(tg);
        }
        check_unique(
            self.problems,
            "target group name",
            out.iter().map(|v| (v.name.as_str(), &v.at)),
        );
        out
    }

    fn tg_config(&mut self, tg_fields: &Fields<'_>, tg: &mut TargetGroup) {
        const KEYS: &[&str] = &[
            "port",
            "protocol",
            "protocolVersion",
            "ipAddressType",
            "vpcIdentifier",
            "healthCheck",
            "lambdaEventStructureVersion",
        ];
        let lambda = tg.kind == TargetGroupType::Lambda;
        let f = match tg_fields.get("config") {
            Some(node) => match fields(self.problems, node, &tg_fields.loc("config"), KEYS) {
                Some(f) => Some(f),
                None => return,
            },
            None => None,
        };
        let Some(f) = f else {
            tg.health_check = default_health_check(!lambda, tg.protocol);
            if lambda {
                tg.health_check.enabled = false;
            }
            return;
        };
        if lambda {
            for key in [
                "port",
                "protocol",
                "protocolVersion",
                "ipAddressType",
                "vpcIdentifier",
                "healthCheck",
            ] {
                if f.get(key).is_some() {
                    self.problems.add(
                        &f.loc(key),
                        format!("\"{key}\" is not allowed for a LAMBDA target group"),
                        Some(
                            "a LAMBDA target group's config takes only lambdaEventStructureVersion"
                                .into(),
                        ),
                    );
                }
            }
            tg.health_check.enabled = false;
            if let Some(v) = f.get("lambdaEventStructureVersion").and_then(|n| {
                one_of(
                    self.problems,
                    n,
                    &f.loc("lambdaEventStructureVersion"),
                    &["V1", "V2"],
                )
            }) {
                tg.lambda_event_structure_version = if v == "V2" {
                    EventVersion::V2
                } else {
                    EventVersion::V1
                };
            }
            return;
        }
        if f.get("lambdaEventStructureVersion").is_some() {
            self.problems.add(
                &f.loc("lambdaEventStructureVersion"),
                "lambdaEventStructureVersion is only for LAMBDA target groups",
                None,
            );
        }
        if let Some(p) = f.get("protocol").and_then(|n| {
            one_of(
                self.problems,
                n,
                &f.loc("protocol"),
                &["HTTP", "HTTPS", "TCP"],
            )
        }) {
            match p.as_str() {
                "HTTPS" => tg.protocol = TargetProtocol::Https,
                "TCP" => self.problems.add(
                    &f.loc("protocol"),
                    "TCP target groups are not supported by Trellis yet",
                    Some(
                        "TCP target groups need TLS_PASSTHROUGH listeners; use HTTP or HTTPS"
                            .into(),
                    ),
                ),
                _ => tg.protocol = TargetProtocol::Http,
            }
        }
        tg.port = self
            .int_field(&f, "port", 1, 65535, "a port")
            .map(|p| p as u16)
            .unwrap_or(if tg.protocol == TargetProtocol::Https {
                443
            } else {
                80
            });
        if let Some(v) = f.get("protocolVersion").and_then(|n| {
            one_of(
                self.problems,
                n,
                &f.loc("protocolVersion"),
                &["HTTP1", "HTTP2", "GRPC"],
            )
        }) {
            tg.protocol_version = match v.as_str() {
                "HTTP2" => ProtocolVersion::Http2,
                "GRPC" => ProtocolVersion::Grpc,
                _ => ProtocolVersion::Http1,
            };
        }
        if let Some(n) = f.get("ipAddressType") {
            one_of(self.problems, n, &f.loc("ipAddressType"), &["IPV4", "IPV6"]);
        }
        if let Some(v) = self.str_field(&f, "vpcIdentifier") {
            let ok = v.strip_prefix("vpc-").is_some_and(|rest| {
                (rest.len() == 8 || rest.len() == 17) && rest.bytes().all(|b| b.is_ascii_hexdigit())
            });
            if !ok {
                self.problems.add(&f.loc("vpcIdentifier"), format!("\"{v}\" is not a VPC id"), Some("a VPC id is \"vpc-\" and 8 or 17 hex characters (Trellis does not need it)".into()));
            }
        }
        tg.health_check =
            default_health_check(tg.protocol_version == ProtocolVersion::Http1, tg.protocol);
        if let Some(node) = f.get("healthCheck") {
            self.health_check(node, &f.loc("healthCheck"), &mut tg.health_check);
        }
    }

    fn health_check(&mut self, node: &Node, loc: &Loc, hc: &mut HealthCheck) {
        const KEYS: &[&str] = &[
            "enabled",
            "protocol",
            "protocolVersion",
            "port",
            "path",
            "healthCheckIntervalSeconds",
            "healthCheckTimeoutSeconds",
            "healthyThresholdCount",
            "unhealthyThresholdCount",
            "matcher",
        ];
        let Some(f) = fields(self.problems, node, loc, KEYS) else {
            return;
        };
        if let Some(e) = self.bool_field(&f, "enabled") {
            hc.enabled = e;
        }
        if let Some(p) = f.get("protocol").and_then(|n| {
            one_of(
                self.problems,
                n,
                &f.loc("protocol"),
                &["HTTP", "HTTPS", "TCP"],
            )
        }) {
            match p.as_str() {
                "HTTPS" => hc.protocol = TargetProtocol::Https,
                "TCP" => self.problems.add(
                    &f.loc("protocol"),
                    "TCP health checks are not supported by Trellis yet",
                    Some("use HTTP or HTTPS".into()),
                ),
                _ => hc.protocol = TargetProtocol::Http,
            }
        }
        if let Some(v) = f.get("protocolVersion").and_then(|n| {
            one_of(
                self.problems,
                n,
                &f.loc("protocolVersion"),
                &["HTTP1", "HTTP2"],
            )
        }) {
            hc.protocol_version = if v == "HTTP2" {
                ProtocolVersion::Http2
            } else {
                ProtocolVersion::Http1
            };
        }
        if let Some(p) = self.int_field(&f, "port", 0, 65535, "a health-check port") {
            hc.port = (p != 0).then_some(p as u16);
        }
        if let Some(path) = self.str_field(&f, "path") {
            if !path.starts_with('/') || path.len() > 2048 {
                self.problems.add(&f.loc("path"), format!("health-check path \"{path}\" must start with '/'"), Some("a health-check path is up to 2048 characters starting with '/', e.g. /health".into()));
            } else {
                hc.path = path;
            }
        }
        // Lattice: 0 resets a value to its default.
        let mut ranged = |key: &str, min: i64, max: i64, what: &str, slot: &mut u32| {
            if let Some(v) = f
                .get(key)
                .and_then(|n| int(self.problems, n, &f.loc(key), i64::MIN, i64::MAX, what))
            {
                if v == 0 {
                    return;
                }
                if v < min || v > max {
                    self.problems.add(
                        &f.loc(key),
                        format!("{v} is out of range"),
                        Some(format!("{what} is {min}-{max} (0 means the default)")),
                    );
                } else {
                    *slot = v as u32;
                }
            }
        };
        ranged(
            "healthCheckIntervalSeconds",
            5,
            300,
            "healthCheckIntervalSeconds",
            &mut hc.interval_seconds,
        );
        ranged(
            "healthCheckTimeoutSeconds",
            1,
            120,
            "healthCheckTimeoutSeconds",
            &mut hc.timeout_seconds,
        );
        ranged(
            "healthyThresholdCount",
            2,
            10,
            "healthyThresholdCount",
            &mut hc.healthy_threshold,
        );
        ranged(
            "unhealthyThresholdCount",
            2,
            10,
            "unhealthyThresholdCount",
            &mut hc.unhealthy_threshold,
        );
        if let Some(m) = f.get("matcher") {
            let mloc = f.loc("matcher");
            if let Some(g) = fields(self.problems, m, &mloc, &["httpCode"])
                && let Some(code) = g
                    .get("httpCode")
                    .and_then(|n| string(self.problems, n, &g.loc("httpCode")))
            {
                match parse_matcher(&code) {
                    Ok(ranges) => hc.matcher = ranges,
                    Err(why) => self.problems.add(
                        &g.loc("httpCode"),
                        format!("matcher \"{code}\": {why}"),
                        Some(
                            "write codes 200-499 as a list (\"200,202\") or a range (\"200-299\")"
                                .into(),
                        ),
                    ),
                }
            }
        }
    }

    fn targets(&mut self, f: &Fields<'_>, tg: &mut TargetGroup, functions: &[Function]) {
        let loc = f.loc("targets");
        let items = list(self.problems, f.get("targets"), &loc);
        if tg.kind == TargetGroupType::Lambda && items.len() > 1 {
            self.problems.add(
                &loc,
                format!(
                    "a LAMBDA target group holds exactly one function, found {}",
                    items.len()
                ),
                Some("make one target group per function and split traffic with weights".into()),
            );
        }
        if items.len() > 1000 {
            self.problems.add(
                &loc,
                format!(
                    "{} targets is more than the 1000 a target group may hold",
                    items.len()
                ),
                None,
            );
        }
        let named = named(functions, |x| (&x.name, &x.name, &x.arn));
        for (i, node) in items.iter().enumerate() {
            let at = item(&loc, i, node);
            let Some(t) = fields(self.problems, node, &at, &["id", "port"]) else {
                continue;
            };
            let Some(id) = t.require(self.problems, "id", "a host name or address (INSTANCE), an address (IP), or a function name (LAMBDA)").and_then(|n| string(self.problems, n, &t.loc("id"))) else { continue };
            let port = self
                .int_field(&t, "port", 1, 65535, "a port")
                .map(|p| p as u16);
            match tg.kind {
                TargetGroupType::Lambda => {
                    if port.is_some() {
                        self.problems
                            .add(&t.loc("port"), "a LAMBDA target has no port", None);
                    }
                    resolve(self.problems, &id, &t.loc("id"), "function", &named);
                }
                TargetGroupType::Ip if id.parse::<IpAddr>().is_err() => {
                    self.problems.add(&t.loc("id"), format!("\"{id}\" is not an IP address"), Some("IP targets are addresses such as 127.0.0.1; use an INSTANCE target group for host names".into()));
                }
                _ if id.is_empty()
                    || id.contains(['/', ' ', ':']) && id.parse::<IpAddr>().is_err() =>
                {
                    self.problems.add(
                        &t.loc("id"),
                        format!("\"{id}\" is not a host name or address"),
                        Some("write the host only; the port goes in \"port\"".into()),
                    );
                }
                _ => {}
            }
            tg.targets.push(Target {
                id,
                port: port.unwrap_or(tg.port),
            });
        }
    }

    fn services(&mut self, top: &Fields<'_>, tgs: &[TargetGroup]) -> Vec<Service> {
        const KEYS: &[&str] = &[
            "name",
            "customDomainName",
            "authType",
            "authPolicy",
            "idleTimeoutSeconds",
            "accessLogs",
            "listeners",
        ];
        let loc = top.loc("services");
        let named = named(tgs, |x| (&x.name, &x.id, &x.arn));
        let mut out = Vec::new();
        for (i, node) in list(self.problems, top.get("services"), &loc)
            .iter()
            .enumerate()
        {
            let at = item(&loc, i, node);
            let Some(f) = fields(self.problems, node, &at, KEYS) else {
                continue;
            };
            let name = self.name(&f, &SERVICE_NAME);
            let id17 = self.id("service", &name);
            let id = format!("svc-{id17}");
            let arn = self.arn(&format!("service/{id}"));
            let dns_name = service_dns_name(&name, &id17, &self.region);
            let custom_domain_name = self.str_field(&f, "customDomainName");
            if let Some(d) = &custom_domain_name {
                let ok = (3..=255).contains(&d.len())
                    && d.split('.').count() >= 2
                    && d.split('.').all(|l| {
                        !l.is_empty()
                            && l.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
                    });
                if !ok {
                    self.problems.add(
                        &f.loc("customDomainName"),
                        format!("\"{d}\" is not a domain name"),
                        Some("a custom domain is a DNS name such as parking.example.com".into()),
                    );
                }
            }
            let auth_type = self.auth_type(&f);
            let auth_policy = self.auth_policy(&f);
            let idle_timeout_seconds = self
                .int_field(&f, "idleTimeoutSeconds", 60, 600, "idleTimeoutSeconds")
                .unwrap_or(60) as u32;
            let access_logs = self.access_logs(&f);
            let service_arn = arn.clone();
            let listeners = self.listeners(&f, &service_arn, &named);
            out.push(Service {
                name,
                id,
                arn,
                dns_name,
                custom_domain_name,
                auth_type,
                auth_policy,
                idle_timeout_seconds,
                access_logs,
                listeners,
                at,
            });
        }
        check_unique(
            self.problems,
            "service name",
            out.iter().map(|v| (v.name.as_str(), &v.at)),
        );
        out
    }

    fn listeners(
        &mut self,
        svc: &Fields<'_>,
        service_arn: &str,
        tgs: &[Named<'_>],
    ) -> Vec<Listener> {
        let loc = svc.loc("listeners");
        let required = svc.require(self.problems, "listeners", "a service needs at least one listener, e.g. {name: http, protocol: HTTP, port: 8080, defaultAction: ...}");
        let items = list(self.problems, required, &loc);
        let mut out = Vec::new();
        for (i, node) in items.iter().enumerate() {
            let at = item(&loc, i, node);
            let Some(f) = fields(
                self.problems,
                node,
                &at,
                &["name", "protocol", "port", "tls", "defaultAction", "rules"],
            ) else {
                continue;
            };
            let name = self.name(&f, &LISTENER_NAME);
            let protocol = match f
                .require(self.problems, "protocol", "HTTP or HTTPS")
                .and_then(|n| {
                    one_of(
                        self.problems,
                        n,
                        &f.loc("protocol"),
                        &["HTTP", "HTTPS", "TLS_PASSTHROUGH"],
                    )
                })
                .as_deref()
            {
                Some("HTTPS") => ListenerProtocol::Https,
                Some("TLS_PASSTHROUGH") => {
                    self.problems.add(
                        &f.loc("protocol"),
                        "TLS_PASSTHROUGH listeners are not supported by Trellis yet",
                        Some("use HTTP or HTTPS".into()),
                    );
                    ListenerProtocol::Http
                }
                _ => ListenerProtocol::Http,
            };
            let port = self
                .int_field(&f, "port", 1, 65535, "a listener port")
                .map(|p| p as u16)
                .unwrap_or(if protocol == ListenerProtocol::Https {
                    443
                } else {
                    80
                });
            let tls = f.get("tls").and_then(|n| self.tls(n, &f.loc("tls")));
            if tls.is_some() && protocol != ListenerProtocol::Https {
                self.problems
                    .add(&f.loc("tls"), "\"tls\" is only for HTTPS listeners", None);
            }
            let id = format!(
                "listener-{}",
                self.id("listener", &format!("{service_arn}/{name}"))
            );
            let arn = format!("{service_arn}/listener/{id}");
            let default_action = match f.require(self.problems, "defaultAction", "what to do when no rule matches, e.g. {forward: {targetGroups: [{targetGroupIdentifier: my-tg}]}} or {fixedResponse: {statusCode: 404}}") {
                Some(n) => self.action(n, &f.loc("defaultAction"), tgs),
                None => None,
            }
            .unwrap_or(Action::FixedResponse { status_code: 404 });
            let rules = self.rules(&f, &arn, tgs);
            out.push(Listener {
                name,
                id,
                arn,
                protocol,
                port,
                tls,
                default_action,
                rules,
                at,
            });
        }
        check_unique(
            self.problems,
            "listener name",
            out.iter().map(|v| (v.name.as_str(), &v.at)),
        );
        let mut by_port: HashMap<u16, &Listener> = HashMap::new();
        for l in &out {
            if let Some(first) = by_port.get(&l.port) {
                self.problems.add(
                    &l.at,
                    format!(
                        "port {} is already used by listener \"{}\" of this service",
                        l.port, first.name
                    ),
                    Some("each listener of a service needs its own port".into()),
                );
            } else {
                by_port.insert(l.port, l);
            }
        }
        out
    }

    fn tls(&mut self, node: &Node, loc: &Loc) -> Option<TlsFiles> {
        let f = fields(self.problems, node, loc, &["certificate", "key"])?;
        let certificate = f
            .require(self.problems, "certificate", "a PEM certificate chain file")
            .and_then(|n| string(self.problems, n, &f.loc("certificate")));
        let key = f
            .require(self.problems, "key", "a PEM private key file")
            .and_then(|n| string(self.problems, n, &f.loc("key")));
        Some(TlsFiles {
            certificate: certificate?.into(),
            key: key?.into(),
        })
    }

    fn rules(&mut self, listener: &Fields<'_>, listener_arn: &str, tgs: &[Named<'_>]) -> Vec<Rule> {
        let loc = listener.loc("rules");
        let mut out = Vec::new();
        for (i, node) in list(self.problems, listener.get("rules"), &loc)
            .iter()
            .enumerate()
        {
            let at = item(&loc, i, node);
            let Some(f) = fields(
                self.problems,
                node,
                &at,
                &["name", "priority", "match", "action"],
            ) else {
                continue;
            };
            let name = self.name(&f, &RULE_NAME);
            let priority = f
                .require(
                    self.problems,
                    "priority",
                    "1-2000; lower numbers are evaluated first",
                )
                .and_then(|n| {
                    int(
                        self.problems,
                        n,
                        &f.loc("priority"),
                        1,
                        2000,
                        "a rule priority",
                    )
                })
                .unwrap_or(0) as u16;
            let http_match = match f.require(
                self.problems,
                "match",
                "e.g. {httpMatch: {pathMatch: {match: {prefix: /api}}}}",
            ) {
                Some(n) => self.http_match(n, &f.loc("match")),
                None => HttpMatch::default(),
            };
            let action = match f.require(
                self.problems,
                "action",
                "{forward: ...} or {fixedResponse: ...}",
            ) {
                Some(n) => self.action(n, &f.loc("action"), tgs),
                None => None,
            }
            .unwrap_or(Action::FixedResponse { status_code: 404 });
            let id = format!(
                "rule-{}",
                self.id("rule", &format!("{listener_arn}/{name}"))
            );
            let arn = format!("{listener_arn}/rule/{id}");
            out.push(Rule {
                name,
                id,
                arn,
                priority,
                http_match,
                action,
                at,
            });
        }
        check_unique(
            self.problems,
            "rule name",
            out.iter().map(|v| (v.name.as_str(), &v.at)),
        );
        let mut seen: HashMap<u16, &Rule> = HashMap::new();
        for r in out.iter().filter(|r| r.priority > 0) {
            if let Some(first) = seen.get(&r.priority) {
                self.problems.add(
                    &r.at.field("priority", r.at.pos),
                    format!(
                        "priority {} is already used by rule \"{}\"",
                        r.priority, first.name
                    ),
                    Some("rule priorities must be unique within a listener".into()),
                );
            } else {
                seen.insert(r.priority, r);
            }
        }
        out.sort_by_key(|r| r.priority);
        out
    }

    fn http_match(&mut self, node: &Node, loc: &Loc) -> HttpMatch {
        let mut out = HttpMatch::default();
        let Some(m) = fields(self.problems, node, loc, &["httpMatch"]) else {
            return out;
        };
        let Some(h) = m.require(
            self.problems,
            "httpMatch",
            "the only kind of match is httpMatch",
        ) else {
            return out;
        };
        let Some(f) = fields(
            self.problems,
            h,
            &m.loc("httpMatch"),
            &["method", "pathMatch", "headerMatches"],
        ) else {
            return out;
        };
        if let Some(method) = self.str_field(&f, "method") {
            if method.is_empty()
                || method.len() > 16
                || !method.bytes().all(|b| b.is_ascii_graphic())
                || method.contains('*')
            {
                self.problems.add(
                    &f.loc("method"),
                    format!("method \"{method}\" is not valid"),
                    Some(
                        "a method is 1-16 characters without wildcards, matched exactly, e.g. GET"
                            .into(),
                    ),
                );
            }
            out.method = Some(method);
        }
        if let Some(p) = f.get("pathMatch") {
            out.path_match = self.path_match(p, &f.loc("pathMatch"));
        }
        if f.get("headerMatches").is_some() {
            let hloc = f.loc("headerMatches");
            let items = list(self.problems, f.get("headerMatches"), &hloc);
            if items.is_empty() || items.len() > 5 {
                self.problems.add(
                    &hloc,
                    format!("{} header matches given", items.len()),
                    Some("a rule has 1-5 header matches".into()),
                );
            }
            for (i, n) in items.iter().enumerate() {
                if let Some(hm) = self.header_match(n, &item(&hloc, i, n)) {
                    out.header_matches.push(hm);
                }
            }
        }
        out
    }

    fn path_match(&mut self, node: &Node, loc: &Loc) -> Option<PathMatch> {
        let f = fields(self.problems, node, loc, &["match", "caseSensitive"])?;
        let case_sensitive = self.bool_field(&f, "caseSensitive").unwrap_or(false);
        let m = f.require(self.problems, "match", "{exact: /path} or {prefix: /path}")?;
        let (kind, value_node, vloc) =
            union(self.problems, m, &f.loc("match"), &["exact", "prefix"])?;
        let value = string(self.problems, value_node, &vloc)?;
        const ALLOWED: &str = "@:%_+.~#?&/=-";
        if !value.starts_with('/') {
            self.problems.add(
                &vloc,
                format!("path \"{value}\" does not start with '/'"),
                Some(format!(
                    "write it as \"/{}\"",
                    value.trim_start_matches('/')
                )),
            );
        } else if value.len() > 200 {
            self.problems.add(
                &vloc,
                "a path match is at most 200 characters".to_string(),
                None,
            );
        } else if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ALLOWED.contains(*c)))
        {
            self.problems.add(&vloc, format!("path \"{value}\" contains '{c}'"), Some(format!("path matches use a-z, A-Z, 0-9 and {ALLOWED}; there are no wildcards (use prefix)")));
        }
        let kind = if kind == "exact" {
            PathMatchKind::Exact
        } else {
            PathMatchKind::Prefix
        };
        Some(PathMatch {
            kind,
            value,
            case_sensitive,
        })
    }

    fn header_match(&mut self, node: &Node, loc: &Loc) -> Option<HeaderMatch> {
        let f = fields(
            self.problems,
            node,
            loc,
            &["name", "match", "caseSensitive"],
        )?;
        let name = f
            .require(self.problems, "name", "the header name, e.g. x-env")
            .and_then(|n| string(self.problems, n, &f.loc("name")));
        if let Some(n) = &name
            && (n.is_empty() || n.len() > 100 || n.contains('*') || http_token(n).is_none())
        {
            self.problems.add(
                &f.loc("name"),
                format!("header name \"{n}\" is not valid"),
                Some("a header name is 1-100 token characters without wildcards".into()),
            );
        }
        let case_sensitive = self.bool_field(&f, "caseSensitive").unwrap_or(false);
        let m = f.require(
            self.problems,
            "match",
            "{exact: v}, {prefix: v} or {contains: v}",
        )?;
        let (kind, value_node, vloc) = union(
            self.problems,
            m,
            &f.loc("match"),
            &["exact", "prefix", "contains"],
        )?;
        let value = string(self.problems, value_node, &vloc)?;
        if value.is_empty() || value.len() > 200 {
            self.problems.add(
                &vloc,
                "a header match value is 1-200 characters".to_string(),
                None,
            );
        }
        let kind = match kind.as_str() {
            "exact" => HeaderMatchKind::Exact,
            "prefix" => HeaderMatchKind::Prefix,
            _ => HeaderMatchKind::Contains,
        };
        Some(HeaderMatch {
            name: name?.to_ascii_lowercase(),
            kind,
            value,
            case_sensitive,
        })
    }

    fn action(&mut self, node: &Node, loc: &Loc, tgs: &[Named<'_>]) -> Option<Action> {
        let (kind, inner, iloc) = union(self.problems, node, loc, &["forward", "fixedResponse"])?;
        if kind == "fixedResponse" {
            let f = fields(self.problems, inner, &iloc, &["statusCode"])?;
            let code = f
                .require(self.problems, "statusCode", "e.g. 404")
                .and_then(|n| {
                    int(
                        self.problems,
                        n,
                        &f.loc("statusCode"),
                        100,
                        599,
                        "a fixed-response status code",
                    )
                })?;
            return Some(Action::FixedResponse {
                status_code: code as u16,
            });
        }
        let f = fields(self.problems, inner, &iloc, &["targetGroups"])?;
        let tloc = f.loc("targetGroups");
        let required = f.require(
            self.problems,
            "targetGroups",
            "[{targetGroupIdentifier: my-tg, weight: 100}]",
        );
        let items = list(self.problems, required, &tloc);
        if items.is_empty() || items.len() > 10 {
            self.problems.add(
                &tloc,
                format!("{} target groups in a forward action", items.len()),
                Some("a forward action has 1-10 target groups".into()),
            );
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, n) in items.iter().enumerate() {
            let at = item(&tloc, i, n);
            let Some(w) = fields(self.problems, n, &at, &["targetGroupIdentifier", "weight"])
            else {
                ok = false;
                continue;
            };
            let weight = match w.get("weight") {
                Some(wn) => int(self.problems, wn, &w.loc("weight"), 0, 999, "a weight"),
                None => Some(100),
            };
            let target_group = w
                .require(
                    self.problems,
                    "targetGroupIdentifier",
                    "the name (or id, or ARN) of a target group",
                )
                .and_then(|n| string(self.problems, n, &w.loc("targetGroupIdentifier")))
                .and_then(|text| {
                    resolve(
                        self.problems,
                        &text,
                        &w.loc("targetGroupIdentifier"),
                        "target group",
                        tgs,
                    )
                });
            match (target_group, weight) {
                (Some(target_group), Some(weight)) => out.push(WeightedTargetGroup {
                    target_group,
                    weight: weight as u16,
                }),
                _ => ok = false,
            }
        }
        if ok && !out.is_empty() && out.iter().all(|w| w.weight == 0) {
            self.problems.add(
                &tloc,
                "every target group has weight 0, so no request could be forwarded",
                Some("give at least one target group a weight of 1-999".into()),
            );
        }
        Some(Action::Forward(out))
    }

    fn service_networks(
        &mut self,
        top: &Fields<'_>,
        services: &[Service],
        vpcs: &[Vpc],
    ) -> Vec<ServiceNetwork> {
        const KEYS: &[&str] = &[
            "name",
            "authType",
            "authPolicy",
            "services",
            "vpcs",
            "accessLogs",
        ];
        let loc = top.loc("serviceNetworks");
        let svc_named = named(services, |x| (&x.name, &x.id, &x.arn));
        let vpc_named = named(vpcs, |x| (&x.name, &x.id, &x.arn));
        let mut out = Vec::new();
        for (i, node) in list(self.problems, top.get("serviceNetworks"), &loc)
            .iter()
            .enumerate()
        {
            let at = item(&loc, i, node);
            let Some(f) = fields(self.problems, node, &at, KEYS) else {
                continue;
            };
            let name = self.name(&f, &NETWORK_NAME);
            let id = format!("sn-{}", self.id("servicenetwork", &name));
            let arn = self.arn(&format!("servicenetwork/{id}"));
            let auth_type = self.auth_type(&f);
            let auth_policy = self.auth_policy(&f);
            let mut refs = |key: &str, what: &str, named: &[Named<'_>]| -> Vec<usize> {
                let rloc = f.loc(key);
                let mut found = Vec::new();
                for (j, n) in list(self.problems, f.get(key), &rloc).iter().enumerate() {
                    let iloc = item(&rloc, j, n);
                    if let Some(idx) = string(self.problems, n, &iloc)
                        .and_then(|t| resolve(self.problems, &t, &iloc, what, named))
                    {
                        if found.contains(&idx) {
                            self.problems.add(
                                &iloc,
                                format!("{what} \"{}\" is listed twice", named[idx].name),
                                None,
                            );
                        } else {
                            found.push(idx);
                        }
                    }
                }
                found
            };
            let services = refs("services", "service", &svc_named);
            let vpcs = refs("vpcs", "VPC", &vpc_named);
            let access_logs = self.access_logs(&f);
            out.push(ServiceNetwork {
                name,
                id,
                arn,
                auth_type,
                auth_policy,
                services,
                vpcs,
                access_logs,
                at,
            });
        }
        check_unique(
            self.problems,
            "service network name",
            out.iter().map(|v| (v.name.as_str(), &v.at)),
        );
        out
    }
}

/// Checks that span sections: ports shared by listeners, target groups shared by services,
/// VPCs associated with several networks.
fn cross_checks(problems: &mut Problems, config: &Config) {
    let mut ports: HashMap<u16, (&Listener, &Service)> = HashMap::new();
    for svc in &config.services {
        for l in &svc.listeners {
            match ports.get(&l.port) {
                Some((first, first_svc)) if first.protocol != l.protocol => problems.add(
                    &l.at,
                    format!("port {} is {} here but {} on listener \"{}\" of service \"{}\"", l.port, l.protocol.as_str(), first.protocol.as_str(), first.name, first_svc.name),
                    Some("listeners of several services may share a port only with the same protocol".into()),
                ),
                Some(_) => {}
                None => {
                    ports.insert(l.port, (l, svc));
                }
            }
        }
    }
    let mut owner: HashMap<usize, &Service> = HashMap::new();
    for svc in &config.services {
        for l in &svc.listeners {
            let actions =
                std::iter::once(&l.default_action).chain(l.rules.iter().map(|r| &r.action));
            for action in actions {
                let Action::Forward(tgs) = action else {
                    continue;
                };
                for w in tgs {
                    match owner.get(&w.target_group) {
                        Some(first) if first.name != svc.name => problems.add(
                            &l.at,
                            format!("target group \"{}\" is already used by service \"{}\"", config.target_groups[w.target_group].name, first.name),
                            Some("in VPC Lattice a target group belongs to one service; define a second target group with the same targets".into()),
                        ),
                        Some(_) => {}
                        None => {
                            owner.insert(w.target_group, svc);
                        }
                    }
                }
            }
        }
    }
    let mut vpc_owner: HashMap<usize, &ServiceNetwork> = HashMap::new();
    for sn in &config.service_networks {
        for v in &sn.vpcs {
            if let Some(first) = vpc_owner.get(v) {
                problems.add(
                    &sn.at.field("vpcs", sn.at.pos),
                    format!(
                        "VPC \"{}\" is already associated with service network \"{}\"",
                        config.vpcs[*v].name, first.name
                    ),
                    Some("a VPC can be associated with only one service network".into()),
                );
            } else {
                vpc_owner.insert(*v, sn);
            }
        }
    }
}

fn default_health_check(enabled: bool, protocol: TargetProtocol) -> HealthCheck {
    HealthCheck {
        enabled,
        protocol,
        protocol_version: ProtocolVersion::Http1,
        port: None,
        path: "/".to_string(),
        interval_seconds: 30,
        timeout_seconds: 5,
        healthy_threshold: 5,
        unhealthy_threshold: 2,
        matcher: vec![(200, 200)],
    }
}

/// `200`, `200,202`, `200-299` (codes 200-499).
pub fn parse_matcher(text: &str) -> Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) else {
            return Err(format!("\"{part}\" is not a status code or range"));
        };
        if !(200..=499).contains(&lo) || !(200..=499).contains(&hi) {
            return Err(format!("{part} is outside 200-499"));
        }
        if lo > hi {
            return Err(format!("range {part} is reversed"));
        }
        out.push((lo, hi));
    }
    Ok(out)
}

/// `10.0.0.0/16`, `::1/128`, or a bare address (a /32 or /128).
pub fn parse_cidr(text: &str) -> Option<Cidr> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some(Cidr { addr, prefix })
}

fn http_token(name: &str) -> Option<()> {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        .then_some(())
}

/// Renders a YAML subtree as JSON text (auth policies are JSON documents).
fn to_json(node: &Node) -> String {
    match &node.value {
        Value::Scalar { text, quoted } => {
            if !quoted && (text.parse::<f64>().is_ok() || text == "true" || text == "false") {
                text.clone()
            } else if !quoted && crate::yaml::is_null(text) {
                "null".into()
            } else {
                json_string(text)
            }
        }
        Value::Seq(items) => format!(
            "[{}]",
            items.iter().map(to_json).collect::<Vec<_>>().join(",")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}:{}", json_string(k.key_text()), to_json(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
