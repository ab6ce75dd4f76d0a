//! Listeners: listen on every configured port, following the routing table as reloads change
//! it ([`Listeners`], in `listeners.rs`: install, bind-before-swap, drain), accept connections
//! (TLS where the port is HTTPS) and serve HTTP/1.1, h2c and h2 with hyper-util's auto server
//! (the accept loop and each connection's setup, in `connections.rs`; what bounds a connection,
//! in `limits.rs`), and drain on shutdown.
//!
//! Connections are served by [`Workers`]: one single-threaded runtime per core, each connection
//! handed to one of them when it is accepted and served there to the end, like nginx's worker
//! processes. Everything a request sets off (the upstream connection it borrows from that
//! thread's pool, the tasks it spawns) then runs on the same thread, so a request costs no
//! cross-thread wake-up; with tokio's work-stealing runtime the client's connection and the
//! upstream connection often sat on different threads and woke each other through the kernel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::tls::TlsError;

pub use limits::Limits;
pub use listeners::{Changes, Listeners, PortInfo, Settings};

mod connections;
mod limits;
mod listeners;

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

/// Waits for `shutdown` to turn true, then shuts `listeners` down (see
/// [`Listeners::shutdown`]). Returns how many connections were still open when the drain
/// time ran out.
pub async fn serve(listeners: Arc<Listeners>, mut shutdown: watch::Receiver<bool>) -> usize {
    let _ = shutdown.wait_for(|stop| *stop).await;
    listeners.shutdown().await
}
