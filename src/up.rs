//! `trellis up`: build the routing table, bind the listeners, serve, and drain on a signal.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use trellis_config::{Config, ListenerProtocol};
use trellis_invokers::{Invokers, Options};

use crate::admin::{self, AdminAddr};
use crate::reload::{DataPlaneSeam, Installer, Live, ReloadMode, watch_config};
use trellis_router::RoutingTable;
use trellis_router::accesslog::LogSinks;
use trellis_router::health::HealthMonitor;
use trellis_router::server::{self, Listeners, PortInfo, Workers};

use crate::{EXIT_BAD_CONFIG, EXIT_RUNTIME, load_config, log};

#[derive(clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    config: crate::ConfigArg,
    /// Address the listeners bind to (0.0.0.0 to accept other machines or containers).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// How long a target may take to send its response head before the client gets 504
    /// (seconds, or with a unit: 60, 1.5s, 1500ms).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::duration::parse)]
    target_timeout: Duration,
    /// Threads that serve connections, each connection on one thread from start to end
    /// (default: one per CPU core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// How long requests in flight may take to finish after SIGINT/SIGTERM (seconds, or with a
    /// unit: 10, 2.5s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::duration::parse)]
    drain_timeout: Duration,
    /// How long a client may take to send a request head: from opening the connection (after
    /// the TLS handshake), and on HTTP/1.1 from the first byte of each later request (HTTP/2:
    /// until its connection preface). A slower connection is closed without an answer.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive)]
    header_timeout: Duration,
    /// Caps every service's idleTimeoutSeconds (which Lattice allows only from 60 s), e.g.
    /// to test idle connections quickly (default: no cap).
    #[arg(long, value_name = "DURATION", value_parser = positive)]
    max_idle_timeout: Option<Duration>,
    /// How long a client connection may live before it is closed gracefully (HTTP/1.1:
    /// `Connection: close` on the next response; HTTP/2: GOAWAY). Lattice's is 10 minutes.
    #[arg(long, value_name = "DURATION", default_value = "600s", value_parser = positive)]
    max_connection_age: Duration,
    /// Open client connections per listener port; a connection over the limit is closed as
    /// soon as it is accepted, without disturbing the open ones.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Where the admin port serves the VPC Lattice API (aws vpc-lattice --endpoint-url
    /// http://ADDR), the web console (http://ADDR/ui/), /metrics (Prometheus) and /healthz;
    /// "off" to disable, port 0 for any free port. Not loopback: Trellis warns that other
    /// machines can reach it.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9901")]
    admin: AdminAddr,
    /// What reloads the config file: watch (an edit, once the file has not changed for half a
    /// second, and SIGHUP), signal (only SIGHUP) or off (nothing; SIGHUP is logged and ignored).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ReloadMode::Watch)]
    reload: ReloadMode,
    /// Serve DNS (UDP and TCP) on this address, e.g. 127.0.0.1:10053 (port 0: any free port):
    /// each service's generated DNS name, custom domain name and <name>.trellis.localhost
    /// resolve to the listeners' address, for clients whose VPC may reach the service; other
    /// names are forwarded upstream. Off unless given.
    #[arg(long, value_name = "ADDR")]
    dns: Option<std::net::SocketAddr>,
    /// The address DNS answers carry (default: the --bind address; with --bind 0.0.0.0 or ::,
    /// the address of this host facing each client, e.g. loopback for a local client).
    #[arg(long, value_name = "IP")]
    advertise: Option<IpAddr>,
    /// Where --dns forwards names that are not Trellis's (IP or IP:PORT; default: the first
    /// nameserver of /etc/resolv.conf).
    #[arg(long, value_name = "ADDR", value_parser = upstream_addr)]
    dns_upstream: Option<std::net::SocketAddr>,
    #[command(flatten)]
    state: crate::StateDirArg,
    #[command(flatten)]
    pub log: crate::LogArgs,
}

/// `--dns-upstream`: an IP (port 53) or IP:PORT.
fn upstream_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    text.parse()
        .map_err(|_| format!("{text:?} is neither IP nor IP:PORT"))
}

/// A duration flag that must not be zero (a zero timeout would close every connection).
fn positive(text: &str) -> Result<Duration, String> {
    match crate::duration::parse(text)? {
        d if d.is_zero() => Err("must be more than 0".into()),
        d => Ok(d),
    }
}

pub fn run(args: UpArgs) -> u8 {
    // Issue 16 (control plane): the file is layered with the API store under --state-dir;
    // the control plane composes the first config and every later one.
    // Stamped before reading: the watcher reloads any change made after this.
    let loaded = trellis_runtime::stamp::FileStamp::of(&args.config.file);
    let bytes = match trellis_config::read_capped(&args.config.file) {
        Ok(b) => b,
        // The message (and hint) of a file that cannot be read.
        Err(_) => {
            return load_config(&args.config.file)
                .err()
                .unwrap_or(EXIT_BAD_CONFIG);
        }
    };
    let seam = Arc::new(DataPlaneSeam::default());
    let opened = trellis_control::Plane::open(
        bytes,
        &args.config.file.display().to_string(),
        &args.state.state_dir,
        seam.clone(),
    );
    let (plane, config) = match opened {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return match e {
                trellis_control::OpenError::Config(_) => EXIT_BAD_CONFIG,
                trellis_control::OpenError::Store(_) => EXIT_RUNTIME,
            };
        }
    };
    let runtime = match crate::async_runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(serve(args, config, plane, seam, loaded)) {
        Ok(()) => 0,
        Err(e) => {
            log::error(&e);
            EXIT_RUNTIME
        }
    }
}

async fn serve(
    args: UpArgs,
    config: Arc<Config>,
    plane: Arc<trellis_control::Plane>,
    seam: Arc<DataPlaneSeam>,
    loaded: Option<trellis_runtime::stamp::FileStamp>,
) -> anyhow::Result<()> {
    // Listened for from the start: a Ctrl-C or SIGTERM during a long start-up (wasm compiles,
    // containers) then stops Trellis once it has started, with the usual drain and clean-up,
    // rather than killing it half-way with function environments left running.
    let mut signals = Signals::listen()?;
    let invokers = Arc::new(
        Invokers::new(Options {
            target_timeout: args.target_timeout,
            state_dir: args.state.state_dir.clone(),
            provision: true,
        })
        .context("cannot set up the invokers")?,
    );
    invokers
        .prepare(&config)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let monitor = HealthMonitor::new();
    let sinks = LogSinks::new();
    let table = RoutingTable::build(config.clone(), invokers.as_ref(), &monitor, &sinks)
        .context("cannot build the routing table")?;
    // Listened for before "ready", so that a SIGHUP never finds its default action (exit).
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let threads = args.threads.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    // Kept until the function environments have stopped: requests start them on these threads.
    let workers = Arc::new(Workers::start(threads).context("cannot start the serving threads")?);
    let table = Arc::new(ArcSwap::from_pointee(table));
    let drain = args.drain_timeout;
    let listeners = Listeners::start(
        table.clone(),
        workers.clone(),
        server::Settings {
            bind: args.bind,
            cert_dir: args.state.state_dir.join("certs"),
            limits: server::Limits {
                header_timeout: args.header_timeout,
                max_idle_timeout: args.max_idle_timeout,
                max_connection_age: args.max_connection_age,
                max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            },
            drain,
        },
    )
    .await?;
    let dns = match args.dns {
        Some(listen) => Some(start_dns(&args, listen, table.clone()).await?),
        None => None,
    };
    let admin = admin::bind(args.admin).await;
    // Made before "ready" (it compiles the AWS model's input checks), so a client that waits
    // for "ready" finds the API answering.
    let api = Arc::new(trellis_control::rest::Api::new(plane.clone()));
    let admin_addr = admin.as_ref().and_then(|l| l.local_addr().ok());
    print_banner(
        &args,
        &config,
        &listeners.ports().await,
        admin_addr,
        workers.count(),
        dns.as_ref().map(|d| d.local),
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(server::serve(listeners.clone(), stop_rx.clone()));
    // API changes and file reloads install configs through this seam (issue 16); set before
    // the API serves, so that its first call can install.
    let console_listeners = listeners.clone();
    let _ = seam.installer.set(Installer {
        invokers: invokers.clone(),
        monitor: monitor.clone(),
        sinks: sinks.clone(),
        listeners,
    });
    if let Some(listener) = admin {
        let console =
            crate::console::Console::new(table.clone(), Some(console_listeners), stop_rx.clone());
        tokio::spawn(admin::serve(
            listener,
            api,
            table.clone(),
            console,
            stop_rx.clone(),
        ));
    }
    let live = Live {
        file: args.config.file.clone(),
        plane,
        loaded,
    };
    let watcher = tokio::spawn(watch_config(live, args.reload, hup, stop_rx));
    let signal = signals.next().await;
    tracing::info!(
        target: log::TARGET,
        signal,
        drain_seconds = drain.as_secs_f64(),
        "{signal} received; finishing requests in flight (up to {})",
        seconds(drain)
    );
    monitor.stop();
    let _ = stop_tx.send(true);
    let _ = watcher.await;
    let open = server.await.context("server task failed")?;
    if open > 0 {
        tracing::warn!(
            target: log::TARGET,
            connections = open,
            "drain time over; closed {open} connection{} still busy",
            if open == 1 { "" } else { "s" }
        );
    }
    if let Some(dns) = dns {
        dns.shutdown().await;
    }
    invokers.shutdown().await;
    drop(workers);
    sinks.close();
    // Give the access-log writers a moment to flush their last records.
    tokio::time::sleep(Duration::from_millis(50)).await;
    tracing::info!(target: log::TARGET, "stopped");
    Ok(())
}

/// `10s`, `2.5s`, `0.25s`: whole seconds without a fraction, others with what they need.
fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// `up`'s start-up lines. In text mode they are the command's output, plain so that the curl
/// commands can be copied and tools can wait for `trellis: ready`; in JSON mode they are info
/// events with the same message and the parts as fields, so that every stderr line parses.
fn print_banner(
    args: &UpArgs,
    config: &Config,
    ports: &[PortInfo],
    admin: Option<std::net::SocketAddr>,
    threads: usize,
    dns: Option<std::net::SocketAddr>,
) {
    let json = log::json();
    let file = args.config.file.display();
    let serving = format!(
        "serving {} service{} on {} port{} from {file} ({threads} serving thread{})",
        config.services.len(),
        if config.services.len() == 1 { "" } else { "s" },
        ports.len(),
        if ports.len() == 1 { "" } else { "s" },
        if threads == 1 { "" } else { "s" }
    );
    if json {
        tracing::info!(target: log::TARGET, services = config.services.len(), ports = ports.len(), %file, threads, "{serving}");
    } else {
        eprintln!("trellis: {serving}");
    }
    for svc in &config.services {
        for l in &svc.listeners {
            let Some(bound) = ports.iter().find(|p| p.port == l.port) else {
                continue;
            };
            let host = format!("{}.trellis.localhost", svc.name);
            let curl = match (l.protocol, &bound.generated_cert) {
                (ListenerProtocol::Http, _) => {
                    format!("curl http://{host}:{}/", bound.local.port())
                }
                (ListenerProtocol::Https, Some(cert)) => {
                    format!(
                        "curl --cacert {} https://{host}:{}/",
                        cert.display(),
                        bound.local.port()
                    )
                }
                (ListenerProtocol::Https, None) => {
                    format!("curl https://{host}:{}/", bound.local.port())
                }
            };
            let protocol = l.protocol.as_str();
            let line = format!(
                "{} {} {protocol} {}  →  {curl}",
                svc.name, l.name, bound.local
            );
            if json {
                tracing::info!(target: log::TARGET, service = %svc.name, listener = %l.name, protocol, address = %bound.local, %curl, "{line}");
            } else {
                eprintln!("  {line}");
            }
        }
        let line = format!(
            "{} answers to {}{} (curl --connect-to ::{}: ...)",
            svc.name,
            svc.dns_name,
            svc.custom_domain_name
                .as_ref()
                .map(|d| format!(" and {d}"))
                .unwrap_or_default(),
            reachable(args.bind)
        );
        if json {
            tracing::info!(target: log::TARGET, service = %svc.name, dns_name = %svc.dns_name, custom_domain_name = svc.custom_domain_name.as_deref(), "{line}");
        } else {
            eprintln!("  {line}");
        }
    }
    if let Some(addr) = admin {
        if json {
            tracing::info!(target: log::TARGET, metrics = %format!("http://{addr}/metrics"), "metrics at http://{addr}/metrics");
        } else {
            eprintln!("trellis: metrics at http://{addr}/metrics");
        }
        let api = format!(
            "aws vpc-lattice --endpoint-url http://{addr} --region {}",
            config.region
        );
        if json {
            tracing::info!(target: log::TARGET, api = %api, "VPC Lattice API at http://{addr}  →  {api}");
        } else {
            eprintln!("trellis: VPC Lattice API at http://{addr}  →  {api}");
        }
        let console = format!("http://{addr}/ui/");
        if json {
            tracing::info!(target: log::TARGET, console = %console, "console at {console}");
        } else {
            eprintln!("trellis: console at {console}");
        }
        // The admin port has no authentication: say so when other machines can reach it.
        if !addr.ip().is_loopback() {
            let warning = format!(
                "the admin address {addr} is not loopback: other machines can reach the console and the VPC Lattice API (and change the configuration) without credentials"
            );
            tracing::warn!(target: log::TARGET, admin = %addr, "{warning}");
        }
    }
    if let Some(dns) = dns {
        let example = config
            .services
            .first()
            .map_or_else(|| "NAME".to_string(), |s| s.dns_name.clone());
        let dig = format!("dig @{} -p {} {example}", dns.ip(), dns.port());
        if json {
            tracing::info!(target: log::TARGET, dns = %dns, %dig, "DNS at {dns}  →  {dig}");
        } else {
            eprintln!("trellis: DNS at {dns}  →  {dig}");
        }
    }
    if json {
        tracing::info!(target: log::TARGET, "ready (Ctrl-C to stop)");
    } else {
        eprintln!("trellis: ready (Ctrl-C to stop)");
    }
}

/// Starts `--dns`: answers come from the routing table being served (so from every reload and
/// API change), admission from the router's own rule on that table.
async fn start_dns(
    args: &UpArgs,
    listen: std::net::SocketAddr,
    table: Arc<ArcSwap<RoutingTable>>,
) -> anyhow::Result<trellis_dns::Running> {
    let advertise = match (args.advertise, args.bind) {
        (Some(ip), _) => trellis_dns::Advertise::Fixed(ip),
        (None, IpAddr::V4(v4)) if v4.is_unspecified() => {
            trellis_dns::Advertise::Route(trellis_dns::AddrFamily::V4)
        }
        (None, IpAddr::V6(v6)) if v6.is_unspecified() => {
            trellis_dns::Advertise::Route(trellis_dns::AddrFamily::V6)
        }
        (None, ip) => trellis_dns::Advertise::Fixed(ip),
    };
    let upstream = args.dns_upstream.or_else(trellis_dns::system_upstream);
    if upstream.is_none() {
        tracing::warn!(target: log::TARGET, "no nameserver in /etc/resolv.conf and no --dns-upstream: DNS answers SERVFAIL for names that are not Trellis's");
    }
    let config_table = table.clone();
    let directory = trellis_dns::Directory {
        config: Box::new(move || config_table.load().config.clone()),
        admits: Box::new(move |service, ip| {
            let t = table.load();
            t.services
                .iter()
                .find(|s| s.name == service)
                .is_some_and(|s| t.admit(s, ip).is_some())
        }),
    };
    trellis_dns::start(
        trellis_dns::Options {
            listen,
            upstream,
            advertise,
            tcp: trellis_dns::tcp::TcpLimits::default(),
        },
        directory,
    )
    .await
    .map_err(anyhow::Error::from)
}

/// An address a local client can connect to: loopback when listening on every address.
fn reachable(bind: IpAddr) -> IpAddr {
    match bind {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// SIGINT and SIGTERM, the signals that stop `up`. Each is kept from the moment it is
/// listened for, so one that comes before [`Signals::next`] is waited on is not lost.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// The name of the next signal (or of one that came already).
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
