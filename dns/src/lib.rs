//! trellis-dns: the DNS server of `trellis up --dns`, so that clients discover services by
//! name as they do in a VPC associated with a Lattice service network.
//!
//! It answers A/AAAA for every service's generated DNS name, custom domain name and
//! `<name>.trellis.localhost` from the configuration the router serves *right now*: the binary
//! hands it a [`Directory`] (closures over the swapped routing table), so names appear and
//! disappear with reloads and API changes without this crate keeping its own copy. A name the
//! admission rule would refuse for the querying client (its VPC is not associated with a network
//! of the service) is NXDOMAIN for that client, as it is for a VPC outside the network in AWS.
//! Every other name is forwarded to an upstream resolver, so a container can use Trellis as its
//! only resolver.
//!
//! The crate does not depend on the router: admission is a closure the binary implements with
//! the router's own rule, so the two can never disagree.
//!
//! Parsing and UDP (with truncation, the TC bit) are hickory-server's; this crate decides
//! answers, forwards, and serves TCP itself ([`tcp`]) so that the number of TCP connections is
//! bounded, which hickory's TCP listener does not do.

#![forbid(unsafe_code)]

mod forward;
mod names;
pub mod tcp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA};
use hickory_server::proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::sync::{Semaphore, watch};
use trellis_config::Config;

pub use forward::system_upstream;

/// The TTL of every answer Trellis gives for its own names: short, so that a name removed by a
/// reload stops resolving in clients that cache (and a changed `--advertise` takes) soon.
pub const TTL: u32 = 5;

/// How long a forwarded query may wait for the upstream before the client gets SERVFAIL.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// Forwarded queries in flight at once; a query over the limit gets SERVFAIL at once, so that
/// a flood of queries for names the upstream is slow to answer cannot pile up tasks and sockets
/// (Trellis's own names never wait, so they keep resolving during such a flood).
pub const MAX_FORWARDS: usize = 256;

/// How long a TCP client may take to send each whole query (after opening, or after its last
/// answer) before its connection is closed; also how long an answer may take to be written.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the configuration being served now.
pub type ConfigFn = Box<dyn Fn() -> Arc<Config> + Send + Sync>;
/// Says whether a client at an address may reach the named service.
pub type AdmitsFn = Box<dyn Fn(&str, IpAddr) -> bool + Send + Sync>;

/// The live state the answers come from, provided by the binary.
pub struct Directory {
    /// The configuration being served now (the routing table's).
    pub config: ConfigFn,
    /// Whether a client at this address may reach the named service (the router's admission
    /// rule on the current routing table).
    pub admits: AdmitsFn,
}

/// Which address the answers for Trellis's names carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advertise {
    /// Always this address (`--advertise`, or the listeners' specific `--bind` address).
    Fixed(IpAddr),
    /// The listeners bind every address of this family (0.0.0.0 or ::): answer the address of
    /// this host that the kernel would use to reach the querying client, i.e. the address of
    /// the interface facing it (loopback for a local client, the container's address on a
    /// compose network). Found by connecting an unsent UDP socket: no packet leaves.
    Route(AddrFamily),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrFamily {
    V4,
    V6,
}

/// What `start` needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen, UDP and TCP on the same port (port 0: any free port).
    pub listen: SocketAddr,
    /// Where other names are forwarded.
    pub upstream: Option<SocketAddr>,
    pub advertise: Advertise,
    /// The bounds of DNS over TCP (connections, timeouts).
    pub tcp: tcp::TcpLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen for DNS on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the DNS upstream {0} is Trellis's own DNS address: every forwarded query would come back (give another with --dns-upstream)"
    )]
    UpstreamIsSelf(SocketAddr),
}

/// A running DNS server.
pub struct Running {
    /// The address it listens on (UDP and TCP), with the port chosen when 0 was asked.
    pub local: SocketAddr,
    /// The UDP side (hickory's).
    server: Server<Shared>,
    /// The TCP side ([`tcp`]): its stop signal and its accept loop's task.
    stop_tcp: watch::Sender<bool>,
    tcp: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting queries and waits for the listeners' tasks to end (TCP connections
    /// still open are closed).
    pub async fn shutdown(mut self) {
        let _ = self.stop_tcp.send(true);
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::debug!(error = %e, "DNS server stopped with an error");
        }
        if let Err(e) = self.tcp.await {
            tracing::debug!(error = %e, "DNS over TCP stopped with an error");
        }
    }
}

/// Binds UDP and TCP on `options.listen` and serves until [`Running::shutdown`].
pub async fn start(options: Options, directory: Directory) -> Result<Running, DnsError> {
    let (udp, tcp) = bind_pair(options.listen).await?;
    let local = udp.local_addr().map_err(|source| DnsError::Bind {
        addr: options.listen,
        source,
    })?;
    if let Some(up) = options.upstream
        && is_self(up, local)
    {
        return Err(DnsError::UpstreamIsSelf(up));
    }
    let handler = Arc::new(Handler {
        directory,
        upstream: options.upstream,
        advertise: options.advertise,
        forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
    });
    let mut server = Server::new(Shared(handler.clone()));
    server.register_socket(udp);
    let (stop_tcp, stopped) = watch::channel(false);
    let tcp = tokio::spawn(tcp::serve(tcp, handler, options.tcp, stopped));
    Ok(Running {
        local,
        server,
        stop_tcp,
        tcp,
    })
}

/// UDP and TCP on one port. With port 0 the UDP port is chosen first and TCP takes the same
/// number; when that one is taken over TCP, a few other ports are tried.
async fn bind_pair(
    addr: SocketAddr,
) -> Result<(tokio::net::UdpSocket, tokio::net::TcpListener), DnsError> {
    let err = |source| DnsError::Bind { addr, source };
    let attempts = if addr.port() == 0 { 8 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = tokio::net::UdpSocket::bind(addr).await.map_err(err)?;
        let chosen = udp.local_addr().map_err(err)?;
        match tokio::net::TcpListener::bind(chosen).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(err(last.unwrap_or_else(|| std::io::Error::other("no port"))))
}

/// Whether forwarding to `up` would plainly reach this server itself. Only the plain cases:
/// other loopback addresses are left alone, since Docker's resolver at 127.0.0.11:53 inside a
/// container is redirected elsewhere even when Trellis listens on 0.0.0.0:53 there.
fn is_self(up: SocketAddr, local: SocketAddr) -> bool {
    let plain_local = |ip: IpAddr| {
        ip.is_unspecified()
            || ip == IpAddr::V4(Ipv4Addr::LOCALHOST)
            || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
    };
    up.port() == local.port()
        && (up.ip() == local.ip() || (local.ip().is_unspecified() && plain_local(up.ip())))
}

struct Handler {
    directory: Directory,
    upstream: Option<SocketAddr>,
    advertise: Advertise,
    forwards: Arc<Semaphore>,
}

/// The answer for one of Trellis's names.
enum Local {
    /// Not a Trellis name: forward it.
    Foreign,
    /// A Trellis name this client may not resolve, or a `*.trellis.localhost` name that is no
    /// service.
    NxDomain,
    /// The name exists; the record (none when the type asked has no record: NODATA).
    Found(Option<RData>),
}

impl Handler {
    fn local(&self, name: &str, rtype: RecordType, class: DNSClass, client: IpAddr) -> Local {
        let config = (self.directory.config)();
        let Some(service) = names::lookup(&config, name) else {
            return if names::is_trellis_zone(name) {
                Local::NxDomain
            } else {
                Local::Foreign
            };
        };
        if !(self.directory.admits)(&service.name, client) {
            return Local::NxDomain;
        }
        if class != DNSClass::IN {
            return Local::Found(None);
        }
        let addr = self.address_for(client);
        Local::Found(match (rtype, addr) {
            (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => Some(RData::A(A(v4))),
            (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(v6))),
            _ => None,
        })
    }

    fn address_for(&self, client: IpAddr) -> IpAddr {
        match self.advertise {
            Advertise::Fixed(ip) => ip,
            Advertise::Route(family) => route_source(family, client),
        }
    }
}

/// The local address the kernel picks to reach `client`, in `family`; loopback when there is
/// no route (or the client is of the other family).
fn route_source(family: AddrFamily, client: IpAddr) -> IpAddr {
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (unspecified, loopback): (IpAddr, IpAddr) = match family {
        AddrFamily::V4 => (Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::LOCALHOST.into()),
        AddrFamily::V6 => (Ipv6Addr::UNSPECIFIED.into(), Ipv6Addr::LOCALHOST.into()),
    };
    if client.is_ipv4() != unspecified.is_ipv4() {
        return loopback;
    }
    let found = std::net::UdpSocket::bind(SocketAddr::new(unspecified, 0))
        .and_then(|s| s.connect(SocketAddr::new(client, 9)).map(|()| s))
        .and_then(|s| s.local_addr());
    match found {
        Ok(addr) if !addr.ip().is_unspecified() => addr.ip(),
        _ => loopback,
    }
}

/// The OPT record of the answer when the query had one (RFC 6891: a responder must include
/// one), advertising the client's own payload size.
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|req| {
        let mut edns = Edns::new();
        edns.set_max_payload(req.max_payload().max(512));
        edns.set_version(0);
        edns
    })
}

fn response_metadata(request: &Request, code: ResponseCode) -> Metadata {
    let mut metadata = Metadata::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    metadata.response_code = code;
    metadata.recursion_desired = request.metadata.recursion_desired;
    metadata.recursion_available = true;
    metadata
}

async fn send_error<R: ResponseHandler>(
    request: &Request,
    mut handle: R,
    code: ResponseCode,
) -> ResponseInfo {
    let edns = response_edns(request);
    let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
    let response = builder.build_no_records(response_metadata(request, code));
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "cannot send a DNS answer");
            serve_failed(request)
        }
    }
}

fn serve_failed(request: &Request) -> ResponseInfo {
    let mut header = hickory_server::proto::op::Header {
        metadata: response_metadata(request, ResponseCode::ServFail),
        counts: Default::default(),
    };
    header.metadata.response_code = ResponseCode::ServFail;
    header.into()
}

/// The one handler, shared by hickory's UDP server (which wants to own its handler) and
/// [`tcp`].
struct Shared(Arc<Handler>);

#[async_trait::async_trait]
impl RequestHandler for Shared {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        handle: R,
    ) -> ResponseInfo {
        self.0.handle_request::<R, T>(request, handle).await
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        handle: R,
    ) -> ResponseInfo {
        if request.metadata.message_type != MessageType::Query {
            // A response sent to us: answering it could start a loop between two servers.
            return serve_failed(request);
        }
        if request.metadata.op_code != OpCode::Query {
            return send_error(request, handle, ResponseCode::NotImp).await;
        }
        let Ok(info) = request.request_info() else {
            return send_error(request, handle, ResponseCode::FormErr).await;
        };
        let name = names::normalize(&info.query.name().to_string());
        let client = request.src().ip();
        let rtype = info.query.query_type();
        match self.local(&name, rtype, info.query.query_class(), client) {
            Local::Foreign => {
                let Some(upstream) = self.upstream else {
                    return send_error(request, handle, ResponseCode::ServFail).await;
                };
                let Ok(_permit) = self.forwards.clone().try_acquire_owned() else {
                    tracing::debug!(%name, "too many DNS queries being forwarded; SERVFAIL");
                    return send_error(request, handle, ResponseCode::ServFail).await;
                };
                forward::forward(request, handle, upstream).await
            }
            Local::NxDomain => {
                tracing::debug!(%name, %client, "DNS: NXDOMAIN (unknown name or not admitted)");
                send_error(request, handle, ResponseCode::NXDomain).await
            }
            Local::Found(rdata) => {
                let owner = info.query.original().name().clone();
                let records: Vec<Record> = rdata
                    .into_iter()
                    .map(|r| Record::from_rdata(owner.clone(), TTL, r))
                    .collect();
                let edns = response_edns(request);
                let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
                let mut metadata = response_metadata(request, ResponseCode::NoError);
                metadata.authoritative = true;
                let response = builder.build(metadata, records.iter(), [], [], []);
                let mut handle = handle;
                match handle.send_response(response).await {
                    Ok(info) => info,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot send a DNS answer");
                        serve_failed(request)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_detection() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(is_self(a("127.0.0.1:53"), a("127.0.0.1:53")));
        assert!(is_self(a("127.0.0.1:53"), a("0.0.0.0:53")));
        assert!(!is_self(a("127.0.0.11:53"), a("127.0.0.1:53")));
        // Docker's embedded resolver, redirected by the container's own NAT rules.
        assert!(!is_self(a("127.0.0.11:53"), a("0.0.0.0:53")));
        assert!(!is_self(a("127.0.0.1:5353"), a("0.0.0.0:53")));
    }

    #[test]
    fn route_source_of_loopback_is_loopback() {
        let ip = route_source(AddrFamily::V4, "127.0.0.1".parse().unwrap());
        assert!(ip.is_loopback(), "{ip}");
        // A v6 client with v4 listeners: loopback of the listeners' family.
        let ip = route_source(AddrFamily::V4, "::1".parse().unwrap());
        assert_eq!(ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
}
