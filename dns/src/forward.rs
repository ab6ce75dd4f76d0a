//! Forwarding the names that are not Trellis's to the upstream resolver.
//!
//! The client's query goes upstream as it came (same id, same EDNS), over UDP for a UDP client
//! and over TCP for a TCP client; the answer's records are sent back through hickory's encoder,
//! which truncates to the client's UDP payload size and sets TC, so a large answer makes the
//! client retry over TCP, which is then forwarded over TCP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{UPSTREAM_TIMEOUT, response_edns, response_metadata, send_error, serve_failed};

/// The first `nameserver` of /etc/resolv.conf, port 53; `None` when there is none.
pub fn system_upstream() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    parse_resolv_conf(&text)
}

fn parse_resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "nameserver" {
            return None;
        }
        // A zone index (fe80::1%eth0) cannot be used from here: skip such a line.
        let ip: IpAddr = words.next()?.parse().ok()?;
        Some(SocketAddr::new(ip, 53))
    })
}

pub async fn forward<R: ResponseHandler>(
    request: &Request,
    mut handle: R,
    upstream: SocketAddr,
) -> ResponseInfo {
    let asked = match request.protocol() {
        Protocol::Udp => tokio::time::timeout(UPSTREAM_TIMEOUT, udp(request, upstream)).await,
        _ => tokio::time::timeout(UPSTREAM_TIMEOUT, tcp(request.as_slice(), upstream)).await,
    };
    let answer = match asked {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            tracing::debug!(%upstream, error = %e, "DNS upstream failed; SERVFAIL");
            return send_error(request, handle, ResponseCode::ServFail).await;
        }
        Err(_) => {
            tracing::debug!(%upstream, "DNS upstream timed out; SERVFAIL");
            return send_error(request, handle, ResponseCode::ServFail).await;
        }
    };
    let mut metadata = response_metadata(request, answer.metadata.response_code);
    metadata.authoritative = answer.metadata.authoritative;
    metadata.authentic_data = answer.metadata.authentic_data;
    metadata.recursion_available = answer.metadata.recursion_available;
    // The upstream's own UDP answer was truncated: pass TC on, so the client retries over TCP.
    metadata.truncation = answer.metadata.truncation;
    let edns = response_edns(request);
    let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
    let response = builder.build(
        metadata,
        answer.answers.iter(),
        answer.authorities.iter(),
        [],
        answer.additionals.iter(),
    );
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, "cannot send a forwarded DNS answer");
            serve_failed(request)
        }
    }
}

/// One UDP exchange; answers with another id (late ones of an earlier query cannot reach this
/// fresh socket, but a spoofed one could) are skipped, a bounded number of times.
async fn udp(request: &Request, upstream: SocketAddr) -> std::io::Result<Message> {
    let local: IpAddr = if upstream.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = tokio::net::UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    socket.connect(upstream).await?;
    socket.send(request.as_slice()).await?;
    let mut buf = vec![0u8; 65_535];
    for _ in 0..8 {
        let n = socket.recv(&mut buf).await?;
        let Ok(message) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if message.metadata.id == request.metadata.id {
            return Ok(message);
        }
    }
    Err(std::io::Error::other("no answer with the query's id"))
}

/// One TCP exchange (two-byte length, then the message, both ways).
async fn tcp(query: &[u8], upstream: SocketAddr) -> std::io::Result<Message> {
    let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
    let mut stream = tokio::net::TcpStream::connect(upstream).await?;
    let mut out = Vec::with_capacity(query.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    stream.write_all(&out).await?;
    let n = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(n)];
    stream.read_exact(&mut buf).await?;
    Message::from_vec(&buf).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let text = "# comment\nsearch example.com\nnameserver fe80::1%eth0\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n";
        assert_eq!(
            parse_resolv_conf(text),
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(parse_resolv_conf("options ndots:1\n"), None);
    }
}
