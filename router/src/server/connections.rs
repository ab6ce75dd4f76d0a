//! The accept loop of one port and the setup of each connection it accepts: the per-port
//! connection limit, the hand-off to a serving thread, the TLS handshake, then the connection
//! served under [`limits`](super::limits).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{Limits, Workers, limits};
use crate::accept::{AcceptBackoff, LOG_INTERVAL};
use crate::handler::{Connection, TlsInfo};
use crate::table::RoutingTable;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything one accept task needs.
pub(super) struct Acceptor {
    pub(super) port: u16,
    pub(super) listener: Arc<TcpListener>,
    pub(super) tls: Option<Arc<ArcSwap<TlsAcceptor>>>,
    pub(super) table: Arc<ArcSwap<RoutingTable>>,
    pub(super) workers: Arc<Workers>,
    pub(super) limits: Limits,
    /// Open connections on the port (all generations).
    pub(super) active: Arc<AtomicUsize>,
    /// Open connections of this generation, and of every port.
    pub(super) counters: [Arc<watch::Sender<usize>>; 2],
    pub(super) stop: watch::Receiver<bool>,
    pub(super) abort: watch::Receiver<bool>,
}

/// Accepts the connections of one port until its task is aborted or `stop` turns true,
/// handing each to a serving thread. Over `limits.max_connections` open on the port, a new
/// connection is closed as soon as it is accepted (the established ones are not disturbed);
/// out of file descriptors, the loop backs off.
pub(super) async fn accept_loop(a: Acceptor) {
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
