//! Config files built from typed parts, for the shapes the tests use again and again (services
//! whose listeners forward to target groups over local backends, VPCs, service networks,
//! functions), so that a test says what it configures instead of repeating YAML in format
//! strings. The file is written as JSON, which is YAML too. A test whose point is a particular
//! YAML text (line numbers, spelling, comments) keeps that text.

use serde_json::{Map, Value, json};

/// A whole config file; [`Config::yaml`] gives its text.
#[derive(Debug, Clone)]
pub struct Config(Map<String, Value>);

impl Default for Config {
    /// `region: us-west-2` and nothing else.
    fn default() -> Config {
        Config(object(json!({"region": "us-west-2"})))
    }
}

impl Config {
    pub fn new() -> Config {
        Config::default()
    }

    pub fn region(mut self, region: &str) -> Config {
        self.0.insert("region".into(), region.into());
        self
    }

    /// A VPC whose clients are the addresses in `cidrs`.
    pub fn vpc(self, name: &str, cidrs: &[&str]) -> Config {
        self.push("vpcs", json!({"name": name, "cidrs": cidrs}))
    }

    pub fn network(self, network: Network) -> Config {
        self.push("serviceNetworks", Value::Object(network.0))
    }

    pub fn service(self, service: Service) -> Config {
        self.push("services", Value::Object(service.0))
    }

    pub fn target_group(self, group: TargetGroup) -> Config {
        self.push("targetGroups", Value::Object(group.0))
    }

    /// A function: its name, `runtime` and further keys, e.g.
    /// `json!({"name": "f", "runtime": "container", "image": "x"})`.
    pub fn function(self, function: Value) -> Config {
        self.push("functions", function)
    }

    /// A top-level key (e.g. `identities`) with any value.
    pub fn set(mut self, key: &str, value: Value) -> Config {
        self.0.insert(key.into(), value);
        self
    }

    /// The config file's text.
    pub fn yaml(&self) -> String {
        serde_json::to_string_pretty(&self.0).expect("a config is plain JSON")
    }

    fn push(mut self, section: &str, item: Value) -> Config {
        push(&mut self.0, section, item);
        self
    }
}

/// A service network associating services and VPCs.
#[derive(Debug, Clone)]
pub struct Network(Map<String, Value>);

impl Network {
    pub fn new(name: &str, services: &[&str], vpcs: &[&str]) -> Network {
        Network(object(
            json!({"name": name, "services": services, "vpcs": vpcs}),
        ))
    }

    /// An access log destination (`stdout`, `file:PATH`).
    pub fn access_log(mut self, destination: &str) -> Network {
        push_access_log(&mut self.0, destination);
        self
    }

    /// `authType: AWS_IAM` with `policy` (a JSON policy document; `None`: no policy).
    pub fn iam(mut self, policy: Option<Value>) -> Network {
        set_iam(&mut self.0, policy);
        self
    }
}

fn set_iam(map: &mut Map<String, Value>, policy: Option<Value>) {
    map.insert("authType".into(), "AWS_IAM".into());
    if let Some(policy) = policy {
        map.insert("authPolicy".into(), policy);
    }
}

/// A service and its listeners.
#[derive(Debug, Clone)]
pub struct Service(Map<String, Value>);

impl Service {
    pub fn new(name: &str) -> Service {
        Service(object(json!({"name": name, "listeners": []})))
    }

    pub fn listener(mut self, listener: Listener) -> Service {
        push(&mut self.0, "listeners", Value::Object(listener.0));
        self
    }

    pub fn custom_domain(mut self, domain: &str) -> Service {
        self.0.insert("customDomainName".into(), domain.into());
        self
    }

    /// An access log destination (`stdout`, `file:PATH`).
    pub fn access_log(mut self, destination: &str) -> Service {
        push_access_log(&mut self.0, destination);
        self
    }

    /// `authType: AWS_IAM` with `policy` (a JSON policy document; `None`: no policy).
    pub fn iam(mut self, policy: Option<Value>) -> Service {
        set_iam(&mut self.0, policy);
        self
    }

    /// The service's `tags` (a mapping of keys to values).
    pub fn tags(mut self, tags: Value) -> Service {
        self.0.insert("tags".into(), tags);
        self
    }
}

/// A listener: its protocol, port, default action and rules.
#[derive(Debug, Clone)]
pub struct Listener(Map<String, Value>);

impl Listener {
    /// A listener that answers 404 until [`Listener::forward`] or [`Listener::action`] says
    /// otherwise.
    pub fn new(name: &str, protocol: &str, port: u16) -> Listener {
        Listener(object(json!({
            "name": name,
            "protocol": protocol,
            "port": port,
            "defaultAction": fixed_response(404),
        })))
    }

    /// `http`: HTTP on `port`.
    pub fn http(port: u16) -> Listener {
        Listener::new("http", "HTTP", port)
    }

    /// `https`: HTTPS on `port` (with a generated certificate unless [`Listener::tls`]).
    pub fn https(port: u16) -> Listener {
        Listener::new("https", "HTTPS", port)
    }

    /// The default action: forward to target group `group`.
    pub fn forward(self, group: &str) -> Listener {
        self.action(forward(group))
    }

    /// The default action.
    pub fn action(mut self, action: Value) -> Listener {
        self.0.insert("defaultAction".into(), action);
        self
    }

    /// The certificate and key files the listener serves.
    pub fn tls(mut self, certificate: &str, key: &str) -> Listener {
        let tls = json!({"certificate": certificate, "key": key});
        self.0.insert("tls".into(), tls);
        self
    }

    /// A rule: `http_match` is its `httpMatch` (see [`path_prefix`], [`header_exact`]).
    pub fn rule(mut self, name: &str, priority: u32, http_match: Value, action: Value) -> Listener {
        let rule = json!({
            "name": name,
            "priority": priority,
            "match": {"httpMatch": http_match},
            "action": action,
        });
        push(&mut self.0, "rules", rule);
        self
    }
}

/// A target group.
#[derive(Debug, Clone)]
pub struct TargetGroup(Map<String, Value>);

impl TargetGroup {
    /// An INSTANCE group (HTTP, port 80) over backends on 127.0.0.1 at `ports`.
    pub fn instance(name: &str, ports: &[u16]) -> TargetGroup {
        TargetGroup::local("INSTANCE", name, ports)
    }

    /// An IP group (HTTP, port 80) over backends on 127.0.0.1 at `ports`.
    pub fn ip(name: &str, ports: &[u16]) -> TargetGroup {
        TargetGroup::local("IP", name, ports)
    }

    /// A LAMBDA group whose one target is `function`; `version` is the event structure version
    /// (`V1`, `V2`).
    pub fn lambda(name: &str, function: &str, version: &str) -> TargetGroup {
        TargetGroup(object(json!({
            "name": name,
            "type": "LAMBDA",
            "config": {"lambdaEventStructureVersion": version},
            "targets": [{"id": function}],
        })))
    }

    fn local(kind: &str, name: &str, ports: &[u16]) -> TargetGroup {
        let targets: Vec<Value> = ports
            .iter()
            .map(|port| json!({"id": "127.0.0.1", "port": port}))
            .collect();
        TargetGroup(object(json!({
            "name": name,
            "type": kind,
            "config": {"port": 80, "protocol": "HTTP"},
            "targets": targets,
        })))
    }

    /// Sets `key` of the group's `config` (`protocol`, `protocolVersion`, `healthCheck`, …).
    pub fn config(mut self, key: &str, value: impl Into<Value>) -> TargetGroup {
        let config = self
            .0
            .entry("config")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("config is a map");
        config.insert(key.into(), value.into());
        self
    }

    /// Health checks off: probes never reach the backends, and every target is in service
    /// from the start.
    pub fn no_health_checks(self) -> TargetGroup {
        self.config("healthCheck", json!({"enabled": false}))
    }
}

/// Action: forward to target group `group` (weight left to its default).
pub fn forward(group: &str) -> Value {
    json!({"forward": {"targetGroups": [{"targetGroupIdentifier": group}]}})
}

/// Action: forward over weighted target groups.
pub fn forward_weighted(groups: &[(&str, u32)]) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .map(|(group, weight)| json!({"targetGroupIdentifier": group, "weight": weight}))
        .collect();
    json!({"forward": {"targetGroups": groups}})
}

/// Action: answer `status` without a target.
pub fn fixed_response(status: u16) -> Value {
    json!({"fixedResponse": {"statusCode": status}})
}

/// `httpMatch`: the path starts with `prefix`.
pub fn path_prefix(prefix: &str) -> Value {
    json!({"pathMatch": {"match": {"prefix": prefix}}})
}

/// `httpMatch`: header `name` is `value` (case-insensitive).
pub fn header_exact(name: &str, value: &str) -> Value {
    json!({"headerMatches": [{"name": name, "match": {"exact": value}}]})
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not a map: {other}"),
    }
}

/// Appends `item` to the list `key` of `map`, starting the list if needed.
fn push(map: &mut Map<String, Value>, key: &str, item: Value) {
    let list = map.entry(key).or_insert_with(|| json!([]));
    list.as_array_mut().expect("a list").push(item);
}

/// Adds an access log destination to a service's or a network's `accessLogs`.
fn push_access_log(object: &mut Map<String, Value>, destination: &str) {
    push(object, "accessLogs", json!({"destination": destination}));
}
