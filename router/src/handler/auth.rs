//! The auth phases: authenticate (who signed the request, if anyone) and authorize (whether
//! the auth policies of the network and the service let that caller invoke this path), and
//! what a verified caller leaves behind: the identity headers a target gets and the caller
//! fields of the access-log record.

use std::sync::Arc;

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use trellis_auth::Caller;
use trellis_auth::policy::{self, Layer, Request as PolicyRequest};

use super::Exchange;
use super::log::Log;
use crate::identity;
use crate::rescue::Failure;
use crate::table::{Admission, RoutingTable, ServiceRoute};

/// The action every HTTP and gRPC request is authorized for.
const INVOKE: &str = "vpc-lattice-svcs:Invoke";

static X_AMZN_LATTICE_IDENTITY: HeaderName = HeaderName::from_static("x-amzn-lattice-identity");
static X_AMZN_LATTICE_IDENTITY_TAGS: HeaderName =
    HeaderName::from_static("x-amzn-lattice-identity-tags");

/// Phase: authenticate. A signed request must verify, whatever the service's auth type
/// (Lattice authenticates every signed request); an unsigned one is anonymous. The signature
/// covers the path exactly as the client sent it, so this runs before the path is normalised.
pub(super) fn authenticate(
    table: &RoutingTable,
    ex: &mut Exchange<'_>,
    parts: &mut Parts,
    as_sent: Option<&http::Uri>,
    service: &ServiceRoute,
) -> Result<Option<Arc<Caller>>, Failure> {
    // HTTP/2 carries the host in `:authority`; the signature names it as `host`.
    if !parts.headers.contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(&ex.host)
    {
        parts.headers.insert(header::HOST, host);
    }
    let signed = trellis_auth::sigv4::SignedRequest {
        method: parts.method.as_str(),
        path: as_sent.map_or(parts.uri.path(), |uri| uri.path()),
        query: parts.uri.query(),
        headers: &parts.headers,
        host: &ex.host,
    };
    match table.verifier.verify(&signed, ex.started) {
        Ok(caller) => Ok(caller),
        Err(error) => {
            tracing::debug!(target: "trellis::request", reason = error.reason(), "signature refused: {error}");
            crate::metrics::global().auth_denied(&service.name, "signature");
            Err(Failure::Unauthenticated(error))
        }
    }
}

/// Phase: authorize. With `AWS_IAM` on the network the client came through and/or on the
/// service, each of those policies must allow the caller to invoke the (normalised) path, and
/// no statement may deny it; so must the caller's identity policy, when its identity has one
/// ([`policy::authorize`] checks it first). Nothing to do when both are `NONE`.
pub(super) fn authorize(
    table: &RoutingTable,
    ex: &mut Exchange<'_>,
    parts: &Parts,
    service: &ServiceRoute,
    admission: &Admission<'_>,
) -> Result<(), Failure> {
    let caller = ex.caller.as_deref();
    // The AWS_IAM layers, on the stack: every request passes here, most with none.
    let network = admission
        .network_auth()
        .policy()
        .map(|p| (Layer::Network, p));
    let own = service.auth.policy().map(|p| (Layer::Service, p));
    let held: [(Layer, Option<&policy::Policy>); 2];
    let layers: &[(Layer, Option<&policy::Policy>)] = match (network, own) {
        (None, None) => return Ok(()),
        (Some(one), None) | (None, Some(one)) => {
            held = [one, one];
            held.split_at(1).0
        }
        (Some(network), Some(own)) => {
            held = [network, own];
            &held
        }
    };
    let path = parts.uri.path();
    let resource = format!("{}{path}", service.arn);
    let request = PolicyRequest {
        caller,
        action: INVOKE,
        resource: &resource,
        port: ex.conn.port,
        method: parts.method.as_str(),
        path,
        headers: &parts.headers,
        query: if ex.grpc {
            None
        } else {
            Some(parts.uri.query().unwrap_or(""))
        },
        service_arn: &service.arn,
        service_network_arn: admission.network_arn(),
        source_vpc: admission.vpc_id(),
        source_vpc_owner: admission.vpc_id().map(|_| table.config.account_id.as_str()),
        source_ip: ex.conn.client.ip(),
        resource_tags: &service.tags,
    };
    ex.log.edit(|r| {
        if caller.is_none() {
            r.resolved_user = "Anonymous".into();
        }
    });
    policy::authorize(layers, &request).map_err(|denied| {
        let layer = denied.log_reason();
        crate::metrics::global().auth_denied(&service.name, &layer.to_ascii_lowercase());
        ex.log.edit(|r| r.auth_denied_reason = layer.to_string());
        Failure::AccessDenied {
            message: denied.message(&request),
            layer,
        }
    })
}

/// Records a verified caller in the access-log record.
pub(super) fn log_caller(log: &mut Log, caller: &Caller) {
    log.edit(|r| {
        r.caller_principal = caller.arn.clone();
        r.resolved_user = caller.arn.clone();
        if let Some(org) = &caller.org_id {
            r.caller_principal_org_id = org.clone();
        }
        r.caller_principal_tags = principal_tags_json(caller);
    });
}

/// `callerPrincipalTags`: the principal's tags as a JSON object in a string, as Lattice logs
/// them (`"-"` when there are none).
fn principal_tags_json(caller: &Caller) -> String {
    if caller.tags.is_empty() {
        return "-".into();
    }
    let map: serde_json::Map<String, serde_json::Value> = caller
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// The identity headers an HTTP target gets for a verified caller: made once per configured
/// identity when the routing table is built ([`crate::identity`]), else now.
pub(super) fn add_identity_headers(
    table: &RoutingTable,
    headers: &mut http::HeaderMap,
    caller: &Caller,
) {
    let made;
    let values = match table.identity_headers.get(&caller.arn) {
        Some(values) => values,
        None => {
            made = identity::header_values(caller);
            &made
        }
    };
    headers.insert(X_AMZN_LATTICE_IDENTITY.clone(), values.identity.clone());
    headers.insert(X_AMZN_LATTICE_IDENTITY_TAGS.clone(), values.tags.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_auth::PrincipalType;

    fn caller(tags: &[(&str, &str)]) -> Caller {
        Caller {
            arn: "arn:aws:sts::123456789012:assumed-role/ordering/checkout".into(),
            iam_arn: "arn:aws:iam::123456789012:role/ordering".into(),
            account: "123456789012".into(),
            principal_type: PrincipalType::AssumedRole,
            session_name: Some("checkout".into()),
            org_id: Some("o-example123".into()),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            policy: None,
        }
    }

    #[test]
    fn identity_headers_have_lattice_shape_and_escape_semicolons() {
        let values = identity::header_values(&caller(&[("team", "pay;ments"), ("tier", "1")]));
        assert_eq!(
            values.identity,
            "Principal=arn:aws:sts::123456789012:assumed-role/ordering/checkout;PrincipalOrgID=o-example123;PrincipalOrgPath=;SessionName=checkout;Type=AWS_IAM"
        );
        assert_eq!(
            values.tags,
            "principal=arn:aws:sts::123456789012:assumed-role/ordering/checkout;principalorgid=o-example123;principalorgpath=;team=pay\\;ments;tier=1"
        );
    }

    #[test]
    fn principal_tags_are_logged_as_a_json_string() {
        assert_eq!(principal_tags_json(&caller(&[])), "-");
        let json = principal_tags_json(&caller(&[("team", "a\"b")]));
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["team"], "a\"b");
    }
}
