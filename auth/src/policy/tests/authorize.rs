//! Lattice's evaluation across the identity, network and service layers, and the 403 text.

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
    use Layer::{Identity, Network, Service};
    // Identity policies (no Principal): invoke anything; invoke all but /admin; only Connect.
    let may_invoke = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"vpc-lattice-svcs:Invoke","Resource":"*"}}"#;
    let not_admin = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"vpc-lattice-svcs:Invoke","Resource":"*/admin*"}]}"#;
    let only_connect = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"vpc-lattice-svcs:Connect","Resource":"*"}}"#;
    let payments_only = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/team":"payments"}}}}"#;
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
        (
            "an identity without a policy may invoke",
            vec![(Service, Some(&allow))],
            req().by(alice()),
            Ok(()),
        ),
        (
            "the identity's policy allows",
            vec![(Network, Some(&allow)), (Service, Some(&allow))],
            req().by(with_policy(alice(), may_invoke)),
            Ok(()),
        ),
        (
            "the identity's policy does not allow the action",
            vec![(Service, Some(&allow))],
            req().by(with_policy(alice(), only_connect)),
            denied(Identity, false),
        ),
        (
            // The network (AWS_IAM with no policy) refuses too: which refusal comes out says
            // which layer was asked first.
            "the identity's policy is checked before the network's",
            vec![(Network, None), (Service, Some(&signed_only))],
            req().by(with_policy(carol(), only_connect)),
            denied(Identity, false),
        ),
        (
            "an explicit deny in the identity's policy",
            vec![(Service, Some(&allow))],
            req()
                .by(with_policy(checkout(), not_admin))
                .path("/admin/x"),
            denied(Identity, true),
        ),
        (
            "the identity's deny applies only where it says",
            vec![(Service, Some(&allow))],
            req().by(with_policy(checkout(), not_admin)).path("/orders"),
            Ok(()),
        ),
        (
            "a service's explicit deny beats the identity's implicit one",
            vec![(Service, Some(&deny_admin))],
            req().by(with_policy(alice(), only_connect)).path("/admin"),
            denied(Service, true),
        ),
        (
            "the identity's policy allows, the service's does not",
            vec![(Network, Some(&allow)), (Service, Some(&only_deny))],
            req().by(with_policy(alice(), may_invoke)).path("/public"),
            denied(Service, false),
        ),
        (
            "no AWS_IAM layer: the identity's policy is not asked",
            vec![],
            req().by(with_policy(alice(), only_connect)),
            Ok(()),
        ),
        (
            "the identity's policy sees the resource's tags",
            vec![(Service, Some(&allow))],
            req()
                .by(with_policy(alice(), payments_only))
                .tag("Team", "payments"),
            Ok(()),
        ),
        (
            "the identity's policy sees the resource's tags, other value",
            vec![(Service, Some(&allow))],
            req()
                .by(with_policy(alice(), payments_only))
                .tag("team", "ledger"),
            denied(Identity, false),
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
    let identity = Denied {
        layer: Layer::Identity,
        explicit: false,
    };
    assert_eq!(
        req().by(alice()).path("/x").with(|r| identity.message(r)),
        format!(
            "AccessDeniedException: User: arn:aws:iam::123456789012:user/alice is not authorized to perform: vpc-lattice-svcs:Invoke on resource: {SVC}/x because no identity-based policy allows the vpc-lattice-svcs:Invoke action"
        )
    );
    let identity_explicit = Denied {
        layer: Layer::Identity,
        explicit: true,
    };
    assert!(
        req()
            .by(alice())
            .with(|r| identity_explicit.message(r))
            .ends_with(" with an explicit deny in an identity-based policy")
    );
    assert_eq!(identity.log_reason(), "Identity");
    assert_eq!(service.log_reason(), "Service");
    assert_eq!(network.log_reason(), "Network");
    assert_eq!(
        explicit.to_string(),
        "denied by the Service auth policy (explicit deny)"
    );
}
