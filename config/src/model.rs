//! The validated configuration: every default applied, every reference resolved to an index.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::decode::Loc;

/// The whole file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Used in ARNs and generated DNS names (default `us-east-1`).
    pub region: String,
    /// The account id in ARNs (default `123456789012`).
    pub account_id: String,
    pub vpcs: Vec<Vpc>,
    pub service_networks: Vec<ServiceNetwork>,
    pub services: Vec<Service>,
    pub target_groups: Vec<TargetGroup>,
    pub functions: Vec<Function>,
    /// Who may sign requests; `None` when the file has no `identities` (then the key pair
    /// `test`/`test` signs as `user/test`: see [`Config::signers`]).
    pub identities: Option<Vec<trellis_auth::Identity>>,
    /// For each of `identities` (same order), the fields written with environment variables
    /// (`secretAccessKey: ${ORDERING_SECRET}`), by key, as written: `trellis export` writes
    /// this text back rather than the secret the environment gave, so an export never holds a
    /// secret the file did not. Empty when there are no identities.
    pub identity_env: Vec<BTreeMap<String, String>>,
}

impl Config {
    /// The identities whose signatures verify: the file's, or the default `test`/`test`.
    pub fn signers(&self) -> Vec<trellis_auth::Identity> {
        self.identities
            .clone()
            .unwrap_or_else(|| vec![trellis_auth::Identity::default_for(&self.account_id)])
    }
}

/// Where an object came from, for messages at run time.
pub type Origin = Loc;

/// A client network: a request's source address picks its VPC.
#[derive(Debug, Clone)]
pub struct Vpc {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub cidrs: Vec<Cidr>,
    pub at: Origin,
}

/// An address block such as `10.0.0.0/16` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this block. IPv4-mapped IPv6 addresses match IPv4 blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    None,
    AwsIam,
}

/// A parsed, validated auth policy (shared: the routing table keeps it for the authorize
/// phase).
#[derive(Clone)]
pub struct AuthPolicy(pub std::sync::Arc<trellis_auth::policy::Policy>);

impl std::fmt::Debug for AuthPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.normalised())
    }
}

/// Where access-log records go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogDestination {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct ServiceNetwork {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub auth_type: AuthType,
    /// The IAM auth policy, in force when `auth_type` is `AwsIam`.
    pub auth_policy: Option<AuthPolicy>,
    /// Indices into [`Config::services`].
    pub services: Vec<usize>,
    /// Indices into [`Config::vpcs`].
    pub vpcs: Vec<usize>,
    pub access_logs: Vec<LogDestination>,
    pub at: Origin,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub id: String,
    pub arn: String,
    /// `<name>-<id>.7d67968.vpc-lattice-svcs.<region>.on.aws`
    pub dns_name: String,
    pub custom_domain_name: Option<String>,
    pub auth_type: AuthType,
    /// The IAM auth policy, in force when `auth_type` is `AwsIam`.
    pub auth_policy: Option<AuthPolicy>,
    pub idle_timeout_seconds: u32,
    pub access_logs: Vec<LogDestination>,
    /// The service's tags: the file's `tags`, or for a service made through the API the tags
    /// given to `CreateService` and `TagResource`. Auth policies read them as
    /// `aws:ResourceTag/<key>`.
    pub tags: Vec<(String, String)>,
    pub listeners: Vec<Listener>,
    pub at: Origin,
}

impl Service {
    /// Every host name the service answers to: the generated DNS name,
    /// `<name>.trellis.localhost` and the custom domain.
    pub fn host_names(&self) -> Vec<String> {
        let mut names = vec![
            self.dns_name.clone(),
            format!("{}.trellis.localhost", self.name),
        ];
        names.extend(self.custom_domain_name.iter().cloned());
        names
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerProtocol {
    Http,
    Https,
}

impl ListenerProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Http => "HTTP",
            ListenerProtocol::Https => "HTTPS",
        }
    }
}

/// Certificate and key files for an HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub protocol: ListenerProtocol,
    pub port: u16,
    /// Without it an HTTPS listener gets a self-signed certificate generated at start-up.
    pub tls: Option<TlsFiles>,
    pub default_action: Action,
    /// Sorted by priority, lowest first.
    pub rules: Vec<Rule>,
    pub at: Origin,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub priority: u16,
    pub http_match: HttpMatch,
    pub action: Action,
    pub at: Origin,
}

/// All present conditions must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpMatch {
    pub method: Option<String>,
    pub path_match: Option<PathMatch>,
    pub header_matches: Vec<HeaderMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMatch {
    pub kind: PathMatchKind,
    pub value: String,
    pub case_sensitive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMatchKind {
    Exact,
    Prefix,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    pub name: String,
    pub kind: HeaderMatchKind,
    pub value: String,
    pub case_sensitive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMatchKind {
    Exact,
    Prefix,
    Contains,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Forward(Vec<WeightedTargetGroup>),
    FixedResponse { status_code: u16 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedTargetGroup {
    /// Index into [`Config::target_groups`].
    pub target_group: usize,
    pub weight: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetGroupType {
    Instance,
    Ip,
    Lambda,
    Alb,
}

impl TargetGroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetGroupType::Instance => "INSTANCE",
            TargetGroupType::Ip => "IP",
            TargetGroupType::Lambda => "LAMBDA",
            TargetGroupType::Alb => "ALB",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetProtocol {
    Http,
    Https,
}

impl TargetProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetProtocol::Http => "HTTP",
            TargetProtocol::Https => "HTTPS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    Http1,
    Http2,
    Grpc,
}

impl ProtocolVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::Http1 => "HTTP1",
            ProtocolVersion::Http2 => "HTTP2",
            ProtocolVersion::Grpc => "GRPC",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventVersion {
    V1,
    V2,
}

#[derive(Debug, Clone)]
pub struct TargetGroup {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub kind: TargetGroupType,
    /// Traffic port (not used for LAMBDA).
    pub port: u16,
    pub protocol: TargetProtocol,
    pub protocol_version: ProtocolVersion,
    pub health_check: HealthCheck,
    pub lambda_event_structure_version: EventVersion,
    pub targets: Vec<Target>,
    pub at: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// INSTANCE: a host name or address; IP: an address; LAMBDA: a function name.
    pub id: String,
    /// The traffic port: the target's own or the group's.
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub enabled: bool,
    pub protocol: TargetProtocol,
    pub protocol_version: ProtocolVersion,
    /// `None`: the target's traffic port.
    pub port: Option<u16>,
    pub path: String,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Inclusive ranges of status codes counted as healthy.
    pub matcher: Vec<(u16, u16)>,
}

impl HealthCheck {
    pub fn matches(&self, status: u16) -> bool {
        self.matcher
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }

    /// The matcher as Lattice writes it: `200`, `200,202`, `200-299`.
    pub fn matcher_text(&self) -> String {
        let parts: Vec<String> = self
            .matcher
            .iter()
            .map(|(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        parts.join(",")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionRuntime {
    Wasm,
    Process,
    Container,
}

impl FunctionRuntime {
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionRuntime::Wasm => "wasm",
            FunctionRuntime::Process => "process",
            FunctionRuntime::Container => "container",
        }
    }
}

/// A Lambda-style function (run by the function runtime).
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub arn: String,
    pub runtime: FunctionRuntime,
    pub code: Option<PathBuf>,
    pub command: Vec<String>,
    pub image: Option<String>,
    pub build: Option<PathBuf>,
    pub timeout_seconds: u32,
    pub memory_size_mb: u32,
    pub environment: BTreeMap<String, String>,
    pub concurrency: u32,
    /// Environments started at start-up and kept warm (Lambda's provisioned concurrency);
    /// process and container functions only.
    pub provisioned: u32,
    /// An environment idle this long is stopped (down to `provisioned`).
    pub idle_timeout_seconds: u32,
    pub at: Origin,
}
