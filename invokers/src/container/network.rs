//! How function containers reach Trellis's Runtime API.
//!
//! - **Trellis on the host** (Linux): containers join the default `bridge` network and the
//!   Runtime API endpoints listen on that bridge's gateway address (`docker0`, 172.17.0.1 by
//!   default): reachable from the containers, not from other machines (unlike `0.0.0.0`).
//! - **Trellis in a container** with the engine's socket mounted (the compose demo): Trellis
//!   finds its own container (`/.dockerenv`, then its id from `/proc/self/mountinfo`,
//!   `/proc/self/cgroup` or its host name, confirmed by inspecting it and by owning the address
//!   the engine reports), and function containers join Trellis's own network; the endpoints
//!   listen on Trellis's address there. With several networks, a user-defined one is preferred
//!   over the default bridge (`TRELLIS_DOCKER_NETWORK` picks one by name).
//! - **Docker Desktop or a remote engine** (the bridge gateway is not an address of this
//!   machine): the endpoints listen on loopback and containers are told `host.docker.internal`,
//!   which Docker Desktop routes to the host's loopback.
//!
//! [`decide`] is the whole decision, as a pure function of what [`detect`] found.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use bollard::Docker;

use super::ContainerError;
use super::engine::is_status;

/// The name Docker Desktop (and `--add-host host.docker.internal:host-gateway`) gives the host.
const HOST_ALIAS: &str = "host.docker.internal";

/// Where function containers attach, and where the Runtime API listens for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The containers' `NetworkMode`: a network name (`bridge`, `demo_default`).
    pub network: String,
    /// The address the Runtime API endpoints listen on ([`PoolConfig::bind`]).
    ///
    /// [`PoolConfig::bind`]: trellis_runtime::pool::PoolConfig::bind
    pub bind: IpAddr,
    /// The host name containers are given in `AWS_LAMBDA_RUNTIME_API` when it is not `bind`.
    pub advertise_host: Option<String>,
    /// `name:address` lines for the containers' `/etc/hosts` (`host-gateway` allowed).
    pub extra_hosts: Vec<String>,
    /// Whether Trellis runs in a container itself.
    pub in_container: bool,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reach = self
            .advertise_host
            .clone()
            .unwrap_or_else(|| self.bind.to_string());
        write!(
            f,
            "function containers join network {} and reach the Runtime API at {reach}",
            self.network
        )?;
        if self.advertise_host.is_some() {
            write!(f, " (listening on {})", self.bind)?;
        }
        if self.in_container {
            f.write_str(" (Trellis runs in a container)")?;
        }
        Ok(())
    }
}

/// What [`decide`] needs to know about where Trellis runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Surroundings {
    /// Trellis's own container, when it runs in one that this engine knows.
    pub own_container: Option<OwnContainer>,
    /// The default bridge network's gateway address, if the engine has one.
    pub bridge_gateway: Option<IpAddr>,
    /// Whether that gateway is an address of this machine (Trellis can listen on it).
    pub gateway_is_local: bool,
    /// A network asked for by name (`TRELLIS_DOCKER_NETWORK`).
    pub preferred_network: Option<String>,
}

/// Trellis's own container, as the engine describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnContainer {
    pub id: String,
    /// `HostConfig.NetworkMode`: `bridge`, `host`, `none`, `container:<id>`, or a network.
    pub network_mode: String,
    /// The networks it is attached to, with its address on each.
    pub networks: Vec<AttachedNetwork>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedNetwork {
    pub name: String,
    pub ip: Option<IpAddr>,
}

/// The placement for `surroundings`; an error when containers could not reach Trellis.
pub fn decide(surroundings: &Surroundings) -> Result<Placement, String> {
    if let Some(own) = &surroundings.own_container {
        let mode = own.network_mode.as_str();
        if mode == "none" || mode.starts_with("container:") {
            return Err(format!(
                "Trellis runs in container {} with network mode {mode:?}, which function containers cannot join; run Trellis on a bridge or user-defined network",
                short(&own.id)
            ));
        }
        // With the host's network, Trellis is on the host as far as containers can tell.
        if mode != "host" {
            return in_container(own, surroundings.preferred_network.as_deref());
        }
    }
    Ok(match surroundings.bridge_gateway {
        Some(gateway) if surroundings.gateway_is_local => Placement {
            network: "bridge".into(),
            bind: gateway,
            advertise_host: None,
            extra_hosts: Vec::new(),
            in_container: surroundings.own_container.is_some(),
        },
        // Docker Desktop (the bridge lives in a VM) or a remote engine.
        _ => Placement {
            network: "bridge".into(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertise_host: Some(HOST_ALIAS.into()),
            extra_hosts: vec![format!("{HOST_ALIAS}:host-gateway")],
            in_container: surroundings.own_container.is_some(),
        },
    })
}

/// Trellis in a container: its functions join its network and call it at its address there.
fn in_container(own: &OwnContainer, preferred: Option<&str>) -> Result<Placement, String> {
    let usable: Vec<&AttachedNetwork> = own.networks.iter().filter(|n| n.ip.is_some()).collect();
    let chosen = match preferred {
        Some(name) => usable.iter().find(|n| n.name == name).copied().ok_or_else(|| {
            format!(
                "TRELLIS_DOCKER_NETWORK={name}, but Trellis's container is not attached to it (it is on: {})",
                names(&usable)
            )
        })?,
        None => {
            // A user-defined network (a compose project's) gives DNS between containers and
            // is what the user chose; the default bridge is the fallback. Sorted by name, so
            // the choice does not depend on the engine's map order.
            let mut candidates = usable.clone();
            candidates.sort_by(|a, b| {
                ((a.name == "bridge"), &a.name).cmp(&((b.name == "bridge"), &b.name))
            });
            candidates.first().copied().ok_or_else(|| {
                format!(
                    "Trellis runs in container {} but has no address on any network",
                    short(&own.id)
                )
            })?
        }
    };
    let ip = chosen.ip.ok_or("no address")?;
    Ok(Placement {
        network: chosen.name.clone(),
        bind: ip,
        advertise_host: None,
        extra_hosts: Vec::new(),
        in_container: true,
    })
}

fn names(networks: &[&AttachedNetwork]) -> String {
    if networks.is_empty() {
        return "none".into();
    }
    networks
        .iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Looks at where Trellis runs and decides the placement.
pub(super) async fn detect(docker: &Docker) -> Result<Placement, ContainerError> {
    let surroundings = Surroundings {
        own_container: own_container(docker).await,
        bridge_gateway: bridge_gateway(docker).await,
        gateway_is_local: false,
        preferred_network: std::env::var("TRELLIS_DOCKER_NETWORK")
            .ok()
            .filter(|n| !n.is_empty()),
    };
    let surroundings = Surroundings {
        gateway_is_local: surroundings.bridge_gateway.is_some_and(is_local),
        ..surroundings
    };
    decide(&surroundings).map_err(ContainerError::Network)
}

/// Whether Trellis can listen on `ip` (it is one of this machine's addresses).
fn is_local(ip: IpAddr) -> bool {
    std::net::TcpListener::bind((ip, 0)).is_ok()
}

/// The default bridge's gateway: from its IPAM config, else the first address of its subnet
/// (older engines leave the gateway out of the default bridge's IPAM config).
async fn bridge_gateway(docker: &Docker) -> Option<IpAddr> {
    let network = docker.inspect_network("bridge", None).await.ok()?;
    let configs = network.ipam?.config?;
    for config in &configs {
        if let Some(gateway) = config.gateway.as_deref().and_then(|g| g.parse().ok()) {
            return Some(gateway);
        }
    }
    configs
        .iter()
        .filter_map(|c| c.subnet.as_deref())
        .find_map(first_host)
}

/// `172.17.0.0/16` → `172.17.0.1`.
fn first_host(subnet: &str) -> Option<IpAddr> {
    let (base, _) = subnet.split_once('/')?;
    let base: Ipv4Addr = base.parse().ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(u32::from(base) + 1)))
}

/// Trellis's own container, if it runs in one that this engine knows and whose address it owns.
async fn own_container(docker: &Docker) -> Option<OwnContainer> {
    let in_container = std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists();
    if !in_container {
        return None;
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    for candidate in candidate_ids(&mountinfo, &cgroup, hostname.trim()) {
        let inspected = match docker.inspect_container(&candidate, None).await {
            Ok(c) => c,
            Err(e) if is_status(&e, 404) => continue,
            Err(_) => continue,
        };
        let own = OwnContainer {
            id: inspected.id.unwrap_or(candidate),
            network_mode: inspected
                .host_config
                .and_then(|h| h.network_mode)
                .unwrap_or_else(|| "bridge".into()),
            networks: inspected
                .network_settings
                .and_then(|s| s.networks)
                .map(|networks| {
                    let mut list: Vec<AttachedNetwork> = networks
                        .into_iter()
                        .map(|(name, endpoint)| AttachedNetwork {
                            name,
                            ip: endpoint
                                .ip_address
                                .filter(|ip| !ip.is_empty())
                                .and_then(|ip| ip.parse().ok()),
                        })
                        .collect();
                    list.sort_by(|a, b| a.name.cmp(&b.name));
                    list
                })
                .unwrap_or_default(),
        };
        // A host name can name another container (a custom `hostname:`); ours is the one
        // whose address we hold. Host networking has no address of its own.
        let owns_address =
            own.network_mode == "host" || own.networks.iter().filter_map(|n| n.ip).any(is_local);
        if owns_address {
            return Some(own);
        }
    }
    None
}

/// Container ids to try, most reliable first: the engine's per-container mounts
/// (`/var/lib/docker/containers/<id>/hostname`), the cgroup path (`/docker/<id>`,
/// `docker-<id>.scope`), then the host name (a container's short id by default).
fn candidate_ids(mountinfo: &str, cgroup: &str, hostname: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut push = |id: String| {
        if !ids.contains(&id) {
            ids.push(id);
        }
    };
    for line in mountinfo.lines() {
        if let Some(at) = line.find("/containers/") {
            let rest = &line[at + "/containers/".len()..];
            if let Some(id) = hex64(rest) {
                push(id);
            }
        }
    }
    for line in cgroup.lines() {
        for part in line.split(['/', '-', ':']) {
            let part = part.trim_end_matches(".scope");
            if let Some(id) = hex64(part).filter(|id| id.len() == part.len()) {
                push(id);
            }
        }
    }
    if !hostname.is_empty() {
        push(hostname.to_owned());
    }
    ids
}

/// The 64-hex-digit container id at the start of `s`.
fn hex64(s: &str) -> Option<String> {
    let id: String = s.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    (id.len() == 64).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn on(mode: &str, networks: &[(&str, Option<&str>)]) -> Surroundings {
        Surroundings {
            own_container: Some(OwnContainer {
                id: "0123456789abcdef".repeat(4),
                network_mode: mode.into(),
                networks: networks
                    .iter()
                    .map(|(name, addr)| AttachedNetwork {
                        name: (*name).into(),
                        ip: addr.map(ip),
                    })
                    .collect(),
            }),
            bridge_gateway: Some(ip("172.17.0.1")),
            gateway_is_local: false,
            preferred_network: None,
        }
    }

    #[test]
    fn on_the_host_containers_use_the_bridge_gateway() {
        let placement = decide(&Surroundings {
            bridge_gateway: Some(ip("172.17.0.1")),
            gateway_is_local: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(placement.network, "bridge");
        assert_eq!(placement.bind, ip("172.17.0.1"));
        assert_eq!(placement.advertise_host, None);
        assert!(placement.extra_hosts.is_empty());
        assert!(!placement.in_container);
    }

    #[test]
    fn a_gateway_that_is_not_ours_means_docker_desktop_or_a_remote_engine() {
        for gateway in [Some(ip("172.17.0.1")), None] {
            let placement = decide(&Surroundings {
                bridge_gateway: gateway,
                gateway_is_local: false,
                ..Default::default()
            })
            .unwrap();
            assert_eq!(placement.bind, ip("127.0.0.1"));
            assert_eq!(
                placement.advertise_host.as_deref(),
                Some("host.docker.internal")
            );
            assert_eq!(
                placement.extra_hosts,
                vec!["host.docker.internal:host-gateway"]
            );
        }
    }

    #[test]
    fn in_a_compose_network_containers_join_it_and_call_trellis_there() {
        let placement =
            decide(&on("demo_default", &[("demo_default", Some("172.20.0.5"))])).unwrap();
        assert_eq!(placement.network, "demo_default");
        assert_eq!(placement.bind, ip("172.20.0.5"));
        assert_eq!(placement.advertise_host, None);
        assert!(placement.in_container);
    }

    #[test]
    fn a_user_defined_network_wins_over_the_default_bridge() {
        let placement = decide(&on(
            "bridge",
            &[
                ("bridge", Some("172.17.0.3")),
                ("zeta", Some("172.21.0.2")),
                ("alpha", Some("172.22.0.2")),
            ],
        ))
        .unwrap();
        assert_eq!(placement.network, "alpha");
        assert_eq!(placement.bind, ip("172.22.0.2"));
        let plain = decide(&on("bridge", &[("bridge", Some("172.17.0.3"))])).unwrap();
        assert_eq!(plain.network, "bridge");
        assert_eq!(plain.bind, ip("172.17.0.3"));
    }

    #[test]
    fn a_preferred_network_is_used_or_named_in_the_error() {
        let mut surroundings = on("a", &[("a", Some("10.0.0.2")), ("b", Some("10.1.0.2"))]);
        surroundings.preferred_network = Some("b".into());
        assert_eq!(decide(&surroundings).unwrap().bind, ip("10.1.0.2"));
        surroundings.preferred_network = Some("c".into());
        let error = decide(&surroundings).unwrap_err();
        assert!(
            error.contains("TRELLIS_DOCKER_NETWORK=c") && error.contains("a, b"),
            "{error}"
        );
    }

    #[test]
    fn host_networking_in_a_container_is_the_host_case() {
        let mut surroundings = on("host", &[("host", None)]);
        surroundings.gateway_is_local = true;
        let placement = decide(&surroundings).unwrap();
        assert_eq!(placement.network, "bridge");
        assert_eq!(placement.bind, ip("172.17.0.1"));
        assert!(placement.in_container);
    }

    #[test]
    fn unjoinable_network_modes_are_errors() {
        for mode in ["none", "container:abc"] {
            let error = decide(&on(mode, &[])).unwrap_err();
            assert!(error.contains(mode), "{error}");
        }
        let error = decide(&on("isolated", &[("isolated", None)])).unwrap_err();
        assert!(error.contains("no address"), "{error}");
    }

    #[test]
    fn own_container_ids_come_from_mounts_cgroups_and_the_host_name() {
        let id = "4f3c2b1a".repeat(8);
        let other = "a1b2c3d4".repeat(8);
        let mountinfo = format!(
            "612 590 0:52 /docker/containers/{id}/hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw\n\
             613 590 0:52 /docker/containers/{id}/hosts /etc/hosts rw - ext4 /dev/sda1 rw\n"
        );
        let cgroup = format!("0::/system.slice/docker-{other}.scope\n12:pids:/docker/{id}\n");
        assert_eq!(
            candidate_ids(&mountinfo, &cgroup, "4f3c2b1a4f3c"),
            vec![id.clone(), other, "4f3c2b1a4f3c".to_owned()]
        );
        assert_eq!(candidate_ids("", "0::/\n", "vm"), vec!["vm".to_owned()]);
        assert_eq!(first_host("172.17.0.0/16"), Some(ip("172.17.0.1")));
        assert_eq!(first_host("nonsense"), None);
    }
}
