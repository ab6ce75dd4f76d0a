//! The connection to the Docker engine, shared by every container function of one Trellis
//! process, and the hygiene that spans functions: removing what a crashed Trellis left behind.

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

/// Where the engine is when `DOCKER_HOST` is not set.
const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

/// How long the engine may take to answer the first ping.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The Docker engine as Trellis uses it: a client, this Trellis process's instance id, and where
/// function containers attach to reach the Runtime API.
pub struct DockerEngine {
    docker: Docker,
    host: String,
    instance: String,
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

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Removes the containers (and networks) labelled `trellis.managed=true` that belong to
    /// another Trellis instance: what a Trellis killed with `kill -9` left behind. Call it at
    /// start-up, before any function starts. Networks still in use are left alone.
    ///
    /// Only what carries a `trellis.instance` label is touched: image labels are inherited by
    /// containers, so a container of an image labelled `trellis.managed=true` (Trellis's own
    /// container in the compose demo, its client) has that label without being a function
    /// container, and must survive.
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
        for container in containers {
            let owner = container
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::INSTANCE));
            if owner.is_none_or(|o| o == &self.instance) {
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
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(label_filter(&[(labels::MANAGED, "true")])),
            }))
            .await
            .map_err(|e| engine_error("cannot list networks", &e))?;
        for network in networks {
            let owner = network
                .labels
                .as_ref()
                .and_then(|l| l.get(labels::INSTANCE));
            if owner.is_some_and(|o| o == &self.instance) {
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
            chain(error),
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

/// An error and its causes on one line.
pub(super) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        current = e.source();
    }
    text
}

pub(super) fn engine_error(doing: &str, error: &DockerError) -> ContainerError {
    ContainerError::Engine(format!("{doing}: {}", chain(error)))
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

/// 8 hex digits, for container names and pool ids.
pub(super) fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}
