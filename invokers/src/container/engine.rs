//! The connection to the Docker engine, shared by every container function of one Trellis
//! process, and the hygiene that spans functions: removing what a crashed Trellis left behind,
//! and only that: several Trellis processes may share one engine, so every container carries
//! its owner ([`Owner`]: host name, pid and process start time), and a container is a leftover
//! only when its owner is gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, RemoveContainerOptions,
};

use super::network::{self, Placement};
use super::{ContainerError, labels};
use crate::one_line;

/// Where the engine is when `DOCKER_HOST` is not set.
const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// How long the engine may take to answer the first ping.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The Docker engine as Trellis uses it: a client, this Trellis process's instance id and
/// owner, and where function containers attach to reach the Runtime API.
pub struct DockerEngine {
    docker: Docker,
    host: String,
    instance: String,
    owner: Owner,
    placement: Placement,
}

/// What [`DockerEngine::cleanup_leftovers`] removed (names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
}

impl DockerEngine {
    /// Connects to the engine named by `DOCKER_HOST` (`unix://…` or `tcp://…`; the local socket
    /// `/var/run/docker.sock` when unset), checks that it answers, agrees on an API version, and
    /// works out how function containers reach Trellis ([`network::detect`]).
    pub async fn connect(instance: impl Into<String>) -> Result<Arc<DockerEngine>, ContainerError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty());
        DockerEngine::connect_to(host.as_deref(), instance).await
    }

    /// [`connect`](DockerEngine::connect) to an explicit engine address (`None`: the local
    /// socket).
    pub async fn connect_to(
        host: Option<&str>,
        instance: impl Into<String>,
    ) -> Result<Arc<DockerEngine>, ContainerError> {
        let host = host.unwrap_or(DEFAULT_SOCKET).to_owned();
        let docker = client(&host)?;
        let docker = match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
            Ok(Ok(_)) => docker,
            Ok(Err(e)) => return Err(unreachable(&host, &e)),
            Err(_) => {
                return Err(ContainerError::Unreachable {
                    reason: format!("no answer within {PING_TIMEOUT:?}"),
                    hint: "check that `docker info` answers; a stuck daemon may need a restart"
                        .into(),
                    host,
                });
            }
        };
        // An older engine refuses requests in a newer API version than it speaks.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(&host, &e))?;
        let placement = network::detect(&docker).await?;
        Ok(Arc::new(DockerEngine {
            docker,
            host,
            instance: instance.into(),
            owner: Owner::current(),
            placement,
        }))
    }

    /// An engine with an explicit placement (tests, or a user's override).
    pub fn with_placement(
        docker: Docker,
        instance: impl Into<String>,
        placement: Placement,
    ) -> Arc<DockerEngine> {
        Arc::new(DockerEngine {
            docker,
            host: "(given client)".into(),
            instance: instance.into(),
            owner: Owner::current(),
            placement,
        })
    }

    /// A fresh instance id for a Trellis process: 12 hex digits.
    pub fn new_instance_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The engine's address as given (`unix:///var/run/docker.sock`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// This Trellis process's id, in every container's `trellis.instance` label.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// This process, in every container's `trellis.owner` label.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Removes the containers (and networks) labelled `trellis.managed=true` that a Trellis
    /// which is no longer running left behind (killed with `kill -9`, or its machine or
    /// container gone). Call it at start-up, before any function starts.
    ///
    /// What belongs to a live Trellis stays, so that several Trellis processes can share one
    /// engine: this instance's own, and what carries a `trellis.owner` label ([`Owner`]) whose
    /// process still runs ([`owner_alive`]). A container with a `trellis.instance` label but no
    /// `trellis.owner` (made by an older Trellis) is a leftover. Networks still in use are left
    /// alone.
    ///
    /// Only containers that carry a `trellis.instance` label are touched: image labels are
    /// inherited by containers, so a container of an image labelled `trellis.managed=true`
    /// (Trellis's own container in the compose demo, its client) has that label without being
    /// a function container, and must survive.
    pub async fn cleanup_leftovers(&self) -> Result<Leftovers, ContainerError> {
        let mut leftovers = Leftovers::default();
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(leftover_filter()),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_error("cannot list containers", &e))?;
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(label_filter(&[(labels::MANAGED, "true")])),
            }))
            .await
            .map_err(|e| engine_error("cannot list networks", &e))?;
        // A Trellis in a container has that container's id as its host name: the running
        // containers tell whether an owner on another host (container) is alive. Listed after
        // the candidates, so that a Trellis container started in between counts as alive.
        let running: Vec<String> = self
            .docker
            .list_containers(None::<ListContainersOptions>)
            .await
            .map_err(|e| engine_error("cannot list running containers", &e))?
            .into_iter()
            .filter_map(|c| c.id)
            .collect();
        let belongs_to_a_live_trellis = |found: Option<&HashMap<String, String>>| {
            let label = |key: &str| found.and_then(|l| l.get(key)).map(String::as_str);
            if label(labels::INSTANCE) == Some(self.instance.as_str()) {
                return true;
            }
            label(labels::OWNER)
                .and_then(Owner::parse)
                .is_some_and(|owner| owner_alive(&owner, &self.owner.host, &running))
        };
        for container in containers {
            if belongs_to_a_live_trellis(container.labels.as_ref()) {
                continue;
            }
            let Some(id) = container.id else { continue };
            let name = container
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| id.clone());
            match remove_container(&self.docker, &id).await {
                Ok(()) => leftovers.containers.push(name),
                Err(e) => return Err(engine_error(&format!("cannot remove {name}"), &e)),
            }
        }
        for network in networks {
            if belongs_to_a_live_trellis(network.labels.as_ref()) {
                continue;
            }
            let Some(id) = network.id else { continue };
            // In use by something else (a compose project, another Trellis): leave it.
            if self.docker.remove_network(&id).await.is_ok() {
                leftovers.networks.push(network.name.unwrap_or(id));
            }
        }
        Ok(leftovers)
    }

    /// Removes every container of this Trellis instance (a last sweep at shutdown).
    pub async fn remove_own_containers(&self) -> Result<usize, ContainerError> {
        let instance = self.instance.clone();
        self.remove_containers(&[(labels::INSTANCE, &instance)])
            .await
    }

    /// Removes this instance's managed containers that also carry every label in `extra`.
    pub(super) async fn remove_containers(
        &self,
        extra: &[(&str, &str)],
    ) -> Result<usize, ContainerError> {
        let mut wanted = vec![
            (labels::MANAGED, "true"),
            (labels::INSTANCE, self.instance.as_str()),
        ];
        wanted.extend_from_slice(extra);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(label_filter(&wanted)),
                ..Default::default()
            }))
            .await
            .map_err(|e| engine_error("cannot list containers", &e))?;
        let mut removed = 0;
        for id in containers.into_iter().filter_map(|c| c.id) {
            remove_container(&self.docker, &id)
                .await
                .map_err(|e| engine_error("cannot remove a container", &e))?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// A client for `host`, without contacting it yet.
fn client(host: &str) -> Result<Docker, ContainerError> {
    let result = if host.starts_with("unix://") {
        Docker::connect_with_unix(host, 120, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with('/') {
        Docker::connect_with_unix(&format!("unix://{host}"), 120, bollard::API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_host(host)
    };
    result.map_err(|e| unreachable(host, &e))
}

/// An engine error at connection, with a hint for the usual causes.
fn unreachable(host: &str, error: &DockerError) -> ContainerError {
    let socket = host.strip_prefix("unix://").unwrap_or(host);
    let io = io_kind(error);
    let (reason, hint) = match (error, io) {
        (DockerError::SocketNotFoundError(path), _) => (
            format!("no socket at {path}"),
            "is Docker installed and running (`docker info`)? If the engine listens elsewhere, set DOCKER_HOST (rootless Docker: unix://$XDG_RUNTIME_DIR/docker.sock; a remote engine: tcp://HOST:2375); in a container, mount the socket with -v /var/run/docker.sock:/var/run/docker.sock".to_owned(),
        ),
        (DockerError::UnsupportedURISchemeError { uri }, _) => (
            format!("DOCKER_HOST={uri} is not supported"),
            "use unix:///path/to/docker.sock or tcp://HOST:PORT (TLS and ssh are not built in; forward the socket with `ssh -L` instead)".to_owned(),
        ),
        (_, Some(std::io::ErrorKind::PermissionDenied)) => (
            format!("permission denied on {socket}"),
            "add your user to the docker group (sudo usermod -aG docker $USER, then log in again), or run Trellis as a user that may use the socket".to_owned(),
        ),
        (_, Some(std::io::ErrorKind::ConnectionRefused)) => (
            format!("nothing answers on {socket} (connection refused)"),
            "start the Docker daemon (sudo systemctl start docker, or start Docker Desktop), or point DOCKER_HOST at a running engine".to_owned(),
        ),
        (_, Some(std::io::ErrorKind::NotFound)) => (
            format!("no socket at {socket}"),
            "is the Docker daemon running? Set DOCKER_HOST if the engine listens elsewhere"
                .to_owned(),
        ),
        _ => (
            one_line(error),
            "check that `docker info` works from this shell, and that DOCKER_HOST (if set) names the same engine".to_owned(),
        ),
    };
    ContainerError::Unreachable {
        host: host.to_owned(),
        reason,
        hint,
    }
}

/// The kind of the I/O error somewhere in `error`'s source chain.
fn io_kind(error: &DockerError) -> Option<std::io::ErrorKind> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = e.source();
    }
    None
}

pub(super) fn engine_error(doing: &str, error: &DockerError) -> ContainerError {
    ContainerError::Engine(format!("{doing}: {}", one_line(error)))
}

/// Whether the engine answered with HTTP status `code`.
pub(super) fn is_status(error: &DockerError, code: u16) -> bool {
    matches!(error, DockerError::DockerResponseServerError { status_code, .. } if *status_code == code)
}

/// `{"label": ["k=v", …]}`: containers carrying all of them.
pub(super) fn label_filter(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )])
}

/// `trellis.managed=true` and some `trellis.instance`.
fn leftover_filter() -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        vec![
            format!("{}=true", labels::MANAGED),
            labels::INSTANCE.to_owned(),
        ],
    )])
}

/// Removes a container whatever its state (SIGKILL first). Already gone, or already being
/// removed, is success.
pub(super) async fn remove_container(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
        other => other,
    }
}

/// The Trellis process that created a container or network, as its `trellis.owner` label says:
/// `<host name>:<pid>:<start time>`, the start time being the process's, in clock ticks after
/// boot (`/proc/<pid>/stat` field 22; empty where there is no `/proc`). The start time tells a
/// live owner from a later process that reuses its pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    pub start: Option<u64>,
}

impl Owner {
    /// This process.
    pub fn current() -> Owner {
        Owner::of_process(std::process::id())
    }

    /// Process `pid` of this machine (its start time `None` when it does not run).
    pub fn of_process(pid: u32) -> Owner {
        Owner {
            host: host_name(),
            pid,
            start: match process_state(pid) {
                ProcessState::Running(start) => start,
                ProcessState::Gone | ProcessState::Unknown => None,
            },
        }
    }

    /// The label value.
    pub fn label(&self) -> String {
        let start = self.start.map(|s| s.to_string()).unwrap_or_default();
        format!("{}:{}:{start}", self.host, self.pid)
    }

    /// Reads a label value; `None` when it is not one [`Owner::label`] writes.
    pub fn parse(label: &str) -> Option<Owner> {
        let mut parts = label.rsplitn(3, ':');
        let start = parts.next()?;
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next().filter(|h| !h.is_empty())?;
        let start = match start {
            "" => None,
            s => Some(s.parse().ok()?),
        };
        Some(Owner {
            host: host.to_owned(),
            pid,
            start,
        })
    }
}

/// Whether `owner` still runs, as seen from a Trellis on host `here` that sees the `running`
/// containers (full ids) of the engine.
///
/// - Same host name: the owner is alive iff process `pid` exists with the same start time.
/// - Another host name: the owner is alive iff a running container's id starts with that host
///   name: a Trellis in a container has its container's id (12 hex digits) as its host name, as
///   in the compose demo. Anything else (a stopped Trellis container, a host that is not this
///   one) counts as gone.
pub(super) fn owner_alive(owner: &Owner, here: &str, running: &[String]) -> bool {
    if owner.host == here {
        return match process_state(owner.pid) {
            ProcessState::Running(start) => owner.start.is_none() || start == owner.start,
            ProcessState::Gone => false,
            // No way to tell: keeping a leftover beats removing a live function's container.
            ProcessState::Unknown => true,
        };
    }
    is_container_id_prefix(&owner.host) && running.iter().any(|id| id.starts_with(&owner.host))
}

/// A default container host name: the first 12 (or more) hex digits of its id. Shorter names
/// could match a random id by chance.
fn is_container_id_prefix(host: &str) -> bool {
    host.len() >= 12 && host.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What this machine says about a process id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProcessState {
    /// It exists; its start time when `/proc` gives it.
    Running(Option<u64>),
    Gone,
    /// Neither `/proc` nor `kill(pid, 0)` could tell.
    Unknown,
}

fn process_state(pid: u32) -> ProcessState {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => ProcessState::Running(start_time(&stat)),
        Err(_) if std::path::Path::new("/proc/self/stat").exists() => ProcessState::Gone,
        // No /proc (macOS): ask the kernel whether the pid exists.
        Err(_) => {
            let Ok(pid) = libc::pid_t::try_from(pid) else {
                return ProcessState::Unknown;
            };
            // SAFETY: signal 0 only checks that the process exists; nothing is sent.
            let rc = unsafe { libc::kill(pid, 0) };
            let error = std::io::Error::last_os_error().raw_os_error();
            match (rc, error) {
                (0, _) | (_, Some(libc::EPERM)) => ProcessState::Running(None),
                (_, Some(libc::ESRCH)) => ProcessState::Gone,
                _ => ProcessState::Unknown,
            }
        }
    }
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line. Field 2 is the command name in
/// parentheses, which may itself hold spaces and parentheses: count from the last `)`.
pub(super) fn start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3 (the state).
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// This machine's host name (in a container: by default its id's first 12 hex digits).
fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for writes of its length; gethostname NUL-terminates within it
    // when the name fits (and the last byte stays 0 in any case).
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len() - 1) };
    if rc != 0 {
        return std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// 8 hex digits, for container names and pool ids.
pub(super) fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}
