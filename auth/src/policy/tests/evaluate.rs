//! The evaluation table: one policy, one request, the expected decision.

use super::*;
use crate::policy::Decision::{self, Allow, ExplicitDeny as Deny, NotAllowed as No};

struct Case {
    name: &'static str,
    policy: String,
    request: Req,
    expected: Decision,
}

fn case(name: &'static str, policy: impl Into<String>, request: Req, expected: Decision) -> Case {
    Case {
        name,
        policy: policy.into(),
        request,
        expected,
    }
}

/// A statement with these fields plus `"Effect"` and the given principal/action/resource.
fn stmt(effect: &str, principal: &str, action: &str, resource: &str) -> String {
    format!(r#"{{"Effect":"{effect}",{principal},"Action":{action},"Resource":{resource}}}"#)
}

fn principal_policy(principal: &str) -> String {
    statements(&stmt(
        "Allow",
        &format!(r#""Principal":{principal}"#),
        r#""*""#,
        r#""*""#,
    ))
}

fn resource_policy(resource: &str) -> String {
    statements(&stmt(
        "Allow",
        r#""Principal":"*""#,
        r#""vpc-lattice-svcs:Invoke""#,
        resource,
    ))
}

fn action_policy(action: &str) -> String {
    statements(&stmt("Allow", r#""Principal":"*""#, action, r#""*""#))
}

/// Allow everything, but deny anyone not named in `not_principal`.
fn deny_all_but(not_principal: &str) -> String {
    statements(&format!(
        r#"{ALLOW_ALL},{{"Effect":"Deny","NotPrincipal":{not_principal},"Action":"*","Resource":"*"}}"#
    ))
}

fn cases() -> Vec<Case> {
    let svc_path = |path: &str| format!(r#""{SVC}{path}""#);
    let deny_admin = statements(&format!(
        r#"{ALLOW_ALL},{{"Effect":"Deny","Principal":"*","Action":"vpc-lattice-svcs:Invoke","Resource":"*/admin*"}}"#
    ));
    let authenticated_only =
        allow_if(r#"{"StringNotEqualsIgnoreCase":{"aws:PrincipalType":"anonymous"}}"#);
    vec![
        // Allow, implicit deny, explicit deny.
        case("allow all, anonymous", statements(ALLOW_ALL), req(), Allow),
        case(
            "allow all, signed",
            statements(ALLOW_ALL),
            req().by(alice()),
            Allow,
        ),
        case(
            "deny beats allow",
            deny_admin.clone(),
            req().path("/admin"),
            Deny,
        ),
        case(
            "deny beats allow, deeper path",
            deny_admin.clone(),
            req().path("/admin/users"),
            Deny,
        ),
        case(
            "deny does not apply elsewhere",
            deny_admin,
            req().path("/public"),
            Allow,
        ),
        case(
            "a deny alone allows nothing",
            statements(r#"{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*/admin"}"#),
            req().path("/x"),
            No,
        ),
        case(
            "deny listed before allow still wins",
            statements(&format!(
                r#"{{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}},{ALLOW_ALL}"#
            )),
            req(),
            Deny,
        ),
        // Actions.
        case(
            "action wildcard service",
            action_policy(r#""vpc-lattice-svcs:*""#),
            req(),
            Allow,
        ),
        case(
            "action case-insensitive",
            action_policy(r#""VPC-LATTICE-SVCS:invoke""#),
            req(),
            Allow,
        ),
        case(
            "action ? wildcard",
            action_policy(r#""vpc-lattice-svcs:Inv?ke""#),
            req(),
            Allow,
        ),
        case(
            "other action only",
            action_policy(r#""vpc-lattice-svcs:Connect""#),
            req(),
            No,
        ),
        case(
            "action list",
            action_policy(r#"["vpc-lattice-svcs:Connect","vpc-lattice-svcs:Invoke"]"#),
            req(),
            Allow,
        ),
        case(
            "NotAction excludes another action",
            statements(
                r#"{"Effect":"Allow","Principal":"*","NotAction":"vpc-lattice-svcs:Connect","Resource":"*"}"#,
            ),
            req(),
            Allow,
        ),
        case(
            "NotAction excludes this action",
            statements(
                r#"{"Effect":"Allow","Principal":"*","NotAction":"vpc-lattice-svcs:Invoke","Resource":"*"}"#,
            ),
            req(),
            No,
        ),
        // Resources: the service ARN followed by the request path.
        case(
            "resource exact path",
            resource_policy(&svc_path("/rates")),
            req().path("/rates"),
            Allow,
        ),
        case(
            "resource exact path is exact",
            resource_policy(&svc_path("/rates")),
            req().path("/rates/x"),
            No,
        ),
        case(
            "resource */rates",
            resource_policy(r#""*/rates""#),
            req().path("/rates"),
            Allow,
        ),
        case(
            "resource service/*",
            resource_policy(&svc_path("/*")),
            req().path("/"),
            Allow,
        ),
        case(
            "service ARN alone misses every path",
            resource_policy(&svc_path("")),
            req().path("/x"),
            No,
        ),
        case(
            "resource ? wildcard",
            resource_policy(&svc_path("/v?/items")),
            req().path("/v1/items"),
            Allow,
        ),
        case(
            "resource ? is one char",
            resource_policy(&svc_path("/v?/items")),
            req().path("/v10/items"),
            No,
        ),
        case(
            "resource of another service",
            resource_policy(
                r#""arn:aws:vpc-lattice:us-west-2:123456789012:service/svc-0ffffffffffffffff/*""#,
            ),
            req(),
            No,
        ),
        case(
            "resource is case-sensitive",
            resource_policy(&svc_path("/Rates")),
            req().path("/rates"),
            No,
        ),
        case(
            "NotResource allows elsewhere",
            statements(&format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"*","NotResource":"{SVC}/admin*"}}"#
            )),
            req().path("/x"),
            Allow,
        ),
        case(
            "NotResource excludes",
            statements(&format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"*","NotResource":"{SVC}/admin*"}}"#
            )),
            req().path("/admin"),
            No,
        ),
        case(
            "gRPC method resource",
            resource_policy(&svc_path("/api.parking/GetRates")),
            req().grpc("/api.parking/GetRates"),
            Allow,
        ),
        case(
            "Connect's resource is the service ARN",
            statements(&format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Connect","Resource":"{SVC}"}}"#
            )),
            req().action("vpc-lattice-svcs:Connect"),
            Allow,
        ),
        // Principals.
        case(
            "user ARN",
            principal_policy(r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#),
            req().by(alice()),
            Allow,
        ),
        case(
            "user ARN, anonymous",
            principal_policy(r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#),
            req(),
            No,
        ),
        case(
            "user ARN, other user",
            principal_policy(r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#),
            req().by(carol()),
            No,
        ),
        case(
            "account id covers a session",
            principal_policy(r#"{"AWS":"123456789012"}"#),
            req().by(checkout()),
            Allow,
        ),
        case(
            "account root ARN covers a user",
            principal_policy(r#"{"AWS":"arn:aws:iam::123456789012:root"}"#),
            req().by(alice()),
            Allow,
        ),
        case(
            "account root ARN covers root",
            principal_policy(r#"{"AWS":"arn:aws:iam::123456789012:root"}"#),
            req().by(root()),
            Allow,
        ),
        case(
            "account, other account",
            principal_policy(r#"{"AWS":"123456789012"}"#),
            req().by(bob()),
            No,
        ),
        case(
            "account, anonymous",
            principal_policy(r#"{"AWS":"123456789012"}"#),
            req(),
            No,
        ),
        case(
            "role ARN covers its sessions",
            principal_policy(r#"{"AWS":"arn:aws:iam::123456789012:role/ordering"}"#),
            req().by(checkout()),
            Allow,
        ),
        case(
            "session ARN is that session",
            principal_policy(
                r#"{"AWS":"arn:aws:sts::123456789012:assumed-role/ordering/checkout"}"#,
            ),
            req().by(checkout()),
            Allow,
        ),
        case(
            "session ARN, another session",
            principal_policy(
                r#"{"AWS":"arn:aws:sts::123456789012:assumed-role/ordering/checkout"}"#,
            ),
            req().by(batch()),
            No,
        ),
        case(
            "AWS * covers anonymous",
            principal_policy(r#"{"AWS":"*"}"#),
            req(),
            Allow,
        ),
        case(
            "* covers anonymous",
            principal_policy(r#""*""#),
            req(),
            Allow,
        ),
        case(
            "principal list",
            principal_policy(
                r#"{"AWS":["arn:aws:iam::210987654321:user/bob","arn:aws:iam::123456789012:user/alice"]}"#,
            ),
            req().by(alice()),
            Allow,
        ),
        case(
            "NotPrincipal: the named user with its account is excepted",
            deny_all_but(r#"{"AWS":["arn:aws:iam::123456789012:user/alice","123456789012"]}"#),
            req().by(alice()),
            Allow,
        ),
        case(
            "NotPrincipal: others in the account are denied",
            deny_all_but(r#"{"AWS":["arn:aws:iam::123456789012:user/alice","123456789012"]}"#),
            req().by(carol()),
            Deny,
        ),
        case(
            "NotPrincipal: anonymous is denied",
            deny_all_but(r#"{"AWS":["arn:aws:iam::123456789012:user/alice","123456789012"]}"#),
            req(),
            Deny,
        ),
        case(
            "NotPrincipal without the account denies the user too",
            deny_all_but(r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#),
            req().by(alice()),
            Deny,
        ),
        case(
            "NotPrincipal: role and account except its sessions",
            deny_all_but(
                r#"{"AWS":["arn:aws:iam::123456789012:role/ordering","arn:aws:iam::123456789012:root"]}"#,
            ),
            req().by(checkout()),
            Allow,
        ),
        case(
            "NotPrincipal: the account alone excepts root",
            deny_all_but(r#"{"AWS":"123456789012"}"#),
            req().by(root()),
            Allow,
        ),
        case(
            "NotPrincipal: * excepts everyone",
            deny_all_but(r#""*""#),
            req(),
            Allow,
        ),
        // The console's "authenticated only" template.
        case(
            "authenticated only, anonymous",
            authenticated_only.clone(),
            req(),
            No,
        ),
        case(
            "authenticated only, signed",
            authenticated_only.clone(),
            req().by(alice()),
            Allow,
        ),
        case(
            "authenticated only, session",
            authenticated_only,
            req().by(checkout()),
            Allow,
        ),
        // String operators.
        case(
            "StringEquals",
            allow_if(r#"{"StringEquals":{"vpc-lattice-svcs:RequestMethod":"GET"}}"#),
            req(),
            Allow,
        ),
        case(
            "StringEquals is case-sensitive",
            allow_if(r#"{"StringEquals":{"vpc-lattice-svcs:RequestMethod":"get"}}"#),
            req(),
            No,
        ),
        case(
            "StringEquals values OR",
            allow_if(r#"{"StringEquals":{"vpc-lattice-svcs:RequestMethod":["HEAD","GET"]}}"#),
            req().method("HEAD"),
            Allow,
        ),
        case(
            "StringEquals keys AND",
            allow_if(
                r#"{"StringEquals":{"vpc-lattice-svcs:RequestMethod":"GET","vpc-lattice-svcs:RequestPath":"/x"}}"#,
            ),
            req().path("/y"),
            No,
        ),
        case(
            "operators AND",
            allow_if(
                r#"{"StringEquals":{"vpc-lattice-svcs:RequestMethod":"GET"},"StringLike":{"vpc-lattice-svcs:RequestPath":"/api/*"}}"#,
            ),
            req().path("/api/x"),
            Allow,
        ),
        case(
            "operators AND, one fails",
            allow_if(
                r#"{"StringEquals":{"vpc-lattice-svcs:RequestMethod":"POST"},"StringLike":{"vpc-lattice-svcs:RequestPath":"/api/*"}}"#,
            ),
            req().path("/api/x"),
            No,
        ),
        case(
            "StringEqualsIgnoreCase on a header",
            allow_if(
                r#"{"StringEqualsIgnoreCase":{"vpc-lattice-svcs:RequestHeader/X-Env":"PROD"}}"#,
            ),
            req().header("x-env", "prod"),
            Allow,
        ),
        case(
            "StringNotEqualsIgnoreCase",
            allow_if(
                r#"{"StringNotEqualsIgnoreCase":{"vpc-lattice-svcs:RequestHeader/x-env":"PROD"}}"#,
            ),
            req().header("x-env", "Prod"),
            No,
        ),
        case(
            "StringNotEquals, other value",
            allow_if(r#"{"StringNotEquals":{"vpc-lattice-svcs:SourceVpc":"vpc-1"}}"#),
            req().vpc(Some("vpc-2")),
            Allow,
        ),
        case(
            "StringNotEquals, same value",
            allow_if(r#"{"StringNotEquals":{"vpc-lattice-svcs:SourceVpc":"vpc-1"}}"#),
            req(),
            No,
        ),
        case(
            "StringNotEquals, absent key is true",
            allow_if(r#"{"StringNotEquals":{"vpc-lattice-svcs:SourceVpc":"vpc-1"}}"#),
            req().vpc(None),
            Allow,
        ),
        case(
            "StringLike",
            allow_if(r#"{"StringLike":{"vpc-lattice-svcs:RequestPath":"/api/*"}}"#),
            req().path("/api/v1"),
            Allow,
        ),
        case(
            "StringLike anchored",
            allow_if(r#"{"StringLike":{"vpc-lattice-svcs:RequestPath":"/api/*"}}"#),
            req().path("/apix"),
            No,
        ),
        case(
            "StringEquals takes * literally",
            allow_if(r#"{"StringEquals":{"vpc-lattice-svcs:RequestPath":"/api/*"}}"#),
            req().path("/api/v1"),
            No,
        ),
        case(
            "StringNotLike",
            allow_if(
                r#"{"StringNotLike":{"vpc-lattice-svcs:RequestPath":["/admin*","/internal*"]}}"#,
            ),
            req().path("/internal/x"),
            No,
        ),
        case(
            "absent key is false",
            allow_if(r#"{"StringEquals":{"vpc-lattice-svcs:RequestHeader/x-api-key":"k1"}}"#),
            req(),
            No,
        ),
        case(
            "IfExists, absent key",
            allow_if(
                r#"{"StringEqualsIfExists":{"vpc-lattice-svcs:RequestHeader/x-api-key":"k1"}}"#,
            ),
            req(),
            Allow,
        ),
        case(
            "IfExists, present key must match",
            allow_if(
                r#"{"StringEqualsIfExists":{"vpc-lattice-svcs:RequestHeader/x-api-key":"k1"}}"#,
            ),
            req().header("x-api-key", "k2"),
            No,
        ),
        case(
            "a header sent twice meets a Deny on either value",
            statements(&format!(
                r#"{ALLOW_ALL},{{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*","Condition":{{"StringEquals":{{"vpc-lattice-svcs:RequestHeader/x-role":"admin"}}}}}}"#
            )),
            req().header("x-role", "user").header("x-role", "admin"),
            Deny,
        ),
        // Query strings: multi-valued, percent-decoded, absent for gRPC.
        case(
            "query value percent-decoded",
            allow_if(r#"{"StringEquals":{"vpc-lattice-svcs:RequestQueryString/id":"42"}}"#),
            req().query("x=1&id=4%32"),
            Allow,
        ),
        case(
            "query key absent for gRPC",
            allow_if(r#"{"StringEquals":{"vpc-lattice-svcs:RequestQueryString/id":"42"}}"#),
            req().grpc("/pkg.Svc/Get"),
            No,
        ),
        case(
            "query negated, absent for gRPC",
            allow_if(r#"{"StringNotEquals":{"vpc-lattice-svcs:RequestQueryString/debug":"1"}}"#),
            req().grpc("/pkg.Svc/Get"),
            Allow,
        ),
        case(
            "ForAnyValue: one value matches",
            allow_if(
                r#"{"ForAnyValue:StringEquals":{"vpc-lattice-svcs:RequestQueryString/id":["1","2"]}}"#,
            ),
            req().query("id=3&id=2"),
            Allow,
        ),
        case(
            "ForAnyValue: absent key is false",
            allow_if(
                r#"{"ForAnyValue:StringEquals":{"vpc-lattice-svcs:RequestQueryString/id":["1","2"]}}"#,
            ),
            req().query("other=1"),
            No,
        ),
        case(
            "ForAllValues: every value must match",
            allow_if(
                r#"{"ForAllValues:StringEquals":{"vpc-lattice-svcs:RequestQueryString/id":["1","2"]}}"#,
            ),
            req().query("id=1&id=3"),
            No,
        ),
        case(
            "ForAllValues: all match",
            allow_if(
                r#"{"ForAllValues:StringEquals":{"vpc-lattice-svcs:RequestQueryString/id":["1","2"]}}"#,
            ),
            req().query("id=1&id=2&id=1"),
            Allow,
        ),
        case(
            "ForAllValues: absent key is true",
            allow_if(
                r#"{"ForAllValues:StringEquals":{"vpc-lattice-svcs:RequestQueryString/id":["1","2"]}}"#,
            ),
            req().query(""),
            Allow,
        ),
        case(
            "ForAllValues:StringNotEquals: none may match",
            allow_if(
                r#"{"ForAllValues:StringNotEquals":{"vpc-lattice-svcs:RequestQueryString/role":"admin"}}"#,
            ),
            req().query("role=a&role=admin"),
            No,
        ),
        case(
            "ForAnyValue:StringNotEquals: one differs",
            allow_if(
                r#"{"ForAnyValue:StringNotEquals":{"vpc-lattice-svcs:RequestQueryString/role":"admin"}}"#,
            ),
            req().query("role=admin&role=x"),
            Allow,
        ),
        case(
            "ForAnyValue:StringNotEquals: none differs",
            allow_if(
                r#"{"ForAnyValue:StringNotEquals":{"vpc-lattice-svcs:RequestQueryString/role":"admin"}}"#,
            ),
            req().query("role=admin"),
            No,
        ),
        case(
            "ForAnyValue:StringLikeIfExists, absent",
            allow_if(
                r#"{"ForAnyValue:StringLikeIfExists":{"vpc-lattice-svcs:RequestQueryString/tag":"a*"}}"#,
            ),
            req(),
            Allow,
        ),
        // Numeric.
        case(
            "NumericEquals",
            allow_if(r#"{"NumericEquals":{"vpc-lattice-svcs:Port":"443"}}"#),
            req(),
            Allow,
        ),
        case(
            "NumericEquals, JSON number",
            allow_if(r#"{"NumericEquals":{"vpc-lattice-svcs:Port":8080}}"#),
            req(),
            No,
        ),
        case(
            "NumericNotEquals",
            allow_if(r#"{"NumericNotEquals":{"vpc-lattice-svcs:Port":[80,8080]}}"#),
            req(),
            Allow,
        ),
        case(
            "NumericLessThan",
            allow_if(r#"{"NumericLessThan":{"vpc-lattice-svcs:Port":1024}}"#),
            req().port(8080),
            No,
        ),
        case(
            "NumericLessThanEquals",
            allow_if(r#"{"NumericLessThanEquals":{"vpc-lattice-svcs:Port":443}}"#),
            req(),
            Allow,
        ),
        case(
            "NumericGreaterThan",
            allow_if(r#"{"NumericGreaterThan":{"vpc-lattice-svcs:Port":443}}"#),
            req(),
            No,
        ),
        case(
            "NumericGreaterThanEquals",
            allow_if(r#"{"NumericGreaterThanEquals":{"vpc-lattice-svcs:Port":"8080"}}"#),
            req().port(8080),
            Allow,
        ),
        case(
            "Numeric on a header",
            allow_if(r#"{"NumericLessThan":{"vpc-lattice-svcs:RequestHeader/x-version":"2.5"}}"#),
            req().header("x-version", "2"),
            Allow,
        ),
        case(
            "Numeric on a non-number never matches",
            allow_if(r#"{"NumericLessThan":{"vpc-lattice-svcs:RequestHeader/x-version":"2.5"}}"#),
            req().header("x-version", "two"),
            No,
        ),
        case(
            "String operator on the port",
            allow_if(r#"{"StringEquals":{"vpc-lattice-svcs:Port":"443"}}"#),
            req(),
            Allow,
        ),
        // ARN operators.
        case(
            "ArnLike on aws:PrincipalArn sees the role of a session",
            allow_if(r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/order*"}}"#),
            req().by(checkout()),
            Allow,
        ),
        case(
            "ArnEquals with a wildcard part",
            allow_if(
                r#"{"ArnEquals":{"vpc-lattice-svcs:ServiceArn":"arn:aws:vpc-lattice:*:123456789012:service/*"}}"#,
            ),
            req(),
            Allow,
        ),
        case(
            "ArnEquals on the network",
            allow_if(&format!(
                r#"{{"ArnEquals":{{"vpc-lattice-svcs:ServiceNetworkArn":"{SN}"}}}}"#
            )),
            req(),
            Allow,
        ),
        case(
            "ArnEquals, no network",
            allow_if(&format!(
                r#"{{"ArnEquals":{{"vpc-lattice-svcs:ServiceNetworkArn":"{SN}"}}}}"#
            )),
            req().no_network(),
            No,
        ),
        case(
            "ArnNotLike, matching user",
            allow_if(r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#),
            req().by(alice()),
            No,
        ),
        case(
            "ArnNotLike, anonymous (absent)",
            allow_if(r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#),
            req(),
            Allow,
        ),
        case(
            "ArnNotEquals, other role",
            allow_if(
                r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:role/other"}}"#,
            ),
            req().by(checkout()),
            Allow,
        ),
        // Bool.
        case(
            "Bool true",
            allow_if(r#"{"Bool":{"vpc-lattice-svcs:RequestHeader/x-debug":"true"}}"#),
            req().header("x-debug", "TRUE"),
            Allow,
        ),
        case(
            "Bool, JSON false",
            allow_if(r#"{"Bool":{"vpc-lattice-svcs:RequestHeader/x-debug":false}}"#),
            req().header("x-debug", "true"),
            No,
        ),
        case(
            "Bool, not a boolean",
            allow_if(r#"{"Bool":{"vpc-lattice-svcs:RequestHeader/x-debug":"true"}}"#),
            req().header("x-debug", "yes"),
            No,
        ),
        // IP addresses.
        case(
            "IpAddress in block",
            allow_if(r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#),
            req(),
            Allow,
        ),
        case(
            "IpAddress outside block",
            allow_if(r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#),
            req().ip("192.168.1.1"),
            No,
        ),
        case(
            "IpAddress IPv6 and a list",
            allow_if(r#"{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","2001:db8::/32"]}}"#),
            req().ip("2001:db8:5::1"),
            Allow,
        ),
        case(
            "IpAddress, IPv4-mapped source",
            allow_if(r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#),
            req().ip("::ffff:10.9.9.9"),
            Allow,
        ),
        case(
            "NotIpAddress Deny",
            statements(&format!(
                r#"{ALLOW_ALL},{{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*","Condition":{{"NotIpAddress":{{"aws:SourceIp":"10.0.0.0/8"}}}}}}"#
            )),
            req().ip("203.0.113.9"),
            Deny,
        ),
        case(
            "IpAddress on a header",
            allow_if(
                r#"{"IpAddress":{"vpc-lattice-svcs:RequestHeader/x-forwarded-for":"198.51.100.0/24"}}"#,
            ),
            req().header("x-forwarded-for", "198.51.100.7"),
            Allow,
        ),
        // Null.
        case(
            "Null true, absent",
            allow_if(r#"{"Null":{"vpc-lattice-svcs:SourceVpc":"true"}}"#),
            req().vpc(None),
            Allow,
        ),
        case(
            "Null true, present",
            allow_if(r#"{"Null":{"vpc-lattice-svcs:SourceVpc":"true"}}"#),
            req(),
            No,
        ),
        case(
            "Null false, present",
            allow_if(r#"{"Null":{"aws:PrincipalOrgID":false}}"#),
            req().by(alice()),
            Allow,
        ),
        case(
            "Null false, anonymous",
            allow_if(r#"{"Null":{"aws:PrincipalOrgID":"false"}}"#),
            req(),
            No,
        ),
        case(
            "Deny anonymous with Null",
            statements(&format!(
                r#"{ALLOW_ALL},{{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*","Condition":{{"Null":{{"aws:PrincipalArn":"true"}}}}}}"#
            )),
            req(),
            Deny,
        ),
        // Global keys.
        case(
            "aws:PrincipalOrgID",
            allow_if(r#"{"StringEquals":{"aws:PrincipalOrgID":"o-example1"}}"#),
            req().by(alice()),
            Allow,
        ),
        case(
            "aws:PrincipalOrgID, none",
            allow_if(r#"{"StringEquals":{"aws:PrincipalOrgID":"o-example1"}}"#),
            req().by(checkout()),
            No,
        ),
        case(
            "aws:PrincipalTag key without case",
            allow_if(r#"{"StringEquals":{"aws:PrincipalTag/team":"payments"}}"#),
            req().by(alice()),
            Allow,
        ),
        case(
            "aws:PrincipalTag, anonymous",
            allow_if(r#"{"StringEquals":{"aws:PrincipalTag/team":"payments"}}"#),
            req(),
            No,
        ),
        case(
            "aws:ResourceTag",
            allow_if(r#"{"StringEquals":{"aws:ResourceTag/Env":"prod"}}"#),
            req().tag("env", "prod"),
            Allow,
        ),
        case(
            "aws:PrincipalAccount",
            allow_if(r#"{"StringEquals":{"aws:PrincipalAccount":"123456789012"}}"#),
            req().by(bob()),
            No,
        ),
        case(
            "aws:PrincipalType AssumedRole",
            allow_if(r#"{"StringEquals":{"aws:PrincipalType":"AssumedRole"}}"#),
            req().by(checkout()),
            Allow,
        ),
        case(
            "aws:PrincipalType Anonymous",
            allow_if(r#"{"StringEquals":{"aws:PrincipalType":"Anonymous"}}"#),
            req(),
            Allow,
        ),
        case(
            "aws:username, user",
            allow_if(r#"{"StringEquals":{"aws:username":"alice"}}"#),
            req().by(alice()),
            Allow,
        ),
        case(
            "aws:username, session (absent)",
            allow_if(r#"{"StringEquals":{"aws:username":"ordering"}}"#),
            req().by(checkout()),
            No,
        ),
        case(
            "SourceVpcOwnerAccount",
            allow_if(
                r#"{"StringEquals":{"vpc-lattice-svcs:SourceVpcOwnerAccount":"123456789012"}}"#,
            ),
            req(),
            Allow,
        ),
        case(
            "ServiceArn",
            allow_if(&format!(
                r#"{{"StringEquals":{{"vpc-lattice-svcs:ServiceArn":"{SVC}"}}}}"#
            )),
            req(),
            Allow,
        ),
        case(
            "gRPC method is POST",
            allow_if(r#"{"StringEquals":{"vpc-lattice-svcs:RequestMethod":"POST"}}"#),
            req().grpc("/p.S/M"),
            Allow,
        ),
        case(
            "Connect has no HTTP keys",
            statements(
                r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"StringEquals":{"vpc-lattice-svcs:RequestMethod":"GET"}}}"#,
            ),
            req().action("vpc-lattice-svcs:Connect"),
            No,
        ),
        case(
            "Connect has the port",
            statements(
                r#"{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"NumericEquals":{"vpc-lattice-svcs:Port":443}}}"#,
            ),
            req().action("vpc-lattice-svcs:Connect"),
            Allow,
        ),
        // Versions and escapes.
        case(
            "2012-10-17 escape ${*} is a literal star",
            allow_if(r#"{"StringLike":{"vpc-lattice-svcs:RequestPath":"/a${*}*"}}"#),
            req().path("/a*b"),
            Allow,
        ),
        case(
            "2008-10-17 has no variables: ${…} is text",
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","Condition":{"StringEquals":{"vpc-lattice-svcs:RequestHeader/x":"${aws:username}"}}}}"#,
            req().header("x", "${aws:username}"),
            Allow,
        ),
    ]
}

#[test]
fn evaluation_table() {
    let cases = cases();
    assert!(cases.len() >= 40, "the table has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let policy = policy(&case.policy);
        let got = case.request.with(|r| policy.evaluate(r));
        if got != case.expected {
            failures.push(format!(
                "{}: expected {:?}, got {got:?}\n  policy: {}",
                case.name, case.expected, case.policy
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_case_name_is_unique() {
    let cases = cases();
    let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before);
}
