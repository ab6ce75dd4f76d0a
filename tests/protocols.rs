//! End-to-end protocol tests: TLS listeners (generated and configured certificates), HTTP/2
//! (h2 over TLS and h2c), gRPC with trailers, streaming in both directions, error mapping,
//! health checks, graceful shutdown and HTTPS targets. Each test drives the real `trellis`
//! binary over real sockets; `curl` serves as an independent client where it can.
mod common;
use common::*;

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// What `curl` reported.
#[derive(Debug)]
struct Curl {
    exit: i32,
    code: u16,
    version: String,
    body: String,
    stderr: String,
}

/// Runs `curl -sS` with `args`; the status and HTTP version come from `-w`.
async fn curl(args: &[&str]) -> Curl {
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "15",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .await
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    let mut words = tail.split_whitespace();
    Curl {
        exit: out.status.code().unwrap_or(-1),
        code: words.next().and_then(|c| c.parse().ok()).unwrap_or(0),
        version: words.next().unwrap_or("").to_string(),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One service `svc` with `listener`, whose default action forwards to `web_tg` (named
/// `web-tg`).
fn one_service(listener: Listener, web_tg: TargetGroup) -> String {
    Config::new()
        .service(Service::new("svc").listener(listener.forward("web-tg")))
        .target_group(web_tg)
        .yaml()
}

/// Where `trellis up` writes the generated certificate of an HTTPS port.
fn generated_pem(trellis: &Trellis, port: u16) -> PathBuf {
    trellis
        .dir
        .join("state")
        .join("certs")
        .join(format!("trellis-{port}.pem"))
}

/// The generated Lattice DNS name of service `svc`, as the banner prints it.
fn lattice_dns_name(trellis: &Trellis, service: &str) -> String {
    let stderr = trellis.stderr();
    let marker = format!("{service} answers to ");
    let line = stderr
        .lines()
        .find(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("no \"{marker}\" line in the banner:\n{stderr}"));
    let rest = &line[line.find(&marker).unwrap() + marker.len()..];
    rest.split_whitespace().next().unwrap().to_string()
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS connection to trellis on `port` that trusts only the certificates in `pem` and sends
/// `sni`; returns the stream and the negotiated ALPN protocol.
async fn tls_connect(
    port: u16,
    pem: &Path,
    sni: &str,
    alpn: &[&[u8]],
) -> (tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pem).expect("read PEM") {
        roots.add(cert.expect("PEM certificate")).expect("trust");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = ServerName::try_from(sni.to_string()).expect("server name");
    let tls = connector
        .connect(name, tcp)
        .await
        .expect("TLS handshake with trellis (certificate verified against the PEM)");
    let negotiated = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    (tls, negotiated)
}

/// Sends `request` over HTTP/1.1 on `io` and returns the response head and body.
async fn send_http1<I, B>(io: I, request: Request<B>) -> Response<Incoming>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    sender
        .send_request(request)
        .await
        .expect("HTTP/1.1 request")
}

/// Sends `request` over HTTP/2 on `io` and returns the response head and body.
async fn send_http2<I, B>(io: I, request: Request<B>) -> Response<Incoming>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    sender.send_request(request).await.expect("HTTP/2 request")
}

/// A request body fed by a channel: each `Bytes` sent becomes one data frame; dropping the
/// sender ends the body.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// A body of the given frames, of unknown length (so sent without `content-length`, as a
/// streaming gRPC server answers).
struct Frames(std::collections::VecDeque<Frame<Bytes>>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, ChannelBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    (tx, ChannelBody(rx))
}

/// Reads data frames from `body` until `want` bytes arrived (frames may be split or merged on
/// the way through the proxy).
async fn read_bytes(body: &mut Incoming, want: usize) -> Bytes {
    let mut got = Vec::new();
    while got.len() < want {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    got.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => panic!("body error after {got:?}: {e}"),
            None => panic!("body ended after {got:?}, wanted {want} bytes"),
        }
    }
    Bytes::from(got)
}

/// Serves `answer` (HTTP/1.1 and h2c, or over TLS with `tls`) on a fresh loopback port.
async fn serve_fn<F, Fut, B>(tls: Option<Arc<rustls::ServerConfig>>, answer: F) -> u16
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().unwrap().port();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let answer = answer.clone();
                    async move { Ok::<_, Infallible>(answer(req).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            });
        }
    });
    port
}

/// A gRPC message frame: compressed flag 0, 4-byte big-endian length, message.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// A protobuf message with one string field (field 1), as HelloRequest/HelloReply are.
fn proto_string(s: &str) -> Vec<u8> {
    let mut out = vec![0x0a, s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}

/// Polls `pred` every 50 ms until it holds or `timeout` passes.
async fn eventually(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (without blocking the runtime) until stderr contains `needle`.
async fn wait_stderr(trellis: &Trellis, timeout: Duration, needle: &str) {
    if !eventually(timeout, || trellis.stderr().contains(needle)).await {
        panic!(
            "timed out after {timeout:?} waiting for {needle:?}; stderr:\n{}",
            trellis.stderr()
        );
    }
}

/// `n` GETs of `/` on `port`, one at a time.
async fn get_n(port: u16, n: usize) -> Vec<Answer> {
    let client = http1_client();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(&client, port, "svc.trellis.localhost", "/").await);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 1-3. HTTPS listeners, HTTP/2
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn https_listener_with_generated_certificate() {
    let backend = Backend::start("web").await;
    let port = free_port();
    let yaml = Config::new()
        .service(
            Service::new("svc")
                .access_log("stdout")
                .listener(Listener::https(port).forward("web-tg")),
        )
        .target_group(TargetGroup::instance("web-tg", &[backend.port]).no_health_checks())
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);
    let pem = generated_pem(&trellis, port);
    assert!(pem.is_file(), "{} not written", pem.display());
    let pem_s = pem.to_str().unwrap();
    let banner = format!("curl --cacert {pem_s} https://svc.trellis.localhost:{port}/");
    assert!(
        trellis.stderr().contains(&banner),
        "banner lacks {banner:?}:\n{}",
        trellis.stderr()
    );

    // curl (OpenSSL) verifies the generated certificate; no -k.
    let url = format!("https://svc.trellis.localhost:{port}/tls");
    let c = curl(&["--cacert", pem_s, &url]).await;
    assert_eq!((c.exit, c.code), (0, 200), "{c:?}\n{}", trellis.stderr());
    assert_eq!(c.body, "Hello from web at /tls");
    let seen = backend.last_seen();
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["x-forwarded-port"], port.to_string().as_str());
    assert_eq!(
        seen.headers["host"],
        format!("svc.trellis.localhost:{port}").as_str()
    );

    // The generated Lattice DNS name is in the certificate too.
    let dns = lattice_dns_name(&trellis, "svc");
    assert!(
        dns.ends_with(".vpc-lattice-svcs.us-west-2.on.aws"),
        "unexpected DNS name {dns}"
    );
    let resolve = format!("{dns}:{port}:127.0.0.1");
    let url = format!("https://{dns}:{port}/by-dns");
    let c = curl(&["--cacert", pem_s, "--resolve", &resolve, &url]).await;
    assert_eq!((c.exit, c.code), (0, 200), "{c:?}");
    assert_eq!(c.body, "Hello from web at /by-dns");

    // A name the certificate does not cover fails verification (curl really verifies).
    let resolve = format!("other.example.com:{port}:127.0.0.1");
    let url = format!("https://other.example.com:{port}/");
    let c = curl(&["--cacert", pem_s, "--resolve", &resolve, &url]).await;
    assert_ne!(
        c.exit, 0,
        "curl accepted a name outside the certificate: {c:?}"
    );

    // A rustls client trusting only the PEM handshakes with SNI.
    let (tls, alpn) = tls_connect(port, &pem, "svc.trellis.localhost", &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let req = Request::get("/rustls")
        .header("host", "svc.trellis.localhost")
        .header("user-agent", "rustls-test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = read(send_http1(tls, req).await).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, "Hello from web at /rustls");
    assert_eq!(backend.last_seen().headers["x-forwarded-proto"], "https");

    // The access-log record describes the TLS connection.
    let found = eventually(Duration::from_secs(3), || {
        trellis.stdout().contains("\"userAgent\":\"rustls-test\"")
    })
    .await;
    assert!(found, "no access-log record; stdout:\n{}", trellis.stdout());
    let stdout = trellis.stdout();
    let line = stdout.lines().find(|l| l.contains("rustls-test")).unwrap();
    let record: serde_json::Value = serde_json::from_str(line).expect("JSON record");
    assert_eq!(record["listenerType"], "HTTPS", "{record}");
    assert_eq!(record["serverNameIndication"], "svc.trellis.localhost");
    assert_eq!(record["tlsVersion"], "TLSv1.3");
    assert_eq!(record["responseCode"], 200);
    assert_ne!(record["sslCipher"], "-");
}

#[tokio::test(flavor = "multi_thread")]
async fn https_listener_with_configured_certificate() {
    let backend = Backend::start("web").await;
    let port = free_port();
    let dir = scratch_dir("certs");
    let generated =
        rcgen::generate_simple_self_signed(vec!["svc.trellis.localhost".to_string()]).unwrap();
    let cert_path = dir.join("svc.pem");
    let key_path = dir.join("svc.key");
    std::fs::write(&cert_path, generated.cert.pem()).unwrap();
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).unwrap();
    let yaml = one_service(
        Listener::https(port).tls(cert_path.to_str().unwrap(), key_path.to_str().unwrap()),
        TargetGroup::instance("web-tg", &[backend.port]).no_health_checks(),
    );
    let trellis = Trellis::start(&yaml, &[]);
    let url = format!("https://svc.trellis.localhost:{port}/configured");
    let c = curl(&["--cacert", cert_path.to_str().unwrap(), &url]).await;
    assert_eq!((c.exit, c.code), (0, 200), "{c:?}\n{}", trellis.stderr());
    assert_eq!(c.body, "Hello from web at /configured");
    assert_eq!(backend.last_seen().headers["x-forwarded-proto"], "https");

    // The served certificate is the configured one: the rustls client trusting only it works.
    let (tls, _) = tls_connect(port, &cert_path, "svc.trellis.localhost", &[b"http/1.1"]).await;
    let req = Request::get("/again")
        .header("host", "svc.trellis.localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = read(send_http1(tls, req).await).await;
    assert_eq!(a.status, 200, "{a:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_over_tls_and_h2c_and_http1_on_one_port() {
    let backend = Backend::start("web").await;
    let tls_port = free_port();
    let plain_port = free_port();
    let yaml = Config::new()
        .service(
            Service::new("svc")
                .listener(Listener::https(tls_port).forward("web-tg"))
                .listener(Listener::http(plain_port).forward("web-tg")),
        )
        .target_group(TargetGroup::instance("web-tg", &[backend.port]).no_health_checks())
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);
    let pem = generated_pem(&trellis, tls_port);
    let pem_s = pem.to_str().unwrap();

    // h2 over TLS, negotiated by ALPN.
    let url = format!("https://svc.trellis.localhost:{tls_port}/h2");
    let c = curl(&["--http2", "--cacert", pem_s, &url]).await;
    assert_eq!((c.exit, c.code), (0, 200), "{c:?}\n{}", trellis.stderr());
    assert_eq!(c.version, "2", "{c:?}");
    assert_eq!(c.body, "Hello from web at /h2");
    // The upstream side is the target group's protocol version (HTTP1), not the client's.
    let seen = backend.last_seen();
    assert_eq!(seen.version, hyper::Version::HTTP_11);
    assert_eq!(seen.headers["x-forwarded-proto"], "https");

    // HTTP/1.1 over TLS on the same port.
    let c = curl(&["--http1.1", "--cacert", pem_s, &url]).await;
    assert_eq!((c.code, c.version.as_str()), (200, "1.1"), "{c:?}");

    // A rustls client offering h2 gets h2.
    let (tls, alpn) = tls_connect(
        tls_port,
        &pem,
        "svc.trellis.localhost",
        &[b"h2", b"http/1.1"],
    )
    .await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let req = Request::get(format!(
        "https://svc.trellis.localhost:{tls_port}/rustls-h2"
    ))
    .body(Full::new(Bytes::new()))
    .unwrap();
    let a = read(send_http2(tls, req).await).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.version, hyper::Version::HTTP_2);
    assert_eq!(a.body, "Hello from web at /rustls-h2");

    // h2c with prior knowledge on the plain port.
    let url = format!("http://svc.trellis.localhost:{plain_port}/h2c");
    let c = curl(&["--http2-prior-knowledge", &url]).await;
    assert_eq!((c.exit, c.code), (0, 200), "{c:?}");
    assert_eq!(c.version, "2", "{c:?}");
    assert_eq!(c.body, "Hello from web at /h2c");
    assert_eq!(backend.last_seen().headers["x-forwarded-proto"], "http");

    let a = get(
        &h2c_client(),
        plain_port,
        "svc.trellis.localhost",
        "/hyper-h2c",
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.version, hyper::Version::HTTP_2);
    assert_eq!(a.body, "Hello from web at /hyper-h2c");

    // HTTP/1.1 on the same plain port.
    let c = curl(&["--http1.1", &url]).await;
    assert_eq!((c.code, c.version.as_str()), (200, "1.1"), "{c:?}");
    let a = get(&http1_client(), plain_port, "svc.trellis.localhost", "/h1").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.version, hyper::Version::HTTP_11);
    assert_eq!(a.body, "Hello from web at /h1");
}

/// Python's `h2` and `hpack` packages (an HTTP/2 client nobody here wrote): sends `requests`
/// GETs on one h2c connection and prints, per response, the class of the decoded
/// `x-amzn-requestid` header (`NeverIndexedHeaderTuple` for a never-indexed literal) and the size
/// of the client's HPACK dynamic table.
const H2_REQUEST_ID_SCRIPT: &str = r#"
import socket, sys
import h2.config, h2.connection, h2.events
port, requests = int(sys.argv[1]), int(sys.argv[2])
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
sock.sendall(conn.data_to_send())
for _ in range(requests):
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                               (":authority", "svc.trellis.localhost")], end_stream=True)
    sock.sendall(conn.data_to_send())
    ended = False
    while not ended:
        data = sock.recv(65536)
        if not data:
            sys.exit("connection closed")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                ids = [h for h in event.headers if h[0] == b"x-amzn-requestid"]
                print(type(ids[0]).__name__ if ids else "missing",
                      len(conn.decoder.header_table.dynamic_entries))
            ended = ended or isinstance(event, h2.events.StreamEnded)
        sock.sendall(conn.data_to_send())
"#;

/// A Python with the `h2` package: Debian's (where `make test` installs `python3-h2`), else the
/// first `python3` on the PATH.
fn python_with_h2() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import h2, hpack"])
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

/// Every request id is new, so Trellis sends it as a never-indexed HPACK literal: indexing it
/// would only churn both ends' dynamic tables (docs/BENCHMARKS.md has the profile).
#[tokio::test]
async fn request_id_reaches_http2_clients_as_a_never_indexed_literal() {
    let Some(python) = python_with_h2() else {
        eprintln!(
            "skipped: no python3 with the h2 package (make test installs Debian's python3-h2)"
        );
        return;
    };
    let backend = Backend::start("web").await;
    let port = free_port();
    let trellis = Trellis::start(
        &one_service(
            Listener::http(port),
            TargetGroup::instance("web-tg", &[backend.port]),
        ),
        &[],
    );
    let out = tokio::process::Command::new(python)
        .args(["-c", H2_REQUEST_ID_SCRIPT, &port.to_string(), "4"])
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        trellis.stderr()
    );
    let answers: Vec<(&str, usize)> = stdout
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(class, entries)| (class, entries.trim().parse().unwrap_or(usize::MAX)))
        .collect();
    assert_eq!(answers.len(), 4, "{stdout}");
    for (class, _) in &answers {
        assert_eq!(*class, "NeverIndexedHeaderTuple", "{stdout}");
    }
    // The other response headers are indexed by the first response; an indexed id would then
    // add one entry per response, a new `date` second at most one in all.
    let grown = answers[3].1.saturating_sub(answers[1].1);
    assert!(grown <= 1, "the dynamic table grew by {grown}: {stdout}");
}

// ---------------------------------------------------------------------------------------------
// 4. gRPC
// ---------------------------------------------------------------------------------------------

/// What the gRPC backend saw: (path, headers, body).
type GrpcSeen = Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>;

/// A Greeter-shaped gRPC backend (h2c): `SayHello(name)` answers `Hello <name>` with trailers
/// `grpc-status: 0` and `grpc-message: ok`; other paths get `grpc-status: 12`.
async fn grpc_backend() -> (u16, GrpcSeen) {
    let seen: GrpcSeen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let port = serve_fn(None, move |req: Request<Incoming>| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let path = parts.uri.path().to_string();
            log.lock()
                .unwrap()
                .push((path.clone(), parts.headers.clone(), body.clone()));
            let mut trailers = HeaderMap::new();
            let mut frames = std::collections::VecDeque::new();
            if path == "/pkg.Greeter/SayHello" && body.len() >= 7 {
                let name = String::from_utf8_lossy(&body[7..]).into_owned();
                let reply = proto_string(&format!("Hello {name}"));
                frames.push_back(Frame::data(grpc_frame(&reply)));
                trailers.insert("grpc-status", "0".parse().unwrap());
                trailers.insert("grpc-message", "ok".parse().unwrap());
            } else {
                trailers.insert("grpc-status", "12".parse().unwrap());
            }
            frames.push_back(Frame::trailers(trailers));
            Response::builder()
                .header("content-type", "application/grpc")
                .body(Frames(frames))
                .unwrap()
        }
    })
    .await;
    (port, seen)
}

fn grpc_request(uri: &str, host: Option<&str>, name: &str) -> Request<Full<Bytes>> {
    let mut b = Request::post(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(host) = host {
        b = b.header("host", host);
    }
    b.body(Full::new(grpc_frame(&proto_string(name)))).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_call_passes_body_and_trailers() {
    let (backend, seen) = grpc_backend().await;
    let port = free_port();
    let tls_port = free_port();
    let yaml = Config::new()
        .service(
            Service::new("svc")
                .listener(Listener::http(port).forward("grpc-tg"))
                .listener(Listener::https(tls_port).forward("grpc-tg")),
        )
        .target_group(TargetGroup::ip("grpc-tg", &[backend]).config("protocolVersion", "GRPC"))
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);
    let expected = grpc_frame(&proto_string("Hello trellis"));

    // h2c client.
    let uri = uri_for(port, "svc.trellis.localhost", "/pkg.Greeter/SayHello");
    let req = grpc_request(&uri, Some("svc.trellis.localhost"), "trellis");
    let resp = h2c_client().request(req).await.expect("gRPC over h2c");
    let a = read(resp).await;
    assert_eq!(a.status, 200, "{a:?}\n{}", trellis.stderr());
    assert_eq!(a.headers["content-type"], "application/grpc");
    assert_eq!(a.body.as_bytes(), &expected[..], "{a:?}");
    let trailers = a
        .trailers
        .as_ref()
        .expect("gRPC trailers must reach the client");
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");
    assert_eq!(trailers["grpc-message"], "ok");
    assert!(
        !a.headers.contains_key("grpc-status"),
        "grpc-status belongs in the trailers: {a:?}"
    );
    {
        let seen = seen.lock().unwrap();
        let (path, headers, body) = seen.last().expect("backend saw the call");
        assert_eq!(path, "/pkg.Greeter/SayHello");
        assert_eq!(headers["te"], "trailers", "te: trailers must be forwarded");
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(&body[..], &grpc_frame(&proto_string("trellis"))[..]);
    }

    // h2 over TLS.
    let pem = generated_pem(&trellis, tls_port);
    let (tls, alpn) = tls_connect(tls_port, &pem, "svc.trellis.localhost", &[b"h2"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let uri = format!("https://svc.trellis.localhost:{tls_port}/pkg.Greeter/SayHello");
    let a = read(send_http2(tls, grpc_request(&uri, None, "tls")).await).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        a.body.as_bytes(),
        &grpc_frame(&proto_string("Hello tls"))[..]
    );
    assert_eq!(
        a.trailers.as_ref().expect("trailers over h2")["grpc-status"],
        "0"
    );

    // curl as an independent HTTP/2 client also sees the trailer (-v prints it).
    let scratch = scratch_dir("grpc");
    let body_file = scratch.join("req.bin");
    std::fs::write(&body_file, grpc_frame(&proto_string("curl"))).unwrap();
    let data = format!("@{}", body_file.display());
    let url = format!("http://svc.trellis.localhost:{port}/pkg.Greeter/SayHello");
    let c = curl(&[
        "-v",
        "--http2-prior-knowledge",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "--data-binary",
        &data,
        &url,
    ])
    .await;
    assert_eq!((c.code, c.version.as_str()), (200, "2"), "{c:?}");
    assert!(
        c.stderr.contains("grpc-status: 0"),
        "curl saw no grpc-status trailer:\n{}",
        c.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_call_to_dead_target_gets_grpc_status() {
    let dead = free_port();
    let port = free_port();
    let yaml = one_service(
        Listener::http(port),
        TargetGroup::instance("web-tg", &[dead]).config("protocolVersion", "GRPC"),
    );
    let trellis = Trellis::start(&yaml, &[]);
    let uri = uri_for(port, "svc.trellis.localhost", "/pkg.Greeter/SayHello");
    let req = grpc_request(&uri, Some("svc.trellis.localhost"), "x");
    let a = read(h2c_client().request(req).await.expect("request")).await;
    assert!(
        a.status == 502 || a.status == 503,
        "dead gRPC target: {a:?}\n{}",
        trellis.stderr()
    );
    let status = a
        .headers
        .get("grpc-status")
        .or_else(|| a.trailers.as_ref().and_then(|t| t.get("grpc-status")))
        .unwrap_or_else(|| panic!("no grpc-status: {a:?}"));
    assert_eq!(status, "14", "UNAVAILABLE expected: {a:?}");
    assert_eq!(a.headers["content-type"], "application/grpc");

    // A non-gRPC caller (HTTP/2 POST, as Lattice requires for GRPC groups) gets a plain 502
    // without a grpc-status.
    let a = send(
        &h2c_client(),
        port,
        "svc.trellis.localhost",
        "POST",
        "/",
        &[("content-type", "text/plain")],
        "x",
    )
    .await;
    assert_eq!(a.status, 502, "{a:?}");
    assert!(!a.headers.contains_key("grpc-status"), "{a:?}");
}

// ---------------------------------------------------------------------------------------------
// 5. Streaming
// ---------------------------------------------------------------------------------------------

/// A backend that streams every request body frame straight back.
async fn echo_backend() -> u16 {
    serve_fn(None, |req: Request<Incoming>| async move {
        Response::builder()
            .header("x-backend", "echo")
            .body(req.into_body())
            .unwrap()
    })
    .await
}

/// Sends "ping-one", waits for its echo, only then sends "ping-two": a proxy that buffers the
/// request (or response) body deadlocks here.
async fn full_duplex(response: Response<Incoming>, tx: tokio::sync::mpsc::Sender<Bytes>) {
    assert_eq!(response.status(), 200, "{response:?}");
    let mut body = response.into_body();
    let first = read_bytes(&mut body, 8).await;
    assert_eq!(&first[..], b"ping-one");
    tx.send(Bytes::from_static(b"ping-two")).await.unwrap();
    let second = read_bytes(&mut body, 8).await;
    assert_eq!(&second[..], b"ping-two");
    drop(tx);
    let rest = body.collect().await.expect("end of body").to_bytes();
    assert!(rest.is_empty(), "unexpected extra bytes {rest:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_body_streams_full_duplex_over_http2() {
    let echo = echo_backend().await;
    let port = free_port();
    let yaml = one_service(
        Listener::http(port),
        TargetGroup::instance("web-tg", &[echo]).config("protocolVersion", "HTTP2"),
    );
    let trellis = Trellis::start(&yaml, &[]);
    let run = async {
        let (tx, body) = channel_body();
        tx.send(Bytes::from_static(b"ping-one")).await.unwrap();
        let req = Request::post("http://svc.trellis.localhost/echo")
            .body(body)
            .unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let response = send_http2(tcp, req).await;
        full_duplex(response, tx).await;
    };
    if tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .is_err()
    {
        panic!(
            "h2 full-duplex echo through trellis deadlocked (bodies buffered?)\n{}",
            trellis.stderr()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_targets_get_the_client_host_as_authority_and_no_host_header() {
    // The target answers with the `:authority` and the `Host` header it got.
    let backend = serve_fn(None, |req: Request<Incoming>| async move {
        let authority = req.uri().authority().map_or("-", |a| a.as_str()).to_owned();
        let host = req
            .headers()
            .get("host")
            .map_or("-".to_owned(), |h| h.to_str().unwrap_or("?").to_owned());
        Response::builder()
            .header("x-seen-authority", authority)
            .header("x-seen-host", host)
            .header("x-seen-version", format!("{:?}", req.version()))
            .body(Full::new(Bytes::new()))
            .unwrap()
    })
    .await;
    let port = free_port();
    let yaml = one_service(
        Listener::http(port),
        TargetGroup::instance("web-tg", &[backend]).config("protocolVersion", "HTTP2"),
    );
    let trellis = Trellis::start(&yaml, &[]);
    let host = format!("svc.trellis.localhost:{port}");
    // From an HTTP/1.1 client (its Host) and an h2c client (its :authority) alike; RFC 9113
    // 8.3.1 forbids a Host header that differs from :authority, so none is sent.
    for client in [http1_client(), h2c_client()] {
        let answer = get(&client, port, &host, "/who").await;
        assert_eq!(answer.status, 200, "{answer:?}\n{}", trellis.stderr());
        assert_eq!(answer.headers["x-seen-version"], "HTTP/2.0");
        assert_eq!(answer.headers["x-seen-authority"], host.as_str());
        assert_eq!(answer.headers["x-seen-host"], "-");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_body_streams_full_duplex_over_http1() {
    let echo = echo_backend().await;
    let port = free_port();
    let yaml = one_service(
        Listener::http(port),
        TargetGroup::instance("web-tg", &[echo]).no_health_checks(),
    );
    let trellis = Trellis::start(&yaml, &[]);
    let run = async {
        let (tx, body) = channel_body();
        tx.send(Bytes::from_static(b"ping-one")).await.unwrap();
        let req = Request::post("/echo")
            .header("host", "svc.trellis.localhost")
            .body(body)
            .unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let response = send_http1(tcp, req).await;
        full_duplex(response, tx).await;
    };
    if tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .is_err()
    {
        panic!(
            "HTTP/1.1 full-duplex echo through trellis deadlocked (bodies buffered?)\n{}",
            trellis.stderr()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn response_body_arrives_progressively() {
    // The backend's response body is fed by the test: the last chunk is produced only after
    // the client has received the first one through trellis.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let rx = Arc::new(Mutex::new(Some(rx)));
    let backend = serve_fn(None, move |_req: Request<Incoming>| {
        let rx = rx.clone();
        async move {
            let rx = rx.lock().unwrap().take().expect("one request only");
            Response::builder()
                .header("content-type", "text/plain")
                .body(ChannelBody(rx))
                .unwrap()
        }
    })
    .await;
    let port = free_port();
    let yaml = one_service(
        Listener::http(port),
        TargetGroup::instance("web-tg", &[backend]).no_health_checks(),
    );
    let trellis = Trellis::start(&yaml, &[]);
    let run = async {
        tx.send(Bytes::from_static(b"first-chunk;")).await.unwrap();
        let req = Request::get("/slow")
            .header("host", "svc.trellis.localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let response = send_http1(tcp, req).await;
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = read_bytes(&mut body, 12).await;
        assert_eq!(&first[..], b"first-chunk;");
        tx.send(Bytes::from_static(b"last-chunk")).await.unwrap();
        drop(tx);
        let rest = body.collect().await.expect("body").to_bytes();
        assert_eq!(&rest[..], b"last-chunk");
    };
    if tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .is_err()
    {
        panic!(
            "the first chunk did not arrive before the last was produced (response buffered?)\n{}",
            trellis.stderr()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Error mapping
// ---------------------------------------------------------------------------------------------

/// A raw TCP server that answers every connection with bytes that are not HTTP.
async fn garbage_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(b"not http\r\n\r\n").await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    port
}

/// A raw TCP server that accepts, reads and never answers.
async fn silent_backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn target_failures_map_to_lattice_status_codes() {
    let refused = free_port();
    let garbage = garbage_backend().await;
    let silent = silent_backend().await;
    let port = free_port();
    let mut listener = Listener::http(port);
    let mut config = Config::new();
    let failures: [(&str, &[u16]); 4] = [
        ("refused", &[refused]),
        ("garbage", &[garbage]),
        ("silent", &[silent]),
        ("empty", &[]),
    ];
    for (priority, (name, targets)) in (1..).zip(failures) {
        let group = format!("{name}-tg");
        let http_match = path_prefix(&format!("/{name}"));
        listener = listener.rule(name, priority, http_match, forward(&group));
        config = config.target_group(TargetGroup::instance(&group, targets).no_health_checks());
    }
    let yaml = config
        .service(Service::new("svc").listener(listener))
        .yaml();
    let trellis = Trellis::start(&yaml, &["--target-timeout", "1"]);
    let client = http1_client();
    let host = "svc.trellis.localhost";

    let a = get(&client, port, host, "/refused").await;
    assert_eq!(
        a.status,
        502,
        "nothing listening: {a:?}\n{}",
        trellis.stderr()
    );

    let a = get(&client, port, host, "/garbage").await;
    assert_eq!(a.status, 502, "garbage answer: {a:?}\n{}", trellis.stderr());

    let started = Instant::now();
    let a = get(&client, port, host, "/silent").await;
    let took = started.elapsed();
    assert_eq!(a.status, 504, "silent target: {a:?}\n{}", trellis.stderr());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "504 after {took:?}, expected about 1 s (--target-timeout 1)"
    );

    let a = get(&client, port, host, "/empty").await;
    assert_eq!(
        a.status,
        503,
        "empty target group: {a:?}\n{}",
        trellis.stderr()
    );

    // Every error answer still carries the request id.
    assert!(a.headers.contains_key("x-amzn-requestid"), "{a:?}");
}

// ---------------------------------------------------------------------------------------------
// 7. Health checks
// ---------------------------------------------------------------------------------------------

/// A `healthCheck`: `/health` every 5 s, two probes to change a target's state.
fn fast_checks() -> serde_json::Value {
    json!({
        "enabled": true,
        "path": "/health",
        "healthCheckIntervalSeconds": 5,
        "healthyThresholdCount": 2,
        "unhealthyThresholdCount": 2,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_take_unhealthy_target_out_and_back() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    let port = free_port();
    let tg =
        TargetGroup::instance("web-tg", &[a.port, b.port]).config("healthCheck", fast_checks());
    let yaml = one_service(Listener::http(port), tg);
    let trellis = Trellis::start(&yaml, &[]);
    let a_label = format!("127.0.0.1:{}: ", a.port);
    let b_label = format!("127.0.0.1:{}: ", b.port);
    // The first probe runs at start-up.
    wait_stderr(
        &trellis,
        Duration::from_secs(3),
        &format!("{a_label}INITIAL -> HEALTHY"),
    )
    .await;
    wait_stderr(
        &trellis,
        Duration::from_secs(3),
        &format!("{b_label}INITIAL -> HEALTHY"),
    )
    .await;
    let t = tally(&get_n(port, 4).await);
    assert_eq!((t.get("A"), t.get("B")), (Some(&2), Some(&2)), "{t:?}");

    a.health_status.store(500, Ordering::Relaxed);
    let failing_since = Instant::now();
    wait_stderr(
        &trellis,
        Duration::from_secs(20),
        &format!("{a_label}HEALTHY -> UNHEALTHY"),
    )
    .await;
    let took = failing_since.elapsed();
    assert!(
        took < Duration::from_secs(13),
        "A went UNHEALTHY after {took:?}; unhealthyThresholdCount 2 × interval 5 s"
    );
    let t = tally(&get_n(port, 6).await);
    assert_eq!(t.get("B"), Some(&6), "all traffic must go to B: {t:?}");

    a.health_status.store(200, Ordering::Relaxed);
    wait_stderr(
        &trellis,
        Duration::from_secs(20),
        &format!("{a_label}UNHEALTHY -> HEALTHY"),
    )
    .await;
    let t = tally(&get_n(port, 4).await);
    assert_eq!((t.get("A"), t.get("B")), (Some(&2), Some(&2)), "{t:?}");
    assert!(
        !trellis
            .stderr()
            .contains(&format!("{b_label}HEALTHY -> UNHEALTHY")),
        "B never failed:\n{}",
        trellis.stderr()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_matcher_ranges() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    a.health_status.store(204, Ordering::Relaxed);
    b.health_status.store(404, Ordering::Relaxed);
    let port = free_port();
    let mut check = fast_checks();
    check["matcher"] = json!({"httpCode": "200-299"});
    let tg = TargetGroup::instance("web-tg", &[a.port, b.port]).config("healthCheck", check);
    let yaml = one_service(Listener::http(port), tg);
    let trellis = Trellis::start(&yaml, &[]);
    wait_stderr(
        &trellis,
        Duration::from_secs(3),
        &format!("127.0.0.1:{}: INITIAL -> HEALTHY", a.port),
    )
    .await;
    wait_stderr(
        &trellis,
        Duration::from_secs(3),
        &format!("127.0.0.1:{}: INITIAL -> UNHEALTHY", b.port),
    )
    .await;
    let t = tally(&get_n(port, 6).await);
    assert_eq!(t.get("A"), Some(&6), "only A (204) is healthy: {t:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_fail_open_when_no_target_is_healthy() {
    let a = Backend::start("A").await;
    let b = Backend::start("B").await;
    a.health_status.store(500, Ordering::Relaxed);
    b.health_status.store(500, Ordering::Relaxed);
    let port = free_port();
    let tg =
        TargetGroup::instance("web-tg", &[a.port, b.port]).config("healthCheck", fast_checks());
    let yaml = one_service(Listener::http(port), tg);
    let trellis = Trellis::start(&yaml, &[]);
    for backend in [&a, &b] {
        wait_stderr(
            &trellis,
            Duration::from_secs(3),
            &format!("127.0.0.1:{}: INITIAL -> UNHEALTHY", backend.port),
        )
        .await;
    }
    let answers = get_n(port, 6).await;
    assert!(answers.iter().all(|x| x.status == 200), "{answers:?}");
    let t = tally(&answers);
    assert_eq!(
        (t.get("A"), t.get("B")),
        (Some(&3), Some(&3)),
        "fail open: round robin over all targets: {t:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_check_defaults_by_protocol_version() {
    let h1 = Backend::start("h1").await;
    let h2 = Backend::start("h2").await;
    let port = free_port();
    let listener = Listener::http(port).forward("h1-tg").rule(
        "to-h2",
        1,
        path_prefix("/h2"),
        forward("h2-tg"),
    );
    let yaml = Config::new()
        .service(Service::new("svc").listener(listener))
        .target_group(TargetGroup::instance("h1-tg", &[h1.port]))
        .target_group(TargetGroup::instance("h2-tg", &[h2.port]).config("protocolVersion", "HTTP2"))
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);
    let ready = Instant::now();
    // HTTP1 group: on by default, first probe right at start-up, path `/`.
    let probed = eventually(Duration::from_millis(1500), || {
        h1.hits.load(Ordering::Relaxed) > 0
    })
    .await;
    assert!(
        probed,
        "no health probe within {:?} of ready\n{}",
        ready.elapsed(),
        trellis.stderr()
    );
    let probe = h1.last_seen();
    assert_eq!((probe.method.as_str(), probe.uri.as_str()), ("GET", "/"));
    wait_stderr(
        &trellis,
        Duration::from_secs(2),
        &format!("127.0.0.1:{}: INITIAL -> HEALTHY", h1.port),
    )
    .await;

    // HTTP2 group: off by default, so nothing reaches the backend but traffic.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h2.hits.load(Ordering::Relaxed) + h2.health_hits.load(Ordering::Relaxed),
        0,
        "HTTP2 target got probes: {:?}",
        h2.seen.lock().unwrap()
    );
    let a = get(&h2c_client(), port, "svc.trellis.localhost", "/h2").await;
    assert_eq!(a.status, 200);
    assert_eq!(h2.last_seen().version, hyper::Version::HTTP_2);
    assert!(
        !trellis
            .stderr()
            .contains(&format!("127.0.0.1:{}: INITIAL", h2.port)),
        "HTTP2 target must stay UNAVAILABLE:\n{}",
        trellis.stderr()
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Graceful shutdown
// ---------------------------------------------------------------------------------------------

async fn connect_refused(port: u16) -> bool {
    matches!(
        TcpStream::connect(("127.0.0.1", port)).await,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Waits for the process to exit without blocking the runtime.
async fn wait_exit(trellis: &mut Trellis, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(code) = trellis.wait(Duration::ZERO) {
            return Some(code);
        }
        if trellis.child.is_none() || Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let backend = Backend::start("slow").await;
    backend.delay_ms.store(1500, Ordering::Relaxed);
    let port = free_port();
    let yaml = simple_config(port, &[backend.port]);
    let mut trellis = Trellis::start(&yaml, &[]);
    let started = Instant::now();
    let in_flight =
        tokio::spawn(
            async move { get(&http1_client(), port, "svc.trellis.localhost", "/slow").await },
        );
    backend.wait_arrived(1).await;
    trellis.signal("TERM");
    // New connections are refused while the request in flight is still being served.
    let mut refused = false;
    for _ in 0..20 {
        if connect_refused(port).await {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(refused, "trellis still accepts connections after SIGTERM");
    assert!(
        !in_flight.is_finished(),
        "the slow request finished too early"
    );
    let a = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("in-flight request hung")
        .expect("in-flight request task");
    assert_eq!(a.status, 200, "{a:?}\n{}", trellis.stderr());
    assert_eq!(a.body, "Hello from slow at /slow");
    assert!(started.elapsed() >= Duration::from_millis(1400));
    let code = wait_exit(&mut trellis, Duration::from_secs(5)).await;
    assert_eq!(code, Some(0), "{}", trellis.stderr());
    assert!(trellis.stderr().contains("SIGTERM received"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_exits_zero() {
    let backend = Backend::start("web").await;
    let port = free_port();
    let yaml = simple_config(port, &[backend.port]);
    let mut trellis = Trellis::start(&yaml, &[]);
    let a = get(&http1_client(), port, "svc.trellis.localhost", "/").await;
    assert_eq!(a.status, 200);
    trellis.signal("INT");
    let code = wait_exit(&mut trellis, Duration::from_secs(5)).await;
    assert_eq!(code, Some(0), "{}", trellis.stderr());
    assert!(trellis.stderr().contains("SIGINT received"));
    assert!(connect_refused(port).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_timeout_bounds_shutdown() {
    let backend = Backend::start("stuck").await;
    backend.delay_ms.store(10_000, Ordering::Relaxed);
    let port = free_port();
    let yaml = simple_config(port, &[backend.port]);
    let mut trellis = Trellis::start(&yaml, &["--drain-timeout", "1"]);
    let in_flight = tokio::spawn(async move {
        let client = http1_client();
        let req = Request::get(format!("http://127.0.0.1:{port}/stuck"))
            .header("host", "svc.trellis.localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        client.request(req).await.map(|r| r.status())
    });
    backend.wait_arrived(1).await;
    let signalled = Instant::now();
    trellis.signal("TERM");
    let code = wait_exit(&mut trellis, Duration::from_secs(5)).await;
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "{}", trellis.stderr());
    assert!(
        took < Duration::from_millis(2500),
        "exit took {took:?} with --drain-timeout 1"
    );
    assert!(
        took >= Duration::from_millis(900),
        "exit after {took:?}: did not wait for the request in flight"
    );
    let outcome = tokio::time::timeout(Duration::from_secs(2), in_flight)
        .await
        .expect("client noticed the closed connection")
        .unwrap();
    assert!(
        outcome.is_err(),
        "the request cannot have completed: {outcome:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. HTTPS target groups
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn https_targets_with_untrusted_certificates() {
    let generated =
        rcgen::generate_simple_self_signed(vec!["backend.invalid".to_string()]).unwrap();
    let cert = generated.cert.der().clone();
    let key =
        PrivateKeyDer::from_pem_slice(generated.signing_key.serialize_pem().as_bytes()).unwrap();
    let mut server = rustls::ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let seen: Arc<Mutex<Vec<(String, hyper::Version, HeaderMap)>>> = Arc::default();
    let log = seen.clone();
    let backend = serve_fn(Some(Arc::new(server)), move |req: Request<Incoming>| {
        let log = log.clone();
        async move {
            let path = req.uri().path().to_string();
            log.lock()
                .unwrap()
                .push((path.clone(), req.version(), req.headers().clone()));
            Response::builder()
                .header("x-backend", "tls")
                .body(Full::new(Bytes::from(format!(
                    "Hello over TLS at {path} ({:?})",
                    req.version()
                ))))
                .unwrap()
        }
    })
    .await;
    let port = free_port();
    let listener = Listener::http(port).forward("tls1-tg").rule(
        "to-h2",
        1,
        path_prefix("/h2"),
        forward("tls2-tg"),
    );
    let tls1 = TargetGroup::instance("tls1-tg", &[backend])
        .config("port", 443)
        .config("protocol", "HTTPS")
        .config("healthCheck", json!({"path": "/health"}));
    let tls2 = TargetGroup::ip("tls2-tg", &[backend])
        .config("port", 443)
        .config("protocol", "HTTPS")
        .config("protocolVersion", "HTTP2");
    let yaml = Config::new()
        .service(Service::new("svc").listener(listener))
        .target_group(tls1)
        .target_group(tls2)
        .yaml();
    let trellis = Trellis::start(&yaml, &[]);
    let client = http1_client();
    let a = get(&client, port, "svc.trellis.localhost", "/h1").await;
    assert_eq!(a.status, 200, "{a:?}\n{}", trellis.stderr());
    assert_eq!(a.body, "Hello over TLS at /h1 (HTTP/1.1)");
    let a = get(&h2c_client(), port, "svc.trellis.localhost", "/h2").await;
    assert_eq!(a.status, 200, "{a:?}\n{}", trellis.stderr());
    assert_eq!(a.body, "Hello over TLS at /h2 (HTTP/2.0)");
    {
        let seen = seen.lock().unwrap();
        let (_, _, headers) = seen.iter().find(|(p, _, _)| p == "/h1").unwrap();
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["host"], "svc.trellis.localhost");
    }
    // Health probes over HTTPS do not verify the certificate either.
    wait_stderr(
        &trellis,
        Duration::from_secs(3),
        &format!("tls1-tg 127.0.0.1:{backend}: INITIAL -> HEALTHY"),
    )
    .await;
    assert!(
        seen.lock().unwrap().iter().any(|(p, _, _)| p == "/health"),
        "no HTTPS health probe reached the target"
    );
}
