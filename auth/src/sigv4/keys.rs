//! Key material per identity: SigV4's derived signing keys (cached per day) and SigV4A's
//! public key (derived once, when the verifier is built).

use std::sync::Mutex;

use ring::hmac;

/// How many (day → signing key) entries an identity keeps. Header signatures span at most two
/// days (around midnight, within the 5-minute skew); presigned URLs can be up to 7 days old,
/// and a miss only costs four HMACs.
const CACHED_DAYS: usize = 4;

/// The SigV4 service name of Lattice's data plane.
pub(crate) const SERVICE: &str = "vpc-lattice-svcs";

/// SigV4's signing keys for one identity and the one region Trellis serves.
pub(crate) struct SigningKeys {
    /// `"AWS4" + secret` as an HMAC key: the root of the derivation.
    secret: hmac::Key,
    region: String,
    /// Recently used days and their signing keys; the oldest insertion is replaced.
    cache: Mutex<DayCache>,
}

#[derive(Default)]
struct DayCache {
    entries: [Option<([u8; 8], hmac::Key)>; CACHED_DAYS],
    next: usize,
}

impl SigningKeys {
    pub(crate) fn new(secret: &str, region: &str) -> SigningKeys {
        let root = [b"AWS4", secret.as_bytes()].concat();
        SigningKeys {
            secret: hmac::Key::new(hmac::HMAC_SHA256, &root),
            region: region.to_string(),
            cache: Mutex::new(DayCache::default()),
        }
    }

    /// The signing key for `date` (`YYYYMMDD`): HMAC chain over date, region, service and
    /// `aws4_request`.
    pub(crate) fn for_date(&self, date: [u8; 8]) -> hmac::Key {
        // A poisoned lock only means another thread panicked mid-update of a cache of
        // derivable values: the data is still usable.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, key)) = cache.entries.iter().flatten().find(|(d, _)| *d == date) {
            return key.clone();
        }
        let k_date = hmac::sign(&self.secret, &date);
        let k_region = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, k_date.as_ref()),
            self.region.as_bytes(),
        );
        let k_service = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, k_region.as_ref()),
            SERVICE.as_bytes(),
        );
        let k_signing = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, k_service.as_ref()),
            b"aws4_request",
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref());
        let slot = cache.next % CACHED_DAYS;
        if let Some(entry) = cache.entries.get_mut(slot) {
            *entry = Some((date, key.clone()));
        }
        cache.next = (slot + 1) % CACHED_DAYS;
        key
    }
}

/// The order of P-256's group minus 2, big-endian: SigV4A's key derivation retries while its
/// candidate is above it, so that candidate + 1 is a valid private scalar.
const P256_N_MINUS_2: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x4F,
];

/// SigV4A's private scalar for a key pair, as AWS derives it (aws-c-auth and the SDKs):
/// NIST SP 800-108 HMAC-SHA256 KDF in counter mode keyed with `"AWS4A" + secret`, fixed input
/// `be32(1) || "AWS4-ECDSA-P256-SHA256" || 0x00 || access_key || counter || be32(256)`, the
/// counter byte starting at 1 and bumped while the 256-bit result exceeds n - 2; the private
/// key is the result + 1.
pub(crate) fn sigv4a_private_scalar(access_key: &str, secret: &str) -> Option<[u8; 32]> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &[b"AWS4A", secret.as_bytes()].concat());
    for counter in 1u8..=254 {
        let mut input = Vec::with_capacity(access_key.len() + 36);
        input.extend_from_slice(&1u32.to_be_bytes());
        input.extend_from_slice(b"AWS4-ECDSA-P256-SHA256");
        input.push(0);
        input.extend_from_slice(access_key.as_bytes());
        input.push(counter);
        input.extend_from_slice(&256u32.to_be_bytes());
        let tag = hmac::sign(&key, &input);
        let mut candidate: [u8; 32] = tag.as_ref().try_into().ok()?;
        // Big-endian byte arrays of equal length compare as the numbers they encode.
        if candidate <= P256_N_MINUS_2 {
            // + 1 cannot carry out of the top byte: candidate <= n - 2 < 2^256 - 1.
            for byte in candidate.iter_mut().rev() {
                let (sum, carry) = byte.overflowing_add(1);
                *byte = sum;
                if !carry {
                    break;
                }
            }
            return Some(candidate);
        }
    }
    None
}

/// SigV4A's public key for a key pair: the uncompressed SEC1 point (65 bytes) that ring's
/// ECDSA verification takes. `None` only if the derivation never lands in range (probability
/// about 2^-8000).
pub(crate) fn sigv4a_public_key(access_key: &str, secret: &str) -> Option<Vec<u8>> {
    use p256::elliptic_curve::sec1::ToSec1Point;
    let scalar = sigv4a_private_scalar(access_key, secret)?;
    let secret_key = p256::SecretKey::from_bytes(&scalar.into()).ok()?;
    let point = secret_key.public_key().as_affine().to_sec1_point(false);
    Some(point.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_keys_match_awss_documented_example() {
        // The worked example of AWS's SigV4 documentation ("Examples of how to derive a
        // signing key"): secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215,
        // us-east-1, iam. The service is fixed here, so derive by hand with the same chain
        // and compare with the cached path for vpc-lattice-svcs instead.
        let keys = SigningKeys::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1");
        let chain = |parts: &[&[u8]]| {
            let mut key = b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_vec();
            for part in parts {
                key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part)
                    .as_ref()
                    .to_vec();
            }
            key
        };
        let iam = chain(&[b"20120215", b"us-east-1", b"iam", b"aws4_request"]);
        assert_eq!(
            super::super::canonical::hex(&iam),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        let lattice = chain(&[
            b"20120215",
            b"us-east-1",
            SERVICE.as_bytes(),
            b"aws4_request",
        ]);
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &lattice), b"msg");
        for _ in 0..2 {
            // Second time round from the cache.
            let got = hmac::sign(&keys.for_date(*b"20120215"), b"msg");
            assert_eq!(got.as_ref(), expected.as_ref());
        }
        // The cache stays bounded while days go by.
        for day in 10..30u8 {
            let date = [
                b'2',
                b'0',
                b'1',
                b'2',
                b'0',
                b'2',
                b'0' + day / 10,
                b'0' + day % 10,
            ];
            keys.for_date(date);
        }
        let cache = keys.cache.lock().unwrap();
        assert_eq!(cache.entries.iter().flatten().count(), CACHED_DAYS);
    }

    #[test]
    fn sigv4a_scalars_are_in_range_and_plus_one() {
        let d = sigv4a_private_scalar("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
            .unwrap();
        assert!(
            d <= P256_N_MINUS_2
                || d == {
                    let mut n_minus_1 = P256_N_MINUS_2;
                    n_minus_1[31] += 1;
                    n_minus_1
                }
        );
        assert_eq!(
            sigv4a_public_key("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
                .unwrap()
                .len(),
            65
        );
    }
}
