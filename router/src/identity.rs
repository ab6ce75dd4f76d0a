//! The identity headers an HTTP target gets for a verified caller (LATTICE.md §5.6):
//! `x-amzn-lattice-identity` (`Principal=…;PrincipalOrgID=…;SessionName=…;Type=AWS_IAM`) and
//! `x-amzn-lattice-identity-tags` (`principal=…;principalorgid=…;<tag>=<value>…`, a `;` in a
//! value escaped as `\;`). A caller is one of the configured identities, so the routing table
//! makes both values once per identity: formatting and escaping them per request was a
//! measurable share of what auth costs a request.

use http::HeaderValue;
use trellis_auth::Caller;

/// The two header values of one caller.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub identity: HeaderValue,
    pub tags: HeaderValue,
}

/// Formats `caller`'s identity headers.
pub fn header_values(caller: &Caller) -> IdentityHeaders {
    let org = caller.org_id.as_deref().unwrap_or("");
    let identity = format!(
        "Principal={};PrincipalOrgID={};PrincipalOrgPath=;SessionName={};Type=AWS_IAM",
        escape(&caller.arn),
        escape(org),
        escape(caller.session_name.as_deref().unwrap_or("")),
    );
    let mut tags = format!(
        "principal={};principalorgid={};principalorgpath=",
        escape(&caller.arn),
        escape(org)
    );
    for (key, value) in &caller.tags {
        tags.push(';');
        tags.push_str(&escape(key));
        tags.push('=');
        tags.push_str(&escape(value));
    }
    let value = |text: String| {
        HeaderValue::from_bytes(text.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""))
    };
    IdentityHeaders {
        identity: value(identity),
        tags: value(tags),
    }
}

/// A value in a `key=value;…` header: `;` escaped as `\;` (and `\` as `\\`, so the escape
/// reads back), control characters dropped (they cannot be in a header).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\;"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
