//! The one normal form of a request path, computed once per request before anything reads it.
//!
//! Why: a rule on `/admin`, an auth policy's `Resource` and its `vpc-lattice-svcs:RequestPath`
//! compare text, while the server behind them resolves `/%61dmin`, `//admin`, `/./admin`,
//! `/x/../admin` and `/%2e%2e/admin` to its `/admin`. Compared raw, each of those would get past
//! a rule on `/admin` and still be served as `/admin`. So the router normalises the path once,
//! matches on the result and forwards the result: what was matched is what the target serves.
//!
//! The normal form (RFC 3986 §6.2.2), in this order:
//! 1. Percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded; every other
//!    percent-encoding stays encoded, its hex digits in upper case (`%2f` → `%2F`): an encoded
//!    `/` or `?` is data inside a segment, not a separator.
//! 2. Empty segments go (`//` → `/`), as most servers merge them; a trailing `/` is kept.
//! 3. `.` and `..` segments are removed (§5.2.4), encoded ones (`%2e%2e`) too since step 1
//!    decoded them; a `..` at the root stays at the root.
//!
//! Slashes are merged before dot segments are removed, so `/x//../admin` is `/admin`, as nginx,
//! Tomcat and Go's `path.Clean` read it (the RFC's algorithm alone would keep `/x/admin`).
//!
//! A `%` not followed by two hex digits is malformed: the request is refused with 400 rather
//! than passed on, since one target would read it literally and another reject or guess. What
//! Lattice does with it is not documented.

use std::borrow::Cow;
use std::fmt::Write as _;

use http::Uri;
use http::uri::PathAndQuery;

/// Why a path has no normal form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `%` that does not start a `%XX` escape.
    #[error(
        "malformed percent-encoding in the request path: {found:?} at byte {at} is not `%` followed by two hexadecimal digits"
    )]
    BadPercent { at: usize, found: String },
    /// The normalised path and the query do not make a URI again. The normal form only drops or
    /// decodes what the client sent, so this would be a bug; it is refused, not forwarded raw.
    #[error("the normalised request path {path:?} does not make a valid URI: {reason}")]
    Uri { path: String, reason: String },
}

/// `uri` with its path in normal form and everything else (scheme, authority, query) as it
/// was; `None` when the path is in normal form already, so the common request copies nothing.
pub fn normalize_uri(uri: &Uri) -> Result<Option<Uri>, PathError> {
    let path = uri.path();
    let Cow::Owned(normal) = normalize(path)? else {
        return Ok(None);
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal.clone(),
    };
    let invalid = |reason: String| PathError::Uri {
        path: normal.clone(),
        reason,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(path_and_query).map_err(|e| invalid(e.to_string()))?);
    Uri::from_parts(parts)
        .map(Some)
        .map_err(|e| invalid(e.to_string()))
}

/// The normal form of `path` (the path of a request target, without its query). Borrowed when
/// `path` is in normal form already. A path that does not start with `/` (`*` of
/// `OPTIONS *`) is left as it is; an empty one is `/`.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if path.is_empty() {
        return Ok(Cow::Borrowed("/"));
    }
    if !path.starts_with('/') || is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path)?;
    let normal = remove_dot_segments(&decoded);
    Ok(if normal == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normal)
    })
}

/// The quick check that lets most paths through untouched: no `%` at all, no empty segment
/// but a trailing one, no `.` or `..` segment.
fn is_normal(path: &str) -> bool {
    if path.contains('%') {
        return false;
    }
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last) || segment == "." || segment == ".." {
            return false;
        }
    }
    true
}

/// Step 1: `%XX` of an unreserved character becomes the character, any other `%XX` is kept with
/// upper-case hex digits. Works on ASCII only, so the rest of `path` is copied as it is.
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(i) = rest.find('%') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + 1..).unwrap_or_default();
        // `from_str_radix` alone would take a sign (`%+1`): two hex digits, nothing else.
        let value = after
            .get(..2)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        let Some(value) = value else {
            return Err(PathError::BadPercent {
                at: path.len() - rest.len() + i,
                found: rest.get(i..).unwrap_or_default().chars().take(3).collect(),
            });
        };
        if is_unreserved(value) {
            out.push(char::from(value));
        } else {
            // Writing to a `String` cannot fail.
            let _ = write!(out, "%{value:02X}");
        }
        rest = after.get(2..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// RFC 3986 §2.3: the characters that mean the same encoded or not.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Steps 2 and 3 on a path that starts with `/`: empty segments merged away, `.` and `..`
/// resolved. A path that ended in `/`, `/.` or `/..` still ends in `/` (RFC 3986 §5.2.4), so
/// `/a/b/..` is `/a/`.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            name => kept.push(name),
        }
        trailing_slash = last && matches!(segment, "" | "." | "..");
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each path and its normal form.
    const CASES: &[(&str, &str)] = &[
        // Already normal: returned as they are.
        ("/", "/"),
        ("", "/"),
        ("*", "*"),
        ("/admin", "/admin"),
        ("/admin/", "/admin/"),
        ("/a/b/c", "/a/b/c"),
        ("/caf%C3%A9", "/caf%C3%A9"),
        ("/café", "/café"),
        ("/a;b=c/d", "/a;b=c/d"),
        // The paths that got past a rule on `/admin`.
        ("/%61dmin", "/admin"),
        ("//admin", "/admin"),
        ("/./admin", "/admin"),
        ("/x/../admin", "/admin"),
        ("/%2e%2e/admin", "/admin"),
        // More of the same.
        ("/%2E%2E/admin", "/admin"),
        ("/.%2e/admin", "/admin"),
        ("/x/%2e%2e/admin", "/admin"),
        ("/x/%2E/../admin", "/admin"),
        ("///admin///", "/admin/"),
        ("/x//../admin", "/admin"),
        ("/%41%44%4d%49%4e", "/ADMIN"),
        ("/adm%69n/users", "/admin/users"),
        ("/admin/./users/../", "/admin/"),
        // Unreserved characters decoded, lower-case hex too.
        ("/%7e%7Euser", "/~~user"),
        ("/a%2Db%5Fc%2ed%30", "/a-b_c.d0"),
        // Reserved and other characters stay encoded, in upper case.
        ("/a%2Fb", "/a%2Fb"),
        ("/a%2fb", "/a%2Fb"),
        ("/a%3fb", "/a%3Fb"),
        ("/a%252e", "/a%252e"),
        ("/%25", "/%25"),
        ("/a%20b", "/a%20b"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/%2e%2e%2fadmin", "/..%2Fadmin"),
        ("/..%2F..%2Fetc", "/..%2F..%2Fetc"),
        // `..` above the root stays at the root.
        ("/..", "/"),
        ("/../", "/"),
        ("/../..", "/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/../../b", "/b"),
        ("/.", "/"),
        ("//", "/"),
        ("/./", "/"),
        // Dots that are not whole segments are names.
        ("/a/.b", "/a/.b"),
        ("/a/b.", "/a/b."),
        ("/a/...", "/a/..."),
        ("/a/..b/", "/a/..b/"),
        // RFC 3986 §5.2.4's examples.
        ("/a/b/c/./../../g", "/a/g"),
        ("/mid/content=5/../6", "/mid/6"),
        // RFC 3986 §5.4, resolved against `http://a/b/c/d;p?q`, as the paths they merge to.
        ("/b/c/g", "/b/c/g"),
        ("/b/c/./g", "/b/c/g"),
        ("/b/c/g/", "/b/c/g/"),
        ("/b/c/.", "/b/c/"),
        ("/b/c/./", "/b/c/"),
        ("/b/c/..", "/b/"),
        ("/b/c/../", "/b/"),
        ("/b/c/../g", "/b/g"),
        ("/b/c/../..", "/"),
        ("/b/c/../../", "/"),
        ("/b/c/../../g", "/g"),
        ("/b/c/../../../g", "/g"),
        ("/b/c/../../../../g", "/g"),
        ("/./g", "/g"),
        ("/../g", "/g"),
        ("/b/c/g.", "/b/c/g."),
        ("/b/c/.g", "/b/c/.g"),
        ("/b/c/g..", "/b/c/g.."),
        ("/b/c/..g", "/b/c/..g"),
        ("/b/c/./../g", "/b/g"),
        ("/b/c/./g/.", "/b/c/g/"),
        ("/b/c/g/./h", "/b/c/g/h"),
        ("/b/c/g/../h", "/b/c/h"),
        ("/b/c/g;x=1/./y", "/b/c/g;x=1/y"),
        ("/b/c/g;x=1/../y", "/b/c/y"),
    ];

    #[test]
    fn paths_reach_their_normal_form() {
        let mut wrong = Vec::new();
        for (path, expected) in CASES {
            match normalize(path) {
                Ok(normal) if normal == *expected => {}
                other => wrong.push(format!("{path:?}: expected {expected:?}, got {other:?}")),
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    /// The normal form is a fixed point: normalising twice changes nothing more.
    #[test]
    fn the_normal_form_is_normal() {
        for (path, expected) in CASES {
            assert_eq!(
                normalize(expected).ok(),
                Some(Cow::Borrowed(*expected)),
                "{path:?}"
            );
        }
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for path in ["/", "/admin", "/a/b/", "/caf%C3%A9", "/a%2Fb"] {
            assert!(
                matches!(normalize(path), Ok(Cow::Borrowed(p)) if p == path),
                "{path}"
            );
        }
    }

    #[test]
    fn malformed_percent_encoding_is_refused_with_where_it_is() {
        let cases: &[(&str, usize, &str)] = &[
            ("/%zz", 1, "%zz"),
            ("/a%", 2, "%"),
            ("/a%4", 2, "%4"),
            ("/a%4g/b", 2, "%4g"),
            ("/ok%41/%%41", 7, "%%4"),
            ("/%+1", 1, "%+1"),
            ("/%é", 1, "%é"),
            ("/%aé", 1, "%aé"),
            ("/%2", 1, "%2"),
        ];
        for (path, at, found) in cases {
            assert_eq!(
                normalize(path),
                Err(PathError::BadPercent {
                    at: *at,
                    found: (*found).to_string()
                }),
                "{path}"
            );
        }
        let message = normalize("/%zz").unwrap_err().to_string();
        assert!(message.contains("\"%zz\" at byte 1"), "{message}");
    }

    #[test]
    fn uris_keep_their_query_scheme_and_authority() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/admin?x=%2e%2e/..", None),
            ("/x/../admin?x=%2e%2e/..", Some("/admin?x=%2e%2e/..")),
            ("/%61dmin?", Some("/admin?")),
            ("//admin", Some("/admin")),
            (
                "http://svc.test:8080/./a%2fb?q=1",
                Some("http://svc.test:8080/a%2Fb?q=1"),
            ),
            ("https://svc.test/", None),
            ("*", None),
        ];
        for (uri, expected) in cases {
            let uri: Uri = uri.parse().unwrap();
            let normal = normalize_uri(&uri).unwrap().map(|u| u.to_string());
            assert_eq!(normal.as_deref(), *expected, "{uri}");
        }
        let bad: Uri = "/a%zz?q".parse().unwrap();
        assert!(matches!(
            normalize_uri(&bad),
            Err(PathError::BadPercent { at: 2, .. })
        ));
    }
}
