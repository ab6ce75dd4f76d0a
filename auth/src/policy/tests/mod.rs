//! Tests of the policy language through its public API: an evaluation table, layers and the
//! 403 text, validation errors with their paths, the normalised echo, and hostile input.

mod authorize;
mod evaluate;
mod hostile;
mod validate;

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{Policy, Request};
use crate::{Caller, Identity};

pub(super) const ACCOUNT: &str = "123456789012";
pub(super) const SVC: &str =
    "arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0123456789abcdef0";
pub(super) const SN: &str =
    "arn:aws:vpc-lattice:us-west-2:123456789012:servicenetwork/sn-0123456789abcdef0";
pub(super) const INVOKE: &str = "vpc-lattice-svcs:Invoke";

fn identity(arn: &str, session: Option<&str>) -> Identity {
    Identity {
        arn: arn.to_string(),
        session_name: session.map(str::to_string),
        ..Identity::default_for(ACCOUNT)
    }
}

/// `alice`, an IAM user in org o-example1 with tag Team=payments.
pub(super) fn alice() -> Caller {
    let mut id = identity("arn:aws:iam::123456789012:user/alice", None);
    id.principal_org_id = Some("o-example1".into());
    id.tags = vec![("Team".into(), "payments".into())];
    id.caller().unwrap()
}

/// Another user in the same account.
pub(super) fn carol() -> Caller {
    identity("arn:aws:iam::123456789012:user/carol", None)
        .caller()
        .unwrap()
}

/// A user in another account.
pub(super) fn bob() -> Caller {
    identity("arn:aws:iam::210987654321:user/bob", None)
        .caller()
        .unwrap()
}

/// Role `ordering`, session `checkout`.
pub(super) fn checkout() -> Caller {
    identity("arn:aws:iam::123456789012:role/ordering", Some("checkout"))
        .caller()
        .unwrap()
}

/// Role `ordering`, session `batch`.
pub(super) fn batch() -> Caller {
    identity("arn:aws:iam::123456789012:role/ordering", Some("batch"))
        .caller()
        .unwrap()
}

/// `caller` with an identity-based policy.
pub(super) fn with_policy(mut caller: Caller, text: &str) -> Caller {
    match Policy::parse_as(super::Kind::Identity, text) {
        Ok(policy) => caller.policy = Some(std::sync::Arc::new(policy)),
        Err(errors) => panic!("{text}\n{errors:#?}"),
    }
    caller
}

pub(super) fn root() -> Caller {
    identity("arn:aws:iam::123456789012:root", None)
        .caller()
        .unwrap()
}

/// An owned request, with builders; [`Req::with`] lends it as a [`Request`].
#[derive(Debug, Clone)]
pub(super) struct Req {
    caller: Option<Caller>,
    action: String,
    method: String,
    path: String,
    port: u16,
    headers: HeaderMap,
    query: Option<String>,
    network: Option<String>,
    vpc: Option<String>,
    vpc_owner: Option<String>,
    ip: IpAddr,
    tags: Vec<(String, String)>,
}

/// An anonymous `GET /` on port 443 from 10.0.0.5, in service network [`SN`], from vpc-1.
pub(super) fn req() -> Req {
    Req {
        caller: None,
        action: INVOKE.into(),
        method: "GET".into(),
        path: "/".into(),
        port: 443,
        headers: HeaderMap::new(),
        query: Some(String::new()),
        network: Some(SN.into()),
        vpc: Some("vpc-1".into()),
        vpc_owner: Some(ACCOUNT.into()),
        ip: "10.0.0.5".parse().unwrap(),
        tags: Vec::new(),
    }
}

impl Req {
    pub(super) fn by(mut self, caller: Caller) -> Req {
        self.caller = Some(caller);
        self
    }
    pub(super) fn action(mut self, action: &str) -> Req {
        self.action = action.into();
        self
    }
    pub(super) fn method(mut self, method: &str) -> Req {
        self.method = method.into();
        self
    }
    pub(super) fn path(mut self, path: &str) -> Req {
        self.path = path.into();
        self
    }
    pub(super) fn port(mut self, port: u16) -> Req {
        self.port = port;
        self
    }
    pub(super) fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        self
    }
    pub(super) fn query(mut self, query: &str) -> Req {
        self.query = Some(query.into());
        self
    }
    /// A gRPC call: POST, no query string key.
    pub(super) fn grpc(mut self, path: &str) -> Req {
        self.method = "POST".into();
        self.path = path.into();
        self.query = None;
        self
    }
    pub(super) fn no_network(mut self) -> Req {
        self.network = None;
        self
    }
    pub(super) fn vpc(mut self, vpc: Option<&str>) -> Req {
        self.vpc = vpc.map(str::to_string);
        self
    }
    pub(super) fn ip(mut self, ip: &str) -> Req {
        self.ip = ip.parse().unwrap();
        self
    }
    pub(super) fn tag(mut self, key: &str, value: &str) -> Req {
        self.tags.push((key.into(), value.into()));
        self
    }

    pub(super) fn with<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
        let resource = if self.action == INVOKE {
            format!("{SVC}{}", self.path)
        } else {
            SVC.to_string()
        };
        let request = Request {
            caller: self.caller.as_ref(),
            action: &self.action,
            resource: &resource,
            port: self.port,
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
            query: self.query.as_deref(),
            service_arn: SVC,
            service_network_arn: self.network.as_deref(),
            source_vpc: self.vpc.as_deref(),
            source_vpc_owner: self.vpc_owner.as_deref(),
            source_ip: self.ip,
            resource_tags: &self.tags,
        };
        f(&request)
    }
}

/// Parses a policy the tests know to be valid, saying which one if it is not.
pub(super) fn policy(text: &str) -> Policy {
    match Policy::parse(text) {
        Ok(policy) => policy,
        Err(errors) => panic!("{text}\n{errors:#?}"),
    }
}

/// A policy allowing everyone to invoke anything when `condition` holds.
pub(super) fn allow_if(condition: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke","Resource":"*","Condition":{condition}}}]}}"#
    )
}

/// A policy with these statements (JSON objects, comma-separated).
pub(super) fn statements(statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#)
}

pub(super) const ALLOW_ALL: &str =
    r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}"#;
