//! Which service a query name belongs to.

use trellis_config::{Config, Service};

/// The zone Trellis owns outright: a name under it that is no service is NXDOMAIN, never
/// forwarded (`.localhost` must not leak to a real resolver, RFC 6761).
const TRELLIS_ZONE: &str = "trellis.localhost";

/// Lower-case, without the trailing dot: `Svc.Example.COM.` → `svc.example.com`.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The service answering to `name` (normalized): by generated DNS name, custom domain name or
/// `<name>.trellis.localhost`. A scan of the services: their number is bounded by the config's
/// limits and each comparison is a few bytes, cheaper than keeping an index in step with
/// every reload.
pub fn lookup<'c>(config: &'c Config, name: &str) -> Option<&'c Service> {
    config.services.iter().find(|svc| {
        svc.host_names()
            .iter()
            .any(|h| h.trim_end_matches('.').eq_ignore_ascii_case(name))
    })
}

/// Whether `name` (normalized) is `trellis.localhost` or under it.
pub fn is_trellis_zone(name: &str) -> bool {
    name == TRELLIS_ZONE
        || name
            .strip_suffix(TRELLIS_ZONE)
            .is_some_and(|rest| rest.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone() {
        assert!(is_trellis_zone("trellis.localhost"));
        assert!(is_trellis_zone("x.trellis.localhost"));
        assert!(!is_trellis_zone("xtrellis.localhost"));
        assert!(!is_trellis_zone("example.com"));
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("Svc.Example.COM."), "svc.example.com");
    }
}
