//! Stable identifiers, ARNs and DNS names.
//!
//! Lattice gives every object a random 17-character id. Trellis derives it from the object's
//! kind, region, account and name instead, so the generated DNS names stay the same across
//! restarts and machines (a client can hard-code them).

use sha2::{Digest, Sha256};

/// The partition label every observed Lattice DNS name carries.
pub const DNS_PARTITION_LABEL: &str = "7d67968";

/// 17 lower-case hex characters derived from `parts`.
pub fn stable_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..17].to_string()
}

/// `arn:aws:vpc-lattice:<region>:<account>:<resource>`.
pub fn lattice_arn(region: &str, account: &str, resource: &str) -> String {
    format!("arn:aws:vpc-lattice:{region}:{account}:{resource}")
}

/// The generated DNS name of a service.
pub fn service_dns_name(name: &str, id17: &str, region: &str) -> String {
    format!("{name}-{id17}.{DNS_PARTITION_LABEL}.vpc-lattice-svcs.{region}.on.aws")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = stable_id(&["service", "us-west-2", "123456789012", "lattice-svc"]);
        assert_eq!(
            a,
            stable_id(&["service", "us-west-2", "123456789012", "lattice-svc"])
        );
        assert_eq!(a.len(), 17);
        assert_ne!(
            a,
            stable_id(&["service", "us-west-2", "123456789012", "other"])
        );
    }

    #[test]
    fn dns_name_has_lattice_shape() {
        let name = service_dns_name("test2", "0cfe1f49ff3266204", "ap-southeast-2");
        assert_eq!(
            name,
            "test2-0cfe1f49ff3266204.7d67968.vpc-lattice-svcs.ap-southeast-2.on.aws"
        );
    }
}
