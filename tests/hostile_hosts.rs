//! Hostile and ambiguous hosts and protocol edges (issue 15, items 6, 7 and 9), against the
//! real binary. Raw TCP where a client library would tidy the request up: two `Host` headers,
//! an absolute-form request line, bad chunk framing, `CONNECT`; a raw backend that answers
//! `101`; a wildcard certificate on an HTTPS listener; the unknown-host 404's suggestions.
mod common;
use common::*;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long any one raw exchange may take.
const EXCHANGE: Duration = Duration::from_secs(5);

/// Writes `request` to trellis on `port` and reads the answer until the connection closes (the
/// requests say `Connection: close`) or [`EXCHANGE`] runs out.
async fn raw(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(EXCHANGE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The access-log record (stdout) of the request whose `userAgent` is `agent`, waiting a
/// little for it: records are written when the response has gone out.
fn record(trellis: &Trellis, agent: &str) -> serde_json::Value {
    for _ in 0..50 {
        let stdout = trellis.stdout();
        if let Some(line) = stdout
            .lines()
            .find(|l| l.contains(&format!("\"userAgent\":\"{agent}\"")))
        {
            return serde_json::from_str(line).expect("a JSON record");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no access-log record for {agent}:\n{}", trellis.stdout());
}

/// Services `front` and `back` on one port, each forwarding to its own backend, logging to
/// stdout.
async fn two_services() -> (Trellis, u16, Backend, Backend) {
    let port = free_port();
    let front = Backend::start("front").await;
    let back = Backend::start("back").await;
    let yaml = Config::new()
        .service(
            Service::new("front")
                .access_log("stdout")
                .listener(Listener::http(port).forward("front-tg")),
        )
        .service(
            Service::new("back")
                .access_log("stdout")
                .listener(Listener::http(port).forward("back-tg")),
        )
        .target_group(TargetGroup::instance("front-tg", &[front.port]).no_health_checks())
        .target_group(TargetGroup::instance("back-tg", &[back.port]).no_health_checks())
        .yaml();
    (Trellis::start(&yaml, &[]), port, front, back)
}

#[tokio::test]
async fn two_host_headers_get_400_and_reach_no_service() {
    let (trellis, port, front, back) = two_services().await;
    let answer = raw(
        port,
        "GET / HTTP/1.1\r\nHost: front.trellis.localhost\r\nHost: back.trellis.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("2 times"), "{answer}");
    assert_eq!(front.hits.load(Ordering::Relaxed), 0);
    assert_eq!(back.hits.load(Ordering::Relaxed), 0);
    // One Host header still works on the same port.
    let answer = raw(
        port,
        "GET / HTTP/1.1\r\nHost: front.trellis.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(trellis);
}

/// RFC 9112, 3.2.2: the authority of an absolute-form request target wins over `Host`; the
/// service it names is the one reached, and its target is told that host, not the other.
#[tokio::test]
async fn an_absolute_form_authority_wins_over_host_in_routing_and_forwarding() {
    let (trellis, port, front, back) = two_services().await;
    let answer = raw(
        port,
        &format!("GET http://back.trellis.localhost:{port}/abs HTTP/1.1\r\nHost: front.trellis.localhost\r\nUser-Agent: absolute-form\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Hello from back at /abs"), "{answer}");
    assert_eq!(front.hits.load(Ordering::Relaxed), 0);
    let seen = back.last_seen();
    assert_eq!(
        seen.headers["host"],
        format!("back.trellis.localhost:{port}").as_str()
    );
    assert_eq!(seen.headers.get_all("host").iter().count(), 1);
    assert_eq!(seen.uri, "/abs", "the target gets the origin form");
    assert_eq!(
        record(&trellis, "absolute-form")["serviceArn"]
            .as_str()
            .map(|arn| arn.contains("svc-")),
        Some(true)
    );
}

/// RFC 9113, 8.3.1: over HTTP/2, `:authority` wins over a `Host` header beside it.
#[tokio::test]
async fn an_http2_authority_wins_over_host_in_routing_and_forwarding() {
    let (trellis, port, front, back) = two_services().await;
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let request = Request::get(format!("http://back.trellis.localhost:{port}/h2"))
        .header("host", "front.trellis.localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.expect("h2 request");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{body:?}\n{}", trellis.stderr());
    assert_eq!(body, "Hello from back at /h2");
    assert_eq!(front.hits.load(Ordering::Relaxed), 0);
    assert_eq!(
        back.last_seen().headers["host"],
        format!("back.trellis.localhost:{port}").as_str()
    );
}

/// A chunk size that is no hexadecimal number is the client's error: 400 and a client
/// `failureReason`, not a 502 blamed on the target.
#[tokio::test]
async fn bad_chunk_framing_is_a_client_error() {
    let (trellis, port, front, _back) = two_services().await;
    let answer = raw(
        port,
        "POST /upload HTTP/1.1\r\nHost: front.trellis.localhost\r\nUser-Agent: bad-chunks\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let record = record(&trellis, "bad-chunks");
    assert_eq!(record["responseCode"], 400, "{record}");
    assert_eq!(record["failureReason"], "ClientProtocolError", "{record}");
    assert_eq!(front.hits.load(Ordering::Relaxed), 0);
}

/// `CONNECT` asks for a tunnel: 405, logged as such, nothing forwarded.
#[tokio::test]
async fn connect_gets_405() {
    let (trellis, port, front, _back) = two_services().await;
    let answer = raw(
        port,
        &format!("CONNECT front.trellis.localhost:{port} HTTP/1.1\r\nHost: front.trellis.localhost:{port}\r\nUser-Agent: tunnel\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    let record = record(&trellis, "tunnel");
    assert_eq!(record["responseCode"], 405, "{record}");
    assert_eq!(record["failureReason"], "ClientProtocolError", "{record}");
    assert_eq!(front.hits.load(Ordering::Relaxed), 0);
}

/// A target that answers `101 Switching Protocols` to a request that asked for no upgrade
/// gets its answer turned into a 502.
#[tokio::test]
async fn an_unsolicited_101_from_a_target_is_a_502() {
    let backend = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backend_port = backend.local_addr().unwrap().port();
    tokio::spawn(async move {
        // Bounded: the test sends a handful of requests.
        for _ in 0..8 {
            let Ok((mut stream, _)) = backend.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    let port = free_port();
    let yaml = Config::new()
        .service(
            Service::new("switcher")
                .access_log("stdout")
                .listener(Listener::http(port).forward("switch-tg")),
        )
        .target_group(TargetGroup::instance("switch-tg", &[backend_port]).no_health_checks())
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);
    let answer = raw(
        port,
        "GET / HTTP/1.1\r\nHost: switcher.trellis.localhost\r\nUser-Agent: switch\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(answer.contains("101"), "{answer}");
    let record = record(&trellis, "switch");
    assert_eq!(record["failureReason"], "TargetProtocolError", "{record}");
}

/// The unknown-host 404 names a few of the closest host names and counts the rest, and names
/// none to a client whose VPC reaches no service.
#[tokio::test]
async fn the_unknown_host_404_suggests_a_few_names_to_admitted_clients_only() {
    let port = free_port();
    let names: Vec<String> = (1..=12).map(|i| format!("shop-{i:02}")).collect();
    let mut config = Config::new().vpc("inside", &["127.0.0.2/32"]);
    for name in &names {
        config =
            config.service(Service::new(name).listener(
                Listener::http(port).action(json!({"fixedResponse": {"statusCode": 200}})),
            ));
    }
    let services: Vec<&str> = names.iter().map(String::as_str).collect();
    let yaml = config
        .network(Network::new("net", &services, &["inside"]))
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);

    let inside = get(&client_from(lo(2)), port, "shop-7.trellis.localhost", "/").await;
    assert_eq!(inside.status, 404, "{inside:?}");
    // 12 services, 2 names each here (the generated DNS name, <name>.trellis.localhost).
    let listed: Vec<&str> = inside
        .body
        .lines()
        .filter(|l| l.starts_with("  ") && !l.contains("more"))
        .map(str::trim)
        .collect();
    assert_eq!(listed.len(), 5, "{}", inside.body);
    assert_eq!(listed[0], "shop-07.trellis.localhost", "{}", inside.body);
    assert!(inside.body.contains("... and 19 more"), "{}", inside.body);

    let outside = get(&client_from(lo(3)), port, "shop-7.trellis.localhost", "/").await;
    assert_eq!(outside.status, 404, "{outside:?}");
    assert!(!outside.body.contains("shop-0"), "{}", outside.body);
    assert!(!outside.body.contains("more"), "{}", outside.body);
    drop(trellis);
}

/// An HTTPS listener whose certificate is for `*.example.com` serves `parking.example.com`
/// (its custom domain) and, for a name under it that no service took, still presents that
/// certificate rather than the port's generated one: the client trusts it, and hears 404.
#[tokio::test]
async fn a_wildcard_certificate_serves_names_one_level_under_it() {
    let dir = scratch_dir("wildcard-cert");
    let cert = rcgen::generate_simple_self_signed(vec!["*.example.com".to_string()]).unwrap();
    let cert_path = dir.join("wildcard.pem");
    let key_path = dir.join("wildcard.key");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let backend = Backend::start("parking").await;
    let port = free_port();
    let yaml =
        Config::new()
            // A service with a generated certificate shares the port: it is the default one.
            .service(Service::new("plain").listener(
                Listener::https(port).action(json!({"fixedResponse": {"statusCode": 204}})),
            ))
            .service(
                Service::new("parking")
                    .custom_domain("parking.example.com")
                    .listener(
                        Listener::https(port)
                            .tls(cert_path.to_str().unwrap(), key_path.to_str().unwrap())
                            .forward("parking-tg"),
                    ),
            )
            .target_group(TargetGroup::instance("parking-tg", &[backend.port]).no_health_checks())
            .yaml();
    let trellis = Trellis::start(&yaml, &[]);

    let parking = https_get(port, &cert_path, "parking.example.com", "/spot").await;
    assert!(parking.starts_with("HTTP/1.1 200"), "{parking}");
    assert!(parking.contains("Hello from parking at /spot"), "{parking}");

    let garage = https_get(port, &cert_path, "garage.example.com", "/").await;
    assert!(garage.starts_with("HTTP/1.1 404"), "{garage}");
    drop(trellis);
}

/// A GET over TLS to trellis on `port` trusting only `pem`, with SNI and `Host` `host`; the
/// raw answer.
async fn https_get(port: u16, pem: &Path, host: &str, path: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pem).expect("read PEM") {
        roots.add(cert.expect("PEM certificate")).expect("trust");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = ServerName::try_from(host.to_string()).expect("server name");
    let mut tls = tokio::time::timeout(EXCHANGE, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .unwrap_or_else(|e| panic!("TLS handshake for {host} (trusting the wildcard only): {e}"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(EXCHANGE, tls.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}
