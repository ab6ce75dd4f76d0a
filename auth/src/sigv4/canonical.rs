//! The canonical request, built as AWS's own signers build it for a non-S3 service.
//!
//! What the oracles do (checked against botocore 1.44 and awscrt 0.38; see the vectors in
//! `testdata/`):
//! * **Path.** The path as sent (still percent-encoded) has its dot segments removed and runs
//!   of slashes merged (botocore's `remove_dot_segments`, which awscrt matches: `/a//b/./c/..`
//!   is `/a/b`, `/a/b/../` is `/a/`), then every byte but the unreserved ones and `/` is
//!   percent-encoded again, so `%7E` becomes `%257E` ("double encoding"). Encoded dots
//!   (`%2e%2e`) are not dot segments.
//! * **Query.** Split on `&` (empty pieces dropped), each piece at its first `=` (a key without
//!   one has an empty value), key and value percent-decoded then encoded with only the
//!   unreserved bytes left bare (`+` stays a literal plus: `%2B`), sorted by encoded key then
//!   value. awscrt does exactly this; botocore keeps the pieces as sent (same result for a
//!   query already in canonical encoding, which is what its presigner writes).
//! * **Headers.** Lowercase names in SignedHeaders order; each value trimmed with inner runs
//!   of whitespace collapsed to one space, repeated headers joined with `,`.
//!
//! curl 7.88 (Debian 12's) signs the path and query exactly as sent (no slash merging, no
//! second encoding, no sorting); [`raw_path`] and [`raw_query`] rebuild that form so the
//! verifier can say so instead of only "signature mismatch".

use std::borrow::Cow;

use ring::digest;

/// Bytes left bare by AWS's URI encoding: RFC 3986's unreserved set.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `bytes` percent-encoded (uppercase hex), leaving unreserved bytes and, when
/// `keep_slash`, `/` as they are.
fn uri_encode_into(out: &mut String, bytes: &[u8], keep_slash: bool) {
    let bare = |b: u8| is_unreserved(b) || (keep_slash && b == b'/');
    // The common case, nothing to encode: one copy.
    if bytes.iter().all(|&b| bare(b)) {
        out.extend(bytes.iter().map(|&b| char::from(b)));
        return;
    }
    for &b in bytes {
        if bare(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` (borrowing it when it has no `%`). A `%` not followed by two hex
/// digits stays a literal `%` (awscrt refuses to sign such a query; keeping it means it is
/// re-encoded as `%25`).
pub(crate) fn percent_decode(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(out)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        out.push(char::from(HEX_LOWER[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes hex (either case); `None` for odd lengths or other characters.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(hex_value(*hi)? << 4 | hex_value(*lo)?),
            _ => None,
        })
        .collect()
}

/// botocore's `remove_dot_segments`: drops empty and `.` segments, lets `..` remove the one
/// before it, keeps a leading `/`, and a trailing one when anything is left.
fn remove_dot_segments(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            other => kept.push(other),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    if path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&kept.join("/"));
    if path.ends_with('/') && !kept.is_empty() {
        out.push('/');
    }
    out
}

/// The canonical URI: the path as sent, normalised, then URI-encoded once more.
pub(crate) fn canonical_path(path: &str) -> String {
    let normalised = remove_dot_segments(path);
    let mut out = String::with_capacity(normalised.len() + 8);
    uri_encode_into(&mut out, normalised.as_bytes(), true);
    out
}

/// The path as curl 7.88 signs it: as sent (an empty one is `/`).
pub(crate) fn raw_path(path: &str) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
}

/// The query's `key=value` pieces, decoded: `(key, value)` bytes, in the order sent. Empty
/// pieces (`a=1&&b=2`) are dropped, as awscrt drops them.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, [u8]>, Cow<'_, [u8]>)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            (percent_decode(key), percent_decode(value))
        })
}

/// The canonical query string. `skip_signature` leaves out `X-Amz-Signature` (a presigned
/// URL's signature cannot sign itself).
pub(crate) fn canonical_query(query: Option<&str>, skip_signature: bool) -> String {
    let Some(query) = query else {
        return String::new();
    };
    let encode = |bytes: Cow<'_, [u8]>| -> String {
        let mut out = String::with_capacity(bytes.len());
        uri_encode_into(&mut out, &bytes, false);
        out
    };
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .filter(|(key, _)| !(skip_signature && key.as_ref() == b"X-Amz-Signature"))
        .map(|(key, value)| (encode(key), encode(value)))
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The query as curl 7.88 signs it: exactly as sent.
pub(crate) fn raw_query(query: Option<&str>) -> String {
    query.unwrap_or_default().to_string()
}

/// Appends one header's canonical value: every value trimmed, inner runs of spaces and tabs
/// collapsed to one space, values joined with `,`.
pub(crate) fn push_header_value<'v>(out: &mut Vec<u8>, values: impl Iterator<Item = &'v [u8]>) {
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let words = value
            .split(|b| matches!(b, b' ' | b'\t'))
            .filter(|word| !word.is_empty());
        for (j, word) in words.enumerate() {
            if j > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(word);
        }
    }
}

/// Appends the lowercase hex of `bytes` to `out`.
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(HEX_LOWER[usize::from(b >> 4)]);
        out.push(HEX_LOWER[usize::from(b & 0x0f)]);
    }
}

/// The parts of a canonical request, in the order AWS joins them with newlines.
pub(crate) struct CanonicalRequest<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub query: &'a str,
    /// `name:value\n` for each signed header.
    pub headers: &'a [u8],
    pub signed_headers: &'a str,
    pub payload_hash: &'a str,
}

impl CanonicalRequest<'_> {
    /// The SHA-256 of [`CanonicalRequest::to_bytes`], fed part by part: on the path of every
    /// signed request, so it neither joins the parts into a new buffer nor hex-encodes on the
    /// heap.
    pub(crate) fn sha256(&self) -> digest::Digest {
        let mut context = digest::Context::new(&digest::SHA256);
        for part in [self.method, self.uri, self.query] {
            context.update(part.as_bytes());
            context.update(b"\n");
        }
        context.update(self.headers);
        context.update(b"\n");
        context.update(self.signed_headers.as_bytes());
        context.update(b"\n");
        context.update(self.payload_hash.as_bytes());
        context.finish()
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.method.len()
                + self.uri.len()
                + self.query.len()
                + self.headers.len()
                + self.signed_headers.len()
                + self.payload_hash.len()
                + 6,
        );
        for part in [self.method, self.uri, self.query] {
            out.extend_from_slice(part.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(self.headers);
        out.push(b'\n');
        out.extend_from_slice(self.signed_headers.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(self.payload_hash.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_and_encode_as_botocore_and_awscrt_do() {
        // Each expectation was printed by botocore's SigV4Auth.canonical_request and by
        // awscrt's signer (trace log) for the same path; they agree on all of them.
        for (path, canonical) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/a/", "/a/"),
            ("/a//b/./c/../%7Ed%20e/", "/a/b/%257Ed%2520e/"),
            ("/%2e%2e/x/..", "/%252e%252e"),
            ("/a/b/..", "/a"),
            ("/a/b/../", "/a/"),
            ("/../../a", "/a"),
            ("/!$@:;,*()", "/%21%24%40%3A%3B%2C%2A%28%29"),
            ("/é", "/%C3%A9"),
        ] {
            assert_eq!(canonical_path(path), canonical, "{path:?}");
        }
    }

    #[test]
    fn queries_decode_reencode_and_sort_as_awscrt_does() {
        for (query, canonical) in [
            (
                "b=2&a=1&a=0&c&d=x%2Fy&e=a+b&f=%41&g=a/b&&h=",
                "a=0&a=1&b=2&c=&d=x%2Fy&e=a%2Bb&f=A&g=a%2Fb&h=",
            ),
            ("c=%2f&d=%C3%A9&f=a%20b", "c=%2F&d=%C3%A9&f=a%20b"),
            ("=v", "=v"),
            ("e==x", "e=%3Dx"),
            ("a=1&A=2&_=3&~=4&a=%30", "A=2&_=3&a=0&a=1&~=4"),
            ("a=%zz&b=%4", "a=%25zz&b=%254"),
            ("", ""),
        ] {
            assert_eq!(canonical_query(Some(query), false), canonical, "{query:?}");
        }
        assert_eq!(canonical_query(None, false), "");
        assert_eq!(
            canonical_query(Some("X-Amz-Signature=ab&X-Amz-Date=1&x=2"), true),
            "X-Amz-Date=1&x=2"
        );
    }

    #[test]
    fn header_values_are_trimmed_collapsed_and_joined() {
        let mut out = Vec::new();
        push_header_value(
            &mut out,
            [&b"  a   b \t c "[..], b"d", b"", b"\te  f"].into_iter(),
        );
        assert_eq!(out, b"a b c,d,,e f");
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00ABff"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(""), Some(vec![]));
    }
}
