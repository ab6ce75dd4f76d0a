//! The listening ports, kept equal to the routing table's ([`Listeners`]): each install binds
//! new ports and makes certificates before the table is swapped, then starts, switches,
//! recertifies and stops ports, draining the connections of the ones that stop.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use trellis_config::{ListenerProtocol, TlsFiles};

use super::connections::{Acceptor, accept_loop};
use super::{Limits, ServeError, Workers};
use crate::table::RoutingTable;
use crate::tls::{self, SniResolver, TlsError};

/// One listening port as it serves: what the start-up lines and the reload log print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub port: u16,
    pub protocol: ListenerProtocol,
    /// The address the socket listens on.
    pub local: SocketAddr,
    /// Where the generated certificate was written, when this HTTPS port uses one.
    pub generated_cert: Option<PathBuf>,
}

impl fmt::Display for PortInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol.as_str(), self.local)?;
        if let Some(cert) = &self.generated_cert {
            write!(f, " (certificate {})", cert.display())?;
        }
        Ok(())
    }
}

/// What [`Listeners::install`] changed in the set of listening ports. A port whose protocol
/// changed is in both lists: stopped as the old protocol, started as the new one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Ports that now listen (new, or with a new protocol).
    pub started: Vec<PortInfo>,
    /// Ports that no longer listen; their open connections close gracefully.
    pub stopped: Vec<PortInfo>,
    /// HTTPS ports that kept listening with new certificates (their services' host names or
    /// certificate files changed).
    pub recertified: Vec<PortInfo>,
}

impl Changes {
    /// Nothing changed in the listening ports.
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.stopped.is_empty() && self.recertified.is_empty()
    }
}

impl fmt::Display for Changes {
    /// `stopped listening on HTTP 127.0.0.1:8080 (…); now listening on HTTPS 127.0.0.1:8443`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ports: &[PortInfo]| {
            ports
                .iter()
                .map(PortInfo::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.stopped.is_empty() {
            parts.push(format!(
                "stopped listening on {} (open connections finish their requests, up to the drain timeout)",
                list(&self.stopped)
            ));
        }
        if !self.started.is_empty() {
            parts.push(format!("now listening on {}", list(&self.started)));
        }
        if !self.recertified.is_empty() {
            parts.push(format!("new certificates on {}", list(&self.recertified)));
        }
        f.write_str(&parts.join("; "))
    }
}

/// How [`Listeners`] listen and serve (`trellis up` flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The address every port is bound on.
    pub bind: IpAddr,
    /// Where generated certificates are written (`<state-dir>/certs`).
    pub cert_dir: PathBuf,
    pub limits: Limits,
    /// How long the connections of a port that stops listening (or of every port, at
    /// shutdown) may take to finish their requests before they are closed.
    pub drain: Duration,
}

/// The listening ports, kept equal to the routing table's: [`Listeners::install`] swaps in a
/// new table and starts and stops ports to match it, so that a reload (or an API change)
/// listens on a new port at once and stops listening on a removed one.
///
/// Each port has one accept task, on the runtime that called [`Listeners::start`]; the
/// connections it accepts are served on [`Workers`]. The connections accepted under one
/// protocol are a *generation*: stopping a port (or changing its protocol) closes its
/// listening socket (or hands it to a new generation), then closes the old generation's
/// connections gracefully as a shutdown does, within the drain timeout; the other ports are
/// not touched.
pub struct Listeners {
    settings: Settings,
    table: Arc<ArcSwap<RoutingTable>>,
    workers: Arc<Workers>,
    /// Every open connection on every port, to wait for at shutdown.
    open: Arc<watch::Sender<usize>>,
    /// Held across a whole install, so that installs (reloads, API changes) and the shutdown
    /// happen one at a time.
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    ports: BTreeMap<u16, Listening>,
    /// Shut down: installs swap the table but no longer listen.
    closed: bool,
}

/// One port that listens.
struct Listening {
    info: PortInfo,
    listener: Arc<TcpListener>,
    /// The HTTPS port's certificates and what they were made from.
    tls: Option<(Arc<ArcSwap<TlsAcceptor>>, TlsInputs)>,
    /// Open connections on the port, all generations, against `--max-connections`.
    active: Arc<AtomicUsize>,
    generation: Generation,
}

/// The connections one accept task hands out, and the means to stop them.
struct Generation {
    accept: tokio::task::JoinHandle<()>,
    /// Turned true: its connections close gracefully.
    stop: watch::Sender<bool>,
    /// Turned true: its connections are closed at once (the drain time is over).
    abort: watch::Sender<bool>,
    /// Its open connections.
    conns: Arc<watch::Sender<usize>>,
}

impl Generation {
    /// Stops accepting: when this returns, the accept task has ended (and with it the
    /// listening socket, unless another generation holds it).
    async fn stop_accepting(&mut self) {
        self.accept.abort();
        let _ = (&mut self.accept).await;
    }

    /// Closes the connections gracefully and waits for them for at most `drain`; those still
    /// open then are closed.
    async fn drain(self, port: u16, drain: Duration) {
        self.stop.send_replace(true);
        let mut conns = self.conns.subscribe();
        if tokio::time::timeout(drain, conns.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            let left = *self.conns.borrow();
            tracing::warn!(
                target: "trellis::listener",
                "port {port} stopped listening {drain:?} ago; closed {left} connection{} still busy",
                if left == 1 { "" } else { "s" }
            );
            self.abort.send_replace(true);
        }
    }
}

/// What one install does, all of it that can fail done (ports bound, certificates made)
/// before the table is swapped.
enum Step {
    Start {
        info: PortInfo,
        listener: TcpListener,
        tls: Option<PortTls>,
    },
    /// The same socket, under another protocol.
    Switch {
        port: u16,
        protocol: ListenerProtocol,
        tls: Option<PortTls>,
    },
    Recertify {
        port: u16,
        tls: PortTls,
    },
    Stop {
        port: u16,
    },
}

impl Listeners {
    /// Listens on every port of `table`'s current routing table. HTTPS ports get their
    /// certificates now: the configured files, else a certificate generated for the
    /// services' host names and written to the certificate directory so that clients can
    /// trust it.
    pub async fn start(
        table: Arc<ArcSwap<RoutingTable>>,
        workers: Arc<Workers>,
        settings: Settings,
    ) -> Result<Arc<Listeners>, ServeError> {
        let listeners = Arc::new(Listeners {
            settings,
            table,
            workers,
            open: Arc::new(watch::Sender::new(0)),
            state: tokio::sync::Mutex::new(State::default()),
        });
        {
            let mut state = listeners.state.lock().await;
            let current = listeners.table.load_full();
            let steps = listeners.plan(&state.ports, &current).await?;
            listeners.commit(&mut state.ports, steps).await;
        }
        Ok(listeners)
    }

    /// The ports listening now, in port order.
    pub async fn ports(&self) -> Vec<PortInfo> {
        let state = self.state.lock().await;
        state.ports.values().map(|l| l.info.clone()).collect()
    }

    /// Serves `table` from now on, listening on exactly its ports: new ports are bound before
    /// the table is swapped, so a port that cannot be bound (in use, or its certificate
    /// unreadable) fails the install and leaves the old table and ports serving. Once the
    /// table is swapped, new ports accept at once, removed ports stop accepting (new
    /// connections are refused) and their open connections finish as on shutdown, and a port
    /// whose protocol changed serves new connections under the new one. Requests in flight
    /// finish on the table they started with.
    pub async fn install(&self, table: RoutingTable) -> Result<Changes, ServeError> {
        let mut state = self.state.lock().await;
        if state.closed {
            self.table.store(Arc::new(table));
            return Ok(Changes::default());
        }
        let steps = self.plan(&state.ports, &table).await?;
        self.table.store(Arc::new(table));
        Ok(self.commit(&mut state.ports, steps).await)
    }

    /// Stops every port and lets requests in flight finish for at most the drain timeout.
    /// Returns how many connections were still open when it ran out.
    pub async fn shutdown(&self) -> usize {
        {
            let mut state = self.state.lock().await;
            state.closed = true;
            for (_, mut port) in std::mem::take(&mut state.ports) {
                port.generation.stop_accepting().await;
                port.generation.stop.send_replace(true);
            }
        }
        let mut count = self.open.subscribe();
        match tokio::time::timeout(self.settings.drain, count.wait_for(|n| *n == 0)).await {
            Ok(_) => 0,
            Err(_) => *self.open.borrow(),
        }
    }

    /// What it takes to go from `ports` to `table`'s ports, binding and making certificates.
    async fn plan(
        &self,
        ports: &BTreeMap<u16, Listening>,
        table: &RoutingTable,
    ) -> Result<Vec<Step>, ServeError> {
        let cert_dir = &self.settings.cert_dir;
        let mut steps = Vec::new();
        for port in ports.keys().filter(|p| !table.ports.contains_key(p)) {
            steps.push(Step::Stop { port: *port });
        }
        // Binds first, then certificates: a port that cannot be bound fails the install before
        // any certificate file is rewritten.
        let mut bound = Vec::new();
        for (&port, p) in table.ports.iter().filter(|(p, _)| !ports.contains_key(p)) {
            let addr = SocketAddr::new(self.settings.bind, port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| ServeError::Bind { addr, source })?;
            bound.push((port, p.protocol, local, listener));
        }
        for (port, protocol, local, listener) in bound {
            let tls = match protocol {
                ListenerProtocol::Http => None,
                ListenerProtocol::Https => Some(port_tls(table, port, cert_dir)?),
            };
            let info = PortInfo {
                port,
                protocol,
                local,
                generated_cert: tls.as_ref().and_then(|t| t.generated.clone()),
            };
            steps.push(Step::Start {
                info,
                listener,
                tls,
            });
        }
        for (&port, now) in ports {
            let Some(wanted) = table.ports.get(&port) else {
                continue;
            };
            if wanted.protocol != now.info.protocol {
                let tls = match wanted.protocol {
                    ListenerProtocol::Http => None,
                    ListenerProtocol::Https => Some(port_tls(table, port, cert_dir)?),
                };
                steps.push(Step::Switch {
                    port,
                    protocol: wanted.protocol,
                    tls,
                });
            } else if let Some((_, inputs)) = &now.tls
                && *inputs != tls_inputs(table, port)
            {
                steps.push(Step::Recertify {
                    port,
                    tls: port_tls(table, port, cert_dir)?,
                });
            }
        }
        Ok(steps)
    }

    /// Carries out `steps`, which cannot fail any more.
    async fn commit(&self, ports: &mut BTreeMap<u16, Listening>, steps: Vec<Step>) -> Changes {
        let mut changes = Changes::default();
        let drain = self.settings.drain;
        for step in steps {
            match step {
                Step::Stop { port } => {
                    let Some(mut old) = ports.remove(&port) else {
                        continue;
                    };
                    old.generation.stop_accepting().await;
                    // The accept task's handle on the socket is gone: this closes it.
                    drop(old.listener);
                    tokio::spawn(old.generation.drain(port, drain));
                    changes.stopped.push(old.info);
                }
                Step::Start {
                    info,
                    listener,
                    tls,
                } => {
                    let listener = Arc::new(listener);
                    let active = Arc::new(AtomicUsize::new(0));
                    let tls = tls.map(|t| (Arc::new(ArcSwap::from_pointee(t.acceptor)), t.inputs));
                    let generation = self.generation(
                        info.port,
                        &listener,
                        tls.as_ref().map(|(a, _)| a.clone()),
                        &active,
                    );
                    changes.started.push(info.clone());
                    ports.insert(
                        info.port,
                        Listening {
                            info,
                            listener,
                            tls,
                            active,
                            generation,
                        },
                    );
                }
                Step::Switch {
                    port,
                    protocol,
                    tls,
                } => {
                    let Some(now) = ports.get_mut(&port) else {
                        continue;
                    };
                    let old_info = now.info.clone();
                    now.info.protocol = protocol;
                    now.info.generated_cert = tls.as_ref().and_then(|t| t.generated.clone());
                    now.tls = tls.map(|t| (Arc::new(ArcSwap::from_pointee(t.acceptor)), t.inputs));
                    let next = self.generation(
                        port,
                        &now.listener,
                        now.tls.as_ref().map(|(a, _)| a.clone()),
                        &now.active,
                    );
                    let mut old = std::mem::replace(&mut now.generation, next);
                    old.stop_accepting().await;
                    tokio::spawn(old.drain(port, drain));
                    changes.stopped.push(old_info);
                    changes.started.push(now.info.clone());
                }
                Step::Recertify { port, tls } => {
                    let Some(now) = ports.get_mut(&port) else {
                        continue;
                    };
                    if let Some((acceptor, inputs)) = &mut now.tls {
                        acceptor.store(Arc::new(tls.acceptor));
                        *inputs = tls.inputs;
                        now.info.generated_cert = tls.generated;
                        changes.recertified.push(now.info.clone());
                    }
                }
            }
        }
        changes.started.sort_by_key(|p| p.port);
        changes.stopped.sort_by_key(|p| p.port);
        changes.recertified.sort_by_key(|p| p.port);
        changes
    }

    /// Starts accepting on `listener`: a new generation of `port`'s connections.
    fn generation(
        &self,
        port: u16,
        listener: &Arc<TcpListener>,
        tls: Option<Arc<ArcSwap<TlsAcceptor>>>,
        active: &Arc<AtomicUsize>,
    ) -> Generation {
        let (stop, stopped) = watch::channel(false);
        let (abort, aborted) = watch::channel(false);
        let conns = Arc::new(watch::Sender::new(0usize));
        let accept = tokio::spawn(accept_loop(Acceptor {
            port,
            listener: listener.clone(),
            tls,
            table: self.table.clone(),
            workers: self.workers.clone(),
            limits: self.settings.limits,
            active: active.clone(),
            counters: [conns.clone(), self.open.clone()],
            stop: stopped,
            abort: aborted,
        }));
        Generation {
            accept,
            stop,
            abort,
            conns,
        }
    }
}

/// What an HTTPS port's certificates are made from: when it changes on a reload, they are
/// made again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TlsInputs {
    /// Each listener's configured files, with its service's host names.
    configured: Vec<(Vec<String>, TlsFiles)>,
    /// The host names of the services whose listener has no files.
    generated: Vec<String>,
}

fn tls_inputs(table: &RoutingTable, port: u16) -> TlsInputs {
    let mut inputs = TlsInputs {
        configured: Vec::new(),
        generated: Vec::new(),
    };
    for svc in &table.config.services {
        for l in svc
            .listeners
            .iter()
            .filter(|l| l.port == port && l.protocol == ListenerProtocol::Https)
        {
            match &l.tls {
                Some(files) => inputs.configured.push((svc.host_names(), files.clone())),
                None => inputs.generated.extend(svc.host_names()),
            }
        }
    }
    inputs
}

/// An HTTPS port's certificates, ready to serve.
struct PortTls {
    acceptor: TlsAcceptor,
    inputs: TlsInputs,
    generated: Option<PathBuf>,
}

fn port_tls(table: &RoutingTable, port: u16, cert_dir: &Path) -> Result<PortTls, ServeError> {
    let inputs = tls_inputs(table, port);
    let (config, generated) =
        tls_for_port(&inputs, port, cert_dir).map_err(|source| ServeError::Tls { port, source })?;
    Ok(PortTls {
        acceptor: TlsAcceptor::from(config),
        inputs,
        generated,
    })
}

/// The TLS configuration of one HTTPS port: each service's configured certificate for its host
/// names, and one generated certificate for the services without one.
fn tls_for_port(
    inputs: &TlsInputs,
    port: u16,
    cert_dir: &Path,
) -> Result<(Arc<rustls::ServerConfig>, Option<PathBuf>), TlsError> {
    let mut configured = Vec::new();
    for (hosts, files) in &inputs.configured {
        configured.push((hosts, tls::load_pem(&files.certificate, &files.key)?));
    }
    let generated_hosts = &inputs.generated;
    let mut generated_path = None;
    let generated = if generated_hosts.is_empty() && !configured.is_empty() {
        None
    } else {
        let cert = tls::self_signed(generated_hosts)?;
        std::fs::create_dir_all(cert_dir).map_err(|source| TlsError::Write {
            path: cert_dir.to_path_buf(),
            source,
        })?;
        let path = cert_dir.join(format!("trellis-{port}.pem"));
        cert.write_cert_pem(&path)?;
        generated_path = Some(path);
        Some(cert.certified_key)
    };
    let default = match (&generated, configured.first()) {
        (Some(g), _) => g.clone(),
        (None, Some((_, k))) => k.clone(),
        (None, None) => tls::self_signed(&[])?.certified_key,
    };
    let mut resolver = SniResolver::new(default);
    if let Some(g) = &generated {
        for host in generated_hosts {
            resolver.add(host, g.clone());
        }
    }
    for (hosts, key) in &configured {
        for host in hosts.iter() {
            resolver.add(host, key.clone());
        }
    }
    // Then each configured certificate's own names (wildcards too), where no service's name
    // chose a certificate already.
    for (_, key) in &configured {
        resolver.add_certificate_names(key);
    }
    Ok((tls::server_config(Arc::new(resolver))?, generated_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(port: u16, protocol: ListenerProtocol, cert: Option<&str>) -> PortInfo {
        PortInfo {
            port,
            protocol,
            local: SocketAddr::from(([127, 0, 0, 1], port)),
            generated_cert: cert.map(PathBuf::from),
        }
    }

    #[test]
    fn changes_say_what_stopped_and_started_listening() {
        assert!(Changes::default().is_empty());
        assert_eq!(Changes::default().to_string(), "");
        let changes = Changes {
            started: vec![
                info(
                    8080,
                    ListenerProtocol::Https,
                    Some("/s/certs/trellis-8080.pem"),
                ),
                info(8081, ListenerProtocol::Http, None),
            ],
            stopped: vec![info(8080, ListenerProtocol::Http, None)],
            recertified: vec![info(443, ListenerProtocol::Https, Some("/s/c.pem"))],
        };
        assert!(!changes.is_empty());
        assert_eq!(
            changes.to_string(),
            "stopped listening on HTTP 127.0.0.1:8080 (open connections finish their requests, \
             up to the drain timeout); now listening on HTTPS 127.0.0.1:8080 (certificate \
             /s/certs/trellis-8080.pem), HTTP 127.0.0.1:8081; new certificates on HTTPS \
             127.0.0.1:443 (certificate /s/c.pem)"
        );
    }
}
