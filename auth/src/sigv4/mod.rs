//! SigV4 and SigV4A request verification for VPC Lattice's data plane (signing name
//! `vpc-lattice-svcs`), against the configured local identities.
//!
//! Lattice authenticates every request that carries a signature (LATTICE.md §5.2): an
//! `Authorization: AWS4-HMAC-SHA256 …` or `AWS4-ECDSA-P256-SHA256 …` header, or a presigned
//! URL's `X-Amz-*` query parameters. A request without one is anonymous. What a signature
//! must cover, as Lattice requires:
//! * `host` signed, and equal to the host the client used;
//! * `x-amz-content-sha256: UNSIGNED-PAYLOAD` sent and signed (payload signing is not
//!   supported; a presigned URL signs the constant `UNSIGNED-PAYLOAD` without the header);
//! * `x-amz-security-token`, signed, when the identity has temporary credentials;
//! * a credential scope for `vpc-lattice-svcs` and Trellis's region (SigV4), or a signed
//!   region set that is `*` or includes it (SigV4A);
//! * a date within 5 minutes of the server clock (a presigned URL: before its
//!   `X-Amz-Expires`, at most 7 days).
//!
//! The canonical request is built as AWS's signers build it (see [`canonical`]); HMACs are
//! compared in constant time (ring's `hmac::verify`), SigV4 signing keys are cached per
//! identity and day, and SigV4A public keys are derived once, when the verifier is built.
//! Nothing here panics on any input.

mod canonical;
mod error;
mod keys;
mod parse;
mod sign;
mod time;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName};
use ring::{hmac, rand, signature};

use crate::identity::IdentityError;
use crate::{Caller, Identity};

pub use error::{ContentSha256Problem, SignatureError};
pub use sign::{RequestToSign, SignError, UNSIGNED_HEADERS, sign};
pub use time::parse_amz_date;

use canonical::CanonicalRequest;
use error::clip;
use keys::{SERVICE, SigningKeys};
use parse::{Algorithm, Placement, Presented};

/// How far a header signature's date may be from the server clock, either way.
const MAX_SKEW_SECS: i64 = 5 * 60;

// The headers the verifier looks up by name, parsed once.
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");
const X_AMZ_REGION_SET: HeaderName = HeaderName::from_static("x-amz-region-set");

/// The payload hash Lattice requires in place of a real one.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// SHA-256 of the empty string: what botocore's and awscrt's presigners sign as the payload
/// hash of a bodiless request unless told otherwise. Recognised only to explain a refusal.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A request as the verifier needs to see it. Borrowed: building one copies nothing.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path exactly as the client sent it (before any normalisation).
    pub path: &'a str,
    /// The raw query string as sent, without the `?`.
    pub query: Option<&'a str>,
    /// For HTTP/2 the router puts the `:authority` into `host` before calling the verifier.
    pub headers: &'a HeaderMap,
    /// The authority the client used (`host[:port]`); the signed `host` must equal it.
    pub host: &'a str,
}

/// One identity's keys, and the caller its signatures stand for.
struct KeyedIdentity {
    /// Shared, so a verified request takes a reference count rather than a copy of the
    /// caller's strings.
    caller: Arc<Caller>,
    signing_keys: SigningKeys,
    /// SigV4A: the uncompressed P-256 public key derived from the key pair (65 bytes); `None`
    /// only if the derivation failed, which it practically never does.
    sigv4a_public_key: Option<Vec<u8>>,
    /// The session token's MAC under the verifier's random token key: comparing MACs with
    /// ring's constant-time `hmac::verify` keeps the token's bytes and length out of timing.
    session_token_tag: Option<hmac::Tag>,
}

/// Verifies SigV4/SigV4A signatures against the configured identities. Built once per config
/// and shared by all requests (`Send + Sync`).
pub struct Verifier {
    region: String,
    identities: Vec<KeyedIdentity>,
    /// Access key id → index into `identities`.
    by_access_key: HashMap<String, usize>,
    token_key: hmac::Key,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("region", &self.region)
            .field(
                "access_keys",
                &self.by_access_key.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Where the date a signature is made at comes from, and what it says.
struct RequestDate {
    /// `YYYYMMDDTHHMMSSZ`, as it goes into the string to sign.
    amz: String,
    unix: i64,
}

impl Verifier {
    /// Builds the verifier for `identities` in `region`: SigV4's credential scope must name
    /// `region`, and SigV4A's region set must be `*` or include it.
    ///
    /// Each identity's SigV4A public key is derived here (one P-256 scalar multiplication
    /// each). When two identities share an access key id, the first one wins; the config
    /// loader refuses such configs before they get here.
    pub fn new(identities: &[Identity], region: &str) -> Result<Verifier, IdentityError> {
        let rng = rand::SystemRandom::new();
        // Only fails if the OS has no randomness at all; a fixed key then still keeps token
        // comparison constant-time (the key is not a secret the comparison relies on).
        let token_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, b"trellis-token-key"));
        let mut keyed = Vec::with_capacity(identities.len());
        let mut by_access_key = HashMap::with_capacity(identities.len());
        for identity in identities {
            let caller = identity.caller()?;
            if by_access_key.contains_key(&identity.access_key_id) {
                continue;
            }
            by_access_key.insert(identity.access_key_id.clone(), keyed.len());
            keyed.push(KeyedIdentity {
                caller: Arc::new(caller),
                signing_keys: SigningKeys::new(&identity.secret_access_key, region),
                sigv4a_public_key: keys::sigv4a_public_key(
                    &identity.access_key_id,
                    &identity.secret_access_key,
                ),
                session_token_tag: identity
                    .session_token
                    .as_ref()
                    .map(|token| hmac::sign(&token_key, token.as_bytes())),
            });
        }
        Ok(Verifier {
            region: region.to_string(),
            identities: keyed,
            by_access_key,
            token_key,
        })
    }

    /// The callers the identities' signatures stand for, one per identity.
    pub fn callers(&self) -> impl Iterator<Item = &Caller> {
        self.identities.iter().map(|identity| &*identity.caller)
    }

    /// Authenticates a request.
    ///
    /// `Ok(None)`: the request carries no signature at all (anonymous). `Ok(Some(caller))`:
    /// verified. `Err`: it carries a signature (an Authorization header starting `AWS4`, or
    /// `X-Amz-Algorithm` / `X-Amz-Credential` / `X-Amz-Signature` query parameters) that does
    /// not authenticate it, and the error says why.
    pub fn verify(
        &self,
        request: &SignedRequest<'_>,
        now: SystemTime,
    ) -> Result<Option<Arc<Caller>>, SignatureError> {
        let mut authorizations = 0usize;
        let mut signed_header = None;
        for value in request.headers.get_all(http::header::AUTHORIZATION) {
            authorizations += 1;
            if parse::is_aws4(value.as_bytes()) {
                signed_header = Some(value);
            }
        }
        let presigned = parse::is_presigned(request.query);
        let presented = match (signed_header, presigned) {
            (None, false) => return Ok(None),
            (Some(_), true) => return Err(SignatureError::DuplicateAuthorization),
            (Some(_), false) if authorizations > 1 => {
                return Err(SignatureError::DuplicateAuthorization);
            }
            (Some(value), false) => parse::parse_authorization(value.as_bytes())?,
            (None, true) => parse::parse_presigned(request.query.unwrap_or_default())?,
        };
        self.check(request, &presented, time::unix_seconds(now))
            .map(Some)
    }

    /// Everything after parsing, in the order that gives the most useful reason first: what
    /// the scope says, the date, whose key, the parts Lattice requires signed, and last the
    /// signature itself.
    fn check(
        &self,
        request: &SignedRequest<'_>,
        presented: &Presented,
        now: i64,
    ) -> Result<Arc<Caller>, SignatureError> {
        let scope = &presented.scope;
        if scope.service != SERVICE {
            return Err(SignatureError::WrongService(clip(&scope.service)));
        }
        match presented.algorithm {
            Algorithm::V4 => {
                let region = scope.region.as_deref().unwrap_or_default();
                if region != self.region {
                    return Err(SignatureError::WrongRegion {
                        expected: self.region.clone(),
                        found: clip(region),
                    });
                }
            }
            Algorithm::V4A => self.check_region_set(request, presented)?,
        }
        let date = request_date(request, presented)?;
        if date.amz.get(..8) != Some(scope.date.as_str()) {
            return Err(SignatureError::ScopeDateMismatch {
                scope: clip(&scope.date),
                date: date.amz.clone(),
            });
        }
        check_time(&presented.placement, &date, now)?;

        let identity = self
            .by_access_key
            .get(&scope.access_key)
            .and_then(|&i| self.identities.get(i))
            .ok_or_else(|| SignatureError::UnknownAccessKey(clip(&scope.access_key)))?;

        let host = check_host(request, presented)?;
        let payload_hash = check_content_sha256(request, presented)?;
        self.check_token(request, presented, identity)?;

        let canonical_headers = canonical_headers(request, presented, &host)?;
        let canonical_path = canonical::canonical_path(request.path);
        let skip_signature = matches!(presented.placement, Placement::Query { .. });
        let canonical_query = canonical::canonical_query(request.query, skip_signature);
        let canonical_request = CanonicalRequest {
            method: request.method,
            uri: &canonical_path,
            query: &canonical_query,
            headers: &canonical_headers,
            signed_headers: &presented.signed_headers,
            payload_hash,
        };
        let signed = self.sign_check(identity, presented, &date, &canonical_request);
        if signed.is_ok() {
            return Ok(Arc::clone(&identity.caller));
        }
        Err(self.explain_mismatch(
            request,
            identity,
            presented,
            &date,
            &canonical_request,
            signed.err(),
        ))
    }

    /// SigV4A: the region set (header `x-amz-region-set`, which must be signed, or the
    /// `X-Amz-Region-Set` parameter) must be `*` or include Trellis's region; entries may use
    /// `*` as a wildcard (`us-*`).
    fn check_region_set(
        &self,
        request: &SignedRequest<'_>,
        presented: &Presented,
    ) -> Result<(), SignatureError> {
        let region_set = match &presented.placement {
            Placement::Query { region_set, .. } => region_set.clone(),
            Placement::Header => {
                let mut joined = Vec::new();
                let values = request.headers.get_all(&X_AMZ_REGION_SET);
                if values.iter().next().is_some() {
                    if !presented.signs_header("x-amz-region-set") {
                        return Err(SignatureError::RegionSetNotSigned);
                    }
                    canonical::push_header_value(&mut joined, values.iter().map(|v| v.as_bytes()));
                    Some(String::from_utf8_lossy(&joined).into_owned())
                } else {
                    None
                }
            }
        };
        let region_set =
            region_set.ok_or(SignatureError::MissingAuthorizationPart("X-Amz-Region-Set"))?;
        let included = region_set
            .split(',')
            .map(str::trim)
            .any(|pattern| wildcard_match(pattern, &self.region));
        if included {
            Ok(())
        } else {
            Err(SignatureError::RegionSetMismatch {
                expected: self.region.clone(),
                found: clip(&region_set),
            })
        }
    }

    /// The security token: required (signed) when the identity has one, refused when it has
    /// none; compared in constant time.
    fn check_token(
        &self,
        request: &SignedRequest<'_>,
        presented: &Presented,
        identity: &KeyedIdentity,
    ) -> Result<(), SignatureError> {
        let header = request.headers.get(&X_AMZ_SECURITY_TOKEN);
        let (sent, signed): (Option<&[u8]>, bool) = match &presented.placement {
            // A query parameter is always in the canonical request.
            Placement::Query {
                token: Some(token), ..
            } => (Some(token.as_bytes()), true),
            _ => (
                header.map(|value| value.as_bytes()),
                presented.signs_header("x-amz-security-token"),
            ),
        };
        match (&identity.session_token_tag, sent) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(SignatureError::UnexpectedSecurityToken),
            (Some(_), None) => Err(SignatureError::SecurityTokenRequired),
            (Some(_), Some(_)) if !signed => Err(SignatureError::SecurityTokenNotSigned),
            (Some(expected), Some(sent)) => hmac::verify(&self.token_key, sent, expected.as_ref())
                .map_err(|_| SignatureError::SecurityTokenMismatch),
        }
    }

    /// Checks the signature over `canonical_request`.
    fn sign_check(
        &self,
        identity: &KeyedIdentity,
        presented: &Presented,
        date: &RequestDate,
        canonical_request: &CanonicalRequest<'_>,
    ) -> Result<(), Vec<u8>> {
        let string_to_sign = string_to_sign(presented, date, canonical_request);
        let ok = match presented.algorithm {
            Algorithm::V4 => {
                let mut day = [0u8; 8];
                day.copy_from_slice(date.amz.as_bytes().get(..8).unwrap_or(b"00000000"));
                let key = identity.signing_keys.for_date(day);
                hmac::verify(&key, &string_to_sign, &presented.signature).is_ok()
            }
            Algorithm::V4A => identity.sigv4a_public_key.as_ref().is_some_and(|public| {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, public)
                    .verify(&string_to_sign, &presented.signature)
                    .is_ok()
            }),
        };
        if ok { Ok(()) } else { Err(string_to_sign) }
    }

    /// The signature does not match: before saying so, recognise the two ways AWS's own
    /// tools get it wrong for Lattice, so the 403 can say what to change. Only failing
    /// requests pay for these checks (at most two more verifications).
    fn explain_mismatch(
        &self,
        request: &SignedRequest<'_>,
        identity: &KeyedIdentity,
        presented: &Presented,
        date: &RequestDate,
        canonical_request: &CanonicalRequest<'_>,
        string_to_sign: Option<Vec<u8>>,
    ) -> SignatureError {
        // A presigner that hashed the (empty) body instead of signing UNSIGNED-PAYLOAD:
        // botocore's SigV4QueryAuth and awscrt's query signer do this for non-S3 services.
        if matches!(presented.placement, Placement::Query { .. }) {
            let hashed = CanonicalRequest {
                payload_hash: EMPTY_SHA256,
                ..*canonical_request
            };
            if self.sign_check(identity, presented, date, &hashed).is_ok() {
                return SignatureError::ContentSha256Required(ContentSha256Problem::PayloadHash);
            }
        }
        // curl 7.88 signs the path and query exactly as sent.
        if matches!(presented.placement, Placement::Header) {
            let raw_path = canonical::raw_path(request.path);
            let raw_query = canonical::raw_query(request.query);
            if raw_path != canonical_request.uri || raw_query != canonical_request.query {
                let raw = CanonicalRequest {
                    uri: &raw_path,
                    query: &raw_query,
                    ..*canonical_request
                };
                if self.sign_check(identity, presented, date, &raw).is_ok() {
                    return SignatureError::NotCanonical;
                }
            }
        }
        SignatureError::SignatureMismatch {
            canonical_request: String::from_utf8_lossy(&canonical_request.to_bytes()).into_owned(),
            string_to_sign: string_to_sign
                .map(|s| String::from_utf8_lossy(&s).into_owned())
                .unwrap_or_default(),
        }
    }
}

/// `*` in `pattern` matches any run of characters; everything else matches itself.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    // Iterative glob with single-star backtracking: linear in practice, never recursive.
    let (mut pi, mut vi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, vi));
                pi += 1;
            }
            Some(&c) if Some(&c) == v.get(vi) => {
                pi += 1;
                vi += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    pi = sp + 1;
                    vi = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// The request's signing date: the `X-Amz-Date` parameter of a presigned URL; otherwise the
/// `X-Amz-Date` header, or failing that an HTTP `Date` header (botocore signs with `Date`
/// when the request already has one).
fn request_date(
    request: &SignedRequest<'_>,
    presented: &Presented,
) -> Result<RequestDate, SignatureError> {
    let amz = match &presented.placement {
        Placement::Query { date, .. } => date.clone(),
        Placement::Header => {
            let mut values = request.headers.get_all(&X_AMZ_DATE).iter();
            match (values.next(), values.next()) {
                (Some(_), Some(_)) => {
                    return Err(SignatureError::BadDate(
                        "more than one X-Amz-Date header".into(),
                    ));
                }
                (Some(value), None) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
                (None, _) => {
                    let value = request
                        .headers
                        .get(http::header::DATE)
                        .ok_or(SignatureError::MissingDate)?;
                    let text = String::from_utf8_lossy(value.as_bytes());
                    let unix = time::parse_http_date(text.trim())
                        .ok_or_else(|| SignatureError::BadDate(clip(&text)))?;
                    return Ok(RequestDate {
                        amz: time::format_amz_date(unix),
                        unix,
                    });
                }
            }
        }
    };
    let unix = time::parse_amz_date(&amz).ok_or_else(|| SignatureError::BadDate(clip(&amz)))?;
    Ok(RequestDate { amz, unix })
}

/// The clock check: 5 minutes either way for a header signature; a presigned URL is valid
/// from 5 minutes before its date until `X-Amz-Expires` after it.
fn check_time(placement: &Placement, date: &RequestDate, now: i64) -> Result<(), SignatureError> {
    if date.unix.saturating_sub(now) > MAX_SKEW_SECS {
        return Err(SignatureError::NotYetValid {
            signed: date.amz.clone(),
            now: time::format_amz_date(now),
        });
    }
    let (allowed, presigned_expires) = match placement {
        Placement::Header => (MAX_SKEW_SECS, None),
        Placement::Query { expires, .. } => {
            (i64::try_from(*expires).unwrap_or(i64::MAX), Some(*expires))
        }
    };
    if now.saturating_sub(date.unix) > allowed {
        return Err(SignatureError::Expired {
            signed: date.amz.clone(),
            now: time::format_amz_date(now),
            presigned_expires,
        });
    }
    Ok(())
}

/// `host` must be signed and be the host the client used. Returns the canonical host value.
fn check_host(
    request: &SignedRequest<'_>,
    presented: &Presented,
) -> Result<Vec<u8>, SignatureError> {
    if !presented.signs_header("host") {
        return Err(SignatureError::HostNotSigned);
    }
    let mut signed = Vec::new();
    let values = request.headers.get_all(http::header::HOST);
    if values.iter().next().is_some() {
        canonical::push_header_value(&mut signed, values.iter().map(|v| v.as_bytes()));
    } else {
        signed.extend_from_slice(request.host.as_bytes());
    }
    if !signed.eq_ignore_ascii_case(request.host.as_bytes()) {
        return Err(SignatureError::HostMismatch {
            signed: clip(&String::from_utf8_lossy(&signed)),
            used: clip(request.host),
        });
    }
    Ok(signed)
}

/// `x-amz-content-sha256` must say `UNSIGNED-PAYLOAD` and be signed; a header signature must
/// carry it, a presigned URL may (it then signs the constant without it). Returns the payload
/// hash for the canonical request.
fn check_content_sha256(
    request: &SignedRequest<'_>,
    presented: &Presented,
) -> Result<&'static str, SignatureError> {
    let header = request.headers.get(&X_AMZ_CONTENT_SHA256);
    let signed = presented.signs_header("x-amz-content-sha256");
    let query_value = match &presented.placement {
        Placement::Query { content_sha256, .. } => content_sha256.as_deref(),
        Placement::Header => None,
    };
    match (header, &presented.placement) {
        (None, Placement::Header) => {
            return Err(SignatureError::ContentSha256Required(
                ContentSha256Problem::Missing,
            ));
        }
        (Some(_), Placement::Header) if !signed => {
            return Err(SignatureError::ContentSha256Required(
                ContentSha256Problem::NotSigned,
            ));
        }
        _ => {}
    }
    let header_value = header.filter(|_| signed).map(|v| v.as_bytes());
    let not_unsigned = |value: &[u8]| value.trim_ascii() != UNSIGNED_PAYLOAD.as_bytes();
    if header_value.is_some_and(not_unsigned)
        || query_value.is_some_and(|v| not_unsigned(v.as_bytes()))
    {
        return Err(SignatureError::ContentSha256Required(
            ContentSha256Problem::PayloadHash,
        ));
    }
    Ok(UNSIGNED_PAYLOAD)
}

/// The canonical headers block: `name:value\n` for each name in SignedHeaders. `host` is
/// the value [`check_host`] settled on (the `:authority` for HTTP/2).
fn canonical_headers(
    request: &SignedRequest<'_>,
    presented: &Presented,
    host: &[u8],
) -> Result<Vec<u8>, SignatureError> {
    let mut out = Vec::with_capacity(256);
    for name in presented.signed_header_names() {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        if name == "host" {
            out.extend_from_slice(host);
        } else {
            let values = request.headers.get_all(name);
            if values.iter().next().is_none() {
                return Err(SignatureError::SignedHeaderMissing(clip(name)));
            }
            canonical::push_header_value(&mut out, values.iter().map(|v| v.as_bytes()));
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// The string to sign: algorithm, date, credential scope, and the hex SHA-256 of the
/// canonical request, joined by newlines. SigV4A's scope has no region.
fn string_to_sign(
    presented: &Presented,
    date: &RequestDate,
    canonical_request: &CanonicalRequest<'_>,
) -> Vec<u8> {
    let scope = &presented.scope;
    let mut out = Vec::with_capacity(192);
    out.extend_from_slice(presented.algorithm.name().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(date.amz.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(scope.date.as_bytes());
    out.push(b'/');
    if let Some(region) = &scope.region {
        out.extend_from_slice(region.as_bytes());
        out.push(b'/');
    }
    out.extend_from_slice(scope.service.as_bytes());
    out.extend_from_slice(b"/aws4_request\n");
    canonical::push_hex(&mut out, canonical_request.sha256().as_ref());
    out
}
