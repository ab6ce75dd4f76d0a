//! The IAM auth-policy language of VPC Lattice auth policies: parse and validate a policy once,
//! when a config loads, then evaluate it per request.
//!
//! Validation is strict and collects every problem, each with the JSON path of the offending
//! value (and its line and column when the policy came as text), so `trellis validate` can
//! point at all of them at once. Evaluation works on the compiled form — wildcards pre-split,
//! CIDRs and numbers parsed, case folded — and allocates nothing in the common case: it runs on
//! every request to an `AWS_IAM` service.
//!
//! Semantics follow the IAM user guide, cited where each rule is implemented; the Lattice parts
//! (the resource ARN, the condition keys, the evaluation across layers, the 403 text) follow
//! LATTICE.md §5.1 and §5.3.

mod condition;
mod document;
mod echo;
mod error;
mod net;
mod principal;
mod text;
mod wildcard;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

pub use error::{DisplayPath, ErrorKind, PathSegment, PolicyError};

use crate::Caller;
use document::{Effect, Statement};

/// The largest policy VPC Lattice accepts: the auth-policy quota is 10 KB, not adjustable
/// (LATTICE.md §5.1).
pub const MAX_POLICY_BYTES: usize = 10_240;

/// The policy language version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `2008-10-17`, the default when a policy names none: no policy variables, so `${` is
    /// plain text.
    V2008,
    /// `2012-10-17`: `${*}`, `${?}` and `${$}` are escapes; other `${…}` are policy variables,
    /// which Trellis refuses rather than substitute.
    V2012,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2008 => "2008-10-17",
            Version::V2012 => "2012-10-17",
        }
    }
}

/// Which kind of policy a document is: the two differ only in `Principal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A resource-based auth policy of a service network or a service (`authPolicy`): each
    /// statement names its principals (`Principal` or `NotPrincipal`).
    Auth,
    /// An identity-based policy (an identity's `policy`): it speaks for the identity it
    /// belongs to, so it names no principal.
    Identity,
}

/// A parsed and validated policy, compiled for evaluation.
#[derive(Debug, Clone)]
pub struct Policy {
    version: Version,
    statements: Vec<Statement>,
    normalised: String,
}

/// Two policies are equal when AWS would echo them the same: the echo keeps every statement's
/// elements, so equal echoes evaluate alike.
impl PartialEq for Policy {
    fn eq(&self, other: &Policy) -> bool {
        self.normalised == other.normalised
    }
}

impl Eq for Policy {}

/// The outcome of one policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An `Allow` statement applies and no `Deny` does.
    Allow,
    /// A `Deny` statement applies: nothing else can allow the request.
    ExplicitDeny,
    /// No statement applies: implicitly denied, since every `AWS_IAM` layer must allow
    /// explicitly.
    NotAllowed,
}

impl Policy {
    /// Parses and validates a policy given as JSON (e.g. converted from a YAML mapping).
    /// Collects all problems, each with the JSON path of the offending value. A policy whose
    /// compact JSON is over [`MAX_POLICY_BYTES`] is refused as Lattice refuses it.
    pub fn from_json(value: &serde_json::Value) -> Result<Policy, Vec<PolicyError>> {
        Policy::from_json_as(Kind::Auth, value)
    }

    /// [`Policy::from_json`] for a policy of `kind`.
    pub fn from_json_as(kind: Kind, value: &serde_json::Value) -> Result<Policy, Vec<PolicyError>> {
        document::policy(value, kind)
    }

    /// Parses and validates policy text: over [`MAX_POLICY_BYTES`] refused as Lattice does,
    /// JSON syntax errors (and repeated keys) with their 1-based line and column, then
    /// [`Policy::from_json`], whose errors also get the line and column of their path.
    pub fn parse(text: &str) -> Result<Policy, Vec<PolicyError>> {
        Policy::parse_as(Kind::Auth, text)
    }

    /// [`Policy::parse`] for a policy of `kind`.
    pub fn parse_as(kind: Kind, text: &str) -> Result<Policy, Vec<PolicyError>> {
        text::parse(text, kind)
    }

    /// AWS's normalised echo (LATTICE.md §5.1): compact JSON, `Statement` always a list,
    /// `Version` filled in as `"2008-10-17"` when missing. `GetAuthPolicy`/`PutAuthPolicy`
    /// return it.
    pub fn normalised(&self) -> String {
        self.normalised.clone()
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// IAM evaluation within one policy ("Policy evaluation logic",
    /// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>):
    /// an applicable `Deny` wins, else an applicable `Allow` allows, else the request is
    /// implicitly denied.
    pub fn evaluate(&self, request: &Request<'_>) -> Decision {
        let mut allowed = false;
        for statement in &self.statements {
            // Once allowed, only a Deny can change the outcome: skip the other Allows.
            if (statement.effect == Effect::Deny || !allowed) && statement.applies(request) {
                match statement.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::NotAllowed
        }
    }
}

/// What a policy is evaluated against: one request, as the router saw it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The verified signer; `None` for an unsigned (anonymous) request.
    pub caller: Option<&'a Caller>,
    /// `vpc-lattice-svcs:Invoke` (HTTP, HTTPS, gRPC) or `vpc-lattice-svcs:Connect` (TCP).
    pub action: &'a str,
    /// For `Invoke`, the service ARN followed by the request path, e.g.
    /// `arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0123456789abcdef0/admin/x`; for
    /// `Connect`, the service ARN.
    pub resource: &'a str,
    pub port: u16,
    pub method: &'a str,
    /// Already normalised by the router: the same path rules match and targets receive.
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    /// The raw query string; `None` for gRPC, where `RequestQueryString` is not available.
    pub query: Option<&'a str>,
    pub service_arn: &'a str,
    pub service_network_arn: Option<&'a str>,
    pub source_vpc: Option<&'a str>,
    pub source_vpc_owner: Option<&'a str>,
    pub source_ip: IpAddr,
    /// The service's tags, for `aws:ResourceTag/<key>`.
    pub resource_tags: &'a [(String, String)],
}

/// A level whose policy a request must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The signed caller's own identity-based policy.
    Identity,
    /// The service network.
    Network,
    /// The service.
    Service,
}

impl Layer {
    /// As the access log's `authDeniedReason` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Identity => "Identity",
            Layer::Network => "Network",
            Layer::Service => "Service",
        }
    }

    /// As the 403 text names the policy kind.
    fn policy_kind(self) -> &'static str {
        match self {
            Layer::Identity => "identity-based",
            Layer::Network => "network-based",
            Layer::Service => "service-based",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why [`authorize`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("denied by the {layer} auth policy{}", if *.explicit { " (explicit deny)" } else { "" })]
pub struct Denied {
    /// The layer that refused: the one with an explicit `Deny`, else the first that did not
    /// allow.
    pub layer: Layer,
    /// A `Deny` statement applied (rather than no `Allow`).
    pub explicit: bool,
}

impl Denied {
    /// The 403 body, as Lattice words it (LATTICE.md §5.3), e.g. `AccessDeniedException: User:
    /// anonymous is not authorized to perform: vpc-lattice-svcs:Invoke on resource: <resource>
    /// because no service-based policy allows the vpc-lattice-svcs:Invoke action`. An explicit
    /// deny ends `… with an explicit deny in a service-based policy` (`in an identity-based
    /// policy`), IAM's wording for that case.
    pub fn message(&self, request: &Request<'_>) -> String {
        let user = request.caller.map_or("anonymous", |c| c.arn.as_str());
        let (action, resource, kind) = (request.action, request.resource, self.layer.policy_kind());
        let head = format!(
            "AccessDeniedException: User: {user} is not authorized to perform: {action} on resource: {resource}"
        );
        if self.explicit {
            let article = if self.layer == Layer::Identity {
                "an"
            } else {
                "a"
            };
            format!("{head} with an explicit deny in {article} {kind} policy")
        } else {
            format!("{head} because no {kind} policy allows the {action} action")
        }
    }

    /// The access log's `authDeniedReason`: `Identity`, `Network` or `Service`.
    pub fn log_reason(&self) -> &'static str {
        self.layer.as_str()
    }
}

/// Lattice's decision across layers (LATTICE.md §5.1). Each entry is a layer whose authType is
/// `AWS_IAM`, with its policy; `None` is `AWS_IAM` without a policy, which denies everything.
/// Layers with authType `NONE` are simply not listed, and an empty list allows: nothing is
/// authorized where no layer asks for IAM auth.
///
/// Otherwise a signed caller whose identity has a policy must be allowed by it first (step 1
/// of §5.1, [`Layer::Identity`]); an identity without one is treated as if its IAM policy
/// allowed `vpc-lattice-svcs:Invoke`, and an anonymous caller has none to check. An explicit
/// `Deny` in any layer wins; otherwise every layer must allow, and the first that does not is
/// the one named.
pub fn authorize(layers: &[(Layer, Option<&Policy>)], request: &Request<'_>) -> Result<(), Denied> {
    if layers.is_empty() {
        return Ok(());
    }
    let identity = request
        .caller
        .and_then(|c| c.policy.as_deref())
        .map(|p| (Layer::Identity, Some(p)));
    let mut first_refusal = None;
    for (layer, policy) in identity.iter().chain(layers) {
        let decision = policy.map_or(Decision::NotAllowed, |p| p.evaluate(request));
        match decision {
            Decision::ExplicitDeny => {
                return Err(Denied {
                    layer: *layer,
                    explicit: true,
                });
            }
            Decision::NotAllowed if first_refusal.is_none() => first_refusal = Some(*layer),
            Decision::NotAllowed | Decision::Allow => {}
        }
    }
    match first_refusal {
        Some(layer) => Err(Denied {
            layer,
            explicit: false,
        }),
        None => Ok(()),
    }
}
