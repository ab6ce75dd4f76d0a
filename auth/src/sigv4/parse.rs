//! Reading a signature out of a request: the `Authorization` header
//! (`AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`) or a presigned URL's
//! `X-Amz-*` query parameters. Only the syntax is checked here; what the parts say (service,
//! region, dates, keys) is checked by the verifier.

use super::canonical::{query_pairs, unhex};
use super::error::{SignatureError, clip};

/// The SigV4 algorithm name.
pub(crate) const SIGV4: &str = "AWS4-HMAC-SHA256";
/// The SigV4A algorithm name.
pub(crate) const SIGV4A: &str = "AWS4-ECDSA-P256-SHA256";

/// Which of the two signing algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    V4,
    V4A,
}

impl Algorithm {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::V4 => SIGV4,
            Algorithm::V4A => SIGV4A,
        }
    }

    fn from_name(name: &str) -> Result<Algorithm, SignatureError> {
        match name {
            SIGV4 => Ok(Algorithm::V4),
            SIGV4A => Ok(Algorithm::V4A),
            other => Err(SignatureError::UnsupportedAlgorithm(clip(other))),
        }
    }
}

/// Whether an Authorization header value is an AWS signature attempt (rather than, say, a
/// bearer token the service itself checks): it starts with `AWS4`.
pub(crate) fn is_aws4(value: &[u8]) -> bool {
    value.starts_with(b"AWS4")
}

/// The query parameters that make a URL presigned.
const PRESIGN_MARKERS: [&[u8]; 3] = [b"X-Amz-Algorithm", b"X-Amz-Signature", b"X-Amz-Credential"];

/// Whether the query carries a presigned signature.
pub(crate) fn is_presigned(query: Option<&str>) -> bool {
    // Most queries have neither a marker nor an escape: skip decoding them.
    query.is_some_and(|q| {
        (q.contains("X-Amz-") || q.contains('%'))
            && query_pairs(q).any(|(key, _)| PRESIGN_MARKERS.contains(&key.as_ref()))
    })
}

/// The credential scope: `<key>/<date>/<region>/<service>/aws4_request` for SigV4,
/// `<key>/<date>/<service>/aws4_request` for SigV4A.
#[derive(Debug)]
pub(crate) struct Scope {
    pub access_key: String,
    pub date: String,
    /// SigV4 only.
    pub region: Option<String>,
    pub service: String,
}

impl Scope {
    fn parse(credential: &str, algorithm: Algorithm) -> Result<Scope, SignatureError> {
        let malformed = || {
            SignatureError::MalformedAuthorization(format!(
                "Credential {:?} should be {}",
                clip(credential),
                match algorithm {
                    Algorithm::V4 =>
                        "<access key>/<YYYYMMDD>/<region>/vpc-lattice-svcs/aws4_request",
                    Algorithm::V4A => "<access key>/<YYYYMMDD>/vpc-lattice-svcs/aws4_request",
                }
            ))
        };
        // From the right, into exactly as many parts as the scope has: anything left over
        // ends up in the access key, which then holds a '/' and is refused.
        let parts_count = match algorithm {
            Algorithm::V4 => 5,
            Algorithm::V4A => 4,
        };
        let mut parts = credential.rsplitn(parts_count, '/');
        let (Some("aws4_request"), Some(service)) = (parts.next(), parts.next()) else {
            return Err(malformed());
        };
        let region = match algorithm {
            Algorithm::V4 => Some(parts.next().ok_or_else(malformed)?.to_string()),
            Algorithm::V4A => None,
        };
        let (Some(date), Some(access_key)) = (parts.next(), parts.next()) else {
            return Err(malformed());
        };
        if access_key.is_empty()
            || access_key.contains('/')
            || service.is_empty()
            || region.as_deref() == Some("")
        {
            return Err(malformed());
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignatureError::BadDate(clip(date)));
        }
        Ok(Scope {
            access_key: access_key.to_string(),
            date: date.to_string(),
            region,
            service: service.to_string(),
        })
    }
}

/// Where the signature travels, and what only a presigned URL has.
#[derive(Debug)]
pub(crate) enum Placement {
    Header,
    Query {
        /// `X-Amz-Date`, as sent.
        date: String,
        /// `X-Amz-Expires`, validated to 1..=604800.
        expires: u64,
        /// `X-Amz-Security-Token`, when sent.
        token: Option<String>,
        /// `X-Amz-Region-Set` (SigV4A), when sent.
        region_set: Option<String>,
        /// `X-Amz-Content-Sha256`, when sent (some signers put it in the query).
        content_sha256: Option<String>,
    },
}

/// A signature as the request presents it.
#[derive(Debug)]
pub(crate) struct Presented {
    pub algorithm: Algorithm,
    pub scope: Scope,
    /// SignedHeaders, as sent (`;`-separated lowercase names, sorted).
    pub signed_headers: String,
    /// The signature bytes: 32 for SigV4, a DER ECDSA signature for SigV4A.
    pub signature: Vec<u8>,
    pub placement: Placement,
}

impl Presented {
    /// The names in SignedHeaders.
    pub(crate) fn signed_header_names(&self) -> impl Iterator<Item = &str> {
        self.signed_headers.split(';')
    }

    pub(crate) fn signs_header(&self, name: &str) -> bool {
        self.signed_header_names().any(|n| n == name)
    }
}

/// Checks SignedHeaders: non-empty lowercase header names, sorted and unique (as every AWS
/// signer writes them), so the canonical headers are in one well-defined order.
fn check_signed_headers(list: &str) -> Result<(), SignatureError> {
    let valid_name = |name: &str| {
        !name.is_empty()
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
            })
    };
    let mut previous: Option<&str> = None;
    for name in list.split(';') {
        if !valid_name(name) || previous.is_some_and(|p| p >= name) {
            return Err(SignatureError::MalformedAuthorization(format!(
                "SignedHeaders {:?} should be lowercase header names separated by ';', sorted and unique",
                clip(list)
            )));
        }
        previous = Some(name);
    }
    Ok(())
}

fn decode_signature(signature: &str, algorithm: Algorithm) -> Result<Vec<u8>, SignatureError> {
    let bytes = unhex(signature).filter(|b| match algorithm {
        Algorithm::V4 => b.len() == 32,
        // A DER ECDSA P-256 signature is at most 72 bytes; a little slack, no more.
        Algorithm::V4A => (8..=80).contains(&b.len()),
    });
    bytes.ok_or_else(|| {
        SignatureError::MalformedAuthorization(format!(
            "Signature {:?} is not {}",
            clip(signature),
            match algorithm {
                Algorithm::V4 => "64 hex digits",
                Algorithm::V4A => "a hex DER ECDSA signature",
            }
        ))
    })
}

/// Parses an Authorization header value that [`is_aws4`].
pub(crate) fn parse_authorization(value: &[u8]) -> Result<Presented, SignatureError> {
    let value = std::str::from_utf8(value).map_err(|_| {
        SignatureError::MalformedAuthorization("the Authorization header is not UTF-8".into())
    })?;
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    let algorithm = Algorithm::from_name(algorithm)?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for component in rest.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let Some((name, part)) = component.split_once('=') else {
            return Err(SignatureError::MalformedAuthorization(format!(
                "{:?} is not Name=Value",
                clip(component)
            )));
        };
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(SignatureError::MalformedAuthorization(format!(
                    "unknown Authorization component {:?} (expected Credential, SignedHeaders, Signature)",
                    clip(other)
                )));
            }
        };
        if slot.replace(part.trim()).is_some() {
            return Err(SignatureError::MalformedAuthorization(format!(
                "{} appears twice",
                name.trim()
            )));
        }
    }
    let credential = credential.ok_or(SignatureError::MissingAuthorizationPart("Credential"))?;
    let signed_headers =
        signed_headers.ok_or(SignatureError::MissingAuthorizationPart("SignedHeaders"))?;
    let signature = signature.ok_or(SignatureError::MissingAuthorizationPart("Signature"))?;
    check_signed_headers(signed_headers)?;
    Ok(Presented {
        algorithm,
        scope: Scope::parse(credential, algorithm)?,
        signed_headers: signed_headers.to_string(),
        signature: decode_signature(signature, algorithm)?,
        placement: Placement::Header,
    })
}

/// The longest presigned URL lifetime AWS allows: 7 days.
pub(crate) const MAX_EXPIRES: u64 = 7 * 24 * 3600;

/// Parses a presigned URL's `X-Amz-*` parameters (the query [`is_presigned`]).
pub(crate) fn parse_presigned(query: &str) -> Result<Presented, SignatureError> {
    const NAMES: [&str; 9] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "X-Amz-Region-Set",
        "X-Amz-Content-Sha256",
    ];
    let mut found: [Option<String>; 9] = Default::default();
    for (key, value) in query_pairs(query) {
        let Some((name, slot)) = NAMES
            .iter()
            .zip(found.iter_mut())
            .find(|(name, _)| name.as_bytes() == key.as_ref())
        else {
            continue;
        };
        let value = String::from_utf8(value.into_owned())
            .map_err(|_| SignatureError::MalformedAuthorization(format!("{name} is not UTF-8")))?;
        if slot.replace(value).is_some() {
            // Two algorithms or two signatures are two signatures.
            return Err(if matches!(*name, "X-Amz-Algorithm" | "X-Amz-Signature") {
                SignatureError::DuplicateAuthorization
            } else {
                SignatureError::MalformedAuthorization(format!("{name} appears twice in the query"))
            });
        }
    }
    let [
        algorithm,
        credential,
        date,
        expires,
        signed_headers,
        signature,
        token,
        region_set,
        content_sha256,
    ] = found;
    let algorithm = algorithm.ok_or(SignatureError::MissingAuthorizationPart("X-Amz-Algorithm"))?;
    let algorithm = Algorithm::from_name(&algorithm)?;
    let credential =
        credential.ok_or(SignatureError::MissingAuthorizationPart("X-Amz-Credential"))?;
    let signed_headers = signed_headers.ok_or(SignatureError::MissingAuthorizationPart(
        "X-Amz-SignedHeaders",
    ))?;
    let signature = signature.ok_or(SignatureError::MissingAuthorizationPart("X-Amz-Signature"))?;
    let date = date.ok_or(SignatureError::MissingDate)?;
    let expires = expires.ok_or(SignatureError::MissingAuthorizationPart("X-Amz-Expires"))?;
    let expires = match expires.parse::<u64>() {
        Ok(secs) if (1..=MAX_EXPIRES).contains(&secs) && !expires.starts_with('+') => secs,
        _ => return Err(SignatureError::BadExpires(clip(&expires))),
    };
    check_signed_headers(&signed_headers)?;
    Ok(Presented {
        algorithm,
        scope: Scope::parse(&credential, algorithm)?,
        signed_headers,
        signature: decode_signature(&signature, algorithm)?,
        placement: Placement::Query {
            date,
            expires,
            token,
            region_set,
            content_sha256,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    #[test]
    fn a_botocore_authorization_header_parses() {
        let value = format!(
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/vpc-lattice-svcs/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={SIG}"
        );
        let p = parse_authorization(value.as_bytes()).unwrap();
        assert_eq!(p.algorithm, Algorithm::V4);
        assert_eq!(p.scope.access_key, "AKID");
        assert_eq!(p.scope.date, "20150830");
        assert_eq!(p.scope.region.as_deref(), Some("us-east-1"));
        assert_eq!(p.scope.service, "vpc-lattice-svcs");
        assert_eq!(p.signed_headers, "host;x-amz-content-sha256;x-amz-date");
        assert_eq!(p.signature.len(), 32);
        // No spaces after the commas is fine too.
        let tight = value.replace(", ", ",");
        assert!(parse_authorization(tight.as_bytes()).is_ok());
    }

    #[test]
    fn sigv4a_scopes_have_no_region() {
        let value = "AWS4-ECDSA-P256-SHA256 Credential=AKID/20150830/vpc-lattice-svcs/aws4_request, SignedHeaders=host, Signature=304402200102030405";
        let p = parse_authorization(value.as_bytes()).unwrap();
        assert_eq!(p.algorithm, Algorithm::V4A);
        assert_eq!(p.scope.region, None);
        assert_eq!(p.scope.service, "vpc-lattice-svcs");
    }

    #[test]
    fn broken_headers_name_the_problem() {
        let cred = "Credential=AKID/20150830/us-east-1/vpc-lattice-svcs/aws4_request";
        let cases: Vec<(String, SignatureError)> = vec![
            (
                format!("AWS4-HMAC-SHA256 SignedHeaders=host, Signature={SIG}"),
                SignatureError::MissingAuthorizationPart("Credential"),
            ),
            (
                format!("AWS4-HMAC-SHA256 {cred}, Signature={SIG}"),
                SignatureError::MissingAuthorizationPart("SignedHeaders"),
            ),
            (
                format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host"),
                SignatureError::MissingAuthorizationPart("Signature"),
            ),
            (
                format!("AWS4-HMAC-SHA512 {cred}, SignedHeaders=host, Signature={SIG}"),
                SignatureError::UnsupportedAlgorithm("AWS4-HMAC-SHA512".into()),
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKID/2015083/us-east-1/vpc-lattice-svcs/aws4_request, SignedHeaders=host, Signature={SIG}"
                ),
                SignatureError::BadDate("2015083".into()),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_authorization(value.as_bytes()).unwrap_err(),
                expected,
                "{value}"
            );
        }
        for value in [
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=Host, Signature={SIG}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=x-amz-date;host, Signature={SIG}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;host, Signature={SIG}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;, Signature={SIG}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host, Signature=xyz"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host, Signature={SIG}00"),
            format!("AWS4-HMAC-SHA256 {cred}, {cred}, SignedHeaders=host, Signature={SIG}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host, Signature={SIG}, Extra=1"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host, Signature"),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/vpc-lattice-svcs/aws4, SignedHeaders=host, Signature={SIG}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20150830/vpc-lattice-svcs/aws4_request, SignedHeaders=host, Signature={SIG}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/vpc-lattice-svcs/aws4_request, SignedHeaders=host, Signature={SIG}"
            ),
        ] {
            assert!(
                matches!(
                    parse_authorization(value.as_bytes()),
                    Err(SignatureError::MalformedAuthorization(_))
                ),
                "{value}"
            );
        }
    }

    #[test]
    fn presigned_parameters_parse_and_are_checked() {
        let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20150830%2Fus-east-1%2Fvpc-lattice-svcs%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host";
        let query = format!("a=1&{base}&X-Amz-Signature={SIG}");
        assert!(is_presigned(Some(&query)));
        assert!(!is_presigned(Some("a=1&X-Amz-Date=1")));
        assert!(!is_presigned(None));
        let p = parse_presigned(&query).unwrap();
        assert_eq!(p.scope.access_key, "AKID");
        assert!(matches!(p.placement, Placement::Query { expires: 60, .. }));

        let twice = format!("{query}&X-Amz-Signature={SIG}");
        assert_eq!(
            parse_presigned(&twice).unwrap_err(),
            SignatureError::DuplicateAuthorization
        );
        for (expires, ok) in [
            ("604800", true),
            ("604801", false),
            ("0", false),
            ("-1", false),
            ("+5", false),
            ("x", false),
        ] {
            let q = query.replace("X-Amz-Expires=60", &format!("X-Amz-Expires={expires}"));
            assert_eq!(parse_presigned(&q).is_ok(), ok, "{expires}");
        }
        let no_expires = query.replace("&X-Amz-Expires=60", "");
        assert_eq!(
            parse_presigned(&no_expires).unwrap_err(),
            SignatureError::MissingAuthorizationPart("X-Amz-Expires")
        );
        let no_date = query.replace("&X-Amz-Date=20150830T123600Z", "");
        assert_eq!(
            parse_presigned(&no_date).unwrap_err(),
            SignatureError::MissingDate
        );
    }
}
