//! What relates objects to each other: names given twice, references by name (or id, or ARN)
//! resolved with a suggestion, and the rules that span sections, checked on the decoded config.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::decode::{Loc, Problems, did_you_mean};
use crate::model::*;

/// Reports names used twice within one scope.
pub(super) fn check_unique<'a>(
    problems: &mut Problems,
    what: &str,
    names: impl IntoIterator<Item = (&'a str, &'a Loc)>,
) {
    let mut seen: HashMap<&str, &Loc> = HashMap::new();
    for (name, loc) in names {
        if let Some(first) = seen.get(name) {
            problems.add(
                loc,
                format!("duplicate {what} \"{name}\""),
                Some(format!("the first one is at {}", problems.place(first))),
            );
        } else {
            seen.insert(name, loc);
        }
    }
}

/// An object that can be referred to by name, id or ARN.
pub(super) struct Named<'a> {
    pub name: &'a str,
    id: &'a str,
    arn: &'a str,
}

/// The name, id and ARN of every item, for [`resolve`].
pub(super) fn named<'a, T>(
    items: &'a [T],
    parts: impl Fn(&'a T) -> (&'a str, &'a str, &'a str),
) -> Vec<Named<'a>> {
    items
        .iter()
        .map(|item| {
            let (name, id, arn) = parts(item);
            Named { name, id, arn }
        })
        .collect()
}

/// The index of the object that `text` names, or a problem naming the closest one.
pub(super) fn resolve(
    problems: &mut Problems,
    text: &str,
    loc: &Loc,
    what: &str,
    all: &[Named<'_>],
) -> Option<usize> {
    if let Some(i) = all
        .iter()
        .position(|n| n.name == text || n.id == text || n.arn == text)
    {
        return Some(i);
    }
    let mut names: Vec<&str> = all.iter().map(|n| n.name).collect();
    names.sort_unstable();
    names.dedup();
    let hint = did_you_mean(text, names.iter().copied()).or_else(|| {
        if all.is_empty() {
            Some(format!("no {what} is defined"))
        } else {
            Some(format!("defined: {}", names.join(", ")))
        }
    });
    problems.add(loc, format!("unknown {what} \"{text}\""), hint);
    None
}

/// Reports a custom domain that leads to two services on one port: the same custom domain
/// on two services, or a custom domain equal to another service's generated names (its DNS
/// name, `<name>.trellis.localhost`). The router could only pick one of them, silently;
/// Lattice requires a custom domain name to be unique within a service network. `domain_at`
/// holds where each service's `customDomainName` is written, in the order of `services`.
pub(super) fn check_host_names(problems: &mut Problems, services: &[Service], domain_at: &[Loc]) {
    // (port, lower-case host) → the service answering to it there. Generated names go in
    // first: they cannot clash with each other (service names are unique), so whatever clashes
    // is a custom domain, and the problem points at it.
    let mut owner: HashMap<(u16, String), usize> = HashMap::new();
    for (i, svc) in services.iter().enumerate() {
        let generated = [
            svc.dns_name.to_ascii_lowercase(),
            format!("{}.trellis.localhost", svc.name.to_ascii_lowercase()),
        ];
        for l in &svc.listeners {
            for host in &generated {
                owner.entry((l.port, host.clone())).or_insert(i);
            }
        }
    }
    for (i, svc) in services.iter().enumerate() {
        let Some(domain) = &svc.custom_domain_name else {
            continue;
        };
        let host = domain.to_ascii_lowercase();
        for l in &svc.listeners {
            let first = match owner.entry((l.port, host.clone())) {
                Entry::Vacant(v) => {
                    v.insert(i);
                    continue;
                }
                Entry::Occupied(o) if *o.get() == i => continue,
                Entry::Occupied(o) => *o.get(),
            };
            let Some(other) = services.get(first) else {
                continue;
            };
            let kind = if other
                .custom_domain_name
                .as_ref()
                .is_some_and(|d| d.eq_ignore_ascii_case(domain))
            {
                "custom domain"
            } else {
                "generated host name"
            };
            problems.add(
                domain_at.get(i).unwrap_or(&svc.at),
                format!(
                    "custom domain \"{domain}\" of service \"{}\" is also the {kind} of service \"{}\" on port {}",
                    svc.name, other.name, l.port
                ),
                Some(format!(
                    "a host name must lead to one service on a port (VPC Lattice requires custom domain names to be unique); service \"{}\" is at {}: give one of them another name",
                    other.name, problems.place(&other.at)
                )),
            );
            // One problem per custom domain, however many ports the two services share.
            break;
        }
    }
}

/// Checks that span sections: ports shared by listeners, target groups shared by services,
/// VPCs associated with several networks.
pub(super) fn cross_checks(problems: &mut Problems, config: &Config) {
    let mut ports: HashMap<u16, (&Listener, &Service)> = HashMap::new();
    for svc in &config.services {
        for l in &svc.listeners {
            match ports.get(&l.port) {
                Some((first, first_svc)) if first.protocol != l.protocol => problems.add(
                    &l.at,
                    format!("port {} is {} here but {} on listener \"{}\" of service \"{}\"", l.port, l.protocol.as_str(), first.protocol.as_str(), first.name, first_svc.name),
                    Some("listeners of several services may share a port only with the same protocol".into()),
                ),
                Some(_) => {}
                None => {
                    ports.insert(l.port, (l, svc));
                }
            }
        }
    }
    let mut owner: HashMap<usize, &Service> = HashMap::new();
    for svc in &config.services {
        for l in &svc.listeners {
            let actions =
                std::iter::once(&l.default_action).chain(l.rules.iter().map(|r| &r.action));
            for action in actions {
                let Action::Forward(tgs) = action else {
                    continue;
                };
                for w in tgs {
                    match owner.get(&w.target_group) {
                        Some(first) if first.name != svc.name => problems.add(
                            &l.at,
                            format!("target group \"{}\" is already used by service \"{}\"", config.target_groups[w.target_group].name, first.name),
                            Some("in VPC Lattice a target group belongs to one service; define a second target group with the same targets".into()),
                        ),
                        Some(_) => {}
                        None => {
                            owner.insert(w.target_group, svc);
                        }
                    }
                }
            }
        }
    }
    let mut vpc_owner: HashMap<usize, &ServiceNetwork> = HashMap::new();
    for sn in &config.service_networks {
        for v in &sn.vpcs {
            if let Some(first) = vpc_owner.get(v) {
                problems.add(
                    &sn.at.field("vpcs", sn.at.pos),
                    format!(
                        "VPC \"{}\" is already associated with service network \"{}\"",
                        config.vpcs[*v].name, first.name
                    ),
                    Some("a VPC can be associated with only one service network".into()),
                );
            } else {
                vpc_owner.insert(*v, sn);
            }
        }
    }
}
