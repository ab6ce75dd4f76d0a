//! The effective config as a CloudFormation template (JSON).
//!
//! What maps to AWS is written as the `AWS::VpcLattice::*` resource that creates it on AWS;
//! what only exists locally becomes a template Parameter the deployer fills in:
//!
//! - a VPC (named by its CIDR blocks here) → a Parameter of type `AWS::EC2::VPC::Id` per VPC a
//!   network associates, and a `CommaDelimitedList` of security group ids (empty: none);
//! - INSTANCE, IP and ALB targets (host names and loopback addresses here) → one String
//!   Parameter per target, its default the local id; the groups' VPC → one Parameter;
//! - access-log destinations (stdout, files) → a String Parameter per destination (the ARN of a
//!   log group, bucket or stream);
//! - a function's code and role → Parameters (S3 bucket and key, or image URI; one role for
//!   all), its settings as they are (timeout, memory size, environment, concurrency as reserved
//!   concurrency); LAMBDA targets reference the function with `Fn::GetAtt [F, Arn]`, and an
//!   `AWS::Lambda::Permission` lets VPC Lattice invoke it (the target group depends on it);
//! - an HTTPS listener's certificate files → the service's `CertificateArn` Parameter (empty:
//!   none).
//!
//! What has no CloudFormation counterpart at all (identities and their policies, a wasm
//! runtime, pool settings, the local paths) is kept in each resource's `Metadata.Trellis` so
//! nothing is silently lost.
//! Keys are written sorted, so the same config gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use trellis_config::*;

/// The config as a CloudFormation template (see the module docs).
pub fn cloudformation(config: &Config) -> String {
    let mut t = Template::new(config);
    t.build();
    let mut out = serde_json::to_string_pretty(&t.finish()).unwrap_or_default();
    out.push('\n');
    out
}

struct Template<'c> {
    config: &'c Config,
    ids: LogicalIds,
    parameters: Map<String, Value>,
    conditions: Map<String, Value>,
    resources: Map<String, Value>,
    outputs: Map<String, Value>,
    /// Logical ids by config index.
    services: Vec<String>,
    target_groups: Vec<String>,
    functions: BTreeMap<String, String>,
}

impl<'c> Template<'c> {
    fn new(config: &'c Config) -> Template<'c> {
        Template {
            config,
            ids: LogicalIds::default(),
            parameters: Map::new(),
            conditions: Map::new(),
            resources: Map::new(),
            outputs: Map::new(),
            services: Vec::new(),
            target_groups: Vec::new(),
            functions: BTreeMap::new(),
        }
    }

    fn build(&mut self) {
        let config = self.config;
        if !config.functions.is_empty() {
            self.parameters.insert(
                "LambdaExecutionRoleArn".into(),
                json!({"Type": "String", "Description":
                    "The execution role of every function (Trellis runs functions without one)"}),
            );
        }
        for f in &config.functions {
            self.function(f);
        }
        // Target groups' logical ids first: listeners and rules refer to them.
        for tg in &config.target_groups {
            let id = self.ids.make("TargetGroup", &tg.name);
            self.target_groups.push(id);
        }
        for (i, tg) in config.target_groups.iter().enumerate() {
            self.target_group(i, tg);
        }
        for s in &config.services {
            self.service(s);
        }
        for n in &config.service_networks {
            self.network(n);
        }
    }

    fn finish(self) -> Value {
        let mut t = Map::new();
        t.insert("AWSTemplateFormatVersion".into(), json!("2010-09-09"));
        t.insert(
            "Description".into(),
            json!(format!(
                "VPC Lattice objects exported by `trellis export --format cloudformation` from a Trellis config (region {}, account {})",
                self.config.region, self.config.account_id
            )),
        );
        let mut meta = Map::new();
        if let Some(identities) = &self.config.identities {
            let arns: Vec<&str> = identities.iter().map(|i| i.arn.as_str()).collect();
            let mut entry = json!({"Note": "Trellis's local signers; on AWS callers sign with real IAM credentials", "Arns": arns});
            // Identity policies belong to IAM, not to VPC Lattice: kept here, by principal, for
            // whoever makes the IAM policies on AWS.
            let policies: Map<String, Value> = identities
                .iter()
                .filter_map(|i| {
                    let policy = i.policy.as_ref()?;
                    let document = serde_json::from_str(&policy.normalised()).ok()?;
                    Some((i.arn.clone(), document))
                })
                .collect();
            if !policies.is_empty() {
                entry["IdentityPolicies"] = Value::Object(policies);
            }
            meta.insert("Identities".into(), entry);
        }
        if !meta.is_empty() {
            t.insert("Metadata".into(), json!({ "Trellis": meta }));
        }
        for (key, map) in [
            ("Parameters", self.parameters),
            ("Conditions", self.conditions),
            ("Resources", self.resources),
            ("Outputs", self.outputs),
        ] {
            if !map.is_empty() {
                t.insert(key.into(), Value::Object(map));
            }
        }
        Value::Object(t)
    }

    fn function(&mut self, f: &Function) {
        let id = self.ids.make("Function", &f.name);
        self.functions.insert(f.name.clone(), id.clone());
        let mut props = Map::new();
        props.insert("FunctionName".into(), json!(f.name));
        props.insert("Role".into(), json!({"Ref": "LambdaExecutionRoleArn"}));
        let mut local = Map::new();
        local.insert("Runtime".into(), json!(f.runtime.as_str()));
        if f.runtime == FunctionRuntime::Container {
            let p = self.ids.make(&format!("{id}ImageUri"), "");
            self.parameters.insert(
                p.clone(),
                json!({"Type": "String", "Description": format!(
                    "The ECR image URI of function {} (Trellis runs it from {})",
                    f.name,
                    f.image.clone().or_else(|| f.build.as_ref().map(|b| format!("the build directory {}", b.display()))).unwrap_or_default()
                )}),
            );
            props.insert("PackageType".into(), json!("Image"));
            props.insert("Code".into(), json!({"ImageUri": {"Ref": p}}));
        } else {
            let bucket = self.ids.make(&format!("{id}CodeS3Bucket"), "");
            let key = self.ids.make(&format!("{id}CodeS3Key"), "");
            let what = match f.runtime {
                FunctionRuntime::Wasm => "a zip with a bootstrap that runs the WebAssembly module",
                _ => "a zip of the program as bootstrap",
            };
            self.parameters.insert(
                bucket.clone(),
                json!({"Type": "String", "Description": format!("The S3 bucket of function {}'s code ({what})", f.name)}),
            );
            self.parameters.insert(
                key.clone(),
                json!({"Type": "String", "Description": format!("The S3 key of function {}'s code ({what})", f.name)}),
            );
            props.insert("PackageType".into(), json!("Zip"));
            props.insert("Runtime".into(), json!("provided.al2023"));
            props.insert("Handler".into(), json!("bootstrap"));
            props.insert(
                "Code".into(),
                json!({"S3Bucket": {"Ref": bucket}, "S3Key": {"Ref": key}}),
            );
        }
        if let Some(code) = &f.code {
            local.insert("Code".into(), json!(code.to_string_lossy()));
        }
        if !f.command.is_empty() {
            local.insert("Command".into(), json!(f.command));
        }
        if f.runtime != FunctionRuntime::Wasm {
            local.insert("Provisioned".into(), json!(f.provisioned));
            local.insert("IdleTimeoutSeconds".into(), json!(f.idle_timeout_seconds));
        }
        props.insert("Timeout".into(), json!(f.timeout_seconds));
        props.insert("MemorySize".into(), json!(f.memory_size_mb));
        props.insert("ReservedConcurrentExecutions".into(), json!(f.concurrency));
        if !f.environment.is_empty() {
            props.insert("Environment".into(), json!({ "Variables": f.environment }));
        }
        self.resources.insert(
            id,
            json!({"Type": "AWS::Lambda::Function", "Properties": props,
                "Metadata": {"Trellis": local}}),
        );
    }

    fn target_group(&mut self, i: usize, tg: &TargetGroup) {
        let id = self.target_groups[i].clone();
        let mut props = Map::new();
        props.insert("Name".into(), json!(tg.name));
        props.insert("Type".into(), json!(tg.kind.as_str()));
        let mut depends = Vec::new();
        let mut targets = Vec::new();
        if tg.kind == TargetGroupType::Lambda {
            let version = match tg.lambda_event_structure_version {
                EventVersion::V1 => "V1",
                EventVersion::V2 => "V2",
            };
            props.insert(
                "Config".into(),
                json!({"LambdaEventStructureVersion": version}),
            );
            for t in &tg.targets {
                let Some(function) = self.functions.get(&t.id).cloned() else {
                    continue;
                };
                let permission = self
                    .ids
                    .make("Permission", &format!("{}-{}", tg.name, t.id));
                self.resources.insert(
                    permission.clone(),
                    json!({"Type": "AWS::Lambda::Permission", "Properties": {
                        "Action": "lambda:InvokeFunction",
                        "FunctionName": {"Fn::GetAtt": [function, "Arn"]},
                        "Principal": "vpc-lattice.amazonaws.com",
                        "SourceAccount": {"Ref": "AWS::AccountId"}
                    }}),
                );
                depends.push(permission);
                targets.push(json!({"Id": {"Fn::GetAtt": [function, "Arn"]}}));
            }
        } else {
            self.parameters.entry("TargetVpcId").or_insert_with(|| {
                json!({"Type": "AWS::EC2::VPC::Id", "Description":
                    "The VPC of the INSTANCE, IP and ALB target groups' targets"})
            });
            let hc = &tg.health_check;
            let mut check = Map::new();
            check.insert("Enabled".into(), json!(hc.enabled));
            check.insert("Protocol".into(), json!(hc.protocol.as_str()));
            check.insert(
                "ProtocolVersion".into(),
                json!(hc.protocol_version.as_str()),
            );
            if let Some(port) = hc.port {
                check.insert("Port".into(), json!(port));
            }
            check.insert("Path".into(), json!(hc.path));
            check.insert(
                "HealthCheckIntervalSeconds".into(),
                json!(hc.interval_seconds),
            );
            check.insert(
                "HealthCheckTimeoutSeconds".into(),
                json!(hc.timeout_seconds),
            );
            check.insert("HealthyThresholdCount".into(), json!(hc.healthy_threshold));
            check.insert(
                "UnhealthyThresholdCount".into(),
                json!(hc.unhealthy_threshold),
            );
            check.insert("Matcher".into(), json!({"HttpCode": hc.matcher_text()}));
            props.insert(
                "Config".into(),
                json!({
                    "Port": tg.port,
                    "Protocol": tg.protocol.as_str(),
                    "ProtocolVersion": tg.protocol_version.as_str(),
                    "VpcIdentifier": {"Ref": "TargetVpcId"},
                    "HealthCheck": check,
                }),
            );
            let kind = match tg.kind {
                TargetGroupType::Instance => "an EC2 instance id",
                TargetGroupType::Ip => "an IP address",
                _ => "an Application Load Balancer ARN",
            };
            for (n, t) in tg.targets.iter().enumerate() {
                let p = self.ids.make(&format!("{id}Target{}Id", n + 1), "");
                self.parameters.insert(
                    p.clone(),
                    json!({"Type": "String", "Default": t.id, "Description": format!(
                        "Target {} of target group {}: {kind} (Trellis: {}:{})",
                        n + 1, tg.name, t.id, t.port
                    )}),
                );
                targets.push(json!({"Id": {"Ref": p}, "Port": t.port}));
            }
        }
        if !targets.is_empty() {
            props.insert("Targets".into(), Value::Array(targets));
        }
        let mut resource = json!({"Type": "AWS::VpcLattice::TargetGroup", "Properties": props});
        if !depends.is_empty() {
            resource["DependsOn"] = json!(depends);
        }
        self.resources.insert(id, resource);
    }

    fn service(&mut self, s: &Service) {
        let id = self.ids.make("Service", &s.name);
        self.services.push(id.clone());
        let mut props = Map::new();
        props.insert("Name".into(), json!(s.name));
        props.insert("AuthType".into(), json!(auth_type(s.auth_type)));
        props.insert("IdleTimeoutSeconds".into(), json!(s.idle_timeout_seconds));
        if let Some(domain) = &s.custom_domain_name {
            props.insert("CustomDomainName".into(), json!(domain));
        }
        if !s.tags.is_empty() {
            let tags: Vec<Value> = s
                .tags
                .iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect();
            props.insert("Tags".into(), Value::Array(tags));
        }
        let certificates: Vec<&TlsFiles> =
            s.listeners.iter().filter_map(|l| l.tls.as_ref()).collect();
        if let Some(tls) = certificates.first() {
            let p = self.ids.make(&format!("{id}CertificateArn"), "");
            let condition = self.ids.make(&format!("{id}HasCertificate"), "");
            self.parameters.insert(
                p.clone(),
                json!({"Type": "String", "Default": "", "Description": format!(
                    "The ACM certificate of service {} (Trellis: {}); empty for none",
                    s.name, tls.certificate.display()
                )}),
            );
            self.conditions.insert(
                condition.clone(),
                json!({"Fn::Not": [{"Fn::Equals": [{"Ref": p}, ""]}]}),
            );
            props.insert(
                "CertificateArn".into(),
                json!({"Fn::If": [condition, {"Ref": p}, {"Ref": "AWS::NoValue"}]}),
            );
        }
        self.resources.insert(
            id.clone(),
            json!({"Type": "AWS::VpcLattice::Service", "Properties": props}),
        );
        self.outputs.insert(
            format!("{id}DnsName"),
            json!({"Description": format!("The generated DNS name of service {}", s.name),
                "Value": {"Fn::GetAtt": [id, "DnsEntry.DomainName"]}}),
        );
        self.auth_policy(&id, &s.name, s.auth_policy.as_ref());
        self.access_logs(&id, &s.name, &s.access_logs);
        for l in &s.listeners {
            self.listener(&id, s, l);
        }
    }

    fn listener(&mut self, service: &str, s: &Service, l: &Listener) {
        let id = self.ids.make("Listener", &format!("{}-{}", s.name, l.name));
        let props = json!({
            "Name": l.name,
            "Protocol": l.protocol.as_str(),
            "Port": l.port,
            "ServiceIdentifier": {"Fn::GetAtt": [service, "Id"]},
            "DefaultAction": self.action(&l.default_action),
        });
        self.resources.insert(
            id.clone(),
            json!({"Type": "AWS::VpcLattice::Listener", "Properties": props}),
        );
        for r in &l.rules {
            let rule = self
                .ids
                .make("Rule", &format!("{}-{}-{}", s.name, l.name, r.name));
            let m = &r.http_match;
            let mut http = Map::new();
            if let Some(method) = &m.method {
                http.insert("Method".into(), json!(method));
            }
            if let Some(p) = &m.path_match {
                let kind = match p.kind {
                    PathMatchKind::Exact => "Exact",
                    PathMatchKind::Prefix => "Prefix",
                };
                http.insert(
                    "PathMatch".into(),
                    json!({"Match": {kind: p.value}, "CaseSensitive": p.case_sensitive}),
                );
            }
            if !m.header_matches.is_empty() {
                let headers: Vec<Value> = m
                    .header_matches
                    .iter()
                    .map(|h| {
                        let kind = match h.kind {
                            HeaderMatchKind::Exact => "Exact",
                            HeaderMatchKind::Prefix => "Prefix",
                            HeaderMatchKind::Contains => "Contains",
                        };
                        json!({"Name": h.name, "Match": {kind: h.value}, "CaseSensitive": h.case_sensitive})
                    })
                    .collect();
                http.insert("HeaderMatches".into(), json!(headers));
            }
            let props = json!({
                "Name": r.name,
                "Priority": r.priority,
                "ServiceIdentifier": {"Fn::GetAtt": [service, "Id"]},
                "ListenerIdentifier": {"Fn::GetAtt": [id, "Id"]},
                "Match": {"HttpMatch": http},
                "Action": self.action(&r.action),
            });
            self.resources.insert(
                rule,
                json!({"Type": "AWS::VpcLattice::Rule", "Properties": props}),
            );
        }
    }

    fn action(&self, a: &Action) -> Value {
        match a {
            Action::FixedResponse { status_code } => {
                json!({"FixedResponse": {"StatusCode": status_code}})
            }
            Action::Forward(groups) => {
                let groups: Vec<Value> = groups
                    .iter()
                    .filter_map(|w| {
                        let tg = self.target_groups.get(w.target_group)?;
                        Some(json!({"TargetGroupIdentifier": {"Fn::GetAtt": [tg, "Id"]}, "Weight": w.weight}))
                    })
                    .collect();
                json!({"Forward": {"TargetGroups": groups}})
            }
        }
    }

    fn network(&mut self, n: &ServiceNetwork) {
        let config = self.config;
        let id = self.ids.make("ServiceNetwork", &n.name);
        self.resources.insert(
            id.clone(),
            json!({"Type": "AWS::VpcLattice::ServiceNetwork", "Properties": {
                "Name": n.name, "AuthType": auth_type(n.auth_type)}}),
        );
        self.auth_policy(&id, &n.name, n.auth_policy.as_ref());
        self.access_logs(&id, &n.name, &n.access_logs);
        for &i in &n.services {
            let (Some(svc), Some(svc_id)) = (config.services.get(i), self.services.get(i).cloned())
            else {
                continue;
            };
            let assoc = self
                .ids
                .make("ServiceAssociation", &format!("{}-{}", n.name, svc.name));
            self.resources.insert(
                assoc,
                json!({"Type": "AWS::VpcLattice::ServiceNetworkServiceAssociation", "Properties": {
                    "ServiceNetworkIdentifier": {"Fn::GetAtt": [id, "Id"]},
                    "ServiceIdentifier": {"Fn::GetAtt": [svc_id, "Id"]}}}),
            );
        }
        for &i in &n.vpcs {
            let Some(vpc) = config.vpcs.get(i) else {
                continue;
            };
            let vpc_param = self.ids.make("Vpc", &format!("{}-id", vpc.name));
            let groups = self
                .ids
                .make("Vpc", &format!("{}-security-group-ids", vpc.name));
            let has_groups = self
                .ids
                .make("Vpc", &format!("{}-has-security-groups", vpc.name));
            let cidrs: Vec<String> = vpc.cidrs.iter().map(|c| c.to_string()).collect();
            self.parameters.insert(
                vpc_param.clone(),
                json!({"Type": "AWS::EC2::VPC::Id", "Description": format!(
                    "VPC {} (Trellis: the clients from {})", vpc.name, cidrs.join(", "))}),
            );
            self.parameters.insert(
                groups.clone(),
                json!({"Type": "CommaDelimitedList", "Default": "", "Description": format!(
                    "Security groups of VPC {}'s association with service network {} (Trellis admits the clients by CIDR block); empty for none",
                    vpc.name, n.name)}),
            );
            self.conditions.insert(
                has_groups.clone(),
                json!({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": groups}]}, ""]}]}),
            );
            let assoc = self
                .ids
                .make("VpcAssociation", &format!("{}-{}", n.name, vpc.name));
            self.resources.insert(
                assoc,
                json!({"Type": "AWS::VpcLattice::ServiceNetworkVpcAssociation", "Properties": {
                    "ServiceNetworkIdentifier": {"Fn::GetAtt": [id, "Id"]},
                    "VpcIdentifier": {"Ref": vpc_param},
                    "SecurityGroupIds": {"Fn::If": [has_groups, {"Ref": groups}, {"Ref": "AWS::NoValue"}]}}}),
            );
        }
    }

    fn auth_policy(&mut self, owner: &str, name: &str, policy: Option<&AuthPolicy>) {
        let Some(policy) = policy else { return };
        let document: Value = serde_json::from_str(&policy.0.normalised()).unwrap_or(Value::Null);
        let id = self.ids.make("AuthPolicy", name);
        self.resources.insert(
            id,
            json!({"Type": "AWS::VpcLattice::AuthPolicy", "Properties": {
                "ResourceIdentifier": {"Fn::GetAtt": [owner, "Id"]},
                "Policy": document}}),
        );
    }

    fn access_logs(&mut self, owner: &str, name: &str, logs: &[LogDestination]) {
        for (n, d) in logs.iter().enumerate() {
            let local = match d {
                LogDestination::Stdout => "stdout".to_string(),
                LogDestination::File(p) => format!("file:{}", p.display()),
            };
            let id = self.ids.make("AccessLogs", &format!("{name}-{}", n + 1));
            let p = self.ids.make(&format!("{id}DestinationArn"), "");
            self.parameters.insert(
                p.clone(),
                json!({"Type": "String", "Description": format!(
                    "Where {name}'s access logs go: a CloudWatch Logs log group, S3 bucket or Firehose stream ARN (Trellis: {local})")}),
            );
            self.resources.insert(
                id,
                json!({"Type": "AWS::VpcLattice::AccessLogSubscription", "Properties": {
                    "ResourceIdentifier": {"Fn::GetAtt": [owner, "Id"]},
                    "DestinationArn": {"Ref": p}}}),
            );
        }
    }
}

fn auth_type(t: AuthType) -> &'static str {
    match t {
        AuthType::None => "NONE",
        AuthType::AwsIam => "AWS_IAM",
    }
}

/// Logical ids: the kind and the name in CamelCase (`Service` + `lattice-svc` →
/// `ServiceLatticeSvc`), alphanumeric as CloudFormation requires; a name that collides after
/// the case change (`a-b` and `a_b` both give `AB`) gets a number.
#[derive(Default)]
struct LogicalIds {
    taken: BTreeSet<String>,
}

impl LogicalIds {
    fn make(&mut self, kind: &str, name: &str) -> String {
        let mut base = kind.to_string();
        for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                base.push(first.to_ascii_uppercase());
                base.extend(chars);
            }
        }
        let mut id = base.clone();
        let mut n = 2;
        while !self.taken.insert(id.clone()) {
            id = format!("{base}{n}");
            n += 1;
        }
        id
    }
}
