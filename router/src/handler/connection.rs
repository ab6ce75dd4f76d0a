//! What the accepting side knows about a connection, shared by every request on it.

use std::net::SocketAddr;

use http::header::HeaderValue;

/// What the accepting side knows about a connection.
#[derive(Debug, Clone)]
pub struct Connection {
    pub client: SocketAddr,
    pub port: u16,
    pub tls: Option<TlsInfo>,
    /// The forwarded headers every request on this connection gets, made once per connection
    /// rather than per request.
    pub(super) forwarded: Forwarded,
}

#[derive(Debug, Clone)]
pub(super) struct Forwarded {
    /// The client's address, the `x-forwarded-for` of a request that brings none.
    pub client: String,
    pub client_header: HeaderValue,
    pub port: HeaderValue,
    pub proto: HeaderValue,
}

impl Connection {
    pub fn new(client: SocketAddr, port: u16, tls: Option<TlsInfo>) -> Connection {
        let ip = client.ip().to_canonical().to_string();
        let forwarded = Forwarded {
            // An IP address and a port number are always valid header values.
            client_header: HeaderValue::from_str(&ip).unwrap_or(HeaderValue::from_static("")),
            client: ip,
            port: HeaderValue::from(port),
            proto: HeaderValue::from_static(scheme(&tls)),
        };
        Connection {
            client,
            port,
            tls,
            forwarded,
        }
    }

    /// `https` or `http`: how the client reached Trellis.
    pub(super) fn scheme(&self) -> &'static str {
        scheme(&self.tls)
    }
}

fn scheme(tls: &Option<TlsInfo>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}

/// The TLS parameters of a connection, for the access log.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    pub sni: Option<String>,
    pub version: String,
    pub cipher: String,
}
