//! Why a signed request was refused: one variant per reason, each with the sentence the 403 body
//! carries and a short stable code for logs and metrics.

/// The longest client-supplied string an error repeats; anything longer is cut, so a garbled
/// header cannot turn a 403 body or a log line into megabytes.
const MAX_ECHO: usize = 128;

/// Cuts a client-supplied value to [`MAX_ECHO`] bytes (on a character boundary).
pub(crate) fn clip(value: &str) -> String {
    if value.len() <= MAX_ECHO {
        return value.to_string();
    }
    let mut end = MAX_ECHO;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

/// What is wrong with `x-amz-content-sha256`: Lattice does not support payload signing, so the
/// header must be sent, signed, and say `UNSIGNED-PAYLOAD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentSha256Problem {
    /// The header is absent (header-signed requests must carry it).
    Missing,
    /// The header is sent but not listed in SignedHeaders.
    NotSigned,
    /// The request was signed over a payload hash instead of `UNSIGNED-PAYLOAD`.
    PayloadHash,
}

impl ContentSha256Problem {
    fn sentence(self) -> &'static str {
        match self {
            ContentSha256Problem::Missing => {
                "the request has no x-amz-content-sha256 header: VPC Lattice does not support payload signing; send and sign `x-amz-content-sha256: UNSIGNED-PAYLOAD`"
            }
            ContentSha256Problem::NotSigned => {
                "x-amz-content-sha256 is not in SignedHeaders: it must be signed (with the value UNSIGNED-PAYLOAD)"
            }
            ContentSha256Problem::PayloadHash => {
                "the request is signed over a payload hash: VPC Lattice does not support payload signing; sign with `x-amz-content-sha256: UNSIGNED-PAYLOAD`"
            }
        }
    }
}

/// Why the signature of a signed request does not authenticate it.
///
/// `Display` is the sentence for the 403 body; [`SignatureError::reason`] is the short code.
/// Strings taken from the request are clipped to 128 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A part every signature needs is absent: `Credential`, `SignedHeaders`, `Signature`, or a
    /// presigned URL's `X-Amz-*` parameter, or SigV4A's region set.
    #[error("incomplete signature: the request has no {0}")]
    MissingAuthorizationPart(&'static str),
    /// The Authorization header or the presigned parameters cannot be parsed.
    #[error("malformed signature: {0}")]
    MalformedAuthorization(String),
    /// Not AWS4-HMAC-SHA256 (SigV4) nor AWS4-ECDSA-P256-SHA256 (SigV4A).
    #[error(
        "unsupported signing algorithm {0:?}: VPC Lattice accepts AWS4-HMAC-SHA256 (SigV4) and AWS4-ECDSA-P256-SHA256 (SigV4A)"
    )]
    UnsupportedAlgorithm(String),
    /// No configured identity has this access key id.
    #[error("the access key id {0:?} is not one of the configured identities")]
    UnknownAccessKey(String),
    /// The credential scope names another service than `vpc-lattice-svcs`.
    #[error("the credential is scoped to service {0:?}: it should be scoped to 'vpc-lattice-svcs'")]
    WrongService(String),
    /// SigV4's credential scope names another region than the one Trellis serves.
    #[error("the credential is scoped to region {found:?}: it should be scoped to {expected:?}")]
    WrongRegion { expected: String, found: String },
    /// SigV4A's region set neither is `*` nor matches the region Trellis serves.
    #[error("the SigV4A region set {found:?} does not include the region {expected:?}")]
    RegionSetMismatch { expected: String, found: String },
    /// SigV4A in the Authorization header without `x-amz-region-set` in SignedHeaders: the
    /// region set would not be covered by the signature.
    #[error("x-amz-region-set is not in SignedHeaders: SigV4A's region set must be signed")]
    RegionSetNotSigned,
    /// Neither `X-Amz-Date` nor `Date` (nor the `X-Amz-Date` query parameter).
    #[error("the signed request has no date: send X-Amz-Date (format YYYYMMDDTHHMMSSZ)")]
    MissingDate,
    /// The date is not `YYYYMMDDTHHMMSSZ` (or, for `Date`, an HTTP date).
    #[error("the request date {0:?} is not a valid YYYYMMDDTHHMMSSZ timestamp")]
    BadDate(String),
    /// The credential scope's date is not the request date's day.
    #[error("the credential scope date {scope:?} does not match the request date {date:?}")]
    ScopeDateMismatch { scope: String, date: String },
    /// Signed longer ago than allowed: 5 minutes for a header signature, `X-Amz-Expires` for a
    /// presigned URL.
    #[error("{}", expired_sentence(.signed, .now, .presigned_expires))]
    Expired {
        signed: String,
        now: String,
        /// For a presigned URL, its `X-Amz-Expires`.
        presigned_expires: Option<u64>,
    },
    /// Signed more than 5 minutes in the future.
    #[error(
        "signature not yet current: {signed} is more than 5 minutes after the server time {now}"
    )]
    NotYetValid { signed: String, now: String },
    /// `X-Amz-Expires` is not a whole number of seconds from 1 to 604800 (7 days).
    #[error("X-Amz-Expires {0:?} must be a number of seconds from 1 to 604800 (7 days)")]
    BadExpires(String),
    /// `x-amz-content-sha256` is missing, unsigned, or not `UNSIGNED-PAYLOAD`.
    #[error("{}", .0.sentence())]
    ContentSha256Required(ContentSha256Problem),
    /// `host` is not in SignedHeaders.
    #[error("host is not in SignedHeaders: the host header must be signed")]
    HostNotSigned,
    /// The signed `host` is not the host the client connected to.
    #[error(
        "the signed host {signed:?} is not the host the request was sent to ({used:?}): sign the host you use"
    )]
    HostMismatch { signed: String, used: String },
    /// A header named in SignedHeaders is not in the request.
    #[error("the signed header {0:?} is not in the request")]
    SignedHeaderMissing(String),
    /// The identity uses temporary credentials and the request has no security token.
    #[error(
        "the access key belongs to temporary credentials: the request must carry its x-amz-security-token"
    )]
    SecurityTokenRequired,
    /// `x-amz-security-token` is sent as a header but not signed.
    #[error("x-amz-security-token is not in SignedHeaders: the security token must be signed")]
    SecurityTokenNotSigned,
    /// The security token is not the one of the identity.
    #[error("the security token included in the request is invalid")]
    SecurityTokenMismatch,
    /// A security token is sent for an identity with long-term credentials.
    #[error(
        "the security token included in the request is invalid: this access key has no session token"
    )]
    UnexpectedSecurityToken,
    /// The signature does not match the request.
    #[error(
        "the request signature we calculated does not match the signature you provided; check your secret access key and signing method.\nThe canonical request was:\n{canonical_request}\nThe string to sign was:\n{string_to_sign}"
    )]
    SignatureMismatch {
        canonical_request: String,
        string_to_sign: String,
    },
    /// The signature matches the path and query exactly as sent rather than their canonical
    /// form (sorted, URI-encoded query; double-encoded, normalised path), as curl before 8.x
    /// builds them; AWS refuses these, and so does Trellis.
    #[error(
        "the request was signed over its path and query as sent, not their canonical form (query parameters sorted and URI-encoded, path normalised and encoded again), as AWS requires; curl before 8.x signs that way"
    )]
    NotCanonical,
    /// More than one Authorization header, or an Authorization header and a presigned URL.
    #[error(
        "the request carries more than one signature (several Authorization headers, or one and a presigned URL)"
    )]
    DuplicateAuthorization,
}

fn expired_sentence(signed: &str, now: &str, presigned_expires: &Option<u64>) -> String {
    match presigned_expires {
        Some(expires) => format!(
            "the presigned URL has expired: signed at {signed} for {expires} s, and the server time is {now}"
        ),
        None => format!(
            "signature expired: {signed} is more than 5 minutes before the server time {now}"
        ),
    }
}

impl SignatureError {
    /// A short stable code for logs and metrics: AWS's own error code where it has one.
    pub fn reason(&self) -> &'static str {
        use SignatureError::*;
        match self {
            MissingAuthorizationPart(_)
            | MalformedAuthorization(_)
            | UnsupportedAlgorithm(_)
            | RegionSetNotSigned
            | MissingDate
            | BadDate(_)
            | HostNotSigned
            | SecurityTokenNotSigned
            | DuplicateAuthorization => "IncompleteSignature",
            BadExpires(_) => "AuthorizationQueryParametersError",
            UnknownAccessKey(_)
            | SecurityTokenRequired
            | SecurityTokenMismatch
            | UnexpectedSecurityToken => "InvalidClientTokenId",
            WrongService(_)
            | WrongRegion { .. }
            | RegionSetMismatch { .. }
            | ScopeDateMismatch { .. }
            | HostMismatch { .. }
            | SignedHeaderMissing(_)
            | SignatureMismatch { .. }
            | NotCanonical => "SignatureDoesNotMatch",
            Expired { .. } | NotYetValid { .. } => "RequestExpired",
            ContentSha256Required(_) => "UnsignedPayloadRequired",
        }
    }
}
