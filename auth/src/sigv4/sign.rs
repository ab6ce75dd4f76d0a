//! SigV4 request signing for `vpc-lattice-svcs`, as one of the configured identities: what the
//! web console's "send a request" form uses to send a signed request (issue 17).
//!
//! The signature is made as VPC Lattice requires it and as botocore's `SigV4Auth` makes it:
//! header-signed (`Authorization: AWS4-HMAC-SHA256 …`), `x-amz-content-sha256:
//! UNSIGNED-PAYLOAD` sent and signed (Lattice does not support payload signing),
//! `x-amz-security-token` sent and signed when the identity has temporary credentials, and
//! `host` plus every other header of the request signed except the ones proxies and tracers
//! add or rewrite on the way (botocore's list, [`UNSIGNED_HEADERS`]).
//!
//! The canonical request is built by the very code the [`Verifier`](super::Verifier) checks
//! signatures with ([`canonical`](super::canonical), and the signing keys of
//! [`keys`](super::keys)), so what this signs, Trellis accepts; the tests also hold it to
//! botocore's output byte for byte.

use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};
use ring::hmac;

use super::canonical::{self, CanonicalRequest};
use super::keys::{SERVICE, SigningKeys};
use super::time;
use super::{UNSIGNED_PAYLOAD, X_AMZ_CONTENT_SHA256, X_AMZ_DATE, X_AMZ_SECURITY_TOKEN};
use crate::Identity;

/// The signature algorithm's name, first in the string to sign and in `Authorization`.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Headers left out of the signature: hop-by-hop headers, and ones that proxies, HTTP clients
/// and tracing add or change in transit. botocore's `SIGNED_HEADERS_BLACKLIST` (1.44), so a
/// request signed here and by botocore sign the same set.
pub const UNSIGNED_HEADERS: [&str; 14] = [
    "baggage",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// The presigned-URL parameters: a request carrying one is refused by the verifier as signed
/// twice, so the signer refuses it first.
const PRESIGN_PARAMETERS: [&[u8]; 3] =
    [b"X-Amz-Algorithm", b"X-Amz-Credential", b"X-Amz-Signature"];

/// A request about to be signed. Borrowed: building one copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct RequestToSign<'a> {
    pub method: &'a str,
    /// The path exactly as it will be sent (percent-encoded as on the wire).
    pub path: &'a str,
    /// The raw query string as it will be sent, without the `?`.
    pub query: Option<&'a str>,
    /// The authority the request will be sent with (`host[:port]`, the `Host` header or the
    /// HTTP/2 `:authority`): the signed `host`. A `host` in `headers` must be the same.
    pub host: &'a str,
    /// The headers that will be sent. All are signed except [`UNSIGNED_HEADERS`] and those
    /// the signature replaces (`authorization`, `x-amz-date`, `x-amz-content-sha256`, and
    /// `x-amz-security-token` when the identity has a session token).
    pub headers: &'a HeaderMap,
}

/// Why a request cannot be signed. Nothing about the request on the wire is at fault: the
/// identity, the region or the request as given would make a signature no verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The access key id cannot go into a credential scope (empty, or holding `/`, `,`,
    /// whitespace or non-ASCII bytes).
    #[error(
        "access key id {0:?} cannot be signed with: it must be non-empty printable ASCII without '/', ',' or spaces"
    )]
    BadAccessKey(String),
    /// The region cannot go into a credential scope.
    #[error(
        "region {0:?} cannot be signed for: it must be non-empty printable ASCII without '/', ',' or spaces"
    )]
    BadRegion(String),
    /// The identity's session token is not a valid header value (control characters).
    #[error("the identity's session token is not a valid HTTP header value")]
    BadSessionToken,
    /// The headers carry a `Host` other than the authority the request is signed for.
    #[error("the request's Host header {found:?} is not the host it is signed for ({host:?})")]
    HostConflict { host: String, found: String },
    /// The query is already a presigned URL's (`X-Amz-Signature` and friends).
    #[error("the query already carries a presigned URL's X-Amz-* parameters")]
    PresignedQuery,
}

/// Signs `request` with `identity`'s key pair for `vpc-lattice-svcs` in `region`, at `now`.
///
/// Returns the headers to send with it, replacing any of the same names: `x-amz-date`,
/// `x-amz-content-sha256: UNSIGNED-PAYLOAD`, `x-amz-security-token` when the identity has a
/// session token, and `authorization`. The body is not signed (Lattice does not support
/// payload signing), so any body may go with them. The signature is valid for 5 minutes
/// either side of `now`.
pub fn sign(
    identity: &Identity,
    region: &str,
    request: &RequestToSign<'_>,
    now: SystemTime,
) -> Result<HeaderMap, SignError> {
    if !is_scope_part(&identity.access_key_id) {
        return Err(SignError::BadAccessKey(super::clip(
            &identity.access_key_id,
        )));
    }
    if !is_scope_part(region) {
        return Err(SignError::BadRegion(super::clip(region)));
    }
    if request.query.is_some_and(|query| {
        canonical::query_pairs(query).any(|(key, _)| PRESIGN_PARAMETERS.contains(&key.as_ref()))
    }) {
        return Err(SignError::PresignedQuery);
    }
    let host = signed_host(request)?;

    let amz_date = time::format_amz_date(time::unix_seconds(now));
    let day = amz_date.get(..8).unwrap_or("00000000");
    let mut added = HeaderMap::with_capacity(4);
    added.insert(X_AMZ_DATE, header_value(&amz_date)?);
    added.insert(
        X_AMZ_CONTENT_SHA256,
        HeaderValue::from_static(UNSIGNED_PAYLOAD),
    );
    if let Some(token) = &identity.session_token {
        let value = HeaderValue::from_str(token).map_err(|_| SignError::BadSessionToken)?;
        added.insert(X_AMZ_SECURITY_TOKEN, value);
    }

    let (canonical_headers, signed_headers) = canonical_headers(request, &host, &added);
    let canonical_path = canonical::canonical_path(request.path);
    let canonical_query = canonical::canonical_query(request.query, false);
    let canonical_request = CanonicalRequest {
        method: request.method,
        uri: &canonical_path,
        query: &canonical_query,
        headers: &canonical_headers,
        signed_headers: &signed_headers,
        payload_hash: UNSIGNED_PAYLOAD,
    };
    let scope = format!("{day}/{region}/{SERVICE}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        canonical::hex(canonical_request.sha256().as_ref())
    );
    let mut day_bytes = [b'0'; 8];
    day_bytes.copy_from_slice(day.as_bytes().get(..8).unwrap_or(b"00000000"));
    let key = SigningKeys::new(&identity.secret_access_key, region).for_date(day_bytes);
    let signature = canonical::hex(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        identity.access_key_id
    );
    added.insert(http::header::AUTHORIZATION, header_value(&authorization)?);
    Ok(added)
}

/// A credential scope part: non-empty printable ASCII that cannot be mistaken for the scope's
/// or the Authorization header's separators.
fn is_scope_part(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b','))
}

/// A value built from checked parts; the error is unreachable in practice but not a panic.
fn header_value(value: &str) -> Result<HeaderValue, SignError> {
    HeaderValue::from_str(value).map_err(|_| SignError::BadAccessKey(super::clip(value)))
}

/// The canonical `host` value, as the verifier settles on it: the `Host` header when the
/// request carries one (which must be `request.host`), else `request.host`.
fn signed_host(request: &RequestToSign<'_>) -> Result<Vec<u8>, SignError> {
    let mut host = Vec::new();
    canonical::push_header_value(&mut host, std::iter::once(request.host.as_bytes()));
    let values = request.headers.get_all(http::header::HOST);
    if values.iter().next().is_some() {
        let mut sent = Vec::new();
        canonical::push_header_value(&mut sent, values.iter().map(|v| v.as_bytes()));
        if sent != host {
            return Err(SignError::HostConflict {
                host: super::clip(request.host),
                found: super::clip(&String::from_utf8_lossy(&sent)),
            });
        }
    }
    Ok(host)
}

/// The canonical headers block (`name:value\n` in name order) and the SignedHeaders list:
/// `host`, the request's own headers but the unsigned and replaced ones, and `added`.
fn canonical_headers(
    request: &RequestToSign<'_>,
    host: &[u8],
    added: &HeaderMap,
) -> (Vec<u8>, String) {
    let replaced = |name: &HeaderName| {
        name == http::header::AUTHORIZATION
            || name == http::header::HOST
            || added.contains_key(name)
    };
    // (name, the map its values come from; `None` for host).
    let mut names: Vec<(&str, Option<&HeaderMap>)> = request
        .headers
        .keys()
        .filter(|name| !replaced(name) && !UNSIGNED_HEADERS.contains(&name.as_str()))
        .map(|name| (name.as_str(), Some(request.headers)))
        .chain(added.keys().map(|name| (name.as_str(), Some(added))))
        .chain(std::iter::once(("host", None)))
        .collect();
    // HeaderMap's names are lowercase already; `keys()` yields each name once.
    names.sort_unstable_by_key(|(name, _)| *name);

    let mut block = Vec::with_capacity(256);
    let mut signed = String::with_capacity(128);
    for (name, source) in names {
        if !signed.is_empty() {
            signed.push(';');
        }
        signed.push_str(name);
        block.extend_from_slice(name.as_bytes());
        block.push(b':');
        match source {
            Some(map) => canonical::push_header_value(
                &mut block,
                map.get_all(name).iter().map(|v| v.as_bytes()),
            ),
            None => block.extend_from_slice(host),
        }
        block.push(b'\n');
    }
    (block, signed)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::Value;

    use super::*;
    use crate::sigv4::{SignatureError, SignedRequest, Verifier};

    const REGION: &str = "us-west-2";

    fn user() -> Identity {
        Identity {
            arn: "arn:aws:iam::123456789012:user/alice".into(),
            access_key_id: "AKIDLATTICEUSER".into(),
            secret_access_key: "lattice-user-secret/+=".into(),
            session_name: None,
            session_token: None,
            principal_org_id: None,
            tags: Vec::new(),
            policy: None,
        }
    }

    fn temporary() -> Identity {
        Identity {
            arn: "arn:aws:iam::123456789012:role/ordering".into(),
            access_key_id: "AKIDLATTICETEMP".into(),
            secret_access_key: "lattice-temp-secret".into(),
            session_name: Some("checkout".into()),
            session_token: Some("session-token-1".into()),
            principal_org_id: None,
            tags: Vec::new(),
            policy: None,
        }
    }

    fn at(amz: &str) -> SystemTime {
        let secs = time::parse_amz_date(amz).expect("amz date");
        UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("after 1970"))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// `base` with `added` put over it: what a client sends after signing.
    fn sent(base: &HeaderMap, added: &HeaderMap) -> HeaderMap {
        let mut out = base.clone();
        for name in added.keys() {
            out.remove(name);
        }
        for (name, value) in added {
            out.append(name.clone(), value.clone());
        }
        out
    }

    /// Verifies `request` sent with `added` (the verifier knows both identities).
    fn verify(
        request: &RequestToSign<'_>,
        added: &HeaderMap,
        now: SystemTime,
    ) -> Result<Option<std::sync::Arc<crate::Caller>>, SignatureError> {
        // Built once: deriving the SigV4A keys is slow in debug builds.
        static VERIFIER: std::sync::OnceLock<Verifier> = std::sync::OnceLock::new();
        let verifier =
            VERIFIER.get_or_init(|| Verifier::new(&[user(), temporary()], REGION).unwrap());
        let headers = sent(request.headers, added);
        verifier.verify(
            &SignedRequest {
                method: request.method,
                path: request.path,
                query: request.query,
                headers: &headers,
                host: request.host,
            },
            now,
        )
    }

    #[test]
    fn what_it_signs_the_verifier_accepts() {
        let now = at("20260102T030405Z");
        let host = "svc-0123.trellis.localhost:8080";
        let plain = HeaderMap::new();
        let with_host = headers(&[("host", host)]);
        let custom = headers(&[
            ("host", host),
            ("content-type", "application/json"),
            ("x-trace", "  a   b \t c "),
            ("x-multi", "one"),
            ("x-multi", "two"),
            ("user-agent", "console/1"),
            ("accept", "*/*"),
            // Replaced by the signature's own values.
            ("x-amz-date", "19990101T000000Z"),
            (
                "x-amz-content-sha256",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            ("authorization", "Bearer stale"),
        ]);
        let cases: [(&str, &str, Option<&str>, &HeaderMap); 8] = [
            ("GET", "/", None, &plain),
            ("GET", "", None, &with_host),
            (
                "POST",
                "/orders/42",
                Some("b=2&a=1&a=0&empty&sp=a%20b"),
                &custom,
            ),
            ("GET", "/a//b/./c/../%7Ed%20e/", None, &custom),
            (
                "DELETE",
                "/items/%2e%2e/x",
                Some("x=%2F&y=~&e=a+b&=v&&z"),
                &with_host,
            ),
            ("PUT", "/!$@:;,*()", Some("k=%zz"), &plain),
            ("GET", "/search", Some("q=caf%C3%A9&q=a"), &custom),
            ("PATCH", "/é", Some(""), &with_host),
        ];
        for identity in [user(), temporary()] {
            for (method, path, query, headers) in cases {
                let request = RequestToSign {
                    method,
                    path,
                    query,
                    host,
                    headers,
                };
                let added = sign(&identity, REGION, &request, now).unwrap();
                let what = format!("{} {method} {path} {query:?}", identity.access_key_id);
                assert_eq!(added["x-amz-date"], "20260102T030405Z", "{what}");
                assert_eq!(added["x-amz-content-sha256"], "UNSIGNED-PAYLOAD", "{what}");
                assert_eq!(
                    added
                        .get("x-amz-security-token")
                        .map(|v| v.to_str().unwrap()),
                    identity.session_token.as_deref(),
                    "{what}"
                );
                let caller = verify(&request, &added, now)
                    .unwrap_or_else(|e| panic!("{what}: {e}"))
                    .unwrap_or_else(|| panic!("{what}: anonymous"));
                assert_eq!(*caller, identity.caller().unwrap(), "{what}");
                // Within the 5-minute skew either way, and not beyond it.
                for (shift, ok) in [(-299i64, true), (299, true), (-301, false), (301, false)] {
                    let when = if shift < 0 {
                        now - Duration::from_secs(shift.unsigned_abs())
                    } else {
                        now + Duration::from_secs(shift.unsigned_abs())
                    };
                    assert_eq!(verify(&request, &added, when).is_ok(), ok, "{what} {shift}");
                }
            }
        }
    }

    #[test]
    fn signed_parts_cannot_change_and_unsigned_headers_can() {
        let now = at("20260102T030405Z");
        let host = "svc.trellis.localhost";
        let base = headers(&[
            ("x-trace", "1"),
            ("user-agent", "a"),
            ("x-amzn-trace-id", "t"),
        ]);
        let request = RequestToSign {
            method: "GET",
            path: "/a",
            query: Some("q=1"),
            host,
            headers: &base,
        };
        let added = sign(&temporary(), REGION, &request, now).unwrap();
        let authorization = added["authorization"].to_str().unwrap();
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDLATTICETEMP/20260102/us-west-2/vpc-lattice-svcs/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-trace, Signature="
            ),
            "{authorization}"
        );
        assert!(verify(&request, &added, now).is_ok());

        let mismatch = |request: &RequestToSign<'_>, added: &HeaderMap| {
            matches!(
                verify(request, added, now),
                Err(SignatureError::SignatureMismatch { .. })
            )
        };
        assert!(mismatch(
            &RequestToSign {
                path: "/b",
                ..request
            },
            &added
        ));
        assert!(mismatch(
            &RequestToSign {
                query: Some("q=2"),
                ..request
            },
            &added
        ));
        assert!(mismatch(
            &RequestToSign {
                query: None,
                ..request
            },
            &added
        ));
        assert!(mismatch(
            &RequestToSign {
                method: "POST",
                ..request
            },
            &added
        ));
        let changed = headers(&[("x-trace", "2"), ("user-agent", "a")]);
        assert!(mismatch(
            &RequestToSign {
                headers: &changed,
                ..request
            },
            &added
        ));
        // The headers botocore leaves unsigned may change on the way.
        let rewritten = headers(&[
            ("x-trace", "1"),
            ("user-agent", "proxy/2"),
            ("connection", "close"),
        ]);
        assert!(
            verify(
                &RequestToSign {
                    headers: &rewritten,
                    ..request
                },
                &added,
                now
            )
            .is_ok()
        );
        // Another identity's token, or none, is refused.
        let mut no_token = added.clone();
        no_token.remove("x-amz-security-token");
        assert_eq!(
            verify(&request, &no_token, now),
            Err(SignatureError::SecurityTokenRequired)
        );
        // Sent to another host than the one signed for: without a Host header the verifier
        // signs the host used (so the signature differs); with the signed Host header sent,
        // it sees that the two disagree.
        let elsewhere = RequestToSign {
            host: "other.trellis.localhost",
            ..request
        };
        assert!(mismatch(&elsewhere, &added));
        let mut with_host = added.clone();
        with_host.insert(http::header::HOST, HeaderValue::from_static(host));
        assert!(matches!(
            verify(&elsewhere, &with_host, now),
            Err(SignatureError::HostMismatch { .. })
        ));
    }

    #[test]
    fn botocores_stored_signatures_are_reproduced_exactly() {
        // The header-signed botocore vectors of testdata/vectors.json (SigV4Auth's output,
        // see gen_vectors.py): re-signed from the request without its signature headers, at
        // the vector's own X-Amz-Date, the Authorization header must come out identical.
        let fixtures: Value = serde_json::from_str(include_str!("testdata/vectors.json")).unwrap();
        let identities = [user(), temporary()];
        let mut checked = 0;
        for vector in fixtures["vectors"].as_array().unwrap() {
            let name = vector["name"].as_str().unwrap();
            let pairs: Vec<(String, String)> = vector["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_lowercase(),
                        p[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
            let (Some(authorization), Some(amz_date)) = (get("authorization"), get("x-amz-date"))
            else {
                continue;
            };
            if !name.starts_with("botocore") || !authorization.starts_with("AWS4-HMAC-SHA256") {
                continue;
            }
            let key = authorization
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split('/').next())
                .unwrap();
            let identity = identities.iter().find(|i| i.access_key_id == key).unwrap();
            let kept: Vec<(&str, &str)> = pairs
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "authorization"
                            | "x-amz-date"
                            | "x-amz-content-sha256"
                            | "x-amz-security-token"
                    )
                })
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let base = headers(&kept);
            let request = RequestToSign {
                method: vector["method"].as_str().unwrap(),
                path: vector["path"].as_str().unwrap(),
                query: vector["query"].as_str(),
                host: vector["host"].as_str().unwrap(),
                headers: &base,
            };
            let added = sign(
                identity,
                fixtures["region"].as_str().unwrap(),
                &request,
                at(amz_date),
            )
            .unwrap();
            assert_eq!(added["authorization"], authorization, "{name}");
            checked += 1;
        }
        assert!(checked >= 4, "only {checked} botocore vectors");
    }

    #[test]
    fn requests_that_cannot_be_signed_are_refused() {
        let now = at("20260102T030405Z");
        let none = HeaderMap::new();
        let request = RequestToSign {
            method: "GET",
            path: "/",
            query: None,
            host: "svc.trellis.localhost",
            headers: &none,
        };
        for key in ["", "AK/ID", "AK,ID", "AK ID", "AKÏD", "AK\nID"] {
            let identity = Identity {
                access_key_id: key.into(),
                ..user()
            };
            assert!(
                matches!(
                    sign(&identity, REGION, &request, now),
                    Err(SignError::BadAccessKey(_))
                ),
                "{key:?}"
            );
        }
        for region in ["", "us/west", "us west", "us-west-2\r\n"] {
            assert!(
                matches!(
                    sign(&user(), region, &request, now),
                    Err(SignError::BadRegion(_))
                ),
                "{region:?}"
            );
        }
        let bad_token = Identity {
            session_token: Some("a\nb".into()),
            ..temporary()
        };
        assert_eq!(
            sign(&bad_token, REGION, &request, now),
            Err(SignError::BadSessionToken)
        );
        let other_host = headers(&[("host", "elsewhere.example")]);
        assert!(matches!(
            sign(
                &user(),
                REGION,
                &RequestToSign {
                    headers: &other_host,
                    ..request
                },
                now
            ),
            Err(SignError::HostConflict { .. })
        ));
        for query in [
            "X-Amz-Signature=ab",
            "a=1&X-Amz-Credential=x",
            "X%2DAmz%2DAlgorithm=AWS4-HMAC-SHA256",
        ] {
            assert_eq!(
                sign(
                    &user(),
                    REGION,
                    &RequestToSign {
                        query: Some(query),
                        ..request
                    },
                    now
                ),
                Err(SignError::PresignedQuery),
                "{query}"
            );
        }
        // A long, hostile access key is clipped in the error, not echoed whole.
        let long = Identity {
            access_key_id: "A/".repeat(10_000),
            ..user()
        };
        let err = sign(&long, REGION, &request, now).unwrap_err().to_string();
        assert!(err.len() < 400, "{}", err.len());
    }

    #[test]
    fn garbled_requests_either_sign_so_that_they_verify_or_are_refused() {
        // 2,000 requests of random paths, queries and header values (every byte a header
        // value may hold, names from a small set so that they repeat): signing never panics,
        // and whatever it signs, the verifier accepts as that identity.
        let mut rng = crate::test_rng::Rng(0x5157_4e45_5221);
        let pieces = [
            "/",
            "//",
            ".",
            "..",
            "%",
            "%2",
            "%2F",
            "%zz",
            "a",
            "=",
            "&",
            "+",
            " ",
            "é",
            "~",
            "?",
            "X-Amz-Date",
            "%7E",
            ";",
            ",",
            "*",
        ];
        let names = [
            "x-a",
            "x-b",
            "accept",
            "user-agent",
            "connection",
            "x-amz-meta",
            "content-type",
        ];
        let now = at("20260102T030405Z");
        let identities = [user(), temporary()];
        let mut signed = 0;
        for round in 0..2_000 {
            let mut path = String::from("/");
            let mut query = String::new();
            for _ in 0..rng.below(8) {
                path.push_str(rng.pick(&pieces));
                query.push_str(rng.pick(&pieces));
            }
            let mut map = HeaderMap::new();
            for _ in 0..rng.below(5) {
                let value: Vec<u8> = (0..rng.below(12))
                    .map(|_| match rng.below(4) {
                        0 => b' ',
                        1 => b'\t',
                        // Any visible or obs-text byte (0x21..=0xFF but DEL).
                        _ => {
                            let b = 0x21 + u8::try_from(rng.below(0xDF)).unwrap();
                            if b == 0x7F { b'x' } else { b }
                        }
                    })
                    .collect();
                let name = HeaderName::from_static(rng.pick(&names));
                map.append(name, HeaderValue::from_bytes(&value).unwrap());
            }
            let request = RequestToSign {
                method: rng.pick(&["GET", "POST", "get", "OPTIONS"]),
                path: &path,
                query: (round % 3 != 0).then_some(query.as_str()),
                host: rng.pick(&[
                    "svc.trellis.localhost",
                    "svc.trellis.localhost:8080",
                    "[::1]:80",
                ]),
                headers: &map,
            };
            let identity = &identities[rng.below(2)];
            match sign(identity, REGION, &request, now) {
                Ok(added) => {
                    let caller = verify(&request, &added, now);
                    assert_eq!(
                        caller,
                        Ok(Some(std::sync::Arc::new(identity.caller().unwrap()))),
                        "round {round}: {request:?}"
                    );
                    signed += 1;
                }
                Err(SignError::PresignedQuery) => {}
                Err(e) => panic!("round {round}: {e} for {request:?}"),
            }
        }
        assert!(signed > 1_500, "{signed}");
    }
}
