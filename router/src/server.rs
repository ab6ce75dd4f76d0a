//! Listeners: listen on every configured port, following the routing table as reloads change
//! it ([`Listeners`]), accept connections (TLS where the port is HTTPS), serve HTTP/1.1, h2c
//! and h2 with hyper-util's auto server, and drain on shutdown.
//!
//! Connections are served by [`Workers`]: one single-threaded runtime per core, each connection
//! handed to one of them when it is accepted and served there to the end, like nginx's worker
//! processes. Everything a request sets off (the upstream connection it borrows from that
//! thread's pool, the tasks it spawns) then runs on the same thread, so a request costs no
//! cross-thread wake-up; with tokio's work-stealing runtime the client's connection and the
//! upstream connection often sat on different threads and woke each other through the kernel.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;
use trellis_config::{ListenerProtocol, TlsFiles};

use crate::accept::{AcceptBackoff, LOG_INTERVAL};
use crate::handler::{Connection, TlsInfo};
use crate::table::RoutingTable;
use crate::tls::{self, SniResolver, TlsError};

pub use limits::Limits;

mod limits;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a serving thread's runtime may take to stop once [`Workers`] is dropped.
const WORKER_SHUTDOWN: Duration = Duration::from_secs(1);

/// The threads that serve connections: one single-threaded tokio runtime each, with
/// connections dealt out in turn. Keep it alive until everything that requests may have
/// started (function environments, upstream connections) has been shut down: those tasks run
/// on these threads. Dropping it stops the threads.
pub struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    stops: Vec<oneshot::Sender<()>>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `count` serving threads (at least one).
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for i in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            handles.push(runtime.handle().clone());
            std::thread::Builder::new()
                .name(format!("trellis-serve-{i}"))
                .spawn(move || {
                    // Runs the tasks handed to this thread until Workers is dropped.
                    let _ = runtime.block_on(stopped);
                    runtime.shutdown_timeout(WORKER_SHUTDOWN);
                })?;
            stops.push(stop);
        }
        Ok(Workers {
            handles,
            stops,
            next: AtomicUsize::new(0),
        })
    }

    /// How many serving threads there are.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// The runtime of the next thread in turn.
    fn next(&self) -> &tokio::runtime::Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

/// Why the listeners could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}{}", bind_hint(source, *addr))]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS for port {port}: {source}")]
    Tls {
        port: u16,
        #[source]
        source: TlsError,
    },
}

fn bind_hint(e: &std::io::Error, addr: SocketAddr) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another program uses this port; stop it or change the listener's port)".into()
        }
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            " (ports below 1024 need root; give the listener a port such as 8080)".into()
        }
        _ => String::new(),
    }
}

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

/// Waits for `shutdown` to turn true, then shuts `listeners` down (see
/// [`Listeners::shutdown`]). Returns how many connections were still open when the drain
/// time ran out.
pub async fn serve(listeners: Arc<Listeners>, mut shutdown: watch::Receiver<bool>) -> usize {
    let _ = shutdown.wait_for(|stop| *stop).await;
    listeners.shutdown().await
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

/// Everything one accept task needs.
struct Acceptor {
    port: u16,
    listener: Arc<TcpListener>,
    tls: Option<Arc<ArcSwap<TlsAcceptor>>>,
    table: Arc<ArcSwap<RoutingTable>>,
    workers: Arc<Workers>,
    limits: Limits,
    /// Open connections on the port (all generations).
    active: Arc<AtomicUsize>,
    /// Open connections of this generation, and of every port.
    counters: [Arc<watch::Sender<usize>>; 2],
    stop: watch::Receiver<bool>,
    abort: watch::Receiver<bool>,
}

/// Accepts the connections of one port until its task is aborted or `stop` turns true,
/// handing each to a serving thread. Over `limits.max_connections` open on the port, a new
/// connection is closed as soon as it is accepted (the established ones are not disturbed);
/// out of file descriptors, the loop backs off.
async fn accept_loop(a: Acceptor) {
    let mut backoff = AcceptBackoff::new(format!("port {}", a.port));
    let mut shed = Shed::default();
    let mut stop = a.stop.clone();
    loop {
        let (stream, client) = tokio::select! {
            accepted = a.listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    backoff.failed(&e).await;
                    continue;
                }
            },
            () = async {
                let _ = stop.wait_for(|s| *s).await;
            } => break,
        };
        backoff.succeeded();
        if a.active.load(Ordering::Relaxed) >= a.limits.max_connections {
            drop(stream);
            shed.note(a.port, a.limits.max_connections);
            continue;
        }
        // The socket leaves this runtime's reactor and joins the worker's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(target: "trellis::listener", "connection from {client}: {e}");
                continue;
            }
        };
        let slot = Slot::take(&a.active, &a.counters);
        let conn = ConnSetup {
            client,
            port: a.port,
            tls: a.tls.as_ref().map(|t| TlsAcceptor::clone(&t.load())),
            table: a.table.clone(),
            limits: a.limits,
            shutdown: a.stop.clone(),
        };
        let mut abort = a.abort.clone();
        a.workers.next().spawn(async move {
            let _slot = slot;
            let stream = match TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(target: "trellis::listener", "connection from {client}: {e}");
                    return;
                }
            };
            tokio::select! {
                () = conn.run(stream) => {}
                () = async {
                    // A sender gone without aborting (the shutdown) aborts nothing.
                    if abort.wait_for(|a| *a).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => {
                    tracing::debug!(target: "trellis::listener", "connection from {client}: its port stopped listening and the drain time is over; closed");
                }
            }
        });
    }
}

/// One open connection, counted on its port and in its counters until dropped.
struct Slot {
    port: Arc<AtomicUsize>,
    counters: [Arc<watch::Sender<usize>>; 2],
}

impl Slot {
    fn take(port: &Arc<AtomicUsize>, counters: &[Arc<watch::Sender<usize>>; 2]) -> Slot {
        port.fetch_add(1, Ordering::Relaxed);
        for c in counters {
            c.send_modify(|n| *n += 1);
        }
        Slot {
            port: port.clone(),
            counters: counters.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.port.fetch_sub(1, Ordering::Relaxed);
        for c in &self.counters {
            c.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

/// Connections closed for being over the limit, reported at most once per [`LOG_INTERVAL`].
#[derive(Default)]
struct Shed {
    last_log: Option<Instant>,
    unreported: u64,
}

impl Shed {
    fn note(&mut self, port: u16, max: usize) {
        self.unreported += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|at| now.duration_since(at) >= LOG_INTERVAL)
        {
            tracing::warn!(
                target: "trellis::listener",
                "port {port}: {max} connections open (--max-connections); closed {} new connection{} at once",
                self.unreported,
                if self.unreported == 1 { "" } else { "s" }
            );
            self.last_log = Some(now);
            self.unreported = 0;
        }
    }
}

struct ConnSetup {
    client: SocketAddr,
    port: u16,
    tls: Option<TlsAcceptor>,
    table: Arc<ArcSwap<RoutingTable>>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
}

impl ConnSetup {
    async fn run(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let client = SocketAddr::new(self.client.ip().to_canonical(), self.client.port());
        match self.tls {
            None => {
                let conn = Arc::new(Connection::new(client, self.port, None));
                limits::serve_connection(stream, conn, self.table, self.limits, self.shutdown)
                    .await;
            }
            Some(acceptor) => {
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(target: "trellis::listener", "TLS handshake from {client} failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(target: "trellis::listener", "TLS handshake from {client} timed out");
                        return;
                    }
                };
                let session = stream.get_ref().1;
                let info = TlsInfo {
                    sni: session.server_name().map(str::to_string),
                    version: session
                        .protocol_version()
                        .map(tls_version_name)
                        .unwrap_or_default(),
                    cipher: session
                        .negotiated_cipher_suite()
                        .map(|s| cipher_name(s.suite()))
                        .unwrap_or_default(),
                };
                let conn = Arc::new(Connection::new(client, self.port, Some(info)));
                limits::serve_connection(stream, conn, self.table, self.limits, self.shutdown)
                    .await;
            }
        }
    }
}

/// `TLSv1.3`, as Lattice's `tlsVersion` writes it.
fn tls_version_name(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

/// The OpenSSL name of a cipher suite, as Lattice's `sslCipher` writes it.
fn cipher_name(s: rustls::CipherSuite) -> String {
    use rustls::CipherSuite as C;
    match s {
        C::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256".into(),
        C::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384".into(),
        C::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256".into(),
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256".into(),
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384".into(),
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256".into(),
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384".into(),
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305".into(),
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305".into(),
        other => format!("{other:?}"),
    }
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
