//! Listeners: bind every configured port, accept connections (TLS where the port is HTTPS),
//! serve HTTP/1.1, h2c and h2 with hyper-util's auto server, and drain on shutdown.
//!
//! Connections are served by [`Workers`]: one single-threaded runtime per core, each connection
//! handed to one of them when it is accepted and served there to the end, like nginx's worker
//! processes. Everything a request sets off (the upstream connection it borrows from that
//! thread's pool, the tasks it spawns) then runs on the same thread, so a request costs no
//! cross-thread wake-up; with tokio's work-stealing runtime the client's connection and the
//! upstream connection often sat on different threads and woke each other through the kernel.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;
use trellis_config::ListenerProtocol;

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

/// A bound listening socket, ready to serve.
pub struct BoundPort {
    pub port: u16,
    pub protocol: ListenerProtocol,
    pub local: SocketAddr,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    /// Where the generated certificate was written, when this HTTPS port uses one.
    pub generated_cert: Option<PathBuf>,
}

/// Binds every listener port of `table` on `bind`. HTTPS ports get their certificates now:
/// the configured files, else a certificate generated for the services' host names and written
/// to `cert_dir` so that clients can trust it.
pub async fn bind(
    table: &RoutingTable,
    bind: IpAddr,
    cert_dir: &Path,
) -> Result<Vec<BoundPort>, ServeError> {
    let mut out = Vec::new();
    for (&port, p) in &table.ports {
        let (tls, generated_cert) = match p.protocol {
            ListenerProtocol::Http => (None, None),
            ListenerProtocol::Https => {
                let (config, generated) = tls_for_port(table, port, cert_dir)
                    .map_err(|source| ServeError::Tls { port, source })?;
                (Some(TlsAcceptor::from(config)), generated)
            }
        };
        let addr = SocketAddr::new(bind, port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        out.push(BoundPort {
            port,
            protocol: p.protocol,
            local,
            listener,
            tls,
            generated_cert,
        });
    }
    Ok(out)
}

/// The TLS configuration of one HTTPS port: each service's configured certificate for its host
/// names, and one generated certificate for the services without one.
fn tls_for_port(
    table: &RoutingTable,
    port: u16,
    cert_dir: &Path,
) -> Result<(Arc<rustls::ServerConfig>, Option<PathBuf>), TlsError> {
    let mut configured = Vec::new();
    let mut generated_hosts = Vec::new();
    for svc in &table.config.services {
        for l in svc
            .listeners
            .iter()
            .filter(|l| l.port == port && l.protocol == ListenerProtocol::Https)
        {
            match &l.tls {
                Some(files) => configured.push((
                    svc.host_names(),
                    tls::load_pem(&files.certificate, &files.key)?,
                )),
                None => generated_hosts.extend(svc.host_names()),
            }
        }
    }
    let mut generated_path = None;
    let generated = if generated_hosts.is_empty() && !configured.is_empty() {
        None
    } else {
        let cert = tls::self_signed(&generated_hosts)?;
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
        for host in &generated_hosts {
            resolver.add(host, g.clone());
        }
    }
    for (hosts, key) in &configured {
        for host in hosts {
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

/// Serves every bound port on `workers` within `limits` until `shutdown` turns true, then
/// stops accepting and lets requests in flight finish for at most `drain`. Returns how many
/// connections were still open when the drain time ran out.
pub async fn serve(
    ports: Vec<BoundPort>,
    table: Arc<ArcSwap<RoutingTable>>,
    workers: Arc<Workers>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
    limits: Limits,
) -> usize {
    // Every open connection, to wait for in the drain.
    let open = Arc::new(watch::Sender::new(0usize));
    let mut accept_tasks = tokio::task::JoinSet::new();
    for port in ports {
        let table = table.clone();
        let open = open.clone();
        let workers = workers.clone();
        let stop = shutdown.clone();
        accept_tasks.spawn(accept_loop(port, table, workers, stop, open, limits));
    }
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    accept_tasks.shutdown().await;
    let mut count = open.subscribe();
    match tokio::time::timeout(drain, count.wait_for(|n| *n == 0)).await {
        Ok(_) => 0,
        Err(_) => *open.borrow(),
    }
}

/// Accepts the connections of one port until `stop` turns true, handing each to a serving
/// thread. Over `limits.max_connections` open on the port, a new connection is closed as soon
/// as it is accepted (the established ones are not disturbed); out of file descriptors, the
/// loop backs off.
async fn accept_loop(
    port: BoundPort,
    table: Arc<ArcSwap<RoutingTable>>,
    workers: Arc<Workers>,
    mut stop: watch::Receiver<bool>,
    open: Arc<watch::Sender<usize>>,
    limits: Limits,
) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut backoff = AcceptBackoff::new(format!("port {}", port.port));
    let mut shed = Shed::default();
    loop {
        let (stream, client) = tokio::select! {
            accepted = port.listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    backoff.failed(&e).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        backoff.succeeded();
        if active.load(Ordering::Relaxed) >= limits.max_connections {
            drop(stream);
            shed.note(port.port, limits.max_connections);
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
        let slot = Slot::take(&active, &open);
        let conn = ConnSetup {
            client,
            port: port.port,
            tls: port.tls.clone(),
            table: table.clone(),
            limits,
            shutdown: stop.clone(),
        };
        workers.next().spawn(async move {
            let _slot = slot;
            match TcpStream::from_std(stream) {
                Ok(stream) => conn.run(stream).await,
                Err(e) => {
                    tracing::debug!(target: "trellis::listener", "connection from {client}: {e}")
                }
            }
        });
    }
}

/// One open connection, counted on its port and in the total until dropped.
struct Slot {
    port: Arc<AtomicUsize>,
    open: Arc<watch::Sender<usize>>,
}

impl Slot {
    fn take(port: &Arc<AtomicUsize>, open: &Arc<watch::Sender<usize>>) -> Slot {
        port.fetch_add(1, Ordering::Relaxed);
        open.send_modify(|n| *n += 1);
        Slot {
            port: port.clone(),
            open: open.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.port.fetch_sub(1, Ordering::Relaxed);
        self.open.send_modify(|n| *n = n.saturating_sub(1));
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
