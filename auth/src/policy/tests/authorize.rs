//! Lattice's evaluation across the network and service layers, and the 403 text.

use super::*;
use crate::policy::{Denied, Layer, authorize};

const NOT_ADMIN: &str = r#"{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*/admin*"}"#;

#[test]
fn layers_must_all_allow_and_an_explicit_deny_wins() {
    let allow = policy(&statements(ALLOW_ALL));
    let signed_only = policy(&allow_if(
        r#"{"StringNotEqualsIgnoreCase":{"aws:PrincipalType":"anonymous"}}"#,
    ));
    let deny_admin = policy(&statements(&format!("{ALLOW_ALL},{NOT_ADMIN}")));
    let only_deny = policy(&statements(NOT_ADMIN));
    let denied = |layer, explicit| Err(Denied { layer, explicit });
    use Layer::{Network, Service};
    type Layers<'p> = Vec<(Layer, Option<&'p Policy>)>;
    let cases: Vec<(&str, Layers<'_>, Req, Result<(), Denied>)> = vec![
        ("no AWS_IAM layer", vec![], req(), Ok(())),
        (
            "network allows",
            vec![(Network, Some(&allow))],
            req(),
            Ok(()),
        ),
        (
            "both allow",
            vec![(Network, Some(&allow)), (Service, Some(&allow))],
            req(),
            Ok(()),
        ),
        (
            "service does not allow",
            vec![(Network, Some(&allow)), (Service, Some(&signed_only))],
            req(),
            denied(Service, false),
        ),
        (
            "network does not allow",
            vec![(Network, Some(&signed_only)), (Service, Some(&allow))],
            req(),
            denied(Network, false),
        ),
        (
            "both allow a signed caller",
            vec![(Network, Some(&signed_only)), (Service, Some(&signed_only))],
            req().by(alice()),
            Ok(()),
        ),
        (
            "AWS_IAM without a policy denies",
            vec![(Service, None)],
            req().by(alice()),
            denied(Service, false),
        ),
        (
            "network without a policy denies even if the service allows",
            vec![(Network, None), (Service, Some(&allow))],
            req(),
            denied(Network, false),
        ),
        (
            "explicit deny in the service beats an implicit deny in the network",
            vec![(Network, Some(&signed_only)), (Service, Some(&deny_admin))],
            req().path("/admin"),
            denied(Service, true),
        ),
        (
            "explicit deny in the network",
            vec![(Network, Some(&deny_admin)), (Service, Some(&allow))],
            req().path("/admin/x"),
            denied(Network, true),
        ),
        (
            "a deny-only policy allows nothing",
            vec![(Network, Some(&allow)), (Service, Some(&only_deny))],
            req().path("/public"),
            denied(Service, false),
        ),
    ];
    for (name, layers, request, expected) in cases {
        assert_eq!(request.with(|r| authorize(&layers, r)), expected, "{name}");
    }
}

#[test]
fn denied_messages_are_lattices_403_text() {
    let service = Denied {
        layer: Layer::Service,
        explicit: false,
    };
    let network = Denied {
        layer: Layer::Network,
        explicit: false,
    };
    let explicit = Denied {
        layer: Layer::Service,
        explicit: true,
    };
    assert_eq!(
        req().path("/goodbye").with(|r| service.message(r)),
        format!(
            "AccessDeniedException: User: anonymous is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {SVC}/goodbye because no service-based policy allows the vpc-lattice-svcs:Invoke action"
        )
    );
    assert_eq!(
        req().by(checkout()).with(|r| network.message(r)),
        format!(
            "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/ordering/checkout is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {SVC}/ because no network-based policy allows the vpc-lattice-svcs:Invoke action"
        )
    );
    assert_eq!(
        req()
            .by(alice())
            .path("/admin")
            .with(|r| explicit.message(r)),
        format!(
            "AccessDeniedException: User: arn:aws:iam::123456789012:user/alice is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {SVC}/admin with an explicit deny in a service-based policy"
        )
    );
    assert_eq!(service.log_reason(), "Service");
    assert_eq!(network.log_reason(), "Network");
    assert_eq!(
        explicit.to_string(),
        "denied by the Service auth policy (explicit deny)"
    );
}
