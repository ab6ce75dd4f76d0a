//! The request context: the values a condition key has for one request.
//!
//! Values are visited one at a time through a callback rather than collected, so evaluating a
//! condition allocates nothing unless a value must be decoded (a percent-encoded query value,
//! a header that is not UTF-8).

use std::borrow::Cow;
use std::net::IpAddr;

use super::keys::{Key, eq_folded};
use crate::PrincipalType;
use crate::policy::Request;

/// One value of a key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Str(&'a str),
    Num(u16),
    Ip(IpAddr),
}

/// How a visit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visit {
    /// The key is not in the request context.
    Absent,
    /// The callback returned true for some value.
    Stopped,
    /// Every value was seen and the callback returned false for each.
    Exhausted,
}

/// The action of TCP services; its context has no HTTP keys (LATTICE.md §5.1: `Connect`
/// supports only Port, ServiceArn, ServiceNetworkArn, SourceVpc and SourceVpcOwnerAccount).
const CONNECT: &str = "vpc-lattice-svcs:Connect";

/// Calls `f` with each value of `key` in `request` until it returns true.
pub(crate) fn visit(key: &Key, request: &Request<'_>, f: &mut dyn FnMut(Val<'_>) -> bool) -> Visit {
    let caller = request.caller;
    let http_keys = !request.action.eq_ignore_ascii_case(CONNECT);
    match key {
        Key::Port => one(Val::Num(request.port), f),
        Key::RequestMethod if http_keys => one(Val::Str(request.method), f),
        Key::RequestPath if http_keys => one(Val::Str(request.path), f),
        Key::RequestHeader(name) if http_keys => many(
            request
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes())),
            f,
        ),
        Key::RequestQueryString(wanted) if http_keys => match request.query {
            // gRPC requests have no query string key at all (LATTICE.md §5.1).
            None => Visit::Absent,
            Some(query) => many(query_values(query, wanted), f),
        },
        Key::RequestMethod
        | Key::RequestPath
        | Key::RequestHeader(_)
        | Key::RequestQueryString(_) => Visit::Absent,
        Key::ServiceNetworkArn => optional(request.service_network_arn, f),
        Key::ServiceArn => one(Val::Str(request.service_arn), f),
        Key::SourceVpc => optional(request.source_vpc, f),
        Key::SourceVpcOwnerAccount => optional(request.source_vpc_owner, f),
        Key::PrincipalType => one(
            Val::Str(
                caller
                    .map_or(PrincipalType::Anonymous, |c| c.principal_type)
                    .as_str(),
            ),
            f,
        ),
        Key::PrincipalOrgId => optional(caller.and_then(|c| c.org_id.as_deref()), f),
        Key::PrincipalTag(wanted) => match caller {
            None => Visit::Absent,
            Some(c) => many(tag_values(&c.tags, wanted), f),
        },
        Key::ResourceTag(wanted) => many(tag_values(request.resource_tags, wanted), f),
        Key::SourceIp => one(Val::Ip(request.source_ip.to_canonical()), f),
        // For a role session, aws:PrincipalArn is the role's ARN, not the session's (IAM user
        // guide, "AWS global condition context keys", aws:PrincipalArn); Caller::iam_arn is
        // exactly that.
        Key::PrincipalArn => optional(caller.map(|c| c.iam_arn.as_str()), f),
        Key::PrincipalAccount => optional(caller.map(|c| c.account.as_str()), f),
        // aws:username is present for IAM users only: the friendly name, the ARN's last segment.
        Key::Username => optional(
            caller
                .filter(|c| c.principal_type == PrincipalType::User)
                .and_then(|c| c.iam_arn.rsplit('/').next()),
            f,
        ),
    }
}

fn one(value: Val<'_>, f: &mut dyn FnMut(Val<'_>) -> bool) -> Visit {
    if f(value) {
        Visit::Stopped
    } else {
        Visit::Exhausted
    }
}

fn optional(value: Option<&str>, f: &mut dyn FnMut(Val<'_>) -> bool) -> Visit {
    value.map_or(Visit::Absent, |v| one(Val::Str(v), f))
}

fn many<'a>(
    values: impl Iterator<Item = Cow<'a, str>>,
    f: &mut dyn FnMut(Val<'_>) -> bool,
) -> Visit {
    let mut seen = false;
    for value in values {
        seen = true;
        if f(Val::Str(&value)) {
            return Visit::Stopped;
        }
    }
    if seen {
        Visit::Exhausted
    } else {
        Visit::Absent
    }
}

fn tag_values<'a>(
    tags: &'a [(String, String)],
    wanted: &'a str,
) -> impl Iterator<Item = Cow<'a, str>> {
    tags.iter()
        .filter(move |(k, _)| eq_folded(k, wanted))
        .map(|(_, v)| Cow::Borrowed(v.as_str()))
}

/// The values of `wanted` in a raw query string, percent-decoded. A key without `=` has the
/// empty value. `+` stays `+`: Lattice's decoding of `+` is not documented, and RFC 3986 gives
/// it no meaning.
fn query_values<'a>(query: &'a str, wanted: &'a str) -> impl Iterator<Item = Cow<'a, str>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .filter(move |(key, _)| percent_decode(key) == wanted)
        .map(|(_, value)| percent_decode(value))
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is, and bytes that
/// do not form UTF-8 become U+FFFD.
pub(crate) fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = |at: usize| bytes.get(at).and_then(|h| (*h as char).to_digit(16));
            if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) {
                // Two hex digits: at most 0xff.
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'%'));
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("%2Fx%2f"), "/x/");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a+b"), "a+b");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn query_values_are_multi_valued() {
        let values: Vec<_> = query_values("id=1&x=2&id=3&i%64=4&id&&=5", "id").collect();
        assert_eq!(values, ["1", "3", "4", ""]);
        assert_eq!(query_values("ID=1", "id").count(), 0);
    }
}
